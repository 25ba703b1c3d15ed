"""Objects compiled as ebpf_exporter's examples are load; a failure names libbpf's own cause."""
import os

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_consts as c
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend


def test_kconfig_externs_and_cpu_v3_load(pin_root, bpf_objects):
    res = ProgramBackend("kc", pin_root).present(bpf_objects["kconfig"])
    assert res["changed"] and [p["name"] for p in res["programs"]] == ["kconfig_reader"]


def test_an_unresolvable_extern_is_named(pin_root, bpf_objects):
    with pytest.raises(BpfError) as info:
        ProgramBackend("ext", pin_root).present(bpf_objects["extern"])
    assert "failed to find BTF for extern 'ebpft_defined_nowhere'" in str(info.value)
    assert "No such file or directory" not in str(info.value)
    assert not os.path.exists(os.path.join(pin_root, "ext"))


def test_this_kernel_has_the_map_types_it_is_probed_for():
    assert object_features.missing([("m", c.BPF_MAP_TYPE_TASK_STORAGE), ("r", c.BPF_MAP_TYPE_RINGBUF)], []) == []
