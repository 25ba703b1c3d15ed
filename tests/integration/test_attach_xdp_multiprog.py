"""ebpf_attach's XDP multi-program options on this host, whose kernel has no BPF trampolines and
so cannot run libxdp's dispatcher (its components are freplace programs): the fallback and the
unchanged refusal. Joining a dispatcher is proven in the lab's Molecule default scenario."""
import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp_multi import check_settings
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libxdp
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink

pytestmark = pytest.mark.skipif(features.has_fentry(), reason="this kernel has BPF trampolines: the lab tests joining")


def held(ifname):
    with Netlink() as nl:
        state = nl.xdp_query(nl.ifindex(ifname))
    return state["mode"], state["prog_id"]


def test_auto_attaches_directly_and_says_why(attach, veth_pair):
    runs = [attach(check_mode=True, program="xdp_udp", interface=veth_pair.ifname, priority=10),
            attach(program="xdp_udp", interface=veth_pair.ifname, priority=10),
            attach(program="xdp_udp", interface=veth_pair.ifname, priority=10)]
    assert [r["changed"] for r in runs] == [True, True, False]
    assert held(veth_pair.ifname)[1] == attach.obj["ids"]["xdp_udp"]
    for res in runs:
        assert res["multiprog"]["used"] is False
        assert "freplace" in res["multiprog"]["reason"] or "libxdp" in res["multiprog"]["reason"]
        assert "multiprog" not in res["attachment"]
    assert attach(program="xdp_udp", interface=veth_pair.ifname, multiprog="never")["multiprog"] == \
        {"used": False, "reason": "multiprog: never"}


def test_always_fails_clearly_and_changes_nothing(attach, veth_pair):
    for check_mode in (True, False):
        with pytest.raises(AttachError, match=r"multiprog: always, but .*(freplace|libxdp).*Use multiprog: auto"):
            attach(check_mode=check_mode, program="xdp_udp", interface=veth_pair.ifname, multiprog="always")
    assert held(veth_pair.ifname) == (None, None)


def test_a_lone_foreign_program_is_still_refused(attach, veth_pair):
    with sc.prog_load(sc.BPF_PROG_TYPE_XDP, bpf_insn.mov64_imm(0, 2) + bpf_insn.exit_insn(), "GPL", "ebpft_foreign") as foreign:
        foreign_id = sc.prog_info(foreign)["id"]
        with Netlink() as nl:
            nl.xdp_set(nl.ifindex(veth_pair.ifname), foreign, "skb")
        if libxdp.available():  # libxdp sees a plain ("legacy") program, not a dispatcher
            with Netlink() as nl:
                assert libxdp.dispatcher(nl.ifindex(veth_pair.ifname)) == {"legacy": True, "prog_id": foreign_id, "mode": "skb"}
        for multiprog in ("auto", "never"):
            with pytest.raises(AttachError, match=r"ebpft_foreign\) is attached to ebpft-at0 in skb mode and was not attached"):
                attach(program="xdp_udp", interface=veth_pair.ifname, multiprog=multiprog)
        assert held(veth_pair.ifname) == ("skb", foreign_id)


@pytest.mark.parametrize("params, message", [
    ({"multiprog": "sometimes"}, "unknown multiprog"),
    ({"chain_call_actions": ["pass", "bounce"]}, "unknown XDP action"),
    ({"priority": -1}, "priority must be between"),
])
def test_settings_are_checked(params, message):
    with pytest.raises(AttachError, match=message):
        check_settings(params)


def test_settings_in_libxdp_order():
    assert check_settings({"chain_call_actions": ["redirect", "pass", "pass"]}) == ("auto", None, ["pass", "redirect"])
