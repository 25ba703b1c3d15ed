// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Test programs for the BTF-typed hooks of ebpf_attach: a BTF-typed tracepoint (tp_btf) that
 * counts getpid calls per process, and (with -DVARIANT_FENTRY) an fentry program on
 * do_nanosleep, which needs BPF trampolines. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "calls_by_tgid.bpf.h"

#ifdef VARIANT_FENTRY
SEC("fentry/do_nanosleep")
int BPF_PROG(nanosleep_entry)
{
	count_tgid();
	return 0;
}
#else
SEC("tp_btf/sys_enter")
int BPF_PROG(getpid_enter, struct pt_regs *regs, long id)
{
	if (id == NR_GETPID)
		count_tgid();
	return 0;
}
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
