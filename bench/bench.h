/* SPDX-License-Identifier: GPL-2.0-only */
/* Helpers the benchmarks share: a monotonic clock in milliseconds and sorting of run times. */
#ifndef MAGLEV_BENCH_BENCH_H
#define MAGLEV_BENCH_BENCH_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sorts run times v[0..n) ascending (best first). */
static inline int bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline void bench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_dbl_cmp);
}

/* The median of v[0..n), which it sorts. */
static inline double bench_median(double *v, size_t n)
{
	bench_sort(v, n);
	return v[n / 2];
}

#endif
