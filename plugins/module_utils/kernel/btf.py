# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Enumerations from a kernel's BTF (/sys/kernel/btf/vmlinux), without libbpf.

Some kernel enums are renumbered between releases (``enum skb_drop_reason`` gains reasons in
the middle), so a number a BPF program recorded is named from the running kernel's own BTF.
This reads the BTF header and walks the type section (include/uapi/linux/btf.h) to find an
``ENUM`` or ``ENUM64`` type by name. Only self-contained BTF (vmlinux) is supported, not the
split BTF of modules, whose names and types continue vmlinux's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = 1, 2, 3, 4, 5, 6, 7
KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM64 = 13, 14, 15, 17, 19
KIND_MAX = 19

# Bytes after the 12-byte struct btf_type: (fixed, per vlen item), by kind.
_TRAILER = {
    KIND_INT: (4, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12), KIND_UNION: (0, 12), KIND_ENUM: (0, 8),
    KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0), KIND_DATASEC: (0, 12), KIND_DECL_TAG: (4, 0), KIND_ENUM64: (0, 12),
}
_HEADER_LEN = 24


class Btf:
    """Parsed BTF bytes: the header, the string section, and the offset of every type."""

    def __init__(self, data, source="BTF"):
        self.source = source
        self.data = data = bytes(data)
        if len(data) < _HEADER_LEN:
            raise BpfError("%s is not BTF: %d bytes is shorter than a BTF header" % (source, len(data)))
        if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
            self.order = "<"
        elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
            self.order = ">"
        else:
            raise BpfError("%s is not BTF: magic %#06x, expected %#06x" % (source, struct.unpack_from("<H", data)[0], BTF_MAGIC))
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(self.order + "5I", data, 4)
        self.types_start = hdr_len + type_off
        self.types_end = self.types_start + type_len
        self.strings_start = hdr_len + str_off
        self.strings_end = self.strings_start + str_len
        if hdr_len < _HEADER_LEN or self.types_end > len(data) or self.strings_end > len(data):
            raise BpfError("%s is truncated or corrupt: its header describes sections beyond its %d bytes"
                           % (source, len(data)))
        self._type = struct.Struct(self.order + "3I")
        self._offsets = None

    def string(self, offset):
        """The NUL-terminated string at ``offset`` of the string section."""
        start = self.strings_start + offset
        if not self.strings_start <= start < self.strings_end:
            raise BpfError("%s: string offset %d is outside the string section" % (self.source, offset))
        end = self.data.find(b"\0", start, self.strings_end)
        return self.data[start:end if end >= 0 else self.strings_end].decode("utf-8", "replace")

    def _string_offset(self, name):
        """Offsets in the string section where ``name`` is a whole string (it may be stored once
        or, in some encoders, several times)."""
        needle = b"\0" + name.encode("utf-8") + b"\0"
        found = []
        pos = self.data.find(needle, self.strings_start, self.strings_end)
        while pos >= 0:
            found.append(pos + 1 - self.strings_start)
            pos = self.data.find(needle, pos + 1, self.strings_end)
        return found

    def types(self):
        """(type id, kind, name offset, vlen, kind_flag, offset of the btf_type) of every type."""
        if self._offsets is None:
            unpack = self._type.unpack_from
            data = self.data
            pos, end = self.types_start, self.types_end
            out = []
            type_id = 1
            while pos < end:
                if pos + 12 > end:
                    raise BpfError("%s is corrupt: type %d is cut off" % (self.source, type_id))
                name_off, info, _size = unpack(data, pos)
                kind = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                if not 1 <= kind <= KIND_MAX:
                    raise BpfError("%s: type %d has unknown kind %d; this BTF is newer than this reader"
                                   % (self.source, type_id, kind))
                out.append((type_id, kind, name_off, vlen, info >> 31, pos))
                fixed, per_item = _TRAILER.get(kind, (0, 0))
                pos += 12 + fixed + per_item * vlen
                type_id += 1
            self._offsets = out
        return self._offsets

    def enum(self, name):
        """{value: constant name} of the ENUM or ENUM64 type ``name``; BpfError when absent."""
        offsets = set(self._string_offset(name))
        if offsets:
            for _type_id, kind, name_off, vlen, kind_flag, pos in self.types():
                if name_off in offsets and kind in (KIND_ENUM, KIND_ENUM64):
                    return self._enum_values(kind, vlen, kind_flag, pos + 12)
        raise BpfError("%s has no enum named %s" % (self.source, name),
                       hint="the kernel may be too old for it, or the name is misspelt (give it without 'enum ')")

    def _enum_values(self, kind, vlen, signed, pos):
        values = {}
        if kind == KIND_ENUM:
            fmt = struct.Struct(self.order + ("Ii" if signed else "II"))
            for index in range(vlen):
                name_off, value = fmt.unpack_from(self.data, pos + 8 * index)
                values.setdefault(value, self.string(name_off))
        else:
            fmt = struct.Struct(self.order + "3I")
            for index in range(vlen):
                name_off, low, high = fmt.unpack_from(self.data, pos + 12 * index)
                value = high << 32 | low
                if signed and value >> 63:
                    value -= 1 << 64
                values.setdefault(value, self.string(name_off))
        return values


def read_btf(path=VMLINUX_BTF):
    """A Btf of the file at ``path`` (default: the running kernel's)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError) as e:
        hint = "this kernel exposes no BTF (it needs CONFIG_DEBUG_INFO_BTF)" if path == VMLINUX_BTF else None
        raise errno_error("cannot read BTF from %s" % path, e.errno, hint=hint)
    return Btf(data, path)


def enum_values(name, path=VMLINUX_BTF):
    """{value: constant name} of kernel enum ``name`` (for example ``skb_drop_reason``)."""
    return read_btf(path).enum(name)
