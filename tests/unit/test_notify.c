/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * systemd notification without systemd: the test binds the AF_UNIX datagram socket that
 * NOTIFY_SOCKET names (a path, or an abstract "@" name), sets WATCHDOG_USEC, and reads what
 * maglevd/notify.c and the control plane send, asserting each datagram exactly and in order:
 * READY/STATUS/RELOADING/STOPPING, the watchdog over fake workers (progress, idle, stuck with
 * frames waiting, recovered), reloads that succeed and fail, and the test-stall request.
 */
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
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"
#include "control/config_yaml.h"
#include "control/ctlsock.h"
#include "maglevd/ctlplane.h"
#include "maglevd/notify.h"
#include "helpers.h"
#include "tctlplane.h"

#define MSG_MAX      4096u      /* bytes of one datagram read back */
#define RECV_WAIT_MS 2000       /* an expected datagram must arrive within this */
#define WD_USEC      2000000ull /* WATCHDOG_USEC of the watchdog tests: a look every 1000 ms */
#define WD_EVERY_MS  1000u
#define N_WORKERS    3u

struct listener {
	int fd;
	char dir[64];
	char path[96]; /* the socket file; "" for an abstract name */
};

/* Binds a datagram socket and points NOTIFY_SOCKET at it (abstract: "@name", no file). */
static void listener_open(struct listener *l, bool abstract)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	char env[160];

	memset(l, 0, sizeof(*l));
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	if (abstract) {
		int n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
		                 "maglevd-test-notify-%d", (int)getpid());

		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
		snprintf(env, sizeof(env), "@%s", sun.sun_path + 1);
	} else {
		snprintf(l->dir, sizeof(l->dir), "/tmp/maglev-notify-XXXXXX");
		assert_non_null(mkdtemp(l->dir));
		snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l->path);
		len = sizeof(sun);
		snprintf(env, sizeof(env), "%s", l->path);
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", env, 1), 0);
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	if (l->path[0]) {
		unlink(l->path);
		rmdir(l->dir);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

/* The next datagram, NUL-terminated in buf; fails the test if none comes within wait_ms. */
static const char *recv_msg(struct listener *l, char *buf, int wait_ms)
{
	struct pollfd p = {.fd = l->fd, .events = POLLIN};
	ssize_t n;

	assert_int_equal(poll(&p, 1, wait_ms), 1);
	n = recv(l->fd, buf, MSG_MAX - 1, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void expect_msg(struct listener *l, const char *want)
{
	char buf[MSG_MAX];

	assert_string_equal(recv_msg(l, buf, RECV_WAIT_MS), want);
}

/* Nothing is queued: sd_notify sends synchronously, so what was sent is there already. */
static void expect_none(struct listener *l)
{
	struct pollfd p = {.fd = l->fd, .events = POLLIN};
	char buf[MSG_MAX];

	if (poll(&p, 1, 0) == 1) {
		ssize_t n = recv(l->fd, buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		fail_msg("unexpected datagram: '%s'", buf);
	}
}

/* "RELOADING=1\nMONOTONIC_USEC=N" with N, CLOCK_MONOTONIC in µs, between before and now. */
static void expect_reloading(struct listener *l, uint64_t before_us)
{
	char buf[MSG_MAX], *end;
	const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";
	unsigned long long us;

	recv_msg(l, buf, RECV_WAIT_MS);
	assert_memory_equal(buf, prefix, strlen(prefix));
	errno = 0;
	us = strtoull(buf + strlen(prefix), &end, 10);
	assert_int_equal(errno, 0);
	assert_true(*end == '\0' && end != buf + strlen(prefix));
	assert_true(us >= before_us);
	assert_true(us <= clock_now_ns() / NSEC_PER_USEC);
}

/* Fake workers: loop counts and "frames waiting" set by the test. */
struct fake_dp {
	uint64_t loops[N_WORKERS];
	bool pending[N_WORKERS];
	uint32_t looked; /* rx_pending calls */
};

static uint64_t fake_loops(void *ctx, uint32_t i)
{
	return ((struct fake_dp *)ctx)->loops[i];
}

static bool fake_pending(void *ctx, uint32_t i)
{
	struct fake_dp *d = ctx;

	d->looked++;
	return d->pending[i];
}

static struct notify *notify_new(struct fake_dp *d, uint64_t now_ms)
{
	const struct notify_hooks h = {
	    .ctx = d, .n_workers = N_WORKERS, .loops = fake_loops, .rx_pending = fake_pending};
	struct notify *n = NULL;

	assert_int_equal(notify_create(&n, &h, now_ms), 0);
	assert_non_null(n);
	return n;
}

/* Every worker moves on (as each does at least every DATAPLANE_IDLE_MS). */
static void all_progress(struct fake_dp *d)
{
	for (uint32_t i = 0; i < N_WORKERS; i++)
		d->loops[i] += 7;
}

static void test_no_socket_is_noop(void **state)
{
	struct fake_dp d = {0};
	struct listener l;
	struct notify *n;

	(void)state;
	listener_open(&l, false);
	unsetenv("NOTIFY_SOCKET"); /* bound, but maglevd is not told: nothing may arrive */
	assert_int_equal(setenv("WATCHDOG_USEC", "2000000", 1), 0);
	n = notify_new(&d, 0);
	assert_false(notify_enabled(n));
	assert_int_equal(notify_watchdog_usec(n), 0);
	notify_status(n, "x");
	notify_ready(n);
	notify_reloading(n);
	notify_ready(n);
	assert_int_equal(notify_watchdog(n, 10 * WD_EVERY_MS), UINT32_MAX);
	notify_stopping(n);
	expect_none(&l);
	assert_int_equal(d.looked, 0);
	notify_destroy(n);
	/* And NULL (no notify at all) is fine everywhere. */
	notify_status(NULL, "x");
	notify_ready(NULL);
	notify_reloading(NULL);
	notify_stopping(NULL);
	assert_int_equal(notify_watchdog(NULL, 0), UINT32_MAX);
	assert_false(notify_enabled(NULL));
	listener_close(&l);
}

/* The sequence maglevd sends, on a socket file or an abstract name. */
static void run_sequence(bool abstract)
{
	struct fake_dp d = {0};
	struct listener l;
	struct notify *n;
	uint64_t t0;

	listener_open(&l, abstract);
	n = notify_new(&d, 0);
	assert_true(notify_enabled(n));
	assert_int_equal(notify_watchdog_usec(n), 0); /* no WATCHDOG_USEC */
	assert_int_equal(notify_watchdog(n, 100000), UINT32_MAX);
	notify_status(n, "afxdp, 2 VIPs");
	expect_none(&l); /* before READY=1, the summary waits for it */
	notify_ready(n);
	expect_msg(&l, "READY=1\nSTATUS=afxdp, 2 VIPs");
	notify_status(n, "afxdp, 2 VIPs");
	expect_none(&l); /* unchanged: not sent again */
	notify_status(n, "afxdp, 2 VIPs, 5/6\nup\x01");
	expect_msg(&l, "STATUS=afxdp, 2 VIPs, 5/6 up "); /* one line */
	t0 = clock_now_ns() / NSEC_PER_USEC;
	notify_reloading(n);
	expect_reloading(&l, t0);
	notify_status(n, "afxdp, 3 VIPs");
	expect_none(&l); /* during a reload: kept for its READY=1 */
	notify_ready(n);
	expect_msg(&l, "READY=1\nSTATUS=afxdp, 3 VIPs");
	/* A refused reload that changes nothing still ends with READY=1 and the same status. */
	notify_reloading(n);
	expect_reloading(&l, t0);
	notify_ready(n);
	expect_msg(&l, "READY=1\nSTATUS=afxdp, 3 VIPs");
	notify_stopping(n);
	expect_msg(&l, "STOPPING=1\nSTATUS=stopping");
	notify_stopping(n);
	notify_status(n, "after stop");
	notify_ready(n);
	notify_reloading(n);
	expect_none(&l);
	notify_destroy(n);
	listener_close(&l);
}

static void test_sequence_path(void **state)
{
	(void)state;
	run_sequence(false);
}

static void test_sequence_abstract(void **state)
{
	(void)state;
	run_sequence(true);
}

static void test_watchdog(void **state)
{
	struct fake_dp d = {0};
	struct listener l;
	struct notify *n;
	uint64_t t = 5000;

	(void)state;
	listener_open(&l, false);
	assert_int_equal(setenv("WATCHDOG_USEC", "2000000", 1), 0);
	d.loops[0] = 1;
	n = notify_new(&d, t);
	assert_int_equal(notify_watchdog_usec(n), WD_USEC);
	notify_status(n, "base");
	notify_ready(n);
	expect_msg(&l, "READY=1\nSTATUS=base");

	/* Not due yet: the time left, nothing looked at or sent. */
	assert_int_equal(notify_watchdog(n, t + 400), WD_EVERY_MS - 400);
	assert_int_equal(d.looked, 0);
	expect_none(&l);

	/* Due, every worker moved: a ping, and no ring had to be looked at. */
	t += WD_EVERY_MS;
	all_progress(&d);
	assert_int_equal(notify_watchdog(n, t), WD_EVERY_MS);
	expect_msg(&l, "WATCHDOG=1");
	assert_int_equal(d.looked, 0);

	/* Worker 1 stood still but nothing waits for it (idle, or off its CPU): still a ping. */
	t += WD_EVERY_MS;
	d.loops[0]++;
	d.loops[2]++;
	assert_int_equal(notify_watchdog(n, t), WD_EVERY_MS);
	expect_msg(&l, "WATCHDOG=1");
	assert_int_equal(d.looked, 1);
	assert_int_equal(notify_stuck_count(n), 0);

	/* Worker 1 stands still with frames waiting: stuck, no ping, the status says so. */
	t += WD_EVERY_MS;
	d.loops[0]++;
	d.loops[2]++;
	d.pending[1] = true;
	d.pending[2] = true; /* busy, but it moves: fine */
	notify_watchdog(n, t);
	expect_msg(&l, "STATUS=watchdog: 1 worker stuck (worker 1), not pinging; base");
	expect_none(&l);
	assert_int_equal(notify_stuck_count(n), 1);

	/* Still stuck, and worker 0 too now: no ping; the status names the first. */
	t += WD_EVERY_MS;
	d.pending[0] = true;
	d.loops[2]++;
	notify_watchdog(n, t);
	expect_msg(&l, "STATUS=watchdog: 2 workers stuck (worker 0), not pinging; base");
	expect_none(&l);
	t += WD_EVERY_MS;
	d.loops[2]++;
	notify_watchdog(n, t);
	expect_none(&l); /* same state: the status is not sent again */

	/* A status change while stuck keeps the watchdog's words in front. */
	notify_status(n, "base2");
	expect_msg(&l, "STATUS=watchdog: 2 workers stuck (worker 0), not pinging; base2");

	/* Both move again: the status drops the words first, then the ping. */
	t += WD_EVERY_MS;
	all_progress(&d);
	notify_watchdog(n, t);
	expect_msg(&l, "STATUS=base2");
	expect_msg(&l, "WATCHDOG=1");
	assert_int_equal(notify_stuck_count(n), 0);

	/* A late call (a slow control loop): the next look is a full interval after it. */
	t += 3 * WD_EVERY_MS;
	all_progress(&d);
	assert_int_equal(notify_watchdog(n, t), WD_EVERY_MS);
	expect_msg(&l, "WATCHDOG=1");
	assert_int_equal(notify_watchdog(n, t + 1), WD_EVERY_MS - 1);
	expect_none(&l);

	/* After STOPPING=1: no pings at all. */
	notify_stopping(n);
	expect_msg(&l, "STOPPING=1\nSTATUS=stopping");
	all_progress(&d);
	assert_int_equal(notify_watchdog(n, t + 10 * WD_EVERY_MS), UINT32_MAX);
	expect_none(&l);
	notify_destroy(n);
	listener_close(&l);
}

/* WATCHDOG_PID names another process: the watchdog is not ours (sd_watchdog_enabled). */
static void test_watchdog_other_pid(void **state)
{
	struct fake_dp d = {0};
	struct listener l;
	struct notify *n;
	char pid[24];

	(void)state;
	listener_open(&l, false);
	assert_int_equal(setenv("WATCHDOG_USEC", "2000000", 1), 0);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	n = notify_new(&d, 0);
	assert_true(notify_enabled(n));
	assert_int_equal(notify_watchdog_usec(n), 0);
	assert_int_equal(notify_watchdog(n, 10 * WD_EVERY_MS), UINT32_MAX);
	expect_none(&l);
	notify_destroy(n);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	n = notify_new(&d, 0);
	assert_int_equal(notify_watchdog_usec(n), WD_USEC);
	notify_destroy(n);
	listener_close(&l);
}

/* ---- the control plane's reloads and the test-stall request, through notify ---- */

struct cp_fixture {
	char dir[64];
	char cfg_path[96];
	char sock[96];
	struct tctl ctl;
	uint32_t stalled_worker, stalled_ms;
	int stalls;
};

static int fx_publish(void *ctx, const struct config *cfg, struct lb_snapshot *next, char *err,
                      size_t errlen)
{
	(void)ctx;
	(void)cfg;
	(void)next;
	(void)err;
	(void)errlen;
	return 0;
}

static const char *fx_mode(void *ctx)
{
	(void)ctx;
	return "test";
}

static int fx_stall(void *ctx, uint32_t i, uint32_t ms)
{
	struct cp_fixture *f = ctx;

	f->stalled_worker = i;
	f->stalled_ms = ms;
	f->stalls++;
	return 0;
}

/* A config with n_backends backends (0 = a file that does not parse). */
static void cp_write_config(struct cp_fixture *f, int n_backends)
{
	FILE *fp = fopen(f->cfg_path, "w");

	assert_non_null(fp);
	fprintf(fp,
	        "cluster: { table_size: 1009 }\n"
	        "dataplane: { interface: lo, source_ipv4: 198.18.2.2 }\n"
	        "control: { socket: %s, metrics: { enabled: false }, state_dir: '' }\n"
	        "vips:\n"
	        "  - name: web\n"
	        "    address: 203.0.113.10\n"
	        "    protocol: tcp\n"
	        "    port: 80\n"
	        "    backends:\n",
	        f->sock);
	if (n_backends == 0)
		fprintf(fp, "      - { address: 198.18.1.300 }\n");
	for (int i = 0; i < n_backends; i++)
		fprintf(fp, "      - { address: 198.18.1.%d, weight: 1 }\n", 11 + i);
	fclose(fp);
}

static void cp_start(struct cp_fixture *f, struct notify *n, bool test_hooks)
{
	struct ctlplane_hooks h = {.ctx = f,
	                           .publish = fx_publish,
	                           .n_workers = N_WORKERS,
	                           .mode = fx_mode,
	                           .notify = n,
	                           .worker_stall = test_hooks ? fx_stall : NULL};

	tctl_start(&f->ctl, f->cfg_path, &h);
}

static void cp_stop(struct cp_fixture *f)
{
	tctl_stop(&f->ctl);
}

static void cp_fixture_init(struct cp_fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/maglev-notify-cp-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/maglevd.yaml", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->dir);
	cp_write_config(f, 2);
}

static void cp_fixture_free(struct cp_fixture *f)
{
	unlink(f->cfg_path);
	assert_int_equal(rmdir(f->dir), 0);
}

/* One request over the socket; returns the response's "ok" and its error in err. */
static bool cp_call(struct cp_fixture *f, json_t *req, char *err)
{
	json_t *resp = NULL;
	bool ok;

	assert_int_equal(ctl_call(f->sock, req, &resp, 10000, err, CTL_ERR_MAX), 0);
	json_decref(req);
	ok = json_is_true(json_object_get(resp, "ok"));
	snprintf(err, CTL_ERR_MAX, "%s",
	         ok ? "" : json_string_value(json_object_get(resp, "error")));
	json_decref(resp);
	return ok;
}

static void test_ctlplane_reloads(void **state)
{
	struct fake_dp d = {0};
	struct cp_fixture f;
	struct listener l;
	struct notify *n;
	char err[CTL_ERR_MAX], want[MSG_MAX], buf[MSG_MAX];
	uint64_t t0;

	(void)state;
	cp_fixture_init(&f);
	listener_open(&l, false);
	n = notify_new(&d, 0);
	cp_start(&f, n, false);
	expect_none(&l); /* the daemon sends READY=1 once the control plane runs */
	notify_ready(n);
	expect_msg(&l, "READY=1\nSTATUS=test, 1 VIPs, 2/2 backends up, config generation 1, "
	               "last reload none");

	/* A reload over the socket that applies a new config. */
	cp_write_config(&f, 3);
	t0 = clock_now_ns() / NSEC_PER_USEC;
	assert_true(cp_call(&f, json_pack("{s:s}", "cmd", "reload"), err));
	expect_reloading(&l, t0);
	expect_msg(&l, "READY=1\nSTATUS=test, 1 VIPs, 3/3 backends up, config generation 2, "
	               "last reload ok");
	expect_none(&l);

	/* A refused one: RELOADING=1, then READY=1 with the error; the old config serves on. */
	cp_write_config(&f, 0);
	assert_false(cp_call(&f, json_pack("{s:s}", "cmd", "reload"), err));
	expect_reloading(&l, t0);
	snprintf(want, sizeof(want),
	         "READY=1\nSTATUS=test, 1 VIPs, 3/3 backends up, config generation 2, last reload "
	         "failed: %s",
	         err);
	assert_string_equal(recv_msg(&l, buf, RECV_WAIT_MS), want);
	assert_non_null(strstr(buf, f.cfg_path)); /* FILE:LINE of the bad value */

	/* ctlplane_request_reload (SIGHUP's way) does the same on the control thread. */
	cp_write_config(&f, 2);
	ctlplane_request_reload(f.ctl.cp);
	expect_reloading(&l, t0);
	expect_msg(&l, "READY=1\nSTATUS=test, 1 VIPs, 2/2 backends up, config generation 3, "
	               "last reload ok");

	/* Without test hooks the stall request is refused, saying why. */
	assert_false(cp_call(
	    &f, json_pack("{s:s, s:i, s:i}", "cmd", "test-stall", "worker", 1, "seconds", 2), err));
	assert_non_null(strstr(err, "MAGLEVD_TEST_HOOKS=1"));
	assert_int_equal(f.stalls, 0);
	cp_stop(&f);
	expect_none(&l);

	/* With them: worker and seconds reach the data plane's hook; bad ones do not. */
	cp_start(&f, n, true);
	expect_msg(&l,
	           "STATUS=test, 1 VIPs, 2/2 backends up, config generation 1, last reload none");
	assert_true(cp_call(
	    &f, json_pack("{s:s, s:i, s:i}", "cmd", "test-stall", "worker", 2, "seconds", 3), err));
	assert_int_equal(f.stalls, 1);
	assert_int_equal(f.stalled_worker, 2);
	assert_int_equal(f.stalled_ms, 3000);
	assert_false(cp_call(
	    &f, json_pack("{s:s, s:i, s:i}", "cmd", "test-stall", "worker", 3, "seconds", 1), err));
	assert_string_equal(err, "no worker 3 (maglevd runs 3)");
	assert_false(cp_call(
	    &f, json_pack("{s:s, s:i, s:i}", "cmd", "test-stall", "worker", 0, "seconds", 0), err));
	assert_false(cp_call(&f,
	                     json_pack("{s:s, s:i, s:i}", "cmd", "test-stall", "worker", 0,
	                               "seconds", (int)CTL_STALL_SECONDS_MAX + 1),
	                     err));
	assert_false(cp_call(&f, json_pack("{s:s, s:i}", "cmd", "test-stall", "worker", 0), err));
	assert_int_equal(f.stalls, 1);
	cp_stop(&f);
	notify_destroy(n);
	listener_close(&l);
	cp_fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_socket_is_noop),  cmocka_unit_test(test_sequence_path),
	    cmocka_unit_test(test_sequence_abstract),  cmocka_unit_test(test_watchdog),
	    cmocka_unit_test(test_watchdog_other_pid), cmocka_unit_test(test_ctlplane_reloads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
