/* Health checks: non-blocking TCP connect and HTTP/1.0 GET probes on one epoll + timerfd loop. */
#include "control/health.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_EVENTS_BATCH 64u /* epoll events handled per wait */
#define HEALTH_REASON_MAX   64u /* bytes of the last failure reason, for logs */
#define HEALTH_HTTP_PORT    80u /* port left out of the Host header */
#define HEALTH_MS_PER_S     1000ull
#define HEALTH_NS_PER_MS    1000000ull

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
	uint32_t ok_run;   /* successes in a row */
	uint32_t fail_run; /* failures in a row */
	enum probe_state state;
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
	health_change_fn cb;
	void *ctx;
};

static uint64_t health_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * HEALTH_MS_PER_S + (uint64_t)ts.tv_nsec / HEALTH_NS_PER_MS;
}

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
	if (a->type != HC_HTTP)
		return 0;
	if (a->expect_status != b->expect_status)
		return a->expect_status < b->expect_status ? -1 : 1;
	return strcmp(a->path, b->path);
}

static int health_target_qcmp(const void *a, const void *b)
{
	return health_target_cmp(a, b);
}

static int health_check_qcmp(const void *key, const void *elem)
{
	const struct health_check *const *c = elem;

	return health_target_cmp(key, &(*c)->t);
}

const char *health_target_str(const struct health_target *t, char *buf, size_t len)
{
	char a[LB_ADDR_STRLEN];

	lb_addr_str(&t->addr, a, sizeof(a));
	if (t->type == HC_HTTP)
		snprintf(buf, len, t->addr.family == AF_INET6 ? "[%s]:%u http %s" : "%s:%u http %s",
		         a, t->port, t->path);
	else
		snprintf(buf, len, t->addr.family == AF_INET6 ? "[%s]:%u tcp" : "%s:%u tcp", a,
		         t->port);
	return buf;
}

int health_target_from_config(struct health_target *t, const struct config_health *h,
                              const struct lb_addr *addr, uint16_t vip_port)
{
	if (h->type != HC_TCP && h->type != HC_HTTP)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->addr = *addr;
	t->type = h->type;
	t->port = h->port ? h->port : vip_port;
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
	       (t->addr.family == AF_INET || t->addr.family == AF_INET6) && t->interval_ms > 0 &&
	       t->timeout_ms > 0 && t->rise > 0 && t->fall > 0 &&
	       memchr(t->path, '\0', sizeof(t->path)) != NULL;
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
	hc->tfd = -1;
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

static void health_probe_close(struct health_check *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = PROBE_IDLE;
}

void health_destroy(struct health_checker *hc)
{
	if (!hc)
		return;
	for (uint32_t i = 0; i < hc->n; i++) {
		health_probe_close(hc->checks[i]);
		free(hc->checks[i]);
	}
	free(hc->checks);
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

int health_set_targets(struct health_checker *hc, const struct health_target *t, uint32_t n)
{
	struct health_target *sorted = NULL;
	struct health_check **next = NULL;
	uint32_t *first = NULL; /* first[j]: the sorted target check next[j] was made from */
	uint32_t m = 0, n_fresh = 0;
	uint64_t now = health_now_ms();
	int ret = 0;

	for (uint32_t i = 0; i < n; i++)
		if (!health_target_valid(&t[i]))
			return -EINVAL;
	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		next = calloc(n, sizeof(*next));
		first = malloc(n * sizeof(*first));
		if (!sorted || !next || !first) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(sorted, t, n * sizeof(*sorted));
		/* qsort is not stable: "first target wins" means first in sorted order of equal
		 * keys. */
		qsort(sorted, n, sizeof(*sorted), health_target_qcmp);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (m && health_target_cmp(&sorted[i], &next[m - 1]->t) == 0)
			continue;
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
	for (uint32_t i = 0; i < hc->n; i++) {
		if (!hc->checks[i]->keep) {
			health_probe_close(hc->checks[i]);
			free(hc->checks[i]);
		}
	}
	/* Spread the first probes of new checks over one interval instead of a burst. Checks that
	 * stay take the new timing (a reload may change it) from their next probe on. */
	for (uint32_t j = 0, k = 0; j < m; j++) {
		if (!next[j]->fresh) {
			next[j]->t.interval_ms = sorted[first[j]].interval_ms;
			next[j]->t.timeout_ms = sorted[first[j]].timeout_ms;
			next[j]->t.rise = sorted[first[j]].rise;
			next[j]->t.fall = sorted[first[j]].fall;
			continue;
		}
		next[j]->fresh = false;
		next[j]->next_ms = now + (uint64_t)next[j]->t.interval_ms * k / n_fresh;
		next[j]->start_ms = now;
		k++;
	}
	free(hc->checks);
	hc->checks = next;
	hc->n = m;
	next = NULL;
	/* Armed here too: a caller that polls health_fd only must see the first probes come due. */
	ret = health_timer_arm(hc);
out:
	if (next) {
		for (uint32_t j = 0; j < m; j++)
			if (next[j] && next[j]->fresh)
				free(next[j]);
		free(next);
	}
	free(first);
	free(sorted);
	return ret;
}

static void health_log(const struct health_check *c, bool up)
{
	char s[CONFIG_PATH_MAX + 64];

	health_target_str(&c->t, s, sizeof(s));
	if (up)
		fprintf(stderr, "maglevd: health: %s is up (%u checks in a row passed)\n", s,
		        c->ok_run);
	else
		fprintf(stderr,
		        "maglevd: health: %s is down (%u checks in a row failed, last: %s)\n", s,
		        c->fail_run, c->reason);
}

/* Ends the current probe with a verdict and schedules the next one, one interval after start. */
static void health_probe_end(struct health_checker *hc, struct health_check *c, bool ok,
                             const char *reason, uint64_t now)
{
	bool was_up = c->up;

	health_probe_close(c);
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
	c->next_ms = c->start_ms + c->t.interval_ms;
	if (c->next_ms <= now)
		c->next_ms = now + 1;
	if (c->up != was_up) {
		health_log(c, c->up);
		if (hc->cb)
			hc->cb(hc->ctx, &c->t, c->up);
	}
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
	int len;

	lb_addr_str(&c->t.addr, a, sizeof(a));
	if (c->t.port == HEALTH_HTTP_PORT)
		snprintf(host, sizeof(host), c->t.addr.family == AF_INET6 ? "[%s]" : "%s", a);
	else
		snprintf(host, sizeof(host), c->t.addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
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

static void health_probe_start(struct health_checker *hc, struct health_check *c, uint64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl = lb_addr_sockaddr(&c->t.addr, c->t.port, &ss);
	int ret;

	c->start_ms = now;
	c->next_ms = now + c->t.timeout_ms;
	c->resp_len = 0;
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		health_probe_end(hc, c, false, strerror(errno), now);
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
		health_probe_end(hc, c, false, strerror(errno), now);
		return;
	}
	ret = health_probe_watch(hc, c, EPOLLOUT, EPOLL_CTL_ADD);
	if (ret < 0)
		health_probe_end(hc, c, false, strerror(-ret), now);
}

/* Parses "HTTP/1.x NNN ..." at the start of c->resp; returns the status or -1. */
static int health_status_parse(const struct health_check *c)
{
	/* "HTTP/1.x" is 8 bytes, a space at 8, three digits at 9..11, then space or end of line. */
	enum { VERSION_LEN = 8, CODE_AT = 9, CODE_END = 12 };
	const char *p = c->resp;
	int code = 0;

	if (c->resp_len < CODE_END || memcmp(p, "HTTP/1.", VERSION_LEN - 1) != 0 ||
	    p[VERSION_LEN] != ' ')
		return -1;
	for (int i = CODE_AT; i < CODE_END; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		code = code * 10 + (p[i] - '0');
	}
	if (c->resp_len > CODE_END && p[CODE_END] != ' ' && p[CODE_END] != '\r' &&
	    p[CODE_END] != '\n')
		return -1;
	return code;
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
			health_probe_end(hc, c, false, strerror(err), now);
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
			health_probe_end(hc, c, false, strerror(errno), now);
			return;
		}
		if (r > 0)
			c->req_off += (size_t)r;
		if (c->req_off < c->req_len)
			return;
		c->state = PROBE_READING;
		err = health_probe_watch(hc, c, EPOLLIN, EPOLL_CTL_MOD);
		if (err < 0)
			health_probe_end(hc, c, false, strerror(-err), now);
		return;
	}
	if (c->state != PROBE_READING)
		return;
	r = recv(c->fd, c->resp + c->resp_len, sizeof(c->resp) - c->resp_len, 0);
	if (r < 0) {
		if (errno != EAGAIN)
			health_probe_end(hc, c, false, strerror(errno), now);
		return;
	}
	c->resp_len += (size_t)r;
	if (r > 0 && !memchr(c->resp, '\n', c->resp_len) && c->resp_len < sizeof(c->resp))
		return;
	code = health_status_parse(c);
	if (code < 0) {
		health_probe_end(hc, c, false,
		                 r == 0 && !c->resp_len ? "closed without response"
		                                        : "bad HTTP status line",
		                 now);
		return;
	}
	snprintf(reason, sizeof(reason), "HTTP status %d, want %u", code, c->t.expect_status);
	health_probe_end(hc, c, code == c->t.expect_status, reason, now);
}

static int health_timer_arm(struct health_checker *hc)
{
	struct itimerspec its = {0};
	uint64_t next = UINT64_MAX;

	for (uint32_t i = 0; i < hc->n; i++)
		if (hc->checks[i]->next_ms < next)
			next = hc->checks[i]->next_ms;
	if (next != UINT64_MAX) {
		/* An absolute expiry of 0 would disarm the timer; a past one fires at once. */
		if (!next)
			next = 1;
		its.it_value.tv_sec = (time_t)(next / HEALTH_MS_PER_S);
		its.it_value.tv_nsec = (long)((next % HEALTH_MS_PER_S) * HEALTH_NS_PER_MS);
	}
	return timerfd_settime(hc->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

int health_dispatch(struct health_checker *hc, int timeout_ms)
{
	struct epoll_event ev[HEALTH_EVENTS_BATCH];
	uint64_t now, expirations;
	int n;

	n = epoll_wait(hc->epfd, ev, HEALTH_EVENTS_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	now = health_now_ms();
	for (int i = 0; i < n; i++) {
		if (!ev[i].data.ptr) {
			if (read(hc->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
				return -errno;
			continue;
		}
		health_probe_io(hc, ev[i].data.ptr, ev[i].events, now);
	}
	for (uint32_t i = 0; i < hc->n; i++) {
		struct health_check *c = hc->checks[i];

		if (c->next_ms > now)
			continue;
		if (c->state == PROBE_IDLE)
			health_probe_start(hc, c, now);
		else
			health_probe_end(hc, c, false, "timeout", now);
	}
	return health_timer_arm(hc);
}
