/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between the VIP steering program (bpf/xdp_vip.bpf.c) and its loader
 * (src/io/afxdp.c): object, program and map names, map layouts. Fixed-width fields only: the same
 * bytes are read by BPF and by the host.
 */
#ifndef MAGLEV_BPF_XDP_VIP_H
#define MAGLEV_BPF_XDP_VIP_H

#include <linux/types.h>

/*
 * Names user space finds things by. The BPF side declares the program and maps with these
 * identifiers (C needs them literal there) and checks each against its string (BPF_NAME_IS,
 * bpf/names.h), so a rename on one side fails the build.
 */
#define XDP_VIP_OBJ_FILE   "xdp_vip.bpf.o" /* found with bpfobj_path (src/io/bpfobj.h) */
#define XDP_VIP_SEC        "xdp"           /* ELF section of the program */
#define XDP_VIP_PROG_NAME  "xdp_vip"       /* the program's function */
#define XDP_VIP_MAP_VIPS   "vip_map"       /* hash: struct xdp_vip_key -> __u32 (1) */
#define XDP_VIP_MAP_ADDRS  "addr_map"      /* hash: struct xdp_addr_key -> XDP_ADDR_* bits */
#define XDP_VIP_MAP_XSKS   "xsks_map"      /* XSKMAP: RX queue -> AF_XDP socket */
#define XDP_VIP_MAP_STATS  "stats_map"     /* per-CPU array of __u64, enum xdp_vip_stat */
#define XDP_VIP_MAP_CONFIG "config_map"    /* array of one struct xdp_vip_config */
#define XDP_VIP_MAP_SHED   "shed_map"      /* array: RX queue -> __u32, 1 = shed new SYNs */

#define XDP_VIP_MAP_ENTRIES  4096u /* (address, proto, port) VIP entries */
#define XDP_ADDR_MAP_ENTRIES 4096u /* distinct VIP and own addresses */
#define XDP_XSK_MAP_ENTRIES  64u   /* RX queues that can have an AF_XDP socket */

/* Address families as the maps store them (not AF_*: the BPF side has no socket headers). */
#define XDP_FAMILY_IPV4 4
#define XDP_FAMILY_IPV6 6

/* Key of vip_map: a VIP as (destination, protocol, destination port); port 0 = every port. */
struct xdp_vip_key {
	__u8 addr[16]; /* IPv4 in addr[0..3], the rest zero */
	__u8 family;   /* XDP_FAMILY_* */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__be16 port;   /* network order */
};

/* Key of addr_map: one address maglevd answers for. */
struct xdp_addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

/*
 * Value of config_map's one entry (key 0): what user space tells the program about the interface.
 * All zero until set: then no frame is sent to our MAC and everything goes to the kernel.
 */
struct xdp_vip_config {
	/* The interface's MAC: frames for maglevd sent to another MAC go to the kernel. */
	__u8 mac[6];
	__u8 pad[2];
};

/* Value bits of addr_map. */
#define XDP_ADDR_VIP  1u /* a VIP address: ICMP and fragments to it are steered */
#define XDP_ADDR_SELF 2u /* one of our GRE source addresses: GRE to it is steered (re-target) */

/*
 * shed_map: a worker whose RX ring backs up (a flood, or a worker starved of CPU) sets its
 * queue's entry; while it is set, connection-opening SYNs (SYN without ACK) to a VIP on that
 * queue are dropped here, so the ring keeps room for the packets of established connections.
 * The worker clears it once its ring has drained (src/io/afxdp.c, AFXDP_SHED_*).
 */

/*
 * Indexes of the per-CPU stats array. The last two are decisions the pipeline would make the same
 * way (its pass_not_our_mac, drop_icmp_unsupported and drop_icmp_fragment), taken here so such
 * frames never cross to user space.
 */
enum xdp_vip_stat {
	XDP_STAT_REDIRECT,         /* steered to an AF_XDP socket */
	XDP_STAT_NO_SOCKET,        /* for maglevd, its RX queue has no socket: left to the kernel */
	XDP_STAT_PASS,             /* not for maglevd: left to the kernel */
	XDP_STAT_PASS_NOT_OUR_MAC, /* for maglevd but sent to another MAC: left to the kernel */
	XDP_STAT_DROP_ICMP,        /* ICMP to a VIP address maglevd only drops: dropped here */
	XDP_STAT_DROP_SYN_SHED,    /* a SYN to a VIP while its queue's worker is behind: dropped */
	XDP_STAT_MAX
};

#endif
