"""Two module runs with the same arguments started at the same moment on one host (as two
playbooks, or a playbook beside the restore unit, would): both succeed, the kernel ends with
exactly one attachment / one object / the expected map contents, and one of the two reports the
change. The host lock (state/host_lock) serialises them; each pair is a pair of real module
processes."""
import json
import os
import struct
import subprocess
import sys

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from test_program_backend import REPO

PAIRS = 16
COLLECTIONS = os.path.join(REPO, "build", "collections")
MODULES_PKG = "ansible_collections.ebpf.observability.plugins.modules."


@pytest.fixture
def pair(tmp_path):
    """pair(module, args) -> the two results of the module run twice at once."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, EBPF_OBSERVABILITY_LOCK=str(tmp_path / "host.lock"))

    def run(module, args):
        cmd = [sys.executable, "-m", MODULES_PKG + module, json.dumps({"ANSIBLE_MODULE_ARGS": args})]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _proc in range(2)]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert out, err
            results.append(json.loads(out))
        for res in results:
            assert not res.get("failed"), res
        assert sorted(r["changed"] for r in results) == [False, True], results
        return results
    return run


def _xdp(ifname):
    with Netlink() as nl:
        state = nl.xdp_query(nl.ifindex(ifname))
    return [(m, state[m + "_prog_id"]) for m in ("drv", "skb", "hw") if state[m + "_prog_id"]]


def _tc(ifname, direction="ingress"):
    with Netlink() as nl:
        return [f["prog_id"] for f in nl.tc_filters(nl.ifindex(ifname), direction)]


def _tcx_links(ifindex):
    """Programs on the TCX ingress hook of an interface of this thread's namespace."""
    return sc.prog_query(ifindex, sc.BPF_TCX_INGRESS)["prog_ids"]


@pytest.mark.parametrize("api", ["xdp", "netlink", "tcx"])
def test_two_attach_runs_at_once_leave_one_attachment(pair, attach, veth_pair, api):
    ids = attach.obj["ids"]
    base = dict(name="att", pin_root=attach.obj["pin_root"], interface=veth_pair.ifname, events_dir=attach.events_dir)
    if api == "xdp":
        args = dict(base, program="xdp_udp")
    else:
        args = dict(base, program="tc_udp", hook="tc", direction="ingress", tc_api=api)
    with Netlink() as nl:
        ifindex = nl.ifindex(veth_pair.ifname)
    for _pair in range(PAIRS):
        pair("ebpf_attach", args)
        if api == "xdp":
            assert _xdp(veth_pair.ifname) == [("drv", ids["xdp_udp"])]
        elif api == "netlink":
            assert _tc(veth_pair.ifname) == [ids["tc_udp"]]
        else:
            assert _tcx_links(ifindex) == [ids["tc_udp"]]
        assert attach(**dict(args, state="absent"))["changed"]
        assert not _xdp(veth_pair.ifname) and not _tc(veth_pair.ifname) and not _tcx_links(ifindex)


def test_two_loads_and_two_unloads_at_once(pair, pin_root, bpf_objects):
    pin_dir = os.path.join(pin_root, "obj")
    for _pair in range(PAIRS):
        results = pair("ebpf_program", dict(name="obj", src=bpf_objects["base"], pin_root=pin_root))
        assert results[0]["programs"] == results[1]["programs"]
        assert sorted(os.listdir(os.path.join(pin_dir, "progs"))) == sorted(p["name"] for p in results[0]["programs"])
        pair("ebpf_program", dict(name="obj", pin_root=pin_root, state="absent"))
        assert not os.path.exists(pin_dir)


def test_two_map_writes_at_once(pair, attach_obj):
    path = attach_obj["pin_dir"] + "/maps/packets"
    for i in range(PAIRS):
        entries = [{"key": k, "value": i * 10 + k} for k in range(4)]
        pair("ebpf_map", dict(name="att", map="packets", entries=entries, exclusive=True, pin_root=attach_obj["pin_root"]))
        with sc.obj_get(path) as fd:
            got = [struct.unpack("<Q", sc.map_lookup(fd, struct.pack("<I", k), 8))[0] for k in range(8)]
        assert got == [i * 10 + k for k in range(4)] + [0] * 4


def test_a_lost_race_with_another_tool_reads_the_hook_again(attach, veth_pair, monkeypatch):
    """Another tool changes the hook between our read and our change (the host lock cannot keep
    it out): the kernel's EBUSY makes the run read the hook again and converge. The interleaving
    is forced by answering the first read with the state from before the other tool's change."""
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp import XdpHook
    ids = attach.obj["ids"]
    real_read = XdpHook.read
    reads = []

    def stale_first(hook):
        reads.append(1)
        return {"held": [], "dispatcher": None, "ours": [], "current": []} if len(reads) == 1 else real_read(hook)
    with Netlink() as nl, sc.obj_get(attach.obj["pin_dir"] + "/progs/xdp_udp") as fd:
        nl.xdp_set(nl.ifindex(veth_pair.ifname), fd, "drv")  # the other tool attached our program meanwhile
    monkeypatch.setattr(XdpHook, "read", stale_first)
    res = attach(program="xdp_udp", interface=veth_pair.ifname)
    assert not res["changed"] and len(reads) >= 2
    assert _xdp(veth_pair.ifname) == [("drv", ids["xdp_udp"])]
