/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevctl's online commands: argv to a JSON request, the daemon's answer to tables or JSON. */
#include "maglevctl/online.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "control/config_yaml.h"
#include "maglevctl/command.h"
#include "control/ctlsock.h"

#define ONLINE_COLS_MAX 24u /* columns of a printed table */
#define ONLINE_CELL_MAX 96u /* bytes of one printed cell */
#define ONLINE_HELP_COL 28u /* column where help texts start */

struct online_cmd {
	const char *name;
	int min_args, max_args;
	const char *args;
	const char *help;
};

static const struct online_cmd online_cmds[] = {
    {"status", 0, 0, "",
     "version, uptime, mode, workers, config file and generation, digests\n"
     "                              (current and previous), state file writes"},
    {"vips", 0, 0, "",
     "VIPs: address, protocol, port, hash, table size, digest and previous\n"
     "                              digest, traffic"},
    {"backends", 0, 1, "[VIP]",
     "backends: address, weight, health, slots, share, packets/bytes/flows"},
    {"counters", 0, 0, "", "every counter, summed and per worker"},
    {"reload", 0, 0, "",
     "re-read the config file; a bad one is refused (FILE:LINE: reason, exit 1)\n"
     "                              and the running config keeps serving"},
    {"weight", 3, 3, "VIP BACKEND N", "set the weight of a backend (0..65535; 0 drains)"},
    {"drain", 2, 2, "VIP BACKEND",
     "no new flows to the backend; its tracked flows stay until they end"},
    {"undrain", 2, 2, "VIP BACKEND", "undo drain (back to the config's or set weight)"},
    {"explain", 2, 4, "VIP SRC[:PORT] [DST_PORT] [PROTO]",
     "which backend this flow gets and why (tracked on a worker,\n"
     "                              or table slot N of M, health)"},
};

#define ONLINE_CMDS_N (ARRAY_SIZE(online_cmds))

static const struct online_cmd *online_find(const char *name)
{
	for (size_t i = 0; i < ONLINE_CMDS_N; i++)
		if (strcmp(online_cmds[i].name, name) == 0)
			return &online_cmds[i];
	return NULL;
}

bool online_is_command(const char *name)
{
	return online_find(name) != NULL;
}

/* Options and notes shared by every online command. */
static void online_usage_notes(FILE *f)
{
	fprintf(f,
	        "Options of online commands:\n"
	        "  -s, --socket PATH           control socket (default: control.socket of -c, "
	        "else " CONFIG_SOCKET_DEFAULT ")\n"
	        "  -c, --config FILE           read the socket path from this config file\n"
	        "  --json                      print the daemon's JSON answer instead of tables\n"
	        "VIP is a VIP name or address, BACKEND a backend address, PROTO tcp or udp.\n"
	        "Runtime changes (weight, drain, undrain) are lost on the next reload or restart\n"
	        "unless they are also written to the config file. Health-check state is kept.\n");
}

void online_usage(FILE *f)
{
	fprintf(f, "Online commands (talk to a running maglevd over its control socket):\n");
	for (size_t i = 0; i < ONLINE_CMDS_N; i++) {
		char lhs[64];

		snprintf(lhs, sizeof(lhs), "%s %s", online_cmds[i].name, online_cmds[i].args);
		if (strlen(lhs) >= ONLINE_HELP_COL)
			fprintf(f, "  %s\n  %-*s%s\n", lhs, (int)ONLINE_HELP_COL, "",
			        online_cmds[i].help);
		else
			fprintf(f, "  %-*s%s\n", (int)ONLINE_HELP_COL, lhs, online_cmds[i].help);
	}
	online_usage_notes(f);
}

/* One cell of a table: strings as they are, numbers in decimal, arrays joined with ','. */
static void online_cell(json_t *v, char *buf, size_t len)
{
	size_t off = 0;
	size_t i;
	json_t *e;

	buf[0] = '\0';
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.3f", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
	else if (json_is_null(v))
		snprintf(buf, len, "-");
	else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			char one[ONLINE_CELL_MAX];

			online_cell(e, one, sizeof(one));
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s",
			                        i ? "," : "", one);
			if (off >= len)
				break;
		}
	} else
		snprintf(buf, len, "{...}");
}

/* Prints an array of objects as a table whose columns are the first object's keys. */
static void online_table(json_t *rows)
{
	const char *cols[ONLINE_COLS_MAX];
	size_t width[ONLINE_COLS_MAX], n = 0, i;
	json_t *first = json_array_get(rows, 0), *row, *v;
	char cell[ONLINE_CELL_MAX];
	const char *key;

	if (!json_is_object(first)) {
		online_cell(rows, cell, sizeof(cell));
		printf("%s\n", cell);
		return;
	}
	json_object_foreach(first, key, v)
	{
		if (n == ONLINE_COLS_MAX)
			break;
		cols[n] = key;
		width[n++] = strlen(key);
	}
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < n; c++) {
			online_cell(json_object_get(row, cols[c]), cell, sizeof(cell));
			if (strlen(cell) > width[c])
				width[c] = strlen(cell);
		}
	}
	for (size_t c = 0; c < n; c++)
		printf("%-*s%s", (int)width[c], cols[c], c + 1 < n ? "  " : "\n");
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < n; c++) {
			online_cell(json_object_get(row, cols[c]), cell, sizeof(cell));
			printf("%-*s%s", (int)width[c], cell, c + 1 < n ? "  " : "\n");
		}
	}
}

/* Scalars as "key: value" lines, then each array of objects as a titled table. */
static void online_print(json_t *result)
{
	char cell[ONLINE_CELL_MAX];
	const char *key;
	json_t *v;
	size_t w = 0;

	if (!json_is_object(result)) {
		online_cell(result, cell, sizeof(cell));
		printf("%s\n", cell);
		return;
	}
	json_object_foreach(result, key, v)
	{
		if (!json_is_array(v) && strlen(key) > w)
			w = strlen(key);
	}
	json_object_foreach(result, key, v)
	{
		if (json_is_array(v) && json_is_object(json_array_get(v, 0)))
			continue;
		if (json_is_object(v)) {
			online_print(v);
			continue;
		}
		online_cell(v, cell, sizeof(cell));
		printf("%-*s  %s\n", (int)w + 1, key, cell);
	}
	json_object_foreach(result, key, v)
	{
		if (!json_is_array(v) || !json_is_object(json_array_get(v, 0)))
			continue;
		if (json_object_size(result) > 1)
			printf("\n%s:\n", key);
		online_table(v);
	}
}

/* Builds the request of cmd with positional arguments a[0..n); NULL (err set) if bad. */
static json_t *online_request(const struct online_cmd *cmd, char **a, int n, char *err,
                              size_t errlen)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd->name);
	char addr_str[LB_ADDR_STRLEN];
	struct lb_addr addr;
	uint16_t port;
	char *end;
	long v;

	if (!req)
		return NULL;
	if (n >= 1)
		json_object_set_new(req, "vip", json_string(a[0]));
	if (!strcmp(cmd->name, "weight") || !strcmp(cmd->name, "drain") ||
	    !strcmp(cmd->name, "undrain"))
		json_object_set_new(req, "backend", json_string(a[1]));
	if (!strcmp(cmd->name, "weight")) {
		errno = 0;
		v = strtol(a[2], &end, 10);
		if (errno || *end || end == a[2] || v < 0 || v > UINT16_MAX) {
			snprintf(err, errlen, "weight must be 0..65535, not '%s'", a[2]);
			goto bad;
		}
		json_object_set_new(req, "weight", json_integer(v));
	}
	if (!strcmp(cmd->name, "explain")) {
		if (ctl_hostport_parse(a[1], &addr, &port) < 0) {
			snprintf(err, errlen, "bad SRC[:PORT] '%s'", a[1]);
			goto bad;
		}
		/* Resend the address alone: the daemon takes the port as its own member. */
		json_object_set_new(req, "src",
		                    json_string(lb_addr_str(&addr, addr_str, sizeof(addr_str))));
		if (port)
			json_object_set_new(req, "src_port", json_integer(port));
		for (int i = 2; i < n; i++) {
			if (!strcmp(a[i], "tcp") || !strcmp(a[i], "udp")) {
				json_object_set_new(req, "proto", json_string(a[i]));
				continue;
			}
			errno = 0;
			v = strtol(a[i], &end, 10);
			if (errno || *end || end == a[i] || v <= 0 || v > UINT16_MAX) {
				snprintf(err, errlen, "bad DST_PORT or PROTO '%s'", a[i]);
				goto bad;
			}
			json_object_set_new(req, "dst_port", json_integer(v));
		}
	}
	return req;
bad:
	json_decref(req);
	return NULL;
}

int online_socket(const char *sock, const char *config, char *out, size_t len, char *err,
                  size_t errlen)
{
	struct config *cfg;
	int ret;

	if (sock) {
		snprintf(out, len, "%s", sock);
		return 0;
	}
	if (!config) {
		snprintf(out, len, "%s", CONFIG_SOCKET_DEFAULT);
		return 0;
	}
	ret = config_load(config, &cfg, err, errlen);
	if (ret < 0)
		return ret;
	snprintf(out, len, "%s", cfg->control.socket);
	config_free(cfg);
	return 0;
}

/* The usage line of cmd, as the usage error of its options and arguments. */
static int online_usage_err(const struct online_cmd *cmd, const char *why, const char *arg,
                            char *err, size_t errlen)
{
	snprintf(err, errlen, "%s%s%s%susage: maglevctl %s%s%s [-s SOCKET] [-c CONFIG] [--json]",
	         why ? why : "", arg ? " '" : "", arg ? arg : "", why ? (arg ? "'; " : "; ") : "",
	         cmd->name, cmd->args[0] ? " " : "", cmd->args);
	return COMMAND_USAGE;
}

int online_parse(int argc, char **argv, struct online_args *out, char *err, size_t errlen)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct online_cmd *cmd = argc > 0 ? online_find(argv[0]) : NULL;
	int c, n;

	memset(out, 0, sizeof(*out));
	if (!cmd) {
		snprintf(err, errlen, "unknown command '%s'", argc > 0 ? argv[0] : "");
		return COMMAND_USAGE;
	}
	optind = 0; /* GNU getopt: start over for this argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "s:c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			out->sock = optarg;
			break;
		case 'c':
			out->config = optarg;
			break;
		case 'j':
			out->json = true;
			break;
		case 'h':
			out->help = true;
			return 0;
		default:
			return online_usage_err(cmd, "bad option", argv[optind - 1], err, errlen);
		}
	}
	if (out->sock && out->config)
		return online_usage_err(cmd, "-s and -c exclude each other", NULL, err, errlen);
	n = argc - optind;
	if (n < cmd->min_args || n > cmd->max_args)
		return online_usage_err(cmd, NULL, NULL, err, errlen);
	out->req = online_request(cmd, argv + optind, n, err, errlen);
	return out->req ? 0 : COMMAND_USAGE;
}

int online_run(int argc, char **argv, char *err, size_t errlen)
{
	struct online_args a;
	char path[CONFIG_PATH_MAX];
	json_t *resp;
	int ret;

	ret = online_parse(argc, argv, &a, err, errlen);
	if (ret)
		return ret;
	if (a.help) {
		online_usage(stdout);
		return 0;
	}
	ret = online_socket(a.sock, a.config, path, sizeof(path), err, errlen);
	if (ret == 0)
		ret = ctl_call(path, a.req, &resp, ONLINE_TIMEOUT_MS, err, errlen);
	json_decref(a.req);
	if (ret < 0)
		return ret;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *e = json_string_value(json_object_get(resp, "error"));

		snprintf(err, errlen, "%s", e ? e : "refused by maglevd");
		if (a.json) {
			json_dumpf(resp, stdout, JSON_INDENT(2));
			putchar('\n');
		}
		json_decref(resp);
		return -EINVAL;
	}
	if (a.json) {
		json_dumpf(json_object_get(resp, "result"), stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		online_print(json_object_get(resp, "result"));
	}
	json_decref(resp);
	return 0;
}
