/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness over the metrics endpoint: any bytes as what one client sends to the real
 * server (libmicrohttpd with metrics.c's handler, connection tracking, limits and deadline) on
 * loopback, then end of stream. The server must answer or close, never crash or hang past its
 * request timeout. The same bytes are also rendered as a HELP text and a label value, which the
 * exposition must escape so that every line stays a HELP, TYPE or sample line of the family.
 * Seeds: tests/fuzz/corpus/fuzz_metrics/.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "maglevd/metrics.h"

#define FUZZ_REQUEST_TIMEOUT_MS 2000u /* the server's deadline for one exchange */
/*
 * From connect to the server's close; longer means the server hung (below run-fuzz.sh's
 * -timeout=10 s, well above the 2 s deadline: a loaded 2-core CI machine).
 */
#define FUZZ_ANSWER_WAIT_MS 8000
#define FUZZ_READ_CHUNK     4096u /* bytes read at a time */
#define FUZZ_FAMILY         "fuzz_family"

static struct metrics_server *srv;
static _Atomic(const char *) text; /* this input, NUL-terminated, for the collector */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One family whose HELP and label value are the input (up to its first NUL). */
static void fuzz_collect(void *ctx, struct metrics_writer *w)
{
	const char *t = atomic_load(&text);
	const char *labels[] = {"value", t ? t : "", NULL};

	(void)ctx;
	metrics_family(w, FUZZ_FAMILY, "gauge", t ? t : "");
	metrics_sample(w, FUZZ_FAMILY, labels, 1);
	metrics_sample_f(w, FUZZ_FAMILY, NULL, 0.5);
}

/* The line contract of the exposition: nothing the input holds can start a line of its own. */
static void fuzz_check_render(void)
{
	size_t len;
	char *r = metrics_render(fuzz_collect, NULL, &len), *line, *save = NULL;

	if (!r)
		return; /* out of memory */
	if (strlen(r) != len || len == 0 || r[len - 1] != '\n')
		abort();
	for (line = strtok_r(r, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP " FUZZ_FAMILY " ", strlen("# HELP " FUZZ_FAMILY " ")) &&
		    strcmp(line, "# TYPE " FUZZ_FAMILY " gauge") &&
		    strncmp(line, FUZZ_FAMILY "{value=\"", strlen(FUZZ_FAMILY "{value=\"")) &&
		    strcmp(line, FUZZ_FAMILY " 0.5"))
			abort();
	}
	free(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct metrics_limits lim = {
	    .connections_max = METRICS_CONNECTIONS_MAX,
	    .connections_per_ip = METRICS_CONNECTIONS_PER_IP,
	    .request_timeout_ms = FUZZ_REQUEST_TIMEOUT_MS,
	};

	(void)argc;
	(void)argv;
	if (metrics_start(&srv, "127.0.0.1", 0, &lim, fuzz_collect, NULL) < 0) {
		fprintf(stderr, "fuzz_metrics: cannot start the metrics server on loopback\n");
		abort();
	}
	return 0;
}

/*
 * Waits until fd has one of events or the deadline passes (the server hung: abort). libFuzzer's
 * timer interrupts poll() and connect() every second (SIGALRM): EINTR is a retry, not an answer.
 */
static void fuzz_wait(int fd, short events, uint64_t deadline_ms, const char *what)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		uint64_t now = clock_now_ms();
		int r = now < deadline_ms ? poll(&p, 1, (int)(deadline_ms - now)) : 0;

		if (r == 1)
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			fprintf(stderr, "fuzz_metrics: %s: not within %d ms\n", what,
			        FUZZ_ANSWER_WAIT_MS);
		else
			fprintf(stderr, "fuzz_metrics: %s: %s\n", what, strerror(errno));
		abort();
	}
}

/* Sends data as one client, closes its sending side and reads until the server closes. */
static void fuzz_exchange(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(metrics_port(srv))};
	uint64_t deadline = clock_now_ms() + FUZZ_ANSWER_WAIT_MS;
	char buf[FUZZ_READ_CHUNK];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		abort();
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		/* Interrupted, the connect goes on: its result comes as writability. */
		if (errno == EINTR) {
			fuzz_wait(fd, POLLOUT, deadline, "connect");
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof(err)});
		} else {
			err = errno;
		}
	}
	if (err) {
		fprintf(stderr, "fuzz_metrics: connect: %s\n", strerror(err));
		abort();
	}
	/* The server may answer and close before it has read everything: not an error. */
	for (size_t off = 0; off < size;) {
		ssize_t r = send(fd, data + off, size - off, MSG_NOSIGNAL);

		if (r <= 0)
			break;
		off += (size_t)r;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t r;

		fuzz_wait(fd, POLLIN, deadline, "answer and close");
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* closed (or reset): the exchange is over */
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	if (!t)
		return 0;
	memcpy(t, data, size);
	t[size] = '\0';
	atomic_store(&text, t);
	fuzz_check_render();
	fuzz_exchange(data, size);
	atomic_store(&text, NULL);
	free(t);
	return 0;
}
