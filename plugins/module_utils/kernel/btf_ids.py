# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Type ids in the running kernel's BTF, through libbpf (btf__load_vmlinux_btf and
btf__find_by_name_kind): what a BTF-typed program (tp_btf, fentry, fexit, lsm) is loaded against,
and what the feature probes load theirs against."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

BTF_KIND_TYPEDEF = 8
BTF_KIND_FUNC = 12
_cache = {}


def _lib():
    lib = libbpf.lib()
    lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
    lib.btf__load_vmlinux_btf.argtypes = []
    lib.btf__find_by_name_kind.restype = ctypes.c_int
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__free.restype = None
    lib.btf__free.argtypes = [ctypes.c_void_p]
    return lib


def vmlinux_type_id(name, kind):
    """The id of type ``name`` of ``kind`` (BTF_KIND_*) in vmlinux's BTF; None when it has none.
    BpfError when the kernel exposes no BTF."""
    key = (name, kind)
    if key not in _cache:
        lib = _lib()
        btf = lib.btf__load_vmlinux_btf()
        if not btf:
            raise BpfError("the kernel's BTF cannot be read (%s)" % libbpf.describe_errno(ctypes.get_errno() or 1),
                           hint="BTF-typed programs need a kernel built with CONFIG_DEBUG_INFO_BTF")
        try:
            found = lib.btf__find_by_name_kind(btf, name.encode("ascii"), kind)
        finally:
            lib.btf__free(btf)
        _cache[key] = found if found > 0 else None
    return _cache[key]
