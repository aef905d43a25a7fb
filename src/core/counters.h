/*
 * Worker counters, defined once: the enum, the metric name and its help text come from the one
 * X-macro list below so they cannot drift. Every drop and every decision has its own counter.
 * Each worker owns its array and increments it without atomics; readers (control thread) load
 * entries with relaxed atomic loads and sum over workers.
 */
#ifndef MAGLEV_CORE_COUNTERS_H
#define MAGLEV_CORE_COUNTERS_H

#include <stdint.h>

/* X(ENUM_SUFFIX, "metric_name", "help text") */
#define LB_COUNTERS(X)                                                                             \
	X(RX_FRAMES, "rx_frames", "Frames handed to the pipeline")                                 \
	X(PASS_NOT_VIP, "pass_not_vip", "Frames not for a VIP, passed to the kernel")

enum lb_counter {
#define LB_COUNTER_ENUM(id, name, help) LB_CTR_##id,
	LB_COUNTERS(LB_COUNTER_ENUM)
#undef LB_COUNTER_ENUM
	LB_CTR_MAX
};

extern const char *const lb_counter_name[LB_CTR_MAX];
extern const char *const lb_counter_help[LB_CTR_MAX];

#endif
