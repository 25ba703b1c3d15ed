"""ebpf_info's facts against the running kernel, inside private namespaces (ebpft-at-*)."""
import os

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import xdp_features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tc import default_handle
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from test_attach_tc import add_foreign


def test_everything_we_pinned_and_attached(attach, veth_pair):
    obj = attach.obj
    ids = obj["ids"]
    attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")
    attach(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink")
    tcx = attach(program="tc_udp", interface=veth_pair.ifname, direction="egress", tc_api="tcx")["attachment"]
    raw = attach(program="raw_getpid", hook="raw_tracepoint", target="sys_enter")["attachment"]
    add_foreign(obj, veth_pair.ifname, "ingress")

    facts = InfoBackend(obj["pin_root"]).run()
    assert not facts["changed"]
    [o] = facts["objects"]
    assert (o["name"], o["loaded"]) == ("att", True)
    assert sorted(p["name"] for p in o["programs"]) == sorted(ids)
    assert [m["name"] for m in o["maps"]] == ["calls_by_tgid", "packets"]
    assert sorted((link["id"], link["type"], link["prog_id"]) for link in o["links"]) == sorted(
        [(tcx["link_id"], "tcx", ids["tc_udp"]), (raw["link_id"], "raw_tracepoint", ids["raw_getpid"])])

    described = sorted((a["program"], a["description"]) for a in facts["attachments"])
    assert described == sorted([
        ("xdp_udp", "xdp (skb) on ebpft-at0"),
        ("tc_udp", "tc ingress on ebpft-at0 prio 256 handle %#x" % default_handle("att/tc_udp")),
        ("foreign_tc", "tc ingress on ebpft-at0 prio 1000 handle 0x1"),
        ("tc_udp", "link %d (tcx egress on ebpft-at0)" % tcx["link_id"]),
        ("raw_getpid", "link %d (raw_tracepoint sys_enter)" % raw["link_id"]),
    ])
    assert all(a["object"] == "att" for a in facts["attachments"])

    interfaces = dict((i["name"], i) for i in facts["interfaces"])
    assert sorted(interfaces) == ["ebpft-at0", "lo"]
    eth = interfaces["ebpft-at0"]
    assert eth["up"] and eth["tc_qdisc"] == "clsact"
    assert eth["xdp"] == [{"mode": "skb", "prog_id": ids["xdp_udp"], "link_id": None, "object": "att", "program": "xdp_udp"}]
    assert [(f["prio"], f["program"]) for f in eth["tc"]["ingress"]] == [(256, "tc_udp"), (1000, "foreign_tc")]
    assert eth["tc"]["egress"] == []
    assert eth["links"] == [{"link_id": tcx["link_id"], "link_type": "tcx", "attach_type_name": "tcx_egress",
                             "prog_id": ids["tc_udp"], "object": "att", "program": "tc_udp"}]
    assert interfaces["lo"]["xdp"] == [] and interfaces["lo"]["tc_qdisc"] is None

    assert facts["features"]["tcx"] is features.has_tcx()
    assert facts["features"]["kprobes"] is os.path.isdir("/sys/bus/event_source/devices/kprobe")


def test_a_foreign_program_has_no_owner(attach, veth_pair):
    with sc.prog_load(sc.BPF_PROG_TYPE_XDP, bpf_insn.mov64_imm(0, 2) + bpf_insn.exit_insn(), "GPL", "ebpft_other") as prog:
        prog_id = sc.prog_info(prog)["id"]
        with Netlink() as nl:
            nl.xdp_set(nl.ifindex(veth_pair.ifname), prog, "drv")
        facts = InfoBackend(attach.obj["pin_root"], gather=["attachments", "interfaces"]).run()
    assert facts["attachments"] == []
    [eth] = [i for i in facts["interfaces"] if i["name"] == "ebpft-at0"]
    assert eth["xdp"] == [{"mode": "drv", "prog_id": prog_id, "link_id": None, "object": None, "program": None}]
    assert sorted(facts) == ["attachments", "changed", "interfaces", "pin_root"]


def test_features_alone_and_an_empty_pin_root(pin_root):
    facts = InfoBackend(pin_root, gather=["features", "objects"]).run()
    assert facts["objects"] == []
    f = facts["features"]
    assert f["kernel_release"] == os.uname().release
    assert f["btf"] is True and f["xdp"] is True and f["raw_tracepoints"] is True
    assert f["libbpf_version"].startswith("v1.")
    assert set(f) == {"kernel_release", "btf", "tracefs", "tracepoints", "raw_tracepoints", "kprobes", "uprobes", "fentry",
                      "tp_btf", "perf_link", "xdp", "tc", "tcx", "task_storage", "kern_ctx", "libbpf_version"}


def test_interfaces_report_the_xdp_modes_of_their_driver(veth_pair, pin_root):
    """veth has native XDP (drv); loopback only generic (skb). Linux 6.3+ reports it."""
    modes = xdp_features.xdp_modes()
    if modes is None:
        pytest.skip("this kernel has no netdev generic netlink family (before 6.3)")
    with Netlink() as nl:
        assert modes[nl.ifindex(veth_pair.ifname)] == ["skb", "drv"]
        assert modes[nl.ifindex("lo")] == ["skb"]
    assert xdp_features.modes(xdp_features.NETDEV_XDP_ACT_BASIC | xdp_features.NETDEV_XDP_ACT_HW_OFFLOAD) == ["skb", "drv", "hw"]
    interfaces = InfoBackend(pin_root, ["interfaces"]).run()["interfaces"]
    assert dict((i["name"], i["xdp_modes"]) for i in interfaces)[veth_pair.ifname] == ["skb", "drv"]
