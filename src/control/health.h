/* Health checks: TCP connect and HTTP GET probes to backends, run by one event loop (epoll). */
#ifndef MAGLEV_CONTROL_HEALTH_H
#define MAGLEV_CONTROL_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/config.h"

#define HEALTH_CHECKS_MAX   16384u /* distinct checks per checker */
#define HEALTH_RESPONSE_MAX 512u   /* bytes of an HTTP response read to find the status line */
#define HEALTH_REQUEST_MAX  (CONFIG_PATH_MAX + 128u) /* bytes of an HTTP request */

/*
 * What one check probes. Two targets are the same check when address, kind, port, path and
 * expected status are equal; a backend serving several VIPs with the same check is probed once.
 * Timing (interval, timeout, rise, fall) of the first target given for a check wins.
 */
struct health_target {
	struct lb_addr addr;
	enum hc_type type; /* HC_TCP or HC_HTTP */
	uint16_t port;     /* host order, non-zero */
	uint16_t expect_status;
	char path[CONFIG_PATH_MAX];
	uint32_t interval_ms;
	uint32_t timeout_ms;
	uint32_t rise;
	uint32_t fall;
};

struct health_checker;

/*
 * Called from health_dispatch when a check changes state; t is the check's target. The callback
 * must not call health_set_targets or health_destroy (it runs inside the checker's loop).
 */
typedef void (*health_change_fn)(void *ctx, const struct health_target *t, bool up);

/* Creates a checker with no checks. cb may be NULL. Returns 0 or a negative errno. */
int health_create(struct health_checker **out, health_change_fn cb, void *ctx);

/* Stops every probe and frees the checker; NULL is fine. */
void health_destroy(struct health_checker *hc);

/*
 * Replaces the set of checks with targets t[0..n) (duplicates merge). A check that was already
 * present keeps its state and counts; a new check starts up (traffic flows from the start) and
 * goes down after `fall` failures in a row. Returns 0, -EINVAL for a bad target, -E2BIG past
 * HEALTH_CHECKS_MAX, or -ENOMEM; on error the previous set is unchanged.
 */
int health_set_targets(struct health_checker *hc, const struct health_target *t, uint32_t n);

/* The number of distinct checks. */
uint32_t health_count(const struct health_checker *hc);

/* True unless the check matching t is down; a target that is not checked is up. */
bool health_is_up(const struct health_checker *hc, const struct health_target *t);

/* A pollable fd (epoll) that is readable when health_dispatch has work. */
int health_fd(const struct health_checker *hc);

/*
 * Runs due probes and handles probe I/O, waiting up to timeout_ms for something to happen
 * (0 = do not wait). Calls the change callback from this thread. Returns 0 or a negative errno.
 */
int health_dispatch(struct health_checker *hc, int timeout_ms);

/* Fills a target from a config check for backend addr under a VIP with port vip_port. -EINVAL if
 * the check has no port (HTTP/TCP check on a port-0 VIP without health.port) or type HC_NONE. */
int health_target_from_config(struct health_target *t, const struct config_health *h,
                              const struct lb_addr *addr, uint16_t vip_port);

/* "198.18.1.11:80 http /healthz" into buf; returns buf. */
const char *health_target_str(const struct health_target *t, char *buf, size_t len);

#endif
