/* SPDX-License-Identifier: GPL-2.0-only */
/* The foreground daemon: start-up, snapshot publication over RCU, signal loop, clean stop. */
#include "maglevd/daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "base/clock.h"
#include "base/log.h"
#include "control/config_yaml.h"
#include "maglevd/ctlplane.h"
#include "maglevd/health.h"
#include "maglevd/notify.h"
#include "core/counters.h"
#include "core/pipeline.h"
#include "core/snapshot.h"
#include "io/dataplane.h"

#define DAEMON_ERR_MAX        512u /* bytes of one error line */
#define DAEMON_TICK_MS        200 /* the control loop runs at least this often (idle clients, retries) */
#define DAEMON_TEST_HOOKS_ENV "MAGLEVD_TEST_HOOKS" /* "1" enables the test-only requests */

struct daemon {
	const char *config_path;
	struct config *cfg;
	struct lb_snapshot *current; /* RCU pointer read by the workers */
	struct dataplane *dp;
	int sig_fd;          /* signalfd for SIGTERM, SIGINT, SIGHUP */
	struct ctlplane *cp; /* owns cfg and current while it runs */
	struct notify *notify;
	bool test_hooks; /* $MAGLEVD_TEST_HOOKS is "1" */
};

/*
 * Makes next the published snapshot: next hops and steering first, then the pointer swap, then
 * a grace period so no worker still reads the old one, then the old one's VIPs leave the filter.
 * The caller owns the old snapshot afterwards.
 */
static int daemon_swap(struct daemon *d, struct lb_snapshot *next)
{
	int rc = dataplane_prepare(d->dp, next);

	if (rc)
		return rc;
	rcu_assign_pointer(d->current, next);
	synchronize_rcu();
	dataplane_commit(d->dp, next);
	return 0;
}

/*
 * Raises the soft RLIMIT_NOFILE to the hard one: health probes, control and metrics clients and
 * AF_XDP sockets all take descriptors (docs/control.md has the budget), and the health checker
 * sizes its cap on probes in flight from this limit. Logs the change; a failure or a limit that
 * cuts that cap is a warning, not an error (maglevd still runs, with fewer probes at once).
 */
static void daemon_nofile_raise(void)
{
	const rlim_t want = (rlim_t)HEALTH_PROBES_INFLIGHT_MAX * HEALTH_NOFILE_SHARE;
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("cannot raise the open files limit from %llu to %llu: %s",
			         (unsigned long long)was, (unsigned long long)rl.rlim_max,
			         strerror(errno));
			rl.rlim_cur = was;
		} else {
			log_info("open files limit raised from %llu to %llu",
			         (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		}
	}
	if (rl.rlim_cur < want)
		log_warn(
		    "open files limit %llu is below %llu: at most %llu health probes in flight "
		    "instead of %u (raise LimitNOFILE= or ulimit -n)",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)want,
		    (unsigned long long)(rl.rlim_cur / HEALTH_NOFILE_SHARE),
		    HEALTH_PROBES_INFLIGHT_MAX);
}

/* Publishes the first snapshot (there may be none before it) and frees the one it replaces. */
static int daemon_publish(struct daemon *d, struct lb_snapshot *next)
{
	struct lb_snapshot *old = d->current;
	int rc = daemon_swap(d, next);

	if (rc == 0)
		snapshot_free(old);
	return rc;
}

/*
 * The control plane's publish hook: the control plane frees the old snapshot itself (it may
 * still be reading it for metrics until it swaps its own pointer).
 */
static int daemon_publish_hook(void *ctx, const struct config *cfg, struct lb_snapshot *next,
                               char *err, size_t errlen)
{
	int rc = daemon_swap(ctx, next);

	(void)cfg;
	if (rc)
		snprintf(err, errlen, "data plane refused the new snapshot: %s", strerror(-rc));
	return rc;
}

static const struct lb_worker *daemon_worker_hook(void *ctx, uint32_t i)
{
	struct daemon *d = ctx;

	return i < dataplane_worker_count(d->dp) ? dataplane_worker(d->dp, i) : NULL;
}

static const char *daemon_mode_hook(void *ctx)
{
	return dataplane_mode(((struct daemon *)ctx)->dp);
}

static void daemon_io_counters_hook(void *ctx, uint32_t i, uint64_t *out)
{
	dataplane_io_counters(((struct daemon *)ctx)->dp, i, out);
}

static void daemon_kernel_counters_hook(void *ctx, uint64_t *ctr)
{
	dataplane_kernel_counters(((struct daemon *)ctx)->dp, ctr);
}

static void daemon_kernel_backend_hook(void *ctx, uint16_t id, struct lb_backend_counters *out)
{
	dataplane_kernel_backend_counters(((struct daemon *)ctx)->dp, id, out);
}

static bool daemon_kernel_explain_hook(void *ctx, const struct lb_snapshot *s,
                                       const struct lb_flow_key *k, struct lb_explanation *out)
{
	return dataplane_kernel_explain(((struct daemon *)ctx)->dp, s, k, out);
}

static uint64_t daemon_loops_hook(void *ctx, uint32_t i)
{
	return dataplane_worker_loops(((struct daemon *)ctx)->dp, i);
}

static bool daemon_rx_pending_hook(void *ctx, uint32_t i)
{
	return dataplane_worker_rx_pending(((struct daemon *)ctx)->dp, i);
}

static int daemon_worker_stall_hook(void *ctx, uint32_t i, uint32_t ms)
{
	return dataplane_worker_stall(((struct daemon *)ctx)->dp, i, ms);
}

/* systemd notification and the watchdog over the running workers (a no-op outside systemd). */
static int daemon_notify_start(struct daemon *d, char *err, size_t errlen)
{
	const struct notify_hooks hooks = {
	    .ctx = d,
	    .n_workers = dataplane_worker_count(d->dp),
	    .loops = daemon_loops_hook,
	    .rx_pending = daemon_rx_pending_hook,
	};
	int rc = notify_create(&d->notify, &hooks, clock_now_ms());

	if (rc)
		snprintf(err, errlen, "systemd notification: %s", strerror(-rc));
	return rc;
}

/* Hands the config and the published snapshot to the control plane (socket, metrics, health). */
static int daemon_control_start(struct daemon *d, char *err, size_t errlen)
{
	bool kernel = dataplane_kernel_forwards(d->dp);
	const struct ctlplane_hooks hooks = {
	    .ctx = d,
	    .publish = daemon_publish_hook,
	    .worker = daemon_worker_hook,
	    .n_workers = dataplane_worker_count(d->dp),
	    .mode = daemon_mode_hook,
	    .io_counters = daemon_io_counters_hook,
	    .io_counter_names = io_counter_name,
	    .io_counter_help = io_counter_help,
	    .n_io_counters = IO_CTR_MAX,
	    .kernel_counters = kernel ? daemon_kernel_counters_hook : NULL,
	    .kernel_backend_counters = kernel ? daemon_kernel_backend_hook : NULL,
	    .kernel_explain = kernel ? daemon_kernel_explain_hook : NULL,
	    .notify = d->notify,
	    .worker_stall = d->test_hooks ? daemon_worker_stall_hook : NULL,
	};

	return ctlplane_create(&d->cp, d->config_path, d->cfg, d->current, &hooks, err, errlen);
}

/* Takes the config and snapshot back from the control plane and stops it. */
static void daemon_control_stop(struct daemon *d)
{
	struct lb_snapshot *cur = NULL;

	if (!d->cp)
		return;
	ctlplane_destroy(d->cp, &cur, &d->cfg);
	d->cp = NULL;
	d->current = cur;
}

static void daemon_summary_line(void *ctx, const char *text)
{
	(void)ctx;
	log_info("  %s", text);
}

/* Logs each worker's frames and the non-zero counters summed over workers. */
static void daemon_summary(struct daemon *d)
{
	uint64_t sum[LB_CTR_MAX] = {0}, io[IO_CTR_MAX] = {0};
	uint32_t n = dataplane_worker_count(d->dp);

	for (uint32_t i = 0; i < n; i++) {
		const uint64_t *c = lb_worker_counters(dataplane_worker(d->dp, i));
		uint64_t wio[IO_CTR_MAX] = {0};

		for (int k = 0; k < LB_CTR_MAX; k++)
			sum[k] += lb_counter_read(&c[k]);
		dataplane_io_counters(d->dp, i, wio);
		for (int k = 0; k < IO_CTR_MAX; k++)
			io[k] += wio[k];
		log_info("worker %u: %llu frames received, %llu sent", i,
		         (unsigned long long)wio[IO_CTR_RX_FRAMES],
		         (unsigned long long)wio[IO_CTR_TX_FRAMES]);
	}
	if (dataplane_kernel_forwards(d->dp)) {
		uint64_t k[LB_CTR_MAX] = {0};

		dataplane_kernel_counters(d->dp, k);
		log_info("kernel fast path: %llu frames received, %llu sent",
		         (unsigned long long)k[LB_CTR_RX_FRAMES],
		         (unsigned long long)(k[LB_CTR_TX_GRE_IPV4] + k[LB_CTR_TX_GRE_IPV6]));
		for (int c = 0; c < LB_CTR_MAX; c++)
			sum[c] += k[c];
	}
	log_info("counters (sum over %u workers%s):", n,
	         dataplane_kernel_forwards(d->dp) ? " and the kernel" : "");
	lb_counters_summary(io_counter_name, io, IO_CTR_MAX, daemon_summary_line, NULL);
	lb_counters_summary(lb_counter_name, sum, LB_CTR_MAX, daemon_summary_line, NULL);
}

static int daemon_signals_block(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -errno;
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	return d->sig_fd < 0 ? -errno : 0;
}

/*
 * The control thread's loop until SIGTERM/SIGINT: SIGHUP asks the control plane for a reload;
 * control socket clients and health probes are served by ctlplane_run; the watchdog looks at
 * the workers when its turn comes (so a control loop that hangs stops the pings too).
 */
static void daemon_loop(struct daemon *d)
{
	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = d->sig_fd, .events = POLLIN},
		    {.fd = ctlplane_fd(d->cp), .events = POLLIN},
		};
		struct signalfd_siginfo si;
		uint32_t wd = notify_watchdog(d->notify, clock_now_ms());
		int rc;

		if (poll(pfd, 2, wd < DAEMON_TICK_MS ? (int)wd : DAEMON_TICK_MS) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return;
		}
		rc = ctlplane_run(d->cp, 0);
		if (rc < 0)
			log_err("control plane: %s", strerror(-rc));
		if (!(pfd[0].revents & POLLIN) || read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("%s, stopping", strsignal((int)si.ssi_signo));
			notify_stopping(d->notify);
			return;
		}
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP, reloading %s", d->config_path);
			ctlplane_request_reload(d->cp);
			ctlplane_run(d->cp, 0);
		}
	}
}

/*
 * Clean stop with announce.* on: the VIP routes go first, then the workers keep forwarding for
 * announce.withdraw_delay while BGP tells the routers, so flows move to the other maglevd
 * (which sends them to the same backends) without a packet lost to a stopped data plane.
 */
static void daemon_withdraw(struct daemon *d)
{
	uint32_t ms = ctlplane_withdraw(d->cp);
	struct timespec ts = clock_ms_timespec(ms);

	if (!ms)
		return;
	log_info("VIP routes withdrawn; forwarding %u ms more before stopping", ms);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int daemon_run(const char *config_path)
{
	struct daemon d = {.config_path = config_path, .sig_fd = -1};
	struct lb_snapshot *first = NULL;
	char err[DAEMON_ERR_MAX] = "";
	int rc, exit_code = DAEMON_EXIT_FAILURE;

	rcu_register_thread();
	d.test_hooks =
	    getenv(DAEMON_TEST_HOOKS_ENV) && strcmp(getenv(DAEMON_TEST_HOOKS_ENV), "1") == 0;
	if (d.test_hooks)
		log_warn("%s=1: test hooks on (a worker can be stalled over the control socket); "
		         "not for production",
		         DAEMON_TEST_HOOKS_ENV);
	daemon_nofile_raise();
	rc = config_load_daemon(config_path, &d.cfg, err, sizeof(err));
	if (rc)
		goto out;
	rc = daemon_signals_block(&d);
	if (rc) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(-rc));
		goto out;
	}
	rc = dataplane_start(&d.dp, d.cfg, &d.current, err, sizeof(err));
	if (rc)
		goto out;
	/*
	 * Once the interface is ours: a maglevd refused for it (another one runs there) neither
	 * reads the state file nor logs about it, and its one line is the reason.
	 */
	rc = ctlplane_build_first(d.cfg, &first, err, sizeof(err));
	if (rc)
		goto out;
	rc = daemon_publish(&d, first);
	if (rc) {
		snprintf(err, sizeof(err), "cannot publish the first snapshot: %s", strerror(-rc));
		goto out;
	}
	first = NULL;
	log_info("running on %s, %s, %u workers, %u VIPs", d.cfg->dataplane.interface,
	         dataplane_mode(d.dp), dataplane_worker_count(d.dp), d.current->n_vips);
	rc = daemon_notify_start(&d, err, sizeof(err));
	if (rc)
		goto out;
	rc = daemon_control_start(&d, err, sizeof(err));
	if (rc)
		goto out;
	/* The first table forwards, the socket answers, the routes are announced: ready. */
	notify_ready(d.notify);
	daemon_loop(&d);
	daemon_withdraw(&d);
	dataplane_halt(d.dp);
	daemon_control_stop(&d);
	daemon_summary(&d);
	exit_code = DAEMON_EXIT_OK;
out:
	if (exit_code != DAEMON_EXIT_OK)
		log_err("%s", err[0] ? err : strerror(-rc));
	daemon_control_stop(&d);
	dataplane_stop(d.dp);
	notify_destroy(d.notify);
	snapshot_free(first);
	snapshot_free(d.current);
	config_free(d.cfg);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	rcu_unregister_thread();
	return exit_code;
}
