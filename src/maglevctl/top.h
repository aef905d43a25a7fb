/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl top`: the live view of a running maglevd (its pure part is top_view.h). */
#ifndef MAGLEV_MAGLEVCTL_TOP_H
#define MAGLEV_MAGLEVCTL_TOP_H

#include <stddef.h>

/*
 * Runs `maglevctl top [VIP] [-i SECONDS] [--once [--json]] [-s SOCKET | -c CONFIG]` (argv[0]
 * "top"). Live: a frame every interval on the terminal until q (returns 0) or SIGINT/SIGTERM/
 * SIGHUP (the terminal restored, the process then dies of that signal); a maglevd that stops
 * answering shows "connection lost" and is retried every interval. --once: one frame on stdout
 * from two samples an interval apart. Returns 0, COMMAND_USAGE, or a negative errno with one line
 * in err: the first sample failed (no daemon, refused), no terminal, no such VIP (--once).
 */
int top_run(int argc, char **argv, char *err, size_t errlen);

#endif
