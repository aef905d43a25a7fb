/* SPDX-License-Identifier: GPL-2.0-only */
/* Names and help texts of the worker counters, from the LB_COUNTERS list; counter summaries. */
#include "core/counters.h"

#include <stdio.h>

COUNTER_LIST_DEFINE(lb_counter, LB_COUNTERS, LB_CTR_MAX);

void lb_counters_summary(const char *const *names, const uint64_t *v, uint32_t n,
                         void (*line)(void *ctx, const char *text), void *ctx)
{
	char text[LB_COUNTER_LINE_MAX];

	for (uint32_t k = 0; k < n; k++) {
		uint64_t c = lb_counter_read(&v[k]);

		if (!c)
			continue;
		snprintf(text, sizeof(text), "%-*s %llu", (int)LB_COUNTER_COLUMN, names[k],
		         (unsigned long long)c);
		line(ctx, text);
	}
}
