/* SPDX-License-Identifier: GPL-2.0-only */
/* Prometheus text exposition (format 0.0.4) and its HTTP endpoint on libmicrohttpd. */
#include "maglevd/metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/addr.h"

#define METRICS_BUF_INITIAL  (16u * 1024u) /* bytes; grows by doubling */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/*
 * libmicrohttpd's own connection limit is this many times ours: connections over our limit must
 * be accepted for the oldest slow one to be closed in their favour (at its limit libmicrohttpd
 * stops accepting, and new clients would wait in the backlog behind the slow ones).
 */
#define METRICS_MHD_LIMIT_FACTOR 2u
#define METRICS_LOG_PER_S        5u /* libmicrohttpd messages logged a second at most */

struct metrics_writer {
	char *buf;
	size_t len, cap;
	bool failed; /* out of memory: the render returns NULL */
};

static void metrics_put(struct metrics_writer *w, const char *s, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : METRICS_BUF_INITIAL;
		char *nb;

		while (w->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->failed = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void metrics_puts(struct metrics_writer *w, const char *s)
{
	metrics_put(w, s, strlen(s));
}

static void metrics_printf(struct metrics_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_writer *w, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		metrics_put(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void metrics_escaped(struct metrics_writer *w, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			metrics_puts(w, "\\\\");
		else if (*s == '\n')
			metrics_puts(w, "\\n");
		else if (*s == '"' && quote)
			metrics_puts(w, "\\\"");
		else
			metrics_put(w, s, 1);
	}
}

void metrics_family(struct metrics_writer *w, const char *name, const char *type, const char *help)
{
	metrics_puts(w, "# HELP ");
	metrics_puts(w, name);
	metrics_puts(w, " ");
	metrics_escaped(w, help, false);
	metrics_puts(w, "\n# TYPE ");
	metrics_puts(w, name);
	metrics_puts(w, " ");
	metrics_puts(w, type);
	metrics_puts(w, "\n");
}

static void metrics_labels(struct metrics_writer *w, const char *name, const char *const *labels)
{
	metrics_puts(w, name);
	if (!labels || !labels[0])
		return;
	metrics_puts(w, "{");
	for (unsigned i = 0; i < 2 * METRICS_LABELS_MAX && labels[i] && labels[i + 1]; i += 2) {
		if (i)
			metrics_puts(w, ",");
		metrics_puts(w, labels[i]);
		metrics_puts(w, "=\"");
		metrics_escaped(w, labels[i + 1], true);
		metrics_puts(w, "\"");
	}
	metrics_puts(w, "}");
}

void metrics_sample(struct metrics_writer *w, const char *name, const char *const *labels,
                    uint64_t value)
{
	metrics_labels(w, name, labels);
	metrics_printf(w, " %llu\n", (unsigned long long)value);
}

void metrics_sample_f(struct metrics_writer *w, const char *name, const char *const *labels,
                      double value)
{
	metrics_labels(w, name, labels);
	metrics_printf(w, " %.17g\n", value);
}

char *metrics_render(metrics_collect_fn fn, void *ctx, size_t *len)
{
	struct metrics_writer w = {0};

	metrics_put(&w, "", 0);
	fn(ctx, &w);
	if (w.failed) {
		free(w.buf);
		return NULL;
	}
	*len = w.len;
	return w.buf;
}

/* Why the server closed a connection itself (the server's own metric). */
enum metrics_close {
	METRICS_CLOSE_TIMEOUT, /* request_timeout_ms passed without a complete answer */
	METRICS_CLOSE_EVICTED, /* the oldest slow one, closed for a new connection */
	METRICS_CLOSE_REFUSED, /* a new connection over the limits with nobody to evict */
	METRICS_CLOSE_N,
};

static const char *const metrics_close_names[METRICS_CLOSE_N] = {
    [METRICS_CLOSE_TIMEOUT] = "timeout",
    [METRICS_CLOSE_EVICTED] = "evicted",
    [METRICS_CLOSE_REFUSED] = "refused",
};

/*
 * One TCP connection, from libmicrohttpd's connection-started to its connection-closed
 * notification (its socket context). Only the server's thread touches it.
 */
struct metrics_conn {
	struct metrics_conn *prev, *next;
	int fd;
	struct sockaddr_storage peer;
	uint64_t deadline_ms; /* the answer must be sent by then */
	bool requested;       /* a complete request came in; not evicted while it is answered */
	bool served;          /* was sent an answer: a client that speaks HTTP, evicted last */
	bool closing;         /* shut down by us: no longer counted, libmicrohttpd closes it */
};

struct metrics_server {
	struct MHD_Daemon *mhd;
	metrics_collect_fn fn;
	void *ctx;
	uint16_t port;
	struct metrics_limits lim;
	int stop_fd; /* eventfd: the thread ends when it is readable */
	pthread_t thread;
	bool thread_started;
	struct metrics_conn *conns; /* every open connection, newest first */
	uint64_t closed[METRICS_CLOSE_N];
	bool reaped;         /* libmicrohttpd closed a connection in its last run */
	uint64_t log_second; /* of the last libmicrohttpd message, and how many in it */
	uint32_t log_count;
};

static bool metrics_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/*
 * Ends c: shutdown() makes its socket readable at EOF, so libmicrohttpd's next run closes it and
 * sends the connection-closed notification. The fd stays valid until then (libmicrohttpd closes
 * it on this same thread).
 */
static void metrics_conn_close(struct metrics_server *s, struct metrics_conn *c,
                               enum metrics_close why)
{
	if (c->closing)
		return;
	c->closing = true;
	s->closed[why]++;
	shutdown(c->fd, SHUT_RDWR);
}

/* Open connections from c's address. */
static uint32_t metrics_host_open(const struct metrics_server *s, const struct metrics_conn *c)
{
	uint32_t n = 0;

	for (const struct metrics_conn *o = s->conns; o; o = o->next)
		n += !o->closing && metrics_same_host(&o->peer, &c->peer);
	return n;
}

/*
 * Whether c is a better connection to evict than v (NULL: any is). First those never answered
 * (a slowloris never is; a scraper's keep-alive connection idles between its scrapes and must not
 * be the one to go), then with global scope those whose address holds the most connections (the
 * flooder, not the one scraper among them), then the oldest (nearest its deadline).
 */
static bool metrics_evict_before(const struct metrics_server *s, const struct metrics_conn *c,
                                 const struct metrics_conn *v, bool per_ip)
{
	uint32_t nc, nv;

	if (!v)
		return true;
	if (c->served != v->served)
		return !c->served;
	if (!per_ip) {
		nc = metrics_host_open(s, c);
		nv = metrics_host_open(s, v);
		if (nc != nv)
			return nc > nv;
	}
	return c->deadline_ms <= v->deadline_ms;
}

/*
 * Admits the new connection n: while its address, or everybody, is over a limit, one connection
 * of that scope that is not being answered is closed (metrics_evict_before picks it); n itself
 * when there is no other. Costs O(open^2) with global scope: open is at most
 * METRICS_MHD_LIMIT_FACTOR x connections_max, a few dozen.
 */
static void metrics_admit(struct metrics_server *s, struct metrics_conn *n)
{
	for (int scope = 0; scope < 2 && !n->closing; scope++) {
		const bool per_ip = scope == 0;
		uint32_t max = per_ip ? s->lim.connections_per_ip : s->lim.connections_max;
		struct metrics_conn *victim = NULL;
		uint32_t open = 0;

		for (struct metrics_conn *c = s->conns; c; c = c->next) {
			if (c->closing || (per_ip && !metrics_same_host(&c->peer, &n->peer)))
				continue;
			open++;
			if (c != n && !c->requested && metrics_evict_before(s, c, victim, per_ip))
				victim = c;
		}
		if (open <= max)
			continue;
		if (victim)
			metrics_conn_close(s, victim, METRICS_CLOSE_EVICTED);
		else
			metrics_conn_close(s, n, METRICS_CLOSE_REFUSED);
	}
}

static void metrics_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
	struct metrics_server *s = cls;
	struct metrics_conn *c = *socket_context;
	const union MHD_ConnectionInfo *fd, *peer;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		s->reaped = true;
		if (!c)
			return;
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c);
		*socket_context = NULL;
		return;
	}
	fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	peer = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	c = calloc(1, sizeof(*c));
	if (!c || !fd || !peer || !peer->client_addr) {
		/* Untracked, it could outlive every limit: refuse it rather. */
		free(c);
		if (fd)
			shutdown(fd->connect_fd, SHUT_RDWR);
		s->closed[METRICS_CLOSE_REFUSED]++;
		return;
	}
	c->fd = fd->connect_fd;
	memcpy(&c->peer, peer->client_addr,
	       peer->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                                : sizeof(struct sockaddr_in));
	c->deadline_ms = clock_now_ms() + s->lim.request_timeout_ms;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	*socket_context = c;
	metrics_admit(s, c);
}

/* An answer was sent (or the request failed): the connection's next request gets a new clock. */
static void metrics_notify_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                                     enum MHD_RequestTerminationCode toe)
{
	struct metrics_server *s = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct metrics_conn *c = ci ? ci->socket_context : NULL;

	(void)req_cls;
	if (!c)
		return;
	c->requested = false;
	c->served |= toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
	c->deadline_ms = clock_now_ms() + s->lim.request_timeout_ms;
}

/*
 * Whether the client has shut down its sending side and libmicrohttpd has read all it sent.
 * libmicrohttpd 0.9.75 in epoll mode misses that end of stream when it comes with the first data
 * of a new connection (edge-triggered: one event, the data read, the EOF never seen), and would
 * keep the connection until its deadline.
 */
static bool metrics_peer_done(const struct metrics_conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
	int unread = 0;

	return poll(&p, 1, 0) == 1 && p.revents & (POLLRDHUP | POLLHUP | POLLERR) &&
	       ioctl(c->fd, FIONREAD, &unread) == 0 && unread == 0;
}

/*
 * Closes connections past their deadline, and those whose client stopped sending before a
 * complete request (it can never be answered; not counted: the client ended it). Returns ms
 * until the next deadline (-1 = none).
 */
static int metrics_expire(struct metrics_server *s)
{
	uint64_t now = clock_now_ms(), next = UINT64_MAX;

	for (struct metrics_conn *c = s->conns; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->deadline_ms <= now) {
			metrics_conn_close(s, c, METRICS_CLOSE_TIMEOUT);
		} else if (!c->requested && metrics_peer_done(c)) {
			c->closing = true;
			shutdown(c->fd, SHUT_RDWR);
		} else if (c->deadline_ms < next) {
			next = c->deadline_ms;
		}
	}
	return next == UINT64_MAX ? -1 : (int)(next - now);
}

/*
 * libmicrohttpd's messages (one per connection a client drops mid-request, for one), prefixed
 * and at most METRICS_LOG_PER_S a second, so a flood of clients cannot flood the log. It logs
 * from the thread that calls it: start and stop, else only the server's thread.
 */
static void metrics_log(void *cls, const char *fmt, va_list ap)
{
	struct metrics_server *s = cls;
	uint64_t second = clock_now_ms() / MSEC_PER_SEC;
	char line[LOG_LINE_MAX];

	if (second != s->log_second) {
		s->log_second = second;
		s->log_count = 0;
	}
	if (s->log_count++ >= METRICS_LOG_PER_S)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_warn("metrics: %s", line);
}

/* The collector's exposition, then the server's own family. */
static void metrics_collect_all(void *ctx, struct metrics_writer *w)
{
	struct metrics_server *s = ctx;

	s->fn(s->ctx, w);
	metrics_family(w, "maglevd_metrics_connections_closed_total", "counter",
	               "Metrics HTTP connections the server closed: timeout (no complete answer "
	               "within the request timeout), evicted (oldest slow one, for a new "
	               "connection), refused (over the limits, nobody to evict)");
	for (int i = 0; i < METRICS_CLOSE_N; i++) {
		const char *l[] = {"reason", metrics_close_names[i], NULL};

		metrics_sample(w, "maglevd_metrics_connections_closed_total", l, s->closed[i]);
	}
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                                     char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * Whether the request announces a body. A scrape has none; libmicrohttpd 0.9.75 would wait for a
 * body of unknown length (any Transfer-Encoding but chunked) until the connection's deadline
 * even after the client has ended its side, holding a slot: such a request is answered at once.
 */
static bool metrics_has_body(struct MHD_Connection *conn)
{
	const char *len =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                   MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
	       (len && strcmp(len, "0") != 0);
}

static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
	struct metrics_server *s = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	char *body;
	size_t len;

	(void)version;
	(void)upload_data;
	/* Called once the request line and headers are in: it is no longer a slow client. */
	if (ci && ci->socket_context)
		((struct metrics_conn *)ci->socket_context)->requested = true;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
		                     strdup("GET only\n"), strlen("GET only\n"));
	if (metrics_has_body(conn))
		return metrics_reply(conn, MHD_HTTP_BAD_REQUEST, "text/plain",
		                     strdup("no body expected\n"), strlen("no body expected\n"));
	/* First call per request only announces it; answer on the second (no body for GET). */
	if (!*req_cls) {
		*req_cls = s;
		return MHD_YES;
	}
	*upload_data_size = 0;
	if (strcmp(url, METRICS_PATH) != 0)
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain",
		                     strdup("see " METRICS_PATH "\n"),
		                     strlen("see " METRICS_PATH "\n"));
	body = metrics_render(metrics_collect_all, s, &len);
	if (!body)
		return MHD_NO;
	return metrics_reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, len);
}

/*
 * The server's thread: libmicrohttpd in external-epoll mode, so that between its runs this
 * thread, which owns every metrics_conn, can close connections past their deadline. After a run
 * that closed a connection it runs again at once: at its connection limit libmicrohttpd takes
 * its listening socket out of the epoll set, and puts it back only at the start of a run; waiting
 * for an event first could mean waiting for ever, with new clients in the listen backlog.
 */
static void *metrics_loop(void *arg)
{
	struct metrics_server *s = arg;
	const union MHD_DaemonInfo *ep = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct pollfd p[2] = {
	    {.fd = ep ? ep->epoll_fd : -1, .events = POLLIN},
	    {.fd = s->stop_fd, .events = POLLIN},
	};

	for (;;) {
		MHD_UNSIGNED_LONG_LONG mhd_ms;
		int wait = metrics_expire(s); /* -1 = no deadline: until there is work */

		if (s->reaped)
			wait = 0;
		s->reaped = false;
		if (MHD_get_timeout(s->mhd, &mhd_ms) == MHD_YES &&
		    (wait < 0 || mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait))
			wait = (int)mhd_ms;
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (MHD_run(s->mhd) != MHD_YES)
			break;
	}
	return NULL;
}

static bool metrics_limits_valid(const struct metrics_limits *l)
{
	return l->connections_max >= 1 && l->connections_per_ip >= 1 &&
	       l->connections_per_ip <= l->connections_max && l->request_timeout_ms >= 1 &&
	       l->request_timeout_ms <= INT32_MAX;
}

/*
 * Why libmicrohttpd could not listen on ss (it says only that it failed): the errno of a bind of
 * our own to the same address, -EADDRINUSE or -EADDRNOTAVAIL say; -EADDRNOTAVAIL if that bind
 * works (the failure was elsewhere, or the port came free since: reported as not available).
 */
static int metrics_bind_error(const struct sockaddr_storage *ss)
{
	socklen_t sl =
	    ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret;

	if (fd < 0)
		return -errno;
	/* As libmicrohttpd binds: a port whose old connections linger in TIME_WAIT is free. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ret = bind(fd, (const struct sockaddr *)ss, sl) < 0 ? -errno : -EADDRNOTAVAIL;
	close(fd);
	return ret;
}

int metrics_start(struct metrics_server **out, const char *address, uint16_t port,
                  const struct metrics_limits *limits, metrics_collect_fn fn, void *ctx)
{
	static const struct metrics_limits defaults = {
	    .connections_max = METRICS_CONNECTIONS_MAX,
	    .connections_per_ip = METRICS_CONNECTIONS_PER_IP,
	    .request_timeout_ms = METRICS_REQUEST_TIMEOUT_MS,
	};
	struct sockaddr_storage ss;
	struct metrics_server *s;
	struct lb_addr a;
	const union MHD_DaemonInfo *info;
	socklen_t sl = sizeof(ss);
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int ret;

	if (!limits)
		limits = &defaults;
	if (!metrics_limits_valid(limits) || lb_addr_parse(address, &a) < 0)
		return -EINVAL;
	lb_addr_sockaddr(&a, port, &ss);
	if (a.family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->ctx = ctx;
	s->lim = *limits;
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0) {
		ret = -errno;
		goto out;
	}
	/* The logger first, or libmicrohttpd logs the options before it its own way. */
	s->mhd = MHD_start_daemon(
	    flags, port, NULL, NULL, metrics_handle, s, MHD_OPTION_EXTERNAL_LOGGER, metrics_log, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)(METRICS_MHD_LIMIT_FACTOR * limits->connections_max),
	    MHD_OPTION_NOTIFY_CONNECTION, metrics_notify_conn, s, MHD_OPTION_NOTIFY_COMPLETED,
	    metrics_notify_completed, s, MHD_OPTION_END);
	if (!s->mhd) {
		ret = metrics_bind_error(&ss);
		goto out;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
	if (info && getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
		                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		s->port = port;
	ret = -pthread_create(&s->thread, NULL, metrics_loop, s);
	if (ret < 0)
		goto out;
	s->thread_started = true;
	*out = s;
	return 0;
out:
	metrics_stop(s);
	return ret;
}

uint16_t metrics_port(const struct metrics_server *s)
{
	return s->port;
}

void metrics_stop(struct metrics_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->thread_started) {
		if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one)) {
			/* Cannot happen (an eventfd at 1): leak rather than free it under the
			 * thread. */
			log_err("metrics: cannot stop the server thread");
			return;
		}
		pthread_join(s->thread, NULL);
	}
	/* Closes what is left, each with its connection-closed notification (frees the conns). */
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s);
}
