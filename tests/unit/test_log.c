/* SPDX-License-Identifier: GPL-2.0-only */
/* base/log: the line format with and without the journal, levels, cut and trailing newlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "helpers.h"

static void write_levels(void)
{
	log_err("bad %d", 1);
	log_warn("careful");
	log_info("reloaded\n"); /* one trailing newline is the line's end, not an empty line */
	log_debug("detail");
}

static void test_plain(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init("maglevd");
	log_set_level(LOG_LEVEL_INFO);
	assert_string_equal(th_capture_stderr(write_levels),
	                    "maglevd: bad 1\nmaglevd: careful\nmaglevd: reloaded\n");
	log_set_level(LOG_LEVEL_DEBUG);
	assert_true(log_enabled(LOG_LEVEL_DEBUG));
	assert_string_equal(th_capture_stderr(write_levels),
	                    "maglevd: bad 1\nmaglevd: careful\n"
	                    "maglevd: reloaded\nmaglevd: detail\n");
	log_set_level(LOG_LEVEL_ERR);
	assert_false(log_enabled(LOG_LEVEL_WARN));
	assert_string_equal(th_capture_stderr(write_levels), "maglevd: bad 1\n");
}

static char journal_env[64];

/* stderr is the pipe here, so JOURNAL_STREAM is set to the pipe's device and inode. */
static void write_as_journal(void)
{
	struct stat st;

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(journal_env, sizeof(journal_env), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", journal_env, 1);
	log_init("maglevctl");
	write_levels();
	/* Another stream than stderr is not the journal. */
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_init("maglevctl");
	log_warn("plain again");
}

static void test_journal(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_DEBUG);
	assert_string_equal(th_capture_stderr(write_as_journal),
	                    "<3>maglevctl: bad 1\n<4>maglevctl: careful\n<6>maglevctl: reloaded\n"
	                    "<7>maglevctl: detail\nmaglevctl: plain again\n");
	unsetenv("JOURNAL_STREAM");
}

static void write_long(void)
{
	static char big[LOG_LINE_MAX * 2];

	memset(big, 'x', sizeof(big) - 1);
	log_err("%s", big);
}

/* A message longer than a line is cut, and still ends with one newline. */
static void test_long_line(void **state)
{
	const char *out;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init("maglevd");
	log_set_level(LOG_LEVEL_INFO);
	out = th_capture_stderr(write_long);
	assert_int_equal(strlen(out), LOG_LINE_MAX);
	assert_int_equal(strncmp(out, "maglevd: xxx", 12), 0);
	assert_int_equal(out[LOG_LINE_MAX - 1], '\n');
	assert_int_equal(out[LOG_LINE_MAX - 2], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_long_line),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
