"""ebpf_attach's BTF-typed hooks against the running kernel: tp_btf attaches, counts exactly and
detaches (four runs); fentry, which needs BPF trampolines, says so clearly where the kernel has
none (and attaches and counts where it has them)."""
import os
import struct
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend


def run(pin_root, tmp_path, check_mode=False, **options):
    params = dict(name="btf", pin_root=pin_root, events_dir=str(tmp_path))
    params.update(options)
    return AttachBackend(params, check_mode=check_mode).run()


PID = os.getpid()  # asked once: every getpid call counts


def calls(pin_root):
    with sc.obj_get(os.path.join(pin_root, "btf", "maps", "calls_by_tgid")) as fd:
        raw = sc.map_lookup(fd, struct.pack("<I", PID), 8)
    return struct.unpack("<Q", raw)[0] if raw else 0


def test_tp_btf_attaches_from_its_section_counts_and_detaches(pin_root, bpf_objects, tmp_path):
    assert features.has_tp_btf()
    ProgramBackend("btf", pin_root).present(bpf_objects["tp_btf"])
    runs = [run(pin_root, tmp_path, check_mode=c, program="getpid_enter") for c in (True, False, True, False)]
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (runs[1]["hook"], att["target"], att["prog_id"]) == ("tp_btf", "sys_enter", runs[1]["program"]["id"])
    before = calls(pin_root)
    for _call in range(1000):
        os.getpid()
    assert calls(pin_root) - before == 1000
    links = InfoBackend(pin_root, gather=("objects",)).run()["objects"][0]["links"]
    assert [(link["type"], link["tp_name"]) for link in links] == [("raw_tracepoint", "sys_enter")]
    res = run(pin_root, tmp_path, program="getpid_enter", state="absent")
    assert res["changed"] and res["attachment"] == {}
    time.sleep(0.05)
    settled = calls(pin_root)
    os.getpid()
    assert calls(pin_root) == settled


def test_tp_btf_target_is_the_one_it_was_loaded_for(pin_root, bpf_objects, tmp_path):
    ProgramBackend("btf", pin_root).present(bpf_objects["tp_btf"])
    with pytest.raises(AttachError, match=r"the target of a tp_btf program is fixed when it is loaded: btf/getpid_enter "
                                          r"was loaded for sys_enter, not sys_exit"):
        run(pin_root, tmp_path, program="getpid_enter", target="sys_exit")
    with pytest.raises(AttachError, match="a tracing program cannot be attached to the raw_tracepoint hook"):
        run(pin_root, tmp_path, program="getpid_enter", hook="raw_tracepoint", target="sys_enter")


def test_fentry_needs_trampolines(pin_root, bpf_objects, tmp_path):
    if features.has_fentry():
        ProgramBackend("btf", pin_root).present(bpf_objects["fentry"])
        res = run(pin_root, tmp_path, program="nanosleep_entry")
        assert res["changed"] and res["hook"] == "fentry" and res["attachment"]["target"] == "do_nanosleep"
        before = calls(pin_root)
        time.sleep(0.001)
        assert calls(pin_root) == before + 1
        return
    with pytest.raises(BpfError, match=r'fentry is not available on this kernel: SEC\("fentry/do_nanosleep"\) needs '
                                       r'BPF trampolines'):
        ProgramBackend("btf", pin_root).present(bpf_objects["fentry"])
    assert not os.path.exists(os.path.join(pin_root, "btf"))
