/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps of net_tracepoints, shared by its two objects: tracepoints (net_tracepoints.bpf.c)
 * and raw tracepoints (raw_net_tracepoints.bpf.c, for kernels without perf-event links). */
#ifndef __NET_TRACEPOINTS_BPF_H
#define __NET_TRACEPOINTS_BPF_H

#include "maps.bpf.h"

#define IPPROTO_TCP 6
#define IFNAMSIZ 16
#define NETDEV_TX_OK 0

struct drop_key {
	__u32 reason; /* enum skb_drop_reason of the running kernel; 0 where it has none */
};

struct retransmit_key {
	__u16 family; /* AF_INET 2, AF_INET6 10 */
	__u16 state;  /* TCP state (TCP_ESTABLISHED 1, ...) */
};

struct state_key {
	__u16 oldstate;
	__u16 newstate;
};

struct dev_key {
	char name[IFNAMSIZ];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct drop_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skb_drops_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, struct retransmit_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_retransmits_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct state_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_state_transitions_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct dev_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_rx_packets_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct dev_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_tx_packets_total SEC(".maps");

/* Devices counted in arrays (btf_net_tracepoints; the other variants define these maps too, so
 * that every variant pins the same maps, and leave them empty): slot ifindex % 64 of this CPU's
 * net_dev_slots holds the name of the device it counts for on this CPU, claimed by that
 * device's first event there (one writer per CPU: no lock); its events then add to the same
 * slot of net_rx_slot_packets / net_tx_slot_packets, an inlined array lookup instead of a hash
 * update keyed by the name. A device whose slot another device holds on this CPU is counted in
 * the hash. The exporter reads the slots as entries of the hash (their slots config). */
#define DEV_SLOTS 64

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DEV_SLOTS);
	__type(key, __u32);
	__type(value, struct dev_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_dev_slots SEC(".maps");

/* The events of the device in each slot: one map per tracepoint. */
#define DEV_SLOT_COUNTS(name)                                  \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, DEV_SLOTS);                \
		__type(key, __u32);                            \
		__type(value, __u64);                          \
		__uint(pinning, LIBBPF_PIN_BY_NAME);           \
	} name SEC(".maps")

DEV_SLOT_COUNTS(net_rx_slot_packets);
DEV_SLOT_COUNTS(net_tx_slot_packets);

#endif /* __NET_TRACEPOINTS_BPF_H */
