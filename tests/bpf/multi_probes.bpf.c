// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Test programs for ebpf_attach's multi-probe hooks, counting calls per process: a uprobe_multi
 * program (its binary and function glob given as the attach target) and a kprobe_multi program on
 * the kernel's nanosleep functions. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "calls_by_tgid.bpf.h"

SEC("uprobe.multi")
int multi_uprobe(void *ctx)
{
	count_tgid();
	return 0;
}

SEC("kprobe.multi/do_nanosleep")
int multi_kprobe(void *ctx)
{
	count_tgid();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
