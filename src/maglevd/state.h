/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * maglevd's state directory (control.state_dir): the file STATE_FILE_NAME there keeps, per VIP,
 * the current and the previous generation of its Maglev table (what each was built from and its
 * digest), so that a restarted maglevd restores the previous generation and still gives second
 * chances for the change made before it restarted. Written atomically after every snapshot the
 * control plane publishes, read once at start; docs/control.md, "State directory".
 */
#ifndef MAGLEV_MAGLEVD_STATE_H
#define MAGLEV_MAGLEVD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/counter_list.h"
#include "core/snapshot.h"

#define STATE_FILE_NAME      "state.json"
#define STATE_TMP_NAME       "state.json.tmp" /* written, synced, then renamed over the file */
#define STATE_FORMAT_VERSION 1
/*
 * Bytes of a state file, read or written: the largest a snapshot makes, two generations of
 * LB_BACKEND_IDS_MAX backends with the longest IPv6 addresses and weights, takes 8.9 MB
 * (test_state's test_largest_state_fits).
 */
#define STATE_FILE_MAX  (16u << 20)
#define STATE_DIR_MODE  0755 /* a state directory maglevd creates (one level) */
#define STATE_FILE_MODE 0644 /* nothing secret in it: addresses and weights */
#define STATE_ERR_MAX   512u /* bytes of one error line */
#define STATE_PATH_MAX  (CONFIG_PATH_MAX + sizeof("/" STATE_TMP_NAME))
#define STATE_RETRY_MS  10000u /* a state that failed to write is tried again this often */

/* The state writer's counters: X(enum suffix, metric name, help). */
#define STATE_COUNTERS(X)                                                                          \
	X(WRITES, "state_writes", "State files written (after a snapshot that changed them)")      \
	X(UNCHANGED, "state_writes_skipped",                                                       \
	  "Snapshots published whose state file would have been the one already written")          \
	X(WRITE_ERRORS, "state_write_errors",                                                      \
	  "State file writes that failed (logged once per distinct error; serving goes on)")

#define STATE_CTR_ROW(id, name, help) STATE_CTR_##id,
COUNTER_LIST_DECLARE(state_counter, STATE_COUNTERS, STATE_CTR_ROW, STATE_CTR_MAX);
#undef STATE_CTR_ROW

/* dir's state file (dir/STATE_FILE_NAME) into buf[STATE_PATH_MAX]; returns buf. */
const char *state_file_path(const char *dir, char *buf);

/*
 * The state file text of s (one JSON object and a newline): format version, hash seed as 16 hex
 * digits, and per VIP its name, current and previous generation (no "previous" when it has
 * none), each {table_size, digest as 16 hex digits, backends [{address, weight}] in table
 * order}. Equal snapshots give equal text. Returns a malloc'd string and *len, or NULL (out of
 * memory).
 */
char *state_encode(const struct lb_snapshot *s, size_t *len);

/*
 * Reads the history in text[0..len) (state_encode's format) into *h, all of it or nothing: a
 * text that is not JSON, of another format version, or over a limit (CONFIG_VIPS_MAX VIPs,
 * CONFIG_BACKENDS_MAX backends a generation, Maglev table sizes, weights, name lengths) gives
 * -EINVAL and the reason in err, as "where: what 'value'"; -ENOMEM if out of memory. Free *h
 * with state_history_free.
 */
int state_decode(const char *text, size_t len, struct snapshot_history *h, char *err,
                 size_t errlen);

/*
 * Reads dir's state file into *h (state_decode). -ENOENT if there is none (a first start);
 * another negative errno for one that cannot be used (not a regular file, over STATE_FILE_MAX,
 * unreadable, or refused by state_decode), with "PATH: reason" in err. Never blocks on a FIFO.
 */
int state_load(const char *dir, struct snapshot_history *h, char *err, size_t errlen);

/* Frees what state_decode or state_load put in *h and zeroes it; a zeroed *h is fine. */
void state_history_free(struct snapshot_history *h);

struct state_store;

/* A writer for dir's state file (created by state_store_save; nothing is written here). */
int state_store_create(struct state_store **out, const char *dir);

/*
 * Writes s's state (state_encode) to the directory, unless it is the text the last successful
 * write wrote: creates the directory (STATE_DIR_MODE, one level) if missing, writes
 * STATE_TMP_NAME, fsyncs it, renames it over STATE_FILE_NAME and fsyncs the directory, so a
 * crash at any point leaves the old file or the new one. A failure is counted and logged as a
 * warning once per distinct error (a later success says so), and leaves the store pending
 * (state_store_pending) so the caller can try again. Control thread only: it blocks on the
 * disk. Returns 1 written, 0 unchanged, or a negative errno.
 */
int state_store_save(struct state_store *st, const struct lb_snapshot *s);

/* True if the last state_store_save failed: the file on disk is older than the last snapshot. */
bool state_store_pending(const struct state_store *st);

/* The directory it writes to. */
const char *state_store_dir(const struct state_store *st);

/* Counter c; any thread (relaxed atomic read); 0 for a NULL st. */
uint64_t state_counter_get(const struct state_store *st, enum state_counter c);

/* Frees st; NULL is fine. The state file stays. */
void state_store_destroy(struct state_store *st);

#endif
