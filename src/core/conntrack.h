/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection table of one worker: a fixed-size, 8-way set-associative hash table of flows to
 * backend references, with per-state timeouts and, when a bucket is full, eviction of a
 * SYN-only entry before any other, the one closest to expiry first. Allocated once at creation;
 * no allocation on the packet path. Single writer (its worker); see ct_peek for readers on other
 * threads.
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
 * Entry state flags (TCP only; other protocols keep 0). At most one is set: none is an
 * established flow. We see only client -> VIP, so the handshake's last step we see is the
 * client's ACK: that (or any packet that is not a bare SYN) promotes a SYN-only entry.
 */
#define CT_F_FIN 0x01u /* FIN or RST seen: tcp_fin timeout */
#define CT_F_SYN 0x02u /* SYN-only, bare SYNs seen: tcp_syn timeout, evicted first */

/*
 * A bucket header: one cache line with the signatures (16 hash bits; 0 = empty way), expiry ticks
 * and flags of its 8 ways, so a lookup reads this line and then only the matching entry.
 */
struct ct_bucket {
	uint16_t sig[CT_WAYS];
	uint32_t expires[CT_WAYS]; /* tick from which the way is free (compared modulo 2^32) */
	uint8_t flags[CT_WAYS];
	uint8_t spare[8];
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

struct ct_timeouts {
	uint32_t tcp, tcp_fin, tcp_syn, udp, other; /* seconds */
};

struct ct_table {
	struct ct_bucket *buckets; /* n_buckets headers, 64-byte aligned */
	struct ct_entry *entries;  /* n_buckets * CT_WAYS entries */
	uint32_t n_buckets;
	uint32_t to_tcp, to_tcp_fin, to_tcp_syn, to_udp, to_other; /* ticks */
};

/* Bytes the table takes per flow it can hold, headers included. */
#define CT_BYTES_PER_FLOW ((sizeof(struct ct_bucket) + CT_WAYS * sizeof(struct ct_entry)) / CT_WAYS)

/* Allocates a table for at least entries flows (rounded up to whole buckets). NULL on failure. */
struct ct_table *ct_create(uint32_t entries, const struct ct_timeouts *t);
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

static inline bool ct_expired(uint32_t expires, uint32_t now)
{
	return (int32_t)(expires - now) <= 0;
}

static inline uint32_t ct_bucket_of(const struct ct_table *t, uint64_t hash)
{
	return (uint32_t)(((hash & 0xffffffffu) * (uint64_t)t->n_buckets) >> 32);
}

static inline uint16_t ct_sig_of(uint64_t hash)
{
	uint16_t s = (uint16_t)(hash >> 48);
	return s ? s : 1;
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
 * Where a flow lives: its bucket and way signature, both from its flow hash; the packet path
 * computes them once per packet and keeps them for the prefetches and the lookup.
 */
struct ct_place {
	struct ct_bucket *h; /* the bucket header */
	struct ct_entry *e;  /* the bucket's CT_WAYS entries */
	uint16_t sig;
};

static inline struct ct_place ct_place_of(const struct ct_table *t, uint64_t hash)
{
	uint32_t b = ct_bucket_of(t, hash);

	return (struct ct_place){&t->buckets[b], &t->entries[(uint64_t)b * CT_WAYS],
	                         ct_sig_of(hash)};
}

/* Starts loading the bucket header of place pl. */
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

/* Starts loading the entries whose signature matches (call after ct_prefetch had time to land). */
static inline void ct_prefetch_entries(struct ct_place pl)
{
	uint32_t m = ct_sig_match(pl.h, pl.sig);

	while (m) {
		const char *e = (const char *)&pl.e[__builtin_ctz(m)];

		ct_prefetch_line(e);
		ct_prefetch_line(e + sizeof(struct ct_entry) - 1);
		m &= m - 1;
	}
}

/* Finds the live flow k at place pl (ct_place_of its flow hash) at tick now: its way, or -1. */
static inline int ct_find_way(struct ct_place pl, const struct lb_flow_key *k, uint32_t now)
{
	uint32_t m = ct_sig_match(pl.h, pl.sig);

	while (m) {
		int i = __builtin_ctz(m);

		if (!ct_expired(pl.h->expires[i], now) && lb_flow_key_eq(&pl.e[i].key, k))
			return i;
		m &= m - 1;
	}
	return -1;
}

/* ct_find_way for a flow hash: the flow's slot (bucket * CT_WAYS + way), or -1. */
static inline int64_t ct_find(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash,
                              uint32_t now)
{
	struct ct_place pl = ct_place_of(t, hash);
	int i = ct_find_way(pl, k, now);

	return i < 0 ? -1 : (int64_t)(pl.e - t->entries) + i;
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

/* Refreshes the expiry of way i of bucket header h for a packet with tcp_flags at tick now. */
static inline void ct_touch_way(const struct ct_table *t, struct ct_bucket *h, unsigned i,
                                uint8_t proto, uint8_t tcp_flags, uint32_t now)
{
	uint8_t fl = h->flags[i];

	if (proto == IPPROTO_TCP) {
		fl = ct_tcp_flags_after(fl, tcp_flags);
		h->flags[i] = fl;
	}
	h->expires[i] = now + ct_timeout_of(t, proto, fl) + 1;
}

/* ct_touch_way for a slot. */
static inline void ct_touch(struct ct_table *t, uint64_t slot, uint8_t proto, uint8_t tcp_flags,
                            uint32_t now)
{
	ct_touch_way(t, &t->buckets[slot / CT_WAYS], slot % CT_WAYS, proto, tcp_flags, now);
}

static inline uint32_t ct_bref(const struct ct_table *t, uint64_t slot)
{
	return t->entries[slot].bref;
}

static inline void ct_set_bref(struct ct_table *t, uint64_t slot, uint32_t bref)
{
	t->entries[slot].bref = bref;
}

/* What ct_insert made room with. */
enum ct_evict {
	CT_EVICT_NONE,        /* a free or expired way, or nothing (not inserted) */
	CT_EVICT_SYN_ONLY,    /* a live SYN-only flow was dropped */
	CT_EVICT_ESTABLISHED, /* a live flow that was not SYN-only (any protocol) was dropped */
};

/*
 * Inserts flow k (not present) with bref for its first packet's tcp_flags: takes a free or expired
 * way of its bucket, else evicts a live one, SYN-only ways before any other and among those the
 * one that expires soonest. A flow that starts SYN-only never evicts one that is not: if its
 * bucket holds none, it is not inserted (returns -1; its packets follow the Maglev table, which
 * is where the entry would send them until the table changes, and its first non-SYN packet
 * inserts it), so a SYN flood cannot push established flows out. Otherwise returns the slot.
 * *evicted tells what was dropped.
 */
int64_t ct_insert(struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t bref,
                  uint8_t tcp_flags, uint32_t now, enum ct_evict *evicted);

/*
 * Looks flow k up without changing anything and without the expiry check, for a reader on
 * another thread (the result is best effort: the worker may be rewriting the bucket). Returns true
 * and the bref, secondary (if secondary is not NULL), expiry tick and state flags (CT_F_*) if
 * present.
 */
bool ct_peek(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
             uint32_t *secondary, uint32_t *expires, uint8_t *flags);

#endif
