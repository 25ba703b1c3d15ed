/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-syscall calls, errors by errno and latency histogram. The hooks (raw tracepoints in
 * syscall_latency.bpf.c, kprobes in kprobe_syscall_latency.bpf.c) call syscall_enter() and
 * syscall_exit(); both objects define the same maps under the same names. */
#ifndef __SYSCALL_LATENCY_BPF_H
#define __SYSCALL_LATENCY_BPF_H

#include "maps.bpf.h"

/* Syscall numbers at or above this are not counted (x32 numbers, seccomp/ptrace skips). The
 * native tables of x86-64 and arm64 end below 470. */
#define MAX_SYSCALL_ID 512
#define MAX_ERRNO 4095

/* Latency buckets in nanoseconds: 2^8 ns (256 ns) .. 2^34 ns (17.2 s); slower calls land in
 * the last bucket. Bucket LATENCY_BUCKET_MAX + 1 holds the sum of all latencies. */
#define LATENCY_BUCKET_MIN 8
#define LATENCY_BUCKET_MAX 34
#define LATENCY_BUCKETS (LATENCY_BUCKET_MAX - LATENCY_BUCKET_MIN + 1)

struct syscall_start {
	__u64 ns; /* entry time; 0: no syscall in flight */
	__u32 id;
	__u32 token; /* load_token of the program that wrote it */
};

struct syscall_error_key {
	__u32 id;
	__u32 err; /* errno, positive */
};

/* Everything counted per syscall at its exit, in one value: the exporter reads calls as
 * syscalls_total and the histogram syscall_latency_seconds from it (value_fields). */
struct syscall_stats {
	__u64 calls;
	__u64 latency[LATENCY_BUCKETS]; /* [k - LATENCY_BUCKET_MIN]: calls of bucket k */
	__u64 latency_ns;		/* the histogram's sum */
};

/* Entry time of the syscall a thread is in, in the thread's own task storage: found without a
 * hash lookup, and freed with the task, so a thread that dies inside a syscall leaves nothing
 * behind. Not pinned by the program (it is scratch state), but a loader that pins every map
 * reuses it across reloads; entries are therefore stamped with load_token, and an exit only
 * trusts an entry of the same load. Otherwise an entry left while no program was attached (the
 * exit went unseen) would be matched with a later exit and count the whole gap as latency.
 * Built with -DSYSCALL_START_HASH (syscall_latency_hash.bpf.o, for kernels before 5.11, which
 * have no task storage for tracing programs): an LRU hash by thread id instead, whose entries of
 * threads that are gone are evicted when it fills. */
#ifdef SYSCALL_START_HASH
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* thread id */
	__type(value, struct syscall_start);
} syscall_start SEC(".maps");

static __always_inline struct syscall_start *thread_start(int create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct syscall_start *start = bpf_map_lookup_elem(&syscall_start, &tid);

	if (!start && create) {
		struct syscall_start empty = {};

		bpf_map_update_elem(&syscall_start, &tid, &empty, BPF_NOEXIST);
		start = bpf_map_lookup_elem(&syscall_start, &tid);
	}
	return start;
}
#else
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_start);
} syscall_start SEC(".maps");

static __always_inline struct syscall_start *thread_start(int create)
{
	return bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}
#endif

/* Calls and latency per syscall id: the id is the index, so a per-CPU array (the lookup is
 * inlined: no call) whose value holds the calls, the histogram's buckets and its sum, updated
 * with one lookup. Ids never called stay all zero; the exporter shows no series for them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SYSCALL_ID);
	__type(key, __u32); /* syscall id */
	__type(value, struct syscall_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syscall_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct syscall_error_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syscall_errors_total SEC(".maps");

/* Random, set at the first event after a load (.bss starts at zero each load). Two CPUs racing
 * to set it just lose the few syscalls stamped with the losing value. */
__u32 load_token;

static __always_inline __u32 this_load(void)
{
	__u32 token = load_token;

	if (!token) {
		token = bpf_get_prandom_u32() | 1;
		load_token = token;
	}
	return token;
}

static __always_inline int syscall_enter(__u64 id)
{
	struct syscall_start *start;

	if (id >= MAX_SYSCALL_ID) {
		start = thread_start(0);
		if (start)
			start->ns = 0;
		return 0;
	}
	start = thread_start(1);
	if (start) {
		start->ns = bpf_ktime_get_ns();
		start->id = id;
		start->token = this_load();
	}
	return 0;
}

static __always_inline int syscall_exit(long ret)
{
	struct syscall_stats *stats;
	struct syscall_start *start;
	__u32 id, bucket;
	__u64 ns;

	start = thread_start(0);
	if (!start || !start->ns || start->token != load_token)
		return 0; /* entered before this program was attached, or not counted */
	ns = bpf_ktime_get_ns() - start->ns;
	id = start->id;
	start->ns = 0;

	stats = bpf_map_lookup_elem(&syscall_stats, &id);
	if (stats) {
		bucket = exp2_bucket(ns, LATENCY_BUCKET_MIN, LATENCY_BUCKET_MAX) - LATENCY_BUCKET_MIN;
		stats->calls++;
		if (bucket < LATENCY_BUCKETS)
			stats->latency[bucket]++;
		stats->latency_ns += ns;
	}
	if (ret < 0 && ret >= -MAX_ERRNO) {
		struct syscall_error_key err = { .id = id, .err = -ret };

		counter_add(&syscall_errors_total, &err, 1);
	}
	return 0;
}

#endif /* __SYSCALL_LATENCY_BPF_H */
