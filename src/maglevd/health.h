/* SPDX-License-Identifier: GPL-2.0-only */
/* Health checks: TCP connect and HTTP GET probes to backends, run by one event loop (epoll). */
#ifndef MAGLEV_MAGLEVD_HEALTH_H
#define MAGLEV_MAGLEVD_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/counter_list.h"
#include "core/addr.h"
#include "core/config.h"

#define HEALTH_CHECKS_MAX   16384u /* distinct checks per checker */
#define HEALTH_RESPONSE_MAX 512u   /* bytes of an HTTP response read to find the status line */
#define HEALTH_REQUEST_MAX  (CONFIG_PATH_MAX + 128u) /* bytes of an HTTP request */
/*
 * Probes in flight at once (each holds one socket from connect to verdict). A check that comes
 * due while this many are in flight waits for a slot, earliest due first: under load intervals
 * stretch, no check fails for it. At the default timeout (500 ms) this is about 1000 probes a
 * second of backends that never answer. Small enough that the daemon's descriptors stay below
 * FD_SETSIZE (1024), which select()-based libraries (libmicrohttpd's default) cannot go past.
 */
#define HEALTH_PROBES_INFLIGHT_MAX 512u
/*
 * The cap is also at most 1/HEALTH_NOFILE_SHARE of the soft RLIMIT_NOFILE at health_create, so
 * that probes cannot take the descriptors the rest of the daemon needs (control and metrics
 * clients, AF_XDP sockets, BPF objects; docs/control.md has the budget).
 */
#define HEALTH_NOFILE_SHARE 2u

/* Checker counters: X(enum suffix, metric name, help). */
#define HEALTH_COUNTERS(X)                                                                         \
	X(PROBES_OK, "health_probes_ok", "Health probes that passed")                              \
	X(PROBES_FAILED, "health_probes_failed",                                                   \
	  "Health probes that failed: connect refused or failed, timeout, bad or unexpected HTTP " \
	  "status")                                                                                \
	X(PROBES_DEFERRED, "health_probes_deferred",                                               \
	  "Health probes that came due while the in-flight cap was reached and waited for a slot") \
	X(LOCAL_ERRORS, "health_local_errors",                                                     \
	  "Health probes not run for an error on this host (out of descriptors, buffers, memory "  \
	  "or local ports); the check keeps its state and tries again one interval later")

#define HEALTH_CTR_ROW(id, name, help) HEALTH_CTR_##id,
COUNTER_LIST_DECLARE(health_counter, HEALTH_COUNTERS, HEALTH_CTR_ROW, HEALTH_CTR_MAX);
#undef HEALTH_CTR_ROW

/*
 * What one check probes. Two targets are the same check when address, kind, port, path,
 * expected status and mode (with a tunnel check's VIP address) are equal; a backend serving
 * several VIPs with the same direct check is probed once.
 * Its timing (interval, timeout, rise, fall, taken together) is that of the target with the
 * shortest interval, the first given of those if several have it: no VIP's check runs less often
 * than it asks. Targets of one check with different timing are logged (a warning each).
 */
struct health_target {
	struct lb_addr addr;
	enum hc_type type; /* HC_TCP or HC_HTTP */
	/*
	 * through: tunnel: the probe goes to vip_addr:port, GRE-encapsulated to addr by the
	 * checker's tunnel (health_set_tunnel), as client traffic does; part of the check's
	 * identity. Direct: to addr:port, vip_addr unused (zero).
	 */
	bool tunnel;
	struct lb_addr vip_addr;
	uint16_t port; /* host order, non-zero */
	uint16_t expect_status;
	char path[CONFIG_PATH_MAX];
	uint32_t interval_ms;
	uint32_t timeout_ms;
	uint32_t rise;
	uint32_t fall;
	char vip[CONFIG_NAME_MAX]; /* the VIP it is configured for, for messages ("" = none) */
};

struct health_checker;

/*
 * Called from health_dispatch when a check changes state; t is the check's target. The callback
 * must not call health_set_targets or health_destroy (it runs inside the checker's loop).
 */
typedef void (*health_change_fn)(void *ctx, const struct health_target *t, bool up);

/*
 * Creates a checker with no checks. cb may be NULL. Its cap on probes in flight is
 * HEALTH_PROBES_INFLIGHT_MAX, or less under a low RLIMIT_NOFILE (see HEALTH_NOFILE_SHARE): raise
 * the limit first. Returns 0 or a negative errno.
 */
int health_create(struct health_checker **out, health_change_fn cb, void *ctx);

/*
 * The tunnel that tunnel checks send their probes through (maglevd: src/io/hctunnel.c). Each
 * tunnel check holds a slot (< HEALTH_CHECKS_MAX) while it lives. Before every probe, prepare
 * readies the slot's path for target t (the backend's next hop as it is now) and sets *mark,
 * the SO_MARK of the probe's socket; or returns a negative errno and why, the probe's failure
 * reason (the probe fails: no next hop, no tunnel). release says that slot's check is gone.
 * Probes leave by the interface ifname (SO_BINDTODEVICE). Both run on the checker's thread.
 */
struct health_tunnel {
	int (*prepare)(void *ctx, const struct health_target *t, uint32_t slot, uint32_t *mark,
	               char *why, size_t len);
	void (*release)(void *ctx, uint32_t slot);
	void *ctx;
	char ifname[16]; /* IF_NAMESIZE */
};

/* Sets the tunnel (copied); without one, every probe of a tunnel check fails. */
void health_set_tunnel(struct health_checker *hc, const struct health_tunnel *tun);

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

/* Probes in flight now (sockets open), and the most there may be. */
uint32_t health_inflight(const struct health_checker *hc);
uint32_t health_inflight_max(const struct health_checker *hc);

/* A counter's value since health_create. */
uint64_t health_counter_get(const struct health_checker *hc, enum health_counter k);

/* True unless the check matching t is down; a target that is not checked is up. */
bool health_is_up(const struct health_checker *hc, const struct health_target *t);

/*
 * Why the last probe of the check matching t failed, while the check is down; NULL when it is
 * up or not checked. Valid until the next health_dispatch or health_set_targets.
 */
const char *health_reason(const struct health_checker *hc, const struct health_target *t);

/* A pollable fd (epoll) that is readable when health_dispatch has work. */
int health_fd(const struct health_checker *hc);

/*
 * Runs due probes and handles probe I/O, waiting up to timeout_ms for something to happen
 * (0 = do not wait). Calls the change callback from this thread. Returns 0 or a negative errno.
 */
int health_dispatch(struct health_checker *hc, int timeout_ms);

/*
 * Fills a target from a config check h for backend addr of VIP v (its port fills an unset one;
 * its address is where a tunnel check's probes go). -EINVAL if the check has no port (HTTP/TCP
 * check on a port-0 VIP without health.port) or type HC_NONE.
 */
int health_target_from_config(struct health_target *t, const struct config_health *h,
                              const struct lb_addr *addr, const struct config_vip *v);

/*
 * Parses the status line at the start of an HTTP/1.x response, buf[0..len) (not NUL-terminated),
 * as RFC 9112 section 4 has it: "HTTP/1." DIGIT SP 3DIGIT, then SP and a reason phrase of HTAB,
 * SP, VCHAR and obs-text bytes (ignored), then CRLF. Also taken: a bare LF as line end (RFC 9112
 * section 2.2) and no SP before an empty reason phrase ("HTTP/1.1 200\r\n"). Refused: another
 * major version, a status outside 100..599, any other byte or spacing, a CR not followed by LF.
 * Returns the status; -EAGAIN if buf is a valid start of a status line without its end yet (read
 * more); -EBADMSG if no byte appended can make it valid. A prefix of buf gives -EAGAIN or the
 * same answer as buf.
 */
int health_http_status_parse(const char *buf, size_t len);

/* "198.18.1.11:80 http /healthz" (tunnel: "... through tunnel to VIP") into buf; returns buf. */
const char *health_target_str(const struct health_target *t, char *buf, size_t len);

#endif
