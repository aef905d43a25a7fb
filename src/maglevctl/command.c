/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevctl's command line before the subcommand: global options moved behind the command name. */
#include "maglevctl/command.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

/*
 * Commands whose first argument names an action (`decap attach DEV`): the action's own parser reads
 * the options, so the global options go after the action, not between the command and it.
 */
static const char *const command_with_action[] = {"decap"};

/*
 * How a global option is spelled: 1 if its value is the next argument ("-s", "--socket"), 0 if it
 * is complete ("--json", "--help", "--socket=PATH", "-sPATH"), -1 if it is not a global option.
 */
static int command_global_opt(const char *a)
{
	static const char *const valued[] = {"-s", "--socket", "-c", "--config"};

	for (size_t i = 0; i < ARRAY_SIZE(valued); i++) {
		size_t n = strlen(valued[i]);

		if (strncmp(a, valued[i], n) != 0)
			continue;
		if (a[n] == '\0')
			return 1;
		if (n == 2 || a[n] == '=') /* -sPATH, --socket=PATH */
			return 0;
	}
	return !strcmp(a, "--json") || !strcmp(a, "--help") || !strcmp(a, "-h") ? 0 : -1;
}

static bool command_is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static bool command_takes_action(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(command_with_action); i++)
		if (strcmp(name, command_with_action[i]) == 0)
			return true;
	return false;
}

int command_argv(int argc, char **argv, char **out, int *n_out, char *err, size_t errlen)
{
	int opt_end, cmd, words, n = 0;
	bool help = false;

	*n_out = 0;
	if (argc > COMMAND_ARGS_MAX) {
		snprintf(err, errlen, "more than %d arguments", COMMAND_ARGS_MAX);
		return COMMAND_USAGE;
	}
	for (cmd = 1; cmd < argc && argv[cmd][0] == '-' && strcmp(argv[cmd], "--") != 0; cmd++) {
		int takes = command_global_opt(argv[cmd]);

		if (takes < 0) {
			snprintf(err, errlen, "unknown option '%s' before the command", argv[cmd]);
			return COMMAND_USAGE;
		}
		help = help || command_is_help(argv[cmd]);
		if (takes && ++cmd == argc) {
			snprintf(err, errlen, "option '%s' needs a value", argv[cmd - 1]);
			return COMMAND_USAGE;
		}
	}
	opt_end = cmd; /* the global options are argv[1..opt_end) */
	if (cmd < argc && strcmp(argv[cmd], "--") == 0)
		cmd++;
	if (cmd == argc && help) { /* "maglevctl [-s SOCKET] --help": the help command */
		out[n++] = "help";
		*n_out = n;
		return 0;
	}
	if (cmd == argc) {
		snprintf(err, errlen, "no command");
		return COMMAND_USAGE;
	}
	/* The command's name, and its action if it has one and one follows (not an option). */
	words = 1;
	if (command_takes_action(argv[cmd]) && cmd + 1 < argc && argv[cmd + 1][0] != '-')
		words = 2;
	for (int i = 0; i < words; i++)
		out[n++] = argv[cmd + i];
	for (int i = 1; i < opt_end; i++)
		out[n++] = argv[i];
	for (int i = cmd + words; i < argc; i++)
		out[n++] = argv[i];
	*n_out = n;
	return 0;
}
