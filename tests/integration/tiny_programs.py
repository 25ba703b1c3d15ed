"""Minimal programs loaded with the raw syscall, for tests that need something to attach."""
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc

XDP_PASS = 2
TC_ACT_UNSPEC = -1
INGRESS, EGRESS = 0xFFFFFFF2, 0xFFFFFFF3


def return_program(prog_type, value, name, **kw):
    """A program of type ``prog_type`` that returns ``value`` and does nothing else."""
    return sc.prog_load(prog_type, bpf_insn.mov64_imm(0, value) + bpf_insn.exit_insn(), name=name, **kw)


def load_xdp(name="ebpft_xdp"):
    return return_program(sc.BPF_PROG_TYPE_XDP, XDP_PASS, name)


def load_cls(name="ebpft_cls"):
    return return_program(sc.BPF_PROG_TYPE_SCHED_CLS, TC_ACT_UNSPEC, name)


def counter_program(map_fd):
    """XDP: increment slot 0 of a per-CPU u64 array, return XDP_PASS."""
    return b"".join([
        bpf_insn.st_mem(bpf_insn.BPF_W, bpf_insn.BPF_REG_10, -4, 0),          # u32 key = 0 on the stack
        bpf_insn.mov64_reg(bpf_insn.BPF_REG_2, bpf_insn.BPF_REG_10),
        bpf_insn.alu64_imm(bpf_insn.BPF_ADD, bpf_insn.BPF_REG_2, -4),         # r2 = &key
        bpf_insn.ld_map_fd(bpf_insn.BPF_REG_1, map_fd),                 # r1 = map
        bpf_insn.call(bpf_insn.BPF_FUNC_map_lookup_elem),
        bpf_insn.jmp_imm(bpf_insn.BPF_JEQ, bpf_insn.BPF_REG_0, 0, 2),         # no value: skip the increment
        bpf_insn.mov64_imm(bpf_insn.BPF_REG_1, 1),
        bpf_insn.atomic_add(bpf_insn.BPF_DW, bpf_insn.BPF_REG_0, bpf_insn.BPF_REG_1, 0),
        bpf_insn.mov64_imm(bpf_insn.BPF_REG_0, sc.XDP_PASS),
        bpf_insn.exit_insn(),
    ])


def prog_id(fd):
    return sc.prog_info(fd)["id"]
