/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Worker counters, defined once: the enum, the metric name and its help text come from the one
 * X-macro list below so they cannot drift. Every drop and every decision has its own counter.
 * Each worker owns its array and is its only writer (relaxed atomic stores, see LB_CTR_ADD);
 * readers (control thread) load entries with relaxed atomic loads and sum over workers.
 */
#ifndef MAGLEV_CORE_COUNTERS_H
#define MAGLEV_CORE_COUNTERS_H

#include <stdint.h>

#include "base/counter_list.h"

/* X(ENUM_SUFFIX, "metric_name", "help text") */
#define LB_COUNTERS(X)                                                                             \
	X(RX_FRAMES, "rx_frames", "Frames handed to the pipeline")                                 \
	X(PASS_NOT_IP, "pass_not_ip", "Frames neither IPv4 nor IPv6, passed to the kernel")        \
	X(PASS_NOT_VIP, "pass_not_vip", "Frames not for a VIP, passed to the kernel")              \
	X(PASS_ICMP6_ND, "pass_icmp6_nd", "ICMPv6 neighbour discovery to a VIP address, passed")   \
	X(PASS_GRE_NOT_VIP, "pass_gre_not_vip",                                                    \
	  "GRE to our source address whose inner packet is not for a VIP, passed")                 \
	X(PASS_NOT_OUR_MAC, "pass_not_our_mac",                                                    \
	  "Frames for a VIP sent to another destination MAC (broadcast, multicast, another "       \
	  "host's), passed")                                                                       \
	X(DROP_ETH_TRUNCATED, "drop_eth_truncated", "Dropped: shorter than an Ethernet header")    \
	X(DROP_VLAN_TRUNCATED, "drop_vlan_truncated", "Dropped: 802.1Q tag cut short")             \
	X(DROP_IPV4_TRUNCATED, "drop_ipv4_truncated", "Dropped: IPv4 header cut short")            \
	X(DROP_IPV4_BAD_HEADER, "drop_ipv4_bad_header", "Dropped: IPv4 version or IHL invalid")    \
	X(DROP_IPV4_BAD_LEN, "drop_ipv4_bad_len",                                                  \
	  "Dropped: IPv4 total length below IHL or beyond the frame")                              \
	X(DROP_IPV6_TRUNCATED, "drop_ipv6_truncated", "Dropped: IPv6 header cut short")            \
	X(DROP_IPV6_BAD_HEADER, "drop_ipv6_bad_header", "Dropped: IPv6 version invalid")           \
	X(DROP_IPV6_BAD_LEN, "drop_ipv6_bad_len", "Dropped: IPv6 payload length beyond the frame") \
	X(DROP_IPV6_BAD_EXT, "drop_ipv6_bad_ext",                                                  \
	  "Dropped: IPv6 extension header chain cut short or longer than the walk bound")          \
	X(DROP_TCP_TRUNCATED, "drop_tcp_truncated", "Dropped: TCP header to a VIP cut short")      \
	X(DROP_TCP_BAD_HEADER, "drop_tcp_bad_header", "Dropped: TCP data offset invalid")          \
	X(DROP_UDP_TRUNCATED, "drop_udp_truncated", "Dropped: UDP header to a VIP cut short")      \
	X(DROP_UDP_BAD_LEN, "drop_udp_bad_len", "Dropped: UDP length invalid")                     \
	X(DROP_ICMP_TRUNCATED, "drop_icmp_truncated", "Dropped: ICMP header to a VIP cut short")   \
	X(DROP_ICMP_UNSUPPORTED, "drop_icmp_unsupported",                                          \
	  "Dropped: ICMP to a VIP that is neither echo request nor an error about a VIP flow")     \
	X(DROP_ICMP_BAD_EMBEDDED, "drop_icmp_bad_embedded",                                        \
	  "Dropped: ICMP error whose quoted packet is malformed or not from a VIP")                \
	X(DROP_GRE_TRUNCATED, "drop_gre_truncated", "Dropped: GRE header to us cut short")         \
	X(DROP_GRE_UNSUPPORTED, "drop_gre_unsupported",                                            \
	  "Dropped: GRE to us with flags (checksum, key, sequence), version or protocol not "      \
	  "re-targeted")                                                                           \
	X(DROP_BAD_SOURCE, "drop_bad_source",                                                      \
	  "Dropped: source address no client can have (unspecified, loopback, multicast, "         \
	  "broadcast, IPv4-mapped)")                                                               \
	X(DROP_SOURCE_IS_VIP, "drop_source_is_vip",                                                \
	  "Dropped: source address is the VIP address the packet is sent to")                      \
	X(DROP_NO_BACKEND, "drop_no_backend", "Dropped: the VIP has no backend that takes flows")  \
	X(DROP_NEXTHOP_UNRESOLVED, "drop_nexthop_unresolved",                                      \
	  "Dropped: the backend's next-hop MAC is not resolved yet")                               \
	X(DROP_NO_SOURCE_ADDR, "drop_no_source_addr",                                              \
	  "Dropped: no outer source address configured for the backend's family")                  \
	X(DROP_NO_HEADROOM, "drop_no_headroom", "Dropped: frame has too little headroom")          \
	X(DROP_TOO_BIG_NO_DF, "drop_too_big_no_df",                                                \
	  "Dropped: IPv4 without DF too big once encapsulated (the outer is not fragmented)")      \
	X(DROP_TOO_BIG_ICMP, "drop_too_big_icmp",                                                  \
	  "Dropped: ICMP error or re-targeted packet too big to send on")                          \
	X(DROP_ICMP_FRAGMENT, "drop_icmp_fragment", "Dropped: fragmented ICMP to a VIP")           \
	X(TX_GRE_IPV4, "tx_gre_ipv4", "Sent: encapsulated in GRE with outer IPv4")                 \
	X(TX_GRE_IPV6, "tx_gre_ipv6", "Sent: encapsulated in GRE with outer IPv6")                 \
	X(TX_RETARGET, "tx_retarget",                                                              \
	  "Sent: GRE to us re-targeted to a backend (outer rewritten)")                            \
	X(TX_SECOND_CHANCE, "tx_second_chance",                                                    \
	  "Of tx_gre_ipv4/ipv6: carried the flow's previous owner, which the backend hands the "   \
	  "packet to if no local socket owns it (second chance)")                                  \
	X(TX_ICMP_ECHO_REPLY, "tx_icmp_echo_reply", "Sent: ICMP echo reply from a VIP")            \
	X(TX_ICMP6_ECHO_REPLY, "tx_icmp6_echo_reply", "Sent: ICMPv6 echo reply from a VIP")        \
	X(TX_ICMP_FRAG_NEEDED, "tx_icmp_frag_needed",                                              \
	  "Sent: ICMP fragmentation needed to a client")                                           \
	X(TX_ICMP6_TOO_BIG, "tx_icmp6_too_big", "Sent: ICMPv6 packet too big to a client")         \
	X(ICMP_RATE_LIMITED, "icmp_rate_limited",                                                  \
	  "Dropped: too big, and the ICMP error about it was suppressed by the rate limit")        \
	X(ICMP_STEERED, "icmp_steered",                                                            \
	  "ICMP errors about a VIP flow sent to that flow's backend")                              \
	X(FRAGMENTS, "fragments", "IP fragments to a VIP (3-tuple hash, not tracked)")             \
	X(CT_HIT, "ct_hit", "Connection table hits")                                               \
	X(CT_MISS, "ct_miss", "Connection table misses (backend chosen from the Maglev table)")    \
	X(CT_EVICTED, "ct_evicted",                                                                \
	  "Live flows evicted to make room for a new flow (both its buckets were full)")           \
	X(CT_EVICTED_SYN, "ct_evicted_syn",                                                        \
	  "Of ct_evicted: SYN-only TCP flows (only bare SYNs seen)")                               \
	X(CT_EVICTED_ESTABLISHED, "ct_evicted_established",                                        \
	  "Of ct_evicted: flows that were not SYN-only (TCP past its SYN, UDP)")                   \
	X(CT_SYN_UNTRACKED, "ct_syn_untracked",                                                    \
	  "SYN-only new flows not tracked: both their buckets held only live flows past their "    \
	  "SYN")                                                                                   \
	X(CT_MOVED, "ct_moved",                                                                    \
	  "Tracked flows moved to their other bucket to make room for a new flow")                 \
	X(CT_INSERT_LIMITED, "ct_insert_limited",                                                  \
	  "New flows not tracked: conntrack.max_inserts_per_second entries made this second")      \
	X(CT_RECHOSEN, "ct_rechosen",                                                              \
	  "Tracked flows re-chosen: their backend was removed, marked down or replaced")

#define LB_CTR_ROW(id, name, help) LB_CTR_##id,
COUNTER_LIST_DECLARE(lb_counter, LB_COUNTERS, LB_CTR_ROW, LB_CTR_MAX);
#undef LB_CTR_ROW

/*
 * Adds n to a counter that only the calling thread writes. Relaxed load + store (a plain add on
 * x86) so that concurrent relaxed loads by readers are well defined.
 */
#define LB_CTR_ADD(c, n)                                                                           \
	__atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/* Reads a counter another thread writes. */
static inline uint64_t lb_counter_read(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#define LB_COUNTER_COLUMN   28u  /* width the name is padded to in a summary line */
#define LB_COUNTER_LINE_MAX 128u /* bytes of a summary line: a name and a 20-digit value fit */

/*
 * A summary of counters v[0..n) named names[0..n) (any such list: the worker's, I/O, health):
 * "NAME VALUE" with the name padded to LB_COUNTER_COLUMN, one call of line(ctx, text) for each
 * non-zero counter, in list order. v is read with lb_counter_read, so it may be a running
 * worker's array. What maglevd logs at exit and replay's report both print.
 */
void lb_counters_summary(const char *const *names, const uint64_t *v, uint32_t n,
                         void (*line)(void *ctx, const char *text), void *ctx);

#endif
