/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * maglevd under systemd: the service notification protocol (sd_notify from libsystemd) and a
 * watchdog that pings only while every data-plane worker makes progress. Without NOTIFY_SOCKET
 * in the environment every call is a no-op; NULL n is fine everywhere.
 *
 * What is sent, each one datagram: "READY=1\nSTATUS=..." once the data plane forwards on the
 * first table and again after every reload (applied or refused); "RELOADING=1\nMONOTONIC_USEC=N"
 * before a reload; "STATUS=..." alone when the summary changes outside a reload; "WATCHDOG=1"
 * every half WATCHDOG_USEC while every worker makes progress; "STOPPING=1\nSTATUS=stopping".
 */
#ifndef MAGLEV_MAGLEVD_NOTIFY_H
#define MAGLEV_MAGLEVD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_STATUS_MAX 512u /* bytes of a STATUS= line, NUL included; longer ones are cut */

/* How the watchdog asks the data plane about worker i (0..n_workers); the control thread calls. */
struct notify_hooks {
	void *ctx;
	uint32_t n_workers;
	/* The worker's loop count (dataplane_worker_loops): it advances while the worker runs. */
	uint64_t (*loops)(void *ctx, uint32_t i);
	/* True if frames wait on the worker's receive ring (dataplane_worker_rx_pending). */
	bool (*rx_pending)(void *ctx, uint32_t i);
};

struct notify;

/*
 * Reads NOTIFY_SOCKET and the watchdog's WATCHDOG_USEC / WATCHDOG_PID (sd_watchdog_enabled) and
 * takes each worker's loop count as the watchdog's starting point; now_ms is clock_now_ms().
 * Returns 0 and *out (also when not under systemd: then every call does nothing), or -ENOMEM.
 */
int notify_create(struct notify **out, const struct notify_hooks *h, uint64_t now_ms);

void notify_destroy(struct notify *n);

/* True when NOTIFY_SOCKET is set. */
bool notify_enabled(const struct notify *n);

/* The watchdog interval systemd asked for (WatchdogSec=), in µs; 0 = no watchdog. */
uint64_t notify_watchdog_usec(const struct notify *n);

/*
 * The one-line summary sent as STATUS= (control characters become spaces): sent at once if it
 * changed while maglevd is ready, else kept for the READY=1 that follows.
 */
void notify_status(struct notify *n, const char *status);

/* READY=1 with the current STATUS=: the first time, and to end a reload (notify_reloading). */
void notify_ready(struct notify *n);

/* RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, as systemd >= 253 wants it). */
void notify_reloading(struct notify *n);

/* STOPPING=1: a clean stop has begun. No more watchdog pings after it. */
void notify_stopping(struct notify *n);

/*
 * The watchdog's turn; call it from the control loop at least every few hundred ms, with
 * now_ms = clock_now_ms(). Every half interval it looks at every worker: one whose loop count
 * did not move since the last look while frames wait on its receive ring is stuck (logged once
 * as an error naming it, and put in STATUS=); an idle worker, or a busy one that moves, is not.
 * It pings (WATCHDOG=1) only when no worker is stuck, so systemd kills a maglevd with a stuck
 * worker after WatchdogSec=, and one whose control loop hangs the same way (no call, no ping).
 * Returns the ms until the next look (UINT32_MAX without a watchdog).
 */
uint32_t notify_watchdog(struct notify *n, uint64_t now_ms);

/* Workers the last look found stuck. */
uint32_t notify_stuck_count(const struct notify *n);

#endif
