/* SPDX-License-Identifier: GPL-2.0-only */
/* The xdp mode's maps: sizing, publishing snapshots as generations, counters, lookups. */
#include "io/xdpfwd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "base/util.h"
#include "core/conntrack.h"
#include "core/counters.h"
#include "bpf/xdp_fwd.h"

_Static_assert(sizeof(struct xdp_fwd_key) == sizeof(struct lb_flow_key), "flow key layout");
_Static_assert(XDP_FWD_FLOW_KEY_LEN == LB_FLOW_KEY_LEN, "flow key length");
_Static_assert(XDP_FWD_IDS == LB_BACKEND_IDS_MAX + 1, "backend ids");
_Static_assert(XDP_FWD_ID_NONE == LB_BACKEND_NONE, "no backend");
_Static_assert(XDP_FWD_NH_VALID == LB_NH_VALID, "next-hop encoding");
_Static_assert(XDP_FWD_TICK_SHIFT == CT_TICK_SHIFT, "expiry ticks");
_Static_assert(XDP_FWD_CT_F_FIN == CT_F_FIN && XDP_FWD_CT_F_SYN == CT_F_SYN, "entry flags");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slot arrays are read as u16 arrays");
/* The kernel's connection table is read by core/conntrack.h's code: the same layout. */
_Static_assert(XDP_FWD_CT_WAYS == CT_WAYS && XDP_FWD_CT_OTHER_MIX == CT_OTHER_MIX &&
                   XDP_FWD_CT_AWAY_STICKY == CT_AWAY_STICKY,
               "bucket geometry");
_Static_assert(sizeof(struct xdp_fwd_ct_bucket) == sizeof(struct ct_bucket) &&
                   offsetof(struct xdp_fwd_ct_bucket, expires) ==
                       offsetof(struct ct_bucket, expires) &&
                   offsetof(struct xdp_fwd_ct_bucket, flags) == offsetof(struct ct_bucket, flags) &&
                   offsetof(struct xdp_fwd_ct_bucket, away) == offsetof(struct ct_bucket, away) &&
                   offsetof(struct xdp_fwd_ct_bucket, second) == offsetof(struct ct_bucket, second),
               "bucket header layout");
_Static_assert(sizeof(struct xdp_fwd_ct_entry) == sizeof(struct ct_entry) &&
                   offsetof(struct xdp_fwd_ct_entry, bref) == offsetof(struct ct_entry, bref) &&
                   offsetof(struct xdp_fwd_ct_entry, secondary) ==
                       offsetof(struct ct_entry, secondary),
               "entry layout");

/* The pipeline counter each of the program's own decisions adds to. */
static const uint16_t xdpfwd_ctr_of[] = {
    [XDP_FWD_RX_FRAMES] = LB_CTR_RX_FRAMES,
    [XDP_FWD_CT_HIT] = LB_CTR_CT_HIT,
    [XDP_FWD_CT_MISS] = LB_CTR_CT_MISS,
    [XDP_FWD_CT_RECHOSEN] = LB_CTR_CT_RECHOSEN,
    [XDP_FWD_CT_INSERT_LIMITED] = LB_CTR_CT_INSERT_LIMITED,
    [XDP_FWD_CT_SYN_UNTRACKED] = LB_CTR_CT_SYN_UNTRACKED,
    [XDP_FWD_CT_EVICTED_SYN] = LB_CTR_CT_EVICTED_SYN,
    [XDP_FWD_CT_EVICTED_ESTABLISHED] = LB_CTR_CT_EVICTED_ESTABLISHED,
    [XDP_FWD_TX_GRE_IPV4] = LB_CTR_TX_GRE_IPV4,
    [XDP_FWD_TX_GRE_IPV6] = LB_CTR_TX_GRE_IPV6,
    [XDP_FWD_TX_SECOND_CHANCE] = LB_CTR_TX_SECOND_CHANCE,
    [XDP_FWD_DROP_NO_BACKEND] = LB_CTR_DROP_NO_BACKEND,
};

struct xdpfwd_gen {
	struct xdp_fwd_vip_key *keys; /* what fwd_vips holds of this generation */
	uint32_t n_keys;
	int slots_fd; /* its slot array, -1 before its first publication */
};

struct xdpfwd {
	int gens_fd, vips_fd, backends_fd, slots_fd, stats_fd, bstats_fd;
	int ncpus;
	struct xdp_fwd_config *config; /* mmap of fwd_config */
	_Atomic uint64_t *nexthops;    /* mmap of fwd_nexthops: XDP_FWD_GENS x XDP_FWD_IDS */
	struct ct_bucket *ct_buckets;  /* mmap of fwd_ct_buckets: ncpus parts of ct_n buckets */
	struct ct_entry *ct_entries;   /* mmap of fwd_ct_entries: CT_WAYS a bucket */
	uint32_t ct_n;                 /* buckets a part */
	struct xdpfwd_gen gen[XDP_FWD_GENS];
	uint32_t *bkeys; /* scratch for the backends' batch update: XDP_FWD_IDS keys, values */
	struct xdp_fwd_backend *bvals;
	uint64_t *percpu; /* scratch: ncpus values of the largest per-CPU map value */
};

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

/* Buckets of one CPU's part of the kernel's table: conntrack.entries over the CPUs. */
static uint32_t ct_part_buckets(const struct config_conntrack *ct, int ncpus)
{
	uint32_t n = (ct->entries / (uint32_t)ncpus + CT_WAYS - 1) / CT_WAYS;

	return n > XDPFWD_CT_PART_BUCKETS_MIN ? n : XDPFWD_CT_PART_BUCKETS_MIN;
}

int xdpfwd_size(struct bpf_object *obj, const struct config_conntrack *ct)
{
	struct bpf_map *mb = bpf_object__find_map_by_name(obj, XDP_FWD_MAP_CT_BUCKETS);
	struct bpf_map *me = bpf_object__find_map_by_name(obj, XDP_FWD_MAP_CT_ENTRIES);
	int ncpus = libbpf_num_possible_cpus(), rc;
	uint64_t n;

	if (!mb || !me)
		return -ENOENT;
	if (ncpus <= 0)
		return ncpus < 0 ? ncpus : -EINVAL;
	n = (uint64_t)ct_part_buckets(ct, ncpus) * (uint64_t)ncpus;
	if (n * CT_WAYS > UINT32_MAX)
		return -E2BIG;
	rc = bpf_map__set_max_entries(mb, (uint32_t)n);
	return rc ? rc : bpf_map__set_max_entries(me, (uint32_t)(n * CT_WAYS));
}

/* Bytes of the mmap of a connection-table map of per bytes a bucket. */
static size_t ct_bytes(const struct xdpfwd *f, size_t per)
{
	return page_round((size_t)f->ncpus * f->ct_n * per);
}

static int map_fd(struct bpf_object *obj, const char *name, char *err, size_t errlen)
{
	int fd = bpf_object__find_map_fd_by_name(obj, name);

	if (fd < 0)
		snprintf(err, errlen, "xdp: the BPF object has no map %s", name);
	return fd;
}

int xdpfwd_open(struct xdpfwd **out, struct bpf_object *obj, const struct config_conntrack *ct,
                char *err, size_t errlen)
{
	struct xdpfwd *f = calloc(1, sizeof(*f));
	int config_fd, nh_fd, ctb_fd, cte_fd, rc = -ENOENT;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->config = MAP_FAILED;
	f->nexthops = MAP_FAILED;
	f->ct_buckets = MAP_FAILED;
	f->ct_entries = MAP_FAILED;
	for (unsigned g = 0; g < XDP_FWD_GENS; g++)
		f->gen[g].slots_fd = -1;
	if ((config_fd = map_fd(obj, XDP_FWD_MAP_CONFIG, err, errlen)) < 0 ||
	    (nh_fd = map_fd(obj, XDP_FWD_MAP_NEXTHOPS, err, errlen)) < 0 ||
	    (f->gens_fd = map_fd(obj, XDP_FWD_MAP_GENS, err, errlen)) < 0 ||
	    (f->vips_fd = map_fd(obj, XDP_FWD_MAP_VIPS, err, errlen)) < 0 ||
	    (f->backends_fd = map_fd(obj, XDP_FWD_MAP_BACKENDS, err, errlen)) < 0 ||
	    (f->slots_fd = map_fd(obj, XDP_FWD_MAP_SLOTS, err, errlen)) < 0 ||
	    (ctb_fd = map_fd(obj, XDP_FWD_MAP_CT_BUCKETS, err, errlen)) < 0 ||
	    (cte_fd = map_fd(obj, XDP_FWD_MAP_CT_ENTRIES, err, errlen)) < 0 ||
	    (f->stats_fd = map_fd(obj, XDP_FWD_MAP_STATS, err, errlen)) < 0 ||
	    (f->bstats_fd = map_fd(obj, XDP_FWD_MAP_BSTATS, err, errlen)) < 0)
		goto fail;
	f->ncpus = libbpf_num_possible_cpus();
	f->bkeys = calloc(XDP_FWD_IDS, sizeof(*f->bkeys));
	f->bvals = calloc(XDP_FWD_IDS, sizeof(*f->bvals));
	f->percpu =
	    calloc(f->ncpus > 0 ? (size_t)f->ncpus * XDP_FWD_STAT_MAX : 1, sizeof(*f->percpu));
	rc = -ENOMEM;
	if (f->ncpus <= 0 || !f->bkeys || !f->bvals || !f->percpu) {
		snprintf(err, errlen, "xdp: out of memory");
		goto fail;
	}
	f->config = mmap(NULL, page_round(sizeof(*f->config)), PROT_READ | PROT_WRITE, MAP_SHARED,
	                 config_fd, 0);
	f->nexthops = mmap(NULL, page_round((size_t)XDP_FWD_GENS * XDP_FWD_IDS * sizeof(uint64_t)),
	                   PROT_READ | PROT_WRITE, MAP_SHARED, nh_fd, 0);
	if (f->config == MAP_FAILED || f->nexthops == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "xdp: cannot map %s or %s: %s", XDP_FWD_MAP_CONFIG,
		         XDP_FWD_MAP_NEXTHOPS, strerror(errno));
		goto fail;
	}
	f->ct_n = ct_part_buckets(ct, f->ncpus);
	f->ct_buckets =
	    mmap(NULL, ct_bytes(f, sizeof(struct ct_bucket)), PROT_READ, MAP_SHARED, ctb_fd, 0);
	f->ct_entries = mmap(NULL, ct_bytes(f, CT_WAYS * sizeof(struct ct_entry)), PROT_READ,
	                     MAP_SHARED, cte_fd, 0);
	if (f->ct_buckets == MAP_FAILED || f->ct_entries == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "xdp: cannot map the connection table (%s, %s): %s",
		         XDP_FWD_MAP_CT_BUCKETS, XDP_FWD_MAP_CT_ENTRIES, strerror(errno));
		goto fail;
	}
	f->config->to_tcp = ct_secs_to_ticks(ct->tcp_timeout);
	f->config->to_tcp_fin = ct_secs_to_ticks(ct->tcp_fin_timeout);
	f->config->to_tcp_syn = ct_secs_to_ticks(ct->tcp_syn_timeout);
	f->config->to_udp = ct_secs_to_ticks(ct->udp_timeout);
	f->config->max_inserts = ct->max_inserts_per_second;
	f->config->window_ticks = ct_secs_to_ticks(1);
	f->config->ct_cpus = (uint32_t)f->ncpus;
	/* Last: until it is set, the program forwards nothing itself (it has no table). */
	__atomic_store_n(&f->config->ct_buckets, f->ct_n, __ATOMIC_RELEASE);
	*out = f;
	return 0;
fail:
	xdpfwd_close(f);
	return rc;
}

void xdpfwd_close(struct xdpfwd *f)
{
	if (!f)
		return;
	if (f->config != MAP_FAILED)
		munmap(f->config, page_round(sizeof(*f->config)));
	if (f->nexthops != MAP_FAILED)
		munmap((void *)f->nexthops,
		       page_round((size_t)XDP_FWD_GENS * XDP_FWD_IDS * sizeof(uint64_t)));
	if (f->ct_buckets != MAP_FAILED)
		munmap(f->ct_buckets, ct_bytes(f, sizeof(struct ct_bucket)));
	if (f->ct_entries != MAP_FAILED)
		munmap(f->ct_entries, ct_bytes(f, CT_WAYS * sizeof(struct ct_entry)));
	for (unsigned g = 0; g < XDP_FWD_GENS; g++) {
		free(f->gen[g].keys);
		if (f->gen[g].slots_fd >= 0)
			close(f->gen[g].slots_fd);
	}
	free(f->bkeys);
	free(f->bvals);
	free(f->percpu);
	free(f);
}

/* The generation packets read, and the one a publication writes. */
static uint32_t gen_current(const struct xdpfwd *f)
{
	return __atomic_load_n(&f->config->gen, __ATOMIC_ACQUIRE) & 1;
}

_Atomic uint64_t *xdpfwd_next_nexthops(struct xdpfwd *f)
{
	return f->nexthops + (size_t)(gen_current(f) ^ 1) * XDP_FWD_IDS;
}

static uint8_t family_of(const struct lb_addr *a)
{
	return a->family == AF_INET ? XDP_FAMILY_IPV4 : XDP_FAMILY_IPV6;
}

/* Writes s's VIPs as generation g's fwd_vips entries, the old ones of g gone first. */
static int publish_vips(struct xdpfwd *f, const struct lb_snapshot *s, uint32_t g,
                        const uint32_t *offs, char *err, size_t errlen)
{
	struct xdpfwd_gen *gen = &f->gen[g];
	struct xdp_fwd_vip_key *keys = calloc(s->n_vips ? s->n_vips : 1, sizeof(*keys));

	if (!keys)
		return -ENOMEM;
	for (uint32_t i = 0; i < gen->n_keys; i++)
		bpf_map_delete_elem(f->vips_fd, &gen->keys[i]);
	free(gen->keys);
	gen->keys = keys;
	gen->n_keys = 0;
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];
		struct xdp_fwd_vip_key *k = &keys[gen->n_keys];
		struct xdp_fwd_vip val = {
		    .table_off = offs[2 * i],
		    .table_size = v->table_size,
		    .prev_off = offs[2 * i + 1],
		    .prev_size = v->prev_table ? v->prev.table_size : 0,
		    .index = (uint16_t)i,
		    .flags = (v->second_chance ? XDP_FWD_VIP_SECOND_CHANCE : 0) |
		             (v->hash == VIP_HASH_SOURCE ? XDP_FWD_VIP_HASH_SOURCE : 0) |
		             (v->prev.hash == VIP_HASH_SOURCE ? XDP_FWD_VIP_PREV_HASH_SOURCE : 0),
		};

		memset(k, 0, sizeof(*k));
		memcpy(k->addr, v->addr.b, lb_addr_len(&v->addr));
		k->family = family_of(&v->addr);
		k->proto = v->proto;
		k->port = htons(v->port);
		k->gen = g;
		if (bpf_map_update_elem(f->vips_fd, k, &val, BPF_ANY)) {
			snprintf(err, errlen, "xdp: cannot add VIP %s to %s: %s", v->name,
			         XDP_FWD_MAP_VIPS, strerror(errno));
			return -errno;
		}
		gen->n_keys++;
	}
	return 0;
}

/*
 * A new slot array with every VIP's table and previous table of s; offs[2i], offs[2i + 1]: where
 * VIP i's are. Returns its fd or a negative errno.
 */
static int publish_slots(const struct lb_snapshot *s, uint32_t *offs, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = XDP_FWD_SLOTS_FLAGS);
	uint64_t total = 0;
	uint32_t elems;
	size_t bytes;
	uint16_t *m;
	int fd;

	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];

		offs[2 * i] = (uint32_t)total;
		total += v->table_size;
		offs[2 * i + 1] = (uint32_t)total;
		total += v->prev_table ? v->prev.table_size : 0;
	}
	if (total > XDP_FWD_SLOTS_MAX) {
		snprintf(err, errlen, "xdp: %llu table slots in all, more than %u",
		         (unsigned long long)total, XDP_FWD_SLOTS_MAX);
		return -E2BIG;
	}
	elems = (uint32_t)((total + XDP_FWD_SLOTS_PER_ELEM - 1) / XDP_FWD_SLOTS_PER_ELEM);
	if (!elems)
		elems = 1;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fwd_slots_gen", sizeof(uint32_t), sizeof(uint64_t),
	                    elems, &opts);
	if (fd < 0) {
		snprintf(err, errlen, "xdp: cannot create a slot array of %u elements: %s", elems,
		         strerror(errno));
		return -errno;
	}
	bytes = page_round((size_t)elems * sizeof(uint64_t));
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int rc = -errno;

		snprintf(err, errlen, "xdp: cannot map the slot array: %s", strerror(errno));
		close(fd);
		return rc;
	}
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];

		memcpy(m + offs[2 * i], v->table, (size_t)v->table_size * sizeof(*v->table));
		if (v->prev_table)
			memcpy(m + offs[2 * i + 1], v->prev_table,
			       (size_t)v->prev.table_size * sizeof(*v->prev_table));
	}
	munmap(m, bytes);
	return fd;
}

/* Writes s's backends as generation g's, in one batch. */
static int publish_backends(struct xdpfwd *f, const struct lb_snapshot *s, uint32_t g, char *err,
                            size_t errlen)
{
	uint32_t n = s->n_backends;
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);

	for (uint32_t id = 0; id < n; id++) {
		const struct lb_backend *b = &s->backends[id];
		struct xdp_fwd_backend *v = &f->bvals[id];

		memset(v, 0, sizeof(*v));
		f->bkeys[id] = g * XDP_FWD_IDS + id;
		v->accept = b->accept;
		if (!b->in_use)
			continue;
		v->inner_mtu = b->inner_mtu;
		v->nexthop = b->nexthop;
		v->outer_sum = b->outer_sum;
		v->tag = b->tag;
		v->family = family_of(&b->addr);
		v->up = b->up;
		v->has_source = b->has_source;
		memcpy(v->addr, b->addr.b, lb_addr_len(&b->addr));
		memcpy(v->outer, b->outer, sizeof(v->outer));
	}
	if (n && bpf_map_update_batch(f->backends_fd, f->bkeys, f->bvals, &n, &opts)) {
		snprintf(err, errlen, "xdp: cannot write %u backends to %s: %s", s->n_backends,
		         XDP_FWD_MAP_BACKENDS, strerror(errno));
		return -errno;
	}
	return 0;
}

int xdpfwd_publish(struct xdpfwd *f, const struct lb_snapshot *s, char *err, size_t errlen)
{
	uint32_t g = gen_current(f) ^ 1, *offs = calloc(2 * (size_t)s->n_vips + 1, sizeof(*offs));
	_Atomic uint64_t *nh = f->nexthops + (size_t)g * XDP_FWD_IDS;
	struct xdp_fwd_gen gv = {.n_backends = s->n_backends};
	int fd = -1, rc = -ENOMEM;

	if (!offs)
		goto out;
	if (s->n_nexthops > XDP_FWD_IDS) {
		snprintf(err, errlen, "xdp: %u next hops, more than %u", s->n_nexthops,
		         XDP_FWD_IDS);
		rc = -E2BIG;
		goto out;
	}
	fd = publish_slots(s, offs, err, errlen);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = publish_vips(f, s, g, offs, err, errlen);
	if (!rc)
		rc = publish_backends(f, s, g, err, errlen);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < s->n_nexthops; i++)
		atomic_store_explicit(
		    &nh[i], atomic_load_explicit(&s->nexthops[i].mac, memory_order_relaxed),
		    memory_order_relaxed);
	memcpy(gv.secret, s->hash_secret, sizeof(gv.secret));
	if (bpf_map_update_elem(f->gens_fd, &g, &gv, BPF_ANY) ||
	    bpf_map_update_elem(f->slots_fd, &g, &fd, BPF_ANY)) {
		rc = -errno;
		snprintf(err, errlen, "xdp: cannot write generation %u: %s", g, strerror(errno));
		goto out;
	}
	if (f->gen[g].slots_fd >= 0)
		close(f->gen[g].slots_fd);
	f->gen[g].slots_fd = fd;
	fd = -1;
	__atomic_store_n(&f->config->gen, g, __ATOMIC_RELEASE);
	/*
	 * An update of an array of maps returns after an RCU grace period (the kernel's
	 * maybe_wait_bpf_programs), and XDP programs run inside RCU read-side sections: once it
	 * returns, no packet still reads the generation switched away from, which the next
	 * publication then rewrites. Putting the same slot array back is such an update.
	 */
	if (bpf_map_update_elem(f->slots_fd, &g, &f->gen[g].slots_fd, BPF_ANY)) {
		rc = -errno;
		snprintf(err, errlen, "xdp: cannot wait for packets to leave generation %u: %s",
		         g ^ 1, strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	free(offs);
	return rc;
}

/* Sums per-CPU map fd's value at key (values of n words) into out[0..n). */
static void percpu_sum(struct xdpfwd *f, int fd, uint32_t key, unsigned n, uint64_t *out)
{
	if (bpf_map_lookup_elem(fd, &key, f->percpu))
		return;
	for (int c = 0; c < f->ncpus; c++)
		for (unsigned i = 0; i < n; i++)
			out[i] += f->percpu[(size_t)c * n + i];
}

/* fwd_stats summed over the CPUs. */
static void stats_sum(struct xdpfwd *f, uint64_t *v)
{
	memset(v, 0, XDP_FWD_STAT_MAX * sizeof(*v));
	percpu_sum(f, f->stats_fd, 0, XDP_FWD_STAT_MAX, v);
}

void xdpfwd_counters(struct xdpfwd *f, uint64_t *ctr)
{
	uint64_t v[XDP_FWD_STAT_MAX];

	stats_sum(f, v);
	for (uint32_t k = 0; k < ARRAY_SIZE(xdpfwd_ctr_of); k++)
		ctr[xdpfwd_ctr_of[k]] += v[k];
	if (v[XDP_FWD_CT_EVICTED_SYN] || v[XDP_FWD_CT_EVICTED_ESTABLISHED])
		ctr[LB_CTR_CT_EVICTED] +=
		    v[XDP_FWD_CT_EVICTED_SYN] + v[XDP_FWD_CT_EVICTED_ESTABLISHED];
}

void xdpfwd_slow_counters(struct xdpfwd *f, struct xdpfwd_slow *out)
{
	uint64_t v[XDP_FWD_STAT_MAX];

	stats_sum(f, v);
	*out = (struct xdpfwd_slow){
	    .source = v[XDP_FWD_SLOW_SOURCE],
	    .nexthop = v[XDP_FWD_SLOW_NEXTHOP],
	    .too_big = v[XDP_FWD_SLOW_TOO_BIG],
	    .headroom = v[XDP_FWD_SLOW_HEADROOM],
	    .ct_other_cpu = v[XDP_FWD_CT_OTHER_CPU],
	    .ct_search_limited = v[XDP_FWD_CT_SEARCH_LIMITED],
	};
}

void xdpfwd_backend_counters(struct xdpfwd *f, uint16_t id, struct lb_backend_counters *out)
{
	uint64_t v[3] = {0};

	percpu_sum(f, f->bstats_fd, id, 3, v);
	out->packets += v[0];
	out->bytes += v[1];
	out->flows += v[2];
}

bool xdpfwd_ct_peek(struct xdpfwd *f, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
                    uint32_t *secondary, uint32_t *expires, uint8_t *flags)
{
	bool found = false;

	for (size_t c = 0; c < (size_t)f->ncpus; c++) {
		const struct ct_table part = {
		    .buckets = f->ct_buckets + c * f->ct_n,
		    .entries = f->ct_entries + c * f->ct_n * CT_WAYS,
		    .n_buckets = f->ct_n,
		};
		uint32_t b, sref, e;
		uint8_t fl;

		if (!ct_peek(&part, k, hash, &b, &sref, &e, &fl) ||
		    (found && (int32_t)(e - *expires) <= 0))
			continue;
		found = true;
		*bref = b;
		if (secondary)
			*secondary = sref;
		*expires = e;
		*flags = fl;
	}
	return found;
}
