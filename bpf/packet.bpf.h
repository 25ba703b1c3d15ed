/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing shared by the XDP and TC programs. Every header is copied to the stack by
 * pkt_load(), which checks it lies within the packet: a short packet just ends parsing. */
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

/* Where offsets count from: the start of the XDP frame, or the skb's network header. */
enum pkt_src {
	PKT_XDP,     /* direct packet access, bounds-checked against data_end */
	PKT_SKB_NET, /* bpf_skb_load_bytes_relative(): also reads non-linear skb data */
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

static __always_inline long pkt_load(void *ctx, enum pkt_src src, __u32 off, void *to, __u32 len)
{
	struct xdp_md *xdp = ctx;
	void *data, *end;

	if (src == PKT_SKB_NET)
		return bpf_skb_load_bytes_relative(ctx, off, to, len, BPF_HDR_START_NET);
	/* A single-buffer frame (SEC("xdp") programs get no others) is all between data and
	 * data_end; direct access costs a fraction of bpf_xdp_load_bytes(). */
	data = (void *)(long)xdp->data;
	end = (void *)(long)xdp->data_end;
	if (off > 0xffff || data + off + len > end)
		return -1;
	__builtin_memcpy(to, data + off, len);
	return 0;
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

static __always_inline void parse_ipv4(void *ctx, enum pkt_src src, __u32 off, struct pkt_info *pi,
				       __u32 *l4off, bool *first_frag)
{
	struct pkt_ipv4 ip;

	if (pkt_load(ctx, src, off, &ip, sizeof(ip)))
		return;
	if ((ip.version_ihl >> 4) != 4 || (ip.version_ihl & 0xf) < 5)
		return;
	pi->is_ip = 1;
	pi->l4proto = ip.protocol;
	pi->dscp = ip.tos >> 2;
	*l4off = off + (ip.version_ihl & 0xf) * 4;
	*first_frag = (bpf_ntohs(ip.frag_off) & 0x1fff) == 0;
}

static __always_inline void parse_ipv6(void *ctx, enum pkt_src src, __u32 off, struct pkt_info *pi,
				       __u32 *l4off, bool *first_frag)
{
	struct pkt_ipv6 ip;
	struct pkt_ipv6_ext ext;
	__u32 vtf;
	__u8 nh;

	if (pkt_load(ctx, src, off, &ip, sizeof(ip)))
		return;
	vtf = bpf_ntohl(ip.version_tc_flow);
	if ((vtf >> 28) != 6)
		return;
	pi->is_ip = 1;
	pi->dscp = (vtf >> 22) & 0x3f;
	nh = ip.nexthdr;
	off += sizeof(ip);
	*first_frag = true;
#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
			break;
		if (pkt_load(ctx, src, off, &ext, sizeof(ext)))
			break;
		if (nh == IPPROTO_FRAGMENT) {
			if (bpf_ntohs(ext.frag_off) & 0xfff8)
				*first_frag = false;
			off += 8;
		} else if (nh == IPPROTO_AH) {
			off += (ext.len + 2) * 4;
		} else {
			off += (ext.len + 1) * 8;
		}
		nh = ext.nexthdr;
	}
	pi->l4proto = nh;
	*l4off = off;
}

/* Fills pi from the L3 header at off, of type pi->ethertype. Destination ports are read only
 * when want_dport is set (a constant after inlining, so XDP skips the load). */
static __always_inline void parse_l3(void *ctx, enum pkt_src src, __u32 off, struct pkt_info *pi,
				     bool want_dport)
{
	__be16 ports[2];
	__u32 l4off = 0;
	bool first_frag = false;

	if (pi->ethertype == ETH_P_IP)
		parse_ipv4(ctx, src, off, pi, &l4off, &first_frag);
	else if (pi->ethertype == ETH_P_IPV6)
		parse_ipv6(ctx, src, off, pi, &l4off, &first_frag);
	if (!want_dport || !first_frag)
		return;
	if (pi->l4proto != IPPROTO_TCP && pi->l4proto != IPPROTO_UDP && pi->l4proto != IPPROTO_SCTP &&
	    pi->l4proto != IPPROTO_UDPLITE)
		return;
	if (pkt_load(ctx, src, l4off, ports, sizeof(ports)))
		return;
	pi->dport = bpf_ntohs(ports[1]);
	pi->has_dport = 1;
}

#endif /* __PACKET_BPF_H */
