/* SPDX-License-Identifier: GPL-2.0-only */
/* Building immutable snapshots: backend ids, Maglev tables, next hops, VIP lookup tables. */
#include "core/snapshot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/encap.h"
#include "core/maglev.h"
#include "core/pkt.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* A (VIP name, backend address) pair: what a backend id stands for. */
struct pair {
	const char *vip;
	const struct lb_addr *addr;
	uint32_t value; /* id, override index, nexthop index: what the map maps the pair to */
};

/* Open-addressing map of pairs, sized at creation; values are indices into an array of pairs. */
struct pairmap {
	uint32_t *slots; /* pair index + 1; 0 = empty */
	uint32_t mask;
	const struct pair *pairs;
};

static uint64_t pair_hash(const char *vip, const struct lb_addr *a)
{
	uint64_t h = vip ? XXH3_64bits(vip, strlen(vip)) : 0;

	return XXH3_64bits_withSeed(a->b, sizeof(a->b), h ^ a->family);
}

static bool pair_eq(const struct pair *p, const char *vip, const struct lb_addr *a)
{
	if (!lb_addr_eq(p->addr, a))
		return false;
	return vip ? strcmp(p->vip, vip) == 0 : true;
}

/* Allocates room for capacity pairs of the array pairs. */
static int pairmap_alloc(struct pairmap *m, const struct pair *pairs, uint32_t capacity)
{
	uint32_t size = 16;

	while (size < 2 * capacity)
		size <<= 1;
	m->slots = calloc(size, sizeof(*m->slots));
	if (!m->slots)
		return -ENOMEM;
	m->mask = size - 1;
	m->pairs = pairs;
	return 0;
}

/* Adds pairs[i]; the map must have room (pairmap_alloc capacity). */
static void pairmap_put(struct pairmap *m, uint32_t i)
{
	uint32_t j = (uint32_t)pair_hash(m->pairs[i].vip, m->pairs[i].addr) & m->mask;

	while (m->slots[j])
		j = (j + 1) & m->mask;
	m->slots[j] = i + 1;
}

static int pairmap_init(struct pairmap *m, const struct pair *pairs, uint32_t n)
{
	int ret = pairmap_alloc(m, pairs, n);

	for (uint32_t i = 0; !ret && i < n; i++)
		pairmap_put(m, i);
	return ret;
}

/* Value of the pair (vip, a) (vip NULL: address only), or -1. */
static int64_t pairmap_get(const struct pairmap *m, const char *vip, const struct lb_addr *a)
{
	uint32_t j = (uint32_t)pair_hash(vip, a) & m->mask;

	while (m->slots[j]) {
		const struct pair *p = &m->pairs[m->slots[j] - 1];

		if (pair_eq(p, vip, a))
			return p->value;
		j = (j + 1) & m->mask;
	}
	return -1;
}

static void pairmap_free(struct pairmap *m)
{
	free(m->slots);
	m->slots = NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void snapshot_free(struct lb_snapshot *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_vips; i++) {
		free(s->vips[i].table);
		free(s->vips[i].backends);
		free(s->vips[i].prev_table);
		free(s->vips[i].prev.backends);
	}
	free(s->vips);
	free(s->backends);
	free(s->nexthops);
	free(s->addrs);
	free(s->addr_slots);
	free(s->port_keys);
	free(s->port_vips);
	free(s->vip4);
	free(s);
}

/*
 * Gives every (VIP, backend) pair of cfg, in config order, its id in ids[]: prev's for the same
 * pair, else the lowest free id. Allocates s->backends and sets in_use and tags.
 */
static int assign_ids(struct lb_snapshot *s, const struct config *cfg,
                      const struct lb_snapshot *prev, uint16_t *ids, char *err, size_t errlen)
{
	struct pair *pp = NULL;
	struct pairmap pm = {0};
	uint8_t *kept = NULL;
	uint32_t total = 0, k = 0, n_pp = 0, next_free = 0;
	uint32_t n_prev = prev ? prev->n_backends : 0, n_ids = n_prev;
	int ret;

	for (uint32_t i = 0; i < cfg->n_vips; i++)
		total += cfg->vips[i].n_backends;
	kept = calloc(LB_BACKEND_IDS_MAX, 1);
	pp = calloc(n_prev ? n_prev : 1, sizeof(*pp));
	if (!kept || !pp) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t id = 0; id < n_prev; id++) {
		const struct lb_backend *b = &prev->backends[id];

		if (b->in_use)
			pp[n_pp++] = (struct pair){prev->vips[b->vip].name, &b->addr, id};
	}
	ret = pairmap_init(&pm, pp, n_pp);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < cfg->n_vips; i++) {
		for (uint32_t j = 0; j < cfg->vips[i].n_backends; j++, k++) {
			const struct config_backend *cb = &cfg->vips[i].backends[j];
			int64_t id = pairmap_get(&pm, cfg->vips[i].name, &cb->addr);
			char a[LB_ADDR_STRLEN];

			ids[k] = LB_BACKEND_NONE;
			if (id < 0)
				continue;
			if (kept[id]) {
				set_err(err, errlen, "VIP '%s': duplicate backend '%s'",
				        cfg->vips[i].name, lb_addr_str(&cb->addr, a, sizeof(a)));
				ret = -EINVAL;
				goto out;
			}
			kept[id] = 1;
			ids[k] = (uint16_t)id;
		}
	}
	for (k = 0; k < total; k++) {
		if (ids[k] != LB_BACKEND_NONE)
			continue;
		while (kept[next_free])
			next_free++;
		kept[next_free] = 2; /* new */
		ids[k] = (uint16_t)next_free;
		if (next_free + 1 > n_ids)
			n_ids = next_free + 1;
	}
	s->n_backends = n_ids;
	s->backends = calloc(n_ids ? n_ids : 1, sizeof(*s->backends));
	if (!s->backends) {
		ret = -ENOMEM;
		goto out;
	}
	/*
	 * A kept id keeps its tag. Any other id that prev used is free from now on and gets the
	 * next tag, so flows still referring to it under the old tag are seen as stale.
	 */
	for (uint32_t id = 0; id < n_prev; id++) {
		const struct lb_backend *b = &prev->backends[id];

		s->backends[id].tag = b->tag;
		if (b->in_use && kept[id] != 1)
			s->backends[id].tag = (uint16_t)(b->tag + 1u);
	}
	ret = 0;
out:
	pairmap_free(&pm);
	free(kept);
	free(pp);
	return ret;
}

static const struct snapshot_override *find_override(const struct pairmap *om,
                                                     const struct snapshot_state *st,
                                                     const char *vip, const struct lb_addr *a)
{
	int64_t i;

	if (!st || !st->n)
		return NULL;
	i = pairmap_get(om, vip, a);
	return i < 0 ? NULL : &st->v[i];
}

/* The generation v's current table is built from (digest: v's). */
static int gen_of(const struct lb_snapshot *s, const struct lb_vip *v, struct lb_gen *g)
{
	*g = (struct lb_gen){.table_size = v->table_size, .digest = v->digest, .hash = v->hash};
	g->backends = calloc(v->n_backends ? v->n_backends : 1, sizeof(*g->backends));
	if (!g->backends)
		return -ENOMEM;
	for (uint32_t j = 0; j < v->n_backends; j++) {
		const struct lb_backend *b = &s->backends[v->backends[j]];

		g->backends[j] = (struct lb_gen_backend){b->addr, b->up ? b->weight : 0};
	}
	g->n_backends = v->n_backends;
	return 0;
}

int lb_gen_copy(struct lb_gen *dst, const struct lb_gen *src)
{
	*dst = *src;
	dst->backends = calloc(src->n_backends ? src->n_backends : 1, sizeof(*dst->backends));
	if (!dst->backends)
		return -ENOMEM;
	memcpy(dst->backends, src->backends, src->n_backends * sizeof(*src->backends));
	return 0;
}

void lb_gen_free(struct lb_gen *g)
{
	free(g->backends);
	*g = (struct lb_gen){0};
}

int snapshot_gen_current(const struct lb_snapshot *s, uint32_t vip, struct lb_gen *out)
{
	if (vip >= s->n_vips)
		return -ENOENT;
	return gen_of(s, &s->vips[vip], out);
}

/*
 * Builds g's Maglev table into table[g->table_size] (indices into g->backends, MAGLEV_EMPTY for
 * none) and its digest into *digest.
 */
static int gen_build(const struct lb_gen *g, uint64_t seed, uint16_t *table, uint64_t *digest)
{
	struct maglev_backend *mb = calloc(g->n_backends ? g->n_backends : 1, sizeof(*mb));
	int ret;

	if (!mb)
		return -ENOMEM;
	for (uint32_t j = 0; j < g->n_backends; j++) {
		mb[j].key = g->backends[j].addr.b;
		mb[j].key_len = lb_addr_len(&g->backends[j].addr);
		mb[j].weight = g->backends[j].weight;
	}
	ret = maglev_build(table, g->table_size, mb, g->n_backends, seed);
	if (!ret)
		*digest = maglev_digest(table, g->table_size, mb, g->n_backends);
	free(mb);
	return ret;
}

/* Fills vip's Maglev table from the backends ids[0..n) of s. */
static int build_table(struct lb_snapshot *s, struct lb_vip *v, uint64_t seed, char *err,
                       size_t errlen)
{
	struct lb_gen g;
	int ret = gen_of(s, v, &g);

	if (!ret)
		ret = gen_build(&g, seed, v->table, &v->digest);
	free(g.backends);
	if (ret) {
		set_err(err, errlen, "VIP '%s': Maglev table build failed (%d)", v->name, ret);
		return ret;
	}
	for (uint32_t i = 0; i < v->table_size; i++) {
		uint16_t t = v->table[i];

		if (t == MAGLEV_EMPTY || t >= v->n_backends) {
			v->table[i] = LB_BACKEND_NONE;
			continue;
		}
		v->table[i] = v->backends[t];
		s->backends[v->table[i]].slots++;
	}
	return 0;
}

/*
 * map[k] = the id of v's backend whose address is addr(k) for each of n owners of another
 * generation (addr(k) NULL: not one of its owners), else LB_BACKEND_NONE. Caller frees.
 */
static uint16_t *owner_map(const struct lb_snapshot *s, const struct lb_vip *v, uint32_t n,
                           const struct lb_addr *(*addr)(const void *, uint32_t), const void *ctx)
{
	uint16_t *map = malloc((n ? n : 1) * sizeof(*map));
	struct pair *pp = calloc(v->n_backends ? v->n_backends : 1, sizeof(*pp));
	struct pairmap pm = {0};

	if (!map || !pp || pairmap_alloc(&pm, pp, v->n_backends)) {
		free(map);
		map = NULL;
		goto out;
	}
	for (uint32_t j = 0; j < v->n_backends; j++) {
		pp[j] = (struct pair){NULL, &s->backends[v->backends[j]].addr, v->backends[j]};
		pairmap_put(&pm, j);
	}
	for (uint32_t k = 0; k < n; k++) {
		const struct lb_addr *a = addr(ctx, k);
		int64_t id = a ? pairmap_get(&pm, NULL, a) : -1;

		map[k] = id < 0 ? LB_BACKEND_NONE : (uint16_t)id;
	}
out:
	pairmap_free(&pm);
	free(pp);
	return map;
}

/* Owner addresses by id of a snapshot's backends (owner_map's addr for a snapshot's table). */
static const struct lb_addr *snapshot_owner(const void *ctx, uint32_t id)
{
	const struct lb_snapshot *s = ctx;

	return s->backends[id].in_use ? &s->backends[id].addr : NULL;
}

/* Owner addresses by index of a generation's backends (owner_map's addr for gen_build's table). */
static const struct lb_addr *gen_owner(const void *ctx, uint32_t k)
{
	return &((const struct lb_gen *)ctx)->backends[k].addr;
}

/* Whether table (m entries, owners by map; >= n_map: none) has v's current table's owners. */
static bool same_owners(const struct lb_vip *v, const uint16_t *table, uint32_t m,
                        const uint16_t *map, uint32_t n_map)
{
	if (m != v->table_size)
		return false;
	for (uint32_t i = 0; i < m; i++) {
		uint16_t o = table[i] < n_map ? map[table[i]] : LB_BACKEND_NONE;

		if (o != v->table[i] || (o == LB_BACKEND_NONE && table[i] < n_map))
			return false;
	}
	return true;
}

/* v->prev_table from table (g->table_size entries, owners by map; >= n_map: none). */
static int prev_set(struct lb_vip *v, const struct lb_gen *g, const uint16_t *table,
                    const uint16_t *map, uint32_t n_map)
{
	v->prev_table = malloc(g->table_size * sizeof(*v->prev_table));
	if (!v->prev_table || lb_gen_copy(&v->prev, g))
		return -ENOMEM;
	for (uint32_t i = 0; i < g->table_size; i++)
		v->prev_table[i] = table[i] < n_map ? map[table[i]] : LB_BACKEND_NONE;
	return 0;
}

/* v's previous generation from the snapshot it replaces, where pv is the same VIP. */
static int prev_from_snapshot(struct lb_vip *v, const struct lb_snapshot *s,
                              const struct lb_snapshot *prev, const struct lb_vip *pv)
{
	uint16_t *map = owner_map(s, v, prev->n_backends, snapshot_owner, prev);
	struct lb_gen cur = {0};
	int ret = -ENOMEM;

	if (!map)
		return -ENOMEM;
	/* A new hash mode moves flows to other slots as new owners would. */
	if (pv->hash != v->hash ||
	    !same_owners(v, pv->table, pv->table_size, map, prev->n_backends)) {
		ret = gen_of(prev, pv, &cur);
		if (!ret)
			ret = prev_set(v, &cur, pv->table, map, prev->n_backends);
	} else {
		ret = pv->prev_table ? prev_set(v, &pv->prev, pv->prev_table, map, prev->n_backends)
		                     : 0;
	}
	free(cur.backends);
	free(map);
	return ret;
}

/*
 * v's previous generation from a history (no snapshot replaced): the history's previous one if
 * its current one has v's owners, else its current one. A generation that does not build (no
 * backends, two of one address, a weight out of range) or whose table does not come out with
 * the digest it was saved with (another seed or Maglev build) is not used: v->prev_origin says
 * LB_PREV_HISTORY_MISMATCH and the build goes on without.
 */
static int prev_from_history(struct lb_vip *v, const struct lb_snapshot *s, uint64_t seed,
                             const struct snapshot_history_vip *hv)
{
	const struct lb_gen *g = &hv->current;
	uint16_t *table = NULL, *map = NULL;
	uint64_t digest;
	int ret = -ENOMEM;

	for (int round = 0; round < 2; round++) {
		if (!maglev_size_valid(g->table_size)) {
			ret = 0; /* no such generation */
			if (round == 0)
				v->prev_origin = LB_PREV_HISTORY_MISMATCH;
			break;
		}
		free(table);
		free(map);
		table = malloc(g->table_size * sizeof(*table));
		map = owner_map(s, v, g->n_backends, gen_owner, g);
		if (!table || !map)
			goto out;
		ret = gen_build(g, seed, table, &digest);
		if (ret == -ENOMEM)
			goto out;
		if (ret || digest != g->digest) {
			ret = 0; /* not the table it was: none */
			v->prev_origin = LB_PREV_HISTORY_MISMATCH;
			break;
		}
		if (round == 1 || g->hash != v->hash ||
		    !same_owners(v, table, g->table_size, map, g->n_backends)) {
			ret = prev_set(v, g, table, map, g->n_backends);
			if (!ret)
				v->prev_origin = LB_PREV_HISTORY;
			break;
		}
		g = &hv->previous;
	}
out:
	free(table);
	free(map);
	return ret;
}

/* v's previous generation (see snapshot_build); none is not an error. */
static int build_prev(struct lb_snapshot *s, struct lb_vip *v, const struct lb_snapshot *prev,
                      const struct snapshot_state *state, uint64_t seed)
{
	const struct snapshot_history *h = state ? state->history : NULL;

	if (prev) {
		for (uint32_t i = 0; i < prev->n_vips; i++) {
			int ret;

			if (strcmp(prev->vips[i].name, v->name) != 0)
				continue;
			ret = prev_from_snapshot(v, s, prev, &prev->vips[i]);
			if (!ret && v->prev_table)
				v->prev_origin = LB_PREV_SNAPSHOT;
			return ret;
		}
		return 0;
	}
	if (!h || h->hash_seed != seed)
		return 0;
	for (uint32_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].name, v->name) == 0)
			return prev_from_history(v, s, seed, &h->v[i]);
	return 0;
}

/* The outer header template of GRE packets to b (see struct lb_backend). */
static void build_outer(const struct lb_snapshot *s, struct lb_backend *b)
{
	const struct lb_addr *src = b->addr.family == AF_INET ? &s->source_ipv4 : &s->source_ipv6;
	uint8_t *h = b->outer;

	memset(h, 0, sizeof(b->outer));
	b->has_source = src->family == b->addr.family;
	if (b->addr.family == AF_INET) {
		h[8] = s->ttl;
		h[9] = GRE_IPPROTO;
		memcpy(h + 12, src->b, 4);
		memcpy(h + 16, b->addr.b, 4);
		b->outer_sum = csum_add(0, h, PKT_IPV4_HLEN);
	} else {
		h[6] = GRE_IPPROTO;
		h[7] = s->ttl;
		memcpy(h + 8, src->b, 16);
		memcpy(h + 24, b->addr.b, 16);
		b->outer_sum = 0;
	}
}

/* One next hop per distinct backend address; resolved MACs of prev carry over. */
static int build_nexthops(struct lb_snapshot *s, const struct config *cfg,
                          const struct lb_snapshot *prev)
{
	struct pair *pp = calloc(s->n_backends ? s->n_backends : 1, sizeof(*pp));
	struct pair *prevp = NULL;
	struct pairmap pm = {0}, prevm = {0};
	uint32_t n = 0;
	int ret = -ENOMEM;

	s->nexthops = calloc(s->n_backends ? s->n_backends : 1, sizeof(*s->nexthops));
	if (!pp || !s->nexthops)
		goto out;
	if (prev) {
		prevp = calloc(prev->n_nexthops ? prev->n_nexthops : 1, sizeof(*prevp));
		if (!prevp)
			goto out;
		for (uint32_t i = 0; i < prev->n_nexthops; i++)
			prevp[i] = (struct pair){NULL, &prev->nexthops[i].addr, i};
		ret = pairmap_init(&prevm, prevp, prev->n_nexthops);
		if (ret)
			goto out;
	}
	ret = pairmap_alloc(&pm, pp, s->n_backends);
	if (ret)
		goto out;
	for (uint32_t id = 0; id < s->n_backends; id++) {
		struct lb_backend *b = &s->backends[id];
		int64_t nh;

		if (!b->in_use)
			continue;
		nh = pairmap_get(&pm, NULL, &b->addr);
		if (nh < 0) {
			uint64_t mac = 0;

			pp[n] = (struct pair){NULL, &b->addr, n};
			pairmap_put(&pm, n);
			s->nexthops[n].addr = b->addr;
			if (cfg->dataplane.has_nexthop_mac) {
				for (unsigned i = 0; i < 6; i++)
					mac = mac << 8 | cfg->dataplane.nexthop_mac[i];
				mac |= LB_NH_VALID;
			} else if (prev) {
				int64_t p = pairmap_get(&prevm, NULL, &b->addr);

				if (p >= 0)
					mac = atomic_load_explicit(&prev->nexthops[p].mac,
					                           memory_order_relaxed);
			}
			atomic_init(&s->nexthops[n].mac, mac);
			nh = n++;
		}
		b->nexthop = (uint32_t)nh;
	}
	s->n_nexthops = n;
	ret = 0;
out:
	pairmap_free(&pm);
	pairmap_free(&prevm);
	free(pp);
	free(prevp);
	return ret;
}

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t size = 16;

	while (size < n)
		size <<= 1;
	return size;
}

static void vip4_add(struct lb_snapshot *s, uint64_t key, uint32_t value)
{
	uint32_t i = snapshot_vip4_slot(s, key);

	while (s->vip4[i].key)
		i = (i + 1) & s->vip4_mask;
	s->vip4[i].key = key;
	s->vip4[i].vip = value;
}

/* The address and (address, proto, port) hash tables the packet path looks VIPs up in. */
static int build_lookup(struct lb_snapshot *s, char *err, size_t errlen)
{
	uint32_t asize = pow2_at_least(2 * s->n_vips), psize = asize;
	uint32_t vsize =
	    pow2_at_least(4 * s->n_vips); /* a VIP and its address: half full at most */

	s->addrs = calloc(s->n_vips ? s->n_vips : 1, sizeof(*s->addrs));
	s->addr_slots = calloc(asize, sizeof(*s->addr_slots));
	s->port_keys = calloc(psize, sizeof(*s->port_keys));
	s->port_vips = calloc(psize, sizeof(*s->port_vips));
	s->vip4 = calloc(vsize, sizeof(*s->vip4));
	if (!s->addrs || !s->addr_slots || !s->port_keys || !s->port_vips || !s->vip4)
		return -ENOMEM;
	s->addr_mask = asize - 1;
	s->port_mask = psize - 1;
	s->vip4_mask = vsize - 1;
	for (uint32_t v = 0; v < s->n_vips; v++) {
		const struct lb_vip *vip = &s->vips[v];
		int32_t ai = snapshot_addr_find(s, vip->addr.family, vip->addr.b);
		uint64_t key, x;
		uint32_t i;
		unsigned pi = vip->proto == IPPROTO_UDP;

		if (ai < 0) {
			uint64_t lo, hi;

			memcpy(&lo, vip->addr.b, 8);
			memcpy(&hi, vip->addr.b + 8, 8);
			i = (uint32_t)snapshot_addr_mix(lo, hi) & s->addr_mask;
			while (s->addr_slots[i])
				i = (i + 1) & s->addr_mask;
			ai = (int32_t)s->n_addrs++;
			s->addr_slots[i] = (uint32_t)ai + 1;
			s->addrs[ai].addr = vip->addr;
			s->addrs[ai].frag_vip[0] = LB_VIP_NONE;
			s->addrs[ai].frag_vip[1] = LB_VIP_NONE;
		}
		key = LB_PORT_KEY(ai, vip->proto, vip->port);
		if (snapshot_port_find(s, key) >= 0) {
			char a[LB_ADDR_STRLEN];

			set_err(err, errlen,
			        "VIP '%s': another VIP has address %s, protocol %u, port %u",
			        vip->name, lb_addr_str(&vip->addr, a, sizeof(a)), vip->proto,
			        vip->port);
			return -EINVAL;
		}
		x = key * 0x9e3779b97f4a7c15ull;
		i = (uint32_t)(x >> 32) & s->port_mask;
		while (s->port_keys[i])
			i = (i + 1) & s->port_mask;
		s->port_keys[i] = key;
		s->port_vips[i] = (uint16_t)v;
		if (s->addrs[ai].frag_vip[pi] == LB_VIP_NONE || vip->port == 0)
			s->addrs[ai].frag_vip[pi] = (uint16_t)v;
		if (vip->addr.family == AF_INET) {
			uint8_t kb[8] = {0};

			memcpy(kb, vip->addr.b, 4);
			pkt_store16(kb + 6, vip->port);
			key = lb_vip4_key(kb, vip->proto);
			vip4_add(s, key, v);
			if (snapshot_vip4_probe(s, lb_vip4_addr_key(key)) < 0)
				vip4_add(s, lb_vip4_addr_key(key), (uint32_t)ai);
		}
	}
	return 0;
}

/*
 * The largest IP packet to b that fits dataplane.mtu once encapsulated: under a second-chance
 * VIP with room for the shim, whether or not a packet carries it, so that the MTU its flows see
 * does not depend on which maglevd (with or without their entry) forwards them.
 */
static uint32_t snapshot_inner_mtu(const struct lb_snapshot *s, const struct lb_backend *b)
{
	uint32_t over = gre_overhead(b->addr.family);

	if (b->in_use && s->vips[b->vip].second_chance)
		over += gre_sc_overhead(b->addr.family);
	return s->mtu > over ? s->mtu - over : 0;
}

int snapshot_build(const struct config *cfg, const struct lb_snapshot *prev,
                   const struct snapshot_state *state, struct lb_snapshot **out, char *err,
                   size_t errlen)
{
	struct lb_snapshot *s = NULL;
	struct pair *op = NULL;
	struct pairmap om = {0};
	uint16_t *ids = NULL;
	uint32_t total = 0, k = 0;
	int ret;

	if (cfg->n_vips > CONFIG_VIPS_MAX || cfg->n_vips >= LB_VIP_NONE) {
		set_err(err, errlen, "%u VIPs, at most %u", cfg->n_vips, CONFIG_VIPS_MAX);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < cfg->n_vips; i++)
		total += cfg->vips[i].n_backends;
	if (total > LB_BACKEND_IDS_MAX) {
		set_err(err, errlen, "%u backends over all VIPs, at most %u", total,
		        LB_BACKEND_IDS_MAX);
		return -E2BIG;
	}
	s = calloc(1, sizeof(*s));
	ids = malloc((total ? total : 1) * sizeof(*ids));
	if (!s || !ids) {
		ret = -ENOMEM;
		goto out;
	}
	s->generation = prev ? prev->generation + 1 : 1;
	s->hash_seed = cfg->hash_seed;
	lb_flow_secret_make(s->hash_secret, s->hash_seed);
	s->source_ipv4 = cfg->dataplane.source_ipv4;
	s->source_ipv6 = cfg->dataplane.source_ipv6;
	s->ttl = cfg->dataplane.ttl;
	s->mtu = cfg->dataplane.mtu;
	s->icmp_rate = cfg->dataplane.icmp_rate;
	s->vips = calloc(cfg->n_vips ? cfg->n_vips : 1, sizeof(*s->vips));
	if (!s->vips) {
		ret = -ENOMEM;
		goto out;
	}
	if (state && state->n) {
		op = calloc(state->n, sizeof(*op));
		if (!op) {
			ret = -ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < state->n; i++)
			op[i] = (struct pair){state->v[i].vip, &state->v[i].backend, i};
		ret = pairmap_init(&om, op, state->n);
		if (ret)
			goto out;
	}
	ret = assign_ids(s, cfg, prev, ids, err, errlen);
	if (ret)
		goto out;
	s->n_vips = cfg->n_vips;
	for (uint32_t i = 0; i < cfg->n_vips; i++) {
		const struct config_vip *cv = &cfg->vips[i];
		struct lb_vip *v = &s->vips[i];

		snprintf(v->name, sizeof(v->name), "%s", cv->name);
		v->addr = cv->addr;
		v->proto = cv->proto;
		v->port = cv->port;
		v->table_size = cv->table_size ? cv->table_size : cfg->table_size;
		if (!maglev_size_valid(v->table_size)) {
			set_err(err, errlen, "VIP '%s': table size %u is not a prime in [%u, %u]",
			        cv->name, v->table_size, MAGLEV_SIZE_MIN, MAGLEV_SIZE_MAX);
			ret = -EINVAL;
			goto out;
		}
		v->table = malloc(v->table_size * sizeof(*v->table));
		v->backends = calloc(cv->n_backends ? cv->n_backends : 1, sizeof(*v->backends));
		if (!v->table || !v->backends) {
			ret = -ENOMEM;
			goto out;
		}
		v->n_backends = cv->n_backends;
		for (uint32_t j = 0; j < cv->n_backends; j++, k++) {
			const struct config_backend *cb = &cv->backends[j];
			const struct snapshot_override *o =
			    find_override(&om, state, cv->name, &cb->addr);
			struct lb_backend *b = &s->backends[ids[k]];

			v->backends[j] = ids[k];
			b->addr = cb->addr;
			b->weight = cb->weight;
			b->vip = (uint16_t)i;
			b->in_use = true;
			b->up = true;
			if (o && o->weight >= 0)
				b->weight = (uint32_t)o->weight;
			if (o && o->down)
				b->up = false;
		}
		ret = build_table(s, v, cfg->hash_seed, err, errlen);
		if (ret)
			goto out;
		v->second_chance = cv->second_chance;
		v->hash = (uint8_t)cv->hash;
		ret = build_prev(s, v, prev, state, cfg->hash_seed);
		if (ret)
			goto out;
	}
	for (uint32_t id = 0; id < s->n_backends; id++) {
		struct lb_backend *b = &s->backends[id];

		b->accept = b->in_use && b->up ? LB_BACKEND_ACCEPT(b->vip, LB_BREF(id, b->tag))
		                               : LB_ACCEPT_NONE;
		if (b->in_use)
			build_outer(s, b);
		b->inner_mtu = snapshot_inner_mtu(s, b);
	}
	ret = build_nexthops(s, cfg, prev);
	if (ret)
		goto out;
	ret = build_lookup(s, err, errlen);
	if (ret)
		goto out;
	*out = s;
	s = NULL;
out:
	if (ret == -ENOMEM)
		set_err(err, errlen, "out of memory building the snapshot");
	pairmap_free(&om);
	free(op);
	free(ids);
	snapshot_free(s);
	return ret;
}

int32_t snapshot_vip_lookup(const struct lb_snapshot *s, const struct lb_addr *a, uint8_t proto,
                            uint16_t port)
{
	int32_t ai = snapshot_addr_find(s, a->family, a->b);

	return ai < 0 ? -1 : snapshot_vip_find(s, ai, proto, port);
}

uint16_t snapshot_backend_find(const struct lb_snapshot *s, uint32_t vip, const struct lb_addr *a)
{
	const struct lb_vip *v;

	if (vip >= s->n_vips)
		return LB_BACKEND_NONE;
	v = &s->vips[vip];
	for (uint32_t j = 0; j < v->n_backends; j++)
		if (lb_addr_eq(&s->backends[v->backends[j]].addr, a))
			return v->backends[j];
	return LB_BACKEND_NONE;
}
