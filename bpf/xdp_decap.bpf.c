/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * XDP GRE decapsulation for backends without kernel GRE: frames carrying Ethernet (one optional
 * 802.1Q/802.1ad tag) / outer IPv4 or IPv6 / GRE (RFC 2784, no optional fields) / inner IPv4 or
 * IPv6 whose inner destination is in the VIP map lose their outer IP and GRE headers and go to the
 * stack as the inner packet; every other frame goes to the stack untouched. Loaded and fed by
 * `maglevctl decap attach` (src/io/decap.c); the contract is bpf/xdp_decap.h.
 *
 * What is not decapsulated (and why): GRE with any flag or a non-zero version (maglevd never sends
 * checksum, key or sequence numbers, and RFC 2890 fields would need their own parsing); outer IPv4
 * fragments (the inner packet is incomplete; the kernel has no GRE to reassemble them for);
 * outer IPv6 with extension headers before GRE (maglevd sends none). ECN marks of the outer header
 * are not copied into the inner one (maglevd sends outer ECN 0).
 *
 * Second chance (docs/second-chance.md): a frame whose GRE carries the shim of bpf/xdp_decap.h
 * with a secondary, holding a TCP packet that is not a SYN, is delivered here only if a local
 * socket owns its connection (bpf_skc_lookup_tcp: established, request or time-wait socket; or a
 * listener whose SYN cookie the ACK carries). Otherwise it is sent on once to the secondary: the
 * outer header readdressed from us to it, the shim marked forwarded (which the secondary delivers
 * without asking, and never sends on), the next hop from bpf_fib_lookup; XDP_TX when that leaves
 * by the interface it came in on, else a redirect. No route, neighbour or TTL, or IP forwarding
 * off on the interface (bpf_fib_lookup needs it on): delivered here, counted.
 */
#include <stdbool.h>

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "names.h"
#include "xdp_decap.h"

#define GRE_HLEN       4u     /* RFC 2784 header without the optional checksum word */
#define IPV4_IHL_MIN   5u     /* 32-bit words */
#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset of frag_off, host order */
#define IPV4_ALEN      4u
#define IPV6_ALEN      16u
#ifndef AF_INET
#define AF_INET  2
#define AF_INET6 10
#endif

struct vlan_tag {
	__be16 tci;
	__be16 proto; /* encapsulated ethertype */
};

struct gre_base {
	__be16 flags_version; /* C, reserved0, version: all zero for what we decapsulate */
	__be16 proto;         /* ethertype of the inner packet */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DECAP_VIPS_MAX);
	__type(key, struct decap_vip_key);
	__type(value, __u32);
} decap_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_counters SEC(".maps");

BPF_NAME_IS(decap_vips, DECAP_MAP_VIPS);
BPF_NAME_IS(decap_counters, DECAP_MAP_COUNTERS);

/* Counts one frame under ctr and returns the verdict, so every exit is counted exactly once. */
static __always_inline int count(__u32 ctr, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&decap_counters, &ctr);

	if (v)
		*v += 1;
	return verdict;
}

/*
 * Reads the inner packet at inner (ethertype proto) into key. Returns DECAP_CTR_MAX when key
 * holds its destination, else the counter the frame belongs to.
 */
static __always_inline __u32 inner_vip_key(void *inner, void *end, __be16 proto,
                                           struct decap_vip_key *key)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = inner;

		if ((void *)(ip + 1) > end)
			return DECAP_CTR_MALFORMED;
		if (ip->version != 4 || ip->ihl < IPV4_IHL_MIN)
			return DECAP_CTR_MALFORMED;
		key->family = DECAP_FAMILY_IPV4;
		__builtin_memcpy(key->addr, &ip->daddr, sizeof(ip->daddr));
		return DECAP_CTR_MAX;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > end)
			return DECAP_CTR_MALFORMED;
		if (ip6->version != 6)
			return DECAP_CTR_MALFORMED;
		key->family = DECAP_FAMILY_IPV6;
		__builtin_memcpy(key->addr, &ip6->daddr, sizeof(key->addr));
		return DECAP_CTR_MAX;
	}
	return DECAP_CTR_UNSUPPORTED;
}

/*
 * Whether a local socket owns the connection of the inner TCP packet at inner (ethertype proto,
 * its IP header checked by inner_vip_key): DECAP_CTR_SC_LOCAL or DECAP_CTR_SC_SYNCOOKIE if one
 * does, DECAP_CTR_SC_NOT_HANDED for a SYN, a fragment or another protocol, DECAP_CTR_MAX if none.
 */
static __always_inline __u32 sc_local_owner(struct xdp_md *ctx, void *inner, void *end,
                                            __be16 proto)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	struct tcphdr *th;
	__u32 tlen, iph_len, ctr = DECAP_CTR_MAX;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = inner;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP ||
		    ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
			return DECAP_CTR_SC_NOT_HANDED;
		th = inner + ip->ihl * 4u;
		if ((void *)(th + 1) > end)
			return DECAP_CTR_SC_NOT_HANDED;
		t.ipv4.saddr = ip->saddr;
		t.ipv4.daddr = ip->daddr;
		t.ipv4.sport = th->source;
		t.ipv4.dport = th->dest;
		tlen = sizeof(t.ipv4);
		iph_len = sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return DECAP_CTR_SC_NOT_HANDED;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return DECAP_CTR_SC_NOT_HANDED;
		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, sizeof(t.ipv6.saddr));
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, sizeof(t.ipv6.daddr));
		t.ipv6.sport = th->source;
		t.ipv6.dport = th->dest;
		tlen = sizeof(t.ipv6);
		iph_len = sizeof(*ip6);
	}
	if (th->syn)
		return DECAP_CTR_SC_NOT_HANDED;
	sk = bpf_skc_lookup_tcp(ctx, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DECAP_CTR_MAX;
	if (sk->state != BPF_TCP_LISTEN)
		ctr = DECAP_CTR_SC_LOCAL;
	else if (th->ack && bpf_tcp_check_syncookie(sk, inner, iph_len, th, sizeof(*th)) == 0)
		ctr = DECAP_CTR_SC_SYNCOOKIE;
	bpf_sk_release(sk);
	return ctr;
}

/* The IPv4 header checksum at *check after the 32-bit word from became to (RFC 1624). */
static __always_inline void csum_replace4(__u16 *check, __u32 from, __u32 to)
{
	__u32 s = (__u16) ~*check;

	s += (__u16)~from + (__u16) ~(from >> 16) + (__u16)to + (__u16)(to >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	*check = (__u16)~s;
}

/*
 * Sends the frame on to the secondary at sec (the outer family's length, checked): the outer
 * header at l3 readdressed from us (its destination) to sec with one hop less, the shim marked
 * forwarded, Ethernet addresses from the FIB (bpf_fib_lookup, which answers only where IP
 * forwarding is on for the interface). Returns XDP_TX or a redirect's verdict; else, with nothing
 * changed, -1 (no route, neighbour or TTL left) or -2 (forwarding off on the interface).
 */
static __always_inline int sc_forward(struct xdp_md *ctx, struct ethhdr *eth, void *l3,
                                      bool outer_v6, struct decap_sc_shim *sc, void *sec, void *end)
{
	struct bpf_fib_lookup fib = {.ifindex = ctx->ingress_ifindex, .l4_protocol = IPPROTO_GRE};
	long rc;

	if (!outer_v6) {
		struct iphdr *ip = l3;
		__u32 to;

		if ((void *)(ip + 1) > end || sec + IPV4_ALEN > end || ip->ttl <= 1)
			return -1;
		__builtin_memcpy(&to, sec, IPV4_ALEN);
		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->daddr;
		fib.ipv4_dst = to;
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return rc == BPF_FIB_LKUP_RET_FWD_DISABLED ? -2 : -1;
		csum_replace4(&ip->check, ip->saddr, ip->daddr);
		csum_replace4(&ip->check, ip->daddr, to);
		csum_replace4(&ip->check, bpf_htons((__u16)ip->ttl << 8),
		              bpf_htons((__u16)(ip->ttl - 1) << 8));
		ip->saddr = ip->daddr;
		ip->daddr = to;
		ip->ttl--;
	} else {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end || sec + IPV6_ALEN > end || ip6->hop_limit <= 1)
			return -1;
		fib.family = AF_INET6;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(fib.ipv6_src, &ip6->daddr, IPV6_ALEN);
		__builtin_memcpy(fib.ipv6_dst, sec, IPV6_ALEN);
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return rc == BPF_FIB_LKUP_RET_FWD_DISABLED ? -2 : -1;
		__builtin_memcpy(&ip6->saddr, &ip6->daddr, IPV6_ALEN);
		__builtin_memcpy(&ip6->daddr, sec, IPV6_ALEN);
		ip6->hop_limit--;
	}
	sc->ver_flags |= DECAP_SC_FORWARDED;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

SEC(DECAP_SEC)
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr eth_saved;
	struct vlan_tag vlan_saved = {};
	struct decap_vip_key key = {};
	struct decap_sc_shim *sc = NULL;
	struct gre_base *gre;
	__u32 l2len = sizeof(struct ethhdr);
	__u32 outer_len; /* outer IP header, bytes: stripped along with GRE */
	__u32 strip;     /* bytes before the inner packet: outer IP, GRE, shim */
	__u32 ctr, done = DECAP_CTR_DECAPSULATED;
	bool outer_v6 = false;
	__be16 proto;
	void *l3, *inner, *sec = NULL;

	if ((void *)(eth + 1) > end)
		return count(DECAP_CTR_PASSED, XDP_PASS);
	__builtin_memcpy(&eth_saved, eth, sizeof(eth_saved));
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return count(DECAP_CTR_PASSED, XDP_PASS);
		vlan_saved = *tag;
		proto = tag->proto;
		l2len += sizeof(struct vlan_tag);
	}
	l3 = data + l2len;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_GRE)
			return count(DECAP_CTR_PASSED, XDP_PASS);
		if (ip->version != 4 || ip->ihl < IPV4_IHL_MIN)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		if (ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
			return count(DECAP_CTR_UNSUPPORTED, XDP_PASS);
		outer_len = ip->ihl * 4u;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_GRE)
			return count(DECAP_CTR_PASSED, XDP_PASS);
		if (ip6->version != 6)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		outer_len = sizeof(struct ipv6hdr);
		outer_v6 = true;
	} else {
		return count(DECAP_CTR_PASSED, XDP_PASS);
	}

	gre = l3 + outer_len;
	if ((void *)(gre + 1) > end)
		return count(DECAP_CTR_MALFORMED, XDP_PASS);
	if (gre->flags_version != 0)
		return count(DECAP_CTR_UNSUPPORTED, XDP_PASS);
	proto = gre->proto;
	inner = gre + 1;
	strip = outer_len + GRE_HLEN;
	if (proto == bpf_htons(DECAP_SC_PROTO)) {
		__u32 alen = outer_v6 ? IPV6_ALEN : IPV4_ALEN;

		sc = inner;
		if ((void *)(sc + 1) > end)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		if (sc->ver_flags >> 4 != DECAP_SC_VERSION || sc->reserved)
			return count(DECAP_CTR_UNSUPPORTED, XDP_PASS);
		sec = sc + 1;
		inner = sec + alen;
		if (inner > end)
			return count(DECAP_CTR_MALFORMED, XDP_PASS);
		proto = sc->proto;
		strip += sizeof(*sc) + alen;
	}
	ctr = inner_vip_key(inner, end, proto, &key);
	if (ctr != DECAP_CTR_MAX)
		return count(ctr, XDP_PASS);
	if (!bpf_map_lookup_elem(&decap_vips, &key))
		return count(DECAP_CTR_PASSED, XDP_PASS);
	if (sc && sc->ver_flags & DECAP_SC_FORWARDED) {
		done = DECAP_CTR_SC_RECEIVED;
	} else if (sc) {
		done = sc_local_owner(ctx, inner, end, proto);
		if (done == DECAP_CTR_MAX) {
			int verdict = sc_forward(ctx, eth, l3, outer_v6, sc, sec, end);

			if (verdict >= 0)
				return count(DECAP_CTR_SC_FORWARDED, verdict);
			done = verdict == -2 ? DECAP_CTR_SC_FWD_DISABLED : DECAP_CTR_SC_NO_ROUTE;
		}
	}

	/*
	 * Drop the outer IP and GRE headers by moving the frame's start forward, then write the
	 * saved Ethernet header (and VLAN tag) in front of the inner packet with its ethertype.
	 * adjust_head only fails for a start beyond the frame, and the frame still holds the inner
	 * IP header checked above, so the two MALFORMED exits below cannot be taken (the verifier
	 * needs them).
	 */
	if (bpf_xdp_adjust_head(ctx, (int)strip))
		return count(DECAP_CTR_MALFORMED, XDP_PASS);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (l2len == sizeof(struct ethhdr)) {
		if ((void *)(eth + 1) > end)
			return count(DECAP_CTR_MALFORMED, XDP_DROP);
		__builtin_memcpy(eth, &eth_saved, sizeof(*eth));
		eth->h_proto = proto;
	} else {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return count(DECAP_CTR_MALFORMED, XDP_DROP);
		__builtin_memcpy(eth, &eth_saved, sizeof(*eth));
		tag->tci = vlan_saved.tci;
		tag->proto = proto;
	}
	return count(done, XDP_PASS);
}
BPF_NAME_IS(xdp_decap, DECAP_PROG_NAME);

char LICENSE[] SEC("license") = "GPL";
