/* Connection table tests: lookup by full key, eviction when a bucket is full, timeouts, size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/conntrack.h"
#include "core/pkt.h"
#include "fixtures/test_config.h"

#define SEC (1000000000ull)

static const struct ct_timeouts TO = {.tcp = 300, .tcp_fin = 10, .udp = 30, .other = 10};

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
	struct ct_table *t = ct_create(1024, &TO);
	struct lb_flow_key k = key4("198.18.100.1", 1000, IPPROTO_TCP), k2 = k;
	uint64_t h = lb_flow_hash(&k, 1), slot;
	uint32_t now = ct_tick(100 * SEC), bref, exp;
	bool ev;

	(void)state;
	assert_non_null(t);
	assert_int_equal(ct_capacity(t), 1024);
	assert_int_equal(ct_find(t, &k, h, now), -1);
	slot = ct_insert(t, &k, h, 0x00050003u, PKT_TCP_SYN, now, &ev);
	assert_false(ev);
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
	assert_true(ct_peek(t, &k, h, &bref, &exp));
	assert_int_equal(bref, 0x00050003u);
	assert_true(exp > now);
	assert_false(ct_peek(t, &k2, h, &bref, &exp));
	ct_set_bref(t, slot, 7);
	assert_int_equal(ct_bref(t, slot), 7);
	ct_destroy(t);
}

/* One bucket (8 ways): the ninth flow evicts the one closest to expiry, nothing else. */
static void test_eviction(void **state)
{
	struct ct_table *t = ct_create(CT_WAYS, &TO);
	struct lb_flow_key k[CT_WAYS + 1];
	bool ev;

	(void)state;
	assert_int_equal(ct_capacity(t), CT_WAYS);
	for (unsigned i = 0; i <= CT_WAYS; i++)
		k[i] = key4("198.18.100.1", (uint16_t)(2000 + i), IPPROTO_UDP);
	for (unsigned i = 0; i < CT_WAYS; i++) {
		ct_insert(t, &k[i], lb_flow_hash(&k[i], 1), i, 0, ct_tick((10 + i) * SEC), &ev);
		assert_false(ev);
	}
	/* Flow 0 is refreshed last: flow 1 is now the oldest. */
	ct_touch(t, (uint64_t)ct_find(t, &k[0], lb_flow_hash(&k[0], 1), ct_tick(20 * SEC)),
	         IPPROTO_UDP, 0, ct_tick(20 * SEC));
	ct_insert(t, &k[CT_WAYS], lb_flow_hash(&k[CT_WAYS], 1), 99, 0, ct_tick(21 * SEC), &ev);
	assert_true(ev);
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
	struct ct_table *t = ct_create(CT_WAYS, &TO);
	struct lb_flow_key k;
	bool ev;

	(void)state;
	for (unsigned i = 0; i < CT_WAYS; i++) {
		k = key4("198.18.100.2", (uint16_t)(3000 + i), IPPROTO_UDP);
		ct_insert(t, &k, lb_flow_hash(&k, 1), i, 0, ct_tick(10 * SEC), &ev);
	}
	k = key4("198.18.100.2", 4000, IPPROTO_UDP);
	ct_insert(t, &k, lb_flow_hash(&k, 1), 1, 0, ct_tick(50 * SEC), &ev);
	assert_false(ev);
	ct_destroy(t);
}

/* Timeouts by protocol: UDP 30 s, TCP 300 s, TCP after FIN/RST 10 s, a new SYN long again. */
static void test_timeouts(void **state)
{
	struct ct_table *t = ct_create(1024, &TO);
	struct lb_flow_key u = key4("198.18.100.3", 1, IPPROTO_UDP);
	struct lb_flow_key c = key4("198.18.100.3", 2, IPPROTO_TCP);
	uint64_t hu = lb_flow_hash(&u, 9), hc = lb_flow_hash(&c, 9), t0 = 5000 * SEC;
	int64_t s;
	bool ev;

	(void)state;
	ct_insert(t, &u, hu, 1, 0, ct_tick(t0), &ev);
	assert_true(ct_find(t, &u, hu, ct_tick(t0 + 29 * SEC)) >= 0);
	assert_int_equal(ct_find(t, &u, hu, ct_tick(t0 + 33 * SEC)), -1);

	ct_insert(t, &c, hc, 2, PKT_TCP_SYN, ct_tick(t0), &ev);
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
	assert_true(ct_find(t, &c, hc, ct_tick(t0 + 400 * SEC)) >= 0);
	ct_destroy(t);
}

/* A full table of many buckets keeps working: inserts evict, lookups of recent flows hit. */
static void test_full_table(void **state)
{
	struct ct_table *t = ct_create(4096, &TO);
	unsigned evicted = 0, hits = 0;
	bool ev;

	(void)state;
	for (unsigned i = 0; i < 3 * 4096; i++) {
		struct lb_flow_key k = key4("198.18.100.4", (uint16_t)i, IPPROTO_TCP);

		k.dport = (uint16_t)(i >> 16);
		ct_insert(t, &k, lb_flow_hash(&k, 3), i, 0, ct_tick((uint64_t)i * 1000), &ev);
		evicted += ev;
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
	    cmocka_unit_test(test_sizes),    cmocka_unit_test(test_find_insert),
	    cmocka_unit_test(test_eviction), cmocka_unit_test(test_expired_reuse),
	    cmocka_unit_test(test_timeouts), cmocka_unit_test(test_full_table),
	};

	return cmocka_run_group_tests_name("conntrack", tests, NULL, NULL);
}
