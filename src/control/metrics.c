/* Prometheus text exposition (format 0.0.4) and its HTTP endpoint on libmicrohttpd. */
#include "control/metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/addr.h"

#define METRICS_BUF_INITIAL  (16u * 1024u) /* bytes; grows by doubling */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

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

struct metrics_server {
	struct MHD_Daemon *mhd;
	metrics_collect_fn fn;
	void *ctx;
	uint16_t port;
};

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

static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
	struct metrics_server *s = cls;
	char *body;
	size_t len;

	(void)version;
	(void)upload_data;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
		                     strdup("GET only\n"), strlen("GET only\n"));
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
	body = metrics_render(s->fn, s->ctx, &len);
	if (!body)
		return MHD_NO;
	return metrics_reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, len);
}

int metrics_start(struct metrics_server **out, const char *address, uint16_t port,
                  metrics_collect_fn fn, void *ctx)
{
	struct sockaddr_storage ss;
	struct metrics_server *s;
	struct lb_addr a;
	const union MHD_DaemonInfo *info;
	socklen_t sl = sizeof(ss);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (lb_addr_parse(address, &a) < 0)
		return -EINVAL;
	lb_addr_sockaddr(&a, port, &ss);
	if (a.family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->ctx = ctx;
	s->mhd = MHD_start_daemon(flags, port, NULL, NULL, metrics_handle, s, MHD_OPTION_SOCK_ADDR,
	                          (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	                          (unsigned)METRICS_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
	                          (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
	if (!s->mhd) {
		free(s);
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
	if (info && getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
		                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		s->port = port;
	*out = s;
	return 0;
}

uint16_t metrics_port(const struct metrics_server *s)
{
	return s->port;
}

void metrics_stop(struct metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
