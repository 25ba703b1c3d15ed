# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load a C library through ctypes with its functions' signatures declared (libbpf, libxdp)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

SONAMES = {"libbpf": "libbpf.so.1", "libxdp": "libxdp.so.1"}
# Directories holding the collection's own copies (bundled_runtime.activate adds them): tried
# after the dynamic linker's search, which finds the host's own.
_search_dirs = []


def soname_of(library):
    return SONAMES[library]


def add_search_dir(path):
    if path not in _search_dirs:
        _search_dirs.append(path)


def load(soname, signatures, hint):
    """The library ``soname`` (the dynamic linker's, else the collection's copy in a search
    directory) with each function of ``signatures`` ({function: (restype, argtypes)}) declared;
    functions an older release lacks are skipped. BpfError with ``hint`` when it is nowhere.
    Only this exact soname: another major release (libbpf.so.0) has another ABI."""
    handle = None
    for candidate in [soname] + [os.path.join(d, soname) for d in _search_dirs]:
        try:
            handle = ctypes.CDLL(candidate, use_errno=True)
            break
        except OSError:
            continue
    if handle is None:
        raise BpfError("%s was not found" % soname, hint=hint)
    for function, (restype, argtypes) in signatures.items():
        fn = getattr(handle, function, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes
    return handle
