/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevctl's online commands: build a control socket request from argv, print the answer. */
#ifndef MAGLEV_MAGLEVCTL_ONLINE_H
#define MAGLEV_MAGLEVCTL_ONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define ONLINE_TIMEOUT_MS 30000 /* a reload of a large config may take a while */

/* An online command line, parsed: what to send, where, and how to print the answer. */
struct online_args {
	const char *sock;   /* -s, or NULL */
	const char *config; /* -c, or NULL */
	bool json;          /* --json */
	bool help;          /* --help: print online_usage, send nothing (req is NULL) */
	json_t *req;        /* the request; the caller owns it (json_decref) */
};

/*
 * Parses an online command's argv (argv[0] its name, then arguments and options in any order)
 * without talking to anyone. Returns 0 with out filled, or COMMAND_USAGE with one line in err:
 * an unknown command or option, a wrong argument count, a malformed weight, address or port.
 */
int online_parse(int argc, char **argv, struct online_args *out, char *err, size_t errlen);

/*
 * Runs one online command, a row of maglevctl's command table: argv[0] is its name (status, vips,
 * backends, counters, reload, weight, drain, undrain, explain), then its arguments and options
 * (-s SOCKET, -c CONFIG, --json). Prints a human table (or the JSON result with --json) and
 * returns 0, COMMAND_USAGE (online_parse), or a negative errno with one line in err for main to
 * print: the daemon's refusal or no daemon.
 */
int online_run(int argc, char **argv, char *err, size_t errlen);

/*
 * The control socket's path into out: sock (-s), else control.socket of the config file (-c),
 * else CONFIG_SOCKET_DEFAULT. Returns 0, or the config's error (negative errno, one line in err).
 */
int online_socket(const char *sock, const char *config, char *out, size_t len, char *err,
                  size_t errlen);

/* True if name is one of the online commands. */
bool online_is_command(const char *name);

/* Writes the online commands' part of `maglevctl --help`: commands, options, notes. */
void online_usage(FILE *f);

#endif
