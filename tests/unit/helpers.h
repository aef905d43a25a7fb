/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the unit tests (th_ prefix): addresses, a monotonic clock, loopback TCP
 * listeners, HTTP/1.0 requests, slow clients, and where the built BPF objects are. Include after
 * <cmocka.h>: every helper fails the calling test through cmocka's asserts.
 */
#ifndef MAGLEV_TESTS_UNIT_HELPERS_H
#define MAGLEV_TESTS_UNIT_HELPERS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/addr.h"
#include "io/bpfobj.h"

#define TH_LISTEN_BACKLOG 128u   /* connections a test listener queues */
#define TH_HTTP_TIMEOUT_S 5      /* a test HTTP exchange that takes longer fails */
#define TH_HTTP_BUF       65536u /* bytes first allocated for an HTTP response; grows */
#define TH_CAPTURE_MAX    65536u /* bytes of stderr th_capture_stderr reads back (a pipe's) */

/* The address s (numeric IPv4 or IPv6); fails the test if it is not one. */
static inline struct lb_addr th_addr(const char *s)
{
	struct lb_addr a;

	assert_int_equal(lb_addr_parse(s, &a), 0);
	return a;
}

/*
 * YAML: the vips section of a config with one IPv6 VIP and one IPv6 backend (7 lines; the
 * backend's address is the last), for tests of what a missing dataplane.source_ipv6 does.
 */
#define TH_YAML_VIPS_WEB6                                                                          \
	"vips:\n"                                                                                  \
	"  - name: web6\n"                                                                         \
	"    address: 2001:db8:100::10\n"                                                          \
	"    protocol: tcp\n"                                                                      \
	"    port: 80\n"                                                                           \
	"    backends:\n"                                                                          \
	"      - address: 2001:db8:1::11\n"

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A TCP listener on 127.0.0.1:*port (0 = any free port, then *port is set); returns its fd. */
static inline int th_listen_loopback(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(*port)};
	socklen_t sl = sizeof(sin);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, (int)TH_LISTEN_BACKLOG), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * Sends req on the connected fd and returns the whole response up to the server's close,
 * NUL-terminated (caller frees); closes fd. Fails the test after TH_HTTP_TIMEOUT_S.
 */
static inline char *th_http_exchange(int fd, const char *req)
{
	struct timeval tv = {.tv_sec = TH_HTTP_TIMEOUT_S};
	size_t cap = TH_HTTP_BUF, len = 0;
	char *buf = malloc(cap);
	ssize_t r;

	assert_non_null(buf);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	while ((r = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
		len += (size_t)r;
		if (len == cap - 1) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	assert_true(r == 0); /* the server closed: the response is complete */
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Sends req to 127.0.0.1:port and returns the whole response, NUL-terminated (caller frees). */
static inline char *th_http_get(uint16_t port, const char *req)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return th_http_exchange(fd, req);
}

/*
 * Slow clients: n connected fds, and a thread that sends each of them `bytes` every
 * TH_DRIBBLE_MS, at most TH_DRIBBLE_ROUNDS times, never completing a request.
 */
#define TH_SLOW_MAX       32u  /* clients one th_slow holds */
#define TH_DRIBBLE_MS     100u /* a slow client sends this often */
#define TH_DRIBBLE_ROUNDS 100u /* ... at most this many times (10 s) */

struct th_slow {
	int fd[TH_SLOW_MAX];
	unsigned n;
	const char *bytes;
	atomic_bool stop;
	pthread_t thread;
};

static inline void *th_slow_run(void *arg)
{
	struct th_slow *sc = arg;

	for (unsigned round = 0; round < TH_DRIBBLE_ROUNDS && !atomic_load(&sc->stop); round++) {
		for (unsigned i = 0; i < sc->n; i++)
			send(sc->fd[i], sc->bytes, strlen(sc->bytes), MSG_NOSIGNAL | MSG_DONTWAIT);
		usleep(TH_DRIBBLE_MS * 1000u);
	}
	return NULL;
}

/* Starts dribbling bytes on sc->fd[0..sc->n), which the caller has connected. */
static inline void th_slow_start(struct th_slow *sc, const char *bytes)
{
	assert_true(sc->n <= TH_SLOW_MAX);
	sc->bytes = bytes;
	atomic_store(&sc->stop, false);
	assert_int_equal(pthread_create(&sc->thread, NULL, th_slow_run, sc), 0);
}

/* Stops the thread and closes every fd. */
static inline void th_slow_stop(struct th_slow *sc)
{
	atomic_store(&sc->stop, true);
	pthread_join(sc->thread, NULL);
	for (unsigned i = 0; i < sc->n; i++)
		close(sc->fd[i]);
}

/*
 * Runs fn with stderr on a pipe and returns what it wrote (a static buffer, overwritten by the
 * next call). fn must write less than a pipe holds (TH_CAPTURE_MAX): nothing reads until it ends.
 */
static inline const char *th_capture_stderr(void (*fn)(void))
{
	static char out[TH_CAPTURE_MAX];
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n, off = 0;

	assert_true(saved >= 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(p[1]);
	while ((n = read(p[0], out + off, sizeof(out) - 1 - (size_t)off)) > 0)
		off += n;
	close(p[0]);
	out[off] = '\0';
	return out;
}

/*
 * Where the built BPF object name is for a test binary: $MAGLEV_BPF_DIR/name if set, else
 * <dir of the test>/../bpf/name (build/tests/ next to build/bpf/), else build/bpf/name from the
 * source tree's root (the sanitizer build in build-san/ builds no BPF objects of its own).
 * Returns 0 if path is readable.
 */
static inline int th_bpf_obj_path(const char *name, char *path, size_t len)
{
	const char *dir = getenv(BPFOBJ_DIR_ENV);
	char exe[PATH_MAX];
	ssize_t n;

	if (dir && *dir) {
		snprintf(path, len, "%s/%s", dir, name);
		return access(path, R_OK);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(path, len, "%s/../bpf/%s", dirname(exe), name);
		if (access(path, R_OK) == 0)
			return 0;
	}
	snprintf(path, len, "build/bpf/%s", name);
	return access(path, R_OK);
}

#endif
