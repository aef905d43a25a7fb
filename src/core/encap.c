/* SPDX-License-Identifier: GPL-2.0-only */
/* GRE encapsulation and re-targeting of GRE packets: outer Ethernet, IPv4/IPv6 and GRE headers. */
#include "core/encap.h"

#include "core/counters.h"
#include "core/pipeline.h"

int gre_encap_sc(struct lb_frame *f, const struct pkt_ip *ip, uint64_t eth_dst,
                 const uint8_t *eth_src, const struct lb_backend *b, const struct lb_backend *sec)
{
	if (b->addr.family == AF_INET)
		return gre_encap_hl(f, ip, eth_dst, eth_src, b, PKT_IPV4_HLEN, sec);
	return gre_encap_hl(f, ip, eth_dst, eth_src, b, PKT_IPV6_HLEN, sec);
}

int gre_retarget(struct lb_frame *f, const struct pkt_ip *outer, uint32_t gre_off,
                 const struct gre_outer *o, uint32_t mtu)
{
	uint8_t af = o->dst->family;
	uint32_t out_family = outer->family == 4 ? AF_INET : AF_INET6;
	int64_t start;
	uint8_t *p;

	if (af == out_family) {
		uint8_t *h = f->data + outer->off;

		if (outer->len > mtu)
			return LB_CTR_DROP_TOO_BIG_ICMP;
		if (af == AF_INET) {
			memcpy(h + 12, o->src->b, 4);
			memcpy(h + 16, o->dst->b, 4);
			h[8] = o->ttl;
			pkt_ipv4_csum_set(h, outer->l4off - outer->off);
		} else {
			memcpy(h + 8, o->src->b, 16);
			memcpy(h + 24, o->dst->b, 16);
			h[7] = o->ttl;
		}
		start = (int64_t)outer->off - PKT_ETH_HLEN;
		p = f->data + start;
		gre_write_eth(p, o, gre_ethertype_of(af));
		f->len = PKT_ETH_HLEN + outer->len;
	} else {
		uint32_t hl = gre_ip_hlen(af), plen = outer->end - gre_off;

		if (hl + plen > mtu)
			return LB_CTR_DROP_TOO_BIG_ICMP;
		start = (int64_t)gre_off - hl - PKT_ETH_HLEN;
		if (start < -(int64_t)f->headroom)
			return LB_CTR_DROP_NO_HEADROOM;
		p = f->data + start;
		gre_write_eth(p, o, gre_ethertype_of(af));
		gre_write_outer_ip(p + PKT_ETH_HLEN, o, plen);
		f->len = PKT_ETH_HLEN + hl + plen;
	}
	f->data = p;
	f->headroom = (uint32_t)((int64_t)f->headroom + start);
	return 0;
}
