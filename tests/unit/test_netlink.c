/* SPDX-License-Identifier: GPL-2.0-only */
/* nl_cb_run: netlink buffers whose messages do not fit are refused before libmnl walks them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/rtnetlink.h>
#include <string.h>

#include "io/netlink.h"

#define BUF_WORDS 16u /* uint32_t words of the test buffer */

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	++*(int *)data;
	return MNL_CB_OK;
}

/* Puts a message header of length len and type RTM_NEWROUTE at byte off of buf. */
static void put(uint32_t *buf, size_t off, uint32_t len)
{
	struct nlmsghdr h = {.nlmsg_len = len, .nlmsg_type = RTM_NEWROUTE};

	memcpy((char *)buf + off, &h, sizeof(h));
}

static void test_cb_run(void **state)
{
	uint32_t buf[BUF_WORDS] = {0};
	int calls = 0;

	(void)state;
	/* Two messages that fit: both reach the callback. */
	put(buf, 0, 28);
	put(buf, 28, 20);
	assert_int_equal(nl_cb_run(buf, 48, 0, 0, count_cb, &calls), MNL_CB_OK);
	assert_int_equal(calls, 2);

	/* A length of 2^31 or more, which libmnl's signed check would take: refused whole. */
	calls = 0;
	put(buf, 28, 0x80000010u);
	errno = 0;
	assert_int_equal(nl_cb_run(buf, 48, 0, 0, count_cb, &calls), MNL_CB_ERROR);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(calls, 0);

	/* One whose length wraps NLMSG_ALIGN to 0 (a walk that would never advance). */
	put(buf, 28, 0xfffffffeu);
	assert_int_equal(nl_cb_run(buf, 48, 0, 0, count_cb, &calls), MNL_CB_ERROR);

	/* One whose padding runs past the buffer, and one shorter than its header. */
	put(buf, 28, 17);
	assert_int_equal(nl_cb_run(buf, 45, 0, 0, count_cb, &calls), MNL_CB_ERROR);
	put(buf, 28, 8);
	assert_int_equal(nl_cb_run(buf, 48, 0, 0, count_cb, &calls), MNL_CB_ERROR);
	assert_int_equal(calls, 0);
}

static void test_payload_has(void **state)
{
	uint32_t buf[BUF_WORDS] = {0};

	(void)state;
	put(buf, 0, sizeof(struct nlmsghdr) + sizeof(struct rtmsg));
	assert_true(nl_payload_has((struct nlmsghdr *)buf, sizeof(struct rtmsg)));
	put(buf, 0, sizeof(struct nlmsghdr) + sizeof(struct rtmsg) - 1);
	assert_false(nl_payload_has((struct nlmsghdr *)buf, sizeof(struct rtmsg)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cb_run),
	    cmocka_unit_test(test_payload_has),
	};

	return cmocka_run_group_tests_name("netlink", tests, NULL, NULL);
}
