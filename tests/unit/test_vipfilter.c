/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Unit tests of the AF_PACKET steering filter: the generated classic BPF program is run over
 * hand-built frames with libpcap's reference interpreter (bpf_filter) and must accept exactly the
 * VIP traffic.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pcap/bpf.h>

#include "helpers.h"
#include "io/vipfilter.h"

#define FRAME_MAX 128u

/* Runs the program over frame; true if accepted (non-zero snap length). */
static bool accepts(const struct sock_filter *ins, const uint8_t *frame, uint32_t len)
{
	_Static_assert(sizeof(struct sock_filter) == sizeof(struct bpf_insn), "same layout");
	return bpf_filter((const struct bpf_insn *)ins, frame, len, len) != 0;
}

/* Ethernet + IPv4 (ihl_words 5..15) + 4 bytes of transport header (ports). */
static uint32_t frame4(uint8_t *f, const char *dst, uint8_t proto, uint16_t dport,
                       uint16_t frag_off, uint8_t ihl_words)
{
	struct lb_addr d = th_addr(dst);
	uint32_t ihl = ihl_words * 4u, l4 = 14 + ihl;

	memset(f, 0, FRAME_MAX);
	f[12] = 0x08;
	f[13] = 0x00;
	f[14] = (uint8_t)(0x40 | ihl_words);
	f[20] = (uint8_t)(frag_off >> 8);
	f[21] = (uint8_t)frag_off;
	f[22] = 64;
	f[23] = proto;
	memcpy(f + 26, "\xc6\x12\x00\x02", 4);
	memcpy(f + 30, d.b, 4);
	f[l4 + 2] = (uint8_t)(dport >> 8);
	f[l4 + 3] = (uint8_t)dport;
	return l4 + 8;
}

static uint32_t frame6(uint8_t *f, const char *dst, uint8_t next, uint16_t dport)
{
	struct lb_addr d = th_addr(dst);

	memset(f, 0, FRAME_MAX);
	f[12] = 0x86;
	f[13] = 0xdd;
	f[14] = 0x60;
	f[20] = next;
	f[21] = 64;
	memcpy(f + 38, d.b, 16);
	f[54 + 2] = (uint8_t)(dport >> 8);
	f[54 + 3] = (uint8_t)dport;
	return 54 + 8;
}

static struct sock_filter *build(const struct io_filter *f, uint32_t *n)
{
	struct sock_filter *ins = calloc(VIPFILTER_INSNS_MAX, sizeof(*ins));

	assert_non_null(ins);
	assert_int_equal(vipfilter_build(f, ins, VIPFILTER_INSNS_MAX, n), 0);
	assert_true(*n > 0 && *n <= VIPFILTER_INSNS_MAX);
	return ins;
}

static void test_ipv4(void **state)
{
	struct io_vip vips[] = {
	    {th_addr("203.0.113.10"), IPPROTO_TCP, 80},
	    {th_addr("203.0.113.11"), IPPROTO_UDP, 53},
	    {th_addr("203.0.113.12"), IPPROTO_TCP, 0},
	};
	struct io_filter f = {.vips = vips, .n_vips = 3, .self = {th_addr("198.18.2.2")}};
	uint8_t fr[FRAME_MAX];
	uint32_t n, len;
	struct sock_filter *ins = build(&f, &n);

	(void)state;
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 80, 0, 5);
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 80, 0, 7); /* IP options */
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 81, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_UDP, 80, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 81, 0x0010, 5); /* non-first fragment */
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 81, 0x2000, 5); /* first fragment */
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.11", IPPROTO_UDP, 53, 0, 5);
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.11", IPPROTO_TCP, 53, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.12", IPPROTO_TCP, 12345, 0, 5); /* port 0: every port */
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.12", IPPROTO_UDP, 12345, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_ICMP, 0, 0, 5);
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.13", IPPROTO_ICMP, 0, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "198.18.2.2", 47, 0, 0, 5); /* GRE to self: re-target */
	assert_true(accepts(ins, fr, len));
	len = frame4(fr, "198.18.2.2", IPPROTO_TCP, 22, 0, 5); /* SSH to the host */
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", 47, 0, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 80, 0, 5);
	fr[12] = 0x08;
	fr[13] = 0x06; /* ARP */
	assert_false(accepts(ins, fr, len));
	free(ins);
}

static void test_ipv6(void **state)
{
	struct io_vip vips[] = {
	    {th_addr("203.0.113.10"), IPPROTO_TCP, 80},
	    {th_addr("2001:db8:100::10"), IPPROTO_TCP, 80},
	    {th_addr("2001:db8:100::11"), IPPROTO_UDP, 53},
	};
	struct io_filter f = {.vips = vips, .n_vips = 3, .self = {[1] = th_addr("2001:db8:2::2")}};
	uint8_t fr[FRAME_MAX];
	uint32_t n, len;
	struct sock_filter *ins = build(&f, &n);

	(void)state;
	len = frame6(fr, "2001:db8:100::10", IPPROTO_TCP, 80);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::10", IPPROTO_TCP, 443);
	assert_false(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::11", IPPROTO_UDP, 53);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::10", IPPROTO_ICMPV6, 0);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::10", IPPROTO_FRAGMENT, 0);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::12", IPPROTO_ICMPV6, 0);
	assert_false(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::1", IPPROTO_TCP, 80); /* differs in the last word only */
	assert_false(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:2::2", 47, 0);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:2::2", IPPROTO_TCP, 22);
	assert_false(accepts(ins, fr, len));
	free(ins);
}

/* Enough VIPs that the IPv4 section is far longer than a conditional jump reaches (255). */
static void test_many_vips(void **state)
{
	enum { N = 240 }; /* 15 instructions each: about 3600 of the 4096 */
	struct io_vip *vips = calloc(N + 1, sizeof(*vips));
	struct io_filter f = {.vips = vips, .n_vips = N + 1};
	uint8_t fr[FRAME_MAX];
	char a[LB_ADDR_STRLEN];
	uint32_t n, len;
	struct sock_filter *ins;

	(void)state;
	assert_non_null(vips);
	for (int i = 0; i < N; i++) {
		snprintf(a, sizeof(a), "198.51.100.%d", i);
		vips[i] = (struct io_vip){th_addr(a), IPPROTO_TCP, (uint16_t)(1000 + i)};
	}
	vips[N] = (struct io_vip){th_addr("2001:db8:100::10"), IPPROTO_TCP, 80};
	ins = build(&f, &n);
	assert_true(n > 2 * 255);
	for (int i = 0; i < N; i += 37) {
		snprintf(a, sizeof(a), "198.51.100.%d", i);
		len = frame4(fr, a, IPPROTO_TCP, (uint16_t)(1000 + i), 0, 5);
		assert_true(accepts(ins, fr, len));
		len = frame4(fr, a, IPPROTO_TCP, 999, 0, 5);
		assert_false(accepts(ins, fr, len));
	}
	len = frame6(fr, "2001:db8:100::10", IPPROTO_TCP, 80);
	assert_true(accepts(ins, fr, len));
	free(ins);
	free(vips);
}

static void test_too_many(void **state)
{
	struct io_vip vips[] = {{th_addr("203.0.113.10"), IPPROTO_TCP, 80}};
	struct io_filter f = {.vips = vips, .n_vips = 1};
	struct sock_filter ins[8], *big = calloc(VIPFILTER_INSNS_MAX, sizeof(*big));
	struct io_vip *many = calloc(1000, sizeof(*many));
	struct io_filter g = {.vips = many, .n_vips = 1000};
	uint32_t n = 0;

	(void)state;
	assert_int_equal(vipfilter_build(&f, ins, 8, &n), -E2BIG);
	assert_non_null(big);
	assert_non_null(many);
	for (uint32_t i = 0; i < 1000; i++) {
		many[i].addr.family = AF_INET;
		many[i].addr.w[0] = htonl(0xc6336400u + i); /* 198.51.100.0 and on */
		many[i].proto = IPPROTO_UDP;
		many[i].port = 53;
	}
	assert_int_equal(vipfilter_build(&g, big, VIPFILTER_INSNS_MAX, &n), -E2BIG);
	free(big);
	free(many);
}

static void test_empty(void **state)
{
	struct io_filter f = {0};
	uint8_t fr[FRAME_MAX];
	uint32_t n, len;
	struct sock_filter *ins = build(&f, &n);

	(void)state;
	len = frame4(fr, "203.0.113.10", IPPROTO_TCP, 80, 0, 5);
	assert_false(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8:100::10", IPPROTO_TCP, 80);
	assert_false(accepts(ins, fr, len));
	free(ins);
}

static void test_all_ip(void **state)
{
	struct sock_filter ins[8];
	uint8_t fr[FRAME_MAX];
	uint32_t n, len;

	(void)state;
	assert_int_equal(vipfilter_build_all_ip(ins, 8, &n), 0);
	len = frame4(fr, "192.0.2.1", IPPROTO_TCP, 22, 0, 5);
	assert_true(accepts(ins, fr, len));
	len = frame6(fr, "2001:db8::1", IPPROTO_UDP, 53);
	assert_true(accepts(ins, fr, len));
	fr[12] = 0x08;
	fr[13] = 0x06;
	assert_false(accepts(ins, fr, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4),      cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_many_vips), cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_empty),     cmocka_unit_test(test_all_ip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
