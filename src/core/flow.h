/* SPDX-License-Identifier: GPL-2.0-only */
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
 * The flow hash is XXH3_64bits_withSeed(key, 40, hash_seed). The Maglev slot is hash % M, or for
 * a VIP with hash: source the same hash of the key with both ports zero (lb_flow_key_source); the
 * connection table always uses the flow hash.
 */
struct __attribute__((aligned(8))) lb_flow_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport; /* network order */
	uint16_t dport; /* network order */
	uint8_t proto;
	uint8_t family; /* LB_FLOW_V4 or LB_FLOW_V6 */
	uint8_t pad[2];
};

#define LB_FLOW_V4      4u
#define LB_FLOW_V6      6u
#define LB_FLOW_KEY_LEN 40u /* bytes hashed and compared */

_Static_assert(sizeof(struct lb_flow_key) == LB_FLOW_KEY_LEN, "flow key is packed");

static inline uint64_t lb_flow_hash(const struct lb_flow_key *k, uint64_t seed)
{
	return XXH3_64bits_withSeed(k, LB_FLOW_KEY_LEN, seed);
}

#define LB_FLOW_SECRET_LEN 192u /* bytes: XXH3_SECRET_DEFAULT_SIZE */
_Static_assert(LB_FLOW_SECRET_LEN == XXH3_SECRET_DEFAULT_SIZE, "XXH3 default secret size");

/* The secret lb_flow_hash_secret needs for seed (XXH3_generateSecret_fromSeed, done once). */
static inline void lb_flow_secret_make(uint8_t secret[LB_FLOW_SECRET_LEN], uint64_t seed)
{
	XXH3_generateSecret_fromSeed(secret, seed);
}

/*
 * lb_flow_hash(k, seed), given secret = lb_flow_secret_make(seed): for a 40-byte input XXH3 mixes
 * the input with secret words plus or minus the seed, and the generated secret holds exactly those
 * sums, so the packet path loads them instead of recomputing them (test_flow_hash_secret checks
 * the equality).
 */
static inline uint64_t lb_flow_hash_secret(const struct lb_flow_key *k,
                                           const uint8_t secret[LB_FLOW_SECRET_LEN])
{
	return XXH3_64bits_withSecret(k, LB_FLOW_KEY_LEN, secret, LB_FLOW_SECRET_LEN);
}

static inline uint64_t lb_flow_word(const struct lb_flow_key *k, unsigned i)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)k + 8 * i, 8);
	return v;
}

static inline int lb_flow_key_eq(const struct lb_flow_key *a, const struct lb_flow_key *b)
{
	/* Five word compares in registers (a memcpy of a word is one load), no memcmp call. */
	return ((lb_flow_word(a, 0) ^ lb_flow_word(b, 0)) |
	        (lb_flow_word(a, 1) ^ lb_flow_word(b, 1)) |
	        (lb_flow_word(a, 2) ^ lb_flow_word(b, 2)) |
	        (lb_flow_word(a, 3) ^ lb_flow_word(b, 3)) |
	        (lb_flow_word(a, 4) ^ lb_flow_word(b, 4))) == 0;
}

/*
 * The key a VIP with hash: source hashes for its Maglev slot: k with both ports zero (bytes
 * 32..35), the rest as it is (addresses, protocol, family). Leaving the destination port out too,
 * not only the client's, sends every connection of one client address to one backend whatever
 * port of a port-0 VIP it goes to, and makes the key of a fragment (its ports are 0 already)
 * the key of the client's unfragmented packets, so both meet the same backend. Copied word by word
 * (see lb_flow_key_fill on store forwarding).
 */
static inline void lb_flow_key_source(struct lb_flow_key *out, const struct lb_flow_key *k)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ports = 0xffffffffull; /* bytes 32..35 of the last word */
#else
	const uint64_t ports = 0xffffffffull << 32;
#endif
	uint64_t w4 = lb_flow_word(k, 4) & ~ports;

	for (unsigned i = 0; i < 4; i++) {
		uint64_t w = lb_flow_word(k, i);

		memcpy((uint8_t *)out + 8 * i, &w, 8);
	}
	memcpy((uint8_t *)out + 32, &w4, 8);
}

/* The slot hash of a hash: source VIP, lb_flow_hash of lb_flow_key_source(k), from the secret. */
static inline uint64_t lb_flow_hash_source_secret(const struct lb_flow_key *k,
                                                  const uint8_t secret[LB_FLOW_SECRET_LEN])
{
	struct lb_flow_key s;

	lb_flow_key_source(&s, k);
	return lb_flow_hash_secret(&s, secret);
}

/*
 * Fills k from address bytes (4 for family 4, 16 for 6) and network-order ports with five 8-byte
 * stores, so that the hash and compare loads that follow forward from the store buffer.
 */
static inline void lb_flow_key_fill(struct lb_flow_key *k, uint8_t family, const uint8_t *src,
                                    const uint8_t *dst, uint8_t proto, uint16_t sport,
                                    uint16_t dport)
{
	/*
	 * Words in scalars, not an array: a stack array gets copied with 16-byte moves whose loads
	 * span two 8-byte stores, which store forwarding cannot serve (a stall on every packet).
	 */
	uint64_t w0, w1, w2, w3, w4;

	if (family == LB_FLOW_V4) {
		uint32_t s4, d4;

		memcpy(&s4, src, 4);
		memcpy(&d4, dst, 4);
		w0 = s4;
		w1 = 0;
		w2 = d4;
		w3 = 0;
	} else {
		memcpy(&w0, src, 8);
		memcpy(&w1, src + 8, 8);
		memcpy(&w2, dst, 8);
		memcpy(&w3, dst + 8, 8);
	}
	/* Little-endian hosts: this is the byte layout above; big-endian ones shift the other way.
	 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	w4 = (uint64_t)sport | (uint64_t)dport << 16 | (uint64_t)proto << 32 |
	     (uint64_t)family << 40;
#else
	{
		uint8_t tail[8] = {0};

		memcpy(tail, &sport, 2);
		memcpy(tail + 2, &dport, 2);
		tail[4] = proto;
		tail[5] = family;
		memcpy(&w4, tail, 8);
	}
#endif
	memcpy((uint8_t *)k, &w0, 8);
	memcpy((uint8_t *)k + 8, &w1, 8);
	memcpy((uint8_t *)k + 16, &w2, 8);
	memcpy((uint8_t *)k + 24, &w3, 8);
	memcpy((uint8_t *)k + 32, &w4, 8);
}

/*
 * Fills k from addresses (same family) and host-order ports; the key of a fragment or of a flow
 * without ports has both ports 0.
 */
void lb_flow_key_make(struct lb_flow_key *k, const struct lb_addr *src, const struct lb_addr *dst,
                      uint8_t proto, uint16_t sport, uint16_t dport);

#endif
