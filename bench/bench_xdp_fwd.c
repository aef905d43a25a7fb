/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The xdp mode's forwarding program in the kernel, per packet: BPF_PROG_TEST_RUN with repeat=1
 * per call (with repeat > 1 the kernel runs the program again on the frame it already
 * encapsulated), the kernel-reported duration of each call, minus the same measured for a program
 * that only returns XDP_PASS (bpf/xdp_pass.bpf.c: what running any program costs). Cases: (a) one
 * tracked flow, (b) every packet a new flow (SYNs), with the default conntrack.entries (split over
 * the possible CPUs), and (b') again, and (c) packets spread over 1M tracked flows, with a part
 * of CT_PART flows (1M at half load: the table out of cache, where a new flow costs a miss of
 * its bucket's cache line and TLB entry). 64-byte TCP frames to a VIP with 16 backends. Pinned to
 * one CPU: its part of the kernel's table is the one every packet uses, as with RSS. Needs root
 * (skipped otherwise).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "base/util.h"
#include "bench.h"
#include "bpf/xdp_fwd.h"
#include "core/snapshot.h"
#include "io/bpfobj.h"
#include "io/xdpfwd.h"
#include "tests/unit/tcfg.h"

#define CALLS      200000u    /* test runs per timed pass */
#define FLOWS_MANY (1u << 20) /* case (c) */
#define CT_PART    (1u << 21) /* one CPU's part of the table: 1M flows at half load */
#define BACKENDS   16u
#define BENCH_RUNS 3u /* timed passes per case; the median is printed */
#define TCP_ACK    0x10u
#define TCP_SYN    0x02u
#define VIP_ADDR   "203.0.113.10"

/* conntrack.entries giving each CPU's part CT_PART flows. */
static uint32_t ct_entries_big(void)
{
	int n = libbpf_num_possible_cpus();

	return CT_PART * (uint32_t)(n > 0 ? n : 1);
}

struct prog {
	struct bpf_object *obj;
	int fd;
};

/* xdp_fwd loaded with a table of so many entries, a snapshot published into it. */
struct rig {
	struct prog fwd;
	struct xdpfwd *f;
	struct lb_snapshot *s;
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int prog_load(struct prog *p, const char *file, const char *name,
                     const struct config_conntrack *ct)
{
	char path[PATH_MAX];
	struct bpf_program *bp;

	if (bpfobj_path(file, path, sizeof(path)))
		return -ENOENT;
	p->obj = bpf_object__open_file(path, NULL);
	if (!p->obj || (ct && xdpfwd_size(p->obj, ct)) || bpf_object__load(p->obj))
		return -EINVAL;
	bp = bpf_object__find_program_by_name(p->obj, name);
	if (!bp)
		return -ENOENT;
	p->fd = bpf_program__fd(bp);
	return 0;
}

/* Flow n's TCP frame, client 198.18.x.y:(1024 + n % 256) by n -> VIP:80, with flags. */
static void frame_build(uint8_t *p, uint32_t n, uint8_t flags)
{
	struct lb_addr vip = tcfg_addr(VIP_ADDR);
	const uint8_t src[4] = {198, (uint8_t)(18 + (n >> 24 & 1)), (uint8_t)(n >> 16),
	                        (uint8_t)(n >> 8)};

	bench_tcp4_frame(p, TCFG_MAC_ME, src, (uint16_t)(1024 + n % 256), vip.b, 80, flags);
}

/*
 * Mean kernel-reported ns of one run of prog over calls frames, frame i made by make(i). Returns
 * -1 on a failed run.
 */
static double pass_ns(int fd, uint32_t calls, uint8_t *frame, uint32_t (*next)(uint32_t),
                      uint8_t flags)
{
	static uint8_t out[256];
	uint64_t sum = 0;

	for (uint32_t i = 0; i < calls; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = BENCH_FRAME_LEN,
		            .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

		if (next)
			frame_build(frame, next(i), flags);
		if (bpf_prog_test_run_opts(fd, &o))
			return -1;
		sum += o.duration;
	}
	return (double)sum / calls;
}

static uint32_t flow_new(uint32_t i)
{
	static uint32_t seq = FLOWS_MANY; /* past the tracked ones */

	(void)i;
	return seq++;
}

static uint32_t flow_many(uint32_t i)
{
	/* A fixed stride over the tracked flows: every one once per FLOWS_MANY calls. */
	return (uint32_t)(((uint64_t)i * 2654435761u) % FLOWS_MANY);
}

/* Median over BENCH_RUNS passes of fwd minus the same of pass. */
static double case_ns(const struct prog *fwd, const struct prog *pass, uint32_t (*next)(uint32_t),
                      uint8_t flags, double *raw, double *base)
{
	double f[BENCH_RUNS], b[BENCH_RUNS];
	uint8_t frame[BENCH_FRAME_LEN];

	frame_build(frame, 1, flags);
	for (unsigned r = 0; r < BENCH_RUNS; r++) {
		b[r] = pass_ns(pass->fd, CALLS, frame, NULL, flags);
		f[r] = pass_ns(fwd->fd, CALLS, frame, next, flags);
		if (f[r] < 0 || b[r] < 0)
			return -1;
	}
	*raw = bench_median(f, BENCH_RUNS);
	*base = bench_median(b, BENCH_RUNS);
	return *raw - *base;
}

/* A VIP with BACKENDS backends, published into fwd; the steering MAC set. */
static int setup(const struct prog *fwd, uint32_t entries, struct xdpfwd **out,
                 struct lb_snapshot **snap)
{
	struct config *c = tcfg_new();
	const char *addrs[BACKENDS];
	char names[BACKENDS][16], err[256] = "";
	struct xdp_vip_config vc = {0};
	uint32_t zero = 0;
	int rc;

	for (unsigned i = 0; i < BACKENDS; i++) {
		snprintf(names[i], sizeof(names[i]), "198.18.1.%u", 10 + i);
		addrs[i] = names[i];
	}
	tcfg_dataplane(c);
	tcfg_vip(c, "web", VIP_ADDR, 6, 80, addrs, BACKENDS, 0);
	c->conntrack.entries = entries;
	c->conntrack.max_inserts_per_second = 0;
	rc = snapshot_build(c, NULL, NULL, snap, err, sizeof(err));
	if (!rc)
		rc = xdpfwd_open(out, fwd->obj, &c->conntrack, err, sizeof(err));
	if (!rc)
		rc = xdpfwd_publish(*out, *snap, err, sizeof(err));
	memcpy(vc.mac, TCFG_MAC_ME, 6);
	if (!rc &&
	    bpf_map_update_elem(bpf_object__find_map_fd_by_name(fwd->obj, XDP_VIP_MAP_CONFIG),
	                        &zero, &vc, BPF_ANY))
		rc = -errno;
	if (rc)
		fprintf(stderr, "bench_xdp_fwd: setup: %s\n", err);
	config_free(c);
	return rc;
}

static int rig_open(struct rig *r, uint32_t entries)
{
	struct config_conntrack ct = {.entries = entries};

	return prog_load(&r->fwd, XDP_FWD_OBJ_FILE, XDP_FWD_PROG_NAME, &ct) ||
	       setup(&r->fwd, entries, &r->f, &r->s);
}

static void rig_close(struct rig *r)
{
	uint64_t k[LB_CTR_MAX] = {0};

	xdpfwd_counters(r->f, k);
	printf("  kernel counters: %llu frames, %llu hits, %llu misses, %llu evicted, %llu sent\n",
	       (unsigned long long)k[LB_CTR_RX_FRAMES], (unsigned long long)k[LB_CTR_CT_HIT],
	       (unsigned long long)k[LB_CTR_CT_MISS], (unsigned long long)k[LB_CTR_CT_EVICTED],
	       (unsigned long long)k[LB_CTR_TX_GRE_IPV4]);
	xdpfwd_close(r->f);
	snapshot_free(r->s);
	bpf_object__close(r->fwd.obj);
}

int main(void)
{
	struct rig small = {0}, big = {0};
	struct prog pass = {0};
	double raw, base, ns;
	uint8_t frame[BENCH_FRAME_LEN];
	char exe[PATH_MAX], dir[PATH_MAX + 8];
	cpu_set_t one;
	ssize_t n;

	if (geteuid() != 0) {
		printf("bench_xdp_fwd: skipped (needs root for BPF_PROG_TEST_RUN)\n");
		return 0;
	}
	/* The objects beside the benchmark's build tree: build/bench/../bpf. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0 && !getenv("MAGLEV_BPF_DIR")) {
		exe[n] = 0;
		snprintf(dir, sizeof(dir), "%s/../bpf", dirname(exe));
		setenv("MAGLEV_BPF_DIR", dir, 1);
	}
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		fprintf(stderr, "bench_xdp_fwd: cannot pin to a CPU: %s\n", strerror(errno));
	libbpf_set_print(quiet);
	if (prog_load(&pass, "xdp_pass.bpf.o", "xdp_pass", NULL) ||
	    rig_open(&small, CONFIG_CT_ENTRIES_DEFAULT)) {
		fprintf(stderr, "bench_xdp_fwd: cannot load the programs (make all)\n");
		return 1;
	}
	printf(
	    "xdp mode in the kernel: ns per packet, BPF_PROG_TEST_RUN repeat=1, %u calls a pass, "
	    "median of %u, minus an XDP_PASS program measured alike\n",
	    CALLS, BENCH_RUNS);
	printf("%-46s %10s %10s %10s\n", "case", "ns/pkt", "raw", "baseline");
	printf("table: conntrack.entries %u (default), %d CPUs\n", CONFIG_CT_ENTRIES_DEFAULT,
	       libbpf_num_possible_cpus());
	ns = case_ns(&small.fwd, &pass, NULL, TCP_ACK, &raw, &base);
	printf("%-46s %10.1f %10.1f %10.1f\n", "(a) tracked flow", ns, raw, base);
	ns = case_ns(&small.fwd, &pass, flow_new, TCP_SYN, &raw, &base);
	printf("%-46s %10.1f %10.1f %10.1f\n", "(b) every packet a new flow (SYN)", ns, raw, base);
	rig_close(&small);
	if (rig_open(&big, ct_entries_big())) {
		fprintf(stderr, "bench_xdp_fwd: cannot load a table of %u flows a CPU\n", CT_PART);
		return 1;
	}
	printf("table: %u flows a CPU\n", CT_PART);
	ns = case_ns(&big.fwd, &pass, flow_new, TCP_SYN, &raw, &base);
	printf("%-46s %10.1f %10.1f %10.1f\n", "(b') every packet a new flow (SYN)", ns, raw, base);
	/* Track 1M flows first (one run each), then spread the timed packets over them. */
	for (uint32_t i = 0; i < FLOWS_MANY; i++) {
		frame_build(frame, i, TCP_ACK);
		if (pass_ns(big.fwd.fd, 1, frame, NULL, 0) < 0)
			return 1;
	}
	ns = case_ns(&big.fwd, &pass, flow_many, TCP_ACK, &raw, &base);
	printf("%-46s %10.1f %10.1f %10.1f\n", "(c) 1M tracked flows", ns, raw, base);
	rig_close(&big);
	bpf_object__close(pass.obj);
	return 0;
}
