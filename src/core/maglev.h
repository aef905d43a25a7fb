/* SPDX-License-Identifier: GPL-2.0-only */
/* Maglev lookup table population (Eisenbud et al., NSDI 2016, section 3.4), weights, digest. */
#ifndef MAGLEV_CORE_MAGLEV_H
#define MAGLEV_CORE_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAGLEV_SIZE_DEFAULT 65537u   /* M: slots per VIP table, prime */
#define MAGLEV_SIZE_MIN     7u       /* smallest accepted M */
#define MAGLEV_SIZE_MAX     1048573u /* largest accepted M: largest prime below 2^20 */
#define MAGLEV_BACKENDS_MAX 65534u   /* backends per table; entries are uint16_t */
#define MAGLEV_EMPTY        0xffffu  /* slot value when no backend has a positive weight */
#define MAGLEV_WEIGHT_MAX   65535u

/* h2 is XXH64 seeded with seed ^ MAGLEV_SKIP_SEED_XOR (h1 uses seed itself); see docs/maglev.md. */
#define MAGLEV_SKIP_SEED_XOR 0x9e3779b97f4a7c15ull

/* One backend's preference list: slot j of its permutation is (offset + j * skip) mod M. */
struct maglev_perm {
	uint32_t offset; /* in [0, M) */
	uint32_t skip;   /* in [1, M) */
};

/* A backend as the table builder sees it: the bytes that identify it, and its weight. */
struct maglev_backend {
	const uint8_t *key; /* hashed to make the permutation; e.g. lb_addr bytes */
	size_t key_len;
	uint32_t weight; /* 0 = no slots */
};

/* True if m is prime and within [MAGLEV_SIZE_MIN, MAGLEV_SIZE_MAX]. */
bool maglev_size_valid(uint32_t m);

/*
 * The permutation of a backend key under seed for table size m (docs/maglev.md):
 * offset = XXH64(key, key_len, seed) % m, skip = XXH64(key, key_len, seed ^ MAGLEV_SKIP_SEED_XOR)
 * % (m - 1) + 1. Precondition: m >= 2.
 */
void maglev_perm_from_key(struct maglev_perm *p, const uint8_t *key, size_t key_len, uint64_t seed,
                          uint32_t m);

/*
 * Fills table[0..m) with indices into perms/weights (n entries) by the paper's population:
 * backends take turns, in index order, claiming their next preferred empty slot; a backend takes
 * a turn only while its claimed share is behind its weight's share. Weight-0 backends get no
 * slots; if every weight is 0 the table is all MAGLEV_EMPTY. Returns 0 or -EINVAL.
 */
int maglev_populate(uint16_t *table, uint32_t m, const struct maglev_perm *perms,
                    const uint32_t *weights, uint32_t n);

/*
 * Builds the table for backends b[0..n) with seed: table[i] is an index into b. The result does
 * not depend on the order of b: backends take turns in key order (shorter key first, then
 * memcmp; for lb_addr keys that is lb_addr_cmp's order). Duplicate keys, n == 0, n above
 * MAGLEV_BACKENDS_MAX, empty keys, weights above MAGLEV_WEIGHT_MAX or an invalid m are -EINVAL;
 * -ENOMEM if scratch memory (one allocation) cannot be had.
 */
int maglev_build(uint16_t *table, uint32_t m, const struct maglev_backend *b, uint32_t n,
                 uint64_t seed);

/*
 * maglev_build with flags: MAGLEV_BUILD_SCALAR keeps to portable scalar code (no SIMD) even where
 * the CPU has it; the table is the same either way (tests and benchmarks compare the two).
 */
#define MAGLEV_BUILD_SCALAR 1u
int maglev_build_flags(uint16_t *table, uint32_t m, const struct maglev_backend *b, uint32_t n,
                       uint64_t seed, unsigned flags);

/* slots[i] = number of table slots holding i, for i < n (MAGLEV_EMPTY slots are not counted). */
void maglev_count(const uint16_t *table, uint32_t m, uint32_t *slots, uint32_t n);

/*
 * A 64-bit digest of the table's contents by backend key, equal on every machine (print it as 16
 * hex digits): XXH64 with seed 0 over le64(m), then for each slot le64(XXH64(key, key_len, 0)) of
 * its backend, or le64(0) for MAGLEV_EMPTY. Independent of the order of b.
 */
uint64_t maglev_digest(const uint16_t *table, uint32_t m, const struct maglev_backend *b,
                       uint32_t n);

#endif
