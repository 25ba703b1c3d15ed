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

/* Both counters of a key in one value: one lookup per frame for both metrics (value_fields). */
struct xdp_traffic {
	__u64 packets;
	__u64 bytes;
};

/* The counters of an interface that holds a slot: a per-CPU array indexed by
 * slot << 5 | ethertype class << 3 | L4 class, so a frame costs two inlined array lookups and
 * no call. Slot s belongs to the first interface seen whose ifindex % 64 is s (claimed under
 * the slot's lock, once); a frame of an interface whose slot another holds is counted in the
 * hash xdp_traffic instead, keyed by struct xdp_key, so every count is exact. The exporter
 * reads both and turns slot entries into xdp_key keys (the metrics' slots config). */
#define SLOT_BITS 6
#define SLOTS (1 << SLOT_BITS)
#define CLASS_BITS 5 /* ethertype class (2 bits) << 3 | L4 class (3 bits) */

struct xdp_slot {
	struct bpf_spin_lock lock;
	__u32 ifindex; /* 0: free */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct xdp_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOTS << CLASS_BITS);
	__type(key, __u32);
	__type(value, struct xdp_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_slot_traffic SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_KEYS);
	__type(key, struct xdp_key);
	__type(value, struct xdp_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_traffic SEC(".maps");

/* The values the key's ethertype and l4proto take, in class order: a frame's class is its value's
 * position (the values lists of the slots index in xdp_counter.yaml). */
#define ETHERTYPES {0, ETH_P_IP, ETH_P_IPV6, ETH_P_ARP}
#define L4PROTOS {L4_NONE, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, L4_OTHER}
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The slot counters of this frame's class (index: slot << 5 | ethertype class << 3 | L4 class),
 * or NULL when the interface holds no slot. */
static __always_inline struct xdp_traffic *slot_traffic(__u32 ifindex, __u32 class)
{
	__u32 index = ifindex & (SLOTS - 1), owner;
	struct xdp_slot *slot = bpf_map_lookup_elem(&xdp_slots, &index);

	if (!slot)
		return NULL;
	owner = *(volatile __u32 *)&slot->ifindex;
	if (!owner) {
		bpf_spin_lock(&slot->lock);
		if (!slot->ifindex)
			slot->ifindex = ifindex;
		owner = slot->ifindex;
		bpf_spin_unlock(&slot->lock);
	}
	if (owner != ifindex)
		return NULL;
	index = index << CLASS_BITS | class;
	return bpf_map_lookup_elem(&xdp_slot_traffic, &index);
}

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	struct pkt_info pi = {};
	struct xdp_traffic *traffic, zero = {};
	struct xdp_key key = {};
	__u32 l3off, class = 0;

	key.ifindex = ctx->ingress_ifindex;
	l3off = parse_eth(ctx, &pi);
	if (l3off)
		parse_l3(ctx, l3off, &pi);

	/* Key values and classes from the lists (unrolled: compares with constants). */
	{
		const __u16 ethertypes[] = ETHERTYPES, l4protos[] = L4PROTOS;
		const __u32 l4_other = ARRAY_LEN(l4protos) - 1; /* the last class: any other IP protocol */
		__u32 l4class = pi.is_ip ? l4_other : 0; /* L4_NONE when not IP */

		_Static_assert(ARRAY_LEN(ethertypes) <= 1 << 2 && ARRAY_LEN(l4protos) <= 1 << 3,
			       "the classes fit CLASS_BITS");

#pragma unroll
		for (int i = 1; i < ARRAY_LEN(ethertypes); i++)
			if (pi.ethertype == ethertypes[i]) {
				key.ethertype = pi.ethertype;
				class = i << 3;
			}
#pragma unroll
		for (int i = 1; i < l4_other; i++)
			if (pi.is_ip && pi.l4proto == l4protos[i])
				l4class = i;
		key.l4proto = l4class == l4_other ? L4_OTHER : l4class ? pi.l4proto : L4_NONE;
		class |= l4class;
	}
	traffic = slot_traffic(key.ifindex, class);
	if (!traffic)
		traffic = lookup_or_init(&xdp_traffic, &key, &zero);
	if (traffic) {
		traffic->packets++;
		traffic->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
