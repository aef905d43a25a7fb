/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers every layer uses: array length, and nothing that needs a library. */
#ifndef MAGLEV_BASE_UTIL_H
#define MAGLEV_BASE_UTIL_H

/* Elements of an array (not a pointer: the division would be silently wrong). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
