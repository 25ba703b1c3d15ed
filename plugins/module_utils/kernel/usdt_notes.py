# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""USDT probes (SystemTap SDT notes) of an ELF file, read the way libbpf reads them, and their
argument specs in the layout of libbpf's ``usdt.bpf.h``.

libbpf attaches USDT probes only from a process it keeps (bpf_program__attach_usdt returns a
link of several uprobe links that cannot be pinned), so this module does what it does before
attaching, and ebpf_attach pins the uprobe links itself:

* each ``stapsdt`` note of ``.note.stapsdt`` (type 3) holds the probe's address, the
  ``.stapsdt.base`` address it was linked against, its semaphore's address (0 for none), and the
  provider, name and argument strings;
* the probe's address, moved by the difference between the actual ``.stapsdt.base`` and the
  note's, becomes a file offset through the executable PT_LOAD segment holding it; the
  semaphore's through the section holding it (the uprobe's reference counter offset);
* each argument (``-4@%eax``, ``8@-16(%rbp)``, ``4@$5`` on x86-64; ``-4@x0``, ``8@[sp, 16]``,
  ``4@5`` on arm64) becomes a ``struct __bpf_usdt_arg_spec``: a constant, a register or a memory
  location at a register plus an offset, its sign and the bit shift that narrows it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import elf_symbols
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

NT_STAPSDT = 3
PT_LOAD = 1
PF_X = 1
ARG_CONST, ARG_REG, ARG_REG_DEREF = 0, 1, 2
MAX_ARGS = 12
ARG_SPEC = struct.Struct("<QihBb")  # val_off, arg_type, reg_off, arg_signed, arg_bitshift
SPEC_SIZE = ARG_SPEC.size * MAX_ARGS + 16  # + usdt_cookie (u64), arg_cnt (short) and padding

# offsetof(struct pt_regs, <register>), every name a register may take in an argument
_X86_64 = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56, "r9": 64, "r8": 72,
           "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "ip": 128, "sp": 152}
_X86_ALIASES = {"rip": "ip", "eip": "ip", "rsp": "sp", "esp": "sp", "spl": "sp"}
for _r in ("ax", "bx", "cx", "dx"):
    _X86_ALIASES.update({"r" + _r: _r, "e" + _r: _r, _r[0] + "l": _r})
for _r in ("si", "di", "bp"):
    _X86_ALIASES.update({"r" + _r: _r, "e" + _r: _r, _r + "l": _r})
for _n in range(8, 16):
    _X86_ALIASES.update(dict(("r%d%s" % (_n, suffix), "r%d" % _n) for suffix in ("d", "w", "b")))
_X86_ARG = re.compile(r"^(?P<size>-?[1248])@(?:\$(?P<const>-?\d+)|%(?P<reg>\w+)|(?P<off>-?\d+)?\(%(?P<base>\w+)\))$")
_ARM64_ARG = re.compile(r"^(?P<size>-?[1248])@(?:(?P<const>-?\d+)|(?P<reg>x\d+|sp)|\[(?P<base>x\d+|sp)(?:,\s*(?P<off>-?\d+))?\])$")


def _register(reg, arch):
    if arch == "aarch64":
        return 248 if reg == "sp" else (int(reg[1:]) * 8 if int(reg[1:]) <= 30 else None)
    return _X86_64.get(_X86_ALIASES.get(reg, reg))


def parse_arg(text, arch="x86_64"):
    """(val_off, arg_type, reg_off, signed, bitshift) of one USDT argument; BpfError for a form
    this module does not know (such as x86-64's base+index*scale memory operands)."""
    m = (_ARM64_ARG if arch == "aarch64" else _X86_ARG).match(text)
    if m is None:
        raise BpfError("USDT argument %r has a form that is not supported (constants, registers and register + offset "
                       "memory operands are)" % text)
    size = int(m.group("size"))
    if m.group("const") is not None:
        spec = (int(m.group("const")) & 0xFFFFFFFFFFFFFFFF, ARG_CONST, 0)
    else:
        name = m.group("reg") or m.group("base")
        reg_off = _register(name, arch)
        if reg_off is None:
            raise BpfError("USDT argument %r names register %s, which is not known" % (text, name))
        spec = (int(m.group("off") or 0) & 0xFFFFFFFFFFFFFFFF, ARG_REG if m.group("reg") else ARG_REG_DEREF, reg_off)
    return spec + (size < 0, 64 - abs(size) * 8)


def spec_bytes(args, arch="x86_64", cookie=0):
    """The ``struct __bpf_usdt_spec`` of a probe's argument string."""
    parsed = [parse_arg(a, arch) for a in (args or "").split()]
    if len(parsed) > MAX_ARGS:
        raise BpfError("a USDT probe with %d arguments has more than libbpf's %d" % (len(parsed), MAX_ARGS))
    out = b"".join(ARG_SPEC.pack(*p) for p in parsed) + b"\0" * (ARG_SPEC.size * (MAX_ARGS - len(parsed)))
    return out + struct.pack("<Qh6x", cookie, len(parsed))


def _section_names(data, order, sections):
    shstrndx, = struct.unpack_from(order + "H", data, 0x3E)
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, = struct.unpack_from(order + "H", data, 0x3A)
    strtab = sections[shstrndx]["offset"]
    names = []
    for index in range(len(sections)):
        off, = struct.unpack_from(order + "I", data, shoff + index * shentsize)
        names.append(data[strtab + off:data.find(b"\0", strtab + off)].decode("utf-8", "replace"))
    return names


def _segments(data, order):
    phoff, = struct.unpack_from(order + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    fmt = struct.Struct(order + "IIQQQQQQ")
    for index in range(phnum):
        ptype, flags, offset, vaddr, _paddr, filesz, _memsz, _align = fmt.unpack_from(data, phoff + index * phentsize)
        if ptype == PT_LOAD and flags & PF_X:
            yield vaddr, vaddr + filesz, offset


def _notes(data, order, section):
    pos, end = section["offset"], section["offset"] + section["size"]
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from(order + "III", data, pos)
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        pos = desc_at + ((descsz + 3) & ~3)
        if ntype != NT_STAPSDT or data[name_at:name_at + namesz].rstrip(b"\0") != b"stapsdt":
            continue
        loc, base, sema = struct.unpack_from(order + "QQQ", data, desc_at)
        provider, name, args = (data[desc_at + 24:desc_at + descsz].split(b"\0") + [b"", b"", b""])[:3]
        yield loc, base, sema, provider.decode("utf-8", "replace"), name.decode("utf-8", "replace"), args.decode("utf-8", "replace")


def probes(path, arch=None):
    """[{provider, name, args, offset, semaphore}] of the USDT probes of ELF file ``path``, with
    file offsets (semaphore 0 for none)."""
    arch = arch or os.uname().machine
    data = elf_symbols.read_elf(path, "find its USDT probes")
    order, sections = elf_symbols.elf_sections(data, path)
    names = _section_names(data, order, sections)
    by_name = dict(zip(names, sections))
    if ".note.stapsdt" not in by_name:
        return []
    base = by_name.get(".stapsdt.base", {}).get("addr", 0)
    segments = list(_segments(data, order))
    found = []
    for loc, note_base, sema, provider, name, args in _notes(data, order, by_name[".note.stapsdt"]):
        if base and note_base:
            loc += base - note_base
        seg = [s for s in segments if s[0] <= loc < s[1]]
        if not seg:
            raise BpfError("USDT probe %s:%s of %s lies outside every executable segment" % (provider, name, path))
        sema_off = 0
        if sema:
            holder = [s for s in sections if s["addr"] and s["addr"] <= sema < s["addr"] + s["size"]]
            if not holder:
                raise BpfError("the semaphore of USDT probe %s:%s of %s lies outside every section" % (provider, name, path))
            sema_off = sema - holder[0]["addr"] + holder[0]["offset"]
        found.append({"provider": provider, "name": name, "args": args, "offset": loc - seg[0][0] + seg[0][2],
                      "semaphore": sema_off, "arch": arch})
    return found
