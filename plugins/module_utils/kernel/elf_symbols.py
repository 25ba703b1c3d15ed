# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File offsets of functions in ELF executables and shared libraries, for uprobes.

A uprobe is placed at a file offset. A function's offset is its symbol value (an address)
moved into the file by the section that holds it: st_value - sh_addr + sh_offset, the same
computation libbpf does. .symtab is searched first, then .dynsym (stripped binaries).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

SHT_SYMTAB = 2
SHT_DYNSYM = 11
STT_FUNC = 2
STT_GNU_IFUNC = 10
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00


def read_elf(path, purpose="find a uprobe offset"):
    """The bytes of ELF file ``path``; BpfError saying what they were read for."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError) as e:
        raise BpfError("cannot read %s to %s" % (path, purpose), errno=e.errno)


def elf_sections(data, path):
    """(byte order, [{type, addr, offset, size, link, entsize}]) of a 64-bit ELF file's sections."""
    if data[:4] != b"\x7fELF":
        raise BpfError("%s is not an ELF file; a uprobe needs an executable or shared library" % path)
    if data[4:5] != b"\x02":
        raise BpfError("%s is a 32-bit ELF file; only 64-bit files are supported" % path)
    order = "<" if data[5:6] == b"\x01" else ">"
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    fmt = struct.Struct(order + "IIQQQQIIQQ")
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + fmt.size > len(data):
            raise BpfError("%s has a truncated section table" % path)
        name, stype, _flags, addr, offset, size, link, _info, _align, entsize = fmt.unpack_from(data, off)
        sections.append({"type": stype, "addr": addr, "offset": offset, "size": size, "link": link, "entsize": entsize})
    return order, sections


def _symbols(data, order, sections, table):
    strtab = sections[table["link"]]
    sym = struct.Struct(order + "IBBHQQ")
    entsize = table["entsize"] or sym.size
    for off in range(table["offset"], table["offset"] + table["size"] - sym.size + 1, entsize):
        name_off, info, _other, shndx, value, _size = sym.unpack_from(data, off)
        if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or shndx == SHN_UNDEF or shndx >= SHN_LORESERVE:
            continue
        start = strtab["offset"] + name_off
        end = data.find(b"\0", start)
        yield data[start:end].decode("utf-8", "replace"), value, shndx


def functions(path):
    """{function: file offset} of every function ELF file ``path`` defines (its .symtab, else its
    .dynsym; a versioned name ``f@@V`` as ``f``)."""
    data = read_elf(path)
    order, sections = elf_sections(data, path)
    for kind in (SHT_SYMTAB, SHT_DYNSYM):
        found = {}
        for table in (s for s in sections if s["type"] == kind):
            for name, value, shndx in _symbols(data, order, sections, table):
                sec = sections[shndx]
                found.setdefault(name.split("@", 1)[0], value - sec["addr"] + sec["offset"])
        if found:
            return found
    return {}


def function_offset(path, function):
    """The file offset of ``function`` in the ELF file ``path``; BpfError when it has none."""
    data = read_elf(path)
    order, sections = elf_sections(data, path)
    for kind in (SHT_SYMTAB, SHT_DYNSYM):
        for table in (s for s in sections if s["type"] == kind):
            for name, value, shndx in _symbols(data, order, sections, table):
                if name == function or name.split("@", 1)[0] == function:
                    sec = sections[shndx]
                    return value - sec["addr"] + sec["offset"]
    raise BpfError("%s defines no function %s" % (path, function),
                   hint="list its functions with 'nm -D --defined-only %s' (or 'nm' when it has a symbol table)" % path)


def bpf_programs(path):
    """{program: ELF section name} of a BPF object: its functions outside .text, as libbpf sees
    programs. Read on the controller, where the objects are built, without libbpf."""
    data = read_elf(path)
    order, sections = elf_sections(data, path)
    shstrndx, = struct.unpack_from(order + "H", data, 0x3E)
    names = sections[shstrndx]
    name_fmt = struct.Struct(order + "I")
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, = struct.unpack_from(order + "H", data, 0x3A)

    def section_name(index):
        off, = name_fmt.unpack_from(data, shoff + index * shentsize)
        start = names["offset"] + off
        return data[start:data.find(b"\0", start)].decode("utf-8", "replace")
    found = {}
    for table in (s for s in sections if s["type"] == SHT_SYMTAB):
        for name, _value, shndx in _symbols(data, order, sections, table):
            section = section_name(shndx)
            if section != ".text" and not section.startswith("."):
                found[name] = section
    return found
