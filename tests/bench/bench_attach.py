"""Time ebpf_attach per hook: attach (with its verification), the verification alone, the no-op
check mode run of an attached program, and detach; plus one whole module process.

Run by hand as root: .venv/bin/python tests/bench/bench_attach.py [rounds]
It creates its own namespaces (prefix ebpft-at) and pin root, and removes them afterwards.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from bpf_objects import BUILD, SOURCES, build_test_objects  # noqa: E402
from netns import veth_netns_pair  # noqa: E402

from ansible_collections.ebpf.observability.plugins.module_utils.backends import attach_common  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend  # noqa: E402

PIN_ROOT = "/sys/fs/bpf/ebpft-at-bench"
MODULE = "ansible_collections.ebpf.observability.plugins.modules.ebpf_attach"


def cases(ifname, uprobe_binary):
    return [
        ("xdp skb", dict(program="xdp_udp", interface=ifname, mode="skb")),
        ("xdp drv", dict(program="xdp_udp", interface=ifname, mode="drv")),
        ("xdp auto", dict(program="xdp_udp", interface=ifname)),
        ("tc netlink", dict(program="tc_udp", interface=ifname, tc_api="netlink")),
        ("tc tcx", dict(program="tc_udp", interface=ifname, tc_api="tcx")),
        ("tracepoint", dict(program="tp_getpid", hook="tracepoint", target="syscalls/sys_enter_getpid")),
        ("raw_tracepoint", dict(program="raw_getpid", hook="raw_tracepoint", target="sys_enter")),
        ("uprobe", dict(program="uprobe_target", hook="uprobe", target=uprobe_binary + ":ebpft_probe_me")),
    ]


def median_ms(samples):
    return "%7.2f" % (statistics.median(samples) * 1e3)


class VerifyTimer:
    """Times every Hook.verify_attached call (the read-back after an attach)."""

    def __init__(self):
        self.samples = []
        self.real = attach_common.Hook.verify_attached

    def __enter__(self):
        timer = self

        def timed(hook):
            start = time.perf_counter()
            try:
                return timer.real(hook)
            finally:
                timer.samples.append(time.perf_counter() - start)
        attach_common.Hook.verify_attached = timed
        return self

    def __exit__(self, *exc):
        attach_common.Hook.verify_attached = self.real


def run(options, check_mode=False, state="present"):
    params = dict(name="att", pin_root=PIN_ROOT, events_dir=tempfile.gettempdir(), state=state, **options)
    start = time.perf_counter()
    res = AttachBackend(params, check_mode=check_mode).run()
    return time.perf_counter() - start, res


def module_process(options):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as args:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(name="att", pin_root=PIN_ROOT, events_dir=tempfile.gettempdir(), **options)}, args)
        args.flush()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", MODULE, args.name], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "build", "collections")))
        return time.perf_counter() - start


def main(rounds):
    objects = build_test_objects()
    uprobe_binary = os.path.join(BUILD, "uprobe_target")
    subprocess.run(["cc", "-O1", "-o", uprobe_binary, os.path.join(SOURCES, "uprobe_target.c")], check=True)
    bpffs.remove_tree(PIN_ROOT)
    try:
        ProgramBackend("att", PIN_ROOT).present(objects["attach"])
        with veth_netns_pair("ebpft-at", addresses=True) as pair:
            print("%d rounds, median ms per operation" % rounds)
            print("%-16s %9s %9s %9s %9s" % ("hook", "attach", "verify", "no-op", "detach"))
            for label, options in cases(pair.ifname, uprobe_binary):
                attach, noop, detach = [], [], []
                with VerifyTimer() as verify:
                    for _round in range(rounds):
                        took, res = run(options)
                        assert res["changed"], res
                        attach.append(took)
                        noop.append(run(options, check_mode=True)[0])
                        took, res = run(options, state="absent")
                        assert res["changed"], res
                        detach.append(took)
                print("%-16s %9s %9s %9s %9s" % (label, median_ms(attach), median_ms(verify.samples), median_ms(noop),
                                                 median_ms(detach)))
            samples = [module_process(dict(program="raw_getpid", hook="raw_tracepoint", target="sys_enter"))
                       for _round in range(max(3, rounds // 10))]
            print("whole module process (raw_tracepoint, attached: no-op): %s ms" % median_ms(samples[1:]))
    finally:
        bpffs.remove_tree(PIN_ROOT)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
