"""MapBackend (ebpf_map) against maps pinned by ProgramBackend."""
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.maps import MapBackend, encode
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend


@pytest.fixture
def loaded(pin_root, bpf_objects):
    return ProgramBackend("obj", pin_root).present(bpf_objects["base"])


def apply(pin_root, map_name, entries, check_mode=False, exclusive=False):
    backend = MapBackend("obj", map_name, pin_root, check_mode=check_mode)
    try:
        return backend.apply(entries, exclusive=exclusive)
    finally:
        backend.close()


def read(loaded_result, map_name, key, size=8):
    pin = [m for m in loaded_result["maps"] if m["name"] == map_name][0]["pin"]
    with sc.obj_get(pin) as fd:
        return sc.map_lookup(fd, struct.pack("<I", key), size)


def test_array_entries_four_runs(pin_root, loaded):
    entries = [{"key": 1, "value": 7}, {"key": "02000000", "value": "0x0900000000000000"}]
    assert apply(pin_root, "settings", entries, check_mode=True)["changed"]
    assert read(loaded, "settings", 1) == struct.pack("<Q", 0)
    res = apply(pin_root, "settings", entries)
    assert res["changed"] and res["writes"] == 2
    assert res["diff"]["after"] == {"01000000": "0700000000000000", "02000000": "0900000000000000"}
    assert not apply(pin_root, "settings", entries, check_mode=True)["changed"]
    assert not apply(pin_root, "settings", entries)["changed"]
    assert read(loaded, "settings", 2) == struct.pack("<Q", 9)


def test_exclusive_zeroes_other_array_entries(pin_root, loaded):
    apply(pin_root, "settings", [{"key": 0, "value": 1}, {"key": 3, "value": 3}])
    res = apply(pin_root, "settings", [{"key": 0, "value": 1}], exclusive=True)
    assert res["changed"] and res["writes"] == 2
    assert read(loaded, "settings", 3) == struct.pack("<Q", 0)
    assert not apply(pin_root, "settings", [{"key": 0, "value": 1}], exclusive=True)["changed"]


def test_write_sequence_compares_the_final_values(pin_root, loaded):
    sequence = [{"key": 0, "value": 0}, {"key": 1, "value": 5}, {"key": 0, "value": 1}]
    assert apply(pin_root, "settings", sequence)["writes"] == 3
    assert read(loaded, "settings", 0) == struct.pack("<Q", 1)
    assert not apply(pin_root, "settings", sequence)["changed"]


def test_hash_exclusive_deletes_other_keys(pin_root, loaded):
    apply(pin_root, "calls_by_tgid", [{"key": 10, "value": 1}, {"key": 11, "value": 2}])
    res = apply(pin_root, "calls_by_tgid", [{"key": 10, "value": 1}], exclusive=True)
    assert res["changed"]
    assert read(loaded, "calls_by_tgid", 11) is None
    assert read(loaded, "calls_by_tgid", 10) == struct.pack("<Q", 1)


@pytest.mark.parametrize("entries, message", [
    ([{"key": 9, "value": 1}], "out of range"),
    ([{"key": "0100", "value": 1}], "is 2 bytes; the map's keys are 4 bytes"),
    ([{"key": 1, "value": "zz"}], "neither an integer nor a hex string"),
    ([{"key": 1, "value": 2 ** 64}], "does not fit in 8 bytes"),
])
def test_bad_entries_change_nothing(pin_root, loaded, entries, message):
    with pytest.raises(BpfError) as err:
        apply(pin_root, "settings", entries)
    assert message in str(err.value)
    assert read(loaded, "settings", 1) == struct.pack("<Q", 0)


def test_per_cpu_maps_and_missing_maps_are_refused(pin_root, loaded):
    with pytest.raises(BpfError) as err:
        MapBackend("obj", "packets", pin_root)
    assert "not per-CPU counters" in str(err.value)
    with pytest.raises(BpfError) as err:
        MapBackend("obj", "nope", pin_root)
    assert "Load the object with ebpf_program first" in str(err.value)


def test_encode():
    assert encode(1, 4, "entry key") == b"\x01\x00\x00\x00"
    assert encode("0x01 00 00 00", 4, "entry key") == b"\x01\x00\x00\x00"
    with pytest.raises(BpfError):
        encode(True, 4, "entry key")


HASH_CAPACITY = 1024  # calls_by_tgid's max_entries in tests/bpf/test_object.bpf.c


def fill_hash(loaded_result, keys):
    pin = [m for m in loaded_result["maps"] if m["name"] == "calls_by_tgid"][0]["pin"]
    with sc.obj_get(pin) as fd:
        sc.map_update_batch(fd, [(struct.pack("<I", k), struct.pack("<Q", k + 1)) for k in keys])


def hash_contents(loaded_result):
    pin = [m for m in loaded_result["maps"] if m["name"] == "calls_by_tgid"][0]["pin"]
    with sc.obj_get(pin) as fd:
        info = sc.map_info(fd)
        return dict(sc.map_lookup_batch(fd, info["key_size"], info["value_size"], info["max_entries"]))


def test_hash_capacity_is_checked_before_writing(pin_root, loaded):
    fill_hash(loaded, range(HASH_CAPACITY - 4))
    before = hash_contents(loaded)
    entries = [{"key": 100000 + i, "value": 1} for i in range(8)]
    for check_mode in (True, False):
        with pytest.raises(BpfError) as err:
            apply(pin_root, "calls_by_tgid", entries, check_mode=check_mode)
        assert "holds 1020 of its 1024 entries" in str(err.value)
        assert "would need 1028" in str(err.value)
        assert hash_contents(loaded) == before
    # Updating keys the map holds needs no room.
    assert apply(pin_root, "calls_by_tgid", [{"key": 3, "value": 9}])["changed"]


def test_exclusive_recovers_a_full_hash(pin_root, loaded):
    fill_hash(loaded, range(HASH_CAPACITY))
    entries = [{"key": 100000 + i, "value": i + 1} for i in range(20)]
    predicted = apply(pin_root, "calls_by_tgid", entries, check_mode=True, exclusive=True)
    assert predicted["changed"] and predicted["writes"] == HASH_CAPACITY + 20
    res = apply(pin_root, "calls_by_tgid", entries, exclusive=True)
    assert res["changed"] and res["writes"] == predicted["writes"]
    assert hash_contents(loaded) == dict((struct.pack("<I", 100000 + i), struct.pack("<Q", i + 1))
                                         for i in range(20))
    assert not apply(pin_root, "calls_by_tgid", entries, check_mode=True, exclusive=True)["changed"]


def test_a_failed_write_restores_the_previous_entries(pin_root, loaded, monkeypatch):
    """Another writer (a program) fills the map between the capacity check and the writes:
    the kernel refuses a write half-way, and what was written is undone."""
    fill_hash(loaded, range(10))
    before = hash_contents(loaded)

    def concurrent_writer(self, writes):
        fill_hash(loaded, range(50000, 50000 + HASH_CAPACITY - 10 - 2))
    monkeypatch.setattr(MapBackend, "_check_capacity", concurrent_writer)
    entries = [{"key": 1, "value": 77}] + [{"key": 100000 + i, "value": 1} for i in range(4)]
    with pytest.raises(BpfError) as err:
        apply(pin_root, "calls_by_tgid", entries)
    assert err.value.errno == 7  # E2BIG
    assert "previous entries were restored" in str(err.value)
    after = hash_contents(loaded)
    assert len(after) == HASH_CAPACITY - 2
    assert dict((k, v) for k, v in after.items() if struct.unpack("<I", k)[0] < 50000) == before


def test_array_lookup_range_reads_the_keys_asked_for():
    with sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, 8, 10) as m:
        for i in range(10):
            sc.map_update(m, struct.pack("=I", i), struct.pack("=Q", 100 + i))
        assert sc.array_lookup_range(m, 8, 0, 3) == struct.pack("=3Q", 100, 101, 102)
        assert sc.array_lookup_range(m, 8, 4, 6) == struct.pack("=6Q", *range(104, 110))
        assert sc.array_lookup_range(m, 8, 8, 5) == struct.pack("=2Q", 108, 109)  # past the end: what is there
