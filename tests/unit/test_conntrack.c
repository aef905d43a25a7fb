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

#include <cmocka.h>

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
	slot = (uint64_t)ct_insert(t, &k, h, 0x00050003u, PKT_TCP_SYN, now, &ev);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	assert_int_equal(ct_find(t, &k, h, now), (int64_t)slot);
	assert_int_equal(ct_bref(t, slot), 0x00050003u);
	/* Same hash, one key byte different (a forced collision): never confused. */
	k2.src[3] ^= 1;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	k2 = k;
	k2.sport ^= 1;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	k2 = k;
	k2.proto = IPPROTO_UDP;
	assert_int_equal(ct_find(t, &k2, h, now), -1);
	assert_true(ct_peek(t, &k, h, &bref, &exp, &fl));
	assert_int_equal(bref, 0x00050003u);
	assert_true(exp > now);
	assert_int_equal(fl, CT_F_SYN);
	assert_false(ct_peek(t, &k2, h, &bref, &exp, &fl));
	ct_set_bref(t, slot, 7);
	assert_int_equal(ct_bref(t, slot), 7);
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
		ct_insert(t, &k[i], lb_flow_hash(&k[i], 1), i, 0, ct_tick((10 + i) * SEC), &ev);
		assert_int_equal(ev.evicted, CT_EVICT_NONE);
	}
	/* Flow 0 is refreshed last: flow 1 is now the oldest. */
	ct_touch(t, (uint64_t)ct_find(t, &k[0], lb_flow_hash(&k[0], 1), ct_tick(20 * SEC)),
	         IPPROTO_UDP, 0, ct_tick(20 * SEC));
	ct_insert(t, &k[CT_WAYS], lb_flow_hash(&k[CT_WAYS], 1), 99, 0, ct_tick(21 * SEC), &ev);
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
		ct_insert(t, &k, lb_flow_hash(&k, 1), i, 0, ct_tick(10 * SEC), &ev);
	}
	k = key4("198.18.100.2", 4000, IPPROTO_UDP);
	ct_insert(t, &k, lb_flow_hash(&k, 1), 1, 0, ct_tick(50 * SEC), &ev);
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
	ct_insert(t, &u, hu, 1, 0, ct_tick(t0), &ev);
	assert_true(ct_find(t, &u, hu, ct_tick(t0 + 29 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &u, hu, ct_tick(t0 + 33 * SEC)), -1);

	s = ct_insert(t, &c, hc, 2, PKT_TCP_SYN, ct_tick(t0), &ev);
	assert_true(s >= 0);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_ACK, ct_tick(t0 + 1 * SEC));
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 299 * SEC)) >= 0);
	s = ct_find(t, &c, hc, ct_tick(t0 + 100 * SEC));
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_FIN | PKT_TCP_ACK, ct_tick(t0 + 100 * SEC));
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 109 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &c, hc, ct_tick(t0 + 113 * SEC)), -1);

	ct_insert(t, &c, hc, 2, PKT_TCP_RST, ct_tick(t0 + 200 * SEC), &ev);
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
	s = ct_insert(t, &a, ha, 1, PKT_TCP_SYN, ct_tick(t0), &ev);
	assert_true(s >= 0);
	assert_true(ct_find(t, &a, ha, ct_tick(t0 + 4 * SEC)) >= 0);
	/* Retransmits at 1 s and 3 s: alive until 3 + 5 s, not longer. */
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 1 * SEC));
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 3 * SEC));
	assert_true(ct_peek(t, &a, ha, &bref, &exp, &fl));
	assert_int_equal(fl, CT_F_SYN);
	assert_true(ct_find(t, &a, ha, ct_tick(t0 + 7 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &a, ha, ct_tick(t0 + 9 * SEC)), -1);

	/* Promoted by the ACK: established, 300 s; a later bare SYN does not demote it. */
	s = ct_insert(t, &b, hb, 2, PKT_TCP_SYN, ct_tick(t0), &ev);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_ACK, ct_tick(t0 + 2 * SEC));
	assert_true(ct_peek(t, &b, hb, &bref, &exp, &fl));
	assert_int_equal(fl, 0);
	ct_touch(t, (uint64_t)s, IPPROTO_TCP, PKT_TCP_SYN, ct_tick(t0 + 3 * SEC));
	assert_true(ct_peek(t, &b, hb, &bref, &exp, &fl));
	assert_int_equal(fl, 0);
	assert_true(ct_find(t, &b, hb, ct_tick(t0 + 302 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &b, hb, ct_tick(t0 + 304 * SEC)), -1);

	/* A flow first seen mid-connection (an ACK, a failover) is established at once. */
	ct_insert(t, &a, ha, 1, PKT_TCP_ACK, ct_tick(t0 + 10 * SEC), &ev);
	assert_true(ct_peek(t, &a, ha, &bref, &exp, &fl));
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
		ct_insert(t, &k[i], h[i], i, PKT_TCP_ACK, ct_tick((1000 + i) * SEC), &ev);
	ct_insert(t, &k[7], h[7], 7, PKT_TCP_SYN, ct_tick(1298 * SEC), &ev);
	ct_insert(t, &k[6], h[6], 6, PKT_TCP_SYN, ct_tick(1297 * SEC), &ev);
	now = ct_tick(1299 * SEC);
	/* An established newcomer takes the SYN-only way closest to expiry (6). */
	assert_true(ct_insert(t, &k[8], h[8], 8, PKT_TCP_ACK, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[6], h[6], now), -1);
	assert_true(ct_find(t, &k[7], h[7], now) >= 0);
	/* A SYN-only one takes the other SYN-only way (7), then its own. */
	assert_true(ct_insert(t, &k[9], h[9], 9, PKT_TCP_SYN, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[7], h[7], now), -1);
	assert_true(ct_insert(t, &k[10], h[10], 10, PKT_TCP_SYN, now, &ev) >= 0);
	assert_int_equal(ev.evicted, CT_EVICT_SYN_ONLY);
	assert_int_equal(ct_find(t, &k[9], h[9], now), -1);
	/* Promote 10: eight established ways. A bare SYN is refused and changes nothing. */
	ct_touch(t, (uint64_t)ct_find(t, &k[10], h[10], now), IPPROTO_TCP, PKT_TCP_ACK, now);
	assert_int_equal(ct_insert(t, &k[11], h[11], 11, PKT_TCP_SYN, now, &ev), -ENOSPC);
	assert_int_equal(ev.evicted, CT_EVICT_NONE);
	assert_int_equal(ct_find(t, &k[11], h[11], now), -1);
	for (unsigned i = 0; i <= 10; i++)
		if (i != 6 && i != 7 && i != 9)
			assert_true(ct_find(t, &k[i], h[i], now) >= 0);
	/* An established newcomer evicts the established way closest to expiry (0). */
	assert_true(ct_insert(t, &k[11], h[11], 11, PKT_TCP_ACK, now, &ev) >= 0);
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

		ct_insert(t, &k, lb_flow_hash(&k, 5), i, PKT_TCP_ACK, ct_tick(t0), &ev);
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
		    ct_insert(t, &k, lb_flow_hash(&k, 5), i, PKT_TCP_SYN, ct_tick(now), &ev) < 0;
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
		ct_insert(t, &k, lb_flow_hash(&k, 3), i, 0, ct_tick((uint64_t)i * 1000), &ev);
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
	};

	return cmocka_run_group_tests_name("conntrack", tests, NULL, NULL);
}
