// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Classifies packets into operator-defined classes and counts packets and bytes per
 * class x direction. Observes only: returns TC_ACT_UNSPEC so later filters still run.
 *
 * The rules are data in tc_class_rules, compiled by the loader into match tables (layout in
 * README.md; plugins/module_utils/tc_rules.py writes them): for each field value, the set of
 * rules (a bit per rule) that the value satisfies. A packet's matching rules are the AND of its
 * protocol, DSCP and port sets, and the first match is the lowest bit, so classifying costs the
 * same few array reads for 1 rule or 64. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "packet.bpf.h"

#define TC_ACT_UNSPEC (-1)

#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* tc_class_rules layout, in u64 entries. Entry 0 selects the active generation (0 or 1); a
 * generation is a block of TC_GEN_SIZE entries at 1 + generation * TC_GEN_SIZE. The loader
 * writes the inactive block, then flips entry 0, so a packet sees one rule set, old or new. */
#define TC_MAX_RULES 64
#define TC_PROTO_NOT_IP 256 /* protocol slot of non-IP packets */
#define TC_DSCP_NOT_IP 64   /* DSCP slot of non-IP packets */
#define TC_PORT_NONE 65536  /* port slot of packets without a destination port */
#define TC_GEN_PROTO 0					   /* 257 sets: IP protocol 0..255, not IP */
#define TC_GEN_DSCP (TC_GEN_PROTO + TC_PROTO_NOT_IP + 1)   /* 65 sets: DSCP 0..63, not IP */
#define TC_GEN_PORT (TC_GEN_DSCP + TC_DSCP_NOT_IP + 1)	   /* 65537 sets: port 0..65535, none */
#define TC_GEN_CLASS (TC_GEN_PORT + TC_PORT_NONE + 1)	   /* 64 class ids, one per rule */
#define TC_GEN_SIZE (TC_GEN_CLASS + TC_MAX_RULES)
#define TC_RULES_ENTRIES (1 + 2 * TC_GEN_SIZE)

/* Counters: per-CPU arrays indexed by class id (0..255, 0 = default) | direction << 8, so the
 * key's first byte is the class and its second the direction. */
#define MAX_CLASS_ID 255
#define TC_COUNTER_SLOTS 512

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TC_RULES_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_packets_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_class_bytes_total SEC(".maps");

/* The rule set at index of the rules map; 0 (no rule) if out of range. */
static __always_inline __u64 rules_entry(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&tc_class_rules, &index);

	return v ? *v : 0;
}

static __always_inline __u32 classify(const struct pkt_info *pi)
{
	__u32 base = 1 + (rules_entry(0) & 1) * TC_GEN_SIZE;
	__u64 match;

	match = rules_entry(base + TC_GEN_PROTO + (pi->is_ip ? pi->l4proto : TC_PROTO_NOT_IP));
	if (!match)
		return 0;
	match &= rules_entry(base + TC_GEN_DSCP + (pi->is_ip ? pi->dscp : TC_DSCP_NOT_IP));
	if (!match)
		return 0;
	match &= rules_entry(base + TC_GEN_PORT + (pi->has_dport ? pi->dport : TC_PORT_NONE));
	if (!match)
		return 0;
	/* The first matching rule is the lowest set bit. */
	return rules_entry(base + TC_GEN_CLASS + log2_floor(match & -match)) & MAX_CLASS_ID;
}

#ifdef TC_DIRECT
/* Linux 6.3+: the kernel's sk_buff behind the program's context (the verifier inlines it). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* tc_classifier_direct: the network header's offset in the linear data, read from the kernel's
 * sk_buff, lets the headers be read directly; what lies beyond the linear data (or a header
 * further than 255 bytes in) is read by the helper, as in tc_classifier. */
static __always_inline void parse(struct __sk_buff *skb, struct pkt_info *pi)
{
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	__u64 nh_off = (__u64)k->head + k->network_header - (__u64)k->data;
	struct skb_direct d = {.skb = skb, .end = (void *)(long)skb->data_end};

	if (nh_off > 0xff) {
		parse_skb_l3(skb, PKT_SKB_NET, pi);
		return;
	}
	d.nh = (void *)(long)skb->data + nh_off;
	parse_skb_l3(&d, PKT_SKB_DIRECT, pi);
}
#else
static __always_inline void parse(struct __sk_buff *skb, struct pkt_info *pi)
{
	parse_skb_l3(skb, PKT_SKB_NET, pi);
}
#endif

/* The network header is set on both hooks, after any L2 header and VLAN tag the stack has
 * already consumed, so this works on Ethernet and L3 devices (tun, wireguard) alike. */
static __always_inline int count(struct __sk_buff *skb, __u32 direction)
{
	struct pkt_info pi = {};
	__u32 slot;

	pi.ethertype = bpf_ntohs(skb->protocol);
	parse(skb, &pi);
	slot = classify(&pi) | direction << 8;
	array_add(&tc_class_packets_total, slot, 1);
	array_add(&tc_class_bytes_total, slot, skb->len);
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
