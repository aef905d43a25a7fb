/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The health probes' tunnel (bpf/hc_tunnel.bpf.o through src/io/hctunnel.c): attached with
 * hct_open to lo in a network namespace of the test's own, its slots filled with hct_set, and
 * the attached program run with BPF_PROG_TEST_RUN. A marked probe must come out byte for byte as
 * src/core/encap.h's gre_encap sends the same packet to the same backend (all four inner/outer
 * family pairs); packets without our mark pass untouched; a mark naming an empty slot is
 * dropped. Also: a filter left by a killed process is replaced, and hct_close leaves nothing
 * attached. Needs root and the built object; skipped otherwise.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libgen.h>
#include <net/if.h>
#include <sched.h>
#include <sys/wait.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cmocka.h>

#include "base/util.h"
#include "core/encap.h"
#include "core/pkt.h"
#include "core/snapshot.h"
#include "io/hctunnel.h"
#include "helpers.h"
#include "tcfg.h"
#include "tsnap.h"

#define FRAME_MAX  256u /* bytes of a test frame, encapsulated */
#define TEST_IF    "lo"
#define TEST_TTL   64u /* tcfg_dataplane's */
#define SLOT_FIRST 7u  /* slots used: from here on, one per case */

struct env {
	const char *skip_why;
	struct hct *t;
	int prog_fd;
	int dests_fd;
	int counters_fd;
	struct config *cfg;
	struct lb_snapshot *snap;
};

static struct env env;

/* The attached filter's program: its fd, or -ENOENT when nothing is at our handle. */
static int attached_prog_fd(void)
{
	LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = (int)if_nametoindex(TEST_IF),
	            .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = HCT_TC_HANDLE, .priority = HCT_TC_PRIORITY);

	if (bpf_tc_query(&h, &o) < 0)
		return -ENOENT;
	return bpf_prog_get_fd_by_id(o.prog_id);
}

/* The fd of the map called name that program fd uses, or -1. */
static int prog_map_fd(int prog_fd, const char *name)
{
	uint32_t ids[8], len = sizeof(struct bpf_prog_info);
	struct bpf_prog_info info = {0};

	info.nr_map_ids = ARRAY_SIZE(ids);
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -1;
	for (uint32_t i = 0; i < info.nr_map_ids && i < ARRAY_SIZE(ids); i++) {
		struct bpf_map_info mi = {0};
		uint32_t ml = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &mi, &ml) == 0 &&
		    strcmp(mi.name, name) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

static int group_setup(void **state)
{
	char path[PATH_MAX], err[256];

	(void)state;
	if (geteuid() != 0) {
		env.skip_why = "needs root (tc, BPF_PROG_TEST_RUN)";
		return 0;
	}
	if (th_bpf_obj_path(HCT_OBJ_FILE, path, sizeof(path))) {
		env.skip_why = "no hc_tunnel.bpf.o (run make)";
		return 0;
	}
	/* hct_open finds the object through bpfobj_path: point it at the one found. */
	setenv(BPFOBJ_DIR_ENV, dirname(path), 1);
	if (unshare(CLONE_NEWNET) != 0) {
		env.skip_why = "cannot make a network namespace";
		return 0;
	}
	libbpf_set_print(NULL);
	if (hct_open(&env.t, TEST_IF, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_hc_tunnel: hct_open: %s\n", err);
		return -1;
	}
	env.prog_fd = attached_prog_fd();
	env.dests_fd = env.prog_fd >= 0 ? prog_map_fd(env.prog_fd, HCT_MAP_DESTS) : -1;
	env.counters_fd = env.prog_fd >= 0 ? prog_map_fd(env.prog_fd, HCT_MAP_COUNTERS) : -1;
	if (env.prog_fd < 0 || env.dests_fd < 0 || env.counters_fd < 0)
		return -1;
	env.cfg = tcfg_fixture();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	snapshot_free(env.snap);
	config_free(env.cfg);
	hct_close(env.t);
	return 0;
}

static void need_env(void)
{
	if (env.skip_why) {
		print_message("skipped: %s\n", env.skip_why);
		skip();
	}
}

static const uint8_t nh_mac[ETH_ALEN] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x42};

/*
 * An Ethernet frame of a TCP SYN from src to the VIP dst, port 80, with TOS / traffic class tos
 * and (IPv4) identification id and DF as df; into b, returns its length.
 */
static size_t syn_frame(uint8_t *b, const char *src, const char *dst, uint8_t tos, uint16_t id,
                        bool df)
{
	struct lb_addr s = th_addr(src), d = th_addr(dst);
	size_t off = ETH_HLEN, l4;

	memset(b, 0, FRAME_MAX);
	memset(b, 0x0a, 6); /* whatever the kernel put there: rewritten */
	memset(b + 6, 0x0b, 6);
	if (s.family == AF_INET) {
		pkt_store16(b + 12, ETH_P_IP);
		b[off] = 0x45;
		b[off + 1] = tos;
		pkt_store16(b + off + 2, 20 + 20);
		pkt_store16(b + off + 4, id);
		pkt_store16(b + off + 6, df ? PKT_IPV4_DF : 0);
		b[off + 8] = 64;
		b[off + 9] = IPPROTO_TCP;
		memcpy(b + off + 12, s.b, 4);
		memcpy(b + off + 16, d.b, 4);
		pkt_ipv4_csum_set(b + off, 20);
		l4 = off + 20;
	} else {
		pkt_store16(b + 12, ETH_P_IPV6);
		b[off] = (uint8_t)(0x60 | tos >> 4);
		b[off + 1] = (uint8_t)(tos << 4);
		pkt_store16(b + off + 4, 20);
		b[off + 6] = IPPROTO_TCP;
		b[off + 7] = 64;
		memcpy(b + off + 8, s.b, 16);
		memcpy(b + off + 24, d.b, 16);
		l4 = off + 40;
	}
	pkt_store16(b + l4, 40000);
	pkt_store16(b + l4 + 2, 80);
	b[l4 + 12] = 5 << 4;
	b[l4 + 13] = 0x02; /* SYN */
	return l4 + 20;
}

/* Runs the attached program on in[0..len) with skb mark; out gets the frame, returns retval. */
static int run(const uint8_t *in, size_t len, uint32_t mark, uint8_t *out, uint32_t *out_len,
               uint32_t *mark_out)
{
	struct __sk_buff ctx = {.mark = mark}, ctx_out = {0};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (uint32_t)len,
	            .data_out = out, .data_size_out = FRAME_MAX, .ctx_in = &ctx,
	            .ctx_size_in = sizeof(ctx), .ctx_out = &ctx_out,
	            .ctx_size_out = sizeof(ctx_out), .repeat = 1);

	assert_int_equal(bpf_prog_test_run_opts(env.prog_fd, &opts), 0);
	*out_len = opts.data_size_out;
	if (mark_out)
		*mark_out = ctx_out.mark;
	return (int)opts.retval;
}

static uint64_t counter(enum hct_counter k)
{
	return hct_counter(env.t, k);
}

/*
 * What the data path sends for frame in[0..len) to the backend of VIP vip (tcfg_fixture's):
 * gre_encap with that backend's outer template, the next hop nh_mac and lo's MAC (zero).
 */
static size_t core_encap(const uint8_t *in, size_t len, const char *vip, uint8_t *out)
{
	static const uint8_t lo_mac[ETH_ALEN] = {0};
	uint8_t buf[LB_HEADROOM + FRAME_MAX];
	struct lb_frame f = {
	    .data = buf + LB_HEADROOM, .len = (uint32_t)len, .headroom = LB_HEADROOM};
	const struct lb_vip *v = NULL;
	struct pkt_ip ip;
	uint32_t l3off = 0;
	uint16_t et = 0;
	uint64_t mac = 0;

	for (uint32_t i = 0; i < env.snap->n_vips; i++)
		if (strcmp(env.snap->vips[i].name, vip) == 0)
			v = &env.snap->vips[i];
	assert_non_null(v);
	memcpy(f.data, in, len);
	assert_int_equal(pkt_parse_eth(f.data, f.len, &l3off, &et), 0);
	assert_int_equal(pkt_parse_ip(f.data, l3off, f.len, et == ETH_P_IP ? 4 : 6, false, &ip), 0);
	for (int i = 0; i < ETH_ALEN; i++)
		mac = mac << 8 | nh_mac[i];
	assert_int_equal(gre_encap(&f, &ip, mac, lo_mac, &env.snap->backends[v->backends[0]]), 0);
	memcpy(out, f.data, f.len);
	return f.len;
}

struct encap_case {
	const char *name;
	const char *vip_name; /* tcfg_fixture's VIP: its one backend is where the probe goes */
	const char *src, *vip;
	uint8_t tos;
	uint16_t id;
	bool df;
};

static const struct encap_case encap_cases[] = {
    {"v4 in v4", "web4", "198.18.2.2", "203.0.113.10", 0xb8, 0x1234, true},
    {"v4 in v4, no DF", "web4", "198.18.2.2", "203.0.113.10", 0x03, 0xbeef, false},
    {"v4 in v6", "web4v6", "198.18.2.2", "203.0.113.11", 0x28, 0x0001, true},
    {"v6 in v6", "web6", "2001:db8:2::2", "2001:db8:100::10", 0xb9, 0, true},
    {"v6 in v4", "web6v4", "2001:db8:2::2", "2001:db8:100::11", 0x10, 0, true},
};

static void test_encap_as_core(void **state)
{
	uint8_t in[FRAME_MAX], out[FRAME_MAX], want[FRAME_MAX];
	uint32_t out_len, mark_out, slot = SLOT_FIRST;
	uint64_t before;

	(void)state;
	need_env();
	if (!env.snap) {
		struct snapshot_state st = {0};

		env.snap = snap(env.cfg, NULL, &st);
	}
	for (size_t i = 0; i < ARRAY_SIZE(encap_cases); i++, slot++) {
		const struct encap_case *c = &encap_cases[i];
		const struct lb_vip *v = NULL;
		const struct lb_backend *b;
		const struct lb_addr *src;
		size_t len = syn_frame(in, c->src, c->vip, c->tos, c->id, c->df), want_len;

		for (uint32_t k = 0; k < env.snap->n_vips; k++)
			if (strcmp(env.snap->vips[k].name, c->vip_name) == 0)
				v = &env.snap->vips[k];
		assert_non_null(v);
		b = &env.snap->backends[v->backends[0]];
		src = b->addr.family == AF_INET ? &env.cfg->dataplane.source_ipv4
		                                : &env.cfg->dataplane.source_ipv6;
		assert_int_equal(hct_set(env.t, slot, src, &b->addr, TEST_TTL, nh_mac), 0);
		before = counter(HCT_CTR_ENCAPSULATED);
		print_message("case %s\n", c->name);
		assert_int_equal(run(in, len, hct_mark(slot), out, &out_len, &mark_out), TC_ACT_OK);
		want_len = core_encap(in, len, c->vip_name, want);
		assert_int_equal(out_len, want_len);
		assert_memory_equal(out, want, want_len);
		assert_int_equal(mark_out, 0);
		assert_int_equal(counter(HCT_CTR_ENCAPSULATED), before + 1);
	}
}

static void test_unmarked_untouched(void **state)
{
	static const uint32_t marks[] = {0, 1, HCT_MARK_BASE - 1, HCT_MARK_BASE ^ 0x10000u,
	                                 0xffffffffu};
	uint8_t in[FRAME_MAX], out[FRAME_MAX];
	uint32_t out_len, mark_out;
	size_t len = syn_frame(in, "198.18.2.2", "203.0.113.10", 0, 1, true);
	uint64_t before = counter(HCT_CTR_ENCAPSULATED);

	(void)state;
	need_env();
	/* A slot whose mark is close to those below, filled: none of them may reach it. */
	assert_int_equal(hct_set(env.t, 0, &env.cfg->dataplane.source_ipv4,
	                         &env.cfg->vips[0].backends[0].addr, TEST_TTL, nh_mac),
	                 0);
	for (size_t i = 0; i < ARRAY_SIZE(marks); i++) {
		assert_int_equal(run(in, len, marks[i], out, &out_len, &mark_out), TC_ACT_OK);
		assert_int_equal(out_len, len);
		assert_memory_equal(out, in, len);
		assert_int_equal(mark_out, marks[i]);
	}
	assert_int_equal(counter(HCT_CTR_ENCAPSULATED), before);
}

static void test_empty_slot_dropped(void **state)
{
	uint8_t in[FRAME_MAX], out[FRAME_MAX];
	uint32_t out_len;
	size_t len = syn_frame(in, "198.18.2.2", "203.0.113.10", 0, 1, true);
	uint64_t before = counter(HCT_CTR_NO_DEST), mal = counter(HCT_CTR_MALFORMED);

	(void)state;
	need_env();
	assert_int_equal(hct_set(env.t, 3, &env.cfg->dataplane.source_ipv4,
	                         &env.cfg->vips[0].backends[0].addr, TEST_TTL, nh_mac),
	                 0);
	assert_int_equal(hct_clear(env.t, 3), 0);
	assert_int_equal(run(in, len, hct_mark(3), out, &out_len, NULL), TC_ACT_SHOT);
	/* Past the map: also an empty slot. */
	assert_int_equal(run(in, len, hct_mark(HCT_SLOTS + 5), out, &out_len, NULL), TC_ACT_SHOT);
	assert_int_equal(counter(HCT_CTR_NO_DEST), before + 2);
	/* A marked frame that is not IP: dropped as malformed, not sent plain. */
	assert_int_equal(hct_set(env.t, 3, &env.cfg->dataplane.source_ipv4,
	                         &env.cfg->vips[0].backends[0].addr, TEST_TTL, nh_mac),
	                 0);
	pkt_store16(in + 12, ETH_P_ARP);
	assert_int_equal(run(in, len, hct_mark(3), out, &out_len, NULL), TC_ACT_SHOT);
	assert_int_equal(counter(HCT_CTR_MALFORMED), mal + 1);
	assert_int_equal(hct_set(env.t, HCT_SLOTS, &env.cfg->dataplane.source_ipv4,
	                         &env.cfg->vips[0].backends[0].addr, TEST_TTL, nh_mac),
	                 -EINVAL);
}

/*
 * A process that attached the filter and died without hct_close leaves it attached; the next
 * hct_open replaces it, and hct_close then leaves nothing at our handle.
 */
static void test_stale_replaced(void **state)
{
	char err[256];
	struct hct *t2;
	pid_t pid;
	int st, fd;

	(void)state;
	need_env();
	hct_close(env.t);
	env.t = NULL;
	assert_int_equal(attached_prog_fd(), -ENOENT);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct hct *t;

		_exit(hct_open(&t, TEST_IF, err, sizeof(err)) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fd = attached_prog_fd();
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(hct_open(&t2, TEST_IF, err, sizeof(err)), 0);
	fd = attached_prog_fd();
	assert_true(fd >= 0);
	close(fd);
	hct_close(t2);
	assert_int_equal(attached_prog_fd(), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encap_as_core),
	    cmocka_unit_test(test_unmarked_untouched),
	    cmocka_unit_test(test_empty_slot_dropped),
	    cmocka_unit_test(test_stale_replaced),
	};

	return cmocka_run_group_tests_name("hc_tunnel", tests, group_setup, group_teardown);
}
