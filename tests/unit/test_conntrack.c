/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection table tests: lookup by full key, eviction when a bucket is full (SYN-only flows
 * first), timeouts by state, a SYN flood against established flows, size; the two-bucket layout
 * (other buckets, lookups in second buckets, cuckoo moves, no eviction at 90% load, the order of
 * eviction in a full table) and the insert cap.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/util.h"
#include "core/conntrack.h"
#include "core/pkt.h"
#include "tcfg.h"

#define SEC (1000000000ull)

static const struct ct_params PARAMS = {
    .tcp = 300, .tcp_fin = 10, .tcp_syn = 5, .udp = 30, .other = 10};

static struct lb_flow_key key4(const char *src, uint16_t sport, uint8_t proto)
{
	struct lb_addr s = tcfg_addr(src), d = tcfg_addr("203.0.113.10");
	struct lb_flow_key k;

	lb_flow_key_make(&k, &s, &d, proto, sport, 80);
	return k;
}

static uint32_t bref_at(const struct ct_table *t, uint64_t slot)
{
	return ct_ref_of(t, slot).e->bref;
}

static void test_sizes(void **state)
{
	(void)state;
	assert_true(CT_BYTES_PER_FLOW <= 64);
	assert_int_equal(CT_BYTES_PER_FLOW, 56);
}

static void test_find_insert(void **state)
{
	struct ct_table *t = ct_create(1024, &PARAMS);
	struct lb_flow_key k = key4("198.18.100.1", 1000, IPPROTO_TCP), k2 = k;
	uint64_t h = lb_flow_hash(&k, 1), slot;
	uint32_t now = ct_tick(100 * SEC), bref, exp;
	struct ct_insert_result ev;
	uint8_t fl;

	(void)state;
	assert_non_null(t);
	assert_int_equal(ct_capacity(t), 1024);
	assert_int_equal(ct_find(t, &k, h, now), -1);
	slot = (uint64_t)ct_insert(t, &k, h, 0x00050003u, 0, PKT_TCP_SYN, now, &ev);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	assert_int_equal(ct_find(t, &k, h, now), (int64_t)slot);
	assert_int_equal(bref_at(t, slot), 0x00050003u);
	/* Same hash, one key byte different (a forced collision): never confused. */
	k2.src[3] ^= 1;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	k2 = k;
	k2.sport ^= 1;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	k2 = k;
	k2.proto = IPPROTO_UDP;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	assert_true(ct_peek(t, &k, h, &bref, NULL, &exp, &fl));
	assert_int_equal(bref, 0x00050003u);
	assert_true(exp > now);
	assert_int_equal(fl, CT_F_SYN);
	assert_false(ct_peek(t, &k2, h, &bref, NULL, &exp, &fl));
	ct_ref_of(t, slot).e->bref = 7;
	assert_true(ct_peek(t, &k, h, &bref, NULL, &exp, &fl));
	assert_int_equal(bref, 7);
	ct_destroy(t);
}

/* One bucket (8 ways): the ninth flow evicts the one closest to expiry, nothing else. */
static void test_eviction(void **state)
{
	struct ct_table *t = ct_create(CT_WAYS, &PARAMS);
	struct lb_flow_key k[CT_WAYS + 1];
	struct ct_insert_result ev;

	(void)state;
	assert_int_equal(ct_capacity(t), CT_WAYS);
	for (unsigned i = 0; i <= CT_WAYS; i++)
		k[i] = key4("198.18.100.1", (uint16_t)(2000 + i), IPPROTO_UDP);
	for (unsigned i = 0; i < CT_WAYS; i++) {
		ct_insert(t, &k[i], lb_flow_hash(&k[i], 1), i, 0, 0, ct_tick((10 + i) * SEC), &ev);
		assert_int_equal(ev.evicted, CT_EVICT_NONE);
	}
	/* Flow 0 is refreshed last: flow 1 is now the oldest. */
	ct_touch(t, (uint64_t)ct_find(t, &k[0], lb_flow_hash(&k[0], 1), ct_tick(20 * SEC)),
	         IPPROTO_UDP, 0, ct_tick(20 * SEC));
	ct_insert(t, &k[CT_WAYS], lb_flow_hash(&k[CT_WAYS], 1), 99, 0, 0, ct_tick(21 * SEC), &ev);
	assert_int_equal(ev.evicted, CT_EVICT_ESTABLISHED);
	assert_int_equal(ct_find(t, &k[1], lb_flow_hash(&k[1], 1), ct_tick(21 * SEC)), -1);
	for (unsigned i = 0; i <= CT_WAYS; i++)
		if (i != 1)
			assert_true(ct_find(t, &k[i], lb_flow_hash(&k[i], 1), ct_tick(21 * SEC)) >=
			            0);
	ct_destroy(t);
}

/* Expired ways are reused without counting an eviction. */
static void test_expired_reuse(void **state)
{
	struct ct_table *t = ct_create(CT_WAYS, &PARAMS);
	struct lb_flow_key k;
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < CT_WAYS; i++) {
		k = key4("198.18.100.2", (uint16_t)(3000 + i), IPPROTO_UDP);
		ct_insert(t, &k, lb_flow_hash(&k, 1), i, 0, 0, ct_tick(10 * SEC), &ev);
	}
	k = key4("198.18.100.2", 4000, IPPROTO_UDP);
	ct_insert(t, &k, lb_flow_hash(&k, 1), 1, 0, 0, ct_tick(50 * SEC), &ev);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	ct_destroy(t);
}

/*
 * Timeouts by protocol and state: UDP 30 s; TCP SYN-only 5 s, established 300 s, after FIN/RST
 * 10 s; a new SYN on a closed flow's tuple is SYN-only again.
 */
static void test_timeouts(void **state)
{
	struct ct_table *t = ct_create(1024, &PARAMS);
	struct lb_flow_key u = key4("198.18.100.3", 1, IPPROTO_UDP);
	struct lb_flow_key c = key4("198.18.100.3", 2, IPPROTO_TCP);
	uint64_t hu = lb_flow_hash(&u, 9), hc = lb_flow_hash(&c, 9), t0 = 5000 * SEC;
	int64_t s;
	struct ct_insert_result ev;

	(void)state;
	ct_insert(t, &u, hu, 1, 0, 0, ct_tick(t0), &ev);
	assert_true(ct_find(t, &u, hu, ct_tick(t0 + 29 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &u, hu, ct_tick(t0 + 33 * SEC)), -1);

	s = ct_insert(t, &c, hc, 2, 0, PKT_TCP_SYN, ct_tick(t0), &ev);
	assert_true(s >= 0);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_ACK, ct_tick(t0 + 1 * SEC));
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 299 * SEC)) >= 0);
	s = ct_find(t, &c, hc, ct_tick(t0 + 100 * SEC));
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_FIN | PKT_TCP_ACK, ct_tick(t0 + 100 * SEC));
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 109 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &c, hc, ct_tick(t0 + 113 * SEC)), -1);

	ct_insert(t, &c, hc, 2, 0, PKT_TCP_RST, ct_tick(t0 + 200 * SEC), &ev);
	assert_int_equal(ct_find(t, &c, hc, ct_tick(t0 + 213 * SEC)), -1);
	s = ct_find(t, &c, hc, ct_tick(t0 + 201 * SEC));
	assert_true(s >= 0);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 201 * SEC));
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 205 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &c, hc, ct_tick(t0 + 207 * SEC)), -1);
	ct_destroy(t);
}

/*
 * A SYN-only flow lives tcp_syn seconds from its last SYN (a retransmit refreshes only that),
 * and the first packet that is not a bare SYN (the handshake's ACK) gives it the full timeout.
 * A bare SYN with the tuple of an established flow leaves it established.
 */
static void test_syn_only(void **state)
{
	struct ct_table *t = ct_create(1024, &PARAMS);
	struct lb_flow_key a = key4("198.18.100.5", 1, IPPROTO_TCP);
	struct lb_flow_key b = key4("198.18.100.5", 2, IPPROTO_TCP);
	uint64_t ha = lb_flow_hash(&a, 9), hb = lb_flow_hash(&b, 9), t0 = 7000 * SEC;
	uint32_t bref, exp;
	struct ct_insert_result ev;
	uint8_t fl;
	int64_t s;

	(void)state;
	s = ct_insert(t, &a, ha, 1, 0, PKT_TCP_SYN, ct_tick(t0), &ev);
	assert_true(s >= 0);
	assert_true(ct_find(t, &a, ha, ct_tick(t0 + 4 * SEC)) >= 0);
	/* Retransmits at 1 s and 3 s: alive until 3 + 5 s, not longer. */
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 1 * SEC));
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 3 * SEC));
	assert_true(ct_peek(t, &a, ha, &bref, NULL, &exp, &fl));
	assert_int_equal(fl, CT_F_SYN);
	assert_true(ct_find(t, &a, ha, ct_tick(t0 + 7 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &a, ha, ct_tick(t0 + 9 * SEC)), -1);

	/* Promoted by the ACK: established, 300 s; a later bare SYN does not demote it. */
	s = ct_insert(t, &b, hb, 2, 0, PKT_TCP_SYN, ct_tick(t0), &ev);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_ACK, ct_tick(t0 + 2 * SEC));
	assert_true(ct_peek(t, &b, hb, &bref, NULL, &exp, &fl));
	assert_int_equal(fl, 0);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 3 * SEC));
	assert_true(ct_peek(t, &b, hb, &bref, NULL, &exp, &fl));
	assert_int_equal(fl, 0);
	assert_true(ct_find(t, &b, hb, ct_tick(t0 + 302 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &b, hb, ct_tick(t0 + 304 * SEC)), -1);

	/* A flow first seen mid-connection (an ACK, a failover) is established at once. */
	ct_insert(t, &a, ha, 1, 0, PKT_TCP_ACK, ct_tick(t0 + 10 * SEC), &ev);
	assert_true(ct_peek(t, &a, ha, &bref, NULL, &exp, &fl));
	assert_int_equal(fl, 0);
	assert_true(ct_find(t, &a, ha, ct_tick(t0 + 200 * SEC)) >= 0);
	ct_destroy(t);
}

/*
 * One full bucket: a SYN-only way goes before any established one even when the established
 * ones expire sooner (the SYN-only closest to expiry first); a SYN-only flow never evicts an
 * established one (not inserted); an established newcomer evicts the established way closest
 * to expiry once no SYN-only way is left.
 */
static void test_syn_eviction_order(void **state)
{
	struct ct_table *t = ct_create(CT_WAYS, &PARAMS);
	struct lb_flow_key k[CT_WAYS + 4];
	uint64_t h[CT_WAYS + 4];
	uint32_t now = ct_tick(1000 * SEC);
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < CT_WAYS + 4; i++) {
		k[i] = key4("198.18.100.6", (uint16_t)(5000 + i), IPPROTO_TCP);
		h[i] = lb_flow_hash(&k[i], 1);
	}
	/* Ways: 6 established (ACK at 0..5 s, expiring 300..305 s), 2 SYN-only at 297, 298 s. */
	for (unsigned i = 0; i < 6; i++)
		ct_insert(t, &k[i], h[i], i, 0, PKT_TCP_ACK, ct_tick((1000 + i) * SEC), &ev);
	ct_insert(t, &k[7], h[7], 7, 0, PKT_TCP_SYN, ct_tick(1298 * SEC), &ev);
	ct_insert(t, &k[6], h[6], 6, 0, PKT_TCP_SYN, ct_tick(1297 * SEC), &ev);
	now = ct_tick(1299 * SEC);
	/* An established newcomer takes the SYN-only way closest to expiry (6). */
	assert_true(ct_insert(t, &k[8], h[8], 8, 0, PKT_TCP_ACK, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[6], h[6], now), -1);
	assert_true(ct_find(t, &k[7], h[7], now) >= 0);
	/* A SYN-only one takes the other SYN-only way (7), then its own. */
	assert_true(ct_insert(t, &k[9], h[9], 9, 0, PKT_TCP_SYN, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[7], h[7], now), -1);
	assert_true(ct_insert(t, &k[10], h[10], 10, 0, PKT_TCP_SYN, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[9], h[9], now), -1);
	/* Promote 10: eight established ways. A bare SYN is refused and changes nothing. */
	ct_touch(t, (uint64_t)ct_find(t, &k[10], h[10], now), IPPROTO_TCP, PKT_TCP_ACK, now);
	assert_int_equal(ct_insert(t, &k[11], h[11], 11, 0, PKT_TCP_SYN, now, &ev), -ENOSPC);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	assert_int_equal(ct_find(t, &k[11], h[11], now), -1);
	for (unsigned i = 0; i <= 10; i++)
		if (i != 6 && i != 7 && i != 9)
			assert_true(ct_find(t, &k[i], h[i], now) >= 0);
	/* An established newcomer evicts the established way closest to expiry (0). */
	assert_true(ct_insert(t, &k[11], h[11], 11, 0, PKT_TCP_ACK, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_ESTABLISHED);
	assert_int_equal(ct_find(t, &k[0], h[0], now), -1);
	assert_true(ct_find(t, &k[1], h[1], now) >= 0);
	ct_destroy(t);
}

#define FLOOD_ENTRIES 4096u                   /* table of the flood test, flows */
#define FLOOD_LIVE    (FLOOD_ENTRIES * 3 / 5) /* established flows: 60% load */
#define FLOOD_SYNS    (FLOOD_ENTRIES * 16)    /* distinct spoofed SYN-only flows */

static struct lb_flow_key flood_key(unsigned i, bool syn)
{
	struct lb_flow_key k = key4(syn ? "198.19.0.0" : "198.18.0.0", 0, IPPROTO_TCP);

	k.src[2] = (uint8_t)(i >> 16);
	k.src[3] = (uint8_t)(i >> 8);
	k.sport = (uint16_t)(1024 + (i & 0xff));
	return k;
}

/*
 * A table at 60% load with established flows, then 16 times its capacity of distinct SYN-only
 * flows over 4 s: not one established flow is evicted, and 5 s after the flood every SYN-only
 * entry has expired while the established ones remain.
 */
static void test_syn_flood(void **state)
{
	struct ct_table *t = ct_create(FLOOD_ENTRIES, &PARAMS);
	static bool live[FLOOD_LIVE];
	uint64_t t0 = 9000 * SEC;
	unsigned n_live = 0, n_syn = 0, refused = 0, evicted_syn = 0;
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k = flood_key(i, false);

		ct_insert(t, &k, lb_flow_hash(&k, 5), i, 0, PKT_TCP_ACK, ct_tick(t0), &ev);
	}
	/* Some buckets overflowed while filling: the flood must keep the flows left. */
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k = flood_key(i, false);

		live[i] = ct_find(t, &k, lb_flow_hash(&k, 5), ct_tick(t0)) >= 0;
		n_live += live[i];
	}
	assert_true(n_live > FLOOD_LIVE * 95 / 100);
	for (unsigned i = 0; i < FLOOD_SYNS; i++) {
		struct lb_flow_key k = flood_key(i, true);
		uint64_t now = t0 + SEC + (uint64_t)i * (4 * SEC / FLOOD_SYNS);

		refused +=
		    ct_insert(t, &k, lb_flow_hash(&k, 5), i, 0, PKT_TCP_SYN, ct_tick(now), &ev) < 0;
		assert_int_not_equal(ev.evicted, CT_EVICT_ESTABLISHED);
		evicted_syn += ev.evicted == CT_EVICT_SYN_ONLY;
	}
	assert_true(evicted_syn > FLOOD_SYNS / 2); /* the flood did fill the table */
	assert_true(refused > 0); /* and reached buckets full of established flows */
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k = flood_key(i, false);

		if (live[i] && ct_find(t, &k, lb_flow_hash(&k, 5), ct_tick(t0 + 5 * SEC)) < 0)
			fail_msg("established flow %u lost to the SYN flood", i);
	}
	for (unsigned i = 0; i < FLOOD_SYNS; i++) {
		struct lb_flow_key k = flood_key(i, true);

		n_syn += ct_find(t, &k, lb_flow_hash(&k, 5), ct_tick(t0 + 5 * SEC)) >= 0;
		assert_int_equal(ct_find(t, &k, lb_flow_hash(&k, 5), ct_tick(t0 + 11 * SEC)), -1);
	}
	assert_true(n_syn > FLOOD_ENTRIES / 4); /* they were there until their timeout */
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k = flood_key(i, false);

		if (live[i])
			assert_true(ct_find(t, &k, lb_flow_hash(&k, 5), ct_tick(t0 + 11 * SEC)) >=
			            0);
	}
	ct_destroy(t);
}

/* A full table of many buckets keeps working: inserts evict, lookups of recent flows hit. */
static void test_full_table(void **state)
{
	struct ct_table *t = ct_create(4096, &PARAMS);
	unsigned evicted = 0, hits = 0;
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < 3 * 4096; i++) {
		struct lb_flow_key k = key4("198.18.100.4", (uint16_t)i, IPPROTO_TCP);

		k.dport = (uint16_t)(i >> 16);
		ct_insert(t, &k, lb_flow_hash(&k, 3), i, 0, 0, ct_tick((uint64_t)i * 1000), &ev);
		evicted += ev.evicted != CT_EVICT_NONE;
	}
	assert_true(evicted >= 2 * 4096);
	for (unsigned i = 3 * 4096 - 256; i < 3 * 4096; i++) {
		struct lb_flow_key k = key4("198.18.100.4", (uint16_t)i, IPPROTO_TCP);

		k.dport = (uint16_t)(i >> 16);
		hits += ct_find(t, &k, lb_flow_hash(&k, 3), ct_tick(3 * 4096 * 1000ull)) >= 0;
	}
	assert_true(hits >= 250); /* the newest flows survive (a bucket holds 8) */
	ct_destroy(t);
}

#define SEED 7u /* flow hash seed of the layout tests */

/* Distinct flow n (up to 2^24): source 198.18.0.0/15 by n / 256, source port by n % 256. */
static struct lb_flow_key flow_n(unsigned n, uint8_t proto)
{
	struct lb_flow_key k = key4("198.18.0.0", 0, proto);

	k.src[1] = (uint8_t)(18 + (n >> 24));
	k.src[2] = (uint8_t)(n >> 16);
	k.src[3] = (uint8_t)(n >> 8);
	k.sport = (uint16_t)(1024 + (n & 0xff));
	return k;
}

/* Flows 0..n-1 of proto (flow_n) are all found at tick now, each with bref its number. */
static void assert_flows_found(const struct ct_table *t, unsigned n, uint8_t proto, uint32_t now)
{
	for (unsigned i = 0; i < n; i++) {
		struct lb_flow_key k = flow_n(i, proto);
		int64_t slot = ct_find(t, &k, lb_flow_hash(&k, SEED), now);

		if (slot < 0)
			fail_msg("flow %u of %u lost", i, n);
		assert_int_equal(bref_at(t, (uint64_t)slot), i);
	}
}

/*
 * The layout's invariants, from scratch: every live way holds a flow whose signature it has, in
 * the flow's first bucket, or in its second with the way's second bit set; and every bucket's away
 * count is the number of ways with that bit whose flow's first bucket it is, plus the decrements
 * still deferred (CT_AWAY_DEFER).
 */
static void check_layout(const struct ct_table *t, uint64_t seed, uint32_t now)
{
	uint32_t *away = calloc(t->n_buckets, sizeof(*away));

	assert_non_null(away);
	for (uint32_t b = 0; b < t->n_buckets; b++) {
		const struct ct_bucket *h = &t->buckets[b];

		for (unsigned i = 0; i < CT_WAYS; i++) {
			const struct ct_entry *e = &t->entries[(uint64_t)b * CT_WAYS + i];
			uint64_t hash = lb_flow_hash(&e->key, seed);
			bool second = h->second & (1u << i);

			if (second)
				away[ct_other_bucket(t, b, h->sig[i])]++;
			if (h->sig[i] == 0 || ct_expired(h->expires[i], now))
				continue;
			assert_int_equal(h->sig[i], ct_sig_of(hash));
			if (second) {
				assert_int_not_equal(ct_bucket_of(t, hash), b);
				assert_int_equal(ct_other_bucket(t, b, h->sig[i]),
				                 ct_bucket_of(t, hash));
			} else {
				assert_int_equal(ct_bucket_of(t, hash), b);
			}
		}
	}
	for (uint32_t x = 0; x < t->defer_n; x++)
		away[t->defer[(t->defer_head + x) % CT_AWAY_DEFER]]++;
	for (uint32_t b = 0; b < t->n_buckets; b++)
		if (t->buckets[b].away != CT_AWAY_STICKY)
			assert_int_equal(t->buckets[b].away, away[b]);
	free(away);
}

/* The other bucket of the other bucket is the bucket itself, for every bucket count and signature.
 */
static void test_other_bucket(void **state)
{
	static const uint32_t entries[] = {CT_WAYS, 2 * CT_WAYS, 3 * CT_WAYS, 1000, 4096, 1u << 20};
	unsigned differs = 0;

	(void)state;
	for (unsigned n = 0; n < ARRAY_SIZE(entries); n++) {
		struct ct_table *t = ct_create(entries[n], &PARAMS);

		assert_non_null(t);
		for (uint32_t sig = 1; sig <= UINT16_MAX; sig += 7) {
			uint32_t b = (uint32_t)(((uint64_t)sig * 2654435761u) % t->n_buckets);
			uint32_t o = ct_other_bucket(t, b, (uint16_t)sig);

			assert_true(o < t->n_buckets);
			assert_int_equal(ct_other_bucket(t, o, (uint16_t)sig), b);
			differs += o != b;
		}
		ct_destroy(t);
	}
	assert_true(differs > 4 * (UINT16_MAX / 7)); /* two buckets, all but 1 in n_buckets */
}

#define FILL_ENTRIES 65536u /* table of the 90% fill test, flows */

/*
 * 90% of a table's capacity in distinct flows, all live: not one is evicted (the 8-way single
 * bucket evicted ~10% of them), some had to be moved to get there, and every one is found.
 */
static void test_fill_90(void **state)
{
	struct ct_table *t = ct_create(FILL_ENTRIES, &PARAMS);
	uint32_t now = ct_tick(100 * SEC), moved = 0, n = FILL_ENTRIES * 9 / 10;
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < n; i++) {
		struct lb_flow_key k = flow_n(i, IPPROTO_UDP);

		assert_true(ct_insert(t, &k, lb_flow_hash(&k, SEED), i, 0, 0, now, &ev) >= 0);
		if (ev.evicted != CT_EVICT_NONE)
			fail_msg("flow %u of %u evicted a live flow", i, n);
		assert_true(ev.moved <= CT_CUCKOO_DEPTH);
		moved += ev.moved;
	}
	assert_true(moved > 0);
	assert_flows_found(t, n, IPPROTO_UDP, now);
	check_layout(t, SEED, now);
	ct_destroy(t);
}

/*
 * Twelve flows with the same first bucket: eight fill it, four go to their second buckets, which
 * lookups and ct_peek then search (away counts them); they expire there like anywhere, and their
 * ways are reused.
 */
static void test_second_bucket(void **state)
{
	struct ct_table *t = ct_create(4096, &PARAMS);
	struct lb_flow_key k[12];
	uint64_t h[12] = {0};
	uint32_t now = ct_tick(100 * SEC), bref, exp;
	unsigned found = 0;
	struct ct_insert_result ev;
	uint8_t fl;

	(void)state;
	memset(k, 0, sizeof(k));
	for (unsigned n = 0; found < 12 && n < 1u << 20; n++) {
		k[found] = flow_n(n, IPPROTO_UDP);
		h[found] = lb_flow_hash(&k[found], SEED);
		found += ct_bucket_of(t, h[found]) == 0 &&
		         ct_other_bucket(t, 0, ct_sig_of(h[found])) != 0;
	}
	assert_int_equal(found, 12);
	for (unsigned i = 0; i < 12; i++) {
		int64_t slot = ct_insert(t, &k[i], h[i], 100 + i, 0, 0, now, &ev);
		uint32_t b = i < CT_WAYS ? 0 : ct_other_bucket(t, 0, ct_sig_of(h[i]));

		assert_int_equal(ev.evicted, CT_EVICT_NONE);
		assert_int_equal(slot / CT_WAYS, b);
	}
	assert_int_equal(t->buckets[0].away, 4);
	for (unsigned i = 0; i < 12; i++) {
		assert_int_equal(bref_at(t, (uint64_t)ct_find(t, &k[i], h[i], now)), 100 + i);
		assert_true(ct_peek(t, &k[i], h[i], &bref, NULL, &exp, &fl));
		assert_int_equal(bref, 100 + i);
	}
	check_layout(t, SEED, now);
	/* 31 s later (UDP: 30 s) all have expired; a flow of bucket 0 takes way 0 again. */
	now = ct_tick(131 * SEC);
	for (unsigned i = 0; i < 12; i++)
		assert_int_equal(ct_find(t, &k[i], h[i], now), -1);
	assert_int_equal(ct_insert(t, &k[11], h[11], 7, 0, 0, now, &ev), 0);
	assert_int_equal(ct_find(t, &k[11], h[11], now), 0);
	assert_true(ct_peek(t, &k[11], h[11], &bref, NULL, &exp, &fl));
	assert_int_equal(bref, 7); /* the live copy, not the expired one in its second bucket */
	check_layout(t, SEED, now);
	ct_destroy(t);
}

/*
 * A small table filled until an insert finds both its buckets full: room is made by moving flows
 * (at most CT_CUCKOO_DEPTH), nothing is evicted, and every flow inserted before is still found.
 */
static void test_cuckoo_move(void **state)
{
	struct ct_table *t = ct_create(16 * CT_WAYS, &PARAMS);
	uint32_t now = ct_tick(100 * SEC);
	struct ct_insert_result ev;
	unsigned n = 0;

	(void)state;
	do {
		struct lb_flow_key k = flow_n(n, IPPROTO_TCP);

		assert_true(ct_insert(t, &k, lb_flow_hash(&k, SEED), n, 0, PKT_TCP_ACK, now, &ev) >=
		            0);
		assert_int_equal(ev.evicted, CT_EVICT_NONE);
		assert_true(ev.moved <= CT_CUCKOO_DEPTH);
		n++;
	} while (!ev.moved && n < ct_capacity(t));
	assert_true(ev.moved > 0);
	assert_flows_found(t, n, IPPROTO_TCP, now);
	check_layout(t, SEED, now);
	ct_destroy(t);
}

/* Of a flow's first and second buckets (c = 0, 1): has a free way, has a live SYN-only way. */
struct two_buckets {
	uint32_t b[2];
	bool free[2], syn[2];
};

static struct two_buckets two_buckets_of(const struct ct_table *t, uint64_t hash, uint32_t now)
{
	struct two_buckets x = {{ct_bucket_of(t, hash), 0}, {false, false}, {false, false}};

	x.b[1] = ct_other_bucket(t, x.b[0], ct_sig_of(hash));
	for (unsigned c = 0; c < 2; c++)
		for (unsigned i = 0; i < CT_WAYS; i++) {
			const struct ct_bucket *h = &t->buckets[x.b[c]];
			bool live = h->sig[i] && !ct_expired(h->expires[i], now);

			x.free[c] |= !live;
			x.syn[c] |= live && (h->flags[i] & CT_F_SYN);
		}
	return x;
}

#define FULL_ENTRIES 4096u /* table of the full-table eviction order test, flows */

/*
 * A full table (75% established, the rest and more SYN-only): a SYN-only newcomer never moves or
 * evicts an established flow, goes to its first bucket whenever that has room or a SYN-only flow,
 * and is refused only when neither bucket has; an established newcomer evicts a SYN-only flow
 * whenever one of its buckets holds one (and no way is free), and an established flow only when
 * neither does.
 */
static void test_full_eviction_order(void **state)
{
	struct ct_table *t = ct_create(FULL_ENTRIES, &PARAMS);
	uint32_t now = ct_tick(1000 * SEC);
	unsigned n_est = FULL_ENTRIES * 3 / 4, refused = 0, evicted_est = 0, evicted_syn = 0;
	struct ct_insert_result ev;

	(void)state;
	for (unsigned i = 0; i < n_est; i++) {
		struct lb_flow_key k = flow_n(i, IPPROTO_TCP);

		ct_insert(t, &k, lb_flow_hash(&k, SEED), i, 0, PKT_TCP_ACK, now, &ev);
		assert_int_equal(ev.evicted, CT_EVICT_NONE);
	}
	/* SYN-only newcomers: their first bucket if it has room or a SYN-only way, never moving. */
	for (unsigned i = n_est; i < n_est + 2 * FULL_ENTRIES; i++) {
		struct lb_flow_key k = flow_n(i, IPPROTO_TCP);
		uint64_t hash = lb_flow_hash(&k, SEED);
		struct two_buckets x = two_buckets_of(t, hash, now);
		int64_t r = ct_insert(t, &k, hash, i, 0, PKT_TCP_SYN, now, &ev);

		assert_int_not_equal(ev.evicted, CT_EVICT_ESTABLISHED);
		assert_int_equal(ev.moved, 0);
		if (x.free[0] || x.syn[0]) {
			assert_int_equal(r / CT_WAYS, x.b[0]);
		} else if (x.free[1] || x.syn[1]) {
			assert_int_equal(r / CT_WAYS, x.b[1]);
		} else {
			assert_int_equal(r, -ENOSPC);
			refused++;
		}
	}
	assert_true(refused > 0);
	for (unsigned i = 0; i < n_est; i++) {
		struct lb_flow_key k = flow_n(i, IPPROTO_TCP);

		assert_true(ct_find(t, &k, lb_flow_hash(&k, SEED), now) >= 0);
	}
	/* Established newcomers: a free way, else a SYN-only way, else a move or an eviction. */
	for (unsigned i = 3 * FULL_ENTRIES; i < 3 * FULL_ENTRIES + FULL_ENTRIES / 2; i++) {
		struct lb_flow_key k = flow_n(i, IPPROTO_TCP);
		uint64_t hash = lb_flow_hash(&k, SEED);
		struct two_buckets x = two_buckets_of(t, hash, now);

		assert_true(ct_insert(t, &k, hash, i, 0, PKT_TCP_ACK, now, &ev) >= 0);
		if (x.free[0] || x.free[1])
			assert_int_equal(ev.evicted, CT_EVICT_NONE);
		else if (x.syn[0] || x.syn[1])
			assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
		else
			assert_true(ev.evicted == CT_EVICT_ESTABLISHED || ev.moved > 0);
		evicted_syn += ev.evicted == CT_EVICT_SYN_ONLY;
		evicted_est += ev.evicted == CT_EVICT_ESTABLISHED;
	}
	assert_true(evicted_syn > 0);
	assert_true(evicted_est > 0);
	check_layout(t, SEED, now);
	ct_destroy(t);
}

/*
 * max_inserts entries a second: the next new flow in the same second is refused (-EAGAIN) and
 * leaves nothing behind; a second later there is room again. Lookups and refreshes are not
 * counted, and 0 is unlimited.
 */
static void test_insert_cap(void **state)
{
	struct ct_params p = PARAMS;
	struct ct_table *t, *unlimited = ct_create(1024, &PARAMS);
	uint64_t t0 = 500 * SEC;
	struct ct_insert_result ev;
	struct lb_flow_key k;

	(void)state;
	p.max_inserts = 100;
	t = ct_create(1024, &p);
	for (unsigned i = 0; i < 100; i++) {
		k = flow_n(i, IPPROTO_UDP);
		assert_true(ct_insert(t, &k, lb_flow_hash(&k, SEED), i, 0, 0, ct_tick(t0), &ev) >=
		            0);
		assert_true(ct_insert(unlimited, &k, lb_flow_hash(&k, SEED), i, 0, 0, ct_tick(t0),
		                      &ev) >= 0);
	}
	k = flow_n(0, IPPROTO_UDP);
	ct_touch(t, (uint64_t)ct_find(t, &k, lb_flow_hash(&k, SEED), ct_tick(t0)), IPPROTO_UDP, 0,
	         ct_tick(t0 + SEC / 2));
	k = flow_n(100, IPPROTO_UDP);
	assert_int_equal(
	    ct_insert(t, &k, lb_flow_hash(&k, SEED), 100, 0, 0, ct_tick(t0 + SEC / 2), &ev),
	    -EAGAIN);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	assert_int_equal(ct_find(t, &k, lb_flow_hash(&k, SEED), ct_tick(t0 + SEC / 2)), -1);
	assert_true(ct_insert(unlimited, &k, lb_flow_hash(&k, SEED), 100, 0, 0, ct_tick(t0), &ev) >=
	            0);
	assert_true(
	    ct_insert(t, &k, lb_flow_hash(&k, SEED), 100, 0, 0, ct_tick(t0 + 2 * SEC), &ev) >= 0);
	assert_true(ct_find(t, &k, lb_flow_hash(&k, SEED), ct_tick(t0 + 2 * SEC)) >= 0);
	ct_destroy(t);
	ct_destroy(unlimited);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_find_insert),
	    cmocka_unit_test(test_eviction),
	    cmocka_unit_test(test_expired_reuse),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_syn_only),
	    cmocka_unit_test(test_syn_eviction_order),
	    cmocka_unit_test(test_syn_flood),
	    cmocka_unit_test(test_full_table),
	    cmocka_unit_test(test_other_bucket),
	    cmocka_unit_test(test_fill_90),
	    cmocka_unit_test(test_second_bucket),
	    cmocka_unit_test(test_cuckoo_move),
	    cmocka_unit_test(test_full_eviction_order),
	    cmocka_unit_test(test_insert_cap),
	};

	return cmocka_run_group_tests_name("conntrack", tests, NULL, NULL);
}
