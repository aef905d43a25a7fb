/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The xdp mode's XDP program: the userspace pipeline's forwarding decision for plain VIP TCP and
 * UDP, made here, and the frame sent back out (XDP_TX) GRE-encapsulated to its backend, byte for
 * byte as lb_process would send it. A plain packet: Ethernet with at most one 802.1Q tag, IPv4
 * without options or IPv6 without extension headers, not a fragment, a TCP or UDP header the
 * pipeline accepts, to a VIP, sent to our MAC. Every other frame, and every plain one whose
 * forwarding needs more than this (a source the pipeline refuses, an unresolved next hop, a
 * packet too big to encapsulate: the ICMP answer), is steered exactly as the afxdp mode's program
 * steers (bpf/steer.h): to the AF_XDP socket of its queue, where the userspace pipeline decides,
 * or to the kernel.
 *
 * The decision is the pipeline's (src/core/pipeline.c, choose): the flow hash (XXH3 over the
 * 40-byte flow key with the generation's secret, as core/flow.h; for the slot of a hash: source
 * VIP, over the key with its ports zero), the connection table (a hit
 * keeps its backend while that backend accepts the flow: same id and tag, in use, up, this VIP;
 * else the VIP's Maglev table slot hash % M, and a new entry), second chance (a new entry of a
 * TCP packet that is not a SYN carries the slot's previous owner).
 *
 * The connection table is bpf/fwd_ct.h's: the userspace table's, one part per CPU.
 * The maps are bpf/xdp_fwd.h's.
 */
#include "fwd_ct.h"
#include "steer.h"
#include "xdp_fwd.h"

#define FWD_ETH_HLEN      14u
#define FWD_IPV4_HLEN     20u
#define FWD_IPV6_HLEN     40u
#define FWD_GRE_HLEN      4u
#define FWD_SC_SHIM_HLEN  4u
#define FWD_TCP_HLEN      20u
#define FWD_UDP_HLEN      8u
#define GRE_PROTO_IPV4    0x0800u
#define GRE_PROTO_IPV6    0x86ddu
#define GRE_PROTO_SC      0x88b5u /* second chance: core/encap.h's GRE_PROTO_SC */
#define GRE_SC_VERSION    1u
#define IPPROTO_GRE_V     47u
#define IPV4_DF           0x4000u
#define IPV4_FRAG_BITS    0x3fffu /* MF and the offset */
#define BREF_NONE         0xffffu /* LB_BREF(LB_BACKEND_NONE, 0) */
#define ACCEPT(vip, bref) ((__u64)(__u16)(vip) << 32 | (__u32)(bref))

/* XXH3's constants (xxhash.h: XXH_PRIME64_1 and the avalanche multiplier). */
#define XXH_PRIME64_1   0x9E3779B185EBCA87ull
#define XXH_AVALANCHE_M 0x165667919E3779F9ull

/* The outcome of fwd_frame when it does not return an XDP action of its own. */
#define FWD_STEER (-1)
/* choose(): the slow path decides (a new flow from a refused source). */
#define FWD_CHOOSE_STEER 0x10000u

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xdp_fwd_config);
} fwd_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_FWD_GENS);
	__type(key, __u32);
	__type(value, struct xdp_fwd_gen);
} fwd_gens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDP_FWD_VIPS_MAX);
	__type(key, struct xdp_fwd_vip_key);
	__type(value, struct xdp_fwd_vip);
} fwd_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_FWD_GENS *XDP_FWD_IDS);
	__type(key, __u32);
	__type(value, struct xdp_fwd_backend);
} fwd_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_FWD_GENS *XDP_FWD_IDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} fwd_nexthops SEC(".maps");

/* A generation's slot array: its VIPs' tables one after another (xdp_fwd_vip.*_off). */
struct fwd_slot_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* each generation's own size (BPF_F_INNER_MAP) */
	__uint(map_flags, XDP_FWD_SLOTS_FLAGS);
	__type(key, __u32);
	__type(value, __u64); /* XDP_FWD_SLOTS_PER_ELEM ids */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XDP_FWD_GENS);
	__type(key, __u32);
	__array(values, struct fwd_slot_array);
} fwd_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_fwd_stats);
} fwd_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_FWD_IDS);
	__type(key, __u32);
	__type(value, struct xdp_fwd_bstats);
} fwd_bstats SEC(".maps");

BPF_NAME_IS(fwd_config, XDP_FWD_MAP_CONFIG);
BPF_NAME_IS(fwd_gens, XDP_FWD_MAP_GENS);
BPF_NAME_IS(fwd_vips, XDP_FWD_MAP_VIPS);
BPF_NAME_IS(fwd_backends, XDP_FWD_MAP_BACKENDS);
BPF_NAME_IS(fwd_nexthops, XDP_FWD_MAP_NEXTHOPS);
BPF_NAME_IS(fwd_slots, XDP_FWD_MAP_SLOTS);
BPF_NAME_IS(fwd_stats, XDP_FWD_MAP_STATS);
BPF_NAME_IS(fwd_bstats, XDP_FWD_MAP_BSTATS);

/* What the parse found in a plain packet. */
struct fwd_pkt {
	__u32 ip_off; /* IP header, from the start of the frame */
	__u32 ip_len; /* IPv4 total length / IPv6 40 + payload */
	__u8 family;  /* XDP_FAMILY_* */
	__u8 proto;   /* TCP / UDP */
	__u8 tcp_flags;
	__u8 tos; /* IPv4 TOS / IPv6 traffic class */
	__u16 id; /* IPv4 identification, host order; IPv6 0 */
	__u8 df;  /* IPv4 DF; IPv6 1 */
	__be16 dport;
	__u8 daddr[16];
	struct xdp_fwd_key key;
};

/* Counts in a frame's decision, added to fwd_stats only if the frame is decided here. */
struct fwd_counts {
	__u8 ct;             /* XDP_FWD_CT_HIT / MISS / RECHOSEN, or 0 */
	__u8 untracked;      /* XDP_FWD_CT_INSERT_LIMITED / SYN_UNTRACKED, or 0 */
	__u8 evicted;        /* XDP_FWD_CT_EVICTED_SYN / _ESTABLISHED, or 0 */
	__u8 flow;           /* a new flow was given to the backend */
	__u8 other;          /* the entry was found in another CPU's part */
	__u8 search_limited; /* a miss not searched for in the other parts (the budget is spent) */
};

/* fwd_stats[i] += 1 in this CPU's value st (NULL: none). */
static __always_inline void fwd_stat(struct xdp_fwd_stats *st, __u32 i)
{
	if (st && i < XDP_FWD_STAT_MAX)
		st->v[i] += 1;
}

/* The high and low halves of a * b, folded: XXH3_mul128_fold64 in 32-bit pieces. */
static __always_inline __u64 mul128_fold64(__u64 a, __u64 b)
{
	__u64 alo = (__u32)a, ahi = a >> 32, blo = (__u32)b, bhi = b >> 32;
	__u64 lolo = alo * blo, hilo = ahi * blo, lohi = alo * bhi, hihi = ahi * bhi;
	__u64 cross = (lolo >> 32) + (__u32)hilo + lohi;
	__u64 upper = (hilo >> 32) + (cross >> 32) + hihi;
	__u64 lower = (cross << 32) | (__u32)lolo;

	return lower ^ upper;
}

static __always_inline __u64 mix16(__u64 lo, __u64 hi, __u64 slo, __u64 shi)
{
	return mul128_fold64(lo ^ slo, hi ^ shi);
}

/*
 * XXH3_64bits_withSecret over the 40 key bytes (its 17..128-byte path): the four 16-byte reads
 * at 16, 8 (len - 32), 0 and 24 (len - 16) against secret bytes 32, 48, 0 and 16. The last word
 * is w4 in place of k->w[4], so that a source VIP's slot hashes k without ports at no copy.
 */
static __always_inline __u64 flow_hash(const struct xdp_fwd_key *k, __u64 w4, const __u64 *s)
{
	__u64 acc = XDP_FWD_FLOW_KEY_LEN * XXH_PRIME64_1;

	acc += mix16(k->w[2], k->w[3], s[4], s[5]);
	acc += mix16(k->w[1], k->w[2], s[6], s[7]);
	acc += mix16(k->w[0], k->w[1], s[0], s[1]);
	acc += mix16(k->w[3], w4, s[2], s[3]);
	acc ^= acc >> 37;
	acc *= XXH_AVALANCHE_M;
	acc ^= acc >> 32;
	return acc;
}

/* A packet's hashes. */
struct fwd_hashes {
	__u64 ct;        /* the connection table's: the 5-tuple's */
	__u64 slot;      /* its Maglev slot's: the VIP's hash mode */
	__u64 prev_slot; /* its slot in the previous table: the mode flows were hashed with then */
};

/* The hashes of key k for a VIP of flags (XDP_FWD_VIP_*), under secret s. */
static __always_inline void fwd_hashes_of(struct fwd_hashes *hs, const struct xdp_fwd_key *k,
                                          __u8 flags, const __u64 *s)
{
	__u64 src = 0;

	hs->ct = flow_hash(k, k->w[4], s);
	if (flags & (XDP_FWD_VIP_HASH_SOURCE | XDP_FWD_VIP_PREV_HASH_SOURCE))
		src = flow_hash(k, k->w[4] & ~XDP_FWD_KEY_PORTS, s);
	hs->slot = (flags & XDP_FWD_VIP_HASH_SOURCE) ? src : hs->ct;
	hs->prev_slot = (flags & XDP_FWD_VIP_PREV_HASH_SOURCE) ? src : hs->ct;
}

static __always_inline const struct xdp_fwd_backend *backend_of(__u32 gen, __u32 id)
{
	__u32 k = gen * XDP_FWD_IDS + (id & (XDP_FWD_IDS - 1));

	return bpf_map_lookup_elem(&fwd_backends, &k);
}

/* backend_usable of the pipeline: ref's backend takes flows of VIP vip. */
static __always_inline int backend_usable(const struct xdp_fwd_gen *g, __u32 gen, __u32 ref,
                                          __u16 vip)
{
	__u32 id = ref & 0xffffu;
	const struct xdp_fwd_backend *b;

	if (id >= g->n_backends)
		return 0;
	b = backend_of(gen, id);
	return b && b->accept == ACCEPT(vip, ref);
}

/* The backend id in slot i of the generation's slot array, XDP_FWD_ID_NONE if none. */
static __always_inline __u32 slot_id(void *slots, __u32 i)
{
	__u32 k = i / XDP_FWD_SLOTS_PER_ELEM;
	__u64 *e = bpf_map_lookup_elem(slots, &k);

	return e ? (__u16)(*e >> (i % XDP_FWD_SLOTS_PER_ELEM * 16)) : XDP_FWD_ID_NONE;
}

/* secondary_of of the pipeline: the reference a new entry of the flow, given id, keeps. */
static __always_inline __u32 secondary_of(const struct fwd_pkt *p, const struct xdp_fwd_vip *v,
                                          void *slots, __u32 gen, __u64 hash, __u32 id)
{
	const struct xdp_fwd_backend *b, *pb;
	__u32 sec;

	if (!(v->flags & XDP_FWD_VIP_SECOND_CHANCE) || (p->tcp_flags & TCP_SYN) ||
	    p->proto != IPPROTO_TCP || !v->prev_size)
		return BREF_NONE;
	sec = slot_id(slots, v->prev_off + (__u32)(hash % v->prev_size));
	if (sec == id || sec == XDP_FWD_ID_NONE)
		return BREF_NONE;
	b = backend_of(gen, sec);
	pb = backend_of(gen, id);
	if (!b || !pb || !b->up || b->family != pb->family)
		return BREF_NONE;
	return (__u32)b->tag << 16 | sec;
}

/* secondary_usable: the secondary id the packet carries from reference sref, or none. */
static __always_inline __u32 secondary_usable(const struct xdp_fwd_gen *g, __u32 gen, __u32 sref,
                                              __u16 vip)
{
	if (sref == BREF_NONE || !backend_usable(g, gen, sref, vip))
		return XDP_FWD_ID_NONE;
	return sref & 0xffffu;
}

/*
 * source_check of the pipeline: true if no client can have the packet's source (a martian, or
 * the VIP itself). Such a new flow is the slow path's to drop, under its counter.
 */
static __always_inline int source_refused(const struct fwd_pkt *p)
{
	__u64 s0 = p->key.w[0], s1 = p->key.w[1];
	__u8 b0 = (__u8)s0;

	if (p->family == XDP_FAMILY_IPV4) {
		__u32 s4 = (__u32)s0;

		return b0 == 0 || b0 == 127 || (b0 & 0xf0) == 0xe0 || s4 == 0xffffffffu ||
		       s4 == (__u32)p->key.w[2];
	}
	if (b0 == 0xff ||
	    (s0 == 0 && ((__builtin_bswap64(s1) >> 32) == 0xffffu || __builtin_bswap64(s1) <= 1)))
		return 1;
	return s0 == p->key.w[2] && s1 == p->key.w[3];
}

/*
 * The backend of the flow, as the pipeline's choose(): its id, XDP_FWD_ID_NONE if none, or
 * FWD_CHOOSE_STEER for the slow path; *sec the secondary the packet carries.
 */
static __always_inline __u32 choose(const struct xdp_fwd_config *c, const struct xdp_fwd_gen *g,
                                    __u32 gen, const struct xdp_fwd_vip *v, void *slots,
                                    const struct fwd_pkt *p, const struct fwd_hashes *hs, __u32 now,
                                    __u32 *sec, struct fwd_counts *n)
{
	const __u64 hash = hs->slot, ct_hash = hs->ct;
	__u32 cpu = bpf_get_smp_processor_id();
	struct ct_place pl = {.base = cpu * c->ct_buckets,
	                      .n = c->ct_buckets,
	                      .b = ct_bucket_of(ct_hash, c->ct_buckets),
	                      .sig = ct_sig_of(ct_hash)};
	const struct xdp_fwd_backend *b;
	struct ct_ref r;
	__u32 id, sref;
	int evicted;
	__u8 fl;

	*sec = XDP_FWD_ID_NONE;
	if (ct_lookup(&pl, &p->key, now, &r) ||
	    (n->other = ct_lookup_others(c, &pl, &p->key,
	                                 p->proto == IPPROTO_TCP &&
	                                     (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN,
	                                 cpu, now, &r, &n->search_limited))) {
		__u32 bref = r.e->bref;

		fl = r.h->flags[r.way];
		if (p->proto == IPPROTO_TCP)
			fl = ct_flags_after(fl, p->tcp_flags);
		if (backend_usable(g, gen, bref, v->index)) {
			n->ct = XDP_FWD_CT_HIT;
			sref = r.e->secondary;
		} else {
			id = slot_id(slots, v->table_off + (__u32)(hash % v->table_size));
			if (id == XDP_FWD_ID_NONE)
				return id;
			b = backend_of(gen, id);
			if (!b)
				return XDP_FWD_ID_NONE;
			n->ct = XDP_FWD_CT_RECHOSEN;
			n->flow = 1;
			bref = (__u32)b->tag << 16 | id;
			sref = secondary_of(p, v, slots, gen, hs->prev_slot, id);
			r.e->bref = bref;
			r.e->secondary = sref;
		}
		r.h->flags[r.way] = fl;
		r.h->expires[r.way] = now + ct_timeout(c, p->proto, fl) + 1;
		*sec = secondary_usable(g, gen, sref, v->index);
		return bref & 0xffffu;
	}
	if (source_refused(p))
		return FWD_CHOOSE_STEER;
	n->ct = XDP_FWD_CT_MISS;
	id = slot_id(slots, v->table_off + (__u32)(hash % v->table_size));
	if (id == XDP_FWD_ID_NONE)
		return id;
	sref = secondary_of(p, v, slots, gen, hs->prev_slot, id);
	*sec = secondary_usable(g, gen, sref, v->index);
	if (!ct_insert_allowed(c, now)) {
		n->untracked = XDP_FWD_CT_INSERT_LIMITED;
		return id;
	}
	b = backend_of(gen, id);
	if (!b)
		return XDP_FWD_ID_NONE;
	fl = p->proto == IPPROTO_TCP ? ct_flags_after(XDP_FWD_CT_F_SYN, p->tcp_flags) : 0;
	evicted = fwd_ct_insert(&pl, &p->key, ct_refs((__u32)b->tag << 16 | id, sref),
	                        ct_state(now + ct_timeout(c, p->proto, fl) + 1, fl), now);
	if (evicted < 0) {
		n->untracked = XDP_FWD_CT_SYN_UNTRACKED;
		return id;
	}
	n->evicted = (__u8)evicted;
	n->flow = 1;
	return id;
}

/*
 * Parses the frame of ctx as a plain packet (see the top of the file) sent to our MAC (vc's) into
 * p: 0, or -1 for any other frame. The checks are the pipeline's, so a frame it would drop is never
 * plain.
 */
static __always_inline int fwd_parse(struct xdp_md *ctx, const struct xdp_vip_config *vc,
                                     struct fwd_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u8 *l4;
	__u32 avail;
	__be16 proto;

	if (l3 > end || !mac_is(eth, vc))
		return -1;
	proto = eth->h_proto;
	p->ip_off = FWD_ETH_HLEN;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return -1;
		proto = vh->proto;
		l3 = vh + 1;
		p->ip_off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end || *(__u8 *)ip != 0x45)
			return -1;
		p->ip_len = bpf_ntohs(ip->tot_len);
		if (p->ip_len < FWD_IPV4_HLEN || p->ip_len > end - l3 ||
		    (ip->frag_off & bpf_htons(IPV4_FRAG_BITS)))
			return -1;
		p->family = XDP_FAMILY_IPV4;
		p->proto = ip->protocol;
		p->tos = ip->tos;
		p->id = bpf_ntohs(ip->id);
		p->df = (ip->frag_off & bpf_htons(IPV4_DF)) != 0;
		p->key.w[0] = ip->saddr;
		p->key.w[1] = 0;
		p->key.w[2] = ip->daddr;
		p->key.w[3] = 0;
		__builtin_memset(p->daddr, 0, sizeof(p->daddr));
		__builtin_memcpy(p->daddr, &ip->daddr, 4);
		l4 = (__u8 *)(ip + 1);
		avail = p->ip_len - FWD_IPV4_HLEN;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u8 *h = l3;

		if ((void *)(ip6 + 1) > end || (h[0] >> 4) != 6)
			return -1;
		avail = bpf_ntohs(ip6->payload_len);
		p->ip_len = FWD_IPV6_HLEN + avail;
		if (p->ip_len > end - l3)
			return -1;
		p->family = XDP_FAMILY_IPV6;
		p->proto = ip6->nexthdr;
		p->tos = (__u8)(h[0] << 4 | h[1] >> 4);
		p->id = 0;
		p->df = 1;
		__builtin_memcpy(&p->key.w[0], h + 8, 8);
		__builtin_memcpy(&p->key.w[1], h + 16, 8);
		__builtin_memcpy(&p->key.w[2], h + 24, 8);
		__builtin_memcpy(&p->key.w[3], h + 32, 8);
		__builtin_memcpy(p->daddr, h + 24, 16);
		l4 = (__u8 *)(ip6 + 1);
	} else {
		return -1;
	}
	if (p->proto == IPPROTO_TCP) {
		__u32 doff;

		if (avail < FWD_TCP_HLEN || (void *)(l4 + FWD_TCP_HLEN) > end)
			return -1;
		doff = (__u32)(l4[12] >> 4) * 4u;
		if (doff < FWD_TCP_HLEN || doff > avail)
			return -1;
		p->tcp_flags = l4[13];
	} else if (p->proto == IPPROTO_UDP) {
		__u32 ulen;

		if (avail < FWD_UDP_HLEN || (void *)(l4 + FWD_UDP_HLEN) > end)
			return -1;
		ulen = (__u32)l4[4] << 8 | l4[5];
		if (ulen < FWD_UDP_HLEN || ulen > avail)
			return -1;
		p->tcp_flags = 0;
	} else {
		return -1;
	}
	{
		__u16 sport, dport;

		__builtin_memcpy(&sport, l4, 2);
		__builtin_memcpy(&dport, l4 + 2, 2);
		p->dport = dport;
		/* Bytes 32..39 of the key: ports (network order), protocol, family, zero. */
		p->key.w[4] = (__u64)sport | (__u64)dport << 16 | (__u64)p->proto << 32 |
		              (__u64)p->family << 40;
	}
	return 0;
}

static __always_inline void store_be32(__u8 *p, __u32 v)
{
	v = bpf_htonl(v);
	__builtin_memcpy(p, &v, 4);
}

/*
 * gre_encap_hl of core/encap.h: the frame becomes Ethernet (to mac, from src) / the outer header
 * of b (hl bytes: 20 or 40) / GRE / with sec (shim > 0) the second-chance shim naming it / the
 * inner IP packet, without the tag and the Ethernet padding it came with. 0, or -1 if the frame
 * cannot be resized (then it may have lost its padding, nothing else).
 */
static __always_inline int encap(struct xdp_md *ctx, const struct fwd_pkt *p,
                                 const struct xdp_fwd_backend *b, const struct xdp_fwd_backend *sec,
                                 __u64 mac, const __u8 *src, const __u32 hl, const __u32 shim)
{
	const __u32 need = FWD_ETH_HLEN + hl + FWD_GRE_HLEN + shim;
	__u32 plen = FWD_GRE_HLEN + shim + p->ip_len;
	__u32 inner = p->family == XDP_FAMILY_IPV4 ? GRE_PROTO_IPV4 : GRE_PROTO_IPV6;
	__u32 len = ctx->data_end - ctx->data, want = p->ip_off + p->ip_len;
	__u8 *d, *g;
	void *end;

	if (len > want && bpf_xdp_adjust_tail(ctx, -(int)(len - want)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, (int)p->ip_off - (int)need))
		return -1;
	d = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if ((void *)(d + need) > end)
		return -1;
	d[0] = (__u8)(mac >> 40);
	d[1] = (__u8)(mac >> 32);
	d[2] = (__u8)(mac >> 24);
	d[3] = (__u8)(mac >> 16);
	d[4] = (__u8)(mac >> 8);
	d[5] = (__u8)mac;
	__builtin_memcpy(d + 6, src, 6);
	__builtin_memcpy(d + FWD_ETH_HLEN, b->outer, hl);
	if (hl == FWD_IPV4_HLEN) {
		__u32 w0 = 0x4500u << 16 | (__u32)p->tos << 16 | (hl + plen);
		__u32 w1 = (__u32)p->id << 16 | (p->df ? IPV4_DF : 0);
		/* As the pipeline sums: 32-bit words, folded (the same one's complement sum). */
		__u64 sum = (__u64)b->outer_sum + w0 + w1;
		__u32 s32;
		__u16 c;

		sum = (sum & 0xffffffffu) + (sum >> 32);
		s32 = (__u32)sum + (__u32)(sum >> 32);
		s32 = (s32 & 0xffffu) + (s32 >> 16);
		s32 = (s32 & 0xffffu) + (s32 >> 16);
		c = bpf_htons((__u16)~s32);
		d[12] = 0x08;
		d[13] = 0x00;
		store_be32(d + 14, w0);
		store_be32(d + 18, w1);
		__builtin_memcpy(d + 24, &c, 2);
	} else {
		d[12] = 0x86;
		d[13] = 0xdd;
		store_be32(d + 14, 6u << 28 | (__u32)p->tos << 20);
		d[18] = (__u8)(plen >> 8);
		d[19] = (__u8)plen;
	}
	g = d + FWD_ETH_HLEN + hl;
	if (shim) {
		store_be32(g, GRE_PROTO_SC);
		store_be32(g + FWD_GRE_HLEN, GRE_SC_VERSION << 28 | inner);
		__builtin_memcpy(g + FWD_GRE_HLEN + FWD_SC_SHIM_HLEN, sec->addr,
		                 shim - FWD_SC_SHIM_HLEN);
	} else {
		store_be32(g, inner);
	}
	return 0;
}

/* encap for b's family, with the shim when sec is not NULL. */
static __always_inline int encap_to(struct xdp_md *ctx, const struct fwd_pkt *p,
                                    const struct xdp_fwd_backend *b,
                                    const struct xdp_fwd_backend *sec, __u64 mac, const __u8 *src)
{
	if (b->family == XDP_FAMILY_IPV4) {
		if (sec)
			return encap(ctx, p, b, sec, mac, src, FWD_IPV4_HLEN, FWD_SC_SHIM_HLEN + 4);
		return encap(ctx, p, b, 0, mac, src, FWD_IPV4_HLEN, 0);
	}
	if (sec)
		return encap(ctx, p, b, sec, mac, src, FWD_IPV6_HLEN, FWD_SC_SHIM_HLEN + 16);
	return encap(ctx, p, b, 0, mac, src, FWD_IPV6_HLEN, 0);
}

/* Adds what the decision counted (the frame is decided here). */
static __always_inline void count_decision(struct xdp_fwd_stats *st, const struct fwd_counts *n)
{
	fwd_stat(st, XDP_FWD_RX_FRAMES);
	if (n->ct)
		fwd_stat(st, n->ct);
	if (n->untracked)
		fwd_stat(st, n->untracked);
	if (n->evicted)
		fwd_stat(st, n->evicted);
	if (n->other)
		fwd_stat(st, XDP_FWD_CT_OTHER_CPU);
	if (n->search_limited)
		fwd_stat(st, XDP_FWD_CT_SEARCH_LIMITED);
}

/* Forwards a plain VIP packet: an XDP action, or FWD_STEER for steering to decide. */
static __always_inline int fwd_frame(struct xdp_md *ctx)
{
	__u32 k0 = 0, gen, id, sid, nk, bk;
	const struct xdp_fwd_config *c = bpf_map_lookup_elem(&fwd_config, &k0);
	const struct xdp_vip_config *vc = bpf_map_lookup_elem(&config_map, &k0);
	const struct xdp_fwd_backend *b, *sb = 0;
	const struct xdp_fwd_gen *g;
	const struct xdp_fwd_vip *v;
	struct xdp_fwd_bstats *bs;
	struct xdp_fwd_stats *st;
	struct xdp_fwd_vip_key vk;
	struct fwd_counts n = {};
	struct fwd_pkt p;
	struct fwd_hashes hs;
	__u64 *mac;
	void *slots;

	if (!c || !vc || !c->ct_buckets || fwd_parse(ctx, vc, &p))
		return FWD_STEER;
	gen = c->gen & 1;
	__builtin_memcpy(vk.addr, p.daddr, 16);
	vk.family = p.family;
	vk.proto = p.proto;
	vk.port = p.dport;
	vk.gen = gen;
	v = bpf_map_lookup_elem(&fwd_vips, &vk);
	if (!v) {
		vk.port = 0;
		v = bpf_map_lookup_elem(&fwd_vips, &vk);
	}
	if (!v || !v->table_size)
		return FWD_STEER;
	g = bpf_map_lookup_elem(&fwd_gens, &gen);
	slots = bpf_map_lookup_elem(&fwd_slots, &gen);
	if (!g || !slots)
		return FWD_STEER;
	st = bpf_map_lookup_elem(&fwd_stats, &k0);
	fwd_hashes_of(&hs, &p.key, v->flags, g->secret);
	id = choose(c, g, gen, v, slots, &p, &hs,
	            (__u32)(bpf_ktime_get_coarse_ns() >> XDP_FWD_TICK_SHIFT), &sid, &n);
	if (id == FWD_CHOOSE_STEER) {
		fwd_stat(st, XDP_FWD_SLOW_SOURCE);
		return FWD_STEER;
	}
	if (id == XDP_FWD_ID_NONE) {
		count_decision(st, &n);
		fwd_stat(st, XDP_FWD_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	b = backend_of(gen, id);
	if (!b)
		return FWD_STEER;
	nk = gen * XDP_FWD_IDS + (b->nexthop & (XDP_FWD_IDS - 1));
	mac = bpf_map_lookup_elem(&fwd_nexthops, &nk);
	if (!mac || !(*mac & XDP_FWD_NH_VALID) || !b->has_source) {
		fwd_stat(st, XDP_FWD_SLOW_NEXTHOP);
		return FWD_STEER;
	}
	if (p.ip_len > b->inner_mtu) {
		fwd_stat(st, XDP_FWD_SLOW_TOO_BIG);
		return FWD_STEER;
	}
	if (sid != XDP_FWD_ID_NONE) {
		sb = backend_of(gen, sid);
		if (!sb)
			return FWD_STEER;
	}
	if (encap_to(ctx, &p, b, sb, *mac, vc->mac)) {
		fwd_stat(st, XDP_FWD_SLOW_HEADROOM);
		return FWD_STEER;
	}
	count_decision(st, &n);
	if (sb)
		fwd_stat(st, XDP_FWD_TX_SECOND_CHANCE);
	fwd_stat(st, b->family == XDP_FAMILY_IPV4 ? XDP_FWD_TX_GRE_IPV4 : XDP_FWD_TX_GRE_IPV6);
	bk = id;
	bs = bpf_map_lookup_elem(&fwd_bstats, &bk);
	if (bs) {
		bs->packets += 1;
		bs->bytes += p.ip_len;
		bs->flows += n.flow;
	}
	return XDP_TX;
}

SEC(XDP_FWD_SEC)
int xdp_fwd(struct xdp_md *ctx)
{
	int rc = fwd_frame(ctx);

	return rc == FWD_STEER ? steer_frame(ctx) : rc;
}
BPF_NAME_IS(xdp_fwd, XDP_FWD_PROG_NAME);

char _license[] SEC("license") = "GPL";
