/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * GRE encapsulation (RFC 2784: no checksum, key or sequence; protocol 0x0800 / 0x86DD) with an
 * outer IPv4 or IPv6 header, and re-targeting of GRE packets that arrive for us: only the outer
 * header is rewritten. Both write the Ethernet header of what is sent, untagged.
 */
#ifndef MAGLEV_CORE_ENCAP_H
#define MAGLEV_CORE_ENCAP_H

#include <stdbool.h>
#include <stdint.h>
#include <endian.h>
#include <arpa/inet.h>

#include "core/addr.h"
#include "core/pkt.h"

#include "core/counters.h"
#include "core/pipeline.h"
#include "core/snapshot.h"

#define GRE_IPPROTO 47u /* IP protocol number of GRE */

#define GRE_PROTO_IPV4  0x0800u
#define GRE_PROTO_IPV6  0x86ddu
#define GRE_OVERHEAD_V4 (PKT_IPV4_HLEN + PKT_GRE_HLEN) /* bytes GRE over IPv4 adds */
#define GRE_OVERHEAD_V6 (PKT_IPV6_HLEN + PKT_GRE_HLEN) /* bytes GRE over IPv6 adds */

/*
 * Second chance (docs/second-chance.md): GRE with protocol GRE_PROTO_SC, then a shim word
 * (version << 28 | flags << 24 | inner ethertype) and the secondary's address in the outer
 * family (4 or 16 bytes). The same format as bpf/xdp_decap.h's DECAP_SC_* (test_decap checks).
 */
#define GRE_PROTO_SC     0x88b5u /* IEEE 802 local experimental ethertype 1 */
#define GRE_SC_VERSION   1u
#define GRE_SC_SHIM_HLEN 4u /* bytes before the secondary's address */

/* Bytes a second-chance shim adds under an outer header of family af. */
static inline uint32_t gre_sc_overhead(uint8_t af)
{
	return GRE_SC_SHIM_HLEN + (af == AF_INET ? 4u : 16u);
}

/* The outer headers of a packet sent to a backend. */
struct gre_outer {
	uint64_t eth_dst;          /* next hop, as in lb_nexthop.mac (byte 0 in bits 40..47) */
	const uint8_t *eth_src;    /* our interface, 6 bytes */
	const struct lb_addr *src; /* outer source: our address of the backend's family */
	const struct lb_addr *dst; /* the backend */
	uint8_t ttl;               /* TTL / hop limit */
	uint8_t tos; /* TOS / traffic class (DSCP + ECN copied from the inner packet) */
	bool df;     /* IPv4 outer only */
	uint16_t id; /* IPv4 outer only */
};

static inline uint32_t gre_overhead(uint8_t af)
{
	return af == AF_INET ? GRE_OVERHEAD_V4 : GRE_OVERHEAD_V6;
}

static inline void gre_write_eth(uint8_t *p, const struct gre_outer *o, uint16_t ethertype)
{
	/* Whole-word stores from registers: no reload of freshly stored bytes on the hot path. */
	uint32_t hi = __builtin_bswap32((uint32_t)(o->eth_dst >> 16));
	uint16_t lo = __builtin_bswap16((uint16_t)o->eth_dst);

	memcpy(p, &hi, 4);
	memcpy(p + 4, &lo, 2);
	memcpy(p + 6, o->eth_src, 6);
	pkt_store16(p + 12, ethertype);
}

static inline void gre_store_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

/*
 * Writes the outer IP header at p for a payload (GRE header and on) of plen bytes. Whole 32-bit
 * stores and a checksum computed from the values, not by reading the header back (loads spanning
 * freshly stored bytes stall store forwarding on the hot path).
 */
static inline void gre_write_outer_ip(uint8_t *p, const struct gre_outer *o, uint32_t plen)
{
	if (o->dst->family == AF_INET) {
		uint32_t w0 = 0x45u << 24 | (uint32_t)o->tos << 16 | (PKT_IPV4_HLEN + plen);
		uint32_t w1 = (uint32_t)o->id << 16 | (o->df ? PKT_IPV4_DF : 0);
		uint32_t w2 = (uint32_t)o->ttl << 24 | GRE_IPPROTO << 16;
		uint32_t sa, da;
		uint64_t sum;

		memcpy(&sa, o->src->b, 4);
		memcpy(&da, o->dst->b, 4);
		sa = __builtin_bswap32(sa);
		da = __builtin_bswap32(da);
		sum = (uint64_t)(w0 >> 16) + (w0 & 0xffff) + (w1 >> 16) + (w1 & 0xffff) +
		      (w2 >> 16) + (sa >> 16) + (sa & 0xffff) + (da >> 16) + (da & 0xffff);
		w2 |= csum_fold((uint32_t)sum);
		gre_store_be32(p, w0);
		gre_store_be32(p + 4, w1);
		gre_store_be32(p + 8, w2);
		gre_store_be32(p + 12, sa);
		gre_store_be32(p + 16, da);
	} else {
		gre_store_be32(p, 6u << 28 | (uint32_t)o->tos << 20);
		gre_store_be32(p + 4, plen << 16 | GRE_IPPROTO << 8 | o->ttl);
		memcpy(p + 8, o->src->b, 16);
		memcpy(p + 24, o->dst->b, 16);
	}
}

static inline uint32_t gre_ip_hlen(uint8_t af)
{
	return af == AF_INET ? PKT_IPV4_HLEN : PKT_IPV6_HLEN;
}

static inline uint16_t gre_ethertype_of(uint8_t af)
{
	return af == AF_INET ? PKT_ETHERTYPE_IPV4 : PKT_ETHERTYPE_IPV6;
}

/*
 * gre_encap for an outer header of hl bytes (PKT_IPV4_HLEN or PKT_IPV6_HLEN, a constant in each
 * caller, so every offset and length below folds to an immediate) with, when sec is not NULL (a
 * constant NULL on the hot path), the second-chance shim naming sec.
 */
static inline __attribute__((always_inline)) int
gre_encap_hl(struct lb_frame *f, const struct pkt_ip *ip, uint64_t eth_dst, const uint8_t *eth_src,
             const struct lb_backend *b, uint32_t hl, const struct lb_backend *sec)
{
	uint32_t shim = sec ? gre_sc_overhead(hl == PKT_IPV4_HLEN ? AF_INET : AF_INET6) : 0;
	uint32_t need = PKT_ETH_HLEN + hl + PKT_GRE_HLEN + shim;
	uint32_t plen = PKT_GRE_HLEN + shim + ip->len;
	uint32_t inner_type = ip->family == 4 ? GRE_PROTO_IPV4 : GRE_PROTO_IPV6;
	int64_t start = (int64_t)ip->off - need;
	uint64_t dst = htobe64(eth_dst << 16);
	uint8_t *p;

	if (start < -(int64_t)f->headroom)
		return LB_CTR_DROP_NO_HEADROOM;
	p = f->data + start;
	/* 8 bytes whose last 2 the source MAC then overwrites: one store for the 6-byte MAC. */
	memcpy(p, &dst, 8);
	memcpy(p + 6, eth_src, 6);
	memcpy(p + PKT_ETH_HLEN, b->outer, hl);
	if (hl == PKT_IPV4_HLEN) {
		uint32_t w0 = 0x4500u << 16 | (uint32_t)ip->tos << 16 | (hl + plen);
		uint32_t w1 = (uint32_t)ip->id << 16 | (ip->df ? PKT_IPV4_DF : 0);
		/* Summed as 32-bit words and folded: the same one's complement sum as 16-bit words.
		 */
		uint64_t sum = (uint64_t)b->outer_sum + w0 + w1;
		uint16_t c;

		sum = (sum & 0xffffffffu) + (sum >> 32);
		c = htons(csum_fold((uint32_t)sum + (uint32_t)(sum >> 32)));
		pkt_store16(p + 12, PKT_ETHERTYPE_IPV4);
		gre_store_be32(p + 14, w0);
		gre_store_be32(p + 18, w1);
		memcpy(p + 24, &c, 2);
	} else {
		pkt_store16(p + 12, PKT_ETHERTYPE_IPV6);
		gre_store_be32(p + 14, 6u << 28 | (uint32_t)ip->tos << 20);
		pkt_store16(p + 18, (uint16_t)plen);
	}
	if (sec) {
		uint8_t *g = p + PKT_ETH_HLEN + hl;

		gre_store_be32(g, GRE_PROTO_SC);
		gre_store_be32(g + PKT_GRE_HLEN, GRE_SC_VERSION << 28 | inner_type);
		memcpy(g + PKT_GRE_HLEN + GRE_SC_SHIM_HLEN, sec->addr.b, shim - GRE_SC_SHIM_HLEN);
	} else {
		gre_store_be32(p + PKT_ETH_HLEN + hl, inner_type);
	}
	f->data = p;
	f->headroom = (uint32_t)((int64_t)f->headroom + start);
	f->len = need + ip->len;
	return 0;
}

/*
 * Wraps the IP packet ip (parsed from f->data) in Ethernet (eth_dst as in lb_nexthop.mac, eth_src
 * 6 bytes), the outer header of backend b (its template, see struct lb_backend, completed with
 * ip's TOS, length and for an IPv4 outer its ID and DF: from an inner IPv6 packet ID 0, DF set)
 * and GRE, written in the bytes before it, which may reach into the headroom: needs ip->off +
 * f->headroom >= 14 + gre_overhead. f->data, headroom and len then describe the frame to send;
 * bytes after the inner packet (Ethernet padding) are dropped. Returns 0 or
 * LB_CTR_DROP_NO_HEADROOM. Inline: it is the hot path's last step.
 */
static inline int gre_encap(struct lb_frame *f, const struct pkt_ip *ip, uint64_t eth_dst,
                            const uint8_t *eth_src, const struct lb_backend *b)
{
	if (b->addr.family == AF_INET)
		return gre_encap_hl(f, ip, eth_dst, eth_src, b, PKT_IPV4_HLEN, NULL);
	return gre_encap_hl(f, ip, eth_dst, eth_src, b, PKT_IPV6_HLEN, NULL);
}

/*
 * gre_encap with the second-chance shim naming sec, a backend of b's address family: needs
 * gre_sc_overhead more headroom. Off the hot path (only flows new to this maglevd whose slot
 * changed owner carry it).
 */
int gre_encap_sc(struct lb_frame *f, const struct pkt_ip *ip, uint64_t eth_dst,
                 const uint8_t *eth_src, const struct lb_backend *b, const struct lb_backend *sec);

/*
 * Re-targets the GRE packet whose outer IP header is outer (GRE header at gre_off) to o->dst:
 * same outer family: source, destination, TTL (and IPv4 checksum) are rewritten in place, the
 * rest kept; other family: a new outer header (o->tos, o->df, o->id) replaces the old one. The
 * outer packet must fit mtu. Returns 0, LB_CTR_DROP_NO_HEADROOM or LB_CTR_DROP_TOO_BIG_ICMP.
 */
int gre_retarget(struct lb_frame *f, const struct pkt_ip *outer, uint32_t gre_off,
                 const struct gre_outer *o, uint32_t mtu);

#endif
