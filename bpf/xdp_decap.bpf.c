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
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "names.h"
#include "xdp_decap.h"

#define GRE_HLEN       4u     /* RFC 2784 header without the optional checksum word */
#define IPV4_IHL_MIN   5u     /* 32-bit words */
#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset of frag_off, host order */

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

SEC(DECAP_SEC)
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr eth_saved;
	struct vlan_tag vlan_saved = {};
	struct decap_vip_key key = {};
	struct gre_base *gre;
	__u32 l2len = sizeof(struct ethhdr);
	__u32 outer_len; /* outer IP header, bytes: stripped along with GRE */
	__u32 ctr;
	__be16 proto;
	void *l3;

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
	} else {
		return count(DECAP_CTR_PASSED, XDP_PASS);
	}

	gre = l3 + outer_len;
	if ((void *)(gre + 1) > end)
		return count(DECAP_CTR_MALFORMED, XDP_PASS);
	if (gre->flags_version != 0)
		return count(DECAP_CTR_UNSUPPORTED, XDP_PASS);
	proto = gre->proto;
	ctr = inner_vip_key(gre + 1, end, proto, &key);
	if (ctr != DECAP_CTR_MAX)
		return count(ctr, XDP_PASS);
	if (!bpf_map_lookup_elem(&decap_vips, &key))
		return count(DECAP_CTR_PASSED, XDP_PASS);

	/*
	 * Drop the outer IP and GRE headers by moving the frame's start forward, then write the
	 * saved Ethernet header (and VLAN tag) in front of the inner packet with its ethertype.
	 * adjust_head only fails for a start beyond the frame, and the frame still holds the inner
	 * IP header checked above, so the two MALFORMED exits below cannot be taken (the verifier
	 * needs them).
	 */
	if (bpf_xdp_adjust_head(ctx, (int)(outer_len + GRE_HLEN)))
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
	return count(DECAP_CTR_DECAPSULATED, XDP_PASS);
}
BPF_NAME_IS(xdp_decap, DECAP_PROG_NAME);

char LICENSE[] SEC("license") = "GPL";
