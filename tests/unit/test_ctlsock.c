/* SPDX-License-Identifier: GPL-2.0-only */
/* Control socket: request validation, dispatch, and the Unix socket server with a real client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"
#include "maglevctl/online.h"
#include "maglevctl/command.h"
#include "control/ctlsock.h"
#include "helpers.h"

#define WAIT_MS   5000 /* a test waits this long at most for the server */
#define RELOAD_MS 20u  /* the slow fake handler's reload */
#define PIPELINED 30u  /* reloads one client sends in one write */

static int parse(const char *s, struct ctl_request *req, char *err)
{
	return ctl_request_parse(s, strlen(s), req, err, CTL_ERR_MAX);
}

static void test_parse_valid(void **state)
{
	struct ctl_request r;
	char err[CTL_ERR_MAX];
	struct lb_addr a;

	(void)state;
	assert_int_equal(parse("{\"cmd\":\"status\"}", &r, err), 0);
	assert_int_equal(r.cmd, CTL_CMD_STATUS);
	assert_int_equal(parse("{\"cmd\":\"backends\"}", &r, err), 0);
	assert_string_equal(r.vip, "");
	assert_int_equal(parse("{\"cmd\":\"backends\",\"vip\":\"web\"}", &r, err), 0);
	assert_string_equal(r.vip, "web");
	assert_int_equal(
	    parse("{\"cmd\":\"weight\",\"vip\":\"web\",\"backend\":\"198.18.1.11\",\"weight\":7}",
	          &r, err),
	    0);
	assert_int_equal(r.cmd, CTL_CMD_WEIGHT);
	assert_int_equal(r.weight, 7);
	assert_int_equal(lb_addr_parse("198.18.1.11", &a), 0);
	assert_true(lb_addr_eq(&r.backend, &a));
	assert_int_equal(
	    parse("{\"cmd\":\"drain\",\"vip\":\"203.0.113.10\",\"backend\":\"2001:db8::"
	          "5\"}",
	          &r, err),
	    0);
	assert_int_equal(r.cmd, CTL_CMD_DRAIN);
	assert_int_equal(r.backend.family, AF_INET6);
	assert_int_equal(parse("{\"cmd\":\"explain\",\"vip\":\"web\",\"src\":\"198.18.0.2\","
	                       "\"src_port\":40000,\"dst_port\":80,\"proto\":\"udp\"}",
	                       &r, err),
	                 0);
	assert_int_equal(r.src_port, 40000);
	assert_int_equal(r.dst_port, 80);
	assert_int_equal(r.proto, IPPROTO_UDP);
	assert_int_equal(
	    parse("{\"cmd\":\"explain\",\"vip\":\"web\",\"src\":\"198.18.0.2\"}", &r, err), 0);
	assert_int_equal(r.src_port, 0);
	assert_int_equal(r.proto, 0);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *req;
		const char *want; /* substring of the error */
	} cases[] = {
	    {"", "bad JSON"},
	    {"{", "bad JSON"},
	    {"[1,2]", "JSON object"},
	    {"{}", "missing \"cmd\""},
	    {"{\"cmd\":3}", "must be a string"},
	    {"{\"cmd\":\"reboot\"}", "unknown command 'reboot'"},
	    {"{\"cmd\":\"status\",\"cmd\":\"vips\"}", "bad JSON"},
	    {"{\"cmd\":\"weight\",\"vip\":\"web\",\"backend\":\"198.18.1.11\"}",
	     "missing \"weight\""},
	    {"{\"cmd\":\"weight\",\"vip\":\"web\",\"backend\":\"198.18.1.11\",\"weight\":65536}",
	     "out of range"},
	    {"{\"cmd\":\"weight\",\"vip\":\"web\",\"backend\":\"198.18.1.11\",\"weight\":-1}",
	     "out of range"},
	    {"{\"cmd\":\"weight\",\"vip\":\"web\",\"backend\":\"198.18.1.11\",\"weight\":1.5}",
	     "integer"},
	    {"{\"cmd\":\"drain\",\"vip\":\"web\",\"backend\":\"nope\"}", "bad address 'nope'"},
	    {"{\"cmd\":\"drain\",\"backend\":\"198.18.1.11\"}", "missing \"vip\""},
	    {"{\"cmd\":\"drain\",\"vip\":\"\",\"backend\":\"198.18.1.11\"}", "bad VIP name"},
	    {"{\"cmd\":\"explain\",\"vip\":\"web\",\"src\":\"1.2.3.4\",\"proto\":\"sctp\"}",
	     "want tcp or udp"},
	    {"{\"cmd\":\"explain\",\"vip\":\"web\",\"src\":\"1.2.3.4\",\"proto\":1}", "want tcp"},
	    {"{\"cmd\":\"explain\",\"vip\":\"web\",\"src\":\"1.2.3.4\",\"src_port\":70000}",
	     "out of range"},
	    {"{\"cmd\":\"explain\",\"vip\":\"web\"}", "missing \"src\""},
	    {"{\"cmd\":\"backends\",\"vip\":\"w\\u0000x\"}", "NUL"},
	};
	struct ctl_request r;
	char err[CTL_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		err[0] = '\0';
		assert_int_equal(parse(cases[i].req, &r, err), -EINVAL);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
	}
}

static void test_hostport(void **state)
{
	struct lb_addr a, want;
	uint16_t port;

	(void)state;
	assert_int_equal(ctl_hostport_parse("198.18.0.2", &a, &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(ctl_hostport_parse("198.18.0.2:1234", &a, &port), 0);
	assert_int_equal(port, 1234);
	assert_int_equal(lb_addr_parse("198.18.0.2", &want), 0);
	assert_true(lb_addr_eq(&a, &want));
	assert_int_equal(ctl_hostport_parse("2001:db8::1", &a, &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(ctl_hostport_parse("[2001:db8::1]:443", &a, &port), 0);
	assert_int_equal(port, 443);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(ctl_hostport_parse("198.18.0.2:", &a, &port), -EINVAL);
	assert_int_equal(ctl_hostport_parse("198.18.0.2:0", &a, &port), -EINVAL);
	assert_int_equal(ctl_hostport_parse("198.18.0.2:65536", &a, &port), -EINVAL);
	assert_int_equal(ctl_hostport_parse("198.18.0.2:-1", &a, &port), -EINVAL);
	assert_int_equal(ctl_hostport_parse("[2001:db8::1]", &a, &port), -EINVAL);
	assert_int_equal(ctl_hostport_parse("host:80", &a, &port), -EINVAL);
}

/* A fake daemon: knows VIP "web", echoes requests back as results. */
static json_t *fake_handler(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
{
	atomic_int *calls = ctx;

	atomic_fetch_add(calls, 1);
	if (req->vip[0] && strcmp(req->vip, "web") != 0) {
		snprintf(err, errlen, "no VIP '%s'", req->vip);
		return NULL;
	}
	return json_pack("{s:s, s:i}", "cmd", ctl_cmd_name(req->cmd), "weight", (int)req->weight);
}

static void test_handle_line(void **state)
{
	atomic_int calls = 0;
	char *s;

	(void)state;
	s = ctl_handle_line("{\"cmd\":\"vips\"}", 14, fake_handler, &calls);
	assert_string_equal(s, "{\"ok\":true,\"result\":{\"cmd\":\"vips\",\"weight\":0}}");
	free(s);
	s = ctl_handle_line("{\"cmd\":\"backends\",\"vip\":\"x\"}", 28, fake_handler, &calls);
	assert_string_equal(s, "{\"ok\":false,\"error\":\"no VIP 'x'\"}");
	free(s);
	s = ctl_handle_line("garbage", 7, fake_handler, &calls);
	assert_non_null(strstr(s, "\"ok\":false"));
	assert_null(strchr(s, '\n'));
	free(s);
	assert_int_equal(atomic_load(&calls), 2);
}

struct server_thread {
	struct ctl_server *srv;
	atomic_bool stop;
	pthread_t thread;
};

static void *server_run(void *arg)
{
	struct server_thread *t = arg;

	while (!atomic_load(&t->stop))
		if (ctl_server_dispatch(t->srv, 20) < 0)
			break;
	return NULL;
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Reads until n newlines or EOF; returns bytes read. */
static size_t read_lines(int fd, char *buf, size_t cap, int n)
{
	size_t len = 0;
	int seen = 0;

	while (len < cap - 1 && seen < n) {
		ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);

		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			seen += buf[len + (size_t)i] == '\n';
		len += (size_t)r;
	}
	buf[len] = '\0';
	return len;
}

static void test_server(void **state)
{
	char path[] = "/tmp/maglev-ctl-test-XXXXXX";
	char sock[sizeof(path) + 8], err[CTL_ERR_MAX], buf[1024];
	struct server_thread t = {0};
	struct ctl_server *other;
	atomic_int calls = 0;
	json_t *req, *resp;
	struct stat st;
	char *big;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	/* A stale socket file from a dead daemon is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
		assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		close(fd);
	}
	assert_int_equal(ctl_server_open(&t.srv, sock, 0, fake_handler, &calls), 0);
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ctl_server_open(&other, sock, 0, fake_handler, &calls), -EADDRINUSE);
	assert_int_equal(pthread_create(&t.thread, NULL, server_run, &t), 0);

	req = json_pack("{s:s, s:s}", "cmd", "backends", "vip", "web");
	assert_int_equal(ctl_call(sock, req, &resp, 2000, err, sizeof(err)), 0);
	assert_true(json_is_true(json_object_get(resp, "ok")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(resp, "result"), "cmd")), "backends");
	json_decref(resp);
	json_decref(req);

	/* Two requests in one write, then a bad one: three answers in order. */
	fd = raw_connect(sock);
	{
		const char *msg = "{\"cmd\":\"status\"}\n{\"cmd\":\"vips\"}\n{nope\n";

		assert_int_equal(send(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
	}
	read_lines(fd, buf, sizeof(buf), 3);
	assert_non_null(strstr(buf, "\"cmd\":\"status\""));
	assert_non_null(strstr(strstr(buf, "\"cmd\":\"status\""), "\"cmd\":\"vips\""));
	assert_non_null(strstr(buf, "\"ok\":false,\"error\":\"bad JSON"));
	close(fd);

	/* Longer than CTL_REQUEST_MAX without a newline: an error, then the server hangs up. */
	fd = raw_connect(sock);
	big = malloc(CTL_REQUEST_MAX + 100);
	memset(big, 'x', CTL_REQUEST_MAX + 100);
	for (size_t off = 0; off < CTL_REQUEST_MAX + 100;) {
		ssize_t r = send(fd, big + off, CTL_REQUEST_MAX + 100 - off, MSG_NOSIGNAL);

		if (r <= 0)
			break;
		off += (size_t)r;
	}
	read_lines(fd, buf, sizeof(buf), 1);
	assert_non_null(strstr(buf, "request longer than"));
	assert_int_equal(recv(fd, buf, sizeof(buf), 0) <= 0, 1);
	free(big);
	close(fd);

	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	ctl_server_close(t.srv);
	assert_int_equal(stat(sock, &st), -1);
	req = json_pack("{s:s}", "cmd", "status");
	assert_true(ctl_call(sock, req, &resp, 500, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "is maglevd running?"));
	json_decref(req);
	rmdir(path);
}

/* n clients that each send one byte of a request every TH_DRIBBLE_MS, never a line. */
static void slow_open(struct th_slow *sc, const char *sock, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sc->fd[i] = raw_connect(sock);
		assert_int_equal(send(sc->fd[i], "{", 1, 0), 1);
	}
	sc->n = n;
	th_slow_start(sc, " ");
}

/*
 * Every slot held by a client that sends a byte a second (well within any idle timer): a
 * well-behaved client is still answered at once, in place of the slowest.
 */
static void test_slow_clients(void **state)
{
	char path[] = "/tmp/maglev-ctl-test-XXXXXX";
	char sock[sizeof(path) + 8], err[CTL_ERR_MAX];
	struct server_thread t = {0};
	struct th_slow sc = {0};
	atomic_int calls = 0;
	json_t *req, *resp;

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	assert_int_equal(ctl_server_open(&t.srv, sock, 0, fake_handler, &calls), 0);
	assert_int_equal(pthread_create(&t.thread, NULL, server_run, &t), 0);
	slow_open(&sc, sock, CTL_CLIENTS_MAX);

	req = json_pack("{s:s}", "cmd", "status");
	assert_int_equal(ctl_call(sock, req, &resp, WAIT_MS, err, sizeof(err)), 0);
	assert_true(json_is_true(json_object_get(resp, "ok")));
	json_decref(resp);
	json_decref(req);

	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	assert_int_equal(ctl_server_closed(t.srv, CTL_CLOSE_EVICTED), 1);
	assert_int_equal(ctl_server_closed(t.srv, CTL_CLOSE_REFUSED), 0);
	th_slow_stop(&sc);
	ctl_server_close(t.srv);
	rmdir(path);
}

/* A client that keeps sending bytes without a newline is closed at the deadline all the same. */
static void test_request_timeout(void **state)
{
	char path[] = "/tmp/maglev-ctl-test-XXXXXX";
	char sock[sizeof(path) + 8], buf[256];
	struct server_thread t = {0};
	struct th_slow sc = {0};
	atomic_int calls = 0;
	const uint32_t timeout_ms = 300;
	struct pollfd p = {.events = POLLIN};
	uint64_t t0;

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	assert_int_equal(ctl_server_open(&t.srv, sock, timeout_ms, fake_handler, &calls), 0);
	assert_int_equal(pthread_create(&t.thread, NULL, server_run, &t), 0);
	t0 = th_now_ms();
	slow_open(&sc, sock, 1);
	p.fd = sc.fd[0];
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_true(th_now_ms() - t0 >= timeout_ms);
	read_lines(sc.fd[0], buf, sizeof(buf), 1);
	assert_string_equal(buf,
	                    "{\"ok\":false,\"error\":\"no complete request within 300 ms\"}\n");
	assert_int_equal(recv(sc.fd[0], buf, sizeof(buf), 0), 0);
	assert_int_equal(atomic_load(&calls), 0);

	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	assert_int_equal(ctl_server_closed(t.srv, CTL_CLOSE_TIMEOUT), 1);
	th_slow_stop(&sc);
	ctl_server_close(t.srv);
	rmdir(path);
}

/* Reloads take RELOAD_MS; counts them and notes how many were done when a status ran. */
struct slow_daemon {
	atomic_uint reloads;
	atomic_uint reloads_at_status;
};

static json_t *slow_handler(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
{
	struct slow_daemon *d = ctx;

	(void)err;
	(void)errlen;
	if (req->cmd == CTL_CMD_RELOAD) {
		usleep(RELOAD_MS * 1000u);
		atomic_fetch_add(&d->reloads, 1);
	} else {
		atomic_store(&d->reloads_at_status, atomic_load(&d->reloads));
	}
	return json_pack("{s:s}", "cmd", ctl_cmd_name(req->cmd));
}

/*
 * A client that pipelines PIPELINED reloads in one write delays another client's request by at
 * most one of its reloads (plus the one running when it arrives), and still gets every answer in
 * order.
 */
static void test_pipelining_fair(void **state)
{
	char path[] = "/tmp/maglev-ctl-test-XXXXXX";
	char sock[sizeof(path) + 8], line[64];
	char *msg = malloc(PIPELINED * 32), *buf = malloc(PIPELINED * 64);
	struct server_thread t = {0};
	struct slow_daemon d = {0};
	unsigned before;
	size_t len = 0;
	char *at;
	int fd, other;

	(void)state;
	assert_non_null(msg);
	assert_non_null(buf);
	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	assert_int_equal(ctl_server_open(&t.srv, sock, 0, slow_handler, &d), 0);
	assert_int_equal(pthread_create(&t.thread, NULL, server_run, &t), 0);

	fd = raw_connect(sock);
	for (unsigned i = 0; i < PIPELINED; i++) {
		snprintf(line, sizeof(line), "{\"cmd\":\"reload\"}\n");
		memcpy(msg + len, line, strlen(line));
		len += strlen(line);
	}
	assert_int_equal(send(fd, msg, len, 0), (ssize_t)len);
	for (unsigned i = 0; i < WAIT_MS && atomic_load(&d.reloads) == 0; i++)
		usleep(1000);

	/*
	 * The status is in the server's socket before `before` is read: the reload running then
	 * and at most one more of the round may go first.
	 */
	other = raw_connect(sock);
	assert_int_equal(send(other, "{\"cmd\":\"status\"}\n", 17, 0), 17);
	before = atomic_load(&d.reloads);
	assert_true(before >= 1 && before < PIPELINED - 2);
	read_lines(other, line, sizeof(line), 1);
	assert_non_null(strstr(line, "\"cmd\":\"status\""));
	close(other);
	assert_true(atomic_load(&d.reloads_at_status) <= before + 2);

	read_lines(fd, buf, PIPELINED * 64, (int)PIPELINED);
	at = buf;
	for (unsigned i = 0; i < PIPELINED; i++) {
		at = strstr(at, "{\"ok\":true,\"result\":{\"cmd\":\"reload\"}}\n");
		assert_non_null(at);
		at++;
	}
	close(fd);
	free(msg);
	free(buf);

	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	ctl_server_close(t.srv);
	rmdir(path);
}

/* maglevctl's online commands against the fake daemon: requests built, refusals returned. */
static void test_cli(void **state)
{
	char path[] = "/tmp/maglev-cli-test-XXXXXX";
	char sock[sizeof(path) + 8], err[CTL_ERR_MAX];
	struct server_thread t = {0};
	atomic_int calls = 0;
	char *ok_weight[] = {"weight", "web", "198.18.1.11", "7", "-s", sock, NULL};
	char *ok_explain[] = {"explain",           "-s",  sock,  "203.0.113.10",
	                      "[2001:db8::1]:443", "443", "udp", NULL};
	char *refused[] = {"backends", "other", "-s", sock, NULL};
	char *bad_weight[] = {"weight", "web", "198.18.1.11", "70000", "-s", sock, NULL};
	char *bad_src[] = {"explain", "web", "1.2.3:80", "-s", sock, NULL};
	char *too_many[] = {"status", "extra", "-s", sock, NULL};
	char *no_daemon[] = {"status", "-s", "/nonexistent/sock", NULL};
	char *unknown[] = {"frobnicate", NULL};

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	assert_int_equal(ctl_server_open(&t.srv, sock, 0, fake_handler, &calls), 0);
	assert_int_equal(pthread_create(&t.thread, NULL, server_run, &t), 0);

	assert_int_equal(online_run(6, ok_weight, err, sizeof(err)), 0);
	assert_int_equal(online_run(7, ok_explain, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "no VIP '203.0.113.10'"); /* the fake knows only the name */
	assert_int_equal(online_run(4, refused, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "no VIP 'other'");
	assert_int_equal(atomic_load(&calls), 3);

	assert_int_equal(online_run(6, bad_weight, err, sizeof(err)), COMMAND_USAGE);
	assert_non_null(strstr(err, "weight must be 0..65535"));
	assert_int_equal(online_run(5, bad_src, err, sizeof(err)), COMMAND_USAGE);
	assert_non_null(strstr(err, "bad SRC[:PORT] '1.2.3:80'"));
	assert_int_equal(online_run(4, too_many, err, sizeof(err)), COMMAND_USAGE);
	assert_non_null(strstr(err, "usage: maglevctl status"));
	assert_true(online_run(3, no_daemon, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "is maglevd running?"));
	assert_int_equal(online_run(1, unknown, err, sizeof(err)), COMMAND_USAGE);
	assert_int_equal(atomic_load(&calls), 3); /* none of the bad ones reached the daemon */
	assert_true(online_is_command("drain"));
	assert_false(online_is_command("table"));

	atomic_store(&t.stop, true);
	pthread_join(t.thread, NULL);
	ctl_server_close(t.srv);
	rmdir(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_hostport),
	    cmocka_unit_test(test_handle_line),
	    cmocka_unit_test(test_server),
	    cmocka_unit_test(test_slow_clients),
	    cmocka_unit_test(test_request_timeout),
	    cmocka_unit_test(test_pipelining_fair),
	    cmocka_unit_test(test_cli),
	};

	return cmocka_run_group_tests_name("ctlsock", tests, NULL, NULL);
}
