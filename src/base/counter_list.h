/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Counter lists: an X-macro list whose rows are X(ID, "metric_name", "help text") gives a counter
 * enum, its name table and its help table from one place, so the three cannot drift (the worker's
 * in core/counters.h, the checker's in maglevd/health.h, ...).
 */
#ifndef MAGLEV_BASE_COUNTER_LIST_H
#define MAGLEV_BASE_COUNTER_LIST_H

/*
 * For a header: enum tag { one enumerator per row of list, as row makes it, then max }, and the
 * declarations of const char *const tag##_name[max] and tag##_help[max]. row is the list's
 * enumerator maker, e.g. #define HEALTH_CTR_ROW(id, name, help) HEALTH_CTR_##id,
 */
#define COUNTER_LIST_DECLARE(tag, list, row, max)                                                  \
	enum tag { list(row) max };                                                                \
	extern const char *const tag##_name[max];                                                  \
	extern const char *const tag##_help[max]

/* For one .c file: defines the two tables COUNTER_LIST_DECLARE declared, in the list's order. */
#define COUNTER_LIST_DEFINE(tag, list, max)                                                        \
	const char *const tag##_name[max] = {list(COUNTER_LIST_NAME)};                             \
	const char *const tag##_help[max] = {list(COUNTER_LIST_HELP)}

#define COUNTER_LIST_NAME(id, name, help) name,
#define COUNTER_LIST_HELP(id, name, help) help,

#endif
