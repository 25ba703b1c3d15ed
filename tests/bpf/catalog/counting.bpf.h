/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/* A header of the source directory, as ebpf_exporter's examples have maps.bpf.h. */
#ifdef __TARGET_ARCH_arm64
#define NR_GETPID 172
#else
#define NR_GETPID 39
#endif

static __always_inline void increment(void *map, u32 key)
{
	u64 one = 1, *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
}
