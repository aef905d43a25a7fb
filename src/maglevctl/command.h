/* SPDX-License-Identifier: GPL-2.0-only */
/* The contract of a maglevctl subcommand, and the global options that may precede its name. */
#ifndef MAGLEV_MAGLEVCTL_COMMAND_H
#define MAGLEV_MAGLEVCTL_COMMAND_H

#include <stddef.h>

/*
 * What a subcommand returns for a usage error (an unknown option, a missing or extra argument, a
 * malformed value): positive, so it cannot be taken for a negative errno. maglevctl prints err and
 * exits 2; any negative errno (refused, unreachable daemon, bad config, no root) exits 1.
 */
#define COMMAND_USAGE 1

#define COMMAND_ARGS_MAX 256 /* arguments of one maglevctl command line */

/*
 * maglevctl [OPTIONS] COMMAND [ARGS]: options before the command name (-s/--socket PATH,
 * -c/--config FILE, --json, -h/--help, each valued one also as --opt=VALUE or -sPATH) belong to
 * the command, as if written after its name (after its action for decap: `maglevctl -c FILE decap
 * attach DEV` is `decap attach -c FILE DEV`). Spelled exactly: no abbreviations. Fills
 * out[0..*n_out) with the command's argv: its name (and action), those options, then the rest of
 * argv in order; the strings stay argv's. Options and -h/--help with no command give the command
 * "help". Returns 0, or COMMAND_USAGE with one line in err (no command, an unknown option before
 * it, an option missing its value, more than COMMAND_ARGS_MAX arguments). argv[0] is the program
 * name.
 */
int command_argv(int argc, char **argv, char **out, int *n_out, char *err, size_t errlen);

#endif
