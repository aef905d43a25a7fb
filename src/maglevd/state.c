/* SPDX-License-Identifier: GPL-2.0-only */
/* The state file: encoding, decoding with limits, atomic writes that skip an unchanged state. */
#include "maglevd/state.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "base/log.h"
#include "core/maglev.h"

#define STATE_HEX64_LEN 16u /* hex digits of a 64-bit digest or seed */

COUNTER_LIST_DEFINE(state_counter, STATE_COUNTERS, STATE_CTR_MAX);

struct state_store {
	char dir[CONFIG_PATH_MAX];
	bool written;                   /* text_hash is that of the file on disk */
	bool pending;                   /* the last save failed */
	uint64_t text_hash;             /* XXH3 of the last text written */
	uint64_t failed_since;          /* failed saves since the last success */
	char last_error[STATE_ERR_MAX]; /* the failure last logged; "" after a success */
	_Atomic uint64_t ctr[STATE_CTR_MAX];
};

const char *state_file_path(const char *dir, char *buf)
{
	snprintf(buf, STATE_PATH_MAX, "%s/%s", dir, STATE_FILE_NAME);
	return buf;
}

/* ---- encoding ---- */

static json_t *state_hex64(uint64_t x)
{
	char buf[STATE_HEX64_LEN + 1];

	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)x);
	return json_string(buf);
}

static json_t *state_gen_json(const struct lb_gen *g)
{
	json_t *backends = json_array();
	char a[LB_ADDR_STRLEN];

	for (uint32_t i = 0; backends && i < g->n_backends; i++)
		if (json_array_append_new(backends,
		                          json_pack("{s:s, s:I}", "address",
		                                    lb_addr_str(&g->backends[i].addr, a, sizeof(a)),
		                                    "weight", (json_int_t)g->backends[i].weight))) {
			json_decref(backends);
			return NULL;
		}
	return json_pack("{s:I, s:o, s:o}", "table_size", (json_int_t)g->table_size, "digest",
	                 state_hex64(g->digest), "backends", backends);
}

/* VIP i of s as the state file has it, or NULL (out of memory). */
static json_t *state_vip_json(const struct lb_snapshot *s, uint32_t i)
{
	const struct lb_vip *v = &s->vips[i];
	struct lb_gen cur;
	json_t *o;

	if (snapshot_gen_current(s, i, &cur) < 0)
		return NULL;
	o = json_pack("{s:s, s:o}", "name", v->name, "current", state_gen_json(&cur));
	lb_gen_free(&cur);
	if (o && v->prev_table && json_object_set_new(o, "previous", state_gen_json(&v->prev))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *state_encode(const struct lb_snapshot *s, size_t *len)
{
	json_t *vips = json_array(), *root;
	char *text = NULL, *out = NULL;

	for (uint32_t i = 0; vips && i < s->n_vips; i++)
		if (json_array_append_new(vips, state_vip_json(s, i))) {
			json_decref(vips);
			return NULL;
		}
	root = json_pack("{s:i, s:o, s:o}", "version", STATE_FORMAT_VERSION, "hash_seed",
	                 state_hex64(s->hash_seed), "vips", vips);
	if (root)
		text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text) {
		*len = strlen(text) + 1;
		out = realloc(text, *len + 1);
		if (!out)
			free(text);
	}
	if (out) {
		out[*len - 1] = '\n';
		out[*len] = '\0';
	}
	return out;
}

/* ---- decoding ---- */

/* "where: what" into err; returns -EINVAL. */
static int __attribute__((format(printf, 3, 4)))
state_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Exactly STATE_HEX64_LEN hex digits into *out. */
static int state_parse_hex64(const json_t *j, uint64_t *out)
{
	const char *s = json_string_value(j);
	uint64_t x = 0;

	if (!s || strlen(s) != STATE_HEX64_LEN)
		return -EINVAL;
	for (size_t i = 0; i < STATE_HEX64_LEN; i++) {
		int c = (unsigned char)s[i];

		if (!isxdigit(c))
			return -EINVAL;
		x = x << 4 | (uint64_t)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
	}
	*out = x;
	return 0;
}

/* An integer member in [lo, hi] into *out. */
static bool state_get_uint(const json_t *o, const char *key, uint64_t lo, uint64_t hi,
                           uint64_t *out)
{
	const json_t *j = json_object_get(o, key);
	json_int_t x;

	if (!json_is_integer(j))
		return false;
	x = json_integer_value(j);
	if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi)
		return false;
	*out = (uint64_t)x;
	return true;
}

/* Generation where (e.g. "vips[2].current") of o into *g. */
static int state_gen_decode(const json_t *o, const char *where, struct lb_gen *g, char *err,
                            size_t errlen)
{
	const json_t *bs = json_object_get(o, "backends"), *b;
	uint64_t x;
	size_t i;

	if (!json_is_object(o))
		return state_err(err, errlen, "%s: not an object", where);
	if (!state_get_uint(o, "table_size", 0, UINT32_MAX, &x) || !maglev_size_valid((uint32_t)x))
		return state_err(err, errlen, "%s.table_size: not a prime in %u..%u", where,
		                 MAGLEV_SIZE_MIN, MAGLEV_SIZE_MAX);
	g->table_size = (uint32_t)x;
	if (state_parse_hex64(json_object_get(o, "digest"), &g->digest) < 0)
		return state_err(err, errlen, "%s.digest: not %u hex digits", where,
		                 STATE_HEX64_LEN);
	if (!json_is_array(bs) || json_array_size(bs) == 0 ||
	    json_array_size(bs) > CONFIG_BACKENDS_MAX)
		return state_err(err, errlen, "%s.backends: not a list of 1..%u backends", where,
		                 CONFIG_BACKENDS_MAX);
	g->backends = calloc(json_array_size(bs), sizeof(*g->backends));
	if (!g->backends)
		return -ENOMEM;
	json_array_foreach(bs, i, b)
	{
		const char *a = json_string_value(json_object_get(b, "address"));

		if (!a || lb_addr_parse(a, &g->backends[i].addr) < 0)
			return state_err(err, errlen, "%s.backends[%zu].address: not an address",
			                 where, i);
		if (!state_get_uint(b, "weight", 0, MAGLEV_WEIGHT_MAX, &x))
			return state_err(err, errlen, "%s.backends[%zu].weight: not in 0..%u",
			                 where, i, MAGLEV_WEIGHT_MAX);
		g->backends[i].weight = (uint32_t)x;
		g->n_backends = (uint32_t)i + 1;
	}
	return 0;
}

/* VIP i of the file, o, into *hv; names of the VIPs before it are in v[0..i). */
static int state_vip_decode(const json_t *o, size_t i, const struct snapshot_history_vip *v,
                            struct snapshot_history_vip *hv, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(o, "name"));
	const json_t *prev = json_object_get(o, "previous");
	char where[48];
	int ret;

	if (!json_is_object(o))
		return state_err(err, errlen, "vips[%zu]: not an object", i);
	if (!name || !name[0] || strlen(name) >= CONFIG_NAME_MAX)
		return state_err(err, errlen, "vips[%zu].name: not a name of 1..%u bytes", i,
		                 CONFIG_NAME_MAX - 1);
	for (size_t k = 0; k < i; k++)
		if (strcmp(v[k].name, name) == 0)
			return state_err(err, errlen, "vips[%zu].name: '%s' twice", i, name);
	snprintf(hv->name, sizeof(hv->name), "%s", name);
	snprintf(where, sizeof(where), "vips[%zu].current", i);
	ret = state_gen_decode(json_object_get(o, "current"), where, &hv->current, err, errlen);
	if (ret < 0 || !prev || json_is_null(prev))
		return ret;
	snprintf(where, sizeof(where), "vips[%zu].previous", i);
	return state_gen_decode(prev, where, &hv->previous, err, errlen);
}

int state_decode(const char *text, size_t len, struct snapshot_history *h, char *err, size_t errlen)
{
	struct snapshot_history_vip *v = NULL;
	const json_t *vips, *o, *ver;
	json_error_t je;
	json_t *root;
	size_t i;
	int ret = -EINVAL;

	memset(h, 0, sizeof(*h));
	if (len == 0)
		return state_err(err, errlen, "the file is empty");
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return state_err(err, errlen, "not JSON: line %d column %d: %s", je.line, je.column,
		                 je.text);
	ver = json_object_get(root, "version");
	vips = json_object_get(root, "vips");
	if (!json_is_object(root)) {
		state_err(err, errlen, "not a JSON object");
	} else if (!json_is_integer(ver)) {
		state_err(err, errlen, "version: missing, or not an integer");
	} else if (json_integer_value(ver) != STATE_FORMAT_VERSION) {
		state_err(err, errlen, "format version %lld, this maglevd reads %d",
		          (long long)json_integer_value(ver), STATE_FORMAT_VERSION);
	} else if (state_parse_hex64(json_object_get(root, "hash_seed"), &h->hash_seed) < 0) {
		state_err(err, errlen, "hash_seed: not %u hex digits", STATE_HEX64_LEN);
	} else if (!json_is_array(vips) || json_array_size(vips) > CONFIG_VIPS_MAX) {
		state_err(err, errlen, "vips: not a list of at most %u VIPs", CONFIG_VIPS_MAX);
	} else {
		ret = -ENOMEM;
		v = calloc(json_array_size(vips) + 1, sizeof(*v));
		if (!v)
			goto out;
		h->v = v;
		ret = 0;
		json_array_foreach(vips, i, o)
		{
			h->n = (uint32_t)i + 1; /* what to free if this one fails half-way */
			ret = state_vip_decode(o, i, v, &v[i], err, errlen);
			if (ret < 0)
				break;
		}
	}
out:
	json_decref(root);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (ret < 0)
		state_history_free(h);
	return ret;
}

void state_history_free(struct snapshot_history *h)
{
	/* state_decode allocated the VIPs; the history only lends them out as const. */
	struct snapshot_history_vip *v = (struct snapshot_history_vip *)h->v;

	for (uint32_t i = 0; v && i < h->n; i++) {
		lb_gen_free(&v[i].current);
		lb_gen_free(&v[i].previous);
	}
	free(v);
	memset(h, 0, sizeof(*h));
}

int state_load(const char *dir, struct snapshot_history *h, char *err, size_t errlen)
{
	char path[STATE_PATH_MAX], why[STATE_ERR_MAX];
	char *buf = NULL;
	size_t len = 0, cap;
	struct stat st;
	int fd, ret;

	memset(h, 0, sizeof(*h));
	state_file_path(dir, path);
	/* O_NONBLOCK: a FIFO in the file's place must not hang the start. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)STATE_FILE_MAX) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s: %lld bytes, more than the %u a state file may have",
		         path, (long long)st.st_size, STATE_FILE_MAX);
		goto out;
	}
	/* One byte more than fstat said: a file that grew meanwhile is caught, not cut. */
	cap = (size_t)st.st_size + 1u;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == cap) {
		ret = -EAGAIN;
		snprintf(err, errlen, "%s: changed while it was read (another writer?)", path);
		goto out;
	}
	ret = state_decode(buf, len, h, why, sizeof(why));
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", path, ret == -ENOMEM ? "out of memory" : why);
out:
	free(buf);
	close(fd);
	return ret;
}

/* ---- writing ---- */

int state_store_create(struct state_store **out, const char *dir)
{
	struct state_store *st;

	if (strlen(dir) >= sizeof(st->dir))
		return -ENAMETOOLONG;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	snprintf(st->dir, sizeof(st->dir), "%s", dir);
	*out = st;
	return 0;
}

/* fsync(fd), then close(fd): 0, or the first failure's negative errno. */
static int state_sync_close(int fd)
{
	int ret = fsync(fd) < 0 ? -errno : 0;

	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

/* text[0..len) to dir/STATE_FILE_NAME through STATE_TMP_NAME (see state_store_save). */
static int state_write_file(const char *dir, const char *text, size_t len, char *err, size_t errlen)
{
	char path[STATE_PATH_MAX], tmp[STATE_PATH_MAX];
	const char *what = "create";
	size_t off = 0;
	int fd = -1, ret;

	state_file_path(dir, path);
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, STATE_TMP_NAME);
	if (mkdir(dir, STATE_DIR_MODE) == 0) {
		log_info("state: created the state directory %s", dir);
	} else if (errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "cannot create the directory %s: %s", dir, strerror(errno));
		return ret;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, STATE_FILE_MODE);
	if (fd < 0)
		goto fail;
	what = "write";
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (size_t)n;
	}
	what = "fsync";
	ret = state_sync_close(fd);
	fd = -1;
	if (ret < 0) {
		errno = -ret;
		goto fail;
	}
	what = "rename";
	if (rename(tmp, path) < 0)
		goto fail;
	/* The rename is durable once the directory is. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = fd < 0 ? -errno : state_sync_close(fd);
	if (ret < 0) {
		snprintf(err, errlen,
		         "%s renamed into place, but fsync of its directory failed: %s", path,
		         strerror(-ret));
		return ret;
	}
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "cannot %s %s: %s", what, tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

int state_store_save(struct state_store *st, const struct lb_snapshot *s)
{
	char err[STATE_ERR_MAX];
	size_t len = 0;
	char *text = state_encode(s, &len);
	uint64_t hash;
	int ret;

	if (!text) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory encoding the state");
		goto fail;
	}
	hash = XXH3_64bits(text, len);
	if (st->written && !st->pending && hash == st->text_hash) {
		free(text);
		atomic_fetch_add_explicit(&st->ctr[STATE_CTR_UNCHANGED], 1, memory_order_relaxed);
		return 0;
	}
	if (len > STATE_FILE_MAX) {
		ret = -EFBIG;
		snprintf(err, sizeof(err),
		         "the state takes %zu bytes, more than the %u it may have", len,
		         STATE_FILE_MAX);
	} else {
		ret = state_write_file(st->dir, text, len, err, sizeof(err));
	}
	free(text);
	if (ret < 0)
		goto fail;
	if (st->pending)
		log_info("state: %s/%s written again after %llu failed attempts", st->dir,
		         STATE_FILE_NAME, (unsigned long long)st->failed_since);
	st->written = true;
	st->pending = false;
	st->text_hash = hash;
	st->failed_since = 0;
	st->last_error[0] = '\0';
	atomic_fetch_add_explicit(&st->ctr[STATE_CTR_WRITES], 1, memory_order_relaxed);
	return 1;
fail:
	st->pending = true;
	st->failed_since++;
	atomic_fetch_add_explicit(&st->ctr[STATE_CTR_WRITE_ERRORS], 1, memory_order_relaxed);
	if (strcmp(err, st->last_error) != 0) {
		log_warn("state: %s; second chances after a restart may miss the last change "
		         "(serving goes on; retried every %u s, logged again if the error changes)",
		         err, STATE_RETRY_MS / 1000u);
		snprintf(st->last_error, sizeof(st->last_error), "%s", err);
	}
	return ret;
}

bool state_store_pending(const struct state_store *st)
{
	return st->pending;
}

const char *state_store_dir(const struct state_store *st)
{
	return st->dir;
}

uint64_t state_counter_get(const struct state_store *st, enum state_counter c)
{
	return st && c < STATE_CTR_MAX ? atomic_load_explicit(&st->ctr[c], memory_order_relaxed)
	                               : 0;
}

void state_store_destroy(struct state_store *st)
{
	free(st);
}
