/* Names and help texts of the worker counters, from the LB_COUNTERS list. */
#include "core/counters.h"

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
