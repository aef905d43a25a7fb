/* SPDX-License-Identifier: GPL-2.0-only */
/* Next-hop resolution over rtnetlink (libmnl): routes, neighbours, the thread following them. */
#include "io/nexthop.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "base/log.h"
#include "io/netlink.h"

#define NH_ENTRIES_MAX   65536u /* distinct backend addresses followed; a power of 2 */
#define NH_ENTRIES_FIRST 16u    /* entries allocated at first; doubled when full */
#define NH_WAIT_STEP_MS  20u    /* nh_wait polls this often */

/* NUD states in which the neighbour entry holds a usable link-layer address. */
#define NH_NUD_USABLE                                                                              \
	(NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)

struct nh_entry {
	struct lb_addr addr; /* the backend */
	struct lb_addr via;  /* gateway, or addr itself when on-link; family 0 = no route */
	int oif;
	uint64_t mac; /* lb_nexthop.mac encoding; 0 = unresolved */
	bool warned;  /* "routed elsewhere" said once */
};

struct nh_watch {
	struct lb_nexthop *nh;
	_Atomic uint64_t *mirror; /* NULL, or n more words each MAC goes to */
	uint32_t n;
};

/* Writes watch w's next hop i. */
static void nh_store(const struct nh_watch *w, uint32_t i, uint64_t mac)
{
	atomic_store_explicit(&w->nh[i].mac, mac, memory_order_relaxed);
	if (w->mirror)
		atomic_store_explicit(&w->mirror[i], mac, memory_order_relaxed);
}

struct nh_resolver {
	pthread_mutex_t lock; /* everything below, and use of the query socket */
	struct mnl_socket *query;
	struct mnl_socket *events;
	uint32_t seq;
	int ifindex;
	struct nh_entry *entries;
	uint32_t n_entries, cap_entries;
	struct nh_watch watches[NH_WATCHES_MAX];
	uint32_t n_watches;
	bool routes_dirty; /* a route changed: every entry's route is looked up again */
	int stop_fd;
	pthread_t thread;
	bool thread_started;
};

uint64_t nh_mac_encode(const uint8_t mac[ETH_ALEN])
{
	uint64_t v = 0;

	for (int i = 0; i < ETH_ALEN; i++)
		v = v << 8 | mac[i];
	return v | LB_NH_VALID;
}

/* Publishes e's MAC to every watched array; a relaxed store is enough: the value is one word. */
static void nh_publish(struct nh_resolver *r, const struct nh_entry *e)
{
	for (uint32_t w = 0; w < r->n_watches; w++)
		for (uint32_t i = 0; i < r->watches[w].n; i++)
			if (lb_addr_eq(&r->watches[w].nh[i].addr, &e->addr))
				nh_store(&r->watches[w], i, e->mac);
}

struct route_answer {
	struct lb_addr gw;
	int oif;
};

static int nh_route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_answer *a = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;

	if (!nl_payload_has(nlh, sizeof(*rtm)))
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm))
	{
		size_t alen = mnl_attr_get_payload_len(attr);

		switch (mnl_attr_get_type(attr)) {
		case RTA_OIF:
			if (alen >= sizeof(uint32_t))
				a->oif = (int)mnl_attr_get_u32(attr);
			break;
		case RTA_GATEWAY:
			if (alen == 4 || alen == 16) {
				a->gw.family = alen == 4 ? AF_INET : AF_INET6;
				memcpy(a->gw.b, mnl_attr_get_payload(attr), alen);
			}
			break;
		}
	}
	return MNL_CB_OK;
}

static int nh_route_get(struct nh_resolver *r, struct nh_entry *e)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct route_answer a = {0};
	int rc;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = e->addr.family;
	rtm->rtm_dst_len = e->addr.family == AF_INET ? 32 : 128;
	mnl_attr_put(nlh, RTA_DST, lb_addr_len(&e->addr), e->addr.b);
	rc = nl_request(r->query, &r->seq, nlh, nh_route_cb, &a);
	if (rc)
		return rc;
	e->oif = a.oif;
	e->via = a.gw.family ? a.gw : e->addr;
	return 0;
}

struct neigh_answer {
	const struct lb_addr *dst;
	int ifindex;
	uint64_t mac;
	bool found;
};

/* Parses RTM_NEWNEIGH/RTM_DELNEIGH; fills dst, ifindex and mac (0 when not usable). */
static bool nh_neigh_parse(const struct nlmsghdr *nlh, struct lb_addr *dst, int *ifindex,
                           uint64_t *mac)
{
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	const uint8_t *ll = NULL;
	size_t dst_len;

	if (!nl_payload_has(nlh, sizeof(*ndm)) ||
	    (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6))
		return false;
	memset(dst, 0, sizeof(*dst));
	dst_len = ndm->ndm_family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
	mnl_attr_for_each(attr, nlh, sizeof(*ndm))
	{
		size_t alen = mnl_attr_get_payload_len(attr);

		if (mnl_attr_get_type(attr) == NDA_DST && alen == dst_len) {
			dst->family = ndm->ndm_family;
			memcpy(dst->b, mnl_attr_get_payload(attr), alen);
		} else if (mnl_attr_get_type(attr) == NDA_LLADDR && alen == ETH_ALEN) {
			ll = mnl_attr_get_payload(attr);
		}
	}
	*ifindex = ndm->ndm_ifindex;
	*mac = nlh->nlmsg_type == RTM_NEWNEIGH && ll && (ndm->ndm_state & NH_NUD_USABLE)
	           ? nh_mac_encode(ll)
	           : 0;
	return dst->family != 0;
}

static int nh_neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct neigh_answer *a = data;
	struct lb_addr dst;
	int ifindex;
	uint64_t mac;

	if (nh_neigh_parse(nlh, &dst, &ifindex, &mac) && lb_addr_eq(&dst, a->dst) &&
	    ifindex == a->ifindex) {
		a->found = true;
		a->mac = mac;
	}
	return MNL_CB_OK;
}

/* Asks the kernel to resolve via on oif (NTF_USE: as if a packet were waiting for it). */
static void nh_solicit(struct nh_resolver *r, const struct nh_entry *e)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;
	int rc;

	nlh->nlmsg_type = RTM_NEWNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = e->via.family;
	ndm->ndm_ifindex = e->oif;
	ndm->ndm_state = NUD_NONE;
	ndm->ndm_flags = NTF_USE;
	mnl_attr_put(nlh, NDA_DST, lb_addr_len(&e->via), e->via.b);
	rc = nl_request(r->query, &r->seq, nlh, NULL, NULL);
	if (rc < 0) {
		char a[LB_ADDR_STRLEN];

		log_warn("nexthop: cannot solicit %s: %s", lb_addr_str(&e->via, a, sizeof(a)),
		         strerror(-rc));
	}
}

/* Route, then neighbour, of one entry; publishes the result. */
static void nh_resolve(struct nh_resolver *r, struct nh_entry *e)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], a1[LB_ADDR_STRLEN];
	struct nlmsghdr *nlh;
	struct ndmsg *ndm;
	struct neigh_answer ans = {0};
	uint64_t old = e->mac;

	e->mac = 0;
	if (nh_route_get(r, e) < 0) {
		e->via.family = 0;
		goto out;
	}
	if (e->oif != r->ifindex) {
		if (!e->warned) {
			char dev[IF_NAMESIZE] = "?";

			if_indextoname((unsigned)e->oif, dev);
			log_warn("nexthop: backend %s is routed via %s, not through maglevd's "
			         "interface: unreachable",
			         lb_addr_str(&e->addr, a1, sizeof(a1)), dev);
		}
		e->warned = true;
		goto out;
	}
	e->warned = false;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = e->via.family;
	ndm->ndm_ifindex = e->oif;
	mnl_attr_put(nlh, NDA_DST, lb_addr_len(&e->via), e->via.b);
	ans.dst = &e->via;
	ans.ifindex = e->oif;
	nl_request(r->query, &r->seq, nlh, nh_neigh_cb, &ans); /* ENOENT: no entry yet */
	e->mac = ans.found ? ans.mac : 0;
	if (!e->mac)
		nh_solicit(r, e);
out:
	if (e->mac != old)
		nh_publish(r, e);
}

static struct nh_entry *nh_entry_find(struct nh_resolver *r, const struct lb_addr *a)
{
	for (uint32_t i = 0; i < r->n_entries; i++)
		if (lb_addr_eq(&r->entries[i].addr, a))
			return &r->entries[i];
	return NULL;
}

int nh_watch(struct nh_resolver *r, struct lb_nexthop *nh, uint32_t n, _Atomic uint64_t *mirror)
{
	struct nh_watch *w;
	bool added = false;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->n_watches == NH_WATCHES_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	w = &r->watches[r->n_watches++];
	*w = (struct nh_watch){.nh = nh, .mirror = mirror, .n = n};
	added = true;
	for (uint32_t i = 0; i < n; i++) {
		struct nh_entry *e = nh_entry_find(r, &nh[i].addr);

		if (e) {
			nh_store(w, i, e->mac);
			continue;
		}
		if (r->n_entries == NH_ENTRIES_MAX) {
			rc = -ENOSPC;
			goto out;
		}
		if (r->n_entries == r->cap_entries) {
			uint32_t cap = r->cap_entries ? 2 * r->cap_entries : NH_ENTRIES_FIRST;
			struct nh_entry *grown = realloc(r->entries, cap * sizeof(*grown));

			if (!grown) {
				rc = -ENOMEM;
				goto out;
			}
			r->entries = grown;
			r->cap_entries = cap;
		}
		e = &r->entries[r->n_entries++];
		*e = (struct nh_entry){.addr = nh[i].addr};
		nh_resolve(r, e);
		nh_store(w, i, e->mac);
	}
out:
	/* On failure the caller frees nh: forget it. */
	if (rc && added)
		r->n_watches--;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void nh_unwatch(struct nh_resolver *r, const struct lb_nexthop *nh)
{
	pthread_mutex_lock(&r->lock);
	for (uint32_t w = 0; w < r->n_watches; w++) {
		if (r->watches[w].nh == nh) {
			r->watches[w] = r->watches[--r->n_watches];
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

static uint32_t nh_unresolved(struct nh_resolver *r)
{
	uint32_t n = 0;

	for (uint32_t w = 0; w < r->n_watches; w++)
		for (uint32_t i = 0; i < r->watches[w].n; i++)
			n +=
			    !(atomic_load_explicit(&r->watches[w].nh[i].mac, memory_order_relaxed) &
			      LB_NH_VALID);
	return n;
}

uint32_t nh_wait(struct nh_resolver *r, int timeout_ms)
{
	uint32_t n = 0;

	for (int waited = 0;; waited += NH_WAIT_STEP_MS) {
		pthread_mutex_lock(&r->lock);
		n = nh_unresolved(r);
		pthread_mutex_unlock(&r->lock);
		if (n == 0 || waited >= timeout_ms)
			return n;
		usleep(NH_WAIT_STEP_MS * 1000u);
	}
}

/* Handles one notification; route events only mark the routes dirty. Lock held. */
static int nh_event_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nh_resolver *r = data;
	struct lb_addr dst;
	int ifindex;
	uint64_t mac;

	if (nlh->nlmsg_type == RTM_NEWROUTE || nlh->nlmsg_type == RTM_DELROUTE) {
		r->routes_dirty = true; /* one look-up pass per batch of route events */
		return MNL_CB_OK;
	}
	if (nlh->nlmsg_type != RTM_NEWNEIGH && nlh->nlmsg_type != RTM_DELNEIGH)
		return MNL_CB_OK;
	if (!nh_neigh_parse(nlh, &dst, &ifindex, &mac))
		return MNL_CB_OK;
	for (uint32_t i = 0; i < r->n_entries; i++) {
		struct nh_entry *e = &r->entries[i];

		if (e->oif != ifindex || !lb_addr_eq(&e->via, &dst) || e->mac == mac)
			continue;
		e->mac = mac;
		nh_publish(r, e);
		/* Lost (deleted, failed): ask again now rather than at the next retry tick. */
		if (!mac)
			nh_solicit(r, e);
	}
	return MNL_CB_OK;
}

static void *nh_thread(void *arg)
{
	struct nh_resolver *r = arg;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct pollfd pfd[2] = {
	    {.fd = mnl_socket_get_fd(r->events), .events = POLLIN},
	    {.fd = r->stop_fd, .events = POLLIN},
	};

	for (;;) {
		int n = poll(pfd, 2, NH_RETRY_MS);

		if (n < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		pthread_mutex_lock(&r->lock);
		if (n > 0 && pfd[0].revents) {
			ssize_t len = mnl_socket_recvfrom(r->events, buf, sizeof(buf));

			if (len > 0)
				nl_cb_run(buf, (size_t)len, 0, 0, nh_event_cb, r);
			else if (len < 0 && errno == ENOBUFS)
				r->routes_dirty = true; /* lost notifications: look everything up */
			if (r->routes_dirty) {
				r->routes_dirty = false;
				for (uint32_t i = 0; i < r->n_entries; i++)
					nh_resolve(r, &r->entries[i]);
			}
		} else if (n == 0) {
			for (uint32_t i = 0; i < r->n_entries; i++)
				if (!r->entries[i].mac)
					nh_resolve(r, &r->entries[i]);
		}
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

void nh_stop(struct nh_resolver *r)
{
	if (!r)
		return;
	if (r->thread_started) {
		uint64_t one = 1;

		if (write(r->stop_fd, &one, sizeof(one)) != sizeof(one))
			log_err("nexthop: cannot wake resolver thread");
		pthread_join(r->thread, NULL);
	}
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->query)
		mnl_socket_close(r->query);
	if (r->events)
		mnl_socket_close(r->events);
	pthread_mutex_destroy(&r->lock);
	free(r->entries);
	free(r);
}

int nh_start(struct nh_resolver **out, int ifindex, char *err, size_t errlen)
{
	struct nh_resolver *r = calloc(1, sizeof(*r));
	unsigned groups = RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	int rc;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->ifindex = ifindex;
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	r->query = mnl_socket_open(NETLINK_ROUTE);
	r->events = mnl_socket_open(NETLINK_ROUTE);
	if (r->stop_fd < 0 || !r->query || !r->events ||
	    mnl_socket_bind(r->query, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_bind(r->events, groups, MNL_SOCKET_AUTOPID) < 0) {
		rc = -errno;
		snprintf(err, errlen, "nexthop: cannot open rtnetlink: %s", strerror(-rc));
		goto out;
	}
	rc = -pthread_create(&r->thread, NULL, nh_thread, r);
	if (rc) {
		snprintf(err, errlen, "nexthop: cannot start thread: %s", strerror(-rc));
		goto out;
	}
	r->thread_started = true;
	*out = r;
	return 0;
out:
	nh_stop(r);
	return rc;
}
