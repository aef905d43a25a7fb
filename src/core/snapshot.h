/* SPDX-License-Identifier: GPL-2.0-only */
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
#include <string.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/flow.h"

#define LB_BACKEND_IDS_MAX 65535u /* backend ids in use at once (one per VIP x backend) */
#define LB_BACKEND_NONE    0xffffu

/*
 * A backend reference as a worker's connection table keeps it: id in the low 16 bits, the id's
 * allocation tag in the high 16. A reference whose tag no longer matches the snapshot's (the id
 * was freed and given to another backend) is stale and the flow is chosen anew.
 */
#define LB_BREF(id, tag) (((uint32_t)(tag) << 16) | (uint32_t)(id))
#define LB_BREF_ID(ref)  ((uint16_t)((ref)&0xffffu))
#define LB_BREF_TAG(ref) ((uint16_t)((ref) >> 16))
#define LB_BREF_NONE     LB_BREF(LB_BACKEND_NONE, 0) /* no backend (an entry's secondary: none) */

#define LB_BACKEND_ACCEPT(vip, bref) ((uint64_t)(uint16_t)(vip) << 32 | (uint32_t)(bref))
#define LB_ACCEPT_NONE               (~0ull) /* equals no LB_BACKEND_ACCEPT: bits 48..63 are 0 */

/* Next-hop MAC of a backend address: bit 63 = resolved, bits 0..47 = MAC (byte 0 in bits 40..47).
 */
#define LB_NH_VALID (1ull << 63)
struct lb_nexthop {
	_Atomic uint64_t mac;
	struct lb_addr addr; /* the backend address it is for */
};

/* One backend of one VIP. Its id is stable across snapshots while the pair (VIP, address) lives. */
struct lb_backend {
	struct lb_addr addr;
	uint32_t weight;  /* effective weight: config, runtime override; 0 = drain */
	uint32_t slots;   /* slots it holds in its VIP's table */
	uint16_t tag;     /* allocation tag of its id, see LB_BREF */
	uint16_t vip;     /* index into lb_snapshot.vips */
	uint32_t nexthop; /* index into lb_snapshot.nexthops */
	bool in_use;      /* false for a free id */
	bool up;          /* health; tracked flows stay only on up backends */
	bool has_source;  /* the config has an outer source address of this backend's family */
	/*
	 * LB_BACKEND_ACCEPT(vip, LB_BREF(id, tag)) while in use and up, else LB_ACCEPT_NONE: a
	 * tracked flow keeps this backend when its (VIP, bref) equals it (one compare per packet).
	 */
	uint64_t accept;
	uint32_t inner_mtu; /* largest IP packet that fits dataplane.mtu once encapsulated to it */
	/*
	 * Outer header template for GRE to this backend: the IPv4 (20 bytes) or IPv6 (40 bytes)
	 * header with source, destination, TTL / hop limit and protocol set and the per-packet
	 * fields (length, TOS / traffic class, ID, DF, checksum) zero. outer_sum is the IPv4
	 * checksum's one's complement sum of that fixed part, so a packet adds only its own fields.
	 */
	uint32_t outer_sum;
	uint8_t outer[40];
};

/* One backend as a Maglev table generation was built from it. */
struct lb_gen_backend {
	struct lb_addr addr;
	uint32_t weight; /* as the table saw it: 0 for a down or drained backend */
};

/*
 * What one generation of a VIP's Maglev table was built from (with the cluster's hash seed):
 * its backends in table order, its size, and the digest of the table they made. Enough to build
 * the same table again, here or in another maglevd (the state file keeps it across restarts).
 */
struct lb_gen {
	uint32_t table_size;
	uint64_t digest;
	struct lb_gen_backend *backends;
	uint32_t n_backends;
	/*
	 * enum vip_hash: what flows were hashed on to meet this table's slots. Not part of the
	 * table (nor its digest), but of what a flow's slot in it was: second chance looks a flow
	 * up in the previous generation with the previous generation's mode.
	 */
	uint8_t hash;
};

/* Where a VIP's previous generation came from, as snapshot_build found it (lb_vip.prev_origin). */
enum lb_prev_origin {
	LB_PREV_NONE,     /* none known */
	LB_PREV_SNAPSHOT, /* the snapshot this one replaced: its table or its previous one */
	LB_PREV_HISTORY,  /* snapshot_state.history */
	/*
	 * The history has the VIP, but the generation it needed does not build, or not to the
	 * digest it was saved with (another Maglev build, a damaged file): none is used.
	 */
	LB_PREV_HISTORY_MISMATCH,
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
	bool second_chance;  /* new flows' GRE carries the previous owner (see prev_table) */
	uint8_t hash;        /* enum vip_hash: what its slots are hashed on (lb_flow_hash_source) */
	uint8_t prev_origin; /* enum lb_prev_origin of prev */
	/*
	 * The previous generation: the table of the last snapshot whose slot owners, or hash mode,
	 * differ from this one's, as this snapshot's backend ids (LB_BACKEND_NONE where that owner
	 * is no backend of this VIP now), and what it was built from. prev_table NULL: none known.
	 */
	uint16_t *prev_table; /* prev.table_size ids */
	struct lb_gen prev;
};

#define LB_VIP_NONE 0xffffu

/* A VIP address: the VIPs that take fragments on it (see docs/pipeline.md, "Fragments"). */
struct lb_vip_addr {
	struct lb_addr addr;
	uint16_t frag_vip[2]; /* [0] TCP, [1] UDP: port-0 VIP, else the first listed; LB_VIP_NONE */
};

struct lb_snapshot {
	uint64_t generation; /* prev's + 1; 1 for the first */
	uint64_t hash_seed;  /* flow hash and Maglev permutation seed */
	/* lb_flow_secret_make(hash_seed), for lb_flow_hash_secret on the packet path */
	uint8_t hash_secret[LB_FLOW_SECRET_LEN];

	struct lb_vip *vips;
	uint32_t n_vips;
	struct lb_backend *backends; /* indexed by id; ids [0, n_backends) exist, some free */
	uint32_t n_backends;
	struct lb_nexthop *nexthops; /* one per distinct backend address */
	uint32_t n_nexthops;

	/* Data-plane parameters copied from the config. */
	struct lb_addr source_ipv4; /* family 0 if not configured */
	struct lb_addr source_ipv6;
	uint8_t ttl;
	uint16_t mtu;
	uint32_t icmp_rate;

	/* VIP lookup: open addressing over addresses, then over (address, proto, port). */
	struct lb_vip_addr *addrs;
	uint32_t n_addrs;
	uint32_t *addr_slots; /* addr_mask + 1 slots: index into addrs + 1; 0 = empty */
	uint32_t addr_mask;
	uint64_t *port_keys; /* port_mask + 1 slots: LB_PORT_KEY; 0 = empty */
	uint16_t *port_vips; /* the VIP index of each port_keys slot */
	uint32_t port_mask;

	/*
	 * The common case in one probe: IPv4 VIPs by (address, proto, port), see lb_vip4_key, and
	 * IPv4 VIP addresses (lb_vip4_addr_key).
	 */
	struct lb_vip4_slot *vip4; /* vip4_mask + 1 slots */
	uint32_t vip4_mask;
};

/* A slot of lb_snapshot.vip4: key 0 = empty (a VIP's protocol is never 0). */
struct lb_vip4_slot {
	uint64_t key;
	uint32_t vip; /* VIP index; for an lb_vip4_addr_key, the index into lb_snapshot.addrs */
};

/* Byte i (0 = lowest address) of an 8-byte word loaded from memory on this host. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LB_WORD_BYTE(v, i) ((uint64_t)(v) << (8 * (i)))
#else
#define LB_WORD_BYTE(v, i) ((uint64_t)(v) << (56 - 8 * (i)))
#endif

#define LB_VIP4_ADDR_MASK                                                                          \
	(LB_WORD_BYTE(0xff, 0) | LB_WORD_BYTE(0xff, 1) | LB_WORD_BYTE(0xff, 2) |                   \
	 LB_WORD_BYTE(0xff, 3))
#define LB_VIP4_PORT_MASK (LB_WORD_BYTE(0xff, 6) | LB_WORD_BYTE(0xff, 7))

/*
 * Key of an IPv4 VIP: the bytes [address (4)][proto][0][port, network order (2)] read as one
 * word. p points at an IPv4 address followed by 4 bytes whose last 2 are the port, as a packet's
 * destination address is followed by its ports: the key is one load, a mask and the protocol
 * (the source port's place). Port 0 = every port.
 */
static inline uint64_t lb_vip4_key(const uint8_t *p, uint8_t proto)
{
	uint64_t k;

	memcpy(&k, p, 8);
	return (k & (LB_VIP4_ADDR_MASK | LB_VIP4_PORT_MASK)) | LB_WORD_BYTE(proto, 4);
}

/* The key that marks key's address as a VIP address (protocol 255 is reserved, never a VIP's). */
static inline uint64_t lb_vip4_addr_key(uint64_t key)
{
	return (key & LB_VIP4_ADDR_MASK) | LB_WORD_BYTE(255u, 4);
}

#define LB_PORT_KEY(ai, proto, port)                                                               \
	(((uint64_t)(ai) + 1u) << 32 | (uint64_t)(proto) << 16 | (uint64_t)(port))

/* Per-(VIP, backend) runtime state the control plane applies on top of the config. */
struct snapshot_override {
	char vip[CONFIG_NAME_MAX];
	struct lb_addr backend;
	int32_t weight; /* -1 = the config's */
	bool down;      /* health check says down */
};

/* A VIP's last two generations, as a state file keeps them across a restart. */
struct snapshot_history_vip {
	char name[CONFIG_NAME_MAX];
	struct lb_gen current, previous; /* previous.table_size 0: none */
};

/* The generations of a maglevd that ran before, for a snapshot built without prev. */
struct snapshot_history {
	uint64_t hash_seed; /* they were built with this seed: ignored under another */
	const struct snapshot_history_vip *v;
	uint32_t n;
};

struct snapshot_state {
	const struct snapshot_override *v;
	uint32_t n;
	const struct snapshot_history *history; /* NULL = none */
};

/*
 * Builds the snapshot of cfg with state's overrides (NULL = none). prev (NULL = none) is the one
 * being replaced: a (VIP name, backend address) pair present in both keeps its backend id and tag;
 * ids of removed pairs are freed and given a new tag when reused, resolved next-hop MACs of
 * addresses present in both are carried over. A VIP's previous generation is prev's table when
 * its slot owners differ from the new one's, else prev's previous generation; without prev, it
 * comes from state's history (the generation before the one that matches the new table, or the
 * history's current one if none does; nothing under another hash seed, nothing from a generation
 * that does not build to its digest: see lb_vip.prev_origin). Next hops are otherwise unresolved
 * (0), or all cfg->dataplane.nexthop_mac when has_nexthop_mac. Runs off the packet path (allocates,
 * builds Maglev tables). Returns 0 and *out, or a negative errno and a message in err.
 */
int snapshot_build(const struct config *cfg, const struct lb_snapshot *prev,
                   const struct snapshot_state *state, struct lb_snapshot **out, char *err,
                   size_t errlen);

/* The generation VIP vip's current table was built from; lb_gen_free releases it. */
int snapshot_gen_current(const struct lb_snapshot *s, uint32_t vip, struct lb_gen *out);

/* Copies src into dst (its own backends array); lb_gen_free releases it. */
int lb_gen_copy(struct lb_gen *dst, const struct lb_gen *src);

void lb_gen_free(struct lb_gen *g);

/* Frees a snapshot no worker can still be reading; NULL is fine. */
void snapshot_free(struct lb_snapshot *s);

/* The hash of an address for the lookup table: lo/hi are its two 8-byte halves (IPv4: hi = 0). */
static inline uint64_t snapshot_addr_mix(uint64_t lo, uint64_t hi)
{
	uint64_t x = (lo ^ hi * 0xc2b2ae3d27d4eb4full) * 0x9e3779b97f4a7c15ull;

	return x ^ (x >> 29);
}

/* Index into s->addrs of VIP address a (4 bytes for AF_INET, 16 for AF_INET6), or -1. */
static inline int32_t snapshot_addr_find(const struct lb_snapshot *s, uint8_t family,
                                         const uint8_t *a)
{
	uint64_t lo = 0, hi = 0;
	uint32_t i;

	if (family == AF_INET) {
		uint32_t a4;

		memcpy(&a4, a, 4);
		lo = a4;
	} else {
		memcpy(&lo, a, 8);
		memcpy(&hi, a + 8, 8);
	}
	i = (uint32_t)snapshot_addr_mix(lo, hi) & s->addr_mask;
	for (;;) {
		uint32_t v = s->addr_slots[i];
		const struct lb_vip_addr *va;
		uint64_t vlo, vhi;

		if (!v)
			return -1;
		va = &s->addrs[v - 1];
		memcpy(&vlo, va->addr.b, 8);
		memcpy(&vhi, va->addr.b + 8, 8);
		if (va->addr.family == family && vlo == lo && vhi == hi)
			return (int32_t)(v - 1);
		i = (i + 1) & s->addr_mask;
	}
}

static inline int32_t snapshot_port_find(const struct lb_snapshot *s, uint64_t key)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ull;
	uint32_t i = (uint32_t)(x >> 32) & s->port_mask;

	for (;;) {
		uint64_t v = s->port_keys[i];

		if (v == key)
			return s->port_vips[i];
		if (!v)
			return -1;
		i = (i + 1) & s->port_mask;
	}
}

/* VIP index for (address index, proto, port host order) with the port-0 fallback, or -1. */
static inline int32_t snapshot_vip_find(const struct lb_snapshot *s, int32_t ai, uint8_t proto,
                                        uint16_t port)
{
	int32_t v = snapshot_port_find(s, LB_PORT_KEY(ai, proto, port));

	if (v < 0 && port)
		v = snapshot_port_find(s, LB_PORT_KEY(ai, proto, 0));
	return v;
}

static inline uint32_t snapshot_vip4_slot(const struct lb_snapshot *s, uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & s->vip4_mask;
}

static inline int32_t snapshot_vip4_probe(const struct lb_snapshot *s, uint64_t key)
{
	for (uint32_t i = snapshot_vip4_slot(s, key);; i = (i + 1) & s->vip4_mask) {
		const struct lb_vip4_slot *e = &s->vip4[i];

		if (e->key == key)
			return (int32_t)e->vip;
		if (!e->key)
			return -1;
	}
}

#define LB_VIP4_NOT_ADDR (-1) /* snapshot_vip4_find: the address is no VIP's */
#define LB_VIP4_NO_PORT  (-2) /* snapshot_vip4_find: a VIP address, no VIP for proto and port */

/*
 * VIP index for key (lb_vip4_key of a packet's destination address, ports and protocol), port-0
 * fallback; else LB_VIP4_NOT_ADDR or LB_VIP4_NO_PORT. Same answer as snapshot_addr_find followed
 * by snapshot_vip_find, in one probe when the port's VIP exists and two when the address is no
 * VIP's.
 */
static inline int32_t snapshot_vip4_find(const struct lb_snapshot *s, uint64_t key)
{
	int32_t v = snapshot_vip4_probe(s, key);

	if (v >= 0)
		return v;
	if (snapshot_vip4_probe(s, lb_vip4_addr_key(key)) < 0)
		return LB_VIP4_NOT_ADDR;
	v = key & LB_VIP4_PORT_MASK ? snapshot_vip4_probe(s, key & ~LB_VIP4_PORT_MASK) : -1;
	return v >= 0 ? v : LB_VIP4_NO_PORT;
}

/* VIP index for an address, proto and port (host order), port-0 fallback; -1 if none. */
int32_t snapshot_vip_lookup(const struct lb_snapshot *s, const struct lb_addr *a, uint8_t proto,
                            uint16_t port);

/*
 * The previous owner of the flow whose hash is hash (its slot hash under v->prev.hash, the
 * previous generation's mode), if VIP v has second chance on and that
 * owner is another backend than primary, of primary's address family (a backend forwards to a
 * peer of its own family), in use and up; else LB_BACKEND_NONE.
 */
static inline uint16_t snapshot_secondary(const struct lb_snapshot *s, const struct lb_vip *v,
                                          uint64_t hash, uint16_t primary)
{
	uint16_t id;

	if (!v->second_chance || !v->prev_table)
		return LB_BACKEND_NONE;
	id = v->prev_table[hash % v->prev.table_size];
	if (id == primary || id == LB_BACKEND_NONE || !s->backends[id].up ||
	    s->backends[id].addr.family != s->backends[primary].addr.family)
		return LB_BACKEND_NONE;
	return id;
}

/* Backend id by (VIP index, address), or LB_BACKEND_NONE. */
uint16_t snapshot_backend_find(const struct lb_snapshot *s, uint32_t vip, const struct lb_addr *a);

#endif
