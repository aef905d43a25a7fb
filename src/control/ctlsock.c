/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket: request parsing and dispatch, the Unix socket server, and the client call. */
#include "control/ctlsock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/util.h"

#define CTL_EVENTS_BATCH 32u   /* epoll events handled per wait */
#define CTL_READ_CHUNK   4096u /* bytes read from a client at a time */
#define CTL_PORT_MAX     65535

static const char *const ctl_cmd_names[] = {
    [CTL_CMD_STATUS] = "status",     [CTL_CMD_VIPS] = "vips",
    [CTL_CMD_BACKENDS] = "backends", [CTL_CMD_COUNTERS] = "counters",
    [CTL_CMD_RELOAD] = "reload",     [CTL_CMD_WEIGHT] = "weight",
    [CTL_CMD_DRAIN] = "drain",       [CTL_CMD_UNDRAIN] = "undrain",
    [CTL_CMD_EXPLAIN] = "explain",   [CTL_CMD_TEST_STALL] = "test-stall",
};

#define CTL_CMDS_N (ARRAY_SIZE(ctl_cmd_names))

const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	return (size_t)cmd < CTL_CMDS_N ? ctl_cmd_names[cmd] : "?";
}

int ctl_hostport_parse(const char *s, struct lb_addr *addr, uint16_t *port)
{
	char host[LB_ADDR_STRLEN];
	const char *colon, *p;
	unsigned long v;
	char *end;
	size_t hl;

	*port = 0;
	if (lb_addr_parse(s, addr) == 0)
		return 0;
	if (s[0] == '[') {
		p = strchr(s, ']');
		if (!p || p[1] != ':')
			return -EINVAL;
		hl = (size_t)(p - s - 1);
		s++;
		colon = p + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (lb_addr_parse(host, addr) < 0)
		return -EINVAL;
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno || *end || v == 0 || v > CTL_PORT_MAX)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* The member key of o in *v (NULL when absent); -EINVAL (err set) if required and absent. */
static int ctl_get_member(json_t *o, const char *key, bool required, json_t **v, char *err,
                          size_t errlen)
{
	*v = json_object_get(o, key);
	if (*v || !required)
		return 0;
	snprintf(err, errlen, "missing \"%s\"", key);
	return -EINVAL;
}

/* Reads a string member (*out NULL when absent and optional); -EINVAL (err set) if not a string. */
static int ctl_get_str(json_t *o, const char *key, bool required, const char **out, char *err,
                       size_t errlen)
{
	json_t *v;
	int ret = ctl_get_member(o, key, required, &v, err, errlen);

	*out = NULL;
	if (ret < 0 || !v)
		return ret;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s\" must be a string", key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v)) {
		snprintf(err, errlen, "\"%s\" contains a NUL byte", key);
		return -EINVAL;
	}
	return 0;
}

/* Reads an integer member in 0..max (*out untouched when absent and optional). */
static int ctl_get_uint(json_t *o, const char *key, json_int_t max, bool required, uint32_t *out,
                        char *err, size_t errlen)
{
	json_t *v;
	json_int_t n;
	int ret = ctl_get_member(o, key, required, &v, err, errlen);

	if (ret < 0 || !v)
		return ret;
	if (!json_is_integer(v)) {
		snprintf(err, errlen, "\"%s\" must be an integer", key);
		return -EINVAL;
	}
	n = json_integer_value(v);
	if (n < 0 || n > max) {
		snprintf(err, errlen, "\"%s\" %lld out of range 0..%lld", key, (long long)n,
		         (long long)max);
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

static int ctl_get_addr(json_t *o, const char *key, struct lb_addr *a, char *err, size_t errlen)
{
	const char *s;
	int ret = ctl_get_str(o, key, true, &s, err, errlen);

	if (ret < 0)
		return ret;
	if (lb_addr_parse(s, a) < 0) {
		snprintf(err, errlen, "\"%s\": bad address '%.64s'", key, s);
		return -EINVAL;
	}
	return 0;
}

static int ctl_get_vip(json_t *o, bool required, struct ctl_request *req, char *err, size_t errlen)
{
	const char *s;
	int ret = ctl_get_str(o, "vip", required, &s, err, errlen);

	if (ret < 0 || !s)
		return ret;
	if (!s[0] || strlen(s) >= sizeof(req->vip)) {
		snprintf(err, errlen, "\"vip\": bad VIP name '%.64s'", s);
		return -EINVAL;
	}
	snprintf(req->vip, sizeof(req->vip), "%s", s);
	return 0;
}

static int ctl_get_proto(json_t *o, struct ctl_request *req, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, "proto");
	uint32_t n = 0;
	int ret;

	if (!v)
		return 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (strcmp(s, "tcp") == 0)
			req->proto = IPPROTO_TCP;
		else if (strcmp(s, "udp") == 0)
			req->proto = IPPROTO_UDP;
		else {
			snprintf(err, errlen, "\"proto\": want tcp or udp, not '%.16s'", s);
			return -EINVAL;
		}
		return 0;
	}
	ret = ctl_get_uint(o, "proto", UINT8_MAX, true, &n, err, errlen);
	if (ret == 0 && n != IPPROTO_TCP && n != IPPROTO_UDP) {
		snprintf(err, errlen, "\"proto\": want tcp (6) or udp (17), not %u", n);
		return -EINVAL;
	}
	req->proto = (uint8_t)n;
	return ret;
}

int ctl_request_parse(const char *line, size_t len, struct ctl_request *req, char *err,
                      size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	const char *cmd;
	uint32_t n;
	size_t i;
	int ret;

	memset(req, 0, sizeof(*req));
	if (len > CTL_REQUEST_MAX) {
		snprintf(err, errlen, "request longer than %u bytes", CTL_REQUEST_MAX);
		return -EINVAL;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		snprintf(err, errlen, "bad JSON at column %d: %s", jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "request must be a JSON object");
		ret = -EINVAL;
		goto out;
	}
	ret = ctl_get_str(o, "cmd", true, &cmd, err, errlen);
	if (ret < 0)
		goto out;
	for (i = 0; i < CTL_CMDS_N; i++)
		if (strcmp(cmd, ctl_cmd_names[i]) == 0)
			break;
	if (i == CTL_CMDS_N) {
		snprintf(err, errlen, "unknown command '%.32s'", cmd);
		ret = -EINVAL;
		goto out;
	}
	req->cmd = (enum ctl_cmd)i;
	switch (req->cmd) {
	case CTL_CMD_STATUS:
	case CTL_CMD_VIPS:
	case CTL_CMD_COUNTERS:
	case CTL_CMD_RELOAD:
		break;
	case CTL_CMD_BACKENDS:
		ret = ctl_get_vip(o, false, req, err, errlen);
		break;
	case CTL_CMD_WEIGHT:
		ret = ctl_get_vip(o, true, req, err, errlen);
		if (!ret)
			ret = ctl_get_addr(o, "backend", &req->backend, err, errlen);
		if (!ret)
			ret =
			    ctl_get_uint(o, "weight", UINT16_MAX, true, &req->weight, err, errlen);
		break;
	case CTL_CMD_DRAIN:
	case CTL_CMD_UNDRAIN:
		ret = ctl_get_vip(o, true, req, err, errlen);
		if (!ret)
			ret = ctl_get_addr(o, "backend", &req->backend, err, errlen);
		break;
	case CTL_CMD_EXPLAIN:
		ret = ctl_get_vip(o, true, req, err, errlen);
		if (!ret)
			ret = ctl_get_addr(o, "src", &req->src, err, errlen);
		n = 0;
		if (!ret)
			ret = ctl_get_uint(o, "src_port", CTL_PORT_MAX, false, &n, err, errlen);
		req->src_port = (uint16_t)n;
		n = 0;
		if (!ret)
			ret = ctl_get_uint(o, "dst_port", CTL_PORT_MAX, false, &n, err, errlen);
		req->dst_port = (uint16_t)n;
		if (!ret)
			ret = ctl_get_proto(o, req, err, errlen);
		break;
	case CTL_CMD_TEST_STALL:
		ret = ctl_get_uint(o, "worker", UINT16_MAX, true, &req->worker, err, errlen);
		if (!ret)
			ret = ctl_get_uint(o, "seconds", CTL_STALL_SECONDS_MAX, true, &req->seconds,
			                   err, errlen);
		if (!ret && req->seconds == 0) {
			snprintf(err, errlen, "\"seconds\" must be 1..%u", CTL_STALL_SECONDS_MAX);
			ret = -EINVAL;
		}
		break;
	}
out:
	json_decref(o);
	return ret;
}

char *ctl_handle_line(const char *line, size_t len, ctl_handler_fn fn, void *ctx)
{
	char err[CTL_ERR_MAX] = "";
	struct ctl_request req;
	json_t *resp, *result = NULL;
	char *s;

	if (ctl_request_parse(line, len, &req, err, sizeof(err)) == 0) {
		result = fn(ctx, &req, err, sizeof(err));
		if (!result && !err[0])
			snprintf(err, sizeof(err), "%s failed", ctl_cmd_name(req.cmd));
	}
	if (result)
		resp = json_pack("{s:b, s:o}", "ok", 1, "result", result);
	else
		resp = json_pack("{s:b, s:s}", "ok", 0, "error", err);
	if (!resp)
		return NULL;
	s = json_dumps(resp, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(resp);
	return s;
}

/*
 * One connection. It is in one of three states, and only the first two run a clock:
 * - reading: no complete request buffered, no answer pending. It must complete a request by
 *   deadline_ms (armed at accept and when its previous answer was sent; bytes do not move it).
 * - sending: an answer is pending. It must read it by deadline_ms (armed when it was queued).
 * - ready: a complete request (or its end of stream) is buffered and waits for its turn; the
 *   wait is the server's doing and bounded by one request of every other client (a round).
 */
struct ctl_client {
	int fd;
	char *in; /* CTL_REQUEST_MAX bytes */
	size_t in_len;
	char *out; /* pending response bytes */
	size_t out_len, out_off;
	uint64_t deadline_ms;
	uint32_t events; /* the epoll interest set now */
	bool eof;        /* the client has shut down its side: serve what is buffered, close */
	bool closing;    /* close once out is flushed */
};

struct ctl_server {
	int epfd;
	int lfd;
	int wake_fd; /* eventfd in epfd, readable while some client is ready */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ctl_handler_fn fn;
	void *ctx;
	uint32_t timeout_ms;
	uint32_t next; /* the round starts here; moves by one each round */
	struct ctl_client clients[CTL_CLIENTS_MAX];
	atomic_uint_fast64_t closed[CTL_CLOSE_N];
};

static const char *const ctl_close_names[CTL_CLOSE_N] = {
    [CTL_CLOSE_TIMEOUT] = "timeout",
    [CTL_CLOSE_EVICTED] = "evicted",
    [CTL_CLOSE_REFUSED] = "refused",
};

const char *ctl_close_name(enum ctl_close why)
{
	return (size_t)why < CTL_CLOSE_N ? ctl_close_names[why] : "?";
}

static void ctl_client_drop(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	*c = (struct ctl_client){.fd = -1};
}

static bool ctl_client_ready(const struct ctl_client *c)
{
	return c->fd >= 0 && !c->out_len &&
	       (c->eof || c->in_len == CTL_REQUEST_MAX || memchr(c->in, '\n', c->in_len));
}

/*
 * Drops c, counted as why. A client between answers first gets the error line msg (a JSON
 * string's contents) if its socket takes it at once: best effort, it is going away anyway.
 */
static void ctl_client_close(struct ctl_server *s, struct ctl_client *c, enum ctl_close why,
                             const char *msg)
{
	char line[CTL_ERR_MAX];
	int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n", msg);

	if (!c->out_len && n > 0 && (size_t)n < sizeof(line))
		(void)send(c->fd, line, (size_t)n, MSG_NOSIGNAL);
	atomic_fetch_add_explicit(&s->closed[why], 1, memory_order_relaxed);
	ctl_client_drop(c);
}

static int ctl_sockaddr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!path[0] || strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

/* Root's and our own: the only owners whose files on the socket's path we trust. */
static bool ctl_owner_trusted(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/*
 * Checks that nobody but root (or this process's user) can put another socket at path: the
 * directory that holds it (symlinks resolved) and each one above it up to / must be owned by a
 * trusted user and writable by no one else, unless sticky (then others cannot rename or remove
 * what is ours; a socket of theirs fails the owner check). With with_socket, path itself must be
 * a socket of a trusted owner. 0, or -EPERM / -ENOTSOCK / -errno with one line in err.
 */
static int ctl_path_check(const char *path, bool with_socket, char *err, size_t errlen)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t len;

	if (with_socket) {
		if (lstat(path, &st) < 0) {
			int e = errno;

			snprintf(err, errlen, "%s: %s (is maglevd running?)", path, strerror(e));
			return -e;
		}
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: not a socket", path);
			return -ENOTSOCK;
		}
		if (!ctl_owner_trusted(st.st_uid)) {
			snprintf(err, errlen,
			         "%s: owned by uid %u, not root: refusing to talk to it", path,
			         (unsigned)st.st_uid);
			return -EPERM;
		}
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1,
	         slash ? path : ".");
	if (!realpath(dir, real)) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", dir, strerror(e));
		return -e;
	}
	for (len = strlen(real);;) {
		if (stat(real, &st) < 0) {
			int e = errno;

			snprintf(err, errlen, "%s: %s", real, strerror(e));
			return -e;
		}
		if (!ctl_owner_trusted(st.st_uid) ||
		    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))) {
			snprintf(err, errlen,
			         "%s: directory %s (uid %u, mode %04o) lets others replace the "
			         "control socket: use a directory only root can write",
			         path, real, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
			return -EPERM;
		}
		if (len == 1)
			return 0;
		while (len > 1 && real[len - 1] != '/')
			len--;
		real[len > 1 ? --len : len] = '\0'; /* the parent: "/a/b" -> "/a", "/a" -> "/" */
	}
}

/* The listening process behind a connected fd must run as root (or as us). */
static int ctl_peer_check(int fd, const char *path, char *err, size_t errlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: SO_PEERCRED: %s", path, strerror(e));
		return -e;
	}
	if (!ctl_owner_trusted(cred.uid)) {
		snprintf(err, errlen,
		         "%s: answered by pid %d running as uid %u, not root: refusing "
		         "to talk to it",
		         path, (int)cred.pid, (unsigned)cred.uid);
		return -EPERM;
	}
	return 0;
}

int ctl_socket_dir_prepare(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];

	if (slash && slash != path) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if (mkdir(dir, CTL_DIR_MODE) < 0 && errno != EEXIST) {
			int e = errno;

			snprintf(err, errlen, "control socket %s: cannot create %s: %s", path, dir,
			         strerror(e));
			return -e;
		}
	}
	return ctl_path_check(path, false, err, errlen);
}

/* Removes a socket file nobody answers on; -EADDRINUSE if a live server does. */
static int ctl_stale_remove(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, ret = 0;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		ret = -EADDRINUSE;
	else if (unlink(sun->sun_path) < 0 && errno != ENOENT)
		ret = -errno;
	close(fd);
	return ret;
}

int ctl_server_open(struct ctl_server **out, const char *path, uint32_t request_timeout_ms,
                    ctl_handler_fn fn, void *ctx)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct ctl_server *s;
	struct sockaddr_un sun;
	mode_t old_mask;
	int ret;

	if (request_timeout_ms > INT32_MAX)
		return -EINVAL;
	ret = ctl_sockaddr(&sun, path);
	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->ctx = ctx;
	s->timeout_ms = request_timeout_ms ? request_timeout_ms : CTL_REQUEST_TIMEOUT_MS;
	s->lfd = -1;
	s->wake_fd = -1;
	for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
		s->clients[i].fd = -1;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		ret = -errno;
		goto out;
	}
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ev.data.ptr = &s->wake_fd;
	if (s->wake_fd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
		ret = -errno;
		goto out;
	}
	ret = ctl_stale_remove(&sun);
	if (ret < 0)
		goto out;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		ret = -errno;
		goto out;
	}
	/* The umask makes the socket 0600 from birth; chmod below states it regardless of umask. */
	old_mask = umask(~(mode_t)CTL_SOCKET_MODE & 0777);
	ret = bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? -errno : 0;
	umask(old_mask);
	if (ret < 0)
		goto out;
	memcpy(s->path, path, strlen(path) + 1);
	if (chmod(path, CTL_SOCKET_MODE) < 0 || listen(s->lfd, (int)CTL_CLIENTS_MAX) < 0) {
		ret = -errno;
		goto out;
	}
	ev.data.ptr = NULL;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0) {
		ret = -errno;
		goto out;
	}
	*out = s;
	return 0;
out:
	ctl_server_close(s);
	return ret;
}

void ctl_server_close(struct ctl_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
		if (s->clients[i].fd >= 0)
			ctl_client_drop(&s->clients[i]);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->path[0])
		unlink(s->path);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
}

int ctl_server_fd(const struct ctl_server *s)
{
	return s->epfd;
}

uint64_t ctl_server_closed(const struct ctl_server *s, enum ctl_close why)
{
	return (size_t)why < CTL_CLOSE_N
	           ? atomic_load_explicit(&s->closed[why], memory_order_relaxed)
	           : 0;
}

/* Sets c's epoll interest from its state: EPOLLOUT while sending, EPOLLIN while reading. */
static void ctl_client_watch(struct ctl_server *s, struct ctl_client *c)
{
	struct epoll_event ev = {.data.ptr = c};

	ev.events = c->out_len ? EPOLLOUT : ctl_client_ready(c) ? 0 : EPOLLIN;
	if (ev.events == c->events)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		ctl_client_drop(c);
		return;
	}
	c->events = ev.events;
}

static void ctl_client_io(struct ctl_server *s, struct ctl_client *c, uint32_t events,
                          uint64_t now);

static void ctl_client_accept(struct ctl_server *s, uint64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct ctl_client *c = NULL, *victim = NULL;
	int fd;

	fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (size_t i = 0; i < CTL_CLIENTS_MAX && !c; i++) {
		struct ctl_client *o = &s->clients[i];

		if (o->fd < 0)
			c = o;
		else if (!o->out_len && !ctl_client_ready(o) &&
		         (!victim || o->deadline_ms < victim->deadline_ms))
			victim = o;
	}
	if (!c && victim) {
		/* Full: the client that has waited longest without a complete request makes room.
		 */
		ctl_client_close(s, victim, CTL_CLOSE_EVICTED,
		                 "dropped for a new client: no complete request yet and every slot "
		                 "taken");
		c = victim;
	}
	if (!c) {
		/* Every client is being answered: the new one sees EOF and reports the daemon busy.
		 */
		atomic_fetch_add_explicit(&s->closed[CTL_CLOSE_REFUSED], 1, memory_order_relaxed);
		close(fd);
		return;
	}
	c->in = malloc(CTL_REQUEST_MAX);
	c->fd = fd;
	c->events = EPOLLIN;
	c->deadline_ms = now + s->timeout_ms;
	ev.data.ptr = c;
	if (!c->in || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ctl_client_drop(c);
		return;
	}
	/* Its request is likely there already: read it now, to be served in this round. */
	ctl_client_io(s, c, EPOLLIN, now);
}

/* Queues resp and a newline for c, taking ownership of resp. */
static void ctl_client_queue(struct ctl_client *c, char *resp)
{
	size_t len = resp ? strlen(resp) : 0;
	char *out;

	if (!resp) {
		c->closing = true;
		return;
	}
	out = realloc(c->out, c->out_len + len + 1);
	if (!out) {
		free(resp);
		c->closing = true;
		return;
	}
	memcpy(out + c->out_len, resp, len);
	out[c->out_len + len] = '\n';
	c->out = out;
	c->out_len += len + 1;
	free(resp);
}

/*
 * Sends what c has pending. Once all is sent, c closes if it was to, else its clock restarts
 * for its next request. Returns false if c was dropped.
 */
static bool ctl_client_flush(struct ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (r < 0 && errno == EAGAIN)
			return true;
		if (r < 0) {
			ctl_client_drop(c);
			return false;
		}
		c->out_off += (size_t)r;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->closing) {
		ctl_client_drop(c);
		return false;
	}
	return true;
}

/*
 * Serves one request of a ready client: its first line; a full buffer without a newline is an
 * error and the end; at end of stream the rest as a last request. Then sends what it can.
 */
static void ctl_client_serve(struct ctl_server *s, struct ctl_client *c)
{
	char *nl = memchr(c->in, '\n', c->in_len);

	if (nl) {
		size_t line = (size_t)(nl - c->in);

		ctl_client_queue(c, ctl_handle_line(c->in, line, s->fn, s->ctx));
		memmove(c->in, nl + 1, c->in_len - line - 1);
		c->in_len -= line + 1;
	} else if (c->in_len == CTL_REQUEST_MAX) {
		char msg[96];

		snprintf(msg, sizeof(msg),
		         "{\"ok\":false,\"error\":\"request longer than %u bytes\"}",
		         CTL_REQUEST_MAX);
		ctl_client_queue(c, strdup(msg));
		c->in_len = 0;
		c->closing = true;
	} else {
		if (c->in_len)
			ctl_client_queue(c, ctl_handle_line(c->in, c->in_len, s->fn, s->ctx));
		c->in_len = 0;
		c->closing = true;
	}
	/* The handler may have taken long: the client's time to read the answer starts now. */
	c->deadline_ms = clock_now_ms() + s->timeout_ms;
	if (!c->out_len && c->closing) {
		ctl_client_drop(c);
		return;
	}
	if (ctl_client_flush(c)) {
		if (!c->out_len)
			c->deadline_ms = clock_now_ms() + s->timeout_ms;
		ctl_client_watch(s, c);
	}
}

static void ctl_client_io(struct ctl_server *s, struct ctl_client *c, uint32_t events, uint64_t now)
{
	ssize_t r;

	if (events & EPOLLIN && c->events & EPOLLIN) {
		size_t room = CTL_REQUEST_MAX - c->in_len;

		r = recv(c->fd, c->in + c->in_len, room < CTL_READ_CHUNK ? room : CTL_READ_CHUNK,
		         0);
		if (r < 0 && errno != EAGAIN) {
			ctl_client_drop(c);
			return;
		}
		if (r == 0 && !c->in_len) {
			ctl_client_drop(c); /* gone between requests */
			return;
		}
		if (r == 0)
			c->eof = true;
		if (r > 0)
			c->in_len += (size_t)r;
	} else if (events & (EPOLLHUP | EPOLLERR) && !c->out_len) {
		ctl_client_drop(c);
		return;
	}
	if (c->out_len) {
		if (!ctl_client_flush(c))
			return;
		if (!c->out_len)
			c->deadline_ms = now + s->timeout_ms;
	}
	ctl_client_watch(s, c);
}

/*
 * Makes s->wake_fd readable while some client is ready, so that pollers of epfd come back.
 * EAGAIN means it already is (write) or is not (read), as wanted. 0 or -errno.
 */
static int ctl_server_wake(struct ctl_server *s, bool pending)
{
	uint64_t v = 1;
	ssize_t r = pending ? write(s->wake_fd, &v, sizeof(v)) : read(s->wake_fd, &v, sizeof(v));

	return r < 0 && errno != EAGAIN ? -errno : 0;
}

int ctl_server_dispatch(struct ctl_server *s, int timeout_ms)
{
	struct epoll_event ev[CTL_EVENTS_BATCH];
	uint64_t now = clock_now_ms();
	uint32_t start;
	bool pending = false;
	int n;

	for (size_t i = 0; i < CTL_CLIENTS_MAX; i++) {
		struct ctl_client *c = &s->clients[i];

		if (c->fd < 0)
			continue;
		if (ctl_client_ready(c)) {
			timeout_ms = 0;
			continue;
		}
		if (c->deadline_ms <= now) {
			char msg[CTL_ERR_MAX];

			snprintf(msg, sizeof(msg), "no complete request within %u ms",
			         s->timeout_ms);
			ctl_client_close(s, c, CTL_CLOSE_TIMEOUT, msg);
		} else if (timeout_ms != 0 &&
		           (timeout_ms < 0 || c->deadline_ms - now < (uint64_t)timeout_ms)) {
			timeout_ms = (int)(c->deadline_ms - now);
		}
	}
	n = epoll_wait(s->epfd, ev, CTL_EVENTS_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	now = clock_now_ms();
	for (int i = 0; i < n; i++) {
		struct ctl_client *c = ev[i].data.ptr;

		if (!c)
			ctl_client_accept(s, now);
		else if (ev[i].data.ptr != &s->wake_fd && c->fd >= 0)
			ctl_client_io(s, c, ev[i].events, now);
	}
	/* One request of each ready client, in an order that moves on by one each round. */
	start = s->next;
	s->next = (s->next + 1) % CTL_CLIENTS_MAX;
	for (uint32_t k = 0; k < CTL_CLIENTS_MAX; k++) {
		struct ctl_client *c = &s->clients[(start + k) % CTL_CLIENTS_MAX];

		if (ctl_client_ready(c))
			ctl_client_serve(s, c);
	}
	for (size_t i = 0; i < CTL_CLIENTS_MAX && !pending; i++)
		pending = ctl_client_ready(&s->clients[i]);
	return ctl_server_wake(s, pending);
}

int ctl_call(const char *path, json_t *req, json_t **resp, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = clock_now_ms() + (uint64_t)timeout_ms;
	struct sockaddr_un sun;
	json_error_t jerr;
	char *line = NULL, *buf = NULL;
	size_t len, off = 0, cap = 0;
	int fd = -1, ret;

	*resp = NULL;
	ret = ctl_sockaddr(&sun, path);
	if (ret < 0) {
		snprintf(err, errlen, "%s: bad socket path", path);
		return ret;
	}
	ret = ctl_path_check(path, true, err, errlen);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s (is maglevd running?)", path, strerror(-ret));
		goto out;
	}
	/* The path was fine a moment ago; the process that listens is what must be root. */
	ret = ctl_peer_check(fd, path, err, errlen);
	if (ret < 0)
		goto out;
	line = json_dumps(req, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!line) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	len = strlen(line);
	line[len] = '\n'; /* json_dumps NUL-terminates: the NUL's place takes the newline */
	for (size_t sent = 0; sent < len + 1;) {
		ssize_t r = send(fd, line + sent, len + 1 - sent, MSG_NOSIGNAL);

		if (r < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: send: %s", path, strerror(-ret));
			goto out;
		}
		sent += (size_t)r;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = clock_now_ms();
		ssize_t r;
		int ready = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: poll: %s", path, strerror(-ret));
			goto out;
		}
		if (ready == 0) {
			ret = -ETIMEDOUT;
			snprintf(err, errlen, "%s: no answer within %d ms", path, timeout_ms);
			goto out;
		}
		if (off + CTL_READ_CHUNK + 1 > cap) {
			char *nb;

			if (cap >= CTL_RESPONSE_MAX) {
				ret = -E2BIG;
				snprintf(err, errlen, "%s: response over %u bytes", path,
				         CTL_RESPONSE_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 4 * CTL_READ_CHUNK;
			nb = realloc(buf, cap);
			if (!nb) {
				ret = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = nb;
		}
		r = recv(fd, buf + off, cap - off - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -ECONNRESET;
			snprintf(err, errlen, "%s: connection closed before an answer", path);
			goto out;
		}
		off += (size_t)r;
		if (memchr(buf + off - (size_t)r, '\n', (size_t)r))
			break;
	}
	*resp = json_loadb(buf, off, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!*resp || !json_is_object(*resp)) {
		ret = -EPROTO;
		snprintf(err, errlen, "%s: bad response: %s", path,
		         *resp ? "not a JSON object" : jerr.text);
		json_decref(*resp);
		*resp = NULL;
		goto out;
	}
	ret = 0;
out:
	free(line);
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}
