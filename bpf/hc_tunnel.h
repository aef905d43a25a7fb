/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between bpf/hc_tunnel.bpf.c (tc egress: health probes GRE-encapsulated the way the
 * data path sends client packets) and its loader (src/io/hctunnel.c): object, program and map
 * names, where the filter sits, the probe marks and the per-probe destination. Included by both
 * the BPF object and userspace, so it holds only fixed-size kernel UAPI types.
 */
#ifndef MAGLEV_BPF_HC_TUNNEL_H
#define MAGLEV_BPF_HC_TUNNEL_H

#include <linux/types.h>

/* Names user space finds things by (checked on the BPF side with BPF_NAME_IS). */
#define HCT_OBJ_FILE     "hc_tunnel.bpf.o" /* found with bpfobj_path (src/io/bpfobj.h) */
#define HCT_SEC          "tc"              /* ELF section of the program */
#define HCT_PROG_NAME    "hc_tunnel"       /* the program's function name */
#define HCT_MAP_DESTS    "hct_dests"       /* array: slot -> struct hct_dest */
#define HCT_MAP_COUNTERS "hct_counters"    /* per-CPU array of __u64, one per counter */

/*
 * The probe marks (SO_MARK): HCT_MARK_BASE | slot, slot < HCT_SLOTS. A packet whose mark has
 * HCT_MARK_BASE in its HCT_MARK_MASK bits is a probe: encapsulated to its slot's destination, or
 * dropped if the slot is empty (a probe never leaves as a plain packet to the VIP). Every other
 * packet passes untouched. The base spells "MG"; an operator's marks must stay out of
 * 0x4d470000..0x4d47ffff on the dataplane interface.
 */
#define HCT_MARK_BASE 0x4d470000u
#define HCT_MARK_MASK 0xffff0000u
#define HCT_SLOTS     16384u /* probes with a destination at once; HEALTH_CHECKS_MAX */

/*
 * Where the filter sits: the clsact egress hook of the dataplane interface, at this handle and
 * priority (a filter of another name there is not ours and is left alone).
 */
#define HCT_TC_HANDLE   0x4d47u
#define HCT_TC_PRIORITY 0x4d47u

#define HCT_FAMILY_IPV4 4
#define HCT_FAMILY_IPV6 6

/*
 * The outer headers of the probes of one slot, as the data path writes them to that backend
 * (src/core/encap.h): outer family (0 = empty slot), TTL / hop limit, Ethernet addresses, and
 * the outer source and destination (the first 4 bytes for IPv4, the rest zero). The frame leaves
 * by ifindex (redirected when that is not the interface the program runs on).
 */
struct hct_dest {
	__u8 family; /* HCT_FAMILY_IPV4 or HCT_FAMILY_IPV6; 0 = no destination */
	__u8 ttl;
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u8 pad[2];
	__u32 ifindex;
	__u8 src[16];
	__u8 dst[16];
};

/* clang-format off */
/* X(ENUM_SUFFIX, "name", "help"). Every probe packet is counted once; other packets are not. */
#define HCT_COUNTERS(X)                                                                            \
	X(ENCAPSULATED, "health_tunnel_encapsulated",                                              \
	  "Health probe packets sent GRE-encapsulated to their backend (checks through the tunnel)") \
	X(NO_DEST, "health_tunnel_no_destination",                                                 \
	  "Health probe packets whose mark names an empty tunnel slot: dropped")                   \
	X(MALFORMED, "health_tunnel_malformed",                                                    \
	  "Health probe packets that are not Ethernet with a whole IPv4 or IPv6 header: dropped")  \
	X(NO_ROOM, "health_tunnel_no_room",                                                        \
	  "Health probe packets the kernel could not grow by the outer headers: dropped")

enum hct_counter {
#define HCT_COUNTER_ENUM(id, name, help) HCT_CTR_##id,
	HCT_COUNTERS(HCT_COUNTER_ENUM)
#undef HCT_COUNTER_ENUM
	HCT_CTR_MAX
};
/* clang-format on */

#endif
