/* SPDX-License-Identifier: GPL-2.0-only */
/* lb_addr: an IPv4 or IPv6 address as maglevd stores, compares, hashes and prints it. */
#ifndef MAGLEV_CORE_ADDR_H
#define MAGLEV_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define LB_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

/*
 * An IPv4 address lives in b[0..3] (network order) with b[4..15] zero, so that two equal
 * addresses are equal as bytes. The hashed form of an address (Maglev permutation, digests) is
 * its lb_addr_len() leading bytes of b: 4 for IPv4, 16 for IPv6.
 */
struct lb_addr {
	uint8_t family; /* AF_INET or AF_INET6; 0 = unset */
	uint8_t pad[3];
	union {
		uint8_t b[16];
		uint32_t w[4];
		struct in_addr v4;
		struct in6_addr v6;
	};
};

static inline size_t lb_addr_len(const struct lb_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static inline bool lb_addr_eq(const struct lb_addr *a, const struct lb_addr *b)
{
	return a->family == b->family && memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* Orders by family (IPv4 first), then by address bytes. */
int lb_addr_cmp(const struct lb_addr *a, const struct lb_addr *b);

/* Parses a numeric IPv4 or IPv6 address; -EINVAL if it is neither. */
int lb_addr_parse(const char *s, struct lb_addr *out);

/* Formats into buf (at least LB_ADDR_STRLEN bytes) and returns buf. */
const char *lb_addr_str(const struct lb_addr *a, char *buf, size_t len);

/*
 * Fills ss with a (AF_INET or AF_INET6) and port (host order) for bind or connect; returns the
 * address length to pass with it.
 */
socklen_t lb_addr_sockaddr(const struct lb_addr *a, uint16_t port, struct sockaddr_storage *ss);

#endif
