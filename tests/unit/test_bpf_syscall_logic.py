"""Pure logic of bpf_syscall: CPU lists, per-CPU sizes, instruction encoding, name tables,
struct layouts against the UAPI, fd ownership. Needs no BPF privileges."""
import os
import struct
from ctypes import sizeof

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_structs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_call, bpf_maps, bpf_objects
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


# --- CPU lists and per-CPU value sizes ------------------------------------------------------

@pytest.mark.parametrize("text, cpus", [
    ("0", [0]),
    ("0-1\n", [0, 1]),
    ("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]),
    (" 2 , 4-5 ", [2, 4, 5]),
    ("", []),
])
def test_parse_cpu_list(text, cpus):
    assert bs.parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["a-b", "3-1", "0-", "1,x"])
def test_parse_cpu_list_rejects_garbage(text):
    with pytest.raises(BpfError, match="malformed CPU list"):
        bs.parse_cpu_list(text)


def test_possible_cpus_counts_listed_cpus(tmp_path):
    path = tmp_path / "possible"
    path.write_text("0-5,8\n")
    assert bs.possible_cpus(str(path)) == 7


def test_possible_cpus_reports_unreadable_file(tmp_path):
    with pytest.raises(BpfError, match="possible CPUs"):
        bs.possible_cpus(str(tmp_path / "missing"))


def test_possible_cpus_of_this_machine_is_cached_and_positive():
    first = bs.possible_cpus()
    assert first >= 1
    assert bs.possible_cpus() == first
    assert bpf_maps._POSSIBLE_CPUS == first


@pytest.mark.parametrize("value_size, ncpus, expected", [
    (8, 1, 8), (4, 3, 24), (12, 2, 32), (16, 4, 64), (1, 2, 16),
])
def test_percpu_value_size_rounds_each_slot_to_8_bytes(value_size, ncpus, expected):
    assert bs.percpu_value_size(value_size, ncpus) == expected


def test_percpu_map_types():
    for t in (bs.BPF_MAP_TYPE_PERCPU_ARRAY, bs.BPF_MAP_TYPE_PERCPU_HASH,
              bs.BPF_MAP_TYPE_LRU_PERCPU_HASH, bs.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE):
        assert bs.is_percpu_map_type(t)
    for t in (bs.BPF_MAP_TYPE_ARRAY, bs.BPF_MAP_TYPE_HASH, bs.BPF_MAP_TYPE_LRU_HASH,
              bs.BPF_MAP_TYPE_RINGBUF):
        assert not bs.is_percpu_map_type(t)


# --- instruction encoding ---------------------------------------------------------------------

def test_encoders_match_the_kernel_encoding():
    # Bytes as clang/bpftool produce them on little-endian hosts.
    assert bpf_insn.mov64_imm(1, 5) == bytes.fromhex("b701000005000000")
    assert bpf_insn.mov64_imm(0, -1) == bytes.fromhex("b7000000ffffffff")
    assert bpf_insn.mov64_reg(2, 10) == bytes.fromhex("bfa2000000000000")
    assert bpf_insn.alu64_imm(bpf_insn.BPF_ADD, 2, -4) == bytes.fromhex("07020000fcffffff")
    assert bpf_insn.st_mem(bpf_insn.BPF_W, 10, -4, 0) == bytes.fromhex("620afcff00000000")
    assert bpf_insn.ldx_mem(bpf_insn.BPF_DW, 1, 0, 8) == bytes.fromhex("7901080000000000")
    assert bpf_insn.stx_mem(bpf_insn.BPF_DW, 0, 1, 0) == bytes.fromhex("7b10000000000000")
    assert bpf_insn.atomic_add(bpf_insn.BPF_DW, 0, 1, 0) == bytes.fromhex("db10000000000000")
    assert bpf_insn.jmp_imm(bpf_insn.BPF_JEQ, 0, 0, 2) == bytes.fromhex("1500020000000000")
    assert bpf_insn.call(bpf_insn.BPF_FUNC_map_lookup_elem) == bytes.fromhex("8500000001000000")
    assert bpf_insn.exit_insn() == bytes.fromhex("9500000000000000")


def test_ld_map_fd_is_a_two_slot_pseudo_map_fd_load():
    raw = bpf_insn.ld_map_fd(1, 7)
    assert len(raw) == 16
    code, regs, off, imm = struct.unpack("<BBhi", raw[:8])
    assert (code, regs & 0xf, regs >> 4, off, imm) == (0x18, 1, bpf_insn.BPF_PSEUDO_MAP_FD, 0, 7)
    assert raw[8:] == bytes(8)


def test_ld_imm64_splits_the_value():
    raw = bpf_insn.ld_imm64(3, 0x1122334455667788)
    assert struct.unpack("<i", raw[4:8])[0] == 0x55667788
    assert struct.unpack("<i", raw[12:16])[0] == 0x11223344


def test_insn_accepts_unsigned_32_bit_immediates():
    assert bpf_insn.insn(0xb7, 0, 0, 0, 0xffffffff) == bpf_insn.insn(0xb7, 0, 0, 0, -1)


# --- names and constants ---------------------------------------------------------------------

@pytest.mark.parametrize("prefix, table", [
    ("BPF_PROG_TYPE_", bs.PROG_TYPE_NAMES),
    ("BPF_MAP_TYPE_", bs.MAP_TYPE_NAMES),
    ("BPF_LINK_TYPE_", bs.LINK_TYPE_NAMES),
])
def test_type_constants_and_name_tables_agree(prefix, table):
    constants = {k: v for k, v in vars(bs).items() if k.startswith(prefix)}
    assert len(constants) == len(table)
    for name, value in constants.items():
        assert table[value] == name[len(prefix):].lower()


def test_attach_type_constants_and_names_agree():
    for value, name in enumerate(bs.ATTACH_TYPE_NAMES):
        assert getattr(bs, "BPF_" + name.upper()) == value


def test_attach_type_numbers_from_the_uapi():
    assert (bs.BPF_XDP, bs.BPF_PERF_EVENT, bs.BPF_TCX_INGRESS, bs.BPF_TCX_EGRESS,
            bs.BPF_TRACE_RAW_TP, bs.BPF_NETKIT_PRIMARY) == (37, 41, 46, 47, 23, 54)


def test_type_names():
    assert bs.prog_type_name(bs.BPF_PROG_TYPE_SCHED_CLS) == "sched_cls"
    assert bs.prog_type_name(bs.BPF_PROG_TYPE_RAW_TRACEPOINT) == "raw_tracepoint"
    assert bs.map_type_name(bs.BPF_MAP_TYPE_LRU_PERCPU_HASH) == "lru_percpu_hash"
    assert bs.map_type_name(bs.BPF_MAP_TYPE_RINGBUF) == "ringbuf"
    assert bs.link_type_name(bs.BPF_LINK_TYPE_TCX) == "tcx"
    assert bs.link_type_name(bs.BPF_LINK_TYPE_NETKIT) == "netkit"
    assert bs.prog_type_name(999) == "unknown(999)"
    assert bs.attach_type_name(-1) == "unknown(-1)"


def test_syscall_numbers():
    assert bs.sys_bpf_number("x86_64") == 321
    assert bs.sys_bpf_number("aarch64") == 280
    with pytest.raises(BpfError, match="syscall number"):
        bs.sys_bpf_number("pdp11")


# --- layouts against include/uapi/linux/bpf.h and libbpf 1.1's bpf/bpf.h -------------------------

@pytest.mark.parametrize("cls, size", [
    (bpf_structs.RawTracepointAttr, 24), (bpf_structs.MprogLinkCreateAttr, 32), (bpf_structs.ProgQueryAttr, 64),
    (bpf_structs.BpfProgInfo, 232), (bpf_structs.BpfMapInfo, 88), (bpf_structs.BpfLinkInfo, 64),
    (bpf_structs.MapCreateOpts, 48), (bpf_structs.ProgLoadOpts, 104), (bpf_structs.MapBatchOpts, 24),
    (bpf_structs.FlagsOpts, 16), (bpf_structs.TestRunOpts, 80), (bpf_structs.LinkCreateOpts, 64),
    (bpf_structs.LinkUpdateOpts, 16),
])
def test_struct_sizes(cls, size):
    assert sizeof(cls) == size


@pytest.mark.parametrize("cls, field, offset", [
    (bpf_structs.MprogLinkCreateAttr, "relative_fd", 16), (bpf_structs.MprogLinkCreateAttr, "expected_revision", 24),
    (bpf_structs.ProgQueryAttr, "count", 24), (bpf_structs.ProgQueryAttr, "link_ids", 40),
    (bpf_structs.ProgQueryAttr, "revision", 56),
    (bpf_structs.BpfProgInfo, "map_ids", 56), (bpf_structs.BpfProgInfo, "name", 64),
    (bpf_structs.BpfProgInfo, "netns_dev", 88), (bpf_structs.BpfProgInfo, "btf_id", 128),
    (bpf_structs.BpfProgInfo, "run_time_ns", 192), (bpf_structs.BpfProgInfo, "verified_insns", 216),
    (bpf_structs.BpfMapInfo, "name", 24), (bpf_structs.BpfMapInfo, "btf_id", 64), (bpf_structs.BpfMapInfo, "map_extra", 80),
    (bpf_structs.BpfLinkInfo, "u", 16),
    (bpf_structs.MapCreateOpts, "map_extra", 32), (bpf_structs.ProgLoadOpts, "fd_array", 48),
    (bpf_structs.ProgLoadOpts, "log_buf", 96), (bpf_structs.TestRunOpts, "ctx_in", 32),
    (bpf_structs.TestRunOpts, "retval", 56), (bpf_structs.TestRunOpts, "batch_size", 76),
    (bpf_structs.LinkCreateOpts, "target_btf_id", 28), (bpf_structs.LinkCreateOpts, "bpf_cookie", 32),
])
def test_field_offsets(cls, field, offset):
    assert getattr(cls, field).offset == offset


def test_libbpf_options_carry_their_size():
    # libbpf refuses (EINVAL) an option struct whose sz is smaller than a size_t
    opts = bpf_structs.LinkUpdateOpts(flags=4)
    assert (opts.sz, opts.flags, opts.old_prog_fd) == (16, 4, 0)


def test_perf_event_link_names_share_one_offset():
    # The kernel reads the name buffer of uprobe/kprobe/tracepoint at one place.
    for member in ("uprobe", "kprobe", "tracepoint"):
        sub = getattr(bpf_structs._PerfEventTarget, member)
        assert sub.offset == 0
    assert bpf_structs._LinkPerfEvent.u.offset == 8
    assert bpf_structs._PerfUprobe.name_len.offset == bpf_structs._PerfKprobe.name_len.offset == 8


# --- small helpers ---------------------------------------------------------------------------

def test_object_names_are_sanitised_and_truncated():
    assert bpf_call.obj_name("my-prog name") == b"my_prog_name"
    assert bpf_call.obj_name("a" * 40) == b"a" * 15
    assert bpf_call.obj_name("") == b""
    assert bpf_call.obj_name("ok_name.v2") == b"ok_name.v2"


def test_verifier_reason_skips_the_statistics():
    log = ("0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\n"
           "processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0\n\n")
    assert bs.verifier_reason(log) == "R0 !read_ok"
    assert bs.verifier_reason("") is None


def test_splitter_cuts_records():
    assert bpf_maps._splitter(2, 3).unpack_from(b"aabbccdd") == (b"aa", b"bb", b"cc")


# --- BpfFd ----------------------------------------------------------------------------------

def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_bpffd_closes_once_and_refuses_use_after_close():
    r, w = os.pipe()
    os.close(w)
    fd = bs.BpfFd(r)
    assert int(fd) == r and fd.fileno() == r
    fd.close()
    assert not _is_open(r)
    fd.close()  # second close does nothing
    with pytest.raises(ValueError):
        int(fd)


def test_bpffd_context_manager_and_release():
    r, w = os.pipe()
    with bs.BpfFd(r) as fd:
        assert fd.fd == r
    assert not _is_open(r)
    kept = bs.BpfFd(w)
    num = kept.release()
    del kept
    assert _is_open(num)
    os.close(num)


def test_bpffd_closes_when_collected():
    r, w = os.pipe()
    os.close(w)
    fd = bs.BpfFd(r)
    del fd
    assert not _is_open(r)


def test_perf_event_link_facts_only_where_the_kernel_gives_them():
    info = bs.BpfLinkInfo()
    info.type = bs.BPF_LINK_TYPE_PERF_EVENT
    # Linux < 6.6 fills nothing for perf_event links
    assert bpf_objects._link_fields(info, None) == {}  # pylint: disable=protected-access
    info.u.perf_event.type = bs.BPF_PERF_EVENT_TRACEPOINT
    facts = bpf_objects._link_fields(info, "netif_receive_skb")  # pylint: disable=protected-access
    assert (facts["perf_event_type_name"], facts["tp_name"]) == ("tracepoint", "netif_receive_skb")
