/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers the benchmarks share: a monotonic clock in milliseconds, sorting of run times, the
 * 64-byte TCP frame they send.
 */
#ifndef MAGLEV_BENCH_BENCH_H
#define MAGLEV_BENCH_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_FRAME_LEN 60u /* 64 bytes on the wire with the FCS */

/*
 * A BENCH_FRAME_LEN-byte Ethernet / IPv4 (DF) / TCP frame to MAC to, src:sport -> dst:dport
 * (ports host order) with TCP flags. Checksums are left 0: nothing on the packet path checks them.
 */
static inline void bench_tcp4_frame(uint8_t *p, const uint8_t *to, const uint8_t src[4],
                                    uint16_t sport, const uint8_t dst[4], uint16_t dport,
                                    uint8_t flags)
{
	memset(p, 0, BENCH_FRAME_LEN);
	memcpy(p, to, 6);
	memcpy(p + 6, "\x02\x00\x00\x00\x00\xaa", 6);
	p[12] = 0x08; /* IPv4 */
	p[14] = 0x45; /* version 4, 20-byte header */
	p[17] = 40;   /* total length: IP + TCP */
	p[20] = 0x40; /* DF */
	p[22] = 64;   /* TTL */
	p[23] = 6;    /* TCP */
	memcpy(p + 26, src, 4);
	memcpy(p + 30, dst, 4);
	p[34] = (uint8_t)(sport >> 8);
	p[35] = (uint8_t)sport;
	p[36] = (uint8_t)(dport >> 8);
	p[37] = (uint8_t)dport;
	p[46] = 5 << 4; /* data offset: 20 bytes */
	p[47] = flags;
}

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
