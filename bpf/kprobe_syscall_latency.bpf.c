// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The syscall_latency metrics from a kprobe/kretprobe pair on x64_sys_call(), the x86-64
 * function that dispatches every native 64-bit syscall: mainline since 6.9, backported to
 * the 6.1 stable series in 2024 (Debian 12's 6.1.0-56 has it), present in 6.12.
 * Load this or syscall_latency.bpf.o, never both: they share their pinned maps. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "syscall_latency.bpf.h"

#ifndef __TARGET_ARCH_x86
#error "x64_sys_call exists on x86-64 only"
#endif

/* long x64_sys_call(const struct pt_regs *regs, unsigned int nr) */
SEC("kprobe/x64_sys_call")
int BPF_KPROBE(syscall_enter_kp, const struct pt_regs *regs, unsigned int nr)
{
	return syscall_enter(nr);
}

SEC("kretprobe/x64_sys_call")
int BPF_KRETPROBE(syscall_exit_kp, long ret)
{
	return syscall_exit(ret);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
