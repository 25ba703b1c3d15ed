"""A load that needs a map or program type the kernel lacks names it and the Linux version that
brought it. The kernels that lack them cannot run here (this host's has every type): libbpf's
probe is replaced by one answering as a Linux 5.10 kernel would."""
import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_consts as c
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


class Uname:
    release = "5.10.0-32-cloud-amd64"


@pytest.fixture
def linux_5_10(monkeypatch):
    newer = {("map", c.BPF_MAP_TYPE_TASK_STORAGE), ("map", c.BPF_MAP_TYPE_BLOOM_FILTER), ("prog", c.BPF_PROG_TYPE_SYSCALL)}
    monkeypatch.setattr(object_features, "_supported", lambda kind, type_id: (kind, type_id) not in newer)
    monkeypatch.setattr(object_features.os, "uname", Uname)


def test_a_missing_map_type_is_named_with_its_version(linux_5_10):
    maps = [("syscall_start", c.BPF_MAP_TYPE_TASK_STORAGE), ("counts", c.BPF_MAP_TYPE_PERCPU_ARRAY)]
    with pytest.raises(BpfError, match=r"syscall_latency.bpf.o cannot be loaded on this kernel: map syscall_start is a "
                                       r"task_storage map, which needs Linux 5.11; this host runs Linux 5.10.0-32-cloud-amd64"):
        object_features.check("syscall_latency.bpf.o", maps, [])


def test_every_missing_type_is_listed(linux_5_10):
    assert object_features.missing([("f", c.BPF_MAP_TYPE_BLOOM_FILTER), ("r", c.BPF_MAP_TYPE_RINGBUF)],
                                   [("s", c.BPF_PROG_TYPE_SYSCALL), ("x", c.BPF_PROG_TYPE_XDP)]) == [
        ("map f", "bloom_filter", "5.16"), ("program s", "syscall", "5.14")]
