"""Touch only what is ours, on the running kernel: directories without the collection's load
record, pins another tool put in an object directory, pin roots another user can change, and
XDP/TC attachments of a program given by pin that another tool made."""
import os

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_converge import HostConverge
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from test_program_backend import tree

XDP_PASS = 2
NOBODY = 65534


def pin_foreign_map(path):
    """A map pinned by 'another tool' (what `bpftool map create PATH type array ...` does)."""
    bpffs.makedirs(os.path.dirname(path))
    with sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, 8, 4, name="foreign") as fd:
        sc.obj_pin(fd, path)


@pytest.fixture
def foreign_dir(pin_root):
    pin_foreign_map(os.path.join(pin_root, "foreign", "m1"))
    pin_foreign_map(os.path.join(pin_root, "foreign", "sub", "m2"))
    return os.path.join(pin_root, "foreign")


def test_a_directory_without_load_record_is_never_removed_or_loaded_into(pin_root, foreign_dir, bpf_objects):
    before = tree(pin_root)
    for force in (False, True):
        for check_mode in (True, False):
            with pytest.raises(BpfError, match=r"foreign has no load record of this collection \(it holds m1, sub/m2\)"):
                ProgramBackend("foreign", pin_root, check_mode=check_mode).absent(force=force)
    with pytest.raises(BpfError, match="has no load record"):
        ProgramBackend("foreign", pin_root).present(bpf_objects["base"])
    assert tree(pin_root) == before


def test_every_absent_leaves_foreign_pins_alone(pin_root, foreign_dir, tmp_path):
    ProgramBackend("ours", pin_root)  # nothing loaded: a no-op
    before = tree(pin_root)
    res = AttachBackend(dict(name="foreign", program="m1", pin_root=pin_root, hook="xdp", interface="lo", state="absent",
                             events_dir=str(tmp_path))).run()
    assert not res["changed"]
    with pytest.raises(BpfError):
        TcRulesBackend("foreign", pin_root)  # holds no rules map of ours: refused, nothing written
    engine = HostConverge({"objects": [], "loads": [], "tc_rules": [], "attachments": []}, pin_root, str(tmp_path),
                          prune=True, on_failure="continue")
    res = engine.run()
    assert not res["changed"] and not res["failed"]
    assert tree(pin_root) == before


def test_info_lists_foreign_directories_apart(pin_root, foreign_dir, attach_obj):
    res = InfoBackend(pin_root, gather=("objects",)).run()
    assert [o["name"] for o in res["objects"]] == ["att"]
    assert res["foreign"] == [{"name": "foreign", "path": foreign_dir, "pins": ["m1", "sub/m2"]}]


def test_pins_the_record_does_not_name_stop_an_unload(pin_root, attach_obj):
    stray = os.path.join(attach_obj["pin_dir"], "maps", "stray")
    pin_foreign_map(stray)
    with pytest.raises(BpfError, match=r"att holds pins its load record does not name \(it holds maps/stray\)"):
        ProgramBackend("att", pin_root).absent(force=True)
    assert os.path.exists(stray) and os.path.exists(os.path.join(attach_obj["pin_dir"], "state"))
    bpffs.unlink(stray)
    assert ProgramBackend("att", pin_root).absent(force=True)["changed"]
    assert not os.path.exists(attach_obj["pin_dir"])


def test_a_pin_root_inside_an_object_is_refused(pin_root, attach_obj):
    before = tree(pin_root)
    for name in ("maps", "progs"):
        with pytest.raises(BpfError, match=r"lies inside .*/att, the directory of another object"):
            ProgramBackend(name, attach_obj["pin_dir"]).absent(force=True)
    assert tree(pin_root) == before


@pytest.mark.parametrize("how", ["owner", "mode"])
def test_directories_another_user_can_change_are_refused(pin_root, bpf_objects, how):
    bpffs.makedirs(pin_root)
    if how == "owner":
        os.chown(pin_root, NOBODY, NOBODY)
    else:
        os.chmod(pin_root, 0o777)
    with pytest.raises(BpfError, match=r"%s belongs to %s with mode .*another user could rename" % (
            pin_root, "user %d" % NOBODY if how == "owner" else "this user")):
        ProgramBackend("obj", pin_root).present(bpf_objects["base"])
    assert tree(pin_root) == []


def test_directories_the_collection_makes_are_private(pin_root, attach_obj):
    for path in (pin_root, attach_obj["pin_dir"], os.path.join(attach_obj["pin_dir"], "progs")):
        st = os.stat(path)
        assert (st.st_uid, st.st_mode & 0o077) == (os.geteuid(), 0)


# ------------------------------------------------------------------------- detach only ours

@pytest.fixture
def pinned_elsewhere(pin_root):
    """An XDP program and a TC program loaded and pinned by 'another tool' outside any object."""
    bpffs.makedirs(os.path.join(pin_root, "tool"))
    pins = {}
    for kind, prog_type, ret in (("xdp", sc.BPF_PROG_TYPE_XDP, XDP_PASS), ("tc", sc.BPF_PROG_TYPE_SCHED_CLS, -1)):
        with sc.prog_load(prog_type, bpf_insn.mov64_imm(0, ret) + bpf_insn.exit_insn(), "GPL", "ebpft_" + kind) as fd:
            pins[kind] = os.path.join(pin_root, "tool", kind)
            sc.obj_pin(fd, pins[kind])
            pins[kind + "_id"] = sc.prog_info(fd)["id"]
    return pins


def _by_pin(pin_root, pin, tmp_path, **options):
    params = dict(pin=pin, pin_root=pin_root, events_dir=str(tmp_path))
    params.update(options)
    backend = AttachBackend(params)
    return backend, backend.run()


def _xdp_prog(ifname):
    with Netlink() as nl:
        return nl.xdp_query(nl.ifindex(ifname))["drv_prog_id"]


def test_detach_by_pin_refuses_what_another_tool_attached(pin_root, pinned_elsewhere, veth_pair, tmp_path):
    ifname = veth_pair.ifname
    with Netlink() as nl, sc.obj_get(pinned_elsewhere["xdp"]) as fd:
        nl.xdp_set(nl.ifindex(ifname), fd, "drv")  # `ip link set dev X xdpdrv pinned PIN`
    for check_mode in (True, False):
        with pytest.raises(AttachError, match=r"program id %d \(ebpft_xdp\) \(%s\) was not attached by this collection: "
                                              r"the xdp hook on %s.*force: true" % (pinned_elsewhere["xdp_id"], pinned_elsewhere["xdp"], ifname)):
            AttachBackend(dict(pin=pinned_elsewhere["xdp"], pin_root=pin_root, interface=ifname, state="absent",
                               events_dir=str(tmp_path)), check_mode=check_mode).run()
    assert _xdp_prog(ifname) == pinned_elsewhere["xdp_id"]
    backend, res = _by_pin(pin_root, pinned_elsewhere["xdp"], tmp_path, interface=ifname, state="absent", force=True)
    assert res["changed"] and any("did not attach (force)" in w for w in backend.warnings)
    assert not _xdp_prog(ifname)


@pytest.mark.parametrize("kind", ["xdp", "tc"])
def test_detach_by_pin_removes_what_the_collection_attached(pin_root, pinned_elsewhere, veth_pair, tmp_path, kind):
    opts = dict(interface=veth_pair.ifname, tc_api="netlink") if kind == "tc" else dict(interface=veth_pair.ifname)
    _backend, res = _by_pin(pin_root, pinned_elsewhere[kind], tmp_path, **opts)
    assert res["changed"] and res["attachment"]["prog_id"] == pinned_elsewhere[kind + "_id"]
    _backend, res = _by_pin(pin_root, pinned_elsewhere[kind], tmp_path, state="absent", **opts)
    assert res["changed"] and res["attachment"] == {}
    assert not os.path.exists(os.path.join(pin_root, "-pin-attachments"))  # nothing left to remember


def test_tc_filter_another_tool_made_of_a_pinned_program_is_refused(pin_root, pinned_elsewhere, veth_pair, tmp_path):
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tc import DEFAULT_PRIORITY, default_handle
    ifname = veth_pair.ifname
    with Netlink() as nl, sc.obj_get(pinned_elsewhere["tc"]) as fd:
        idx = nl.ifindex(ifname)
        nl.ensure_clsact(idx, "ingress")
        nl.tc_attach(idx, "ingress", fd, DEFAULT_PRIORITY, default_handle(pinned_elsewhere["tc"]), "tool")
    with pytest.raises(AttachError, match=r"was not attached by this collection: the tc hook on %s ingress" % ifname):
        _by_pin(pin_root, pinned_elsewhere["tc"], tmp_path, interface=ifname, tc_api="netlink", state="absent")
    with Netlink() as nl:
        assert [f["prog_id"] for f in nl.tc_filters(nl.ifindex(ifname), "ingress")] == [pinned_elsewhere["tc_id"]]
