/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevctl: the command-line tool; one row of commands per subcommand. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "maglevctl/online.h"
#include "maglevctl/command.h"
#include "maglevctl/offline.h"
#include "control/ctlsock.h"
#include "maglevctl/decap.h"
#include "maglevctl/top.h"
#include "maglevctl/top_view.h"

#define MAGLEVCTL_EXIT_FAIL  1 /* refused, unreachable daemon, bad config, ... */
#define MAGLEVCTL_EXIT_USAGE 2 /* unknown command, bad arguments */

/*
 * An offline or backend subcommand: run gets argv starting at the subcommand's name, returns 0,
 * a negative errno or COMMAND_USAGE with one line in err (main prints it and exits 1, or 2 for
 * COMMAND_USAGE). Add a row to add one. The online commands (status, reload, ...) have their own
 * table in online.c, with their arguments and help; every name not found here is looked up there.
 */
struct command {
	const char *name;
	int (*run)(int argc, char **argv, char *err, size_t errlen);
	const char *usage; /* one line: arguments and what it does */
};

static const struct command commands[] = {
    {"table", offline_table_run,
     "-c FILE [--vip NAME] [--json]   per VIP: table size, digest, slots per backend (offline)"},
    {"diff", offline_diff_run,
     "OLD.yaml NEW.yaml [--json]      share of flows a config change moves, per VIP (offline)"},
    {"decap", decap_run,
     "attach|detach|status DEV ...   XDP GRE decapsulation on a backend (see decap --help)"},
};

#define COMMANDS_N (ARRAY_SIZE(commands))

static void usage_print(FILE *out)
{
	fprintf(out, "usage: maglevctl [-s SOCKET | -c CONFIG] [--json] COMMAND [ARGS]\n"
	             "       (options may also follow the command; maglevctl COMMAND --help for "
	             "details)\n\n");
	fprintf(out, "Offline and backend commands:\n");
	for (size_t i = 0; i < COMMANDS_N; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].usage);
	fprintf(out, "\n");
	online_usage(out);
	fprintf(out, "\n");
	top_usage(out);
}

int main(int argc, char **argv)
{
	char err[CTL_ERR_MAX] = "";
	int (*run)(int, char **, char *, size_t) = NULL;
	char *args[COMMAND_ARGS_MAX];
	int n, rc;

	log_init("maglevctl");
	if (command_argv(argc, argv, args, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "maglevctl: %s\n", err);
		usage_print(stderr);
		return MAGLEVCTL_EXIT_USAGE;
	}
	if (strcmp(args[0], "help") == 0) { /* also -h, --help with no command */
		usage_print(stdout);
		return 0;
	}
	for (size_t i = 0; i < COMMANDS_N && !run; i++)
		if (strcmp(args[0], commands[i].name) == 0)
			run = commands[i].run;
	if (!run && strcmp(args[0], "top") == 0) /* online, but its own loop: not online_run's */
		run = top_run;
	if (!run && online_is_command(args[0]))
		run = online_run;
	if (!run) {
		fprintf(stderr, "maglevctl: unknown command '%s'\n", args[0]);
		usage_print(stderr);
		return MAGLEVCTL_EXIT_USAGE;
	}
	rc = run(n, args, err, sizeof(err));
	if (rc == 0)
		return 0;
	fprintf(stderr, "maglevctl %s: %s\n", args[0], err[0] ? err : strerror(-rc));
	return rc == COMMAND_USAGE ? MAGLEVCTL_EXIT_USAGE : MAGLEVCTL_EXIT_FAIL;
}
