"""Pure logic of ebpf_attach: XDP mode lists, hooks from section names and program types,
tracing targets, pin names, TC defaults, the event file, feature facts from sysfs."""
import json
import os
import threading

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events as ev
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import usdt_notes
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import hook_from_section, resolve_hook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    AttachError, error_type_of,
)
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tc import default_handle
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tracing import (
    TracingHook, parse_target, raw_tracepoint_known,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp import held_programs, modes_to_try
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


# --- XDP --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, fallback, modes", [
    ("auto", False, ("hw", "drv", "skb")),
    ("auto", True, ("hw", "drv", "skb")),
    ("drv", False, ("drv",)),
    ("drv", True, ("drv", "skb")),
    ("hw", True, ("hw", "drv", "skb")),
    ("skb", True, ("skb",)),
])
def test_modes_to_try(mode, fallback, modes):
    assert modes_to_try(mode, fallback) == modes


def test_unknown_mode():
    with pytest.raises(AttachError, match="unknown XDP mode 'native'"):
        modes_to_try("native")


def test_held_programs():
    state = {"mode": "multi", "prog_id": None, "drv_prog_id": 7, "skb_prog_id": None, "hw_prog_id": 9}
    assert held_programs(state) == [("drv", 7), ("hw", 9)]


# --- hooks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, expected", [
    ("xdp", ("xdp", None, None)),
    ("xdp.frags", ("xdp", None, None)),
    ("tc", ("tc", None, None)),
    ("classifier", ("tc", None, None)),
    ("tcx/egress", ("tc", None, "egress")),
    ("tc/ingress", ("tc", None, "ingress")),
    ("tracepoint/syscalls/sys_enter_openat", ("tracepoint", "syscalls/sys_enter_openat", None)),
    ("tp/sched/sched_switch", ("tracepoint", "sched/sched_switch", None)),
    ("raw_tracepoint/sys_enter", ("raw_tracepoint", "sys_enter", None)),
    ("raw_tp.w/sys_exit", ("raw_tracepoint", "sys_exit", None)),
    ("kprobe/x64_sys_call", ("kprobe", "x64_sys_call", None)),
    ("kretprobe/do_unlinkat", ("kretprobe", "do_unlinkat", None)),
    ("uprobe//usr/bin/bash:readline", ("uprobe", "/usr/bin/bash:readline", None)),
    ("uprobe", ("uprobe", None, None)),
    ("tp_btf/sched_switch", ("tp_btf", "sched_switch", None)),
    ("fentry/do_unlinkat", ("fentry", "do_unlinkat", None)),
    ("fexit.s/do_unlinkat", ("fexit", "do_unlinkat", None)),
    ("fmod_ret/security_file_open", ("fmod_ret", "security_file_open", None)),
    ("lsm/file_open", ("lsm", "file_open", None)),
    ("xdp/eth0", ("xdp", "eth0", None)),  # ebpf_exporter's sections that name their target
    ("xdp/enp8s0,lo", ("xdp", "enp8s0,lo", None)),
    ("xdp/devmap", ("xdp", None, None)),  # libbpf's own
    ("perf_event/type=1,config=0,frequency=99", ("perf_event", "type=1,config=0,frequency=99", None)),
    ("usdt/libc.so.6:libc:setjmp", ("usdt", "libc.so.6:libc:setjmp", None)),
    ("kprobe.multi/tcp_v4_*", ("kprobe_multi", "tcp_v4_*", None)),
    ("uretprobe.multi/libc.so.6:malloc*", ("uretprobe_multi", "libc.so.6:malloc*", None)),
    ("socket", (None, None, None)),
])
def test_hook_from_section(section, expected):
    assert hook_from_section(section) == expected


@pytest.mark.parametrize("section", ["uprobe.multi.s/libc.so.6:malloc", "ksyscall/openat"])
def test_sections_of_hooks_not_attached_are_refused_clearly(section):
    with pytest.raises(AttachError, match="section %s: .* are not attached by ebpf_attach" % section.replace("*", ".")) as info:
        hook_from_section(section)
    assert info.value.error_type == "unsupported"


def test_a_tracing_program_without_section_needs_a_hook():
    with pytest.raises(AttachError, match="a tracing program can be a tp_btf, fentry, fexit or fmod_ret program") as info:
        resolve_hook("auto", "tracing", None)
    assert info.value.error_type == "invalid_argument"


@pytest.mark.parametrize("args, expected", [
    (("auto", "xdp", None), ("xdp", None, None)),
    (("auto", "sched_cls", None), ("tc", None, "ingress")),
    (("auto", "sched_cls", "tcx/egress"), ("tc", None, "egress")),
    (("auto", "sched_cls", "tcx/egress", None, "ingress"), ("tc", None, "ingress")),  # the option wins
    (("auto", "tracepoint", "tracepoint/a/b"), ("tracepoint", "a/b", None)),
    (("auto", "tracepoint", "tracepoint/a/b", "c/d"), ("tracepoint", "c/d", None)),
    (("auto", "raw_tracepoint", None, "sys_enter"), ("raw_tracepoint", "sys_enter", None)),
    (("auto", "kprobe", "kretprobe/f"), ("kretprobe", "f", None)),
    (("uprobe", "kprobe", "kprobe/f", "/bin/x:main"), ("uprobe", "/bin/x:main", None)),  # section of another hook: ignored
    (("tracepoint", "tracepoint", None, "a/b"), ("tracepoint", "a/b", None)),
    (("auto", "perf_event", "perf_event/type=0,config=3,period=1000"), ("perf_event", "type=0,config=3,period=1000", None)),
    (("auto", "xdp", "xdp/eth0", None), ("xdp", "eth0", None)),
])
def test_resolve_hook(args, expected):
    assert resolve_hook(*args) == expected


@pytest.mark.parametrize("args, message, error_type", [
    (("auto", "kprobe", None), "can be a kprobe, kretprobe, uprobe, uretprobe or usdt program", "invalid_argument"),
    (("auto", "cgroup_skb", None), "cgroup_skb programs cannot be attached by ebpf_attach", "program_type_mismatch"),
    (("tc", "xdp", None), "a xdp program cannot be attached to the tc hook. Use hook: xdp", "program_type_mismatch"),
    (("xdp", "kprobe", None), "a kprobe program cannot be attached to the xdp hook. The xdp hook needs a xdp program",
     "program_type_mismatch"),
])
def test_resolve_hook_refuses(args, message, error_type):
    with pytest.raises(AttachError, match=message) as info:
        resolve_hook(*args)
    assert info.value.error_type == error_type


# --- tracing targets --------------------------------------------------------------------------

@pytest.mark.parametrize("hook, target, parts", [
    ("tracepoint", "syscalls/sys_enter_getpid", {"category": "syscalls", "name": "sys_enter_getpid"}),
    ("tracepoint", "sched:sched_switch", {"category": "sched", "name": "sched_switch", "canonical": "sched/sched_switch"}),
    ("raw_tracepoint", "sys_enter", {"name": "sys_enter"}),
    ("kprobe", "do_unlinkat+0x10", {"function": "do_unlinkat", "offset": 16}),
    ("kprobe", "vfs_read.isra.0", {"function": "vfs_read.isra.0", "offset": 0}),
    ("kretprobe", "do_unlinkat", {"function": "do_unlinkat", "offset": 0}),
    ("uprobe", "/usr/lib/libssl.so.3:SSL_write", {"path": "/usr/lib/libssl.so.3", "function": "SSL_write", "offset": 0}),
    ("uprobe", "/bin/bash:readline+4", {"path": "/bin/bash", "function": "readline", "offset": 4}),
    ("uretprobe", "/bin/bash:0x1234", {"path": "/bin/bash", "function": None, "offset": 0x1234}),
])
def test_parse_target(hook, target, parts):
    parsed = parse_target(hook, target)
    assert dict((k, parsed[k]) for k in parts) == parts


def test_uprobe_names_are_found_where_libbpf_looks(tmp_path, monkeypatch):
    lib = tmp_path / "libebpft.so.2"
    lib.write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert parse_target("uprobe", "libebpft.so.2:f")["path"] == str(lib)
    prog = tmp_path / "ebpft_prog"
    prog.write_bytes(b"")
    prog.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    parsed = parse_target("uprobe", "ebpft_prog:main")
    assert (parsed["path"], parsed["canonical"]) == (str(prog), "ebpft_prog:main")
    assert parse_target("uprobe", "libnowhere.so.1:f")["path"] == "libnowhere.so.1"  # the file check names it


@pytest.mark.parametrize("hook, target", [
    ("tracepoint", "sys_enter_getpid"), ("tracepoint", "a/b/c"), ("tracepoint", ""), ("raw_tracepoint", "a/b"),
    ("kprobe", "do unlinkat"), ("kretprobe", "do_unlinkat+4"), ("uprobe", "rel/bash:readline"), ("uprobe", "/bin/bash"),
    ("uretprobe", "/bin/bash:readline+4"), ("uprobe", "/bin/bash:"),
])
def test_parse_target_refuses(hook, target):
    with pytest.raises(AttachError, match="target") as info:
        parse_target(hook, target)
    assert info.value.error_type == "invalid_argument"


def _tracing_hook(hook, target):
    h = TracingHook.__new__(TracingHook)
    h.name, h.target = hook, parse_target(hook, target)
    return h


@pytest.mark.parametrize("hook, target, link, matches", [
    ("tracepoint", "net/netif_receive_skb",
     {"type_name": "perf_event", "perf_event_type_name": "tracepoint", "tp_name": "netif_receive_skb"}, True),
    ("tracepoint", "net/netif_receive_skb",
     {"type_name": "perf_event", "perf_event_type_name": "tracepoint", "tp_name": "net_dev_xmit"}, False),
    ("tracepoint", "net/netif_receive_skb", {"type_name": "perf_event", "perf_event_type_name": "kprobe", "func_name": "x"}, False),
    ("tracepoint", "net/netif_receive_skb", {"type_name": "raw_tracepoint", "tp_name": "netif_receive_skb"}, False),
    # before Linux 6.6 the kernel reports no event for perf_event links: the pin path stands for it
    ("tracepoint", "net/netif_receive_skb", {"type_name": "perf_event"}, True),
    ("kprobe", "do_unlinkat", {"type_name": "perf_event"}, True),
    ("kprobe", "do_unlinkat", {"type_name": "perf_event", "perf_event_type_name": "kprobe", "func_name": "do_unlinkat"}, True),
    ("kprobe", "do_unlinkat", {"type_name": "perf_event", "perf_event_type_name": "kretprobe", "func_name": "do_unlinkat"}, False),
    ("raw_tracepoint", "sys_enter", {"type_name": "raw_tracepoint", "tp_name": "sys_enter"}, True),
    ("raw_tracepoint", "sys_enter", {"type_name": "perf_event"}, False),
])
def test_tracing_link_matches_its_target(hook, target, link, matches):
    assert _tracing_hook(hook, target)._matches(link) is matches  # pylint: disable=protected-access


def test_raw_tracepoint_known_from_btf(tmp_path):
    (tmp_path / "vmlinux").write_bytes(b"xx\0btf_trace_sys_enter\0btf_trace_sched_switch\0")
    (tmp_path / "mymod").write_bytes(b"\0btf_trace_mymod_event\0")
    assert raw_tracepoint_known("sys_enter", str(tmp_path)) is True
    assert raw_tracepoint_known("mymod_event", str(tmp_path)) is True
    assert raw_tracepoint_known("sys_ent", str(tmp_path)) is False
    assert raw_tracepoint_known("sys_enter", str(tmp_path / "none")) is None


# --- names ------------------------------------------------------------------------------------

def test_pin_key():
    assert pin_key("count", "tc", "eth0", "ingress") == "count-tc-eth0-ingress"
    assert pin_key("p", "xdp", None) == "p-xdp"
    dotted = pin_key("count", "tc", "eth0.100", "ingress")
    assert dotted.startswith("count-tc-eth0_100-ingress-") and len(dotted) == len("count-tc-eth0_100-ingress-") + 8
    assert dotted != pin_key("count", "tc", "eth0_100", "ingress")  # no two targets share a pin
    assert len(pin_key("p", "uprobe", "/" + "x" * 300 + ":f")) <= 128


def test_default_handle_is_stable_and_never_zero():
    assert default_handle("att/tc_udp") == default_handle("att/tc_udp") != default_handle("att/other")
    assert 0 < default_handle("") <= 0xFFFFFFFF


def test_error_type_of():
    import errno
    assert error_type_of(AttachError("x", "unknown_target")) == "unknown_target"
    assert error_type_of(BpfError("x", errno=errno.ENODEV)) == "interface_missing"
    assert error_type_of(BpfError("x", errno=errno.EBUSY)) == "foreign_program"
    assert error_type_of(BpfError("x", errno=errno.EINVAL)) == "kernel_error"


# --- the event file ---------------------------------------------------------------------------

def test_events_count_per_interface_and_type(tmp_path):
    directory = str(tmp_path / "state")
    path = ev.record(directory, "eth0", "foreign_program", "xdp", "busy")
    ev.record(directory, "eth0", "foreign_program", "xdp", "busy again")
    ev.record(directory, "eth1", "interface_missing", "tc", "gone")
    ev.record(directory, None, "kprobes_unavailable", "kprobe", "no kprobes")
    assert ev.counts(path) == {("eth0", "foreign_program"): 2, ("eth1", "interface_missing"): 1,
                               ("", "kprobes_unavailable"): 1}
    with open(path) as f:
        data = json.load(f)
    assert data["format"] == 1
    entry = data["errors"][0]
    assert (entry["interface"], entry["error_type"], entry["count"], entry["hook"], entry["last_message"]) == (
        "", "kprobes_unavailable", 1, "kprobe", "no kprobes")
    assert sorted(os.listdir(directory)) == ["attach_errors.json", "attach_errors.json.lock"]  # no temporary left


def test_events_survive_concurrent_writers(tmp_path):
    directory = str(tmp_path)

    def writer():
        for _event in range(20):
            ev.record(directory, "eth0", "kernel_error", "xdp", "x")
    threads = [threading.Thread(target=writer) for _thread in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ev.counts(ev.events_path(directory)) == {("eth0", "kernel_error"): 80}


def test_events_unreadable_file_is_an_error_to_readers_and_rewritten_by_writers(tmp_path):
    path = tmp_path / ev.FILE_NAME
    path.write_text("{not json")
    with pytest.raises(BpfError, match="is not valid JSON"):
        ev.counts(str(path))
    assert ev.read(str(path))["errors"] == [] and "is not valid JSON" in ev.read(str(path))["damaged"]
    notes = []
    ev.record(str(tmp_path), "eth0", "verify_failed", "xdp", "m" * 2000, notes)
    assert notes and "rewritten keeping the 0 entries" in notes[0]
    data = ev.load(str(path))
    assert data["errors"][0]["count"] == 1 and len(data["errors"][0]["last_message"]) == ev.MESSAGE_MAX


def test_events_refuse_unknown_types(tmp_path):
    with pytest.raises(ValueError):
        ev.record(str(tmp_path), "eth0", "oops", "xdp", "")


def test_events_directory_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BpfError, match="cannot create the event directory"):
        ev.record(str(blocker / "sub"), "eth0", "kernel_error", "xdp", "")


# --- feature facts from sysfs -----------------------------------------------------------------

def test_probe_pmus_from_sysfs(tmp_path):
    kprobe = tmp_path / "kprobe"
    (kprobe / "format").mkdir(parents=True)
    (kprobe / "type").write_text("6\n")
    (kprobe / "format" / "retprobe").write_text("config:0\n")
    assert perf_event.pmu_type("kprobe", str(tmp_path)) == 6
    assert perf_event.retprobe_bit("kprobe", str(tmp_path)) == 0
    assert features.has_kprobes(str(tmp_path)) and not features.has_uprobes(str(tmp_path))
    (kprobe / "format" / "retprobe").write_text("config1:3\n")
    assert perf_event.retprobe_bit("kprobe", str(tmp_path)) is None


def test_tracepoint_ids_from_tracefs(tmp_path):
    event = tmp_path / "events" / "syscalls" / "sys_enter_getpid"
    event.mkdir(parents=True)
    (event / "id").write_text("412\n")
    assert perf_event.tracepoint_id("syscalls", "sys_enter_getpid", str(tmp_path)) == 412
    assert perf_event.tracepoint_id("syscalls", "sys_enter_nope", str(tmp_path)) is None
    assert perf_event.tracepoint_categories(str(tmp_path)) == ["syscalls"]
    assert perf_event.tracefs_root((str(tmp_path),)) is None  # a plain directory is no tracefs


@pytest.mark.parametrize("section, spec", [
    ("perf_event/type=1,config=0,frequency=99", {"type": 1, "config": 0, "frequency": 99}),
    ("perf_event/type=0x0,config=0x3,period=10000", {"type": 0, "config": 3, "period": 10000}),
    ("perf_event", None),
    ("xdp/eth0", None),
])
def test_perf_event_sections(section, spec):
    assert named_sections.perf_event_spec(section) == spec


@pytest.mark.parametrize("section, message", [
    ("perf_event/type=1", "names no event: it needs type= and config="),
    ("perf_event/type=1,config=0", "a sampling event needs frequency="),
    ("perf_event/type=1,config=0,frequency=9,period=9", "give frequency or period, not both"),
    ("perf_event/type=1,config=x,frequency=9", "config=x is not a number"),
    ("perf_event/type=1,type=2,config=0", "'type=2' is not one of type=, config=, frequency= or period= \\(each once\\)"),
])
def test_malformed_perf_event_sections(section, message):
    with pytest.raises(BpfError, match=message):
        named_sections.perf_event_spec(section)


@pytest.mark.parametrize("section, interfaces, types", [
    ("xdp/eth0,lo", ["eth0", "lo"], (6, 37)),
    ("xdp.frags/eth0", ["eth0"], (6, 37)),
    ("xdp/devmap", None, None),
    ("xdp.frags/cpumap", None, None),
    ("xdp", None, None),
    ("perf_event/type=1,config=0,frequency=1", None, (7, 0)),
    ("uprobe.multi/libc.so.6:malloc*", None, (2, 48)),
    ("uretprobe.multi", None, (2, 48)),
])
def test_sections_that_name_their_interfaces(section, interfaces, types):
    assert named_sections.xdp_interfaces(section) == interfaces
    assert named_sections.section_type(section) == types


@pytest.mark.parametrize("arg, arch, spec", [
    ("-4@%eax", "x86_64", (0, usdt_notes.ARG_REG, 80, True, 32)),
    ("8@%r12", "x86_64", (0, usdt_notes.ARG_REG, 24, False, 0)),
    ("-4@112(%rsp)", "x86_64", (112, usdt_notes.ARG_REG_DEREF, 152, True, 32)),
    ("8@-16(%rbp)", "x86_64", ((-16) & 0xFFFFFFFFFFFFFFFF, usdt_notes.ARG_REG_DEREF, 32, False, 0)),
    ("2@(%rdi)", "x86_64", (0, usdt_notes.ARG_REG_DEREF, 112, False, 48)),
    ("-1@$-9", "x86_64", ((-9) & 0xFFFFFFFFFFFFFFFF, usdt_notes.ARG_CONST, 0, True, 56)),
    ("8@x1", "aarch64", (0, usdt_notes.ARG_REG, 8, False, 0)),
    ("-4@[sp, 16]", "aarch64", (16, usdt_notes.ARG_REG_DEREF, 248, True, 32)),
    ("4@5", "aarch64", (5, usdt_notes.ARG_CONST, 0, False, 32)),
])
def test_usdt_arguments_become_libbpf_arg_specs(arg, arch, spec):
    assert usdt_notes.parse_arg(arg, arch) == spec


@pytest.mark.parametrize("arg, message", [
    ("8@8(%rax,%rbx,4)", "has a form that is not supported"),
    ("3@%rax", "has a form that is not supported"),
    ("8@%xmm0", "names register xmm0, which is not known"),
])
def test_usdt_arguments_that_are_refused(arg, message):
    with pytest.raises(BpfError, match=message):
        usdt_notes.parse_arg(arg)


def test_usdt_spec_layout_is_libbpfs():
    spec = usdt_notes.spec_bytes("-4@%eax 8@$7")
    assert len(spec) == usdt_notes.SPEC_SIZE == 208  # sizeof(struct __bpf_usdt_spec), libbpf's usdt.bpf.h
    assert spec[:16] == usdt_notes.ARG_SPEC.pack(0, 1, 80, True, 32) and spec[16:24] == (7).to_bytes(8, "little")
    assert spec[192:202] == (0).to_bytes(8, "little") + (2).to_bytes(2, "little")
