/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The data plane: one packet I/O backend (AF_XDP or AF_PACKET) on the configured interface,
 * one pinned worker thread per RX queue running the forwarding pipeline over the snapshot the
 * control plane publishes through an RCU pointer, and next hops kept current over netlink.
 */
#ifndef MAGLEV_IO_DATAPLANE_H
#define MAGLEV_IO_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/pipeline.h"
#include "core/snapshot.h"
#include "io/io.h"

#define DATAPLANE_IDLE_MS      100u   /* a worker wakes at least this often to notice stop */
#define DATAPLANE_NH_WAIT_MS   1000u  /* start-up wait for next hops to resolve */
#define DATAPLANE_STALL_MAX_MS 60000u /* longest stall dataplane_worker_stall makes */

struct dataplane;

/*
 * Opens cfg->dataplane.interface with the backend of cfg->dataplane.mode, creates one worker
 * per queue (each with its own connection table from cfg->conntrack) and starts their threads,
 * pinned to CPUs in turn. Workers read *current under rcu_read_lock, once per batch; until the
 * caller publishes a snapshot there (after dataplane_prepare), frames are dropped and counted.
 * The caller's thread must be registered with liburcu; cfg is copied, not kept.
 * err receives one line on failure (no such interface, XDP refused, ...).
 */
int dataplane_start(struct dataplane **out, const struct config *cfg, struct lb_snapshot **current,
                    char *err, size_t errlen);

/*
 * Readies next for publication: fills its next-hop MACs (kernel tables over netlink, or
 * dataplane.nexthop_mac) and keeps them current from now on, and adds its VIPs to the steering
 * filter (the old VIPs stay until dataplane_commit). Call before rcu_assign_pointer.
 */
int dataplane_prepare(struct dataplane *dp, struct lb_snapshot *next);

/*
 * After now_published was assigned to *current and synchronize_rcu returned: removes VIPs it no
 * longer has from the filter and stops updating the next hops of any other snapshot, which the
 * caller may then free.
 */
void dataplane_commit(struct dataplane *dp, const struct lb_snapshot *now_published);

/*
 * Stops and joins the workers and logs backend end-of-run facts (kernel drop statistics, AF_XDP
 * frame accounting). Workers and their counters stay readable until dataplane_stop.
 */
void dataplane_halt(struct dataplane *dp);

/* Halts if needed, detaches from the interface (XDP program included), frees dp; NULL is fine. */
void dataplane_stop(struct dataplane *dp);

uint32_t dataplane_worker_count(const struct dataplane *dp);

/* Worker i's pipeline state (connection table, counters); valid until dataplane_stop. */
struct lb_worker *dataplane_worker(const struct dataplane *dp, uint32_t i);

/* Adds worker i's packet I/O counters (IO_COUNTERS) to out[IO_CTR_MAX]. */
void dataplane_io_counters(const struct dataplane *dp, uint32_t i, uint64_t *out);

/*
 * xdp mode: the kernel forwards too (bpf/xdp_fwd.bpf.c), with its own counters and connection
 * table beside the workers'. The calls below add or look up the kernel's part (nothing when it
 * does not forward). Control thread.
 */
bool dataplane_kernel_forwards(const struct dataplane *dp);

/* Adds the kernel's pipeline counters (LB_CTR_MAX) to ctr. */
void dataplane_kernel_counters(const struct dataplane *dp, uint64_t *ctr);

/* Adds the kernel's counters of backend id to *out. */
void dataplane_kernel_backend_counters(const struct dataplane *dp, uint16_t id,
                                       struct lb_backend_counters *out);

/* lb_explain of k under s with the kernel's connection table: true if the kernel tracks it. */
bool dataplane_kernel_explain(const struct dataplane *dp, const struct lb_snapshot *s,
                              const struct lb_flow_key *k, struct lb_explanation *out);

/*
 * Worker i's loop count: it advances on every pass of the worker's loop, which an idle worker
 * makes at least every DATAPLANE_IDLE_MS, so a count that stands still for longer means the
 * worker is not running its loop (stuck in it, or kept off its CPU). Any thread; 0 for no worker.
 */
uint64_t dataplane_worker_loops(const struct dataplane *dp, uint32_t i);

/* True if frames wait on worker i's receive ring (not after dataplane_halt). Control thread. */
bool dataplane_worker_rx_pending(const struct dataplane *dp, uint32_t i);

/*
 * For tests only (maglevd's test hooks): worker i sleeps ms (1..DATAPLANE_STALL_MAX_MS) at the
 * start of its next pass, taking no frames, as a stuck worker would; a stop ends the sleep.
 * Returns 0, or -EINVAL for no such worker or a bad ms.
 */
int dataplane_worker_stall(struct dataplane *dp, uint32_t i, uint32_t ms);

/* "afxdp zero-copy (native XDP)", "afxdp copy (generic XDP)", "afpacket". */
const char *dataplane_mode(const struct dataplane *dp);

#endif
