/*
 * GRE encapsulation (RFC 2784: no checksum, key or sequence; protocol 0x0800 / 0x86DD) with an
 * outer IPv4 or IPv6 header, and re-targeting of GRE packets that arrive for us: only the outer
 * header is rewritten. Both write the Ethernet header of what is sent, untagged.
 */
#ifndef MAGLEV_CORE_ENCAP_H
#define MAGLEV_CORE_ENCAP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/pkt.h"

struct lb_frame;

#define GRE_PROTO_IPV4 0x0800u
#define GRE_PROTO_IPV6 0x86ddu
#define GRE_OVERHEAD_V4 (PKT_IPV4_HLEN + PKT_GRE_HLEN) /* bytes GRE over IPv4 adds */
#define GRE_OVERHEAD_V6 (PKT_IPV6_HLEN + PKT_GRE_HLEN) /* bytes GRE over IPv6 adds */

/* The outer headers of a packet sent to a backend. */
struct gre_outer {
	uint64_t eth_dst;          /* next hop, as in lb_nexthop.mac (byte 0 in bits 40..47) */
	const uint8_t *eth_src;    /* our interface, 6 bytes */
	const struct lb_addr *src; /* outer source: our address of the backend's family */
	const struct lb_addr *dst; /* the backend */
	uint8_t ttl;               /* TTL / hop limit */
	uint8_t tos;               /* TOS / traffic class (DSCP + ECN copied from the inner packet) */
	bool df;                   /* IPv4 outer only */
	uint16_t id;               /* IPv4 outer only */
};

static inline uint32_t gre_overhead(uint8_t af)
{
	return af == AF_INET ? GRE_OVERHEAD_V4 : GRE_OVERHEAD_V6;
}

/*
 * Wraps the IP packet of ip_len bytes at f->data + ip_off (inner family 4 or 6) in Ethernet, outer
 * IP (family of o->dst) and GRE written in the bytes before it, which may reach into the headroom:
 * needs ip_off + f->headroom >= 14 + gre_overhead. f->data, headroom and len then describe the
 * frame to send; bytes after the inner packet (Ethernet padding) are dropped. Returns 0 or
 * LB_CTR_DROP_NO_HEADROOM.
 */
int gre_encap(struct lb_frame *f, uint32_t ip_off, uint32_t ip_len, uint8_t inner_family,
	      const struct gre_outer *o);

/*
 * Re-targets the GRE packet whose outer IP header is outer (GRE header at gre_off) to o->dst:
 * same outer family: source, destination, TTL (and IPv4 checksum) are rewritten in place, the
 * rest kept; other family: a new outer header (o->tos, o->df, o->id) replaces the old one. The
 * outer packet must fit mtu. Returns 0, LB_CTR_DROP_NO_HEADROOM or LB_CTR_DROP_TOO_BIG_ICMP.
 */
int gre_retarget(struct lb_frame *f, const struct pkt_ip *outer, uint32_t gre_off,
		 const struct gre_outer *o, uint32_t mtu);

#endif
