"""btf: enums read from hand-built BTF (every kind the walker must step over, both byte orders)
and from this kernel's /sys/kernel/btf/vmlinux, checked against tracefs and UAPI constants."""
import os
import re
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import btf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


class BtfBuilder:
    """Builds BTF bytes: types as (kind, name, vlen, kind_flag, size_or_type, trailer bytes)."""

    def __init__(self, order="<"):
        self.order = order
        self.strings = b"\0"
        self.types = b""

    def name(self, text):
        if not text:
            return 0
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(self, kind, name="", vlen=0, kind_flag=0, size=0, trailer=b""):
        info = kind << 24 | vlen | kind_flag << 31
        self.types += struct.pack(self.order + "3I", self.name(name), info, size) + trailer
        return self

    def pack(self, fmt, *values):
        return struct.pack(self.order + fmt, *values)

    def enum(self, name, members, signed=False):
        trailer = b"".join(self.pack("Ii" if signed else "II", self.name(n), v) for n, v in members)
        return self.add(btf.KIND_ENUM, name, len(members), int(signed), 4, trailer)

    def enum64(self, name, members, signed=False):
        trailer = b"".join(self.pack("3I", self.name(n), v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF) for n, v in members)
        return self.add(btf.KIND_ENUM64, name, len(members), int(signed), 8, trailer)

    def bytes(self):
        header = struct.pack(self.order + "HBBI4I", btf.BTF_MAGIC, 1, 0, 24, 0, len(self.types),
                             len(self.types), len(self.strings))
        return header + self.types + self.strings


def sample(order="<"):
    """One type of every kind with a trailer, then the enums, so a wrong step size misreads them."""
    b = BtfBuilder(order)
    b.add(btf.KIND_INT, "int", size=4, trailer=b.pack("I", 32))
    b.add(btf.KIND_PTR, size=1)
    b.add(btf.KIND_ARRAY, trailer=b.pack("3I", 1, 1, 16))
    b.add(btf.KIND_STRUCT, "pair", 2, size=8, trailer=b.pack("3I", b.name("a"), 1, 0) + b.pack("3I", b.name("b"), 1, 32))
    b.add(btf.KIND_UNION, "u", 1, size=4, trailer=b.pack("3I", b.name("x"), 1, 0))
    b.add(btf.KIND_FWD, "task_struct")
    b.add(btf.KIND_FUNC_PROTO, "", 2, size=1, trailer=b.pack("2I", 0, 1) * 2)
    b.add(btf.KIND_VAR, "counter", size=1, trailer=b.pack("I", 1))
    b.add(btf.KIND_DATASEC, ".data", 1, size=4, trailer=b.pack("3I", 8, 0, 4))
    b.add(btf.KIND_DECL_TAG, "tag", size=4, trailer=b.pack("i", -1))
    b.add(16, "double", size=8)  # FLOAT: no trailer
    b.enum("decoy_reason", [("DECOY", 7)])
    b.enum("drop_reason", [("DROP_NONE", 0), ("DROP_NO_SOCKET", 3), ("DROP_ALIAS", 3), ("DROP_BIG", 0xFFFFFFFF)])
    b.enum("delta", [("MINUS_ONE", -1), ("PLUS_ONE", 1)], signed=True)
    b.enum64("wide", [("HIGH", 1 << 40), ("TOP", (1 << 64) - 1)])
    b.enum64("swide", [("NEG", -5)], signed=True)
    return b.bytes()


@pytest.mark.parametrize("order", ["<", ">"])
def test_enums_of_hand_built_btf(order):
    parsed = btf.Btf(sample(order), "sample")
    assert parsed.enum("drop_reason") == {0: "DROP_NONE", 3: "DROP_NO_SOCKET", 0xFFFFFFFF: "DROP_BIG"}  # first name wins
    assert parsed.enum("delta") == {-1: "MINUS_ONE", 1: "PLUS_ONE"}
    assert parsed.enum("wide") == {1 << 40: "HIGH", (1 << 64) - 1: "TOP"}
    assert parsed.enum("swide") == {-5: "NEG"}
    assert [t[0] for t in parsed.types()] == list(range(1, 17))


def test_a_name_that_is_not_an_enum_is_not_found():
    parsed = btf.Btf(sample(), "sample")
    for name in ("pair", "task_struct", "DROP_NONE", "drop", "nothing"):
        with pytest.raises(BpfError, match="sample has no enum named %s" % name):
            parsed.enum(name)


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb\x01", "shorter than a BTF header"),
    (b"\x00" * 24, "is not BTF: magic 0x0000"),
    (sample()[:-3], "truncated or corrupt"),
])
def test_malformed_btf(data, message):
    with pytest.raises(BpfError, match=message):
        btf.Btf(data, "blob")


def test_unknown_kind_is_reported():
    b = BtfBuilder()
    b.add(30, "future")
    with pytest.raises(BpfError, match="type 1 has unknown kind 30"):
        btf.Btf(b.bytes(), "blob").enum("future")


def test_missing_file(tmp_path):
    with pytest.raises(BpfError, match="cannot read BTF from .*ENOENT"):
        btf.read_btf(str(tmp_path / "vmlinux"))


# -- this kernel ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vmlinux():
    if not os.path.exists(btf.VMLINUX_BTF):
        pytest.fail("this kernel has no %s; the collection's hosts need BTF" % btf.VMLINUX_BTF)
    return btf.read_btf()


def test_uapi_enum_matches_the_kernel_layer(vmlinux):
    names = dict((name, value) for value, name in vmlinux.enum("bpf_map_type").items())
    for name in ("BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_PERCPU_HASH", "BPF_MAP_TYPE_PERCPU_ARRAY",
                 "BPF_MAP_TYPE_LRU_HASH"):
        assert names[name] == getattr(sc, name)
    assert names["BPF_MAP_TYPE_TASK_STORAGE"] == 29


def test_skb_drop_reason_matches_the_kfree_skb_tracepoint(vmlinux):
    """The kfree_skb tracepoint prints reasons by name from the same enum: its format file lists
    { number, "NAME" } pairs with the SKB_DROP_REASON_ prefix cut, evaluated by this kernel."""
    root = perf_event.tracefs_root()
    if root is None:
        pytest.skip("tracefs is not mounted")
    with open(os.path.join(root, "events", "skb", "kfree_skb", "format")) as f:
        pairs = dict((int(n), name) for n, name in re.findall(r'\{ (\d+), "([A-Z0-9_]+)" \}', f.read()))
    reasons = vmlinux.enum("skb_drop_reason")
    assert len(pairs) > 50
    for number, name in pairs.items():
        assert reasons[number] == "SKB_DROP_REASON_" + name
    assert "NO_SOCKET" in pairs.values()


def test_enum_values_reads_the_running_kernel():
    values = btf.enum_values("skb_drop_reason")
    assert values[0] == "SKB_NOT_DROPPED_YET"
