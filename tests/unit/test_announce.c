/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Unit tests of VIP announcement (maglevd/announce.c) against the real kernel, inside a private
 * network namespace made with unshare(CLONE_NEWNET): routes added and removed, stale ones of our
 * protocol cleaned, other protocols and tables untouched, the TUN device taking our routes with it.
 * Skipped (not failed) without the privileges to make the namespace.
 */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "maglevd/announce.h"

#define ERR_LEN 256
#define OUT_MAX 4096 /* bytes of `ip route` output read */
#define TABLE   100u
#define PROTO   250u

static bool have_netns;

/* Runs a shell command in our namespace; its stdout (trimmed) into out. Returns its status. */
static int sh(char *out, size_t len, const char *fmt, ...)
{
	char cmd[512];
	size_t n = 0;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (out) {
		n = fread(out, 1, len - 1, f);
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			n--;
		out[n] = '\0';
	} else {
		char sink[OUT_MAX];

		while (fread(sink, 1, sizeof(sink), f) > 0)
			;
	}
	return pclose(f);
}

static int setup_netns(void **state)
{
	(void)state;
	have_netns = unshare(CLONE_NEWNET) == 0 && access("/dev/net/tun", R_OK | W_OK) == 0 &&
	             sh(NULL, 0, "ip link set lo up 2>&1") == 0;
	return 0;
}

static struct lb_addr addr(const char *s)
{
	struct lb_addr a;

	assert_int_equal(lb_addr_parse(s, &a), 0);
	return a;
}

static struct config_announce cfg(void)
{
	struct config_announce c = {
	    .enabled = true,
	    .table = TABLE,
	    .protocol = PROTO,
	    .withdraw_when_no_backends = true,
	    .interface = "mgtest-vips",
	};

	return c;
}

/* Number of lines `ip -FAM route show table T [proto P]` prints. */
static int routes(const char *fam, unsigned table, int proto)
{
	char out[OUT_MAX];
	int n = 0;

	if (proto >= 0)
		sh(out, sizeof(out), "ip %s -o route show table %u proto %d", fam, table, proto);
	else
		sh(out, sizeof(out), "ip %s -o route show table %u", fam, table);
	for (char *p = out; *p; p++)
		n += *p == '\n';
	return out[0] ? n + 1 : 0;
}

static void test_sync_add_remove(void **state)
{
	struct config_announce c = cfg();
	struct announce *a = NULL;
	char err[ERR_LEN] = "", out[OUT_MAX];
	struct lb_addr want[4] = {addr("203.0.113.10"), addr("203.0.113.11"),
	                          addr("2001:db8:100::10"), addr("203.0.113.10")};

	(void)state;
	if (!have_netns)
		skip();
	/* Leftovers of an earlier run (our protocol), and routes that are not ours at all. */
	assert_int_equal(
	    sh(NULL, 0, "ip route add blackhole 203.0.113.99/32 table %u proto %u", TABLE, PROTO),
	    0);
	assert_int_equal(sh(NULL, 0,
	                    "ip -6 route add blackhole 2001:db8:100::99/128 table %u proto %u",
	                    TABLE, PROTO),
	                 0);
	assert_int_equal(
	    sh(NULL, 0, "ip route add blackhole 203.0.113.98/32 table %u proto static", TABLE), 0);
	assert_int_equal(
	    sh(NULL, 0, "ip route add blackhole 203.0.113.97/32 table 101 proto %u", PROTO), 0);

	assert_int_equal(announce_open(&a, &c, err, sizeof(err)), 0);
	assert_non_null(a);
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_STALE_REMOVED), 2);
	assert_int_equal(routes("-4", TABLE, PROTO), 0);
	assert_int_equal(routes("-6", TABLE, PROTO), 0);
	assert_int_equal(routes("-4", TABLE, -1), 1);  /* proto static stays */
	assert_int_equal(routes("-4", 101, PROTO), 1); /* another table stays */
	assert_int_not_equal(if_nametoindex("mgtest-vips"), 0);

	/* Duplicates count once. */
	assert_int_equal(announce_sync(a, want, 4), 0);
	assert_int_equal(routes("-4", TABLE, PROTO), 2);
	assert_int_equal(routes("-6", TABLE, PROTO), 1);
	assert_int_equal(announce_live_count(a), 3);
	assert_true(announce_is_live(a, &want[0]));
	assert_true(announce_is_live(a, &want[2]));
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_ROUTES_ADDED), 3);
	sh(out, sizeof(out), "ip -o route show table %u proto %u 203.0.113.10", TABLE, PROTO);
	assert_non_null(strstr(out, "203.0.113.10 dev mgtest-vips"));

	/* Same set again: nothing to do. */
	assert_int_equal(announce_sync(a, want, 3), 0);
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_ROUTES_ADDED), 3);

	/* One withdrawn; one removed behind our back comes back. */
	assert_int_equal(sh(NULL, 0, "ip -6 route del 2001:db8:100::10/128 table %u", TABLE), 0);
	assert_int_equal(announce_sync(a, &want[1], 2), 0);
	assert_false(announce_is_live(a, &want[0]));
	assert_true(announce_is_live(a, &want[1]));
	assert_true(announce_is_live(a, &want[2]));
	assert_int_equal(routes("-4", TABLE, PROTO), 1);
	assert_int_equal(routes("-6", TABLE, PROTO), 1);
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_ROUTES_REMOVED), 1);
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_ROUTES_ADDED), 4);
	assert_int_equal(announce_counter_get(a, ANNOUNCE_CTR_ERRORS), 0);

	/* Close withdraws everything and the device goes. */
	announce_close(a);
	assert_int_equal(routes("-4", TABLE, PROTO), 0);
	assert_int_equal(routes("-6", TABLE, PROTO), 0);
	assert_int_equal(if_nametoindex("mgtest-vips"), 0);
	assert_int_equal(routes("-4", TABLE, -1), 1);
	sh(NULL, 0, "ip route flush table %u; ip route flush table 101", TABLE);
}

/* A table above 255 only fits RTA_TABLE; the device dies with its fd, and its routes with it. */
static void test_large_table_and_device_lifetime(void **state)
{
	struct config_announce c = cfg();
	struct announce *a = NULL;
	char err[ERR_LEN] = "";
	struct lb_addr want[1] = {addr("198.51.100.20")};

	(void)state;
	if (!have_netns)
		skip();
	c.table = 70000;
	assert_int_equal(announce_open(&a, &c, err, sizeof(err)), 0);
	assert_int_equal(announce_sync(a, want, 1), 0);
	assert_int_equal(routes("-4", 70000, PROTO), 1);
	assert_int_equal(routes("-4", TABLE, PROTO), 0);
	/* Deleting the device (as the kernel does when maglevd dies) takes the route; a sync
	 * makes a new device and puts it back. */
	assert_int_equal(sh(NULL, 0, "ip link del mgtest-vips"), 0);
	assert_int_equal(routes("-4", 70000, PROTO), 0);
	assert_int_equal(announce_sync(a, want, 1), 0);
	assert_int_equal(routes("-4", 70000, PROTO), 1);
	assert_true(announce_is_live(a, &want[0]));
	announce_close(a);
	assert_int_equal(routes("-4", 70000, PROTO), 0);
}

static void test_device_name_taken(void **state)
{
	struct config_announce c = cfg();
	struct announce *a = NULL, *b = NULL;
	char err[ERR_LEN] = "";

	(void)state;
	if (!have_netns)
		skip();
	assert_int_equal(announce_open(&a, &c, err, sizeof(err)), 0);
	/* A second announcer on the same device (a second maglevd) is refused with a message. */
	assert_true(announce_open(&b, &c, err, sizeof(err)) < 0);
	assert_null(b);
	assert_non_null(strstr(err, "mgtest-vips"));
	announce_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sync_add_remove),
	    cmocka_unit_test(test_large_table_and_device_lifetime),
	    cmocka_unit_test(test_device_name_taken),
	};

	return cmocka_run_group_tests(tests, setup_netns, NULL);
}
