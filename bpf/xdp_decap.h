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
	  "inner protocol neither IPv4 nor IPv6, passed untouched")

enum decap_counter {
#define DECAP_COUNTER_ENUM(id, name, help) DECAP_CTR_##id,
	DECAP_COUNTERS(DECAP_COUNTER_ENUM)
#undef DECAP_COUNTER_ENUM
	DECAP_CTR_MAX
};
/* clang-format on */

#endif
