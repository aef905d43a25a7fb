/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * tc egress (cls_bpf, direct action) on maglevd's dataplane interface: health probes of checks
 * `through: tunnel` leave GRE-encapsulated to their backend, as the data path sends a client's
 * packets. A probe is a packet whose skb mark is HCT_MARK_BASE | slot (its socket's SO_MARK); the
 * slot's struct hct_dest says where it goes. The probe is a packet to the VIP, so the backend's
 * decapsulation, its VIP on lo and its service all have to work for the probe to pass; the
 * backend answers the probe's source directly (DSR), not through us.
 *
 * The outer headers are those of src/core/encap.h's gre_encap for the same packet: Ethernet
 * (the slot's addresses), IPv4 (TOS, ID and DF of the inner IPv4 packet; from inner IPv6: its
 * traffic class, ID 0, DF) or IPv6 (traffic class copied, flow label 0), then GRE (RFC 2784, no
 * optional fields) with the inner ethertype. test_hc_tunnel compares the bytes.
 *
 * Packets without a probe mark pass untouched (TC_ACT_OK); a probe that cannot be encapsulated
 * is dropped, never sent on as a plain packet to the VIP (which would test another path).
 */
#include <stdbool.h>

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "hc_tunnel.h"
#include "names.h"

#define GRE_HLEN     4u  /* RFC 2784 header without the optional checksum word */
#define IPV4_HLEN    20u /* the outer IPv4 header has no options */
#define IPV6_HLEN    40u
#define IPV4_DF      0x4000u
#define IPV4_IHL_MIN 5u
#define IPPROTO_GRE_ 47u

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HCT_SLOTS);
	__type(key, __u32);
	__type(value, struct hct_dest);
} hct_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HCT_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hct_counters SEC(".maps");

BPF_NAME_IS(hct_dests, HCT_MAP_DESTS);
BPF_NAME_IS(hct_counters, HCT_MAP_COUNTERS);

static __always_inline int count(__u32 ctr, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&hct_counters, &ctr);

	if (v)
		*v += 1;
	return verdict;
}

/* What the outer header takes from the inner packet (as struct pkt_ip has it). */
struct inner {
	__u16 len; /* IP packet length by its header */
	__u16 id;  /* IPv4 identification, host order; 0 for IPv6 */
	__u8 tos;  /* TOS / traffic class */
	bool df;
	bool v6;
};

/* Reads the inner IP header after the Ethernet header; false if there is none whole. */
static __always_inline bool inner_read(struct __sk_buff *skb, struct inner *in)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return false;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < IPV4_IHL_MIN)
			return false;
		in->len = bpf_ntohs(ip->tot_len);
		in->id = bpf_ntohs(ip->id);
		in->tos = ip->tos;
		in->df = ip->frag_off & bpf_htons(IPV4_DF);
		in->v6 = false;
		return true;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return false;
		in->len = IPV6_HLEN + bpf_ntohs(ip6->payload_len);
		in->id = 0;
		in->tos = (__u8)(ip6->priority << 4 | ip6->flow_lbl[0] >> 4);
		in->df = true;
		in->v6 = true;
		return true;
	}
	return false;
}

/* The IPv4 header checksum of h (20 bytes, check field zero). */
static __always_inline __u16 ipv4_csum(const __u16 *h)
{
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < IPV4_HLEN / 2; i++)
		s += h[i];
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

SEC("tc")
int hc_tunnel(struct __sk_buff *skb)
{
	__u32 mark = skb->mark, slot, hl, flags;
	const struct hct_dest *d;
	struct inner in;
	struct ethhdr *eth;
	void *data, *end;
	__be16 *gre;

	if ((mark & HCT_MARK_MASK) != HCT_MARK_BASE)
		return TC_ACT_OK;
	slot = mark & ~HCT_MARK_MASK;
	d = bpf_map_lookup_elem(&hct_dests, &slot);
	if (!d || (d->family != HCT_FAMILY_IPV4 && d->family != HCT_FAMILY_IPV6))
		return count(HCT_CTR_NO_DEST, TC_ACT_SHOT);
	if (!inner_read(skb, &in))
		return count(HCT_CTR_MALFORMED, TC_ACT_SHOT);
	hl = d->family == HCT_FAMILY_IPV4 ? IPV4_HLEN : IPV6_HLEN;
	flags = (d->family == HCT_FAMILY_IPV4 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
	                                      : BPF_F_ADJ_ROOM_ENCAP_L3_IPV6) |
	        BPF_F_ADJ_ROOM_ENCAP_L4_GRE;
	/* Room between the Ethernet header and the inner IP header; skb offsets follow. */
	if (bpf_skb_adjust_room(skb, hl + GRE_HLEN, BPF_ADJ_ROOM_MAC, flags))
		return count(HCT_CTR_NO_ROOM, TC_ACT_SHOT);
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return count(HCT_CTR_NO_ROOM, TC_ACT_SHOT);
	__builtin_memcpy(eth->h_dest, d->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, d->src_mac, ETH_ALEN);
	if (d->family == HCT_FAMILY_IPV4) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) + GRE_HLEN > end)
			return count(HCT_CTR_NO_ROOM, TC_ACT_SHOT);
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = IPV4_IHL_MIN;
		ip->tos = in.tos;
		ip->tot_len = bpf_htons(IPV4_HLEN + GRE_HLEN + in.len);
		ip->id = bpf_htons(in.id);
		ip->frag_off = in.df ? bpf_htons(IPV4_DF) : 0;
		ip->ttl = d->ttl;
		ip->protocol = IPPROTO_GRE_;
		ip->check = 0;
		__builtin_memcpy(&ip->saddr, d->src, 4);
		__builtin_memcpy(&ip->daddr, d->dst, 4);
		ip->check = ipv4_csum((const __u16 *)ip);
		gre = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) + GRE_HLEN > end)
			return count(HCT_CTR_NO_ROOM, TC_ACT_SHOT);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6 = bpf_htonl(6u << 28 | (__u32)in.tos << 20);
		ip6->payload_len = bpf_htons(GRE_HLEN + in.len);
		ip6->nexthdr = IPPROTO_GRE_;
		ip6->hop_limit = d->ttl;
		__builtin_memcpy(&ip6->saddr, d->src, 16);
		__builtin_memcpy(&ip6->daddr, d->dst, 16);
		gre = (void *)(ip6 + 1);
	}
	gre[0] = 0;
	gre[1] = bpf_htons(in.v6 ? ETH_P_IPV6 : ETH_P_IP);
	/* Encapsulated once: a redirect back into an egress hook must not wrap it again. */
	skb->mark = 0;
	count(HCT_CTR_ENCAPSULATED, 0);
	if (d->ifindex && d->ifindex != skb->ifindex)
		return bpf_redirect(d->ifindex, 0);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
