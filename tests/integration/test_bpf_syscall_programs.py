"""bpf_syscall's programs and objects against the running kernel (root): pins and read-only or
write-only fds, loads and the verifier log, test runs and run statistics, object info, ids and
fds by id, fd kinds."""
import errno
import os

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from map_values import NCPUS, percpu, percpu_sum, u32
from tiny_programs import counter_program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for bpf()")


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
def counter():
    """(map fd, program fd) of the counter program."""
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, name="t_counter") as m:
        with bs.prog_load(bs.BPF_PROG_TYPE_XDP, counter_program(m), name="t_xdp_count") as p:
            yield m, p


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
