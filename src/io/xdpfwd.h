/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The xdp mode's kernel half, seen from user space: a loaded xdp_fwd object's maps
 * (bpf/xdp_fwd.h), into which snapshots are published as generations, and from which the
 * kernel's counters and connection table are read. Sizing happens between opening and loading
 * the object (xdpfwd_size); everything else on a loaded one.
 */
#ifndef MAGLEV_IO_XDPFWD_H
#define MAGLEV_IO_XDPFWD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/libbpf.h>

#include "core/config.h"
#include "core/flow.h"
#include "core/pipeline.h"
#include "core/snapshot.h"

/*
 * The kernel's connection table holds conntrack.entries flows, split evenly over the possible
 * CPUs (each CPU's XDP program writes its own part), at least this many buckets a part.
 */
#define XDPFWD_CT_PART_BUCKETS_MIN 128u

struct xdpfwd;

/* Sizes obj's (opened, not loaded) connection-table maps for ct. 0 or negative errno. */
int xdpfwd_size(struct bpf_object *obj, const struct config_conntrack *ct);

/*
 * Takes the maps of the loaded object obj (which must outlive the result) and sets its
 * connection-table timeouts and insert cap from ct. err: one line.
 */
int xdpfwd_open(struct xdpfwd **out, struct bpf_object *obj, const struct config_conntrack *ct,
                char *err, size_t errlen);
void xdpfwd_close(struct xdpfwd *f);

/*
 * The next-hop array of the generation the next xdpfwd_publish writes: n <= XDP_FWD_IDS words
 * in the kernel's map, which the next-hop resolver may keep current (lb_nexthop.mac encoding)
 * from before that publication until the one after it. Control thread.
 */
_Atomic uint64_t *xdpfwd_next_nexthops(struct xdpfwd *f);

/*
 * Publishes s: writes it as the generation packets do not read (its next hops as s holds them
 * now), switches packets to it and returns once no packet can still read the other one. A
 * failure leaves packets on the generation they had. Control thread. 0 or negative errno.
 */
int xdpfwd_publish(struct xdpfwd *f, const struct lb_snapshot *s, char *err, size_t errlen);

/* Adds the kernel's pipeline counters (LB_CTR_MAX, summed over CPUs) to ctr. */
void xdpfwd_counters(struct xdpfwd *f, uint64_t *ctr);

/* Why frames for a VIP went to the slow path (enum xdp_fwd_stat's SLOW_*), summed over CPUs. */
struct xdpfwd_slow {
	uint64_t source, nexthop, too_big, headroom;
	uint64_t ct_other_cpu;      /* not the slow path: flows found in another CPU's part */
	uint64_t ct_search_limited; /* misses not searched for in the others (their budget spent) */
};
void xdpfwd_slow_counters(struct xdpfwd *f, struct xdpfwd_slow *out);

/* Adds the kernel's counters of backend id (summed over CPUs) to *out. */
void xdpfwd_backend_counters(struct xdpfwd *f, uint16_t id, struct lb_backend_counters *out);

/*
 * Looks flow k (of flow hash hash) up in the kernel's connection table, every CPU's part, with
 * ct_peek: true and the bref, secondary, expiry tick and CT_F_* flags of the copy that expires
 * last. Any thread; best effort, as ct_peek.
 */
bool xdpfwd_ct_peek(struct xdpfwd *f, const struct lb_flow_key *k, uint64_t hash, uint32_t *bref,
                    uint32_t *secondary, uint32_t *expires, uint8_t *flags);

#endif
