/* SPDX-License-Identifier: GPL-2.0-only */
/* Metrics: exposition format (HELP/TYPE once per family, escaping) and the HTTP endpoint. */
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "maglevd/metrics.h"
#include "helpers.h"

#define CLOSE_WAIT_MS  5000 /* a test waits this long at most for the server to hang up */
#define HOLD_MAX_MS    5000 /* a held collector lets the server go after this at most */
#define BODY_ANSWER_MS 1000 /* a refused body is answered within this (the deadline is 10 s) */

static void fake_collect(void *ctx, struct metrics_writer *w)
{
	atomic_uint *scrapes = ctx;
	unsigned n = atomic_fetch_add(scrapes, 1) + 1;
	const char *w0[] = {"worker", "0", NULL};
	const char *w1[] = {"worker", "1", NULL};
	const char *odd[] = {"vip", "a\"b\\c\nd", "backend", "198.18.1.11", NULL};

	metrics_family(w, "maglevd_rx_frames_total", "counter", "Frames handed\nto the pipeline");
	metrics_sample(w, "maglevd_rx_frames_total", w0, 10ull * n);
	metrics_sample(w, "maglevd_rx_frames_total", w1, 18446744073709551615ull);
	metrics_family(w, "maglevd_backend_weight", "gauge", "Weight");
	metrics_sample(w, "maglevd_backend_weight", odd, 3);
	metrics_family(w, "maglevd_config_generation", "gauge", "Generation");
	metrics_sample(w, "maglevd_config_generation", NULL, 7);
	metrics_family(w, "maglevd_last_reload_seconds", "gauge", "Reload time");
	metrics_sample_f(w, "maglevd_last_reload_seconds", NULL, 0.25);
}

/* Checks the text format: each family's HELP and TYPE once, before its samples, not interleaved. */
static void check_format(const char *text)
{
	char *copy = strdup(text), *save = NULL, *line;
	char family[128] = "", seen[16][128];
	int n_seen = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];

		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			for (int i = 0; i < n_seen; i++)
				if (strcmp(seen[i], name) == 0)
					fail_msg("HELP twice for %s", name);
			assert_true(n_seen < 16);
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
			snprintf(family, sizeof(family), "%s", name);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			assert_string_equal(name, family);
			continue;
		}
		assert_int_equal(sscanf(line, "%127[^{ ]", name), 1);
		assert_string_equal(name, family);
	}
	free(copy);
}

static void test_render(void **state)
{
	atomic_uint scrapes = 0;
	size_t len;
	char *t;

	(void)state;
	t = metrics_render(fake_collect, &scrapes, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	check_format(t);
	assert_non_null(strstr(t, "# HELP maglevd_rx_frames_total Frames handed\\nto the pipeline\n"
	                          "# TYPE maglevd_rx_frames_total counter\n"
	                          "maglevd_rx_frames_total{worker=\"0\"} 10\n"
	                          "maglevd_rx_frames_total{worker=\"1\"} 18446744073709551615\n"));
	assert_non_null(strstr(t, "maglevd_backend_weight{vip=\"a\\\"b\\\\c\\nd\","
	                          "backend=\"198.18.1.11\"} 3\n"));
	assert_non_null(strstr(t, "\nmaglevd_config_generation 7\n"));
	assert_non_null(strstr(t, "\nmaglevd_last_reload_seconds 0.25\n"));
	free(t);
}

static void test_http(void **state)
{
	struct metrics_server *s;
	atomic_uint scrapes = 0;
	char *r, *body;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, NULL, fake_collect, &scrapes), 0);
	assert_true(metrics_port(s) != 0);

	r = th_http_get(metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.0 200") ? r : strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	body = strstr(r, "\r\n\r\n");
	assert_non_null(body);
	check_format(body + 4);
	assert_non_null(strstr(body, "maglevd_rx_frames_total{worker=\"0\"} 10\n"));
	free(r);

	/* The next scrape sees the moved counter. */
	r = th_http_get(metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "maglevd_rx_frames_total{worker=\"0\"} 20\n"));
	free(r);

	r = th_http_get(metrics_port(s), "GET /nope HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 404 "));
	free(r);
	r = th_http_get(metrics_port(s), "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	assert_non_null(strstr(r, " 405 "));
	free(r);
	assert_int_equal(atomic_load(&scrapes), 2);
	metrics_stop(s);

	assert_true(metrics_start(&s, "not-an-address", 0, NULL, fake_collect, &scrapes) < 0);
}

/* Why it cannot listen: a port another socket has, an address that is not local. */
static void test_listen_errors(void **state)
{
	struct metrics_server *s = NULL;
	atomic_uint scrapes = 0;
	uint16_t port = 0;
	int taken = th_listen_loopback(&port);

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", port, NULL, fake_collect, &scrapes),
	                 -EADDRINUSE);
	assert_null(s);
	close(taken);
	/* 198.18.0.0/15 is only ever inside the tests' namespaces, never here. */
	assert_int_equal(metrics_start(&s, "198.18.255.254", 0, NULL, fake_collect, &scrapes),
	                 -EADDRNOTAVAIL);
	assert_int_equal(atomic_load(&scrapes), 0);
}

/* TCP connection to 127.0.0.1:port from the loopback address src (127.0.0.0/8 is all on lo). */
static int connect_from(const char *src, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct sockaddr_in from = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &from.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* A whole HTTP/1.0 exchange from src, as th_http_get: the answer within TH_HTTP_TIMEOUT_S. */
static char *http_get_from(const char *src, uint16_t port, const char *req)
{
	return th_http_exchange(connect_from(src, port), req);
}

/*
 * n slow clients: each has sent a request line and then sends one header line every
 * TH_DRIBBLE_MS without ever ending its headers, as a slowloris does.
 */
static void slow_open(struct th_slow *sc, const char *src, uint16_t port, unsigned n)
{
	const char *line = "GET /metrics HTTP/1.1\r\nHost: x\r\n";

	assert_true(n <= TH_SLOW_MAX);
	for (unsigned i = 0; i < n; i++) {
		sc->fd[i] = connect_from(src, port);
		assert_int_equal(send(sc->fd[i], line, strlen(line), 0), (ssize_t)strlen(line));
	}
	sc->n = n;
	th_slow_start(sc, "X-Slow: 1\r\n");
}

/* Whether the server has hung up on fd (EOF or reset), waiting up to wait_ms. */
static bool hung_up(int fd, int wait_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char buf[256];
	ssize_t r;

	if (poll(&p, 1, wait_ms) != 1)
		return false;
	r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return r <= 0;
}

/*
 * As many slowloris clients as there are connection slots, all from 127.0.0.1, keep their
 * headers coming: scrapes from another address and from the same one are still answered at
 * once (the slow ones are capped per address and evicted for new connections).
 */
static void test_slow_clients(void **state)
{
	struct th_slow sc = {0};
	struct metrics_server *s;
	atomic_uint scrapes = 0;
	char *r;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, NULL, fake_collect, &scrapes), 0);
	slow_open(&sc, "127.0.0.1", metrics_port(s), METRICS_CONNECTIONS_MAX);

	r = http_get_from("127.0.0.2", metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 200 "));
	free(r);
	r = http_get_from("127.0.0.1", metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 200 "));
	assert_non_null(strstr(r,
	                       "# TYPE maglevd_metrics_connections_closed_total counter\n"
	                       "maglevd_metrics_connections_closed_total{reason=\"timeout\"} 0\n"));
	assert_null(strstr(r, "maglevd_metrics_connections_closed_total{reason=\"evicted\"} 0\n"));
	free(r);
	assert_int_equal(atomic_load(&scrapes), 2);

	th_slow_stop(&sc);
	metrics_stop(s);
}

/*
 * A client that keeps sending header bytes is still closed request_timeout_ms after its accept:
 * the bytes do not extend it.
 */
static void test_request_timeout(void **state)
{
	const struct metrics_limits lim = {
	    .connections_max = 4, .connections_per_ip = 4, .request_timeout_ms = 300};
	struct th_slow sc = {0};
	struct metrics_server *s;
	atomic_uint scrapes = 0;
	uint64_t t0;
	char *r;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, &lim, fake_collect, &scrapes), 0);
	t0 = th_now_ms();
	slow_open(&sc, "127.0.0.1", metrics_port(s), 2);
	for (unsigned i = 0; i < sc.n; i++)
		assert_true(hung_up(sc.fd[i], CLOSE_WAIT_MS));
	assert_true(th_now_ms() - t0 >= lim.request_timeout_ms);

	r = http_get_from("127.0.0.1", metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(
	    strstr(r, "maglevd_metrics_connections_closed_total{reason=\"timeout\"} 2\n"));
	free(r);
	th_slow_stop(&sc);
	metrics_stop(s);

	/*
	 * A client that ends its side before a complete request can never be answered: it is closed
	 * at once, not at its deadline (which the default 5 s would be), even when the end of
	 * stream comes with the first bytes.
	 */
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, NULL, fake_collect, &scrapes), 0);
	{
		int fd = connect_from("127.0.0.1", metrics_port(s));

		assert_int_equal(send(fd, "GET /metr", 9, 0), 9);
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		assert_true(hung_up(fd, METRICS_REQUEST_TIMEOUT_MS / 2));
		close(fd);
	}
	metrics_stop(s);

	/* Limits that cannot work are refused. */
	{
		const struct metrics_limits bad = {
		    .connections_max = 2, .connections_per_ip = 3, .request_timeout_ms = 300};

		assert_int_equal(metrics_start(&s, "127.0.0.1", 0, &bad, fake_collect, &scrapes),
		                 -EINVAL);
	}
}

/* One whole answer on keep-alive connection fd (headers and Content-Length bytes): its status. */
static int keepalive_get(int fd)
{
	const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[8192];
	size_t len = 0;
	int status = 0;

	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return -1;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		const char *end, *cl;
		ssize_t n;

		if (poll(&p, 1, CLOSE_WAIT_MS) != 1)
			return -1;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			return -1; /* closed: what a keep-alive client must not see here */
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		cl = strcasestr(buf, "\r\nContent-Length: ");
		if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 18, NULL, 10)) {
			sscanf(buf, "HTTP/1.1 %d", &status);
			return status;
		}
	}
	return -1;
}

/*
 * A scraper's keep-alive connection idles between its scrapes, as Prometheus's does: slow
 * clients from other addresses that push the server over connections_max evict one another,
 * never it (it was answered before; they never were), and its next scrape is answered.
 */
static void test_keepalive_kept(void **state)
{
	const struct metrics_limits lim = {
	    .connections_max = 4, .connections_per_ip = 4, .request_timeout_ms = 10000};
	struct th_slow a = {0}, b = {0};
	struct metrics_server *s;
	atomic_uint scrapes = 0;
	int ka;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, &lim, fake_collect, &scrapes), 0);
	ka = connect_from("127.0.0.1", metrics_port(s));
	assert_int_equal(keepalive_get(ka), 200);
	slow_open(&a, "127.0.0.2", metrics_port(s), 4);
	slow_open(&b, "127.0.0.3", metrics_port(s), 3);
	assert_false(hung_up(ka, 200));
	assert_int_equal(keepalive_get(ka), 200);
	assert_int_equal(atomic_load(&scrapes), 2);
	close(ka);
	th_slow_stop(&a);
	th_slow_stop(&b);
	metrics_stop(s);
}

/* A collector that holds the server's thread until the test lets it go (at most HOLD_MAX_MS). */
struct held_collect {
	atomic_bool entered, release;
	atomic_uint scrapes;
};

static void held_collect(void *ctx, struct metrics_writer *w)
{
	struct held_collect *h = ctx;

	atomic_store(&h->entered, true);
	for (unsigned ms = 0; ms < HOLD_MAX_MS && !atomic_load(&h->release); ms++)
		usleep(1000);
	atomic_fetch_add(&h->scrapes, 1);
	metrics_family(w, "maglevd_config_generation", "gauge", "Generation");
	metrics_sample(w, "maglevd_config_generation", NULL, 7);
}

/*
 * Clients that arrive while the server is busy and fill all of libmicrohttpd's connection slots
 * (2 x connections_max), then are gone, leave a server that still accepts: the next scrape is
 * answered, not left in the listen backlog for good (libmicrohttpd takes its listening socket
 * out of its epoll set at its limit and puts it back only on its next run).
 */
static void test_full_then_empty(void **state)
{
	const struct metrics_limits lim = {
	    .connections_max = 2, .connections_per_ip = 2, .request_timeout_ms = 10000};
	struct held_collect h = {0};
	struct metrics_server *s;
	int busy, fd[2 * 2 + 1];
	char *r;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, &lim, held_collect, &h), 0);
	busy = connect_from("127.0.0.1", metrics_port(s));
	assert_int_equal(send(busy, "GET /metrics HTTP/1.0\r\n\r\n", 26, 0), 26);
	for (unsigned ms = 0; ms < HOLD_MAX_MS && !atomic_load(&h.entered); ms++)
		usleep(1000);
	assert_true(atomic_load(&h.entered));
	/* Into the backlog while the server's thread is in the collector; gone before it is back.
	 */
	for (unsigned i = 0; i < ARRAY_SIZE(fd); i++) {
		char src[32];

		snprintf(src, sizeof(src), "127.0.0.%u", 10 + i / 2);
		fd[i] = connect_from(src, metrics_port(s));
		close(fd[i]);
	}
	atomic_store(&h.release, true);
	r = th_http_exchange(busy, "");
	assert_non_null(strstr(r, " 200 "));
	free(r);

	r = http_get_from("127.0.0.1", metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 200 "));
	free(r);
	assert_int_equal(atomic_load(&h.scrapes), 2);
	metrics_stop(s);
}

/*
 * A GET that announces a body (a Transfer-Encoding other than chunked means: until the client
 * closes) is refused with 400 at once; it is not left waiting for libmicrohttpd's idle timeout.
 */
static void test_body_refused(void **state)
{
	static const char *const reqs[] = {
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	};
	const struct metrics_limits lim = {
	    .connections_max = 4, .connections_per_ip = 4, .request_timeout_ms = 10000};
	struct metrics_server *s;
	atomic_uint scrapes = 0;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, &lim, fake_collect, &scrapes), 0);
	for (unsigned i = 0; i < ARRAY_SIZE(reqs); i++) {
		int fd = connect_from("127.0.0.1", metrics_port(s));
		uint64_t t0 = th_now_ms();
		char buf[4096];
		ssize_t n;

		assert_int_equal(send(fd, reqs[i], strlen(reqs[i]), 0), (ssize_t)strlen(reqs[i]));
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		assert_true(poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, CLOSE_WAIT_MS) ==
		            1);
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		assert_true(n > 0);
		buf[n] = '\0';
		assert_non_null(strstr(buf, " 400 "));
		assert_true(hung_up(fd, CLOSE_WAIT_MS));
		assert_true(th_now_ms() - t0 < BODY_ANSWER_MS);
		close(fd);
	}
	assert_int_equal(atomic_load(&scrapes), 0);
	metrics_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render),          cmocka_unit_test(test_http),
	    cmocka_unit_test(test_listen_errors),   cmocka_unit_test(test_slow_clients),
	    cmocka_unit_test(test_request_timeout), cmocka_unit_test(test_full_then_empty),
	    cmocka_unit_test(test_body_refused),    cmocka_unit_test(test_keepalive_kept),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
