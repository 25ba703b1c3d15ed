// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* A user's program in cloudflare/ebpf_exporter's layout (cpu_clock.yaml beside it): samples of
 * the software CPU clock per CPU, from a perf_event section that names its event (type 1 is
 * PERF_TYPE_SOFTWARE, config 0 PERF_COUNT_SW_CPU_CLOCK), as ebpf_exporter's llcstat does with
 * hardware cache events. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "counting.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} cpu_clock_samples_total SEC(".maps");

SEC("perf_event/type=1,config=0,frequency=99")
int cpu_clock_sample(struct bpf_perf_event_data *ctx)
{
	increment(&cpu_clock_samples_total, bpf_get_smp_processor_id());
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
