/* SPDX-License-Identifier: GPL-2.0-only */
/* Config file reading: libyaml events -> a small node tree -> validated struct config. */
#include "control/config_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "base/util.h"
#include "core/maglev.h"

#define CY_PATH_MAX    256u   /* bytes of a key path in messages ("vips[3].backends[12].weight") */
#define CY_QUOTE_MAX   64u    /* bytes of a bad value quoted in a message; longer ones are cut */
#define CY_READ_CHUNK  65536u /* bytes read from the file at a time */
#define CY_CHUNK_BYTES (256u << 10) /* arena chunk of the node tree */

enum cy_type {
	CY_SCALAR,
	CY_SEQ,
	CY_MAP,
};

/*
 * One YAML node, allocated from the tree's arena. A mapping's kids are key, value, key, value...;
 * a scalar's str is NUL-terminated but may hold an embedded NUL (len tells), which the getters
 * refuse. A scalar has no kids, a list or mapping no str.
 */
struct cy_node {
	const char *str;
	struct cy_node **kids;
	uint32_t len;
	uint32_t n;
	int line;     /* 1-based */
	uint8_t type; /* enum cy_type */
	bool plain;   /* unquoted scalar: may be null */
};

/* Bump allocator: the tree is built once, read once, freed at once. */
struct cy_chunk {
	struct cy_chunk *next;
	size_t used, size;
	max_align_t data[];
};

struct cy_tree {
	struct cy_chunk *chunks;
	struct cy_node *root; /* NULL for an empty document */
	uint32_t nodes;
};

struct cy_ctx {
	const char *name; /* file name for messages */
	char *err;
	size_t errlen;
	char path[CY_PATH_MAX]; /* key path of the section being read */
};

/* ---- messages ---- */

/* Copies v into out as printable text, cut at CY_QUOTE_MAX bytes. */
static const char *cy_quote(const char *v, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 4 < outlen; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (i == CY_QUOTE_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[o] = '\0';
	return out;
}

/* Writes "NAME:LINE: PATH[.key]: msg" to ctx->err and returns -EINVAL. */
static int __attribute__((format(printf, 4, 5)))
cy_err(struct cy_ctx *ctx, int line, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ctx->err || ctx->errlen == 0)
		return -EINVAL;
	snprintf(ctx->err, ctx->errlen, "%s:%d: %s%s%s%s%s", ctx->name, line, ctx->path,
	         ctx->path[0] && key ? "." : "", key ? key : "", ctx->path[0] || key ? ": " : "",
	         msg);
	return -EINVAL;
}

/* Error about a scalar's value: "...: msg 'value'". */
static int cy_err_val(struct cy_ctx *ctx, const struct cy_node *v, const char *key, const char *msg)
{
	char q[CY_QUOTE_MAX + 8];

	return cy_err(ctx, v->line, key, "%s '%s'", msg, cy_quote(v->str, v->len, q, sizeof(q)));
}

static const char *cy_type_name(enum cy_type t)
{
	return t == CY_MAP ? "a mapping" : t == CY_SEQ ? "a list" : "a scalar";
}

static int cy_err_type(struct cy_ctx *ctx, const struct cy_node *v, const char *key,
                       const char *want)
{
	if (v->type == CY_SCALAR)
		return cy_err_val(ctx, v, key, want);
	return cy_err(ctx, v->line, key, "%s, not %s", want, cy_type_name(v->type));
}

/* Appends a segment to the key path; returns the old length for cy_path_pop. */
static size_t __attribute__((format(printf, 2, 3)))
cy_path_push(struct cy_ctx *ctx, const char *fmt, ...)
{
	size_t old = strlen(ctx->path);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->path + old, sizeof(ctx->path) - old, fmt, ap);
	va_end(ap);
	return old;
}

static void cy_path_pop(struct cy_ctx *ctx, size_t old)
{
	ctx->path[old] = '\0';
}

/* ---- the node tree, from libyaml events ---- */

static void *cy_alloc(struct cy_tree *t, size_t size)
{
	struct cy_chunk *c = t->chunks;
	void *p;

	size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->size - c->used < size) {
		size_t csize = size > CY_CHUNK_BYTES ? size : CY_CHUNK_BYTES;

		c = malloc(sizeof(*c) + csize);
		if (!c)
			return NULL;
		c->size = csize;
		c->used = 0;
		c->next = t->chunks;
		t->chunks = c;
	}
	p = (char *)c->data + c->used;
	c->used += size;
	return p;
}

static void cy_tree_free(struct cy_tree *t)
{
	while (t->chunks) {
		struct cy_chunk *next = t->chunks->next;

		free(t->chunks);
		t->chunks = next;
	}
	t->root = NULL;
}

/* The kids of a list or mapping while its events arrive; moved to the arena at its end. */
struct cy_open {
	struct cy_node *node;
	struct cy_node **kids;
	uint32_t n, cap;
};

static int cy_open_add(struct cy_open *o, struct cy_node *kid)
{
	if (o->n == o->cap) {
		uint32_t cap = o->cap ? o->cap * 2 : 16;
		struct cy_node **k = realloc(o->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		o->kids = k;
		o->cap = cap;
	}
	o->kids[o->n++] = kid;
	return 0;
}

static int cy_open_close(struct cy_tree *t, struct cy_open *o)
{
	if (o->n) {
		o->node->kids = cy_alloc(t, o->n * sizeof(*o->kids));
		if (!o->node->kids)
			return -ENOMEM;
		memcpy(o->node->kids, o->kids, o->n * sizeof(*o->kids));
	}
	o->node->n = o->n;
	o->n = 0;
	o->node = NULL;
	return 0;
}

static bool cy_is_null(const struct cy_node *v)
{
	return v->type == CY_SCALAR && v->plain &&
	       (v->len == 0 || strcmp(v->str, "~") == 0 || strcasecmp(v->str, "null") == 0);
}

/*
 * Builds the tree of the single document in text. Aliases are refused: libyaml's event API
 * leaves their expansion to us, and expanding them is how small files become huge ("billion
 * laughs"). Nesting is bounded by CONFIG_DEPTH_MAX and the node count by CONFIG_NODES_MAX, so
 * memory stays within a small multiple of the file's size.
 */
static int cy_tree_load(struct cy_ctx *ctx, const char *text, size_t len, struct cy_tree *t)
{
	struct cy_open open[CONFIG_DEPTH_MAX] = {{0}};
	unsigned depth = 0;
	unsigned docs = 0;
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;
	int r = 0;

	*t = (struct cy_tree){0};
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done) {
		struct cy_node *n = NULL;
		char *str;

		if (!yaml_parser_parse(&parser, &ev)) {
			if (parser.error == YAML_MEMORY_ERROR) {
				r = -ENOMEM;
				goto out;
			}
			if (parser.error == YAML_READER_ERROR) {
				/* Encoding errors carry a byte offset instead of a mark. */
				size_t end = parser.problem_offset;
				const char *p = text;
				int eline = 1;

				if (end > len)
					end = len;

				while ((p = memchr(p, '\n', (size_t)(text + end - p))) != NULL) {
					p++;
					eline++;
				}
				r = cy_err(
				    ctx, eline, NULL, "bad character: %s at offset %zu '0x%02x'",
				    parser.problem ? parser.problem : "unknown",
				    parser.problem_offset, (unsigned)parser.problem_value & 0xffu);
				goto out;
			}
			r = cy_err(ctx, (int)parser.problem_mark.line + 1, NULL,
			           "YAML syntax error: %s at column %zu%s%s%s",
			           parser.problem ? parser.problem : "unknown",
			           parser.problem_mark.column + 1, parser.context ? " (" : "",
			           parser.context ? parser.context : "", parser.context ? ")" : "");
			goto out;
		}
		int line = (int)ev.start_mark.line + 1;

		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				r = cy_err(ctx, line, NULL, "only one YAML document per file");
			break;
		case YAML_ALIAS_EVENT: {
			char q[CY_QUOTE_MAX + 8];
			const char *a = (const char *)ev.data.alias.anchor;

			r = cy_err(ctx, line, NULL, "aliases are not supported '*%s'",
			           cy_quote(a, strlen(a), q, sizeof(q)));
			break;
		}
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++t->nodes > CONFIG_NODES_MAX) {
				r = cy_err(ctx, line, NULL, "more than %u YAML nodes",
				           CONFIG_NODES_MAX);
				break;
			}
			n = cy_alloc(t, sizeof(*n));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			*n = (struct cy_node){.line = line};
			if (ev.type == YAML_SCALAR_EVENT) {
				n->type = CY_SCALAR;
				n->len = (uint32_t)ev.data.scalar.length;
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				str = cy_alloc(t, n->len + 1);
				if (!str) {
					r = -ENOMEM;
					break;
				}
				memcpy(str, ev.data.scalar.value, n->len);
				str[n->len] = '\0';
				n->str = str;
			} else {
				n->type = ev.type == YAML_MAPPING_START_EVENT ? CY_MAP : CY_SEQ;
			}
			if (depth == 0) {
				t->root = n;
			} else {
				struct cy_open *p = &open[depth - 1];

				r = cy_open_add(p, n);
				if (r < 0)
					break;
				/*
				 * An empty value ("key:" then a new line) gets the mark of the next
				 * token; messages about it should name the key's line.
				 */
				if (p->node->type == CY_MAP && p->n % 2 == 0 && cy_is_null(n))
					n->line = p->kids[p->n - 2]->line;
			}
			if (n->type != CY_SCALAR) {
				if (depth == CONFIG_DEPTH_MAX) {
					r = cy_err(ctx, line, NULL, "nested deeper than %u levels",
					           CONFIG_DEPTH_MAX);
					break;
				}
				open[depth++].node = n;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				r = cy_open_close(t, &open[--depth]);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			goto out;
	}
out:
	yaml_parser_delete(&parser);
	for (unsigned i = 0; i < CONFIG_DEPTH_MAX; i++)
		free(open[i].kids);
	if (r < 0)
		cy_tree_free(t);
	return r;
}

/* ---- scalar getters: each names the key and quotes the value on error ---- */

static int cy_scalar(struct cy_ctx *ctx, const struct cy_node *v, const char *key)
{
	if (v->type != CY_SCALAR)
		return cy_err_type(ctx, v, key, "expected a scalar");
	if (v->plain && v->len == 0)
		return cy_err(ctx, v->line, key, "value missing");
	if (strlen(v->str) != v->len)
		return cy_err_val(ctx, v, key, "contains a NUL byte");
	return 0;
}

/* Unsigned decimal or 0x-hex, nothing else: no sign, no spaces, no octal, no suffix. */
static int cy_parse_u64(const char *s, uint64_t *out)
{
	int base = 10;
	char *end;

	if ((s[0] == '0') && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!isxdigit((unsigned char)s[0]))
			return -EINVAL;
	} else if (!isdigit((unsigned char)s[0])) {
		return -EINVAL;
	}
	errno = 0;
	unsigned long long x = strtoull(s, &end, base);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = x;
	return 0;
}

static int cy_get_u64(struct cy_ctx *ctx, const struct cy_node *v, const char *key, uint64_t min,
                      uint64_t max, uint64_t *out)
{
	uint64_t x;
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	r = cy_parse_u64(v->str, &x);
	if (r == -ERANGE)
		return cy_err_val(ctx, v, key, "integer too large");
	if (r < 0)
		return cy_err_val(ctx, v, key, "not an integer");
	if (x < min || x > max) {
		char msg[96];

		snprintf(msg, sizeof(msg), "out of range %llu..%llu", (unsigned long long)min,
		         (unsigned long long)max);
		return cy_err_val(ctx, v, key, msg);
	}
	*out = x;
	return 0;
}

static int cy_get_u32(struct cy_ctx *ctx, const struct cy_node *v, const char *key, uint32_t min,
                      uint32_t max, uint32_t *out)
{
	uint64_t x;
	int r = cy_get_u64(ctx, v, key, min, max, &x);

	if (r == 0)
		*out = (uint32_t)x;
	return r;
}

static int cy_get_u16(struct cy_ctx *ctx, const struct cy_node *v, const char *key, uint16_t min,
                      uint16_t max, uint16_t *out)
{
	uint64_t x;
	int r = cy_get_u64(ctx, v, key, min, max, &x);

	if (r == 0)
		*out = (uint16_t)x;
	return r;
}

static int cy_get_bool(struct cy_ctx *ctx, const struct cy_node *v, const char *key, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v->str, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v->str, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return cy_err_val(ctx, v, key, "expected true or false");
}

/* A non-empty string of printable characters without spaces that fits size bytes with its NUL. */
static int cy_get_word(struct cy_ctx *ctx, const struct cy_node *v, const char *key, char *out,
                       size_t size)
{
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	if (v->len == 0)
		return cy_err_val(ctx, v, key, "must not be empty");
	if (v->len >= size) {
		char msg[64];

		snprintf(msg, sizeof(msg), "longer than %zu bytes", size - 1);
		return cy_err_val(ctx, v, key, msg);
	}
	for (size_t i = 0; i < v->len; i++)
		if (!isgraph((unsigned char)v->str[i]))
			return cy_err_val(ctx, v, key,
			                  "must not hold spaces or control characters");
	memcpy(out, v->str, v->len + 1);
	return 0;
}

static int cy_get_addr(struct cy_ctx *ctx, const struct cy_node *v, const char *key, int family,
                       struct lb_addr *out)
{
	struct lb_addr a;
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	if (lb_addr_parse(v->str, &a) < 0)
		return cy_err_val(ctx, v, key, "not an IPv4 or IPv6 address");
	if (family == AF_INET && a.family != AF_INET)
		return cy_err_val(ctx, v, key, "not an IPv4 address");
	if (family == AF_INET6 && a.family != AF_INET6)
		return cy_err_val(ctx, v, key, "not an IPv6 address");
	*out = a;
	return 0;
}

/* An address that can be a VIP or a backend: not unspecified, not multicast. */
static int cy_get_host_addr(struct cy_ctx *ctx, const struct cy_node *v, const char *key,
                            struct lb_addr *out)
{
	static const struct lb_addr zero4 = {.family = AF_INET}, zero6 = {.family = AF_INET6};
	struct lb_addr a;
	int r = cy_get_addr(ctx, v, key, 0, &a);

	if (r < 0)
		return r;
	if (lb_addr_eq(&a, &zero4) || lb_addr_eq(&a, &zero6))
		return cy_err_val(ctx, v, key, "unspecified address");
	if ((a.family == AF_INET && (a.b[0] & 0xf0) == 0xe0) ||
	    (a.family == AF_INET6 && a.b[0] == 0xff))
		return cy_err_val(ctx, v, key, "multicast address");
	*out = a;
	return 0;
}

/*
 * A duration: an integer with an optional unit ms, s, m or h; a bare integer is seconds.
 * Result in milliseconds, at most max_ms.
 */
static int cy_get_duration_ms(struct cy_ctx *ctx, const struct cy_node *v, const char *key,
                              uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
	char num[32];
	size_t digits = 0;
	uint64_t x;
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	while (isdigit((unsigned char)v->str[digits]))
		digits++;
	if (digits == 0 || digits >= sizeof(num))
		return cy_err_val(ctx, v, key,
		                  digits ? "duration too large"
		                         : "not a duration (e.g. 500ms, 10s, 5m, 1h)");
	memcpy(num, v->str, digits);
	num[digits] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(v->str + digits, units[i].unit) != 0)
			continue;
		if (cy_parse_u64(num, &x) < 0 || x > UINT64_MAX / units[i].ms)
			return cy_err_val(ctx, v, key, "duration too large");
		x *= units[i].ms;
		if (x < min_ms || x > max_ms) {
			char msg[96];

			snprintf(msg, sizeof(msg), "out of range %llums..%llums",
			         (unsigned long long)min_ms, (unsigned long long)max_ms);
			return cy_err_val(ctx, v, key, msg);
		}
		*out = x;
		return 0;
	}
	return cy_err_val(ctx, v, key, "not a duration (units: ms, s, m, h)");
}

/* A duration stored in whole seconds. */
static int cy_get_duration_s(struct cy_ctx *ctx, const struct cy_node *v, const char *key,
                             uint32_t min_s, uint32_t max_s, uint32_t *out)
{
	uint64_t ms;
	int r =
	    cy_get_duration_ms(ctx, v, key, (uint64_t)min_s * 1000, (uint64_t)max_s * 1000, &ms);

	if (r < 0)
		return r;
	if (ms % 1000)
		return cy_err_val(ctx, v, key, "must be whole seconds");
	*out = (uint32_t)(ms / 1000);
	return 0;
}

/* xx:xx:xx:xx:xx:xx, exactly two hex digits a byte. */
static int cy_get_mac(struct cy_ctx *ctx, const struct cy_node *v, const char *key, uint8_t mac[6])
{
	static const size_t len = 17;
	uint8_t m[6];
	int r = cy_scalar(ctx, v, key);

	if (r < 0)
		return r;
	if (v->len != len)
		return cy_err_val(ctx, v, key, "not a MAC address (xx:xx:xx:xx:xx:xx)");
	for (size_t i = 0; i < 6; i++) {
		const char *p = v->str + 3 * i;
		char hex[3] = {p[0], p[1], '\0'};

		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
		    (i < 5 && p[2] != ':'))
			return cy_err_val(ctx, v, key, "not a MAC address (xx:xx:xx:xx:xx:xx)");
		m[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	memcpy(mac, m, 6);
	return 0;
}

/* ---- mappings ---- */

/*
 * Checks that node is a mapping (a null value counts as an empty one) whose keys are all in
 * keys[0..n), each at most once, and sets vals[i] to key i's value or NULL.
 */
static int cy_map(struct cy_ctx *ctx, const struct cy_node *node, const char *const *keys, size_t n,
                  const struct cy_node **vals)
{
	for (size_t i = 0; i < n; i++)
		vals[i] = NULL;
	if (cy_is_null(node))
		return 0;
	if (node->type != CY_MAP)
		return cy_err_type(ctx, node, NULL, "expected a mapping");
	for (uint32_t k = 0; k + 1 < node->n; k += 2) {
		const struct cy_node *key = node->kids[k];
		size_t i;

		if (key->type != CY_SCALAR)
			return cy_err(ctx, key->line, NULL, "keys must be scalars, not %s",
			              cy_type_name(key->type));
		for (i = 0; i < n; i++)
			if (key->len == strlen(keys[i]) && strcmp(key->str, keys[i]) == 0)
				break;
		if (i == n)
			return cy_err_val(ctx, key, NULL, "unknown key");
		if (vals[i])
			return cy_err_val(ctx, key, NULL, "duplicate key");
		vals[i] = node->kids[k + 1];
	}
	return 0;
}

/* ---- sections ---- */

enum { CL_HASH_SEED, CL_TABLE_SIZE, CL_N };
static const char *const cluster_keys[CL_N] = {"hash_seed", "table_size"};

static int cy_table_size(struct cy_ctx *ctx, const struct cy_node *v, uint32_t *out)
{
	uint64_t m = 0;
	int r = cy_get_u64(ctx, v, "table_size", 0, UINT64_MAX, &m);

	if (r < 0)
		return r;
	if (m > UINT32_MAX || !maglev_size_valid((uint32_t)m)) {
		char msg[96];

		snprintf(msg, sizeof(msg), "must be a prime in %u..%u", MAGLEV_SIZE_MIN,
		         MAGLEV_SIZE_MAX);
		return cy_err_val(ctx, v, "table_size", msg);
	}
	*out = (uint32_t)m;
	return 0;
}

static int cy_cluster(struct cy_ctx *ctx, const struct cy_node *node, struct config *c)
{
	const struct cy_node *v[CL_N];
	size_t old = cy_path_push(ctx, "cluster");
	int r = cy_map(ctx, node, cluster_keys, CL_N, v);

	if (r == 0 && v[CL_HASH_SEED])
		r = cy_get_u64(ctx, v[CL_HASH_SEED], "hash_seed", 0, UINT64_MAX, &c->hash_seed);
	if (r == 0 && v[CL_TABLE_SIZE])
		r = cy_table_size(ctx, v[CL_TABLE_SIZE], &c->table_size);
	cy_path_pop(ctx, old);
	return r;
}

enum {
	DP_MODE,
	DP_INTERFACE,
	DP_WORKERS,
	DP_SOURCE_IPV4,
	DP_SOURCE_IPV6,
	DP_TTL,
	DP_MTU,
	DP_NEXTHOP_MAC,
	DP_ICMP_RATE,
	DP_N
};
static const char *const dataplane_keys[DP_N] = {
    "mode", "interface", "workers",     "source_ipv4", "source_ipv6",
    "ttl",  "mtu",       "nexthop_mac", "icmp_rate",
};

static int cy_dataplane(struct cy_ctx *ctx, const struct cy_node *node, int key_line,
                        struct config_dataplane *d)
{
	const struct cy_node *v[DP_N];
	size_t old = cy_path_push(ctx, "dataplane");
	uint32_t x = 0;
	int r = cy_map(ctx, node, dataplane_keys, DP_N, v);

	d->line = key_line;
	if (r == 0 && v[DP_MODE]) {
		r = cy_scalar(ctx, v[DP_MODE], "mode");
		if (r == 0 && strcmp(v[DP_MODE]->str, "afxdp") == 0)
			d->mode = DP_MODE_AFXDP;
		else if (r == 0 && strcmp(v[DP_MODE]->str, "afpacket") == 0)
			d->mode = DP_MODE_AFPACKET;
		else if (r == 0 && strcmp(v[DP_MODE]->str, "xdp") == 0)
			d->mode = DP_MODE_XDP;
		else if (r == 0 && strcmp(v[DP_MODE]->str, "auto") == 0)
			d->mode = DP_MODE_AUTO;
		else if (r == 0)
			r = cy_err_val(ctx, v[DP_MODE], "mode",
			               "expected afxdp, xdp, auto or afpacket");
	}
	if (r == 0 && v[DP_INTERFACE])
		r = cy_get_word(ctx, v[DP_INTERFACE], "interface", d->interface,
		                sizeof(d->interface));
	if (r == 0 && v[DP_INTERFACE] && strchr(d->interface, '/'))
		r = cy_err_val(ctx, v[DP_INTERFACE], "interface", "not an interface name");
	if (r == 0 && v[DP_WORKERS])
		r = cy_get_u32(ctx, v[DP_WORKERS], "workers", 1, CONFIG_WORKERS_MAX, &d->workers);
	if (r == 0 && v[DP_SOURCE_IPV4] && !cy_is_null(v[DP_SOURCE_IPV4]))
		r = cy_get_addr(ctx, v[DP_SOURCE_IPV4], "source_ipv4", AF_INET, &d->source_ipv4);
	if (r == 0 && v[DP_SOURCE_IPV6] && !cy_is_null(v[DP_SOURCE_IPV6]))
		r = cy_get_addr(ctx, v[DP_SOURCE_IPV6], "source_ipv6", AF_INET6, &d->source_ipv6);
	if (r == 0 && v[DP_TTL]) {
		r = cy_get_u32(ctx, v[DP_TTL], "ttl", CONFIG_TTL_MIN, CONFIG_TTL_MAX, &x);
		if (r == 0)
			d->ttl = (uint8_t)x;
	}
	if (r == 0 && v[DP_MTU]) {
		r = cy_get_u32(ctx, v[DP_MTU], "mtu", CONFIG_MTU_MIN, CONFIG_MTU_MAX, &x);
		if (r == 0)
			d->mtu = (uint16_t)x;
	}
	if (r == 0 && v[DP_NEXTHOP_MAC] && !cy_is_null(v[DP_NEXTHOP_MAC])) {
		r = cy_get_mac(ctx, v[DP_NEXTHOP_MAC], "nexthop_mac", d->nexthop_mac);
		d->has_nexthop_mac = r == 0;
	}
	if (r == 0 && v[DP_ICMP_RATE])
		r = cy_get_u32(ctx, v[DP_ICMP_RATE], "icmp_rate", 0, CONFIG_ICMP_RATE_MAX,
		               &d->icmp_rate);
	cy_path_pop(ctx, old);
	return r;
}

enum { CT_ENTRIES, CT_MAX_INSERTS, CT_TCP, CT_TCP_FIN, CT_TCP_SYN, CT_UDP, CT_ICMP, CT_N };
static const char *const conntrack_keys[CT_N] = {
    "entries",     "max_inserts_per_second", "tcp_timeout", "tcp_fin_timeout", "tcp_syn_timeout",
    "udp_timeout", "icmp_timeout",
};

static int cy_conntrack(struct cy_ctx *ctx, const struct cy_node *node, struct config_conntrack *t)
{
	const struct cy_node *v[CT_N];
	uint32_t *timeouts[CT_N] = {
	    [CT_TCP] = &t->tcp_timeout,         [CT_TCP_FIN] = &t->tcp_fin_timeout,
	    [CT_TCP_SYN] = &t->tcp_syn_timeout, [CT_UDP] = &t->udp_timeout,
	    [CT_ICMP] = &t->icmp_timeout,
	};
	size_t old = cy_path_push(ctx, "conntrack");
	int r = cy_map(ctx, node, conntrack_keys, CT_N, v);

	if (r == 0 && v[CT_ENTRIES])
		r = cy_get_u32(ctx, v[CT_ENTRIES], "entries", CONFIG_CT_ENTRIES_MIN,
		               CONFIG_CT_ENTRIES_MAX, &t->entries);
	if (r == 0 && v[CT_MAX_INSERTS])
		r = cy_get_u32(ctx, v[CT_MAX_INSERTS], "max_inserts_per_second", 0,
		               CONFIG_CT_MAX_INSERTS_MAX, &t->max_inserts_per_second);
	for (int i = CT_TCP; r == 0 && i < CT_N; i++)
		if (v[i])
			r = cy_get_duration_s(ctx, v[i], conntrack_keys[i], CONFIG_CT_TIMEOUT_MIN,
			                      CONFIG_CT_TIMEOUT_MAX, timeouts[i]);
	cy_path_pop(ctx, old);
	return r;
}

enum { MX_ENABLED, MX_ADDRESS, MX_PORT, MX_N };
static const char *const metrics_keys[MX_N] = {"enabled", "address", "port"};
enum { CO_SOCKET, CO_METRICS, CO_STATE_DIR, CO_N };
static const char *const control_keys[CO_N] = {"socket", "metrics", "state_dir"};

/* An absolute directory path into out[size], or '' (quoted: a plain empty value is missing). */
static int cy_get_dir(struct cy_ctx *ctx, const struct cy_node *v, const char *key, char *out,
                      size_t size)
{
	int r = cy_scalar(ctx, v, key);

	if (r == 0 && v->len == 0) {
		out[0] = '\0';
		return 0;
	}
	if (r == 0)
		r = cy_get_word(ctx, v, key, out, size);
	if (r == 0 && out[0] != '/')
		r = cy_err_val(ctx, v, key, "must be an absolute path, or '' for none");
	return r;
}

static int cy_control(struct cy_ctx *ctx, const struct cy_node *node, struct config_control *co)
{
	const struct cy_node *v[CO_N], *m[MX_N];
	size_t old = cy_path_push(ctx, "control"), old2;
	struct lb_addr a;
	int r = cy_map(ctx, node, control_keys, CO_N, v);

	if (r == 0 && v[CO_SOCKET])
		r = cy_get_word(ctx, v[CO_SOCKET], "socket", co->socket, sizeof(co->socket));
	if (r == 0 && v[CO_STATE_DIR])
		r = cy_get_dir(ctx, v[CO_STATE_DIR], "state_dir", co->state_dir,
		               sizeof(co->state_dir));
	if (r < 0 || !v[CO_METRICS])
		goto out;
	old2 = cy_path_push(ctx, ".metrics");
	r = cy_map(ctx, v[CO_METRICS], metrics_keys, MX_N, m);
	if (r == 0 && m[MX_ENABLED])
		r = cy_get_bool(ctx, m[MX_ENABLED], "enabled", &co->metrics_enabled);
	if (r == 0 && m[MX_ADDRESS])
		r = cy_get_addr(ctx, m[MX_ADDRESS], "address", 0, &a);
	if (r == 0 && m[MX_ADDRESS])
		lb_addr_str(&a, co->metrics_address, sizeof(co->metrics_address));
	if (r == 0 && m[MX_PORT])
		r = cy_get_u16(ctx, m[MX_PORT], "port", 1, UINT16_MAX, &co->metrics_port);
	cy_path_pop(ctx, old2);
out:
	cy_path_pop(ctx, old);
	return r;
}

enum { AN_ENABLED, AN_TABLE, AN_PROTOCOL, AN_WITHDRAW, AN_DELAY, AN_INTERFACE, AN_N };
static const char *const announce_keys[AN_N] = {
    "enabled", "table", "protocol", "withdraw_when_no_backends", "withdraw_delay", "interface",
};

static int cy_announce(struct cy_ctx *ctx, const struct cy_node *node, int key_line,
                       struct config_announce *an)
{
	const struct cy_node *v[AN_N];
	size_t old = cy_path_push(ctx, "announce");
	uint64_t ms = 0;
	uint32_t x = 0;
	int r = cy_map(ctx, node, announce_keys, AN_N, v);

	an->line = key_line;
	if (r == 0 && v[AN_ENABLED])
		r = cy_get_bool(ctx, v[AN_ENABLED], "enabled", &an->enabled);
	if (r == 0 && v[AN_TABLE])
		r = cy_get_u32(ctx, v[AN_TABLE], "table", 1, UINT32_MAX, &an->table);
	if (r == 0 && v[AN_TABLE] && an->table >= CONFIG_ANNOUNCE_TABLE_RESERVED &&
	    an->table <= CONFIG_ANNOUNCE_TABLE_RESERVED + 2)
		r = cy_err_val(ctx, v[AN_TABLE], "table",
		               "253, 254 and 255 are the kernel's default, main and local tables");
	if (r == 0 && v[AN_PROTOCOL]) {
		r = cy_get_u32(ctx, v[AN_PROTOCOL], "protocol", CONFIG_ANNOUNCE_PROTOCOL_MIN,
		               CONFIG_ANNOUNCE_PROTOCOL_MAX, &x);
		if (r == 0)
			an->protocol = (uint8_t)x;
	}
	if (r == 0 && v[AN_WITHDRAW])
		r = cy_get_bool(ctx, v[AN_WITHDRAW], "withdraw_when_no_backends",
		                &an->withdraw_when_no_backends);
	if (r == 0 && v[AN_DELAY]) {
		r = cy_get_duration_ms(ctx, v[AN_DELAY], "withdraw_delay", 0,
		                       CONFIG_ANNOUNCE_DELAY_MAX_MS, &ms);
		if (r == 0)
			an->withdraw_delay_ms = (uint32_t)ms;
	}
	if (r == 0 && v[AN_INTERFACE])
		r = cy_get_word(ctx, v[AN_INTERFACE], "interface", an->interface,
		                sizeof(an->interface));
	if (r == 0 && v[AN_INTERFACE] && strchr(an->interface, '/'))
		r = cy_err_val(ctx, v[AN_INTERFACE], "interface", "not an interface name");
	cy_path_pop(ctx, old);
	return r;
}

enum {
	HC_KEY_TYPE,
	HC_KEY_PORT,
	HC_KEY_PATH,
	HC_KEY_EXPECT,
	HC_KEY_INTERVAL,
	HC_KEY_TIMEOUT,
	HC_KEY_RISE,
	HC_KEY_FALL,
	HC_KEY_THROUGH,
	HC_KEY_N
};
static const char *const health_keys[HC_KEY_N] = {
    "type", "port", "path", "expect_status", "interval", "timeout", "rise", "fall", "through",
};

/*
 * Reads a health: mapping over h, which holds the inherited settings (defaults, or the VIP's for
 * a backend). A mapping without type is a TCP check. vip_port fills an unset port.
 */
static int cy_health(struct cy_ctx *ctx, const struct cy_node *node, uint16_t vip_port,
                     struct config_health *h)
{
	const struct cy_node *v[HC_KEY_N];
	size_t old = cy_path_push(ctx, ".health");
	uint64_t ms;
	int r = cy_map(ctx, node, health_keys, HC_KEY_N, v);

	if (r < 0)
		goto out;
	h->line = node->line;
	if (h->type == HC_NONE)
		h->type = HC_TCP;
	if (v[HC_KEY_TYPE]) {
		const struct cy_node *t = v[HC_KEY_TYPE];

		r = cy_scalar(ctx, t, "type");
		if (r < 0)
			goto out;
		if (strcmp(t->str, "tcp") == 0)
			h->type = HC_TCP;
		else if (strcmp(t->str, "http") == 0)
			h->type = HC_HTTP;
		else if (strcmp(t->str, "none") == 0)
			h->type = HC_NONE;
		else {
			r = cy_err_val(ctx, t, "type", "expected tcp, http or none");
			goto out;
		}
	}
	if (v[HC_KEY_PORT]) {
		r = cy_get_u16(ctx, v[HC_KEY_PORT], "port", 1, UINT16_MAX, &h->port);
		if (r < 0)
			goto out;
	}
	if (v[HC_KEY_PATH]) {
		r = cy_get_word(ctx, v[HC_KEY_PATH], "path", h->path, sizeof(h->path));
		if (r == 0 && h->path[0] != '/')
			r = cy_err_val(ctx, v[HC_KEY_PATH], "path", "must start with /");
		if (r < 0)
			goto out;
	}
	if (v[HC_KEY_EXPECT]) {
		r = cy_get_u16(ctx, v[HC_KEY_EXPECT], "expect_status", 100, 599, &h->expect_status);
		if (r < 0)
			goto out;
	}
	if (h->type != HC_HTTP && (v[HC_KEY_PATH] || v[HC_KEY_EXPECT])) {
		const struct cy_node *k = v[HC_KEY_PATH] ? v[HC_KEY_PATH] : v[HC_KEY_EXPECT];

		r = cy_err_val(ctx, k, v[HC_KEY_PATH] ? "path" : "expect_status",
		               "only for type http");
		goto out;
	}
	if (v[HC_KEY_INTERVAL]) {
		r = cy_get_duration_ms(ctx, v[HC_KEY_INTERVAL], "interval",
		                       CONFIG_HC_INTERVAL_MIN_MS, CONFIG_HC_INTERVAL_MAX_MS, &ms);
		if (r < 0)
			goto out;
		h->interval_ms = (uint32_t)ms;
	}
	if (v[HC_KEY_TIMEOUT]) {
		r = cy_get_duration_ms(ctx, v[HC_KEY_TIMEOUT], "timeout", CONFIG_HC_TIMEOUT_MIN_MS,
		                       CONFIG_HC_INTERVAL_MAX_MS, &ms);
		if (r < 0)
			goto out;
		h->timeout_ms = (uint32_t)ms;
	}
	/* An interval at or below the default timeout, without a timeout of its own: half of it. */
	if (!v[HC_KEY_TIMEOUT] && h->timeout_ms >= h->interval_ms)
		h->timeout_ms = h->interval_ms / 2;
	if (h->timeout_ms >= h->interval_ms) {
		const struct cy_node *k =
		    v[HC_KEY_TIMEOUT] ? v[HC_KEY_TIMEOUT] : v[HC_KEY_INTERVAL];
		const char *kn = v[HC_KEY_TIMEOUT] ? "timeout" : "interval";

		if (!k)
			k = node;
		r = cy_err(ctx, k->line, kn, "timeout %ums must be less than interval %ums '%s'",
		           h->timeout_ms, h->interval_ms, k->type == CY_SCALAR ? k->str : "");
		goto out;
	}
	if (v[HC_KEY_RISE]) {
		r = cy_get_u32(ctx, v[HC_KEY_RISE], "rise", 1, CONFIG_HC_RISE_FALL_MAX, &h->rise);
		if (r < 0)
			goto out;
	}
	if (v[HC_KEY_FALL]) {
		r = cy_get_u32(ctx, v[HC_KEY_FALL], "fall", 1, CONFIG_HC_RISE_FALL_MAX, &h->fall);
		if (r < 0)
			goto out;
	}
	if (v[HC_KEY_THROUGH]) {
		const struct cy_node *t = v[HC_KEY_THROUGH];

		r = cy_scalar(ctx, t, "through");
		if (r < 0)
			goto out;
		if (strcmp(t->str, "tunnel") == 0)
			h->tunnel = true;
		else if (strcmp(t->str, "direct") == 0)
			h->tunnel = false;
		else {
			r = cy_err_val(ctx, t, "through", "expected direct or tunnel");
			goto out;
		}
	}
	if (h->type == HC_NONE) {
		h->port = 0;
		h->tunnel = false;
	} else if (!v[HC_KEY_PORT] && h->port == 0) {
		if (vip_port == 0) {
			r = cy_err(ctx, node->line, NULL,
			           "port is required when the VIP's port is 0 (every port)");
			goto out;
		}
		h->port = vip_port;
	}
out:
	cy_path_pop(ctx, old);
	return r;
}

enum { BE_ADDRESS, BE_WEIGHT, BE_HEALTH, BE_N };
static const char *const backend_keys[BE_N] = {"address", "weight", "health"};

static int cy_backend(struct cy_ctx *ctx, const struct cy_node *node, const struct config_vip *vip,
                      struct config_backend *b)
{
	const struct cy_node *v[BE_N];
	int r;

	b->line = node->line;
	b->weight = 1;
	config_health_init(&b->health);
	if (node->type != CY_MAP)
		return cy_err_type(ctx, node, NULL, "expected a mapping with address and weight");
	r = cy_map(ctx, node, backend_keys, BE_N, v);
	if (r < 0)
		return r;
	if (!v[BE_ADDRESS])
		return cy_err(ctx, node->line, NULL, "address is required");
	r = cy_get_host_addr(ctx, v[BE_ADDRESS], "address", &b->addr);
	if (r == 0 && v[BE_WEIGHT])
		r = cy_get_u32(ctx, v[BE_WEIGHT], "weight", 0, MAGLEV_WEIGHT_MAX, &b->weight);
	if (r == 0 && v[BE_HEALTH] && !cy_is_null(v[BE_HEALTH])) {
		if (vip->health.line)
			b->health = vip->health;
		b->health.line = 0;
		b->has_health = true;
		r = cy_health(ctx, v[BE_HEALTH], vip->port, &b->health);
	}
	return r;
}

static int cy_addr_cmp(const void *a, const void *b)
{
	const struct config_backend *x = *(const struct config_backend *const *)a;
	const struct config_backend *y = *(const struct config_backend *const *)b;
	int c = lb_addr_cmp(&x->addr, &y->addr);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Duplicate backend addresses within one VIP: the later one is reported. */
static int cy_backends_unique(struct cy_ctx *ctx, const struct config_vip *vip)
{
	const struct config_backend **s;
	char buf[LB_ADDR_STRLEN];
	int r = 0;

	if (vip->n_backends < 2)
		return 0;
	s = malloc(vip->n_backends * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (uint32_t i = 0; i < vip->n_backends; i++)
		s[i] = &vip->backends[i];
	qsort(s, vip->n_backends, sizeof(*s), cy_addr_cmp);
	for (uint32_t i = 1; i < vip->n_backends; i++) {
		if (lb_addr_eq(&s[i]->addr, &s[i - 1]->addr)) {
			r = cy_err(ctx, s[i]->line, NULL,
			           "duplicate backend (first at line %d) '%s'", s[i - 1]->line,
			           lb_addr_str(&s[i]->addr, buf, sizeof(buf)));
			break;
		}
	}
	free(s);
	return r;
}

enum {
	VIP_NAME,
	VIP_ADDRESS,
	VIP_PROTOCOL,
	VIP_PORT,
	VIP_TABLE_SIZE,
	VIP_HEALTH,
	VIP_BACKENDS,
	VIP_SECOND_CHANCE,
	VIP_HASH,
	VIP_N
};
static const char *const vip_keys[VIP_N] = {
    "name",   "address",  "protocol",      "port", "table_size",
    "health", "backends", "second_chance", "hash",
};

/* hash: 5-tuple (the default) or source. */
static int cy_vip_hash(struct cy_ctx *ctx, const struct cy_node *v, enum vip_hash *out)
{
	static const enum vip_hash modes[] = {VIP_HASH_5TUPLE, VIP_HASH_SOURCE};
	int r = cy_scalar(ctx, v, "hash");

	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (strcmp(v->str, config_vip_hash_name(modes[i])) == 0) {
			*out = modes[i];
			return 0;
		}
	}
	return cy_err_val(ctx, v, "hash", "expected 5-tuple or source");
}

static int cy_vip(struct cy_ctx *ctx, const struct cy_node *node, const struct config *c,
                  struct config_vip *vip)
{
	const struct cy_node *v[VIP_N], *bl;
	int r;

	vip->line = node->line;
	vip->table_size = c->table_size;
	config_health_init(&vip->health);
	if (node->type != CY_MAP)
		return cy_err_type(ctx, node, NULL, "expected a mapping (a VIP)");
	r = cy_map(ctx, node, vip_keys, VIP_N, v);
	if (r < 0)
		return r;
	for (int k = 0; k < VIP_N; k++) {
		static const bool required[VIP_N] = {
		    [VIP_NAME] = true, [VIP_ADDRESS] = true,  [VIP_PROTOCOL] = true,
		    [VIP_PORT] = true, [VIP_BACKENDS] = true,
		};

		if (required[k] && !v[k])
			return cy_err(ctx, node->line, NULL, "%s is required", vip_keys[k]);
	}
	r = cy_get_word(ctx, v[VIP_NAME], "name", vip->name, sizeof(vip->name));
	if (r < 0)
		return r;
	for (const char *p = vip->name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return cy_err_val(ctx, v[VIP_NAME], "name",
			                  "may hold only letters, digits, '_', '.' and '-'");
	r = cy_get_host_addr(ctx, v[VIP_ADDRESS], "address", &vip->addr);
	if (r < 0)
		return r;
	r = cy_scalar(ctx, v[VIP_PROTOCOL], "protocol");
	if (r < 0)
		return r;
	if (strcmp(v[VIP_PROTOCOL]->str, "tcp") == 0)
		vip->proto = IPPROTO_TCP;
	else if (strcmp(v[VIP_PROTOCOL]->str, "udp") == 0)
		vip->proto = IPPROTO_UDP;
	else
		return cy_err_val(ctx, v[VIP_PROTOCOL], "protocol", "expected tcp or udp");
	r = cy_get_u16(ctx, v[VIP_PORT], "port", 0, UINT16_MAX, &vip->port);
	if (r == 0 && v[VIP_TABLE_SIZE])
		r = cy_table_size(ctx, v[VIP_TABLE_SIZE], &vip->table_size);
	if (r == 0 && v[VIP_HEALTH] && !cy_is_null(v[VIP_HEALTH]))
		r = cy_health(ctx, v[VIP_HEALTH], vip->port, &vip->health);
	if (r == 0 && v[VIP_SECOND_CHANCE])
		r = cy_get_bool(ctx, v[VIP_SECOND_CHANCE], "second_chance", &vip->second_chance);
	if (r == 0 && v[VIP_HASH])
		r = cy_vip_hash(ctx, v[VIP_HASH], &vip->hash);
	if (r < 0)
		return r;
	/* A backend can ask its kernel whether a TCP connection is its own; not a UDP flow. */
	if (vip->second_chance && vip->proto != IPPROTO_TCP)
		return cy_err_val(ctx, v[VIP_SECOND_CHANCE], "second_chance",
		                  "applies to TCP VIPs only");

	bl = v[VIP_BACKENDS];
	if (bl->type != CY_SEQ && !cy_is_null(bl))
		return cy_err_type(ctx, bl, "backends", "expected a list of backends");
	if (cy_is_null(bl) || bl->n == 0)
		return cy_err(ctx, bl->line, "backends", "a VIP needs at least one backend");
	if (bl->n > CONFIG_BACKENDS_MAX)
		return cy_err(ctx, bl->kids[CONFIG_BACKENDS_MAX]->line, "backends",
		              "more than %u backends", CONFIG_BACKENDS_MAX);
	vip->backends = calloc(bl->n, sizeof(*vip->backends));
	if (!vip->backends)
		return -ENOMEM;
	for (uint32_t i = 0; i < bl->n; i++) {
		size_t old = cy_path_push(ctx, ".backends[%u]", i);

		vip->n_backends = i + 1;
		r = cy_backend(ctx, bl->kids[i], vip, &vip->backends[i]);
		cy_path_pop(ctx, old);
		if (r < 0)
			return r;
	}
	return cy_backends_unique(ctx, vip);
}

static int cy_vip_name_cmp(const void *a, const void *b)
{
	const struct config_vip *x = *(const struct config_vip *const *)a;
	const struct config_vip *y = *(const struct config_vip *const *)b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Orders by address, protocol, then port with 0 (every port) first, then line. */
static int cy_vip_tuple_cmp(const void *a, const void *b)
{
	const struct config_vip *x = *(const struct config_vip *const *)a;
	const struct config_vip *y = *(const struct config_vip *const *)b;
	int c = lb_addr_cmp(&x->addr, &y->addr);

	if (c)
		return c;
	if (x->proto != y->proto)
		return x->proto < y->proto ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return (x->line > y->line) - (x->line < y->line);
}

/*
 * Duplicate names, and two VIPs on one (address, protocol, port). A port-0 VIP takes every port
 * of its address and protocol, so another VIP on the same address and protocol overlaps it and
 * is refused too: which of the two a packet belongs to would otherwise be a guess.
 */
static int cy_vips_unique(struct cy_ctx *ctx, const struct config *c)
{
	const struct config_vip **s;
	char buf[LB_ADDR_STRLEN];
	int r = 0;

	if (c->n_vips < 2)
		return 0;
	s = malloc(c->n_vips * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->n_vips; i++)
		s[i] = &c->vips[i];
	qsort(s, c->n_vips, sizeof(*s), cy_vip_name_cmp);
	for (uint32_t i = 1; i < c->n_vips && r == 0; i++)
		if (strcmp(s[i]->name, s[i - 1]->name) == 0)
			r = cy_err(ctx, s[i]->line, NULL,
			           "duplicate VIP name (first at line %d) '%s'", s[i - 1]->line,
			           s[i]->name);
	if (r == 0)
		qsort(s, c->n_vips, sizeof(*s), cy_vip_tuple_cmp);
	for (uint32_t i = 1, first = 0; i < c->n_vips && r == 0; i++) {
		const struct config_vip *p = s[first], *q = s[i];

		if (!lb_addr_eq(&p->addr, &q->addr) || p->proto != q->proto) {
			first = i;
			continue;
		}
		if (p->port == 0 || p->port == q->port) {
			const struct config_vip *later = p->line > q->line ? p : q;
			const struct config_vip *earlier = later == p ? q : p;

			lb_addr_str(&later->addr, buf, sizeof(buf));
			if (p->port == q->port)
				r = cy_err(ctx, later->line, NULL,
				           "duplicate VIP (same address, protocol and port as "
				           "'%s' at line %d) '%s'",
				           earlier->name, earlier->line, buf);
			else
				r = cy_err(ctx, later->line, NULL,
				           "VIP overlaps port-0 VIP '%s' at line %d '%s'",
				           earlier->name, earlier->line, buf);
		} else {
			first = i;
		}
	}
	free(s);
	return r;
}

static int cy_vips(struct cy_ctx *ctx, const struct cy_node *node, struct config *c)
{
	int r = 0;

	if (cy_is_null(node))
		return 0;
	if (node->type != CY_SEQ)
		return cy_err_type(ctx, node, "vips", "expected a list of VIPs");
	if (node->n == 0)
		return 0;
	if (node->n > CONFIG_VIPS_MAX)
		return cy_err(ctx, node->kids[CONFIG_VIPS_MAX]->line, "vips", "more than %u VIPs",
		              CONFIG_VIPS_MAX);
	c->vips = calloc(node->n, sizeof(*c->vips));
	if (!c->vips)
		return -ENOMEM;
	for (uint32_t i = 0; i < node->n; i++) {
		size_t old = cy_path_push(ctx, "vips[%u]", i);

		c->n_vips = i + 1;
		r = cy_vip(ctx, node->kids[i], c, &c->vips[i]);
		cy_path_pop(ctx, old);
		if (r < 0)
			return r;
	}
	return cy_vips_unique(ctx, c);
}

enum {
	ROOT_CLUSTER,
	ROOT_DATAPLANE,
	ROOT_CONNTRACK,
	ROOT_CONTROL,
	ROOT_VIPS,
	ROOT_ANNOUNCE,
	ROOT_N
};
static const char *const root_keys[ROOT_N] = {
    "cluster", "dataplane", "conntrack", "control", "vips", "announce",
};

/* The line of the key whose value in root is val (0 if none). */
static int cy_key_line(const struct cy_node *root, const struct cy_node *val)
{
	for (uint32_t k = 0; k + 1 < root->n; k += 2)
		if (root->kids[k + 1] == val)
			return root->kids[k]->line;
	return 0;
}

static int cy_root(struct cy_ctx *ctx, const struct cy_node *root, struct config *c)
{
	const struct cy_node *v[ROOT_N];
	int dp_line = 0;
	int r;

	/*
	 * An empty file is what a reload reads half-way through a non-atomic write: refused, never
	 * taken for "no VIPs". A config that serves no VIP says so with `vips: []`.
	 */
	if (!root || cy_is_null(root))
		return cy_err(ctx, root ? root->line : 1, NULL,
		              "the file is empty (a config with no VIPs says 'vips: []')");
	if (root->type != CY_MAP)
		return cy_err_type(ctx, root, NULL, "the file must be a mapping of sections");
	r = cy_map(ctx, root, root_keys, ROOT_N, v);
	if (r < 0)
		return r;
	/* cluster first: VIPs inherit its table_size wherever the sections stand in the file. */
	if (v[ROOT_CLUSTER])
		r = cy_cluster(ctx, v[ROOT_CLUSTER], c);
	if (r == 0 && v[ROOT_DATAPLANE]) {
		for (uint32_t k = 0; k + 1 < root->n; k += 2)
			if (root->kids[k + 1] == v[ROOT_DATAPLANE])
				dp_line = root->kids[k]->line;
		r = cy_dataplane(ctx, v[ROOT_DATAPLANE], dp_line, &c->dataplane);
	}
	if (r == 0 && v[ROOT_CONNTRACK])
		r = cy_conntrack(ctx, v[ROOT_CONNTRACK], &c->conntrack);
	if (r == 0 && v[ROOT_CONTROL])
		r = cy_control(ctx, v[ROOT_CONTROL], &c->control);
	if (r == 0 && v[ROOT_VIPS])
		r = cy_vips(ctx, v[ROOT_VIPS], c);
	if (r == 0 && v[ROOT_ANNOUNCE])
		r = cy_announce(ctx, v[ROOT_ANNOUNCE], cy_key_line(root, v[ROOT_ANNOUNCE]),
		                &c->announce);
	if (r == 0 && !v[ROOT_VIPS])
		r = cy_err(ctx, root->line, NULL,
		           "no 'vips' section (a config with no VIPs says 'vips: []')");
	return r;
}

/* ---- public ---- */

int config_parse(const char *text, size_t len, const char *name, struct config **out, char *err,
                 size_t errlen)
{
	struct cy_ctx ctx = {.name = name ? name : "(config)", .err = err, .errlen = errlen};
	struct cy_tree tree = {0};
	struct config *c = NULL;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (len > CONFIG_FILE_MAX) {
		r = -EFBIG;
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u bytes", ctx.name,
			         CONFIG_FILE_MAX);
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto out;
	}
	config_init(c);
	snprintf(c->path, sizeof(c->path), "%s", ctx.name);
	r = cy_tree_load(&ctx, text, len, &tree);
	if (r == 0)
		r = cy_root(&ctx, tree.root, c);
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "%s: out of memory", ctx.name);
out:
	cy_tree_free(&tree);
	if (r < 0) {
		config_free(c);
		return r;
	}
	*out = c;
	return 0;
}

/* What a stat mode names, for the "not a regular file" message. */
static const char *cy_file_type(mode_t m)
{
	return S_ISDIR(m)    ? "directory"
	       : S_ISFIFO(m) ? "FIFO"
	       : S_ISSOCK(m) ? "socket"
	       : S_ISCHR(m)  ? "character device"
	       : S_ISBLK(m)  ? "block device"
	                     : "special file";
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r;

	*out = NULL;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		snprintf(err, errlen, "%s: not a regular file (a %s)", path,
		         cy_file_type(st.st_mode));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < CY_READ_CHUNK) {
			char *nb;

			if (cap > CONFIG_FILE_MAX) {
				r = -EFBIG;
				snprintf(err, errlen, "%s: larger than %u bytes", path,
				         CONFIG_FILE_MAX);
				goto out;
			}
			cap += 4 * CY_READ_CHUNK;
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = config_parse(buf, len, path, out, err, errlen);
	goto out;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

int config_check_dataplane(const struct config *c, char *err, size_t errlen)
{
	const struct config_dataplane *d = &c->dataplane;

	if (!d->interface[0]) {
		if (d->line)
			snprintf(err, errlen, "%s:%d: dataplane.interface is not set", c->path,
			         d->line);
		else
			snprintf(err, errlen,
			         "%s: no dataplane section (dataplane.interface is required)",
			         c->path);
		return -EINVAL;
	}
	return config_check_forwarding(c, err, errlen);
}

int config_load_daemon(const char *path, struct config **out, char *err, size_t errlen)
{
	int r = config_load(path, out, err, errlen);

	if (r == 0)
		r = config_check_dataplane(*out, err, errlen);
	if (r < 0) {
		config_free(*out);
		*out = NULL;
	}
	return r;
}
