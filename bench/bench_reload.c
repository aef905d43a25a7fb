/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Benchmark of a reload off the packet path: parse the config, build the snapshot on top of the
 * previous one, publish it over RCU with worker-like readers running, free the old one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include "bench.h"
#include "control/config_yaml.h"
#include "core/snapshot.h"

#define BENCH_BACKENDS        1000u  /* N backends of the VIP */
#define BENCH_RUNS            11u    /* timed reloads per row; the median is printed */
#define BENCH_READERS         1u     /* reader threads standing in for packet workers */
#define BENCH_READER_PAUSE_NS 20000L /* a reader's pause between batches (an idle poll) */
#define BENCH_YAML_MAX        (BENCH_BACKENDS * 64u + 1024u) /* bytes of the generated config */
#define BENCH_ERR_MAX         512u                           /* bytes of an error message */

static struct lb_snapshot *current; /* RCU pointer the readers follow */
static atomic_bool readers_stop;

/* Reads the snapshot in short critical sections, as a worker does once per batch. */
static void *reader_run(void *arg)
{
	const struct timespec pause = {.tv_nsec = BENCH_READER_PAUSE_NS};
	volatile uint64_t sink = 0;

	(void)arg;
	rcu_register_thread();
	while (!atomic_load(&readers_stop)) {
		const struct lb_snapshot *s;

		rcu_read_lock();
		s = rcu_dereference(current);
		if (s)
			sink += s->generation;
		rcu_read_unlock();
		nanosleep(&pause, NULL);
	}
	rcu_unregister_thread();
	return NULL;
}

/*
 * One VIP of n backends (all but number skip) at table size m into buf; returns the length, or 0
 * if it does not fit in cap.
 */
static size_t yaml_make(char *buf, size_t cap, uint32_t m, uint32_t n, uint32_t skip)
{
	size_t off = (size_t)snprintf(buf, cap,
	                              "cluster: { table_size: %u }\n"
	                              "vips:\n"
	                              "  - name: web\n"
	                              "    address: 203.0.113.10\n"
	                              "    protocol: tcp\n"
	                              "    port: 80\n"
	                              "    backends:\n",
	                              m);

	for (uint32_t i = 0; i < n && off < cap; i++) {
		if (i == skip)
			continue;
		off += (size_t)snprintf(buf + off, cap - off,
		                        "      - { address: 198.18.%u.%u, weight: 1 }\n",
		                        (unsigned)(i / 250u + 1u), (unsigned)(i % 250u + 1u));
	}
	return off < cap ? off : 0;
}

struct row {
	double parse, build, publish, total;
};

/* One reload: text to published snapshot, old freed. */
static int reload_once(const char *text, size_t len, const struct snapshot_state *st, struct row *r)
{
	char err[BENCH_ERR_MAX];
	struct config *cfg;
	struct lb_snapshot *next, *old;
	double t0 = bench_now_ms(), t1, t2, t3;

	if (config_parse(text, len, "bench.yaml", &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_reload: %s\n", err);
		return -1;
	}
	t1 = bench_now_ms();
	if (snapshot_build(cfg, current, st, &next, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_reload: %s\n", err);
		config_free(cfg);
		return -1;
	}
	t2 = bench_now_ms();
	old = current;
	rcu_assign_pointer(current, next);
	synchronize_rcu();
	snapshot_free(old);
	config_free(cfg);
	t3 = bench_now_ms();
	r->parse = t1 - t0;
	r->build = t2 - t1;
	r->publish = t3 - t2;
	r->total = t3 - t0;
	return 0;
}

static int bench_case(const char *what, uint32_t m, uint32_t skip, bool reweight)
{
	char *a = malloc(BENCH_YAML_MAX), *b = malloc(BENCH_YAML_MAX);
	double parse[BENCH_RUNS], build[BENCH_RUNS], publish[BENCH_RUNS], total[BENCH_RUNS];
	struct snapshot_override ov = {.vip = "web", .weight = 5};
	struct snapshot_state st = {.v = &ov, .n = 1};
	size_t la, lb;
	struct row r;
	int ret = 0;

	lb_addr_parse("198.18.1.1", &ov.backend);
	if (!a || !b) {
		fprintf(stderr, "bench_reload: out of memory\n");
		ret = -1;
		goto out;
	}
	la = yaml_make(a, BENCH_YAML_MAX, m, BENCH_BACKENDS, UINT32_MAX);
	lb = yaml_make(b, BENCH_YAML_MAX, m, BENCH_BACKENDS, skip);
	if (!la || !lb) {
		fprintf(stderr, "bench_reload: config longer than %u bytes\n", BENCH_YAML_MAX);
		ret = -1;
		goto out;
	}
	/* The first load has no previous snapshot and is not timed. */
	if (reload_once(a, la, NULL, &r) < 0) {
		ret = -1;
		goto out;
	}
	for (uint32_t i = 0; i < BENCH_RUNS; i++) {
		/* Alternate between the two configs so every reload really changes the table. */
		bool odd = i % 2;

		if (reload_once(odd ? a : b, odd ? la : lb, reweight && !odd ? &st : NULL, &r) <
		    0) {
			ret = -1;
			goto out;
		}
		parse[i] = r.parse;
		build[i] = r.build;
		publish[i] = r.publish;
		total[i] = r.total;
	}
	printf("| %-30s | %7u | %5u | %8.3f | %8.3f | %8.3f | %8.3f |\n", what, m, BENCH_BACKENDS,
	       bench_median(parse, BENCH_RUNS), bench_median(build, BENCH_RUNS),
	       bench_median(publish, BENCH_RUNS), bench_median(total, BENCH_RUNS));
out:
	free(a);
	free(b);
	return ret;
}

int main(void)
{
	pthread_t readers[BENCH_READERS];
	uint32_t started = 0;
	int ret = 1;

	rcu_register_thread();
	for (; started < BENCH_READERS; started++) {
		int e = pthread_create(&readers[started], NULL, reader_run, NULL);

		if (e) {
			fprintf(stderr, "bench_reload: cannot start a reader: %s\n", strerror(e));
			goto out;
		}
	}
	printf("reload: parse config, snapshot_build on the previous snapshot, RCU publish with %u "
	       "readers (median of %u, ms)\n",
	       BENCH_READERS, BENCH_RUNS);
	printf("| %-30s | %7s | %5s | %8s | %8s | %8s | %8s |\n", "change", "M", "N", "parse",
	       "build", "publish", "total");
	printf(
	    "|--------------------------------|---------|-------|----------|----------|----------|"
	    "----------|\n");
	if (bench_case("remove/add 1 backend", 65537u, 500u, false) < 0 ||
	    bench_case("remove 1 + re-weight 1", 65537u, 500u, true) < 0 ||
	    bench_case("remove/add 1 backend", 655373u, 500u, false) < 0)
		goto out;
	ret = 0;
out:
	atomic_store(&readers_stop, true);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(readers[i], NULL);
	snapshot_free(current);
	rcu_unregister_thread();
	return ret;
}
