// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* net_tracepoints from BTF-typed tracepoints (tp_btf, Linux 5.5+): the same programs, maps and
 * metrics as the other two objects, and the cheapest of the three. Like the raw tracepoint
 * variant it gets the tracepoints' arguments (the kernel objects) and no trace record is built;
 * unlike it, the arguments are typed, so their fields are read with plain loads (the verifier
 * makes them fault-safe) instead of bpf_probe_read_kernel() calls. Load one of the three
 * objects, never two: they share their pinned maps. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "net_tracepoints.bpf.h"

/* TP_PROTO(struct sk_buff *skb, void *location[, enum skb_drop_reason reason (5.17+)]) */
SEC("tp_btf/kfree_skb")
int skb_kfree(unsigned long long *ctx)
{
	struct drop_key key = {};

	/* a kernel without drop reasons has two arguments: the branch is gone there (CO-RE), so
	 * the program never reads past them, which loading would refuse */
	if (bpf_core_type_exists(enum skb_drop_reason))
		key.reason = ctx[2];
	counter_add(&skb_drops_total, &key, 1);
	return 0;
}

/* TP_PROTO(const struct sock *sk, const struct sk_buff *skb[, int err (6.18+)]) */
SEC("tp_btf/tcp_retransmit_skb")
int tcp_retransmit(unsigned long long *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct retransmit_key key = {};

	key.family = sk->__sk_common.skc_family;
	key.state = sk->__sk_common.skc_state;
	counter_add(&tcp_retransmits_total, &key, 1);
	return 0;
}

/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
SEC("tp_btf/inet_sock_set_state")
int tcp_set_state(unsigned long long *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct state_key key = {};

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	key.oldstate = ctx[1];
	key.newstate = ctx[2];
	counter_add(&tcp_state_transitions_total, &key, 1);
	return 0;
}

/* w with the bytes from its first NUL on cleared (little-endian: the first byte is the lowest);
 * *end is set when w holds a NUL. */
static __always_inline __u64 until_nul(__u64 w, bool *end)
{
	__u64 zeros = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;

	if (!zeros)
		return w;
	*end = true;
	zeros &= -zeros;		  /* the high bit of the first zero byte */
	return w & ((zeros >> 7) - 1); /* the bytes below it */
}

/* The name up to its NUL, the rest of the key zero: the bytes after the NUL are whatever a
 * longer earlier name left there, and the other variants' string copies do not keep them. The
 * device is counted in its slot of slot_map when it holds it on this CPU, else in the hash map
 * (net_tracepoints.bpf.h). */
static __always_inline void count_device(void *map, void *slot_map, struct net_device *dev)
{
	struct dev_key key __attribute__((aligned(8))) = {};
	__u32 index = dev->ifindex & (DEV_SLOTS - 1);
	__u64 *owner, *name = (__u64 *)key.name, *count;
	bool end = false;

	/* Two 8-byte loads of the name, the bytes from its first NUL on cleared (word arithmetic:
	 * no loop over the bytes). */
	name[0] = until_nul(*(__u64 *)&dev->name[0], &end);
	name[1] = end ? 0 : until_nul(*(__u64 *)&dev->name[8], &end);
	owner = bpf_map_lookup_elem(&net_dev_slots, &index);
	if (owner) {
		if (!owner[0] && !owner[1]) { /* free on this CPU: the first device seen takes it */
			owner[0] = name[0];
			owner[1] = name[1];
		}
		if (owner[0] == name[0] && owner[1] == name[1]) {
			count = bpf_map_lookup_elem(slot_map, &index);
			if (count)
				*count += 1;
			return;
		}
	}
	counter_add(map, &key, 1);
}

/* TP_PROTO(struct sk_buff *skb) */
SEC("tp_btf/netif_receive_skb")
int net_rx(unsigned long long *ctx)
{
	count_device(&net_rx_packets_total, &net_rx_slot_packets, ((struct sk_buff *)ctx[0])->dev);
	return 0;
}

/* TP_PROTO(struct sk_buff *skb, int rc, struct net_device *dev, unsigned int skb_len); counts
 * packets the driver accepted, as the tracepoint variant does. */
SEC("tp_btf/net_dev_xmit")
int net_tx(unsigned long long *ctx)
{
	if ((int)ctx[1] == NETDEV_TX_OK)
		count_device(&net_tx_packets_total, &net_tx_slot_packets, (struct net_device *)ctx[2]);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
