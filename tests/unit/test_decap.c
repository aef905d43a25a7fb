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
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cmocka.h>

#include "base/util.h"
#include "core/encap.h"
#include "io/decap.h"
#include "helpers.h"

/* The second-chance shim as maglevd writes it (core) and as the backend reads it (bpf). */
_Static_assert(GRE_PROTO_SC == DECAP_SC_PROTO, "shim GRE protocol");
_Static_assert(GRE_SC_VERSION == DECAP_SC_VERSION, "shim version");
_Static_assert(GRE_SC_SHIM_HLEN == sizeof(struct decap_sc_shim), "shim length");

#define FRAME_MAX 512u /* bytes of a fixture frame */

struct fixture_env {
	struct bpf_object *obj;
	int prog_fd;
	int vips_fd;
	int counters_fd;
	const char *skip_why;
	const char *net_skip_why; /* the second-chance cases' own network namespace */
	unsigned sc_ifindex;      /* SC_IF's */
};

/*
 * The second-chance cases run in a network namespace of their own: the VIP on lo (sockets to
 * ask about), and SC_IF with a peer SC_PEER4 / SC_PEER6 at SC_PEER_MAC (permanent neighbours),
 * a secondary the program can send on to.
 */
#define SC_IF       "mgsc0"
#define SC_IF_MAC   "02:00:00:00:00:aa"
#define SC_PEER_MAC "02:00:00:00:00:bb"
#define SC_PEER4    "198.18.9.2"
#define SC_PEER6    "2001:db8:9::2"
#define SC_NOWHERE4 "198.18.77.7" /* no route */
#define SC_VIP_PORT 80u
#define SC_NETNS_CMD                                                                               \
	"ip link set lo up && ip addr add 203.0.113.10/32 dev lo && "                              \
	"ip link add " SC_IF " type veth peer name mgsc1 && "                                      \
	"ip link set " SC_IF " address " SC_IF_MAC " up && ip link set mgsc1 up && "               \
	"ip addr add 198.18.9.1/24 dev " SC_IF " && "                                              \
	"ip -6 addr add 2001:db8:9::1/64 dev " SC_IF " nodad && "                                  \
	"ip neigh replace " SC_PEER4 " lladdr " SC_PEER_MAC " dev " SC_IF " nud permanent && "     \
	"ip -6 neigh replace " SC_PEER6 " lladdr " SC_PEER_MAC " dev " SC_IF " nud permanent && "  \
	"echo 1 > /proc/sys/net/ipv4/conf/" SC_IF "/forwarding && "                                \
	"echo 1 > /proc/sys/net/ipv6/conf/" SC_IF "/forwarding"

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
 * Runs the program on in as received on interface ifindex (0: the test run's default); checks
 * the verdict, that the output equals want (or in itself when want is NULL), and that exactly
 * counter ctr moved, by one.
 */
static void run_expect_on(const struct frame *in, unsigned ifindex, int verdict,
                          const struct frame *want, enum decap_counter ctr)
{
	uint8_t out[FRAME_MAX + 256];
	uint64_t before[DECAP_CTR_MAX];
	const struct frame *w = want ? want : in;
	/* The frame is all data: no metadata before it, its end at its length. */
	struct xdp_md md = {.data_end = (__u32)in->len, .ingress_ifindex = ifindex};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in->b, .data_size_in = (__u32)in->len,
	            .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

	if (ifindex) {
		opts.ctx_in = &md;
		opts.ctx_size_in = sizeof(md);
	}
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

static void run_expect(const struct frame *in, int verdict, const struct frame *want,
                       enum decap_counter ctr)
{
	run_expect_on(in, 0, verdict, want, ctr);
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
	if (unshare(CLONE_NEWNET) != 0)
		env.net_skip_why = "cannot make a network namespace";
	else if (system(SC_NETNS_CMD " 2>/dev/null") != 0)
		env.net_skip_why = "cannot set up the namespace (iproute2, veth)";
	else
		env.sc_ifindex = if_nametoindex(SC_IF);
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

/* Second chance ------------------------------------------------------------------------------ */

static void need_net(void)
{
	need_env();
	if (env.net_skip_why) {
		print_message("skipped: %s\n", env.net_skip_why);
		skip();
	}
}

/* Sets the IPv4 header checksum of the header at h (20 bytes). */
static void ipv4_csum_set(uint8_t *h)
{
	uint32_t s = 0;

	h[10] = h[11] = 0;
	for (int i = 0; i < 20; i += 2)
		s += (uint32_t)h[i] << 8 | h[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	h[10] = (uint8_t)(~s >> 8);
	h[11] = (uint8_t)~s;
}

#define TCP_SYN 0x02u
#define TCP_ACK 0x10u

/* An inner IPv4 TCP segment (no payload, checksum not set: the program reads only headers). */
static void put_tcp4(struct frame *f, const char *src, uint16_t sport, uint16_t dport,
                     uint8_t flags)
{
	uint8_t th[20] = {0};

	put_ipv4(f, src, "203.0.113.10", IPPROTO_TCP, sizeof(th), 5, 0x4000);
	th[0] = (uint8_t)(sport >> 8);
	th[1] = (uint8_t)sport;
	th[2] = (uint8_t)(dport >> 8);
	th[3] = (uint8_t)dport;
	th[12] = 5 << 4;
	th[13] = flags;
	put(f, th, sizeof(th));
}

/*
 * What maglevd sends for a second-chance VIP when the flow has a secondary: Ethernet, outer
 * IPv4 (valid checksum, TTL ttl) from src to dst or IPv6 from src6 to dst6, GRE with
 * DECAP_SC_PROTO, the shim (flags, inner ethertype) and the secondary's address.
 */
struct sc_outer {
	bool v6;
	const char *src, *dst, *secondary;
	uint8_t flags, ttl;
	uint16_t inner_proto;
	const char *mac_dst, *mac_src; /* NULL: the fixtures' */
};

static void put_mac(struct frame *f, const char *mac)
{
	unsigned m[6];

	assert_int_equal(sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]),
	                 6);
	for (int i = 0; i < 6; i++) {
		uint8_t b = (uint8_t)m[i];

		put(f, &b, 1);
	}
}

static void put_sc_outer(struct frame *f, const struct sc_outer *o, size_t inner_len)
{
	struct decap_sc_shim sc = {.ver_flags = (uint8_t)(DECAP_SC_VERSION << 4 | o->flags),
	                           .proto = htons(o->inner_proto)};
	size_t alen = o->v6 ? 16 : 4, ip_at;
	uint8_t a[16];

	if (o->mac_dst) {
		put_mac(f, o->mac_dst);
		put_mac(f, o->mac_src);
		put16(f, ethertype(o->v6));
	} else {
		put_eth(f, ethertype(o->v6));
	}
	ip_at = f->len;
	if (o->v6)
		put_ipv6(f, o->src, o->dst, IPPROTO_GRE, 4 + sizeof(sc) + alen + inner_len);
	else
		put_ipv4(f, o->src, o->dst, IPPROTO_GRE, 4 + sizeof(sc) + alen + inner_len, 5, 0);
	f->b[ip_at + (o->v6 ? 7 : 8)] = o->ttl;
	if (!o->v6)
		ipv4_csum_set(f->b + ip_at);
	put_gre(f, 0, DECAP_SC_PROTO);
	put(f, &sc, sizeof(sc));
	assert_int_equal(inet_pton(o->v6 ? AF_INET6 : AF_INET, o->secondary, a), 1);
	put(f, a, alen);
}

/* in (outer o, inner TCP from src:sport with flags) decapsulated and counted ctr. */
static void expect_sc_delivered(struct sc_outer o, const char *src, uint16_t sport, uint8_t flags,
                                enum decap_counter ctr)
{
	struct frame in = {0}, want = {0};

	need_net();
	o.inner_proto = ETH_P_IP;
	put_sc_outer(&in, &o, 40);
	put_tcp4(&in, src, sport, SC_VIP_PORT, flags);
	put_eth(&want, ETH_P_IP);
	put_tcp4(&want, src, sport, SC_VIP_PORT, flags);
	run_expect_on(&in, env.sc_ifindex, XDP_PASS, &want, ctr);
}

static const struct sc_outer sc_v4 = {
    .src = "198.18.2.2", .dst = "198.18.9.1", .secondary = SC_PEER4, .ttl = 64};

/*
 * o (inner TCP ACK from 198.18.0.2:sport) sent on by XDP_TX to the secondary: the outer header
 * readdressed from us to it with one hop less, the shim marked forwarded, the peer's MAC.
 */
static void expect_sc_forwarded(struct sc_outer o, uint16_t sport)
{
	struct frame in = {0}, want = {0};
	struct sc_outer w;

	o.inner_proto = ETH_P_IP;
	w = o;
	put_sc_outer(&in, &o, 40);
	put_tcp4(&in, "198.18.0.2", sport, SC_VIP_PORT, TCP_ACK);
	w.src = o.dst;
	w.dst = o.secondary;
	w.ttl = (uint8_t)(o.ttl - 1);
	w.flags = DECAP_SC_FORWARDED;
	w.mac_dst = SC_PEER_MAC;
	w.mac_src = SC_IF_MAC;
	put_sc_outer(&want, &w, 40);
	put_tcp4(&want, "198.18.0.2", sport, SC_VIP_PORT, TCP_ACK);
	run_expect_on(&in, env.sc_ifindex, XDP_TX, &want, DECAP_CTR_SC_FORWARDED);
}

/* Sent on by a primary: delivered, never sent on again (no socket is asked). */
static void test_sc_received(void **state)
{
	struct sc_outer o = sc_v4;

	(void)state;
	o.flags = DECAP_SC_FORWARDED;
	expect_sc_delivered(o, "198.18.0.2", 40000, TCP_ACK, DECAP_CTR_SC_RECEIVED);
}

/* A SYN is a new connection: it is this backend's. */
static void test_sc_syn_not_handed(void **state)
{
	(void)state;
	expect_sc_delivered(sc_v4, "198.18.0.2", 40000, TCP_SYN, DECAP_CTR_SC_NOT_HANDED);
}

/* Not TCP: no socket to ask, delivered. */
static void test_sc_udp_not_handed(void **state)
{
	struct sc_outer o = sc_v4;
	struct frame in = {0}, want = {0};

	(void)state;
	need_net();
	o.inner_proto = ETH_P_IPV6;
	put_sc_outer(&in, &o, inner6_len());
	put_inner_vip(&in, true);
	put_eth(&want, ETH_P_IPV6);
	put_inner_vip(&want, true);
	run_expect_on(&in, env.sc_ifindex, XDP_PASS, &want, DECAP_CTR_SC_NOT_HANDED);
}

/* An established connection to the VIP here: its packets are delivered here. */
static void test_sc_local_socket(void **state)
{
	struct sockaddr_in vip = {.sin_family = AF_INET, .sin_port = htons(SC_VIP_PORT)};
	struct sockaddr_in cli = {.sin_family = AF_INET};
	socklen_t len = sizeof(cli);
	int l, c, a;

	(void)state;
	need_net();
	inet_pton(AF_INET, "203.0.113.10", &vip.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &cli.sin_addr);
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&vip, sizeof(vip)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(bind(c, (struct sockaddr *)&cli, sizeof(cli)), 0);
	assert_int_equal(connect(c, (struct sockaddr *)&vip, sizeof(vip)), 0);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(getsockname(c, (struct sockaddr *)&cli, &len), 0);
	expect_sc_delivered(sc_v4, "127.0.0.1", ntohs(cli.sin_port), TCP_ACK, DECAP_CTR_SC_LOCAL);
	/* The listener alone does not own another flow (no SYN cookie in that ACK): sent on. */
	expect_sc_forwarded(sc_v4, 40001);
	close(a);
	close(c);
	close(l);
}

/* No socket at all: readdressed to the secondary, marked, out the way it came (XDP_TX). */
static void test_sc_forwarded(void **state)
{
	(void)state;
	need_net();
	expect_sc_forwarded(sc_v4, 40000);
}

/* The same under outer IPv6 (a 16-byte secondary). */
static void test_sc_forwarded_v6(void **state)
{
	const struct sc_outer o = {.v6 = true,
	                           .src = "2001:db8:2::2",
	                           .dst = "2001:db8:9::1",
	                           .secondary = SC_PEER6,
	                           .ttl = 64};

	(void)state;
	need_net();
	expect_sc_forwarded(o, 40000);
}

/* No route to the secondary, or no TTL left to send it on: delivered here as without. */
static void test_sc_no_route(void **state)
{
	struct sc_outer o = sc_v4;

	(void)state;
	o.secondary = SC_NOWHERE4;
	expect_sc_delivered(o, "198.18.0.2", 40000, TCP_ACK, DECAP_CTR_SC_NO_ROUTE);
	o = sc_v4;
	o.ttl = 1;
	expect_sc_delivered(o, "198.18.0.2", 40000, TCP_ACK, DECAP_CTR_SC_NO_ROUTE);
	/* The FIB lookup answers only where the interface forwards. */
	assert_int_equal(system("echo 0 > /proc/sys/net/ipv4/conf/" SC_IF "/forwarding"), 0);
	expect_sc_delivered(sc_v4, "198.18.0.2", 40000, TCP_ACK, DECAP_CTR_SC_FWD_DISABLED);
	assert_int_equal(system("echo 1 > /proc/sys/net/ipv4/conf/" SC_IF "/forwarding"), 0);
}

/* A shim of another version is not ours to read; a cut one is malformed. */
static void test_sc_bad_shim(void **state)
{
	struct frame in = {0};
	struct sc_outer o = sc_v4;

	(void)state;
	need_env();
	o.inner_proto = ETH_P_IP;
	put_sc_outer(&in, &o, 40);
	put_tcp4(&in, "198.18.0.2", 40000, SC_VIP_PORT, TCP_ACK);
	in.b[14 + 20 + 4] = 2u << 4; /* version 2 */
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_UNSUPPORTED);
	in.len = 14 + 20 + 4 + 4 + 2; /* half the secondary's address */
	in.b[14 + 20 + 4] = DECAP_SC_VERSION << 4;
	run_expect(&in, XDP_PASS, NULL, DECAP_CTR_MALFORMED);
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
	    cmocka_unit_test(test_sc_received),
	    cmocka_unit_test(test_sc_syn_not_handed),
	    cmocka_unit_test(test_sc_udp_not_handed),
	    cmocka_unit_test(test_sc_local_socket),
	    cmocka_unit_test(test_sc_forwarded),
	    cmocka_unit_test(test_sc_forwarded_v6),
	    cmocka_unit_test(test_sc_no_route),
	    cmocka_unit_test(test_sc_bad_shim),
	};

	return cmocka_run_group_tests_name("decap", tests, group_setup, group_teardown);
}
