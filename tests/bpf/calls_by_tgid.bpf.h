/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the tracing test programs count: calls per process (tgid), STEP at a time (default 1);
 * most of them count getpid (NR_GETPID). */
#ifdef __TARGET_ARCH_arm64
#define NR_GETPID 172
#else
#define NR_GETPID 39
#endif

#ifndef STEP
#define STEP 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} calls_by_tgid SEC(".maps");

static __always_inline void count_tgid(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 step = STEP, *value;

	value = bpf_map_lookup_elem(&calls_by_tgid, &tgid);
	if (value)
		__sync_fetch_and_add(value, STEP);
	else
		bpf_map_update_elem(&calls_by_tgid, &tgid, &step, BPF_NOEXIST);
}
