/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Unit tests of the XDP steering program (bpf/xdp_vip.bpf.c) run in the kernel with
 * BPF_PROG_TEST_RUN: which frames it would hand to maglevd and which it leaves to the kernel.
 * Needs root and build/bpf/xdp_vip.bpf.o (make all); skipped otherwise. No socket is in the
 * XSKMAP, so a steered frame comes back XDP_PASS and shows up in the NO_SOCKET statistic. Frames
 * are sent to MAC_ME, the interface MAC put in config_map, unless a test says otherwise.
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
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "base/util.h"
#include "core/addr.h"
#include "helpers.h"
#include "bpf/xdp_vip.h"

#define OBJ_FILE  XDP_VIP_OBJ_FILE
#define FRAME_MAX 256u

static const uint8_t MAC_ME[6] = {0x02, 0, 0, 0, 0, 0x01};

struct fixture {
	struct bpf_object *obj;
	int prog_fd, vip_fd, addr_fd, stats_fd, config_fd, shed_fd;
	int ncpus;
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static void vip_add(struct fixture *fx, const char *a, uint8_t proto, uint16_t port)
{
	struct lb_addr la = th_addr(a);
	struct xdp_vip_key k = {.family = la.family == AF_INET ? XDP_FAMILY_IPV4 : XDP_FAMILY_IPV6,
	                        .proto = proto,
	                        .port = htons(port)};
	struct xdp_addr_key ak = {.family = k.family};
	uint32_t one = 1, flags = XDP_ADDR_VIP;

	memcpy(k.addr, la.b, lb_addr_len(&la));
	memcpy(ak.addr, la.b, lb_addr_len(&la));
	assert_int_equal(bpf_map_update_elem(fx->vip_fd, &k, &one, BPF_ANY), 0);
	assert_int_equal(bpf_map_update_elem(fx->addr_fd, &ak, &flags, BPF_ANY), 0);
}

static void self_add(struct fixture *fx, const char *a)
{
	struct lb_addr la = th_addr(a);
	struct xdp_addr_key ak = {.family =
	                              la.family == AF_INET ? XDP_FAMILY_IPV4 : XDP_FAMILY_IPV6};
	uint32_t flags = XDP_ADDR_SELF;

	memcpy(ak.addr, la.b, lb_addr_len(&la));
	assert_int_equal(bpf_map_update_elem(fx->addr_fd, &ak, &flags, BPF_ANY), 0);
}

static uint64_t stat_read(struct fixture *fx, uint32_t k)
{
	uint64_t *v = calloc((size_t)fx->ncpus, sizeof(*v)), sum = 0;

	assert_non_null(v);
	assert_int_equal(bpf_map_lookup_elem(fx->stats_fd, &k, v), 0);
	for (int i = 0; i < fx->ncpus; i++)
		sum += v[i];
	free(v);
	return sum;
}

/* Runs one frame: the program's XDP action; *moved: whether statistic k went up by one. */
static uint32_t run(struct fixture *fx, const uint8_t *frame, uint32_t len, uint32_t k, bool *moved)
{
	uint64_t before = stat_read(fx, k);
	uint8_t out[FRAME_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = len, .data_out = out,
	            .data_size_out = sizeof(out), .repeat = 1);

	assert_int_equal(bpf_prog_test_run_opts(fx->prog_fd, &opts), 0);
	*moved = stat_read(fx, k) == before + 1;
	return opts.retval;
}

/* Runs one frame; true if the program meant it for maglevd (steered, no socket to take it). */
static bool steered(struct fixture *fx, const uint8_t *frame, uint32_t len)
{
	bool moved;

	assert_int_equal(run(fx, frame, len, XDP_STAT_NO_SOCKET, &moved), XDP_PASS);
	return moved;
}

/* True if the program left the frame to the kernel under statistic k. */
static bool passed_as(struct fixture *fx, const uint8_t *frame, uint32_t len, uint32_t k)
{
	bool moved;

	return run(fx, frame, len, k, &moved) == XDP_PASS && moved;
}

/* True if the program dropped the frame, counted as XDP_STAT_DROP_ICMP. */
static bool dropped_icmp(struct fixture *fx, const uint8_t *frame, uint32_t len)
{
	bool moved;

	return run(fx, frame, len, XDP_STAT_DROP_ICMP, &moved) == XDP_DROP && moved;
}

/* Ethernet (+ vlans 802.1Q tags) + IPv4 + 8 bytes of transport header. */
static uint32_t frame4(uint8_t *f, int vlans, const char *dst, uint8_t proto, uint16_t dport,
                       uint8_t icmp_type, uint16_t frag)
{
	struct lb_addr d = th_addr(dst);
	uint32_t o = 12;

	memset(f, 0, FRAME_MAX);
	memcpy(f, MAC_ME, 6);
	for (int i = 0; i < vlans; i++, o += 4) {
		f[o] = 0x81;
		f[o + 1] = 0x00;
		f[o + 3] = 7;
	}
	f[o] = 0x08;
	o += 2;
	f[o] = 0x45;
	f[o + 6] = (uint8_t)(frag >> 8);
	f[o + 7] = (uint8_t)frag;
	f[o + 8] = 64;
	f[o + 9] = proto;
	memcpy(f + o + 16, d.b, 4);
	o += 20;
	if (proto == IPPROTO_ICMP) {
		f[o] = icmp_type;
	} else {
		f[o + 2] = (uint8_t)(dport >> 8);
		f[o + 3] = (uint8_t)dport;
	}
	return o + 8;
}

/* Ethernet + IPv6 + an optional extension header (ext: its type, 0 = none) + 8 bytes of L4. */
static uint32_t frame6(uint8_t *f, const char *dst, uint8_t ext, uint16_t frag_off, uint8_t proto,
                       uint16_t dport, uint8_t icmp_type)
{
	struct lb_addr d = th_addr(dst);
	uint32_t o = 54;

	memset(f, 0, FRAME_MAX);
	memcpy(f, MAC_ME, 6);
	f[12] = 0x86;
	f[13] = 0xdd;
	f[14] = 0x60;
	f[20] = ext ? ext : proto;
	f[21] = 64;
	memcpy(f + 38, d.b, 16);
	if (ext) {
		f[o] = proto;
		if (ext == IPPROTO_FRAGMENT) {
			f[o + 2] = (uint8_t)(frag_off >> 8);
			f[o + 3] = (uint8_t)frag_off;
		}
		o += 8;
	}
	if (proto == IPPROTO_ICMPV6) {
		f[o] = icmp_type;
	} else {
		f[o + 2] = (uint8_t)(dport >> 8);
		f[o + 3] = (uint8_t)dport;
	}
	return o + 8;
}

static int setup(void **state)
{
	static struct fixture fx;
	char path[PATH_MAX];
	struct bpf_program *prog;

	*state = NULL;
	if (geteuid() != 0 || th_bpf_obj_path(OBJ_FILE, path, sizeof(path)) != 0)
		return 0;
	libbpf_set_print(quiet);
	fx.obj = bpf_object__open_file(path, NULL);
	if (!fx.obj || bpf_object__load(fx.obj))
		return -1;
	prog = bpf_object__find_program_by_name(fx.obj, XDP_VIP_PROG_NAME);
	if (!prog)
		return -1;
	fx.prog_fd = bpf_program__fd(prog);
	fx.vip_fd = bpf_object__find_map_fd_by_name(fx.obj, XDP_VIP_MAP_VIPS);
	fx.addr_fd = bpf_object__find_map_fd_by_name(fx.obj, XDP_VIP_MAP_ADDRS);
	fx.stats_fd = bpf_object__find_map_fd_by_name(fx.obj, XDP_VIP_MAP_STATS);
	fx.config_fd = bpf_object__find_map_fd_by_name(fx.obj, XDP_VIP_MAP_CONFIG);
	fx.shed_fd = bpf_object__find_map_fd_by_name(fx.obj, XDP_VIP_MAP_SHED);
	fx.ncpus = libbpf_num_possible_cpus();
	if (fx.prog_fd < 0 || fx.vip_fd < 0 || fx.addr_fd < 0 || fx.stats_fd < 0 ||
	    fx.config_fd < 0 || fx.shed_fd < 0 || fx.ncpus <= 0)
		return -1;
	{
		struct xdp_vip_config cfg = {0};
		uint32_t zero = 0;

		memcpy(cfg.mac, MAC_ME, 6);
		if (bpf_map_update_elem(fx.config_fd, &zero, &cfg, BPF_ANY))
			return -1;
	}
	vip_add(&fx, "203.0.113.10", IPPROTO_TCP, 80);
	vip_add(&fx, "203.0.113.11", IPPROTO_UDP, 53);
	vip_add(&fx, "203.0.113.12", IPPROTO_TCP, 0);
	vip_add(&fx, "2001:db8:100::10", IPPROTO_TCP, 80);
	self_add(&fx, "198.18.2.2");
	self_add(&fx, "2001:db8:2::2");
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx)
		bpf_object__close(fx->obj);
	return 0;
}

#define NEED_FIXTURE(state)                                                                        \
	do {                                                                                       \
		if (!*(state)) {                                                                   \
			fprintf(stderr, "skipped: needs root and build/bpf/" OBJ_FILE "\n");       \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static void test_ipv4(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];
	uint32_t len;

	NEED_FIXTURE(state);
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 80, 0, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 22, 0, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_UDP, 80, 0, 0)));
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.11", IPPROTO_UDP, 53, 0, 0)));
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.12", IPPROTO_TCP, 4242, 0, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.13", IPPROTO_TCP, 80, 0, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "198.18.2.2", IPPROTO_TCP, 22, 0, 0)));
	/* Non-first fragment: no ports, the VIP address decides. */
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 0, 0, 0x00b9)));
	/* One 802.1Q tag, as the pipeline parses; QinQ (which it passes) stays with the kernel. */
	assert_true(steered(fx, f, frame4(f, 1, "203.0.113.10", IPPROTO_TCP, 80, 0, 0)));
	assert_true(
	    passed_as(fx, f, frame4(f, 2, "203.0.113.10", IPPROTO_TCP, 80, 0, 0), XDP_STAT_PASS));
	len = frame4(f, 2, "203.0.113.10", IPPROTO_TCP, 80, 0, 0);
	f[12] = 0x88;
	f[13] = 0xa8; /* 802.1ad outer tag, 802.1Q inner */
	assert_true(passed_as(fx, f, len, XDP_STAT_PASS));
	len = frame4(f, 1, "203.0.113.10", IPPROTO_TCP, 80, 0, 0);
	f[12] = 0x88;
	f[13] = 0xa8; /* one 802.1ad tag alone */
	assert_true(passed_as(fx, f, len, XDP_STAT_PASS));
	/* Truncated: the TCP header is cut short. */
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 80, 0, 0) - 6));
}

static void test_icmp_gre(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];

	NEED_FIXTURE(state);
	/* Echo request and destination unreachable are steered, echo reply is not. */
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 8, 0)));
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 3, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 0, 0)));
	assert_false(steered(fx, f, frame4(f, 0, "198.18.2.2", IPPROTO_ICMP, 0, 8, 0)));
	assert_true(steered(fx, f, frame4(f, 0, "198.18.2.2", 47, 0, 0, 0)));    /* GRE to us */
	assert_false(steered(fx, f, frame4(f, 0, "203.0.113.10", 47, 0, 0, 0))); /* GRE to a VIP */
	assert_false(steered(fx, f, frame4(f, 0, "198.18.2.3", 47, 0, 0, 0)));
}

static void test_ipv6(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];

	NEED_FIXTURE(state);
	assert_true(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_TCP, 80, 0)));
	assert_false(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_TCP, 81, 0)));
	assert_false(steered(fx, f, frame6(f, "2001:db8:100::11", 0, 0, IPPROTO_TCP, 80, 0)));
	/* Extension headers are skipped. */
	assert_true(
	    steered(fx, f, frame6(f, "2001:db8:100::10", IPPROTO_DSTOPTS, 0, IPPROTO_TCP, 80, 0)));
	assert_true(
	    steered(fx, f, frame6(f, "2001:db8:100::10", IPPROTO_FRAGMENT, 0, IPPROTO_TCP, 80, 0)));
	assert_true(steered(
	    fx, f, frame6(f, "2001:db8:100::10", IPPROTO_FRAGMENT, 0x0100, IPPROTO_TCP, 0, 0)));
	/* ICMPv6: echo request and errors to a VIP; neighbour discovery stays with the kernel. */
	assert_true(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMPV6, 0, 128)));
	assert_true(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMPV6, 0, 2)));
	assert_false(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMPV6, 0, 135)));
	assert_true(steered(fx, f, frame6(f, "2001:db8:2::2", 0, 0, 47, 0, 0)));
}

/* For maglevd but not sent to our MAC: the kernel's, as the pipeline would pass it. */
static void test_not_our_mac(void **state)
{
	static const uint8_t macs[][6] = {
	    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
	    {0x33, 0x33, 0x00, 0x00, 0x00, 0x01}, {0x02, 0x00, 0x00, 0x00, 0x00, 0x99},
	    {0x02, 0x00, 0x00, 0x00, 0x01, 0x01}, /* differs from ours in one byte only */
	};
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];
	uint32_t len;

	NEED_FIXTURE(state);
	for (size_t i = 0; i < ARRAY_SIZE(macs); i++) {
		len = frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 80, 0, 0);
		memcpy(f, macs[i], 6);
		assert_true(passed_as(fx, f, len, XDP_STAT_PASS_NOT_OUR_MAC));
		len = frame4(f, 1, "203.0.113.10", IPPROTO_ICMP, 0, 8, 0);
		memcpy(f, macs[i], 6);
		assert_true(passed_as(fx, f, len, XDP_STAT_PASS_NOT_OUR_MAC));
		len = frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_TCP, 80, 0);
		memcpy(f, macs[i], 6);
		assert_true(passed_as(fx, f, len, XDP_STAT_PASS_NOT_OUR_MAC));
		len = frame4(f, 0, "198.18.2.2", 47, 0, 0, 0);
		memcpy(f, macs[i], 6);
		assert_true(passed_as(fx, f, len, XDP_STAT_PASS_NOT_OUR_MAC));
	}
	/* Not for maglevd anyway: counted as such, whatever the MAC. */
	len = frame4(f, 0, "203.0.113.13", IPPROTO_TCP, 80, 0, 0);
	memset(f, 0xff, 6);
	assert_true(passed_as(fx, f, len, XDP_STAT_PASS));
}

/* ICMP the pipeline would only drop is dropped here; other protocols' fragments are passed. */
static void test_dropped_here(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];
	uint32_t len;

	NEED_FIXTURE(state);
	/* Parameter problem (ICMP 12, ICMPv6 4), whatever the destination MAC. */
	assert_true(dropped_icmp(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 12, 0)));
	assert_true(dropped_icmp(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMPV6, 0, 4)));
	len = frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 12, 0);
	memset(f, 0xff, 6);
	assert_true(dropped_icmp(fx, f, len));
	/* Fragmented ICMP: a first fragment (MF) and a later one, IPv4 and IPv6. */
	assert_true(dropped_icmp(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 8, 0x2000)));
	assert_true(dropped_icmp(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 0, 0x00b9)));
	assert_true(dropped_icmp(
	    fx, f, frame6(f, "2001:db8:100::10", IPPROTO_FRAGMENT, 0x0100, IPPROTO_ICMPV6, 0, 0)));
	assert_true(dropped_icmp(
	    fx, f,
	    frame6(f, "2001:db8:100::10", IPPROTO_FRAGMENT, 0x0001, IPPROTO_ICMPV6, 0, 128)));
	/* The other family's ICMP and other protocols' fragments: the pipeline passes them. */
	len = frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMP, 0, 0);
	f[54] = 8; /* an ICMPv4 echo request inside IPv6 */
	assert_true(passed_as(fx, f, len, XDP_STAT_PASS));
	assert_true(
	    passed_as(fx, f, frame4(f, 0, "203.0.113.10", 50, 0, 0, 0x00b9), XDP_STAT_PASS));
	/* Still steered: an echo request and an error. */
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_ICMP, 0, 11, 0)));
	assert_true(steered(fx, f, frame6(f, "2001:db8:100::10", 0, 0, IPPROTO_ICMPV6, 0, 3)));
}

/* A TCP segment with flags (a whole 20-byte header) to dst:80, IPv4 or IPv6. */
static uint32_t tcp_frame(uint8_t *f, const char *dst, uint8_t flags)
{
	bool v6 = strchr(dst, ':') != NULL;
	uint32_t len = v6 ? frame6(f, dst, 0, 0, IPPROTO_TCP, 80, 0)
	                  : frame4(f, 0, dst, IPPROTO_TCP, 80, 0, 0);

	f[len - 8 + 12] = 5 << 4;
	f[len - 8 + 13] = flags;
	return len + 12;
}

static void shed_set(struct fixture *fx, uint32_t on)
{
	uint32_t q = 0; /* BPF_PROG_TEST_RUN's RX queue */

	assert_int_equal(bpf_map_update_elem(fx->shed_fd, &q, &on, BPF_ANY), 0);
}

/*
 * While queue 0's worker sheds, SYNs opening connections to a VIP are dropped and counted; the
 * packets of established connections (ACK, SYN-ACK), other MACs' frames and a TCP header cut
 * before its flags are decided as always. Off again: SYNs are steered.
 */
static void test_syn_shed(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];
	uint32_t len;
	bool moved;

	NEED_FIXTURE(state);
	shed_set(fx, 1);
	for (int v6 = 0; v6 < 2; v6++) {
		const char *vip = v6 ? "2001:db8:100::10" : "203.0.113.10";

		len = tcp_frame(f, vip, 0x02);
		assert_int_equal(run(fx, f, len, XDP_STAT_DROP_SYN_SHED, &moved), XDP_DROP);
		assert_true(moved);
		assert_true(steered(fx, f, tcp_frame(f, vip, 0x10)));
		assert_true(steered(fx, f, tcp_frame(f, vip, 0x12)));
		len = tcp_frame(f, vip, 0x02);
		memset(f, 0xff, 6);
		assert_true(passed_as(fx, f, len, XDP_STAT_PASS_NOT_OUR_MAC));
	}
	/* 8 bytes of TCP header: no flags to read, the pipeline's to drop (drop_tcp_truncated). */
	assert_true(steered(fx, f, frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 80, 0, 0)));
	shed_set(fx, 0);
	assert_true(steered(fx, f, tcp_frame(f, "203.0.113.10", 0x02)));
}

static void test_other(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[FRAME_MAX];
	uint32_t len;

	NEED_FIXTURE(state);
	len = frame4(f, 0, "203.0.113.10", IPPROTO_TCP, 80, 0, 0);
	f[12] = 0x08;
	f[13] = 0x06; /* ARP */
	assert_false(steered(fx, f, len));
	f[13] = 0x00; /* IPv4, but the frame ends after the Ethernet header */
	assert_false(steered(fx, f, 14));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4),         cmocka_unit_test(test_icmp_gre),
	    cmocka_unit_test(test_ipv6),         cmocka_unit_test(test_not_our_mac),
	    cmocka_unit_test(test_dropped_here), cmocka_unit_test(test_other),
	    cmocka_unit_test(test_syn_shed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
