// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
#include "nanosleep.bpf.h"

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(nanosleep_kprobe)
{
	increment(&nanosleeps_total, bpf_get_current_pid_tgid() >> 32);
	return 0;
}
