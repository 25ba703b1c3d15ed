// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Syscall calls, errors and latency from the raw_syscalls tracepoints, which every kernel
 * has. Raw tracepoints get the tracepoint's arguments without building the trace record. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "syscall_latency.bpf.h"

/* TP_PROTO(struct pt_regs *regs, long id) */
SEC("raw_tracepoint/sys_enter")
int syscall_enter_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return syscall_enter(ctx->args[1]);
}

/* TP_PROTO(struct pt_regs *regs, long ret) */
SEC("raw_tracepoint/sys_exit")
int syscall_exit_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return syscall_exit(ctx->args[1]);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
