# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Multi-probe links: one bpf_link attaching a kprobe-type program to many kernel functions
(kprobe_multi, Linux 5.18, built on fprobe) or to many locations of one binary (uprobe_multi,
Linux 6.6), and the functions a libbpf section pattern (``kprobe.multi/tcp_*``,
``uprobe.multi/libc.so.6:malloc*``) matches, found as libbpf finds them: kernel functions in
tracefs' ``available_filter_functions``, binary functions in the file's symbol tables.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import fnmatch
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_call, elf_symbols, libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_call import BpfFd, fdnum, fail
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import (
    BPF_LINK_CREATE, BPF_TRACE_KPROBE_MULTI, BPF_TRACE_UPROBE_MULTI,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import (
    KprobeMultiLinkCreateOpts, LinkCreateOpts, UprobeMultiLinkCreateAttr,
)

BPF_F_KPROBE_MULTI_RETURN = 1
BPF_F_UPROBE_MULTI_RETURN = 1
_HINTS = {
    errno.EOPNOTSUPP: "this kernel has no multi-probe links of this kind (kprobe_multi: Linux 5.18 with fprobe; "
                      "uprobe_multi: Linux 6.6)",
    errno.EINVAL: "the program was not loaded for this kind of multi-probe (its section must be kprobe.multi/..., "
                  "kretprobe.multi/..., uprobe.multi/... or uretprobe.multi/...), or this kernel lacks the link type",
    errno.ESRCH: "a function cannot be probed (inlined, notrace, or not in the kernel)",
    errno.ENOENT: "a function cannot be probed (inlined, notrace, or not in the kernel)",
}


def kernel_functions(pattern, tracefs):
    """The kernel functions matching glob ``pattern`` that can be probed, from
    ``<tracefs>/available_filter_functions`` (module functions by their name alone), sorted."""
    path = os.path.join(tracefs, "available_filter_functions")
    try:
        with open(path) as f:
            names = set(line.split()[0] for line in f if line.strip())
    except (IOError, OSError) as e:
        raise fail("reading %s" % path, e.errno)
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern) and not n.startswith("__ftrace_invalid_address__"))


def binary_functions(path, pattern):
    """{function: file offset} of the functions of ELF file ``path`` matching glob ``pattern``."""
    return dict((name, offset) for name, offset in elf_symbols.functions(path).items() if fnmatch.fnmatchcase(name, pattern))


def kprobe_multi_link(prog_fd, functions, retprobe=False):
    """A kprobe_multi link of the program at ``functions`` (names); libbpf 1.1's
    bpf_link_create takes them."""
    syms = (ctypes.c_char_p * len(functions))(*[f.encode() for f in functions])
    opts = KprobeMultiLinkCreateOpts()
    opts.kprobe_multi.flags = BPF_F_KPROBE_MULTI_RETURN if retprobe else 0
    opts.kprobe_multi.cnt = len(functions)
    opts.kprobe_multi.syms = ctypes.cast(syms, ctypes.c_void_p)
    ret = libbpf.lib().bpf_link_create(fdnum(prog_fd), 0, BPF_TRACE_KPROBE_MULTI,
                                       ctypes.cast(ctypes.pointer(opts), ctypes.POINTER(LinkCreateOpts)))
    if ret < 0:
        raise fail("attaching program fd %d to %d kernel functions (kprobe_multi)" % (fdnum(prog_fd), len(functions)), ret, _HINTS)
    return BpfFd(ret)


def uprobe_multi_link(prog_fd, path, offsets, retprobe=False):
    """A uprobe_multi link of the program at file ``offsets`` of ``path``."""
    # raw bpf(): libbpf 1.1's bpf_link_create_opts has no uprobe_multi
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    offs = (ctypes.c_uint64 * len(offsets))(*offsets)
    attr = UprobeMultiLinkCreateAttr(prog_fd=fdnum(prog_fd), attach_type=BPF_TRACE_UPROBE_MULTI,
                                     path=ctypes.addressof(cpath), offsets=ctypes.addressof(offs), cnt=len(offsets),
                                     multi_flags=BPF_F_UPROBE_MULTI_RETURN if retprobe else 0)
    ret = bpf_call.sys_bpf(BPF_LINK_CREATE, attr)
    if ret < 0:
        raise fail("attaching program fd %d to %d locations of %s (uprobe_multi)" % (fdnum(prog_fd), len(offsets), path), ret, _HINTS)
    return BpfFd(ret)
