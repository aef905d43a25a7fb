/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The xdp mode's connection table, BPF side (included by bpf/xdp_fwd.bpf.c only): the userspace
 * table of core/conntrack.h in two arrays, one part per possible CPU, each written only by its
 * CPU. The same buckets, signatures, expiry ticks and state flags, and the same order of what a
 * new flow may take, so a SYN flood replaces only SYN-only entries and never an established
 * flow. What it leaves out is moving live flows to their other buckets to make room (the cuckoo
 * search): when both buckets of a flow are full of established flows, the first bucket's soonest
 * to expire is evicted. A flow whose packets come to another CPU (an RSS change, or on veth the
 * sending CPU) is looked for in the other CPUs' parts on a miss (ct_lookup_others). Lookup and
 * insert are global functions, which the verifier checks once each, not at every call. The maps'
 * layouts are bpf/xdp_fwd.h's; user space reads them with core/conntrack.h's own ct_peek.
 */
#ifndef MAGLEV_BPF_FWD_CT_H
#define MAGLEV_BPF_FWD_CT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "names.h"
#include "xdp_fwd.h"

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_RST 0x04u
#define TCP_ACK 0x10u

/* The connection table; its size as compiled is one bucket, the loader sets it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xdp_fwd_ct_bucket);
} fwd_ct_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_FWD_CT_WAYS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xdp_fwd_ct_entry);
} fwd_ct_entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_fwd_limit);
} fwd_limit SEC(".maps");

BPF_NAME_IS(fwd_ct_buckets, XDP_FWD_MAP_CT_BUCKETS);
BPF_NAME_IS(fwd_ct_entries, XDP_FWD_MAP_CT_ENTRIES);
BPF_NAME_IS(fwd_limit, XDP_FWD_MAP_LIMIT);

/* A frame's place in the connection table: this CPU's part, and the flow's first bucket. */
struct ct_place {
	__u32 base; /* this part's first bucket, in fwd_ct_buckets */
	__u32 n;    /* buckets of a part */
	__u32 b;    /* the flow's first bucket, in its part */
	__u16 sig;
};

/* A way holding a flow. */
struct ct_ref {
	struct xdp_fwd_ct_bucket *h;
	struct xdp_fwd_ct_entry *e;
	__u32 way;
};

static __always_inline int ct_expired(__u32 expires, __u32 now)
{
	return (__s32)(expires - now) <= 0;
}

/* ct_tcp_flags_after of the userspace table. */
static __always_inline __u8 ct_flags_after(__u8 fl, __u8 tcp_flags)
{
	if (tcp_flags & (TCP_FIN | TCP_RST))
		return XDP_FWD_CT_F_FIN;
	if ((tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return (fl & XDP_FWD_CT_F_FIN) ? XDP_FWD_CT_F_SYN : fl;
	return fl & (__u8)~XDP_FWD_CT_F_SYN;
}

static __always_inline __u32 ct_timeout(const struct xdp_fwd_config *c, __u8 proto, __u8 fl)
{
	if (proto != IPPROTO_TCP)
		return c->to_udp;
	if (fl & XDP_FWD_CT_F_FIN)
		return c->to_tcp_fin;
	return (fl & XDP_FWD_CT_F_SYN) ? c->to_tcp_syn : c->to_tcp;
}

/* ct_bucket_of, ct_sig_of and ct_other_bucket of the userspace table, for a part of n buckets. */
static __always_inline __u32 ct_bucket_of(__u64 hash, __u32 n)
{
	return (__u32)(((hash & 0xffffffffu) * (__u64)n) >> 32);
}

static __always_inline __u16 ct_sig_of(__u64 hash)
{
	__u16 s = (__u16)(hash >> 48);

	return s ? s : 1;
}

static __always_inline __u32 ct_other_bucket(__u32 b, __u16 sig, __u32 n)
{
	__u32 f = (__u32)(((__u64)(__u32)(sig * XDP_FWD_CT_OTHER_MIX) * n) >> 32);

	return f >= b ? f - b : f - b + n;
}

/* The header of bucket b of the part at base, or NULL. */
static __always_inline struct xdp_fwd_ct_bucket *ct_header(__u32 base, __u32 b)
{
	__u32 k = base + b;

	return bpf_map_lookup_elem(&fwd_ct_buckets, &k);
}

/* The entry of way w of bucket idx (a part's base plus the bucket), or NULL. */
static __always_inline struct xdp_fwd_ct_entry *ct_way(__u32 idx, __u32 w)
{
	__u32 k = idx * XDP_FWD_CT_WAYS + (w & (XDP_FWD_CT_WAYS - 1));

	return bpf_map_lookup_elem(&fwd_ct_entries, &k);
}

static __always_inline int key_eq(const struct xdp_fwd_key *a, const struct xdp_fwd_key *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
	        (a->w[3] ^ b->w[3]) | (a->w[4] ^ b->w[4])) == 0;
}

/* ct_find_way: the way of bucket idx (header h) holding live flow k, or -1. */
static __always_inline int ct_find_way(__u32 idx, const struct xdp_fwd_ct_bucket *h, __u16 sig,
                                       const struct xdp_fwd_key *k, __u32 now)
{
#pragma unroll
	for (int i = 0; i < (int)XDP_FWD_CT_WAYS; i++) {
		struct xdp_fwd_ct_entry *e;

		if (h->sig[i] != sig || ct_expired(h->expires[i], now))
			continue;
		e = ct_way(idx, (__u32)i);
		if (e && key_eq(&e->key, k))
			return i;
	}
	return -1;
}

/*
 * ct_lookup of the userspace table: flow k at place pl, live at tick now. Its slot in the part
 * (bucket * CT_WAYS + way), or -1. A global function (the verifier checks it once, not at every
 * call) of scalars and memory.
 */
__attribute__((noinline)) int fwd_ct_find(const struct ct_place *pl, const struct xdp_fwd_key *k,
                                          __u32 now)
{
	struct xdp_fwd_ct_bucket *h;
	__u32 b;
	int i;

	if (!pl || !k)
		return -1;
	b = pl->b;
	h = ct_header(pl->base, b);
	if (!h)
		return -1;
	i = ct_find_way(pl->base + b, h, pl->sig, k, now);
	if (i >= 0)
		return (int)(b * XDP_FWD_CT_WAYS) + i;
	if (!h->away)
		return -1;
	b = ct_other_bucket(b, pl->sig, pl->n);
	h = ct_header(pl->base, b);
	if (!h)
		return -1;
	i = ct_find_way(pl->base + b, h, pl->sig, k, now);
	return i < 0 ? -1 : (int)(b * XDP_FWD_CT_WAYS) + i;
}

/* The way of slot (fwd_ct_find's) of the part at base: true and *r, false if out of range. */
static __always_inline int ct_ref_of(__u32 base, int slot, struct ct_ref *r)
{
	__u32 b = (__u32)slot / XDP_FWD_CT_WAYS;

	r->way = (__u32)slot & (XDP_FWD_CT_WAYS - 1);
	r->h = ct_header(base, b);
	if (!r->h)
		return 0;
	r->e = ct_way(base + b, r->way);
	return r->e != 0;
}

/* fwd_ct_find of flow k at place pl: true and its way in *r. */
static __always_inline int ct_lookup(const struct ct_place *pl, const struct xdp_fwd_key *k,
                                     __u32 now, struct ct_ref *r)
{
	int slot = fwd_ct_find(pl, k, now);

	return slot >= 0 && ct_ref_of(pl->base, slot, r);
}

/* What the search of the other CPUs' parts (bpf_loop) looks for and finds. */
struct ct_search {
	const struct xdp_fwd_key *k;
	struct ct_place pl; /* the flow's place in the part searched */
	__u32 now, cpu;
	__u8 found;
	__u8 flags;
	__u32 expires, bref, secondary;
};

static long ct_search_part(__u64 cpu, void *ctx)
{
	struct ct_search *q = ctx;
	struct ct_ref r;
	int slot;

	if (cpu == q->cpu)
		return 0;
	q->pl.base = (__u32)cpu * q->pl.n;
	slot = fwd_ct_find(&q->pl, q->k, q->now);
	if (slot < 0 || !ct_ref_of(q->pl.base, slot, &r))
		return 0;
	q->found = 1;
	q->flags = r.h->flags[r.way];
	q->expires = r.h->expires[r.way];
	q->bref = r.e->bref;
	q->secondary = r.e->secondary;
	return 1;
}

/* Bit i set when way i of h is free: empty, or expired at tick now (ct_free_mask). */
static __always_inline __u32 ct_free_mask(const struct xdp_fwd_ct_bucket *h, __u32 now)
{
	__u32 m = 0;

#pragma unroll
	for (int i = 0; i < (int)XDP_FWD_CT_WAYS; i++)
		m |= (__u32)(h->sig[i] == 0 || ct_expired(h->expires[i], now)) << i;
	return m;
}

/* Bit i set when way i of h is SYN-only (ct_syn_mask). */
static __always_inline __u32 ct_syn_mask(const struct xdp_fwd_ct_bucket *h)
{
	__u32 m = 0;

#pragma unroll
	for (int i = 0; i < (int)XDP_FWD_CT_WAYS; i++)
		m |= (__u32)((h->flags[i] & XDP_FWD_CT_F_SYN) != 0) << i;
	return m;
}

/* The lowest way of mask m (not 0). */
static __always_inline __u32 ct_lowest(__u32 m)
{
	__u32 w = 0;

#pragma unroll
	for (int i = XDP_FWD_CT_WAYS - 1; i >= 0; i--)
		if (m & (1u << i))
			w = (__u32)i;
	return w;
}

/* Of the ways m (not 0) of h, the one that expires soonest after now (ct_soonest); *left. */
static __always_inline __u32 ct_soonest(const struct xdp_fwd_ct_bucket *h, __u32 m, __u32 now,
                                        __u32 *left)
{
	__u32 best = 0, lb = 0xffffffffu;

#pragma unroll
	for (int i = 0; i < (int)XDP_FWD_CT_WAYS; i++) {
		__u32 l = h->expires[i] - now;

		if ((m & (1u << i)) && l < lb) {
			best = (__u32)i;
			lb = l;
		}
	}
	*left = lb;
	return best;
}

/*
 * A new entry's content, in two words (fwd_ct_insert's arguments: a global function has five at
 * most, and a struct of them would cost the caller's stack, which XDP's 512 bytes bound).
 */
struct ct_new {
	const struct xdp_fwd_key *k;
	__u64 refs;  /* bref << 32 | secondary */
	__u64 state; /* expires << 8 | flags */
};

static __always_inline __u64 ct_refs(__u32 bref, __u32 secondary)
{
	return (__u64)bref << 32 | secondary;
}

static __always_inline __u64 ct_state(__u32 expires, __u8 flags)
{
	return (__u64)expires << 8 | flags;
}

/*
 * Writes entry v into way w of bucket bb (header hb) of the part pl, for a flow whose first
 * bucket is pl->b (header h1): the away count of the way's previous flow's first bucket goes
 * down if it lived away, that of h1 up if this one does.
 */
static __always_inline void ct_take(const struct ct_place *pl, struct xdp_fwd_ct_bucket *h1,
                                    __u32 bb, struct xdp_fwd_ct_bucket *hb, __u32 w,
                                    const struct ct_new *v)
{
	struct xdp_fwd_ct_entry *e;
	__u8 bit;

	w &= XDP_FWD_CT_WAYS - 1;
	bit = (__u8)(1u << w);
	e = ct_way(pl->base + bb, w);
	if (!e)
		return;
	if ((hb->second & bit) && hb->sig[w]) {
		struct xdp_fwd_ct_bucket *ho =
		    ct_header(pl->base, ct_other_bucket(bb, hb->sig[w], pl->n));

		if (ho && ho->away && ho->away != XDP_FWD_CT_AWAY_STICKY)
			ho->away--;
	}
	hb->second &= (__u8)~bit;
	if (bb != pl->b) {
		hb->second |= bit;
		if (h1->away != XDP_FWD_CT_AWAY_STICKY)
			h1->away++;
	}
	e->key = *v->k;
	e->bref = (__u32)(v->refs >> 32);
	e->secondary = (__u32)v->refs;
	hb->sig[w] = pl->sig;
	hb->expires[w] = (__u32)(v->state >> 8);
	hb->flags[w] = (__u8)v->state;
}

/* What evicting way w of h drops: XDP_FWD_CT_EVICTED_SYN or _ESTABLISHED. */
static __always_inline __u8 ct_evicts(const struct xdp_fwd_ct_bucket *h, __u32 w)
{
	return (h->flags[w & (XDP_FWD_CT_WAYS - 1)] & XDP_FWD_CT_F_SYN)
	           ? XDP_FWD_CT_EVICTED_SYN
	           : XDP_FWD_CT_EVICTED_ESTABLISHED;
}

/*
 * ct_insert of the userspace table without its cuckoo moves: flow v (not in the part) into the
 * part pl at tick now. A free way of its first bucket, then of its second; else the SYN-only way
 * of either that expires soonest; else the first bucket's way that expires soonest. A flow that
 * starts SYN-only takes a free or SYN-only way of its first bucket, then of its second, and else
 * is not inserted. What was dropped (XDP_FWD_CT_EVICTED_*, or 0 if nothing), or -1 if not
 * inserted. A global function, as fwd_ct_find.
 */
__attribute__((noinline)) int fwd_ct_insert(const struct ct_place *pl, const struct xdp_fwd_key *k,
                                            __u64 refs, __u64 state, __u32 now)
{
	const struct ct_new nv = {.k = k, .refs = refs, .state = state}, *v = &nv;
	struct xdp_fwd_ct_bucket *h1, *h2 = 0;
	__u32 m1, m2, s1, s2 = 0, b2, l1, l2, w1, w2;
	int evicted;

	if (!pl || !k)
		return -1;
	h1 = ct_header(pl->base, pl->b);
	if (!h1)
		return -1;
	evicted = 0;
	m1 = ct_free_mask(h1, now);
	if (m1) {
		ct_take(pl, h1, pl->b, h1, ct_lowest(m1), v);
		return evicted;
	}
	b2 = ct_other_bucket(pl->b, pl->sig, pl->n);
	if (b2 != pl->b)
		h2 = ct_header(pl->base, b2);
	s1 = ct_syn_mask(h1);
	if (state & XDP_FWD_CT_F_SYN) {
		if (s1) {
			w1 = ct_soonest(h1, s1, now, &l1);
			evicted = XDP_FWD_CT_EVICTED_SYN;
			ct_take(pl, h1, pl->b, h1, w1, v);
			return evicted;
		}
		if (!h2)
			return -1;
		m2 = ct_free_mask(h2, now);
		s2 = m2 ? 0 : ct_syn_mask(h2);
		if (!m2 && !s2)
			return -1;
		if (m2) {
			ct_take(pl, h1, b2, h2, ct_lowest(m2), v);
		} else {
			evicted = XDP_FWD_CT_EVICTED_SYN;
			ct_take(pl, h1, b2, h2, ct_soonest(h2, s2, now, &l2), v);
		}
		return evicted;
	}
	if (h2) {
		m2 = ct_free_mask(h2, now);
		if (m2) {
			ct_take(pl, h1, b2, h2, ct_lowest(m2), v);
			return evicted;
		}
		s2 = ct_syn_mask(h2);
	}
	if (s1 || s2) {
		w1 = s1 ? ct_soonest(h1, s1, now, &l1) : 0;
		w2 = s2 && h2 ? ct_soonest(h2, s2, now, &l2) : 0;
		evicted = XDP_FWD_CT_EVICTED_SYN;
		if (s1 && (!s2 || l1 <= l2))
			ct_take(pl, h1, pl->b, h1, w1, v);
		else if (h2)
			ct_take(pl, h1, b2, h2, w2, v);
		return evicted;
	}
	w1 = ct_soonest(h1, (1u << XDP_FWD_CT_WAYS) - 1, now, &l1);
	evicted = ct_evicts(h1, w1);
	ct_take(pl, h1, pl->b, h1, w1, v);
	return evicted;
}

/* The insert cap (ct_insert_allowed): true, counting the insert, if one may be made now. */
static __always_inline int ct_insert_allowed(const struct xdp_fwd_config *c, __u32 now)
{
	__u32 k = 0;
	struct xdp_fwd_limit *l;

	if (!c->max_inserts)
		return 1;
	l = bpf_map_lookup_elem(&fwd_limit, &k);
	if (!l)
		return 0;
	if (now - l->window_start >= c->window_ticks) {
		l->window_start = now;
		l->inserts = 0;
	}
	if (l->inserts >= c->max_inserts)
		return 0;
	l->inserts++;
	return 1;
}

/*
 * Flow k, which this CPU's part (pl) does not have, in the other CPUs' parts, copied into this
 * one's if found: true and its way in *r. Not for a bare SYN (bare_syn): it starts a flow, or
 * retransmits one whose first SYN came here too. At most XDP_FWD_CT_SEARCHES_MAX searches a
 * second; beyond, false and *limited set.
 */
static __always_inline int ct_lookup_others(const struct xdp_fwd_config *c,
                                            const struct ct_place *pl, const struct xdp_fwd_key *k,
                                            int bare_syn, __u32 cpu, __u32 now, struct ct_ref *r,
                                            __u8 *limited)
{
	struct ct_search q = {.k = k, .pl = *pl, .now = now, .cpu = cpu};
	__u32 n = c->ct_cpus < XDP_FWD_CT_CPUS_MAX ? c->ct_cpus : XDP_FWD_CT_CPUS_MAX, k0 = 0;
	struct xdp_fwd_limit *l;

	if (n < 2 || bare_syn)
		return 0;
	l = bpf_map_lookup_elem(&fwd_limit, &k0);
	if (!l)
		return 0;
	if (now - l->search_window_start >= c->window_ticks) {
		l->search_window_start = now;
		l->searches = 0;
	}
	if (l->searches >= XDP_FWD_CT_SEARCHES_MAX) {
		*limited = 1;
		return 0;
	}
	l->searches++;
	bpf_loop(n, ct_search_part, &q, 0);
	if (!q.found)
		return 0;
	if (fwd_ct_insert(pl, k, ct_refs(q.bref, q.secondary), ct_state(q.expires, q.flags), now) <
	    0)
		return 0;
	return ct_lookup(pl, k, now, r);
}

#endif
