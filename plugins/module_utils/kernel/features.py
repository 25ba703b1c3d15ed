# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the running kernel offers for attaching BPF programs, probed rather than guessed from
the version where a harmless probe exists.

- tcx: BPF_LINK_CREATE with BPF_TCX_INGRESS on an interface index that does not exist: a kernel
  with TCX (6.6+) answers ENODEV, one without it EINVAL. Nothing is attached.
- perf links: BPF_LINK_CREATE with BPF_PERF_EVENT on fd -1: EBADF with support (5.15+), EINVAL
  without.
- fentry/fexit/tp_btf: libbpf's own probe of the "tracing" program type.
- kern_ctx: a TC program calling the kfunc bpf_cast_to_kern_ctx() loads.
- kprobes and uprobes: the dynamic PMUs under /sys/bus/event_source/devices (what attaching uses).
Results are cached for the life of the process.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import btf_ids
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import BPF_MAP_TYPE_TASK_STORAGE
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
TRACEFS_MOUNTPOINT = "/sys/kernel/tracing"
NO_SUCH_IFINDEX = 0x7FFFFFFF
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8

_cache = {}


def _cached(fn):
    def wrapper():
        if fn.__name__ not in _cache:
            _cache[fn.__name__] = fn()
        return _cache[fn.__name__]
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def clear_cache():
    _cache.clear()


def has_btf():
    """The kernel exposes its BTF (CO-RE objects can be relocated against it)."""
    return os.path.exists(VMLINUX_BTF)


def has_kprobes(pmu_dir=perf_event.PMU_DIR):
    """kprobes can be opened (the kprobe PMU exists; CONFIG_KPROBES)."""
    return perf_event.pmu_type("kprobe", pmu_dir) is not None


def has_uprobes(pmu_dir=perf_event.PMU_DIR):
    """uprobes can be opened (the uprobe PMU exists; CONFIG_UPROBE_EVENTS)."""
    return perf_event.pmu_type("uprobe", pmu_dir) is not None


# What the BTF-typed probes load against: a tracepoint and a function every kernel has.
_PROBE_TRACEPOINT = "sys_enter"
_PROBE_FUNCTION = "do_nanosleep"


def _btf_probe(type_name, kind, load):
    """The kernel's BTF has ``type_name`` (of ``kind``) and ``load(type_id)``, a program load
    given its id, succeeds."""
    if not has_btf():
        return False
    try:
        type_id = btf_ids.vmlinux_type_id(type_name, kind)
        if type_id is None:
            return False
        with load(type_id):
            return True
    except BpfError:
        return False


def _tracing_probe(attach_type, type_name, kind):
    """A do-nothing "tracing" program of ``attach_type`` loads against ``type_name``."""
    return _btf_probe(type_name, kind, lambda type_id: sc.prog_load(
        sc.BPF_PROG_TYPE_TRACING, bpf_insn.mov64_imm(0, 0) + bpf_insn.exit_insn(), "GPL", "ebpfo_probe",
        expected_attach_type=attach_type, attach_btf_id=type_id, log_level=0))


@_cached
def has_tp_btf():
    """BTF-typed tracepoints (tp_btf) load: program type "tracing" with BTF; no trampoline needed."""
    return _tracing_probe(sc.BPF_TRACE_RAW_TP, "btf_trace_" + _PROBE_TRACEPOINT, btf_ids.BTF_KIND_TYPEDEF)


@_cached
def has_fentry():
    """fentry/fexit programs load: they need BPF trampolines (a JIT with direct-call ftrace),
    which some kernels lack although they have the "tracing" program type."""
    return _tracing_probe(sc.BPF_TRACE_FENTRY, _PROBE_FUNCTION, btf_ids.BTF_KIND_FUNC)


@_cached
def has_kern_ctx():
    """A TC program may call the kfunc bpf_cast_to_kern_ctx() (Linux 6.3+), which gives it the
    kernel's sk_buff behind its context (tc_classifier_direct reads the network header's offset
    there): a three-instruction program that calls it loads."""
    return _btf_probe("bpf_cast_to_kern_ctx", btf_ids.BTF_KIND_FUNC, lambda func_id: sc.prog_load(
        sc.BPF_PROG_TYPE_SCHED_CLS, bpf_insn.call_kfunc(func_id) + bpf_insn.mov64_imm(0, 0) + bpf_insn.exit_insn(),
        "GPL", "ebpfo_probe", log_level=0))


_TRAMPOLINE_SECTIONS = ("fentry", "fexit", "fmod_ret", "lsm", "freplace")


def explain_load_error(err, sections):
    """The error a failed object load should raise: ``err``, or, when a program it loaded needs
    BPF trampolines this kernel lacks (the kernel answers EPERM, and libbpf suggests raising
    ulimit -l), an error that says so."""
    needing = [s for s in sections if (s or "").partition("/")[0].split(".")[0] in _TRAMPOLINE_SECTIONS]
    if not needing or err.errno not in (errno.EPERM, sc.ENOTSUPP) or has_fentry():
        return err
    hook = needing[0].partition("/")[0].split(".")[0]
    return BpfError("%s is not available on this kernel: SEC(\"%s\") needs BPF trampolines, which this kernel does "
                    "not offer" % (hook, needing[0]), errno=err.errno,
                    hint="load a kprobe, tp_btf or raw tracepoint variant of the program on this host", log=err.log)


def require_fentry(hook):
    if not has_fentry():
        raise BpfError("%s is not available on this kernel: it needs BPF trampolines, which this kernel does not "
                       "offer (loading a %s program fails)" % (hook, hook),
                       hint="use a kprobe (or tp_btf / raw tracepoint) variant of the program on this host")


def _prog_type(prog_type):
    try:
        return libbpf.probe_prog_type(prog_type)
    except BpfError:
        return False


def _probe_link(prog_type, retval, target, attach_type, yes, no):
    """Load a two-instruction program and try BPF_LINK_CREATE where it cannot succeed: the
    errno tells whether the kernel knows the attach type."""
    try:
        with sc.prog_load(prog_type, bpf_insn.mov64_imm(0, retval) + bpf_insn.exit_insn(), "GPL", "ebpfo_probe", log_level=0) as prog:
            with sc.link_create(prog, target, attach_type):
                return True  # cannot happen with these targets; an attach would be released here
    except BpfError as e:
        if e.errno == yes:
            return True
        if e.errno == no:
            return False
        raise


@_cached
def has_tcx():
    """TC programs can be attached through bpf_links (TCX, Linux 6.6+)."""
    return _probe_link(sc.BPF_PROG_TYPE_SCHED_CLS, -1, NO_SUCH_IFINDEX, sc.BPF_TCX_INGRESS,
                       errno.ENODEV, errno.EINVAL)


@_cached
def has_perf_link():
    """Programs can be linked to perf events (tracepoints, kprobes, uprobes) with a bpf_link."""
    return _probe_link(sc.BPF_PROG_TYPE_TRACEPOINT, 0, 0xFFFFFFFF, sc.BPF_PERF_EVENT, errno.EBADF, errno.EINVAL)


@_cached
def prog_types():
    """{hook family: loadable} for the program types the collection attaches."""
    return dict((name, _prog_type(getattr(sc, "BPF_PROG_TYPE_" + name.upper())))
                for name in ("xdp", "sched_cls", "tracepoint", "raw_tracepoint", "kprobe"))


def libbpf_version():
    """libbpf's version string, or None when libbpf.so.1 is missing."""
    try:
        return libbpf.version()
    except BpfError:
        return None


def tracefs_root():
    """Where tracefs is mounted, or None."""
    return perf_event.tracefs_root()


def mount_tracefs(mountpoint=TRACEFS_MOUNTPOINT):
    """Mount tracefs at ``mountpoint`` (where systemd mounts it at boot); returns the path."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"tracefs", mountpoint.encode(), b"tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        raise errno_error("tracefs is not mounted and mounting it at %s failed" % mountpoint, ctypes.get_errno(),
                          hint="mount it with 'mount -t tracefs tracefs %s'" % mountpoint)
    return mountpoint


def require_kprobes():
    if not has_kprobes():
        raise BpfError("kprobes are not available on this kernel; use a tracepoint",
                       hint="this kernel was built without CONFIG_KPROBES (no %s/kprobe); the tracepoints "
                            "of the same subsystem, or raw tracepoints, work instead" % perf_event.PMU_DIR)


def require_uprobes():
    if not has_uprobes():
        raise BpfError("uprobes are not available on this kernel",
                       hint="this kernel was built without CONFIG_UPROBE_EVENTS (no %s/uprobe)" % perf_event.PMU_DIR)


def require_perf_link(what):
    if not has_perf_link():
        raise BpfError("%s needs a bpf_link to a perf event, which this kernel lacks (Linux 5.15+)" % what,
                       hint="raw tracepoints work on older kernels")


def facts():
    """Every feature fact, as ebpf_info returns them."""
    types = prog_types()
    return {
        "kernel_release": os.uname().release,
        "btf": has_btf(),
        "tracefs": tracefs_root(),
        "tracepoints": types["tracepoint"],
        "raw_tracepoints": types["raw_tracepoint"],
        "kprobes": has_kprobes(),
        "uprobes": has_uprobes(),
        "fentry": has_fentry(),
        "tp_btf": has_tp_btf(),
        "perf_link": has_perf_link(),
        "xdp": types["xdp"],
        "tc": types["sched_cls"],
        "tcx": has_tcx(),
        "task_storage": object_features.has_map_type(BPF_MAP_TYPE_TASK_STORAGE),
        "kern_ctx": has_kern_ctx(),
        "libbpf_version": libbpf_version(),
    }
