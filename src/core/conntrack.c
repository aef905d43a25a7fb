/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection table: two-choice 8-way buckets with bounded cuckoo moves, per-state timeouts,
 * SYN-only eviction first, an insert rate cap.
 */
#include "core/conntrack.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/pkt.h"

#define CT_HUGE_ALIGN (2u << 20) /* bytes: transparent huge page size on x86-64 */

struct ct_table *ct_create(uint32_t entries, const struct ct_params *p)
{
	struct ct_table *t;
	size_t hbytes, ebytes;

	if (entries < CT_ENTRIES_MIN)
		entries = CT_ENTRIES_MIN;
	if (entries > CT_ENTRIES_MAX)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->n_buckets = (entries + CT_WAYS - 1) / CT_WAYS;
	hbytes = (size_t)t->n_buckets * sizeof(struct ct_bucket);
	ebytes = (size_t)t->n_buckets * CT_WAYS * sizeof(struct ct_entry);
	if (posix_memalign((void **)&t->buckets, CT_HUGE_ALIGN, hbytes) ||
	    posix_memalign((void **)&t->entries, CT_HUGE_ALIGN, ebytes)) {
		ct_destroy(t);
		return NULL;
	}
	/*
	 * A large table is read at random: ask for transparent huge pages so a lookup costs cache
	 * misses, not also TLB misses and page walks. A hint only; failure changes nothing else.
	 */
	madvise(t->buckets, hbytes, MADV_HUGEPAGE);
	madvise(t->entries, ebytes, MADV_HUGEPAGE);
	/* Touch every page now so the packet path never takes a first-use page fault. */
	memset(t->buckets, 0, hbytes);
	memset(t->entries, 0, ebytes);
	t->to_tcp = ct_secs_to_ticks(p->tcp);
	t->to_tcp_fin = ct_secs_to_ticks(p->tcp_fin);
	t->to_tcp_syn = ct_secs_to_ticks(p->tcp_syn);
	t->to_udp = ct_secs_to_ticks(p->udp);
	t->to_other = ct_secs_to_ticks(p->other);
	t->max_inserts = p->max_inserts;
	t->window_ticks = ct_secs_to_ticks(1);
	return t;
}

void ct_destroy(struct ct_table *t)
{
	if (!t)
		return;
	free(t->buckets);
	free(t->entries);
	free(t);
}

static inline void ct_away_add(struct ct_bucket *h, int d)
{
	if (h->away != CT_AWAY_STICKY)
		h->away = (uint16_t)(h->away + d);
}

/* Takes one from the away count of bucket b, CT_AWAY_DEFER decrements later. */
static void ct_away_defer(struct ct_table *t, uint32_t b)
{
	if (t->defer_n == CT_AWAY_DEFER) {
		ct_away_add(&t->buckets[t->defer[t->defer_head]], -1);
		t->defer[t->defer_head] = b;
		t->defer_head = (t->defer_head + 1) % CT_AWAY_DEFER;
	} else {
		t->defer[(t->defer_head + t->defer_n++) % CT_AWAY_DEFER] = b;
	}
	ct_prefetch_line(&t->buckets[b]);
}

/* Empties way i of bucket b; if it held a flow in its second bucket, its first counts one less. */
static inline void ct_way_clear(struct ct_table *t, uint32_t b, unsigned i)
{
	struct ct_bucket *h = &t->buckets[b];

	if (__builtin_expect(h->second & (1u << i), 0)) {
		ct_away_defer(t, ct_other_bucket(t, b, h->sig[i]));
		h->second &= (uint8_t) ~(1u << i);
	}
	h->sig[i] = 0;
}

/* Fills the empty way i of bucket b; second: b is not the flow's first bucket (it counts one). */
static inline void ct_way_set(struct ct_table *t, uint32_t b, unsigned i, bool second, uint16_t sig,
                              uint32_t expires, uint8_t flags)
{
	struct ct_bucket *h = &t->buckets[b];

	h->expires[i] = expires;
	h->flags[i] = flags;
	if (second) {
		h->second |= (uint8_t)(1u << i);
		ct_away_add(&t->buckets[ct_other_bucket(t, b, sig)], 1);
	}
	h->sig[i] = sig;
}

/*
 * Moves the flow in way i of bucket from to the free or expired way j of its other bucket to. The
 * copy is complete before the original is cleared, so a reader finds one or the other.
 */
static void ct_move(struct ct_table *t, uint32_t from, unsigned i, uint32_t to, unsigned j)
{
	struct ct_bucket *hf = &t->buckets[from];

	t->entries[(uint64_t)to * CT_WAYS + j] = t->entries[(uint64_t)from * CT_WAYS + i];
	ct_way_clear(t, to, j);
	ct_way_set(t, to, j, !(hf->second & (1u << i)), hf->sig[i], hf->expires[i], hf->flags[i]);
	ct_way_clear(t, from, i);
}

/* A bucket the search looks for a free way in, and the move that would use it. */
struct ct_probe {
	uint32_t bucket;     /* the other bucket of the flow in (from, way) */
	uint32_t from;       /* where that flow is */
	uint8_t way;         /* its way there */
	uint8_t depth;       /* moves this path takes: 1..CT_CUCKOO_DEPTH */
	int8_t parent;       /* depth > 1: the probe whose bucket is from */
	uint8_t first_index; /* which of the new flow's buckets the path starts from (0 or 1) */
};

_Static_assert(CT_CUCKOO_PROBES <= INT8_MAX, "probe indices fit ct_probe.parent");

/* Adds the probes of the flows in bucket b (reached at depth, through parent) to q. */
static unsigned ct_probe_add(const struct ct_table *t, struct ct_probe *q, unsigned n, uint32_t b,
                             uint8_t depth, int8_t parent, uint8_t first_index)
{
	const struct ct_bucket *h = &t->buckets[b];

	for (unsigned i = 0; i < CT_WAYS && n < CT_CUCKOO_PROBES; i++) {
		uint32_t o = ct_other_bucket(t, b, h->sig[i]);

		if (o == b)
			continue;
		ct_prefetch_line(&t->buckets[o]);
		q[n++] = (struct ct_probe){o, b, (uint8_t)i, depth, parent, first_index};
	}
	return n;
}

/*
 * Both of a new flow's buckets, first[0..n), are full of live flows: searches breadth first for a
 * free way in the other bucket of one of their flows (depth 1), or of a flow in such a bucket
 * (depth 2), ..., reading at most CT_CUCKOO_PROBES headers, then moves the flows along that path
 * from its far end, so that every flow stays findable. Returns the index in first of the bucket
 * whose way *way was emptied, or -1 if no way was found (nothing changed). *moved: flows moved.
 */
static int ct_make_room(struct ct_table *t, const uint32_t *first, unsigned n, uint32_t now,
                        unsigned *way, uint32_t *moved)
{
	struct ct_probe q[CT_CUCKOO_PROBES];
	unsigned nq = 0;

	for (unsigned c = 0; c < n; c++)
		nq = ct_probe_add(t, q, nq, first[c], 1, -1, (uint8_t)c);
	for (unsigned p = 0; p < nq; p++) {
		uint32_t free = ct_free_mask(&t->buckets[q[p].bucket], now);
		unsigned j;

		if (!free) {
			if (q[p].depth < CT_CUCKOO_DEPTH)
				nq = ct_probe_add(t, q, nq, q[p].bucket, (uint8_t)(q[p].depth + 1),
				                  (int8_t)p, q[p].first_index);
			continue;
		}
		/*
		 * From the free way back to the new flow's bucket: each move fills the way the
		 * previous one emptied.
		 */
		j = (unsigned)__builtin_ctz(free);
		for (int x = (int)p; x >= 0; x = q[x].parent) {
			ct_move(t, q[x].from, q[x].way, q[x].bucket, j);
			j = q[x].way;
			(*moved)++;
		}
		*way = j;
		return q[p].first_index;
	}
	return -1;
}

/*
 * The search with its back-off (CT_CUCKOO_BACKOFF_MAX): ct_make_room, or -1 at once while the
 * last searches failed.
 */
static int ct_make_room_backoff(struct ct_table *t, const uint32_t *first, unsigned n, uint32_t now,
                                unsigned *way, uint32_t *moved)
{
	int c;

	if (t->search_skip) {
		t->search_skip--;
		return -1;
	}
	c = ct_make_room(t, first, n, now, way, moved);
	if (c >= 0)
		t->search_backoff = 0;
	else if (t->search_backoff < CT_CUCKOO_BACKOFF_MAX)
		t->search_backoff = t->search_backoff ? 2 * t->search_backoff : 1;
	t->search_skip = t->search_backoff;
	return c;
}

/* The insert cap: false when max_inserts entries were made in the current window. */
static bool ct_insert_allowed(struct ct_table *t, uint32_t now)
{
	if (!t->max_inserts)
		return true;
	if (now - t->window_start >= t->window_ticks) {
		t->window_start = now;
		t->window_inserts = 0;
	}
	return t->window_inserts < t->max_inserts;
}

int64_t ct_insert(struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t bref,
                  uint32_t secondary, uint8_t tcp_flags, uint32_t now, struct ct_insert_result *r)
{
	uint16_t sig = ct_sig_of(hash);
	uint32_t first[2] = {ct_bucket_of(t, hash), 0}, syn[2] = {0, 0}, left[2];
	uint8_t fl = ct_flags_new(k->proto, tcp_flags);
	unsigned n = 1, c, way = 0, v[2];
	int room;

	r->evicted = CT_EVICT_NONE;
	r->moved = 0;
	if (!ct_insert_allowed(t, now))
		return -EAGAIN;
	first[1] = ct_other_bucket(t, first[0], sig);
	n += first[1] != first[0];
	for (c = 0; c < n; c++) {
		const struct ct_bucket *h = &t->buckets[first[c]];
		uint32_t free = ct_free_mask(h, now);

		if (free) {
			way = (unsigned)__builtin_ctz(free);
			goto take;
		}
		syn[c] = ct_syn_mask(h);
		if (syn[c] && (fl & CT_F_SYN)) {
			way = ct_soonest(h, syn[c], now, &left[c]);
			r->evicted = CT_EVICT_SYN_ONLY;
			goto take;
		}
	}
	if (fl & CT_F_SYN)
		return -ENOSPC;
	/* Both full: the SYN-only way closest to expiry, else a move, else an eviction. */
	if (syn[0] | syn[1]) {
		for (c = 0; c < n; c++)
			if (syn[c])
				v[c] = ct_soonest(&t->buckets[first[c]], syn[c], now, &left[c]);
		c = !syn[0] || (n == 2 && syn[1] && left[1] < left[0]);
		way = v[c];
		r->evicted = CT_EVICT_SYN_ONLY;
		goto take;
	}
	room = ct_make_room_backoff(t, first, n, now, &way, &r->moved);
	if (room >= 0) {
		c = (unsigned)room;
		goto take;
	}
	c = 0;
	way = ct_soonest(&t->buckets[first[0]], (1u << CT_WAYS) - 1, now, &left[0]);
	r->evicted = CT_EVICT_ESTABLISHED;
take:
	ct_way_clear(t, first[c], way);
	t->entries[(uint64_t)first[c] * CT_WAYS + way].key = *k;
	t->entries[(uint64_t)first[c] * CT_WAYS + way].bref = bref;
	t->entries[(uint64_t)first[c] * CT_WAYS + way].secondary = secondary;
	ct_way_set(t, first[c], way, c == 1, sig, now + ct_timeout_of(t, k->proto, fl) + 1, fl);
	t->window_inserts++;
	return (int64_t)first[c] * CT_WAYS + way;
}

bool ct_peek(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
             uint32_t *secondary, uint32_t *expires, uint8_t *flags)
{
	uint16_t sig = ct_sig_of(hash);
	uint32_t first[2] = {ct_bucket_of(t, hash), 0};
	bool found = false;

	first[1] = ct_other_bucket(t, first[0], sig);
	for (unsigned c = 0; c < 2 && (c == 0 || first[1] != first[0]); c++) {
		const struct ct_bucket *h = &t->buckets[first[c]];

		for (unsigned i = 0; i < CT_WAYS; i++) {
			struct ct_entry e;
			uint32_t x;

			if (__atomic_load_n(&h->sig[i], __ATOMIC_RELAXED) != sig)
				continue;
			memcpy(&e, &t->entries[(uint64_t)first[c] * CT_WAYS + i], sizeof(e));
			x = __atomic_load_n(&h->expires[i], __ATOMIC_RELAXED);
			if (!lb_flow_key_eq(&e.key, k) || (found && (int32_t)(x - *expires) <= 0))
				continue;
			found = true;
			*bref = e.bref;
			if (secondary)
				*secondary = e.secondary;
			*expires = x;
			*flags = __atomic_load_n(&h->flags[i], __ATOMIC_RELAXED);
		}
	}
	return found;
}
