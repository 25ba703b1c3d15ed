"""bpf_syscall's links against the running kernel (root): raw tracepoint, cgroup and perf event
links, their info and detach."""
import ctypes
import os
import platform
import shutil
import struct
import subprocess

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from tiny_programs import return_program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for bpf()")


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


def perf_event_link_info(pfd, prog_type, name, cookie):
    """The info of a bpf_link (with ``cookie``) from a program of ``prog_type`` to the perf event
    ``pfd``, which is closed afterwards."""
    try:
        with return_program(prog_type, 0, name) as p, \
                bs.link_create(p, pfd, bs.BPF_PERF_EVENT, bpf_cookie=cookie) as link:
            return bs.link_info(link)
    finally:
        os.close(pfd)


def test_perf_event_link_reports_the_tracepoint_name(tracefs_events):
    with open(os.path.join(tracefs_events, "sched", "sched_process_exec", "id")) as f:
        tp_id = int(f.read())
    info = perf_event_link_info(perf_event_open(PERF_TYPE_TRACEPOINT, tp_id), bs.BPF_PROG_TYPE_TRACEPOINT, "t_tp", 0xc0ffee)
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
    info = perf_event_link_info(pfd, bs.BPF_PROG_TYPE_KPROBE, "t_uprobe", 7)
    assert info["perf_event_type_name"] == "uprobe"
    assert info["file_name"] == str(target)
    assert info["offset"] == 0x40
    assert info["cookie"] == 7
