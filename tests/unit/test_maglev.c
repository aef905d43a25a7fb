/* SPDX-License-Identifier: GPL-2.0-only */
/* Unit tests of the Maglev table: known answers, balance, weights, disruption, digest, errors. */
#include <errno.h>
#include <fenv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "base/util.h"
#include "core/maglev.h"

#define SEED 0x5eedull

/* Small deterministic PRNG (splitmix64) so every run tests the same cases. */
static uint64_t rng_state = 0x1234567ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rng_below(uint32_t n)
{
	return (uint32_t)(rng_next() % n);
}

/* n distinct keys: IPv4-like 4-byte keys 198.18.x.y, every third one a 16-byte IPv6-like key. */
struct keyset {
	uint8_t (*bytes)[16];
	struct maglev_backend *b;
	uint32_t n;
};

static void keyset_make(struct keyset *ks, uint32_t n, uint32_t salt, bool mixed)
{
	ks->bytes = calloc(n, 16);
	ks->b = calloc(n, sizeof(*ks->b));
	ks->n = n;
	assert_non_null(ks->bytes);
	assert_non_null(ks->b);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t v = i + salt * 100000u;
		bool v6 = mixed && i % 3 == 2;

		if (v6) {
			ks->bytes[i][0] = 0x20;
			ks->bytes[i][1] = 0x01;
			ks->bytes[i][2] = 0x0d;
			ks->bytes[i][3] = 0xb8;
			ks->bytes[i][12] = (uint8_t)(v >> 24);
			ks->bytes[i][13] = (uint8_t)(v >> 16);
			ks->bytes[i][14] = (uint8_t)(v >> 8);
			ks->bytes[i][15] = (uint8_t)v;
		} else {
			ks->bytes[i][0] = 198;
			ks->bytes[i][1] = (uint8_t)(18 + (v >> 16));
			ks->bytes[i][2] = (uint8_t)(v >> 8);
			ks->bytes[i][3] = (uint8_t)v;
		}
		ks->b[i] = (struct maglev_backend){ks->bytes[i], v6 ? 16 : 4, 1};
	}
}

static void keyset_free(struct keyset *ks)
{
	free(ks->bytes);
	free(ks->b);
}

static void shuffle(struct maglev_backend *b, uint32_t n)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = rng_below(i);
		struct maglev_backend t = b[i - 1];

		b[i - 1] = b[j];
		b[j] = t;
	}
}

static int key_cmp(const struct maglev_backend *a, const struct maglev_backend *b)
{
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	return memcmp(a->key, b->key, a->key_len);
}

/*
 * Reference population, written as literally as docs/maglev.md states it: permutation positions
 * with %, round r = 1, 2, ... in which backend i (in index order) takes a turn iff
 * weight > 0 and claimed * wmax < r * weight; a turn walks the permutation to the first empty slot.
 */
static void ref_populate(uint16_t *table, uint32_t m, const struct maglev_perm *p,
                         const uint32_t *w, uint32_t n)
{
	uint64_t *next = calloc(n, sizeof(*next)), *claimed = calloc(n, sizeof(*claimed));
	uint32_t wmax = 0, filled = 0;

	assert_non_null(next);
	assert_non_null(claimed);
	for (uint32_t s = 0; s < m; s++)
		table[s] = MAGLEV_EMPTY;
	for (uint32_t i = 0; i < n; i++)
		if (w[i] > wmax)
			wmax = w[i];
	for (uint64_t r = 1; wmax && filled < m; r++) {
		for (uint32_t i = 0; i < n && filled < m; i++) {
			uint32_t c;

			if (w[i] == 0 || claimed[i] * wmax >= r * w[i])
				continue;
			c = (uint32_t)((p[i].offset + next[i] * p[i].skip) % m);
			while (table[c] != MAGLEV_EMPTY) {
				next[i]++;
				c = (uint32_t)((p[i].offset + next[i] * p[i].skip) % m);
			}
			table[c] = (uint16_t)i;
			next[i]++;
			claimed[i]++;
			filled++;
		}
	}
	free(next);
	free(claimed);
}

/* Reference build: sort by key, perms straight from XXH64 as documented, then ref_populate. */
struct ref_entry {
	struct maglev_backend b;
	uint16_t idx; /* position in the caller's array */
};

static int ref_entry_cmp(const void *pa, const void *pb)
{
	return key_cmp(&((const struct ref_entry *)pa)->b, &((const struct ref_entry *)pb)->b);
}

static void ref_build(uint16_t *table, uint32_t m, const struct maglev_backend *b, uint32_t n,
                      uint64_t seed)
{
	struct ref_entry *s = malloc(n * sizeof(*s));
	struct maglev_perm *p = calloc(n, sizeof(*p)); /* calloc: GCC's -O1 maybe-uninitialized */
	uint32_t *w = calloc(n, sizeof(*w));

	assert_true(s && p && w);
	for (uint32_t i = 0; i < n; i++)
		s[i] = (struct ref_entry){b[i], (uint16_t)i};
	qsort(s, n, sizeof(*s), ref_entry_cmp);
	for (uint32_t i = 0; i < n; i++) {
		p[i].offset = (uint32_t)(XXH64(s[i].b.key, s[i].b.key_len, seed) % m);
		p[i].skip =
		    (uint32_t)(XXH64(s[i].b.key, s[i].b.key_len, seed ^ 0x9e3779b97f4a7c15ull) %
		               (m - 1)) +
		    1;
		w[i] = s[i].b.weight;
	}
	ref_populate(table, m, p, w, n);
	for (uint32_t x = 0; x < m; x++)
		if (table[x] != MAGLEV_EMPTY)
			table[x] = s[table[x]].idx;
	free(s);
	free(p);
	free(w);
}

/* Reference digest: one-shot XXH64 over le64(M) then le64(XXH64(key, 0)) per slot (0 = empty). */
static uint64_t ref_digest(const uint16_t *table, uint32_t m, const struct maglev_backend *b)
{
	uint8_t *buf = malloc(8 * ((size_t)m + 1));
	uint64_t d;

	assert_non_null(buf);
	for (uint32_t s = 0; s <= m; s++) {
		uint64_t v = s == 0 ? m
		             : table[s - 1] == MAGLEV_EMPTY
		                 ? 0
		                 : XXH64(b[table[s - 1]].key, b[table[s - 1]].key_len, 0);

		for (int i = 0; i < 8; i++)
			buf[8 * s + i] = (uint8_t)(v >> (8 * i));
	}
	d = XXH64(buf, 8 * ((size_t)m + 1), 0);
	free(buf);
	return d;
}

static void test_size_valid(void **state)
{
	(void)state;
	assert_true(maglev_size_valid(7));
	assert_true(maglev_size_valid(65537));
	assert_true(maglev_size_valid(655373));
	assert_true(maglev_size_valid(MAGLEV_SIZE_MAX));
	assert_false(maglev_size_valid(5));
	assert_false(maglev_size_valid(9));
	assert_false(maglev_size_valid(65536));
	assert_false(maglev_size_valid(65539 * 3));
	assert_false(maglev_size_valid(1048583)); /* prime, above MAGLEV_SIZE_MAX */
}

/* The paper's example (NSDI 2016, Table 1 and 2): M = 7, explicit offset/skip. */
static void test_paper_known_answer(void **state)
{
	const struct maglev_perm p3[3] = {{3, 4}, {0, 2}, {3, 1}};
	const struct maglev_perm p2[2] = {{3, 4}, {3, 1}};
	const uint32_t w[3] = {1, 1, 1};
	const uint16_t want3[7] = {1, 0, 1, 0, 2, 2, 0};
	const uint16_t want2[7] = {0, 0, 0, 0, 1, 1, 1}; /* B0, B2 */
	uint16_t t[7];

	(void)state;
	assert_int_equal(maglev_populate(t, 7, p3, w, 3), 0);
	assert_memory_equal(t, want3, sizeof(t));
	assert_int_equal(maglev_populate(t, 7, p2, w, 2), 0);
	assert_memory_equal(t, want2, sizeof(t));
}

/*
 * Weighted known answer worked by hand (docs/maglev.md): B0 (3,4) weight 2, B1 (0,2) weight 1.
 * Rounds: r1 B0->3, B1->0; r2 B0->4 (0 used); r3 B0->1, B1->2; r4 B0->5; r5 B0->6 (2 used), full.
 */
static void test_weighted_known_answer(void **state)
{
	const struct maglev_perm p[2] = {{3, 4}, {0, 2}};
	const uint32_t w[2] = {2, 1};
	const uint16_t want[7] = {1, 0, 1, 0, 0, 0, 0};
	uint16_t t[7];

	(void)state;
	assert_int_equal(maglev_populate(t, 7, p, w, 2), 0);
	assert_memory_equal(t, want, sizeof(t));
}

static void test_perm_from_key(void **state)
{
	const uint8_t k4[4] = {198, 18, 1, 11};
	struct maglev_perm p;

	(void)state;
	maglev_perm_from_key(&p, k4, 4, SEED, 65537);
	assert_int_equal(p.offset, XXH64(k4, 4, SEED) % 65537);
	assert_int_equal(p.skip, XXH64(k4, 4, SEED ^ MAGLEV_SKIP_SEED_XOR) % 65536 + 1);
	for (uint32_t i = 0; i < 1000; i++) {
		uint8_t k[16];
		uint32_t m = i % 2 ? 7 : 655373;

		for (int j = 0; j < 16; j++)
			k[j] = (uint8_t)rng_next();
		maglev_perm_from_key(&p, k, 16, rng_next(), m);
		assert_true(p.offset < m);
		assert_true(p.skip >= 1 && p.skip < m);
	}
}

/* Equal weights: every backend gets floor(M/N) or ceil(M/N) slots, exactly. */
static void check_balance(uint32_t n, uint32_t m, bool mixed)
{
	struct keyset ks;
	uint16_t *t = malloc(m * sizeof(*t));
	uint32_t *slots = malloc(n * sizeof(*slots));
	uint32_t lo = m / n, hi = (m + n - 1) / n, n_hi = 0;

	assert_true(t && slots);
	keyset_make(&ks, n, 1, mixed);
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	maglev_count(t, m, slots, n);
	for (uint32_t i = 0; i < n; i++) {
		assert_in_range(slots[i], lo, hi);
		n_hi += slots[i] == hi && hi != lo;
	}
	for (uint32_t s = 0; s < m; s++)
		assert_true(t[s] < n);
	/* Exactly M mod N backends carry the extra slot. */
	assert_int_equal(n_hi, m % n);
	keyset_free(&ks);
	free(t);
	free(slots);
}

static void test_balance(void **state)
{
	(void)state;
	check_balance(1000, 65537, false);
	check_balance(1000, 65537, true);
	check_balance(3, 7, false);
	check_balance(7, 7, true);
	check_balance(10, 7, false); /* N > M: 7 backends get one slot, 3 get none */
	check_balance(997, 655373, true);
}

/* Table in key terms: the same key lands in the same slot whatever the input order. */
static void test_order_independent(void **state)
{
	const uint32_t n = 500, m = 65537;
	struct keyset ks;
	uint16_t *t0 = malloc(m * sizeof(*t0)), *t1 = malloc(m * sizeof(*t1));
	struct maglev_backend *copy = malloc(n * sizeof(*copy));

	(void)state;
	assert_true(t0 && t1 && copy);
	keyset_make(&ks, n, 2, true);
	for (uint32_t i = 0; i < n; i++)
		ks.b[i].weight = 1 + i % 5;
	assert_int_equal(maglev_build(t0, m, ks.b, n, SEED), 0);
	for (int round = 0; round < 5; round++) {
		memcpy(copy, ks.b, n * sizeof(*copy));
		shuffle(copy, n);
		assert_int_equal(maglev_build(t1, m, copy, n, SEED), 0);
		for (uint32_t s = 0; s < m; s++)
			assert_ptr_equal(copy[t1[s]].key, ks.b[t0[s]].key);
		assert_true(maglev_digest(t1, m, copy, n) == maglev_digest(t0, m, ks.b, n));
	}
	keyset_free(&ks);
	free(t0);
	free(t1);
	free(copy);
}

/*
 * Weighted shares. With R the round in which the table fills, backend i has taken t_i turns with
 * R*w_i/wmax - 1 <= t_i < R*w_i/wmax + 1; summing, |M - R*W/wmax| <= N. Hence
 * |slots_i - M*w_i/W| < 1 + N*w_i/W: the tolerance asserted here (docs/maglev.md).
 */
static void check_weighted(uint32_t n, uint32_t m, const uint32_t *weights)
{
	struct keyset ks;
	uint16_t *t = malloc(m * sizeof(*t));
	uint32_t *slots = malloc(n * sizeof(*slots));
	uint64_t wsum = 0;

	assert_true(t && slots);
	keyset_make(&ks, n, 3, true);
	for (uint32_t i = 0; i < n; i++) {
		ks.b[i].weight = weights[i];
		wsum += weights[i];
	}
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	maglev_count(t, m, slots, n);
	for (uint32_t i = 0; i < n; i++) {
		double ideal = (double)m * weights[i] / (double)wsum;
		double tol = 1.0 + (double)n * weights[i] / (double)wsum;
		double dev = slots[i] > ideal ? slots[i] - ideal : ideal - slots[i];

		if (dev >= tol)
			fail_msg("backend %u weight %u: %u slots, ideal %.2f, tolerance %.2f", i,
			         weights[i], slots[i], ideal, tol);
		if (weights[i] == 0)
			assert_int_equal(slots[i], 0);
	}
	keyset_free(&ks);
	free(t);
	free(slots);
}

static void test_weighted_shares(void **state)
{
	uint32_t w3[3] = {1, 2, 3};
	uint32_t w300[300], wr[200], wx[50];
	uint32_t share[3] = {0};

	(void)state;
	check_weighted(3, 65537, w3);
	check_weighted(3, 7, w3);
	for (uint32_t i = 0; i < 300; i++)
		w300[i] = 1 + i % 3;
	check_weighted(300, 65537, w300);
	for (uint32_t i = 0; i < 200; i++)
		wr[i] = rng_below(5) == 0 ? 0 : 1 + rng_below(1000);
	check_weighted(200, 65537, wr);
	for (uint32_t i = 0; i < 50; i++)
		wx[i] = i == 0 ? MAGLEV_WEIGHT_MAX : 1;
	check_weighted(50, 655373, wx);

	/* 1:2:3 over three backends: shares within 3 slots of 1/6, 2/6, 3/6. */
	{
		struct keyset ks;
		uint16_t t[65537];

		keyset_make(&ks, 3, 4, false);
		for (uint32_t i = 0; i < 3; i++)
			ks.b[i].weight = i + 1;
		assert_int_equal(maglev_build(t, 65537, ks.b, 3, SEED), 0);
		maglev_count(t, 65537, share, 3);
		assert_in_range(share[0], 65537 / 6 - 2, 65537 / 6 + 3);
		assert_in_range(share[1], 2 * 65537 / 6 - 3, 2 * 65537 / 6 + 4);
		assert_in_range(share[2], 3 * 65537 / 6 - 4, 3 * 65537 / 6 + 4);
		keyset_free(&ks);
	}
}

/*
 * Removing k of n backends: slots whose old backend survives but that changed backend
 * ("excess") stay below 2.5% of M for 1% removed at M = 65537; removed backends' slots all move.
 */
static double excess_pct(uint32_t n, uint32_t m, uint32_t removed, uint32_t salt)
{
	struct keyset ks;
	uint16_t *t0 = malloc(m * sizeof(*t0)), *t1 = malloc(m * sizeof(*t1));
	struct maglev_backend *rest = malloc(n * sizeof(*rest));
	bool *gone = calloc(n, sizeof(*gone));
	uint32_t n_rest = 0, excess = 0;

	assert_true(t0 && t1 && rest && gone);
	keyset_make(&ks, n, salt, false);
	assert_int_equal(maglev_build(t0, m, ks.b, n, SEED), 0);
	for (uint32_t r = 0; r < removed;) {
		uint32_t i = rng_below(n);

		if (!gone[i]) {
			gone[i] = true;
			r++;
		}
	}
	for (uint32_t i = 0; i < n; i++)
		if (!gone[i])
			rest[n_rest++] = ks.b[i];
	assert_int_equal(maglev_build(t1, m, rest, n_rest, SEED), 0);
	for (uint32_t s = 0; s < m; s++) {
		const uint8_t *old = ks.b[t0[s]].key, *now = rest[t1[s]].key;

		if (gone[t0[s]])
			assert_ptr_not_equal(old, now);
		else if (old != now)
			excess++;
	}
	keyset_free(&ks);
	free(t0);
	free(t1);
	free(rest);
	free(gone);
	return 100.0 * excess / m;
}

static void test_removal_disruption(void **state)
{
	(void)state;
	for (uint32_t salt = 10; salt < 13; salt++) {
		double pct = excess_pct(1000, 65537, 10, salt);

		if (pct > 2.5)
			fail_msg("excess disruption %.3f%% > 2.5%%", pct);
	}
	/* The paper's example: removing B1 moves only slot 6 besides B1's own slots. */
	{
		const struct maglev_perm p3[3] = {{3, 4}, {0, 2}, {3, 1}};
		const struct maglev_perm p2[2] = {{3, 4}, {3, 1}};
		const uint32_t w[3] = {1, 1, 1};
		uint16_t a[7], b[7];
		const uint16_t map[2] = {0, 2};
		int moved = 0;

		assert_int_equal(maglev_populate(a, 7, p3, w, 3), 0);
		assert_int_equal(maglev_populate(b, 7, p2, w, 2), 0);
		for (int s = 0; s < 7; s++)
			if (a[s] != 1 && a[s] != map[b[s]])
				moved++;
		assert_int_equal(moved, 1);
	}
}

/* Weight 0: no slots, and the table equals the one built without that backend. */
static void test_weight_zero(void **state)
{
	const uint32_t n = 100, m = 65537;
	struct keyset ks;
	uint16_t *t0 = malloc(m * sizeof(*t0)), *t1 = malloc(m * sizeof(*t1));
	uint32_t slots[100];

	(void)state;
	assert_true(t0 && t1);
	keyset_make(&ks, n, 5, true);
	ks.b[17].weight = 0;
	ks.b[42].weight = 0;
	assert_int_equal(maglev_build(t0, m, ks.b, n, SEED), 0);
	maglev_count(t0, m, slots, n);
	assert_int_equal(slots[17], 0);
	assert_int_equal(slots[42], 0);
	/* Drop backend 42 (the last one in the array takes its place). */
	ks.b[42] = ks.b[n - 1];
	assert_int_equal(maglev_build(t1, m, ks.b, n - 1, SEED), 0);
	for (uint32_t s = 0; s < m; s++) {
		uint16_t i0 = t0[s] == n - 1 ? 42 : t0[s];

		assert_int_equal(i0, t1[s]);
	}

	for (uint32_t i = 0; i < n; i++)
		ks.b[i].weight = 0;
	assert_int_equal(maglev_build(t0, m, ks.b, n - 1, SEED), 0);
	for (uint32_t s = 0; s < m; s++)
		assert_int_equal(t0[s], MAGLEV_EMPTY);
	{
		const struct maglev_perm p[2] = {{3, 4}, {0, 2}};
		const uint32_t w[2] = {0, 0};
		uint16_t t[7];

		assert_int_equal(maglev_populate(t, 7, p, w, 2), 0);
		for (int s = 0; s < 7; s++)
			assert_int_equal(t[s], MAGLEV_EMPTY);
	}
	keyset_free(&ks);
	free(t0);
	free(t1);
}

static void test_bad_input(void **state)
{
	struct keyset ks;
	uint16_t *t = malloc(1048583 * sizeof(*t));
	const struct maglev_perm p[2] = {{3, 4}, {0, 2}};
	const struct maglev_perm bad_skip[1] = {{3, 0}}, bad_skip2[1] = {{3, 7}};
	const struct maglev_perm bad_off[1] = {{7, 1}};
	const uint32_t w[2] = {1, 1}, wbig[2] = {1, MAGLEV_WEIGHT_MAX + 1};
	const uint32_t bad_m[] = {0, 1, 5, 9, 65536, 65535, 1048583, UINT32_MAX};

	(void)state;
	assert_non_null(t);
	keyset_make(&ks, 10, 6, false);
	for (size_t i = 0; i < ARRAY_SIZE(bad_m); i++) {
		assert_int_equal(maglev_build(t, bad_m[i], ks.b, 10, SEED), -EINVAL);
		assert_int_equal(maglev_populate(t, bad_m[i], p, w, 2), -EINVAL);
	}
	assert_int_equal(maglev_build(t, 65537, ks.b, 0, SEED), -EINVAL);
	assert_int_equal(maglev_populate(t, 7, p, w, 0), -EINVAL);
	assert_int_equal(maglev_build(t, 65537, NULL, 10, SEED), -EINVAL);
	assert_int_equal(maglev_build(NULL, 65537, ks.b, 10, SEED), -EINVAL);
	assert_int_equal(maglev_populate(t, 7, bad_skip, w, 1), -EINVAL);
	assert_int_equal(maglev_populate(t, 7, bad_skip2, w, 1), -EINVAL);
	assert_int_equal(maglev_populate(t, 7, bad_off, w, 1), -EINVAL);
	assert_int_equal(maglev_populate(t, 7, p, wbig, 2), -EINVAL);
	assert_int_equal(maglev_build(t, 65537, ks.b, MAGLEV_BACKENDS_MAX + 1, SEED), -EINVAL);
	ks.b[3].weight = MAGLEV_WEIGHT_MAX + 1;
	assert_int_equal(maglev_build(t, 65537, ks.b, 10, SEED), -EINVAL);
	ks.b[3].weight = 1;
	ks.b[3].key_len = 0;
	assert_int_equal(maglev_build(t, 65537, ks.b, 10, SEED), -EINVAL);
	ks.b[3].key_len = 4;
	/* Duplicate key (same bytes, distinct buffers), also when one has weight 0. */
	ks.b[7].key = ks.b[2].key;
	assert_int_equal(maglev_build(t, 65537, ks.b, 10, SEED), -EINVAL);
	ks.b[7].weight = 0;
	assert_int_equal(maglev_build(t, 65537, ks.b, 10, SEED), -EINVAL);
	memcpy(ks.bytes[8], ks.bytes[1], 4);
	ks.b[7].key = ks.bytes[7];
	assert_int_equal(maglev_build(t, 65537, ks.b, 10, SEED), -EINVAL);
	/* Largest accepted size works. */
	memcpy(ks.bytes[8], (uint8_t[4]){198, 19, 255, 255}, 4);
	assert_int_equal(maglev_build(t, MAGLEV_SIZE_MAX, ks.b, 10, SEED), 0);
	keyset_free(&ks);
	free(t);
}

/*
 * Known answer across implementations: the Python reference in docs/maglev.md (ctypes over
 * libxxhash, the literal algorithm) prints 2bcac4aed0c47efb for backends 198.18.0.0 .. +999,
 * weight 1, seed 0x5eed, M = 65537 (the config bench_maglev prints the digest of).
 */
static void test_digest_known_answer(void **state)
{
	uint8_t keys[1000][4];
	struct maglev_backend b[1000];
	uint16_t *t = malloc(65537 * sizeof(*t));

	(void)state;
	assert_non_null(t);
	for (uint32_t i = 0; i < 1000; i++) {
		keys[i][0] = 198;
		keys[i][1] = 18;
		keys[i][2] = (uint8_t)(i >> 8);
		keys[i][3] = (uint8_t)i;
		b[i] = (struct maglev_backend){keys[i], 4, 1};
	}
	assert_int_equal(maglev_build(t, 65537, b, 1000, 0x5eed), 0);
	assert_true(maglev_digest(t, 65537, b, 1000) == 0x2bcac4aed0c47efbull);
	free(t);
}

static void test_digest(void **state)
{
	const uint32_t n = 200, m = 65537;
	struct keyset ks;
	uint16_t *t = malloc(m * sizeof(*t));
	uint64_t d0, d1, d2;

	(void)state;
	assert_non_null(t);
	keyset_make(&ks, n, 7, true);
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	d0 = maglev_digest(t, m, ks.b, n);
	assert_true(d0 == ref_digest(t, m, ks.b));
	shuffle(ks.b, n);
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	assert_true(maglev_digest(t, m, ks.b, n) == d0);
	/* A backend's address changes. */
	ks.bytes[5][3] ^= 0x80;
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	d1 = maglev_digest(t, m, ks.b, n);
	assert_true(d1 != d0);
	ks.bytes[5][3] ^= 0x80;
	/* A weight changes. */
	ks.b[9].weight = 2;
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
	d2 = maglev_digest(t, m, ks.b, n);
	assert_true(d2 != d0 && d2 != d1);
	/* Another seed. */
	ks.b[9].weight = 1;
	assert_int_equal(maglev_build(t, m, ks.b, n, SEED + 1), 0);
	assert_true(maglev_digest(t, m, ks.b, n) != d0);
	keyset_free(&ks);
	free(t);
}

/* Keys of other lengths (the API takes any bytes): order by length, then memcmp, past byte 16. */
static void test_long_keys(void **state)
{
	enum { N = 64, M = 1009 };
	uint8_t keys[N][24];
	struct maglev_backend b[N];
	uint16_t t[M], r[M];

	(void)state;
	for (uint32_t i = 0; i < N; i++) {
		memset(keys[i], 0xab, sizeof(keys[i]));
		keys[i][20] = (uint8_t)i; /* differ only beyond the first 16 bytes */
		b[i] = (struct maglev_backend){keys[i], i % 4 == 0 ? 17 : 24, 1 + i % 3};
		if (i % 4 == 0)
			keys[i][16] = (uint8_t)i; /* 17-byte keys differ in their last byte */
	}
	for (int round = 0; round < 4; round++) {
		shuffle(b, N);
		ref_build(r, M, b, N, SEED);
		assert_int_equal(maglev_build(t, M, b, N, SEED), 0);
		assert_memory_equal(t, r, sizeof(t));
	}
	keys[8][16] = 4; /* now equal to key 4: same length 17, same bytes */
	assert_int_equal(maglev_build(t, M, b, N, SEED), -EINVAL);
}

/*
 * The vector tail scan rounds explicitly: the table does not depend on the FP rounding mode. M is
 * above MAGLEV_VSCAN_MIN_SIZE (src/core/maglev.c), so the vector scan runs where the CPU has it.
 */
static void test_rounding_mode(void **state)
{
	static const int modes[] = {FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD};
	const uint32_t n = 300, m = 262147;
	struct keyset ks;
	uint16_t *t = malloc(m * sizeof(*t)), *r = malloc(m * sizeof(*r));

	(void)state;
	assert_true(t && r);
	keyset_make(&ks, n, 30, true);
	assert_int_equal(maglev_build(r, m, ks.b, n, SEED), 0);
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		assert_int_equal(fesetround(modes[i]), 0);
		assert_int_equal(maglev_build(t, m, ks.b, n, SEED), 0);
		assert_int_equal(fesetround(FE_TONEAREST), 0);
		assert_memory_equal(t, r, m * sizeof(*t));
	}
	keyset_free(&ks);
	free(t);
	free(r);
}

/*
 * Explicit permutations at the edges of the probe step's wrap (skip 1 and M - 1, offsets 0 and
 * M - 1) and random ones, equal and unequal weights: maglev_populate == the literal reference.
 */
static void test_edge_perms(void **state)
{
	static const uint32_t sizes[] = {7, 101, 4099, 65537};
	const uint32_t n_max = 64;
	struct maglev_perm p[64];
	uint32_t w[64];
	uint16_t *t = malloc(65537 * sizeof(*t)), *r = malloc(65537 * sizeof(*r));

	(void)state;
	assert_true(t && r);
	for (size_t si = 0; si < ARRAY_SIZE(sizes); si++)
		for (int weighted = 0; weighted < 2; weighted++) {
			uint32_t m = sizes[si], n = m < n_max ? m : n_max;

			for (uint32_t i = 0; i < n; i++) {
				p[i].offset = i % 3 == 0 ? 0 : i % 3 == 1 ? m - 1 : rng_below(m);
				p[i].skip = i % 4 == 0   ? 1
				            : i % 4 == 1 ? m - 1
				                         : 1 + rng_below(m - 1);
				w[i] = weighted ? 1 + rng_below(5) : 1;
			}
			ref_populate(r, m, p, w, n);
			assert_int_equal(maglev_populate(t, m, p, w, n), 0);
			if (memcmp(t, r, m * sizeof(*t)) != 0)
				fail_msg("m %u weighted %d differs from the reference", m,
				         weighted);
		}
	free(t);
	free(r);
}

/* Fast build == literal reference, byte for byte, over random sizes, seeds, weights, orders. */
static void test_matches_reference(void **state)
{
	/* Sizes on both sides of MAGLEV_VSCAN_MIN_SIZE (2^17), where the tail scan's vector path
	 * starts. */
	static const uint32_t primes[] = {7,    11,    13,    101,    251,    1009,
	                                  4099, 10007, 65537, 131071, 131101, 262147};
	uint16_t *t = malloc(655373 * sizeof(*t)), *r = malloc(655373 * sizeof(*r));

	(void)state;
	assert_true(t && r);
	for (int iter = 0; iter < 80; iter++) {
		uint32_t m = primes[rng_below(ARRAY_SIZE(primes))];
		uint32_t n = 1 + rng_below(iter % 4 == 0 ? 1500 : 60);
		uint64_t seed = rng_next();
		uint32_t mode = iter % 4;
		struct keyset ks;

		keyset_make(&ks, n, 20 + iter, true);
		for (uint32_t i = 0; i < n; i++)
			ks.b[i].weight =
			    mode == 0   ? 1
			    : mode == 1 ? rng_below(4)
			    : mode == 2 ? rng_below(MAGLEV_WEIGHT_MAX + 1)
			                : (i % 16 == 0 ? 1000 + rng_below(64536) : 1); /* skewed */
		shuffle(ks.b, n);
		ref_build(r, m, ks.b, n, seed);
		assert_int_equal(maglev_build(t, m, ks.b, n, seed), 0);
		if (memcmp(t, r, m * sizeof(*t)) != 0)
			fail_msg("iteration %d: m %u n %u mode %u differs from the reference", iter,
			         m, n, mode);
		assert_int_equal(maglev_build_flags(t, m, ks.b, n, seed, MAGLEV_BUILD_SCALAR), 0);
		if (memcmp(t, r, m * sizeof(*t)) != 0)
			fail_msg(
			    "iteration %d: m %u n %u mode %u scalar differs from the reference",
			    iter, m, n, mode);
		keyset_free(&ks);
	}
	/* The benchmark's sizes. */
	for (int big = 0; big < 2; big++) {
		uint32_t m = big ? 655373 : 65537;
		struct keyset ks;

		keyset_make(&ks, 1000, 90 + big, false);
		ref_build(r, m, ks.b, 1000, SEED);
		assert_int_equal(maglev_build(t, m, ks.b, 1000, SEED), 0);
		assert_memory_equal(t, r, m * sizeof(*t));
		assert_int_equal(maglev_build_flags(t, m, ks.b, 1000, SEED, MAGLEV_BUILD_SCALAR),
		                 0);
		assert_memory_equal(t, r, m * sizeof(*t));
		keyset_free(&ks);
	}
	free(t);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_size_valid),
	    cmocka_unit_test(test_paper_known_answer),
	    cmocka_unit_test(test_weighted_known_answer),
	    cmocka_unit_test(test_perm_from_key),
	    cmocka_unit_test(test_balance),
	    cmocka_unit_test(test_order_independent),
	    cmocka_unit_test(test_weighted_shares),
	    cmocka_unit_test(test_removal_disruption),
	    cmocka_unit_test(test_weight_zero),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_digest_known_answer),
	    cmocka_unit_test(test_long_keys),
	    cmocka_unit_test(test_rounding_mode),
	    cmocka_unit_test(test_edge_perms),
	    cmocka_unit_test(test_matches_reference),
	};

	return cmocka_run_group_tests_name("maglev", tests, NULL, NULL);
}
