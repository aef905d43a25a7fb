/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl table` / `maglevctl diff`: a config's Maglev tables and what a change would move. */
#include "maglevctl/offline.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "control/config_yaml.h"
#include "maglevctl/command.h"
#include "core/addr.h"
#include "core/maglev.h"

#define OFFLINE_PCT_DECIMALS  4   /* percentages are rounded to 4 decimals */
#define OFFLINE_PCT_SCALE     1e4 /* 10^OFFLINE_PCT_DECIMALS */
#define OFFLINE_PCT_DIGITS    3   /* digits before the point: a percentage is at most 100 */
#define OFFLINE_DIGEST_STRLEN 17u /* 16 hex digits of a 64-bit digest and the NUL */

static const char offline_table_usage[] = "usage: maglevctl table -c FILE [--vip NAME] [--json]";
static const char offline_diff_usage[] = "usage: maglevctl diff OLD.yaml NEW.yaml [--json]";

int offline_table_build(const struct config *c, const struct config_vip *v,
                        struct offline_table *out)
{
	struct maglev_backend *b = NULL;
	int err = -EINVAL;

	*out = (struct offline_table){.table_size = v->table_size};
	if (v->n_backends == 0 || v->n_backends > MAGLEV_BACKENDS_MAX)
		goto out;
	err = -ENOMEM;
	b = calloc(v->n_backends, sizeof(*b));
	out->table = malloc(v->table_size * sizeof(*out->table));
	out->slots = calloc(v->n_backends, sizeof(*out->slots));
	if (!b || !out->table || !out->slots)
		goto out;
	for (uint32_t i = 0; i < v->n_backends; i++)
		b[i] = (struct maglev_backend){
		    .key = v->backends[i].addr.b,
		    .key_len = lb_addr_len(&v->backends[i].addr),
		    .weight = v->backends[i].weight,
		};
	err = maglev_build(out->table, v->table_size, b, v->n_backends, c->hash_seed);
	if (err)
		goto out;
	maglev_count(out->table, v->table_size, out->slots, v->n_backends);
	out->digest = maglev_digest(out->table, v->table_size, b, v->n_backends);
out:
	free(b);
	if (err)
		offline_table_free(out);
	return err;
}

void offline_table_free(struct offline_table *t)
{
	free(t->table);
	free(t->slots);
	t->table = NULL;
	t->slots = NULL;
}

static double offline_pct_round(double x)
{
	return round(x * OFFLINE_PCT_SCALE) / OFFLINE_PCT_SCALE;
}

/*
 * The least share of flows that any two tables with these slot counts must move: the sum over the
 * old backends, and the empty state (every weight 0), of max(0, old share - new share). A
 * backend's old share is counted as its old slots times k_old, its new share as its new slots
 * times k_new (map: old backend index -> new one or -1), in the unit of the changed count.
 */
static uint64_t offline_least_moved(const struct config_vip *ov, const struct offline_table *to,
                                    const struct offline_table *tn, const int32_t *map,
                                    uint64_t empty_old, uint64_t empty_new, uint64_t k_old,
                                    uint64_t k_new)
{
	uint64_t least = 0, o, n;

	for (uint32_t i = 0; i < ov->n_backends; i++) {
		o = to->slots[i] * k_old;
		n = map[i] >= 0 ? tn->slots[map[i]] * k_new : 0;
		least += o > n ? o - n : 0;
	}
	o = empty_old * k_old;
	n = empty_new * k_new;
	return least + (o > n ? o - n : 0);
}

/* Slots of t that hold no backend: all of them if every weight is 0, else none. */
static uint64_t offline_empty_slots(const struct offline_table *t, uint32_t n_backends)
{
	uint64_t empty = t->table_size;

	for (uint32_t i = 0; i < n_backends; i++)
		empty -= t->slots[i];
	return empty;
}

int offline_vip_diff(const struct config *oldc, const struct config_vip *ov,
                     const struct config *newc, const struct config_vip *nv,
                     struct offline_vip_diff *out)
{
	struct offline_table to = {0}, tn = {0};
	int32_t *map = NULL; /* old backend index -> new backend index or -1 */
	uint64_t m1 = ov->table_size, m2 = nv->table_size, e1, e2, changed = 0, least, excess;
	uint64_t total, per_slot; /* flows counted in 1/total, per_slot of which make a slot */
	int err;

	*out = (struct offline_vip_diff){
	    .status = OFFLINE_VIP_BOTH,
	    .old_size = ov->table_size,
	    .new_size = nv->table_size,
	    .size_changed = ov->table_size != nv->table_size,
	    .seed_changed = oldc->hash_seed != newc->hash_seed,
	    .hash_changed = ov->hash != nv->hash,
	};
	snprintf(out->name, sizeof(out->name), "%s", ov->name);
	err = offline_table_build(oldc, ov, &to);
	if (!err)
		err = offline_table_build(newc, nv, &tn);
	if (err)
		goto out;
	err = -ENOMEM;
	map = malloc(ov->n_backends * sizeof(*map));
	if (!map)
		goto out;
	for (uint32_t i = 0; i < ov->n_backends; i++) {
		const struct config_backend *b = config_backend_find(nv, &ov->backends[i].addr);

		map[i] = b ? (int32_t)(b - nv->backends) : -1;
	}
	e1 = offline_empty_slots(&to, ov->n_backends);
	e2 = offline_empty_slots(&tn, nv->n_backends);

	if (!out->size_changed && !out->seed_changed && !out->hash_changed) {
		/* A flow keeps its slot: count the slots whose backend differs, in slots of M. */
		for (uint32_t s = 0; s < m1; s++) {
			uint16_t o = to.table[s], n = tn.table[s];

			if (o == MAGLEV_EMPTY ? n != MAGLEV_EMPTY : map[o] != (int32_t)n)
				changed++;
		}
		least = offline_least_moved(ov, &to, &tn, map, e1, e2, 1, 1);
		total = m1;
		per_slot = 1;
	} else {
		/*
		 * Pairs (old slot, new slot), each a 1/(m1*m2) share of the flow hashes: a flow's
		 * slots h mod m1 and h mod m2 are independent for distinct primes, as are its old
		 * and new hashes under two seeds, or of two keys (with and without the ports).
		 */
		uint64_t same = e1 * e2; /* empty in both: nothing changes for those flows */

		for (uint32_t i = 0; i < ov->n_backends; i++)
			same += (uint64_t)to.slots[i] * (map[i] >= 0 ? tn.slots[map[i]] : 0);
		changed = m1 * m2 - same;
		least = offline_least_moved(ov, &to, &tn, map, e1, e2, m2, m1);
		total = m1 * m2;
		per_slot = m1;
	}
	/*
	 * Excess: what moves beyond the least any table could move. The counts are exact integers
	 * and changed is never below the least: an old backend (or the empty state) with c_old
	 * slots and c_new new ones keeps at most c_new of its slots, and in pairs moves
	 * c_old * (m2 - c_new) >= c_old * m2 - c_new * m1 as c_old <= m1. So no rounding can make
	 * the excess negative; the clamp only keeps a miscount from wrapping around.
	 */
	excess = changed > least ? changed - least : 0;
	out->changed_slots = (changed + per_slot / 2) / per_slot;
	out->excess_slots = (excess + per_slot / 2) / per_slot;
	out->changed_pct = offline_pct_round(100.0 * (double)changed / (double)total);
	out->excess_pct = offline_pct_round(100.0 * (double)excess / (double)total);
	err = 0;
out:
	free(map);
	offline_table_free(&to);
	offline_table_free(&tn);
	return err;
}

/* The diff of VIP v, in one config only (status ADDED or REMOVED): every slot it has changes. */
static void offline_vip_one_side(const struct config_vip *v, enum offline_vip_status status,
                                 struct offline_vip_diff *out)
{
	*out = (struct offline_vip_diff){
	    .status = status,
	    .old_size = status == OFFLINE_VIP_REMOVED ? v->table_size : 0,
	    .new_size = status == OFFLINE_VIP_ADDED ? v->table_size : 0,
	    .changed_slots = v->table_size,
	    .changed_pct = 100.0,
	};
	snprintf(out->name, sizeof(out->name), "%s", v->name);
}

int offline_diff(const struct config *oldc, const struct config *newc,
                 struct offline_vip_diff **out, uint32_t *n_out)
{
	struct offline_vip_diff *d;
	uint32_t n = 0;
	int err = 0;

	d = calloc((size_t)oldc->n_vips + newc->n_vips + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (uint32_t i = 0; i < oldc->n_vips; i++) {
		const struct config_vip *ov = &oldc->vips[i], *nv = config_vip_find(newc, ov->name);

		if (nv) {
			err = offline_vip_diff(oldc, ov, newc, nv, &d[n]);
			if (err)
				goto out;
		} else {
			offline_vip_one_side(ov, OFFLINE_VIP_REMOVED, &d[n]);
		}
		n++;
	}
	for (uint32_t j = 0; j < newc->n_vips; j++) {
		const struct config_vip *nv = &newc->vips[j];

		if (config_vip_find(oldc, nv->name))
			continue;
		offline_vip_one_side(nv, OFFLINE_VIP_ADDED, &d[n]);
		n++;
	}
out:
	if (err) {
		free(d);
		return err;
	}
	*out = d;
	*n_out = n;
	return 0;
}

static const char *offline_proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

/*
 * Prints root and a newline, and releases root. The only reals are percentages rounded to
 * OFFLINE_PCT_DECIMALS (k / 10^4 as the nearest double, 0 <= k <= 10^6); jansson's default 17
 * significant digits print 9.4374 as 9.4374000000000002. With OFFLINE_PCT_DIGITS +
 * OFFLINE_PCT_DECIMALS = 7 significant digits (jansson prints "%.7g", and ".0" if that has no
 * point) each prints as its short decimal, 9.4374 or 100.0, which reads back as the same double:
 * a double holds any 15 significant digits (checked for every k against jansson). Rounding the
 * double is simpler than building numbers from decimal text, which jansson cannot emit raw.
 */
static int offline_json_emit(FILE *out, json_t *root)
{
	int err = 0;

	if (!root)
		return -ENOMEM;
	if (json_dumpf(root, out,
	               JSON_INDENT(2) |
	                   JSON_REAL_PRECISION(OFFLINE_PCT_DIGITS + OFFLINE_PCT_DECIMALS)) != 0 ||
	    fputc('\n', out) == EOF)
		err = -EIO;
	json_decref(root);
	return err;
}

/* The VIPs to show: all, or the one named (-ENOENT). */
static int offline_vips_select(const struct config *c, const char *vip, uint32_t *first,
                               uint32_t *end, char *err, size_t errlen)
{
	const struct config_vip *v = vip ? config_vip_find(c, vip) : NULL;

	*first = 0;
	*end = c->n_vips;
	if (!vip)
		return 0;
	if (!v) {
		snprintf(err, errlen, "%s: no VIP named '%s'", c->path, vip);
		return -ENOENT;
	}
	*first = (uint32_t)(v - c->vips);
	*end = *first + 1;
	return 0;
}

static void offline_table_print_text(FILE *out, const struct config_vip *v,
                                     const struct offline_table *t)
{
	char buf[LB_ADDR_STRLEN];
	int w = (int)strlen("backend");

	fprintf(out, "vip %s  %s %s port %u  hash %s  table_size %u  digest %016" PRIx64 "\n",
	        v->name, lb_addr_str(&v->addr, buf, sizeof(buf)), offline_proto_name(v->proto),
	        v->port, config_vip_hash_name(v->hash), t->table_size, t->digest);
	for (uint32_t i = 0; i < v->n_backends; i++) {
		int l = (int)strlen(lb_addr_str(&v->backends[i].addr, buf, sizeof(buf)));

		w = l > w ? l : w;
	}
	fprintf(out, "  %-*s  %6s  %8s  %8s\n", w, "backend", "weight", "slots", "share");
	for (uint32_t i = 0; i < v->n_backends; i++)
		fprintf(out, "  %-*s  %6u  %8u  %7.3f%%\n", w,
		        lb_addr_str(&v->backends[i].addr, buf, sizeof(buf)), v->backends[i].weight,
		        t->slots[i], 100.0 * t->slots[i] / t->table_size);
}

int offline_table_print(FILE *out, const struct config *c, const char *vip, bool json, char *err,
                        size_t errlen)
{
	json_t *root = NULL, *vips = NULL;
	uint32_t first, end;
	int rc;

	rc = offline_vips_select(c, vip, &first, &end, err, errlen);
	if (rc)
		return rc;
	if (json) {
		root = json_object();
		vips = json_array();
		if (!root || !vips || json_object_set_new(root, "vips", vips) != 0) {
			json_decref(vips);
			rc = -ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = first; i < end; i++) {
		const struct config_vip *v = &c->vips[i];
		struct offline_table t;
		char digest[OFFLINE_DIGEST_STRLEN];

		rc = offline_table_build(c, v, &t);
		if (rc) {
			snprintf(err, errlen, "%s: VIP '%s': cannot build its table: %s", c->path,
			         v->name, strerror(-rc));
			goto out;
		}
		snprintf(digest, sizeof(digest), "%016" PRIx64, t.digest);
		if (json) {
			json_t *bs = json_array(), *o;

			for (uint32_t k = 0; bs && k < v->n_backends; k++) {
				char buf[LB_ADDR_STRLEN];
				json_t *jb =
				    json_pack("{s:s, s:I, s:I}", "address",
				              lb_addr_str(&v->backends[k].addr, buf, sizeof(buf)),
				              "weight", (json_int_t)v->backends[k].weight, "slots",
				              (json_int_t)t.slots[k]);

				if (!jb || json_array_append_new(bs, jb) != 0) {
					json_decref(bs);
					bs = NULL;
				}
			}
			char addr[LB_ADDR_STRLEN];

			/* The same fields, under the same keys, as `maglevctl vips --json`. */
			o = bs ? json_pack(
			             "{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:o}", "name", v->name,
			             "address", lb_addr_str(&v->addr, addr, sizeof(addr)),
			             "protocol", offline_proto_name(v->proto), "port",
			             (json_int_t)v->port, "hash", config_vip_hash_name(v->hash),
			             "table_size", (json_int_t)t.table_size, "digest", digest,
			             "backends", bs)
			       : NULL;
			if (!o || json_array_append_new(vips, o) != 0)
				rc = -ENOMEM;
		} else {
			if (i > first)
				fputc('\n', out);
			offline_table_print_text(out, v, &t);
		}
		offline_table_free(&t);
		if (rc)
			goto out;
	}
	if (json) {
		rc = offline_json_emit(out, root);
		root = NULL;
	}
out:
	json_decref(root);
	if (rc == -ENOMEM || rc == -EIO)
		snprintf(err, errlen, "cannot print the tables: %s", strerror(-rc));
	return rc;
}

static const char *offline_status_name(enum offline_vip_status s)
{
	return s == OFFLINE_VIP_ADDED ? "added" : s == OFFLINE_VIP_REMOVED ? "removed" : "both";
}

static void offline_diff_print_text(FILE *out, const struct offline_vip_diff *d, uint32_t n)
{
	bool size_changed = false, seed_changed = false, hash_changed = false;
	int w = (int)strlen("vip");

	for (uint32_t i = 0; i < n; i++) {
		int l = (int)strlen(d[i].name);

		w = l > w ? l : w;
	}
	fprintf(out, "%-*s  %-7s  %-17s  %8s  %9s  %8s  %9s\n", w, "vip", "status", "table_size",
	        "changed", "changed%", "excess", "excess%");
	for (uint32_t i = 0; i < n; i++) {
		char size[32];

		if (d[i].status == OFFLINE_VIP_ADDED)
			snprintf(size, sizeof(size), "%u", d[i].new_size);
		else if (d[i].status == OFFLINE_VIP_REMOVED || !d[i].size_changed)
			snprintf(size, sizeof(size), "%u", d[i].old_size);
		else
			snprintf(size, sizeof(size), "%u->%u", d[i].old_size, d[i].new_size);
		fprintf(out, "%-*s  %-7s  %-17s  %8" PRIu64 "  %8.3f%%  %8" PRIu64 "  %8.3f%%\n", w,
		        d[i].name, offline_status_name(d[i].status), size, d[i].changed_slots,
		        d[i].changed_pct, d[i].excess_slots, d[i].excess_pct);
	}
	for (uint32_t i = 0; i < n; i++) {
		size_changed |= d[i].size_changed;
		seed_changed |= d[i].seed_changed;
		hash_changed |= d[i].hash_changed;
	}
	if (size_changed)
		fprintf(out, "table_size changed: slots are flow-hash shares in units of the new "
		             "table (see docs/maglev.md)\n");
	if (seed_changed)
		fprintf(out, "hash_seed changed: every flow is hashed anew (see docs/maglev.md)\n");
	if (hash_changed)
		fprintf(out,
		        "hash changed (5-tuple, source): every flow of such a VIP is hashed anew "
		        "(see docs/pipeline.md)\n");
}

int offline_diff_print(FILE *out, const struct config *oldc, const struct config *newc, bool json,
                       char *err, size_t errlen)
{
	struct offline_vip_diff *d = NULL;
	json_t *root = NULL, *vips;
	uint32_t n = 0;
	int rc;

	rc = offline_diff(oldc, newc, &d, &n);
	if (rc) {
		snprintf(err, errlen, "cannot diff %s and %s: %s", oldc->path, newc->path,
		         strerror(-rc));
		return rc;
	}
	if (!json) {
		offline_diff_print_text(out, d, n);
		goto out;
	}
	rc = -ENOMEM;
	vips = json_array();
	root = json_pack("{s:o}", "vips", vips);
	if (!root)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:I, s:I, s:I, s:f, s:I, s:f}", "name", d[i].name, "status",
		    offline_status_name(d[i].status), "old_table_size", (json_int_t)d[i].old_size,
		    "new_table_size", (json_int_t)d[i].new_size, "changed_slots",
		    (json_int_t)d[i].changed_slots, "changed_pct", d[i].changed_pct, "excess_slots",
		    (json_int_t)d[i].excess_slots, "excess_pct", d[i].excess_pct);

		if (!o || json_array_append_new(vips, o) != 0)
			goto out;
	}
	rc = offline_json_emit(out, root);
	root = NULL;
out:
	json_decref(root);
	free(d);
	if (rc)
		snprintf(err, errlen, "cannot print the diff: %s", strerror(-rc));
	return rc;
}

enum { OPT_VIP = 256, OPT_JSON };

int offline_table_run(int argc, char **argv, char *err, size_t errlen)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"vip", required_argument, NULL, OPT_VIP},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *vip = NULL;
	struct config *c = NULL;
	bool json = false;
	int opt, rc;

	optind = 0; /* GNU getopt: start over for this subcommand's argv */
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case OPT_VIP:
			vip = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			printf("%s\n", offline_table_usage);
			return 0;
		default:
			snprintf(err, errlen, "%s", offline_table_usage);
			return COMMAND_USAGE;
		}
	}
	if (!path || optind != argc) {
		snprintf(err, errlen, "%s", offline_table_usage);
		return COMMAND_USAGE;
	}
	rc = config_load(path, &c, err, errlen);
	if (rc)
		return rc;
	rc = offline_table_print(stdout, c, vip, json, err, errlen);
	config_free(c);
	return rc;
}

int offline_diff_run(int argc, char **argv, char *err, size_t errlen)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config *oldc = NULL, *newc = NULL;
	bool json = false;
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			printf("%s\n", offline_diff_usage);
			return 0;
		default:
			snprintf(err, errlen, "%s", offline_diff_usage);
			return COMMAND_USAGE;
		}
	}
	if (argc - optind != 2) {
		snprintf(err, errlen, "%s", offline_diff_usage);
		return COMMAND_USAGE;
	}
	rc = config_load(argv[optind], &oldc, err, errlen);
	if (!rc)
		rc = config_load(argv[optind + 1], &newc, err, errlen);
	if (!rc)
		rc = offline_diff_print(stdout, oldc, newc, json, err, errlen);
	config_free(oldc);
	config_free(newc);
	return rc;
}
