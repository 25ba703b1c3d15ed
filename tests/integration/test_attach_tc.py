"""ebpf_attach's TC hook (TCX links and clsact filters over netlink) against the running
kernel, inside private namespaces (ebpft-at-*)."""
import os
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tc import (
    DEFAULT_PRIORITY, default_handle,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from netns import UdpStream

FOREIGN_PRIO = 1000
OURS_SLOT, OURS_V2_SLOT, FOREIGN_SLOT = 2, 3, 4


def packets(obj, slot):
    with sc.obj_get(obj["pin_dir"] + "/maps/packets") as fd:
        return struct.unpack("<Q", sc.map_lookup(fd, struct.pack("<I", slot), 8))[0]


def stream_for(veth, direction):
    """Traffic that crosses ebpft-at0's hook in ``direction``."""
    if direction == "ingress":
        return UdpStream(veth.peer_ns, veth.ns, veth.addr)
    return UdpStream(veth.ns, veth.peer_ns, veth.peer_addr)


def send(veth, direction, count=40):
    stream = stream_for(veth, direction)
    try:
        assert stream.burst(count) == count
    finally:
        stream.stop()


def filters(ifname, direction):
    with Netlink() as nl:
        return [(f["prio"], f["prog_id"]) for f in nl.tc_filters(nl.ifindex(ifname), direction)]


def qdiscs(ifname):
    with Netlink() as nl:
        return nl.hook_qdiscs().get(nl.ifindex(ifname))


def add_foreign(obj, ifname, direction, prio=FOREIGN_PRIO, handle=1):
    with Netlink() as nl, sc.obj_get(obj["pin_dir"] + "/progs/foreign_tc") as fd:
        idx = nl.ifindex(ifname)
        nl.ensure_clsact(idx)
        nl.tc_attach(idx, direction, fd, prio, handle, "foreign")


def four_runs(attach, **options):
    return [attach(check_mode=True, **options), attach(**options), attach(check_mode=True, **options), attach(**options)]


@pytest.mark.parametrize("api", ["netlink", "tcx"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_foreign_filter_keeps_seeing_every_packet(attach, veth_pair, direction, api):
    obj = attach.obj
    add_foreign(obj, veth_pair.ifname, direction)
    opts = dict(program="tc_udp", interface=veth_pair.ifname, direction=direction, tc_api=api)
    runs = four_runs(attach, **opts)
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (att["tc_api"], att["direction"], att["prog_id"]) == (api, direction, obj["ids"]["tc_udp"])
    if api == "netlink":
        assert (att["priority"], att["handle"]) == (DEFAULT_PRIORITY, default_handle("att/tc_udp"))
        assert filters(veth_pair.ifname, direction) == [(DEFAULT_PRIORITY, obj["ids"]["tc_udp"]),
                                                        (FOREIGN_PRIO, obj["ids"]["foreign_tc"])]
    else:
        assert att["link_pin"] == os.path.join(obj["pin_dir"], "links", "tc_udp-tc-ebpft-at0-" + direction)
        with sc.obj_get(att["link_pin"]) as link:
            assert sc.link_info(link)["id"] == att["link_id"]
        assert filters(veth_pair.ifname, direction) == [(FOREIGN_PRIO, obj["ids"]["foreign_tc"])]
    send(veth_pair, direction)
    assert (packets(obj, OURS_SLOT), packets(obj, FOREIGN_SLOT)) == (40, 40)

    gone = four_runs(attach, program="tc_udp", interface=veth_pair.ifname, direction=direction, state="absent")
    assert [r["changed"] for r in gone] == [True, True, False, False]
    assert filters(veth_pair.ifname, direction) == [(FOREIGN_PRIO, obj["ids"]["foreign_tc"])]
    assert qdiscs(veth_pair.ifname) == "clsact"  # it still holds the foreign filter
    assert not os.path.exists(os.path.join(obj["pin_dir"], "links", "tc_udp-tc-ebpft-at0-" + direction))
    send(veth_pair, direction)
    assert (packets(obj, OURS_SLOT), packets(obj, FOREIGN_SLOT)) == (40, 80)


def test_netlink_detach_removes_the_clsact_it_leaves_empty(attach, veth_pair):
    attach(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink")
    assert qdiscs(veth_pair.ifname) == "clsact"
    attach(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink", state="absent")
    assert qdiscs(veth_pair.ifname) is None


@pytest.mark.parametrize("api", ["netlink", "tcx"])
def test_upgrade_is_atomic_under_traffic(attach, veth_pair, api):
    obj = attach.obj
    first = attach(program="tc_udp", interface=veth_pair.ifname, tc_api=api)
    stream = stream_for(veth_pair, "ingress").start()
    try:
        assert stream.wait_received(200)
        v2 = obj["load"]("attach_v2")
        res = attach(program="tc_udp", interface=veth_pair.ifname, tc_api=api)
        assert stream.wait_received(stream.received + 200)
    finally:
        stream.stop()
    assert res["changed"] and res["action"] == "replace"
    assert res["attachment"]["prog_id"] == v2["ids"]["tc_udp"] != obj["ids"]["tc_udp"]
    if api == "tcx":
        assert res["attachment"]["link_id"] == first["attachment"]["link_id"]  # the link's program was swapped
    assert stream.sent == stream.received
    old, new = packets(obj, OURS_SLOT), packets(obj, OURS_V2_SLOT)
    assert old > 0 and new > 0 and old + new == stream.sent


def test_auto_prefers_tcx_keeps_what_is_there_and_moves_when_asked(attach, veth_pair):
    obj = attach.obj
    opts = dict(program="tc_udp", interface=veth_pair.ifname)
    assert attach(**opts)["attachment"]["tc_api"] == "tcx"
    moved = attach(tc_api="netlink", **opts)
    assert moved["action"] == "move" and moved["attachment"]["tc_api"] == "netlink"
    assert moved["diff"]["before"]["tc_api"] == "tcx"
    assert os.listdir(os.path.join(obj["pin_dir"], "links")) == []
    kept = attach(**opts)
    assert not kept["changed"] and kept["attachment"]["tc_api"] == "netlink"
    back = attach(tc_api="tcx", **opts)
    assert back["action"] == "move" and back["attachment"]["tc_api"] == "tcx"
    assert filters(veth_pair.ifname, "ingress") == []
    send(veth_pair, "ingress")
    assert packets(obj, OURS_SLOT) == 40  # attached once, not twice


def test_foreign_filter_in_our_slot_needs_force(attach, veth_pair):
    obj = attach.obj
    handle = default_handle("att/tc_udp")
    add_foreign(obj, veth_pair.ifname, "ingress", prio=DEFAULT_PRIORITY, handle=handle)
    opts = dict(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink")
    with pytest.raises(AttachError, match=r"\(foreign_tc\) holds TC ingress priority 256 handle %#x on ebpft-at0 and was not "
                                          r"attached by this collection" % handle) as info:
        attach(**opts)
    assert info.value.error_type == "foreign_program"
    assert filters(veth_pair.ifname, "ingress") == [(DEFAULT_PRIORITY, obj["ids"]["foreign_tc"])]
    assert not attach(state="absent", **opts)["changed"]  # not ours to remove
    res = attach(force=True, **opts)
    assert res["action"] == "replace" and res["diff"]["before"]["prog_id"] == obj["ids"]["foreign_tc"]
    assert filters(veth_pair.ifname, "ingress") == [(DEFAULT_PRIORITY, obj["ids"]["tc_udp"])]
    assert attach_events.counts(attach_events.events_path(attach.events_dir)) == {("ebpft-at0", "foreign_program"): 1}


def test_own_priority_and_handle(attach, veth_pair):
    res = attach(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink", priority=7, handle=0x42, direction="egress")
    assert (res["attachment"]["priority"], res["attachment"]["handle"]) == (7, 0x42)
    assert filters(veth_pair.ifname, "egress") == [(7, attach.obj["ids"]["tc_udp"])]


def test_wrong_program_type_changes_nothing(attach, veth_pair):
    with pytest.raises(AttachError, match="a xdp program cannot be attached to the tc hook. Use hook: xdp") as info:
        attach(program="xdp_udp", hook="tc", interface=veth_pair.ifname)
    assert info.value.error_type == "program_type_mismatch"
    assert qdiscs(veth_pair.ifname) is None


def test_without_tcx_auto_uses_netlink_and_tcx_is_refused(attach, veth_pair, monkeypatch):
    monkeypatch.setattr(features, "has_tcx", lambda: False)
    with pytest.raises(AttachError, match="TCX is not available on this kernel") as info:
        attach(program="tc_udp", interface=veth_pair.ifname, tc_api="tcx")
    assert info.value.error_type == "unsupported"
    assert attach(program="tc_udp", interface=veth_pair.ifname)["attachment"]["tc_api"] == "netlink"


def test_egress_on_an_ingress_qdisc_is_never_a_silent_no_op(attach, veth_pair):
    """An ``ingress`` qdisc (not clsact) has no egress hook, and the kernel files an egress
    filter request made of it under ingress: egress over netlink is refused naming the qdisc,
    tc_api auto uses a TCX link, and an egress detach leaves the ingress filter alone."""
    obj = attach.obj
    with Netlink() as nl:
        nl.ipr.tc("add", "ingress", nl.ifindex(veth_pair.ifname))
    ingress = attach(program="tc_udp", interface=veth_pair.ifname, direction="ingress", tc_api="netlink")
    assert ingress["changed"] and qdiscs(veth_pair.ifname) == "ingress"
    ours = [(DEFAULT_PRIORITY, obj["ids"]["tc_udp"])]
    assert filters(veth_pair.ifname, "ingress") == ours
    assert filters(veth_pair.ifname, "egress") == []
    egress = dict(program="tc_udp", interface=veth_pair.ifname, direction="egress")
    for check_mode in (True, False):
        with pytest.raises(AttachError) as info:
            attach(check_mode=check_mode, tc_api="netlink", **egress)
        assert "has an 'ingress' qdisc, which has no egress hook" in str(info.value)
        assert "tc_api: auto" in str(info.value) and "clsact" in str(info.value)
        for api in ("netlink", "auto"):
            assert not attach(check_mode=check_mode, tc_api=api, state="absent", **egress)["changed"]
    assert filters(veth_pair.ifname, "ingress") == ours

    runs = four_runs(attach, **egress)
    assert [r["changed"] for r in runs] == [True, True, False, False]
    assert runs[1]["attachment"]["tc_api"] == "tcx" and runs[1]["attachment"]["prog_id"] == obj["ids"]["tc_udp"]
    with sc.obj_get(runs[1]["attachment"]["link_pin"]) as link:
        assert sc.link_info(link)["attach_type"] == sc.BPF_TCX_EGRESS
    send(veth_pair, "egress")
    assert packets(obj, OURS_SLOT) == 40
    gone = four_runs(attach, state="absent", **egress)
    assert [r["changed"] for r in gone] == [True, True, False, False]
    assert filters(veth_pair.ifname, "ingress") == ours and qdiscs(veth_pair.ifname) == "ingress"
    send(veth_pair, "ingress")
    assert packets(obj, OURS_SLOT) == 80
