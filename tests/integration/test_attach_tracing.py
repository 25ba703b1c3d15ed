"""ebpf_attach's tracing hooks against the running kernel: tracepoints, raw tracepoints and
uprobes through pinned bpf_links; kprobes where the kernel has none."""
import json
import os
import struct
import subprocess
import sys
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError, link_alive
from bpf_objects import REPO, build_program

COLLECTIONS = os.path.join(REPO, "build", "collections")
MODULE = "ansible_collections.ebpf.observability.plugins.modules.ebpf_attach"
GETPID = dict(program="tp_getpid", hook="tracepoint", target="syscalls/sys_enter_getpid")
RAW_GETPID = dict(program="raw_getpid", hook="raw_tracepoint", target="sys_enter")


def calls(obj, pid):
    with sc.obj_get(obj["pin_dir"] + "/maps/calls_by_tgid") as fd:
        raw = sc.map_lookup(fd, struct.pack("<I", pid), 8)
    return struct.unpack("<Q", raw)[0] if raw else 0


def getpid_delta(obj, n=100):
    before = calls(obj, os.getpid())
    for _call in range(n):
        os.getpid()
    return calls(obj, os.getpid()) - before


def run_module(tmp_path, **args):
    """Run ebpf_attach as Ansible would (its own process) and return its JSON result."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    out = subprocess.run([sys.executable, "-m", MODULE, str(path)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False)
    return json.loads(out.stdout)


def four_runs(attach, **options):
    return [attach(check_mode=True, **options), attach(**options), attach(check_mode=True, **options), attach(**options)]


@pytest.mark.parametrize("options", [GETPID, RAW_GETPID], ids=["tracepoint", "raw_tracepoint"])
def test_link_outlives_the_module_process_and_detaches(attach, tmp_path, options):
    obj = attach.obj
    res = run_module(tmp_path, name="att", pin_root=obj["pin_root"], events_dir=attach.events_dir, **options)
    assert res["changed"] and not res.get("failed"), res
    link = res["attachment"]
    assert os.path.dirname(link["link_pin"]) == os.path.join(obj["pin_dir"], "links")
    assert os.path.basename(link["link_pin"]).startswith("%s-%s-" % (options["program"], options["hook"]))
    assert link["prog_id"] == obj["ids"][options["program"]] and link_alive(link["link_id"])
    assert getpid_delta(obj) >= 100  # the module's process is gone; the pinned link counts on

    again = four_runs(attach, **options)
    assert [r["changed"] for r in again] == [False, False, False, False]
    assert again[3]["attachment"] == link

    gone = four_runs(attach, state="absent", **options)
    assert [r["changed"] for r in gone] == [True, True, False, False]
    assert gone[1]["diff"] == {"before": link, "after": {}}
    assert not os.path.exists(link["link_pin"]) and not link_alive(link["link_id"])
    # the kernel drops the link's id a moment before it detaches the program (the last reference
    # of an unpinned link goes in a deferred release): the counts stop within that moment
    deadline = time.monotonic() + 2
    while getpid_delta(obj) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert getpid_delta(obj) == 0


@pytest.mark.parametrize("options", [GETPID, RAW_GETPID], ids=["tracepoint", "raw_tracepoint"])
def test_upgrade_pins_a_new_link_over_the_old_one(attach, options):
    obj = attach.obj
    first = attach(**options)["attachment"]
    v2 = obj["load"]("attach_v2")
    check = attach(check_mode=True, **options)
    assert check["action"] == "replace" and check["attachment"]["prog_id"] == v2["ids"][options["program"]]
    assert link_alive(first["link_id"])
    res = attach(**options)
    assert res["action"] == "replace" and res["attachment"]["prog_id"] == v2["ids"][options["program"]]
    assert res["attachment"]["link_pin"] == first["link_pin"] and res["attachment"]["link_id"] != first["link_id"]
    assert not link_alive(first["link_id"])
    assert getpid_delta(obj, 50) >= 100  # version 2 adds 2 per call
    assert not attach(**options)["changed"]


def test_hook_and_target_from_the_section_name(attach):
    obj = attach.obj
    record = pin_state.read(obj["pin_dir"])
    assert record["sections"]["tp_getpid"] == "tracepoint/syscalls/sys_enter_getpid"
    res = attach(program="tp_getpid")
    assert (res["hook"], res["attachment"]["target"]) == ("tracepoint", "syscalls/sys_enter_getpid")
    res = attach(program="raw_getpid")
    assert (res["hook"], res["attachment"]["target"]) == ("raw_tracepoint", "sys_enter")
    assert getpid_delta(obj) >= 200


def test_without_sections_the_type_gives_the_hook_only(attach):
    obj = attach.obj
    record = pin_state.read(obj["pin_dir"])
    pin_state.write(obj["pin_dir"], dict((k, v) for k, v in record.items() if k != "sections"))
    with pytest.raises(AttachError, match="hook tracepoint needs a target"):
        attach(program="tp_getpid")


def test_kprobes_missing_is_said_plainly(attach):
    if features.has_kprobes():
        pytest.skip("this kernel has kprobes")
    for hook in ("kprobe", "kretprobe"):
        for check_mode in (True, False):
            with pytest.raises(AttachError, match="^kprobes are not available on this kernel; use a tracepoint") as info:
                attach(check_mode=check_mode, program="kprobe_sleep", hook=hook, target="do_nanosleep")
            assert info.value.error_type == "kprobes_unavailable"
    assert not os.path.exists(os.path.join(attach.obj["pin_dir"], "links"))
    with pytest.raises(AttachError, match="^kprobes are not available on this kernel"):
        attach(program="kprobe_sleep")  # hook and target from the section name: kprobe/do_nanosleep
    counts = attach_events.counts(attach_events.events_path(attach.events_dir))
    assert counts == {("", "kprobes_unavailable"): 3}


@pytest.mark.parametrize("options, message, error_type", [
    (dict(program="tp_getpid", hook="tracepoint", target="syscalls/sys_enter_nope"),
     "this kernel has no tracepoint syscalls/sys_enter_nope", "unknown_target"),
    (dict(program="tp_getpid", hook="tracepoint", target="sys_enter_getpid"), "invalid tracepoint target", "invalid_argument"),
    (dict(program="raw_getpid", hook="raw_tracepoint", target="no_such_tracepoint"),
     "this kernel has no raw tracepoint no_such_tracepoint", "unknown_target"),
    (dict(program="tp_getpid", hook="raw_tracepoint", target="sys_enter"),
     "a tracepoint program cannot be attached to the raw_tracepoint hook. Use hook: tracepoint", "program_type_mismatch"),
    (dict(program="tp_getpid", hook="tracepoint", target="syscalls/sys_enter_getpid", interface="lo"),
     "interface applies to the xdp and tc hooks only", "invalid_argument"),
    (dict(program="nope", hook="tracepoint", target="syscalls/sys_enter_getpid"),
     "program nope is not pinned at .*/att/progs/nope .*The object holds: foreign_tc, kprobe_sleep", "program_missing"),
    (dict(name="nothing", program="x", hook="raw_tracepoint", target="sys_enter"),
     "no BPF object named nothing is loaded", "program_missing"),
    (dict(program="uprobe_target", hook="uprobe", target="/nonexistent/bin:main"),
     "uprobe target file /nonexistent/bin does not exist", "unknown_target"),
    (dict(program="uprobe_target", hook="uprobe", target="/bin/true:ebpft_no_such_function"),
     "/bin/true defines no function ebpft_no_such_function", "unknown_target"),
    (dict(program="uprobe_target", hook="uprobe", target="relative/path:main"), "invalid uprobe target", "invalid_argument"),
])
def test_bad_input_fails_clearly_and_changes_nothing(attach, options, message, error_type):
    links = os.path.join(attach.obj["pin_dir"], "links")
    for check_mode in (True, False):
        with pytest.raises(AttachError, match=message) as info:
            attach(check_mode=check_mode, **options)
        assert info.value.error_type == error_type
    assert not os.path.exists(links) or os.listdir(links) == []
    assert attach_events.counts(attach_events.events_path(attach.events_dir)) == {("", error_type): 1}


@pytest.fixture(scope="module")
def uprobe_binary():
    return build_program("uprobe_target.c", "uprobe_target")


@pytest.mark.parametrize("hook", ["uprobe", "uretprobe"])
def test_uprobe_counts_calls_of_a_function(attach, uprobe_binary, hook):
    if not features.has_uprobes():
        pytest.skip("this kernel has no uprobes")
    obj = attach.obj
    options = dict(program="uprobe_target", hook=hook, target=uprobe_binary + ":ebpft_probe_me")
    runs = four_runs(attach, **options)
    assert [r["changed"] for r in runs] == [True, True, False, False]
    proc = subprocess.Popen([uprobe_binary, "25"])
    proc.wait()
    assert calls(obj, proc.pid) == 25
    attach(state="absent", **options)
    proc = subprocess.Popen([uprobe_binary, "25"])
    proc.wait()
    assert calls(obj, proc.pid) == 0


def test_programs_named_by_pin(attach):
    obj = attach.obj
    by_layout = attach(name=None, pin=obj["pin_dir"] + "/progs/raw_getpid", hook="raw_tracepoint", target="sys_enter")
    assert (by_layout["program"]["name"], by_layout["program"]["program"]) == ("att", "raw_getpid")
    assert os.path.dirname(by_layout["attachment"]["link_pin"]) == obj["pin_dir"] + "/links"
    loose_dir = obj["pin_root"] + "/loose"
    os.mkdir(loose_dir)
    with sc.obj_get(obj["pin_dir"] + "/progs/tp_getpid") as fd:
        sc.obj_pin(fd, loose_dir + "/getpid_prog")
    res = attach(name=None, pin=loose_dir + "/getpid_prog", **dict(GETPID, program=None))
    assert res["changed"] and res["program"]["name"] is None and res["program"]["pin"] == loose_dir + "/getpid_prog"
    assert res["attachment"]["link_pin"].startswith(loose_dir + "/getpid_prog-tracepoint-")
    assert getpid_delta(obj) >= 100
    assert attach(name=None, pin=loose_dir + "/getpid_prog", state="absent", **dict(GETPID, program=None))["changed"]
    assert sorted(os.listdir(loose_dir)) == ["getpid_prog"]


def test_pins_that_are_not_programs(attach):
    obj = attach.obj
    with pytest.raises(AttachError, match="the object pinned at .*/maps/packets is not a program") as info:
        attach(name=None, pin=obj["pin_dir"] + "/maps/packets", **dict(RAW_GETPID, program=None))
    assert info.value.error_type == "program_missing"
    with pytest.raises(AttachError, match="invalid name '../x'") as info:
        attach(name="../x", **RAW_GETPID)
    assert info.value.error_type == "invalid_argument"
    with pytest.raises(AttachError, match="is not on bpffs"):
        attach(pin_root="/tmp", **RAW_GETPID)


def test_uprobe_through_a_symlinked_path_is_idempotent(attach, uprobe_binary, tmp_path):
    if not features.has_uprobes():
        pytest.skip("this kernel has no uprobes")
    link = tmp_path / "linked_target"
    link.symlink_to(uprobe_binary)
    options = dict(program="uprobe_target", hook="uprobe", target="%s:ebpft_probe_me" % link)
    assert attach(**options)["changed"]
    assert not attach(**options)["changed"]


@pytest.fixture
def library_target(tmp_path):
    """ebpft_probe_me() in a shared library libebpft_probe.so.1 and a program calling it, in a
    directory of their own (what LD_LIBRARY_PATH and PATH then name)."""
    src = tmp_path / "probe.c"
    src.write_text('__attribute__((noinline)) int ebpft_probe_me(int x) { __asm__ volatile("" ::: "memory"); return x + 1; }\n')
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(tmp_path / "libebpft_probe.so.1"), str(src)], check=True)
    main = tmp_path / "main.c"
    main.write_text("#include <stdlib.h>\nint ebpft_probe_me(int);\nint main(int c, char **v) { int n = atoi(v[1]), s = 0;"
                    " for (int i = 0; i < n; i++) s += ebpft_probe_me(i); return s == -1; }\n")
    subprocess.run(["cc", "-o", str(tmp_path / "ebpft_caller"), str(main), str(tmp_path / "libebpft_probe.so.1")], check=True)
    return tmp_path


def test_uprobe_targets_by_library_or_program_name(attach, library_target, monkeypatch):
    if not features.has_uprobes():
        pytest.skip("this kernel has no uprobes")
    obj = attach.obj
    env = dict(os.environ, LD_LIBRARY_PATH=str(library_target))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(library_target))
    monkeypatch.setenv("PATH", "%s:%s" % (library_target, os.environ["PATH"]))
    for target in ("libebpft_probe.so.1:ebpft_probe_me", "ebpft_caller:main"):
        options = dict(program="uprobe_target", hook="uprobe", target=target)
        runs = four_runs(attach, **options)
        assert [r["changed"] for r in runs] == [True, True, False, False]
        assert runs[1]["attachment"]["target"] == target
        proc = subprocess.Popen([str(library_target / "ebpft_caller"), "25"], env=env)
        proc.wait()
        assert calls(obj, proc.pid) == (25 if target.startswith("lib") else 1)
        assert attach(state="absent", **options)["changed"]
    with pytest.raises(AttachError, match="uprobe target file libebpft_nothing.so.1 does not exist.*LD_LIBRARY_PATH"):
        attach(program="uprobe_target", hook="uprobe", target="libebpft_nothing.so.1:f")
