"""ebpf_attach's multi-probe hooks against the running kernel (tests/bpf/multi_probes.bpf.c): a
uprobe_multi link on every function of a test binary that a glob matches counts each call
exactly, check -> real -> check -> real, and detaches; kprobe_multi needs kprobes, and a kernel
without them says so before anything changes."""
import os
import struct
import subprocess

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from bpf_objects import build_program


def run(pin_root, tmp_path, check_mode=False, **options):
    params = dict(name="multi", pin_root=pin_root, events_dir=str(tmp_path))
    params.update(options)
    return AttachBackend(params, check_mode=check_mode).run()


def calls(pin_root, pid):
    with sc.obj_get(os.path.join(pin_root, "multi", "maps", "calls_by_tgid")) as fd:
        raw = sc.map_lookup(fd, struct.pack("<I", pid), 8)
    return struct.unpack("<Q", raw)[0] if raw else 0


@pytest.fixture(scope="module")
def target_binary():
    return build_program("uprobe_target.c", "uprobe_multi_target")


def calls_of_run(pin_root, binary, count):
    proc = subprocess.Popen([binary, str(count)])
    proc.wait()
    return calls(pin_root, proc.pid)


def test_uprobe_multi_counts_every_matched_function(pin_root, bpf_objects, tmp_path, target_binary):
    ProgramBackend("multi", pin_root).present(bpf_objects["multi"])
    target = target_binary + ":ebpft_probe_me*"
    runs = [run(pin_root, tmp_path, check_mode=c, program="multi_uprobe", hook="uprobe_multi", target=target)
            for c in (True, False, True, False)]
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (att["hook"], att["target"], att["prog_id"]) == ("uprobe_multi", target, runs[1]["program"]["id"])
    with sc.link_fd_by_id(att["link_id"]) as fd:
        info = sc.link_info(fd)
    assert info["type_name"] == "uprobe_multi" and info.get("count", 2) == 2  # Linux 6.8+ reports the count
    assert calls_of_run(pin_root, target_binary, 25) == 50  # both functions, 25 calls each

    res = run(pin_root, tmp_path, program="multi_uprobe", hook="uprobe_multi", target=target, state="absent")
    assert res["changed"] and res["attachment"] == {}
    assert calls_of_run(pin_root, target_binary, 25) == 0
    with pytest.raises(AttachError, match="no function matches uprobe_multi .*:ebpft_nothing_\\*"):
        run(pin_root, tmp_path, program="multi_uprobe", hook="uprobe_multi", target=target_binary + ":ebpft_nothing_*")


def test_kprobe_multi_needs_kprobes(pin_root, bpf_objects, tmp_path):
    ProgramBackend("multi", pin_root).present(bpf_objects["multi"])
    if features.has_kprobes():
        res = run(pin_root, tmp_path, program="multi_kprobe")
        assert res["changed"] and res["hook"] == "kprobe_multi" and res["attachment"]["target"] == "do_nanosleep"
        return
    for check_mode in (True, False):
        with pytest.raises(AttachError, match="kprobes are not available on this kernel") as info:
            run(pin_root, tmp_path, check_mode=check_mode, program="multi_kprobe")
        assert info.value.error_type == "kprobes_unavailable"
    links = os.path.join(pin_root, "multi", "links")
    assert not os.path.isdir(links) or os.listdir(links) == []
