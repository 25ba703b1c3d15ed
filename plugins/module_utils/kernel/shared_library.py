# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load a C library through ctypes with its functions' signatures declared (libbpf, libxdp)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


def load(soname, name, signatures, hint):
    """The library ``soname`` (else what ldconfig knows as ``lib<name>``) with each function of
    ``signatures`` ({function: (restype, argtypes)}) declared; functions an older release lacks
    are skipped. BpfError with ``hint`` when the library is not installed."""
    try:
        handle = ctypes.CDLL(soname, use_errno=True)
    except OSError:
        try:  # find_library runs ldconfig: only when the soname is not found
            handle = ctypes.CDLL(ctypes.util.find_library(name) or soname, use_errno=True)
        except OSError:
            raise BpfError("%s was not found" % soname, hint=hint)
    for function, (restype, argtypes) in signatures.items():
        fn = getattr(handle, function, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes
    return handle
