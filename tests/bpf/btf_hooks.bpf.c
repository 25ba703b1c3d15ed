// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Test programs for the BTF-typed hooks of ebpf_attach: a BTF-typed tracepoint (tp_btf) that
 * counts getpid calls per process, and (with -DVARIANT_FENTRY) an fentry program on
 * do_nanosleep, which needs BPF trampolines. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifdef __TARGET_ARCH_arm64
#define NR_GETPID 172
#else
#define NR_GETPID 39
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} calls_by_tgid SEC(".maps");

static __always_inline void count(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *v = bpf_map_lookup_elem(&calls_by_tgid, &tgid);

	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&calls_by_tgid, &tgid, &one, BPF_NOEXIST);
}

#ifdef VARIANT_FENTRY
SEC("fentry/do_nanosleep")
int BPF_PROG(nanosleep_entry)
{
	count();
	return 0;
}
#else
SEC("tp_btf/sys_enter")
int BPF_PROG(getpid_enter, struct pt_regs *regs, long id)
{
	if (id == NR_GETPID)
		count();
	return 0;
}
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
