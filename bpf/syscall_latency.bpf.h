/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-syscall calls, errors by errno and latency histogram. The hooks (raw tracepoints in
 * syscall_latency.bpf.c, kprobes in kprobe_syscall_latency.bpf.c) call syscall_enter() and
 * syscall_exit(); both objects define the same maps under the same names. */
#ifndef __SYSCALL_LATENCY_BPF_H
#define __SYSCALL_LATENCY_BPF_H

#include "maps.bpf.h"

/* Syscall numbers at or above this are not counted (x32 numbers, seccomp/ptrace skips). */
#define MAX_SYSCALL_ID 1024
#define MAX_ERRNO 4095

/* Latency buckets in nanoseconds: 2^8 ns (256 ns) .. 2^34 ns (17.2 s); slower calls land in
 * the last bucket. Bucket LATENCY_BUCKET_MAX + 1 holds the sum of all latencies. */
#define LATENCY_BUCKET_MIN 8
#define LATENCY_BUCKET_MAX 34

/* Threads tracked at once (one entry each); the least recently used are evicted. */
#define MAX_THREADS 16384

struct syscall_start {
	__u64 ns; /* entry time; 0: no syscall in flight */
	__u32 id;
	__u32 pad;
};

struct syscall_error_key {
	__u32 id;
	__u32 err; /* errno, positive */
};

struct syscall_latency_key {
	__u32 id;
	__u32 bucket;
};

/* Entry time per thread. LRU: the entry of a thread that is gone, or that never returns
 * (exit, exec from a non-leader thread), is evicted, not leaked. Deliberately not pinned,
 * unlike the counters: it is scratch state of one loaded program. Reused across a reload, an
 * entry left by a thread in a syscall at unload would be matched with a later, unrelated
 * syscall exit of that thread and record the whole gap (up to days) as one latency. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct syscall_start);
} syscall_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_SYSCALL_ID);
	__type(key, __u32); /* syscall id */
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syscalls_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct syscall_error_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syscall_errors_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct syscall_latency_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syscall_latency_seconds SEC(".maps");

/* A thread's entry is created once and then rewritten in place: an update and a delete per
 * syscall would take the map's bucket lock twice and cost several times more. Only the
 * thread itself writes its entry. */
static __always_inline int syscall_enter(__u64 id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct syscall_start *start, new = {};

	start = bpf_map_lookup_elem(&syscall_start, &pid_tgid);
	if (id >= MAX_SYSCALL_ID) {
		if (start)
			start->ns = 0;
		return 0;
	}
	if (start) {
		start->ns = bpf_ktime_get_ns();
		start->id = id;
		return 0;
	}
	new.ns = bpf_ktime_get_ns();
	new.id = id;
	bpf_map_update_elem(&syscall_start, &pid_tgid, &new, BPF_ANY);
	return 0;
}

static __always_inline int syscall_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct syscall_latency_key lat = {};
	struct syscall_start *start;
	__u64 ns;
	__u32 id;

	start = bpf_map_lookup_elem(&syscall_start, &pid_tgid);
	if (!start || !start->ns)
		return 0; /* entered before the program was attached, or not counted */
	ns = bpf_ktime_get_ns() - start->ns;
	id = start->id;
	start->ns = 0;

	counter_add(&syscalls_total, &id, 1);
	if (ret < 0 && ret >= -MAX_ERRNO) {
		struct syscall_error_key err = { .id = id, .err = -ret };

		counter_add(&syscall_errors_total, &err, 1);
	}
	lat.id = id;
	lat.bucket = exp2_bucket(ns, LATENCY_BUCKET_MIN, LATENCY_BUCKET_MAX);
	counter_add(&syscall_latency_seconds, &lat, 1);
	lat.bucket = LATENCY_BUCKET_MAX + 1;
	counter_add(&syscall_latency_seconds, &lat, ns);
	return 0;
}

#endif /* __SYSCALL_LATENCY_BPF_H */
