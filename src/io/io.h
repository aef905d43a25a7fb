/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Packet I/O backends behind one ops struct: AF_XDP (afxdp.c) and AF_PACKET (afpacket.c).
 * A backend owns one interface and one RX/TX queue per worker; the forwarding pipeline never sees
 * which backend it runs on (it gets struct lb_frame and returns enum lb_verdict).
 */
#ifndef MAGLEV_IO_IO_H
#define MAGLEV_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/counter_list.h"
#include "core/addr.h"
#include "core/config.h"
#include "core/pipeline.h"

#define IO_BATCH_MAX  64u /* frames per rx call */
#define IO_QUEUES_MAX 64u /* RX queues (workers) per interface */
#define IO_SELF_MAX   2u  /* own GRE addresses steered for re-target: one IPv4, one IPv6 */

/* Per-queue I/O counters, X(ENUM_SUFFIX, "metric_name", "help text"), next to the pipeline's. */
#define IO_COUNTERS(X)                                                                             \
	X(RX_FRAMES, "io_rx_frames", "Frames received from the interface")                         \
	X(TX_FRAMES, "io_tx_frames", "Frames handed to the interface for sending")                 \
	X(TX_ERRORS, "io_tx_errors", "Frames the interface refused to send (ring full, errors)")   \
	X(PASS_DROPPED, "io_pass_dropped",                                                         \
	  "Frames the pipeline passed that AF_XDP cannot give back to the kernel")                 \
	X(PASS_IGNORED, "io_pass_ignored",                                                         \
	  "Frames the pipeline passed on AF_PACKET (the kernel has its own copy)")                 \
	X(RX_TRUNCATED, "io_rx_truncated", "Frames larger than a receive buffer, dropped")         \
	X(RX_KERNEL_DROPS, "io_rx_kernel_drops",                                                   \
	  "Frames the kernel dropped before maglevd read them (ring full, no free buffer)")        \
	X(NO_SNAPSHOT, "io_no_snapshot", "Frames dropped before the first snapshot was published") \
	X(WAKEUPS, "io_wakeups", "Kernel wake-ups asked for (need_wakeup, TX kicks)")              \
	X(XSK_RX_RING_FULL, "io_xsk_rx_ring_full",                                                 \
	  "AF_XDP: frames the kernel dropped because the RX ring was full")                        \
	X(XSK_RX_DROPPED, "io_xsk_rx_dropped",                                                     \
	  "AF_XDP: frames the kernel dropped for want of a fill-ring frame or as too large")       \
	X(XSK_FILL_EMPTY, "io_xsk_fill_empty",                                                     \
	  "AF_XDP: times the kernel wanted a frame and found the fill ring empty")                 \
	X(XSK_RX_INVALID, "io_xsk_rx_invalid", "AF_XDP: invalid descriptors on the fill ring")     \
	X(XSK_TX_INVALID, "io_xsk_tx_invalid",                                                     \
	  "AF_XDP: invalid descriptors on the TX ring, not sent")                                  \
	X(XDP_PASS_NOT_OUR_MAC, "io_xdp_pass_not_our_mac",                                         \
	  "AF_XDP: frames for a VIP sent to another MAC, left to the kernel by the steering "      \
	  "program (interface-wide, on worker 0)")                                                 \
	X(XDP_DROP_ICMP, "io_xdp_drop_icmp",                                                       \
	  "AF_XDP: ICMP to a VIP address the pipeline only drops (parameter problem, fragments), " \
	  "dropped by the steering program (interface-wide, on worker 0)")                         \
	X(XDP_DROP_SYN_SHED, "io_xdp_drop_syn_shed",                                               \
	  "AF_XDP: SYNs opening connections to a VIP dropped by the steering program while "       \
	  "their queue's worker was behind (interface-wide, on worker 0)")                         \
	X(SYN_SHED_EPISODES, "io_syn_shed_episodes",                                               \
	  "AF_XDP: times the worker's RX ring backed up and it had new SYNs dropped until it "     \
	  "caught up")                                                                             \
	X(XDP_SLOW_SOURCE, "io_xdp_slow_source",                                                   \
	  "xdp mode: new flows from a source no client has, left to the slow path to drop "        \
	  "(interface-wide, on worker 0)")                                                         \
	X(XDP_SLOW_NEXTHOP, "io_xdp_slow_nexthop",                                                 \
	  "xdp mode: packets whose backend has no resolved next hop or no source address, left "   \
	  "to the slow path (interface-wide, on worker 0)")                                        \
	X(XDP_SLOW_TOO_BIG, "io_xdp_slow_too_big",                                                 \
	  "xdp mode: packets too big to encapsulate, left to the slow path to answer ICMP "        \
	  "(interface-wide, on worker 0)")                                                         \
	X(XDP_SLOW_HEADROOM, "io_xdp_slow_headroom",                                               \
	  "xdp mode: packets the driver could not grow for the headers, left to the slow path "    \
	  "(interface-wide, on worker 0)")                                                         \
	X(XDP_CT_OTHER_CPU, "io_xdp_ct_other_cpu",                                                 \
	  "xdp mode: tracked flows whose packet came to another CPU than before, found in that "   \
	  "CPU's part of the kernel's table and copied (interface-wide, on worker 0)")             \
	X(XDP_CT_SEARCH_LIMITED, "io_xdp_ct_search_limited",                                       \
	  "xdp mode: packets of no tracked flow not looked for in the other CPUs' parts of the "   \
	  "kernel's table: 10000 searches a second per CPU at most (interface-wide, on worker 0)")

#define IO_CTR_ROW(id, name, help) IO_CTR_##id,
COUNTER_LIST_DECLARE(io_counter, IO_COUNTERS, IO_CTR_ROW, IO_CTR_MAX);
#undef IO_CTR_ROW

/* One VIP as the steering filter sees it. */
struct io_vip {
	struct lb_addr addr;
	uint8_t proto; /* IPPROTO_TCP / IPPROTO_UDP */
	uint16_t port; /* host order; 0 = every port */
};

/*
 * What a backend steers to maglevd: TCP/UDP to a VIP (port 0 = every port), ICMP/ICMPv6 and
 * fragments to a VIP address, GRE to one of self[] (re-target mode). Everything else stays
 * with the kernel.
 */
struct io_filter {
	const struct io_vip *vips;
	uint32_t n_vips;
	struct lb_addr self[IO_SELF_MAX]; /* family 0 = unused */
};

struct io_params {
	const char *ifname;
	uint32_t queues;      /* RX queues used, one worker each, queue ids 0..queues-1 */
	const char *bpf_path; /* AF_XDP: object file of bpf/xdp_vip.bpf.c (xdp mode: xdp_fwd) */
	/* AF_XDP in xdp mode: the kernel forwards too, with a connection table of this config. */
	const struct config_conntrack *kernel_ct;
	uint8_t mac[6]; /* the interface's MAC (AF_XDP steers only frames sent to it) */
};

struct io_dev;
struct xdpfwd;

/*
 * Threads: open, set_filter, mode, counters, rx_pending and close run on the control thread;
 * rx, tx and wait for queue q run only on worker q. counters and rx_pending may run while
 * workers run: they read with atomic loads (values may lag, never tear).
 */
struct io_ops {
	const char *name;
	/* Opens ifname with p->queues queues; steers nothing until set_filter. err: one line. */
	int (*open)(struct io_dev **out, const struct io_params *p, char *err, size_t errlen);
	/* Replaces the steering filter (atomically for packets: old or new, never half). */
	int (*set_filter)(struct io_dev *d, const struct io_filter *f);
	/*
	 * Receives up to max (≤ IO_BATCH_MAX) frames into f[]. Each has ≥ LB_HEADROOM bytes of
	 * headroom before data that the pipeline may use. Frames stay owned by the backend and
	 * valid until the tx call that follows; every rx must be followed by exactly one tx.
	 */
	unsigned (*rx)(struct io_dev *d, uint32_t q, struct lb_frame *f, unsigned max);
	/* Sends the LB_TX frames of the last rx (f->data/len may have moved), releases all n. */
	void (*tx)(struct io_dev *d, uint32_t q, struct lb_frame *f, const enum lb_verdict *v,
	           unsigned n);
	/* Sleeps until queue q may have frames or timeout_ms passed (no busy spinning). */
	void (*wait)(struct io_dev *d, uint32_t q, int timeout_ms);
	/* Adds queue q's counters to out[IO_CTR_MAX]. */
	void (*counters)(struct io_dev *d, uint32_t q, uint64_t *out);
	/*
	 * True if frames wait on queue q's receive ring for its worker to take them. Runs on the
	 * control thread while the worker runs (the watchdog asks it about a worker whose loop
	 * did not advance): it reads the ring's shared indices or status words with atomic loads
	 * and may be stale by a few frames, never wrong about a ring that stays full.
	 */
	bool (*rx_pending)(struct io_dev *d, uint32_t q);
	/* "afxdp zero-copy", "afxdp copy", "afpacket", with the XDP attach mode if any. */
	const char *(*mode)(const struct io_dev *d);
	/* The kernel's forwarding maps (xdp mode), NULL if the kernel does not forward; optional.
	 */
	struct xdpfwd *(*kernel)(struct io_dev *d);
	/* Logs backend-specific end-of-run facts (kernel drop statistics, frame accounting). */
	void (*report)(struct io_dev *d);
	/* Detaches everything from the interface and frees d; workers must have stopped. */
	void (*close)(struct io_dev *d);
};

extern const struct io_ops io_afxdp_ops;
extern const struct io_ops io_afpacket_ops;

/*
 * Whether ifname's driver takes a zero-copy AF_XDP socket on queue 0: binds one (native XDP,
 * XDP_ZEROCOPY, no program loaded) on a small UMEM and closes it. 1 if it does, 0 if it
 * refuses, negative errno if the probe itself failed. Nothing stays attached either way.
 */
int io_afxdp_zerocopy(const char *ifname);

/*
 * Warns (stderr) when ifname merges received segments (GRO, LRO): AF_PACKET and generic-mode XDP
 * see the merged frames, which are larger than the MTU. who names the backend in the message.
 */
void io_warn_coalescing(const char *ifname, const char *who);

/* Counter helpers for backends: a queue's counters are written by its worker only. */
static inline void io_count(uint64_t *c, enum io_counter id, uint64_t n)
{
	__atomic_store_n(&c[id], __atomic_load_n(&c[id], __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t io_counter_read(const uint64_t *c, enum io_counter id)
{
	return __atomic_load_n(&c[id], __ATOMIC_RELAXED);
}

#endif
