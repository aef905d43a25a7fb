/* SPDX-License-Identifier: GPL-2.0-only */
/* ICMP/ICMPv6 echo replies and "too big" errors written by maglevd. */
#include "core/icmp.h"

#include <netinet/in.h>

#include "core/counters.h"
#include "core/pipeline.h"

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
}

void icmp_echo_reply(struct lb_frame *f, const struct pkt_ip *ip, uint8_t ttl)
{
	uint8_t *d = f->data, *h = d + ip->off, *icmp = d + ip->l4off;
	uint16_t old_word = pkt_load16(icmp), new_word;

	swap_bytes(d, d + 6, 6);
	if (ip->family == 4) {
		swap_bytes(h + 12, h + 16, 4);
		h[8] = ttl;
		pkt_ipv4_csum_set(h, ip->l4off - ip->off);
		icmp[0] = ICMP_ECHO_REPLY;
	} else {
		/* The pseudo-header sum does not change when source and destination swap. */
		swap_bytes(h + 8, h + 24, 16);
		h[7] = ttl;
		icmp[0] = ICMP6_ECHO_REPLY;
	}
	new_word = pkt_load16(icmp);
	pkt_store16(icmp + 2, csum_replace16(pkt_load16(icmp + 2), old_word, new_word));
	f->len = ip->off + ip->len;
}

int icmp_too_big(struct lb_frame *f, const struct pkt_ip *ip, uint32_t mtu, uint8_t ttl)
{
	bool v4 = ip->family == 4;
	uint32_t l2 = ip->off, iphl = v4 ? PKT_IPV4_HLEN : PKT_IPV6_HLEN;
	uint32_t hdr = iphl + PKT_ICMP_HLEN;
	uint32_t quote = (v4 ? ICMP_QUOTE_MAX_V4 : ICMP_QUOTE_MAX_V6) - hdr;
	uint8_t l2hdr[PKT_ETH_HLEN + PKT_VLAN_HLEN];
	int64_t start = (int64_t)ip->off - hdr - l2;
	const uint8_t *q = f->data + ip->off;
	uint8_t *p, *h, *icmp;
	uint32_t sum;

	if (start < -(int64_t)f->headroom)
		return LB_CTR_DROP_NO_HEADROOM;
	if (quote > ip->end - ip->off)
		quote = ip->end - ip->off;
	memcpy(l2hdr, f->data, l2);
	p = f->data + start;
	memcpy(p, l2hdr + 6, 6);
	memcpy(p + 6, l2hdr, 6);
	memcpy(p + 12, l2hdr + 12, l2 - 12); /* VLAN tag if any, then the ethertype */
	h = p + l2;
	icmp = h + iphl;
	if (v4) {
		if (mtu < ICMP_MTU_MIN_V4)
			mtu = ICMP_MTU_MIN_V4;
		h[0] = 0x45;
		h[1] = 0;
		pkt_store16(h + 2, (uint16_t)(hdr + quote));
		pkt_store32(h + 4, 0);
		h[8] = ttl;
		h[9] = IPPROTO_ICMP;
		memcpy(h + 12, q + 16, 4);
		memcpy(h + 16, q + 12, 4);
		pkt_ipv4_csum_set(h, PKT_IPV4_HLEN);
		icmp[0] = ICMP_DEST_UNREACH;
		icmp[1] = ICMP_FRAG_NEEDED_CODE;
		pkt_store16(icmp + 2, 0);
		pkt_store16(icmp + 4, 0);
		pkt_store16(icmp + 6, (uint16_t)mtu);
		sum = 0;
	} else {
		if (mtu < ICMP_MTU_MIN_V6)
			mtu = ICMP_MTU_MIN_V6;
		pkt_store32(h, 6u << 28);
		pkt_store16(h + 4, (uint16_t)(PKT_ICMP_HLEN + quote));
		h[6] = IPPROTO_ICMPV6;
		h[7] = ttl;
		memcpy(h + 8, q + 24, 16);
		memcpy(h + 24, q + 8, 16);
		icmp[0] = ICMP6_PACKET_TOO_BIG;
		icmp[1] = 0;
		pkt_store16(icmp + 2, 0);
		pkt_store32(icmp + 4, mtu);
		/* Pseudo-header: addresses, upper-layer length, next header. */
		sum = csum_add(0, h + 8, 32);
		sum += PKT_ICMP_HLEN + quote;
		sum += IPPROTO_ICMPV6;
	}
	sum = csum_add(sum, icmp, PKT_ICMP_HLEN + quote);
	pkt_store16(icmp + 2, csum_fold(sum));
	f->data = p;
	f->headroom = (uint32_t)((int64_t)f->headroom + start);
	f->len = l2 + hdr + quote;
	return 0;
}
