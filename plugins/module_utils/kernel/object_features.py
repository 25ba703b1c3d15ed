# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a BPF object needs from the kernel, checked before it is loaded: each map type and
program type it uses that not every supported kernel has is probed with libbpf
(libbpf_probe_bpf_map_type, libbpf_probe_bpf_prog_type), and a type the kernel lacks is an
error naming the map or program, the type and the Linux version that brought it, instead of the
EINVAL a load would end with ("map syscall_start is a task_storage map, which needs Linux 5.11;
this host runs 5.10.0-32-cloud-amd64").

Types older than Linux 5.4 are not probed: every kernel with BTF has them. The BTF-typed program
types (tracing, lsm, ext) are left to their own checks (features.has_tp_btf, has_fentry), since
libbpf's generic probe cannot tell a missing type from missing BPF trampolines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_consts as c
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

# the Linux release each type first appeared in
MAP_TYPES_SINCE = {
    c.BPF_MAP_TYPE_DEVMAP_HASH: "5.4", c.BPF_MAP_TYPE_STRUCT_OPS: "5.6", c.BPF_MAP_TYPE_RINGBUF: "5.8",
    c.BPF_MAP_TYPE_INODE_STORAGE: "5.10", c.BPF_MAP_TYPE_TASK_STORAGE: "5.11", c.BPF_MAP_TYPE_BLOOM_FILTER: "5.16",
    c.BPF_MAP_TYPE_USER_RINGBUF: "6.1", c.BPF_MAP_TYPE_CGRP_STORAGE: "6.2", c.BPF_MAP_TYPE_ARENA: "6.9",
}
PROG_TYPES_SINCE = {
    c.BPF_PROG_TYPE_SK_LOOKUP: "5.9", c.BPF_PROG_TYPE_SYSCALL: "5.14", c.BPF_PROG_TYPE_NETFILTER: "6.4",
}
_cache = {}


def _supported(kind, type_id):
    key = (kind, type_id)
    if key not in _cache:
        lib = libbpf.lib()
        fn = getattr(lib, "libbpf_probe_bpf_%s_type" % kind)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p]
        _cache[key] = fn(type_id, None) == 1
    return _cache[key]


def has_map_type(map_type):
    """Whether this kernel can create maps of ``map_type`` (libbpf's probe)."""
    return _supported("map", map_type)


def missing(maps, programs):
    """[(what, type name, since)] for the maps ((name, map type)) and programs ((name, program
    type)) whose type this kernel lacks."""
    out = []
    for name, map_type in maps:
        if map_type in MAP_TYPES_SINCE and not _supported("map", map_type):
            out.append(("map %s" % name, c.map_type_name(map_type), MAP_TYPES_SINCE[map_type]))
    for name, prog_type in programs:
        if prog_type in PROG_TYPES_SINCE and not _supported("prog", prog_type):
            out.append(("program %s" % name, c.prog_type_name(prog_type), PROG_TYPES_SINCE[prog_type]))
    return out


def check(filename, maps, programs):
    """BpfError unless this kernel has every map and program type the object uses."""
    lacking = missing(maps, programs)
    if lacking:
        reasons = ["%s is a %s %s, which needs Linux %s" % (what, kind, what.split(" ")[0], since) for what, kind, since in lacking]
        raise BpfError("%s cannot be loaded on this kernel: %s; this host runs Linux %s"
                       % (filename, "; ".join(reasons), os.uname().release),
                       hint="load a variant of the program that does without it on this host")
