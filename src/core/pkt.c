/* SPDX-License-Identifier: GPL-2.0-only */
/* Packet parsing: the IPv6 extension header walk (the rest is inline in pkt.h). */
#include "core/pkt.h"

#include <netinet/in.h>

#include "core/counters.h"

/* Extension headers the walk steps over; anything else is the upper-layer protocol. */
static bool ipv6_is_ext(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

int pkt_parse_ipv6(const uint8_t *d, uint32_t off, uint32_t end, bool quoted, struct pkt_ip *ip)
{
	const uint8_t *h = d + off;
	uint32_t tot, p;
	uint8_t nh;

	if (end - off < PKT_IPV6_HLEN)
		return LB_CTR_DROP_IPV6_TRUNCATED;
	if ((h[0] >> 4) != 6)
		return LB_CTR_DROP_IPV6_BAD_HEADER;
	tot = PKT_IPV6_HLEN + pkt_load16(h + 4);
	if (tot > end - off) {
		if (!quoted)
			return LB_CTR_DROP_IPV6_BAD_LEN;
	} else {
		end = off + tot;
	}
	ip->off = off;
	ip->len = tot;
	ip->end = end;
	ip->family = 6;
	ip->tos = (uint8_t)((h[0] << 4) | (h[1] >> 4));
	ip->df = true;
	ip->id = 0;
	ip->frag = false;
	ip->has_l4 = true;
	nh = h[6];
	p = off + PKT_IPV6_HLEN;
	for (unsigned i = 0; ipv6_is_ext(nh); i++) {
		uint32_t elen;

		if (i == PKT_IPV6_EXT_MAX || end - p < 8)
			return LB_CTR_DROP_IPV6_BAD_EXT;
		if (nh == IPPROTO_FRAGMENT) {
			uint16_t fo = pkt_load16(d + p + 2);

			ip->frag = true;
			elen = 8;
			if (fo & 0xfff8u) {
				/* A later fragment: no upper-layer header follows. */
				ip->has_l4 = false;
				ip->proto = d[p];
				ip->l4off = p + elen;
				return 0;
			}
		} else if (nh == IPPROTO_AH) {
			elen = ((uint32_t)d[p + 1] + 2u) * 4u;
		} else {
			elen = ((uint32_t)d[p + 1] + 1u) * 8u;
		}
		if (end - p < elen)
			return LB_CTR_DROP_IPV6_BAD_EXT;
		nh = d[p];
		p += elen;
	}
	ip->proto = nh;
	ip->l4off = p;
	return 0;
}
