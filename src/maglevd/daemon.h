/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The maglevd daemon in the foreground: load and check the config, build the first snapshot,
 * start the data plane, publish the snapshot over RCU, run the event loop until SIGTERM/SIGINT,
 * stop cleanly. Logs go to stderr (systemd-friendly).
 */
#ifndef MAGLEV_MAGLEVD_DAEMON_H
#define MAGLEV_MAGLEVD_DAEMON_H

#define DAEMON_EXIT_OK      0
#define DAEMON_EXIT_FAILURE 1 /* start-up failure: one message on stderr */

/*
 * Runs maglevd with the config file at config_path until SIGTERM/SIGINT; returns the process
 * exit code. The file is loaded and checked by config_load_daemon, as every reload is.
 */
int daemon_run(const char *config_path);

#endif
