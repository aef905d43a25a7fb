/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The forwarding pipeline: one received Ethernet frame in, a verdict and the frame to send out.
 * Pure code: the caller owns the buffers, the snapshot and the clock. docs/pipeline.md describes
 * every policy (flow hash, fragments, MTU, ICMP, re-target, connection table).
 */
#ifndef MAGLEV_CORE_PIPELINE_H
#define MAGLEV_CORE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/counters.h"
#include "core/flow.h"
#include "core/snapshot.h"

/*
 * A frame: data points at the Ethernet header, len bytes; headroom writable bytes precede data.
 * lb_process may move data into the headroom (encapsulation, ICMP errors) or forward (a stripped
 * 802.1Q tag), and change len; it never writes beyond data + len of the frame it was given.
 */
struct lb_frame {
	uint8_t *data;
	uint32_t len;
	uint32_t headroom;
};

#define LB_HEADROOM  128u /* headroom callers must provide: 14 + 40 + 4 + 48 needed at most */
#define LB_BATCH_MAX 64u  /* frames lb_process_batch handles per pass (larger n is chunked) */

enum lb_verdict {
	LB_DROP, /* counted; free the frame */
	LB_PASS, /* not ours: give it to the kernel unchanged */
	LB_TX, /* send f->data, f->len (may have moved into the headroom) out of the same interface
	        */
};

/*
 * A connection table besides the worker's own, which its lookups fall back on (xdp mode: the
 * kernel's, which has the flows the XDP program forwards, so that what comes to the worker of
 * such a flow, an ICMP error about it say, goes where the flow goes): true with the bref and
 * secondary of flow k's (of flow hash hash) entry if that table has it live at tick now. Called
 * from the worker's thread, for a tracked packet its own table does not have.
 */
typedef bool (*lb_ct_fallback_fn)(void *ctx, const struct lb_flow_key *k, uint64_t hash,
                                  uint32_t now, uint32_t *bref, uint32_t *secondary);

struct lb_worker_params {
	uint32_t id;
	uint32_t ct_entries; /* flows the connection table holds (rounded up to whole buckets) */
	uint32_t tcp_timeout, tcp_fin_timeout, tcp_syn_timeout; /* seconds */
	uint32_t udp_timeout, icmp_timeout;                     /* seconds */
	uint32_t ct_max_inserts; /* new connection-table entries a second; 0 = unlimited */
	uint8_t mac[6]; /* our interface MAC: source of what we send, destination of what we take */
	lb_ct_fallback_fn ct_fallback; /* NULL: none */
	void *ct_fallback_ctx;
};

/* Per backend id counters of one worker. */
struct lb_backend_counters {
	uint64_t packets; /* packets sent to the backend (GRE, steered ICMP, re-targeted) */
	uint64_t bytes;   /* bytes of those packets before encapsulation (IP header and on) */
	uint64_t flows;   /* new flows given to it: table choices that were tracked or re-chosen */
};

struct lb_worker;

/* Worker parameters from the config's conntrack section; id and mac are left zero. */
void lb_worker_params_init(struct lb_worker_params *p, const struct config_conntrack *ct);

/* Allocates a worker and everything it uses (connection table, counters). NULL on failure. */
struct lb_worker *lb_worker_create(const struct lb_worker_params *p);
void lb_worker_destroy(struct lb_worker *w);

/*
 * Runs the pipeline over frame f with snapshot s at time now_ns (any monotonic clock in
 * nanoseconds; timeouts and the ICMP rate limit follow it). f must have f->headroom >= LB_HEADROOM
 * for every output to be possible (less: counted drops). Only the worker's own thread calls this.
 */
enum lb_verdict lb_process(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
                           uint64_t now_ns);

/*
 * lb_process over f[0..n) with verdicts in v[0..n): parses the batch first and prefetches the
 * connection table buckets (then entries) of all its flows, so table misses overlap. Same results
 * as n calls of lb_process in order.
 */
void lb_process_batch(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
                      enum lb_verdict *v, unsigned n, uint64_t now_ns);

/* The worker's counters: LB_CTR_MAX entries; other threads read them with lb_counter_read. */
const uint64_t *lb_worker_counters(const struct lb_worker *w);

/* Per backend id counters: LB_BACKEND_IDS_MAX entries, cumulative per id (ids are reused). */
const struct lb_backend_counters *lb_worker_backend_counters(const struct lb_worker *w);

/* Flows the worker's connection table holds at most, and its size in bytes. */
uint32_t lb_worker_ct_capacity(const struct lb_worker *w);
size_t lb_worker_ct_bytes(const struct lb_worker *w);

/* What the pipeline would do with a flow, for `maglevctl explain`. */
struct lb_explanation {
	int32_t vip;                 /* VIP index in the snapshot, -1 if the tuple is for no VIP */
	bool hash_source;            /* the VIP has hash: source: its slots leave the ports out */
	struct lb_flow_key hash_key; /* the key its slot is hashed on (lb_flow_key_source) */
	uint64_t hash;               /* the slot's hash of hash_key (docs/pipeline.md) */
	uint32_t slot;               /* hash % M */
	uint16_t table_backend;      /* backend id in that slot, LB_BACKEND_NONE if none */
	bool tracked;                /* the worker's connection table has the flow */
	uint32_t tracked_bref;       /* its LB_BREF */
	uint64_t
	    tracked_expires_ns; /* when its entry expires: worker clock modulo 2^52 ns, ~1 ms */
	bool tracked_usable;   /* the tracked backend still takes the flow (in use, same tag, up) */
	bool tracked_syn_only; /* TCP, only bare SYNs seen: tcp_syn_timeout, evicted first */
	bool tracked_closing;  /* TCP, FIN or RST seen: tcp_fin_timeout */
	uint16_t backend;      /* where the flow's next packet goes; LB_BACKEND_NONE: dropped */
	/*
	 * The previous owner that packet carries (second chance): the tracked entry's, else what a
	 * packet that is not a SYN would carry; LB_BACKEND_NONE if none.
	 */
	uint16_t secondary;
	uint16_t refused; /* the LB_CTR_DROP_* that drops the flow for its source, else 0 */
};

/*
 * Explains flow k (client to VIP; ports 0 for a fragment) under s, with w's connection table if w
 * is not NULL. Reads w without changing it; when called from another thread than w's the tracked
 * part is best effort (the worker may be rewriting the entry). Returns 0, or -ENOENT if k is not
 * for a VIP (out->vip = -1).
 */
int lb_explain(const struct lb_worker *w, const struct lb_snapshot *s, const struct lb_flow_key *k,
               struct lb_explanation *out);

/*
 * The tracked part of out (lb_explain's of k under s) for an entry found elsewhere (the kernel's
 * table): its bref, secondary, expiry tick and CT_F_* flags. A flow lb_explain refused stays so.
 */
void lb_explain_tracked(const struct lb_snapshot *s, const struct lb_flow_key *k, uint32_t bref,
                        uint32_t secondary, uint32_t expires, uint8_t flags,
                        struct lb_explanation *out);

#endif
