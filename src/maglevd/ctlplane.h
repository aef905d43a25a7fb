/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The control plane of a running maglevd, on one control thread: the config and its reloads,
 * runtime weight/drain overrides, health checks, snapshot rebuilds and their publication through
 * the daemon's hook, the control socket and the metrics endpoint.
 */
#ifndef MAGLEV_MAGLEVD_CTLPLANE_H
#define MAGLEV_MAGLEVD_CTLPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/pipeline.h"
#include "core/snapshot.h"

/* What the daemon lends the control plane. Every hook runs on the control thread. */
struct ctlplane_hooks {
	void *ctx;
	/*
	 * Makes next the snapshot every worker reads (data-plane prepare, RCU pointer swap, grace
	 * period, data-plane commit). cfg is the config next was built from. On success no worker
	 * reads the previous snapshot any more and the control plane frees it; on failure the
	 * previous one must still be the current one, and err says why.
	 */
	int (*publish)(void *ctx, const struct config *cfg, struct lb_snapshot *next, char *err,
	               size_t errlen);
	/* Worker i (0..n_workers), for counters and explain; NULL if it does not exist. */
	const struct lb_worker *(*worker)(void *ctx, uint32_t i);
	uint32_t n_workers;
	/* The data plane's mode, e.g. "afxdp copy"; NULL hook = "none". */
	const char *(*mode)(void *ctx);
	/* Adds worker i's I/O counters to out[n_io_counters] (optional). */
	void (*io_counters)(void *ctx, uint32_t i, uint64_t *out);
	const char *const *io_counter_names; /* n_io_counters names (optional) */
	const char *const *io_counter_help;
	uint32_t n_io_counters;
	/*
	 * When the kernel forwards too (xdp mode; all three NULL otherwise): adds its pipeline
	 * counters to ctr[LB_CTR_MAX], adds its counters of backend id to *out, and explains flow k
	 * with its connection table (lb_explain, true if it tracks the flow).
	 */
	void (*kernel_counters)(void *ctx, uint64_t *ctr);
	void (*kernel_backend_counters)(void *ctx, uint16_t id, struct lb_backend_counters *out);
	bool (*kernel_explain)(void *ctx, const struct lb_snapshot *s, const struct lb_flow_key *k,
	                       struct lb_explanation *out);
	/*
	 * systemd notification (maglevd/notify.h), NULL = none: RELOADING=1 before and READY=1
	 * after each reload (applied or refused, by SIGHUP or the socket), STATUS= when the summary
	 * (mode, VIPs, backends up, last reload) changes.
	 */
	struct notify *notify;
	/*
	 * Test hook (maglevd with MAGLEVD_TEST_HOOKS=1): worker i stalls for ms, as
	 * dataplane_worker_stall. NULL = the test-stall request is refused.
	 */
	int (*worker_stall)(void *ctx, uint32_t i, uint32_t ms);
};

struct ctlplane;
struct notify;

/*
 * Builds the first snapshot of cfg, the one a start publishes before ctlplane_create: with
 * cfg->control.state_dir set, each VIP's previous generation comes from the state file an
 * earlier maglevd left there (maglevd/state.h), so second chances survive the restart. Logs
 * per VIP what it restored, or why the file was not used (none yet, unreadable, damaged,
 * another format version or hash seed); a file that cannot be used never fails the build.
 * Returns 0 and *out, or snapshot_build's negative errno and err.
 */
int ctlplane_build_first(const struct config *cfg, struct lb_snapshot **out, char *err,
                         size_t errlen);

/*
 * Creates the control plane for config file path, already loaded as cfg, with snapshot cur
 * already published; takes ownership of both. Opens the control socket and the metrics endpoint
 * of cfg->control, starts the health checks and, with cfg->announce.enabled, announces the VIPs
 * (maglevd/announce.h: fails if the TUN device cannot be made). With cfg->control.state_dir
 * set, writes cur's state file, and again after every snapshot it publishes (a failed write is
 * logged and counted, never an error). Returns 0, or a negative errno and err.
 */
int ctlplane_create(struct ctlplane **out, const char *path, struct config *cfg,
                    struct lb_snapshot *cur, const struct ctlplane_hooks *hooks, char *err,
                    size_t errlen);

/*
 * One round of the control loop: waits up to timeout_ms (0 = no wait, e.g. after polling
 * ctlplane_fd) for control socket clients and health probes, handles them, runs a reload asked for
 * by ctlplane_request_reload, and rebuilds the snapshot when health or overrides changed. Returns 0
 * or a negative errno.
 */
int ctlplane_run(struct ctlplane *cp, int timeout_ms);

/* Asks for a reload at the next ctlplane_run; async-signal-safe (for SIGHUP). */
void ctlplane_request_reload(struct ctlplane *cp);

/*
 * Re-reads the config file and publishes it. A config that does not load leaves everything as it
 * was; err holds "FILE:LINE: reason". Runtime weight/drain overrides are dropped on success;
 * health state of checks that stay is kept. Returns 0 or a negative errno.
 */
int ctlplane_reload(struct ctlplane *cp, char *err, size_t errlen);

/*
 * For a clean stop: withdraws every VIP route (announce.*) and stops announcing. Returns how
 * long, in ms, the caller should keep the data plane forwarding so that routers move the flows
 * away first (announce.withdraw_delay; 0 when nothing was announced).
 */
uint32_t ctlplane_withdraw(struct ctlplane *cp);

/* A pollable fd (epoll) that is readable when ctlplane_run has socket or health work. */
int ctlplane_fd(const struct ctlplane *cp);

/*
 * Stops the socket, metrics and health checks and frees the control plane. The current snapshot
 * and config go to *cur and *cfg when those are not NULL (the daemon frees them once the data
 * plane is stopped), else they are freed too. NULL cp is fine.
 */
void ctlplane_destroy(struct ctlplane *cp, struct lb_snapshot **cur, struct config **cfg);

#endif
