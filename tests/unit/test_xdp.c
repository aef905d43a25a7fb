/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * io/xdp: what a failed load reports, how the libbpf/libxdp messages are logged (warnings at warn
 * outside an xprog call, at debug inside one, one line each with the library's own prefix) and
 * kept (the last XPROG_LOG_KEEP bytes, whole lines). Needs no root: nothing is attached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "base/log.h"
#include "io/xdp.h"
#include "helpers.h"

#define MISSING_DIR  "/nonexistent-maglev-test"
#define NO_SUCH_PROG "no_such_prog" /* a program name nothing has */
#define FLOOD_FILES  2000u          /* messages that overflow what is kept several times */

static const struct xprog_match no_match = {.name = NO_SUCH_PROG};

static int attach_rc;
static bool attach_load_failed;
static char attach_err[256];

static void attach_missing(void)
{
	struct xprog x;

	attach_rc = xprog_attach(&x, MISSING_DIR "/xdp_vip.bpf.o", "xdp", 1, XPROG_MODE_AUTO,
	                         &attach_load_failed, attach_err, sizeof(attach_err));
	assert_null(x.prog);
}

/* A missing object: one error line for the caller, libbpf's reason kept, nothing logged. */
static void test_open_missing(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_INFO);
	assert_string_equal(th_capture_stderr(attach_missing), "");
	assert_true(attach_rc < 0);
	assert_true(attach_load_failed);
	assert_string_equal(attach_err, "cannot open XDP program '" MISSING_DIR
	                                "/xdp_vip.bpf.o': No such file or directory");
	assert_string_equal(xprog_log_kept(), "libbpf: elf: failed to open " MISSING_DIR
	                                      "/xdp_vip.bpf.o: No such file or directory\n");
	/* With debug on (maglevd -v) the warning shows, at debug: exactly once. */
	log_set_level(LOG_LEVEL_DEBUG);
	assert_non_null(strstr(th_capture_stderr(attach_missing),
	                       "libbpf: elf: failed to open " MISSING_DIR
	                       "/xdp_vip.bpf.o: No such file or "
	                       "directory\n"));
	log_set_level(LOG_LEVEL_INFO);
}

static void dump_err(void)
{
	xprog_log_dump(LOG_LEVEL_ERR);
}

/* What is kept can be logged as it is, a line a message. */
static void test_dump(void **state)
{
	(void)state;
	th_capture_stderr(attach_missing);
	assert_string_equal(th_capture_stderr(dump_err), xprog_log_kept());
}

static void open_outside(void)
{
	struct bpf_object *obj = bpf_object__open_file(MISSING_DIR "/outside.o", NULL);

	assert_true(libbpf_get_error(obj) != 0);
}

/* A library warning outside an xprog call (the hooks are set) is a warning of ours. */
static void test_warn_outside(void **state)
{
	struct xprog_found f;

	(void)state;
	assert_true(xprog_find(1, &no_match, &f) >= 0); /* sets the hooks */
	xprog_found_close(&f);
	log_set_level(LOG_LEVEL_WARN);
	assert_string_equal(th_capture_stderr(open_outside),
	                    "libbpf: elf: failed to open " MISSING_DIR
	                    "/outside.o: No such file or directory\n");
	log_set_level(LOG_LEVEL_ERR);
	assert_string_equal(th_capture_stderr(open_outside), "");
	log_set_level(LOG_LEVEL_INFO);
}

/* More than XPROG_LOG_KEEP bytes of messages: the last ones are kept, as whole lines. */
static void test_kept_tail(void **state)
{
	char path[128], want[192];
	const char *kept;

	(void)state;
	th_capture_stderr(attach_missing); /* clears what is kept */
	log_set_level(LOG_LEVEL_ERR);
	for (unsigned i = 0; i < FLOOD_FILES; i++) {
		snprintf(path, sizeof(path), MISSING_DIR "/flood-%u.o", i);
		assert_true(libbpf_get_error(bpf_object__open_file(path, NULL)) != 0);
	}
	log_set_level(LOG_LEVEL_INFO);
	kept = xprog_log_kept();
	assert_true(strlen(kept) < XPROG_LOG_KEEP);
	assert_true(strlen(kept) > XPROG_LOG_KEEP / 2);
	assert_int_equal(strncmp(kept, "libbpf: elf: failed to open ", 28), 0);
	snprintf(want, sizeof(want),
	         "libbpf: elf: failed to open " MISSING_DIR
	         "/flood-%u.o: No such file or directory\n",
	         FLOOD_FILES - 1);
	assert_string_equal(kept + strlen(kept) - strlen(want), want);
	assert_null(strstr(kept, "/flood-0.o"));
	assert_null(strstr(kept, MISSING_DIR "/xdp_vip.bpf.o"));
}

/* Our program is not found where it is not; what is attached to lo (anything) is released. */
static void test_find(void **state)
{
	struct xprog_found f;

	(void)state;
	assert_int_equal(xprog_find(1, &no_match, &f), 0);
	assert_null(f.prog);
	xprog_found_close(&f);
	assert_null(f.mp);
}

static void test_mode_names(void **state)
{
	struct xprog_found f = {.mode = XDP_MODE_SKB};

	(void)state;
	assert_string_equal(xprog_mode_name(XDP_MODE_NATIVE), "native");
	assert_string_equal(xprog_found_mode(&f), "skb");
	f.dispatcher = true;
	assert_string_equal(xprog_found_mode(&f), "multi");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_missing), cmocka_unit_test(test_dump),
	    cmocka_unit_test(test_warn_outside), cmocka_unit_test(test_kept_tail),
	    cmocka_unit_test(test_find),         cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
