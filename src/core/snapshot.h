/*
 * lb_snapshot: the immutable view of VIPs, backends and Maglev tables that packet workers read.
 * The control plane builds a new one off the packet path (snapshot_build) and publishes it with a
 * single pointer swap; workers never see a half-built snapshot and take no lock per packet.
 * Only the next-hop MACs inside it change after publication (single 64-bit atomic stores).
 */
#ifndef MAGLEV_CORE_SNAPSHOT_H
#define MAGLEV_CORE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/config.h"

#define LB_BACKEND_IDS_MAX 65535u /* backend ids in use at once (one per VIP x backend) */
#define LB_BACKEND_NONE    0xffffu

/*
 * A backend reference as a worker's connection table keeps it: id in the low 16 bits, the id's
 * allocation tag in the high 16. A reference whose tag no longer matches the snapshot's (the id
 * was freed and given to another backend) is stale and the flow is chosen anew.
 */
#define LB_BREF(id, tag)  (((uint32_t)(tag) << 16) | (uint32_t)(id))
#define LB_BREF_ID(ref)   ((uint16_t)((ref) & 0xffffu))
#define LB_BREF_TAG(ref)  ((uint16_t)((ref) >> 16))

/* Next-hop MAC of a backend address: bit 63 = resolved, bits 0..47 = MAC (byte 0 in bits 40..47). */
#define LB_NH_VALID (1ull << 63)
struct lb_nexthop {
	_Atomic uint64_t mac;
	struct lb_addr addr; /* the backend address it is for */
};

/* One backend of one VIP. Its id is stable across snapshots while the pair (VIP, address) lives. */
struct lb_backend {
	struct lb_addr addr;
	uint32_t weight;   /* effective weight: config, runtime override; 0 = drain */
	uint32_t slots;    /* slots it holds in its VIP's table */
	uint16_t tag;      /* allocation tag of its id, see LB_BREF */
	uint16_t vip;      /* index into lb_snapshot.vips */
	uint32_t nexthop;  /* index into lb_snapshot.nexthops */
	bool in_use;       /* false for a free id */
	bool up;           /* health; tracked flows stay only on up backends */
};

struct lb_vip {
	char name[CONFIG_NAME_MAX];
	struct lb_addr addr;
	uint8_t proto;       /* IPPROTO_TCP / IPPROTO_UDP */
	uint16_t port;       /* host order; 0 = every port */
	uint32_t table_size; /* M */
	uint16_t *table;     /* M backend ids (LB_BACKEND_NONE if no backend can take flows) */
	uint64_t digest;     /* maglev_digest of the table */
	uint16_t *backends;  /* ids of this VIP's backends */
	uint32_t n_backends;
};

struct lb_snapshot;

#endif
