/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection table benchmark, on the table itself (ct_find, ct_insert): the share of live flows
 * that inserting distinct flows evicts at 50..100% load of a 2M-flow table, in this layout and in
 * the one-bucket 8-way layout it replaced (modelled: a new flow evicts a live one when its bucket
 * already holds 8, which is what that layout did when nothing had expired); a SYN flood of 10M
 * spoofed flows over 1M (and 1.8M) established ones; new established flows into a full table.
 * Times are thread CPU time per operation without the pipeline's batching and prefetching, so
 * they are latency bound: bench_pipeline has the packet path's figures.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "core/conntrack.h"
#include "core/pkt.h"

#define ENTRIES     (1u << 21) /* flows the table holds */
#define SEED        0x5eedull  /* flow hash seed */
#define SYN_FLOOD   10000000u  /* distinct spoofed SYN-only flows */
#define FLOOD_SECS  2u         /* the flood lasts this long (5 Mpps): no SYN-only entry expires */
#define FULL_EXTRA  (1u << 20) /* new established flows into the full table */
#define NS_PER_SEC  1000000000ull
#define T0_NS       (1000 * NS_PER_SEC) /* any start time: the clock is the benchmark's */
#define FLOOD_FIRST (1u << 24)          /* flow numbers of the flood start here */

static const struct ct_params PARAMS = {
    .tcp = 300, .tcp_fin = 10, .tcp_syn = 5, .udp = 30, .other = 10, .max_inserts = 0};

static const unsigned load_pct[] = {50, 75, 90, 95, 100};
static const unsigned flood_established_pct[] = {50, 90};

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Distinct TCP flow n (n < 2^26): source 10.0.0.0/8 by n % 2^24, source port by n / 2^24. */
static struct lb_flow_key flow_n(uint32_t n)
{
	uint8_t src[4] = {10, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	static const uint8_t dst[4] = {203, 0, 113, 20};
	struct lb_flow_key k;

	lb_flow_key_fill(&k, LB_FLOW_V4, src, dst, IPPROTO_TCP, (uint16_t)(1024 + (n >> 24)), 80);
	return k;
}

static struct ct_table *table_new(void)
{
	struct ct_table *t = ct_create(ENTRIES, &PARAMS);

	if (!t) {
		fprintf(stderr, "bench_conntrack: cannot allocate a table of %u flows\n", ENTRIES);
		exit(1);
	}
	return t;
}

/*
 * Flows living in their second bucket, and buckets whose away count is not 0 (lookups there that
 * miss in the first bucket read a second header).
 */
static void layout_census(const struct ct_table *t, uint64_t *second, uint64_t *away)
{
	*second = *away = 0;
	for (uint32_t b = 0; b < t->n_buckets; b++) {
		*second += (uint64_t)__builtin_popcount(t->buckets[b].second);
		*away += t->buckets[b].away != 0;
	}
}

/*
 * Inserts distinct established flows at one tick into an empty table and into the model of the old
 * layout, and prints at each load the share of inserts that evicted a live flow so far.
 */
static void bench_load(void)
{
	struct ct_table *t = table_new();
	uint8_t *old = calloc(t->n_buckets, 1);
	uint32_t now = ct_tick(T0_NS), n = 0;
	uint64_t evicted = 0, evicted_old = 0, moved = 0, ns = 0;

	if (!old) {
		fprintf(stderr, "bench_conntrack: out of memory\n");
		exit(1);
	}
	printf(
	    "live flows evicted while inserting distinct flows, %u-flow table (%u buckets of %u)\n",
	    ct_capacity(t), t->n_buckets, CT_WAYS);
	printf("%-6s %14s %14s %14s %12s %13s %12s\n", "load", "old layout", "this layout",
	       "moved/1000", "in 2nd bkt", "bkts away>0", "ns/insert");
	for (unsigned l = 0; l < ARRAY_SIZE(load_pct); l++) {
		uint32_t upto = (uint32_t)((uint64_t)ct_capacity(t) * load_pct[l] / 100);
		uint64_t second, away, t0 = cpu_ns();

		for (; n < upto; n++) {
			struct lb_flow_key k = flow_n(n);
			uint64_t h = lb_flow_hash(&k, SEED);
			struct ct_insert_result r;
			uint32_t b = ct_bucket_of(t, h);

			ct_insert(t, &k, h, n, 0, PKT_TCP_ACK, now, &r);
			evicted += r.evicted != CT_EVICT_NONE;
			moved += r.moved;
			if (old[b] == CT_WAYS)
				evicted_old++;
			else
				old[b]++;
		}
		ns += cpu_ns() - t0;
		layout_census(t, &second, &away);
		printf("%5u%% %13.4f%% %13.4f%% %14.2f %11.2f%% %12.2f%% %12.1f\n", load_pct[l],
		       100.0 * (double)evicted_old / n, 100.0 * (double)evicted / n,
		       1000.0 * (double)moved / n, 100.0 * (double)second / n,
		       100.0 * (double)away / t->n_buckets, (double)ns / n);
	}
	free(old);
	ct_destroy(t);
}

/* Inserts flows first..first+count-1 at tick now with tcp_flags; counts what happened. */
struct fill_result {
	uint64_t inserted, refused, evicted_syn, evicted_established, moved, ns;
};

static struct fill_result fill(struct ct_table *t, uint32_t first, uint32_t count,
                               uint8_t tcp_flags, uint64_t start_ns, uint64_t span_ns)
{
	struct fill_result f = {0};
	uint64_t t0 = cpu_ns();

	for (uint32_t i = 0; i < count; i++) {
		struct lb_flow_key k = flow_n(first + i);
		uint64_t h = lb_flow_hash(&k, SEED);
		uint32_t now = ct_tick(start_ns + span_ns * i / count);
		struct ct_insert_result r;

		if (ct_find(t, &k, h, now) >= 0)
			continue;
		if (ct_insert(t, &k, h, first + i, 0, tcp_flags, now, &r) < 0) {
			f.refused++;
			continue;
		}
		f.inserted++;
		f.moved += r.moved;
		f.evicted_syn += r.evicted == CT_EVICT_SYN_ONLY;
		f.evicted_established += r.evicted == CT_EVICT_ESTABLISHED;
	}
	f.ns = cpu_ns() - t0;
	return f;
}

/* Established flows 0..n-1 still found at tick now. */
static uint32_t count_found(const struct ct_table *t, uint32_t n, uint32_t now)
{
	uint32_t found = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct lb_flow_key k = flow_n(i);

		found += ct_find(t, &k, lb_flow_hash(&k, SEED), now) >= 0;
	}
	return found;
}

/* Established flows, then a SYN flood over FLOOD_SECS: what the flood evicted and refused. */
static void bench_flood(void)
{
	printf("\nSYN flood of %u spoofed flows over %u s, %u-flow table\n", SYN_FLOOD, FLOOD_SECS,
	       ENTRIES);
	printf("%-12s %12s %12s %12s %12s %12s %12s %10s\n", "established", "kept", "est lost",
	       "SYN inserted", "SYN evicted", "SYN refused", "moved", "ns/SYN");
	for (unsigned l = 0; l < ARRAY_SIZE(flood_established_pct); l++) {
		struct ct_table *t = table_new();
		uint32_t n_est = (uint32_t)((uint64_t)ENTRIES * flood_established_pct[l] / 100);
		struct fill_result e = fill(t, 0, n_est, PKT_TCP_ACK, T0_NS, 0), s;
		uint32_t before = count_found(t, n_est, ct_tick(T0_NS)), after;

		s = fill(t, FLOOD_FIRST, SYN_FLOOD, PKT_TCP_SYN, T0_NS + NS_PER_SEC,
		         FLOOD_SECS * NS_PER_SEC);
		after = count_found(t, n_est, ct_tick(T0_NS + (1 + FLOOD_SECS) * NS_PER_SEC));
		printf("%9u %2u%% %12u %12u %12llu %12llu %12llu %12llu %10.1f\n", n_est,
		       flood_established_pct[l], after, before - after,
		       (unsigned long long)s.inserted, (unsigned long long)s.evicted_syn,
		       (unsigned long long)s.refused, (unsigned long long)s.moved,
		       (double)s.ns / SYN_FLOOD);
		if (e.evicted_established || s.evicted_established)
			printf("  (established flows evicted: %llu while filling, %llu by the "
			       "flood)\n",
			       (unsigned long long)e.evicted_established,
			       (unsigned long long)s.evicted_established);
		ct_destroy(t);
	}
}

/* A table full of live established flows takes FULL_EXTRA more: evictions and insert cost. */
static void bench_full(void)
{
	struct ct_table *t = table_new();
	struct fill_result a = fill(t, 0, ENTRIES, PKT_TCP_ACK, T0_NS, 0);
	struct fill_result b = fill(t, ENTRIES, FULL_EXTRA, PKT_TCP_ACK, T0_NS, 0);

	printf("\nfull table: %u established flows into %u, then %u more\n", ENTRIES, ENTRIES,
	       FULL_EXTRA);
	printf("%-22s %14s %12s %10s\n", "", "evicted", "moved", "ns/flow");
	printf("%-22s %13.4f%% %12llu %10.1f\n", "filling to 100%",
	       100.0 * (double)a.evicted_established / ENTRIES, (unsigned long long)a.moved,
	       (double)a.ns / ENTRIES);
	printf("%-22s %13.4f%% %12llu %10.1f\n", "into the full table",
	       100.0 * (double)b.evicted_established / FULL_EXTRA, (unsigned long long)b.moved,
	       (double)b.ns / FULL_EXTRA);
	ct_destroy(t);
}

int main(void)
{
	printf(
	    "bench_conntrack: %zu B/flow, %u ways a bucket, two buckets a flow, search of at most "
	    "%u headers and %u moves\n\n",
	    (size_t)CT_BYTES_PER_FLOW, CT_WAYS, CT_CUCKOO_PROBES, CT_CUCKOO_DEPTH);
	bench_load();
	bench_flood();
	bench_full();
	return 0;
}
