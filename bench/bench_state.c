/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Benchmark of the state file on the control thread: encoding a snapshot's state, saving it
 * (write, fsync, rename, fsync of the directory) after each publish, reading it back at start,
 * and the first snapshot's build with and without the history (the extra Maglev builds that
 * check the saved digests).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "maglevd/state.h"
#include "tests/unit/tcfg.h"

#define BENCH_RUNS    11u /* timed runs per figure; the median is printed */
#define BENCH_DIR_TPL "/var/tmp/maglev-bench-state-XXXXXX" /* on disk, unlike a tmpfs /tmp */
#define BENCH_ERR_MAX 512u

/* n_vips VIPs of n backends each (IPv6 with v6, else IPv4) at table size m, weight 1. */
static struct config *config_make(uint32_t n_vips, uint32_t n, uint32_t m, bool v6)
{
	struct config *c = tcfg_new();

	for (uint32_t v = 0; v < n_vips; v++) {
		char name[CONFIG_NAME_MAX], addr[LB_ADDR_STRLEN];
		struct config_vip *cv;

		snprintf(name, sizeof(name), "vip-%u", v);
		snprintf(addr, sizeof(addr), "203.0.113.%u", v + 1);
		cv = tcfg_vip(c, name, addr, IPPROTO_TCP, 80, NULL, 0, m);
		for (uint32_t i = 0; i < n; i++) {
			if (v6)
				snprintf(addr, sizeof(addr),
				         "2001:db8:ffff:ffff:ffff:ffff:%04x:%04x", 0xf000 + v,
				         0xf000 + i);
			else
				snprintf(addr, sizeof(addr), "198.%u.%u.%u", 18 + v, i / 250 + 1,
				         i % 250 + 1);
			tcfg_backend_add(cv, addr, 1);
		}
	}
	return c;
}

static struct lb_snapshot *build(const struct config *c, const struct lb_snapshot *prev,
                                 const struct snapshot_state *st)
{
	struct lb_snapshot *s = NULL;
	char err[BENCH_ERR_MAX];

	if (snapshot_build(c, prev, st, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_state: %s\n", err);
		exit(1);
	}
	return s;
}

static int bench_case(const char *what, uint32_t n_vips, uint32_t n, uint32_t m, bool v6)
{
	double enc[BENCH_RUNS], save[BENCH_RUNS], load[BENCH_RUNS], plain[BENCH_RUNS],
	    restore[BENCH_RUNS];
	struct config *c = config_make(n_vips, n, m, v6);
	struct lb_snapshot *s[2], *r;
	struct snapshot_history h;
	struct snapshot_state st = {.history = &h};
	struct state_store *store = NULL;
	char dir[] = BENCH_DIR_TPL, path[STATE_PATH_MAX], err[STATE_ERR_MAX];
	size_t len = 0;
	int ret = -1;

	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_state: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	/* Two snapshots whose states differ (every VIP's first weight), each with a previous one.
	 */
	s[0] = build(c, NULL, NULL);
	for (uint32_t v = 0; v < n_vips; v++)
		c->vips[v].backends[0].weight = 2;
	s[1] = build(c, s[0], NULL);
	for (uint32_t v = 0; v < n_vips; v++)
		c->vips[v].backends[0].weight = 1;
	r = build(c, s[1], NULL);
	snapshot_free(s[0]);
	s[0] = r;
	if (state_store_create(&store, dir) < 0)
		goto out;
	for (uint32_t i = 0; i < BENCH_RUNS; i++) {
		double t0 = bench_now_ms(), t1;
		char *text = state_encode(s[i % 2], &len);

		t1 = bench_now_ms();
		free(text);
		enc[i] = t1 - t0;
		if (state_store_save(store, s[i % 2]) != 1)
			goto out;
		save[i] = bench_now_ms() - t1;
		t0 = bench_now_ms();
		if (state_load(dir, &h, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_state: %s\n", err);
			goto out;
		}
		t1 = bench_now_ms();
		load[i] = t1 - t0;
		r = build(c, NULL, NULL);
		t0 = bench_now_ms();
		plain[i] = t0 - t1;
		snapshot_free(r);
		t0 = bench_now_ms();
		r = build(c, NULL, &st);
		restore[i] = bench_now_ms() - t0;
		if (r->vips[0].prev_origin != LB_PREV_HISTORY) {
			fprintf(stderr, "bench_state: %s: nothing restored\n", what);
			goto out;
		}
		snapshot_free(r);
		state_history_free(&h);
	}
	printf("| %-28s | %9zu | %7.3f | %7.3f | %7.3f | %8.3f | %8.3f |\n", what, len,
	       bench_median(enc, BENCH_RUNS), bench_median(save, BENCH_RUNS),
	       bench_median(load, BENCH_RUNS), bench_median(plain, BENCH_RUNS),
	       bench_median(restore, BENCH_RUNS));
	ret = 0;
out:
	state_store_destroy(store);
	unlink(state_file_path(dir, path));
	rmdir(dir);
	snapshot_free(s[0]);
	snapshot_free(s[1]);
	config_free(c);
	return ret;
}

int main(void)
{
	printf("state file: encode, save (write + fsync + rename + fsync dir, in /var/tmp), load "
	       "(read + decode), first build without and with the history (median of %u, ms)\n",
	       BENCH_RUNS);
	printf("| %-28s | %9s | %7s | %7s | %7s | %8s | %8s |\n", "state", "bytes", "encode",
	       "save", "load", "build", "+restore");
	printf(
	    "|------------------------------|-----------|---------|---------|---------|----------|-"
	    "---------|\n");
	if (bench_case("1 VIP x 1000, M=65537", 1, 1000, 65537, false) < 0 ||
	    bench_case("16 VIPs x 100, M=65537", 16, 100, 65537, false) < 0 ||
	    bench_case("16 VIPs x 4095 IPv6, M=4099", 16, 4095, 4099, true) < 0)
		return 1;
	return 0;
}
