/* Health checker against real listeners on 127.0.0.1: TCP connect, HTTP status, timeouts, merging.
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
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control/health.h"
#include "helpers.h"

#define WAIT_MAX_MS 3000u /* bound of every wait for a state change */

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
	char last[512];
	pthread_mutex_t lock;
	pthread_t thread;
};

static void *responder_run(void *arg)
{
	struct responder *r = arg;

	while (!atomic_load(&r->stop)) {
		struct pollfd p = {.fd = r->lfd, .events = POLLIN};
		char buf[512], out[128];
		size_t len = 0;
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
		pthread_mutex_unlock(&r->lock);
		atomic_fetch_add(&r->requests, 1);
		n = snprintf(out, sizeof(out), "HTTP/1.0 %d X\r\nContent-Length: 2\r\n\r\nok",
		             atomic_load(&r->status));
		if (send(fd, out, (size_t)n, MSG_NOSIGNAL) < 0)
			(void)0;
		close(fd);
	}
	return NULL;
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
	r.lfd = th_listen_loopback(&port);
	atomic_init(&r.status, 200);
	assert_int_equal(pthread_create(&r.thread, NULL, responder_run, &r), 0);
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
	atomic_store(&r.stop, true);
	pthread_join(r.thread, NULL);
	close(r.lfd);
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

static void test_bad_targets(void **state)
{
	struct health_checker *hc;
	struct health_target t;
	struct config_health h = {
	    .type = HC_HTTP, .interval_ms = 1000, .timeout_ms = 500, .rise = 2, .fall = 3};
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
	assert_int_equal(health_target_from_config(&t, &h, &a, 0), -EINVAL);
	assert_int_equal(health_target_from_config(&t, &h, &a, 8080), 0);
	assert_int_equal(t.port, 8080);
	assert_string_equal(t.path, "/");
	assert_int_equal(t.expect_status, 200);
	h.type = HC_NONE;
	assert_int_equal(health_target_from_config(&t, &h, &a, 80), -EINVAL);
	health_destroy(hc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp_down_and_up), cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_http_timeout),    cmocka_unit_test(test_merge_and_keep_state),
	    cmocka_unit_test(test_bad_targets),
	};

	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
