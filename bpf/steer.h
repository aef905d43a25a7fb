/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * VIP steering, the part of the XDP programs that hands frames to maglevd's AF_XDP sockets (BPF
 * side only; included by bpf/xdp_vip.bpf.c, the afxdp mode's program, and bpf/xdp_fwd.bpf.c, the
 * xdp mode's, which steers what it does not forward itself): packets for a configured VIP (and
 * GRE to our own addresses, re-target mode) sent to our MAC are redirected to the AF_XDP socket
 * of their RX queue; everything else (SSH, BGP, ARP/NDP, health checks, the host's own traffic,
 * frames to other MACs) goes on to the kernel. What the pipeline would only drop (ICMP it does
 * not handle) is dropped here, counted, and what it would only pass (QinQ) is never redirected.
 * While a queue's worker is behind (shed_map), SYNs opening connections to a VIP are dropped
 * here. The maps and their layouts are bpf/xdp_vip.h's.
 */
#ifndef MAGLEV_BPF_STEER_H
#define MAGLEV_BPF_STEER_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "names.h"
#include "xdp_vip.h"

#define IPV6_EXTS_MAX   4u /* IPv6 extension headers skipped before giving up */
#define IPPROTO_GRE_NUM 47
#define TCP_FLAGS_OFF   13 /* byte of the TCP header with the flags */
#define TCP_FLAG_SYN    0x02
#define TCP_FLAG_ACK    0x10

/* ICMP and ICMPv6 types steered to maglevd (linux/icmp.h drags in libc headers BPF cannot use). */
#define ICMP_ECHO_REQ       8
#define ICMP_UNREACH        3
#define ICMP_TIME_EXCEED    11
#define ICMP_PARAM_PROBLEM  12
#define ICMP6_UNREACH       1
#define ICMP6_TOO_BIG       2
#define ICMP6_TIME_EXCEED   3
#define ICMP6_PARAM_PROBLEM 4
#define ICMP6_ECHO_REQ      128

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 csum;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What the headers of a frame say; verdict() turns it into an XDP action. */
enum steer {
	STEER_PASS,      /* not for maglevd */
	STEER_REDIRECT,  /* for maglevd */
	STEER_SYN,       /* for maglevd, a SYN opening a connection: dropped while shedding */
	STEER_DROP_ICMP, /* ICMP to a VIP address that the pipeline would only drop */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDP_VIP_MAP_ENTRIES);
	__type(key, struct xdp_vip_key);
	__type(value, __u32);
} vip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDP_ADDR_MAP_ENTRIES);
	__type(key, struct xdp_addr_key);
	__type(value, __u32);
} addr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDP_XSK_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_vip_config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_XSK_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} shed_map SEC(".maps");

BPF_NAME_IS(shed_map, XDP_VIP_MAP_SHED);
BPF_NAME_IS(vip_map, XDP_VIP_MAP_VIPS);
BPF_NAME_IS(addr_map, XDP_VIP_MAP_ADDRS);
BPF_NAME_IS(xsks_map, XDP_VIP_MAP_XSKS);
BPF_NAME_IS(stats_map, XDP_VIP_MAP_STATS);
BPF_NAME_IS(config_map, XDP_VIP_MAP_CONFIG);

static __always_inline void stat_add(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&stats_map, &k);

	if (c)
		*c += 1;
}

/* True if eth (its 14 bytes checked present) is sent to the MAC of config c. */
static __always_inline int mac_is(const struct ethhdr *eth, const struct xdp_vip_config *c)
{
	const __u16 *a = (const __u16 *)eth->h_dest;
	const __u16 *m = (const __u16 *)c->mac;

	return ((a[0] ^ m[0]) | (a[1] ^ m[1]) | (a[2] ^ m[2])) == 0;
}

/* True if eth (its 14 bytes checked present) is sent to the interface's MAC (config_map). */
static __always_inline int mac_is_ours(const struct ethhdr *eth)
{
	__u32 k = 0;
	const struct xdp_vip_config *c = bpf_map_lookup_elem(&config_map, &k);

	return c && mac_is(eth, c);
}

/*
 * The action for decision s, as the pipeline would decide: frames it acts on must be sent to our
 * MAC (else they are the kernel's, pass_not_our_mac), what it drops whatever the MAC is dropped.
 * A redirect to a queue without a socket falls back to the kernel.
 */
static __always_inline int verdict(struct xdp_md *ctx, const struct ethhdr *eth, enum steer s)
{
	int rc;

	if (s == STEER_PASS) {
		stat_add(XDP_STAT_PASS);
		return XDP_PASS;
	}
	if (s == STEER_DROP_ICMP) {
		stat_add(XDP_STAT_DROP_ICMP);
		return XDP_DROP;
	}
	if (!mac_is_ours(eth)) {
		stat_add(XDP_STAT_PASS_NOT_OUR_MAC);
		return XDP_PASS;
	}
	if (s == STEER_SYN) {
		__u32 q = ctx->rx_queue_index;
		__u32 *shed = bpf_map_lookup_elem(&shed_map, &q);

		if (shed && *shed) {
			stat_add(XDP_STAT_DROP_SYN_SHED);
			return XDP_DROP;
		}
	}
	rc = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	stat_add(rc == XDP_REDIRECT ? XDP_STAT_REDIRECT : XDP_STAT_NO_SOCKET);
	return rc;
}

static __always_inline __u32 addr_flags(const __u8 *addr, __u8 family)
{
	struct xdp_addr_key k = {.family = family};
	__u32 *v;

	__builtin_memcpy(k.addr, addr, family == XDP_FAMILY_IPV4 ? 4 : 16);
	v = bpf_map_lookup_elem(&addr_map, &k);
	return v ? *v : 0;
}

static __always_inline int vip_match(const __u8 *addr, __u8 family, __u8 proto, __be16 port)
{
	struct xdp_vip_key k = {.family = family, .proto = proto, .port = port};

	__builtin_memcpy(k.addr, addr, family == XDP_FAMILY_IPV4 ? 4 : 16);
	if (bpf_map_lookup_elem(&vip_map, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(&vip_map, &k) != 0;
}

/*
 * Decides for the transport part. l4 points at the TCP/UDP/ICMP header when first_frag, else
 * (a non-first fragment) there is no transport header and the address alone decides; frag: any
 * fragment, the first included. Mirrors the pipeline: fragments of TCP/UDP are its own, ICMP is
 * its own only unfragmented, of the family's ICMP, and of a type it answers or steers (it drops
 * the rest: parameter problem, fragments); any other protocol to a VIP address it passes.
 */
static __always_inline enum steer steer_l4(void *l4, void *end, const __u8 *daddr, __u8 family,
                                           __u8 proto, int first_frag, int frag)
{
	__u32 flags = addr_flags(daddr, family);
	__u8 icmp = family == XDP_FAMILY_IPV4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	struct icmp_hdr *ic = l4;

	if (proto == IPPROTO_GRE_NUM)
		return (flags & XDP_ADDR_SELF) ? STEER_REDIRECT : STEER_PASS;
	if (!(flags & XDP_ADDR_VIP))
		return STEER_PASS;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 *ports = l4;

		__u8 *tcp_flags = (__u8 *)l4 + TCP_FLAGS_OFF;

		if (!first_frag)
			return STEER_REDIRECT;
		if ((void *)(ports + 2) > end)
			return STEER_PASS;
		if (!vip_match(daddr, family, proto, ports[1]))
			return STEER_PASS;
		/* A header cut short before its flags is the pipeline's to drop. */
		if (proto == IPPROTO_TCP && (void *)(tcp_flags + 1) <= end &&
		    (*tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
			return STEER_SYN;
		return STEER_REDIRECT;
	}
	if (proto != icmp)
		return STEER_PASS;
	if (frag)
		return STEER_DROP_ICMP;
	if ((void *)(ic + 1) > end)
		return STEER_PASS;
	if (family == XDP_FAMILY_IPV4) {
		switch (ic->type) {
		case ICMP_ECHO_REQ:
		case ICMP_UNREACH:
		case ICMP_TIME_EXCEED:
			return STEER_REDIRECT;
		case ICMP_PARAM_PROBLEM:
			return STEER_DROP_ICMP;
		}
		return STEER_PASS;
	}
	switch (ic->type) {
	case ICMP6_ECHO_REQ:
	case ICMP6_UNREACH:
	case ICMP6_TOO_BIG:
	case ICMP6_TIME_EXCEED:
		return STEER_REDIRECT;
	case ICMP6_PARAM_PROBLEM:
		return STEER_DROP_ICMP;
	}
	return STEER_PASS;
}

static __always_inline enum steer steer_ipv4(void *p, void *end)
{
	struct iphdr *ip = p;
	__u32 ihl;

	if ((void *)(ip + 1) > end)
		return STEER_PASS;
	ihl = ip->ihl * 4u;
	if (ihl < sizeof(*ip))
		return STEER_PASS;
	return steer_l4(p + ihl, end, (const __u8 *)&ip->daddr, XDP_FAMILY_IPV4, ip->protocol,
	                (ip->frag_off & bpf_htons(0x1fff)) == 0,
	                (ip->frag_off & bpf_htons(0x3fff)) != 0);
}

static __always_inline enum steer steer_ipv6(void *p, void *end)
{
	struct ipv6hdr *ip6 = p;
	__u8 next;
	int first_frag = 1, frag = 0;

	if ((void *)(ip6 + 1) > end)
		return STEER_PASS;
	next = ip6->nexthdr;
	p = ip6 + 1;
#pragma unroll
	for (__u32 i = 0; i < IPV6_EXTS_MAX; i++) {
		__u8 *ext = p;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_FRAGMENT)
			break;
		if ((void *)(ext + 8) > end)
			return STEER_PASS;
		if (next == IPPROTO_FRAGMENT) {
			frag = 1;
			if ((ext[2] << 8 | ext[3]) & 0xfff8)
				first_frag = 0;
			p = ext + 8;
		} else {
			p = ext + (ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	return steer_l4(p, end, (const __u8 *)&ip6->daddr, XDP_FAMILY_IPV6, next, first_frag, frag);
}

/* The steering decision for the frame of ctx, as an XDP action. */
static __always_inline int steer_frame(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *p = eth + 1;
	enum steer s = STEER_PASS;
	__be16 proto;

	if (p > end)
		return verdict(ctx, eth, STEER_PASS);
	proto = eth->h_proto;
	/*
	 * One 802.1Q tag, as the pipeline parses: QinQ (802.1ad, or 802.1Q twice) is passed there
	 * (pass_not_ip), so it stays with the kernel, which may have VLAN devices for it.
	 */
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = p;

		if ((void *)(vh + 1) > end)
			return verdict(ctx, eth, STEER_PASS);
		proto = vh->proto;
		p = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		s = steer_ipv4(p, end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		s = steer_ipv6(p, end);
	return verdict(ctx, eth, s);
}

#endif
