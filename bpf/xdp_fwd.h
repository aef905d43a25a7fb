/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The contract between the xdp mode's forwarding program (bpf/xdp_fwd.bpf.c) and its loader and
 * publisher (src/io/xdpfwd.c): object, program and map names, map layouts, statistics. The
 * program also has every map of bpf/xdp_vip.h (it steers what it does not forward), filled the
 * same way. Fixed-width fields only: the same bytes are read by BPF and by the host.
 *
 * Generations. What a snapshot publishes (VIPs, backends, next hops, Maglev tables, the hash
 * secret) is written twice over, as generation 0 and 1; xdp_fwd_config.gen says which one
 * packets read, and a packet reads it once. A publication fills the generation packets do not
 * read, switches gen, then waits until no packet can still be reading the old one (an update of
 * an array of maps returns only after an RCU grace period), so the next publication may rewrite
 * it. The connection table is not per generation: its entries name backends by id and tag
 * (LB_BREF), checked against the generation's backends as the userspace pipeline does.
 *
 * The connection table is the userspace table's layout (core/conntrack.h: 8-way buckets, a
 * header of signatures, expiry ticks and flags per bucket, two buckets a flow), one part per
 * possible CPU, each part written only by its CPU's XDP program: fwd_ct_buckets holds the
 * bucket headers, CPU c's part from element c * ct_buckets, and fwd_ct_entries the entries,
 * CT_WAYS a bucket. Headers apart from entries, as in user space, keep the headers a miss reads
 * dense: in interleaved runs of bench_xdp_fwd a new flow cost 163-180 ns this way and 212-228 with
 * 448-byte buckets of header and entries together (which save a TLB miss on a hit out of cache:
 * 1M tracked flows, 430 ns instead of 450). Both are mmapable: user space reads a part with
 * core/conntrack.h's own ct_peek.
 */
#ifndef MAGLEV_BPF_XDP_FWD_H
#define MAGLEV_BPF_XDP_FWD_H

#include <linux/bpf.h>
#include <linux/types.h>

#include "xdp_vip.h"

#define XDP_FWD_OBJ_FILE  "xdp_fwd.bpf.o" /* found with bpfobj_path (src/io/bpfobj.h) */
#define XDP_FWD_SEC       "xdp"           /* ELF section of the program */
#define XDP_FWD_PROG_NAME "xdp_fwd"       /* the program's function */

#define XDP_FWD_MAP_CONFIG     "fwd_config"     /* array of one struct xdp_fwd_config (mmapable) */
#define XDP_FWD_MAP_GENS       "fwd_gens"       /* array [2] of struct xdp_fwd_gen */
#define XDP_FWD_MAP_VIPS       "fwd_vips"       /* hash: struct xdp_fwd_vip_key -> xdp_fwd_vip */
#define XDP_FWD_MAP_BACKENDS   "fwd_backends"   /* array [2 x XDP_FWD_IDS] of xdp_fwd_backend */
#define XDP_FWD_MAP_NEXTHOPS   "fwd_nexthops"   /* array [2 x XDP_FWD_IDS] of __u64 (mmapable) */
#define XDP_FWD_MAP_SLOTS      "fwd_slots"      /* array of maps [2]: a generation's slots */
#define XDP_FWD_MAP_CT_BUCKETS "fwd_ct_buckets" /* array of xdp_fwd_ct_bucket (mmapable) */
#define XDP_FWD_MAP_CT_ENTRIES "fwd_ct_entries" /* array of xdp_fwd_ct_entry (mmapable) */
#define XDP_FWD_MAP_STATS      "fwd_stats"      /* per-CPU array of one struct xdp_fwd_stats */
#define XDP_FWD_MAP_BSTATS     "fwd_bstats"     /* per-CPU array [XDP_FWD_IDS] xdp_fwd_bstats */
#define XDP_FWD_MAP_LIMIT      "fwd_limit"      /* per-CPU array of one struct xdp_fwd_limit */

#define XDP_FWD_GENS        2u     /* generations: the one packets read and the next */
#define XDP_FWD_IDS         65536u /* backend ids (LB_BACKEND_IDS_MAX + 1), next hops too */
#define XDP_FWD_VIPS_MAX    (XDP_FWD_GENS * XDP_VIP_MAP_ENTRIES) /* fwd_vips entries */
#define XDP_FWD_ID_NONE     0xffffu      /* no backend in a slot (LB_BACKEND_NONE) */
#define XDP_FWD_CT_WAYS     8u           /* entries a bucket (CT_WAYS) */
#define XDP_FWD_CT_CPUS_MAX 1024u        /* parts of the connection table the program searches */
#define XDP_FWD_SLOTS_MAX   (1u << 30)   /* slots one generation may have (loader's bound) */
#define XDP_FWD_TICK_SHIFT  20u          /* expiry ticks: 2^20 ns, as the userspace table's */
#define XDP_FWD_NH_VALID    (1ull << 63) /* fwd_nexthops: resolved (as LB_NH_VALID) */

/* fwd_config's one entry: set once at start, except gen (switched by each publication). */
struct xdp_fwd_config {
	__u32 gen; /* the generation packets read: 0 or 1 */
	/* Connection-table timeouts, ticks: as the userspace table turns the config's seconds. */
	__u32 to_tcp, to_tcp_fin, to_tcp_syn, to_udp;
	__u32 max_inserts;  /* new entries a second per CPU (conntrack.max_inserts_per_second) */
	__u32 window_ticks; /* one second in ticks: the window max_inserts counts in */
	__u32 ct_buckets;   /* buckets of one CPU's part of the connection table; 0: none yet */
	__u32 ct_cpus;      /* parts: the possible CPUs */
	__u32 pad;
};

/* One generation's global part. */
struct xdp_fwd_gen {
	/*
	 * The flow hash's secret words: the first 64 bytes of lb_flow_secret_make(hash_seed) as
	 * little-endian 64-bit words, all a 40-byte XXH3 input uses (core/flow.h).
	 */
	__u64 secret[8];
	__u32 n_backends; /* ids [0, n_backends) are written; any other is no backend */
	__u32 pad;
};

/* Key of fwd_vips: a VIP of one generation as (destination, protocol, port); port 0 = every. */
struct xdp_fwd_vip_key {
	__u8 addr[16]; /* IPv4 in addr[0..3], the rest zero */
	__u8 family;   /* XDP_FAMILY_* */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__be16 port;   /* network order */
	__u32 gen;
};

#define XDP_FWD_VIP_SECOND_CHANCE 1u /* lb_vip.second_chance */
/*
 * lb_vip.hash is VIP_HASH_SOURCE: the Maglev slot's hash leaves both ports out of the flow key
 * (lb_flow_key_source: xdp_fwd_key.w[4] & ~XDP_FWD_KEY_PORTS); the connection table keeps the key.
 */
#define XDP_FWD_VIP_HASH_SOURCE 2u
/* The previous table's flows were hashed so (lb_vip.prev.hash): second chance looks up there. */
#define XDP_FWD_VIP_PREV_HASH_SOURCE 4u

/* Value of fwd_vips: where the VIP's tables are in its generation's slot array. */
struct xdp_fwd_vip {
	__u32 table_off, table_size; /* the Maglev table: slots [off, off + size) */
	__u32 prev_off, prev_size;   /* the previous generation's table; size 0: none */
	__u16 index;                 /* the snapshot's VIP index (LB_BACKEND_ACCEPT's vip) */
	__u8 flags;                  /* XDP_FWD_VIP_* */
	__u8 pad;
};

/*
 * fwd_backends[gen * XDP_FWD_IDS + id]: backend id of a generation (struct lb_backend's fields
 * the packet path reads).
 */
struct xdp_fwd_backend {
	__u64 accept;    /* lb_backend.accept: LB_BACKEND_ACCEPT(vip, bref) when in use and up */
	__u32 inner_mtu; /* largest IP packet that fits dataplane.mtu once encapsulated */
	__u32 nexthop;   /* index into the generation's next hops */
	__u32 outer_sum; /* lb_backend.outer_sum */
	__u16 tag;
	__u8 family;     /* XDP_FAMILY_*; 0: the id is free */
	__u8 up;         /* health */
	__u8 has_source; /* an outer source address of the backend's family is configured */
	__u8 pad[3];
	__u8 addr[16];
	__u8 outer[40]; /* lb_backend.outer: the outer IP header template */
};

/*
 * The flow key, core/flow.h's struct lb_flow_key, as the five 64-bit words (of the host's byte
 * order) that the flow hash reads.
 */
struct xdp_fwd_key {
	__u64 w[5];
};

/* The two ports in w[4] (key bytes 32..35 on the little-endian hosts maglevd runs on). */
#define XDP_FWD_KEY_PORTS 0xffffffffull

/* A bucket header: core/conntrack.h's struct ct_bucket, field for field. */
struct xdp_fwd_ct_bucket {
	__u16 sig[XDP_FWD_CT_WAYS];     /* the flow hash's top 16 bits (0 -> 1); 0: an empty way */
	__u32 expires[XDP_FWD_CT_WAYS]; /* tick from which the way is free (modulo 2^32) */
	__u8 flags[XDP_FWD_CT_WAYS];    /* XDP_FWD_CT_F_* */
	__u16 away;  /* ways of other buckets holding a flow whose first bucket is this one */
	__u8 second; /* bit i: way i holds a flow whose first bucket is another */
	__u8 spare[5];
};

/* An entry: core/conntrack.h's struct ct_entry. */
struct xdp_fwd_ct_entry {
	struct xdp_fwd_key key;
	__u32 bref;      /* LB_BREF(id, tag) */
	__u32 secondary; /* second chance's reference, LB_BREF_NONE if none */
};

#define XDP_FWD_FLOW_KEY_LEN 40u
/*
 * A generation's slot array (the inner maps of fwd_slots): backend ids (__u16) four to an
 * element, an array of __u64 whose mmap is the ids in order (a little-endian host's), so that
 * the publisher writes tables with memcpy and a slot costs 2 bytes (an array of __u16 would
 * take 8: elements are 8-byte aligned).
 */
#define XDP_FWD_SLOTS_PER_ELEM 4u
#define XDP_FWD_SLOTS_FLAGS    (BPF_F_INNER_MAP | BPF_F_MMAPABLE) /* theirs and the template's */
#define XDP_FWD_CT_F_FIN       0x01u                              /* FIN or RST seen */
#define XDP_FWD_CT_F_SYN       0x02u       /* SYN-only: bare SYNs seen, evicted first */
#define XDP_FWD_CT_AWAY_STICKY 0xffffu     /* away saturates here (CT_AWAY_STICKY) */
#define XDP_FWD_CT_OTHER_MIX   0x9e3779b1u /* CT_OTHER_MIX */

/* Per backend id, per CPU: as struct lb_backend_counters. */
struct xdp_fwd_bstats {
	__u64 packets, bytes, flows;
};

/*
 * Searches of the other CPUs' parts a second per CPU at most (each reads a bucket header of every
 * other part): a flow moves CPUs rarely (an RSS change), while a flood of packets that miss
 * (spoofed ACKs, new UDP flows) would make every one of them cost (CPUs - 1) cache misses.
 */
#define XDP_FWD_CT_SEARCHES_MAX 10000u

/* Per CPU: the windows of the insert cap and of the searches of other parts. */
struct xdp_fwd_limit {
	__u32 window_start;
	__u32 inserts;
	__u32 search_window_start;
	__u32 searches;
};

/*
 * Indexes of fwd_stats: the pipeline counters of the frames the program forwards or drops
 * itself (src/io/xdpfwd.c adds each to the pipeline counter of the same name), then why frames
 * for a VIP went to the slow path (the AF_XDP socket and the userspace pipeline) instead.
 */
enum xdp_fwd_stat {
	XDP_FWD_RX_FRAMES,
	XDP_FWD_CT_HIT,
	XDP_FWD_CT_MISS,
	XDP_FWD_CT_RECHOSEN,
	XDP_FWD_CT_INSERT_LIMITED,
	XDP_FWD_CT_SYN_UNTRACKED,
	XDP_FWD_CT_EVICTED_SYN,
	XDP_FWD_CT_EVICTED_ESTABLISHED,
	XDP_FWD_TX_GRE_IPV4,
	XDP_FWD_TX_GRE_IPV6,
	XDP_FWD_TX_SECOND_CHANCE,
	XDP_FWD_DROP_NO_BACKEND,
	XDP_FWD_SLOW_SOURCE,   /* a new flow from a source the pipeline refuses */
	XDP_FWD_SLOW_NEXTHOP,  /* the backend's next hop is unresolved, or it has no source */
	XDP_FWD_SLOW_TOO_BIG,  /* too big once encapsulated: the pipeline answers ICMP */
	XDP_FWD_SLOW_HEADROOM, /* the frame could not grow (bpf_xdp_adjust_head refused) */
	XDP_FWD_CT_OTHER_CPU,  /* a flow found in another CPU's part (and copied to this one's) */
	XDP_FWD_CT_SEARCH_LIMITED, /* a miss not searched for: XDP_FWD_CT_SEARCHES_MAX reached */
	XDP_FWD_STAT_MAX
};

/* fwd_stats' one per-CPU value: a frame's counts take one lookup. */
struct xdp_fwd_stats {
	__u64 v[XDP_FWD_STAT_MAX];
};

#endif
