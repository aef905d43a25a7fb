/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Byte-exact fixtures for the backend XDP GRE decapsulation program (bpf/xdp_decap.bpf.o), run in
 * the kernel with BPF_PROG_TEST_RUN: input frame -> verdict, output frame and counter. Needs root
 * and the built object (build/bpf/, or $MAGLEV_BPF_DIR); skipped otherwise.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cmocka.h>

#include "base/util.h"
#include "io/decap.h"
#include "helpers.h"

#define FRAME_MAX 512u /* bytes of a fixture frame */

struct fixture_env {
	struct bpf_object *obj;
	int prog_fd;
	int vips_fd;
	int counters_fd;
	const char *skip_why;
};

static struct fixture_env env;

struct frame {
	uint8_t b[FRAME_MAX];
	size_t len;
};

static const uint8_t mac_dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x11};
static const uint8_t mac_src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

static void put(struct frame *f, const void *p, size_t n)
{
	assert_true(f->len + n <= sizeof(f->b));
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void put16(struct frame *f, uint16_t v)
{
	uint16_t be = htons(v);

	put(f, &be, 2);
}

static void put_eth(struct frame *f, uint16_t type)
{
	put(f, mac_dst, 6);
	put(f, mac_src, 6);
	put16(f, type);
}

static void put_vlan(struct frame *f, uint16_t tci, uint16_t type)
{
	put_eth(f, ETH_P_8021Q);
	put16(f, tci);
	put16(f, type);
}

/* An IPv4 header of ihl words (options zero-filled) with payload_len bytes to follow. */
static void put_ipv4(struct frame *f, const char *src, const char *dst, uint8_t proto,
                     size_t payload_len, unsigned ihl, uint16_t frag_off)
{
	uint8_t h[60] = {0};

	h[0] = (uint8_t)(0x40 | ihl);
	h[2] = (uint8_t)((ihl * 4 + payload_len) >> 8);
	h[3] = (uint8_t)(ihl * 4 + payload_len);
	h[6] = (uint8_t)(frag_off >> 8);
	h[7] = (uint8_t)frag_off;
	h[8] = 64;
	h[9] = proto;
	assert_int_equal(inet_pton(AF_INET, src, h + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, h + 16), 1);
	put(f, h, ihl * 4);
}

static void put_ipv6(struct frame *f, const char *src, const char *dst, uint8_t nh,
                     size_t payload_len)
{
	uint8_t h[40] = {0};

	h[0] = 0x60;
	h[4] = (uint8_t)(payload_len >> 8);
	h[5] = (uint8_t)payload_len;
	h[6] = nh;
	h[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, h + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, h + 24), 1);
	put(f, h, 40);
}

static void put_gre(struct frame *f, uint16_t flags_version, uint16_t proto)
{
	put16(f, flags_version);
	put16(f, proto);
}

/* Inner packets: an IPv4 ICMP echo (28 bytes + data) and an IPv6 UDP datagram. */
static void put_inner4(struct frame *f, const char *dst)
{
	static const uint8_t icmp[12] = {8, 0, 0xf7, 0xb6, 0x4d, 0x47, 0, 1, 'm', 'g', 'l', 'v'};

	put_ipv4(f, "198.18.0.2", dst, 1, sizeof(icmp), 5, 0x4000);
	put(f, icmp, sizeof(icmp));
}

static void put_inner6(struct frame *f, const char *dst)
{
	static const uint8_t udp[12] = {0x9c, 0x41, 0, 53, 0, 12, 0, 0, 'm', 'g', 'l', 'v'};

	put_ipv6(f, "2001:db8::2", dst, 17, sizeof(udp));
	put(f, udp, sizeof(udp));
}

static size_t inner4_len(void)
{
	return 20 + 12;
}

static size_t inner6_len(void)
{
	return 40 + 12;
}

/* The inner packet to the test's IPv4 or IPv6 VIP, and its EtherType. */
static void put_inner_vip(struct frame *f, bool v6)
{
	if (v6)
		put_inner6(f, "2001:db8:100::10");
	else
		put_inner4(f, "203.0.113.10");
}

static uint16_t ethertype(bool v6)
{
	return v6 ? ETH_P_IPV6 : ETH_P_IP;
}

/* Ethernet, 802.1Q-tagged when vlan; the same MACs and tag in front of the decapsulated packet. */
static void put_l2(struct frame *f, bool vlan, uint16_t type)
{
	if (vlan)
		put_vlan(f, 0x2064, type);
	else
		put_eth(f, type);
}

/*
 * What maglevd sends a backend, up to the inner packet: Ethernet, the outer IPv6 header or IPv4
 * header of ihl words, and GRE with protocol gre_proto around inner_len bytes.
 */
static void put_outer(struct frame *f, bool outer_v6, unsigned ihl, bool vlan, uint16_t gre_proto,
                      size_t inner_len)
{
	put_l2(f, vlan, ethertype(outer_v6));
	if (outer_v6)
		put_ipv6(f, "2001:db8:2::2", "2001:db8:1::11", IPPROTO_GRE, 4 + inner_len);
	else
		put_ipv4(f, "198.18.2.2", "198.18.1.11", IPPROTO_GRE, 4 + inner_len, ihl, 0);
	put_gre(f, 0, gre_proto);
}

static uint64_t counter(enum decap_counter c)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals, sum = 0;
	uint32_t key = c;

	assert_true(ncpu > 0);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	assert_non_null(vals);
	assert_int_equal(bpf_map_lookup_elem(env.counters_fd, &key, vals), 0);
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	free(vals);
	return sum;
}

/*
 * Runs the program on in; checks the verdict, that the output equals want (or in itself when
 * want is NULL), and that exactly counter ctr moved, by one.
 */
static void run_expect(const struct frame *in, int verdict, const struct frame *want,
                       enum decap_counter ctr)
{
	uint8_t out[FRAME_MAX + 256];
	uint64_t before[DECAP_CTR_MAX];
	const struct frame *w = want ? want : in;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in->b, .data_size_in = (__u32)in->len,
	            .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

	for (int i = 0; i < DECAP_CTR_MAX; i++)
		before[i] = counter((enum decap_counter)i);
	assert_int_equal(bpf_prog_test_run_opts(env.prog_fd, &opts), 0);
	assert_int_equal(opts.retval, verdict);
	assert_int_equal(opts.data_size_out, w->len);
	assert_memory_equal(out, w->b, w->len);
	for (int i = 0; i < DECAP_CTR_MAX; i++) {
		uint64_t want_delta = i == (int)ctr ? 1 : 0;

		if (counter((enum decap_counter)i) - before[i] != want_delta)
			fail_msg("counter %s moved by %llu, expected %llu", decap_counter_name[i],
			         (unsigned long long)(counter((enum decap_counter)i) - before[i]),
			         (unsigned long long)want_delta);
	}
}

static void vip_add(const char *addr)
{
	struct decap_vip_key k = {0};
	uint32_t one = 1;

	if (strchr(addr, ':')) {
		k.family = DECAP_FAMILY_IPV6;
		assert_int_equal(inet_pton(AF_INET6, addr, k.addr), 1);
	} else {
		k.family = DECAP_FAMILY_IPV4;
		assert_int_equal(inet_pton(AF_INET, addr, k.addr), 1);
	}
	assert_int_equal(bpf_map_update_elem(env.vips_fd, &k, &one, BPF_ANY), 0);
}

static int group_setup(void **state)
{
	char path[PATH_MAX];
	struct bpf_program *prog;

	(void)state;
	if (geteuid() != 0) {
		env.skip_why = "needs root (BPF_PROG_TEST_RUN)";
		return 0;
	}
	if (th_bpf_obj_path(DECAP_OBJ_FILE, path, sizeof(path))) {
		env.skip_why = "no xdp_decap.bpf.o (run make)";
		return 0;
	}
	libbpf_set_print(NULL);
	env.obj = bpf_object__open_file(path, NULL);
	if (!env.obj || bpf_object__load(env.obj)) {
		fprintf(stderr, "test_decap: cannot load %s\n", path);
		return -1;
	}
	prog = bpf_object__find_program_by_name(env.obj, DECAP_PROG_NAME);
	if (!prog)
		return -1;
	env.prog_fd = bpf_program__fd(prog);
	env.vips_fd = bpf_object__find_map_fd_by_name(env.obj, DECAP_MAP_VIPS);
	env.counters_fd = bpf_object__find_map_fd_by_name(env.obj, DECAP_MAP_COUNTERS);
	if (env.prog_fd < 0 || env.vips_fd < 0 || env.counters_fd < 0)
		return -1;
	vip_add("203.0.113.10");
	vip_add("2001:db8:100::10");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	bpf_object__close(env.obj);
	return 0;
}

static void need_env(void)
{
	if (env.skip_why) {
		print_message("skipped: %s\n", env.skip_why);
		skip();
	}
}

/* A packet to a VIP inside GRE comes out as the same L2 header and the inner packet, counted. */
static void expect_decapsulated(bool outer_v6, bool inner_v6, unsigned ihl, bool vlan)
{
	struct frame in = {0}, want = {0};
	size_t inner_len = inner_v6 ? inner6_len() : inner4_len();

	need_env();
	put_outer(&in, outer_v6, ihl, vlan, ethertype(inner_v6), inner_len);
	put_inner_vip(&in, inner_v6);
	put_l2(&want, vlan, ethertype(inner_v6));
	put_inner_vip(&want, inner_v6);
	run_expect(&in, XDP_PASS, &want, DECAP_CTR_DECAPSULATED);
}

static void test_v4_in_v4(void **state)
{
	(void)state;
	expect_decapsulated(false, false, 5, false);
}

static void test_v6_in_v6(void **state)
{
	(void)state;
	expect_decapsulated(true, true, 5, false);
}

static void test_v6_in_v4(void **state)
{
	(void)state;
	expect_decapsulated(false, true, 5, false);
}

static void test_v4_in_v6(void **state)
{
	(void)state;
	expect_decapsulated(true, false, 5, false);
}

static void test_vlan_kept(void **state)
{
	(void)state;
	expect_decapsulated(false, false, 5, true);
}

static void test_outer_ipv4_options(void **state)
{
	(void)state;
	expect_decapsulated(false, false, 7, false);
}

static void test_ethernet_padding_kept(void **state)
{
	static const uint8_t pad[6] = {0};
	struct frame in = {0}, want = {0};

	(void)state;
	need_env();
	put_outer(&in, true, 5, false, ETH_P_IP, inner4_len());
	put_inner_vip(&in, false);
	put(&in, pad, sizeof(pad));
	put_l2(&want, false, ETH_P_IP);
	put_inner_vip(&want, false);
	put(&want, pad, sizeof(pad)); /* the stack trims by the inner IP length */
	run_expect(&in, XDP_PASS, &want, DECAP_CTR_DECAPSULATED);
}

static void test_inner_not_vip(void **state)
{
	struct frame in = {0};

	(void)state;
	need_env();
	put_outer(&in, false, 5, false, ETH_P_IP, inner4_len());
	put_inner4(&in, "203.0.113.99");
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_PASSED);
}

static void test_inner_v6_not_vip(void **state)
{
	struct frame in = {0};

	(void)state;
	need_env();
	put_outer(&in, true, 5, false, ETH_P_IPV6, inner6_len());
	/* an IPv6 packet to the IPv4-mapped form of the IPv4 VIP is not for that VIP */
	put_inner6(&in, "::ffff:203.0.113.10");
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_PASSED);
}

static void test_gre_flags_unsupported(void **state)
{
	static const uint16_t flags[] = {0x8000 /* C */, 0x2000 /* K */, 0x1000 /* S */,
	                                 0x0001 /* version 1 */, 0x4000 /* R */};

	(void)state;
	need_env();
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
		struct frame in = {0};

		put_eth(&in, ETH_P_IP);
		put_ipv4(&in, "198.18.2.2", "198.18.1.11", IPPROTO_GRE, 8 + inner4_len(), 5, 0);
		put_gre(&in, flags[i], ETH_P_IP);
		put16(&in, 0);
		put16(&in, 7);
		put_inner4(&in, "203.0.113.10");
		run_expect(&in, XDP_PASS, NULL, DECAP_CTR_UNSUPPORTED);
	}
}

static void test_outer_fragment_unsupported(void **state)
{
	static const uint16_t frag[] = {0x2000 /* MF */, 0x0010 /* offset */};

	(void)state;
	need_env();
	for (size_t i = 0; i < ARRAY_SIZE(frag); i++) {
		struct frame in = {0};

		put_eth(&in, ETH_P_IP);
		put_ipv4(&in, "198.18.2.2", "198.18.1.11", IPPROTO_GRE, 4 + inner4_len(), 5,
		         frag[i]);
		put_gre(&in, 0, ETH_P_IP);
		put_inner4(&in, "203.0.113.10");
		run_expect(&in, XDP_PASS, NULL, DECAP_CTR_UNSUPPORTED);
	}
}

static void test_inner_proto_unsupported(void **state)
{
	struct frame in = {0};

	(void)state;
	need_env();
	put_outer(&in, false, 5, false, ETH_P_TEB,
	          inner4_len()); /* transparent Ethernet bridging */
	put_inner_vip(&in, false);
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_UNSUPPORTED);
}

static void test_not_gre_passed(void **state)
{
	static const uint8_t udp[8] = {0x9c, 0x41, 0, 53, 0, 8, 0, 0};
	static const uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 1};
	struct frame in = {0}, in6 = {0}, a = {0};

	(void)state;
	need_env();
	put_eth(&in, ETH_P_IP);
	put_ipv4(&in, "198.18.0.2", "203.0.113.10", 17, sizeof(udp), 5, 0);
	put(&in, udp, sizeof(udp));
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_PASSED);

	put_eth(&in6, ETH_P_IPV6);
	put_ipv6(&in6, "2001:db8::2", "2001:db8:100::10", 17, sizeof(udp));
	put(&in6, udp, sizeof(udp));
	run_expect(&in6, XDP_PASS, NULL, DECAP_CTR_PASSED);

	put_eth(&a, ETH_P_ARP);
	put(&a, arp, sizeof(arp));
	run_expect(&a, XDP_PASS, NULL, DECAP_CTR_PASSED);
}

static void test_truncated_malformed(void **state)
{
	struct frame eth_only = {0}, gre_cut = {0}, inner_cut = {0}, v6_cut = {0};
	uint8_t short_inner[10] = {0x45};

	(void)state;
	need_env();
	/* an IPv4 ethertype and no IPv4 header */
	put_eth(&eth_only, ETH_P_IP);
	run_expect(&eth_only, XDP_PASS, NULL, DECAP_CTR_MALFORMED);

	/* the frame ends inside the GRE header */
	put_eth(&gre_cut, ETH_P_IP);
	put_ipv4(&gre_cut, "198.18.2.2", "198.18.1.11", IPPROTO_GRE, 2, 5, 0);
	put16(&gre_cut, 0);
	run_expect(&gre_cut, XDP_PASS, NULL, DECAP_CTR_MALFORMED);

	/* the inner IPv4 header is cut short */
	put_eth(&inner_cut, ETH_P_IP);
	put_ipv4(&inner_cut, "198.18.2.2", "198.18.1.11", IPPROTO_GRE, 4 + sizeof(short_inner), 5,
	         0);
	put_gre(&inner_cut, 0, ETH_P_IP);
	put(&inner_cut, short_inner, sizeof(short_inner));
	run_expect(&inner_cut, XDP_PASS, NULL, DECAP_CTR_MALFORMED);

	/* an outer IPv6 header cut short */
	put_eth(&v6_cut, ETH_P_IPV6);
	put(&v6_cut, short_inner, sizeof(short_inner));
	run_expect(&v6_cut, XDP_PASS, NULL, DECAP_CTR_MALFORMED);
}

static void test_inconsistent_malformed(void **state)
{
	struct frame ver = {0}, ihl = {0};

	(void)state;
	need_env();
	/* GRE says IPv4, the inner header says version 6 */
	put_outer(&ver, false, 5, false, ETH_P_IP, inner6_len());
	put_inner_vip(&ver, true);
	run_expect(&ver, XDP_PASS, NULL, DECAP_CTR_MALFORMED);

	/* an outer IPv4 header length below 5 words */
	put_outer(&ihl, false, 5, false, ETH_P_IP, inner4_len());
	ihl.b[ETH_HLEN] = 0x44; /* version 4, 4 words */
	put_inner_vip(&ihl, false);
	run_expect(&ihl, XDP_PASS, NULL, DECAP_CTR_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v4_in_v4),
	    cmocka_unit_test(test_v6_in_v6),
	    cmocka_unit_test(test_v6_in_v4),
	    cmocka_unit_test(test_v4_in_v6),
	    cmocka_unit_test(test_vlan_kept),
	    cmocka_unit_test(test_outer_ipv4_options),
	    cmocka_unit_test(test_ethernet_padding_kept),
	    cmocka_unit_test(test_inner_not_vip),
	    cmocka_unit_test(test_inner_v6_not_vip),
	    cmocka_unit_test(test_gre_flags_unsupported),
	    cmocka_unit_test(test_outer_fragment_unsupported),
	    cmocka_unit_test(test_inner_proto_unsupported),
	    cmocka_unit_test(test_not_gre_passed),
	    cmocka_unit_test(test_truncated_malformed),
	    cmocka_unit_test(test_inconsistent_malformed),
	};

	return cmocka_run_group_tests_name("decap", tests, group_setup, group_teardown);
}
