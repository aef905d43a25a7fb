/* SPDX-License-Identifier: GPL-2.0-only */
/* Prometheus metrics: a text exposition writer and its HTTP endpoint (libmicrohttpd) at /metrics.
 */
#ifndef MAGLEV_MAGLEVD_METRICS_H
#define MAGLEV_MAGLEVD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CONNECTIONS_MAX    16u   /* HTTP connections open at once */
#define METRICS_CONNECTIONS_PER_IP 4u    /* of them from one client address */
#define METRICS_REQUEST_TIMEOUT_MS 5000u /* from accept (or the last answer) to the next answer */
#define METRICS_LABELS_MAX         8u    /* label pairs of one sample */
#define METRICS_PATH               "/metrics"

/* An exposition being written: text format version 0.0.4. */
struct metrics_writer;

/*
 * Starts the family name: writes its "# HELP" and "# TYPE" lines (type "counter", "gauge" or
 * "untyped"). Call once per family, then metrics_sample for each of its samples; every sample of
 * a family must follow its metrics_family call without another family in between.
 */
void metrics_family(struct metrics_writer *w, const char *name, const char *type, const char *help);

/*
 * One sample of the current family. labels is a NULL-terminated list of name, value, name,
 * value ... (NULL itself for none); values are escaped as the format requires.
 */
void metrics_sample(struct metrics_writer *w, const char *name, const char *const *labels,
                    uint64_t value);

/* Same with a floating-point value. */
void metrics_sample_f(struct metrics_writer *w, const char *name, const char *const *labels,
                      double value);

/* Fills the exposition; called on the HTTP server's thread for every scrape. */
typedef void (*metrics_collect_fn)(void *ctx, struct metrics_writer *w);

/*
 * Renders one exposition with fn: returns a malloc'd NUL-terminated text (length in *len) or
 * NULL if out of memory.
 */
char *metrics_render(metrics_collect_fn fn, void *ctx, size_t *len);

/*
 * What one client can hold of the HTTP server. A connection gets request_timeout_ms from its
 * accept, and again from each answer it was sent, to send a complete request and read the whole
 * answer; bytes that trickle in do not extend it. A new connection from an address that already
 * has connections_per_ip open, or one over connections_max in all, closes a connection (of that
 * address, or of all) that is not being answered: never answered before answered (a scraper's
 * idle keep-alive connection), then from the address with the most open, then the oldest; if
 * there is none, the new one is closed. So a slow client holds a slot for request_timeout_ms at
 * most, and cannot keep out a client that sends its request at once.
 */
struct metrics_limits {
	uint32_t connections_max;    /* 1.. */
	uint32_t connections_per_ip; /* 1..connections_max */
	uint32_t request_timeout_ms; /* 1.. */
};

struct metrics_server;

/*
 * Serves GET /metrics on address:port (numeric IPv4 or IPv6; port 0 = any free port) from a
 * thread of its own (libmicrohttpd driven by metrics.c's loop). limits NULL = the METRICS_*
 * defaults. fn runs on that thread: it must take whatever lock protects the state it reads.
 * The exposition ends with the server's own maglevd_metrics_connections_closed_total. Returns 0
 * or a negative errno: -EINVAL for a bad address or limits, -EADDRINUSE (port taken),
 * -EADDRNOTAVAIL (address not local), -EACCES, ... when it cannot listen.
 */
int metrics_start(struct metrics_server **out, const char *address, uint16_t port,
                  const struct metrics_limits *limits, metrics_collect_fn fn, void *ctx);

/* The port the server listens on. */
uint16_t metrics_port(const struct metrics_server *s);

/* Stops the server and frees it; NULL is fine. */
void metrics_stop(struct metrics_server *s);

#endif
