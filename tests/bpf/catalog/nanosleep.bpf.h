/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/* What nanosleep_fentry.bpf.c and nanosleep_kprobe.bpf.c share: nanosleeps by process. The
 * catalogue entry "nanosleep" picks one of them per host (fentry needs BPF trampolines). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} nanosleeps_total SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";
