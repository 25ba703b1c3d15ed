// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/* Objects compiled as ebpf_exporter's examples are (-mcpu=v3, kconfig externs such as
 * LINUX_KERNEL_VERSION and CONFIG_*), and (-DVARIANT_EXTERN) one calling a function nothing
 * defines, which libbpf cannot resolve. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_JIT __kconfig __weak;

__u64 kernel_seen;

#ifdef VARIANT_EXTERN
extern int ebpft_defined_nowhere(int x);
#endif

SEC("raw_tracepoint/sys_enter")
int kconfig_reader(void *ctx)
{
	kernel_seen = LINUX_KERNEL_VERSION + CONFIG_BPF_JIT;
#ifdef VARIANT_EXTERN
	return ebpft_defined_nowhere(1);
#else
	return 0;
#endif
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
