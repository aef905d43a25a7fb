/* SPDX-License-Identifier: GPL-2.0-only */
/* Connection table: 8-way set-associative buckets, per-state timeouts, SYN-only eviction first. */
#include "core/conntrack.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/pkt.h"

#define NS_PER_SEC    1000000000ull
#define CT_HUGE_ALIGN (2u << 20) /* bytes: transparent huge page size on x86-64 */

static uint32_t secs_to_ticks(uint32_t s)
{
	uint64_t ns = (uint64_t)s * NS_PER_SEC;
	uint64_t tick = 1ull << CT_TICK_SHIFT;

	return (uint32_t)((ns + tick - 1) / tick);
}

struct ct_table *ct_create(uint32_t entries, const struct ct_timeouts *to)
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
	t->to_tcp = secs_to_ticks(to->tcp);
	t->to_tcp_fin = secs_to_ticks(to->tcp_fin);
	t->to_tcp_syn = secs_to_ticks(to->tcp_syn);
	t->to_udp = secs_to_ticks(to->udp);
	t->to_other = secs_to_ticks(to->other);
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

int64_t ct_insert(struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t bref,
                  uint8_t tcp_flags, uint32_t now, enum ct_evict *evicted)
{
	uint32_t b = ct_bucket_of(t, hash);
	struct ct_bucket *h = &t->buckets[b];
	uint8_t fl = k->proto == IPPROTO_TCP ? ct_tcp_flags_after(CT_F_SYN, tcp_flags) : 0;
	uint64_t best = UINT64_MAX, slot;
	unsigned victim = 0;

	*evicted = CT_EVICT_NONE;
	for (unsigned i = 0; i < CT_WAYS; i++) {
		uint64_t established, rank;

		if (h->sig[i] == 0 || ct_expired(h->expires[i], now)) {
			victim = i;
			goto take;
		}
		/*
		 * Not SYN-only in bit 32, time left (live: 1..2^31-1 ticks) below: the smallest
		 * rank is the SYN-only way closest to expiry, else the way closest to expiry.
		 */
		established = !(h->flags[i] & CT_F_SYN);
		rank = established << 32 | (uint32_t)(h->expires[i] - now);
		if (rank < best) {
			best = rank;
			victim = i;
		}
	}
	if (!(h->flags[victim] & CT_F_SYN)) {
		if (fl & CT_F_SYN)
			return -1;
		*evicted = CT_EVICT_ESTABLISHED;
	} else {
		*evicted = CT_EVICT_SYN_ONLY;
	}
take:
	slot = (uint64_t)b * CT_WAYS + victim;
	t->entries[slot].key = *k;
	t->entries[slot].bref = bref;
	h->sig[victim] = ct_sig_of(hash);
	h->flags[victim] = fl;
	h->expires[victim] = now + ct_timeout_of(t, k->proto, fl) + 1;
	return (int64_t)slot;
}

bool ct_peek(const struct ct_table *t, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
             uint32_t *secondary, uint32_t *expires, uint8_t *flags)
{
	uint32_t b = ct_bucket_of(t, hash);
	const struct ct_bucket *h = &t->buckets[b];
	uint16_t sig = ct_sig_of(hash);

	for (unsigned i = 0; i < CT_WAYS; i++) {
		uint64_t slot = (uint64_t)b * CT_WAYS + i;
		struct ct_entry e;

		if (__atomic_load_n(&h->sig[i], __ATOMIC_RELAXED) != sig)
			continue;
		memcpy(&e, &t->entries[slot], sizeof(e));
		if (lb_flow_key_eq(&e.key, k)) {
			*bref = e.bref;
			if (secondary)
				*secondary = e.secondary;
			*expires = __atomic_load_n(&h->expires[i], __ATOMIC_RELAXED);
			*flags = __atomic_load_n(&h->flags[i], __ATOMIC_RELAXED);
			return true;
		}
	}
	return false;
}
