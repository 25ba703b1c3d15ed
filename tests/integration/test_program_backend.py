"""ProgramBackend against the running kernel: load, no-op, upgrade, map reuse, unload, bad input."""
import os
import struct
import subprocess
import sys
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend

TEST_PROG_NAMES = {"count_xdp", "count_tc", "count_sys_enter"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def loaded_test_programs():
    """Ids of loaded programs of the test object (to prove nothing leaks)."""
    ids = set()
    for prog_id in sc.prog_ids():
        try:
            with sc.prog_fd_by_id(prog_id) as fd:
                if sc.prog_info(fd.fd)["name"] in TEST_PROG_NAMES:
                    ids.add(prog_id)
        except BpfError:
            continue
    return ids


def new_test_programs(before):
    """Programs of the test object loaded since `before` was taken.

    Only new ids count: a program an earlier test unpinned may still be
    in the kernel's deferred free when `before` is taken and gone after."""
    return loaded_test_programs() - before


def tree(root):
    """Every path below root (pins and directories)."""
    found = []
    for top, dirs, files in os.walk(root):
        found.extend(os.path.join(top, n) for n in dirs + files)
    return sorted(found)


def load(pin_root, src, check_mode=False, name="obj", **kw):
    return ProgramBackend(name, pin_root, check_mode=check_mode).present(src, **kw)


def ids(result, kind="programs"):
    return dict((p["name"], p["id"]) for p in result[kind])


def test_first_load_pins_programs_and_maps(pin_root, bpf_objects):
    res = load(pin_root, bpf_objects["base"])
    assert res["changed"]
    assert sorted(ids(res)) == ["count_sys_enter", "count_tc", "count_xdp"]
    assert sorted(ids(res, "maps")) == ["calls_by_tgid", "packets", "settings"]
    types = dict((p["name"], p["type"]) for p in res["programs"])
    assert types == {"count_xdp": "xdp", "count_tc": "sched_cls", "count_sys_enter": "raw_tracepoint"}
    for prog in res["programs"]:
        assert len(prog["tag"]) == 16
        with sc.obj_get(prog["pin"]) as fd:
            assert sc.prog_info(fd.fd)["id"] == prog["id"]
    packets = [m for m in res["maps"] if m["name"] == "packets"][0]
    assert (packets["type"], packets["key_size"], packets["value_size"], packets["max_entries"]) == (
        "percpu_array", 4, 8, 4)
    assert pin_state.read(res["pin_dir"])["programs_ids"] == ids(res)


def test_second_load_is_a_no_op(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    second = load(pin_root, bpf_objects["base"])
    assert not second["changed"]
    assert ids(second) == ids(first)
    assert ids(second, "maps") == ids(first, "maps")


def test_check_mode_changes_nothing(pin_root, bpf_objects):
    before = loaded_test_programs()
    res = load(pin_root, bpf_objects["base"], check_mode=True)
    assert res["changed"]
    assert [p["id"] for p in res["programs"]] == [None, None, None]
    assert not os.path.exists(pin_root) or tree(pin_root) == []
    assert not new_test_programs(before)


def test_check_mode_after_load_reports_no_change(pin_root, bpf_objects):
    load(pin_root, bpf_objects["base"])
    snapshot = tree(pin_root)
    assert not load(pin_root, bpf_objects["base"], check_mode=True)["changed"]
    assert not load(pin_root, bpf_objects["rebuilt"], check_mode=True)["changed"]
    assert load(pin_root, bpf_objects["changed"], check_mode=True)["changed"]
    assert tree(pin_root) == snapshot


def test_rebuilt_identical_object_keeps_programs(pin_root, bpf_objects):
    with open(bpf_objects["base"], "rb") as a, open(bpf_objects["rebuilt"], "rb") as b:
        assert a.read() != b.read()
    first = load(pin_root, bpf_objects["base"])
    again = load(pin_root, bpf_objects["rebuilt"])
    assert not again["changed"]
    assert ids(again) == ids(first)
    # the record now names the rebuilt file: the next run takes the fast path
    assert not load(pin_root, bpf_objects["rebuilt"])["changed"]


def test_upgrade_replaces_programs_and_keeps_map_contents(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    pin = [m for m in first["maps"] if m["name"] == "calls_by_tgid"][0]["pin"]
    with sc.obj_get(pin) as fd:
        sc.map_update(fd.fd, struct.pack("<I", 4242), struct.pack("<Q", 7))
    upgraded = load(pin_root, bpf_objects["changed"])
    assert upgraded["changed"]
    assert ids(upgraded)["count_xdp"] != ids(first)["count_xdp"]
    assert ids(upgraded, "maps") == ids(first, "maps")
    with sc.obj_get(pin) as fd:
        assert sc.map_lookup(fd.fd, struct.pack("<I", 4242), 8) == struct.pack("<Q", 7)
    assert not load(pin_root, bpf_objects["changed"])["changed"]


def test_read_only_data_change_is_an_upgrade(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    res = load(pin_root, bpf_objects["rodata"])
    assert res["changed"]
    assert ids(res)["count_sys_enter"] != ids(first)["count_sys_enter"]


def test_program_subset_and_growing_it(pin_root, bpf_objects):
    res = load(pin_root, bpf_objects["base"], programs=["count_xdp"])
    assert list(ids(res)) == ["count_xdp"]
    assert sorted(os.listdir(os.path.join(res["pin_dir"], "progs"))) == ["count_xdp"]
    assert not load(pin_root, bpf_objects["base"], programs=["count_xdp"])["changed"]
    res = load(pin_root, bpf_objects["base"])
    assert res["changed"] and len(res["programs"]) == 3
    res = load(pin_root, bpf_objects["base"], programs=["count_tc"])
    assert res["changed"] and list(ids(res)) == ["count_tc"]


def test_pinned_program_removed_by_hand_is_restored(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    os.unlink(first["programs"][0]["pin"])
    res = load(pin_root, bpf_objects["base"])
    assert res["changed"]
    assert os.path.exists(first["programs"][0]["pin"])


def test_absent_unpins_everything(pin_root, bpf_objects):
    res = load(pin_root, bpf_objects["base"])
    gone = ProgramBackend("obj", pin_root).absent()
    assert gone["changed"] and gone["programs"] == [] and gone["maps"] == []
    assert not os.path.exists(res["pin_dir"])
    assert not ProgramBackend("obj", pin_root).absent()["changed"]


def test_absent_check_mode_keeps_everything(pin_root, bpf_objects):
    load(pin_root, bpf_objects["base"])
    snapshot = tree(pin_root)
    assert ProgramBackend("obj", pin_root, check_mode=True).absent()["changed"]
    assert tree(pin_root) == snapshot


def test_absent_refuses_while_linked_and_force_detaches(pin_root, bpf_objects):
    res = load(pin_root, bpf_objects["base"])
    prog = [p for p in res["programs"] if p["name"] == "count_sys_enter"][0]
    links_dir = os.path.join(res["pin_dir"], "links")
    os.mkdir(links_dir)
    with sc.obj_get(prog["pin"]) as fd, sc.raw_tracepoint_open("sys_enter", fd.fd) as link:
        link_id = sc.link_info(link.fd)["id"]
        sc.obj_pin(link.fd, os.path.join(links_dir, "count_sys_enter"))
    with pytest.raises(BpfError) as err:
        ProgramBackend("obj", pin_root).absent()
    assert "still attached" in str(err.value) and "sys_enter" in str(err.value)
    assert os.path.exists(prog["pin"])
    gone = ProgramBackend("obj", pin_root).absent(force=True)
    assert gone["changed"] and len(gone["detached"]) == 1
    deadline = time.monotonic() + 3  # an unpinned link's last reference is put by a kernel worker
    while link_id in set(sc.link_ids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert link_id not in set(sc.link_ids())
    assert not os.path.exists(res["pin_dir"])


# -- bad input: a clear message, and the host exactly as before -------------------------------

@pytest.mark.parametrize("variant, message", [
    ("not_elf", "is not an ELF object file"),
    ("not_bpf", "not for BPF"),
    ("no_programs", "holds no BPF program"),
])
def test_bad_object_files(pin_root, bpf_objects, variant, message):
    before = loaded_test_programs()
    with pytest.raises(BpfError) as err:
        load(pin_root, bpf_objects[variant])
    assert message in str(err.value)
    assert not os.path.exists(pin_root)
    assert not new_test_programs(before)


def test_missing_file(pin_root):
    with pytest.raises(BpfError) as err:
        load(pin_root, "/nonexistent/x.bpf.o")
    assert "does not exist" in str(err.value)


def test_verifier_rejection_carries_the_log_and_leaves_nothing(pin_root, bpf_objects):
    before = loaded_test_programs()
    with pytest.raises(BpfError) as err:
        load(pin_root, bpf_objects["reject"])
    assert "verifier rejected" in str(err.value)
    assert "outside of the packet" in err.value.log
    assert "count_xdp" in str(err.value)
    assert tree(pin_root) == [] if os.path.exists(pin_root) else True
    assert not new_test_programs(before)


def test_verifier_rejection_of_an_upgrade_keeps_the_old_load(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    snapshot = tree(pin_root)
    with pytest.raises(BpfError):
        load(pin_root, bpf_objects["reject"])
    with pytest.raises(BpfError):
        load(pin_root, bpf_objects["reject"], check_mode=True)
    assert tree(pin_root) == snapshot
    assert not load(pin_root, bpf_objects["base"])["changed"]
    assert ids(load(pin_root, bpf_objects["base"])) == ids(first)


def test_unknown_program(pin_root, bpf_objects):
    with pytest.raises(BpfError) as err:
        load(pin_root, bpf_objects["base"], programs=["count_xdp", "nope"])
    assert "nope not found" in str(err.value) and "count_tc" in str(err.value)
    assert not os.path.exists(pin_root)


def test_map_definition_conflict_and_replace_maps(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    snapshot = tree(pin_root)
    with pytest.raises(BpfError) as err:
        load(pin_root, bpf_objects["conflict"])
    text = str(err.value)
    assert "calls_by_tgid" in text and "1024" in text and "2048" in text and "replace_maps" in text
    assert tree(pin_root) == snapshot
    res = load(pin_root, bpf_objects["conflict"], replace_maps=True)
    assert res["changed"]
    new_maps = ids(res, "maps")
    assert new_maps["calls_by_tgid"] != ids(first, "maps")["calls_by_tgid"]
    assert new_maps["packets"] == ids(first, "maps")["packets"]
    assert not load(pin_root, bpf_objects["conflict"])["changed"]


def test_a_map_the_object_no_longer_defines_is_not_dropped_silently(pin_root, bpf_objects):
    first = load(pin_root, bpf_objects["base"])
    snapshot = tree(pin_root)
    with pytest.raises(BpfError) as err:
        load(pin_root, bpf_objects["dropped"])
    assert "map settings is pinned but the object no longer defines it" in str(err.value)
    assert "replace_maps" in str(err.value)
    assert tree(pin_root) == snapshot
    res = load(pin_root, bpf_objects["dropped"], replace_maps=True)
    assert res["changed"] and sorted(ids(res, "maps")) == ["calls_by_tgid", "packets"]
    assert ids(res, "maps")["packets"] == ids(first, "maps")["packets"]
    assert not load(pin_root, bpf_objects["dropped"])["changed"]


@pytest.mark.parametrize("name", ["a/b", "..", "../escape", ".hidden", "", "x" * 200, "a.b"])
def test_bad_names(pin_root, name):
    with pytest.raises(BpfError) as err:
        ProgramBackend(name, pin_root)
    assert "invalid name" in str(err.value)
    assert "at most 128 characters" in str(err.value) and "refuses '.'" in str(err.value)


def test_longest_name_is_128_characters(pin_root, bpf_objects):
    assert load(pin_root, bpf_objects["base"], name="n" * 128)["changed"]
    with pytest.raises(BpfError):
        ProgramBackend("n" * 129, pin_root)


def test_empty_program_list_is_an_error(pin_root, bpf_objects):
    for check_mode in (True, False):
        with pytest.raises(BpfError) as err:
            ProgramBackend("obj", pin_root, check_mode=check_mode).present(bpf_objects["base"], programs=[])
        assert str(err.value) == "programs must name at least one program; omit it to load all"
        assert not os.path.exists(pin_root)


def test_pin_root_outside_bpffs(tmp_path, bpf_objects):
    with pytest.raises(BpfError) as err:
        load(str(tmp_path / "pins"), bpf_objects["base"])
    assert "not on bpffs" in str(err.value)
    assert not (tmp_path / "pins").exists()


def _run_isolated(code, prefix=()):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "build", "collections"))
    return subprocess.run(list(prefix) + [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


_TRY_LOAD = (
    "from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend\n"
    "from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError\n"
    "try:\n"
    "    ProgramBackend('obj', '/sys/fs/bpf/ebpfo_isolated').present(%r)\n"
    "except BpfError as e:\n"
    "    print(e)\n")


def test_bpffs_not_mounted(bpf_objects):
    """In a private mount namespace without bpffs."""
    code = ("import ctypes\n"
            "assert ctypes.CDLL(None, use_errno=True).umount2(b'/sys/fs/bpf', 2) == 0\n"
            + _TRY_LOAD % bpf_objects["base"])
    out = _run_isolated(code, ["unshare", "--mount", "--propagation", "private"])
    assert "bpffs is not mounted at /sys/fs/bpf" in out.stdout, out.stderr
    assert "mount -t bpf bpf /sys/fs/bpf" in out.stdout


def test_without_bpf_capabilities(bpf_objects):
    out = _run_isolated(_TRY_LOAD % bpf_objects["base"],
                        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
    assert "lacks CAP_BPF" in out.stdout, out.stderr


def test_libbpf_missing(monkeypatch):
    monkeypatch.setattr(libbpf, "_lib", None)
    monkeypatch.setattr(libbpf, "LIBBPF_SONAME", "libbpf.so.999")
    with pytest.raises(BpfError) as err:
        libbpf.lib()
    assert "libbpf.so.999 was not found" in str(err.value) and "apt-get install libbpf1" in str(err.value)
