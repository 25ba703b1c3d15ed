// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* A user's program in cloudflare/ebpf_exporter's layout (nanosleep_multi.yaml beside it):
 * nanosleeps by process through a kprobe_multi link on every kernel function the section's glob
 * matches (here the one, do_nanosleep), where the kernel has kprobes and fprobe (Linux 5.18+). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} nanosleeps_multi_total SEC(".maps");

SEC("kprobe.multi/do_nanosleep")
int nanosleep_multi_entry(void *ctx)
{
	increment(&nanosleeps_multi_total, bpf_get_current_pid_tgid() >> 32);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
