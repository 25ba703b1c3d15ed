/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel types the collection's BPF programs use, and nothing else.
 *
 * Hand-curated, not generated: every struct lists only the fields the programs read.
 * - Kernel-internal types (tracepoint records, pt_regs) carry preserve_access_index, so each
 *   field access becomes a CO-RE relocation that libbpf resolves against the running
 *   kernel's BTF at load time. Field order and the absence of other fields here do not
 *   matter; names and kinds do.
 * - UAPI program contexts (xdp_md, __sk_buff, bpf_raw_tracepoint_args) are ABI: their
 *   offsets never change, so they are declared plainly, with the UAPI layout.
 * Checked against the BTF of Debian 12 (6.1.0-56, 6.1.192), Debian 13 (6.12.117) and 6.18.
 * See README.md, "vmlinux.h", before adding a type.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;

typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef _Bool bool;
enum { false = 0, true = 1 };

/* ---- UAPI: include/uapi/linux/bpf.h ---------------------------------------------------- */

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};

/* bpf_map_update_elem() flags */
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

/* map_flags */
enum {
	BPF_F_NO_PREALLOC = 1,
};

/* bpf_task_storage_get() flags */
enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP = 1,
	XDP_PASS = 2,
	XDP_TX = 3,
	XDP_REDIRECT = 4,
};

/* start_header of bpf_skb_load_bytes_relative() */
enum bpf_hdr_start_off {
	BPF_HDR_START_MAC = 0,
	BPF_HDR_START_NET = 1,
};

/* The lock of a map value (bpf_spin_lock()); the kernel finds it by this name in the map's BTF. */
struct bpf_spin_lock {
	__u32 val;
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* Leading fields of the UAPI struct, at their ABI offsets (the programs read no later one). */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
};

struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* ---- Kernel-internal types: relocated by CO-RE ---------------------------------------- */

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* arch/x86/include/asm/ptrace.h: the kprobe context; bpf_tracing.h reads di, si, ax, ... */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};

/* The task a syscall runs in (bpf_get_current_task_btf(), task storage): never dereferenced
 * here, so only its name is declared. */
struct task_struct;

/* include/trace/trace_events.h: header of every tracepoint record */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* Numbering differs between kernels; only the name and size matter here. */
enum skb_drop_reason {
	SKB_NOT_DROPPED_YET = 0,
};

/* skb:kfree_skb. 6.1 has no rx_sk (6.12 added it before protocol); reason exists since 5.17. */
struct trace_event_raw_kfree_skb {
	struct trace_entry ent;
	void *skbaddr;
	void *location;
	unsigned short protocol;
	enum skb_drop_reason reason;
};

/* tcp:tcp_retransmit_skb up to 6.17 (event class shared with tcp_send_reset) */
struct trace_event_raw_tcp_event_sk_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
};

/* tcp:tcp_retransmit_skb from 6.18 on (own event class, adds err) */
struct trace_event_raw_tcp_retransmit_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
};

/* sock:inet_sock_set_state */
struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
};

/* net:netif_receive_skb (event class net_dev_template) */
struct trace_event_raw_net_dev_template {
	struct trace_entry ent;
	void *skbaddr;
	unsigned int len;
	u32 __data_loc_name;
};

/* net:net_dev_xmit */
struct trace_event_raw_net_dev_xmit {
	struct trace_entry ent;
	void *skbaddr;
	unsigned int len;
	int rc;
	u32 __data_loc_name;
};

/* What the raw tracepoint variant of net_tracepoints reads from the tracepoints' arguments. */
struct net_device {
	char name[16];
	int ifindex;
};

struct sk_buff {
	struct net_device *dev;
	/* tc_classifier_direct: where the network header starts in the linear data */
	unsigned char *head;
	unsigned char *data;
	__u16 network_header;
};

struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
};

#pragma clang attribute pop

#endif /* __VMLINUX_H__ */
