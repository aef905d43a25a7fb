/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differential tests of the xdp mode's forwarding program (bpf/xdp_fwd.bpf.c) against the
 * userspace pipeline: every frame goes through lb_process and, with BPF_PROG_TEST_RUN, through
 * the program, both starting from empty connection tables over the same snapshot (published into
 * the program's maps with xdpfwd_publish). Whenever the program forwards a frame itself (XDP_TX),
 * lb_process must have sent the same bytes, and counted the same pipeline counters; when it drops
 * one, lb_process must have dropped it; when steering passes it to the kernel, lb_process must
 * not have sent it. A frame the program hands to the slow path (steered to the AF_XDP socket: here,
 * with no socket in the XSKMAP, XDP_PASS under the NO_SOCKET statistic) is lb_process's to decide
 * and may be anything. Frames: every byte-exact pipeline fixture, then seeded random flows (IPv4
 * and IPv6, VLAN tags, TCP flags, sizes up to past the MTU, padding, other MACs; the hash: source
 * VIPs' from a few clients with many ports), mutated frames, and reloads between them (backends
 * removed, added, down; second chance on a 5-tuple and a source VIP). Needs root and
 * build/bpf/xdp_fwd.bpf.o; skipped otherwise. SEED=N in the environment picks another seed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "base/util.h"
#include "core/conntrack.h"
#include "core/counters.h"
#include "core/pipeline.h"
#include "helpers.h"
#include "io/xdpfwd.h"
#include "tcfg.h"
#include "tframes.h"
#include "tsnap.h"
#include "bpf/xdp_fwd.h"
#include "fixtures/pipeline_fixtures.h"

#define OUT_MAX       (TFRAME_MAX + 256u)
#define SEED_DEFAULT  20261202u
#define RANDOM_ROUNDS 4u    /* rounds of random frames, a reload before each after the first */
#define RANDOM_FRAMES 2500u /* frames per round */
#define FLOW_POOL     256u  /* flows random frames come from (the rest are new) */

struct fx {
	struct bpf_object *obj;
	struct xdpfwd *fwd;
	int prog_fd, vip_fd, addr_fd, steer_stats_fd;
	int ncpus;
};

/* What one frame did on both sides. */
enum side { SIDE_TX, SIDE_DROP, SIDE_PASS, SIDE_SLOW };

struct tally {
	uint32_t frames, fast_tx, fast_drop, pass, slow, lb_tx;
	uint32_t pass_by_lb[3], slow_by_lb[3]; /* by lb_process's verdict */
};

/* lb_process's per-backend counters summed over the frames the program forwarded. */
static struct lb_backend_counters fast_bctr[LB_BACKEND_IDS_MAX];

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static uint64_t steer_stat(struct fx *f, uint32_t k)
{
	uint64_t v[256] = {0}, sum = 0;

	assert_true(f->ncpus <= 256);
	assert_int_equal(bpf_map_lookup_elem(f->steer_stats_fd, &k, v), 0);
	for (int i = 0; i < f->ncpus; i++)
		sum += v[i];
	return sum;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The steering maps as the AF_XDP loader fills them for s: VIPs, their addresses, our own. */
static void steer_fill(struct fx *f, const struct lb_snapshot *s)
{
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];
		struct xdp_vip_key k = {.family = v->addr.family == AF_INET ? XDP_FAMILY_IPV4
		                                                            : XDP_FAMILY_IPV6,
		                        .proto = v->proto,
		                        .port = htons(v->port)};
		struct xdp_addr_key ak = {.family = k.family};
		uint32_t one = 1, flags = XDP_ADDR_VIP;

		memcpy(k.addr, v->addr.b, lb_addr_len(&v->addr));
		memcpy(ak.addr, v->addr.b, lb_addr_len(&v->addr));
		assert_int_equal(bpf_map_update_elem(f->vip_fd, &k, &one, BPF_ANY), 0);
		assert_int_equal(bpf_map_update_elem(f->addr_fd, &ak, &flags, BPF_ANY), 0);
	}
	for (int i = 0; i < 2; i++) {
		const struct lb_addr *a = i ? &s->source_ipv6 : &s->source_ipv4;
		struct xdp_addr_key ak = {.family = i ? XDP_FAMILY_IPV6 : XDP_FAMILY_IPV4};
		uint32_t flags = XDP_ADDR_SELF;

		if (!a->family)
			continue;
		memcpy(ak.addr, a->b, lb_addr_len(a));
		assert_int_equal(bpf_map_update_elem(f->addr_fd, &ak, &flags, BPF_ANY), 0);
	}
}

static void publish(struct fx *f, const struct lb_snapshot *s)
{
	char err[256] = "";

	if (xdpfwd_publish(f->fwd, s, err, sizeof(err)))
		fail_msg("xdpfwd_publish: %s", err);
	steer_fill(f, s);
}

static struct lb_worker *worker_new(const struct config *c)
{
	struct lb_worker_params p;
	struct lb_worker *w;

	lb_worker_params_init(&p, &c->conntrack);
	memcpy(p.mac, TCFG_MAC_ME, 6);
	w = lb_worker_create(&p);
	assert_non_null(w);
	return w;
}

static void hexdump(const char *what, const uint8_t *p, uint32_t n)
{
	fprintf(stderr, "%s (%u bytes):", what, n);
	for (uint32_t i = 0; i < n; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", p[i]);
	fprintf(stderr, "\n");
}

/*
 * Runs frame in[0..len) through both and checks the program against lb_process (see the top of
 * the file). what names the frame in a failure.
 */
static enum side run_both(struct fx *f, struct lb_worker *w, const struct lb_snapshot *s,
                          const uint8_t *in, uint32_t len, const char *what, struct tally *t)
{
	static struct tbuf b;
	static uint8_t out[OUT_MAX];
	uint64_t kb[LB_CTR_MAX] = {0}, ka[LB_CTR_MAX] = {0}, lb[LB_CTR_MAX];
	static struct lb_backend_counters bbefore[LB_BACKEND_IDS_MAX];
	uint64_t slow_before = steer_stat(f, XDP_STAT_NO_SOCKET);
	uint64_t pass_before =
	    steer_stat(f, XDP_STAT_PASS) + steer_stat(f, XDP_STAT_PASS_NOT_OUR_MAC);
	const uint64_t *lc = lb_worker_counters(w);
	const struct lb_backend_counters *bc = lb_worker_backend_counters(w);
	struct lb_frame fr = tbuf_frame(&b, in, len);
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = len, .data_out = out,
	            .data_size_out = sizeof(out), .repeat = 1);
	enum lb_verdict v;
	enum side side = SIDE_SLOW;

	/* No interface delivers a frame shorter than its Ethernet header (nor can a test run). */
	if (len < 14)
		return SIDE_DROP;
	memcpy(lb, lc, sizeof(lb));
	memcpy(bbefore, bc, s->n_backends * sizeof(*bc));
	xdpfwd_counters(f->fwd, kb);
	v = lb_process(w, s, &fr, now_ns());
	assert_int_equal(bpf_prog_test_run_opts(f->prog_fd, &opts), 0);
	xdpfwd_counters(f->fwd, ka);
	t->frames++;
	t->lb_tx += v == LB_TX;
	if (opts.retval == XDP_TX) {
		side = SIDE_TX;
	} else if (opts.retval == XDP_DROP) {
		side = SIDE_DROP;
	} else if (opts.retval == XDP_PASS &&
	           steer_stat(f, XDP_STAT_NO_SOCKET) == slow_before + 1) {
		side = SIDE_SLOW;
	} else if (opts.retval == XDP_PASS &&
	           steer_stat(f, XDP_STAT_PASS) + steer_stat(f, XDP_STAT_PASS_NOT_OUR_MAC) ==
	               pass_before + 1) {
		side = SIDE_PASS;
	} else {
		fail_msg("%s: XDP action %u with no statistic", what, opts.retval);
	}
	if (side == SIDE_TX) {
		if (v != LB_TX || fr.len != opts.data_size_out || memcmp(fr.data, out, fr.len)) {
			hexdump("in", in, len);
			hexdump("xdp_fwd sent", out, opts.data_size_out);
			if (v == LB_TX)
				hexdump("lb_process sent", fr.data, fr.len);
			fail_msg("%s: the program sent a frame, lb_process's verdict %d differs",
			         what, v);
		}
		for (uint32_t k = 0; k < LB_CTR_MAX; k++)
			if (ka[k] - kb[k] != lc[k] - lb[k])
				fail_msg("%s: counter %s: the program added %llu, lb_process %llu",
				         what, lb_counter_name[k],
				         (unsigned long long)(ka[k] - kb[k]),
				         (unsigned long long)(lc[k] - lb[k]));
		for (uint32_t id = 0; id < s->n_backends; id++) {
			fast_bctr[id].packets += bc[id].packets - bbefore[id].packets;
			fast_bctr[id].bytes += bc[id].bytes - bbefore[id].bytes;
			fast_bctr[id].flows += bc[id].flows - bbefore[id].flows;
		}
		t->fast_tx++;
	} else if (side == SIDE_DROP) {
		if (v != LB_DROP)
			fail_msg("%s: the program dropped it, lb_process's verdict is %d", what, v);
		t->fast_drop++;
	} else if (side == SIDE_PASS) {
		/*
		 * Steering leaves some frames lb_process would drop to the kernel (ICMP types it
		 * does not steer: bpf/steer.h), never one lb_process would send.
		 */
		if (v == LB_TX)
			fail_msg("%s: steering passed it, lb_process sent it", what);
		t->pass++;
		t->pass_by_lb[v]++;
	} else {
		t->slow++;
		t->slow_by_lb[v]++;
	}
	return side;
}

/* Loads xdp_fwd into f with a connection table sized for ct, our MAC set. 0 or -1. */
static int fx_open(struct fx *f, const struct config_conntrack *ct)
{
	char path[PATH_MAX], err[256] = "";
	struct xdp_vip_config vc = {0};
	struct bpf_program *prog;
	uint32_t zero = 0;
	int cfd;

	if (th_bpf_obj_path(XDP_FWD_OBJ_FILE, path, sizeof(path)) != 0)
		return -1;
	f->obj = bpf_object__open_file(path, NULL);
	if (!f->obj || xdpfwd_size(f->obj, ct) || bpf_object__load(f->obj))
		return -1;
	prog = bpf_object__find_program_by_name(f->obj, XDP_FWD_PROG_NAME);
	if (!prog || xdpfwd_open(&f->fwd, f->obj, ct, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	f->prog_fd = bpf_program__fd(prog);
	f->vip_fd = bpf_object__find_map_fd_by_name(f->obj, XDP_VIP_MAP_VIPS);
	f->addr_fd = bpf_object__find_map_fd_by_name(f->obj, XDP_VIP_MAP_ADDRS);
	f->steer_stats_fd = bpf_object__find_map_fd_by_name(f->obj, XDP_VIP_MAP_STATS);
	f->ncpus = libbpf_num_possible_cpus();
	cfd = bpf_object__find_map_fd_by_name(f->obj, XDP_VIP_MAP_CONFIG);
	memcpy(vc.mac, TCFG_MAC_ME, 6);
	return cfd < 0 || bpf_map_update_elem(cfd, &zero, &vc, BPF_ANY) ? -1 : 0;
}

static void fx_close(struct fx *f)
{
	xdpfwd_close(f->fwd);
	bpf_object__close(f->obj);
}

/* Runs this thread on CPU cpu only (the program's table part is the CPU's). */
static void pin(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
}

static int setup(void **state)
{
	static struct fx f;
	struct config *c = tcfg_fixture();
	int rc;

	*state = NULL;
	if (geteuid() != 0 || th_bpf_obj_path(XDP_FWD_OBJ_FILE, (char[PATH_MAX]){0}, PATH_MAX)) {
		config_free(c);
		return 0;
	}
	/* One CPU: the program's per-CPU insert cap and table part are then the worker's. */
	pin(sched_getcpu());
	libbpf_set_print(quiet);
	rc = fx_open(&f, &c->conntrack);
	config_free(c);
	if (rc)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f)
		fx_close(f);
	return 0;
}

/* Empties the program's connection table (each test starts where a new worker does). */
static void ct_clear(struct fx *f)
{
	const char *names[] = {XDP_FWD_MAP_CT_BUCKETS, XDP_FWD_MAP_CT_ENTRIES};

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
		int fd = bpf_object__find_map_fd_by_name(f->obj, names[i]);
		struct bpf_map_info info = {0};
		uint32_t len = sizeof(info);
		size_t bytes;
		void *m;

		assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
		bytes = (size_t)info.max_entries * info.value_size;
		m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(m != MAP_FAILED);
		memset(m, 0, bytes);
		munmap(m, bytes);
	}
}

static void report(const char *name, const struct tally *t)
{
	fprintf(stderr,
	        "%s: %u frames: %u sent by the program (lb_process sent %u), %u dropped by it, "
	        "%u passed (lb_process: %u passed, %u dropped), %u to the slow path (lb_process: "
	        "%u dropped, %u passed, %u sent)\n",
	        name, t->frames, t->fast_tx, t->lb_tx, t->fast_drop, t->pass,
	        t->pass_by_lb[LB_PASS], t->pass_by_lb[LB_DROP], t->slow, t->slow_by_lb[LB_DROP],
	        t->slow_by_lb[LB_PASS], t->slow_by_lb[LB_TX]);
}

/* Every byte-exact fixture: the program agrees with lb_process on each. */
static void test_fixtures(void **state)
{
	struct fx *f = *state;
	struct config *c;
	struct lb_snapshot *s;
	struct lb_worker *w;
	struct tally t = {0};

	if (!f)
		skip();
	c = tcfg_fixture();
	s = snap(c, NULL, NULL);
	w = worker_new(c);
	ct_clear(f);
	publish(f, s);
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
		const char *n = fixtures[i].name;
		enum side side = run_both(f, w, s, fixtures[i].in, fixtures[i].in_len, n, &t);

		/* The plain frames to the hash: source VIPs and their 5-tuple twin. */
		if ((!strncmp(n, "hsrc", 4) || !strncmp(n, "htup", 4)) && !strstr(n, "icmp") &&
		    !strstr(n, "retarget") && !strstr(n, "fragment") && side != SIDE_TX)
			fail_msg("%s: not forwarded by the program", n);
	}
	report("fixtures", &t);
	/* The plain fixtures are forwarded in the kernel, not merely handed on. */
	assert_true(t.fast_tx >= 5);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A flow of a random frame: client, VIP (index), ports, family of the VIP. */
struct rflow {
	uint8_t src[16];
	uint16_t vip;
	uint16_t sport, dport;
	bool vlan;
};

static void rflow_new(uint64_t *r, const struct lb_snapshot *s, struct rflow *fl)
{
	uint64_t x = rng_next(r);
	const struct lb_vip *v;

	memset(fl, 0, sizeof(*fl));
	fl->vip = (uint16_t)(x % s->n_vips);
	v = &s->vips[fl->vip];
	if (v->addr.family == AF_INET) {
		fl->src[0] = 198;
		fl->src[1] = 18 + (uint8_t)(x >> 8 & 1);
		fl->src[2] = (uint8_t)(x >> 16);
		fl->src[3] = (uint8_t)(x >> 24);
	} else {
		static const uint8_t pre[6] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff};

		memcpy(fl->src, pre, sizeof(pre));
		x = rng_next(r);
		memcpy(fl->src + 8, &x, 8);
	}
	/* A source VIP's clients: a few addresses, many ports each (every flow of one meets one
	 * backend). */
	if (v->hash == VIP_HASH_SOURCE && x % 4) {
		static const uint8_t few4[3] = {198, 19, 200};

		if (v->addr.family == AF_INET)
			memcpy(fl->src, few4, sizeof(few4));
		else
			memset(fl->src + 8, 0, 8);
		fl->src[v->addr.family == AF_INET ? 3 : 15] = (uint8_t)(1 + (x >> 32) % 8);
	}
	fl->sport = (uint16_t)(1024 + (rng_next(r) % 60000));
	fl->dport = v->port ? v->port : (uint16_t)(1 + rng_next(r) % 65535);
	/* Now and then a port no VIP has. */
	if (rng_next(r) % 20 == 0)
		fl->dport = (uint16_t)(v->port + 1);
	fl->vlan = rng_next(r) % 10 == 0;
}

/* A frame of flow fl with random flags, size and padding into p; returns its length. */
static uint32_t rflow_frame(uint64_t *r, const struct lb_snapshot *s, const struct rflow *fl,
                            uint8_t *p)
{
	static const uint8_t tcp_flags[] = {0x02, 0x10, 0x18, 0x12, 0x11, 0x04, 0x14, 0x02, 0x10};
	const struct lb_vip *v = &s->vips[fl->vip];
	uint32_t x = (uint32_t)rng_next(r), n = 0, l4, pay, ipl;
	bool v4 = v->addr.family == AF_INET;
	uint8_t *ip, *t;

	memcpy(p, TCFG_MAC_ME, 6);
	if (x % 50 == 0)
		p[5] ^= 0x40; /* another MAC */
	memcpy(p + 6, "\x02\x00\x00\x00\x00\xaa", 6);
	n = 12;
	if (fl->vlan) {
		p[n++] = 0x81;
		p[n++] = 0x00;
		p[n++] = 0x00;
		p[n++] = 0x07;
	}
	p[n++] = v4 ? 0x08 : 0x86;
	p[n++] = v4 ? 0x00 : 0xdd;
	l4 = v->proto == IPPROTO_TCP ? 20 : 8;
	x = (uint32_t)rng_next(r);
	/* Mostly small; a few near and past what fits the MTU once encapsulated. */
	pay = x % 8 == 0 ? 1380 + x / 8 % 160 : x / 8 % 200;
	ip = p + n;
	ipl = (v4 ? 20 : 40) + l4 + pay;
	if (v4) {
		memset(ip, 0, 20);
		ip[0] = 0x45;
		ip[1] = (uint8_t)(x >> 20);
		ip[2] = (uint8_t)(ipl >> 8);
		ip[3] = (uint8_t)ipl;
		ip[4] = (uint8_t)(x >> 12);
		ip[5] = (uint8_t)(x >> 4);
		ip[6] = x & 0x100 ? 0x40 : 0;
		ip[8] = 64;
		ip[9] = v->proto;
		memcpy(ip + 12, fl->src, 4);
		memcpy(ip + 16, v->addr.b, 4);
		t = ip + 20;
	} else {
		memset(ip, 0, 40);
		ip[0] = 0x60 | (uint8_t)(x >> 28);
		ip[1] = (uint8_t)(x >> 20) & 0xf0;
		ip[4] = (uint8_t)((ipl - 40) >> 8);
		ip[5] = (uint8_t)(ipl - 40);
		ip[6] = v->proto;
		ip[7] = 64;
		memcpy(ip + 8, fl->src, 16);
		memcpy(ip + 24, v->addr.b, 16);
		t = ip + 40;
	}
	tf_l4(t, v->proto, fl->sport, fl->dport, tcp_flags[rng_next(r) % ARRAY_SIZE(tcp_flags)],
	      (uint16_t)(l4 + pay));
	for (uint32_t i = 0; i < pay; i++)
		t[l4 + i] = (uint8_t)(i * 7);
	n += ipl;
	/* Ethernet padding up to 60 bytes, as a NIC delivers short frames, half the time. */
	if (n < 60 && rng_next(r) % 2) {
		memset(p + n, 0, 60 - n);
		n = 60;
	}
	return n;
}

/* One to four bytes of the first 80 changed, or the frame cut short. */
static uint32_t mutate(uint64_t *r, uint8_t *p, uint32_t n)
{
	uint64_t x = rng_next(r);

	if (x % 4 == 0)
		return (uint32_t)(x >> 8) % n;
	for (unsigned i = 0; i <= (x >> 2) % 4; i++) {
		uint64_t y = rng_next(r);

		p[(y >> 8) % (n < 80 ? n : 80)] ^= (uint8_t)(1u << (y % 8));
	}
	return n;
}

/* Config changes between rounds: the next round's config (round 1..) from c. */
static void reload_change(struct config *c, unsigned round, struct snapshot_override *ov,
                          uint32_t *n_ov)
{
	struct config_vip *multi = NULL, *multiu = NULL, *srcweb = NULL, *tupweb = NULL;

	for (uint32_t i = 0; i < c->n_vips; i++) {
		if (!strcmp(c->vips[i].name, "tupweb"))
			tupweb = &c->vips[i];
		if (!strcmp(c->vips[i].name, "multi"))
			multi = &c->vips[i];
		if (!strcmp(c->vips[i].name, "multiu"))
			multiu = &c->vips[i];
		if (!strcmp(c->vips[i].name, "srcweb"))
			srcweb = &c->vips[i];
	}
	assert_non_null(multi);
	assert_non_null(multiu);
	assert_non_null(srcweb);
	assert_non_null(tupweb);
	*n_ov = 0;
	if (round == 1) {
		tcfg_backend_del(multi, 1);
		tcfg_backend_add(multiu, "198.18.2.9", 1);
		tcfg_backend_del(srcweb, 2);
	} else if (round == 2) {
		tcfg_backend_add(multi, "198.18.2.8", 2);
		tcfg_backend_add(srcweb, "198.18.3.9", 1);
		ov[0] = (struct snapshot_override){.weight = -1, .down = true};
		snprintf(ov[0].vip, sizeof(ov[0].vip), "multiu");
		ov[0].backend = tcfg_addr("198.18.2.2");
		*n_ov = 1;
	} else {
		tcfg_backend_del(multi, 0);
		tcfg_backend_del(multiu, 0);
		/* Hash modes swapped: second chance looks the previous tables up in the old modes.
		 */
		srcweb->hash = VIP_HASH_5TUPLE;
		tupweb->hash = VIP_HASH_SOURCE;
	}
}

/*
 * Seeded random flows with reloads: tracked flows, new ones, SYN-only ones promoted, closing,
 * second chance for the "multi" VIP after its backends change, a down backend's flows rechosen.
 */
static void test_random(void **state)
{
	struct fx *f = *state;
	struct config *c;
	struct lb_snapshot *s, *next;
	struct lb_worker *w;
	struct tally t = {0};
	static struct rflow pool[FLOW_POOL];
	static struct lb_backend_counters kbase[256];
	uint64_t k0[LB_CTR_MAX] = {0}, k1[LB_CTR_MAX] = {0};
	static uint8_t frame[TFRAME_MAX];
	struct snapshot_override ov[4];
	uint32_t n_ov = 0;
	const char *seed_env = getenv("SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : SEED_DEFAULT, r = seed | 1;
	char what[64];

	if (!f)
		skip();
	c = tcfg_fixture();
	/* Second chance on 5-tuple VIPs and a source one (backends and modes change below). */
	for (uint32_t i = 0; i < c->n_vips; i++)
		if (!strcmp(c->vips[i].name, "multi") || !strcmp(c->vips[i].name, "srcweb") ||
		    !strcmp(c->vips[i].name, "tupweb"))
			c->vips[i].second_chance = true;
	s = snap(c, NULL, NULL);
	w = worker_new(c);
	memset(fast_bctr, 0, sizeof(fast_bctr));
	memset(kbase, 0, sizeof(kbase));
	xdpfwd_counters(f->fwd, k0);
	for (uint32_t id = 0; id < ARRAY_SIZE(kbase); id++)
		xdpfwd_backend_counters(f->fwd, (uint16_t)id, &kbase[id]);
	ct_clear(f);
	publish(f, s);
	for (unsigned i = 0; i < FLOW_POOL; i++)
		rflow_new(&r, s, &pool[i]);
	for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
		if (round) {
			struct snapshot_state st = {.v = ov, .n = 0};

			reload_change(c, round, ov, &n_ov);
			st.n = n_ov;
			next = snap(c, s, &st);
			publish(f, next);
			snapshot_free(s);
			s = next;
		}
		for (unsigned i = 0; i < RANDOM_FRAMES; i++) {
			struct rflow fl, *pf = &pool[rng_next(&r) % FLOW_POOL];
			uint32_t n;

			if (rng_next(&r) % 4 == 0) {
				rflow_new(&r, s, &fl);
				pf = &fl;
			}
			n = rflow_frame(&r, s, pf, frame);
			if (rng_next(&r) % 8 == 0)
				n = mutate(&r, frame, n);
			snprintf(what, sizeof(what), "seed %llu round %u frame %u",
			         (unsigned long long)seed, round, i);
			run_both(f, w, s, frame, n, what, &t);
		}
	}
	report("random", &t);
	xdpfwd_counters(f->fwd, k1);
	fprintf(stderr,
	        "random: in the kernel: %llu hits, %llu misses, %llu rechosen, %llu second "
	        "chance\n",
	        (unsigned long long)(k1[LB_CTR_CT_HIT] - k0[LB_CTR_CT_HIT]),
	        (unsigned long long)(k1[LB_CTR_CT_MISS] - k0[LB_CTR_CT_MISS]),
	        (unsigned long long)(k1[LB_CTR_CT_RECHOSEN] - k0[LB_CTR_CT_RECHOSEN]),
	        (unsigned long long)(k1[LB_CTR_TX_SECOND_CHANCE] - k0[LB_CTR_TX_SECOND_CHANCE]));
	/* Most frames lb_process sends are sent by the program itself, on every path. */
	assert_true(t.fast_tx > t.lb_tx / 2);
	assert_true(k1[LB_CTR_CT_HIT] > k0[LB_CTR_CT_HIT]);
	assert_true(k1[LB_CTR_CT_MISS] > k0[LB_CTR_CT_MISS]);
	assert_true(k1[LB_CTR_CT_RECHOSEN] > k0[LB_CTR_CT_RECHOSEN]);
	assert_true(k1[LB_CTR_TX_SECOND_CHANCE] > k0[LB_CTR_TX_SECOND_CHANCE]);
	assert_true(t.fast_drop + t.slow + t.pass > 0);
	/* The program's per-backend counters are lb_process's over the frames it sent. */
	assert_true(s->n_backends <= ARRAY_SIZE(kbase));
	for (uint32_t id = 0; id < s->n_backends; id++) {
		struct lb_backend_counters k = {0};

		xdpfwd_backend_counters(f->fwd, (uint16_t)id, &k);
		assert_int_equal(k.packets - kbase[id].packets, fast_bctr[id].packets);
		assert_int_equal(k.bytes - kbase[id].bytes, fast_bctr[id].bytes);
		assert_int_equal(k.flows - kbase[id].flows, fast_bctr[id].flows);
	}
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* ---- the kernel's connection table itself ---- */

#define CT_VIP          "203.0.113.20" /* tcfg_fixture's "multi": TCP port 80, 4 backends */
#define CT_SOURCE_VIP   "203.0.113.30" /* its "srcweb": the same, hash: source */
#define CT_CLIENT_FLOWS 200u           /* flows of one client in test_ct_source_vip */
#define CT_ESTAB        600u           /* established flows, of a part's 1024 */
#define CT_SYN_FLOOD    5000u          /* new SYN-only flows after them */
#define CT_LATE_ESTAB   3000u          /* new established flows after those */

static const char *ct_vip = CT_VIP; /* the VIP of the table tests' flows */
static bool ct_one_client;          /* every flow from one client address */

/*
 * Flow n of the table tests: client 198.18.(n / 250).(n % 250 + 1) (198.18.0.1 with
 * ct_one_client), port 1024 + n, to ct_vip:80.
 */
static void ct_flow(uint32_t n, char *src, struct lb_flow_key *k)
{
	struct lb_addr a, v = tcfg_addr(ct_vip);

	snprintf(src, 16, "198.18.%u.%u", ct_one_client ? 0u : n / 250u % 256u,
	         ct_one_client ? 1u : n % 250u + 1u);
	a = tcfg_addr(src);
	lb_flow_key_make(k, &a, &v, IPPROTO_TCP, (uint16_t)(1024u + n), 80);
}

/* Sends one TCP packet of flow n with flags through the program: its XDP action. */
static uint32_t ct_send(struct fx *f, uint32_t n, uint8_t flags)
{
	uint8_t in[128], out[OUT_MAX];
	struct lb_flow_key k;
	char src[16];
	uint32_t len;

	ct_flow(n, src, &k);
	len = tf_flow4(in, src, ct_vip, IPPROTO_TCP, (uint16_t)(1024u + n), 80, flags);
	{
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = len,
		            .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

		assert_int_equal(bpf_prog_test_run_opts(f->prog_fd, &o), 0);
		return o.retval;
	}
}

/* Whether the kernel's table has flow n, and its state flags in *flags. */
static bool ct_has(struct fx *f, const struct lb_snapshot *s, uint32_t n, uint8_t *flags)
{
	uint32_t bref, expires;
	struct lb_flow_key k;
	char src[16];

	ct_flow(n, src, &k);
	return xdpfwd_ct_peek(f->fwd, &k, lb_flow_hash(&k, s->hash_seed), &bref, NULL, &expires,
	                      flags) &&
	       !ct_expired(expires, ct_tick(now_ns()));
}

static uint64_t kctr(struct fx *f, unsigned c)
{
	uint64_t k[LB_CTR_MAX] = {0};

	xdpfwd_counters(f->fwd, k);
	return k[c];
}

/* The smallest table: one part of 128 buckets (1024 flows) for each CPU. */
static int ct_small_open(struct fx *g, struct config *c, struct lb_snapshot **s)
{
	c->conntrack.entries = CONFIG_CT_ENTRIES_MIN;
	c->conntrack.max_inserts_per_second = 0;
	if (fx_open(g, &c->conntrack))
		return -1;
	*s = snap(c, NULL, NULL);
	publish(g, *s);
	return 0;
}

/*
 * The userspace table's policy, in the kernel: a SYN flood into a part already holding
 * established flows takes free and SYN-only ways only, so every established flow stays; new
 * established flows then evict SYN-only ones first. What the program inserts, user space reads
 * with core/conntrack.h's own lookup (xdpfwd_ct_peek).
 */
static void test_ct_policy(void **state)
{
	struct config *c = tcfg_fixture();
	struct fx g = {0};
	struct lb_snapshot *s = NULL;
	uint64_t evs, eve, untracked;
	uint32_t kept = 0, syn_left = 0;
	uint8_t fl;

	if (!*state)
		skip();
	assert_int_equal(ct_small_open(&g, c, &s), 0);
	for (uint32_t n = 0; n < CT_ESTAB; n++)
		assert_int_equal(ct_send(&g, n, 0x10 /* ACK */), XDP_TX);
	for (uint32_t n = 0; n < CT_ESTAB; n++)
		kept += ct_has(&g, s, n, &fl) && fl == 0;
	assert_int_equal(kept, CT_ESTAB);
	for (uint32_t n = CT_ESTAB; n < CT_ESTAB + CT_SYN_FLOOD; n++)
		assert_int_equal(ct_send(&g, n, 0x02 /* SYN */), XDP_TX);
	kept = 0;
	for (uint32_t n = 0; n < CT_ESTAB; n++)
		kept += ct_has(&g, s, n, &fl) && fl == 0;
	evs = kctr(&g, LB_CTR_CT_EVICTED_SYN);
	eve = kctr(&g, LB_CTR_CT_EVICTED_ESTABLISHED);
	untracked = kctr(&g, LB_CTR_CT_SYN_UNTRACKED);
	fprintf(stderr,
	        "policy: %u established flows, then %u SYNs: %u established kept, %llu SYN-only "
	        "evicted, %llu SYNs untracked, %llu established evicted\n",
	        CT_ESTAB, CT_SYN_FLOOD, kept, (unsigned long long)evs,
	        (unsigned long long)untracked, (unsigned long long)eve);
	assert_int_equal(kept, CT_ESTAB);
	assert_int_equal(eve, 0);
	assert_true(evs > 0 && untracked > 0);
	assert_int_equal(kctr(&g, LB_CTR_CT_EVICTED), evs);
	/* Established newcomers take SYN-only ways before any established one. */
	for (uint32_t n = 0; n < CT_LATE_ESTAB; n++)
		assert_int_equal(ct_send(&g, 100000u + n, 0x10), XDP_TX);
	for (uint32_t n = CT_ESTAB; n < CT_ESTAB + CT_SYN_FLOOD; n++)
		syn_left += ct_has(&g, s, n, &fl);
	fprintf(stderr,
	        "policy: then %u established: %llu more SYN-only evicted (%u left), "
	        "%llu established evicted\n",
	        CT_LATE_ESTAB, (unsigned long long)(kctr(&g, LB_CTR_CT_EVICTED_SYN) - evs),
	        syn_left, (unsigned long long)kctr(&g, LB_CTR_CT_EVICTED_ESTABLISHED));
	assert_true(kctr(&g, LB_CTR_CT_EVICTED_SYN) > evs);
	assert_true(syn_left < CT_SYN_FLOOD - untracked - evs);
	assert_true(kctr(&g, LB_CTR_CT_EVICTED_ESTABLISHED) > 0); /* 3600 into 1024: some go */
	fx_close(&g);
	snapshot_free(s);
	config_free(c);
	pin(sched_getcpu());
}

/*
 * A hash: source VIP's flows are tracked by their 5-tuple hash like any other: all of one
 * client's flows (one slot, one backend) spread over the table instead of filling one bucket
 * pair, and user space finds each under its 5-tuple hash.
 */
static void test_ct_source_vip(void **state)
{
	struct config *c = tcfg_fixture();
	struct fx g = {0};
	struct lb_snapshot *s = NULL;
	uint32_t found = 0;
	uint8_t fl;

	if (!*state)
		skip();
	assert_int_equal(ct_small_open(&g, c, &s), 0);
	ct_vip = CT_SOURCE_VIP;
	ct_one_client = true;
	for (uint32_t n = 0; n < CT_CLIENT_FLOWS; n++)
		assert_int_equal(ct_send(&g, n, 0x10), XDP_TX);
	for (uint32_t n = 0; n < CT_CLIENT_FLOWS; n++)
		found += ct_has(&g, s, n, &fl);
	ct_vip = CT_VIP;
	ct_one_client = false;
	assert_int_equal(found, CT_CLIENT_FLOWS);
	assert_int_equal(kctr(&g, LB_CTR_CT_EVICTED), 0);
	assert_int_equal(kctr(&g, LB_CTR_CT_MISS), CT_CLIENT_FLOWS);
	fx_close(&g);
	snapshot_free(s);
	config_free(c);
}

/*
 * The search of other CPUs' parts has a budget: past XDP_FWD_CT_SEARCHES_MAX misses in a second
 * (a flood of ACKs of no flow), a miss is forwarded as a new flow without it, and counted.
 */
static void test_ct_search_budget(void **state)
{
	const uint32_t extra = 100, n = XDP_FWD_CT_SEARCHES_MAX + extra;
	struct config *c = tcfg_fixture();
	struct fx g = {0};
	struct lb_snapshot *s = NULL;
	struct xdpfwd_slow sl;
	uint64_t t0 = now_ns();

	if (!*state || libbpf_num_possible_cpus() < 2)
		skip();
	assert_int_equal(ct_small_open(&g, c, &s), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(ct_send(&g, 200000u + i, 0x10), XDP_TX);
	xdpfwd_slow_counters(g.fwd, &sl);
	fprintf(stderr, "search budget: %u misses in %.0f ms: %llu not searched\n", n,
	        (double)(now_ns() - t0) / 1e6, (unsigned long long)sl.ct_search_limited);
	/* All within one second here: exactly the extra ones; more windows would allow more. */
	if (now_ns() - t0 < 900000000ull)
		assert_int_equal(sl.ct_search_limited, extra);
	assert_int_equal(kctr(&g, LB_CTR_CT_MISS), n);
	fx_close(&g);
	snapshot_free(s);
	config_free(c);
}

/*
 * A flow whose packets move to another CPU is found in the part of the CPU it was on and copied
 * (a hit, not a new flow); a bare SYN is not looked for elsewhere.
 */
static void test_ct_other_cpu(void **state)
{
	struct config *c = tcfg_fixture();
	struct fx g = {0};
	struct lb_snapshot *s = NULL;
	struct xdpfwd_slow sl;
	uint64_t hits, misses;
	int a = sched_getcpu(), b;
	uint8_t fl;

	if (!*state || libbpf_num_possible_cpus() < 2 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip();
	b = a == 0 ? 1 : 0;
	assert_int_equal(ct_small_open(&g, c, &s), 0);
	pin(a);
	assert_int_equal(ct_send(&g, 7, 0x10), XDP_TX);
	assert_int_equal(ct_send(&g, 8, 0x02), XDP_TX);
	pin(b);
	hits = kctr(&g, LB_CTR_CT_HIT);
	misses = kctr(&g, LB_CTR_CT_MISS);
	assert_int_equal(ct_send(&g, 7, 0x10), XDP_TX); /* found on a, copied to b */
	assert_int_equal(ct_send(&g, 7, 0x10), XDP_TX); /* b's own now */
	assert_int_equal(ct_send(&g, 8, 0x02), XDP_TX); /* a SYN: not searched, a new entry */
	xdpfwd_slow_counters(g.fwd, &sl);
	assert_int_equal(sl.ct_other_cpu, 1);
	assert_int_equal(kctr(&g, LB_CTR_CT_HIT) - hits, 2);
	assert_int_equal(kctr(&g, LB_CTR_CT_MISS) - misses, 1);
	assert_true(ct_has(&g, s, 7, &fl) && fl == 0);
	fx_close(&g);
	snapshot_free(s);
	config_free(c);
	pin(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixtures),      cmocka_unit_test(test_random),
	    cmocka_unit_test(test_ct_policy),     cmocka_unit_test(test_ct_other_cpu),
	    cmocka_unit_test(test_ct_source_vip), cmocka_unit_test(test_ct_search_budget),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
