/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between bpf/xdp_decap.bpf.c (the backend's XDP GRE decapsulation) and its loader
 * (src/io/decap.c, for `maglevctl decap`): object, program and map names, the VIP key layout and
 * the counters. Included by both the BPF object and userspace, so it holds only fixed-size kernel
 * UAPI types.
 */
#ifndef MAGLEV_BPF_XDP_DECAP_H
#define MAGLEV_BPF_XDP_DECAP_H

#include <linux/types.h>

/*
 * Names user space finds things by. The BPF side declares the program and maps with these
 * identifiers (C needs them literal there) and checks each against its string (BPF_NAME_IS,
 * bpf/names.h), so a rename on one side fails the build.
 */
#define DECAP_OBJ_FILE     "xdp_decap.bpf.o" /* found with bpfobj_path (src/io/bpfobj.h) */
#define DECAP_SEC          "xdp"             /* ELF section of the program */
#define DECAP_PROG_NAME    "xdp_decap"       /* the program's function name */
#define DECAP_MAP_VIPS     "decap_vips"      /* hash: struct decap_vip_key -> __u32 (1) */
#define DECAP_MAP_COUNTERS "decap_counters"  /* per-CPU array of __u64, one per counter */
#define DECAP_VIPS_MAX     1024u             /* VIP addresses per program; CONFIG_VIPS_MAX */

/*
 * A VIP as the program looks it up: family 4 with the IPv4 address in addr[0..3] and the rest
 * zero, or family 6 with the IPv6 address. (The family keeps an IPv6 packet to the IPv4-mapped
 * form of an IPv4 VIP from matching it.) pad must be zero.
 */
struct decap_vip_key {
	__u8 family; /* DECAP_FAMILY_IPV4 or DECAP_FAMILY_IPV6 */
	__u8 pad[3];
	__u8 addr[16];
};

#define DECAP_FAMILY_IPV4 4
#define DECAP_FAMILY_IPV6 6

/*
 * Second chance (docs/second-chance.md). GRE from maglevd to a backend of a second-chance VIP may
 * have protocol type DECAP_SC_PROTO and this shim between the GRE header and the inner packet:
 * the flow's previous owner (the secondary), whose address has the outer header's family (4 bytes
 * after the shim under outer IPv4, 16 under IPv6). Network byte order.
 */
#define DECAP_SC_PROTO     0x88b5 /* GRE protocol: IEEE 802 local experimental ethertype 1 */
#define DECAP_SC_VERSION   1u     /* ver_flags >> 4 */
#define DECAP_SC_FORWARDED 0x1u   /* ver_flags & 0xf: sent on by a primary, never again */

struct decap_sc_shim {
	__u8 ver_flags; /* version << 4 | flags */
	__u8 reserved;  /* 0 */
	__be16 proto;   /* ethertype of the inner packet */
};

/* clang-format off */
/*
 * X(ENUM_SUFFIX, "name", "help"). Every frame the program sees is counted exactly once.
 */
#define DECAP_COUNTERS(X)                                                                          \
	X(DECAPSULATED, "decapsulated",                                                            \
	  "GRE frames whose inner destination is a VIP: outer IP and GRE stripped, passed on")   \
	X(PASSED, "passed", "Frames that are not GRE to a VIP, passed untouched")                \
	X(MALFORMED, "malformed",                                                                  \
	  "Frames with truncated or inconsistent outer IP, GRE or inner IP headers, passed "       \
	  "untouched")                                                                             \
	X(UNSUPPORTED, "unsupported",                                                              \
	  "GRE with checksum/key/sequence/routing flags or version != 0, outer IPv4 fragments, "   \
	  "inner protocol neither IPv4 nor IPv6, a second-chance shim of another version, "        \
	  "passed untouched")                                                                      \
	X(SC_LOCAL, "second_chance_local",                                                         \
	  "Frames carrying a secondary whose connection a local socket owns (established, "       \
	  "request or time-wait): decapsulated, passed on")                                        \
	X(SC_SYNCOOKIE, "second_chance_syncookie",                                                 \
	  "Frames carrying a secondary that are the ACK of a SYN cookie of a local listener: "     \
	  "decapsulated, passed on")                                                               \
	X(SC_FORWARDED, "second_chance_forwarded",                                                 \
	  "Frames carrying a secondary that no local socket owns: sent on once to the secondary")  \
	X(SC_RECEIVED, "second_chance_received",                                                   \
	  "Frames a primary sent on to us: decapsulated, passed on, never sent on again")          \
	X(SC_NOT_HANDED, "second_chance_not_handed",                                               \
	  "Frames carrying a secondary that are a SYN, not TCP or an IPv4 fragment (nothing to "   \
	  "ask a socket about): decapsulated, passed on")                                          \
	X(SC_NO_ROUTE, "second_chance_no_route",                                                   \
	  "Frames no local socket owns whose secondary has no route, neighbour or TTL left: "      \
	  "decapsulated, passed on (as without second chance)")                                    \
	X(SC_FWD_DISABLED, "second_chance_forwarding_off",                                         \
	  "Frames no local socket owns, not sent on because IP forwarding is off on the "          \
	  "interface (the FIB lookup needs it): decapsulated, passed on")

enum decap_counter {
#define DECAP_COUNTER_ENUM(id, name, help) DECAP_CTR_##id,
	DECAP_COUNTERS(DECAP_COUNTER_ENUM)
#undef DECAP_COUNTER_ENUM
	DECAP_CTR_MAX
};
/* clang-format on */

#endif
