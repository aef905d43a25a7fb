/* SPDX-License-Identifier: GPL-2.0-only */
/* Leveled logging: the line is formatted in full, then written with one write(2). */
#include "base/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX_MAX 32u /* bytes of the program prefix, ": " included */

static char log_prefix[LOG_PREFIX_MAX];
static bool log_journal;
static atomic_int log_max = LOG_LEVEL_INFO;

/* True if $JOURNAL_STREAM ("DEV:INODE") is stderr: systemd connected it to journald. */
static bool log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_init(const char *prog)
{
	snprintf(log_prefix, sizeof(log_prefix), "%s%s", prog ? prog : "", prog ? ": " : "");
	log_journal = log_stderr_is_journal();
}

void log_set_level(enum log_level max)
{
	atomic_store_explicit(&log_max, max, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_max, memory_order_relaxed);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t n = 0;
	int r;

	if (!log_enabled(level))
		return;
	if (log_journal)
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", log_prefix);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n = n + (size_t)r < sizeof(line) ? n + (size_t)r : sizeof(line) - 1;
	if (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	/* Nothing to do if stderr is gone; the line is lost, as fprintf's would be. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
