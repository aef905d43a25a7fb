/* SPDX-License-Identifier: GPL-2.0-only */
/* Leveled logging to stderr: one line a message, the program's prefix set once, journald levels. */
#ifndef MAGLEV_BASE_LOG_H
#define MAGLEV_BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* Levels are syslog priorities, so journald files each line under the right one. */
enum log_level {
	LOG_LEVEL_ERR = 3,   /* the operation failed: start-up refused, a reload refused, ... */
	LOG_LEVEL_WARN = 4,  /* something is wrong but handled: a backend down, a stale program */
	LOG_LEVEL_INFO = 6,  /* what changed: started, reloaded, health changes (default level) */
	LOG_LEVEL_DEBUG = 7, /* detail for finding a problem: off unless asked for (-v) */
};

#define LOG_LINE_MAX 2048u /* bytes of one line; longer messages are cut */

/*
 * Sets the prefix of every line ("maglevd" gives "maglevd: ") and looks whether stderr is the
 * journal ($JOURNAL_STREAM names stderr's device and inode): then each line starts with its
 * priority as "<N>", which journald strips and files; otherwise lines are exactly "PREFIX: text".
 * Call once, before threads start; without it lines have no prefix.
 */
void log_init(const char *prog);

/* Lines above max are not written (default LOG_LEVEL_INFO). Safe from any thread. */
void log_set_level(enum log_level max);
bool log_enabled(enum log_level level);

/* Writes one line (one write(2), so lines of threads do not mix); a trailing newline is dropped. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_err(...)   log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
