/* SPDX-License-Identifier: GPL-2.0-only */
/* Unit tests of `maglevctl table` / `diff` (ctl_offline) on config files written to a temp dir. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/util.h"
#include "control/config_yaml.h"
#include "maglevctl/command.h"
#include "maglevctl/offline.h"
#include "core/flow.h"
#include "core/maglev.h"
#include "tsnap.h"

#define BACKENDS_MANY 200u

/*
 * The replay test: flows hashed and looked up as the packet path does, through both snapshots.
 * A share p measured over REPLAY_FLOWS independent flows is binomial, standard deviation
 * sqrt(p(1-p)/REPLAY_FLOWS) (0.02 percentage points at p = 1%, 0.07 at 10%); a figure of the diff
 * passes if it lies within REPLAY_SIGMAS of them, plus its own rounding. A correct diff fails by
 * chance less than once in a million cases (and the flows are fixed, so a run repeats exactly).
 */
#define REPLAY_FLOWS        200000u /* flows replayed per case */
#define REPLAY_SIGMAS       5.0     /* tolerance in binomial standard deviations */
#define REPLAY_PCT_ROUNDING 0.00005 /* %: offline_vip_diff rounds its percentages to 4 decimals */
#define REPLAY_PORT_FIRST   1024u   /* client ports of the replayed flows start here */

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mgm_ctl_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/*
 * Writes a config: VIP "web" with backends 198.18.1.1 .. +n-1 (weight 1, except drain_idx with
 * weight 0 and skip_every-th ones left out), optionally VIP "dns" with one backend.
 */
static void write_config(struct fixture *f, const char *name, char *path, size_t len, uint32_t m,
                         uint32_t n, uint32_t skip_every, int drain_idx, bool dns)
{
	FILE *fp;

	snprintf(path, len, "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "cluster:\n  hash_seed: 0x5eed\n  table_size: %u\nvips:\n", m);
	fprintf(fp, "  - name: web\n    address: 203.0.113.10\n    protocol: tcp\n    port: 80\n"
	            "    backends:\n");
	for (uint32_t i = 0; i < n; i++) {
		if (skip_every && i % skip_every == 0)
			continue;
		fprintf(fp, "      - { address: 198.18.%u.%u, weight: %d }\n", 1 + i / 250,
		        1 + i % 250, (int)i == drain_idx ? 0 : 1);
	}
	if (dns)
		fprintf(fp, "  - name: dns\n    address: 198.51.100.53\n    protocol: udp\n"
		            "    port: 53\n    backends:\n      - { address: '2001:db8::53' }\n");
	assert_int_equal(fclose(fp), 0);
}

static struct config *load(const char *path)
{
	struct config *c = NULL;
	char err[256];

	if (config_load(path, &c, err, sizeof(err)) != 0)
		fail_msg("config_load: %s", err);
	return c;
}

/*
 * Runs offline_table_print of c (nc NULL; vip as it takes it) or offline_diff_print of c -> nc
 * with JSON into a memory buffer and parses it. The text goes to *text (free it) if text is set.
 */
static json_t *print_json(const struct config *c, const struct config *nc, const char *vip,
                          char **text)
{
	char *buf = NULL, err[256];
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	json_error_t jerr;
	json_t *root;

	assert_non_null(mem);
	if (nc)
		assert_int_equal(offline_diff_print(mem, c, nc, true, err, sizeof(err)), 0);
	else
		assert_int_equal(offline_table_print(mem, c, vip, true, err, sizeof(err)), 0);
	fclose(mem);
	root = json_loads(buf, 0, &jerr);
	if (!root)
		fail_msg("bad JSON (%s): %s", jerr.text, buf);
	if (text)
		*text = buf;
	else
		free(buf);
	return root;
}

static void test_table(void **state)
{
	struct fixture *f = *state;
	char path[128], err[256];
	struct config *c;
	struct offline_table t;
	struct maglev_backend b[2];
	json_t *root, *vips, *v, *bs;
	uint32_t sum = 0;

	write_config(f, "t.yaml", path, sizeof(path), 65537, 3, 0, -1, true);
	c = load(path);
	/* Weights 1:2 by hand. */
	c->vips[0].backends[1].weight = 2;
	assert_int_equal(offline_table_build(c, &c->vips[0], &t), 0);
	for (uint32_t i = 0; i < 3; i++)
		sum += t.slots[i];
	assert_int_equal(sum, 65537);
	assert_in_range(t.slots[1], 2 * 65537 / 4 - 3, 2 * 65537 / 4 + 3);
	offline_table_free(&t);

	/* The digest is maglev_digest over the lb_addr bytes. */
	assert_int_equal(offline_table_build(c, &c->vips[1], &t), 0);
	{
		uint16_t *tab = malloc(65537 * sizeof(*tab));

		assert_non_null(tab);
		b[0] = (struct maglev_backend){c->vips[1].backends[0].addr.b, 16, 1};
		assert_int_equal(maglev_build(tab, 65537, b, 1, 0x5eed), 0);
		assert_true(maglev_digest(tab, 65537, b, 1) == t.digest);
		assert_int_equal(t.slots[0], 65537);
		free(tab);
	}
	offline_table_free(&t);

	root = print_json(c, NULL, NULL, NULL);
	vips = json_object_get(root, "vips");
	assert_int_equal(json_array_size(vips), 2);
	v = json_array_get(vips, 0);
	assert_string_equal(json_string_value(json_object_get(v, "name")), "web");
	assert_int_equal(json_integer_value(json_object_get(v, "table_size")), 65537);
	assert_int_equal(strlen(json_string_value(json_object_get(v, "digest"))), 16);
	/* What the text output's first line has, under `maglevctl vips --json`'s keys. */
	assert_string_equal(json_string_value(json_object_get(v, "address")), "203.0.113.10");
	assert_string_equal(json_string_value(json_object_get(v, "protocol")), "tcp");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 80);
	bs = json_object_get(v, "backends");
	assert_int_equal(json_array_size(bs), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(bs, 0), "address")),
	                    "198.18.1.1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 1), "weight")), 2);
	assert_true(json_integer_value(json_object_get(json_array_get(bs, 2), "slots")) > 0);
	json_decref(root);

	root = print_json(c, NULL, "dns", NULL);
	assert_int_equal(json_array_size(json_object_get(root, "vips")), 1);
	v = json_array_get(json_object_get(root, "vips"), 0);
	assert_string_equal(json_string_value(json_object_get(v, "address")), "198.51.100.53");
	assert_string_equal(json_string_value(json_object_get(v, "protocol")), "udp");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 53);
	assert_string_equal(json_string_value(json_object_get(v, "hash")), "5-tuple");
	json_decref(root);

	/* The VIP's hash mode, in both outputs; the table itself does not depend on it. */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);
		struct offline_table t2;

		assert_int_equal(offline_table_build(c, &c->vips[1], &t), 0);
		c->vips[1].hash = VIP_HASH_SOURCE;
		assert_int_equal(offline_table_build(c, &c->vips[1], &t2), 0);
		assert_true(t2.digest == t.digest);
		offline_table_free(&t);
		offline_table_free(&t2);
		root = print_json(c, NULL, "dns", NULL);
		v = json_array_get(json_object_get(root, "vips"), 0);
		assert_string_equal(json_string_value(json_object_get(v, "hash")), "source");
		json_decref(root);
		assert_non_null(mem);
		assert_int_equal(offline_table_print(mem, c, NULL, false, err, sizeof(err)), 0);
		fclose(mem);
		assert_non_null(strstr(text, "vip web  203.0.113.10 tcp port 80  hash 5-tuple  "));
		assert_non_null(strstr(text, "vip dns  198.51.100.53 udp port 53  hash source  "));
		free(text);
	}

	assert_int_equal(offline_table_print(stdout, c, "nope", false, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "'nope'"));
	config_free(c);
}

static const struct offline_vip_diff *diff_find(const struct offline_vip_diff *d, uint32_t n,
                                                const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return &d[i];
	fail_msg("no diff for VIP %s", name);
	return NULL;
}

/* Removing 1% of backends: changed = removed backends' slots + excess; excess <= 2.5% of M. */
static void test_diff_remove(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_new[128];
	struct config *oc, *nc;
	struct offline_vip_diff *d;
	struct offline_table to;
	uint32_t n, removed_slots = 0;
	const struct offline_vip_diff *w;

	write_config(f, "old.yaml", p_old, sizeof(p_old), 65537, BACKENDS_MANY, 0, -1, true);
	write_config(f, "new.yaml", p_new, sizeof(p_new), 65537, BACKENDS_MANY, 100, -1, true);
	oc = load(p_old);
	nc = load(p_new);
	assert_int_equal(offline_diff(oc, nc, &d, &n), 0);
	assert_int_equal(n, 2);
	w = diff_find(d, n, "web");
	assert_int_equal(w->status, OFFLINE_VIP_BOTH);
	assert_false(w->size_changed);
	assert_int_equal(offline_table_build(oc, &oc->vips[0], &to), 0);
	removed_slots = to.slots[0] + to.slots[100];
	offline_table_free(&to);
	assert_int_equal(w->changed_slots, removed_slots + w->excess_slots);
	assert_true(w->excess_pct <= 2.5);
	assert_true(w->excess_slots > 0);
	assert_true(w->changed_pct > 100.0 * removed_slots / 65537 - 0.001);
	/* dns is unchanged. */
	w = diff_find(d, n, "dns");
	assert_int_equal(w->changed_slots, 0);
	assert_int_equal(w->excess_slots, 0);
	free(d);

	/* Same config: nothing moves. */
	assert_int_equal(offline_diff(oc, oc, &d, &n), 0);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(d[i].changed_slots, 0);
		assert_true(d[i].changed_pct == 0.0);
	}
	free(d);
	config_free(oc);
	config_free(nc);
}

/* Draining (weight 0) moves the same slots as removing, and none of them count as excess. */
static void test_diff_drain(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_drain[128], p_rm[128];
	struct config *oc, *dc, *rc;
	struct offline_vip_diff dd, dr;
	struct offline_table to;

	write_config(f, "old.yaml", p_old, sizeof(p_old), 4099, 40, 0, -1, false);
	write_config(f, "drain.yaml", p_drain, sizeof(p_drain), 4099, 40, 0, 0, false);
	write_config(f, "rm.yaml", p_rm, sizeof(p_rm), 4099, 40, 40, -1, false);
	oc = load(p_old);
	dc = load(p_drain);
	rc = load(p_rm);
	assert_int_equal(offline_vip_diff(oc, &oc->vips[0], dc, &dc->vips[0], &dd), 0);
	assert_int_equal(offline_vip_diff(oc, &oc->vips[0], rc, &rc->vips[0], &dr), 0);
	assert_int_equal(dd.changed_slots, dr.changed_slots);
	assert_int_equal(dd.excess_slots, dr.excess_slots);
	assert_int_equal(offline_table_build(oc, &oc->vips[0], &to), 0);
	assert_int_equal(dd.changed_slots - dd.excess_slots, to.slots[0]);
	offline_table_free(&to);
	config_free(oc);
	config_free(dc);
	config_free(rc);
}

/*
 * Table size change with two equal backends: a flow stays iff both tables give it the same
 * backend; with independent uniform hashes mod two primes that is 1/2 of the flows.
 */
static void test_diff_size_change(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_new[128];
	struct config *oc, *nc;
	struct offline_vip_diff d;

	write_config(f, "m1.yaml", p_old, sizeof(p_old), 65537, 2, 0, -1, false);
	write_config(f, "m2.yaml", p_new, sizeof(p_new), 655373, 2, 0, -1, false);
	oc = load(p_old);
	nc = load(p_new);
	assert_int_equal(offline_vip_diff(oc, &oc->vips[0], nc, &nc->vips[0], &d), 0);
	assert_true(d.size_changed);
	assert_int_equal(d.old_size, 65537);
	assert_int_equal(d.new_size, 655373);
	assert_true(d.changed_pct > 49.99 && d.changed_pct < 50.01);
	/*
	 * Both backends stay: all but the least move is excess. The least is the share the first
	 * backend loses, 32769/65537 - 327687/655373 = 294918 pairs of slots, 4.5 slots of the new
	 * table (the two numbers are rounded apart).
	 */
	assert_in_range(d.changed_slots - d.excess_slots, 4, 5);
	assert_in_range(d.changed_slots, 655373 / 2 - 10, 655373 / 2 + 10);
	config_free(oc);
	config_free(nc);
}

/* The VIP named "web" of s. */
static const struct lb_vip *snap_web(const struct lb_snapshot *s)
{
	for (uint32_t i = 0; i < s->n_vips; i++)
		if (strcmp(s->vips[i].name, "web") == 0)
			return &s->vips[i];
	fail_msg("snapshot has no VIP web");
	return NULL;
}

/* The backend of v (a VIP of s) with address a, or NULL. */
static const struct lb_backend *snap_backend(const struct lb_snapshot *s, const struct lb_vip *v,
                                             const struct lb_addr *a)
{
	for (uint32_t j = 0; j < v->n_backends; j++)
		if (lb_addr_eq(&s->backends[v->backends[j]].addr, a))
			return &s->backends[v->backends[j]];
	return NULL;
}

/* b, a backend of one config, has weight > 0 there and is in the other config with weight > 0. */
static bool survives(const struct lb_backend *b, const struct lb_snapshot *other,
                     const struct lb_vip *ov)
{
	const struct lb_backend *o = snap_backend(other, ov, &b->addr);

	return b->weight > 0 && o && o->weight > 0;
}

/* What REPLAY_FLOWS flows do when VIP web goes from snapshot so to sn. */
struct replay {
	double changed;   /* share of the flows whose backend (address) changed: measured */
	double between;   /* ... that moved from one survivor to another: measured */
	double min_moved; /* sum over old backends of max(0, old share - new share): slot counts */
	double between_min; /* the least share any tables with these slot counts move between
	                     * survivors (backends in both configs with weight > 0 in both) */
};

/*
 * Flow i comes from 198.19.x.y (x.y = i mod 65536) port REPLAY_PORT_FIRST + i / 65536 to the VIP;
 * its old and new backends are the tables' slots for lb_flow_hash of its key (without ports for
 * a hash: source VIP) under each snapshot's seed, as the packet path finds them. The flows of one
 * source share a slot under hash: source, but whether each changed backend stays independent of
 * the others' (their old slots are independent), so the binomial tolerance still holds.
 *
 * between_min: survivors whose share shrinks must give up loss_s of the flows; the backends that
 * are not survivors (each has a share in at most one table) can take at most what they hold in
 * the new table, 1 - new_s, and the rest must go to other survivors. So `between - between_min` is
 * the excess of docs/maglev.md measured in flows whenever no backend joins while another leaves
 * (then non-survivors either only lose, or only gain and take from survivors alone); the cases
 * below are all such changes.
 */
static void replay(const struct lb_snapshot *so, const struct lb_snapshot *sn, struct replay *r)
{
	const struct lb_vip *vo = snap_web(so), *vn = snap_web(sn);
	uint64_t changed = 0, between = 0;
	double loss_s = 0, new_s = 0;
	struct lb_addr src;

	*r = (struct replay){0};
	assert_int_equal(lb_addr_parse("198.19.0.0", &src), 0);
	for (uint32_t j = 0; j < vo->n_backends; j++) {
		const struct lb_backend *bo = &so->backends[vo->backends[j]];
		const struct lb_backend *bn = snap_backend(sn, vn, &bo->addr);
		double s_old = (double)bo->slots / vo->table_size;
		double s_new = bn ? (double)bn->slots / vn->table_size : 0.0;
		double loss = s_old > s_new ? s_old - s_new : 0.0;

		r->min_moved += loss;
		if (survives(bo, sn, vn)) {
			loss_s += loss;
			new_s += s_new;
		}
	}
	r->between_min = fmax(0.0, loss_s - (1.0 - new_s));
	for (uint32_t i = 0; i < REPLAY_FLOWS; i++) {
		struct lb_flow_key k, ks;
		uint16_t io, in;

		src.b[2] = (uint8_t)(i >> 8);
		src.b[3] = (uint8_t)i;
		lb_flow_key_make(&k, &src, &vo->addr, IPPROTO_TCP,
		                 (uint16_t)(REPLAY_PORT_FIRST + (i >> 16)), vo->port);
		lb_flow_key_source(&ks, &k);
		io = vo->table[lb_flow_hash(vo->hash == VIP_HASH_SOURCE ? &ks : &k, so->hash_seed) %
		               vo->table_size];
		in = vn->table[lb_flow_hash(vn->hash == VIP_HASH_SOURCE ? &ks : &k, sn->hash_seed) %
		               vn->table_size];
		assert_true(io != LB_BACKEND_NONE && in != LB_BACKEND_NONE);
		if (lb_addr_eq(&so->backends[io].addr, &sn->backends[in].addr))
			continue;
		changed++;
		if (survives(&so->backends[io], sn, vn) && survives(&sn->backends[in], so, vo))
			between++;
	}
	r->changed = (double)changed / REPLAY_FLOWS;
	r->between = (double)between / REPLAY_FLOWS;
}

/*
 * Fails unless measured, a share of the replayed flows, is claimed_pct + base_pct percent of them:
 * claimed_pct is the diff's figure, base_pct an exact part of the measured count not in it.
 */
static void replay_agrees(const char *what, const char *figure, double measured, double claimed_pct,
                          double base_pct)
{
	double p = fmin(1.0, fmax(0.0, (claimed_pct + base_pct) / 100.0));
	double tol =
	    100.0 * REPLAY_SIGMAS * sqrt(p * (1.0 - p) / REPLAY_FLOWS) + REPLAY_PCT_ROUNDING;
	double got = 100.0 * measured - base_pct;

	if (fabs(got - claimed_pct) > tol)
		fail_msg("%s: %s: the diff says %.4f%%, %u replayed flows %.4f%% (tolerance %.4f)",
		         what, figure, claimed_pct, REPLAY_FLOWS, got, tol);
}

/* One change of VIP web's config; the old config has n_old backends of weight 1 at M = m_old. */
struct replay_case {
	const char *what;
	uint32_t m_old, n_old;
	uint32_t m_new, n_new, skip_every; /* the new config as write_config takes them */
	int drain;                         /* backend given weight 0 in the new config, -1 none */
	int heavy;                         /* backend given weight 2 in the new config, -1 none */
	uint64_t seed_new;                 /* the new config's hash_seed; 0: the same */
	double excess_max_pct;             /* the diff's excess must be below */
	bool source_new;                   /* the new config's VIP has hash: source */
};

static const struct replay_case replay_cases[] = {
    {"add 1 to 10", 65537, 10, 65537, 11, 0, -1, -1, 0, 1.0, false},
    {"remove 1 of 10", 65537, 10, 65537, 10, 10, -1, -1, 0, 1.0, false},
    {"drain 1 of 10", 65537, 10, 65537, 10, 0, 3, -1, 0, 1.0, false},
    {"weight 1 -> 2 on 1 of 10", 65537, 10, 65537, 10, 0, -1, 5, 0, 1.0, false},
    {"add 3 to 7", 4099, 7, 4099, 10, 0, -1, -1, 0, 2.0, false},
    {"table size 65537 -> 655373", 65537, 10, 655373, 10, 0, -1, -1, 0, 100.0, false},
    {"table size 65537 -> 655373, add 1 to 10", 65537, 10, 655373, 11, 0, -1, -1, 0, 100.0, false},
    {"hash_seed changed", 65537, 10, 65537, 10, 0, -1, -1, 0x5eed5, 100.0, false},
    {"hash_seed changed, M = 7", 7, 2, 7, 2, 0, -1, -1, 0x5eed5, 100.0, false},
    {"hash 5-tuple -> source", 65537, 10, 65537, 10, 0, -1, -1, 0, 100.0, true},
    {"hash 5-tuple -> source, add 1 to 10", 4099, 10, 4099, 11, 0, -1, -1, 0, 100.0, true},
};

/*
 * The diff's changed and excess against moves measured by replaying flows through the daemon's
 * own snapshots (snapshot_build, lb_flow_hash, table[hash % M]); its excess is the changed share
 * less the least any tables must move (docs/maglev.md).
 */
static void test_diff_replay(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(replay_cases); i++) {
		const struct replay_case *rc = &replay_cases[i];
		char p_old[128], p_new[128];
		struct config *oc, *nc;
		struct lb_snapshot *so, *sn;
		struct offline_vip_diff d;
		struct replay r;

		write_config(f, "old.yaml", p_old, sizeof(p_old), rc->m_old, rc->n_old, 0, -1,
		             false);
		write_config(f, "new.yaml", p_new, sizeof(p_new), rc->m_new, rc->n_new,
		             rc->skip_every, rc->drain, false);
		oc = load(p_old);
		nc = load(p_new);
		if (rc->heavy >= 0)
			nc->vips[0].backends[rc->heavy].weight = 2;
		if (rc->seed_new)
			nc->hash_seed = rc->seed_new;
		if (rc->source_new)
			nc->vips[0].hash = VIP_HASH_SOURCE;
		so = snap(oc, NULL, NULL);
		sn = snap(nc, NULL, NULL);
		assert_int_equal(offline_vip_diff(oc, &oc->vips[0], nc, &nc->vips[0], &d), 0);
		assert_int_equal(d.hash_changed, rc->source_new);
		replay(so, sn, &r);
		print_message("%-40s diff: changed %8.4f%% excess %8.4f%%  replay: changed %8.4f%% "
		              "excess %8.4f%%\n",
		              rc->what, d.changed_pct, d.excess_pct, 100.0 * r.changed,
		              100.0 * (r.between - r.between_min));
		replay_agrees(rc->what, "changed", r.changed, d.changed_pct, 0.0);
		replay_agrees(rc->what, "excess", r.between, d.excess_pct, 100.0 * r.between_min);
		/* The definition, from the slot counts: excess = changed - the least any table
		 * moves. */
		if (fabs(d.changed_pct - d.excess_pct - 100.0 * r.min_moved) >
		    2 * REPLAY_PCT_ROUNDING)
			fail_msg("%s: changed %.4f%% - excess %.4f%% is not the least move %.4f%%",
			         rc->what, d.changed_pct, d.excess_pct, 100.0 * r.min_moved);
		if (d.excess_pct < 0.0 || d.excess_pct >= rc->excess_max_pct)
			fail_msg("%s: excess %.4f%% not in [0, %.1f)", rc->what, d.excess_pct,
			         rc->excess_max_pct);
		snapshot_free(so);
		snapshot_free(sn);
		config_free(oc);
		config_free(nc);
	}
}

static void test_diff_added_removed(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_new[128], *buf;
	struct config *oc, *nc;
	struct offline_vip_diff *d;
	uint32_t n;
	json_t *root, *v;
	const char *keys[] = {"name",          "status",      "old_table_size", "new_table_size",
	                      "changed_slots", "changed_pct", "excess_slots",   "excess_pct"};

	write_config(f, "a.yaml", p_old, sizeof(p_old), 65537, 3, 0, -1, false);
	write_config(f, "b.yaml", p_new, sizeof(p_new), 65537, 3, 0, -1, true);
	oc = load(p_old);
	nc = load(p_new);
	assert_int_equal(offline_diff(nc, oc, &d, &n), 0);
	assert_int_equal(diff_find(d, n, "dns")->status, OFFLINE_VIP_REMOVED);
	assert_int_equal(diff_find(d, n, "dns")->changed_slots, 65537);
	free(d);
	assert_int_equal(offline_diff(oc, nc, &d, &n), 0);
	assert_int_equal(diff_find(d, n, "dns")->status, OFFLINE_VIP_ADDED);
	assert_true(diff_find(d, n, "dns")->changed_pct == 100.0);
	assert_int_equal(diff_find(d, n, "dns")->excess_slots, 0);
	free(d);

	root = print_json(oc, nc, NULL, &buf);
	assert_int_equal(json_array_size(json_object_get(root, "vips")), 2);
	v = json_array_get(json_object_get(root, "vips"), 1);
	for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
		if (!json_object_get(v, keys[k]))
			fail_msg("diff JSON lacks '%s': %s", keys[k], buf);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "added");
	json_decref(root);
	free(buf);
	config_free(oc);
	config_free(nc);
}

/* The shortest decimal of a percentage rounded to 4 decimals, as JSON has it: 9.4374, 100.0. */
static void pct_short(double pct, char *buf, size_t len)
{
	size_t end;

	snprintf(buf, len, "%.4f", pct);
	end = strlen(buf);
	while (end > 2 && buf[end - 1] == '0' && buf[end - 2] != '.')
		buf[--end] = '\0';
}

/*
 * The diff's JSON numbers are the rounded values they claim to be: "excess_pct": 0.3479, not
 * 0.34789999999999999, and they read back as exactly the diff's figures.
 */
static void test_diff_json_numbers(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_new[128], *buf;
	const char *const pct_keys[] = {"changed_pct", "excess_pct"};
	struct config *oc, *nc;
	struct offline_vip_diff *d;
	uint32_t n;
	json_t *root, *vips;

	write_config(f, "ten.yaml", p_old, sizeof(p_old), 65537, 10, 0, -1, false);
	write_config(f, "eleven.yaml", p_new, sizeof(p_new), 65537, 11, 0, -1, true);
	oc = load(p_old);
	nc = load(p_new);
	assert_int_equal(offline_diff(oc, nc, &d, &n), 0);
	root = print_json(oc, nc, NULL, &buf);
	for (const char *p = strchr(buf, '.'); p; p = strchr(p + 1, '.'))
		if (strspn(p + 1, "0123456789") >= 15)
			fail_msg("a 15+-digit fraction in the diff's JSON: %s", buf);
	vips = json_object_get(root, "vips");
	assert_int_equal(json_array_size(vips), n);
	for (uint32_t i = 0; i < n; i++) {
		const double want[] = {d[i].changed_pct, d[i].excess_pct};
		json_t *v = json_array_get(vips, i);

		assert_string_equal(json_string_value(json_object_get(v, "name")), d[i].name);
		for (size_t k = 0; k < ARRAY_SIZE(pct_keys); k++) {
			json_t *x = json_object_get(v, pct_keys[k]);
			char num[32], text[64];
			const char *at;

			pct_short(want[k], num, sizeof(num));
			snprintf(text, sizeof(text), "\"%s\": %s", pct_keys[k], num);
			at = strstr(buf, text);
			if (!at || !strchr(",\n", at[strlen(text)]))
				fail_msg("VIP %s: no %s in the diff's JSON: %s", d[i].name, text,
				         buf);
			assert_true(json_is_real(x));
			if (json_real_value(x) != want[k])
				fail_msg("VIP %s: %s reads back as %.17g, not %.17g", d[i].name,
				         pct_keys[k], json_real_value(x), want[k]);
		}
	}
	/* The cases the short forms stand for: a fraction, 100.0 (dns, added), 0.0 (its excess). */
	assert_true(diff_find(d, n, "web")->excess_pct > 0.0 &&
	            diff_find(d, n, "web")->excess_pct < 1.0);
	assert_non_null(strstr(buf, "\"changed_pct\": 100.0,"));
	assert_non_null(strstr(buf, "\"excess_pct\": 0.0\n"));
	json_decref(root);
	free(buf);
	free(d);
	config_free(oc);
	config_free(nc);
}

/* The subcommands: a bad config is an error naming file and line; bad usage is COMMAND_USAGE. */
static void test_commands(void **state)
{
	struct fixture *f = *state;
	char path[128], good[128], err[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/bad.yaml", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "cluster:\n  table_size: 65536\n");
	fclose(fp);
	write_config(f, "good.yaml", good, sizeof(good), 7, 3, 0, -1, false);
	{
		char *argv[] = {"table", "-c", path, NULL};

		assert_true(offline_table_run(3, argv, err, sizeof(err)) < 0);
		assert_non_null(strstr(err, "bad.yaml:2:"));
		assert_non_null(strstr(err, "'65536'"));
	}
	{
		char *argv[] = {"diff", good, path, "--json", NULL};

		assert_true(offline_diff_run(4, argv, err, sizeof(err)) < 0);
		assert_non_null(strstr(err, "bad.yaml:2:"));
	}
	{
		char *argv[] = {"diff", good, NULL};

		assert_int_equal(offline_diff_run(2, argv, err, sizeof(err)), COMMAND_USAGE);
		assert_non_null(strstr(err, "usage"));
	}
	{
		char *argv[] = {"table", good, NULL};

		assert_int_equal(offline_table_run(2, argv, err, sizeof(err)), COMMAND_USAGE);
	}
	{
		char *argv[] = {"table", "-c", good, "--vip", "web", NULL};
		FILE *saved = stdout;
		char *buf = NULL;
		size_t len = 0;

		stdout = open_memstream(&buf, &len);
		assert_non_null(stdout);
		assert_int_equal(offline_table_run(5, argv, err, sizeof(err)), 0);
		fclose(stdout);
		stdout = saved;
		assert_non_null(strstr(buf, "vip web"));
		assert_non_null(strstr(buf, "table_size 7"));
		assert_non_null(strstr(buf, "198.18.1.3"));
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_drain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_size_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_replay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_added_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diff_json_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctl_offline", tests, NULL, NULL);
}
