/* maglevctl's online commands: build a control socket request from argv, print the answer. */
#ifndef MAGLEV_CONTROL_CTL_CLI_H
#define MAGLEV_CONTROL_CTL_CLI_H

#include <stdio.h>

#define CTL_CLI_TIMEOUT_MS 30000 /* a reload of a large config may take a while */

/*
 * Runs one online command: argv[0] is its name (status, vips, backends, counters, reload, weight,
 * drain, undrain, explain), then its arguments and options (-s SOCKET, -c CONFIG, --json).
 * Prints a human table (or the JSON result with --json) and returns the process exit status:
 * 0 success, 1 the daemon refused or could not be reached, 2 usage error.
 */
int ctl_cli_main(int argc, char **argv);

/* True if name is one of the online commands. */
int ctl_cli_is_command(const char *name);

/* Writes the online commands' part of `maglevctl --help`. */
void ctl_cli_usage(FILE *f);

#endif
