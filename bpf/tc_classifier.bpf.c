// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Classifies packets into operator-defined classes and counts packets and bytes per
 * class x direction. Observes only: returns TC_ACT_UNSPEC so later filters still run.
 * The rules are data in tc_class_rules (layout in README.md), written by the loader. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "packet.bpf.h"

#define TC_ACT_UNSPEC (-1)

#define MAX_RULES 32
#define MAX_KEYS 256 /* (MAX_RULES + default class) x 2 directions, with room to spare */

#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* One rule; a packet matches when every condition set in it holds. Rules are evaluated from
 * index 0 and the first match wins; evaluation stops at the first entry with used == 0. */
struct tc_rule {
	__u8 used;	 /* 1: entry holds a rule */
	__u8 proto;	 /* IP protocol number (6 tcp, 17 udp, ...); 0: any */
	__u8 dscp_match; /* 1: match dscp */
	__u8 dscp;	 /* 0..63 */
	__u16 dport_lo;	 /* destination port range, inclusive, host byte order; */
	__u16 dport_hi;	 /*   dport_hi == 0: any port */
	__u32 class_id;	 /* counted under this class; 0 is the default class */
};

struct tc_class_key {
	__u32 class_id;
	__u32 direction; /* DIR_INGRESS or DIR_EGRESS */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct tc_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_KEYS);
	__type(key, struct tc_class_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_packets_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_KEYS);
	__type(key, struct tc_class_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_bytes_total SEC(".maps");

static __always_inline bool rule_matches(const struct tc_rule *r, const struct pkt_info *pi)
{
	if (r->proto && (!pi->is_ip || r->proto != pi->l4proto))
		return false;
	if (r->dscp_match && (!pi->is_ip || r->dscp != pi->dscp))
		return false;
	if (r->dport_hi && (!pi->has_dport || pi->dport < r->dport_lo || pi->dport > r->dport_hi))
		return false;
	return true;
}

static __always_inline __u32 classify(const struct pkt_info *pi)
{
	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 idx = i;
		struct tc_rule *r = bpf_map_lookup_elem(&tc_class_rules, &idx);

		if (!r || !r->used)
			break;
		if (rule_matches(r, pi))
			return r->class_id;
	}
	return 0;
}

/* The network header is set on both hooks, after any L2 header and VLAN tag the stack has
 * already consumed, so this works on Ethernet and L3 devices (tun, wireguard) alike. */
static __always_inline int count(struct __sk_buff *skb, __u32 direction)
{
	struct pkt_info pi = {};
	struct tc_class_key key = {};

	pi.ethertype = bpf_ntohs(skb->protocol);
	parse_l3(skb, PKT_SKB_NET, 0, &pi, true);
	key.class_id = classify(&pi);
	key.direction = direction;
	counter_add(&tc_class_packets_total, &key, 1);
	counter_add(&tc_class_bytes_total, &key, skb->len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_classify_ingress(struct __sk_buff *skb)
{
	return count(skb, DIR_INGRESS);
}

SEC("tc")
int tc_classify_egress(struct __sk_buff *skb)
{
	return count(skb, DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
