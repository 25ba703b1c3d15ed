"""Time find_attachments() for a program attached nowhere, in a namespace with 10 interfaces.

Run by hand as root: .venv/bin/python tests/bench/bench_attachments.py [rounds]
It creates its own namespaces (prefix ebpft-nl) and deletes them afterwards.
"""
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from netns import ip, veth_netns_pair  # noqa: E402
from tiny_programs import load_cls, load_xdp  # noqa: E402

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.attachments import find_attachments
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink  # noqa: E402

EXTRA_VETH_PAIRS = 4  # lo + ebpft-nl0 + 4 pairs = 10 interfaces


def timed(fn, rounds):
    samples = []
    for _round in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return "median %.2f ms, min %.2f ms, max %.2f ms" % (
        statistics.median(samples), min(samples), max(samples))


def main(rounds):
    with veth_netns_pair("ebpft-nl") as pair:
        for i in range(EXTRA_VETH_PAIRS):
            ip("link", "add", "ebpft-nl%da" % i, "type", "veth", "peer", "name", "ebpft-nl%db" % i)
        with Netlink() as nl, load_xdp() as xdp, load_cls() as cls, load_xdp() as idle:
            wanted = [sc.prog_info(idle)["id"]]
            print("interfaces: %d, bpf links in the kernel: %d"
                  % (len(nl.interfaces()), len(list(sc.link_ids()))))
            print("nothing attached, shared socket:  ", timed(lambda: find_attachments(wanted, nl), rounds))
            print("nothing attached, own socket:     ", timed(lambda: find_attachments(wanted), rounds))
            idx = nl.ifindex(pair.ifname)
            nl.xdp_set(idx, xdp, "drv")
            nl.ensure_clsact(idx)
            nl.tc_attach(idx, "ingress", cls, 1, 1, "bench")
            print("others attached (xdp + 1 clsact):", timed(lambda: find_attachments(wanted, nl), rounds))
            print("xdp_query:                        ", timed(lambda: nl.xdp_query(idx), rounds))
            print("tc attach+detach cycle:           ", timed(
                lambda: (nl.tc_attach(idx, "egress", cls, 2, 2, "c"), nl.tc_detach(idx, "egress", 2, 2)),
                rounds))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
