/* SPDX-License-Identifier: GPL-2.0-only */
/* systemd notification (sd_notify) and the watchdog that pings only while the workers progress. */
#include "maglevd/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "base/clock.h"
#include "base/log.h"

#define NOTIFY_MSG_MAX (NOTIFY_STATUS_MAX + 64u) /* bytes of one datagram */

struct notify {
	struct notify_hooks h;
	bool enabled;  /* NOTIFY_SOCKET is set */
	bool ready;    /* READY=1 sent and no reload under way: STATUS= goes out at once */
	bool stopping; /* STOPPING=1 sent: no more pings */
	bool send_warned;
	uint64_t wd_usec;     /* WATCHDOG_USEC; 0 = no watchdog */
	uint64_t wd_every_ms; /* half of it: a look (and a ping) this often */
	uint64_t wd_next_ms;  /* the next look */
	uint64_t *seen;       /* per worker: its loop count at the last look */
	bool *stuck;          /* per worker: stuck at the last look */
	uint32_t n_stuck;
	char base[NOTIFY_STATUS_MAX]; /* the summary notify_status gave */
	char sent[NOTIFY_STATUS_MAX]; /* the STATUS= last sent */
};

/* One datagram to NOTIFY_SOCKET; a failure is logged once (systemd went away, say). */
static void notify_send(struct notify *n, const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0 && !n->send_warned) {
		n->send_warned = true;
		log_warn("sd_notify to $NOTIFY_SOCKET failed: %s (further failures not logged)",
		         strerror(-rc));
	}
}

int notify_create(struct notify **out, const struct notify_hooks *h, uint64_t now_ms)
{
	struct notify *n = calloc(1, sizeof(*n));
	const char *sock = getenv("NOTIFY_SOCKET");
	uint64_t usec = 0;

	if (!n)
		return -ENOMEM;
	n->h = *h;
	n->enabled = sock && sock[0];
	if (n->enabled && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		n->seen = calloc(h->n_workers + 1, sizeof(*n->seen));
		n->stuck = calloc(h->n_workers + 1, sizeof(*n->stuck));
		if (!n->seen || !n->stuck) {
			notify_destroy(n);
			return -ENOMEM;
		}
		n->wd_usec = usec;
		n->wd_every_ms = usec / 2 / (USEC_PER_SEC / MSEC_PER_SEC);
		if (n->wd_every_ms == 0)
			n->wd_every_ms = 1;
		n->wd_next_ms = now_ms + n->wd_every_ms;
		for (uint32_t i = 0; i < h->n_workers; i++)
			n->seen[i] = h->loops(h->ctx, i);
	}
	if (n->enabled)
		log_info("systemd notification on%s", n->wd_usec ? "" : ", no watchdog");
	if (n->wd_usec)
		log_info("watchdog: every %llu ms, while each of %u workers makes progress "
		         "(WatchdogSec=%llu ms)",
		         (unsigned long long)n->wd_every_ms, h->n_workers,
		         (unsigned long long)(usec / (USEC_PER_SEC / MSEC_PER_SEC)));
	*out = n;
	return 0;
}

void notify_destroy(struct notify *n)
{
	if (!n)
		return;
	free(n->seen);
	free(n->stuck);
	free(n);
}

bool notify_enabled(const struct notify *n)
{
	return n && n->enabled;
}

uint64_t notify_watchdog_usec(const struct notify *n)
{
	return n ? n->wd_usec : 0;
}

uint32_t notify_stuck_count(const struct notify *n)
{
	return n ? n->n_stuck : 0;
}

/* The STATUS= text: the summary, and the stuck workers while there are any. */
static void notify_status_text(const struct notify *n, char *buf, size_t len)
{
	uint32_t first = 0;

	if (!n->n_stuck) {
		snprintf(buf, len, "%s", n->base);
		return;
	}
	while (first < n->h.n_workers && !n->stuck[first])
		first++;
	/* First, where systemctl status shows it; the summary after it may be cut. */
	snprintf(buf, len, "watchdog: %u worker%s stuck (worker %u), not pinging; %.400s",
	         n->n_stuck, n->n_stuck == 1 ? "" : "s", first, n->base);
}

/* "STATUS=..." into msg if the text changed since the last one sent (or always); false if not. */
static bool notify_status_line(struct notify *n, bool always, char *msg, size_t len)
{
	char text[NOTIFY_STATUS_MAX];

	notify_status_text(n, text, sizeof(text));
	if (!always && strcmp(text, n->sent) == 0)
		return false;
	snprintf(n->sent, sizeof(n->sent), "%s", text);
	snprintf(msg, len, "STATUS=%s", text);
	return true;
}

/* Sends STATUS= if it changed, unless it waits for a READY=1 (or STOPPING=1 was sent). */
static void notify_status_flush(struct notify *n)
{
	char msg[NOTIFY_MSG_MAX];

	if (n->ready && !n->stopping && notify_status_line(n, false, msg, sizeof(msg)))
		notify_send(n, msg);
}

void notify_status(struct notify *n, const char *status)
{
	if (!n || !n->enabled)
		return;
	snprintf(n->base, sizeof(n->base), "%s", status);
	/* One line: systemd reads each line of the datagram as an assignment. */
	for (char *p = n->base; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = ' ';
	notify_status_flush(n);
}

void notify_ready(struct notify *n)
{
	char msg[NOTIFY_MSG_MAX] = "READY=1\n";
	size_t l = strlen(msg);

	if (!n || !n->enabled || n->stopping)
		return;
	notify_status_line(n, true, msg + l, sizeof(msg) - l);
	notify_send(n, msg);
	n->ready = true;
}

void notify_reloading(struct notify *n)
{
	char msg[NOTIFY_MSG_MAX];

	if (!n || !n->enabled || n->stopping)
		return;
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)(clock_now_ns() / NSEC_PER_USEC));
	notify_send(n, msg);
	n->ready = false;
}

void notify_stopping(struct notify *n)
{
	if (!n || !n->enabled || n->stopping)
		return;
	notify_send(n, "STOPPING=1\nSTATUS=stopping");
	n->stopping = true;
}

/*
 * One look at every worker. A count that moved is progress; one that stood still is fine while
 * nothing waits for the worker (idle wake-ups move it every DATAPLANE_IDLE_MS anyway, so this is
 * a worker kept off its CPU with nothing to do). Returns true if no worker is stuck.
 */
static bool notify_workers_look(struct notify *n)
{
	uint32_t was = n->n_stuck;

	n->n_stuck = 0;
	for (uint32_t i = 0; i < n->h.n_workers; i++) {
		uint64_t loops = n->h.loops(n->h.ctx, i);
		bool stuck = loops == n->seen[i] && n->h.rx_pending(n->h.ctx, i);

		n->seen[i] = loops;
		if (stuck && !n->stuck[i])
			log_err("watchdog: worker %u made no progress for %llu ms while frames "
			        "wait on its receive ring: not pinging systemd, which restarts "
			        "maglevd after WatchdogSec= without pings",
			        i, (unsigned long long)n->wd_every_ms);
		else if (!stuck && n->stuck[i])
			log_info("watchdog: worker %u makes progress again", i);
		n->stuck[i] = stuck;
		n->n_stuck += stuck;
	}
	if (was || n->n_stuck)
		notify_status_flush(n);
	return n->n_stuck == 0;
}

uint32_t notify_watchdog(struct notify *n, uint64_t now_ms)
{
	if (!n || !n->wd_usec || n->stopping)
		return UINT32_MAX;
	if (now_ms < n->wd_next_ms)
		return (uint32_t)(n->wd_next_ms - now_ms);
	/*
	 * From now, not from when it was due: a control loop that was late (a long reload) gives
	 * the workers a full interval before the next look instead of a short one.
	 */
	n->wd_next_ms = now_ms + n->wd_every_ms;
	if (notify_workers_look(n))
		notify_send(n, "WATCHDOG=1");
	return (uint32_t)n->wd_every_ms;
}
