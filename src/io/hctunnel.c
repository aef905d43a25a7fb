/* SPDX-License-Identifier: GPL-2.0-only */
/* The health probes' tunnel: hc_tunnel.bpf.o as a tc egress filter, and its slots. */
#include "io/hctunnel.h"

#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "base/log.h"
#include "io/bpfobj.h"
#include "io/xdp.h"

/* clang-format off */
const char *const hct_counter_name[HCT_CTR_MAX] = {
#define HCT_COUNTER_NAME(id, name, help) [HCT_CTR_##id] = name,
	HCT_COUNTERS(HCT_COUNTER_NAME)
#undef HCT_COUNTER_NAME
};
const char *const hct_counter_help[HCT_CTR_MAX] = {
#define HCT_COUNTER_HELP(id, name, help) [HCT_CTR_##id] = help,
	HCT_COUNTERS(HCT_COUNTER_HELP)
#undef HCT_COUNTER_HELP
};
/* clang-format on */

struct hct {
	struct bpf_object *obj;
	int prog_fd;
	int dests_fd;
	int counters_fd;
	int ifindex;
	uint8_t mac[ETH_ALEN];
	char ifname[IF_NAMESIZE];
	bool attached;
	bool made_qdisc; /* hct_open created the clsact qdisc */
};

static void hct_hook(struct bpf_tc_hook *h, int ifindex, enum bpf_tc_attach_point at)
{
	memset(h, 0, sizeof(*h));
	h->sz = sizeof(*h);
	h->ifindex = ifindex;
	h->attach_point = at;
}

static void hct_opts(struct bpf_tc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->handle = HCT_TC_HANDLE;
	o->priority = HCT_TC_PRIORITY;
}

/* The MAC of ifname into mac. 0 or a negative errno. */
static int hct_read_mac(const char *ifname, uint8_t *mac)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		ret = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(fd);
	return ret;
}

/*
 * What sits at our handle and priority on the egress hook: 0 nothing, 1 a program called
 * HCT_PROG_NAME (ours, from an earlier maglevd), -EBUSY another one (its name in other).
 */
static int hct_existing(const struct bpf_tc_hook *h, char *other, size_t len)
{
	struct bpf_prog_info info = {0};
	uint32_t ilen = sizeof(info);
	struct bpf_tc_opts o;
	int fd, r;

	hct_opts(&o);
	if (bpf_tc_query(h, &o) < 0)
		return 0;
	fd = bpf_prog_get_fd_by_id(o.prog_id);
	if (fd < 0) {
		snprintf(other, len, "program id %u", o.prog_id);
		return -EBUSY;
	}
	r = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	close(fd);
	if (r == 0 && strcmp(info.name, HCT_PROG_NAME) == 0)
		return 1;
	snprintf(other, len, "'%s'", r == 0 ? info.name : "?");
	return -EBUSY;
}

static int hct_load(struct hct *t, char *err, size_t errlen)
{
	char path[4096];
	struct bpf_program *p;
	int r;

	r = bpfobj_path(HCT_OBJ_FILE, path, sizeof(path));
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	t->obj = bpf_object__open_file(path, NULL);
	if (!t->obj) {
		r = -errno;
		t->obj = NULL;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	r = bpf_object__load(t->obj);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot load: %s", path, strerror(-r));
		xprog_log_dump(LOG_LEVEL_WARN);
		return r;
	}
	p = bpf_object__find_program_by_name(t->obj, HCT_PROG_NAME);
	t->prog_fd = p ? bpf_program__fd(p) : -ENOENT;
	t->dests_fd = bpf_object__find_map_fd_by_name(t->obj, HCT_MAP_DESTS);
	t->counters_fd = bpf_object__find_map_fd_by_name(t->obj, HCT_MAP_COUNTERS);
	if (t->prog_fd < 0 || t->dests_fd < 0 || t->counters_fd < 0) {
		snprintf(err, errlen, "%s: no program %s or maps %s, %s", path, HCT_PROG_NAME,
		         HCT_MAP_DESTS, HCT_MAP_COUNTERS);
		return -ENOENT;
	}
	return 0;
}

static int hct_attach(struct hct *t, char *err, size_t errlen)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts o;
	char other[64];
	int r;

	hct_hook(&h, t->ifindex, BPF_TC_EGRESS);
	r = bpf_tc_hook_create(&h);
	if (r == 0)
		t->made_qdisc = true;
	else if (r != -EEXIST) {
		snprintf(err, errlen, "%s: cannot add the clsact qdisc: %s", t->ifname,
		         strerror(-r));
		return r;
	}
	r = hct_existing(&h, other, sizeof(other));
	if (r < 0) {
		snprintf(err, errlen,
		         "%s: tc egress filter handle 0x%x priority 0x%x is taken by %s, not %s",
		         t->ifname, HCT_TC_HANDLE, HCT_TC_PRIORITY, other, HCT_PROG_NAME);
		return r;
	}
	if (r == 1) {
		hct_opts(&o);
		r = bpf_tc_detach(&h, &o);
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot remove a stale %s filter: %s", t->ifname,
			         HCT_PROG_NAME, strerror(-r));
			return r;
		}
		log_info("health: removed a stale %s tc filter from %s (a maglevd that did not "
		         "stop cleanly)",
		         HCT_PROG_NAME, t->ifname);
	}
	hct_opts(&o);
	o.prog_fd = t->prog_fd;
	r = bpf_tc_attach(&h, &o);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot attach the tc egress filter: %s", t->ifname,
		         strerror(-r));
		return r;
	}
	t->attached = true;
	return 0;
}

int hct_open(struct hct **out, const char *ifname, char *err, size_t errlen)
{
	struct hct *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->prog_fd = t->dests_fd = t->counters_fd = -1;
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
	t->ifindex = (int)if_nametoindex(ifname);
	if (!t->ifindex) {
		r = -errno;
		snprintf(err, errlen, "no such interface '%s'", ifname);
		goto out;
	}
	r = hct_read_mac(ifname, t->mac);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read its MAC: %s", ifname, strerror(-r));
		goto out;
	}
	xprog_lib_enter();
	r = hct_load(t, err, errlen);
	if (r == 0)
		r = hct_attach(t, err, errlen);
	xprog_lib_leave();
	if (r < 0)
		goto out;
	*out = t;
	return 0;
out:
	hct_close(t);
	return r;
}

int hct_ifindex(const struct hct *t)
{
	return t->ifindex;
}

const uint8_t *hct_mac(const struct hct *t)
{
	return t->mac;
}

int hct_set(struct hct *t, uint32_t slot, const struct lb_addr *src, const struct lb_addr *dst,
            uint8_t ttl, const uint8_t *nh_mac)
{
	struct hct_dest d = {0};

	if (slot >= HCT_SLOTS || src->family != dst->family)
		return -EINVAL;
	d.family = dst->family == AF_INET ? HCT_FAMILY_IPV4 : HCT_FAMILY_IPV6;
	d.ttl = ttl;
	memcpy(d.dst_mac, nh_mac, ETH_ALEN);
	memcpy(d.src_mac, t->mac, ETH_ALEN);
	d.ifindex = (uint32_t)t->ifindex;
	memcpy(d.src, src->b, lb_addr_len(src));
	memcpy(d.dst, dst->b, lb_addr_len(dst));
	return bpf_map_update_elem(t->dests_fd, &slot, &d, BPF_ANY) < 0 ? -errno : 0;
}

int hct_clear(struct hct *t, uint32_t slot)
{
	struct hct_dest d = {0};

	if (slot >= HCT_SLOTS)
		return -EINVAL;
	return bpf_map_update_elem(t->dests_fd, &slot, &d, BPF_ANY) < 0 ? -errno : 0;
}

uint64_t hct_counter(const struct hct *t, enum hct_counter k)
{
	int ncpu = libbpf_num_possible_cpus();
	uint32_t key = (uint32_t)k;
	uint64_t *v, sum = 0;

	if (ncpu <= 0 || !(v = calloc((size_t)ncpu, sizeof(*v))))
		return 0;
	if (bpf_map_lookup_elem(t->counters_fd, &key, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

void hct_close(struct hct *t)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts o;
	int r;

	if (!t)
		return;
	xprog_lib_enter();
	if (t->attached) {
		hct_hook(&h, t->ifindex, BPF_TC_EGRESS);
		hct_opts(&o);
		r = bpf_tc_detach(&h, &o);
		if (r < 0)
			log_warn("health: %s: cannot detach the %s tc filter: %s", t->ifname,
			         HCT_PROG_NAME, strerror(-r));
	}
	if (t->made_qdisc) {
		/* Both attach points: libbpf then deletes the qdisc, not only egress' filters. */
		hct_hook(&h, t->ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS);
		bpf_tc_hook_destroy(&h);
	}
	xprog_lib_leave();
	bpf_object__close(t->obj);
	free(t);
}
