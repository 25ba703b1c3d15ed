"""find_attachments / describe / detach against the running kernel, in private namespaces."""
import errno

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments as att
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from netns import netns_entered
from tiny_programs import prog_id


def test_unattached_program_has_no_attachments(nl, idx, xdp_progs, cls_progs):
    nl.xdp_set(idx, xdp_progs[0], "drv")
    nl.ensure_clsact(idx)
    nl.tc_attach(idx, "ingress", cls_progs[0], 1, 1, "other")
    assert att.find_attachments([prog_id(xdp_progs[1]), prog_id(cls_progs[1])], nl) == []
    assert att.find_attachments([], nl) == []


def test_finds_xdp_and_tc(nl, idx, xdp_progs, cls_progs):
    xdp_id, ing_id, eg_id = prog_id(xdp_progs[0]), prog_id(cls_progs[0]), prog_id(cls_progs[1])
    nl.xdp_set(idx, xdp_progs[0], "skb")
    nl.ensure_clsact(idx)
    nl.tc_attach(idx, "ingress", cls_progs[0], prio=3, handle=7, name="ing")
    nl.tc_attach(idx, "egress", cls_progs[1], prio=1, handle=0x10, name="eg")
    found = att.find_attachments({xdp_id, ing_id, eg_id})  # opens its own socket here
    assert found == [
        {"kind": "xdp", "prog_id": xdp_id, "mode": "skb", "ifindex": idx, "interface": "ebpft-nl0"},
        {"kind": "tc", "prog_id": ing_id, "direction": "ingress", "prio": 3, "handle": 7,
         "ifindex": idx, "interface": "ebpft-nl0"},
        {"kind": "tc", "prog_id": eg_id, "direction": "egress", "prio": 1, "handle": 0x10,
         "ifindex": idx, "interface": "ebpft-nl0"},
    ]
    assert [att.describe(a) for a in found] == [
        "xdp (skb) on ebpft-nl0",
        "tc ingress on ebpft-nl0 prio 3 handle 0x7",
        "tc egress on ebpft-nl0 prio 1 handle 0x10",
    ]


def test_ingress_qdisc_filters_are_found_once(nl, idx, cls_progs):
    nl.ipr.tc("add", "ingress", idx)
    nl.tc_attach(idx, "ingress", cls_progs[0], prio=1, handle=1, name="ing")
    found = att.find_attachments([prog_id(cls_progs[0])], nl)
    assert [att.describe(a) for a in found] == ["tc ingress on ebpft-nl0 prio 1 handle 0x1"]


def test_finds_raw_tracepoint_link():
    if not hasattr(sc, "raw_tracepoint_open"):
        pytest.skip("bpf_syscall has no raw_tracepoint_open")
    with sc.prog_load(sc.BPF_PROG_TYPE_RAW_TRACEPOINT, bpf_insn.mov64_imm(0, 0) + bpf_insn.exit_insn(), "GPL",
                      "ebpft_rawtp") as prog:
        pid = prog_id(prog)
        with sc.raw_tracepoint_open("sys_enter", prog) as link:
            link_id = sc.link_info(link)["id"]
            found = att.find_attachments([pid])
            assert found == [{"kind": "link", "prog_id": pid, "link_id": link_id,
                              "link_type": "raw_tracepoint", "tp_name": "sys_enter"}]
            assert att.describe(found[0]) == "link %d (raw_tracepoint sys_enter)" % link_id
        assert att.find_attachments([pid]) == []


def test_xdp_link_is_found_and_detached_through_the_link(nl, idx, xdp_progs):
    pid = prog_id(xdp_progs[0])
    with sc.link_create(xdp_progs[0], idx, sc.BPF_XDP) as link:
        link_id = sc.link_info(link)["id"]
        found = att.find_attachments([pid], nl)
        assert [(a["kind"], a.get("link_id")) for a in found] == [("xdp", link_id), ("link", link_id)]
        assert att.describe(found[1]) == "link %d (xdp on ebpft-nl0)" % link_id
        assert att.detach(found[0], nl) is True
        assert nl.xdp_query(idx)["mode"] is None
        assert att.find_attachments([pid], nl) == []  # a detached link runs the program nowhere
        assert att.detach(found[1], nl) is True  # still open, detaching again is harmless
    assert att.detach(found[1], nl) is False  # gone


def test_detach_removes_only_what_was_found(nl, idx, xdp_progs, cls_progs):
    nl.xdp_set(idx, xdp_progs[0], "drv")
    nl.ensure_clsact(idx)
    nl.tc_attach(idx, "ingress", cls_progs[0], 1, 1, "ours")
    found = att.find_attachments([prog_id(xdp_progs[0]), prog_id(cls_progs[0])], nl)
    assert len(found) == 2
    # someone swaps the TC filter meanwhile: that one is not ours to detach
    nl.tc_attach(idx, "ingress", cls_progs[1], 1, 1, "theirs", replace=True)
    with pytest.raises(BpfError, match="not program %d; not detaching" % prog_id(cls_progs[0])) as info:
        att.detach(found[1], nl)
    assert info.value.errno == errno.EEXIST
    assert att.detach(found[0], nl) is True
    assert att.detach(found[0], nl) is False
    assert nl.xdp_query(idx)["mode"] is None
    assert [f["prog_id"] for f in nl.tc_filters(idx, "ingress")] == [prog_id(cls_progs[1])]


def test_describe_without_interface_name():
    assert att.describe({"kind": "link", "link_id": 5, "link_type": "tcx", "prog_id": 1,
                         "ifindex": 9, "attach_type_name": "tcx_egress"}) == "link 5 (tcx egress on ifindex 9)"
    assert att.describe({"kind": "xdp", "mode": "drv", "ifindex": 3, "interface": None,
                         "prog_id": 1}) == "xdp (drv) on ifindex 3"
    assert att.describe({"kind": "link", "link_id": 6, "link_type": "perf_event", "prog_id": 1, "perf_event_type_name": "kprobe",
                         "func_name": "x64_sys_call"}) == "link 6 (perf_event kprobe x64_sys_call)"
    assert att.describe({"kind": "link", "link_id": 7, "link_type": "perf_event", "prog_id": 1}) == "link 7 (perf_event)"


def test_links_of_other_network_namespaces(nl, veth, cls_progs):
    """Link info names an ifindex but no namespace: a TCX link on the peer's namespace is not
    attached here, unless the caller asks about every namespace."""
    with netns_entered(veth.peer_ns):
        with Netlink() as peer:
            peer_ifindex = peer.ifindex("ebpft-nl1")
        link = sc.link_create(cls_progs[0], peer_ifindex, sc.BPF_TCX_INGRESS)
    try:
        wanted = [prog_id(cls_progs[0])]
        assert att.find_attachments(wanted, nl) == []
        [found] = att.find_attachments(wanted, nl, other_namespaces=True)
        assert found["elsewhere"] and "interface" not in found
        assert att.describe(found) == "link %d (tcx ingress on ifindex %d of another network namespace)" % (
            found["link_id"], peer_ifindex)
        assert att.detach(found)
        assert att.find_attachments(wanted, nl, other_namespaces=True) == []
    finally:
        link.close()
