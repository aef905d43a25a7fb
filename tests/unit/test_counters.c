/* SPDX-License-Identifier: GPL-2.0-only */
/* core/counters: the name and help tables of the X-macro list, and the non-zero summary lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/counters.h"

#define LINES_MAX 8u

struct lines {
	char text[LINES_MAX][LB_COUNTER_LINE_MAX];
	unsigned n;
};

static void collect(void *ctx, const char *text)
{
	struct lines *l = ctx;

	assert_true(l->n < LINES_MAX);
	snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", text);
}

static void test_tables(void **state)
{
	(void)state;
	assert_string_equal(lb_counter_name[LB_CTR_RX_FRAMES], "rx_frames");
	assert_string_equal(lb_counter_name[LB_CTR_CT_RECHOSEN], "ct_rechosen");
	for (unsigned k = 0; k < LB_CTR_MAX; k++) {
		assert_non_null(lb_counter_name[k]);
		assert_true(strlen(lb_counter_name[k]) < LB_COUNTER_COLUMN);
		assert_non_null(lb_counter_help[k]);
	}
}

/* Only the non-zero counters, in list order, the name padded to its column; 0 of n: no call. */
static void test_summary(void **state)
{
	static const char *const names[] = {"a_zero", "tx_gre_ipv4", "b_zero", "drop_no_backend"};
	const uint64_t v[] = {0, 3, 0, UINT64_MAX};
	struct lines l = {0};

	(void)state;
	lb_counters_summary(names, v, 4, collect, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.text[0], "tx_gre_ipv4                  3");
	assert_string_equal(l.text[1], "drop_no_backend              18446744073709551615");
	l.n = 0;
	lb_counters_summary(names, v, 1, collect, &l);
	assert_int_equal(l.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_summary),
	};

	return cmocka_run_group_tests_name("counters", tests, NULL, NULL);
}
