/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Packet parsing: Ethernet (+ one 802.1Q tag), IPv4 (with options), IPv6 (bounded extension
 * header walk), TCP, UDP, ICMP; and the Internet checksum. Parsers never read past the end they are
 * given and report a malformed header as the counter that names it.
 */
#ifndef MAGLEV_CORE_PKT_H
#define MAGLEV_CORE_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>

#include "core/counters.h"

#define PKT_ETH_HLEN     14u /* bytes: dst MAC, src MAC, ethertype */
#define PKT_VLAN_HLEN    4u  /* bytes of one 802.1Q tag */
#define PKT_IPV4_HLEN    20u /* bytes of an IPv4 header without options */
#define PKT_IPV6_HLEN    40u /* bytes of the fixed IPv6 header */
#define PKT_GRE_HLEN     4u  /* bytes of a GRE header without checksum, key or sequence */
#define PKT_TCP_HLEN     20u
#define PKT_UDP_HLEN     8u
#define PKT_ICMP_HLEN    8u /* type, code, checksum, 4 bytes of rest-of-header */
#define PKT_L4_PORTS_LEN 8u /* bytes of L4 header an ICMP error must quote to name the flow */
#define PKT_IPV6_EXT_MAX 8u /* IPv6 extension headers walked before the packet is dropped */

#define PKT_ETHERTYPE_IPV4 0x0800u
#define PKT_ETHERTYPE_IPV6 0x86ddu
#define PKT_ETHERTYPE_VLAN 0x8100u

#define PKT_IPV4_DF      0x4000u /* in frag_off, host order */
#define PKT_IPV4_MF      0x2000u
#define PKT_IPV4_OFFMASK 0x1fffu

#define PKT_TCP_FIN 0x01u
#define PKT_TCP_SYN 0x02u
#define PKT_TCP_RST 0x04u
#define PKT_TCP_ACK 0x10u

/* What the IP layer of a buffer holds. Offsets are from the start of the buffer parsed. */
struct pkt_ip {
	uint32_t off;   /* IP header */
	uint32_t len;   /* IP packet length by its header (IPv4 total length, IPv6 40 + payload) */
	uint32_t l4off; /* L4 header; meaningful when has_l4 */
	uint32_t end;   /* end of the bytes present: off + len, or less for a quoted packet */
	uint8_t family; /* 4 or 6 (LB_FLOW_V4 / LB_FLOW_V6) */
	uint8_t proto;  /* L4 protocol, after IPv6 extension headers */
	bool frag;      /* a fragment: IPv4 MF or offset, or an IPv6 fragment header */
	bool has_l4;    /* the L4 header is here (not a later fragment) */
	bool df;        /* IPv4 DF (IPv6: true, routers never fragment it) */
	uint8_t tos;    /* IPv4 TOS / IPv6 traffic class */
	uint16_t id;    /* IPv4 identification, host order (IPv6: 0) */
};

/* Source and destination address bytes of a parsed IP header. */
static inline const uint8_t *pkt_ip_src(const uint8_t *d, const struct pkt_ip *ip)
{
	return d + ip->off + (ip->family == 4 ? 12u : 8u);
}

static inline const uint8_t *pkt_ip_dst(const uint8_t *d, const struct pkt_ip *ip)
{
	return d + ip->off + (ip->family == 4 ? 16u : 24u);
}

static inline uint16_t pkt_load16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline void pkt_store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pkt_store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Parses the Ethernet header and at most one 802.1Q tag of a frame of len bytes. On success
 * *l3off is where the network header starts and *ethertype its type. Returns 0 or the drop
 * counter (enum lb_counter) that names what is wrong.
 */
static inline int pkt_parse_eth(const uint8_t *d, uint32_t len, uint32_t *l3off,
                                uint16_t *ethertype)
{
	uint16_t et;

	if (len < PKT_ETH_HLEN)
		return LB_CTR_DROP_ETH_TRUNCATED;
	et = pkt_load16(d + 12);
	if (et != PKT_ETHERTYPE_VLAN) {
		*l3off = PKT_ETH_HLEN;
		*ethertype = et;
		return 0;
	}
	if (len < PKT_ETH_HLEN + PKT_VLAN_HLEN)
		return LB_CTR_DROP_VLAN_TRUNCATED;
	*l3off = PKT_ETH_HLEN + PKT_VLAN_HLEN;
	*ethertype = pkt_load16(d + 16);
	return 0;
}

/*
 * Parses the IPv4 (family 4) or IPv6 (family 6) header at d[off], with end the end of the bytes
 * present. quoted: the packet is one quoted in an ICMP error, which may be cut short (len may
 * exceed end - off; ip->end is then end); otherwise len must fit. Returns 0 or a drop counter.
 */
static inline int pkt_parse_ipv4(const uint8_t *d, uint32_t off, uint32_t end, bool quoted,
                                 struct pkt_ip *ip)
{
	const uint8_t *h = d + off;
	uint32_t ihl, tot;
	uint16_t frag;

	if (end - off < PKT_IPV4_HLEN)
		return LB_CTR_DROP_IPV4_TRUNCATED;
	ihl = (h[0] & 0x0fu) * 4u;
	if ((h[0] >> 4) != 4 || ihl < PKT_IPV4_HLEN)
		return LB_CTR_DROP_IPV4_BAD_HEADER;
	tot = pkt_load16(h + 2);
	if (tot < ihl)
		return LB_CTR_DROP_IPV4_BAD_LEN;
	if (end - off < ihl)
		return LB_CTR_DROP_IPV4_TRUNCATED;
	if (tot > end - off) {
		if (!quoted)
			return LB_CTR_DROP_IPV4_BAD_LEN;
	} else {
		end = off + tot;
	}
	frag = pkt_load16(h + 6);
	ip->off = off;
	ip->len = tot;
	ip->end = end;
	ip->l4off = off + ihl;
	ip->family = 4;
	ip->proto = h[9];
	ip->tos = h[1];
	ip->id = pkt_load16(h + 4);
	ip->df = (frag & PKT_IPV4_DF) != 0;
	ip->frag = (frag & (PKT_IPV4_MF | PKT_IPV4_OFFMASK)) != 0;
	ip->has_l4 = (frag & PKT_IPV4_OFFMASK) == 0;
	return 0;
}

/* The IPv6 header and its extension header walk (out of line: the longer path). */
int pkt_parse_ipv6(const uint8_t *d, uint32_t off, uint32_t end, bool quoted, struct pkt_ip *ip);

static inline int pkt_parse_ip(const uint8_t *d, uint32_t off, uint32_t end, uint8_t family,
                               bool quoted, struct pkt_ip *ip)
{
	if (family == 4)
		return pkt_parse_ipv4(d, off, end, quoted, ip);
	return pkt_parse_ipv6(d, off, end, quoted, ip);
}

/*
 * Checks the TCP/UDP header of a parsed, complete packet and returns 0 or a drop counter; *sport
 * and *dport get the ports (network order), *tcp_flags the TCP flags (0 for UDP). Only for
 * has_l4 packets whose proto is TCP or UDP.
 */
static inline int pkt_parse_ports(const uint8_t *d, const struct pkt_ip *ip, uint16_t *sport,
                                  uint16_t *dport, uint8_t *tcp_flags)
{
	const uint8_t *l4 = d + ip->l4off;
	uint32_t avail = ip->end - ip->l4off;

	if (ip->proto == IPPROTO_TCP) {
		uint32_t doff;

		if (avail < PKT_TCP_HLEN)
			return LB_CTR_DROP_TCP_TRUNCATED;
		doff = (uint32_t)(l4[12] >> 4) * 4u;
		if (doff < PKT_TCP_HLEN || doff > avail)
			return LB_CTR_DROP_TCP_BAD_HEADER;
		*tcp_flags = l4[13];
	} else {
		uint32_t ulen;

		if (avail < PKT_UDP_HLEN)
			return LB_CTR_DROP_UDP_TRUNCATED;
		ulen = pkt_load16(l4 + 4);
		if (ulen < PKT_UDP_HLEN || ulen > avail)
			return LB_CTR_DROP_UDP_BAD_LEN;
		*tcp_flags = 0;
	}
	memcpy(sport, l4, 2);
	memcpy(dport, l4 + 2, 2);
	return 0;
}

/* Internet checksum (RFC 1071): adds len bytes at p to the running 32-bit sum. */
static inline uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t s = sum;
	while (len >= 4) {
		s += (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		s += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

/* Folds a running sum into the 16-bit one's complement checksum (host order). */
static inline uint16_t csum_fold(uint32_t sum)
{
	/* Two folds always suffice for 32 bits: the first leaves at most 0x1fffe. */
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)~sum;
}

/* RFC 1624 incremental update of checksum field value hc when a 16-bit word changes m -> m2. */
static inline uint16_t csum_replace16(uint16_t hc, uint16_t m, uint16_t m2)
{
	uint32_t s = (uint16_t)~hc + (uint32_t)(uint16_t)~m + m2;
	return csum_fold(s);
}

/* Writes the IPv4 header checksum of the header of hlen bytes at h. */
static inline void pkt_ipv4_csum_set(uint8_t *h, uint32_t hlen)
{
	h[10] = 0;
	h[11] = 0;
	pkt_store16(h + 10, csum_fold(csum_add(0, h, hlen)));
}

#endif
