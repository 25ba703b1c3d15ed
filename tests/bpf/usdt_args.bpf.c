// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Test program for ebpf_attach's usdt hook, written with libbpf's usdt.bpf.h: counts the probe
 * per process and sums its two arguments (an int and a long) into arg_sums[0] and [1]. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "calls_by_tgid.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} arg_sums SEC(".maps");

static __always_inline void add(__u32 index, __u64 value)
{
	__u64 *sum = bpf_map_lookup_elem(&arg_sums, &index);

	if (sum)
		__sync_fetch_and_add(sum, value);
}

SEC("usdt")
int BPF_USDT(usdt_tick, int i, long square)
{
	count_tgid();
	add(0, i);
	add(1, square);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
