/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Forwarding pipeline benchmark: one core, in memory, 64-byte TCP frames in batches of 32 through
 * lb_process_batch. Cases: (a) one tracked flow, (b) 1M tracked flows visited in random order
 * (connection table cache-missing), (c) every packet a new flow that is not a SYN (a full table:
 * insert and eviction), (d) non-VIP pass, (e) a SYN flood, every packet a new SYN, over 1M
 * tracked flows (SYN-only entries fill the free ways and then replace each other), (f) the same
 * with the default insert cap (almost every SYN served untracked). The harness only restores the
 * 14 Ethernet bytes that encapsulation overwrites and, for the multi-flow cases, writes the 6
 * bytes of source address and port that make the flow.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "base/util.h"
#include "bench.h"
#include "core/conntrack.h"
#include "core/pipeline.h"
#include "core/snapshot.h"
#include "tests/unit/tcfg.h"

#define BATCH      32u
#define FLOWS_MANY (1u << 20) /* case (b) */
#define CT_ENTRIES (1u << 21) /* flows per worker table: 1M flows at half load */
#define BACKENDS   16u
#define BENCH_RUNS 3u /* timed runs per case; the median is printed, and the best */
#define TCP_ACK    0x10u
#define TCP_SYN    0x02u

enum mode { M_ONE, M_MANY, M_NEW, M_PASS };

struct bench_case {
	const char *name;
	double target_ns; /* 0 = none */
	uint64_t packets;
	enum mode mode;
	const char *dst;
	uint8_t tcp_flags;
	bool fresh;           /* on a new worker holding the FLOWS_MANY flows of (b) */
	uint32_t max_inserts; /* the new worker's insert cap (0 = unlimited) */
};

/*
 * The thread's CPU time: the machine is shared, and time spent descheduled is not the pipeline's.
 */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An IPv4 TCP frame 198.18.100.1:39936 -> dst:80 with tcp_flags. */
static void frame_build(uint8_t *p, const char *dst, uint8_t tcp_flags)
{
	struct lb_addr s = tcfg_addr("198.18.100.1"), d = tcfg_addr(dst);

	bench_tcp4_frame(p, TCFG_MAC_ME, s.b, 0x9c00, d.b, 80, tcp_flags);
}

struct bench_frames {
	uint8_t mem[BATCH][LB_HEADROOM + BENCH_FRAME_LEN] __attribute__((aligned(64)));
	uint8_t pristine[BENCH_FRAME_LEN];
	struct lb_frame f[BATCH];
	enum lb_verdict v[BATCH];
};

static void frames_init(struct bench_frames *b, const char *dst, uint8_t tcp_flags)
{
	frame_build(b->pristine, dst, tcp_flags);
	for (unsigned i = 0; i < BATCH; i++)
		memcpy(b->mem[i] + LB_HEADROOM, b->pristine, BENCH_FRAME_LEN);
}

/* Flow n's source address and port: 2^32 flows from 10.0.0.0/8-like space, port by n. */
static inline void flow_set(uint8_t *p, uint32_t n)
{
	uint32_t a = htonl(10u << 24 | (n & 0xffffffu));
	uint16_t port = htons((uint16_t)(0x8000u | (n >> 24) << 8 | ((n >> 8 ^ n) & 0xffu)));

	/* One store each, as a NIC's DMA would leave them: no store-forwarding stalls. */
	memcpy(p + 26, &a, 4);
	memcpy(p + 34, &port, 2);
}

static inline void batch_reset(struct bench_frames *b, enum mode m, uint64_t *seq)
{
	for (unsigned i = 0; i < BATCH; i++) {
		uint8_t *p = b->mem[i] + LB_HEADROOM;

		memcpy(p, b->pristine, 14);
		b->f[i] = (struct lb_frame){p, BENCH_FRAME_LEN, LB_HEADROOM};
		if (m == M_MANY) {
			/* A fixed odd multiplier walks all 2^20 flows in a scattered order. */
			flow_set(p, (uint32_t)((*seq)++ * 0x9e3779b1u) & (FLOWS_MANY - 1));
		} else if (m == M_NEW) {
			flow_set(p, (uint32_t)(*seq)++);
		}
	}
}

static double run(struct lb_worker *w, const struct lb_snapshot *s, struct bench_frames *b,
                  enum mode m, uint64_t packets, uint64_t *seq, uint64_t *tx)
{
	uint64_t now = 1000000000ull, t0, t1, sent = 0;

	t0 = mono_ns();
	for (uint64_t done = 0; done < packets; done += BATCH) {
		batch_reset(b, m, seq);
		lb_process_batch(w, s, b->f, b->v, BATCH, now);
		for (unsigned i = 0; i < BATCH; i++)
			sent += b->v[i] == LB_TX;
		now += 1000;
	}
	t1 = mono_ns();
	*tx = sent;
	return (double)(t1 - t0) / (double)packets;
}

static struct lb_worker *worker_new(uint32_t max_inserts)
{
	struct lb_worker_params p = {
	    .ct_entries = CT_ENTRIES,
	    .tcp_timeout = 300,
	    .tcp_fin_timeout = 10,
	    .tcp_syn_timeout = 5,
	    .udp_timeout = 30,
	    .icmp_timeout = 10,
	    .ct_max_inserts = max_inserts,
	};

	memcpy(p.mac, TCFG_MAC_ME, 6);
	return lb_worker_create(&p);
}

static void counters_print(const char *name, const struct lb_worker *w)
{
	const uint64_t *ctr = lb_worker_counters(w);

	printf("counters %s: ct_hit %llu, ct_miss %llu, ct_evicted %llu (established %llu), "
	       "ct_moved %llu, ct_syn_untracked %llu, ct_insert_limited %llu, pass_not_vip %llu\n",
	       name, (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_HIT]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_MISS]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_EVICTED]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_EVICTED_ESTABLISHED]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_MOVED]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_SYN_UNTRACKED]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_CT_INSERT_LIMITED]),
	       (unsigned long long)lb_counter_read(&ctr[LB_CTR_PASS_NOT_VIP]));
}

int main(void)
{
	static struct bench_frames b;
	static const struct bench_case cases[] = {
	    {"(a) one tracked flow", 40, 20000000, M_ONE, "203.0.113.20", TCP_ACK, false, 0},
	    {"(b) 1M tracked flows, random order", 100, 8000000, M_MANY, "203.0.113.20", TCP_ACK,
	     false, 0},
	    {"(c) every packet a new flow, not a SYN", 0, 8000000, M_NEW, "203.0.113.20", TCP_ACK,
	     false, 0},
	    {"(d) not for a VIP (pass)", 0, 20000000, M_PASS, "198.18.50.1", TCP_ACK, false, 0},
	    {"(e) SYN flood over 1M tracked flows", 0, 8000000, M_NEW, "203.0.113.20", TCP_SYN,
	     true, 0},
	    {"(f) (e) with the insert cap (default)", 0, 8000000, M_NEW, "203.0.113.20", TCP_SYN,
	     true, CONFIG_CT_MAX_INSERTS_DEFAULT},
	};
	char names[BACKENDS][32];
	const char *addrs[BACKENDS];
	struct config *c = tcfg_new();
	struct lb_snapshot *s = NULL;
	struct lb_worker *w, *shared;
	const char *only = getenv("BENCH_CASE");
	char err[256];
	uint64_t seq = 0, tx;

	for (unsigned i = 0; i < BACKENDS; i++) {
		snprintf(names[i], sizeof(names[i]), "198.18.2.%u", i + 1);
		addrs[i] = names[i];
	}
	tcfg_dataplane(c);
	tcfg_vip(c, "bench", "203.0.113.20", IPPROTO_TCP, 80, addrs, BACKENDS, 65537);
	if (snapshot_build(c, NULL, NULL, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_pipeline: %s\n", err);
		return 1;
	}
	shared = worker_new(0);
	if (!shared) {
		fprintf(stderr, "bench_pipeline: cannot allocate the worker\n");
		return 1;
	}
	printf("bench_pipeline: one core, %u-byte TCP frames, batches of %u, %u backends, M=65537, "
	       "thread CPU time, median of %u runs\n",
	       BENCH_FRAME_LEN + 4, BATCH, BACKENDS, BENCH_RUNS);
	printf("conntrack: entry %zu B + bucket header %zu B per %u ways = %zu B/flow; %u flows, "
	       "%.1f MiB\n",
	       sizeof(struct ct_entry), sizeof(struct ct_bucket), CT_WAYS,
	       (size_t)CT_BYTES_PER_FLOW, lb_worker_ct_capacity(shared),
	       (double)lb_worker_ct_bytes(shared) / (1 << 20));
	printf("%-42s %12s %10s %8s %10s %10s\n", "case", "packets", "ns/pkt", "Mpps", "best ns",
	       "target");
	for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
		const struct bench_case *bc = &cases[k];
		enum mode m = bc->mode;
		double ns, runs[BENCH_RUNS] = {0};
		uint64_t packets = bc->packets;

		if (only && (unsigned)atoi(only) != k)
			continue;
		if (getenv("BENCH_QUICK")) /* for profilers: a hundredth, or BENCH_QUICK=N an Nth */
			packets /= atoi(getenv("BENCH_QUICK")) > 1
			               ? (uint64_t)atoi(getenv("BENCH_QUICK"))
			               : 100u;
		w = bc->fresh ? worker_new(bc->max_inserts) : shared;
		if (!w) {
			fprintf(stderr, "bench_pipeline: cannot allocate the worker\n");
			return 1;
		}
		if (m == M_MANY || bc->fresh) {
			/* Put the 1M flows in the table first (and warm up). */
			frames_init(&b, "203.0.113.20", TCP_ACK);
			seq = 0;
			run(w, s, &b, M_MANY, FLOWS_MANY, &seq, &tx);
			seq = FLOWS_MANY; /* new flows from here: none of the 1M */
		}
		frames_init(&b, bc->dst, bc->tcp_flags);
		if (m != M_MANY)
			run(w, s, &b, m, packets / 10, &seq, &tx);
		/* Median (and best) of BENCH_RUNS: other helpers share the machine's two cores. */
		for (unsigned r = 0; r < BENCH_RUNS; r++) {
			runs[r] = run(w, s, &b, m, packets, &seq, &tx);
			if (m != M_PASS && tx != packets)
				break;
		}
		bench_sort(runs, BENCH_RUNS);
		ns = runs[BENCH_RUNS / 2];
		if (m != M_PASS && tx != packets) {
			fprintf(stderr, "bench_pipeline: %s: only %llu of %llu frames sent\n",
			        bc->name, (unsigned long long)tx, (unsigned long long)packets);
			return 1;
		}
		if (bc->target_ns > 0)
			printf("%-42s %12llu %10.1f %8.2f %10.1f %7s%.0f\n", bc->name,
			       (unsigned long long)packets, ns, 1000.0 / ns, runs[0],
			       "<= ", bc->target_ns);
		else
			printf("%-42s %12llu %10.1f %8.2f %10.1f %10s\n", bc->name,
			       (unsigned long long)packets, ns, 1000.0 / ns, runs[0], "-");
		if (bc->fresh) {
			counters_print(bc->name, w);
			lb_worker_destroy(w);
		}
	}
	counters_print("(a)-(d)", shared);
	lb_worker_destroy(shared);
	snapshot_free(s);
	config_free(c);
	return 0;
}
