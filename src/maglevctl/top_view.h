/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * `maglevctl top` without a terminal: its command line, two samples of the daemon's answers turned
 * into rates (a view), and the view laid out as lines of text or as JSON. Pure: no socket, no
 * clock, no curses (top.c has those), so the unit tests feed it JSON samples.
 */
#ifndef MAGLEV_MAGLEVCTL_TOP_VIEW_H
#define MAGLEV_MAGLEVCTL_TOP_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define TOP_INTERVAL_DEFAULT_S 1.0
#define TOP_INTERVAL_MIN_S     0.1  /* shorter: the four requests a frame dominate the interval */
#define TOP_INTERVAL_MAX_S     60.0 /* longer is no live view */
#define TOP_LINE_MAX           320u /* bytes of one line of a frame, with its NUL */
#define TOP_NAME_COL_MIN       16u  /* width of the VIP/backend column: at least, */
#define TOP_NAME_COL_MAX       64u  /* at most (longer names are cut) */

/* `maglevctl top` parsed: [VIP] [-i SECONDS] [--once] [--json] [-s SOCKET | -c CONFIG]. */
struct top_args {
	const char *vip;    /* only this VIP (name or address), or NULL */
	const char *sock;   /* -s, or NULL */
	const char *config; /* -c, or NULL */
	double interval_s;  /* between samples, TOP_INTERVAL_MIN_S..TOP_INTERVAL_MAX_S */
	bool once;          /* one frame to stdout (two samples interval_s apart), then exit */
	bool json;          /* with once: the frame as JSON */
	bool help;
};

/*
 * Parses top's argv (argv[0] "top", then options and the VIP in any order). Returns 0 with out
 * filled, or COMMAND_USAGE with one line in err: an unknown option, an interval that is not a
 * number within bounds, more than one VIP, -s with -c, --json without --once.
 */
int top_parse(int argc, char **argv, struct top_args *out, char *err, size_t errlen);

/* Writes top's lines of `maglevctl --help` (command and options). */
void top_usage(FILE *f);

/*
 * One sample: the "result" objects of the status, vips, backends and counters requests, and when
 * they were taken (seconds on CLOCK_MONOTONIC; the caller's clock, any origin). Owned by whoever
 * fills it; top_sample_clear drops the references.
 */
struct top_sample {
	double t_s;
	json_t *status, *vips, *backends, *counters;
};

void top_sample_clear(struct top_sample *s);

/*
 * A rate is NAN where it cannot be known: the first sample, a row new in this sample, a counter
 * that went back (maglevd restarted). Strings point into the current sample's JSON: a view lives
 * no longer than that sample.
 */
struct top_backend_row {
	const char *address, *health,
	    *state; /* health up|down|unchecked, state active|drained|down */
	int64_t weight, config_weight;
	uint64_t packets, bytes, flows; /* totals since maglevd started */
	double pps, bps, fps;           /* packets, bits and new flows per second */
	double share_pct; /* of its VIP's packets in the interval; NAN if the VIP had none */
};

struct top_vip_row {
	const char *name, *address, *protocol;
	int64_t port, n_backends, up;
	uint64_t packets, bytes, flows;
	double pps, bps, fps;
	size_t first, n; /* its backends: view.backends[first .. first + n) */
};

struct top_drop_row {
	const char *name;
	uint64_t total;
	double per_s;
};

struct top_view {
	const char *version, *mode; /* NULL if the status answer lacks them */
	int64_t uptime_s, workers, config_generation;
	double interval_s; /* measured time between the two samples; NAN with no previous one */
	double rx_fps;     /* frames handed to the pipeline per second */
	double drops_ps;   /* sum of the drop rows' rates */
	struct top_vip_row *vips;
	struct top_backend_row *backends;
	struct top_drop_row
	    *drops; /* the drop counters whose total is not 0, in the daemon's order */
	size_t n_vips, n_backends, n_drops;
};

/*
 * The view of cur against prev (NULL: the first sample, every rate NAN), restricted to VIP only
 * (its name or address; NULL for all). Returns 0, -ENOMEM, or -EPROTO with one line in err when an
 * answer lacks what top reads. prev is ignored when maglevd's uptime went back (a restart).
 */
int top_view_build(const struct top_sample *prev, const struct top_sample *cur, const char *vip,
                   struct top_view *v, char *err, size_t errlen);

void top_view_free(struct top_view *v);

/* True if counter name counts dropped frames (drop_*, the I/O layer's losses, ICMP limited). */
bool top_is_drop_counter(const char *name);

/* A line of a frame, and what it shows (a terminal may draw the kinds differently). */
enum top_line_kind {
	TOP_LINE_HEADER,  /* maglevd's version, uptime, mode; the time; totals */
	TOP_LINE_TITLE,   /* column titles */
	TOP_LINE_VIP,     /* one VIP */
	TOP_LINE_BACKEND, /* one backend of the VIP above */
	TOP_LINE_DROP,    /* one drop reason */
	TOP_LINE_NOTE,    /* a message: connection lost, no VIP */
};

struct top_line {
	enum top_line_kind kind;
	char text[TOP_LINE_MAX]; /* no control characters, no trailing newline */
};

struct top_lines {
	struct top_line *v;
	size_t n, cap;
};

#define TOP_HEADER_LINES 2u /* top_render's lines before the column titles */

/*
 * Lays out view as lines (appended to out, which starts zeroed): TOP_HEADER_LINES of header with
 * the time string clock (any text, e.g. "12:34:56"), the column titles, each VIP and its
 * backends, then the drops. Rates are "-" where NAN. Returns 0 or -ENOMEM.
 */
int top_render(const struct top_view *v, const char *clock, struct top_lines *out);

void top_lines_free(struct top_lines *l);

/* A frame of a header line and note alone (no such VIP, a bad answer); 0 or -ENOMEM. */
int top_render_note(const char *clock, const char *note, struct top_lines *out);

/* The view as JSON (rates null where NAN); NULL if out of memory. */
json_t *top_view_json(const struct top_view *v);

/*
 * A rate or count in at most 6 characters: "-" for NAN, "0", "7.5", "950", "1.23k", "45.6M",
 * "789G", "1.23T".
 */
void top_fmt_num(double v, char *buf, size_t len);

#endif
