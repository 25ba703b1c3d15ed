// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Network stack events from stable tracepoints: packet drops by reason, TCP retransmits,
 * TCP state transitions and packets received/transmitted per device. Tracepoint records
 * are read through CO-RE, so field moves between kernels are relocated at load time. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "net_tracepoints.bpf.h"

SEC("tracepoint/skb/kfree_skb")
int skb_kfree(struct trace_event_raw_kfree_skb *ctx)
{
	struct drop_key key = {};

	if (bpf_core_field_exists(ctx->reason))
		key.reason = ctx->reason;
	counter_add(&skb_drops_total, &key, 1);
	return 0;
}

/* The record type was renamed in 6.18. The fields are copied with bpf_core_read(), not
 * loaded directly: the compiler merges the two branches' identical loads into one with a
 * register offset, and the verifier only allows constant offsets on the context. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit(void *ctx)
{
	struct retransmit_key key = {};
	int state = 0;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *e = ctx;

		bpf_core_read(&key.family, sizeof(key.family), &e->family);
		bpf_core_read(&state, sizeof(state), &e->state);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *e = ctx;

		bpf_core_read(&key.family, sizeof(key.family), &e->family);
		bpf_core_read(&state, sizeof(state), &e->state);
	}
	key.state = state;
	counter_add(&tcp_retransmits_total, &key, 1);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct state_key key = {};

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	key.oldstate = ctx->oldstate;
	key.newstate = ctx->newstate;
	counter_add(&tcp_state_transitions_total, &key, 1);
	return 0;
}

/* The device name is a __data_loc string: offset in the low 16 bits, length in the high. */
static __always_inline void count_dev(void *map, void *ctx, __u32 data_loc)
{
	struct dev_key key = {};

	bpf_probe_read_kernel_str(key.name, sizeof(key.name), ctx + (data_loc & 0xffff));
	counter_add(map, &key, 1);
}

SEC("tracepoint/net/netif_receive_skb")
int net_rx(struct trace_event_raw_net_dev_template *ctx)
{
	count_dev(&net_rx_packets_total, ctx, ctx->__data_loc_name);
	return 0;
}

/* Counts packets the driver accepted; a busy driver's retry would count twice. */
SEC("tracepoint/net/net_dev_xmit")
int net_tx(struct trace_event_raw_net_dev_xmit *ctx)
{
	if (ctx->rc == NETDEV_TX_OK)
		count_dev(&net_tx_packets_total, ctx, ctx->__data_loc_name);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
