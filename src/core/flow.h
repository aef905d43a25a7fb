/*
 * lb_flow_key and the flow hash: the packed 5-tuple every maglevd hashes the same way, so that all
 * balancers of a cluster send a flow to the same Maglev slot (docs/pipeline.md, "Flow hash").
 */
#ifndef MAGLEV_CORE_FLOW_H
#define MAGLEV_CORE_FLOW_H

#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/addr.h"

/*
 * The hashed and tracked form of a flow: 40 bytes, no implicit padding, every unused byte zero.
 *   bytes  0..15  source address (IPv4: 4 bytes then 12 zero bytes)
 *   bytes 16..31  destination address (same)
 *   bytes 32..33  source port, network order (0 for ICMP and fragments)
 *   bytes 34..35  destination port, network order (0 for ICMP and fragments)
 *   byte  36      IP protocol (6 TCP, 17 UDP)
 *   byte  37      address family: 4 or 6 (not the OS's AF_ value, so every OS hashes alike)
 *   bytes 38..39  zero
 * The flow hash is XXH3_64bits_withSeed(key, 40, hash_seed) and the Maglev slot is hash % M.
 */
struct lb_flow_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport; /* network order */
	uint16_t dport; /* network order */
	uint8_t proto;
	uint8_t family; /* LB_FLOW_V4 or LB_FLOW_V6 */
	uint8_t pad[2];
};

#define LB_FLOW_V4 4u
#define LB_FLOW_V6 6u
#define LB_FLOW_KEY_LEN 40u /* bytes hashed and compared */

_Static_assert(sizeof(struct lb_flow_key) == LB_FLOW_KEY_LEN, "flow key is packed");

static inline uint64_t lb_flow_hash(const struct lb_flow_key *k, uint64_t seed)
{
	return XXH3_64bits_withSeed(k, LB_FLOW_KEY_LEN, seed);
}

static inline int lb_flow_key_eq(const struct lb_flow_key *a, const struct lb_flow_key *b)
{
	return memcmp(a, b, LB_FLOW_KEY_LEN) == 0;
}

/*
 * Fills k from addresses (same family) and host-order ports; the key of a fragment or of a flow
 * without ports has both ports 0.
 */
void lb_flow_key_make(struct lb_flow_key *k, const struct lb_addr *src, const struct lb_addr *dst,
		      uint8_t proto, uint16_t sport, uint16_t dport);

#endif
