/* SPDX-License-Identifier: GPL-2.0-only */
/* Building flow keys from addresses and ports. */
#include "core/flow.h"

#include <arpa/inet.h>

void lb_flow_key_make(struct lb_flow_key *k, const struct lb_addr *src, const struct lb_addr *dst,
                      uint8_t proto, uint16_t sport, uint16_t dport)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->src, src->b, lb_addr_len(src));
	memcpy(k->dst, dst->b, lb_addr_len(dst));
	k->sport = htons(sport);
	k->dport = htons(dport);
	k->proto = proto;
	k->family = src->family == AF_INET ? LB_FLOW_V4 : LB_FLOW_V6;
}
