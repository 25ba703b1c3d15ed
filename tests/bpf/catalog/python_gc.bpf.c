// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* A user's program in cloudflare/ebpf_exporter's layout (python_gc.yaml beside it): garbage
 * collections of CPython by process and generation, from its USDT probe gc__start (whose one
 * argument, the generation, is a signed 4-byte value on the stack; the probe has a semaphore,
 * so CPython only fires it while it is attached). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct gc_key {
	u32 tgid;
	u32 generation;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gc_key);
	__type(value, u64);
} python_gc_collections_total SEC(".maps");

SEC("usdt//usr/bin/python3:python:gc__start")
int BPF_USDT(python_gc_start, int generation)
{
	struct gc_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .generation = generation};
	u64 one = 1, *value = bpf_map_lookup_elem(&python_gc_collections_total, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(&python_gc_collections_total, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
