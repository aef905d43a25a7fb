/* maglevctl: the command-line tool; one row of ctl_commands per subcommand. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/ctl_cli.h"
#include "control/ctl_offline.h"
#include "control/decap.h"

#define CTL_ERR_MAX 512u /* bytes of one error line */

/*
 * A subcommand: run gets argv starting at the subcommand's name, returns 0 or a negative errno
 * with one line in err (main prints it and exits non-zero). Add a row to add a subcommand.
 */
struct ctl_command {
	const char *name;
	int (*run)(int argc, char **argv, char *err, size_t errlen);
	const char *usage; /* one line: arguments and what it does */
};

static const struct ctl_command ctl_commands[] = {
	{ "table", ctl_cmd_table,
	  "-c FILE [--vip NAME] [--json]   per VIP: table size, digest, slots per backend (offline)" },
	{ "diff", ctl_cmd_diff,
	  "OLD.yaml NEW.yaml [--json]      share of flows a config change moves, per VIP (offline)" },
	{ "status", ctl_cmd_online,
	  "                                version, uptime, mode, workers, config generation, digests" },
	{ "vips", ctl_cmd_online,
	  "                                VIPs: address, table size, digest, backends up, traffic" },
	{ "backends", ctl_cmd_online,
	  "[VIP]                           weight, health, state, slots, share, packets/bytes/flows" },
	{ "counters", ctl_cmd_online,
	  "                                every counter, total and per worker" },
	{ "reload", ctl_cmd_online,
	  "                                re-read the config (as SIGHUP); a bad one: FILE:LINE, exit 1" },
	{ "weight", ctl_cmd_online,
	  "VIP BACKEND N                   runtime weight 0..65535 (lost on reload, see below)" },
	{ "drain", ctl_cmd_online,
	  "VIP BACKEND                     weight 0: no new flows, tracked flows stay (runtime)" },
	{ "undrain", ctl_cmd_online,
	  "VIP BACKEND                     undo drain (runtime)" },
	{ "explain", ctl_cmd_online,
	  "VIP SRC[:PORT] [DST_PORT] [PROTO]  which backend this flow gets and why" },
	{ "decap", ctl_cmd_decap,
	  "attach|detach|status DEV ...   XDP GRE decapsulation on a backend (see decap --help)" },
};

#define CTL_N_COMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static void usage_print(FILE *out)
{
	fprintf(out, "usage: maglevctl COMMAND [ARGS]   (maglevctl COMMAND --help for details)\n\n");
	for (size_t i = 0; i < CTL_N_COMMANDS; i++)
		fprintf(out, "  %-8s %s\n", ctl_commands[i].name, ctl_commands[i].usage);
	fprintf(out, "\n");
	ctl_cli_usage_notes(out);
}

int main(int argc, char **argv)
{
	char err[CTL_ERR_MAX] = "";
	int rc;

	if (argc < 2) {
		usage_print(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage_print(stdout);
		return 0;
	}
	for (size_t i = 0; i < CTL_N_COMMANDS; i++) {
		if (strcmp(argv[1], ctl_commands[i].name) != 0)
			continue;
		rc = ctl_commands[i].run(argc - 1, argv + 1, err, sizeof(err));
		if (rc == 0)
			return 0;
		fprintf(stderr, "maglevctl %s: %s\n", ctl_commands[i].name,
			err[0] ? err : strerror(-rc));
		return 1;
	}
	fprintf(stderr, "maglevctl: unknown command '%s'\n", argv[1]);
	usage_print(stderr);
	return 2;
}
