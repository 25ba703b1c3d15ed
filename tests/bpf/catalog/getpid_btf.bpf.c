// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* A user's program in cloudflare/ebpf_exporter's layout (getpid_btf.yaml beside it): getpid
 * calls by process, counted from a BTF-typed tracepoint. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} getpid_calls_total SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(getpid_btf_enter, struct pt_regs *regs, long id)
{
	if (id == NR_GETPID)
		increment(&getpid_calls_total, bpf_get_current_pid_tgid() >> 32);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
