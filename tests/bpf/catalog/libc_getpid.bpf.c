// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* getpid calls through the C library by process, from a uprobe on a library named as libbpf
 * resolves it (libc.so.6, not a path). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} libc_getpid_calls_total SEC(".maps");

SEC("uprobe/libc.so.6:getpid")
int libc_getpid(void *ctx)
{
	increment(&libc_getpid_calls_total, bpf_get_current_pid_tgid() >> 32);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
