"""ebpf_attach's XDP hook against the running kernel, inside private namespaces (ebpft-at-*)."""
import errno
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp import XdpHook
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from netns import UdpStream, ip

XDP_PASS = 2


def xdp_state(ifname):
    with Netlink() as nl:
        return nl.xdp_query(nl.ifindex(ifname))


def packets(attach_obj, slot):
    with sc.obj_get(attach_obj["pin_dir"] + "/maps/packets") as fd:
        return struct.unpack("<Q", sc.map_lookup(fd, struct.pack("<I", slot), 8))[0]


def four_runs(attach, **options):
    """check, real, check, real: the results."""
    return [attach(check_mode=True, **options), attach(**options), attach(check_mode=True, **options), attach(**options)]


@pytest.mark.parametrize("mode", ["drv", "skb"])
def test_attach_in_each_mode_then_detach(attach, veth_pair, mode):
    obj = attach.obj
    runs = four_runs(attach, program="xdp_udp", interface=veth_pair.ifname, mode=mode)
    assert [r["changed"] for r in runs] == [True, True, False, False]
    assert runs[0]["diff"] == {"before": {}, "after": {
        "hook": "xdp", "interface": "ebpft-at0", "ifindex": runs[1]["attachment"]["ifindex"], "mode": mode,
        "prog_id": obj["ids"]["xdp_udp"], "prog_name": "xdp_udp"}}
    assert runs[1]["attachment"] == runs[0]["diff"]["after"]
    assert runs[3]["diff"]["before"] == runs[3]["diff"]["after"] == runs[1]["attachment"]
    assert runs[1]["hook"] == "xdp" and runs[1]["action"] == "attach"
    state = xdp_state(veth_pair.ifname)
    assert (state["mode"], state["prog_id"]) == (mode, obj["ids"]["xdp_udp"])
    stream = UdpStream(veth_pair.peer_ns, veth_pair.ns, veth_pair.addr)
    assert stream.burst(50) == 50
    stream.stop()
    assert packets(obj, 0) == 50

    gone = four_runs(attach, program="xdp_udp", interface=veth_pair.ifname, state="absent")
    assert [r["changed"] for r in gone] == [True, True, False, False]
    assert gone[1]["action"] == "detach" and gone[1]["attachment"] == {}
    assert xdp_state(veth_pair.ifname)["mode"] is None


def test_check_mode_changes_nothing(attach, veth_pair):
    res = attach(check_mode=True, program="xdp_udp", interface=veth_pair.ifname)
    assert res["changed"] and res["attachment"]["mode"] is None  # auto: negotiated when attaching
    assert xdp_state(veth_pair.ifname)["mode"] is None


def test_auto_negotiates_down_from_hw(attach, veth_pair):
    res = attach(program="xdp_udp", interface=veth_pair.ifname, mode="auto")
    assert res["attachment"]["mode"] == "drv"  # hw needs an offload-bound program: EINVAL on veth


def test_strict_mode_fails_without_fallback_and_falls_back_when_asked(attach, veth_pair):
    with pytest.raises(BpfError, match="cannot attach XDP program to ebpft-at0 in hw mode") as info:
        attach(program="xdp_udp", interface=veth_pair.ifname, mode="hw")
    assert info.value.errno == errno.EINVAL
    assert xdp_state(veth_pair.ifname)["mode"] is None
    assert attach_events.counts(attach_events.events_path(attach.events_dir)) == {("ebpft-at0", "kernel_error"): 1}
    res = attach(program="xdp_udp", interface=veth_pair.ifname, mode="hw", mode_fallback=True)
    assert res["attachment"]["mode"] == "drv"


def test_upgrade_replaces_atomically_under_traffic(attach, veth_pair):
    obj = attach.obj
    attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")
    stream = UdpStream(veth_pair.peer_ns, veth_pair.ns, veth_pair.addr).start()
    try:
        stream.wait_received(200)
        v2 = obj["load"]("attach_v2")
        assert v2["changed"] and v2["ids"]["xdp_udp"] != obj["ids"]["xdp_udp"]
        check = attach(check_mode=True, program="xdp_udp", interface=veth_pair.ifname, mode="skb")
        assert check["changed"] and check["action"] == "replace"
        res = attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")
        stream.wait_received(stream.received + 200)
    finally:
        stream.stop()
    assert res["changed"] and res["action"] == "replace"
    assert res["diff"]["before"]["prog_id"] == obj["ids"]["xdp_udp"]
    assert res["attachment"]["prog_id"] == v2["ids"]["xdp_udp"]
    assert stream.sent == stream.received  # nothing lost
    old, new = packets(obj, 0), packets(obj, 1)
    assert old > 0 and new > 0
    assert old + new == stream.sent  # every packet seen by exactly one of the two programs
    assert not attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")["changed"]


def test_foreign_program_is_refused_then_replaced_with_force(attach, veth_pair):
    with sc.prog_load(sc.BPF_PROG_TYPE_XDP, bpf_insn.mov64_imm(0, XDP_PASS) + bpf_insn.exit_insn(), "GPL", "ebpft_foreign") as foreign:
        foreign_id = sc.prog_info(foreign)["id"]
        with Netlink() as nl:
            nl.xdp_set(nl.ifindex(veth_pair.ifname), foreign, "drv")
        with pytest.raises(AttachError, match=r"program id %d \(ebpft_foreign\) is attached to ebpft-at0 in drv mode "
                                              r"and was not attached by this collection.*force: true" % foreign_id):
            attach(program="xdp_udp", interface=veth_pair.ifname)
        assert xdp_state(veth_pair.ifname)["drv_prog_id"] == foreign_id
        # detaching ours leaves the foreign program alone
        res = attach(program="xdp_udp", interface=veth_pair.ifname, state="absent")
        assert not res["changed"] and res["attachment"]["prog_id"] == foreign_id
        res = attach(program="xdp_udp", interface=veth_pair.ifname, force=True)
        assert res["changed"] and res["action"] == "replace"
        assert res["diff"]["before"]["prog_id"] == foreign_id
        assert xdp_state(veth_pair.ifname)["drv_prog_id"] == attach.obj["ids"]["xdp_udp"]
    counts = attach_events.counts(attach_events.events_path(attach.events_dir))
    assert counts == {("ebpft-at0", "foreign_program"): 1}


def test_changing_mode_moves_the_program_with_a_warning(attach, veth_pair):
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
    attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")
    params = dict(name="att", program="xdp_udp", pin_root=attach.obj["pin_root"], interface=veth_pair.ifname, mode="drv",
                  events_dir=attach.events_dir)
    backend = AttachBackend(params)
    res = backend.run()
    assert res["action"] == "move" and res["attachment"]["mode"] == "drv"
    assert any("detached to attach in drv mode" in w for w in backend.warnings)


def test_missing_and_down_interfaces(attach, veth_pair):
    with pytest.raises(AttachError, match="interface ebpft-at9 does not exist") as info:
        attach(program="xdp_udp", interface="ebpft-at9")
    assert info.value.error_type == "interface_missing"
    assert not attach(program="xdp_udp", interface="ebpft-at9", state="absent")["changed"]
    ip("link", "set", veth_pair.ifname, "down")
    with pytest.raises(AttachError, match="is down and require_up is set"):
        attach(program="xdp_udp", interface=veth_pair.ifname, require_up=True)
    assert xdp_state(veth_pair.ifname)["mode"] is None
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
    backend = AttachBackend(dict(name="att", program="xdp_udp", pin_root=attach.obj["pin_root"], interface=veth_pair.ifname,
                                 events_dir=attach.events_dir))
    assert backend.run()["changed"]
    assert backend.warnings == ["interface ebpft-at0 is down: the program is attached and runs once it is up"]
    counts = attach_events.counts(attach_events.events_path(attach.events_dir))
    assert counts == {("ebpft-at9", "interface_missing"): 1, ("ebpft-at0", "interface_down"): 1}


def test_interface_vanishing_before_verification_is_reported(attach, veth_pair, monkeypatch):
    real_attach = XdpHook.attach

    def attach_then_vanish(self, state, action):
        real_attach(self, state, action)
        ip("link", "del", veth_pair.ifname)
    monkeypatch.setattr(XdpHook, "attach", attach_then_vanish)
    with pytest.raises(AttachError, match="interface ebpft-at0 vanished before the kernel could confirm") as info:
        attach(program="xdp_udp", interface=veth_pair.ifname)
    assert info.value.error_type == "interface_missing"


def test_bad_pin_and_interface_names_are_refused_before_anything(attach, veth_pair):
    """A pin outside bpffs is named as such (not as a permission problem), a name longer than
    IFNAMSIZ-1 as such (not as a netlink policy failure); both in check mode too and for absent."""
    for state in ("present", "absent"):
        for check_mode in (True, False):
            with pytest.raises(AttachError) as info:
                attach(check_mode=check_mode, name=None, pin="/etc/passwd", interface=veth_pair.ifname, state=state)
            text = str(info.value)
            assert "pin /etc/passwd is not on bpffs" in text and "0x%08x" % 0xcafe4a11 in text
            assert "EACCES" not in text and "EPERM" not in text and "CAP_" not in text
            assert info.value.error_type == "invalid_argument"
            with pytest.raises(AttachError) as info:
                attach(check_mode=check_mode, program="xdp_udp", interface="x" * 20, state=state)
            assert str(info.value).startswith("interface names are at most 15 characters; 'xxxxxxxxxxxxxxxxxxxx' has 20")
            assert "ERANGE" not in str(info.value)
    with pytest.raises(AttachError, match="is not a valid interface name"):
        attach(program="xdp_udp", interface="a/b")
    assert xdp_state(veth_pair.ifname)["mode"] is None
