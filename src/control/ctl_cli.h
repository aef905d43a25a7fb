/* maglevctl's online commands: build a control socket request from argv, print the answer. */
#ifndef MAGLEV_CONTROL_CTL_CLI_H
#define MAGLEV_CONTROL_CTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CTL_CLI_TIMEOUT_MS 30000 /* a reload of a large config may take a while */

/*
 * Runs one online command, a row of maglevctl's command table: argv[0] is its name (status, vips,
 * backends, counters, reload, weight, drain, undrain, explain), then its arguments and options
 * (-s SOCKET, -c CONFIG, --json). Prints a human table (or the JSON result with --json) and
 * returns 0, or a negative errno with one line in err for main to print: the daemon's refusal,
 * no daemon, or a usage error (err then starts with "usage:").
 */
int ctl_cmd_online(int argc, char **argv, char *err, size_t errlen);

/* True if name is one of the online commands. */
bool ctl_cli_is_command(const char *name);

/* Writes the online commands' part of `maglevctl --help`: commands, options, notes. */
void ctl_cli_usage(FILE *f);

#endif
