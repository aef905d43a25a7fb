/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * VIP announcement for scale-out: one /32 or /128 route per VIP address in a kernel routing
 * table, marked with maglevd's rtm_protocol number, that a BGP daemon (BIRD's kernel protocol)
 * learns and exports to the routers. The routes point into a TUN device that maglevd holds
 * open, so the kernel deletes them when maglevd dies in any way. All over rtnetlink (libmnl).
 * docs/scaleout.md describes the whole set-up.
 */
#ifndef MAGLEV_MAGLEVD_ANNOUNCE_H
#define MAGLEV_MAGLEVD_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/counter_list.h"
#include "core/addr.h"
#include "core/config.h"

/* How often the routes are checked against the wanted ones, and the retry after a failure. */
#define ANNOUNCE_RECONCILE_MS 5000u
#define ANNOUNCE_RETRY_MS     1000u

/* Control-plane counters of the announcer: X(enum suffix, metric name, help). */
#define ANNOUNCE_COUNTERS(X)                                                                       \
	X(ROUTES_ADDED, "announce_routes_added", "VIP routes added to the kernel table")           \
	X(ROUTES_REMOVED, "announce_routes_removed",                                               \
	  "VIP routes removed (VIP gone, withdrawn, or maglevd stopping)")                         \
	X(STALE_REMOVED, "announce_stale_routes_removed",                                          \
	  "Routes with maglevd's protocol number it had not added (an earlier run's) removed")     \
	X(ERRORS, "announce_errors", "Netlink requests about VIP routes that failed")

#define ANNOUNCE_CTR_ROW(id, name, help) ANNOUNCE_CTR_##id,
COUNTER_LIST_DECLARE(announce_counter, ANNOUNCE_COUNTERS, ANNOUNCE_CTR_ROW, ANNOUNCE_CTR_MAX);
#undef ANNOUNCE_CTR_ROW

struct announce;

/*
 * Creates the TUN device cfg->interface (not persistent: it goes with the last fd, i.e. with
 * this process), brings it up, and removes every route of cfg->protocol from cfg->table (a
 * previous run's leftovers). Returns 0, or a negative errno and one line in err.
 */
int announce_open(struct announce **out, const struct config_announce *cfg, char *err,
                  size_t errlen);

/*
 * Makes the routes of cfg->protocol in cfg->table exactly one host route per address of
 * want[0..n) (duplicates allowed) through the TUN device: adds the missing ones, removes the
 * others. Safe to call at any time (it reads the table first), also to repair routes removed
 * behind maglevd's back. Every failure is logged and counted; the rest is still done. Returns 0
 * or the first failure's negative errno.
 */
int announce_sync(struct announce *a, const struct lb_addr *want, uint32_t n);

/* True if addr's route was in the table after the last announce_sync. */
bool announce_is_live(const struct announce *a, const struct lb_addr *addr);

/* Routes in the table after the last announce_sync. */
uint32_t announce_live_count(const struct announce *a);

uint64_t announce_counter_get(const struct announce *a, enum announce_counter c);

/* The settings it was opened with (table, protocol, interface). */
const struct config_announce *announce_config(const struct announce *a);

/* Removes every route it announced, closes the TUN device (and netlink), frees a; NULL is fine. */
void announce_close(struct announce *a);

#endif
