/* SPDX-License-Identifier: GPL-2.0-only */
/* Unit tests of `maglevctl table` / `diff` (ctl_offline) on config files written to a temp dir. */
#include <errno.h>
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
#include "core/maglev.h"

#define BACKENDS_MANY 200u

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

/* Runs print into a memory buffer and parses it as JSON. */
static json_t *table_json(const struct config *c, const char *vip)
{
	char *buf = NULL, err[256];
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	json_error_t jerr;
	json_t *root;

	assert_non_null(mem);
	assert_int_equal(offline_table_print(mem, c, vip, true, err, sizeof(err)), 0);
	fclose(mem);
	root = json_loads(buf, 0, &jerr);
	if (!root)
		fail_msg("bad JSON (%s): %s", jerr.text, buf);
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

	root = table_json(c, NULL);
	vips = json_object_get(root, "vips");
	assert_int_equal(json_array_size(vips), 2);
	v = json_array_get(vips, 0);
	assert_string_equal(json_string_value(json_object_get(v, "name")), "web");
	assert_int_equal(json_integer_value(json_object_get(v, "table_size")), 65537);
	assert_int_equal(strlen(json_string_value(json_object_get(v, "digest"))), 16);
	bs = json_object_get(v, "backends");
	assert_int_equal(json_array_size(bs), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(bs, 0), "address")),
	                    "198.18.1.1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 1), "weight")), 2);
	assert_true(json_integer_value(json_object_get(json_array_get(bs, 2), "slots")) > 0);
	json_decref(root);

	root = table_json(c, "dns");
	assert_int_equal(json_array_size(json_object_get(root, "vips")), 1);
	json_decref(root);

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
	/* Both backends survive, so every moved flow is excess. */
	assert_int_equal(d.changed_slots, d.excess_slots);
	assert_in_range(d.changed_slots, 655373 / 2 - 10, 655373 / 2 + 10);
	config_free(oc);
	config_free(nc);
}

static void test_diff_added_removed(void **state)
{
	struct fixture *f = *state;
	char p_old[128], p_new[128], *buf = NULL, err[256];
	struct config *oc, *nc;
	struct offline_vip_diff *d;
	uint32_t n;
	size_t len = 0;
	FILE *mem;
	json_t *root, *v;
	json_error_t jerr;
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

	mem = open_memstream(&buf, &len);
	assert_non_null(mem);
	assert_int_equal(offline_diff_print(mem, oc, nc, true, err, sizeof(err)), 0);
	fclose(mem);
	root = json_loads(buf, 0, &jerr);
	assert_non_null(root);
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
	    cmocka_unit_test_setup_teardown(test_diff_added_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctl_offline", tests, NULL, NULL);
}
