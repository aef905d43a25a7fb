/* The foreground daemon: start-up, snapshot publication over RCU, signal loop, clean stop. */
#include "control/daemon.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <urcu.h>

#include "control/config_yaml.h"
#include "core/counters.h"
#include "core/pipeline.h"
#include "core/snapshot.h"
#include "io/dataplane.h"

#define DAEMON_ERR_MAX 512u /* bytes of one error line */

struct daemon {
	const char *config_path;
	struct config *cfg;
	struct lb_snapshot *current; /* RCU pointer read by the workers */
	struct dataplane *dp;
	int sig_fd;                  /* signalfd for SIGTERM, SIGINT, SIGHUP */
};

/*
 * Makes next the published snapshot: next hops and steering first, then the pointer swap, then
 * a grace period so no worker still reads the old one, then the old one's VIPs leave the filter
 * and it is freed.
 */
static int daemon_publish(struct daemon *d, struct lb_snapshot *next)
{
	struct lb_snapshot *old = d->current;
	int rc = dataplane_prepare(d->dp, next);

	if (rc)
		return rc;
	rcu_assign_pointer(d->current, next);
	synchronize_rcu();
	dataplane_commit(d->dp, next);
	snapshot_free(old);
	return 0;
}

/* The data-plane settings a running data plane cannot change: they need a restart. */
static bool daemon_restart_needed(const struct config_dataplane *a, const struct config_dataplane *b)
{
	return a->mode != b->mode || strcmp(a->interface, b->interface) != 0 ||
	       a->workers != b->workers || !lb_addr_eq(&a->source_ipv4, &b->source_ipv4) ||
	       !lb_addr_eq(&a->source_ipv6, &b->source_ipv6) ||
	       a->has_nexthop_mac != b->has_nexthop_mac;
}

/*
 * Re-reads the config file and publishes its snapshot; on any error the running config and
 * snapshot stay and err says why. Backends keep their ids (and tracked flows) across it.
 */
static int daemon_reload(struct daemon *d, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	struct lb_snapshot *next = NULL;
	int rc;

	rc = config_load(d->config_path, &cfg, err, errlen);
	if (rc == 0)
		rc = config_check_dataplane(cfg, err, errlen);
	if (rc)
		goto out;
	if (daemon_restart_needed(&d->cfg->dataplane, &cfg->dataplane))
		fprintf(stderr, "maglevd: reload: dataplane mode, interface, workers, source "
			"addresses and nexthop_mac take effect at restart only\n");
	/* What the running data plane uses stays: only VIPs, backends and tables change. */
	cfg->dataplane = d->cfg->dataplane;
	rc = snapshot_build(cfg, d->current, NULL, &next, err, errlen);
	if (rc)
		goto out;
	rc = daemon_publish(d, next);
	if (rc) {
		snprintf(err, errlen, "cannot publish the new snapshot: %s", strerror(-rc));
		goto out;
	}
	next = NULL;
	config_free(d->cfg);
	d->cfg = cfg;
	cfg = NULL;
out:
	snapshot_free(next);
	config_free(cfg);
	return rc;
}

/* Prints the non-zero counters summed over workers. */
static void daemon_summary(struct daemon *d)
{
	uint64_t sum[LB_CTR_MAX] = { 0 }, io[IO_CTR_MAX] = { 0 };
	uint32_t n = dataplane_worker_count(d->dp);

	for (uint32_t i = 0; i < n; i++) {
		const uint64_t *c = lb_worker_counters(dataplane_worker(d->dp, i));
		uint64_t wio[IO_CTR_MAX] = { 0 };

		for (int k = 0; k < LB_CTR_MAX; k++)
			sum[k] += lb_counter_read(&c[k]);
		dataplane_io_counters(d->dp, i, wio);
		for (int k = 0; k < IO_CTR_MAX; k++)
			io[k] += wio[k];
		fprintf(stderr, "maglevd: worker %u: %llu frames received, %llu sent\n", i,
			(unsigned long long)wio[IO_CTR_RX_FRAMES],
			(unsigned long long)wio[IO_CTR_TX_FRAMES]);
	}
	fprintf(stderr, "maglevd: counters (sum over %u workers):\n", n);
	for (int k = 0; k < IO_CTR_MAX; k++)
		if (io[k])
			fprintf(stderr, "  %-28s %llu\n", io_counter_name[k],
				(unsigned long long)io[k]);
	for (int k = 0; k < LB_CTR_MAX; k++)
		if (sum[k])
			fprintf(stderr, "  %-28s %llu\n", lb_counter_name[k],
				(unsigned long long)sum[k]);
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

/* Waits for SIGTERM/SIGINT; SIGHUP reloads the config file. */
static void daemon_loop(struct daemon *d)
{
	char err[DAEMON_ERR_MAX];

	for (;;) {
		struct pollfd pfd = { .fd = d->sig_fd, .events = POLLIN };
		struct signalfd_siginfo si;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "maglevd: poll: %s\n", strerror(errno));
			return;
		}
		if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			fprintf(stderr, "maglevd: %s, stopping\n", strsignal((int)si.ssi_signo));
			return;
		}
		if (si.ssi_signo != SIGHUP)
			continue;
		err[0] = '\0';
		if (daemon_reload(d, err, sizeof(err)))
			fprintf(stderr, "maglevd: reload failed, the running config stays: %s\n", err);
		else
			fprintf(stderr, "maglevd: reloaded %s: generation %llu, %u VIPs\n",
				d->config_path, (unsigned long long)d->current->generation,
				d->current->n_vips);
	}
}

int daemon_run(const char *config_path, struct config *cfg)
{
	struct daemon d = { .config_path = config_path, .cfg = cfg, .sig_fd = -1 };
	struct lb_snapshot *first = NULL;
	char err[DAEMON_ERR_MAX] = "";
	int rc, exit_code = DAEMON_EXIT_FAILURE;

	rcu_register_thread();
	rc = d.cfg ? 0 : config_load(config_path, &d.cfg, err, sizeof(err));
	if (rc == 0)
		rc = config_check_dataplane(d.cfg, err, sizeof(err));
	if (rc)
		goto out;
	rc = daemon_signals_block(&d);
	if (rc) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(-rc));
		goto out;
	}
	rc = snapshot_build(d.cfg, NULL, NULL, &first, err, sizeof(err));
	if (rc)
		goto out;
	rc = dataplane_start(&d.dp, d.cfg, &d.current, err, sizeof(err));
	if (rc)
		goto out;
	rc = daemon_publish(&d, first);
	if (rc) {
		snprintf(err, sizeof(err), "cannot publish the first snapshot: %s", strerror(-rc));
		goto out;
	}
	first = NULL;
	fprintf(stderr, "maglevd: running on %s, %s, %u workers, %u VIPs\n",
		d.cfg->dataplane.interface, dataplane_mode(d.dp), dataplane_worker_count(d.dp),
		d.current->n_vips);
	daemon_loop(&d);
	dataplane_halt(d.dp);
	daemon_summary(&d);
	exit_code = DAEMON_EXIT_OK;
out:
	if (exit_code != DAEMON_EXIT_OK)
		fprintf(stderr, "maglevd: %s\n", err[0] ? err : strerror(-rc));
	dataplane_stop(d.dp);
	snapshot_free(first);
	snapshot_free(d.current);
	config_free(d.cfg);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	rcu_unregister_thread();
	return exit_code;
}
