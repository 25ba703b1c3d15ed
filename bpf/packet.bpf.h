/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing shared by the XDP and TC programs. Headers are read in bounds-checked copies:
 * a short packet just ends parsing.
 * - XDP (parse_eth, parse_l3): direct packet access, each header checked against data_end.
 * - TC (parse_skb_l3): from the network header, which needs no knowledge of the L2 header.
 *   PKT_SKB_NET reads with bpf_skb_load_bytes_relative(), which also reads non-linear data; the
 *   IP header and the ports are fetched with one call for IPv4 without options and IPv6 without
 *   extension headers, because the helper call is most of the cost. PKT_SKB_DIRECT reads the
 *   linear data directly from where the caller found the network header (struct skb_direct)
 *   and calls the helper only for what lies beyond it. */
#ifndef __PACKET_BPF_H
#define __PACKET_BPF_H

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132
#define IPPROTO_UDPLITE 136

#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HDRS 4

/* Wire formats. The IP headers are read whole (without options) so that a truncated one
 * does not count as IP. */
struct pkt_eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct pkt_vlan {
	__be16 tci;
	__be16 proto;
};

struct pkt_ipv4 {
	__u8 version_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct pkt_ipv6 {
	__be32 version_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct pkt_ipv6_ext {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
};

struct pkt_ports {
	__be16 source;
	__be16 dest;
};

/* Where offsets count from: the start of the XDP frame, or the skb's network header. */
enum pkt_src {
	PKT_XDP,	/* direct packet access, bounds-checked against data_end */
	PKT_SKB_NET,	/* bpf_skb_load_bytes_relative(): also reads non-linear skb data */
	PKT_SKB_DIRECT, /* ctx is a struct skb_direct: its linear data directly, else as PKT_SKB_NET */
};

/* An skb and where its network header starts in the linear data (PKT_SKB_DIRECT). */
struct skb_direct {
	struct __sk_buff *skb;
	void *nh;  /* the network header: a packet pointer */
	void *end; /* skb->data_end */
};

/* What the programs classify on. */
struct pkt_info {
	__u16 ethertype; /* host order, after up to MAX_VLAN_TAGS tags */
	__u8 is_ip;	 /* a valid IPv4 or IPv6 header was read */
	__u8 l4proto;	 /* IP protocol after IPv6 extension headers; 0 when not IP */
	__u8 dscp;	 /* 0..63 */
	__u8 has_dport;	 /* TCP/UDP/SCTP/UDP-Lite first fragment whose ports were read */
	__u16 dport;	 /* host order */
};

/* Direct reads copy with loads as wide as 4-byte alignment allows, as a struct pointer into the
 * packet would: copying from a plain pointer takes one load per byte. x86-64 and arm64 load
 * unaligned data; the verifier refuses unaligned packet loads only on architectures that cannot,
 * at load time, not silently. */
#define PKT_COPY(to, from, len) __builtin_memcpy(to, __builtin_assume_aligned(from, 4), len)

static __always_inline long pkt_load(void *ctx, enum pkt_src src, __u32 off, void *to, __u32 len)
{
	struct xdp_md *xdp = ctx;
	void *data, *end;

	if (src == PKT_SKB_NET)
		return bpf_skb_load_bytes_relative(ctx, off, to, len, BPF_HDR_START_NET);
	if (src == PKT_SKB_DIRECT) {
		struct skb_direct *d = ctx;

		if (off <= 0xffff && d->nh + off + len <= d->end) {
			PKT_COPY(to, d->nh + off, len);
			return 0;
		}
		return bpf_skb_load_bytes_relative(d->skb, off, to, len, BPF_HDR_START_NET);
	}
	/* A single-buffer frame (SEC("xdp") programs get no others) is all between data and
	 * data_end; direct access costs a fraction of bpf_xdp_load_bytes(). */
	data = (void *)(long)xdp->data;
	end = (void *)(long)xdp->data_end;
	if (off > 0xffff || data + off + len > end)
		return -1;
	PKT_COPY(to, data + off, len);
	return 0;
}

static __always_inline bool has_ports(__u8 l4proto)
{
	return l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP || l4proto == IPPROTO_SCTP ||
	       l4proto == IPPROTO_UDPLITE;
}

/* Ethernet header and up to MAX_VLAN_TAGS 802.1Q/802.1ad tags of an XDP frame. Returns the
 * offset of the L3 header and sets pi->ethertype, or returns 0 when the frame is too short. */
static __always_inline __u32 parse_eth(struct xdp_md *ctx, struct pkt_info *pi)
{
	struct pkt_eth eth;
	struct pkt_vlan vlan;
	__u32 off = sizeof(eth);
	__u16 proto;

	if (pkt_load(ctx, PKT_XDP, 0, &eth, sizeof(eth)))
		return 0;
	proto = bpf_ntohs(eth.proto);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if (pkt_load(ctx, PKT_XDP, off, &vlan, sizeof(vlan)))
			return 0;
		proto = bpf_ntohs(vlan.proto);
		off += sizeof(vlan);
	}
	pi->ethertype = proto;
	return off;
}

/* Fields of an IPv4 header already read. Returns the header length (0: not a valid header)
 * and whether it is a first fragment (the only one that holds the L4 ports). */
static __always_inline __u32 ipv4_fields(const struct pkt_ipv4 *ip, struct pkt_info *pi, bool *first_frag)
{
	if ((ip->version_ihl >> 4) != 4 || (ip->version_ihl & 0xf) < 5)
		return 0;
	pi->is_ip = 1;
	pi->l4proto = ip->protocol;
	pi->dscp = ip->tos >> 2;
	*first_frag = (bpf_ntohs(ip->frag_off) & 0x1fff) == 0;
	return (ip->version_ihl & 0xf) * 4;
}

/* Fields of an IPv6 base header already read; returns its next header, or -1 if not IPv6. */
static __always_inline int ipv6_fields(const struct pkt_ipv6 *ip, struct pkt_info *pi)
{
	__u32 vtf = bpf_ntohl(ip->version_tc_flow);

	if ((vtf >> 28) != 6)
		return -1;
	pi->is_ip = 1;
	pi->dscp = (vtf >> 22) & 0x3f;
	return ip->nexthdr;
}

/* Walks up to MAX_IPV6_EXT_HDRS extension headers from *off (just after the base header),
 * starting with next header nh. Sets pi->l4proto and *off to the L4 header. */
static __always_inline void ipv6_ext_walk(void *ctx, enum pkt_src src, __u32 *off, __u8 nh, struct pkt_info *pi,
					  bool *first_frag)
{
	struct pkt_ipv6_ext ext;

	*first_frag = true;
#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
			break;
		if (pkt_load(ctx, src, *off, &ext, sizeof(ext)))
			break;
		if (nh == IPPROTO_FRAGMENT) {
			if (bpf_ntohs(ext.frag_off) & 0xfff8)
				*first_frag = false;
			*off += 8;
		} else if (nh == IPPROTO_AH) {
			*off += (ext.len + 2) * 4;
		} else {
			*off += (ext.len + 1) * 8;
		}
		nh = ext.nexthdr;
	}
	pi->l4proto = nh;
}

/* Fills pi from the L3 header at off of an XDP frame, of type pi->ethertype (no ports: the
 * XDP counters do not need them). */
static __always_inline void parse_l3(struct xdp_md *ctx, __u32 off, struct pkt_info *pi)
{
	bool first_frag;

	if (pi->ethertype == ETH_P_IP) {
		struct pkt_ipv4 ip;

		if (!pkt_load(ctx, PKT_XDP, off, &ip, sizeof(ip)))
			ipv4_fields(&ip, pi, &first_frag);
	} else if (pi->ethertype == ETH_P_IPV6) {
		struct pkt_ipv6 ip;
		int nh;

		if (pkt_load(ctx, PKT_XDP, off, &ip, sizeof(ip)))
			return;
		nh = ipv6_fields(&ip, pi);
		if (nh < 0)
			return;
		off += sizeof(ip);
		ipv6_ext_walk(ctx, PKT_XDP, &off, nh, pi, &first_frag);
	}
}

/* The IP header with the ports of a header-option-free packet behind it, read in one call. */
struct skb_ipv4_ports {
	struct pkt_ipv4 ip;
	struct pkt_ports ports;
};

struct skb_ipv6_ports {
	struct pkt_ipv6 ip;
	struct pkt_ports ports;
};

static __always_inline void set_dport(struct pkt_info *pi, const struct pkt_ports *ports)
{
	pi->dport = bpf_ntohs(ports->dest);
	pi->has_dport = 1;
}

/* Reads the ports at off when the packet's L4 protocol has them. */
static __always_inline void skb_load_dport(void *ctx, enum pkt_src src, __u32 off, struct pkt_info *pi)
{
	struct pkt_ports ports;

	if (has_ports(pi->l4proto) && !pkt_load(ctx, src, off, &ports, sizeof(ports)))
		set_dport(pi, &ports);
}

static __always_inline void parse_skb_ipv4(void *ctx, enum pkt_src src, struct pkt_info *pi)
{
	struct skb_ipv4_ports h;
	bool first_frag, whole;
	__u32 hlen;

	/* A packet too short for header + ports (an IP header alone) is read again without them. */
	whole = !pkt_load(ctx, src, 0, &h, sizeof(h));
	if (!whole && pkt_load(ctx, src, 0, &h.ip, sizeof(h.ip)))
		return;
	hlen = ipv4_fields(&h.ip, pi, &first_frag);
	if (!hlen || !first_frag || !has_ports(pi->l4proto))
		return;
	if (hlen == sizeof(h.ip)) {
		if (whole)
			set_dport(pi, &h.ports);
		return;
	}
	skb_load_dport(ctx, src, hlen, pi); /* header options */
}

static __always_inline void parse_skb_ipv6(void *ctx, enum pkt_src src, struct pkt_info *pi)
{
	struct skb_ipv6_ports h;
	bool first_frag, whole;
	__u32 off = sizeof(h.ip);
	int nh;

	whole = !pkt_load(ctx, src, 0, &h, sizeof(h));
	if (!whole && pkt_load(ctx, src, 0, &h.ip, sizeof(h.ip)))
		return;
	nh = ipv6_fields(&h.ip, pi);
	if (nh < 0)
		return;
	if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS && nh != IPPROTO_FRAGMENT &&
	    nh != IPPROTO_AH) {
		pi->l4proto = nh;
		if (whole && has_ports(nh))
			set_dport(pi, &h.ports);
		return;
	}
	ipv6_ext_walk(ctx, src, &off, nh, pi, &first_frag);
	if (first_frag)
		skb_load_dport(ctx, src, off, pi);
}

/* Fills pi from the skb's network header, of type pi->ethertype (skb->protocol); ctx is the
 * skb (PKT_SKB_NET) or a struct skb_direct (PKT_SKB_DIRECT). */
static __always_inline void parse_skb_l3(void *ctx, enum pkt_src src, struct pkt_info *pi)
{
	if (pi->ethertype == ETH_P_IP)
		parse_skb_ipv4(ctx, src, pi);
	else if (pi->ethertype == ETH_P_IPV6)
		parse_skb_ipv6(ctx, src, pi);
}

#endif /* __PACKET_BPF_H */
