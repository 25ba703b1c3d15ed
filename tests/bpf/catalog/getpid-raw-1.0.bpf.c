// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* A user's program whose file name holds a '.', as some of ebpf_exporter's examples do
 * (cachestat-pre-kernel-5.16): its pins and metrics go by getpid-raw-1_0. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} getpid_raw_calls_total SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int getpid_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == NR_GETPID)
		increment(&getpid_raw_calls_total, bpf_get_current_pid_tgid() >> 32);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
