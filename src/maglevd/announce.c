/* SPDX-License-Identifier: GPL-2.0-only */
/* VIP routes in a kernel table over rtnetlink (libmnl), through a TUN device that dies with us. */
#include "maglevd/announce.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "base/log.h"
#include "base/util.h"
#include "io/netlink.h"

#define AN_TUN_PATH     "/dev/net/tun"
#define AN_GROW_INITIAL 16u /* entries of a route list's first allocation */
#define AN_PLEN4        32u /* bits of an IPv4 host route */
#define AN_PLEN6        128u
#define AN_TABLE_BYTE   256u                  /* tables below this also fit rtm_table, a byte */
#define AN_ERR_MAX      256u                  /* bytes of an error line */
#define AN_ROUTE_STRLEN (LB_ADDR_STRLEN + 5u) /* an address, "/128" and the NUL */

COUNTER_LIST_DEFINE(announce_counter, ANNOUNCE_COUNTERS, ANNOUNCE_CTR_MAX);

/* A route of ours found in the table. */
struct an_route {
	struct lb_addr dst;
	uint8_t plen;
	int oif;
};

struct an_list {
	struct an_route *v;
	uint32_t n, cap;
};

struct announce {
	struct config_announce cfg;
	struct mnl_socket *nl;
	uint32_t seq;
	int tun_fd; /* holds the TUN device: closing it (or dying) deletes it and its routes */
	int ifindex;
	struct lb_addr *live; /* our routes in the table after the last sync */
	uint32_t n_live, cap_live;
	uint64_t ctr[ANNOUNCE_CTR_MAX];
};

static uint8_t an_plen(const struct lb_addr *a)
{
	return a->family == AF_INET ? AN_PLEN4 : AN_PLEN6;
}

static const char *an_str(const struct lb_addr *a, char *buf, size_t len)
{
	char s[LB_ADDR_STRLEN];

	snprintf(buf, len, "%s/%u", lb_addr_str(a, s, sizeof(s)), an_plen(a));
	return buf;
}

/* The fixed part of a route request for a's table and protocol. */
static struct rtmsg *an_route_msg(struct announce *a, struct nlmsghdr *nlh, uint16_t type,
                                  uint16_t flags, const struct lb_addr *dst, uint8_t plen)
{
	struct rtmsg *rtm;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)dst->family;
	rtm->rtm_dst_len = plen;
	/* Tables above 255 only fit RTA_TABLE; the kernel prefers RTA_TABLE when both are there. */
	rtm->rtm_table = a->cfg.table < AN_TABLE_BYTE ? (uint8_t)a->cfg.table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = a->cfg.protocol;
	mnl_attr_put_u32(nlh, RTA_TABLE, a->cfg.table);
	mnl_attr_put(nlh, RTA_DST, lb_addr_len(dst), dst->b);
	return rtm;
}

static int an_route_add(struct announce *a, const struct lb_addr *dst)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm =
	    an_route_msg(a, nlh, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, dst, an_plen(dst));

	rtm->rtm_scope = RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)a->ifindex);
	return nl_request(a->nl, &a->seq, nlh, NULL, NULL);
}

static int an_route_del(struct announce *a, const struct an_route *r)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm = an_route_msg(a, nlh, RTM_DELROUTE, 0, &r->dst, r->plen);

	/* NOWHERE and UNSPEC match a route of any scope and type (IPv4's fib_table_delete). */
	rtm->rtm_scope = RT_SCOPE_NOWHERE;
	rtm->rtm_type = RTN_UNSPEC;
	return nl_request(a->nl, &a->seq, nlh, NULL, NULL);
}

struct an_dump {
	struct announce *a;
	struct an_list *out;
	int err;
};

/* Keeps the routes of our table and protocol from a dump. */
static int an_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct an_dump *d = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	struct an_route r = {0};
	uint32_t table;
	size_t want;

	if (nlh->nlmsg_type != RTM_NEWROUTE || !nl_payload_has(nlh, sizeof(*rtm)) ||
	    rtm->rtm_protocol != d->a->cfg.protocol)
		return MNL_CB_OK;
	r.dst.family = rtm->rtm_family;
	r.plen = rtm->rtm_dst_len;
	table = rtm->rtm_table;
	want = rtm->rtm_family == AF_INET ? 4u : 16u;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm))
	{
		switch (mnl_attr_get_type(attr)) {
		case RTA_TABLE:
			if (mnl_attr_get_payload_len(attr) == sizeof(uint32_t))
				table = mnl_attr_get_u32(attr);
			break;
		case RTA_DST:
			if (mnl_attr_get_payload_len(attr) == want)
				memcpy(r.dst.b, mnl_attr_get_payload(attr), want);
			break;
		case RTA_OIF:
			if (mnl_attr_get_payload_len(attr) == sizeof(uint32_t))
				r.oif = (int)mnl_attr_get_u32(attr);
			break;
		default:
			break;
		}
	}
	if (table != d->a->cfg.table)
		return MNL_CB_OK;
	if (d->out->n == d->out->cap) {
		uint32_t cap = d->out->cap ? d->out->cap * 2 : AN_GROW_INITIAL;
		struct an_route *v = realloc(d->out->v, cap * sizeof(*v));

		if (!v) {
			d->err = -ENOMEM;
			return MNL_CB_ERROR;
		}
		d->out->v = v;
		d->out->cap = cap;
	}
	d->out->v[d->out->n++] = r;
	return MNL_CB_OK;
}

/* Every route of our table and protocol, both families, into out. */
static int an_dump(struct announce *a, struct an_list *out)
{
	static const int families[] = {AF_INET, AF_INET6};

	out->n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct an_dump d = {.a = a, .out = out};
		struct rtmsg *rtm;
		int rc;

		nlh->nlmsg_type = RTM_GETROUTE;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
		rtm->rtm_family = (uint8_t)families[i];
		/*
		 * With NETLINK_GET_STRICT_CHK the kernel dumps only our table and protocol (a host
		 * with a full routing table is not walked every ANNOUNCE_RECONCILE_MS); without it,
		 * everything comes and an_dump_cb filters.
		 */
		rtm->rtm_table =
		    a->cfg.table < AN_TABLE_BYTE ? (uint8_t)a->cfg.table : RT_TABLE_UNSPEC;
		rtm->rtm_protocol = a->cfg.protocol;
		mnl_attr_put_u32(nlh, RTA_TABLE, a->cfg.table);
		rc = nl_request(a->nl, &a->seq, nlh, an_dump_cb, &d);
		if (d.err)
			return d.err;
		/* A table that does not exist (yet, or any more) holds no route of ours. */
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return 0;
}

static bool an_in(const struct lb_addr *v, uint32_t n, const struct lb_addr *x)
{
	for (uint32_t i = 0; i < n; i++)
		if (lb_addr_eq(&v[i], x))
			return true;
	return false;
}

/*
 * Creates (or takes over) the TUN device and makes it non-persistent, so that it and every
 * route through it vanish with the last fd. Brings it up: routes need an up device.
 */
static int an_tun_open(struct announce *a, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct ifreq ifr;
	int rc;

	a->tun_fd = open(AN_TUN_PATH, O_RDWR | O_CLOEXEC);
	if (a->tun_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "announce: %s: %s (the kernel needs TUN support)",
		         AN_TUN_PATH, strerror(errno));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a->cfg.interface);
	if (ioctl(a->tun_fd, TUNSETIFF, &ifr) < 0 || ioctl(a->tun_fd, TUNSETPERSIST, 0) < 0) {
		rc = -errno;
		snprintf(err, errlen,
		         "announce.interface %s: cannot create the TUN device: %s (another "
		         "maglevd, or a device of another kind with that name?)",
		         a->cfg.interface, strerror(errno));
		return rc;
	}
	a->ifindex = (int)if_nametoindex(a->cfg.interface);
	if (!a->ifindex) {
		rc = -errno;
		snprintf(err, errlen, "announce.interface %s: %s", a->cfg.interface,
		         strerror(errno));
		return rc;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = a->ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	rc = nl_request(a->nl, &a->seq, nlh, NULL, NULL);
	if (rc < 0)
		snprintf(err, errlen, "announce.interface %s: cannot bring it up: %s",
		         a->cfg.interface, strerror(-rc));
	return rc;
}

/* The TUN device was deleted behind our back (ip link del): a new one, so routes can go back. */
static int an_tun_reopen(struct announce *a)
{
	char err[AN_ERR_MAX];
	int rc;

	if (a->tun_fd >= 0)
		close(a->tun_fd);
	a->tun_fd = -1;
	a->ifindex = 0;
	rc = an_tun_open(a, err, sizeof(err));
	log_warn("announce: TUN device %s was gone: %s", a->cfg.interface,
	         rc ? err : "created again");
	return rc;
}

int announce_open(struct announce **out, const struct config_announce *cfg, char *err,
                  size_t errlen)
{
	struct announce *a = calloc(1, sizeof(*a));
	int rc, on = 1;

	*out = NULL;
	if (!a) {
		snprintf(err, errlen, "announce: out of memory");
		return -ENOMEM;
	}
	a->cfg = *cfg;
	a->tun_fd = -1;
	a->seq = (uint32_t)time(NULL);
	a->nl = mnl_socket_open(NETLINK_ROUTE);
	if (!a->nl || mnl_socket_bind(a->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		rc = -errno;
		snprintf(err, errlen, "announce: netlink: %s", strerror(errno));
		goto out;
	}
	/* Kernels before 4.20 lack it and dump every route; an_dump_cb filters either way. */
	mnl_socket_setsockopt(a->nl, NETLINK_GET_STRICT_CHK, &on, sizeof(on));
	rc = an_tun_open(a, err, errlen);
	if (rc < 0)
		goto out;
	rc = announce_sync(a, NULL, 0);
	if (rc < 0) {
		snprintf(err, errlen, "announce: cannot clean table %u of protocol %u routes: %s",
		         cfg->table, cfg->protocol, strerror(-rc));
		goto out;
	}
	*out = a;
	return 0;
out:
	announce_close(a);
	return rc;
}

/* Remembers dst as live (or not); the list never holds more than the wanted addresses. */
static int an_live_set(struct announce *a, const struct lb_addr *dst, bool live)
{
	for (uint32_t i = 0; i < a->n_live; i++) {
		if (!lb_addr_eq(&a->live[i], dst))
			continue;
		if (!live)
			a->live[i] = a->live[--a->n_live];
		return 0;
	}
	if (!live)
		return 0;
	if (a->n_live == a->cap_live) {
		uint32_t cap = a->cap_live ? a->cap_live * 2 : AN_GROW_INITIAL;
		struct lb_addr *v = realloc(a->live, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->live = v;
		a->cap_live = cap;
	}
	a->live[a->n_live++] = *dst;
	return 0;
}

int announce_sync(struct announce *a, const struct lb_addr *want, uint32_t n)
{
	struct an_list have = {0};
	char s[AN_ROUTE_STRLEN];
	int first = 0, rc;

	rc = an_dump(a, &have);
	if (rc < 0) {
		a->ctr[ANNOUNCE_CTR_ERRORS]++;
		log_err("announce: reading table %u: %s", a->cfg.table, strerror(-rc));
		free(have.v);
		return rc;
	}
	/* Ours and wanted: keep. Anything else of our protocol in our table: remove. */
	for (uint32_t i = 0; i < have.n; i++) {
		const struct an_route *r = &have.v[i];
		bool mine = an_in(a->live, a->n_live, &r->dst);

		if (r->plen == an_plen(&r->dst) && r->oif == a->ifindex && an_in(want, n, &r->dst))
			continue;
		rc = an_route_del(a, r);
		if (rc < 0 && rc != -ESRCH) {
			a->ctr[ANNOUNCE_CTR_ERRORS]++;
			first = first ? first : rc;
			log_err("announce: removing %s from table %u: %s",
			        an_str(&r->dst, s, sizeof(s)), a->cfg.table, strerror(-rc));
			continue;
		}
		if (mine && r->oif == a->ifindex) {
			a->ctr[ANNOUNCE_CTR_ROUTES_REMOVED]++;
			log_info("announce: %s withdrawn (table %u)", an_str(&r->dst, s, sizeof(s)),
			         a->cfg.table);
		} else {
			a->ctr[ANNOUNCE_CTR_STALE_REMOVED]++;
			log_warn("announce: stale route %s of protocol %u removed from table %u",
			         an_str(&r->dst, s, sizeof(s)), a->cfg.protocol, a->cfg.table);
		}
		an_live_set(a, &r->dst, false);
	}
	for (uint32_t i = 0; i < n; i++) {
		bool present = false;

		if (an_in(want, i, &want[i]))
			continue;
		for (uint32_t k = 0; k < have.n && !present; k++)
			present = lb_addr_eq(&have.v[k].dst, &want[i]) &&
			          have.v[k].plen == an_plen(&want[i]) &&
			          have.v[k].oif == a->ifindex;
		if (!present) {
			rc = an_route_add(a, &want[i]);
			if (rc == -ENODEV && an_tun_reopen(a) == 0)
				rc = an_route_add(a, &want[i]);
			if (rc < 0) {
				a->ctr[ANNOUNCE_CTR_ERRORS]++;
				first = first ? first : rc;
				an_live_set(a, &want[i], false);
				log_err("announce: adding %s to table %u: %s",
				        an_str(&want[i], s, sizeof(s)), a->cfg.table,
				        strerror(-rc));
				continue;
			}
			a->ctr[ANNOUNCE_CTR_ROUTES_ADDED]++;
			log_info("announce: %s announced (table %u, dev %s)",
			         an_str(&want[i], s, sizeof(s)), a->cfg.table, a->cfg.interface);
		}
		if (an_live_set(a, &want[i], true) < 0)
			first = first ? first : -ENOMEM;
	}
	/* A live address no longer wanted whose route had already gone is not live either. */
	for (uint32_t i = 0; i < a->n_live;)
		if (!an_in(want, n, &a->live[i]))
			a->live[i] = a->live[--a->n_live];
		else
			i++;
	free(have.v);
	return first;
}

bool announce_is_live(const struct announce *a, const struct lb_addr *addr)
{
	return a && an_in(a->live, a->n_live, addr);
}

uint32_t announce_live_count(const struct announce *a)
{
	return a ? a->n_live : 0;
}

uint64_t announce_counter_get(const struct announce *a, enum announce_counter c)
{
	return a && c < ANNOUNCE_CTR_MAX ? a->ctr[c] : 0;
}

const struct config_announce *announce_config(const struct announce *a)
{
	return &a->cfg;
}

void announce_close(struct announce *a)
{
	if (!a)
		return;
	if (a->nl && a->ifindex)
		announce_sync(a, NULL, 0);
	if (a->tun_fd >= 0)
		close(a->tun_fd);
	if (a->nl)
		mnl_socket_close(a->nl);
	free(a->live);
	free(a);
}
