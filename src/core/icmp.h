/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ICMP and ICMPv6 that maglevd writes itself: echo replies from a VIP (built in place) and
 * "fragmentation needed" / "packet too big" errors to a client (built in the bytes before the
 * packet they quote). Both go back out the way the frame came: MACs swapped, 802.1Q tag kept.
 */
#ifndef MAGLEV_CORE_ICMP_H
#define MAGLEV_CORE_ICMP_H

#include <stdint.h>

#include "core/pkt.h"

struct lb_frame;

#define ICMP_ECHO_REPLY       0u
#define ICMP_DEST_UNREACH     3u
#define ICMP_FRAG_NEEDED_CODE 4u
#define ICMP_ECHO_REQUEST     8u
#define ICMP_TIME_EXCEEDED    11u
#define ICMP6_DEST_UNREACH    1u
#define ICMP6_PACKET_TOO_BIG  2u
#define ICMP6_TIME_EXCEEDED   3u
#define ICMP6_ECHO_REQUEST    128u
#define ICMP6_ECHO_REPLY      129u
#define ICMP6_ND_FIRST        133u /* router solicitation */
#define ICMP6_ND_LAST         137u /* redirect */

/* Bytes of IP datagram an ICMP error may fill (RFC 1812 4.3.2.3). */
#define ICMP_QUOTE_MAX_V4 576u
#define ICMP_QUOTE_MAX_V6 1280u /* bytes of IPv6 packet an ICMPv6 error may fill (RFC 4443 2.4) */
#define ICMP_MTU_MIN_V4   68u   /* smallest next-hop MTU we report (RFC 791) */
#define ICMP_MTU_MIN_V6   1280u /* smallest MTU we report in packet too big (RFC 8200) */

/*
 * Turns the echo request (ICMP type 8 / ICMPv6 type 128, header at ip->l4off) in the frame into
 * its reply, in place: MACs and IP addresses swapped, TTL / hop limit set to ttl, type changed,
 * checksums updated (the ICMP one incrementally, so a corrupt request gets a corrupt reply).
 * The frame is trimmed to the IP packet. l3off is ip->off.
 */
void icmp_echo_reply(struct lb_frame *f, const struct pkt_ip *ip, uint8_t ttl);

/*
 * Writes an ICMP "fragmentation needed" (IPv4, next-hop MTU mtu) or ICMPv6 "packet too big"
 * (MTU mtu) from the packet's destination to its source, quoting as much of the packet as fits in
 * 576 / 1280 bytes. The new Ethernet, IP and ICMP headers go before ip->off and may reach into the
 * headroom (up to 14 + 4 + 48 bytes before the frame's IP header). f then describes the error.
 * Returns 0 or LB_CTR_DROP_NO_HEADROOM.
 */
int icmp_too_big(struct lb_frame *f, const struct pkt_ip *ip, uint32_t mtu, uint8_t ttl);

#endif
