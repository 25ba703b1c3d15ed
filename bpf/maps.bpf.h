/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counters and exp2 histograms in the layout ebpf_exporter reads: u64 values, the bucket
 * index as the last key field, and the histogram's sum under bucket_max + 1. */
#ifndef __MAPS_BPF_H
#define __MAPS_BPF_H

/* Counter maps are per-CPU, and a program never runs twice at once on one CPU: XDP and TC run
 * with bottom halves disabled, and the tracing hooks skip a program that is already running on
 * the CPU (bpf_prog_active, prog->active) before it can be re-entered. So each CPU's slot has
 * one writer at a time and a plain add is exact; a locked add would cost more for nothing. */

/* The value under key of a hash, created from zero (a zeroed value of the map's value type)
 * first; NULL when the map is full. */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *zero)
{
	void *value = bpf_map_lookup_elem(map, key);

	if (!value) {
		/* Another CPU may create the key first: NOEXIST then fails and the lookup finds it. */
		bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
		value = bpf_map_lookup_elem(map, key);
	}
	return value;
}

/* Adds inc to the u64 counter under key of a per-CPU hash, creating it at zero first. */
static __always_inline void counter_add(void *map, const void *key, __u64 inc)
{
	__u64 zero = 0, *value = lookup_or_init(map, key, &zero);

	if (value)
		*value += inc;
}

/* Adds inc to slot index of a per-CPU array (the verifier inlines the lookup: no call). */
static __always_inline void array_add(void *map, __u32 index, __u64 inc)
{
	__u64 *value = bpf_map_lookup_elem(map, &index);

	if (value)
		*value += inc;
}

static __always_inline __u32 log2_floor(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/* The exp2 bucket of v: the smallest k in [min, max] with v <= 2^k, or max. Bucket k then
 * holds (2^(k-1), 2^k], which is what Prometheus' le="2^k" means. */
static __always_inline __u32 exp2_bucket(__u64 v, __u32 min, __u32 max)
{
	__u32 k = v <= 1 ? 0 : log2_floor(v - 1) + 1;

	if (k < min)
		return min;
	return k > max ? max : k;
}

#endif /* __MAPS_BPF_H */
