/* Packet parsing: Ethernet/802.1Q, IPv4, IPv6 extension headers, TCP/UDP ports. */
#include "core/pkt.h"

#include <netinet/in.h>

#include "core/counters.h"

int pkt_parse_eth(const uint8_t *d, uint32_t len, uint32_t *l3off, uint16_t *ethertype)
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

static int parse_ipv4(const uint8_t *d, uint32_t off, uint32_t end, bool quoted,
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
	ip->df = (frag & PKT_IPV4_DF) != 0;
	ip->frag = (frag & (PKT_IPV4_MF | PKT_IPV4_OFFMASK)) != 0;
	ip->has_l4 = (frag & PKT_IPV4_OFFMASK) == 0;
	return 0;
}

/* Extension headers the walk steps over; anything else is the upper-layer protocol. */
static bool ipv6_is_ext(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

static int parse_ipv6(const uint8_t *d, uint32_t off, uint32_t end, bool quoted,
		      struct pkt_ip *ip)
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

int pkt_parse_ip(const uint8_t *d, uint32_t off, uint32_t end, uint8_t family, bool quoted,
		 struct pkt_ip *ip)
{
	if (family == 4)
		return parse_ipv4(d, off, end, quoted, ip);
	return parse_ipv6(d, off, end, quoted, ip);
}

int pkt_parse_ports(const uint8_t *d, const struct pkt_ip *ip, uint16_t *sport, uint16_t *dport,
		    uint8_t *tcp_flags)
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
