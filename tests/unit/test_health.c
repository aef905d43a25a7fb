/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Health checker against real listeners on 127.0.0.1: TCP connect, HTTP status, timeouts, merging,
 * the status line parser, the cap on probes in flight and local errors under a low RLIMIT_NOFILE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <dirent.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "maglevd/health.h"
#include "helpers.h"

#define WAIT_MAX_MS    3000u  /* bound of every wait for a state change */
#define SPLIT_GAP_US   20000u /* between the two parts of a response sent split */
#define FDS_SPARE      40u    /* descriptors left free under the lowered RLIMIT_NOFILE */
#define DEAD_TARGETS   60u    /* never-answering checks, more than FDS_SPARE */
#define ALIVE_TARGETS  3u     /* healthy checks next to them */
#define TH_FD_SCAN_MAX 1024u  /* descriptor numbers looked at when lowering RLIMIT_NOFILE */

struct events {
	int n;
	bool last_up;
};

static void on_change(void *ctx, const struct health_target *t, bool up)
{
	struct events *e = ctx;

	(void)t;
	e->n++;
	e->last_up = up;
}

static void target_init(struct health_target *t, enum hc_type type, uint16_t port, const char *path)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(lb_addr_parse("127.0.0.1", &t->addr), 0);
	t->type = type;
	t->port = port;
	t->expect_status = 200;
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->interval_ms = 40;
	t->timeout_ms = 100;
	t->rise = 2;
	t->fall = 2;
}

/* Runs the checker until e->n reaches want or WAIT_MAX_MS passes; returns elapsed ms. */
static uint64_t run_until(struct health_checker *hc, struct events *e, int want)
{
	uint64_t start = th_now_ms();

	while (e->n < want && th_now_ms() - start < WAIT_MAX_MS)
		assert_int_equal(health_dispatch(hc, 20), 0);
	return th_now_ms() - start;
}

static void run_for(struct health_checker *hc, uint64_t ms)
{
	uint64_t start = th_now_ms();

	while (th_now_ms() - start < ms)
		assert_int_equal(health_dispatch(hc, 10), 0);
}

static void test_tcp_down_and_up(void **state)
{
	struct health_checker *hc;
	struct health_target t;
	struct events e = {0};
	uint16_t port = 0;
	int lfd = th_listen_loopback(&port);

	(void)state;
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t, HC_TCP, port, "");
	assert_int_equal(health_set_targets(hc, &t, 1), 0);
	assert_true(health_is_up(hc, &t));
	run_for(hc, 250);
	assert_int_equal(e.n, 0);
	assert_true(health_is_up(hc, &t));

	close(lfd);
	/* No timing bounds here: on a loaded machine overdue probes run back to back. */
	run_until(hc, &e, 1);
	assert_int_equal(e.n, 1);
	assert_false(e.last_up);
	assert_false(health_is_up(hc, &t));

	lfd = th_listen_loopback(&port);
	run_until(hc, &e, 2);
	assert_int_equal(e.n, 2);
	assert_true(e.last_up);
	assert_true(health_is_up(hc, &t));
	close(lfd);
	health_destroy(hc);
}

struct responder {
	int lfd;
	atomic_int status;
	atomic_bool stop;
	atomic_int requests;
	atomic_int per_path[ALIVE_TARGETS]; /* requests for /ok/N */
	char last[512];
	char raw[128]; /* if set, sent instead of a status-line response, in two parts if split */
	size_t split;
	pthread_mutex_t lock;
	pthread_t thread;
};

static void *responder_run(void *arg)
{
	struct responder *r = arg;

	while (!atomic_load(&r->stop)) {
		struct pollfd p = {.fd = r->lfd, .events = POLLIN};
		char buf[512], out[128];
		size_t len = 0, split;
		unsigned path;
		int fd, n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept(r->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		while (len < sizeof(buf) - 1) {
			struct pollfd q = {.fd = fd, .events = POLLIN};
			ssize_t got;

			if (poll(&q, 1, 500) <= 0)
				break;
			got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
			if (got <= 0)
				break;
			len += (size_t)got;
			buf[len] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		buf[len] = '\0';
		pthread_mutex_lock(&r->lock);
		snprintf(r->last, sizeof(r->last), "%s", buf);
		n = snprintf(out, sizeof(out), "%s", r->raw);
		split = r->split;
		pthread_mutex_unlock(&r->lock);
		if (sscanf(buf, "GET /ok/%u ", &path) == 1 && path < ALIVE_TARGETS)
			atomic_fetch_add(&r->per_path[path], 1);
		atomic_fetch_add(&r->requests, 1);
		if (!n)
			n = snprintf(out, sizeof(out),
			             "HTTP/1.0 %d X\r\nContent-Length: 2\r\n\r\nok",
			             atomic_load(&r->status));
		if (split && split < (size_t)n) {
			if (send(fd, out, split, MSG_NOSIGNAL) < 0)
				(void)0;
			usleep(SPLIT_GAP_US);
		} else {
			split = 0;
		}
		if (send(fd, out + split, (size_t)n - split, MSG_NOSIGNAL) < 0)
			(void)0;
		close(fd);
	}
	return NULL;
}

/* Starts r answering HTTP requests on a loopback port (status 200 until changed). */
static void responder_start(struct responder *r, uint16_t *port)
{
	*port = 0;
	r->lfd = th_listen_loopback(port);
	atomic_init(&r->status, 200);
	assert_int_equal(pthread_create(&r->thread, NULL, responder_run, r), 0);
}

static void responder_stop(struct responder *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	close(r->lfd);
}

/* What r sends from now on instead of its status response; split > 0 sends it in two parts. */
static void responder_raw(struct responder *r, const char *raw, size_t split)
{
	pthread_mutex_lock(&r->lock);
	snprintf(r->raw, sizeof(r->raw), "%s", raw);
	r->split = split;
	pthread_mutex_unlock(&r->lock);
}

static void test_http_status(void **state)
{
	struct responder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct health_checker *hc;
	struct health_target t;
	struct events e = {0};
	uint16_t port = 0;
	char want[64];

	(void)state;
	responder_start(&r, &port);
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t, HC_HTTP, port, "/healthz");
	assert_int_equal(health_set_targets(hc, &t, 1), 0);
	run_for(hc, 300);
	assert_int_equal(e.n, 0);
	assert_true(atomic_load(&r.requests) >= 3);
	pthread_mutex_lock(&r.lock);
	assert_non_null(strstr(r.last, "GET /healthz HTTP/1.0\r\n"));
	snprintf(want, sizeof(want), "Host: 127.0.0.1:%u\r\n", port);
	assert_non_null(strstr(r.last, want));
	pthread_mutex_unlock(&r.lock);

	atomic_store(&r.status, 503);
	run_until(hc, &e, 1);
	assert_int_equal(e.n, 1);
	assert_false(health_is_up(hc, &t));

	atomic_store(&r.status, 200);
	run_until(hc, &e, 2);
	assert_int_equal(e.n, 2);
	assert_true(health_is_up(hc, &t));

	health_destroy(hc);
	responder_stop(&r);
}

/* Accepted and refused status lines, and that a prefix of a line never decides otherwise. */
static void test_status_line_parse(void **state)
{
	static const struct {
		const char *line;
		size_t len; /* 0: strlen(line) */
		int want;
	} cases[] = {
	    {"HTTP/1.0 200 OK\r\n", 0, 200},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200},
	    {"HTTP/1.1 503 Service Unavailable\r\n", 0, 503},
	    {"HTTP/1.1 200 \r\n", 0, 200}, /* empty reason phrase */
	    {"HTTP/1.1 200\r\n", 0, 200},  /* no SP before an empty one */
	    {"HTTP/1.0 200 OK\n", 0, 200}, /* bare LF */
	    {"HTTP/1.1 100 Continue\r\n", 0, 100},
	    {"HTTP/1.1 599 x\r\n", 0, 599},
	    {"HTTP/1.9 204 No\tContent\r\n", 0, 204},       /* another minor, HTAB */
	    {"HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\n", 0, 200}, /* obs-text */
	    {"HTTP/1.1 200 a \" b ; c\r\n", 0, 200},
	    {"", 0, -EAGAIN},
	    {"HTTP/1.", 0, -EAGAIN},
	    {"HTTP/1.1 200", 0, -EAGAIN},
	    {"HTTP/1.1 200 OK", 0, -EAGAIN},
	    {"HTTP/1.1 404 Not Found\r", 0, -EAGAIN},
	    {"HTTP/1.X 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.X 200", 0, -EBADMSG},
	    {"HTTP/1.X", 0, -EBADMSG}, /* refused before the line is complete */
	    {"HTTP/2.0 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/0.9 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.10 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/11 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1 200 OK\r\n", 0, -EBADMSG},
	    {"http/1.1 200 OK\r\n", 0, -EBADMSG},
	    {"ICY 200 OK\r\n", 0, -EBADMSG},
	    {" HTTP/1.1 200 OK\r\n", 0, -EBADMSG},
	    {"\r\nHTTP/1.1 200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1  200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1\t200 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 20 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 20\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 2000 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 099 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 600 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 +20 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 2x0 OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200OK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200\tOK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200 OK\rX\n", 0, -EBADMSG}, /* bare CR */
	    {"HTTP/1.1 200\r\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200 O\x01K\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200 O\x7fK\r\n", 0, -EBADMSG},
	    {"HTTP/1.1 200 O\0K\r\n", 18, -EBADMSG},
	    {"HTTP/1.1\0"
	     "200 OK\r\n",
	     17, -EBADMSG},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].line);
		int got = health_http_status_parse(cases[i].line, len);

		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
		for (size_t k = 0; k < len; k++) {
			int part = health_http_status_parse(cases[i].line, k);

			if (part != -EAGAIN && part != got)
				fail_msg("case %zu, first %zu bytes: got %d, the whole %d", i, k,
				         part, got);
		}
	}
}

/* A server answering "HTTP/1.X 200" fails its check; a status line split over reads passes. */
static void test_http_status_line_strict(void **state)
{
	struct responder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct health_checker *hc;
	struct health_target t;
	struct events e = {0};
	uint16_t port = 0;

	(void)state;
	responder_start(&r, &port);
	responder_raw(&r, "HTTP/1.X 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t, HC_HTTP, port, "/");
	assert_int_equal(health_set_targets(hc, &t, 1), 0);
	run_until(hc, &e, 1);
	assert_int_equal(e.n, 1);
	assert_false(health_is_up(hc, &t));

	responder_raw(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", strlen("HTTP/1.1 2"));
	run_until(hc, &e, 2);
	assert_int_equal(e.n, 2);
	assert_true(health_is_up(hc, &t));
	health_destroy(hc);
	responder_stop(&r);
}

/* A listener that never answers: connect succeeds (backlog) but the status line never comes. */
static void test_http_timeout(void **state)
{
	struct health_checker *hc;
	struct health_target t;
	struct events e = {0};
	uint16_t port = 0;
	int lfd = th_listen_loopback(&port);
	uint64_t took;

	(void)state;
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t, HC_HTTP, port, "/");
	t.timeout_ms = 30;
	assert_int_equal(health_set_targets(hc, &t, 1), 0);
	took = run_until(hc, &e, 1);
	assert_int_equal(e.n, 1);
	assert_false(e.last_up);
	assert_true(took >= 2 * 30);
	health_destroy(hc);
	close(lfd);
}

static void test_merge_and_keep_state(void **state)
{
	struct health_checker *hc;
	struct health_target t[4];
	struct events e = {0};
	uint16_t port = 0;
	int lfd = th_listen_loopback(&port);

	(void)state;
	close(lfd); /* the port is now closed: every probe fails */
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t[0], HC_TCP, port, "");
	t[1] = t[0];
	t[1].interval_ms = 500; /* same check, other timing: merged */
	target_init(&t[2], HC_HTTP, port, "/a");
	target_init(&t[3], HC_HTTP, port, "/b");
	assert_int_equal(health_set_targets(hc, t, 4), 0);
	assert_int_equal(health_count(hc), 3);
	run_until(hc, &e, 3);
	assert_int_equal(e.n, 3);
	assert_false(health_is_up(hc, &t[1]));

	/* Setting again keeps the down state of the checks that stay; dropped ones are gone. */
	assert_int_equal(health_set_targets(hc, t, 3), 0);
	assert_int_equal(health_count(hc), 2);
	assert_false(health_is_up(hc, &t[0]));
	assert_false(health_is_up(hc, &t[2]));
	assert_true(health_is_up(hc, &t[3])); /* not checked any more: up */

	/* New timing for a check that stays (a reload): state kept, new rise applies. */
	t[0].rise = 1;
	t[0].interval_ms = 20;
	assert_int_equal(health_set_targets(hc, t, 1), 0);
	assert_false(health_is_up(hc, &t[0]));
	lfd = th_listen_loopback(&port);
	run_until(hc, &e, 4);
	assert_int_equal(e.n, 4);
	assert_true(health_is_up(hc, &t[0]));
	close(lfd);

	assert_int_equal(health_set_targets(hc, NULL, 0), 0);
	assert_int_equal(health_count(hc), 0);
	health_destroy(hc);
}

static struct health_checker *pick_hc; /* for pick_set, which th_capture_stderr runs */
static struct health_target pick_t[3];

static void pick_set(void)
{
	assert_int_equal(health_set_targets(pick_hc, pick_t, ARRAY_SIZE(pick_t)), 0);
}

/*
 * Three VIPs configure one check with different timing: it runs with the shortest interval's
 * timing (its fall too), whatever their order, and each other one is logged. Seen from outside:
 * a closed port goes down within two short intervals, where the slow VIPs' fall 3 x 2 s would
 * take 4 s or more.
 */
static void test_timing_shortest_interval(void **state)
{
	static const unsigned fast_at[] = {0, 2}; /* where the fast VIP's target is given */
	uint16_t port = 0;
	int lfd = th_listen_loopback(&port);

	(void)state;
	close(lfd); /* every probe is refused */
	for (unsigned k = 0; k < ARRAY_SIZE(fast_at); k++) {
		struct events e = {0};
		const char *log;
		uint64_t took;

		for (unsigned i = 0; i < ARRAY_SIZE(pick_t); i++) {
			target_init(&pick_t[i], HC_TCP, port, "");
			pick_t[i].interval_ms = 2000;
			pick_t[i].fall = 3;
			snprintf(pick_t[i].vip, sizeof(pick_t[i].vip), "slow%u", i);
		}
		pick_t[fast_at[k]].interval_ms = 50;
		pick_t[fast_at[k]].fall = 2;
		snprintf(pick_t[fast_at[k]].vip, sizeof(pick_t[0].vip), "fast");
		pick_t[1].timeout_ms = 300; /* equal intervals of the slow ones: first given wins */
		assert_int_equal(health_create(&pick_hc, on_change, &e), 0);
		log = th_capture_stderr(pick_set);
		assert_int_equal(health_count(pick_hc), 1);
		assert_non_null(
		    strstr(log, "asks interval 2000 ms, timeout 100 ms, rise 2, fall 3; "
		                "its one probe runs with vip fast's timing (the shortest "
		                "interval): interval 50 ms, timeout 100 ms, rise 2, fall 2\n"));
		assert_non_null(strstr(log, "vip slow1 asks interval 2000 ms, timeout 300 ms"));
		took = run_until(pick_hc, &e, 1);
		assert_int_equal(e.n, 1);
		assert_false(e.last_up);
		assert_true(took < 1500);
		health_destroy(pick_hc);
	}
	/* Equal timing is not worth a word. */
	for (unsigned i = 0; i < ARRAY_SIZE(pick_t); i++)
		target_init(&pick_t[i], HC_TCP, port, "");
	assert_int_equal(health_create(&pick_hc, NULL, NULL), 0);
	assert_null(strstr(th_capture_stderr(pick_set), "asks interval"));
	health_destroy(pick_hc);
}

static struct rlimit nofile_saved; /* the test process's limit, put back by nofile_restore */

static int nofile_save(void **state)
{
	(void)state;
	return getrlimit(RLIMIT_NOFILE, &nofile_saved);
}

static int nofile_restore(void **state)
{
	(void)state;
	return setrlimit(RLIMIT_NOFILE, &nofile_saved);
}

/*
 * Lowers the soft RLIMIT_NOFILE to the least limit below which `spare` descriptor numbers are free
 * (inherited descriptors may sit above it; they stay usable); returns it.
 */
static rlim_t nofile_lower(unsigned spare)
{
	struct rlimit rl = nofile_saved;
	bool open_fd[TH_FD_SCAN_MAX] = {false};
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned free_n = 0;
	rlim_t lim = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		long fd = atol(de->d_name);

		/* "." and ".." are not descriptors; the directory's own is closed below. */
		if (de->d_name[0] != '.' && fd != dirfd(d) && fd < (long)TH_FD_SCAN_MAX)
			open_fd[fd] = true;
	}
	closedir(d);
	while (free_n < spare && lim < TH_FD_SCAN_MAX)
		free_n += !open_fd[lim++];
	assert_int_equal(free_n, spare);
	rl.rlim_cur = lim;
	assert_true(rl.rlim_cur <= rl.rlim_max);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return rl.rlim_cur;
}

/*
 * Many never-answering checks next to a few healthy ones, with fewer free descriptors than there
 * are checks: probes in flight stay within the cap (itself within the descriptor limit), every
 * check gets its turns, the healthy ones never fail and no probe meets a local error.
 */
static void test_probes_capped(void **state)
{
	enum { N = DEAD_TARGETS + ALIVE_TARGETS };
	struct responder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct health_checker *hc;
	struct health_target t[N];
	struct events e = {0};
	uint16_t port, dead_port = 0;
	int dead = th_listen_loopback(&dead_port); /* never accepts: probes time out */
	uint32_t peak = 0;
	uint64_t start;
	rlim_t lim;
	bool probed;

	(void)state;
	responder_start(&r, &port);
	lim = nofile_lower(FDS_SPARE);
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	assert_int_equal(health_inflight_max(hc), lim / HEALTH_NOFILE_SHARE);
	assert_true(health_inflight_max(hc) + 1 < FDS_SPARE); /* + the responder's socket */
	for (uint32_t i = 0; i < N; i++) {
		char path[32];

		if (i < DEAD_TARGETS)
			snprintf(path, sizeof(path), "/dead/%u", i);
		else
			snprintf(path, sizeof(path), "/ok/%u", i - DEAD_TARGETS);
		target_init(&t[i], HC_HTTP, i < DEAD_TARGETS ? dead_port : port, path);
	}
	assert_int_equal(health_set_targets(hc, t, N), 0);
	start = th_now_ms();
	do {
		assert_int_equal(health_dispatch(hc, 20), 0);
		assert_true(health_inflight(hc) <= health_inflight_max(hc));
		if (health_inflight(hc) > peak)
			peak = health_inflight(hc);
		probed = true;
		for (uint32_t i = 0; i < ALIVE_TARGETS; i++)
			probed = probed && atomic_load(&r.per_path[i]) >= 3;
	} while ((e.n < (int)DEAD_TARGETS || !probed) && th_now_ms() - start < WAIT_MAX_MS);
	assert_int_equal(e.n, DEAD_TARGETS); /* each dead check went down, no healthy one */
	for (uint32_t i = 0; i < N; i++)
		assert_true(health_is_up(hc, &t[i]) == (i >= DEAD_TARGETS));
	assert_true(probed);
	assert_int_equal(peak, health_inflight_max(hc));
	assert_true(health_counter_get(hc, HEALTH_CTR_PROBES_DEFERRED) > 0);
	assert_int_equal(health_counter_get(hc, HEALTH_CTR_LOCAL_ERRORS), 0);
	health_destroy(hc);
	responder_stop(&r);
	close(dead);
}

/*
 * With every descriptor taken, probes cannot open sockets: neither the healthy check nor the down
 * one changes state, the local errors are counted, and probing resumes once descriptors are free.
 */
static void test_local_error_keeps_state(void **state)
{
	struct responder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct health_checker *hc;
	struct health_target t[2];
	struct events e = {0};
	uint16_t port, closed_port = 0;
	int fill[2 * FDS_SPARE], n_fill = 0, fd, requests;
	uint64_t local, start;

	(void)state;
	close(th_listen_loopback(&closed_port)); /* nothing listens there: refused */
	responder_start(&r, &port);
	nofile_lower(FDS_SPARE);
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	target_init(&t[0], HC_HTTP, port, "/ok/0");
	target_init(&t[1], HC_TCP, closed_port, "");
	assert_int_equal(health_set_targets(hc, t, 2), 0);
	run_until(hc, &e, 1);
	assert_int_equal(e.n, 1);
	assert_true(health_is_up(hc, &t[0]));
	assert_false(health_is_up(hc, &t[1]));

	/* Between dispatches with nothing in flight, so that no probe holds a connection. */
	start = th_now_ms();
	while (health_inflight(hc) && th_now_ms() - start < WAIT_MAX_MS)
		assert_int_equal(health_dispatch(hc, 5), 0);
	assert_int_equal(health_inflight(hc), 0);
	errno = 0;
	while (n_fill < (int)(2 * FDS_SPARE) && (fd = dup(STDERR_FILENO)) >= 0)
		fill[n_fill++] = fd;
	assert_int_equal(errno, EMFILE);
	local = health_counter_get(hc, HEALTH_CTR_LOCAL_ERRORS);
	run_for(hc, 300);
	assert_int_equal(e.n, 1);
	assert_true(health_is_up(hc, &t[0]));
	assert_false(health_is_up(hc, &t[1]));
	assert_true(health_counter_get(hc, HEALTH_CTR_LOCAL_ERRORS) >= local + 2);
	assert_int_equal(health_inflight(hc), 0);

	while (n_fill)
		close(fill[--n_fill]);
	requests = atomic_load(&r.requests);
	start = th_now_ms();
	while (atomic_load(&r.requests) < requests + 2 && th_now_ms() - start < WAIT_MAX_MS)
		assert_int_equal(health_dispatch(hc, 20), 0);
	assert_true(atomic_load(&r.requests) >= requests + 2);
	assert_int_equal(e.n, 1);
	assert_true(health_is_up(hc, &t[0]));
	health_destroy(hc);
	responder_stop(&r);
}

static void test_bad_targets(void **state)
{
	struct health_checker *hc;
	struct health_target t;
	struct config_health h = {
	    .type = HC_HTTP, .interval_ms = 1000, .timeout_ms = 500, .rise = 2, .fall = 3};
	struct config_vip v = {0};
	struct lb_addr a;

	(void)state;
	assert_int_equal(health_create(&hc, NULL, NULL), 0);
	target_init(&t, HC_TCP, 0, "");
	assert_int_equal(health_set_targets(hc, &t, 1), -EINVAL);
	target_init(&t, HC_TCP, 80, "");
	t.fall = 0;
	assert_int_equal(health_set_targets(hc, &t, 1), -EINVAL);
	assert_int_equal(health_count(hc), 0);

	assert_int_equal(lb_addr_parse("2001:db8::1", &a), 0);
	v.addr = th_addr("2001:db8:100::10");
	v.port = 0;
	assert_int_equal(health_target_from_config(&t, &h, &a, &v), -EINVAL);
	v.port = 8080;
	assert_int_equal(health_target_from_config(&t, &h, &a, &v), 0);
	assert_int_equal(t.port, 8080);
	assert_string_equal(t.path, "/");
	assert_int_equal(t.expect_status, 200);
	assert_false(t.tunnel);
	assert_int_equal(t.vip_addr.family, 0);
	h.tunnel = true;
	assert_int_equal(health_target_from_config(&t, &h, &a, &v), 0);
	assert_true(t.tunnel);
	assert_true(lb_addr_eq(&t.vip_addr, &v.addr));
	h.type = HC_NONE;
	v.port = 80;
	assert_int_equal(health_target_from_config(&t, &h, &a, &v), -EINVAL);
	health_destroy(hc);
}

/* A tunnel for the checker: prepare fails with fail_why unless it is NULL, and records slots. */
struct fake_tunnel {
	const char *fail_why;
	int prepared;
	uint32_t last_slot;
	uint32_t released[4];
	int n_released;
};

static int fake_prepare(void *ctx, const struct health_target *t, uint32_t slot, uint32_t *mark,
                        char *why, size_t len)
{
	struct fake_tunnel *f = ctx;

	assert_true(t->tunnel);
	f->prepared++;
	f->last_slot = slot;
	if (f->fail_why) {
		snprintf(why, len, "%s", f->fail_why);
		return -EHOSTUNREACH;
	}
	*mark = 0x4d470000u | slot;
	return 0;
}

static void fake_release(void *ctx, uint32_t slot)
{
	struct fake_tunnel *f = ctx;

	assert_true(f->n_released < (int)ARRAY_SIZE(f->released));
	f->released[f->n_released++] = slot;
}

/*
 * Tunnel checks: a check of their own next to the direct check of the same backend, probes to
 * the VIP address, a slot each, a failing tunnel's reason on the down check, the slot released
 * with the check. The probe's socket marks and binds to lo, which needs CAP_NET_ADMIN: as root
 * the check comes up through it, else it stays down with the socket's error.
 */
static void test_tunnel_checks(void **state)
{
	struct fake_tunnel f = {.fail_why = "next hop unresolved"};
	struct health_tunnel tun = {
	    .prepare = fake_prepare, .release = fake_release, .ctx = &f, .ifname = "lo"};
	struct health_checker *hc;
	struct health_target t[3];
	struct events e = {0};
	char s[256], want[256];
	uint16_t port = 0;
	int lfd = th_listen_loopback(&port);
	uint32_t slot;

	(void)state;
	assert_int_equal(health_create(&hc, on_change, &e), 0);
	health_set_tunnel(hc, &tun);
	/* t[0] direct to the backend; t[1] through the tunnel to the VIP 127.0.0.1, backend
	 * 198.18.1.11 (never connected to: the probe goes to the VIP); t[2] to another VIP. */
	target_init(&t[0], HC_TCP, port, "");
	t[1] = t[0];
	t[1].addr = th_addr("198.18.1.11");
	t[1].tunnel = true;
	t[1].vip_addr = th_addr("127.0.0.1");
	t[2] = t[1];
	t[2].vip_addr = th_addr("127.0.0.2");
	snprintf(want, sizeof(want), "198.18.1.11:%u tcp through tunnel to 127.0.0.1", port);
	assert_string_equal(health_target_str(&t[1], s, sizeof(s)), want);
	assert_int_equal(health_set_targets(hc, t, 3), 0);
	assert_int_equal(health_count(hc), 3);
	run_until(hc, &e, 2);
	assert_int_equal(e.n, 2);
	assert_true(health_is_up(hc, &t[0]));
	assert_null(health_reason(hc, &t[0]));
	assert_false(health_is_up(hc, &t[1]));
	assert_false(health_is_up(hc, &t[2]));
	assert_string_equal(health_reason(hc, &t[1]), "next hop unresolved");
	assert_true(f.prepared >= 4);

	/* Only t[1] from here on: t[2]'s slot is released, t[1] keeps its own. */
	f.fail_why = NULL;
	f.prepared = 0;
	assert_int_equal(health_set_targets(hc, t, 2), 0);
	assert_int_equal(f.n_released, 1);
	run_for(hc, 200);
	assert_true(f.prepared > 0);
	slot = f.last_slot;
	assert_int_not_equal(slot, f.released[0]);
	if (geteuid() == 0) {
		run_until(hc, &e, 3);
		assert_true(health_is_up(hc, &t[1]));
	} else {
		assert_false(health_is_up(hc, &t[1]));
		assert_string_equal(health_reason(hc, &t[1]),
		                    "tunnel socket: Operation not permitted");
	}
	assert_int_equal(health_set_targets(hc, t, 1), 0);
	assert_int_equal(f.n_released, 2);
	assert_int_equal(f.released[1], slot);
	health_destroy(hc);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp_down_and_up),
	    cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_http_timeout),
	    cmocka_unit_test(test_merge_and_keep_state),
	    cmocka_unit_test(test_timing_shortest_interval),
	    cmocka_unit_test(test_bad_targets),
	    cmocka_unit_test(test_tunnel_checks),
	    cmocka_unit_test(test_status_line_parse),
	    cmocka_unit_test(test_http_status_line_strict),
	    cmocka_unit_test_setup_teardown(test_probes_capped, nofile_save, nofile_restore),
	    cmocka_unit_test_setup_teardown(test_local_error_keeps_state, nofile_save,
	                                    nofile_restore),
	};

	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
