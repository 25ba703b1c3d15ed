# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bpf_* modules share: file descriptors, errors, and the bpf(2) system call through
ctypes for the few commands libbpf 1.1's wrappers cannot issue with the options needed.

Every function of the kernel layer's bpf_* modules that returns a file descriptor returns a
BpfFd; every function that takes one accepts a BpfFd or a plain int. Every kernel failure
raises BpfError. Layouts follow include/uapi/linux/bpf.h and libbpf 1.1 (bpf_structs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import platform
from ctypes import byref, addressof, sizeof, create_string_buffer, c_long, c_int, c_uint, c_void_p

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import BPF_OBJ_NAME_LEN
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

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


def sys_bpf(cmd, attr):
    """Run bpf(cmd, attr). Returns the result (>= 0) or -errno."""
    global _NR_BPF
    if _NR_BPF is None:
        _NR_BPF = sys_bpf_number()
    ret = _SYSCALL(_NR_BPF, cmd, byref(attr), sizeof(attr))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


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


def fdnum(fd):
    """The int behind a BpfFd or an int."""
    return fd.__index__()


def fail(what, err, hints=None):
    """BpfError for -errno or errno `err`, with a hint chosen by errno."""
    err = abs(err)
    hint = (hints or {}).get(err)
    return errno_error(what, err, hint=hint)


def cstr(raw):
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def obj_name(name):
    """A name the kernel accepts: at most 15 bytes of [A-Za-z0-9_.]."""
    raw = (name or "").encode("ascii", "replace")[:BPF_OBJ_NAME_LEN - 1]
    return bytes(c if (chr(c).isalnum() or c in b"_.") else ord("_") for c in raw)


def buffer_of(data):
    """(ctypes buffer holding bytes `data`, its address)."""
    buf = create_string_buffer(bytes(data), len(data)) if data else create_string_buffer(1)
    return buf, addressof(buf)
