/* GRE encapsulation and re-targeting of GRE packets: outer Ethernet, IPv4/IPv6 and GRE headers. */
#include "core/encap.h"

#include "core/counters.h"
#include "core/pipeline.h"

#define IPPROTO_GRE_ 47u

static void write_eth(uint8_t *p, const struct gre_outer *o, uint16_t ethertype)
{
	/* Whole-word stores from registers: no reload of freshly stored bytes on the hot path. */
	uint32_t hi = __builtin_bswap32((uint32_t)(o->eth_dst >> 16));
	uint16_t lo = __builtin_bswap16((uint16_t)o->eth_dst);

	memcpy(p, &hi, 4);
	memcpy(p + 4, &lo, 2);
	memcpy(p + 6, o->eth_src, 6);
	pkt_store16(p + 12, ethertype);
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

/*
 * Writes the outer IP header at p for a payload (GRE header and on) of plen bytes. Whole 32-bit
 * stores and a checksum computed from the values, not by reading the header back (loads spanning
 * freshly stored bytes stall store forwarding on the hot path).
 */
static void write_outer_ip(uint8_t *p, const struct gre_outer *o, uint32_t plen)
{
	if (o->dst->family == AF_INET) {
		uint32_t w0 = 0x45u << 24 | (uint32_t)o->tos << 16 | (PKT_IPV4_HLEN + plen);
		uint32_t w1 = (uint32_t)o->id << 16 | (o->df ? PKT_IPV4_DF : 0);
		uint32_t w2 = (uint32_t)o->ttl << 24 | IPPROTO_GRE_ << 16;
		uint32_t sa, da;
		uint64_t sum;

		memcpy(&sa, o->src->b, 4);
		memcpy(&da, o->dst->b, 4);
		sa = __builtin_bswap32(sa);
		da = __builtin_bswap32(da);
		sum = (uint64_t)(w0 >> 16) + (w0 & 0xffff) + (w1 >> 16) + (w1 & 0xffff) + (w2 >> 16) +
		      (sa >> 16) + (sa & 0xffff) + (da >> 16) + (da & 0xffff);
		w2 |= csum_fold((uint32_t)sum);
		store_be32(p, w0);
		store_be32(p + 4, w1);
		store_be32(p + 8, w2);
		store_be32(p + 12, sa);
		store_be32(p + 16, da);
	} else {
		store_be32(p, 6u << 28 | (uint32_t)o->tos << 20);
		store_be32(p + 4, plen << 16 | IPPROTO_GRE_ << 8 | o->ttl);
		memcpy(p + 8, o->src->b, 16);
		memcpy(p + 24, o->dst->b, 16);
	}
}

static uint32_t ip_hlen(uint8_t af)
{
	return af == AF_INET ? PKT_IPV4_HLEN : PKT_IPV6_HLEN;
}

static uint16_t ethertype_of(uint8_t af)
{
	return af == AF_INET ? PKT_ETHERTYPE_IPV4 : PKT_ETHERTYPE_IPV6;
}

int gre_encap(struct lb_frame *f, uint32_t ip_off, uint32_t ip_len, uint8_t inner_family,
	      const struct gre_outer *o)
{
	uint8_t af = o->dst->family;
	uint32_t hl = ip_hlen(af), need = PKT_ETH_HLEN + hl + PKT_GRE_HLEN;
	int64_t start = (int64_t)ip_off - need;
	uint8_t *p;

	if (start < -(int64_t)f->headroom)
		return LB_CTR_DROP_NO_HEADROOM;
	p = f->data + start;
	write_eth(p, o, ethertype_of(af));
	write_outer_ip(p + PKT_ETH_HLEN, o, PKT_GRE_HLEN + ip_len);
	store_be32(p + PKT_ETH_HLEN + hl, inner_family == 4 ? GRE_PROTO_IPV4 : GRE_PROTO_IPV6);
	f->data = p;
	f->headroom = (uint32_t)((int64_t)f->headroom + start);
	f->len = need + ip_len;
	return 0;
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
		write_eth(p, o, ethertype_of(af));
		f->len = PKT_ETH_HLEN + outer->len;
	} else {
		uint32_t hl = ip_hlen(af), plen = outer->end - gre_off;

		if (hl + plen > mtu)
			return LB_CTR_DROP_TOO_BIG_ICMP;
		start = (int64_t)gre_off - hl - PKT_ETH_HLEN;
		if (start < -(int64_t)f->headroom)
			return LB_CTR_DROP_NO_HEADROOM;
		p = f->data + start;
		write_eth(p, o, ethertype_of(af));
		write_outer_ip(p + PKT_ETH_HLEN, o, plen);
		f->len = PKT_ETH_HLEN + hl + plen;
	}
	f->data = p;
	f->headroom = (uint32_t)((int64_t)f->headroom + start);
	return 0;
}
