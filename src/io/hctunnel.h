/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The tunnel for health probes (bpf/hc_tunnel.bpf.c): loaded with libbpf and attached as a tc
 * egress filter on the dataplane interface, its slots filled with where each probe goes.
 */
#ifndef MAGLEV_IO_HCTUNNEL_H
#define MAGLEV_IO_HCTUNNEL_H

#include <linux/if_ether.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/hc_tunnel.h"
#include "core/addr.h"

struct hct;

/*
 * Loads hc_tunnel.bpf.o (bpfobj_path) and attaches it to the clsact egress hook of the interface
 * ifname at HCT_TC_HANDLE / HCT_TC_PRIORITY. The clsact qdisc is created if missing (and then
 * removed again by hct_close). A filter of ours found there (left by a maglevd that was killed)
 * is replaced, and logged; a filter of another program there is refused (-EBUSY). Returns 0, or
 * a negative errno and one line in err.
 */
int hct_open(struct hct **out, const char *ifname, char *err, size_t errlen);

/* The interface's index and MAC (as read by hct_open). */
int hct_ifindex(const struct hct *t);
const uint8_t *hct_mac(const struct hct *t);

/* The mark (SO_MARK) of the probes of slot (< HCT_SLOTS). */
static inline uint32_t hct_mark(uint32_t slot)
{
	return HCT_MARK_BASE | slot;
}

/*
 * Points slot at backend dst: outer source src (dst's family), TTL ttl, next hop MAC nh_mac
 * (6 bytes), leaving by the interface. 0 or a negative errno.
 */
int hct_set(struct hct *t, uint32_t slot, const struct lb_addr *src, const struct lb_addr *dst,
            uint8_t ttl, const uint8_t *nh_mac);

/* Empties slot: its probes are dropped from now on. 0 or a negative errno. */
int hct_clear(struct hct *t, uint32_t slot);

/* Counter k of the program, summed over CPUs (0 if unreadable). */
uint64_t hct_counter(const struct hct *t, enum hct_counter k);

extern const char *const hct_counter_name[HCT_CTR_MAX];
extern const char *const hct_counter_help[HCT_CTR_MAX];

/* Detaches the filter (and the qdisc if hct_open made it) and frees t; NULL is fine. */
void hct_close(struct hct *t);

#endif
