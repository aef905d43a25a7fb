/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * maglevd/state: the state file's round trip (snapshot -> file -> history -> the same previous
 * generation), atomic replacement and skipped unchanged writes, the directory made when missing,
 * write failures logged once per distinct error, and bad files of every kind refused with the
 * reason, all of the history or none of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "maglevd/state.h"
#include "helpers.h"
#include "tcfg.h"
#include "tsnap.h"

#define MULTI     5u         /* index of the fixture's VIP "multi" (65537 slots, 4 backends) */
#define TEXT_MAX  (1u << 20) /* bytes of a generated test file */
#define TOP_BYTES 64u        /* bytes of a temporary directory's path */
#define DIR_BYTES 128u       /* bytes of a path under it (below CONFIG_PATH_MAX) */

/* A new empty temporary directory into dir[TOP_BYTES]. */
static void tmpdir_make(char *dir)
{
	snprintf(dir, TOP_BYTES, "/tmp/maglev-state-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* How many entries dir has besides . and ..; *only names one if there is exactly one. */
static int dir_count(const char *dir, char *only, size_t len)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	only[0] = '\0';
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n++ == 0 && strlen(e->d_name) < len)
			memcpy(only, e->d_name, strlen(e->d_name) + 1);
	}
	closedir(d);
	return n;
}

/* dir holds the state file and nothing else (no temporary file). */
static void only_state_file(const char *dir)
{
	char name[sizeof(STATE_FILE_NAME)];

	assert_int_equal(dir_count(dir, name, sizeof(name)), 1);
	assert_string_equal(name, STATE_FILE_NAME);
}

/* Removes dir/name (if there) and dir. */
static void tmpdir_remove(const char *dir, const char *name)
{
	char p[DIR_BYTES + CONFIG_NAME_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
	assert_int_equal(rmdir(dir), 0);
}

static void write_text(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* The whole of path, NUL-terminated (caller frees). */
static char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = malloc(STATE_FILE_MAX + 1u);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, STATE_FILE_MAX, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void gen_equal(const struct lb_gen *a, const struct lb_gen *b)
{
	assert_int_equal(a->table_size, b->table_size);
	assert_true(a->digest == b->digest);
	assert_int_equal(a->hash, b->hash);
	assert_int_equal(a->n_backends, b->n_backends);
	for (uint32_t i = 0; i < a->n_backends; i++) {
		assert_true(lb_addr_eq(&a->backends[i].addr, &b->backends[i].addr));
		assert_int_equal(a->backends[i].weight, b->backends[i].weight);
	}
}

/* A snapshot history: the fixture, then MULTI with a 5th backend and web4's backend drained. */
static void two_snapshots(struct config *c, struct lb_snapshot **s1, struct lb_snapshot **s2)
{
	struct snapshot_override o = {.vip = "web4", .backend = tcfg_addr("198.18.1.11")};
	struct snapshot_state st = {.v = &o, .n = 1};

	o.weight = 0;
	*s1 = snap(c, NULL, NULL);
	tcfg_backend_add(&c->vips[MULTI], "198.18.2.8", 1);
	*s2 = snap(c, *s1, &st);
}

/*
 * Snapshot -> text -> history gives back every VIP's current generation and the previous ones
 * that exist; the file state_store_save writes is that text; a snapshot built from the history
 * has the same previous generation as the one saved.
 */
static void test_round_trip(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2, *r;
	struct snapshot_history h, hf;
	struct snapshot_state st = {.history = &h};
	struct state_store *store;
	char dir[TOP_BYTES], path[STATE_PATH_MAX], err[STATE_ERR_MAX];
	size_t len, flen;
	char *text, *file;

	(void)state;
	two_snapshots(c, &s1, &s2);
	text = state_encode(s2, &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_int_equal(text[len - 1], '\n');
	assert_int_equal(state_decode(text, len, &h, err, sizeof(err)), 0);
	assert_true(h.hash_seed == c->hash_seed);
	assert_int_equal(h.n, s2->n_vips);
	for (uint32_t i = 0; i < h.n; i++) {
		struct lb_gen cur;

		assert_string_equal(h.v[i].name, s2->vips[i].name);
		assert_int_equal(snapshot_gen_current(s2, i, &cur), 0);
		gen_equal(&h.v[i].current, &cur);
		lb_gen_free(&cur);
		if (s2->vips[i].prev_table)
			gen_equal(&h.v[i].previous, &s2->vips[i].prev);
		else
			assert_int_equal(h.v[i].previous.table_size, 0);
	}
	assert_non_null(s2->vips[MULTI].prev_table);
	assert_non_null(s2->vips[0].prev_table); /* web4: drained */
	assert_int_equal(h.v[0].current.backends[0].weight, 0);
	assert_null(s2->vips[1].prev_table);
	assert_null(strstr(text, "\"previous\":null"));
	/* srcweb's generation says its mode; the 5-tuple ones leave it out. */
	assert_non_null(strstr(text, "\"hash\":\"source\""));
	assert_null(strstr(text, "\"hash\":\"5-tuple\""));

	/* Restarted with the same config: the previous generation is s1's table again. */
	r = snap(c, NULL, &st);
	assert_int_equal(r->vips[MULTI].prev_origin, LB_PREV_HISTORY);
	assert_true(r->vips[MULTI].prev.digest == s1->vips[MULTI].digest);
	assert_memory_equal(r->vips[MULTI].prev_table, s2->vips[MULTI].prev_table,
	                    s2->vips[MULTI].prev.table_size * sizeof(uint16_t));
	snapshot_free(r);

	/* The file is the text, and loads as the same history. */
	tmpdir_make(dir);
	assert_int_equal(state_store_create(&store, dir), 0);
	assert_int_equal(state_store_save(store, s2), 1);
	file = read_text(state_file_path(dir, path), &flen);
	assert_int_equal(flen, len);
	assert_memory_equal(file, text, len);
	assert_int_equal(state_load(dir, &hf, err, sizeof(err)), 0);
	assert_int_equal(hf.n, h.n);
	for (uint32_t i = 0; i < h.n; i++) {
		gen_equal(&hf.v[i].current, &h.v[i].current);
		gen_equal(&hf.v[i].previous, &h.v[i].previous);
	}
	state_history_free(&hf);
	assert_null(hf.v);
	state_store_destroy(store);
	tmpdir_remove(dir, STATE_FILE_NAME);
	free(file);
	free(text);
	state_history_free(&h);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/* A name the config would refuse (quote, backslash, control byte) still round-trips as JSON. */
static void test_name_escaped(void **state)
{
	static const char *const b[] = {"198.18.1.1"};
	static const char name[] = "a\"b\\c\x01"
	                           "d";
	struct config *c = tcfg_new();
	struct lb_snapshot *s;
	struct snapshot_history h;
	char err[STATE_ERR_MAX];
	size_t len;
	char *text;

	(void)state;
	tcfg_vip(c, name, "203.0.113.1", IPPROTO_TCP, 80, b, 1, 7);
	s = snap(c, NULL, NULL);
	text = state_encode(s, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"name\":\"a\\\"b\\\\c\\u0001d\""));
	assert_int_equal(state_decode(text, len, &h, err, sizeof(err)), 0);
	assert_string_equal(h.v[0].name, name);
	state_history_free(&h);
	free(text);
	snapshot_free(s);
	config_free(c);
}

/*
 * A VIP whose hash mode changed keeps, across a restart, the table its flows were hashed onto
 * with the old mode as its previous generation, with that mode (second chance looks there).
 */
static void test_hash_mode_history(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2, *r;
	struct snapshot_history h;
	struct snapshot_state st = {.history = &h};
	char err[STATE_ERR_MAX];
	size_t len;
	char *text;
	uint32_t ti;

	(void)state;
	for (ti = 0; strcmp(c->vips[ti].name, "tupweb"); ti++)
		;
	s1 = snap(c, NULL, NULL);
	c->vips[ti].hash = VIP_HASH_SOURCE;
	s2 = snap(c, s1, NULL);
	assert_int_equal(s2->vips[ti].prev.hash, VIP_HASH_5TUPLE);
	assert_true(s2->vips[ti].prev.digest == s1->vips[ti].digest); /* the same table */
	text = state_encode(s2, &len);
	assert_non_null(text);
	assert_int_equal(state_decode(text, len, &h, err, sizeof(err)), 0);
	assert_int_equal(h.v[ti].current.hash, VIP_HASH_SOURCE);
	assert_int_equal(h.v[ti].previous.hash, VIP_HASH_5TUPLE);
	r = snap(c, NULL, &st);
	assert_int_equal(r->vips[ti].prev_origin, LB_PREV_HISTORY);
	assert_int_equal(r->vips[ti].prev.hash, VIP_HASH_5TUPLE);
	assert_memory_equal(r->vips[ti].prev_table, s2->vips[ti].prev_table,
	                    s2->vips[ti].prev.table_size * sizeof(uint16_t));
	snapshot_free(r);
	state_history_free(&h);
	free(text);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/*
 * A write replaces the file by rename (a reader of the old one keeps reading the old one), leaves
 * no temporary file, and is skipped when the state is the one last written; the missing state
 * directory is made, mode 0755.
 */
static void test_atomic_replace(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2;
	struct state_store *store;
	char top[TOP_BYTES], dir[DIR_BYTES], path[STATE_PATH_MAX];
	char *t1, *old;
	struct stat a, b;
	size_t len1, n;
	int fd;

	(void)state;
	two_snapshots(c, &s1, &s2);
	tmpdir_make(top);
	snprintf(dir, sizeof(dir), "%s/state", top);
	umask(022);
	assert_int_equal(state_store_create(&store, dir), 0);
	assert_false(state_store_pending(store));
	assert_string_equal(state_store_dir(store), dir);
	assert_int_equal(stat(dir, &a), -1); /* nothing written at creation */

	assert_int_equal(state_store_save(store, s1), 1);
	assert_int_equal(stat(dir, &a), 0);
	assert_true(S_ISDIR(a.st_mode));
	assert_int_equal(a.st_mode & 07777, STATE_DIR_MODE);
	only_state_file(dir);
	assert_int_equal(stat(state_file_path(dir, path), &a), 0);
	assert_int_equal(a.st_mode & 07777, STATE_FILE_MODE);

	/* The same state again: nothing written. */
	assert_int_equal(state_store_save(store, s1), 0);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino);
	assert_int_equal(state_counter_get(store, STATE_CTR_WRITES), 1);
	assert_int_equal(state_counter_get(store, STATE_CTR_UNCHANGED), 1);

	/* Another state: a new file renamed over the old one, which an open reader still sees. */
	t1 = state_encode(s1, &len1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(state_store_save(store, s2), 1);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino != b.st_ino);
	old = malloc(len1 + 1);
	assert_non_null(old);
	n = (size_t)read(fd, old, len1 + 1);
	close(fd);
	assert_int_equal(n, len1);
	assert_memory_equal(old, t1, len1);
	only_state_file(dir);
	assert_int_equal(state_counter_get(store, STATE_CTR_WRITES), 2);
	assert_int_equal(state_counter_get(store, STATE_CTR_WRITE_ERRORS), 0);

	/* A temporary file a crash left behind is overwritten and renamed like any other. */
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_TMP_NAME);
	write_text(path, "half a fi", 9);
	assert_int_equal(state_store_save(store, s1), 1);
	only_state_file(dir);

	state_store_destroy(store);
	tmpdir_remove(dir, STATE_FILE_NAME);
	assert_int_equal(rmdir(top), 0);
	free(old);
	free(t1);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

static struct state_store *g_store;
static const struct lb_snapshot *g_snap;

static void save_once(void)
{
	state_store_save(g_store, g_snap);
}

static void save_twice(void)
{
	save_once();
	save_once();
}

/*
 * A directory that cannot be made (its parent is missing: one level only) fails each write,
 * counted, logged once while the error stays the same; the store stays pending until a write
 * succeeds, which is logged too.
 */
static void test_write_failure(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	char top[TOP_BYTES], dir[DIR_BYTES], parent[DIR_BYTES - 8];
	const char *out;

	(void)state;
	tmpdir_make(top);
	snprintf(parent, sizeof(parent), "%s/a", top);
	snprintf(dir, sizeof(dir), "%s/b", parent);
	assert_int_equal(state_store_create(&g_store, dir), 0);
	g_snap = s;
	log_init("maglevd");
	out = th_capture_stderr(save_twice);
	assert_non_null(strstr(out, "maglevd: state: cannot create the directory"));
	assert_non_null(strstr(out, dir));
	assert_non_null(strstr(out, "No such file or directory"));
	assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* one line for two failures */
	assert_true(state_store_pending(g_store));
	assert_int_equal(state_counter_get(g_store, STATE_CTR_WRITE_ERRORS), 2);
	assert_int_equal(state_counter_get(g_store, STATE_CTR_WRITES), 0);
	assert_int_equal(state_store_save(g_store, s), -ENOENT);

	/* Another error is logged again. */
	write_text(parent, "x", 1);
	out = th_capture_stderr(save_once);
	assert_non_null(strstr(out, "Not a directory"));
	unlink(parent);

	/* Fixed: the same state is written now (the failures wrote nothing), and that is said. */
	assert_int_equal(mkdir(parent, 0755), 0);
	out = th_capture_stderr(save_once);
	assert_non_null(strstr(out, "written again after 4 failed attempts"));
	assert_false(state_store_pending(g_store));
	assert_int_equal(state_counter_get(g_store, STATE_CTR_WRITES), 1);
	assert_int_equal(state_store_save(g_store, s), 0);
	state_store_destroy(g_store);
	assert_int_equal(state_counter_get(NULL, STATE_CTR_WRITES), 0);
	tmpdir_remove(dir, STATE_FILE_NAME);
	assert_int_equal(rmdir(parent), 0);
	assert_int_equal(rmdir(top), 0);
	snapshot_free(s);
	config_free(c);
}

#define GEN(size, digest, backends)                                                                \
	"{\"table_size\":" size ",\"digest\":\"" digest "\",\"backends\":[" backends "]}"
#define BACKEND(addr, weight) "{\"address\":\"" addr "\",\"weight\":" weight "}"
#define B1                    BACKEND("198.18.1.1", "1")
#define D16                   "0123456789abcdef"
#define VIP_CUR(name, cur)    "{\"name\":\"" name "\",\"current\":" cur "}"
#define FILE_OF(version, seed, vips)                                                               \
	"{\"version\":" version ",\"hash_seed\":\"" seed "\",\"vips\":[" vips "]}\n"
#define GOOD_VIP        VIP_CUR("web", GEN("7", D16, B1))
#define WITH_VIPS(vips) FILE_OF("1", "0000000000005eed", vips)

struct bad_file {
	const char *text;
	const char *why; /* substring of the reason */
};

static const struct bad_file bad_files[] = {
    {"", "the file is empty"},
    {"{", "not JSON: line 1 column 1: "},
    {"{\"version\":1,\"hash_seed\":\"0000000000005eed\",\"vips\":[{\"name\":\"web\",\"cur",
     "not JSON"},
    {"[]", "not a JSON object"},
    {"{\"version\":1,\"version\":1}", "not JSON"}, /* duplicate key */
    {FILE_OF("2", "0000000000005eed", GOOD_VIP), "format version 2, this maglevd reads 1"},
    {"{\"hash_seed\":\"0000000000005eed\",\"vips\":[]}", "version: missing"},
    {FILE_OF("\"1\"", "0000000000005eed", GOOD_VIP), "version: missing, or not an integer"},
    {FILE_OF("1", "5eed", GOOD_VIP), "hash_seed: not 16 hex digits"},
    {FILE_OF("1", "000000000000xeed", GOOD_VIP), "hash_seed: not 16 hex digits"},
    {"{\"version\":1,\"hash_seed\":\"0000000000005eed\",\"vips\":{}}",
     "vips: not a list of at most 1024 VIPs"},
    {WITH_VIPS("3"), "vips[0]: not an object"},
    {WITH_VIPS("{\"current\":" GEN("7", D16, B1) "}"), "vips[0].name: not a name of 1..63"},
    {WITH_VIPS(VIP_CUR("", GEN("7", D16, B1))), "vips[0].name: not a name"},
    {WITH_VIPS(VIP_CUR("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                       GEN("7", D16, B1))),
     "vips[0].name: not a name of 1..63 bytes"},
    {WITH_VIPS(GOOD_VIP "," GOOD_VIP), "vips[1].name: 'web' twice"},
    {WITH_VIPS(VIP_CUR("web", "{\"table_size\":7,\"digest\":\"" D16 "\",\"hash\":\"ports\","
                              "\"backends\":[" B1 "]}")),
     "vips[0].current.hash: not 5-tuple or source"},
    {WITH_VIPS(VIP_CUR("web", "{\"table_size\":7,\"digest\":\"" D16 "\",\"hash\":1,"
                              "\"backends\":[" B1 "]}")),
     "vips[0].current.hash: not 5-tuple or source"},
    /* The reason quotes the file; its control bytes become '?', so it stays one line. */
    {WITH_VIPS(VIP_CUR("a\\nb", GEN("7", D16, B1)) "," VIP_CUR("a\\nb", GEN("7", D16, B1))),
     "vips[1].name: 'a?b' twice"},
    {WITH_VIPS(VIP_CUR("a\nb", GEN("7", D16, B1))), "not JSON: line 1 column "},
    {WITH_VIPS("{\"name\":\"web\"}"), "vips[0].current: not an object"},
    {WITH_VIPS(VIP_CUR("web", GEN("100", D16, B1))),
     "vips[0].current.table_size: not a prime in 7..1048573"},
    {WITH_VIPS(VIP_CUR("web", GEN("5", D16, B1))), "current.table_size: not a prime"},
    {WITH_VIPS(VIP_CUR("web", GEN("1048583", D16, B1))), "current.table_size: not a prime"},
    {WITH_VIPS(VIP_CUR("web", GEN("4294967311", D16, B1))), "current.table_size: not a prime"},
    {WITH_VIPS(VIP_CUR("web", GEN("-7", D16, B1))), "current.table_size: not a prime"},
    {WITH_VIPS(VIP_CUR("web", GEN("7.0", D16, B1))), "current.table_size: not a prime"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", "0123", B1))), "current.digest: not 16 hex digits"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", "0123456789abcdeff", B1))), "digest: not 16 hex"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, ""))),
     "vips[0].current.backends: not a list of 1..4096 backends"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, BACKEND("198.18.1.300", "1")))),
     "vips[0].current.backends[0].address: not an address"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, B1 ",{\"weight\":1}"))),
     "current.backends[1].address: not an address"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, BACKEND("198.18.1.1", "65536")))),
     "vips[0].current.backends[0].weight: not in 0..65535"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, BACKEND("198.18.1.1", "-1")))),
     "backends[0].weight: not in 0..65535"},
    {WITH_VIPS(VIP_CUR("web", GEN("7", D16, BACKEND("198.18.1.1", "\"1\"")))),
     "backends[0].weight: not in 0..65535"},
    {WITH_VIPS(GOOD_VIP ",{\"name\":\"dns\",\"current\":" GEN("7", D16, B1) ",\"previous\":" GEN(
         "8", D16, B1) "}"),
     "vips[1].previous.table_size: not a prime"},
    {WITH_VIPS("{\"name\":\"dns\",\"current\":" GEN("7", D16, B1) ",\"previous\":[]}"),
     "vips[0].previous: not an object"},
};

/* Every bad file is refused with its reason, and none of it is kept. */
static void test_bad_files(void **state)
{
	static const char good[] = WITH_VIPS(GOOD_VIP ",{\"name\":\"dns\",\"current\":" GEN(
	    "7", D16, B1) ",\"previous\":null},"
	                  "{\"name\":\"web6\",\"current\":" GEN(
	                      "11", D16,
	                      BACKEND("2001:db8:1::11",
	                              "65535")) ",\"previous\":" GEN("7", "FFFFFFFFFFFFFFFF",
	                                                             B1) ",\"later\":1}");
	struct snapshot_history h;
	char err[STATE_ERR_MAX];

	(void)state;
	assert_int_equal(state_decode(good, strlen(good), &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, 3);
	assert_true(h.hash_seed == 0x5eed);
	assert_int_equal(h.v[1].previous.table_size, 0);
	assert_true(h.v[2].previous.digest == ~0ull);
	assert_int_equal(h.v[2].current.backends[0].weight, 65535);
	state_history_free(&h);
	for (size_t i = 0; i < ARRAY_SIZE(bad_files); i++) {
		const char *t = bad_files[i].text;
		int r = state_decode(t, strlen(t), &h, err, sizeof(err));

		if (r != -EINVAL || !strstr(err, bad_files[i].why))
			print_error("case %zu: r=%d err=\"%s\"; want \"%s\"\n", i, r, err,
			            bad_files[i].why);
		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(err, bad_files[i].why));
		for (const char *p = err; *p; p++)
			assert_false(iscntrl((unsigned char)*p));
		assert_null(h.v);
		assert_int_equal(h.n, 0);
	}
}

/* Over the limits: more than CONFIG_VIPS_MAX VIPs, more than CONFIG_BACKENDS_MAX backends. */
static void test_limits(void **state)
{
	char *t = malloc(TEXT_MAX), err[STATE_ERR_MAX];
	struct snapshot_history h;
	size_t len, cut = 0;

	(void)state;
	assert_non_null(t);
	len = (size_t)snprintf(t, TEXT_MAX, "{\"version\":1,\"hash_seed\":\"%016x\",\"vips\":[", 1);
	for (unsigned i = 0; i <= CONFIG_VIPS_MAX; i++) {
		cut = len; /* where the last VIP starts */
		len +=
		    (size_t)snprintf(t + len, TEXT_MAX - len, "%s{\"name\":\"v%u\",\"current\":%s}",
		                     i ? "," : "", i, GEN("7", D16, B1));
	}
	len += (size_t)snprintf(t + len, TEXT_MAX - len, "]}");
	assert_true(len < TEXT_MAX);
	assert_int_equal(state_decode(t, len, &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vips: not a list of at most 1024 VIPs");
	/* Exactly the maximum is fine. */
	len = cut + (size_t)snprintf(t + cut, TEXT_MAX - cut, "]}");
	assert_int_equal(state_decode(t, len, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, CONFIG_VIPS_MAX);
	state_history_free(&h);

	len = (size_t)snprintf(t, TEXT_MAX,
	                       "{\"version\":1,\"hash_seed\":\"%016x\",\"vips\":[{\"name\":\"w\","
	                       "\"current\":{\"table_size\":65537,\"digest\":\"%s\",\"backends\":[",
	                       1, D16);
	for (unsigned i = 0; i <= CONFIG_BACKENDS_MAX; i++)
		len += (size_t)snprintf(t + len, TEXT_MAX - len,
		                        "%s{\"address\":\"198.18.%u.%u\",\"weight\":1}",
		                        i ? "," : "", i / 256, i % 256);
	len += (size_t)snprintf(t + len, TEXT_MAX - len, "]}}]}");
	assert_true(len < TEXT_MAX);
	assert_int_equal(state_decode(t, len, &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vips[0].current.backends: not a list of 1..4096 backends");
	free(t);
}

/*
 * The largest state a snapshot can have (LB_BACKEND_IDS_MAX backends of the longest IPv6
 * addresses and weights, each VIP with a previous generation) fits STATE_FILE_MAX and loads.
 */
static void test_largest_state_fits(void **state)
{
	const uint32_t per_vip = CONFIG_BACKENDS_MAX - 1, n_vips = LB_BACKEND_IDS_MAX / per_vip;
	struct config *c = tcfg_new();
	struct lb_snapshot *s1, *s2;
	struct snapshot_history h;
	char err[STATE_ERR_MAX];
	size_t len;
	char *text;

	(void)state;
	for (uint32_t v = 0; v < n_vips; v++) {
		char name[CONFIG_NAME_MAX], addr[LB_ADDR_STRLEN];
		struct config_vip *cv;

		snprintf(name, sizeof(name), "vip-%u", v);
		snprintf(addr, sizeof(addr), "2001:db8:100::%x", v + 1);
		cv = tcfg_vip(c, name, addr, IPPROTO_TCP, 80, NULL, 0, 4099);
		for (uint32_t i = 0; i < per_vip; i++) {
			snprintf(addr, sizeof(addr), "2001:db8:ffff:ffff:ffff:ffff:%04x:%04x",
			         0xf000 + v, 0xf000 + i);
			tcfg_backend_add(cv, addr, 65535);
		}
	}
	s1 = snap(c, NULL, NULL);
	for (uint32_t v = 0; v < n_vips; v++)
		c->vips[v].backends[0].weight = 1;
	s2 = snap(c, s1, NULL);
	text = state_encode(s2, &len);
	assert_non_null(text);
	print_message("largest state: %u VIPs x %u backends, two generations: %zu bytes\n", n_vips,
	              per_vip, len);
	assert_true(len <= STATE_FILE_MAX);
	assert_int_equal(state_decode(text, len, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, n_vips);
	assert_int_equal(h.v[n_vips - 1].previous.n_backends, per_vip);
	state_history_free(&h);
	free(text);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/*
 * Files state_load refuses before parsing: none (-ENOENT), not a regular file (a FIFO, without
 * blocking), over STATE_FILE_MAX; and a bad one names the file and the reason.
 */
static void test_load_files(void **state)
{
	char dir[TOP_BYTES], path[STATE_PATH_MAX], err[STATE_ERR_MAX];
	struct snapshot_history h;
	int fd;

	(void)state;
	tmpdir_make(dir);
	state_file_path(dir, path);
	assert_int_equal(state_load(dir, &h, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(state_load(dir, &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ": not a regular file"));
	unlink(path);

	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)STATE_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(state_load(dir, &h, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "16777217 bytes, more than the 16777216"));

	write_text(path, FILE_OF("7", "0000000000005eed", GOOD_VIP),
	           strlen(FILE_OF("7", "0000000000005eed", GOOD_VIP)));
	assert_int_equal(state_load(dir, &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ": format version 7, this maglevd reads 1"));
	assert_null(h.v);

	write_text(path, WITH_VIPS(GOOD_VIP), strlen(WITH_VIPS(GOOD_VIP)));
	assert_int_equal(state_load(dir, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.v[0].name, "web");
	state_history_free(&h);
	tmpdir_remove(dir, STATE_FILE_NAME);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_hash_mode_history),
	    cmocka_unit_test(test_name_escaped),  cmocka_unit_test(test_atomic_replace),
	    cmocka_unit_test(test_write_failure), cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_limits),        cmocka_unit_test(test_largest_state_fits),
	    cmocka_unit_test(test_load_files),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
