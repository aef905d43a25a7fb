/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Next hops over netlink: for each backend address, the kernel's route names a gateway (or the
 * backend itself when on-link) and the neighbour table names its MAC. A resolver thread follows
 * route and neighbour changes and writes the MACs into snapshot next-hop arrays.
 */
#ifndef MAGLEV_IO_NEXTHOP_H
#define MAGLEV_IO_NEXTHOP_H

#include <linux/if_ether.h>
#include <stddef.h>
#include <stdint.h>

#include "core/snapshot.h"

#define NH_WATCHES_MAX 4u    /* next-hop arrays kept current at once (old + new snapshot) */
#define NH_RETRY_MS    1000u /* unresolved next hops are asked for again this often */

struct nh_resolver;

/* Encodes a MAC as lb_nexthop.mac holds it (LB_NH_VALID set). */
uint64_t nh_mac_encode(const uint8_t mac[ETH_ALEN]);

/*
 * Opens netlink sockets and starts the resolver thread for next hops leaving through ifindex
 * (a backend the kernel routes through another interface stays unresolved, with a warning).
 */
int nh_start(struct nh_resolver **out, int ifindex, char *err, size_t errlen);

/*
 * Keeps nh[0..n-1] current from now on (their addr fields name the backends) and resolves them
 * once right away; unresolved neighbours are solicited through the kernel. Each MAC also goes to
 * mirror[i] when mirror is not NULL (the kernel's copy, xdp mode). nh and mirror must stay valid
 * until nh_unwatch. Control thread.
 */
int nh_watch(struct nh_resolver *r, struct lb_nexthop *nh, uint32_t n, _Atomic uint64_t *mirror);

/* Stops writing into nh (before the snapshot that holds it is freed). Control thread. */
void nh_unwatch(struct nh_resolver *r, const struct lb_nexthop *nh);

/* Waits up to timeout_ms for every watched next hop to resolve; returns how many did not. */
uint32_t nh_wait(struct nh_resolver *r, int timeout_ms);

/* Stops the thread and frees r; NULL is fine. */
void nh_stop(struct nh_resolver *r);

#endif
