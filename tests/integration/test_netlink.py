"""Netlink (XDP, TC, interfaces) against the running kernel, inside private network namespaces.

Every test gets two fresh namespaces joined by a veth pair (ebpft-nl0 <-> ebpft-nl1) and runs
inside the first one (setns on this thread); both are deleted afterwards, which also drops any
XDP program or TC filter left on them.
"""
import errno

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import (
    ETH_P_ALL, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST, xdp_attach_attrs,
)
from netns import ip
from tiny_programs import INGRESS, prog_id


# ------------------------------------------------------------------------- interfaces

def test_interface_lookups(nl, idx, veth):
    assert nl.ifname(idx) == veth.ifname
    assert nl.link_is_up(idx)
    names = dict((name, index) for index, name in nl.interfaces())
    assert names == {"lo": 1, veth.ifname: idx}
    ip("link", "set", veth.ifname, "down")
    assert not nl.link_is_up(idx)


def test_missing_interface_is_a_clear_error(nl, xdp_progs, cls_progs):
    with pytest.raises(BpfError, match="interface ebpft-nl9 does not exist") as info:
        nl.ifindex("ebpft-nl9")
    assert info.value.errno == errno.ENODEV
    for call in (lambda: nl.xdp_query(4242), lambda: nl.xdp_set(4242, xdp_progs[0], "skb"),
                 lambda: nl.ensure_clsact(4242), lambda: nl.tc_filters(4242, "ingress"),
                 lambda: nl.tc_attach(4242, "ingress", cls_progs[0], 1, 1, "x")):
        with pytest.raises(BpfError, match="interface index 4242 does not exist"):
            call()


# ------------------------------------------------------------------------- XDP

@pytest.mark.parametrize("mode", ["drv", "skb"])
def test_xdp_set_query_clear(nl, idx, xdp_progs, mode):
    assert nl.xdp_query(idx) == {"mode": None, "prog_id": None, "drv_prog_id": None,
                                 "skb_prog_id": None, "hw_prog_id": None}
    nl.xdp_set(idx, xdp_progs[0], mode)
    state = nl.xdp_query(idx)
    assert state["mode"] == mode
    assert state["prog_id"] == state[mode + "_prog_id"] == prog_id(xdp_progs[0])
    listed = [s for s in nl.xdp_query_all() if s["ifindex"] == idx]
    assert listed[0]["interface"] == "ebpft-nl0" and listed[0]["mode"] == mode
    nl.xdp_clear(idx, mode, xdp_progs[0])
    assert nl.xdp_query(idx)["mode"] is None


def test_negotiated_mode_on_veth_falls_back_from_hw_to_drv(nl, idx, xdp_progs):
    with pytest.raises(BpfError) as info:
        nl.xdp_set(idx, xdp_progs[0], "hw")
    assert info.value.errno == errno.EINVAL
    assert nl.xdp_attach_negotiated(idx, xdp_progs[0]) == "drv"
    assert nl.xdp_query(idx)["drv_prog_id"] == prog_id(xdp_progs[0])


def test_noexist_refuses_a_second_program(nl, idx, xdp_progs):
    nl.xdp_set(idx, xdp_progs[0], "drv")
    first = prog_id(xdp_progs[0])
    with pytest.raises(BpfError, match="XDP program already attached") as info:
        nl.xdp_set(idx, xdp_progs[1], "drv")
    assert info.value.errno == errno.EBUSY
    assert "Attached there now: XDP program id %d (drv)" % first in str(info.value)
    with pytest.raises(BpfError) as info:  # hw is skipped, drv is busy: stop there
        nl.xdp_attach_negotiated(idx, xdp_progs[1])
    assert info.value.errno == errno.EBUSY
    with pytest.raises(BpfError, match="skb: Native and generic XDP"):  # other mode held
        nl.xdp_attach_negotiated(idx, xdp_progs[1], modes=("skb",))
    assert nl.xdp_query(idx)["prog_id"] == first


def test_atomic_replace_with_expected_fd(nl, idx, xdp_progs):
    a, b, c = xdp_progs
    nl.xdp_set(idx, a, "skb")
    nl.xdp_set(idx, b, "skb", expected_fd=a)
    assert nl.xdp_query(idx) == {"mode": "skb", "prog_id": prog_id(b), "skb_prog_id": prog_id(b),
                                 "drv_prog_id": None, "hw_prog_id": None}
    # hw and drv do not hold b: the replacement stays in skb mode
    assert nl.xdp_attach_negotiated(idx, c, expected_fd=b) == "skb"
    assert nl.xdp_query(idx)["skb_prog_id"] == prog_id(c)
    with pytest.raises(BpfError, match="Active program does not match expected") as info:
        nl.xdp_set(idx, a, "skb", expected_fd=b)
    assert info.value.errno == errno.EEXIST
    with pytest.raises(BpfError, match=r"attached now: id %d \(skb\)" % prog_id(c)):
        nl.xdp_attach_negotiated(idx, a, expected_fd=b)
    assert nl.xdp_query(idx)["skb_prog_id"] == prog_id(c)


def test_xdp_clear_refuses_a_wrong_expected_program(nl, idx, xdp_progs):
    a, b = xdp_progs[:2]
    nl.xdp_set(idx, a, "drv")
    with pytest.raises(BpfError, match="Active program does not match expected") as info:
        nl.xdp_clear(idx, "drv", b)
    assert info.value.errno == errno.EEXIST
    assert nl.xdp_query(idx)["drv_prog_id"] == prog_id(a)
    nl.xdp_clear(idx, None, a)  # mode found from the query
    assert nl.xdp_query(idx)["mode"] is None
    with pytest.raises(BpfError, match="no XDP program is attached to ebpft-nl0"):
        nl.xdp_clear(idx, None, a)


def test_xdp_flags_sent():
    # The add-only flag is what keeps a program that appears after the pre-check safe.
    assert xdp_attach_attrs(7, "drv", None, False) == [
        ("IFLA_XDP_FD", 7), ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST)]
    assert xdp_attach_attrs(7, "skb", 5, False) == [
        ("IFLA_XDP_FD", 7), ("IFLA_XDP_EXPECTED_FD", 5), ("IFLA_XDP_FLAGS", XDP_FLAGS_SKB_MODE | XDP_FLAGS_REPLACE)]
    assert xdp_attach_attrs(-1, "hw", None, True) == [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", XDP_FLAGS_HW_MODE)]


def test_unknown_xdp_mode(nl, idx, xdp_progs):
    with pytest.raises(BpfError, match="unknown XDP mode 'native'"):
        nl.xdp_set(idx, xdp_progs[0], "native")


# ------------------------------------------------------------------------- TC

@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_attach_lists_prog_id_and_tag(nl, idx, cls_progs, direction):
    assert nl.ensure_clsact(idx) is True
    assert nl.ensure_clsact(idx) is False
    assert nl.hook_qdiscs() == {idx: "clsact"}
    nl.tc_attach(idx, direction, cls_progs[0], prio=1, handle=1, name="ebpft_cls0")
    info = sc.prog_info(cls_progs[0])
    assert nl.tc_filters(idx, direction) == [{
        "kind": "bpf", "prio": 1, "handle": 1, "protocol": ETH_P_ALL, "prog_id": info["id"],
        "tag": info["tag"], "name": "ebpft_cls0", "direct_action": True}]
    other = "egress" if direction == "ingress" else "ingress"
    assert nl.tc_filters(idx, other) == []
    assert nl.tc_detach(idx, direction, 1, 1, expected_prog_id=info["id"]) is True
    assert nl.tc_filters(idx, direction) == []
    assert nl.clsact_remove_if_empty(idx) is True
    assert nl.hook_qdiscs() == {}


def test_tc_replace_at_same_prio_handle(nl, idx, cls_progs):
    a, b = cls_progs
    nl.ensure_clsact(idx)
    nl.tc_attach(idx, "ingress", a, prio=1, handle=1, name="a")
    with pytest.raises(BpfError, match="Filter already exists") as info:
        nl.tc_attach(idx, "ingress", b, prio=1, handle=1, name="b")
    assert info.value.errno == errno.EEXIST
    assert [f["prog_id"] for f in nl.tc_filters(idx, "ingress")] == [prog_id(a)]
    nl.tc_attach(idx, "ingress", b, prio=1, handle=1, name="b", replace=True)
    filters = nl.tc_filters(idx, "ingress")
    assert [(f["prio"], f["handle"], f["prog_id"], f["name"]) for f in filters] == [(1, 1, prog_id(b), "b")]


def test_foreign_filter_survives_and_keeps_clsact(nl, idx, cls_progs):
    ours, foreign = cls_progs
    nl.ensure_clsact(idx)
    nl.tc_attach(idx, "ingress", ours, prio=1, handle=1, name="ours")
    nl.ipr.tc("add-filter", "bpf", idx, handle=1, fd=foreign.fd, name="foreign", parent=INGRESS,
              prio=2, direct_action=True)
    with pytest.raises(BpfError, match="runs program %d, not program %d" % (prog_id(foreign), prog_id(ours))):
        nl.tc_detach(idx, "ingress", 2, 1, expected_prog_id=prog_id(ours))
    assert nl.tc_detach(idx, "ingress", 1, 1, expected_prog_id=prog_id(ours)) is True
    assert nl.tc_detach(idx, "ingress", 1, 1) is False  # already gone
    assert [(f["prio"], f["prog_id"]) for f in nl.tc_filters(idx, "ingress")] == [(2, prog_id(foreign))]
    assert nl.clsact_remove_if_empty(idx) is False
    assert nl.hook_qdiscs() == {idx: "clsact"}
    nl.ipr.tc("del-filter", "bpf", idx, handle=1, parent=INGRESS, prio=2)
    assert nl.clsact_remove_if_empty(idx) is True
    assert nl.clsact_remove_if_empty(idx) is False


def test_tc_refuses_bad_slots_and_missing_clsact(nl, idx, cls_progs):
    with pytest.raises(BpfError, match="handle 0 would mean every filter"):
        nl.tc_detach(idx, "ingress", 1, 0)
    with pytest.raises(BpfError, match="priority 65536 is out of range"):
        nl.tc_attach(idx, "ingress", cls_progs[0], 65536, 1, "x")
    with pytest.raises(BpfError, match="unknown TC direction 'up'"):
        nl.tc_filters(idx, "up")
    with pytest.raises(BpfError, match="no clsact qdisc"):
        nl.tc_attach(idx, "egress", cls_progs[0], 1, 1, "x")


def test_ingress_qdisc_is_not_taken_for_clsact(nl, idx):
    nl.ipr.tc("add", "ingress", idx)
    assert nl.ensure_clsact(idx, direction="ingress") is False
    with pytest.raises(BpfError, match="has an 'ingress' qdisc where a clsact qdisc is needed"):
        nl.ensure_clsact(idx)
    assert nl.hook_qdiscs() == {idx: "ingress"}
    assert nl.clsact_remove_if_empty(idx) is False  # not ours to remove
