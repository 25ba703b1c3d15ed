# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf(2) system call through ctypes, without libbpf.

Used where a call must be fast (map reads for exporters) or must work on a host without
libbpf: object pins, ids, object info, map element access, small programs for feature
probes and tests, links. Layouts follow include/uapi/linux/bpf.h. Every function that
returns a file descriptor returns a BpfFd; every function that takes one accepts a BpfFd
or a plain int. Every kernel failure raises BpfError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import functools
import os
import platform
import struct
from ctypes import (
    byref, addressof, sizeof, create_string_buffer, c_uint32, c_long, c_int, c_uint, c_void_p,
)

from ansible_collections.ebpf.observability.plugins.module_utils.bpf_structs import (
    BPF_OBJ_NAME_LEN,
    MapCreateAttr, MapElemAttr, MapBatchAttr, ProgLoadAttr,
    ObjAttr, ProgTestRunAttr, GetIdAttr, InfoAttr,
    RawTracepointAttr, LinkCreateAttr, LinkUpdateAttr, LinkDetachAttr,
    ProgQueryAttr, EnableStatsAttr, ProgBindMapAttr, BpfProgInfo,
    BpfMapInfo, BpfLinkInfo,
)
from ansible_collections.ebpf.observability.plugins.module_utils.errors import (
    BpfError, PermissionHint, errno_error,
)

# ---------------------------------------------------------------------------------------
# System call number and raw entry point
# ---------------------------------------------------------------------------------------

# 64-bit machines only: the structures below rely on 8-byte alignment of 64-bit fields.
SYS_BPF_BY_MACHINE = {
    "x86_64": 321, "amd64": 321,
    "aarch64": 280, "arm64": 280,
    "riscv64": 280, "loongarch64": 280,
    "ppc64le": 361, "ppc64": 361,
    "s390x": 351,
}

ENOTSUPP = 524  # kernel-internal "operation not supported", leaks out of bpf()

_LIBC = ctypes.CDLL(None, use_errno=True)
_SYSCALL = _LIBC.syscall
_SYSCALL.restype = c_long
_SYSCALL.argtypes = [c_long, c_int, c_void_p, c_uint]
_NR_BPF = None


def sys_bpf_number(machine=None):
    """The bpf(2) syscall number for a machine name as platform.machine() gives it."""
    machine = machine or platform.machine()
    nr = SYS_BPF_BY_MACHINE.get(machine.lower())
    if nr is None:
        raise BpfError("the bpf() syscall number for machine type %r is not known" % machine,
                       hint="supported: %s" % ", ".join(sorted(SYS_BPF_BY_MACHINE)))
    return nr


def _bpf(cmd, attr):
    """Run bpf(cmd, attr). Returns the result (>= 0) or -errno."""
    global _NR_BPF
    if _NR_BPF is None:
        _NR_BPF = sys_bpf_number()
    ret = _SYSCALL(_NR_BPF, cmd, byref(attr), sizeof(attr))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


# ---------------------------------------------------------------------------------------
# Constants (enum values from include/uapi/linux/bpf.h)
# ---------------------------------------------------------------------------------------

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
BPF_TASK_FD_QUERY = 20
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
BPF_MAP_FREEZE = 22
BPF_BTF_GET_NEXT_ID = 23
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
BPF_MAP_UPDATE_BATCH = 26
BPF_MAP_DELETE_BATCH = 27
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31
BPF_ENABLE_STATS = 32
BPF_ITER_CREATE = 33
BPF_LINK_DETACH = 34
BPF_PROG_BIND_MAP = 35
BPF_TOKEN_CREATE = 36

# enum bpf_map_type
BPF_MAP_TYPE_UNSPEC = 0
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_CGROUP_ARRAY = 8
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_SOCKMAP = 15
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_SOCKHASH = 18
BPF_MAP_TYPE_CGROUP_STORAGE = 19
BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_QUEUE = 22
BPF_MAP_TYPE_STACK = 23
BPF_MAP_TYPE_SK_STORAGE = 24
BPF_MAP_TYPE_DEVMAP_HASH = 25
BPF_MAP_TYPE_STRUCT_OPS = 26
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_INODE_STORAGE = 28
BPF_MAP_TYPE_TASK_STORAGE = 29
BPF_MAP_TYPE_BLOOM_FILTER = 30
BPF_MAP_TYPE_USER_RINGBUF = 31
BPF_MAP_TYPE_CGRP_STORAGE = 32
BPF_MAP_TYPE_ARENA = 33

MAP_TYPE_NAMES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
    "percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
    "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap",
    "sockhash", "cgroup_storage", "reuseport_sockarray", "percpu_cgroup_storage", "queue",
    "stack", "sk_storage", "devmap_hash", "struct_ops", "ringbuf", "inode_storage",
    "task_storage", "bloom_filter", "user_ringbuf", "cgrp_storage", "arena",
)

# enum bpf_prog_type
BPF_PROG_TYPE_UNSPEC = 0
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_SCHED_ACT = 4
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_XDP = 6
BPF_PROG_TYPE_PERF_EVENT = 7
BPF_PROG_TYPE_CGROUP_SKB = 8
BPF_PROG_TYPE_CGROUP_SOCK = 9
BPF_PROG_TYPE_LWT_IN = 10
BPF_PROG_TYPE_LWT_OUT = 11
BPF_PROG_TYPE_LWT_XMIT = 12
BPF_PROG_TYPE_SOCK_OPS = 13
BPF_PROG_TYPE_SK_SKB = 14
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_PROG_TYPE_SK_MSG = 16
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_PROG_TYPE_LWT_SEG6LOCAL = 19
BPF_PROG_TYPE_LIRC_MODE2 = 20
BPF_PROG_TYPE_SK_REUSEPORT = 21
BPF_PROG_TYPE_FLOW_DISSECTOR = 22
BPF_PROG_TYPE_CGROUP_SYSCTL = 23
BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE = 24
BPF_PROG_TYPE_CGROUP_SOCKOPT = 25
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_STRUCT_OPS = 27
BPF_PROG_TYPE_EXT = 28
BPF_PROG_TYPE_LSM = 29
BPF_PROG_TYPE_SK_LOOKUP = 30
BPF_PROG_TYPE_SYSCALL = 31
BPF_PROG_TYPE_NETFILTER = 32

PROG_TYPE_NAMES = (
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
    "perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops",
    "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr",
    "lwt_seg6local", "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl",
    "raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm",
    "sk_lookup", "syscall", "netfilter",
)

# enum bpf_attach_type
BPF_CGROUP_INET_INGRESS = 0
BPF_CGROUP_INET_EGRESS = 1
BPF_CGROUP_INET_SOCK_CREATE = 2
BPF_CGROUP_SOCK_OPS = 3
BPF_SK_SKB_STREAM_PARSER = 4
BPF_SK_SKB_STREAM_VERDICT = 5
BPF_CGROUP_DEVICE = 6
BPF_SK_MSG_VERDICT = 7
BPF_CGROUP_INET4_BIND = 8
BPF_CGROUP_INET6_BIND = 9
BPF_CGROUP_INET4_CONNECT = 10
BPF_CGROUP_INET6_CONNECT = 11
BPF_CGROUP_INET4_POST_BIND = 12
BPF_CGROUP_INET6_POST_BIND = 13
BPF_CGROUP_UDP4_SENDMSG = 14
BPF_CGROUP_UDP6_SENDMSG = 15
BPF_LIRC_MODE2 = 16
BPF_FLOW_DISSECTOR = 17
BPF_CGROUP_SYSCTL = 18
BPF_CGROUP_UDP4_RECVMSG = 19
BPF_CGROUP_UDP6_RECVMSG = 20
BPF_CGROUP_GETSOCKOPT = 21
BPF_CGROUP_SETSOCKOPT = 22
BPF_TRACE_RAW_TP = 23
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BPF_MODIFY_RETURN = 26
BPF_LSM_MAC = 27
BPF_TRACE_ITER = 28
BPF_CGROUP_INET4_GETPEERNAME = 29
BPF_CGROUP_INET6_GETPEERNAME = 30
BPF_CGROUP_INET4_GETSOCKNAME = 31
BPF_CGROUP_INET6_GETSOCKNAME = 32
BPF_XDP_DEVMAP = 33
BPF_CGROUP_INET_SOCK_RELEASE = 34
BPF_XDP_CPUMAP = 35
BPF_SK_LOOKUP = 36
BPF_XDP = 37
BPF_SK_SKB_VERDICT = 38
BPF_SK_REUSEPORT_SELECT = 39
BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40
BPF_PERF_EVENT = 41
BPF_TRACE_KPROBE_MULTI = 42
BPF_LSM_CGROUP = 43
BPF_STRUCT_OPS = 44
BPF_NETFILTER = 45
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
BPF_TRACE_UPROBE_MULTI = 48
BPF_CGROUP_UNIX_CONNECT = 49
BPF_CGROUP_UNIX_SENDMSG = 50
BPF_CGROUP_UNIX_RECVMSG = 51
BPF_CGROUP_UNIX_GETPEERNAME = 52
BPF_CGROUP_UNIX_GETSOCKNAME = 53
BPF_NETKIT_PRIMARY = 54
BPF_NETKIT_PEER = 55
BPF_TRACE_KPROBE_SESSION = 56
BPF_TRACE_UPROBE_SESSION = 57

ATTACH_TYPE_NAMES = (
    "cgroup_inet_ingress", "cgroup_inet_egress", "cgroup_inet_sock_create",
    "cgroup_sock_ops", "sk_skb_stream_parser", "sk_skb_stream_verdict", "cgroup_device",
    "sk_msg_verdict", "cgroup_inet4_bind", "cgroup_inet6_bind", "cgroup_inet4_connect",
    "cgroup_inet6_connect", "cgroup_inet4_post_bind", "cgroup_inet6_post_bind",
    "cgroup_udp4_sendmsg", "cgroup_udp6_sendmsg", "lirc_mode2", "flow_dissector",
    "cgroup_sysctl", "cgroup_udp4_recvmsg", "cgroup_udp6_recvmsg", "cgroup_getsockopt",
    "cgroup_setsockopt", "trace_raw_tp", "trace_fentry", "trace_fexit", "modify_return",
    "lsm_mac", "trace_iter", "cgroup_inet4_getpeername", "cgroup_inet6_getpeername",
    "cgroup_inet4_getsockname", "cgroup_inet6_getsockname", "xdp_devmap",
    "cgroup_inet_sock_release", "xdp_cpumap", "sk_lookup", "xdp", "sk_skb_verdict",
    "sk_reuseport_select", "sk_reuseport_select_or_migrate", "perf_event",
    "trace_kprobe_multi", "lsm_cgroup", "struct_ops", "netfilter", "tcx_ingress",
    "tcx_egress", "trace_uprobe_multi", "cgroup_unix_connect", "cgroup_unix_sendmsg",
    "cgroup_unix_recvmsg", "cgroup_unix_getpeername", "cgroup_unix_getsockname",
    "netkit_primary", "netkit_peer", "trace_kprobe_session", "trace_uprobe_session",
)

# enum bpf_link_type
BPF_LINK_TYPE_UNSPEC = 0
BPF_LINK_TYPE_RAW_TRACEPOINT = 1
BPF_LINK_TYPE_TRACING = 2
BPF_LINK_TYPE_CGROUP = 3
BPF_LINK_TYPE_ITER = 4
BPF_LINK_TYPE_NETNS = 5
BPF_LINK_TYPE_XDP = 6
BPF_LINK_TYPE_PERF_EVENT = 7
BPF_LINK_TYPE_KPROBE_MULTI = 8
BPF_LINK_TYPE_STRUCT_OPS = 9
BPF_LINK_TYPE_NETFILTER = 10
BPF_LINK_TYPE_TCX = 11
BPF_LINK_TYPE_UPROBE_MULTI = 12
BPF_LINK_TYPE_NETKIT = 13
BPF_LINK_TYPE_SOCKMAP = 14

LINK_TYPE_NAMES = (
    "unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp", "perf_event",
    "kprobe_multi", "struct_ops", "netfilter", "tcx", "uprobe_multi", "netkit", "sockmap",
)

# enum bpf_perf_event_type
BPF_PERF_EVENT_UNSPEC = 0
BPF_PERF_EVENT_UPROBE = 1
BPF_PERF_EVENT_URETPROBE = 2
BPF_PERF_EVENT_KPROBE = 3
BPF_PERF_EVENT_KRETPROBE = 4
BPF_PERF_EVENT_TRACEPOINT = 5
BPF_PERF_EVENT_EVENT = 6

PERF_EVENT_TYPE_NAMES = (
    "unspec", "uprobe", "uretprobe", "kprobe", "kretprobe", "tracepoint", "event",
)

# Map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# Map creation and object access flags
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10

# Attach flags (BPF_PROG_ATTACH, BPF_LINK_CREATE for tcx/netkit)
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5
BPF_F_LINK = 1 << 13

# Program load flags
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5

# BPF_ENABLE_STATS
BPF_STATS_RUN_TIME = 0

# Return codes programs use
XDP_ABORTED = 0
XDP_DROP = 1
XDP_PASS = 2
XDP_TX = 3
XDP_REDIRECT = 4
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_SHOT = 2


def _type_name(table, value):
    if 0 <= value < len(table):
        return table[value]
    return "unknown(%d)" % value


def prog_type_name(prog_type):
    """Name of a program type as bpftool and libbpf spell it ("xdp", "sched_cls", ...)."""
    return _type_name(PROG_TYPE_NAMES, prog_type)


def map_type_name(map_type):
    """Name of a map type ("hash", "percpu_array", ...)."""
    return _type_name(MAP_TYPE_NAMES, map_type)


def link_type_name(link_type):
    """Name of a link type ("tcx", "raw_tracepoint", ...)."""
    return _type_name(LINK_TYPE_NAMES, link_type)


def attach_type_name(attach_type):
    """Name of an attach type ("xdp", "tcx_ingress", ...)."""
    return _type_name(ATTACH_TYPE_NAMES, attach_type)


# ---------------------------------------------------------------------------------------
# File descriptors and errors
# ---------------------------------------------------------------------------------------

class BpfFd:
    """Owns one file descriptor of a BPF object; closes it on close(), exit or collection."""

    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = int(fd)

    def close(self):
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def release(self):
        """Give up ownership: return the number, which the caller must close."""
        fd, self.fd = self.fd, -1
        return fd

    def fileno(self):
        return self.fd

    def __index__(self):
        if self.fd < 0:
            raise ValueError("BPF file descriptor is closed")
        return self.fd

    __int__ = __index__

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def __repr__(self):
        return "BpfFd(%d)" % self.fd


def _fdnum(fd):
    """The int behind a BpfFd or an int."""
    return fd.__index__()


def _fail(what, err, hints=None):
    """BpfError for -errno or errno `err`, with a hint chosen by errno."""
    err = abs(err)
    hint = (hints or {}).get(err)
    return errno_error(what, err, hint=hint)


def _cstr(raw):
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def _obj_name(name):
    """A name the kernel accepts: at most 15 bytes of [A-Za-z0-9_.]."""
    raw = (name or "").encode("ascii", "replace")[:BPF_OBJ_NAME_LEN - 1]
    return bytes(c if (chr(c).isalnum() or c in b"_.") else ord("_") for c in raw)


def _buffer_of(data):
    """(ctypes buffer holding bytes `data`, its address)."""
    buf = create_string_buffer(bytes(data), len(data)) if data else create_string_buffer(1)
    return buf, addressof(buf)


# ---------------------------------------------------------------------------------------
# Pins and ids
# ---------------------------------------------------------------------------------------

def obj_get(path, flags=0):
    """Open the object pinned at `path` (flags: BPF_F_RDONLY / BPF_F_WRONLY)."""
    cpath = create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=addressof(cpath), file_flags=flags)
    ret = _bpf(BPF_OBJ_GET, attr)
    if ret < 0:
        raise _fail("opening the BPF object pinned at %s" % path, ret, {
            errno.ENOENT: "nothing is pinned at %s" % path,
            errno.EINVAL: "%s is not on a bpffs mount, or the flags are invalid" % path,
            errno.EACCES: "%s is not a BPF pin (it is not on bpffs), or access is denied: "
                          "%s" % (path, PermissionHint.TEXT),
        })
    return BpfFd(ret)


def obj_pin(fd, path):
    """Pin the object behind `fd` at `path`, which must be on bpffs and not yet exist."""
    cpath = create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=addressof(cpath), bpf_fd=_fdnum(fd))
    ret = _bpf(BPF_OBJ_PIN, attr)
    if ret < 0:
        raise _fail("pinning BPF fd %d at %s" % (_fdnum(fd), path), ret, {
            errno.EEXIST: "something is already pinned at %s; unpin it (rm) first" % path,
            errno.ENOENT: "the directory of %s does not exist; create it first" % path,
            errno.EPERM: "the directory of %s is not on bpffs (mount one with 'mount -t bpf "
                         "bpf /sys/fs/bpf'), or %s" % (path, PermissionHint.TEXT),
        })


def _fd_by_id(cmd, kind, obj_id, flags):
    attr = GetIdAttr(start_id=obj_id, open_flags=flags)
    ret = _bpf(cmd, attr)
    if ret < 0:
        raise _fail("opening BPF %s id %d" % (kind, obj_id), ret, {
            errno.ENOENT: "no %s with id %d is loaded (it may have just been freed)"
                          % (kind, obj_id),
        })
    return BpfFd(ret)


def prog_fd_by_id(prog_id):
    """Open the program with id `prog_id`."""
    return _fd_by_id(BPF_PROG_GET_FD_BY_ID, "program", prog_id, 0)


def map_fd_by_id(map_id, flags=0):
    """Open the map with id `map_id` (flags: BPF_F_RDONLY / BPF_F_WRONLY)."""
    return _fd_by_id(BPF_MAP_GET_FD_BY_ID, "map", map_id, flags)


def link_fd_by_id(link_id):
    """Open the link with id `link_id`."""
    return _fd_by_id(BPF_LINK_GET_FD_BY_ID, "link", link_id, 0)


def btf_fd_by_id(btf_id):
    """Open the BTF object with id `btf_id`."""
    return _fd_by_id(BPF_BTF_GET_FD_BY_ID, "BTF object", btf_id, 0)


def _ids(cmd, kind):
    attr = GetIdAttr()
    while True:
        ret = _bpf(cmd, attr)
        if ret < 0:
            if ret == -errno.ENOENT:
                return
            raise _fail("listing BPF %s ids after id %d" % (kind, attr.start_id), ret)
        yield attr.next_id
        attr.start_id = attr.next_id
        attr.next_id = 0


def prog_ids():
    """Ids of all loaded programs, ascending."""
    return _ids(BPF_PROG_GET_NEXT_ID, "program")


def map_ids():
    """Ids of all maps, ascending."""
    return _ids(BPF_MAP_GET_NEXT_ID, "map")


def link_ids():
    """Ids of all links, ascending."""
    return _ids(BPF_LINK_GET_NEXT_ID, "link")


def btf_ids():
    """Ids of all BTF objects, ascending."""
    return _ids(BPF_BTF_GET_NEXT_ID, "BTF")


# ---------------------------------------------------------------------------------------
# Object info
# ---------------------------------------------------------------------------------------

_KIND_WORDS = {"prog": "program", "map": "map", "link": "link"}


def _not_open_hints(num):
    # bpf() answers EBADF or, for BPF_OBJ_GET_INFO_BY_FD, EBADFD for a closed fd.
    text = "nothing is open as fd %d" % num
    return {errno.EBADF: text, errno.EBADFD: text}


def _get_info(fd, info, kind, check_kind=True):
    """Fill `info` through BPF_OBJ_GET_INFO_BY_FD; return the length the kernel filled.

    The command accepts every kind of BPF object and fills that object's own struct, so
    with check_kind the fd is also checked to be of `kind` ("prog", "map", "link")."""
    num = _fdnum(fd)
    word = _KIND_WORDS.get(kind, kind)
    attr = InfoAttr(bpf_fd=num, info_len=sizeof(info), info=addressof(info))
    ret = _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    if ret < 0:
        hints = _not_open_hints(num)
        hints[errno.EINVAL] = "the file behind fd %d is not a BPF object" % num
        raise _fail("reading %s info of fd %d" % (word, num), ret, hints)
    if check_kind and not _is_kind(num, kind):
        raise _fail("reading %s info of fd %d" % (word, num), errno.EINVAL,
                    {errno.EINVAL: "the BPF object behind fd %d is not a %s" % (num, word)})
    return attr.info_len


def _filled(cls, field, filled_len):
    """Whether the kernel filled `field` (older kernels fill a shorter struct)."""
    desc = getattr(cls, field)
    return desc.offset + desc.size <= filled_len


_PROG_OPTIONAL = ("run_time_ns", "run_cnt", "recursion_misses", "verified_insns",
                  "attach_btf_obj_id", "attach_btf_id")


def prog_info(fd):
    """Facts about a program: id, type, type_name, name, tag, map_ids, sizes, stats."""
    info = BpfProgInfo()
    filled = _get_info(fd, info, "prog")
    map_id_list = []
    if info.nr_map_ids:
        ids = (c_uint32 * info.nr_map_ids)()
        again = BpfProgInfo(nr_map_ids=info.nr_map_ids, map_ids=addressof(ids))
        _get_info(fd, again, "prog", check_kind=False)
        map_id_list = list(ids[:min(again.nr_map_ids, info.nr_map_ids)])
    out = {
        "id": info.id,
        "type": info.type,
        "type_name": prog_type_name(info.type),
        "name": _cstr(info.name),
        "tag": bytes(info.tag).hex(),
        "map_ids": map_id_list,
        "jited_len": info.jited_prog_len,
        "xlated_len": info.xlated_prog_len,
        "load_time": info.load_time,
        "created_by_uid": info.created_by_uid,
        "gpl_compatible": bool(info.gpl_compatible),
        "ifindex": info.ifindex,
        "btf_id": info.btf_id,
    }
    for field in _PROG_OPTIONAL:
        if _filled(BpfProgInfo, field, filled):
            out[field] = getattr(info, field)
    return out


def map_info(fd):
    """Facts about a map: id, type, type_name, name, sizes, flags, BTF ids."""
    info = BpfMapInfo()
    _get_info(fd, info, "map")
    return {
        "id": info.id,
        "type": info.type,
        "type_name": map_type_name(info.type),
        "name": _cstr(info.name),
        "key_size": info.key_size,
        "value_size": info.value_size,
        "max_entries": info.max_entries,
        "map_flags": info.map_flags,
        "ifindex": info.ifindex,
        "btf_id": info.btf_id,
        "btf_key_type_id": info.btf_key_type_id,
        "btf_value_type_id": info.btf_value_type_id,
        "map_extra": info.map_extra,
    }


def _link_name_member(info, link_type, perf_type):
    """(member struct, pointer field, length field) of the string a link type reports, in
    `info`, or None. perf_type is the perf event type of a perf_event link."""
    u = info.u
    if link_type == BPF_LINK_TYPE_RAW_TRACEPOINT:
        return u.raw_tracepoint, "tp_name", "tp_name_len"
    if link_type == BPF_LINK_TYPE_ITER:
        return u.iter, "target_name", "target_name_len"
    if link_type == BPF_LINK_TYPE_UPROBE_MULTI:
        return u.uprobe_multi, "path", "path_size"
    if link_type == BPF_LINK_TYPE_PERF_EVENT:
        if perf_type in (BPF_PERF_EVENT_UPROBE, BPF_PERF_EVENT_URETPROBE):
            return u.perf_event.u.uprobe, "file_name", "name_len"
        if perf_type in (BPF_PERF_EVENT_KPROBE, BPF_PERF_EVENT_KRETPROBE):
            return u.perf_event.u.kprobe, "func_name", "name_len"
        if perf_type == BPF_PERF_EVENT_TRACEPOINT:
            return u.perf_event.u.tracepoint, "tp_name", "name_len"
    return None


def _link_fields(info, name):
    """The per-type part of link_info()."""
    t, u = info.type, info.u
    out = {}
    if t == BPF_LINK_TYPE_RAW_TRACEPOINT:
        out["tp_name"] = name
    elif t == BPF_LINK_TYPE_TRACING:
        out.update(attach_type=u.tracing.attach_type, target_obj_id=u.tracing.target_obj_id,
                   target_btf_id=u.tracing.target_btf_id)
    elif t == BPF_LINK_TYPE_CGROUP:
        out.update(cgroup_id=u.cgroup.cgroup_id, attach_type=u.cgroup.attach_type)
    elif t == BPF_LINK_TYPE_ITER:
        out.update(target_name=name, map_id=u.iter.map_id)
    elif t == BPF_LINK_TYPE_NETNS:
        out.update(netns_ino=u.netns.target, attach_type=u.netns.attach_type)
    elif t == BPF_LINK_TYPE_XDP:
        out["ifindex"] = u.xdp.ifindex
    elif t == BPF_LINK_TYPE_STRUCT_OPS:
        out["map_id"] = u.struct_ops.map_id
    elif t == BPF_LINK_TYPE_NETFILTER:
        nf = u.netfilter
        out.update(pf=nf.pf, hooknum=nf.hooknum, priority=nf.priority, flags=nf.flags)
    elif t == BPF_LINK_TYPE_KPROBE_MULTI:
        km = u.kprobe_multi
        out.update(count=km.count, flags=km.flags, missed=km.missed)
    elif t == BPF_LINK_TYPE_UPROBE_MULTI:
        um = u.uprobe_multi
        out.update(path=name, count=um.count, flags=um.flags, pid=um.pid)
    elif t in (BPF_LINK_TYPE_TCX, BPF_LINK_TYPE_NETKIT):
        out.update(ifindex=u.tcx.target, attach_type=u.tcx.attach_type)
    elif t == BPF_LINK_TYPE_SOCKMAP:
        out.update(map_id=u.sockmap.target, attach_type=u.sockmap.attach_type)
    elif t == BPF_LINK_TYPE_PERF_EVENT and u.perf_event.type != BPF_PERF_EVENT_UNSPEC:
        # before Linux 6.6 the kernel fills nothing here (the type stays UNSPEC)
        out.update(_perf_event_fields(u.perf_event, name))
    if "attach_type" in out:
        out["attach_type_name"] = attach_type_name(out["attach_type"])
    return out


def _perf_event_fields(pe, name):
    out = {"perf_event_type": pe.type,
           "perf_event_type_name": _type_name(PERF_EVENT_TYPE_NAMES, pe.type)}
    if pe.type in (BPF_PERF_EVENT_UPROBE, BPF_PERF_EVENT_URETPROBE):
        out.update(file_name=name, offset=pe.u.uprobe.offset, cookie=pe.u.uprobe.cookie)
    elif pe.type in (BPF_PERF_EVENT_KPROBE, BPF_PERF_EVENT_KRETPROBE):
        k = pe.u.kprobe
        out.update(func_name=name, offset=k.offset, addr=k.addr, missed=k.missed,
                   cookie=k.cookie)
    elif pe.type == BPF_PERF_EVENT_TRACEPOINT:
        out.update(tp_name=name, cookie=pe.u.tracepoint.cookie)
    elif pe.type == BPF_PERF_EVENT_EVENT:
        e = pe.u.event
        out.update(config=e.config, event_type=e.type, cookie=e.cookie)
    return out


def link_info(fd):
    """Facts about a link: id, type, type_name, prog_id and what the link type reports
    (tp_name, ifindex, attach_type, netns_ino, perf_event_type and probe names, ...)."""
    info = BpfLinkInfo()
    _get_info(fd, info, "link")
    link_type = info.type
    perf_type = info.u.perf_event.type if link_type == BPF_LINK_TYPE_PERF_EVENT else None
    name = None
    first = _link_name_member(info, link_type, perf_type)
    if first is not None and getattr(first[0], first[2]):
        # The first call left the buffer out and got the string's length (with its NUL);
        # the second passes a buffer of that size and nothing else.
        size = getattr(first[0], first[2])
        buf = create_string_buffer(size)
        info = BpfLinkInfo()
        member, ptr_field, len_field = _link_name_member(info, link_type, perf_type)
        setattr(member, ptr_field, addressof(buf))
        setattr(member, len_field, size)
        _get_info(fd, info, "link", check_kind=False)
        name = _cstr(buf.raw)
    out = {"id": info.id, "type": info.type, "type_name": link_type_name(info.type),
           "prog_id": info.prog_id}
    out.update(_link_fields(info, name))
    return out


# The kernel's BPF_OBJ_GET_INFO_BY_FD accepts any BPF object, so kinds are told apart with
# commands that refuse (EINVAL) an fd that is not of their kind before anything else, and
# are given an invalid second argument so that nothing changes when the fd is of their
# kind: a map batch lookup of 0 entries (0, or ENOTSUPP for maps without batch support;
# EPERM for a write-only map fd), binding map fd -1 to a program (EBADF), replacing the
# program of a link with fd -1 (EBADF).
_KIND_PROBES = (
    ("map", BPF_MAP_LOOKUP_BATCH, lambda num: MapBatchAttr(map_fd=num, count=0)),
    ("prog", BPF_PROG_BIND_MAP, lambda num: ProgBindMapAttr(prog_fd=num, map_fd=0xFFFFFFFF)),
    ("link", BPF_LINK_UPDATE, lambda num: LinkUpdateAttr(link_fd=num, new_prog_fd=0xFFFFFFFF)),
)


def _is_kind(num, kind):
    """Whether open BPF object fd `num` is a `kind`; the caller has checked that the fd is
    an open BPF object and that bpf() is permitted (an info call succeeded)."""
    for name, cmd, make_attr in _KIND_PROBES:
        if name == kind:
            ret = _bpf(cmd, make_attr(num))
            if ret == -errno.EINVAL:
                return False
            if kind == "map" or ret == -errno.EBADF:
                return True
            raise _fail("checking whether fd %d is a BPF %s" % (num, _KIND_WORDS[kind]), ret)
    raise ValueError("unknown BPF object kind %r" % kind)


def fd_kind(fd):
    """What a file descriptor refers to: "prog", "map", "link", or None for anything else
    (a BTF object, a file that is no BPF object). A closed fd raises BpfError."""
    num = _fdnum(fd)
    info = BpfProgInfo()  # large enough for any kind's info
    attr = InfoAttr(bpf_fd=num, info_len=sizeof(info), info=addressof(info))
    ret = _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    if ret == -errno.EINVAL:
        return None
    if ret < 0:
        raise _fail("checking the kind of fd %d" % num, ret, _not_open_hints(num))
    for kind, _cmd, _attr in _KIND_PROBES:
        if _is_kind(num, kind):
            return kind
    return None


# ---------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------

_POSSIBLE_CPUS = None

PERCPU_MAP_TYPES = frozenset((
    BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
))


def parse_cpu_list(text):
    """CPU numbers in a kernel cpu list such as "0-3,8,10-11"."""
    cpus = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise BpfError("malformed CPU list %r" % text)
        if hi < lo:
            raise BpfError("malformed CPU list %r" % text)
        cpus.extend(range(lo, hi + 1))
    return cpus


def possible_cpus(path="/sys/devices/system/cpu/possible"):
    """Number of possible CPUs (what per-CPU map values are sized by); cached."""
    global _POSSIBLE_CPUS
    if _POSSIBLE_CPUS is None or path != "/sys/devices/system/cpu/possible":
        try:
            with open(path) as f:
                count = len(parse_cpu_list(f.read()))
        except OSError as e:
            raise BpfError("reading the possible CPUs from %s failed: %s" % (path, e))
        if not count:
            raise BpfError("%s lists no CPUs" % path)
        if path != "/sys/devices/system/cpu/possible":
            return count
        _POSSIBLE_CPUS = count
    return _POSSIBLE_CPUS


def is_percpu_map_type(map_type):
    """Whether values of this map type hold one slot per possible CPU."""
    return map_type in PERCPU_MAP_TYPES


def percpu_value_size(value_size, ncpus=None):
    """Bytes of a per-CPU value as user space reads it: roundup(value_size, 8) x CPUs."""
    return ((value_size + 7) // 8 * 8) * (ncpus or possible_cpus())


def map_create(map_type, key_size, value_size, max_entries, name="", flags=0,
               inner_map_fd=None, map_extra=0):
    """Create a map; returns its fd."""
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, map_flags=flags, map_name=_obj_name(name),
                         map_extra=map_extra)
    if inner_map_fd is not None:
        attr.inner_map_fd = _fdnum(inner_map_fd)
    ret = _bpf(BPF_MAP_CREATE, attr)
    if ret < 0:
        raise _fail("creating %s map %r (key %d, value %d, %d entries)"
                    % (map_type_name(map_type), name, key_size, value_size, max_entries), ret, {
                        errno.EINVAL: "this kernel does not support that map type with "
                                      "these sizes and flags",
                        errno.ENOMEM: "not enough locked memory for the map",
                    })
    return BpfFd(ret)


_READ_ONLY_HINT = ("the map fd is read-only (opened with BPF_F_RDONLY, or the map is frozen "
                   "or read-only for user space), or " + PermissionHint.TEXT)


def map_lookup(fd, key, value_size):
    """The value stored under `key` (bytes), or None when the key is absent.

    For per-CPU maps pass percpu_value_size(value_size)."""
    val = create_string_buffer(value_size)
    kbuf, kaddr = _buffer_of(key)
    ret = _bpf(BPF_MAP_LOOKUP_ELEM, MapElemAttr(map_fd=_fdnum(fd), key=kaddr,
                                                value=addressof(val)))
    if ret < 0:
        if ret == -errno.ENOENT:
            return None
        raise _fail("looking up key %s in map fd %d" % (bytes(key).hex(), _fdnum(fd)), ret,
                    {errno.EPERM: "the map fd is write-only, or " + PermissionHint.TEXT})
    return val.raw


def map_update(fd, key, value, flags=BPF_ANY):
    """Store `value` under `key` (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
    kbuf, kaddr = _buffer_of(key)
    vbuf, vaddr = _buffer_of(value)
    ret = _bpf(BPF_MAP_UPDATE_ELEM, MapElemAttr(map_fd=_fdnum(fd), key=kaddr, value=vaddr,
                                                flags=flags))
    if ret < 0:
        raise _fail("updating key %s in map fd %d" % (bytes(key).hex(), _fdnum(fd)), ret, {
            errno.EPERM: _READ_ONLY_HINT,
            errno.EEXIST: "the key exists and BPF_NOEXIST was given",
            errno.ENOENT: "the key does not exist and BPF_EXIST was given",
            errno.E2BIG: "the map is full",
        })


def map_delete(fd, key, missing_ok=False):
    """Delete `key`; a missing key raises BpfError (errno ENOENT) unless missing_ok."""
    kbuf, kaddr = _buffer_of(key)
    ret = _bpf(BPF_MAP_DELETE_ELEM, MapElemAttr(map_fd=_fdnum(fd), key=kaddr))
    if ret < 0:
        if ret == -errno.ENOENT and missing_ok:
            return
        raise _fail("deleting key %s from map fd %d" % (bytes(key).hex(), _fdnum(fd)), ret, {
            errno.EPERM: _READ_ONLY_HINT,
            errno.ENOENT: "the key is not in the map",
            errno.EINVAL: "entries of this map type cannot be deleted",
        })


def map_next_key(fd, key, key_size):
    """The key after `key` (None: the first key), or None after the last one."""
    nxt = create_string_buffer(key_size)
    if key is None:
        kbuf, kaddr = None, 0
    else:
        kbuf, kaddr = _buffer_of(key)
    ret = _bpf(BPF_MAP_GET_NEXT_KEY, MapElemAttr(map_fd=_fdnum(fd), key=kaddr,
                                                 value=addressof(nxt)))
    if ret < 0:
        if ret == -errno.ENOENT:
            return None
        raise _fail("iterating the keys of map fd %d" % _fdnum(fd), ret)
    return nxt.raw


def map_dump_per_key(fd, key_size, value_size):
    """All (key, value) pairs, read one key at a time (BPF_MAP_GET_NEXT_KEY + LOOKUP).

    Works on every kernel and every iterable map type; map_lookup_batch is faster."""
    num = _fdnum(fd)
    cur = create_string_buffer(key_size)
    nxt = create_string_buffer(key_size)
    val = create_string_buffer(value_size)
    step = MapElemAttr(map_fd=num, key=0, value=addressof(nxt))
    look = MapElemAttr(map_fd=num, key=addressof(nxt), value=addressof(val))
    out = []
    while True:
        ret = _bpf(BPF_MAP_GET_NEXT_KEY, step)
        if ret < 0:
            if ret == -errno.ENOENT:
                return out
            raise _fail("iterating the keys of map fd %d" % num, ret)
        ret = _bpf(BPF_MAP_LOOKUP_ELEM, look)
        if ret == 0:
            out.append((nxt.raw, val.raw))
        elif ret != -errno.ENOENT:  # deleted between the two calls: skip it
            raise _fail("looking up a key in map fd %d" % num, ret)
        ctypes.memmove(cur, nxt, key_size)
        step.key = addressof(cur)


@functools.lru_cache(maxsize=32)
def _splitter(size, count):
    """A struct that cuts `count` consecutive `size`-byte records into bytes objects
    (several times faster than slicing in a Python loop)."""
    return struct.Struct(("%ds" % size) * count)


_BATCH_UNSUPPORTED = (-errno.EINVAL, -ENOTSUPP, -errno.EOPNOTSUPP)
_BATCH_BYTES_MAX = 64 << 20


def map_lookup_batch(fd, key_size, value_size, max_entries, batch=None):
    """All (key, value) pairs through BPF_MAP_LOOKUP_BATCH.

    `batch` is how many entries one call asks for (default: the whole map, bounded to
    64 MiB of buffers). Falls back to map_dump_per_key where the kernel or the map type
    has no batch lookup. For per-CPU maps pass percpu_value_size(value_size)."""
    num = _fdnum(fd)
    entry = key_size + value_size
    if batch is None:
        batch = max_entries + 1  # one call reads everything and ends with ENOENT
    batch = max(1, min(batch, max(1, _BATCH_BYTES_MAX // max(entry, 1))))
    token = max(key_size, 8)  # arrays use a key as the position, hash maps a u32 bucket
    tokens = (create_string_buffer(token), create_string_buffer(token))
    keys = create_string_buffer(batch * key_size)
    vals = create_string_buffer(batch * value_size)
    attr = MapBatchAttr(map_fd=num, in_batch=0, out_batch=addressof(tokens[1]),
                        keys=addressof(keys), values=addressof(vals))
    out = []
    flip = 1
    while True:
        attr.count = batch
        ret = _bpf(BPF_MAP_LOOKUP_BATCH, attr)
        if ret < 0 and ret != -errno.ENOENT:
            if ret == -errno.ENOSPC and attr.count == 0:
                # A hash bucket holds more entries than one batch: grow and ask again.
                batch *= 2
                keys = create_string_buffer(batch * key_size)
                vals = create_string_buffer(batch * value_size)
                attr.keys, attr.values = addressof(keys), addressof(vals)
                continue
            if ret in _BATCH_UNSUPPORTED and attr.in_batch == 0 and not out:
                return map_dump_per_key(fd, key_size, value_size)
            raise _fail("batch lookup in map fd %d" % num, ret)
        n = attr.count
        if n:
            out.extend(zip(_splitter(key_size, n).unpack_from(keys),
                           _splitter(value_size, n).unpack_from(vals)))
        if ret == -errno.ENOENT or (ret == 0 and n == 0) or len(out) >= max_entries:
            return out
        # The position the kernel returned is where the next call starts.
        attr.in_batch = addressof(tokens[flip])
        flip ^= 1
        attr.out_batch = addressof(tokens[flip])


def map_update_batch(fd, items, elem_flags=BPF_ANY):
    """Store many (key, value) pairs in one call (BPF_MAP_UPDATE_BATCH); all keys must have
    one length and all values another. Returns how many were stored."""
    items = list(items)
    if not items:
        return 0
    key_size, value_size = len(items[0][0]), len(items[0][1])
    if any(len(k) != key_size or len(v) != value_size for k, v in items):
        raise BpfError("map_update_batch: all keys and all values must have one size each")
    kbuf, kaddr = _buffer_of(b"".join(item[0] for item in items))
    vbuf, vaddr = _buffer_of(b"".join(item[1] for item in items))
    attr = MapBatchAttr(map_fd=_fdnum(fd), keys=kaddr, values=vaddr, count=len(items),
                        elem_flags=elem_flags)
    ret = _bpf(BPF_MAP_UPDATE_BATCH, attr)
    if ret < 0:
        raise _fail("batch update of %d entries in map fd %d (%d stored)"
                    % (len(items), _fdnum(fd), attr.count), ret, {
                        errno.EPERM: _READ_ONLY_HINT,
                        errno.E2BIG: "the map is full",
                        ENOTSUPP: "this map type has no batch update on this kernel",
                    })
    return attr.count


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

_LOG_SIZE = 4 << 20


def prog_load(prog_type, insns, license="GPL", name="", expected_attach_type=0,
              log_level=1, prog_flags=0, attach_btf_id=0, prog_ifindex=0):
    """Load a program from raw instructions (bytes, 8 per instruction).

    The first attempt runs without a verifier log; after a failure the load is repeated
    with `log_level` and the BpfError carries the verifier log in .log."""
    insns = bytes(insns)
    if not insns or len(insns) % 8:
        raise BpfError("program %r: instructions must be a non-empty multiple of 8 bytes, "
                       "got %d bytes" % (name, len(insns)))
    ibuf, iaddr = _buffer_of(insns)
    lbuf = create_string_buffer(license.encode("ascii"))
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=iaddr,
                        license=addressof(lbuf), prog_name=_obj_name(name),
                        expected_attach_type=expected_attach_type, prog_flags=prog_flags,
                        attach_btf_id=attach_btf_id, prog_ifindex=prog_ifindex)
    ret = _bpf(BPF_PROG_LOAD, attr)
    if ret >= 0:
        return BpfFd(ret)
    err = -ret
    log = None
    if log_level:
        logbuf = create_string_buffer(_LOG_SIZE)
        attr.log_level, attr.log_size, attr.log_buf = log_level, _LOG_SIZE, addressof(logbuf)
        ret = _bpf(BPF_PROG_LOAD, attr)
        if ret >= 0:
            return BpfFd(ret)
        log = _cstr(logbuf.raw) or None
        if ret != -errno.ENOSPC:  # ENOSPC only says the log was cut
            err = -ret
    what = "loading %s program %r (%d instructions)" % (prog_type_name(prog_type), name, len(insns) // 8)
    hint = None
    if log:
        hint = "the verifier rejected it: %s (full log in the error's log)" % (
            verifier_reason(log) or "see the log")
    elif err == errno.EPERM:
        hint = PermissionHint.TEXT
    raise BpfError(what, errno=err, log=log, hint=hint)


_LOG_SUMMARY_PREFIXES = ("processed ", "verification time", "stack depth", "mark_read")


def verifier_reason(log):
    """The line of a verifier log that says why it refused (the last one before the
    statistics the kernel appends), or None."""
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(_LOG_SUMMARY_PREFIXES):
            return line
    return None


def prog_test_run(fd, data, repeat=1, ctx=None, data_out_size=None, flags=0, cpu=0):
    """Run a program on `data` (BPF_PROG_TEST_RUN).

    Returns dict(retval, duration_ns (mean per run), data_out, and ctx_out when ctx was
    given)."""
    data = bytes(data)
    dbuf, daddr = _buffer_of(data)
    out_size = data_out_size if data_out_size is not None else len(data) + 4096
    obuf = create_string_buffer(max(out_size, 1))
    attr = ProgTestRunAttr(prog_fd=_fdnum(fd), data_size_in=len(data), data_in=daddr,
                           data_size_out=out_size, data_out=addressof(obuf),
                           repeat=repeat, flags=flags, cpu=cpu)
    if ctx is not None:
        ctx = bytes(ctx)
        cbuf, caddr = _buffer_of(ctx)
        cobuf = create_string_buffer(max(len(ctx), 1))
        attr.ctx_size_in, attr.ctx_in = len(ctx), caddr
        attr.ctx_size_out, attr.ctx_out = len(ctx), addressof(cobuf)
    ret = _bpf(BPF_PROG_TEST_RUN, attr)
    if ret < 0:
        raise _fail("test-running program fd %d" % _fdnum(fd), ret, {
            ENOTSUPP: "this program type cannot be test-run on this kernel",
            errno.EINVAL: "the input or context does not suit this program type",
            errno.ENOSPC: "the output did not fit; pass a larger data_out_size",
        })
    out = {"retval": ctypes.c_int32(attr.retval).value, "duration_ns": attr.duration,
           "data_out": obuf.raw[:min(attr.data_size_out, out_size)]}
    if ctx is not None:
        out["ctx_out"] = cobuf.raw[:attr.ctx_size_out]
    return out


def enable_stats(stats_type=BPF_STATS_RUN_TIME):
    """Turn on run-time statistics (run_time_ns, run_cnt) while the returned fd is open."""
    ret = _bpf(BPF_ENABLE_STATS, EnableStatsAttr(type=stats_type))
    if ret < 0:
        raise _fail("enabling BPF run-time statistics", ret)
    return BpfFd(ret)


# ---------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------

def link_create(prog_fd, target, attach_type, flags=0, relative_fd=0, relative_id=0,
                expected_revision=0, bpf_cookie=0, target_btf_id=0):
    """Attach a program through a link (BPF_LINK_CREATE).

    `target` is an fd (cgroup, netns, perf event) or an ifindex (xdp, tcx, netkit).
    relative_fd / relative_id (with BPF_F_BEFORE / BPF_F_AFTER / BPF_F_ID in flags) and
    expected_revision place tcx and netkit programs; bpf_cookie goes with perf events;
    target_btf_id with tracing programs."""
    attr = LinkCreateAttr(prog_fd=_fdnum(prog_fd), target_fd=int(target),
                          attach_type=attach_type, flags=flags)
    if attach_type in (BPF_TCX_INGRESS, BPF_TCX_EGRESS, BPF_NETKIT_PRIMARY, BPF_NETKIT_PEER):
        attr.u.tcx.relative_fd = relative_id if relative_id else (
            _fdnum(relative_fd) if relative_fd else 0)
        attr.u.tcx.expected_revision = expected_revision
    elif attach_type == BPF_PERF_EVENT:
        attr.u.perf_event.bpf_cookie = bpf_cookie
    elif target_btf_id:
        attr.u.target_btf_id = target_btf_id
    ret = _bpf(BPF_LINK_CREATE, attr)
    if ret < 0:
        what = "attaching program fd %d (%s) to %d" % (_fdnum(prog_fd), attach_type_name(attach_type), int(target))
        raise _fail(what, ret, {
            errno.EEXIST: "another program is already attached there in exclusive mode",
            errno.EBUSY: "the hook is busy: a program is attached there another way",
            errno.EINVAL: "this kernel does not support links for this program type and "
                          "attach type, or the program was loaded for another attach type",
            errno.ESTALE: "the attached programs changed (expected_revision mismatch)",
        })
    return BpfFd(ret)


def raw_tracepoint_open(name, prog_fd, cookie=0):
    """Attach a raw_tracepoint (or tp_btf/tracing with name None) program; returns the link."""
    cname = create_string_buffer(name.encode("ascii")) if name else None
    attr = RawTracepointAttr(name=addressof(cname) if cname is not None else 0,
                             prog_fd=_fdnum(prog_fd), cookie=cookie)
    ret = _bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    if ret < 0:
        raise _fail("attaching program fd %d to raw tracepoint %s" % (_fdnum(prog_fd), name),
                    ret, {errno.ENOENT: "this kernel has no raw tracepoint named %s" % name})
    return BpfFd(ret)


def link_update(link_fd, new_prog_fd, old_prog_fd=None):
    """Swap the program of a link (with old_prog_fd: only if that one is attached)."""
    attr = LinkUpdateAttr(link_fd=_fdnum(link_fd), new_prog_fd=_fdnum(new_prog_fd))
    if old_prog_fd is not None:
        attr.flags, attr.old_prog_fd = BPF_F_REPLACE, _fdnum(old_prog_fd)
    ret = _bpf(BPF_LINK_UPDATE, attr)
    if ret < 0:
        raise _fail("replacing the program of link fd %d" % _fdnum(link_fd), ret, {
            errno.EPERM: "the attached program is not old_prog_fd, or " + PermissionHint.TEXT,
        })


def prog_query(target, attach_type, max_count=64):
    """Programs and links attached at a hook (BPF_PROG_QUERY): for TCX, ``target`` is an
    ifindex of the caller's network namespace. Returns dict(prog_ids, link_ids, revision);
    link_ids is [] on kernels before 6.6."""
    prog_ids = (c_uint32 * max_count)()
    link_ids = (c_uint32 * max_count)()
    attr = ProgQueryAttr(target=int(target), attach_type=attach_type, count=max_count,
                         prog_ids=addressof(prog_ids), link_ids=addressof(link_ids))
    ret = _bpf(BPF_PROG_QUERY, attr)
    if ret < 0:
        raise _fail("querying the programs attached to %d (%s)" % (int(target), attach_type_name(attach_type)), ret)
    count = min(attr.count, max_count)
    return {"prog_ids": list(prog_ids[:count]), "link_ids": [i for i in link_ids[:count] if i],
            "revision": attr.revision}


def link_detach(fd):
    """Detach a link from its hook; the link object stays until its last fd/pin is gone."""
    ret = _bpf(BPF_LINK_DETACH, LinkDetachAttr(link_fd=_fdnum(fd)))
    if ret < 0:
        raise _fail("detaching link fd %d" % _fdnum(fd), ret, {
            errno.EOPNOTSUPP: "this link type cannot be detached; unpin it and close its fds",
        })
