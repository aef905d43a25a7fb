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

#define STATE_HEX64_LEN   16u   /* hex digits of a 64-bit digest or seed */
#define STATE_BUF_INITIAL 4096u /* bytes first allocated for an encoded state; grows */

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

/*
 * The encoder writes the text itself rather than through jansson's objects, which cost about
 * 3 us a backend (a large state took half a second of the control thread); bench_state has the
 * figures. The decoder is jansson's.
 */

/* A growing text; failed once an allocation failed (nothing more is added then). */
struct state_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct state_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	while (!b->failed) {
		char *np;

		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		np = n < 0 ? NULL : realloc(b->p, 2 * b->cap + (size_t)n);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = 2 * b->cap + (size_t)n;
	}
}

/* s as a JSON string: '"' and '\\' escaped, control bytes as \u00XX (config names have none). */
static void sb_string(struct state_buf *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			sb_printf(b, "\\%c", c);
		else if (c < 0x20)
			sb_printf(b, "\\u%04x", c);
		else
			sb_printf(b, "%c", c);
	}
	sb_printf(b, "\"");
}

/* Appends n bytes of p (no format: the per-backend loop, where vsnprintf was most of the time). */
static void sb_append(struct state_buf *b, const char *p, size_t n)
{
	char *np;

	if (b->failed)
		return;
	if (b->cap - b->len <= n) {
		np = realloc(b->p, 2 * b->cap + n);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = 2 * b->cap + n;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

#define SB_LITERAL(b, s) sb_append((b), (s), sizeof(s) - 1)

static void sb_uint(struct state_buf *b, uint32_t x)
{
	char d[sizeof("4294967295")], *e = d + sizeof(d), *q = e;

	do
		*--q = (char)('0' + x % 10);
	while (x /= 10);
	sb_append(b, q, (size_t)(e - q));
}

static void sb_gen(struct state_buf *b, const struct lb_gen *g)
{
	char a[LB_ADDR_STRLEN];

	sb_printf(b, "{\"table_size\":%u,\"digest\":\"%016llx\",", g->table_size,
	          (unsigned long long)g->digest);
	/* Only when not the default, so files of the 5-tuple mode read as before. */
	if (g->hash == VIP_HASH_SOURCE)
		SB_LITERAL(b, "\"hash\":\"source\",");
	SB_LITERAL(b, "\"backends\":[");
	for (uint32_t i = 0; i < g->n_backends; i++) {
		if (i)
			SB_LITERAL(b, ",");
		SB_LITERAL(b, "{\"address\":\"");
		lb_addr_str(&g->backends[i].addr, a, sizeof(a));
		sb_append(b, a, strlen(a));
		SB_LITERAL(b, "\",\"weight\":");
		sb_uint(b, g->backends[i].weight);
		SB_LITERAL(b, "}");
	}
	sb_printf(b, "]}");
}

char *state_encode(const struct lb_snapshot *s, size_t *len)
{
	struct state_buf b = {.cap = STATE_BUF_INITIAL};

	b.p = malloc(b.cap);
	b.failed = !b.p;
	sb_printf(&b, "{\"version\":%d,\"hash_seed\":\"%016llx\",\"vips\":[", STATE_FORMAT_VERSION,
	          (unsigned long long)s->hash_seed);
	for (uint32_t i = 0; i < s->n_vips && !b.failed; i++) {
		const struct lb_vip *v = &s->vips[i];
		struct lb_gen cur;

		if (snapshot_gen_current(s, i, &cur) < 0) {
			b.failed = true;
			break;
		}
		sb_printf(&b, "%s{\"name\":", i ? "," : "");
		sb_string(&b, v->name);
		sb_printf(&b, ",\"current\":");
		sb_gen(&b, &cur);
		lb_gen_free(&cur);
		if (v->prev_table) {
			sb_printf(&b, ",\"previous\":");
			sb_gen(&b, &v->prev);
		}
		sb_printf(&b, "}");
	}
	sb_printf(&b, "]}\n");
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- decoding ---- */

/*
 * "where: what" into err; returns -EINVAL. A reason quotes the file (a VIP's name, the JSON
 * parser's "near" text), so every control byte in it becomes '?': the reason stays one line of log.
 */
static int __attribute__((format(printf, 3, 4)))
state_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (char *p = err; errlen && *p; p++)
		if (iscntrl((unsigned char)*p))
			*p = '?';
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
	const json_t *bs = json_object_get(o, "backends"), *b, *h;
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
	/* Absent: 5-tuple (a file from before hash modes, or the default mode). */
	h = json_object_get(o, "hash");
	if (h && !json_is_string(h))
		return state_err(err, errlen, "%s.hash: not 5-tuple or source", where);
	if (!h || strcmp(json_string_value(h), config_vip_hash_name(VIP_HASH_5TUPLE)) == 0)
		g->hash = VIP_HASH_5TUPLE;
	else if (strcmp(json_string_value(h), config_vip_hash_name(VIP_HASH_SOURCE)) == 0)
		g->hash = VIP_HASH_SOURCE;
	else
		return state_err(err, errlen, "%s.hash: not 5-tuple or source", where);
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
