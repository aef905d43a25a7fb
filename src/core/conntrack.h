/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection table of one worker: a fixed-size hash table of flows to backend references, with
 * per-state timeouts. A flow may live in either of two 8-way buckets (two-choice, partial-key
 * cuckoo hashing): its first bucket, which its flow hash gives, and its second, which the first
 * and its signature give. A new flow takes a free or expired way of its first bucket, else of its
 * second; when both are full, live flows are moved to their other buckets to make room (a bounded
 * search), and only when none can be is one evicted: a SYN-only entry before any other, the one
 * closest to expiry first (ct_insert has the whole order, and what a SYN-only flow may take). Up
 * to 90% load no live flow is evicted (bench_conntrack; docs/pipeline.md has the figures).
 * Allocated once at creation; no allocation on the packet path; a lookup reads one bucket header
 * (two for the few flows away from their first bucket) and the entry. Single writer (its
 * worker); see ct_peek for readers on other threads. Optionally at most so many new entries a
 * second (ct_params.max_inserts).
 */
#ifndef MAGLEV_CORE_CONNTRACK_H
#define MAGLEV_CORE_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/flow.h"
#include "core/pkt.h"

#define CT_WAYS        8u         /* entries per bucket */
#define CT_ENTRIES_MIN CT_WAYS    /* smallest table, flows */
#define CT_ENTRIES_MAX (1u << 28) /* largest table, flows (~15 GiB) */
#define CT_TICK_SHIFT  20u        /* a tick is 2^20 ns (~1.05 ms): the unit of expiry times */
/*
 * Making room for a new flow when both its buckets are full: a breadth-first search for a free
 * way among the other buckets of the flows in them (depth 1: 2 x 8 buckets), then among those
 * buckets' flows' other buckets (depth 2), reading at most CT_CUCKOO_PROBES bucket headers
 * (prefetched as they are queued) and moving at most CT_CUCKOO_DEPTH flows: it bounds the work of
 * one insert, and only an insert whose two buckets are full searches. Filling a 2M-flow table
 * with distinct flows, no live flow is evicted up to 90% load and 0.003% of the inserts evict up
 * to 95%; with depth 1 alone, 0.018% and 0.32% (bench_conntrack).
 */
#define CT_CUCKOO_DEPTH  2u  /* flows one insert may move */
#define CT_CUCKOO_PROBES 48u /* bucket headers one insert may read while searching */
/*
 * After a search found no room, that many of the next inserts that would search evict at once
 * instead, doubling after each failure in a row up to this, and none after a success: in a full
 * table (a flood of new flows that are not SYNs) searches all fail, and 1 in 257 costs ~4 ns an
 * insert where every one would cost ~1 us; at 95% load failures are rare and isolated.
 */
#define CT_CUCKOO_BACKOFF_MAX 256u /* inserts */
/*
 * Evicting or moving a flow that lives in its second bucket takes one from the away count of its
 * first, a header no lookup of this insert read: the decrement waits until this many more are
 * pending, its header prefetched meanwhile, instead of stalling on a cache miss (until then the
 * count is one too high: a lookup may read a second bucket for nothing, never miss a flow).
 */
#define CT_AWAY_DEFER 16u /* decrements */
/* Spreads a 16-bit signature over 32 bits for ct_other_bucket (odd: 2^32 / golden ratio). */
#define CT_OTHER_MIX 0x9e3779b1u
/* ct_bucket.away saturates here and then stays: too many to count, look in second buckets. */
#define CT_AWAY_STICKY UINT16_MAX

/*
 * Entry state flags (TCP only; other protocols keep 0). At most one is set: none is an
 * established flow. We see only client -> VIP, so the handshake's last step we see is the
 * client's ACK: that (or any packet that is not a bare SYN) promotes a SYN-only entry.
 */
#define CT_F_FIN 0x01u /* FIN or RST seen: tcp_fin timeout */
#define CT_F_SYN 0x02u /* SYN-only, bare SYNs seen: tcp_syn timeout, evicted first */

/*
 * A bucket header: one cache line with the signatures (16 hash bits; 0 = empty way), expiry ticks
 * and flags of its 8 ways, so a lookup reads this line and then only the matching entry; and what
 * tells a lookup whether to look in second buckets too. away counts the ways of other buckets
 * holding a flow whose first bucket is this one (live or expired, until the way is reused); bit i
 * of second is set when way i holds a flow whose first bucket is another (this is its second).
 */
struct ct_bucket {
	uint16_t sig[CT_WAYS];
	uint32_t expires[CT_WAYS]; /* tick from which the way is free (compared modulo 2^32) */
	uint8_t flags[CT_WAYS];
	uint16_t away;
	uint8_t second;
	uint8_t spare[5];
};

/*
 * A flow: its full key (never two flows confused), its backend reference (LB_BREF) and the
 * reference of the secondary its packets carry (second chance; the caller's to set, like bref).
 */
struct ct_entry {
	struct lb_flow_key key;
	uint32_t bref;
	uint32_t secondary;
};

_Static_assert(sizeof(struct ct_bucket) == 64, "bucket header is one cache line");
_Static_assert(sizeof(struct ct_entry) == 48, "entry size");

struct ct_params {
	uint32_t tcp, tcp_fin, tcp_syn, udp, other; /* timeouts, seconds */
	uint32_t max_inserts; /* new entries a second (see ct_insert); 0 = unlimited */
};

struct ct_table {
	struct ct_bucket *buckets; /* n_buckets headers, 64-byte aligned */
	struct ct_entry *entries;  /* n_buckets * CT_WAYS entries */
	uint32_t n_buckets;
	uint32_t to_tcp, to_tcp_fin, to_tcp_syn, to_udp, to_other; /* ticks */
	uint32_t max_inserts;          /* entries a second; 0 = unlimited */
	uint32_t window_ticks;         /* one second in ticks: the window max_inserts counts in */
	uint32_t window_start;         /* tick the current window began */
	uint32_t window_inserts;       /* entries made in it */
	uint32_t search_backoff;       /* see CT_CUCKOO_BACKOFF_MAX: the current length, 0 = none */
	uint32_t search_skip;          /* inserts left that evict without searching */
	uint32_t defer[CT_AWAY_DEFER]; /* buckets whose away is one too high (CT_AWAY_DEFER) */
	uint32_t defer_head, defer_n;  /* the oldest of them, and how many */
};

/* Bytes the table takes per flow it can hold, headers included. */
#define CT_BYTES_PER_FLOW ((sizeof(struct ct_bucket) + CT_WAYS * sizeof(struct ct_entry)) / CT_WAYS)

/* Allocates a table for at least entries flows (rounded up to whole buckets). NULL on failure. */
struct ct_table *ct_create(uint32_t entries, const struct ct_params *p);
void ct_destroy(struct ct_table *t);

/* Number of flows the table holds at most. */
static inline uint32_t ct_capacity(const struct ct_table *t)
{
	return t->n_buckets * CT_WAYS;
}

/*
 * Ticks wrap every 2^32 ticks (~52 days); expiry is compared as a signed difference, so timeouts
 * up to ~26 days are exact. An entry left untouched for a multiple of ~52 days may look live
 * again: harmless, as a hit is only used when its backend is still valid for the flow.
 */
static inline uint32_t ct_tick(uint64_t now_ns)
{
	return (uint32_t)(now_ns >> CT_TICK_SHIFT);
}

/* s seconds in ticks, rounded up: how the table turns its timeouts (the kernel's does alike). */
static inline uint32_t ct_secs_to_ticks(uint32_t s)
{
	uint64_t ns = (uint64_t)s * 1000000000ull;
	uint64_t tick = 1ull << CT_TICK_SHIFT;

	return (uint32_t)((ns + tick - 1) / tick);
}

static inline bool ct_expired(uint32_t expires, uint32_t now)
{
	return (int32_t)(expires - now) <= 0;
}

/* A flow's first bucket: from the low 32 bits of its flow hash. */
static inline uint32_t ct_bucket_of(const struct ct_table *t, uint64_t hash)
{
	return (uint32_t)(((hash & 0xffffffffu) * (uint64_t)t->n_buckets) >> 32);
}

/* A flow's signature: the top 16 bits of its flow hash (independent of its first bucket). */
static inline uint16_t ct_sig_of(uint64_t hash)
{
	uint16_t s = (uint16_t)(hash >> 48);
	return s ? s : 1;
}

/*
 * The other bucket of a flow with signature sig in bucket b: (f(sig) - b) mod n_buckets, with f
 * a hash of the signature onto 0..n_buckets-1. It is an involution (the other bucket of the other
 * bucket is b), so an entry's other bucket comes from where it is and its signature alone, without
 * its key or flow hash, for any bucket count (b XOR f(sig) would need a power of two, and so up to
 * twice the memory). When it is b itself (about one flow in n_buckets), the flow has one bucket.
 */
static inline uint32_t ct_other_bucket(const struct ct_table *t, uint32_t b, uint16_t sig)
{
	uint32_t f = (uint32_t)(((uint64_t)(uint32_t)(sig * CT_OTHER_MIX) * t->n_buckets) >> 32);

	return f >= b ? f - b : f - b + t->n_buckets;
}

/*
 * A prefetch the compiler may not drop: GCC deletes __builtin_prefetch in loops whose results are
 * otherwise unused (observed for ct_prefetch_entries), so on x86 it is an asm volatile.
 */
static inline void ct_prefetch_line(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/*
 * Where a flow lives: its first bucket and way signature, both from its flow hash; the packet path
 * computes them once per packet and keeps them for the prefetches and the lookup.
 */
struct ct_place {
	struct ct_bucket *h; /* the first bucket's header */
	struct ct_entry *e;  /* its CT_WAYS entries */
	uint16_t sig;
};

static inline struct ct_place ct_place_of(const struct ct_table *t, uint64_t hash)
{
	uint32_t b = ct_bucket_of(t, hash);

	return (struct ct_place){&t->buckets[b], &t->entries[(uint64_t)b * CT_WAYS],
	                         ct_sig_of(hash)};
}

/* The second bucket of the flow at place pl (its index is not kept: only misses need it). */
static inline uint32_t ct_place_other(const struct ct_table *t, struct ct_place pl)
{
	return ct_other_bucket(t, (uint32_t)(pl.h - t->buckets), pl.sig);
}

/* Starts loading the first bucket header of place pl. */
static inline void ct_prefetch(struct ct_place pl)
{
	ct_prefetch_line(pl.h);
}

/* Bit i set when way i of h has signature sig (one SSE2 compare of the 8 signatures). */
static inline uint32_t ct_sig_match(const struct ct_bucket *h, uint16_t sig)
{
#if defined(__SSE2__)
	__m128i v = _mm_loadu_si128((const __m128i *)h->sig);
	__m128i eq = _mm_cmpeq_epi16(v, _mm_set1_epi16((short)sig));

	return (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128()));
#else
	uint32_t m = 0;

	for (unsigned i = 0; i < CT_WAYS; i++)
		m |= (uint32_t)(h->sig[i] == sig) << i;
	return m;
#endif
}

/* Starts loading both lines of entry e (48 bytes straddle two lines for half the ways). */
static inline void ct_prefetch_entry(const struct ct_entry *e)
{
	ct_prefetch_line(e);
	ct_prefetch_line((const char *)e + sizeof(struct ct_entry) - 1);
}

/* Bit i set when way i of h is free: empty, or expired at tick now. */
static inline uint32_t ct_free_mask(const struct ct_bucket *h, uint32_t now)
{
#if defined(__SSE2__)
	__m128i vnow = _mm_set1_epi32((int)now);
	__m128i lo = _mm_sub_epi32(_mm_loadu_si128((const __m128i *)h->expires), vnow);
	__m128i hi = _mm_sub_epi32(_mm_loadu_si128((const __m128i *)h->expires + 1), vnow);
	/* Live: expires - now > 0 as a signed difference (ct_expired). */
	__m128i live = _mm_packs_epi32(_mm_cmpgt_epi32(lo, _mm_setzero_si128()),
	                               _mm_cmpgt_epi32(hi, _mm_setzero_si128()));
	uint32_t m = (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(live, _mm_setzero_si128()));

	return (~m | ct_sig_match(h, 0)) & ((1u << CT_WAYS) - 1);
#else
	uint32_t m = 0;

	for (unsigned i = 0; i < CT_WAYS; i++)
		m |= (uint32_t)(h->sig[i] == 0 || ct_expired(h->expires[i], now)) << i;
	return m;
#endif
}

/* Bit i set when way i of h is SYN-only. */
static inline uint32_t ct_syn_mask(const struct ct_bucket *h)
{
#if defined(__SSE2__)
	/* CT_F_SYN (bit 1) of each flag byte shifted to its top bit, where movemask takes it. */
	__m128i f = _mm_slli_epi16(_mm_loadl_epi64((const __m128i *)h->flags), 6);

	_Static_assert(CT_F_SYN == 1u << 1, "the shift moves CT_F_SYN to bit 7");
	return (uint32_t)_mm_movemask_epi8(f) & ((1u << CT_WAYS) - 1);
#else
	uint32_t m = 0;

	for (unsigned i = 0; i < CT_WAYS; i++)
		m |= (uint32_t)((h->flags[i] & CT_F_SYN) != 0) << i;
	return m;
#endif
}

/* Of the live ways m (not 0) of h, the one that expires soonest after tick now; *left: ticks. */
static inline unsigned ct_soonest(const struct ct_bucket *h, uint32_t m, uint32_t now,
                                  uint32_t *left)
{
	unsigned best = (unsigned)__builtin_ctz(m);
	uint32_t lb = h->expires[best] - now;

	/* Selects, not branches: which way is soonest is not predictable. */
	for (m &= m - 1; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctz(m);
		uint32_t l = h->expires[i] - now;

		best = l < lb ? i : best;
		lb = l < lb ? l : lb;
	}
	*left = lb;
	return best;
}

/*
 * Starts loading what the lookup of place pl will read after its first bucket header (call once
 * ct_prefetch had time to land): the entries whose signature matches. Returns false if none does
 * (then see ct_prefetch_miss).
 */
static inline bool ct_prefetch_entries(struct ct_place pl)
{
	uint32_t m = ct_sig_match(pl.h, pl.sig);

	if (!m)
		return false;
	do {
		ct_prefetch_entry(&pl.e[__builtin_ctz(m)]);
		m &= m - 1;
	} while (m);
	return true;
}

/*
 * For place pl at tick now whose first bucket has no way of its signature (ct_prefetch_entries
 * returned false): starts loading the flow's second bucket header when the lookup will read it
 * (flows of this bucket live in their second buckets) or an insert will (no way of this bucket is
 * free, and for a flow that would start SYN-only, syn_only, none is SYN-only either: see
 * ct_insert); and the entry of this bucket an insert would most likely write (a store that misses
 * the cache holds up every later store of the worker until its line arrives): a free way, else
 * for syn_only the SYN-only way closest to expiry, else the way closest to expiry.
 */
static inline void ct_prefetch_miss(const struct ct_table *t, struct ct_place pl, uint32_t now,
                                    bool syn_only)
{
	uint32_t free = ct_free_mask(pl.h, now), left;
	uint32_t syn = free ? 0 : syn_only ? ct_syn_mask(pl.h) : (1u << CT_WAYS) - 1;

	if (pl.h->away || !free)
		ct_prefetch_line(&t->buckets[ct_place_other(t, pl)]);
	if (free)
		ct_prefetch_entry(&pl.e[__builtin_ctz(free)]);
	else if (syn)
		ct_prefetch_entry(&pl.e[ct_soonest(pl.h, syn, now, &left)]);
}

/* The way of bucket h (entries e) holding the live flow k with signature sig at tick now, or -1. */
static inline int ct_find_way(const struct ct_bucket *h, const struct ct_entry *e, uint16_t sig,
                              const struct lb_flow_key *k, uint32_t now)
{
	uint32_t m = ct_sig_match(h, sig);

	while (m) {
		int i = __builtin_ctz(m);

		if (!ct_expired(h->expires[i], now) && lb_flow_key_eq(&e[i].key, k))
			return i;
		m &= m - 1;
	}
	return -1;
}

/* A way that holds a flow: its bucket header, its index there, and its entry. */
struct ct_ref {
	struct ct_bucket *h;
	struct ct_entry *e;
	unsigned way;
};

/*
 * Finds the live flow k at place pl (ct_place_of its flow hash) at tick now: true and its way in
 * *r, or false. Cache lines read: a flow in its first bucket costs that header and its entry (one
 * line, or two for the half of the ways whose 48 bytes straddle two); a flow in its second bucket,
 * and a miss for a bucket some of whose flows live in their second, also that bucket's header
 * (and the entry); any other miss, the first header alone. Both headers would cost a line more on
 * every lookup: at half load 98% of the buckets have no flow away.
 */
static inline bool ct_lookup(const struct ct_table *t, struct ct_place pl,
                             const struct lb_flow_key *k, uint32_t now, struct ct_ref *r)
{
	int i = ct_find_way(pl.h, pl.e, pl.sig, k, now);
	uint32_t b2;

	if (__builtin_expect(i >= 0, 1)) {
		*r = (struct ct_ref){pl.h, &pl.e[i], (unsigned)i};
		return true;
	}
	if (__builtin_expect(!pl.h->away, 1))
		return false;
	b2 = ct_place_other(t, pl);
	i = ct_find_way(&t->buckets[b2], &t->entries[(uint64_t)b2 * CT_WAYS], pl.sig, k, now);
	if (i < 0)
		return false;
	*r = (struct ct_ref){&t->buckets[b2], &t->entries[(uint64_t)b2 * CT_WAYS + i], (unsigned)i};
	return true;
}

/* The way of slot (bucket * CT_WAYS + way). */
static inline struct ct_ref ct_ref_of(const struct ct_table *t, uint64_t slot)
{
	return (struct ct_ref){&t->buckets[slot / CT_WAYS], &t->entries[slot], slot % CT_WAYS};
}

/* ct_lookup for a flow hash: the flow's slot, or -1. */
static inline int64_t ct_find(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash,
                              uint32_t now)
{
	struct ct_ref r;

	if (!ct_lookup(t, ct_place_of(t, hash), k, now, &r))
		return -1;
	return (int64_t)(r.h - t->buckets) * CT_WAYS + r.way;
}

/*
 * The state flags of a TCP entry after a packet with tcp_flags, from fl. A new entry starts from
 * CT_F_SYN, so it is SYN-only if its first packet is a bare SYN. FIN or RST: closing. A bare SYN
 * leaves a SYN-only entry (a retransmit: only the short timeout is refreshed) and an established
 * one (a SYN with a live flow's tuple does not demote it) as they are, and makes a closing one
 * SYN-only (a new connection reusing the tuple). Any other packet promotes a SYN-only entry.
 */
static inline uint8_t ct_tcp_flags_after(uint8_t fl, uint8_t tcp_flags)
{
	if (tcp_flags & (PKT_TCP_FIN | PKT_TCP_RST))
		return CT_F_FIN;
	if ((tcp_flags & (PKT_TCP_SYN | PKT_TCP_ACK)) == PKT_TCP_SYN)
		return (fl & CT_F_FIN) ? CT_F_SYN : fl;
	return fl & (uint8_t)~CT_F_SYN;
}

/* The state flags of a new entry of proto for its first packet's tcp_flags. */
static inline uint8_t ct_flags_new(uint8_t proto, uint8_t tcp_flags)
{
	return proto == IPPROTO_TCP ? ct_tcp_flags_after(CT_F_SYN, tcp_flags) : 0;
}

/* Timeout in ticks of an entry of proto with state flags fl. */
static inline uint32_t ct_timeout_of(const struct ct_table *t, uint8_t proto, uint8_t fl)
{
	if (proto == IPPROTO_TCP) {
		if (fl & CT_F_FIN)
			return t->to_tcp_fin;
		return (fl & CT_F_SYN) ? t->to_tcp_syn : t->to_tcp;
	}
	return proto == IPPROTO_UDP ? t->to_udp : t->to_other;
}

/* Refreshes the expiry of the flow at r for a packet with tcp_flags at tick now. */
static inline void ct_touch_ref(const struct ct_table *t, struct ct_ref r, uint8_t proto,
                                uint8_t tcp_flags, uint32_t now)
{
	uint8_t fl = r.h->flags[r.way];

	if (proto == IPPROTO_TCP) {
		fl = ct_tcp_flags_after(fl, tcp_flags);
		r.h->flags[r.way] = fl;
	}
	r.h->expires[r.way] = now + ct_timeout_of(t, proto, fl) + 1;
}

/* ct_touch_ref for a slot. */
static inline void ct_touch(struct ct_table *t, uint64_t slot, uint8_t proto, uint8_t tcp_flags,
                            uint32_t now)
{
	ct_touch_ref(t, ct_ref_of(t, slot), proto, tcp_flags, now);
}

/* What ct_insert made room with. */
enum ct_evict {
	CT_EVICT_NONE,        /* a free or expired way, a move, or nothing (not inserted) */
	CT_EVICT_SYN_ONLY,    /* a live SYN-only flow was dropped */
	CT_EVICT_ESTABLISHED, /* a live flow that was not SYN-only (any protocol) was dropped */
};

struct ct_insert_result {
	enum ct_evict evicted;
	uint32_t moved; /* live flows moved to their other bucket (0..CT_CUCKOO_DEPTH) */
};

/*
 * Inserts flow k (not present) with bref and secondary (second chance's reference, kept as given)
 * for its first packet's tcp_flags at tick now, and returns
 * its slot. Room, in this order: a free or expired way of its first bucket, then of its second;
 * else the live SYN-only way of either that expires soonest (evicted); else live flows are moved
 * to their other buckets (see CT_CUCKOO_DEPTH); else the way of its first bucket that expires
 * soonest is evicted (the one ct_prefetch_entries loads: the table is full, and a miss on this
 * store would cost more than choosing among 16 ways rather than 8 gains). A flow that starts
 * SYN-only (ct_flags_new) takes a free way or else the SYN-only way closest to expiry of its first
 * bucket, else the same in its second, and goes no further: it neither moves live flows nor evicts
 * one that is not SYN-only, and when both buckets hold only such flows it is not inserted (-ENOSPC;
 * its packets follow the Maglev table, which is where the entry would send them until the table
 * changes, and its first non-SYN packet inserts it). So a SYN flood cannot push established flows
 * out, costs no search, and, replacing its own entries in their first buckets rather than spreading
 * into second ones, leaves other lookups at one header. With max_inserts set, at most that many
 * entries are made in any one-second window of ticks: beyond, -EAGAIN and nothing changes. *r tells
 * what was dropped and moved.
 */
int64_t ct_insert(struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t bref,
                  uint32_t secondary, uint8_t tcp_flags, uint32_t now, struct ct_insert_result *r);

/*
 * Looks flow k up in both its buckets without changing anything and without the expiry check,
 * for a reader on another thread (the result is best effort: the worker may be rewriting a bucket,
 * or moving the entry between its two buckets). Returns true and the bref, the secondary (if
 * secondary is not NULL), expiry tick and state flags (CT_F_*) of the copy that expires last (an
 * expired one may remain beside a newer one).
 */
bool ct_peek(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
             uint32_t *secondary, uint32_t *expires, uint8_t *flags);

#endif
