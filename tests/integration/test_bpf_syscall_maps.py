"""bpf_syscall's maps against the running kernel (root): element operations and flags of each
map type, and batch reads (their growth, their last call, their fallback)."""
import ctypes
import errno
import os
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_call
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from map_values import NCPUS, percpu, u32
from tiny_programs import return_program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for bpf()")


@pytest.fixture
def bpf_calls(monkeypatch):
    """Every bpf() call made through the module, raw or through the libbpf wrappers that map
    reads use: (cmd, result, count or None)."""
    calls = []
    real = bpf_call.sys_bpf

    def recording(cmd, attr):
        ret = real(cmd, attr)
        calls.append((cmd, ret, getattr(attr, "count", None)))
        return ret

    def recorder(cmd, wrapper):
        def call(*args):
            ret = wrapper(*args)
            counts = [a.value for a in args if isinstance(a, ctypes.c_uint32)]
            calls.append((cmd, ret, counts[0] if counts else None))
            return ret
        return call

    monkeypatch.setattr(bpf_call, "sys_bpf", recording)
    lb = libbpf.lib()
    for name, cmd in (("bpf_map_lookup_batch", bs.BPF_MAP_LOOKUP_BATCH), ("bpf_map_get_next_key", bs.BPF_MAP_GET_NEXT_KEY),
                      ("bpf_map_lookup_elem", bs.BPF_MAP_LOOKUP_ELEM)):
        monkeypatch.setattr(lb, name, recorder(cmd, getattr(lb, name)))
    return calls


HASH_LIKE = [bs.BPF_MAP_TYPE_HASH, bs.BPF_MAP_TYPE_LRU_HASH, bs.BPF_MAP_TYPE_PERCPU_HASH,
             bs.BPF_MAP_TYPE_LRU_PERCPU_HASH]
ARRAY_LIKE = [bs.BPF_MAP_TYPE_ARRAY, bs.BPF_MAP_TYPE_PERCPU_ARRAY]


@pytest.mark.parametrize("map_type", HASH_LIKE + ARRAY_LIKE, ids=bs.map_type_name)
def test_map_element_operations(map_type):
    percpu_type = bs.is_percpu_map_type(map_type)
    vsize = bs.percpu_value_size(8) if percpu_type else 8
    with bs.map_create(map_type, 4, 8, 8, name="t_ops") as m:
        info = bs.map_info(m)
        assert info["type"] == map_type
        assert info["type_name"] == bs.map_type_name(map_type)
        assert (info["name"], info["key_size"], info["value_size"], info["max_entries"]) == \
            ("t_ops", 4, 8, 8)
        assert info["id"] > 0
        assert bs.fd_kind(m) == "map"

        value = percpu(range(3, 3 + NCPUS)) if percpu_type else struct.pack("<Q", 77)
        bs.map_update(m, u32(5), value)
        assert bs.map_lookup(m, u32(5), vsize) == value
        bs.map_update(m, u32(6), value)

        keys, key = [], None
        while True:
            key = bs.map_next_key(m, key, 4)
            if key is None:
                break
            keys.append(key)
        if map_type in ARRAY_LIKE:
            assert keys == [u32(i) for i in range(8)]
            assert bs.map_lookup(m, u32(0), vsize) == bytes(vsize)
            with pytest.raises(BpfError) as exc:
                bs.map_delete(m, u32(5))
            assert exc.value.errno == errno.EINVAL
        else:
            assert sorted(keys) == [u32(5), u32(6)]
            assert bs.map_lookup(m, u32(0), vsize) is None
            bs.map_delete(m, u32(5))
            assert bs.map_lookup(m, u32(5), vsize) is None
            with pytest.raises(BpfError) as exc:
                bs.map_delete(m, u32(5))
            assert exc.value.errno == errno.ENOENT
            bs.map_delete(m, u32(5), missing_ok=True)


def test_update_flags():
    with bs.map_create(bs.BPF_MAP_TYPE_HASH, 4, 4, 4) as m:
        bs.map_update(m, u32(1), u32(10), bs.BPF_NOEXIST)
        with pytest.raises(BpfError) as exc:
            bs.map_update(m, u32(1), u32(11), bs.BPF_NOEXIST)
        assert exc.value.errno == errno.EEXIST
        with pytest.raises(BpfError) as exc:
            bs.map_update(m, u32(2), u32(20), bs.BPF_EXIST)
        assert exc.value.errno == errno.ENOENT
        bs.map_update(m, u32(1), u32(12), bs.BPF_EXIST)
        assert bs.map_lookup(m, u32(1), 4) == u32(12)
        assert bs.map_next_key(m, u32(1), 4) is None


def test_full_hash_map_refuses_new_keys():
    with bs.map_create(bs.BPF_MAP_TYPE_HASH, 4, 4, 2) as m:
        bs.map_update(m, u32(1), u32(1))
        bs.map_update(m, u32(2), u32(2))
        with pytest.raises(BpfError) as exc:
            bs.map_update(m, u32(3), u32(3))
        assert exc.value.errno == errno.E2BIG


def test_map_create_failure_names_the_map():
    with pytest.raises(BpfError, match="creating hash map 'bad_map'") as exc:
        bs.map_create(bs.BPF_MAP_TYPE_HASH, 0, 4, 4, name="bad_map")
    assert exc.value.errno == errno.EINVAL


# --- batch reads ---------------------------------------------------------------------------------

def test_batch_lookup_of_a_256_entry_percpu_array():
    vsize = bs.percpu_value_size(8)
    expected = {}
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 256, name="t_pcpu_arr") as m:
        for i in range(256):
            expected[u32(i)] = percpu(i * 1000 + cpu for cpu in range(NCPUS))
            bs.map_update(m, u32(i), expected[u32(i)])
        whole = bs.map_lookup_batch(m, 4, vsize, 256)
        small = bs.map_lookup_batch(m, 4, vsize, 256, batch=7)
        per_key = bs.map_dump_per_key(m, 4, vsize)
    assert len(whole) == 256
    assert dict(whole) == expected
    assert whole == small == per_key  # arrays come back in index order


def test_batch_lookup_of_a_10000_entry_hash():
    items = [(u32(i * 7919), struct.pack("<Q", i * 3 + 1)) for i in range(10000)]
    with bs.map_create(bs.BPF_MAP_TYPE_HASH, 4, 8, 10000, name="t_hash") as m:
        assert bs.map_update_batch(m, items) == 10000
        whole = bs.map_lookup_batch(m, 4, 8, 10000)
        chunked = bs.map_lookup_batch(m, 4, 8, 10000, batch=64)
        per_key = bs.map_dump_per_key(m, 4, 8)
    assert len(whole) == len(chunked) == len(per_key) == 10000
    assert dict(whole) == dict(chunked) == dict(per_key) == dict(items)


def test_batch_lookup_grows_when_a_bucket_does_not_fit(bpf_calls):
    # 10000 keys in 16384 buckets: many buckets hold two or more, a batch of 1 cannot.
    items = [(u32(i), u32(i)) for i in range(10000)]
    with bs.map_create(bs.BPF_MAP_TYPE_HASH, 4, 4, 10000) as m:
        bs.map_update_batch(m, items)
        got = bs.map_lookup_batch(m, 4, 4, 10000, batch=1)
    assert dict(got) == dict(items) and len(got) == 10000
    results = [ret for cmd, ret, _attr in bpf_calls if cmd == bs.BPF_MAP_LOOKUP_BATCH]
    assert -errno.ENOSPC in results


def test_batch_lookup_keeps_the_entries_of_the_final_enoent_call(bpf_calls):
    with bs.map_create(bs.BPF_MAP_TYPE_ARRAY, 4, 4, 10) as m:
        for i in range(10):
            bs.map_update(m, u32(i), u32(100 + i))
        got = bs.map_lookup_batch(m, 4, 4, 10, batch=4)
    assert got == [(u32(i), u32(100 + i)) for i in range(10)]
    batch_calls = [(ret, count) for cmd, ret, count in bpf_calls
                   if cmd == bs.BPF_MAP_LOOKUP_BATCH]
    assert batch_calls == [(0, 4), (0, 4), (-errno.ENOENT, 2)]


def test_batch_lookup_falls_back_where_the_map_type_has_none(bpf_calls):
    with bs.map_create(bs.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4) as m, \
            return_program(bs.BPF_PROG_TYPE_XDP, bs.XDP_PASS, "t_tail") as p:
        bs.map_update(m, u32(1), u32(p.fd))
        bs.map_update(m, u32(3), u32(p.fd))
        got = bs.map_lookup_batch(m, 4, 4, 4)
        prog_id = bs.prog_info(p)["id"]
    # From user space a program array holds program ids.
    assert got == [(u32(1), u32(prog_id)), (u32(3), u32(prog_id))]
    cmds = [(cmd, ret) for cmd, ret, _attr in bpf_calls]
    assert (bs.BPF_MAP_LOOKUP_BATCH, -bs.ENOTSUPP) in cmds
    assert any(c[0] == bs.BPF_MAP_GET_NEXT_KEY for c in cmds)
