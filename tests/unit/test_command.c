/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevctl's command line: global options before the command name, and usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "maglevctl/online.h"
#include "maglevctl/command.h"
#include "helpers.h"

#define ARGS_MAX 8 /* arguments of one case */

/* One command line and the command argv it becomes ("" where it is a usage error). */
struct args_case {
	const char *in[ARGS_MAX];  /* after the program name, NULL-terminated */
	const char *out[ARGS_MAX]; /* NULL-terminated; out[0] NULL: a usage error */
	const char *err;           /* part of the error message, for usage errors */
};

static const struct args_case args_cases[] = {
    {{"status"}, {"status"}, NULL},
    {{"-s", "/run/x.sock", "status"}, {"status", "-s", "/run/x.sock"}, NULL},
    {{"--socket", "/s", "backends", "web"}, {"backends", "--socket", "/s", "web"}, NULL},
    {{"--socket=/s", "--json", "vips"}, {"vips", "--socket=/s", "--json"}, NULL},
    {{"-s/s", "counters", "--json"}, {"counters", "-s/s", "--json"}, NULL},
    {{"-c", "/etc/m.yaml", "table", "--vip", "web"},
     {"table", "-c", "/etc/m.yaml", "--vip", "web"},
     NULL},
    {{"--config=/m.yaml", "--", "status"}, {"status", "--config=/m.yaml"}, NULL},
    {{"--", "status", "--json"}, {"status", "--json"}, NULL},
    {{"weight", "web", "198.18.1.11", "-s", "/s", "3"},
     {"weight", "web", "198.18.1.11", "-s", "/s", "3"},
     NULL},
    /* decap's action comes first: the options go after it, where its parser reads them. */
    {{"-c", "/m.yaml", "decap", "attach", "eth0"},
     {"decap", "attach", "-c", "/m.yaml", "eth0"},
     NULL},
    {{"--config=/m.yaml", "decap", "attach", "eth0", "--mode", "skb"},
     {"decap", "attach", "--config=/m.yaml", "eth0", "--mode", "skb"},
     NULL},
    {{"-c", "/m.yaml", "decap"}, {"decap", "-c", "/m.yaml"}, NULL},
    {{"-c", "/m.yaml", "decap", "--help"}, {"decap", "-c", "/m.yaml", "--help"}, NULL},
    {{"-c", "/m.yaml", "table", "attach"}, {"table", "-c", "/m.yaml", "attach"}, NULL},
    /* -h/--help among the options: the command's help, or maglevctl's with no command. */
    {{"-s", "/s", "--help"}, {"help", NULL}, NULL},
    {{"-h"}, {"help"}, NULL},
    {{"--json", "help"}, {"help", "--json"}, NULL},
    {{"--help", "status"}, {"status", "--help"}, NULL},
    {{"-s", "--help", "status"}, {"status", "-s", "--help"}, NULL},
    {{"-s", "--", "status"}, {"status", "-s", "--"}, NULL},
    {{NULL}, {NULL}, "no command"},
    {{"-s", "/s"}, {NULL}, "no command"},
    {{"--json", "--"}, {NULL}, "no command"},
    {{"-s"}, {NULL}, "option '-s' needs a value"},
    {{"--config"}, {NULL}, "option '--config' needs a value"},
    {{"-x", "status"}, {NULL}, "unknown option '-x' before the command"},
    {{"--socketx", "status"}, {NULL}, "unknown option '--socketx' before the command"},
    {{"--vip", "web", "table"}, {NULL}, "unknown option '--vip' before the command"},
    {{"--sock", "/s", "status"}, {NULL}, "unknown option '--sock' before the command"},
    {{"--helpx", "status"}, {NULL}, "unknown option '--helpx' before the command"},
};

static int count(const char *const *v)
{
	int n = 0;

	while (n < ARGS_MAX && v[n])
		n++;
	return n;
}

static void test_args_command(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(args_cases); i++) {
		const struct args_case *c = &args_cases[i];
		char *argv[ARGS_MAX + 1] = {"maglevctl"}, *out[COMMAND_ARGS_MAX], err[128] = "";
		int argc = 1 + count(c->in), n = -1, want = count(c->out), rc;

		memcpy(argv + 1, c->in, sizeof(char *) * (size_t)(argc - 1));
		rc = command_argv(argc, argv, out, &n, err, sizeof(err));
		if (!c->out[0]) {
			if (rc != COMMAND_USAGE || !strstr(err, c->err))
				fail_msg("case %zu: rc %d err '%s', want usage '%s'", i, rc, err,
				         c->err);
			assert_int_equal(n, 0);
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu: rc %d err '%s'", i, rc, err);
		assert_int_equal(n, want);
		for (int k = 0; k < n; k++)
			assert_string_equal(out[k], c->out[k]);
	}
}

/* More arguments than COMMAND_ARGS_MAX are a usage error, not an overflow of out. */
static void test_args_too_many(void **state)
{
	static char *argv[COMMAND_ARGS_MAX + 1];
	char *out[COMMAND_ARGS_MAX], err[128];
	int n;

	(void)state;
	argv[0] = "maglevctl";
	for (int i = 1; i <= COMMAND_ARGS_MAX; i++)
		argv[i] = "status";
	assert_int_equal(command_argv(COMMAND_ARGS_MAX + 1, argv, out, &n, err, sizeof(err)),
	                 COMMAND_USAGE);
	assert_int_equal(command_argv(COMMAND_ARGS_MAX, argv, out, &n, err, sizeof(err)), 0);
	assert_int_equal(n, COMMAND_ARGS_MAX - 1);
}

/* Online command lines: usage errors are COMMAND_USAGE (exit 2), whatever their kind. */
static void test_online_parse(void **state)
{
	static const struct {
		const char *argv[ARGS_MAX];
		int rc;
		const char *err; /* part of the message, or the request's "cmd" on success */
	} cases[] = {
	    {{"status", "-s", "/s"}, 0, "status"},
	    {{"weight", "web", "198.18.1.11", "0", "--json"}, 0, "weight"},
	    {{"explain", "web", "198.18.0.2:1000", "80", "tcp"}, 0, "explain"},
	    {{"status", "extra"}, COMMAND_USAGE, "usage: maglevctl status [-s SOCKET]"},
	    {{"status", "--bogus"}, COMMAND_USAGE, "bad option '--bogus'; usage:"},
	    {{"status", "-s"}, COMMAND_USAGE, "bad option '-s'"},
	    {{"status", "-s", "/s", "-c", "/m.yaml"},
	     COMMAND_USAGE,
	     "-s and -c exclude each other"},
	    {{"weight", "web", "198.18.1.11", "70000"},
	     COMMAND_USAGE,
	     "weight must be 0..65535, not '70000'"},
	    {{"weight", "web", "198.18.1.11", "-1"}, COMMAND_USAGE, "bad option '-1'"},
	    {{"explain", "web", "198.18.0.2:99999"}, COMMAND_USAGE, "bad SRC[:PORT]"},
	    {{"explain", "web", "198.18.0.2", "sctp"}, COMMAND_USAGE, "bad DST_PORT or PROTO"},
	    {{"drain", "web"}, COMMAND_USAGE, "usage: maglevctl drain VIP BACKEND"},
	    {{"frobnicate"}, COMMAND_USAGE, "unknown command 'frobnicate'"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[ARGS_MAX + 1], err[256] = "";
		int argc = count(cases[i].argv), rc;
		struct online_args a;

		memcpy(argv, cases[i].argv, sizeof(argv[0]) * (size_t)argc);
		argv[argc] = NULL;
		rc = online_parse(argc, argv, &a, err, sizeof(err));
		if (rc != cases[i].rc || (rc && !strstr(err, cases[i].err)))
			fail_msg("case %zu: rc %d err '%s', want %d '%s'", i, rc, err, cases[i].rc,
			         cases[i].err);
		if (rc == 0) {
			assert_non_null(a.req);
			assert_string_equal(json_string_value(json_object_get(a.req, "cmd")),
			                    cases[i].err);
			json_decref(a.req);
		} else {
			assert_null(a.req);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_command),
	    cmocka_unit_test(test_args_too_many),
	    cmocka_unit_test(test_online_parse),
	};

	return cmocka_run_group_tests_name("ctl_cmd", tests, NULL, NULL);
}
