// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Programs for the ebpf_attach tests, one per hook. Network programs count IPv4 UDP packets to
 * port 7777 (the tests' traffic) in `packets`, each in its own slot, so a test can tell which
 * program saw a packet; tracing programs count getpid() calls per process.
 *   VARIANT_V2  an upgrade: the XDP and TC programs count in other slots, the tracing programs
 *               add 2 instead of 1 (same maps, different instructions)
 *   VARIANT_MAPS  `packets` with 16 entries (a map definition conflict: replace_maps)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define TEST_PORT 7777
#define TC_ACT_UNSPEC (-1)

/* slots of `packets` */
#ifndef VARIANT_V2
#define XDP_SLOT 0
#define TC_SLOT 2
#define STEP 1
#else
#define XDP_SLOT 1
#define TC_SLOT 3
#define STEP 2
#endif
#define FOREIGN_TC_SLOT 4
#ifndef VARIANT_MAPS
#define PACKET_SLOTS 8
#else
#define PACKET_SLOTS 16
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PACKET_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

#include "calls_by_tgid.bpf.h"

static __always_inline int is_test_udp(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(TEST_PORT);
}

static __always_inline void count_slot(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&packets, &slot);

	if (value)
		__sync_fetch_and_add(value, 1);
}

SEC("xdp")
int xdp_udp(struct xdp_md *ctx)
{
	if (is_test_udp((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		count_slot(XDP_SLOT);
	return XDP_PASS;
}

SEC("tc")
int tc_udp(struct __sk_buff *skb)
{
	if (is_test_udp((void *)(long)skb->data, (void *)(long)skb->data_end))
		count_slot(TC_SLOT);
	return TC_ACT_UNSPEC;
}

/* Loaded and attached by the tests themselves, as another tool's filter would be. */
SEC("tc")
int foreign_tc(struct __sk_buff *skb)
{
	if (is_test_udp((void *)(long)skb->data, (void *)(long)skb->data_end))
		count_slot(FOREIGN_TC_SLOT);
	return TC_ACT_UNSPEC;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
	count_tgid();
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_getpid(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == NR_GETPID)
		count_tgid();
	return 0;
}

SEC("kprobe/do_nanosleep")
int kprobe_sleep(void *ctx)
{
	count_tgid();
	return 0;
}

SEC("uprobe")
int uprobe_target(void *ctx)
{
	count_tgid();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
