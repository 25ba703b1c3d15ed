// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Counts received packets and bytes per interface x ethertype x L4 protocol. Observes only:
 * every frame gets XDP_PASS. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "packet.bpf.h"

/* l4proto label values besides the IP protocol numbers 1, 6, 17 and 58 */
#define L4_NONE 0    /* not an IP packet */
#define L4_OTHER 255 /* any other IP protocol */

/* 4096 keys: 170 interfaces with every ethertype x protocol pair, far more in practice. */
#define MAX_KEYS 4096

struct xdp_key {
	__u32 ifindex;
	__u16 ethertype; /* ETH_P_IP, ETH_P_IPV6, ETH_P_ARP or 0 (other) */
	__u16 l4proto;	 /* IPPROTO_ICMP/TCP/UDP/ICMPV6, L4_OTHER or L4_NONE */
};

/* Both counters of a key in one value: one hash lookup per frame, where a map per metric (the
 * ebpf_exporter layout) takes two. The exporter reads xdp_packets_total and xdp_bytes_total
 * from it (value_fields). */
struct xdp_traffic {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_KEYS);
	__type(key, struct xdp_key);
	__type(value, struct xdp_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_traffic SEC(".maps");

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	struct pkt_info pi = {};
	struct xdp_traffic *traffic, zero = {};
	struct xdp_key key = {};
	__u32 l3off;

	key.ifindex = ctx->ingress_ifindex;
	l3off = parse_eth(ctx, &pi);
	if (l3off)
		parse_l3(ctx, l3off, &pi);

	switch (pi.ethertype) {
	case ETH_P_IP:
	case ETH_P_IPV6:
	case ETH_P_ARP:
		key.ethertype = pi.ethertype;
		break;
	}
	if (!pi.is_ip)
		key.l4proto = L4_NONE;
	else if (pi.l4proto == IPPROTO_ICMP || pi.l4proto == IPPROTO_TCP || pi.l4proto == IPPROTO_UDP ||
		 pi.l4proto == IPPROTO_ICMPV6)
		key.l4proto = pi.l4proto;
	else
		key.l4proto = L4_OTHER;

	traffic = lookup_or_init(&xdp_traffic, &key, &zero);
	if (traffic) {
		traffic->packets++;
		traffic->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
