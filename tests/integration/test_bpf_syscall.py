"""bpf_syscall against the running kernel (root): maps, batch reads, pins,
programs, test runs, object info, links, fd kinds."""
import ctypes
import errno
import os
import platform
import shutil
import struct
import subprocess

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_call
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for bpf()")

NCPUS = bs.possible_cpus()


# --- helpers and fixtures ------------------------------------------------------------------------

@pytest.fixture
def pin_dir():
    """/sys/fs/bpf/test_syscall_<pid>, removed afterwards."""
    path = os.path.join(bpffs.DEFAULT_MOUNT, "test_syscall_%d" % os.getpid())
    bpffs.remove_tree(path)
    os.mkdir(path)
    yield path
    bpffs.remove_tree(path)
    assert not os.path.exists(path)


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


def u32(n):
    return struct.pack("<I", n)


def percpu(values):
    """A per-CPU value buffer of 8-byte slots."""
    return b"".join(struct.pack("<Q", v) for v in values)


def percpu_sum(raw):
    return sum(v for (v,) in struct.iter_unpack("<Q", raw))


def counter_program(map_fd):
    """XDP: increment slot 0 of a per-CPU u64 array, return XDP_PASS."""
    return b"".join([
        bpf_insn.st_mem(bpf_insn.BPF_W, bpf_insn.BPF_REG_10, -4, 0),          # u32 key = 0 on the stack
        bpf_insn.mov64_reg(bpf_insn.BPF_REG_2, bpf_insn.BPF_REG_10),
        bpf_insn.alu64_imm(bpf_insn.BPF_ADD, bpf_insn.BPF_REG_2, -4),         # r2 = &key
        bpf_insn.ld_map_fd(bpf_insn.BPF_REG_1, map_fd),                 # r1 = map
        bpf_insn.call(bpf_insn.BPF_FUNC_map_lookup_elem),
        bpf_insn.jmp_imm(bpf_insn.BPF_JEQ, bpf_insn.BPF_REG_0, 0, 2),         # no value: skip the increment
        bpf_insn.mov64_imm(bpf_insn.BPF_REG_1, 1),
        bpf_insn.atomic_add(bpf_insn.BPF_DW, bpf_insn.BPF_REG_0, bpf_insn.BPF_REG_1, 0),
        bpf_insn.mov64_imm(bpf_insn.BPF_REG_0, bs.XDP_PASS),
        bpf_insn.exit_insn(),
    ])


def return_program(prog_type, value, name, **kw):
    return bs.prog_load(prog_type, bpf_insn.mov64_imm(0, value) + bpf_insn.exit_insn(), name=name, **kw)


@pytest.fixture
def counter():
    """(map fd, program fd) of the counter program."""
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, name="t_counter") as m:
        with bs.prog_load(bs.BPF_PROG_TYPE_XDP, counter_program(m), name="t_xdp_count") as p:
            yield m, p


# --- maps -------------------------------------------------------------------------------------

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


# --- pins ---------------------------------------------------------------------------------------

def test_pin_and_get_a_map_and_a_program(pin_dir, counter):
    m, p = counter
    map_pin, prog_pin = os.path.join(pin_dir, "map"), os.path.join(pin_dir, "prog")
    bs.obj_pin(m, map_pin)
    bs.obj_pin(p, prog_pin)
    with bs.obj_get(map_pin) as m2, bs.obj_get(prog_pin) as p2:
        assert bs.map_info(m2)["id"] == bs.map_info(m)["id"]
        assert bs.prog_info(p2)["id"] == bs.prog_info(p)["id"]
        assert bs.fd_kind(m2) == "map"
        assert bs.fd_kind(p2) == "prog"
    with pytest.raises(BpfError, match="already pinned") as exc:
        bs.obj_pin(m, map_pin)
    assert exc.value.errno == errno.EEXIST


def test_obj_get_of_an_empty_path_says_nothing_is_pinned(pin_dir):
    path = os.path.join(pin_dir, "absent")
    with pytest.raises(BpfError, match="Nothing is pinned at %s" % path) as exc:
        bs.obj_get(path)
    assert exc.value.errno == errno.ENOENT


def test_pin_outside_bpffs_is_refused(tmp_path):
    with bs.map_create(bs.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m:
        with pytest.raises(BpfError, match="not on bpffs") as exc:
            bs.obj_pin(m, str(tmp_path / "pin"))
    assert exc.value.errno == errno.EPERM


def test_read_only_and_write_only_fds(pin_dir):
    path = os.path.join(pin_dir, "map")
    with bs.map_create(bs.BPF_MAP_TYPE_HASH, 4, 4, 4) as m:
        bs.map_update(m, u32(1), u32(2))
        bs.obj_pin(m, path)
    with bs.obj_get(path, bs.BPF_F_RDONLY) as ro:
        assert bs.map_lookup(ro, u32(1), 4) == u32(2)
        with pytest.raises(BpfError, match="read-only") as exc:
            bs.map_update(ro, u32(1), u32(3))
        assert exc.value.errno == errno.EPERM
        with pytest.raises(BpfError) as exc:
            bs.map_delete(ro, u32(1))
        assert exc.value.errno == errno.EPERM
        assert bs.fd_kind(ro) == "map"
    with bs.obj_get(path, bs.BPF_F_WRONLY) as wo:
        assert bs.fd_kind(wo) == "map"
        with pytest.raises(BpfError) as exc:
            bs.map_lookup(wo, u32(1), 4)
        assert exc.value.errno == errno.EPERM
    with bs.obj_get(path) as rw:
        assert bs.map_lookup(rw, u32(1), 4) == u32(2)


# --- programs ------------------------------------------------------------------------------------

def test_test_run_returns_xdp_pass_and_the_counter_moves(counter):
    m, p = counter
    packet = bytes(range(64))
    result = bs.prog_test_run(p, packet, repeat=5)
    assert result["retval"] == bs.XDP_PASS
    assert result["data_out"] == packet
    assert result["duration_ns"] >= 0
    assert percpu_sum(bs.map_lookup(m, u32(0), bs.percpu_value_size(8))) == 5
    bs.prog_test_run(p, packet)
    assert percpu_sum(bs.map_lookup(m, u32(0), bs.percpu_value_size(8))) == 6


def test_prog_info(counter):
    m, p = counter
    info = bs.prog_info(p)
    assert info["type"] == bs.BPF_PROG_TYPE_XDP and info["type_name"] == "xdp"
    assert info["name"] == "t_xdp_count"
    assert len(info["tag"]) == 16 and int(info["tag"], 16) != 0
    assert info["map_ids"] == [bs.map_info(m)["id"]]
    assert info["xlated_len"] > 0 and info["jited_len"] > 0
    assert info["created_by_uid"] == 0
    assert info["load_time"] > 0
    assert info["verified_insns"] > 0
    for key in ("run_time_ns", "run_cnt", "recursion_misses", "btf_id"):
        assert key in info


def test_run_statistics_count_while_enabled(counter):
    _m, p = counter
    with bs.enable_stats():
        bs.prog_test_run(p, bytes(64), repeat=10)
        assert bs.prog_info(p)["run_cnt"] == 10


def test_a_rejected_program_carries_the_verifier_log():
    with pytest.raises(BpfError) as exc:
        bs.prog_load(bs.BPF_PROG_TYPE_XDP, bpf_insn.exit_insn(), name="t_reject")  # r0 never set
    err = exc.value
    assert err.errno == errno.EACCES
    assert "R0 !read_ok" in err.log
    assert "R0 !read_ok" in str(err)
    assert "'t_reject'" in str(err)


def test_prog_load_without_a_log():
    with pytest.raises(BpfError) as exc:
        bs.prog_load(bs.BPF_PROG_TYPE_XDP, bpf_insn.exit_insn(), name="t_reject", log_level=0)
    assert exc.value.errno == errno.EACCES and exc.value.log is None


def test_prog_load_checks_the_instruction_length():
    with pytest.raises(BpfError, match="multiple of 8"):
        bs.prog_load(bs.BPF_PROG_TYPE_XDP, b"\x95\x00\x00")


# --- ids ---------------------------------------------------------------------------------------

def test_ids_and_fds_by_id(counter):
    m, p = counter
    prog_id, map_id = bs.prog_info(p)["id"], bs.map_info(m)["id"]
    assert prog_id in bs.prog_ids()
    assert map_id in bs.map_ids()
    ids = list(bs.prog_ids())
    assert ids == sorted(ids)
    with bs.prog_fd_by_id(prog_id) as p2, bs.map_fd_by_id(map_id) as m2:
        assert bs.prog_info(p2)["tag"] == bs.prog_info(p)["tag"]
        assert bs.map_info(m2)["name"] == "t_counter"
    with bs.map_fd_by_id(map_id, bs.BPF_F_RDONLY) as ro:
        with pytest.raises(BpfError):
            bs.map_update(ro, u32(0), percpu([0] * NCPUS))


def test_fd_by_unknown_id():
    unused = max(list(bs.prog_ids()) + [0]) + 1000000
    with pytest.raises(BpfError, match="(?i)no program with id %d" % unused) as exc:
        bs.prog_fd_by_id(unused)
    assert exc.value.errno == errno.ENOENT


# --- links -------------------------------------------------------------------------------------

def test_raw_tracepoint_link():
    with return_program(bs.BPF_PROG_TYPE_RAW_TRACEPOINT, 0, "t_rawtp") as p, \
            bs.raw_tracepoint_open("sys_enter", p) as link:
        info = bs.link_info(link)
        assert info["type"] == bs.BPF_LINK_TYPE_RAW_TRACEPOINT
        assert info["type_name"] == "raw_tracepoint"
        assert info["tp_name"] == "sys_enter"
        assert info["prog_id"] == bs.prog_info(p)["id"]
        assert info["id"] in bs.link_ids()
        assert bs.fd_kind(link) == "link"
        with bs.link_fd_by_id(info["id"]) as again:
            assert bs.link_info(again) == info


def _cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.fixture
def cgroup_dir():
    """An empty cgroup v2 of this test's own (no process in it), removed afterwards."""
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    path = os.path.join(root, "test_syscall_%d" % os.getpid())
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield path, fd
    os.close(fd)
    os.rmdir(path)


def test_link_create_info_and_detach(cgroup_dir):
    path, cg_fd = cgroup_dir
    with return_program(bs.BPF_PROG_TYPE_CGROUP_SKB, 1, "t_cgskb") as p, \
            bs.link_create(p, cg_fd, bs.BPF_CGROUP_INET_INGRESS) as link:
        info = bs.link_info(link)
        assert info["type_name"] == "cgroup"
        assert info["attach_type_name"] == "cgroup_inet_ingress"
        assert info["cgroup_id"] == os.stat(path).st_ino
        assert info["prog_id"] == bs.prog_info(p)["id"]
        bs.link_detach(link)
        assert bs.link_info(link)["cgroup_id"] == 0  # the link no longer points at the cgroup


def _tracefs_events():
    for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.isdir(os.path.join(base, "events")):
            return os.path.join(base, "events")
    return None


@pytest.fixture
def tracefs_events():
    """The tracefs events directory; mounts tracefs for the test when it is absent."""
    events = _tracefs_events()
    mounted = None
    if events is None:
        if subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
                          check=False).returncode == 0:
            mounted = "/sys/kernel/tracing"
        events = _tracefs_events()
    if events is None:
        pytest.skip("tracefs is not available")
    yield events
    if mounted:
        subprocess.run(["umount", mounted], check=False)


PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8


def perf_event_open(event_type, config, config1=0, config2=0):
    """A perf event on CPU 0 for all processes (struct perf_event_attr, PERF_ATTR_SIZE_VER5)."""
    attr = ctypes.create_string_buffer(112)
    struct.pack_into("=IIQQ", attr, 0, event_type, 112, config, 1)  # sample_period 1
    struct.pack_into("=QQ", attr, 56, config1, config2)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(PERF_EVENT_OPEN[platform.machine()], attr, -1, 0, -1,
                      PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "perf_event_open")
    return fd


def test_perf_event_link_reports_the_tracepoint_name(tracefs_events):
    with open(os.path.join(tracefs_events, "sched", "sched_process_exec", "id")) as f:
        tp_id = int(f.read())
    pfd = perf_event_open(PERF_TYPE_TRACEPOINT, tp_id)
    try:
        with return_program(bs.BPF_PROG_TYPE_TRACEPOINT, 0, "t_tp") as p, \
                bs.link_create(p, pfd, bs.BPF_PERF_EVENT, bpf_cookie=0xc0ffee) as link:
            info = bs.link_info(link)
    finally:
        os.close(pfd)
    assert info["type_name"] == "perf_event"
    assert info["perf_event_type_name"] == "tracepoint"
    assert info["tp_name"] == "sched_process_exec"
    assert info["cookie"] == 0xc0ffee


def test_perf_event_link_reports_the_uprobe_file(tmp_path):
    # A private copy of a binary that no process maps: the probe is never hit.
    target = tmp_path / "probe_target"
    shutil.copy("/bin/true", str(target))
    with open("/sys/bus/event_source/devices/uprobe/type") as f:
        uprobe_pmu = int(f.read())
    cpath = ctypes.create_string_buffer(os.fsencode(str(target)))
    pfd = perf_event_open(uprobe_pmu, 0, ctypes.addressof(cpath), 0x40)  # path, offset
    try:
        with return_program(bs.BPF_PROG_TYPE_KPROBE, 0, "t_uprobe") as p, \
                bs.link_create(p, pfd, bs.BPF_PERF_EVENT, bpf_cookie=7) as link:
            info = bs.link_info(link)
    finally:
        os.close(pfd)
    assert info["perf_event_type_name"] == "uprobe"
    assert info["file_name"] == str(target)
    assert info["offset"] == 0x40
    assert info["cookie"] == 7


# --- kinds -------------------------------------------------------------------------------------

def test_fd_kind_of_other_files_and_btf():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        assert bs.fd_kind(fd) is None
    finally:
        os.close(fd)
    with bs.btf_fd_by_id(next(bs.btf_ids())) as btf:
        assert bs.fd_kind(btf) is None


def test_fd_kind_of_a_closed_fd():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(BpfError, match="Nothing is open as fd %d" % r) as exc:
        bs.fd_kind(r)
    assert exc.value.errno in (errno.EBADF, errno.EBADFD)


def test_fd_kind_of_maps_without_batch_support():
    with bs.map_create(bs.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096) as ring, \
            bs.map_create(bs.BPF_MAP_TYPE_QUEUE, 0, 4, 4) as queue:
        assert bs.fd_kind(ring) == "map"
        assert bs.fd_kind(queue) == "map"
        assert bs.map_info(ring)["type_name"] == "ringbuf"


def test_info_of_the_wrong_kind_is_refused(counter):
    m, p = counter
    for func, fd in ((bs.prog_info, m), (bs.map_info, p), (bs.link_info, m)):
        with pytest.raises(BpfError, match="not a") as exc:
            func(fd)
        assert exc.value.errno == errno.EINVAL
