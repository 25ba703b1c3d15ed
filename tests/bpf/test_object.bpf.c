// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A small CO-RE object for the collection's tests: three programs of different types, a
 * per-CPU array, a hash map and read-only data. Variants are selected with -D:
 *   VARIANT_CHANGED   different instructions (upgrade path)
 *   VARIANT_RODATA    same instructions, different .rodata
 *   VARIANT_REJECT    an out-of-bounds read the verifier refuses
 *   VARIANT_CONFLICT  the hash map with another max_entries (map definition conflict)
 *   VARIANT_DROPPED   without the settings map (a pinned map the object no longer defines)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef VARIANT_CONFLICT
#define HASH_ENTRIES 1024
#else
#define HASH_ENTRIES 2048
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HASH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} calls_by_tgid SEC(".maps");

/* Configuration a deployment writes (ebpf_map tests); read by no program here. */
#ifndef VARIANT_DROPPED
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} settings SEC(".maps");
#endif

#ifdef VARIANT_RODATA
const volatile __u32 target_tgid = 1;
#else
const volatile __u32 target_tgid = 0;
#endif

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	__u32 slot = 0;
	__u64 *value;
#ifdef VARIANT_REJECT
	char *data = (char *)(long)ctx->data;
	slot = data[64]; /* no bounds check against data_end */
#endif
	value = bpf_map_lookup_elem(&packets, &slot);
	if (value)
#ifdef VARIANT_CHANGED
		*value += 2;
#else
		*value += 1;
#endif
	return XDP_PASS;
}

SEC("tc")
int count_tc(struct __sk_buff *skb)
{
	__u32 slot = 1;
	__u64 *value = bpf_map_lookup_elem(&packets, &slot);

	if (value)
		*value += 1;
	return -1; /* TC_ACT_UNSPEC: later filters still run */
}

SEC("raw_tracepoint/sys_enter")
int count_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u64 one = 1, *value;

	if (target_tgid && tgid != target_tgid)
		return 0;
	value = bpf_map_lookup_elem(&calls_by_tgid, &tgid);
	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(&calls_by_tgid, &tgid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
