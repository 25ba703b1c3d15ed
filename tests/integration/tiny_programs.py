"""Minimal programs loaded with the raw syscall, for tests that need something to attach."""
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc

XDP_PASS = 2
TC_ACT_UNSPEC = -1
INGRESS, EGRESS = 0xFFFFFFF2, 0xFFFFFFF3


def load_xdp(name="ebpft_xdp"):
    return sc.prog_load(sc.BPF_PROG_TYPE_XDP, bpf_insn.mov64_imm(0, XDP_PASS) + bpf_insn.exit_insn(), "GPL", name)


def load_cls(name="ebpft_cls"):
    return sc.prog_load(sc.BPF_PROG_TYPE_SCHED_CLS, bpf_insn.mov64_imm(0, TC_ACT_UNSPEC) + bpf_insn.exit_insn(), "GPL", name)


def prog_id(fd):
    return sc.prog_info(fd)["id"]
