/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Health checks: non-blocking TCP connect and HTTP/1.0 GET probes on one epoll + timerfd loop,
 * a bounded number in flight, and the HTTP status line parser.
 */
#include "maglevd/health.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

#define HEALTH_EVENTS_BATCH 64u    /* epoll events handled per wait */
#define HEALTH_REASON_MAX   64u    /* bytes of the last failure reason, for logs */
#define HEALTH_HTTP_PORT    80u    /* port left out of the Host header */
#define HEALTH_LOCAL_LOG_MS 10000u /* local probe errors are logged at most this often */
#define HEALTH_EXCERPT_MAX  24u    /* bytes of a bad status line quoted in the failure reason */

COUNTER_LIST_DEFINE(health_counter, HEALTH_COUNTERS, HEALTH_CTR_MAX);

enum probe_state {
	PROBE_IDLE,       /* waiting for next_ms to start a probe */
	PROBE_CONNECTING, /* connect() in progress; next_ms is the deadline */
	PROBE_SENDING,    /* HTTP request partly sent */
	PROBE_READING,    /* waiting for the HTTP status line */
};

struct health_check {
	struct health_target t;
	bool up;
	bool keep;         /* scratch mark of health_set_targets: still wanted */
	bool fresh;        /* scratch mark of health_set_targets: made by this call */
	bool deferred;     /* due, waiting for a probe slot, and counted as such */
	uint32_t ok_run;   /* successes in a row */
	uint32_t fail_run; /* failures in a row */
	enum probe_state state;
	uint32_t slot;     /* a tunnel check's slot (struct health_tunnel) */
	int fd;            /* probe socket, -1 when idle */
	uint64_t next_ms;  /* idle: start time of the next probe; in flight: its deadline */
	uint64_t start_ms; /* start time of the current or last probe */
	char req[HEALTH_REQUEST_MAX];
	size_t req_len, req_off;
	char resp[HEALTH_RESPONSE_MAX];
	size_t resp_len;
	char reason[HEALTH_REASON_MAX];
};

struct health_checker {
	int epfd;
	int tfd;
	struct health_check **checks; /* sorted by health_target_cmp */
	uint32_t n;
	uint32_t *due;     /* scratch of health_dispatch: indices of due idle checks, n of them */
	uint32_t inflight; /* probes with an open socket */
	uint32_t inflight_max; /* see HEALTH_PROBES_INFLIGHT_MAX */
	uint64_t ctr[HEALTH_CTR_MAX];
	uint64_t local_log_ms;   /* when local errors were last logged; 0 = never */
	uint64_t local_unlogged; /* local errors since then */
	health_change_fn cb;
	void *ctx;
	struct health_tunnel tun;
	bool has_tun;
	uint32_t *free_slots; /* a stack of the tunnel slots no check holds */
	uint32_t n_free;
};

static int health_timer_arm(struct health_checker *hc);

static int health_target_cmp(const struct health_target *a, const struct health_target *b)
{
	int r = lb_addr_cmp(&a->addr, &b->addr);

	if (r)
		return r;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if (a->tunnel != b->tunnel)
		return a->tunnel ? 1 : -1;
	if (a->tunnel && (r = lb_addr_cmp(&a->vip_addr, &b->vip_addr)))
		return r;
	if (a->type != HC_HTTP)
		return 0;
	if (a->expect_status != b->expect_status)
		return a->expect_status < b->expect_status ? -1 : 1;
	return strcmp(a->path, b->path);
}

/*
 * Order of target indices a, b into the array arg: by check, then shortest interval, then as
 * given. The first of a check's run in this order is the one whose timing the check takes.
 */
static int health_target_pick_cmp(const void *a, const void *b, void *arg)
{
	const struct health_target *t = arg;
	uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
	int r = health_target_cmp(&t[ia], &t[ib]);

	if (r)
		return r;
	if (t[ia].interval_ms != t[ib].interval_ms)
		return t[ia].interval_ms < t[ib].interval_ms ? -1 : 1;
	return ia < ib ? -1 : ia > ib;
}

static bool health_timing_equal(const struct health_target *a, const struct health_target *b)
{
	return a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
	       a->rise == b->rise && a->fall == b->fall;
}

/* Target o of the same check as the chosen c asks for other timing: say what runs instead. */
static void health_timing_log(const struct health_target *c, const struct health_target *o)
{
	char s[CONFIG_PATH_MAX + 64];

	health_target_str(c, s, sizeof(s));
	log_warn(
	    "health: %s: vip %s asks interval %u ms, timeout %u ms, rise %u, fall %u; its one "
	    "probe "
	    "runs with vip %s's timing (the shortest interval): interval %u ms, timeout %u ms, "
	    "rise %u, fall %u",
	    s, o->vip[0] ? o->vip : "?", o->interval_ms, o->timeout_ms, o->rise, o->fall,
	    c->vip[0] ? c->vip : "?", c->interval_ms, c->timeout_ms, c->rise, c->fall);
}

static int health_check_qcmp(const void *key, const void *elem)
{
	const struct health_check *const *c = elem;

	return health_target_cmp(key, &(*c)->t);
}

const char *health_target_str(const struct health_target *t, char *buf, size_t len)
{
	char a[LB_ADDR_STRLEN], v[LB_ADDR_STRLEN];
	int n;

	lb_addr_str(&t->addr, a, sizeof(a));
	if (t->type == HC_HTTP)
		n = snprintf(buf, len,
		             t->addr.family == AF_INET6 ? "[%s]:%u http %s" : "%s:%u http %s", a,
		             t->port, t->path);
	else
		n = snprintf(buf, len, t->addr.family == AF_INET6 ? "[%s]:%u tcp" : "%s:%u tcp", a,
		             t->port);
	if (t->tunnel && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " through tunnel to %s",
		         lb_addr_str(&t->vip_addr, v, sizeof(v)));
	return buf;
}

int health_target_from_config(struct health_target *t, const struct config_health *h,
                              const struct lb_addr *addr, const struct config_vip *v)
{
	if (h->type != HC_TCP && h->type != HC_HTTP)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->addr = *addr;
	t->type = h->type;
	t->tunnel = h->tunnel;
	if (h->tunnel)
		t->vip_addr = v->addr;
	t->port = h->port ? h->port : v->port;
	t->expect_status = h->expect_status ? h->expect_status : CONFIG_HC_EXPECT_STATUS_DEFAULT;
	snprintf(t->path, sizeof(t->path), "%s", h->path[0] ? h->path : CONFIG_HC_PATH_DEFAULT);
	t->interval_ms = h->interval_ms;
	t->timeout_ms = h->timeout_ms;
	t->rise = h->rise;
	t->fall = h->fall;
	return t->port ? 0 : -EINVAL;
}

static bool health_target_valid(const struct health_target *t)
{
	return (t->type == HC_TCP || t->type == HC_HTTP) && t->port != 0 &&
	       (t->addr.family == AF_INET || t->addr.family == AF_INET6) &&
	       (!t->tunnel || t->vip_addr.family == AF_INET || t->vip_addr.family == AF_INET6) &&
	       t->interval_ms > 0 && t->timeout_ms > 0 && t->rise > 0 && t->fall > 0 &&
	       memchr(t->path, '\0', sizeof(t->path)) != NULL;
}

/*
 * HEALTH_PROBES_INFLIGHT_MAX, or less so that probes take at most their share of the soft
 * RLIMIT_NOFILE; at least 1.
 */
static uint32_t health_inflight_cap(void)
{
	struct rlimit rl;
	rlim_t share;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return HEALTH_PROBES_INFLIGHT_MAX;
	share = rl.rlim_cur / HEALTH_NOFILE_SHARE;
	if (share >= HEALTH_PROBES_INFLIGHT_MAX)
		return HEALTH_PROBES_INFLIGHT_MAX;
	return share ? (uint32_t)share : 1;
}

int health_create(struct health_checker **out, health_change_fn cb, void *ctx)
{
	struct health_checker *hc = calloc(1, sizeof(*hc));
	struct epoll_event ev = {.events = EPOLLIN};
	int ret;

	if (!hc)
		return -ENOMEM;
	hc->cb = cb;
	hc->ctx = ctx;
	hc->inflight_max = health_inflight_cap();
	hc->tfd = -1;
	hc->free_slots = malloc(HEALTH_CHECKS_MAX * sizeof(*hc->free_slots));
	if (!hc->free_slots) {
		free(hc);
		return -ENOMEM;
	}
	/* Popped from the end: slot 0 first. */
	for (uint32_t i = 0; i < HEALTH_CHECKS_MAX; i++)
		hc->free_slots[i] = HEALTH_CHECKS_MAX - 1 - i;
	hc->n_free = HEALTH_CHECKS_MAX;
	hc->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (hc->epfd < 0) {
		ret = -errno;
		goto out;
	}
	hc->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (hc->tfd < 0) {
		ret = -errno;
		goto out;
	}
	/* The timer's epoll entry carries a NULL pointer; every probe socket carries its check. */
	ev.data.ptr = NULL;
	if (epoll_ctl(hc->epfd, EPOLL_CTL_ADD, hc->tfd, &ev) < 0) {
		ret = -errno;
		goto out;
	}
	*out = hc;
	return 0;
out:
	health_destroy(hc);
	return ret;
}

static void health_probe_close(struct health_checker *hc, struct health_check *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		hc->inflight--;
	}
	c->fd = -1;
	c->state = PROBE_IDLE;
}

/* Frees check c, which has left the set; a tunnel check's slot goes back to the stack. */
static void health_check_free(struct health_checker *hc, struct health_check *c)
{
	health_probe_close(hc, c);
	if (c->t.tunnel) {
		hc->free_slots[hc->n_free++] = c->slot;
		if (hc->has_tun && hc->tun.release)
			hc->tun.release(hc->tun.ctx, c->slot);
	}
	free(c);
}

void health_set_tunnel(struct health_checker *hc, const struct health_tunnel *tun)
{
	hc->tun = *tun;
	hc->tun.ifname[sizeof(hc->tun.ifname) - 1] = '\0';
	hc->has_tun = true;
}

void health_destroy(struct health_checker *hc)
{
	if (!hc)
		return;
	for (uint32_t i = 0; i < hc->n; i++)
		health_check_free(hc, hc->checks[i]);
	free(hc->free_slots);
	free(hc->checks);
	free(hc->due);
	if (hc->tfd >= 0)
		close(hc->tfd);
	if (hc->epfd >= 0)
		close(hc->epfd);
	free(hc);
}

uint32_t health_count(const struct health_checker *hc)
{
	return hc->n;
}

int health_fd(const struct health_checker *hc)
{
	return hc->epfd;
}

uint32_t health_inflight(const struct health_checker *hc)
{
	return hc->inflight;
}

uint32_t health_inflight_max(const struct health_checker *hc)
{
	return hc->inflight_max;
}

uint64_t health_counter_get(const struct health_checker *hc, enum health_counter k)
{
	return k < HEALTH_CTR_MAX ? hc->ctr[k] : 0;
}

static struct health_check *health_find(const struct health_checker *hc,
                                        const struct health_target *t)
{
	struct health_check **c;

	if (!hc->n)
		return NULL;
	c = bsearch(t, hc->checks, hc->n, sizeof(*hc->checks), health_check_qcmp);
	return c ? *c : NULL;
}

bool health_is_up(const struct health_checker *hc, const struct health_target *t)
{
	const struct health_check *c = health_find(hc, t);

	return !c || c->up;
}

const char *health_reason(const struct health_checker *hc, const struct health_target *t)
{
	const struct health_check *c = health_find(hc, t);

	return c && !c->up ? c->reason : NULL;
}

int health_set_targets(struct health_checker *hc, const struct health_target *t, uint32_t n)
{
	struct health_target *sorted = NULL;
	struct health_check **next = NULL;
	uint32_t *first = NULL; /* first[j]: the sorted target check next[j] was made from */
	uint32_t *due = NULL, *order = NULL;
	uint32_t m = 0, n_fresh = 0;
	uint64_t now = clock_now_ms();
	int ret = 0;

	for (uint32_t i = 0; i < n; i++)
		if (!health_target_valid(&t[i]))
			return -EINVAL;
	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		next = calloc(n, sizeof(*next));
		first = malloc(n * sizeof(*first));
		due = malloc(n * sizeof(*due));
		order = malloc(n * sizeof(*order));
		if (!sorted || !next || !first || !due || !order) {
			ret = -ENOMEM;
			goto out;
		}
		/* Indices sorted, not the targets: the tie-break on the order given needs them. */
		for (uint32_t i = 0; i < n; i++)
			order[i] = i;
		qsort_r(order, n, sizeof(*order), health_target_pick_cmp, (void *)t);
		for (uint32_t i = 0; i < n; i++)
			sorted[i] = t[order[i]];
	}
	for (uint32_t i = 0; i < n; i++) {
		if (m && health_target_cmp(&sorted[i], &next[m - 1]->t) == 0) {
			if (!health_timing_equal(&sorted[i], &sorted[first[m - 1]]))
				health_timing_log(&sorted[first[m - 1]], &sorted[i]);
			continue;
		}
		if (m >= HEALTH_CHECKS_MAX) {
			ret = -E2BIG;
			goto out;
		}
		first[m] = i;
		next[m] = health_find(hc, &sorted[i]);
		if (!next[m]) {
			next[m] = calloc(1, sizeof(**next));
			if (!next[m]) {
				ret = -ENOMEM;
				goto out;
			}
			next[m]->t = sorted[i];
			next[m]->up = true;
			next[m]->fd = -1;
			next[m]->fresh = true; /* first probe placed below, once they are counted */
			n_fresh++;
		}
		m++;
	}
	/* Checks that are gone: stop their probes. Checks that stay keep state and timing. */
	for (uint32_t i = 0; i < hc->n; i++)
		hc->checks[i]->keep = false;
	for (uint32_t j = 0; j < m; j++)
		next[j]->keep = true;
	for (uint32_t i = 0; i < hc->n; i++)
		if (!hc->checks[i]->keep)
			health_check_free(hc, hc->checks[i]);
	/* Spread the first probes of new checks over one interval instead of a burst. Checks that
	 * stay take the new timing (a reload may change it) from their next probe on. */
	for (uint32_t j = 0, k = 0; j < m; j++) {
		if (!next[j]->fresh) {
			next[j]->t.interval_ms = sorted[first[j]].interval_ms;
			next[j]->t.timeout_ms = sorted[first[j]].timeout_ms;
			next[j]->t.rise = sorted[first[j]].rise;
			next[j]->t.fall = sorted[first[j]].fall;
			memcpy(next[j]->t.vip, sorted[first[j]].vip, sizeof(next[j]->t.vip));
			continue;
		}
		next[j]->fresh = false;
		/* At most HEALTH_CHECKS_MAX checks, and the gone ones gave theirs back. */
		if (next[j]->t.tunnel)
			next[j]->slot = hc->free_slots[--hc->n_free];
		next[j]->next_ms = now + (uint64_t)next[j]->t.interval_ms * k / n_fresh;
		next[j]->start_ms = now;
		k++;
	}
	free(hc->checks);
	free(hc->due);
	hc->checks = next;
	hc->due = due;
	hc->n = m;
	next = NULL;
	due = NULL;
	/* Armed here too: a caller that polls health_fd only must see the first probes come due. */
	ret = health_timer_arm(hc);
out:
	if (next) {
		for (uint32_t j = 0; j < m; j++)
			if (next[j] && next[j]->fresh)
				free(next[j]);
		free(next);
	}
	free(due);
	free(order);
	free(first);
	free(sorted);
	return ret;
}

static void health_log(const struct health_check *c, bool up)
{
	char s[CONFIG_PATH_MAX + 64];

	health_target_str(&c->t, s, sizeof(s));
	if (up)
		log_info("health: %s is up (%u checks in a row passed)", s, c->ok_run);
	else
		log_warn("health: %s is down (%u checks in a row failed, last: %s)", s, c->fail_run,
		         c->reason);
}

/* The next probe one interval after the start of the last one, and not in the past. */
static void health_schedule(struct health_check *c, uint64_t now)
{
	c->next_ms = c->start_ms + c->t.interval_ms;
	if (c->next_ms <= now)
		c->next_ms = now + 1;
}

/* Ends the current probe with a verdict and schedules the next one, one interval after start. */
static void health_probe_end(struct health_checker *hc, struct health_check *c, bool ok,
                             const char *reason, uint64_t now)
{
	bool was_up = c->up;

	health_probe_close(hc, c);
	hc->ctr[ok ? HEALTH_CTR_PROBES_OK : HEALTH_CTR_PROBES_FAILED]++;
	if (ok) {
		c->ok_run++;
		c->fail_run = 0;
		if (!c->up && c->ok_run >= c->t.rise)
			c->up = true;
	} else {
		snprintf(c->reason, sizeof(c->reason), "%s", reason);
		c->fail_run++;
		c->ok_run = 0;
		if (c->up && c->fail_run >= c->t.fall)
			c->up = false;
	}
	health_schedule(c, now);
	if (c->up != was_up) {
		health_log(c, c->up);
		if (hc->cb)
			hc->cb(hc->ctx, &c->t, c->up);
	}
}

/*
 * True for errors that say this host ran out of something (descriptors, socket buffers, memory,
 * local ports, routing cache entries, epoll watches), not that the backend is unwell. Callers
 * handle the EAGAIN of a non-blocking send or recv themselves; here it is connect()'s.
 */
static bool health_errno_local(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
	case EADDRNOTAVAIL:
	case EAGAIN:
	case ENOSPC:
		return true;
	default:
		return false;
	}
}

/*
 * Ends a probe that could not run for a local error err: no verdict, so the check keeps its state
 * and run counts, and tries again one interval after this attempt. Counted; logged at most every
 * HEALTH_LOCAL_LOG_MS with the number of such errors since the last line.
 */
static void health_probe_skip(struct health_checker *hc, struct health_check *c, int err,
                              uint64_t now)
{
	char s[CONFIG_PATH_MAX + 64];

	health_probe_close(hc, c);
	hc->ctr[HEALTH_CTR_LOCAL_ERRORS]++;
	hc->local_unlogged++;
	health_schedule(c, now);
	if (hc->local_log_ms && now < hc->local_log_ms + HEALTH_LOCAL_LOG_MS)
		return;
	health_target_str(&c->t, s, sizeof(s));
	log_warn("health: %llu probe(s) not run for a local error (last: %s: %s); their checks "
	         "keep their state and try again",
	         (unsigned long long)hc->local_unlogged, s, strerror(err));
	hc->local_log_ms = now;
	hc->local_unlogged = 0;
}

/* Ends the current probe for a system call's error err: skipped if local, else failed. */
static void health_probe_error(struct health_checker *hc, struct health_check *c, int err,
                               uint64_t now)
{
	if (health_errno_local(err))
		health_probe_skip(hc, c, err, now);
	else
		health_probe_end(hc, c, false, strerror(err), now);
}

static int health_probe_watch(struct health_checker *hc, struct health_check *c, uint32_t events,
                              int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	return epoll_ctl(hc->epfd, op, c->fd, &ev) < 0 ? -errno : 0;
}

/* Writes the HTTP request into c->req; false if it does not fit (not sent truncated). */
static bool health_request_format(struct health_check *c)
{
	char a[LB_ADDR_STRLEN], host[LB_ADDR_STRLEN + sizeof("[]:65535")];

	/* The address connected to: a tunnel check's request is one to the VIP. */
	const struct lb_addr *to = c->t.tunnel ? &c->t.vip_addr : &c->t.addr;
	int len;

	lb_addr_str(to, a, sizeof(a));
	if (c->t.port == HEALTH_HTTP_PORT)
		snprintf(host, sizeof(host), to->family == AF_INET6 ? "[%s]" : "%s", a);
	else
		snprintf(host, sizeof(host), to->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
		         c->t.port);
	len = snprintf(c->req, sizeof(c->req),
	               "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: maglevd-health\r\n"
	               "Connection: close\r\n\r\n",
	               c->t.path, host);
	if (len < 0 || (size_t)len >= sizeof(c->req))
		return false;
	c->req_len = (size_t)len;
	c->req_off = 0;
	return true;
}

/*
 * A tunnel check's socket options: the mark its packets carry (prepare has readied the path the
 * mark names) and the interface they leave by, so that no route can take a probe past the
 * tunnel. Returns 0, or an errno for health_probe_error.
 */
static int health_tunnel_sockopts(struct health_checker *hc, struct health_check *c, uint32_t mark)
{
	if (setsockopt(c->fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		return errno;
	if (setsockopt(c->fd, SOL_SOCKET, SO_BINDTODEVICE, hc->tun.ifname,
	               (socklen_t)strlen(hc->tun.ifname)) < 0)
		return errno;
	return 0;
}

/* Starts a probe of c; the caller has checked that a probe slot is free. */
static void health_probe_start(struct health_checker *hc, struct health_check *c, uint64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl = lb_addr_sockaddr(c->t.tunnel ? &c->t.vip_addr : &c->t.addr, c->t.port, &ss);
	char why[HEALTH_REASON_MAX];
	uint32_t mark = 0;
	int ret;

	c->start_ms = now;
	c->next_ms = now + c->t.timeout_ms;
	c->resp_len = 0;
	c->deferred = false;
	if (c->t.tunnel) {
		ret = hc->has_tun
		          ? hc->tun.prepare(hc->tun.ctx, &c->t, c->slot, &mark, why, sizeof(why))
		          : -ENODEV;
		if (ret < 0) {
			health_probe_end(hc, c, false, hc->has_tun ? why : "no tunnel", now);
			return;
		}
	}
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		health_probe_error(hc, c, errno, now);
		return;
	}
	hc->inflight++;
	if (c->t.tunnel && (ret = health_tunnel_sockopts(hc, c, mark))) {
		/* Failed, not skipped: a check whose probes cannot go as they must is not up. */
		snprintf(why, sizeof(why), "tunnel socket: %s", strerror(ret));
		health_probe_end(hc, c, false, why, now);
		return;
	}
	if (c->t.type == HC_TCP) {
		/* A TCP check closes with RST so that probes leave no TIME_WAIT behind on either
		 * side. */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	c->state = PROBE_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		health_probe_error(hc, c, errno, now);
		return;
	}
	ret = health_probe_watch(hc, c, EPOLLOUT, EPOLL_CTL_ADD);
	if (ret < 0)
		health_probe_error(hc, c, -ret, now);
}

/* A byte of a reason phrase: HTAB, SP, VCHAR or obs-text (RFC 9112 section 4). */
static bool health_reason_byte(unsigned char ch)
{
	return ch == '\t' || (ch >= ' ' && ch != 0x7f);
}

int health_http_status_parse(const char *buf, size_t len)
{
	/* "HTTP/1." at 0..6, the minor version digit at 7, SP at 8, the status at 9..11, then SP
	 * and the reason phrase, or the line end. */
	static const char version[] = "HTTP/1.";
	enum { MINOR_AT = sizeof(version) - 1, SP_AT, CODE_AT, CODE_END = CODE_AT + 3 };
	const unsigned char *p = (const unsigned char *)buf;
	int code = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = p[i];

		if (i < MINOR_AT) {
			if (ch != (unsigned char)version[i])
				return -EBADMSG;
		} else if (i == MINOR_AT) {
			if (ch < '0' || ch > '9')
				return -EBADMSG;
		} else if (i == SP_AT) {
			if (ch != ' ')
				return -EBADMSG;
		} else if (i < CODE_END) {
			/* 100..599 (RFC 9110 section 15): the first digit is 1..5. */
			if (ch < (i == CODE_AT ? '1' : '0') || ch > (i == CODE_AT ? '5' : '9'))
				return -EBADMSG;
			code = code * 10 + (ch - '0');
		} else if (ch == '\n') {
			return code;
		} else if (ch == '\r') {
			if (i + 1 == len)
				return -EAGAIN;
			return p[i + 1] == '\n' ? code : -EBADMSG;
		} else if (i == CODE_END ? ch != ' ' : !health_reason_byte(ch)) {
			return -EBADMSG;
		}
	}
	return -EAGAIN;
}

/* Why c->resp is not a status line we take (parse gave err; eof: the peer closed), into buf. */
static const char *health_status_reason(const struct health_check *c, int err, bool eof, char *buf,
                                        size_t len)
{
	char q[HEALTH_EXCERPT_MAX + 1];
	size_t n = 0;

	if (err == -EAGAIN && !c->resp_len)
		return "closed without response";
	if (err == -EAGAIN && eof)
		return "closed inside the HTTP status line";
	if (err == -EAGAIN) {
		snprintf(buf, len, "HTTP status line over %zu bytes", sizeof(c->resp));
		return buf;
	}
	/* Quoted up to the line end, bytes that do not print as '.', for the log. */
	for (; n < c->resp_len && n < HEALTH_EXCERPT_MAX; n++) {
		unsigned char ch = (unsigned char)c->resp[n];

		if (ch == '\r' || ch == '\n')
			break;
		q[n] = ch >= ' ' && ch < 0x7f ? (char)ch : '.';
	}
	q[n] = '\0';
	snprintf(buf, len, "bad HTTP status line \"%s\"", q);
	return buf;
}

static void health_probe_io(struct health_checker *hc, struct health_check *c, uint32_t events,
                            uint64_t now)
{
	char reason[HEALTH_REASON_MAX];
	ssize_t r;
	int err = 0, code;
	socklen_t el = sizeof(err);

	if (c->state == PROBE_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			health_probe_error(hc, c, err, now);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		if (c->t.type == HC_TCP) {
			health_probe_end(hc, c, true, NULL, now);
			return;
		}
		if (!health_request_format(c)) {
			health_probe_end(hc, c, false, "HTTP request too long", now);
			return;
		}
		c->state = PROBE_SENDING;
	}
	if (c->state == PROBE_SENDING) {
		r = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
		if (r < 0 && errno != EAGAIN) {
			health_probe_error(hc, c, errno, now);
			return;
		}
		if (r > 0)
			c->req_off += (size_t)r;
		if (c->req_off < c->req_len)
			return;
		c->state = PROBE_READING;
		err = health_probe_watch(hc, c, EPOLLIN, EPOLL_CTL_MOD);
		if (err < 0)
			health_probe_error(hc, c, -err, now);
		return;
	}
	if (c->state != PROBE_READING)
		return;
	r = recv(c->fd, c->resp + c->resp_len, sizeof(c->resp) - c->resp_len, 0);
	if (r < 0) {
		if (errno != EAGAIN)
			health_probe_error(hc, c, errno, now);
		return;
	}
	c->resp_len += (size_t)r;
	code = health_http_status_parse(c->resp, c->resp_len);
	if (code == -EAGAIN && r > 0 && c->resp_len < sizeof(c->resp))
		return; /* the status line goes on in a later segment */
	if (code < 0) {
		health_probe_end(hc, c, false,
		                 health_status_reason(c, code, r == 0, reason, sizeof(reason)),
		                 now);
		return;
	}
	snprintf(reason, sizeof(reason), "HTTP status %d, want %u", code, c->t.expect_status);
	health_probe_end(hc, c, code == c->t.expect_status, reason, now);
}

/*
 * Arms the timer for the earliest deadline of a probe in flight and, while a probe slot is free,
 * the earliest due time of an idle check. At the cap, due checks wait for a probe to end (its
 * socket event or its deadline) instead of spinning the timer.
 */
static int health_timer_arm(struct health_checker *hc)
{
	struct itimerspec its = {0};
	uint64_t next = UINT64_MAX;
	bool slot_free = hc->inflight < hc->inflight_max;

	for (uint32_t i = 0; i < hc->n; i++)
		if ((slot_free || hc->checks[i]->state != PROBE_IDLE) &&
		    hc->checks[i]->next_ms < next)
			next = hc->checks[i]->next_ms;
	if (next != UINT64_MAX) {
		/* An absolute expiry of 0 would disarm the timer; a past one fires at once. */
		if (!next)
			next = 1;
		its.it_value = clock_ms_timespec(next);
	}
	return timerfd_settime(hc->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

/*
 * Order of due checks (indices into hc->checks): earliest due first, ties by index, so no two are
 * equal. A check that was just probed is next due an interval later, behind every check still
 * waiting, so none starves.
 */
static bool health_due_before(const struct health_checker *hc, uint32_t i, uint32_t j)
{
	uint64_t x = hc->checks[i]->next_ms, y = hc->checks[j]->next_ms;

	return x != y ? x < y : i < j;
}

static void health_due_swap(uint32_t *a, uint32_t *b)
{
	uint32_t t = *a;

	*a = *b;
	*b = t;
}

/*
 * Reorders due[0..k) so that due[0..want) are its `want` earliest (health_due_before), in no
 * particular order; want < k. Quickselect: O(k) on average, like the scans around it, where a full
 * sort of thousands of waiting checks on every dispatch would not be.
 */
static void health_due_select(const struct health_checker *hc, uint32_t *due, uint32_t k,
                              uint32_t want)
{
	uint32_t lo = 0, hi = k;

	/* due[0..lo) precede and due[hi..k) follow every other entry; lo <= want <= hi. */
	while (hi - lo > 1) {
		uint32_t at = lo;

		/* The middle entry as pivot, parked at hi - 1 while [lo, hi - 1) is split. */
		health_due_swap(&due[lo + (hi - lo) / 2], &due[hi - 1]);
		for (uint32_t i = lo; i < hi - 1; i++)
			if (health_due_before(hc, due[i], due[hi - 1]))
				health_due_swap(&due[i], &due[at++]);
		health_due_swap(&due[at], &due[hi - 1]);
		if (at == want)
			return;
		if (at < want)
			lo = at + 1;
		else
			hi = at;
	}
}

/*
 * Starts due probes, earliest due first, while slots are free; the rest wait (counted once). A
 * slot that a probe ending at once (refused, local error) frees goes to any due check; the
 * earliest are still first in line at the next dispatch.
 */
static void health_start_due(struct health_checker *hc, uint64_t now)
{
	uint32_t k = 0, free_slots = hc->inflight_max - hc->inflight;

	for (uint32_t i = 0; i < hc->n; i++)
		if (hc->checks[i]->state == PROBE_IDLE && hc->checks[i]->next_ms <= now)
			hc->due[k++] = i;
	if (k > free_slots)
		health_due_select(hc, hc->due, k, free_slots);
	for (uint32_t j = 0; j < k; j++) {
		struct health_check *c = hc->checks[hc->due[j]];

		if (hc->inflight < hc->inflight_max) {
			health_probe_start(hc, c, now);
		} else if (!c->deferred) {
			c->deferred = true;
			hc->ctr[HEALTH_CTR_PROBES_DEFERRED]++;
		}
	}
}

int health_dispatch(struct health_checker *hc, int timeout_ms)
{
	struct epoll_event ev[HEALTH_EVENTS_BATCH];
	uint64_t now, expirations;
	int n;

	n = epoll_wait(hc->epfd, ev, HEALTH_EVENTS_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	now = clock_now_ms();
	for (int i = 0; i < n; i++) {
		if (!ev[i].data.ptr) {
			if (read(hc->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
				return -errno;
			continue;
		}
		health_probe_io(hc, ev[i].data.ptr, ev[i].events, now);
	}
	/* Deadlines before starts: a probe that timed out frees its slot for a waiting one. */
	for (uint32_t i = 0; i < hc->n; i++) {
		struct health_check *c = hc->checks[i];

		if (c->state != PROBE_IDLE && c->next_ms <= now)
			health_probe_end(hc, c, false, "timeout", now);
	}
	health_start_due(hc, now);
	return health_timer_arm(hc);
}
