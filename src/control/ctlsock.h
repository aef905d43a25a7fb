/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The control socket: a Unix stream socket where maglevctl sends one JSON request per line and
 * reads one JSON response line. Parsing and dispatch are separate from the socket so they can be
 * tested and fuzzed without one.
 */
#ifndef MAGLEV_CONTROL_CTLSOCK_H
#define MAGLEV_CONTROL_CTLSOCK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/config.h"

#define CTL_REQUEST_MAX        (64u * 1024u) /* bytes of one request line, newline included */
#define CTL_RESPONSE_MAX       (64u << 20)   /* bytes of one response line a client accepts */
#define CTL_CLIENTS_MAX        16u           /* connections open at once */
#define CTL_REQUEST_TIMEOUT_MS 5000u         /* to send a request, and to read its answer */
#define CTL_SOCKET_MODE        0600          /* root only */
#define CTL_DIR_MODE           0755          /* the socket's directory, when maglevd creates it */
#define CTL_ERR_MAX            512u          /* bytes of an error message */

enum ctl_cmd {
	CTL_CMD_STATUS,
	CTL_CMD_VIPS,
	CTL_CMD_BACKENDS,
	CTL_CMD_COUNTERS,
	CTL_CMD_RELOAD,
	CTL_CMD_WEIGHT,
	CTL_CMD_DRAIN,
	CTL_CMD_UNDRAIN,
	CTL_CMD_EXPLAIN,
	CTL_CMD_TEST_STALL, /* test only: refused unless maglevd runs with MAGLEVD_TEST_HOOKS=1 */
};

#define CTL_STALL_SECONDS_MAX 60u /* test-stall: longest stall asked for */

/*
 * A request after validation. JSON form: {"cmd":"NAME", ...} with the fields of the command:
 * backends: "vip" (optional); weight: "vip", "backend", "weight" (0..65535); drain, undrain:
 * "vip", "backend"; explain: "vip", "src", "src_port" (optional), "dst_port" (optional),
 * "proto" ("tcp", "udp" or a number; optional). "vip" is a VIP name or address. test-stall
 * (test hook): "worker" (an index), "seconds" (1..CTL_STALL_SECONDS_MAX).
 */
struct ctl_request {
	enum ctl_cmd cmd;
	char vip[CONFIG_NAME_MAX]; /* "" = every VIP (backends) */
	struct lb_addr backend;
	uint32_t weight;
	struct lb_addr src;
	uint16_t src_port; /* 0 = unset */
	uint16_t dst_port; /* 0 = unset: the VIP's port */
	uint8_t proto;     /* 0 = unset: the VIP's protocol */
	uint32_t worker;   /* test-stall */
	uint32_t seconds;  /* test-stall */
};

/*
 * Runs one request: returns its result (a new JSON reference), or NULL with err set to one line
 * saying what is wrong (unknown VIP, failed reload with the config's FILE:LINE, ...).
 */
typedef json_t *(*ctl_handler_fn)(void *ctx, const struct ctl_request *req, char *err,
                                  size_t errlen);

/* Parses and validates one request line; 0, or -EINVAL with err set. */
int ctl_request_parse(const char *line, size_t len, struct ctl_request *req, char *err,
                      size_t errlen);

/*
 * Parses, runs and answers one request line: returns the response {"ok":true,"result":...} or
 * {"ok":false,"error":"..."} as a malloc'd NUL-terminated string without a newline, or NULL if
 * out of memory.
 */
char *ctl_handle_line(const char *line, size_t len, ctl_handler_fn fn, void *ctx);

/* The command name of a request ("status", ...). */
const char *ctl_cmd_name(enum ctl_cmd cmd);

/* Splits "ADDR", "ADDR:PORT" or "[V6ADDR]:PORT"; *port is 0 if absent. 0 or -EINVAL. */
int ctl_hostport_parse(const char *s, struct lb_addr *addr, uint16_t *port);

/* Why the server closed a client itself. */
enum ctl_close {
	CTL_CLOSE_TIMEOUT, /* no complete request, or its answer not read, within the timeout */
	CTL_CLOSE_EVICTED, /* the slowest, closed to make room for a new client */
	CTL_CLOSE_REFUSED, /* a new client while every slot was being answered */
	CTL_CLOSE_N,
};

/* "timeout", "evicted", "refused". */
const char *ctl_close_name(enum ctl_close why);

struct ctl_server;

/*
 * Makes the directory of the socket at path ready for ctl_server_open: creates it (CTL_DIR_MODE,
 * one level) if it is missing, and refuses (-EPERM, one line in err) if it or a directory above
 * it is owned by another user than root, or writable by others without the sticky bit: they could
 * replace the socket with theirs. ctl_call makes the same check, and checks the server's uid.
 */
int ctl_socket_dir_prepare(const char *path, char *err, size_t errlen);

/*
 * Listens on the Unix socket at path (mode CTL_SOCKET_MODE). A stale socket file is replaced;
 * -EADDRINUSE if another process answers on it. Requests run fn from ctl_server_dispatch.
 *
 * Limits: CTL_CLIENTS_MAX clients at once. A client has request_timeout_ms (0 = the default
 * CTL_REQUEST_TIMEOUT_MS) from its accept, and from each answer it was sent, to send a complete
 * request line, and request_timeout_ms from an answer being queued to read it; bytes that trickle
 * in do not extend either. Past it the client gets an error line and is closed. When all slots
 * are taken a new client closes the one that has waited longest without a complete request (or
 * is closed itself if every client is being answered). Requests are served one per client per
 * round, so a client with many pipelined requests delays another by one of its requests at most.
 */
int ctl_server_open(struct ctl_server **out, const char *path, uint32_t request_timeout_ms,
                    ctl_handler_fn fn, void *ctx);

/* Closes every connection, removes the socket file, frees s; NULL is fine. */
void ctl_server_close(struct ctl_server *s);

/* A pollable fd (epoll) that is readable when ctl_server_dispatch has work. */
int ctl_server_fd(const struct ctl_server *s);

/*
 * Accepts, reads, serves one round of requests (one per client), and closes clients past their
 * deadline, waiting up to timeout_ms for something to do (not at all while requests are
 * buffered: ctl_server_fd stays readable then). 0 or -errno.
 */
int ctl_server_dispatch(struct ctl_server *s, int timeout_ms);

/* Clients closed for why so far; any thread may read it (relaxed). */
uint64_t ctl_server_closed(const struct ctl_server *s, enum ctl_close why);

/*
 * Client side: connects to path, sends req as one line and reads one response line within
 * timeout_ms. Talks only to a socket that root (or this user) owns, in directories nobody else can
 * write (see ctl_socket_dir_prepare), served by a process of root's (SO_PEERCRED). On success
 * *resp is the parsed response object and 0 is returned; else a negative errno and err says why
 * (no daemon, an untrusted socket, permission, timeout, bad response).
 */
int ctl_call(const char *path, json_t *req, json_t **resp, int timeout_ms, char *err,
             size_t errlen);

#endif
