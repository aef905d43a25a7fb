/* SPDX-License-Identifier: GPL-2.0-only */
/* Time: the one monotonic clock, and the unit constants every layer counts in. */
#ifndef MAGLEV_BASE_CLOCK_H
#define MAGLEV_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC  1000000000ull
#define NSEC_PER_MSEC 1000000ull
#define NSEC_PER_USEC 1000ull
#define USEC_PER_SEC  1000000ull
#define MSEC_PER_SEC  1000ull

/* CLOCK_MONOTONIC in nanoseconds: never goes back, unaffected by date changes. */
static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t clock_now_ms(void)
{
	return clock_now_ns() / NSEC_PER_MSEC;
}

/* CLOCK_MONOTONIC in milliseconds with a fraction, for durations that are reported. */
static inline double clock_now_ms_f(void)
{
	return (double)clock_now_ns() / (double)NSEC_PER_MSEC;
}

/* A struct timespec of ms milliseconds, for nanosleep and timers. */
static inline struct timespec clock_ms_timespec(uint64_t ms)
{
	return (struct timespec){.tv_sec = (time_t)(ms / MSEC_PER_SEC),
	                         .tv_nsec = (long)(ms % MSEC_PER_SEC * NSEC_PER_MSEC)};
}

#endif
