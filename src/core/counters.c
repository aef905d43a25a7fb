/* Names and help texts of the worker counters, from the LB_COUNTERS list; counter summaries. */
#include "core/counters.h"

#include <stdio.h>

const char *const lb_counter_name[LB_CTR_MAX] = {
#define LB_COUNTER_NAME(id, name, help) [LB_CTR_##id] = name,
	LB_COUNTERS(LB_COUNTER_NAME)
#undef LB_COUNTER_NAME
};

const char *const lb_counter_help[LB_CTR_MAX] = {
#define LB_COUNTER_HELP(id, name, help) [LB_CTR_##id] = help,
	LB_COUNTERS(LB_COUNTER_HELP)
#undef LB_COUNTER_HELP
};

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
