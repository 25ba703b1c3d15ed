// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* net_tracepoints from raw tracepoints, for kernels without perf-event links (before 5.15),
 * where its tracepoint programs cannot be pinned: the same programs, maps and metrics, reading
 * the tracepoints' arguments (the kernel objects themselves, through CO-RE) instead of their
 * trace records. Load this or net_tracepoints.bpf.o, never both: they share their pinned maps. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "net_tracepoints.bpf.h"

/* TP_PROTO(struct sk_buff *skb, void *location[, enum skb_drop_reason reason (5.17+)]) */
SEC("raw_tp/kfree_skb")
int skb_kfree(struct bpf_raw_tracepoint_args *ctx)
{
	struct drop_key key = {};

	/* a kernel without drop reasons has two arguments: the branch is gone there (CO-RE), so
	 * the program never reads past them, which attaching would refuse */
	if (bpf_core_type_exists(enum skb_drop_reason))
		key.reason = ctx->args[2];
	counter_add(&skb_drops_total, &key, 1);
	return 0;
}

/* TP_PROTO(const struct sock *sk, const struct sk_buff *skb[, int err (6.18+)]) */
SEC("raw_tp/tcp_retransmit_skb")
int tcp_retransmit(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	struct retransmit_key key = {};

	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	counter_add(&tcp_retransmits_total, &key, 1);
	return 0;
}

/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
SEC("raw_tp/inet_sock_set_state")
int tcp_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	struct state_key key = {};

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	key.oldstate = ctx->args[1];
	key.newstate = ctx->args[2];
	counter_add(&tcp_state_transitions_total, &key, 1);
	return 0;
}

static __always_inline void count_device(void *map, struct net_device *dev)
{
	struct dev_key key = {};

	bpf_probe_read_kernel_str(key.name, sizeof(key.name), dev->name);
	counter_add(map, &key, 1);
}

/* TP_PROTO(struct sk_buff *skb) */
SEC("raw_tp/netif_receive_skb")
int net_rx(struct bpf_raw_tracepoint_args *ctx)
{
	count_device(&net_rx_packets_total, BPF_CORE_READ((struct sk_buff *)ctx->args[0], dev));
	return 0;
}

/* TP_PROTO(struct sk_buff *skb, int rc, struct net_device *dev, unsigned int skb_len); counts
 * packets the driver accepted, as the tracepoint variant does. */
SEC("raw_tp/net_dev_xmit")
int net_tx(struct bpf_raw_tracepoint_args *ctx)
{
	if ((int)ctx->args[1] == NETDEV_TX_OK)
		count_device(&net_tx_packets_total, (struct net_device *)ctx->args[2]);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
