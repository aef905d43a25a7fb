/* SPDX-License-Identifier: GPL-2.0-only */
/* Snapshot tests: id stability and tags across rebuilds, overrides, next hops, VIP lookup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/maglev.h"
#include "core/snapshot.h"
#include "tcfg.h"
#include "tsnap.h"

static uint16_t id_of(const struct lb_snapshot *s, uint32_t vip, const char *addr)
{
	struct lb_addr a = tcfg_addr(addr);

	return snapshot_backend_find(s, vip, &a);
}

static void test_build_basics(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);

	(void)state;
	assert_int_equal(s->generation, 1);
	assert_int_equal(s->n_vips, c->n_vips);
	assert_int_equal(s->n_backends, 1 + 1 + 1 + 1 + 1 + 4 + 4 + 3 + 4 + 4 + 4);
	assert_int_equal(s->ttl, 64);
	assert_int_equal(s->mtu, 1500);
	assert_true(s->hash_seed == c->hash_seed);
	for (uint32_t v = 0; v < s->n_vips; v++) {
		const struct lb_vip *vip = &s->vips[v];
		uint32_t slots = 0;
		struct maglev_backend mb[8];
		uint16_t *t = malloc(vip->table_size * sizeof(*t));

		assert_int_equal(vip->table_size, v == 5 ? 65537 : 251);
		/* The config's hash mode: srcweb and srcdns6 hash on the source. */
		assert_int_equal(vip->hash, c->vips[v].hash);
		assert_int_equal(vip->hash, strncmp(vip->name, "src", 3) == 0 ? VIP_HASH_SOURCE
		                                                              : VIP_HASH_5TUPLE);
		for (uint32_t j = 0; j < vip->n_backends; j++) {
			const struct lb_backend *b = &s->backends[vip->backends[j]];

			assert_true(b->in_use && b->up);
			assert_int_equal(b->vip, v);
			slots += b->slots;
			mb[j] =
			    (struct maglev_backend){b->addr.b, lb_addr_len(&b->addr), b->weight};
		}
		assert_int_equal(slots, vip->table_size);
		/* Same table as maglev_build of the backends, mapped to ids; same digest. */
		assert_int_equal(
		    maglev_build(t, vip->table_size, mb, vip->n_backends, s->hash_seed), 0);
		for (uint32_t i = 0; i < vip->table_size; i++)
			assert_int_equal(vip->table[i], vip->backends[t[i]]);
		assert_true(vip->digest == maglev_digest(t, vip->table_size, mb, vip->n_backends));
		free(t);
	}
	/*
	 * One next hop per distinct address: 198.18.2.1..4 are shared by three VIPs, 198.18.3.1..4
	 * by two.
	 */
	assert_int_equal(s->n_nexthops, 5 + 4 + 2 + 4 + 4);
	assert_int_equal(s->backends[id_of(s, 5, "198.18.2.3")].nexthop,
	                 s->backends[id_of(s, 7, "198.18.2.3")].nexthop);
	for (uint32_t i = 0; i < s->n_nexthops; i++)
		assert_true(atomic_load(&s->nexthops[i].mac) == (LB_NH_VALID | 0x020000000002ull));
	snapshot_free(s);
	config_free(c);
}

static void test_vip_lookup(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_addr a = tcfg_addr("203.0.113.10"), u = tcfg_addr("203.0.113.12");
	struct lb_addr six = tcfg_addr("2001:db8:100::10"), none = tcfg_addr("203.0.113.99");
	int32_t ai;

	(void)state;
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_TCP, 80), 0);
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_TCP, 81), -1);
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_UDP, 80), -1);
	assert_int_equal(snapshot_vip_lookup(s, &u, IPPROTO_UDP, 1), 2); /* port 0 */
	assert_int_equal(snapshot_vip_lookup(s, &u, IPPROTO_UDP, 65535), 2);
	assert_int_equal(snapshot_vip_lookup(s, &u, IPPROTO_TCP, 1), -1);
	assert_int_equal(snapshot_vip_lookup(s, &six, IPPROTO_TCP, 443), 3);
	assert_int_equal(snapshot_vip_lookup(s, &none, IPPROTO_TCP, 80), -1);
	ai = snapshot_addr_find(s, AF_INET, a.b);
	assert_true(ai >= 0);
	assert_int_equal(s->addrs[ai].frag_vip[0], 0);
	assert_int_equal(s->addrs[ai].frag_vip[1], LB_VIP_NONE);
	snapshot_free(s);
	config_free(c);
}

/* A port-0 VIP next to a port VIP on one address: exact port first, then port 0. */
static void test_port_fallback_and_duplicates(void **state)
{
	static const char *const b1[] = {"198.18.1.1"};
	static const char *const b2[] = {"198.18.1.2"};
	struct config *c = tcfg_new();
	struct lb_snapshot *s;
	struct lb_addr a = tcfg_addr("198.51.100.1");
	char err[256];
	int32_t ai;

	(void)state;
	c->table_size = 7;
	tcfg_vip(c, "http", "198.51.100.1", IPPROTO_TCP, 80, b1, 1, 0);
	tcfg_vip(c, "rest", "198.51.100.1", IPPROTO_TCP, 0, b2, 1, 0);
	s = snap(c, NULL, NULL);
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_TCP, 80), 0);
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_TCP, 443), 1);
	ai = snapshot_addr_find(s, AF_INET, a.b);
	assert_int_equal(s->addrs[ai].frag_vip[0], 1); /* fragments: the port-0 VIP */
	snapshot_free(s);
	tcfg_vip(c, "dup", "198.51.100.1", IPPROTO_TCP, 80, b2, 1, 0);
	s = NULL;
	assert_int_equal(snapshot_build(c, NULL, NULL, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "dup"));
	config_free(c);
}

/* Ids and tags: kept for kept pairs, freed ids get a new tag, reused ids keep the new tag. */
static void test_id_stability(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2, *s3, *s4;
	uint16_t ids1[4], id_removed;

	(void)state;
	for (unsigned j = 0; j < 4; j++)
		ids1[j] = s1->vips[5].backends[j];
	/* The same config again: same ids, same tags, same tables. */
	s2 = snap(c, s1, NULL);
	assert_int_equal(s2->generation, 2);
	assert_int_equal(s2->n_backends, s1->n_backends);
	for (uint32_t id = 0; id < s1->n_backends; id++) {
		assert_true(lb_addr_eq(&s1->backends[id].addr, &s2->backends[id].addr));
		assert_int_equal(s1->backends[id].tag, s2->backends[id].tag);
		assert_int_equal(s1->backends[id].vip, s2->backends[id].vip);
	}
	assert_memory_equal(s1->vips[5].table, s2->vips[5].table, 65537 * sizeof(uint16_t));
	/* Reordering backends in the config changes no id. */
	{
		struct config_backend t = c->vips[5].backends[0];

		c->vips[5].backends[0] = c->vips[5].backends[3];
		c->vips[5].backends[3] = t;
	}
	s3 = snap(c, s2, NULL);
	for (unsigned j = 0; j < 4; j++) {
		char a[32];

		snprintf(a, sizeof(a), "198.18.2.%u", j + 1);
		assert_int_equal(id_of(s3, 5, a), ids1[j]);
	}
	assert_memory_equal(s1->vips[5].table, s3->vips[5].table, 65537 * sizeof(uint16_t));
	/* Remove .2 and add .8: .8 reuses .2's id under the next tag. */
	id_removed = id_of(s3, 5, "198.18.2.2");
	tcfg_backend_del(&c->vips[5], 1);
	tcfg_backend_add(&c->vips[5], "198.18.2.8", 1);
	s4 = snap(c, s3, NULL);
	assert_int_equal(id_of(s4, 5, "198.18.2.8"), id_removed);
	assert_int_equal(s4->backends[id_removed].tag,
	                 (uint16_t)(s3->backends[id_removed].tag + 1));
	assert_int_equal(id_of(s4, 5, "198.18.2.1"), ids1[0]);
	assert_int_equal(id_of(s4, 5, "198.18.2.2"), LB_BACKEND_NONE);
	/* The same address in another VIP is another id. */
	assert_int_not_equal(id_of(s4, 6, "198.18.2.1"), id_of(s4, 5, "198.18.2.1"));
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(s3);
	snapshot_free(s4);
	config_free(c);
}

static void test_overrides(void **state)
{
	struct config *c = tcfg_fixture();
	struct snapshot_override ov[3] = {
	    {.vip = "multi", .weight = 0},
	    {.vip = "multi", .weight = -1, .down = true},
	    {.vip = "nosuch", .weight = 5},
	};
	struct snapshot_state st = {.v = ov, .n = 3};
	struct lb_snapshot *s;
	uint16_t a, b;

	(void)state;
	ov[0].backend = tcfg_addr("198.18.2.1");
	ov[1].backend = tcfg_addr("198.18.2.2");
	ov[2].backend = tcfg_addr("198.18.2.3");
	s = snap(c, NULL, &st);
	a = id_of(s, 5, "198.18.2.1");
	b = id_of(s, 5, "198.18.2.2");
	assert_int_equal(s->backends[a].weight, 0);
	assert_true(s->backends[a].up);
	assert_int_equal(s->backends[a].slots, 0);
	assert_false(s->backends[b].up);
	assert_int_equal(s->backends[b].weight, 1);
	assert_int_equal(s->backends[b].slots, 0);
	assert_int_equal(s->backends[id_of(s, 5, "198.18.2.3")].slots +
	                     s->backends[id_of(s, 5, "198.18.2.4")].slots,
	                 65537);
	/* The other VIP with the same addresses is untouched. */
	assert_true(s->backends[id_of(s, 6, "198.18.2.1")].slots > 0);
	snapshot_free(s);
	config_free(c);
}

#define MULTI 5u /* the fixture's VIP "multi": 198.18.2.1-4, M = 65537 */

/* Whether VIP MULTI's previous table in a has, slot by slot, the owners (by address) of t in b. */
static void assert_prev_is(const struct lb_snapshot *a, const struct lb_snapshot *b,
                           const uint16_t *t)
{
	const uint16_t *p = a->vips[MULTI].prev_table;

	assert_non_null(p);
	for (uint32_t i = 0; i < a->vips[MULTI].prev.table_size; i++) {
		if (p[i] == LB_BACKEND_NONE || t[i] == LB_BACKEND_NONE)
			assert_int_equal(p[i] == LB_BACKEND_NONE, t[i] == LB_BACKEND_NONE);
		else
			assert_true(lb_addr_eq(&a->backends[p[i]].addr, &b->backends[t[i]].addr));
	}
}

/* Slots whose owner in s's VIP MULTI differs from its previous generation's (by address). */
static uint32_t moved_slots(const struct lb_snapshot *s)
{
	const struct lb_vip *v = &s->vips[MULTI];
	uint32_t n = 0;

	assert_non_null(v->prev_table);
	assert_int_equal(v->prev.table_size, v->table_size);
	for (uint32_t i = 0; i < v->table_size; i++)
		n += v->prev_table[i] != v->table[i];
	return n;
}

/*
 * The previous generation: none at first or while the owners stay; the replaced table when they
 * change (a backend added), kept through a rebuild that changes nothing, with its owners in the
 * new ids (none for a removed backend); the secondary of a flow is its previous owner when that
 * differs, only with second_chance on.
 */
static void test_previous_generation(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2 = snap(c, s1, NULL), *s3, *s4, *s5;
	const struct lb_vip *v;
	uint16_t gone;
	uint32_t moved, sec = 0, same = 0;

	(void)state;
	assert_null(s1->vips[MULTI].prev_table);
	assert_null(s2->vips[MULTI].prev_table); /* the same owners: still none */

	tcfg_backend_add(&c->vips[MULTI], "198.18.2.8", 1);
	s3 = snap(c, s2, NULL);
	moved = moved_slots(s3);
	assert_int_equal(s3->vips[MULTI].prev.digest, s2->vips[MULTI].digest);
	assert_memory_equal(s3->vips[MULTI].prev_table, s2->vips[MULTI].table, 65537 * 2);
	/* The new backend takes about a fifth of the slots; few move between the others. */
	assert_in_range(moved, s3->backends[id_of(s3, MULTI, "198.18.2.8")].slots,
	                s3->backends[id_of(s3, MULTI, "198.18.2.8")].slots + 65537 / 100);
	assert_in_range(moved, 65537 / 5 - 1000, 65537 / 5 + 1000);

	/* A rebuild with the same owners keeps the previous generation. */
	c->vips[MULTI].second_chance = true;
	s4 = snap(c, s3, NULL);
	assert_int_equal(s4->vips[MULTI].prev.digest, s2->vips[MULTI].digest);
	assert_memory_equal(s4->vips[MULTI].prev_table, s3->vips[MULTI].prev_table, 65537 * 2);
	v = &s4->vips[MULTI];
	for (uint64_t h = 0; h < v->table_size; h++) {
		uint16_t p = v->table[h], x = snapshot_secondary(s4, v, h, p);

		if (x == LB_BACKEND_NONE) {
			assert_int_equal(v->prev_table[h], p);
			same++;
			continue;
		}
		assert_int_equal(x, v->prev_table[h]);
		assert_int_not_equal(x, p);
		sec++;
	}
	assert_int_equal(sec, moved);
	assert_int_equal(same + sec, 65537);
	/* Off: never a secondary. */
	assert_int_equal(snapshot_secondary(s3, &s3->vips[MULTI], 0, 0), LB_BACKEND_NONE);

	/* Removing .1: the previous generation is s4's table, .1's slots there have no owner now.
	 */
	gone = id_of(s4, MULTI, "198.18.2.1");
	tcfg_backend_del(&c->vips[MULTI], 0);
	s5 = snap(c, s4, NULL);
	v = &s5->vips[MULTI];
	assert_int_equal(v->prev.digest, s4->vips[MULTI].digest);
	for (uint32_t i = 0; i < v->table_size; i++) {
		if (s4->vips[MULTI].table[i] == gone)
			assert_int_equal(v->prev_table[i], LB_BACKEND_NONE);
		else
			assert_int_equal(v->prev_table[i], s4->vips[MULTI].table[i]);
	}
	assert_int_equal(snapshot_secondary(s5, v, 0, v->table[0]),
	                 v->prev_table[0] == v->table[0] ? LB_BACKEND_NONE : v->prev_table[0]);
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(s3);
	snapshot_free(s4);
	snapshot_free(s5);
	config_free(c);
}

/*
 * Without a snapshot to replace, the history a state file kept: its previous generation when the
 * config gives its current table again, its current one when the config changed in between, and
 * nothing under another hash seed.
 */
static void test_history(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2, *r1, *r2, *r3;
	struct snapshot_history_vip hv = {.name = "multi"};
	struct snapshot_history h = {.v = &hv, .n = 1};
	struct snapshot_state st = {.history = &h};

	(void)state;
	tcfg_backend_add(&c->vips[MULTI], "198.18.2.8", 1);
	s2 = snap(c, s1, NULL);
	h.hash_seed = c->hash_seed;
	assert_int_equal(snapshot_gen_current(s2, MULTI, &hv.current), 0);
	assert_int_equal(lb_gen_copy(&hv.previous, &s2->vips[MULTI].prev), 0);

	/* Restarted with the same config: s2's previous generation, the same table of owners. */
	assert_int_equal(s1->vips[MULTI].prev_origin, LB_PREV_NONE);
	assert_int_equal(s2->vips[MULTI].prev_origin, LB_PREV_SNAPSHOT);
	r1 = snap(c, NULL, &st);
	assert_int_equal(r1->vips[MULTI].prev_origin, LB_PREV_HISTORY);
	assert_int_equal(r1->vips[MULTI].prev.digest, s1->vips[MULTI].digest);
	assert_prev_is(r1, s2, s2->vips[MULTI].prev_table);
	assert_int_equal(moved_slots(r1), moved_slots(s2));

	/* Restarted with a changed config: the history's current generation is the previous one. */
	tcfg_backend_add(&c->vips[MULTI], "198.18.2.9", 1);
	r2 = snap(c, NULL, &st);
	assert_int_equal(r2->vips[MULTI].prev_origin, LB_PREV_HISTORY);
	assert_int_equal(r2->vips[MULTI].prev.digest, s2->vips[MULTI].digest);
	assert_prev_is(r2, s2, s2->vips[MULTI].table);

	/* Another seed: the history's tables would be others, so it is not used. */
	h.hash_seed ^= 1;
	r3 = snap(c, NULL, &st);
	assert_null(r3->vips[MULTI].prev_table);
	assert_int_equal(r3->vips[MULTI].prev_origin, LB_PREV_NONE);
	lb_gen_free(&hv.current);
	lb_gen_free(&hv.previous);
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(r1);
	snapshot_free(r2);
	snapshot_free(r3);
	config_free(c);
}

/* A snapshot of c built from st's history has no previous generation for MULTI, for origin. */
static void assert_no_prev(const struct config *c, const struct snapshot_state *st,
                           enum lb_prev_origin origin)
{
	struct lb_snapshot *r = snap(c, NULL, st);

	assert_null(r->vips[MULTI].prev_table);
	assert_int_equal(r->vips[MULTI].prev_origin, origin);
	snapshot_free(r);
}

/*
 * A history generation that is not what it says (another digest) or cannot be built (two
 * backends of one address, none at all) gives no previous generation, says so, and the
 * snapshot builds all the same: a damaged state file never stops a start.
 */
static void test_history_unusable(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2;
	struct snapshot_history_vip hv = {.name = "multi"};
	struct snapshot_history h = {.hash_seed = c->hash_seed, .v = &hv, .n = 1};
	struct snapshot_state st = {.history = &h};
	struct lb_gen_backend saved;

	(void)state;
	tcfg_backend_add(&c->vips[MULTI], "198.18.2.8", 1);
	s2 = snap(c, s1, NULL);
	assert_int_equal(snapshot_gen_current(s2, MULTI, &hv.current), 0);
	assert_int_equal(lb_gen_copy(&hv.previous, &s2->vips[MULTI].prev), 0);

	/* The current generation's digest is another: it is not used, nor what came before it. */
	hv.current.digest ^= 1;
	assert_no_prev(c, &st, LB_PREV_HISTORY_MISMATCH);
	hv.current.digest ^= 1;

	/* The previous generation's digest is another: the same. */
	hv.previous.digest ^= 1;
	assert_no_prev(c, &st, LB_PREV_HISTORY_MISMATCH);
	hv.previous.digest ^= 1;

	/* Two backends of one address: Maglev refuses to build it. */
	saved = hv.current.backends[1];
	hv.current.backends[1] = hv.current.backends[0];
	assert_no_prev(c, &st, LB_PREV_HISTORY_MISMATCH);
	hv.current.backends[1] = saved;

	/* No backends at all. */
	hv.current.n_backends = 0;
	assert_no_prev(c, &st, LB_PREV_HISTORY_MISMATCH);

	/* Another VIP's name: nothing for this one. */
	hv.current.n_backends = s2->vips[MULTI].n_backends;
	snprintf(hv.name, sizeof(hv.name), "other");
	assert_no_prev(c, &st, LB_PREV_NONE);
	lb_gen_free(&hv.current);
	lb_gen_free(&hv.previous);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/* Next-hop MACs: unresolved without nexthop_mac; resolved ones carry over to the next snapshot. */
static void test_nexthop_carry_over(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2;

	(void)state;
	c->dataplane.has_nexthop_mac = false;
	s1 = snap(c, NULL, NULL);
	for (uint32_t i = 0; i < s1->n_nexthops; i++)
		assert_true(atomic_load(&s1->nexthops[i].mac) == 0);
	atomic_store(&s1->nexthops[0].mac, LB_NH_VALID | 0x0a0b0c0d0e0full);
	tcfg_backend_add(&c->vips[0], "198.18.1.99", 1);
	s2 = snap(c, s1, NULL);
	assert_int_equal(s2->n_nexthops, s1->n_nexthops + 1);
	for (uint32_t i = 0; i < s2->n_nexthops; i++) {
		uint64_t m = atomic_load(&s2->nexthops[i].mac);

		if (lb_addr_eq(&s2->nexthops[i].addr, &s1->nexthops[0].addr))
			assert_true(m == (LB_NH_VALID | 0x0a0b0c0d0e0full));
		else
			assert_true(m == 0);
	}
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

static void test_bad_inputs(void **state)
{
	static const char *const b1[] = {"198.18.1.1"};
	struct config *c = tcfg_new();
	struct lb_snapshot *s = NULL;
	char err[256];

	(void)state;
	tcfg_vip(c, "bad", "198.51.100.1", IPPROTO_TCP, 80, b1, 1, 100);
	assert_int_equal(snapshot_build(c, NULL, NULL, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "100"));
	assert_null(s);
	config_free(c);
}

/* A config without VIPs builds an empty snapshot that matches nothing. */
static void test_empty(void **state)
{
	struct config *c = tcfg_new();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_addr a = tcfg_addr("203.0.113.10");

	(void)state;
	assert_int_equal(s->n_vips, 0);
	assert_int_equal(s->n_backends, 0);
	assert_int_equal(snapshot_vip_lookup(s, &a, IPPROTO_TCP, 80), -1);
	assert_int_equal(snapshot_addr_find(s, AF_INET, a.b), -1);
	snapshot_free(s);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_basics),
	    cmocka_unit_test(test_vip_lookup),
	    cmocka_unit_test(test_port_fallback_and_duplicates),
	    cmocka_unit_test(test_id_stability),
	    cmocka_unit_test(test_overrides),
	    cmocka_unit_test(test_previous_generation),
	    cmocka_unit_test(test_history),
	    cmocka_unit_test(test_history_unusable),
	    cmocka_unit_test(test_nexthop_carry_over),
	    cmocka_unit_test(test_bad_inputs),
	    cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
