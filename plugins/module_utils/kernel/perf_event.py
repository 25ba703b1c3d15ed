# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Perf events that BPF programs attach to: tracepoints, kprobes and uprobes.

A pinned program is only an fd, so the perf event is opened here with perf_event_open(2) and
the program is linked to it with BPF_LINK_CREATE (attach type BPF_PERF_EVENT, Linux 5.15+);
the resulting bpf_link can be pinned and keeps the event open. Tracepoint ids come from
tracefs (``events/<category>/<name>/id``); kprobes and uprobes use the dynamic PMUs under
``/sys/bus/event_source/devices/{kprobe,uprobe}`` (Linux 4.17+), the probe name and offset
passed in config1/config2 as the kernel's perf_event_open(2) page describes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import platform
from ctypes import Structure, addressof, byref, c_int, c_long, c_uint16, c_uint32, c_uint64, c_ulong, create_string_buffer, sizeof

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_FREQ = 1 << 10
PERF_UPROBE_REF_CTR_OFFSET_SHIFT = 32  # perf_event_attr.freq: sample_period holds a frequency
CPU_ONLINE = "/sys/devices/system/cpu/online"
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PMU_DIR = "/sys/bus/event_source/devices"
TRACEFS_MAGIC = 0x74726163
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

SYS_PERF_EVENT_OPEN_BY_MACHINE = {
    "x86_64": 298, "amd64": 298,
    "aarch64": 241, "arm64": 241,
    "riscv64": 241, "loongarch64": 241,
    "ppc64le": 319, "ppc64": 319,
    "s390x": 331,
}

_LIBC = ctypes.CDLL(None, use_errno=True)
_SYSCALL = _LIBC.syscall
_SYSCALL.restype = c_long
_IOCTL = _LIBC.ioctl
_IOCTL.restype = c_int
_IOCTL.argtypes = [c_int, c_ulong, c_ulong]


class PerfEventAttr(Structure):
    """struct perf_event_attr up to config3 (PERF_ATTR_SIZE_VER8, 136 bytes); older kernels
    accept the larger size as long as the fields they do not know are zero."""
    _fields_ = [
        ("type", c_uint32), ("size", c_uint32), ("config", c_uint64),
        ("sample_period", c_uint64), ("sample_type", c_uint64), ("read_format", c_uint64),
        ("flags", c_uint64), ("wakeup_events", c_uint32), ("bp_type", c_uint32),
        ("config1", c_uint64), ("config2", c_uint64), ("branch_sample_type", c_uint64),
        ("sample_regs_user", c_uint64), ("sample_stack_user", c_uint32), ("clockid", c_int),
        ("sample_regs_intr", c_uint64), ("aux_watermark", c_uint32),
        ("sample_max_stack", c_uint16), ("_reserved_2", c_uint16),
        ("aux_sample_size", c_uint32), ("_reserved_3", c_uint32), ("sig_data", c_uint64),
        ("config3", c_uint64),
    ]


def _syscall_number():
    machine = platform.machine().lower()
    nr = SYS_PERF_EVENT_OPEN_BY_MACHINE.get(machine)
    if nr is None:
        raise BpfError("the perf_event_open() syscall number for machine type %r is not known" % machine)
    return nr


def perf_event_open(attr, what, pid=-1, cpu=0, hints=None):
    """Open a perf event; returns its fd as a bpf_syscall.BpfFd (closed with it).

    pid -1 with cpu 0 is how a probe for every process is opened; the BPF program then runs
    on every CPU (tracing programs do not depend on the event's CPU)."""
    attr.size = sizeof(PerfEventAttr)
    fd = _SYSCALL(c_long(_syscall_number()), byref(attr), c_int(pid), c_int(cpu), c_int(-1),
                  c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise errno_error("cannot open the perf event for %s" % what, err, hint=(hints or {}).get(err))
    _IOCTL(fd, PERF_EVENT_IOC_ENABLE, 0)
    return sc.BpfFd(fd)


# ------------------------------------------------------------------------- tracefs

def tracefs_root(candidates=TRACEFS_CANDIDATES):
    """The first of ``candidates`` where tracefs is mounted, or None."""
    for path in candidates:
        try:
            if bpffs.fs_magic(path) == TRACEFS_MAGIC:
                return path
        except BpfError:
            continue
    return None


def tracepoint_id(category, name, root):
    """The id of tracepoint ``category:name`` from tracefs at ``root``; None when the kernel
    has no such tracepoint."""
    path = os.path.join(root, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (IOError, OSError) as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise errno_error("cannot read the id of tracepoint %s:%s from %s" % (category, name, path), e.errno)
    except ValueError:
        raise BpfError("%s does not hold a tracepoint id" % path)


def tracepoint_categories(root):
    """Tracepoint categories (subsystems) under tracefs, for messages."""
    try:
        return sorted(n for n in os.listdir(os.path.join(root, "events"))
                      if os.path.isdir(os.path.join(root, "events", n)))
    except OSError:
        return []


def open_tracepoint(category, name, root):
    """Open the perf event of tracepoint ``category:name``; BpfError naming it when the kernel
    has none."""
    tp_id = tracepoint_id(category, name, root)
    if tp_id is None:
        if not os.path.isdir(os.path.join(root, "events", category)):
            hint = "there is no category %s; see %s/available_events" % (category, root)
        else:
            hint = "see %s/available_events for the tracepoints of this kernel" % root
        raise BpfError("this kernel has no tracepoint %s:%s" % (category, name), errno=errno.ENOENT, hint=hint)
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tp_id, sample_period=1, wakeup_events=1)
    return perf_event_open(attr, "tracepoint %s:%s" % (category, name))


# ------------------------------------------------------------------------- probe PMUs

def pmu_type(pmu, pmu_dir=PMU_DIR):
    """The perf type number of a dynamic PMU ("kprobe", "uprobe"), or None when absent."""
    try:
        with open(os.path.join(pmu_dir, pmu, "type")) as f:
            return int(f.read().strip())
    except (IOError, OSError, ValueError):
        return None


def retprobe_bit(pmu, pmu_dir=PMU_DIR):
    """The config bit that makes a probe a return probe (format/retprobe holds ``config:N``)."""
    try:
        with open(os.path.join(pmu_dir, pmu, "format", "retprobe")) as f:
            text = f.read().strip()
    except (IOError, OSError):
        return None
    field, _sep, bit = text.partition(":")
    if field != "config" or not bit.isdigit():
        return None
    return int(bit)


def open_probe(pmu, name, offset, retprobe, what, pid=-1, pmu_dir=PMU_DIR, ref_ctr_offset=0):
    """Open a kprobe (``name`` is a kernel function) or uprobe (``name`` is a file path,
    ``offset`` the file offset) perf event through the PMU ``pmu``; a uprobe's
    ``ref_ctr_offset`` is the file offset of a USDT semaphore, which the kernel counts up while
    the probe exists (Linux 4.20+)."""
    ptype = pmu_type(pmu, pmu_dir)
    if ptype is None:
        raise BpfError("%ss are not available on this kernel (no %s/%s)" % (pmu, pmu_dir, pmu), errno=errno.ENOENT)
    attr = PerfEventAttr(type=ptype, config2=offset, config=ref_ctr_offset << PERF_UPROBE_REF_CTR_OFFSET_SHIFT)
    if retprobe:
        bit = retprobe_bit(pmu, pmu_dir)
        if bit is None:
            raise BpfError("this kernel's %s PMU has no return probes (no format/retprobe)" % pmu)
        attr.config |= 1 << bit
    cname = create_string_buffer(os.fsencode(name))
    attr.config1 = addressof(cname)
    hints = {
        errno.ENOENT: "%s does not exist" % name if pmu == "uprobe" else
        "the kernel has no function %s that can be probed (see /proc/kallsyms; inlined and "
        "notrace functions cannot be probed)" % name,
        errno.EINVAL: "the offset %#x is not an instruction boundary in %s, or the name is not valid" % (offset, name),
    }
    return perf_event_open(attr, what, pid=pid, cpu=0 if pid == -1 else -1, hints=hints)


# ------------------------------------------------------------------------- counter events

def cpu_list(path=CPU_ONLINE):
    """The CPUs of a kernel CPU list file ("0-3,8"): online CPUs by default."""
    with open(path) as f:
        text = f.read().strip()
    cpus = []
    for part in filter(None, text.split(",")):
        first, _sep, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def open_counter(ev_type, config, cpu, frequency=0, period=0, what=""):
    """Open a sampling perf event of ``ev_type``/``config`` (perf_event_open(2): 0 hardware,
    1 software, 3 hardware cache, ...) for every task on ``cpu``, sampled ``frequency`` times a
    second or every ``period`` events."""
    attr = PerfEventAttr(type=ev_type, config=config, sample_period=frequency or period)
    if frequency:
        attr.flags = PERF_ATTR_FREQ
    absent = ("this kernel or machine has no perf event type %d config %d (virtual machines often have no hardware "
              "counters; software events, type 1, are always there)" % (ev_type, config))
    hints = {errno.ENOENT: absent, errno.EOPNOTSUPP: absent,
             errno.EINVAL: "the event or its sampling is not valid here: a frequency must not exceed "
                           "kernel.perf_event_max_sample_rate"}
    return perf_event_open(attr, what, pid=-1, cpu=cpu, hints=hints)


def link_perf_event(prog_fd, perf_fd, what, cookie=0):
    """Link a program to an open perf event (BPF_LINK_CREATE, BPF_PERF_EVENT); the link fd."""
    try:
        return sc.link_create(prog_fd, perf_fd, sc.BPF_PERF_EVENT, bpf_cookie=cookie)
    except BpfError as e:
        if e.errno == errno.EINVAL:
            raise BpfError("cannot link the program to %s: this kernel cannot link programs to perf "
                           "events (BPF_LINK_CREATE with BPF_PERF_EVENT needs Linux 5.15), or the program "
                           "type does not fit this event" % what, errno=e.errno)
        raise
