# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BPF instruction encoding (struct bpf_insn): enough for the small programs of feature probes and
tests, which are loaded with bpf_syscall.prog_load.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct
import sys

# ---------------------------------------------------------------------------------------
# Instruction encoding (enough for probes and test programs)
# ---------------------------------------------------------------------------------------

# instruction classes
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07
# sizes
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18
# modes
BPF_IMM = 0x00
BPF_MEM = 0x60
BPF_ATOMIC = 0xc0
# source
BPF_K = 0x00
BPF_X = 0x08
# ALU operations
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_MOD = 0x90
BPF_XOR = 0xa0
BPF_MOV = 0xb0
# jump operations
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JNE = 0x50
BPF_CALL = 0x80
BPF_EXIT = 0x90
# ld_imm64 source
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_KFUNC_CALL = 2
BPF_PSEUDO_MAP_VALUE = 2
# registers
BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5 = range(6)
BPF_REG_6, BPF_REG_7, BPF_REG_8, BPF_REG_9, BPF_REG_10 = range(6, 11)
# helper ids
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_map_update_elem = 2
BPF_FUNC_map_delete_elem = 3
BPF_FUNC_ktime_get_ns = 5
BPF_FUNC_get_smp_processor_id = 8

_INSN = struct.Struct("=BBhi")
_LITTLE = sys.byteorder == "little"


def insn(code, dst=0, src=0, off=0, imm=0):
    """One 8-byte instruction (struct bpf_insn)."""
    regs = ((src & 0xf) << 4 | (dst & 0xf)) if _LITTLE else ((dst & 0xf) << 4 | (src & 0xf))
    if imm > 0x7fffffff:
        imm -= 1 << 32
    return _INSN.pack(code, regs, off, imm)


def mov64_imm(dst, imm):
    """dst = imm."""
    return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)


def mov64_reg(dst, src):
    """dst = src."""
    return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src)


def alu64_imm(op, dst, imm):
    """dst op= imm (op: BPF_ADD, BPF_SUB, ...)."""
    return insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)


def alu64_reg(op, dst, src):
    """dst op= src."""
    return insn(BPF_ALU64 | op | BPF_X, dst, src)


def ldx_mem(size, dst, src, off):
    """dst = *(size *)(src + off)."""
    return insn(BPF_LDX | size | BPF_MEM, dst, src, off)


def stx_mem(size, dst, src, off):
    """*(size *)(dst + off) = src."""
    return insn(BPF_STX | size | BPF_MEM, dst, src, off)


def st_mem(size, dst, off, imm):
    """*(size *)(dst + off) = imm."""
    return insn(BPF_ST | size | BPF_MEM, dst, 0, off, imm)


def atomic_add(size, dst, src, off):
    """lock *(size *)(dst + off) += src (size: BPF_W or BPF_DW)."""
    return insn(BPF_STX | size | BPF_ATOMIC, dst, src, off, BPF_ADD)


def jmp_imm(op, dst, imm, off):
    """if (dst op imm) skip `off` instructions (op: BPF_JEQ, BPF_JNE, ...)."""
    return insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)


def jmp_reg(op, dst, src, off):
    """if (dst op src) skip `off` instructions."""
    return insn(BPF_JMP | op | BPF_X, dst, src, off)


def call(helper_id):
    """Call a helper (BPF_FUNC_*); arguments in r1-r5, result in r0."""
    return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper_id)


def call_kfunc(btf_id):
    """Call the kernel function with vmlinux BTF id ``btf_id`` (BPF_PSEUDO_KFUNC_CALL)."""
    return insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, btf_id)


def exit_insn():
    """Return r0."""
    return insn(BPF_JMP | BPF_EXIT)


def ld_imm64(dst, imm, src=0):
    """dst = 64-bit imm (two instruction slots)."""
    lo, hi = imm & 0xffffffff, (imm >> 32) & 0xffffffff
    return insn(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, lo) + insn(0, 0, 0, 0, hi)


def ld_map_fd(dst, fd):
    """dst = pointer to the map behind `fd` (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD)."""
    return ld_imm64(dst, int(fd), src=BPF_PSEUDO_MAP_FD)
