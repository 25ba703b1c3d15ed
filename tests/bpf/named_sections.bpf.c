// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Test programs whose sections name their targets, as cloudflare/ebpf_exporter's programs write
 * them (libbpf does not know these sections): an XDP program for the interface ebpft-at0 (the
 * veth_pair fixture's) counting frames, and a perf_event program run by the software CPU clock,
 * counting samples per CPU. -DVARIANT_BAD gives the perf_event section a key it does not have. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} samples SEC(".maps");

SEC("xdp/ebpft-at0")
int xdp_named(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&frames, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	return XDP_PASS;
}

#ifdef VARIANT_BAD
SEC("perf_event/type=1,cfg=0")
#else
SEC("perf_event/type=1,config=0,frequency=1000")
#endif
int cpu_clock(struct bpf_perf_event_data *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 one = 1, *value = bpf_map_lookup_elem(&samples, &cpu);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(&samples, &cpu, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
