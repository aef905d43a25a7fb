/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl top`: samples over the control socket on a clock, frames on a curses screen. */
#include "maglevctl/top.h"

#include <curses.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "control/ctlsock.h"
#include "core/config.h"
#include "maglevctl/online.h"
#include "maglevctl/top_view.h"

/*
 * One request's bound: a live view waits no longer for a frame than a person would; a daemon
 * that does not answer in time is "connection lost" until it does.
 */
#define TOP_CALL_TIMEOUT_MS 2000
#define TOP_CLOCK_MAX       16u /* "HH:MM:SS" with room */
#define TOP_NOTE_MAX        (CTL_ERR_MAX + 96u)

static volatile sig_atomic_t top_signal; /* SIGINT, SIGTERM or SIGHUP received */

static void top_on_signal(int sig)
{
	top_signal = sig;
}

static double top_now_s(void)
{
	return (double)clock_now_ns() / (double)NSEC_PER_SEC;
}

static void top_clock(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%H:%M:%S", &tm))
		snprintf(buf, len, "?");
}

/* The "result" of request cmd into *result; a negative errno with err set if none. */
static int top_request(const char *path, const char *cmd, json_t **result, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd), *resp = NULL;
	int ret;

	if (!req)
		return -ENOMEM;
	ret = ctl_call(path, req, &resp, TOP_CALL_TIMEOUT_MS, err, errlen);
	json_decref(req);
	if (ret < 0)
		return ret;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *e = json_string_value(json_object_get(resp, "error"));

		snprintf(err, errlen, "%s: %s", cmd, e ? e : "refused by maglevd");
		json_decref(resp);
		return -EINVAL;
	}
	*result = json_incref(json_object_get(resp, "result"));
	json_decref(resp);
	if (!json_is_object(*result)) {
		snprintf(err, errlen, "%s: maglevd's answer has no result", cmd);
		json_decref(*result);
		*result = NULL;
		return -EPROTO;
	}
	return 0;
}

/*
 * One sample, timed at the middle of its four requests: the counters are read within a few
 * milliseconds of each other, and the rates divide by the time between two such middles.
 */
static int top_sample_take(const char *path, struct top_sample *s, char *err, size_t errlen)
{
	double t0 = top_now_s();
	int ret;

	memset(s, 0, sizeof(*s));
	ret = top_request(path, "status", &s->status, err, errlen);
	if (ret == 0)
		ret = top_request(path, "counters", &s->counters, err, errlen);
	if (ret == 0)
		ret = top_request(path, "vips", &s->vips, err, errlen);
	if (ret == 0)
		ret = top_request(path, "backends", &s->backends, err, errlen);
	if (ret < 0) {
		top_sample_clear(s);
		return ret;
	}
	s->t_s = (t0 + top_now_s()) / 2;
	return 0;
}

/* Sleeps s seconds on the monotonic clock; false if a signal cut it short. */
static bool top_sleep(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s,
	                      .tv_nsec = (long)((s - floor(s)) * (double)NSEC_PER_SEC)};

	return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0;
}

/*
 * Frame lines of cur against prev (NULL: none). A view that cannot be built (no such VIP, an
 * answer without what top reads) is an error with err set if strict (the first frame: the user
 * asked for something wrong), else a frame with the reason (a reload removed the VIP).
 */
static int top_frame(const struct top_sample *prev, const struct top_sample *cur,
                     const struct top_args *a, bool strict, struct top_lines *out, char *err,
                     size_t errlen)
{
	char clock[TOP_CLOCK_MAX];
	struct top_view v;
	int ret;

	top_clock(clock, sizeof(clock));
	ret = top_view_build(prev, cur, a->vip, &v, err, errlen);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (ret == -ENOMEM || (ret < 0 && strict))
		return ret;
	if (ret < 0)
		return top_render_note(clock, err, out);
	ret = top_render(&v, clock, out);
	top_view_free(&v);
	return ret;
}

/* --once: two samples an interval apart, one frame on stdout. */
static int top_once(const struct top_args *a, const char *path, char *err, size_t errlen)
{
	struct top_sample s0, s1;
	struct top_lines lines = {0};
	struct top_view v;
	int ret;

	ret = top_sample_take(path, &s0, err, errlen);
	if (ret < 0)
		return ret;
	if (!top_sleep(a->interval_s)) {
		top_sample_clear(&s0);
		snprintf(err, errlen, "interrupted");
		return -EINTR;
	}
	ret = top_sample_take(path, &s1, err, errlen);
	if (ret < 0) {
		top_sample_clear(&s0);
		return ret;
	}
	ret = top_view_build(&s0, &s1, a->vip, &v, err, errlen);
	if (ret == 0 && a->json) {
		json_t *j = top_view_json(&v);

		ret = j ? 0 : -ENOMEM;
		if (j) {
			json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
			putchar('\n');
		}
		json_decref(j);
	} else if (ret == 0) {
		char clock[TOP_CLOCK_MAX];

		top_clock(clock, sizeof(clock));
		ret = top_render(&v, clock, &lines);
		for (size_t i = 0; ret == 0 && i < lines.n; i++)
			printf("%s\n", lines.v[i].text);
	}
	if (ret == 0)
		top_view_free(&v);
	top_lines_free(&lines);
	top_sample_clear(&s0);
	top_sample_clear(&s1);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return ret;
}

static attr_t top_attr(enum top_line_kind k)
{
	switch (k) {
	case TOP_LINE_HEADER:
	case TOP_LINE_VIP:
		return A_BOLD;
	case TOP_LINE_TITLE:
		return A_REVERSE;
	case TOP_LINE_NOTE:
		return A_BOLD | A_STANDOUT;
	case TOP_LINE_BACKEND:
	case TOP_LINE_DROP:
		break;
	}
	return A_NORMAL;
}

static void top_draw_line(int row, attr_t attr, const char *text)
{
	attrset(attr);
	mvaddnstr(row, 0, text, COLS);
	attrset(A_NORMAL);
}

/*
 * Draws lines cut to the screen: note (if any) under the header, the last row for the keys and
 * how many lines did not fit. A screen of any size works, down to one row or column.
 */
static void top_draw(const struct top_lines *l, const char *note, const struct top_args *a)
{
	int rows = LINES, row = 0;
	size_t i = 0, hidden;
	char status[TOP_LINE_MAX];

	erase();
	for (; i < l->n && row < rows - 1; i++) {
		if (note && i == TOP_HEADER_LINES && row < rows - 1)
			top_draw_line(row++, top_attr(TOP_LINE_NOTE), note);
		if (row < rows - 1)
			top_draw_line(row++, top_attr(l->v[i].kind), l->v[i].text);
		else
			break;
	}
	if (note && l->n <= TOP_HEADER_LINES && row < rows - 1)
		top_draw_line(row++, top_attr(TOP_LINE_NOTE), note);
	hidden = l->n - i;
	if (hidden)
		snprintf(status, sizeof(status), "q quit  every %.1fs  %zu more lines: enlarge",
		         a->interval_s, hidden);
	else
		snprintf(status, sizeof(status), "q quit  every %.1fs", a->interval_s);
	if (rows >= 1)
		top_draw_line(rows - 1, A_REVERSE, status);
	refresh();
}

static void top_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = top_on_signal; /* no SA_RESTART: getch returns, the loop sees the flag */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/*
 * The live view. A sample that fails (maglevd stopped, restarted, not answering) keeps the last
 * frame on screen under a "connection lost" note and is retried every interval; the first frame
 * after it has no rates again (its counters may have started over).
 */
static int top_live(const struct top_args *a, const char *path, char *err, size_t errlen)
{
	struct top_sample prev, cur;
	struct top_lines lines = {0};
	char note[TOP_NOTE_MAX] = "", lost_at[TOP_CLOCK_MAX] = "";
	bool have_prev = true;
	double next;
	int ret, ch;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		snprintf(err, errlen, "needs a terminal (--once prints one frame for scripts)");
		return -ENOTTY;
	}
	ret = top_sample_take(path, &prev, err, errlen);
	if (ret < 0)
		return ret;
	ret = top_frame(NULL, &prev, a, true, &lines, err, errlen);
	if (ret < 0) {
		top_sample_clear(&prev);
		top_lines_free(&lines);
		return ret;
	}
	top_signals(); /* before initscr, which then leaves SIGINT and SIGTERM to us */
	if (!initscr()) {
		top_sample_clear(&prev);
		top_lines_free(&lines);
		snprintf(err, errlen, "cannot set up the terminal");
		return -ENOTTY;
	}
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	top_draw(&lines, NULL, a);
	next = prev.t_s + a->interval_s;
	while (!top_signal) {
		double now = top_now_s();

		if (now < next) {
			timeout((int)ceil((next - now) * (double)MSEC_PER_SEC));
			ch = getch();
			if (ch == 'q' || ch == 'Q')
				break;
			if (ch == KEY_RESIZE || ch == 'L' - '@') /* resized, or ^L */
				top_draw(&lines, note[0] ? note : NULL, a);
			continue;
		}
		next += a->interval_s;
		if (next <= now) /* fell behind (a slow answer, a suspended terminal) */
			next = now + a->interval_s;
		if (top_sample_take(path, &cur, err, errlen) < 0) {
			if (!note[0])
				top_clock(lost_at, sizeof(lost_at));
			snprintf(note, sizeof(note),
			         "connection lost at %s: %s (retrying every %.1fs; q quits)",
			         lost_at, err, a->interval_s);
			have_prev = false;
			top_draw(&lines, note, a);
			continue;
		}
		note[0] = '\0';
		top_lines_free(&lines);
		ret = top_frame(have_prev ? &prev : NULL, &cur, a, false, &lines, err, errlen);
		top_sample_clear(&prev);
		prev = cur;
		have_prev = true;
		if (ret < 0)
			break;
		top_draw(&lines, NULL, a);
	}
	endwin();
	top_sample_clear(&prev);
	top_lines_free(&lines);
	if (top_signal) {
		/* The terminal is back: die of the signal, so the shell sees what stopped us. */
		signal(top_signal, SIG_DFL);
		raise(top_signal);
	}
	return ret < 0 ? ret : 0;
}

int top_run(int argc, char **argv, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX];
	struct top_args a;
	int ret;

	ret = top_parse(argc, argv, &a, err, errlen);
	if (ret)
		return ret;
	if (a.help) {
		top_usage(stdout);
		return 0;
	}
	ret = online_socket(a.sock, a.config, path, sizeof(path), err, errlen);
	if (ret < 0)
		return ret;
	return a.once ? top_once(&a, path, err, errlen) : top_live(&a, path, err, errlen);
}
