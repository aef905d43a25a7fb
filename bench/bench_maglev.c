/* SPDX-License-Identifier: GPL-2.0-only */
/* Benchmark of the Maglev table: build time, excess disruption on removal, a reference digest. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "bench.h"
#include "core/maglev.h"

#define BENCH_SEED     0x5eedull
#define BENCH_BACKENDS 1000u /* N, as in the paper's figure */
#define BENCH_RUNS     15u   /* timed builds per size; the median is printed */
#define BENCH_TRIALS   5u    /* random removal sets per disruption row; the mean is printed */

struct bench_size {
	uint32_t m;
	double paper_ms; /* NSDI 2016, section 5.3 */
	double goal_ms;  /* mission.md */
};

static const struct bench_size sizes[] = {
    {65537u, 1.8, 1.0},
    {655373u, 22.9, 12.0},
};

static const uint32_t removed_pct[] = {1, 5, 10};

static uint64_t rng_state = 0xbe7c4ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Backends 198.18.0.0 + i (4-byte lb_addr keys), weight 1. */
static void backends_make(uint8_t (*keys)[4], struct maglev_backend *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		keys[i][0] = 198;
		keys[i][1] = (uint8_t)(18 + (i >> 16));
		keys[i][2] = (uint8_t)(i >> 8);
		keys[i][3] = (uint8_t)i;
		b[i] = (struct maglev_backend){keys[i], 4, 1};
	}
}

static int bench_build(const struct bench_size *sz, const struct maglev_backend *b, uint16_t *t,
                       unsigned flags)
{
	double ms[BENCH_RUNS];

	for (uint32_t r = 0; r < BENCH_RUNS; r++) {
		double t0 = bench_now_ms();
		int err = maglev_build_flags(t, sz->m, b, BENCH_BACKENDS, BENCH_SEED, flags);

		ms[r] = bench_now_ms() - t0;
		if (err)
			return err;
	}
	bench_sort(ms, BENCH_RUNS);
	printf("| build%s, N=%u, M=%u | %.3f ms | %.3f ms | %.1f ms | %.1f ms | %s |\n",
	       flags & MAGLEV_BUILD_SCALAR ? " (scalar only)" : "", BENCH_BACKENDS, sz->m,
	       ms[BENCH_RUNS / 2], ms[0], sz->paper_ms, sz->goal_ms,
	       ms[BENCH_RUNS / 2] <= sz->goal_ms ? "met" : "missed");
	return 0;
}

/* Mean excess disruption (% of M) when pct% of the backends are removed at random. */
static int bench_removal(uint32_t m, uint32_t pct, const struct maglev_backend *b, uint16_t *t0,
                         uint16_t *t1, double *excess_out, double *changed_out)
{
	uint32_t removed = BENCH_BACKENDS * pct / 100;
	struct maglev_backend rest[BENCH_BACKENDS];
	uint16_t rest_to_b[BENCH_BACKENDS];
	double excess_sum = 0, changed_sum = 0;
	int err;

	err = maglev_build(t0, m, b, BENCH_BACKENDS, BENCH_SEED);
	if (err)
		return err;
	for (uint32_t trial = 0; trial < BENCH_TRIALS; trial++) {
		bool gone[BENCH_BACKENDS] = {false};
		uint32_t n_rest = 0, excess = 0, changed = 0;

		for (uint32_t r = 0; r < removed;) {
			uint32_t i = (uint32_t)(rng_next() % BENCH_BACKENDS);

			if (!gone[i]) {
				gone[i] = true;
				r++;
			}
		}
		for (uint32_t i = 0; i < BENCH_BACKENDS; i++)
			if (!gone[i]) {
				rest_to_b[n_rest] = (uint16_t)i;
				rest[n_rest++] = b[i];
			}
		err = maglev_build(t1, m, rest, n_rest, BENCH_SEED);
		if (err)
			return err;
		for (uint32_t s = 0; s < m; s++) {
			if (t0[s] == rest_to_b[t1[s]])
				continue;
			changed++;
			if (!gone[t0[s]])
				excess++;
		}
		excess_sum += 100.0 * excess / m;
		changed_sum += 100.0 * changed / m;
	}
	*excess_out = excess_sum / BENCH_TRIALS;
	*changed_out = changed_sum / BENCH_TRIALS;
	return 0;
}

int main(void)
{
	uint8_t keys[BENCH_BACKENDS][4];
	struct maglev_backend b[BENCH_BACKENDS];
	uint16_t *t0 = malloc(MAGLEV_SIZE_MAX * sizeof(*t0));
	uint16_t *t1 = malloc(MAGLEV_SIZE_MAX * sizeof(*t1));
	int err = -ENOMEM;

	if (!t0 || !t1)
		goto out;
	backends_make(keys, b, BENCH_BACKENDS);

	printf("\nMaglev table build (median of %u runs; paper: NSDI 2016 section 5.3)\n\n",
	       BENCH_RUNS);
	printf(
	    "| what | median | best | paper | goal | |\n| --- | --- | --- | --- | --- | --- |\n");
	for (unsigned flags = 0; flags <= MAGLEV_BUILD_SCALAR; flags++)
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			err = bench_build(&sizes[i], b, t0, flags);
			if (err)
				goto out;
		}

	printf(
	    "\nExcess disruption: slots that moved although their old backend survived, %% of M\n"
	    "(mean of %u random removal sets of N=%u; goal <= 2.5%% for 1%% at M=65537)\n\n",
	    BENCH_TRIALS, BENCH_BACKENDS);
	printf("| removed | M | changed | excess |\n| --- | --- | --- | --- |\n");
	for (size_t p = 0; p < ARRAY_SIZE(removed_pct); p++)
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			double excess, changed;

			err =
			    bench_removal(sizes[i].m, removed_pct[p], b, t0, t1, &excess, &changed);
			if (err)
				goto out;
			printf("| %u%% (%u) | %u | %.3f%% | %.3f%% |\n", removed_pct[p],
			       BENCH_BACKENDS * removed_pct[p] / 100, sizes[i].m, changed, excess);
		}

	err = maglev_build(t0, MAGLEV_SIZE_DEFAULT, b, BENCH_BACKENDS, BENCH_SEED);
	if (err)
		goto out;
	printf("\nDigest of the fixed config (198.18.0.0 .. +%u weight 1, seed 0x%llx, M=%u): "
	       "%016llx\n\n",
	       BENCH_BACKENDS - 1, (unsigned long long)BENCH_SEED, MAGLEV_SIZE_DEFAULT,
	       (unsigned long long)maglev_digest(t0, MAGLEV_SIZE_DEFAULT, b, BENCH_BACKENDS));
out:
	free(t0);
	free(t1);
	if (err)
		fprintf(stderr, "bench_maglev: %s\n", strerror(-err));
	return err ? 1 : 0;
}
