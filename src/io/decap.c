/* SPDX-License-Identifier: GPL-2.0-only */
/* Backend-side GRE decapsulation: xdp_decap attached, detached and read through src/io/xdp.c. */
#include "io/decap.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define DECAP_ERR_MAX 256u /* bytes of one libxdp error string */

/* clang-format off */
const char *const decap_counter_name[DECAP_CTR_MAX] = {
#define DECAP_COUNTER_NAME(id, name, help) [DECAP_CTR_##id] = name,
	DECAP_COUNTERS(DECAP_COUNTER_NAME)
#undef DECAP_COUNTER_NAME
};
/* clang-format on */

/* Ours is the program called xdp_decap, whatever its maps (it has no namesake to tell apart). */
static const struct xprog_match decap_match = {.name = DECAP_PROG_NAME};

static void decap_key_from_addr(const struct lb_addr *a, struct decap_vip_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = a->family == AF_INET ? DECAP_FAMILY_IPV4 : DECAP_FAMILY_IPV6;
	memcpy(k->addr, a->b, lb_addr_len(a));
}

static void decap_addr_from_key(const struct decap_vip_key *k, struct lb_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = k->family == DECAP_FAMILY_IPV4 ? AF_INET : AF_INET6;
	memcpy(a->b, k->addr, lb_addr_len(a));
}

/*
 * Makes the VIP map hold exactly vips[0..n): adds the new ones first, then deletes the others,
 * so a VIP present before and after is never missing in between.
 */
static int decap_vips_set(int map_fd, const struct lb_addr *vips, size_t n, char *err,
                          size_t errlen)
{
	struct decap_vip_key k, next, stale[DECAP_VIPS_MAX];
	size_t i, j, n_stale = 0;
	__u32 one = 1;
	void *prev = NULL;
	bool keep;

	for (i = 0; i < n; i++) {
		decap_key_from_addr(&vips[i], &k);
		if (bpf_map_update_elem(map_fd, &k, &one, BPF_ANY)) {
			char buf[LB_ADDR_STRLEN];
			int e = errno;

			snprintf(err, errlen, "adding VIP %s to the map: %s",
			         lb_addr_str(&vips[i], buf, sizeof(buf)), strerror(e));
			return -e;
		}
	}
	while (n_stale < DECAP_VIPS_MAX && bpf_map_get_next_key(map_fd, prev, &next) == 0) {
		keep = false;
		for (j = 0; j < n && !keep; j++) {
			decap_key_from_addr(&vips[j], &k);
			keep = memcmp(&k, &next, sizeof(k)) == 0;
		}
		if (!keep)
			stale[n_stale++] = next;
		k = next;
		prev = &k;
	}
	for (i = 0; i < n_stale; i++)
		bpf_map_delete_elem(map_fd, &stale[i]);
	return 0;
}

/*
 * xprog_find of xdp_decap on the interface named dev: its index in *ifindex, the same result as
 * xprog_find (f to be closed whatever it is), and one line in err on failure.
 */
static int decap_find_dev(const char *dev, int *ifindex, struct xprog_found *f, char *err,
                          size_t errlen)
{
	char ebuf[DECAP_ERR_MAX];
	int r;

	memset(f, 0, sizeof(*f));
	*ifindex = (int)if_nametoindex(dev);
	if (*ifindex == 0) {
		snprintf(err, errlen, "no such device '%s'", dev);
		return -ENODEV;
	}
	r = xprog_find(*ifindex, &decap_match, f);
	if (r < 0) {
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "%s: reading its XDP programs: %s", dev, ebuf);
	}
	return r;
}

int decap_attach(const char *dev, const char *obj_path, enum xprog_mode mode,
                 const struct lb_addr *vips, size_t n, const char **mode_name, bool *replaced,
                 char *err, size_t errlen)
{
	struct xprog_found found;
	struct xprog x = {0};
	int ifindex, map_fd, r;

	*replaced = false;
	*mode_name = "none";
	if (n > DECAP_VIPS_MAX) {
		snprintf(err, errlen, "%zu VIPs, at most %u fit the map", n, DECAP_VIPS_MAX);
		return -E2BIG;
	}
	r = decap_find_dev(dev, &ifindex, &found, err, errlen);
	if (r < 0)
		goto out;
	if (r == 1) {
		*replaced = true;
		*mode_name = xprog_found_mode(&found);
		map_fd = xprog_map_fd(found.prog, DECAP_MAP_VIPS);
		if (map_fd < 0) {
			r = map_fd;
			snprintf(err, errlen,
			         "%s: xdp_decap is attached but its map %s is unreachable: %s", dev,
			         DECAP_MAP_VIPS, strerror(-r));
			goto out;
		}
		r = decap_vips_set(map_fd, vips, n, err, errlen);
		close(map_fd);
		goto out;
	}
	if (found.other[0]) {
		snprintf(err, errlen, "%s already has XDP program '%s'; detach it first", dev,
		         found.other);
		r = -EBUSY;
		goto out;
	}
	xprog_found_close(&found);
	r = xprog_attach(&x, obj_path, DECAP_SEC, ifindex, mode, NULL, err, errlen);
	if (r)
		goto out;
	/*
	 * The map is filled right after the attach (libxdp loads and attaches in one call): for
	 * that moment GRE for the VIPs passes to the kernel untouched, as before the attach.
	 */
	*mode_name = xprog_mode_name(x.mode);
	map_fd = xprog_obj_map_fd(&x, DECAP_MAP_VIPS); /* owned by the object */
	if (map_fd < 0) {
		r = -ENOENT;
		snprintf(err, errlen, "%s has no map %s", obj_path, DECAP_MAP_VIPS);
		goto out;
	}
	r = decap_vips_set(map_fd, vips, n, err, errlen);
out:
	if (r && x.prog)
		xprog_detach(&x);
	xprog_close(&x); /* attached: it stays */
	xprog_found_close(&found);
	return r;
}

int decap_detach(const char *dev, char *err, size_t errlen)
{
	struct xprog_found found;
	char ebuf[DECAP_ERR_MAX];
	int ifindex, r;

	r = decap_find_dev(dev, &ifindex, &found, err, errlen);
	if (r < 0)
		goto out;
	if (r == 0) {
		snprintf(err, errlen, "%s: xdp_decap is not attached", dev);
		r = -ENOENT;
		goto out;
	}
	r = xprog_found_detach(&found, ifindex);
	if (r) {
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "%s: detaching xdp_decap: %s", dev, ebuf);
	}
out:
	xprog_found_close(&found);
	return r;
}

/* xprog_map_fd of the xdp_decap found on dev, with one line in err if it fails. */
static int decap_status_map(const struct xprog_found *f, const char *dev, const char *name,
                            char *err, size_t errlen)
{
	int fd = xprog_map_fd(f->prog, name);

	if (fd < 0)
		snprintf(err, errlen, "%s: map %s unreachable: %s", dev, name, strerror(-fd));
	return fd;
}

int decap_status_read(const char *dev, struct decap_status *st, char *err, size_t errlen)
{
	struct xprog_found found;
	struct decap_vip_key k, kprev;
	int ifindex, ncpu, map_fd = -1, r;
	__u64 *vals = NULL;
	void *prev = NULL;
	__u32 i;

	memset(st, 0, sizeof(*st));
	st->mode = "none";
	r = decap_find_dev(dev, &ifindex, &found, err, errlen);
	if (r <= 0)
		goto out;
	st->attached = true;
	st->prog_id = xdp_program__id(found.prog);
	st->mode = xprog_found_mode(&found);

	map_fd = r = decap_status_map(&found, dev, DECAP_MAP_VIPS, err, errlen);
	if (r < 0)
		goto out;
	while (st->n_vips < DECAP_VIPS_MAX && bpf_map_get_next_key(map_fd, prev, &k) == 0) {
		decap_addr_from_key(&k, &st->vips[st->n_vips++]);
		kprev = k;
		prev = &kprev;
	}
	close(map_fd);

	map_fd = r = decap_status_map(&found, dev, DECAP_MAP_COUNTERS, err, errlen);
	if (r < 0)
		goto out;
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0) {
		r = ncpu < 0 ? ncpu : -EINVAL;
		snprintf(err, errlen, "counting possible CPUs: %s", strerror(-r));
		goto out;
	}
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < DECAP_CTR_MAX; i++) {
		if (bpf_map_lookup_elem(map_fd, &i, vals)) {
			r = -errno;
			snprintf(err, errlen, "%s: reading counter %s: %s", dev,
			         decap_counter_name[i], strerror(-r));
			goto out;
		}
		for (int c = 0; c < ncpu; c++)
			st->counters[i] += vals[c];
	}
	r = 0;
out:
	free(vals);
	if (map_fd >= 0)
		close(map_fd);
	xprog_found_close(&found);
	return r;
}
