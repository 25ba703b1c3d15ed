# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on a BPF object file before libbpf sees it, and its content hash."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

EM_BPF = 247
_BUILD_HINT = "build it with 'clang -O2 -g -target bpf -c prog.bpf.c -o prog.bpf.o'"


def read_checked(path):
    """The bytes of a BPF ELF object at ``path``; a clear BpfError for anything else."""
    if not os.path.exists(path):
        raise BpfError("object file %s does not exist on this host" % path,
                       hint="copy the compiled .bpf.o there first (the ebpf_programs role ships them)")
    if not os.path.isfile(path):
        raise BpfError("object file %s is not a regular file" % path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError) as e:
        raise BpfError("cannot read object file %s" % path, errno=e.errno)
    if len(data) < 20 or data[:4] != b"\x7fELF":
        raise BpfError("%s is not an ELF object file" % path, hint=_BUILD_HINT)
    order = "<" if data[5:6] == b"\x01" else ">"
    machine = struct.unpack(order + "H", data[18:20])[0]
    if machine != EM_BPF:
        raise BpfError("%s is an ELF object for machine %d, not for BPF (machine %d)" % (path, machine, EM_BPF),
                       hint=_BUILD_HINT)
    return data


def content_hash(data, *extra):
    """sha256 over the object bytes and any load parameters that change what gets loaded."""
    digest = hashlib.sha256(data)
    for item in extra:
        digest.update(b"\0" + repr(item).encode("utf-8"))
    return digest.hexdigest()
