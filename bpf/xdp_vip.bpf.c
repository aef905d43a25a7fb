/*
 * VIP steering for the AF_XDP data plane: packets for a configured VIP (and GRE to our own
 * addresses, re-target mode) are redirected to the AF_XDP socket of their RX queue; everything
 * else (SSH, BGP, ARP/NDP, health checks, the host's own traffic) goes on to the kernel.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp_vip.h"

#define VLAN_TAGS_MAX   2u /* 802.1Q / 802.1ad tags skipped */
#define IPV6_EXTS_MAX   4u /* IPv6 extension headers skipped before giving up */
#define IPPROTO_GRE_NUM 47

/* ICMP and ICMPv6 types steered to maglevd (linux/icmp.h drags in libc headers BPF cannot use). */
#define ICMP_ECHO_REQ        8
#define ICMP_UNREACH         3
#define ICMP_TIME_EXCEED     11
#define ICMP_PARAM_PROBLEM   12
#define ICMP6_UNREACH        1
#define ICMP6_TOO_BIG        2
#define ICMP6_TIME_EXCEED    3
#define ICMP6_PARAM_PROBLEM  4
#define ICMP6_ECHO_REQ       128

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 csum;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
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

static __always_inline void stat_add(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&stats_map, &k);

	if (c)
		*c += 1;
}

static __always_inline int verdict_pass(void)
{
	stat_add(XDP_STAT_PASS);
	return XDP_PASS;
}

/* Redirect to this queue's socket; a queue without a socket falls back to the kernel. */
static __always_inline int verdict_redirect(struct xdp_md *ctx)
{
	int rc = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

	stat_add(rc == XDP_REDIRECT ? XDP_STAT_REDIRECT : XDP_STAT_NO_SOCKET);
	return rc;
}

static __always_inline __u32 addr_flags(const __u8 *addr, __u8 family)
{
	struct xdp_addr_key k = { .family = family };
	__u32 *v;

	__builtin_memcpy(k.addr, addr, family == XDP_FAMILY_IPV4 ? 4 : 16);
	v = bpf_map_lookup_elem(&addr_map, &k);
	return v ? *v : 0;
}

static __always_inline int vip_match(const __u8 *addr, __u8 family, __u8 proto, __be16 port)
{
	struct xdp_vip_key k = { .family = family, .proto = proto, .port = port };

	__builtin_memcpy(k.addr, addr, family == XDP_FAMILY_IPV4 ? 4 : 16);
	if (bpf_map_lookup_elem(&vip_map, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(&vip_map, &k) != 0;
}

/*
 * Decides for the transport part. l4 points at the TCP/UDP/ICMP header when first_frag, else
 * (a non-first fragment) there is no transport header and the address alone decides.
 */
static __always_inline int steer_l4(struct xdp_md *ctx, void *l4, void *end, const __u8 *daddr,
				    __u8 family, __u8 proto, int first_frag)
{
	__u32 flags = addr_flags(daddr, family);

	if (proto == IPPROTO_GRE_NUM)
		return (flags & XDP_ADDR_SELF) ? verdict_redirect(ctx) : verdict_pass();
	if (!(flags & XDP_ADDR_VIP))
		return verdict_pass();
	if (!first_frag)
		return verdict_redirect(ctx);
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 *ports = l4;

		if ((void *)(ports + 2) > end)
			return verdict_pass();
		return vip_match(daddr, family, proto, ports[1]) ? verdict_redirect(ctx)
								 : verdict_pass();
	}
	if (proto == IPPROTO_ICMP) {
		struct icmp_hdr *ic = l4;

		if ((void *)(ic + 1) > end)
			return verdict_pass();
		switch (ic->type) {
		case ICMP_ECHO_REQ:
		case ICMP_UNREACH:
		case ICMP_TIME_EXCEED:
		case ICMP_PARAM_PROBLEM:
			return verdict_redirect(ctx);
		}
		return verdict_pass();
	}
	if (proto == IPPROTO_ICMPV6) {
		struct icmp_hdr *ic = l4;

		if ((void *)(ic + 1) > end)
			return verdict_pass();
		switch (ic->type) {
		case ICMP6_ECHO_REQ:
		case ICMP6_UNREACH:
		case ICMP6_TOO_BIG:
		case ICMP6_TIME_EXCEED:
		case ICMP6_PARAM_PROBLEM:
			return verdict_redirect(ctx);
		}
		return verdict_pass();
	}
	return verdict_pass();
}

static __always_inline int steer_ipv4(struct xdp_md *ctx, void *p, void *end)
{
	struct iphdr *ip = p;
	__u32 ihl;

	if ((void *)(ip + 1) > end)
		return verdict_pass();
	ihl = ip->ihl * 4u;
	if (ihl < sizeof(*ip))
		return verdict_pass();
	return steer_l4(ctx, p + ihl, end, (const __u8 *)&ip->daddr, XDP_FAMILY_IPV4, ip->protocol,
			(ip->frag_off & bpf_htons(0x1fff)) == 0);
}

static __always_inline int steer_ipv6(struct xdp_md *ctx, void *p, void *end)
{
	struct ipv6hdr *ip6 = p;
	__u8 next;
	int first_frag = 1;

	if ((void *)(ip6 + 1) > end)
		return verdict_pass();
	next = ip6->nexthdr;
	p = ip6 + 1;
#pragma unroll
	for (__u32 i = 0; i < IPV6_EXTS_MAX; i++) {
		__u8 *ext = p;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_FRAGMENT)
			break;
		if ((void *)(ext + 8) > end)
			return verdict_pass();
		if (next == IPPROTO_FRAGMENT) {
			if ((ext[2] << 8 | ext[3]) & 0xfff8)
				first_frag = 0;
			p = ext + 8;
		} else {
			p = ext + (ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	return steer_l4(ctx, p, end, (const __u8 *)&ip6->daddr, XDP_FAMILY_IPV6, next, first_frag);
}

SEC("xdp")
int xdp_vip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *p = eth + 1;
	__be16 proto;

	if (p > end)
		return verdict_pass();
	proto = eth->h_proto;
#pragma unroll
	for (__u32 i = 0; i < VLAN_TAGS_MAX; i++) {
		struct vlan_hdr *vh = p;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return verdict_pass();
		proto = vh->proto;
		p = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return steer_ipv4(ctx, p, end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return steer_ipv6(ctx, p, end);
	return verdict_pass();
}

char _license[] SEC("license") = "GPL";
