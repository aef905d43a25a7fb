/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * AF_XDP packet I/O (libxdp): our steering program (bpf/xdp_vip.bpf.c) on the interface (loaded
 * through src/io/xdp.c), one UMEM + socket per RX queue, zero-copy when the driver can, copy mode
 * otherwise. In xdp mode the program is bpf/xdp_fwd.bpf.c instead, which forwards plain VIP
 * packets itself and steers the rest to these sockets (the slow path); src/io/xdpfwd.c has its
 * maps.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "base/log.h"
#include "base/util.h"
#include "io/io.h"
#include "io/xdp.h"
#include "io/xdpfwd.h"
#include "bpf/xdp_fwd.h"
#include "bpf/xdp_vip.h" /* names and map layouts shared with the BPF side */

#define AFXDP_FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE /* bytes per UMEM frame */
/*
 * Receive buffering. The fill and RX rings can each hold every UMEM frame: each rx call gives
 * the kernel (on the fill ring) every frame that is neither held by the worker nor on the TX
 * ring, and the kernel can queue all of them on the RX ring before it must drop one, so the
 * frame count is the only limit on a burst the worker has not caught up with. (With rings of
 * half the frames, the RX ring overflowed while the other half sat unused on the fill ring.)
 * In a burst frames arrive faster than a worker drains them, or the worker is off its CPU; on
 * veth its sendto also runs the receivers' network stack (docs/dataplane.md, "Bursts"). At
 * 150 kpps 16384 frames last 109 ms. The cost is locked memory: AFXDP_FRAMES * AFXDP_FRAME_SIZE
 * = 64 MiB per queue.
 */
#define AFXDP_FRAMES       16384u       /* UMEM frames per queue */
#define AFXDP_RX_RING_SIZE AFXDP_FRAMES /* descriptors in the fill and the RX ring */
#define AFXDP_TX_RING_SIZE 4096u        /* descriptors in the TX and the completion ring */

/*
 * SYN shedding (bpf/xdp_vip.h, shed_map). When a worker finds AFXDP_SHED_ON frames waiting on
 * its RX ring, it asks the steering program to drop new connections' SYNs for its queue, so that
 * the ring, which the kernel otherwise fills and then drops from without regard to flows, keeps
 * room for established connections; it stops once the ring is down to AFXDP_SHED_OFF. ON is near
 * the top of the ring so that a burst the ring can absorb is absorbed whole (the reason for its
 * size, above); the frames left above ON are over 40 ms of a flood at the rates this worker
 * drains, while it looks again after every batch. New connections meanwhile see a lost SYN (the
 * client sends it again) rather than established ones seeing lost data.
 */
#define AFXDP_SHED_ON  (AFXDP_RX_RING_SIZE - AFXDP_RX_RING_SIZE / 4u) /* frames waiting: start */
#define AFXDP_SHED_OFF (AFXDP_RX_RING_SIZE / 16u)                     /* frames waiting: stop */

#define AFXDP_WAIT_TX_MS 1 /* poll timeout while TX completions are outstanding */
#define AFXDP_KICKS_MAX  (AFXDP_TX_RING_SIZE / 32u) /* sendto calls per kick: a full TX ring */
/*
 * Copy mode sends at most 32 frames per sendto unless the socket's budget is raised
 * (XDP_MAX_TX_SKB_BUDGET, Linux 6.17; range 32..TX ring size). Older uapi headers lack it.
 */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif
#define AFXDP_TX_BUDGET AFXDP_TX_RING_SIZE /* frames one sendto may send in copy mode */
#define AFXDP_ERR_MAX   256u               /* bytes of the loader's error line */

/*
 * Frame accounting, per queue: every UMEM frame is in exactly one place, so
 *   n_free + in_kernel_fill + in_kernel_tx + held == AFXDP_FRAMES
 * at all times (held = frames between rx and tx on the worker). afxdp_report checks it.
 */
struct afxdp_queue {
	struct afxdp_dev *dev;
	uint32_t id;
	void *area; /* AFXDP_FRAMES * AFXDP_FRAME_SIZE bytes, page aligned */
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	uint64_t free[AFXDP_FRAMES]; /* stack of frame base addresses owned by user space */
	uint32_t n_free;
	uint32_t in_kernel_fill; /* given on the fill ring, not yet seen on RX */
	uint32_t in_kernel_tx;   /* put on the TX ring, not yet seen on the completion ring */
	uint32_t held;           /* received and not yet released by tx */
	bool zerocopy;
	bool tx_budget; /* XDP_MAX_TX_SKB_BUDGET accepted: one sendto drains the TX ring */
	bool shedding;  /* shed_map says drop new SYNs for this queue */
	uint64_t ctr[IO_CTR_MAX];
};

struct afxdp_dev {
	char ifname[IF_NAMESIZE];
	int ifindex;
	struct xprog xp;    /* the steering program, attached */
	struct xdpfwd *fwd; /* xdp mode: its forwarding maps; NULL in afxdp mode */
	int vip_map_fd, addr_map_fd, xsks_map_fd, stats_map_fd, shed_map_fd;
	struct xdp_vip_key *vip_keys; /* what vip_map holds now */
	uint32_t n_vip_keys;
	struct xdp_addr_key *addr_keys; /* what addr_map holds now */
	uint32_t *addr_flags;           /* and with which XDP_ADDR_* bits */
	uint32_t n_addr_keys;
	uint32_t n_queues;
	struct afxdp_queue *queues[IO_QUEUES_MAX];
	char mode[64];
};

static uint32_t afxdp_rx_queues(const char *ifname)
{
	char path[128];
	uint32_t n = 0;

	for (uint32_t i = 0; i < IO_QUEUES_MAX; i++) {
		snprintf(path, sizeof(path), "/sys/class/net/%s/queues/rx-%u", ifname, i);
		if (access(path, F_OK) != 0)
			break;
		n++;
	}
	return n;
}

static void afxdp_fill(struct afxdp_queue *q)
{
	uint32_t idx, n = q->n_free;

	if (n == 0)
		return;
	/* reserve is all or nothing: ask for what the ring has room for. */
	n = xsk_prod_nb_free(&q->fill, n);
	if (n > q->n_free)
		n = q->n_free;
	n = xsk_ring_prod__reserve(&q->fill, n, &idx);
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = q->free[--q->n_free];
	xsk_ring_prod__submit(&q->fill, n);
	q->in_kernel_fill += n;
	if (n && xsk_ring_prod__needs_wakeup(&q->fill)) {
		io_count(q->ctr, IO_CTR_WAKEUPS, 1);
		recvfrom(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
}

static void afxdp_complete(struct afxdp_queue *q)
{
	uint32_t idx, n = xsk_ring_cons__peek(&q->comp, AFXDP_TX_RING_SIZE, &idx);

	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = *xsk_ring_cons__comp_addr(&q->comp, idx + i);

		q->free[q->n_free++] = addr & ~(uint64_t)(AFXDP_FRAME_SIZE - 1);
	}
	xsk_ring_cons__release(&q->comp, n);
	q->in_kernel_tx -= n;
}

/* True if the TX ring holds descriptors the kernel has not consumed yet. */
static bool afxdp_tx_pending(struct afxdp_queue *q)
{
	return xsk_prod_nb_free(&q->tx, AFXDP_TX_RING_SIZE) < AFXDP_TX_RING_SIZE;
}

/*
 * Asks the kernel to send what is on the TX ring. In copy mode each sendto sends a bounded batch
 * (32 frames, or AFXDP_TX_BUDGET where the kernel takes XDP_MAX_TX_SKB_BUDGET) and says EAGAIN
 * when more is left, so it is repeated until the ring is drained or the device pushes back;
 * frames left over stay on the ring for the next kick.
 */
static void afxdp_kick_tx(struct afxdp_queue *q)
{
	if (!xsk_ring_prod__needs_wakeup(&q->tx))
		return;
	for (uint32_t i = 0; i < AFXDP_KICKS_MAX; i++) {
		io_count(q->ctr, IO_CTR_WAKEUPS, 1);
		if (sendto(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ||
		    errno != EAGAIN)
			break;
	}
}

/*
 * Starts or stops SYN shedding for q from the frames waiting on its RX ring (the kernel's
 * producer index against ours). A map update only when the state changes; if it fails the state
 * stays as it was and the next call tries again.
 */
static void afxdp_shed(struct afxdp_queue *q)
{
	uint32_t waiting = __atomic_load_n(q->rx.producer, __ATOMIC_ACQUIRE) - q->rx.cached_cons;
	bool want = q->shedding ? waiting > AFXDP_SHED_OFF : waiting >= AFXDP_SHED_ON;
	uint32_t key = q->id, v = want;

	if (__builtin_expect(want == q->shedding, 1))
		return;
	if (bpf_map_update_elem(q->dev->shed_map_fd, &key, &v, BPF_ANY) != 0)
		return;
	q->shedding = want;
	if (want)
		io_count(q->ctr, IO_CTR_SYN_SHED_EPISODES, 1);
}

static unsigned afxdp_rx(struct io_dev *d, uint32_t qid, struct lb_frame *f, unsigned max)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;
	struct afxdp_queue *q = dev->queues[qid];
	uint32_t idx, n;

	afxdp_complete(q);
	afxdp_fill(q);
	n = xsk_ring_cons__peek(&q->rx, max, &idx);
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint64_t base = desc->addr & ~(uint64_t)(AFXDP_FRAME_SIZE - 1);

		f[i].data = (uint8_t *)q->area + desc->addr;
		f[i].len = desc->len;
		f[i].headroom = (uint32_t)(desc->addr - base);
	}
	xsk_ring_cons__release(&q->rx, n);
	afxdp_shed(q);
	q->in_kernel_fill -= n;
	q->held += n;
	io_count(q->ctr, IO_CTR_RX_FRAMES, n);
	return n;
}

static void afxdp_tx(struct io_dev *d, uint32_t qid, struct lb_frame *f, const enum lb_verdict *v,
                     unsigned n)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;
	struct afxdp_queue *q = dev->queues[qid];
	uint32_t idx = 0, want = 0, sent = 0, room = 0;

	for (unsigned i = 0; i < n; i++)
		want += v[i] == LB_TX;
	if (want) {
		/* reserve is all or nothing: take what the ring has room for, drop the rest. */
		room = xsk_prod_nb_free(&q->tx, want);
		if (room < want) {
			afxdp_kick_tx(q);
			afxdp_complete(q);
			room = xsk_prod_nb_free(&q->tx, want);
		}
		if (room > want)
			room = want;
		room = xsk_ring_prod__reserve(&q->tx, room, &idx);
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = (uint64_t)(f[i].data - (uint8_t *)q->area);

		if (v[i] == LB_TX && sent < room) {
			struct xdp_desc *desc = xsk_ring_prod__tx_desc(&q->tx, idx + sent++);

			/* Same frame; data may have moved into the headroom: new offset. */
			desc->addr = addr;
			desc->len = f[i].len;
			continue;
		}
		if (v[i] == LB_TX)
			io_count(q->ctr, IO_CTR_TX_ERRORS, 1);
		else if (v[i] == LB_PASS)
			io_count(q->ctr, IO_CTR_PASS_DROPPED, 1);
		q->free[q->n_free++] = addr & ~(uint64_t)(AFXDP_FRAME_SIZE - 1);
	}
	q->held -= n;
	if (sent) {
		xsk_ring_prod__submit(&q->tx, sent);
		q->in_kernel_tx += sent;
		io_count(q->ctr, IO_CTR_TX_FRAMES, sent);
		afxdp_kick_tx(q);
	}
}

static void afxdp_wait(struct io_dev *d, uint32_t qid, int timeout_ms)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;
	struct afxdp_queue *q = dev->queues[qid];
	struct pollfd pfd = {.fd = xsk_socket__fd(q->xsk), .events = POLLIN};

	/*
	 * Frames waiting for TX completion come back without an RX event: look again soon. Kick
	 * only when the TX ring still holds descriptors the kernel has not taken (a device that
	 * pushed back); frames already taken complete without a syscall from us.
	 */
	if (q->in_kernel_tx) {
		if (afxdp_tx_pending(q))
			afxdp_kick_tx(q);
		if (timeout_ms > AFXDP_WAIT_TX_MS)
			timeout_ms = AFXDP_WAIT_TX_MS;
	}
	poll(&pfd, 1, timeout_ms);
}

static uint64_t afxdp_stat(const struct afxdp_dev *dev, uint32_t k);

static void afxdp_counters(struct io_dev *d, uint32_t qid, uint64_t *out)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;
	struct afxdp_queue *q = dev->queues[qid];
	struct xdp_statistics st = {0};
	socklen_t len = sizeof(st);

	for (int i = 0; i < IO_CTR_MAX; i++)
		out[i] += io_counter_read(q->ctr, i);
	/*
	 * Cumulative in the kernel; reading them does not disturb the worker. In copy mode a frame
	 * dropped for an empty fill ring counts in both rx_dropped and fill-empty.
	 */
	if (getsockopt(xsk_socket__fd(q->xsk), SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
		out[IO_CTR_RX_KERNEL_DROPS] += st.rx_dropped + st.rx_ring_full;
		out[IO_CTR_XSK_RX_RING_FULL] += st.rx_ring_full;
		out[IO_CTR_XSK_RX_DROPPED] += st.rx_dropped;
		out[IO_CTR_XSK_FILL_EMPTY] += st.rx_fill_ring_empty_descs;
		out[IO_CTR_XSK_RX_INVALID] += st.rx_invalid_descs;
		out[IO_CTR_XSK_TX_INVALID] += st.tx_invalid_descs;
	}
	/*
	 * The steering program's decisions that stand for the pipeline's: per CPU, not per queue,
	 * so the interface's totals are reported once, with queue 0.
	 */
	if (qid == 0) {
		out[IO_CTR_XDP_PASS_NOT_OUR_MAC] += afxdp_stat(dev, XDP_STAT_PASS_NOT_OUR_MAC);
		out[IO_CTR_XDP_DROP_ICMP] += afxdp_stat(dev, XDP_STAT_DROP_ICMP);
		out[IO_CTR_XDP_DROP_SYN_SHED] += afxdp_stat(dev, XDP_STAT_DROP_SYN_SHED);
		if (dev->fwd) {
			struct xdpfwd_slow sl;

			xdpfwd_slow_counters(dev->fwd, &sl);
			out[IO_CTR_XDP_SLOW_SOURCE] += sl.source;
			out[IO_CTR_XDP_SLOW_NEXTHOP] += sl.nexthop;
			out[IO_CTR_XDP_SLOW_TOO_BIG] += sl.too_big;
			out[IO_CTR_XDP_SLOW_HEADROOM] += sl.headroom;
			out[IO_CTR_XDP_CT_OTHER_CPU] += sl.ct_other_cpu;
			out[IO_CTR_XDP_CT_SEARCH_LIMITED] += sl.ct_search_limited;
		}
	}
}

static struct xdpfwd *afxdp_kernel(struct io_dev *d)
{
	return ((struct afxdp_dev *)d)->fwd;
}

/*
 * The kernel's producer index against the worker's released consumer index: both live in the
 * ring's shared memory (the worker publishes its consumer with a release store on every rx), so
 * this is what the kernel sees too. Frames the worker took but has not processed yet are not
 * counted; a worker stuck on them stops the frames behind them, which are.
 */
static bool afxdp_rx_pending(struct io_dev *d, uint32_t qid)
{
	struct afxdp_queue *q = ((struct afxdp_dev *)d)->queues[qid];

	return __atomic_load_n(q->rx.producer, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(q->rx.consumer, __ATOMIC_ACQUIRE);
}

static const char *afxdp_mode(const struct io_dev *d)
{
	return ((const struct afxdp_dev *)d)->mode;
}

static void afxdp_queue_free(struct afxdp_queue *q)
{
	if (!q)
		return;
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area)
		munmap(q->area, (size_t)AFXDP_FRAMES * AFXDP_FRAME_SIZE);
	free(q);
}

#define AFXDP_PROBE_FRAMES 64u /* the zero-copy probe's UMEM, frames */

int io_afxdp_zerocopy(const char *ifname)
{
	const struct xsk_umem_config ucfg = {
	    .fill_size = AFXDP_PROBE_FRAMES,
	    .comp_size = AFXDP_PROBE_FRAMES,
	    .frame_size = AFXDP_FRAME_SIZE,
	};
	const struct xsk_socket_config scfg = {
	    .rx_size = AFXDP_PROBE_FRAMES,
	    .tx_size = AFXDP_PROBE_FRAMES,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .xdp_flags = XDP_FLAGS_DRV_MODE,
	    .bind_flags = XDP_ZEROCOPY,
	};
	size_t size = (size_t)AFXDP_PROBE_FRAMES * AFXDP_FRAME_SIZE;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_socket *xsk = NULL;
	struct xsk_umem *umem = NULL;
	void *area;
	int rc;

	area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return -errno;
	rc = xsk_umem__create(&umem, area, size, &fill, &comp, &ucfg);
	if (!rc) {
		rc = xsk_socket__create(&xsk, ifname, 0, umem, &rx, &tx, &scfg);
		/* Refusals of zero-copy itself; anything else is the probe's own failure. */
		rc = rc == 0                                                          ? 1
		     : (rc == -EOPNOTSUPP || rc == -EINVAL || rc == -EPROTONOSUPPORT) ? 0
		                                                                      : rc;
	}
	if (xsk)
		xsk_socket__delete(xsk);
	if (umem)
		xsk_umem__delete(umem);
	munmap(area, size);
	return rc;
}

static int afxdp_queue_open(struct afxdp_dev *dev, uint32_t id, struct afxdp_queue **out, char *err,
                            size_t errlen)
{
	const struct xsk_umem_config ucfg = {
	    .fill_size = AFXDP_RX_RING_SIZE,
	    .comp_size = AFXDP_TX_RING_SIZE,
	    .frame_size = AFXDP_FRAME_SIZE,
	    .frame_headroom = LB_HEADROOM,
	};
	struct xsk_socket_config scfg = {
	    .rx_size = AFXDP_RX_RING_SIZE,
	    .tx_size = AFXDP_TX_RING_SIZE,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .xdp_flags = dev->xp.mode == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE,
	};
	struct afxdp_queue *q;
	size_t size = (size_t)AFXDP_FRAMES * AFXDP_FRAME_SIZE;
	int fd, rc;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->id = id;
	q->area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		rc = -errno;
		snprintf(err, errlen, "afxdp: queue %u: cannot map %zu bytes of UMEM: %s", id, size,
		         strerror(-rc));
		goto out;
	}
	rc = xsk_umem__create(&q->umem, q->area, size, &q->fill, &q->comp, &ucfg);
	if (rc) {
		q->umem = NULL;
		snprintf(err, errlen, "afxdp: queue %u: cannot create UMEM: %s", id, strerror(-rc));
		goto out;
	}
	/* Zero-copy needs driver support and native XDP; veth and SKB mode fall back to copy. */
	rc = -EOPNOTSUPP;
	if (dev->xp.mode == XDP_MODE_NATIVE) {
		scfg.bind_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY;
		rc = xsk_socket__create(&q->xsk, dev->ifname, id, q->umem, &q->rx, &q->tx, &scfg);
		q->zerocopy = rc == 0;
	}
	if (rc) {
		scfg.bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
		rc = xsk_socket__create(&q->xsk, dev->ifname, id, q->umem, &q->rx, &q->tx, &scfg);
	}
	if (rc) {
		q->xsk = NULL;
		snprintf(err, errlen, "afxdp: %s queue %u: cannot create AF_XDP socket: %s",
		         dev->ifname, id, strerror(-rc));
		goto out;
	}
	fd = xsk_socket__fd(q->xsk);
	if (!q->zerocopy) {
		uint32_t budget = AFXDP_TX_BUDGET;

		/* Optional: an older kernel refuses it (ENOPROTOOPT) and sends 32 per sendto. */
		q->tx_budget =
		    setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget)) == 0;
	}
	if (bpf_map_update_elem(dev->xsks_map_fd, &id, &fd, BPF_ANY)) {
		rc = -errno;
		snprintf(err, errlen,
		         "afxdp: %s queue %u: cannot add socket to " XDP_VIP_MAP_XSKS ": %s",
		         dev->ifname, id, strerror(-rc));
		goto out;
	}
	for (uint32_t i = 0; i < AFXDP_FRAMES; i++)
		q->free[q->n_free++] = (uint64_t)(AFXDP_FRAMES - 1 - i) * AFXDP_FRAME_SIZE;
	afxdp_fill(q);
	*out = q;
	return 0;
out:
	afxdp_queue_free(q);
	return rc;
}

/* Sums one entry of the steering program's per-CPU stats_map; 0 if it cannot be read. */
static uint64_t afxdp_stat(const struct afxdp_dev *dev, uint32_t k)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t *v, sum = 0;

	if (ncpus <= 0 || !(v = calloc((size_t)ncpus, sizeof(*v))))
		return 0;
	if (bpf_map_lookup_elem(dev->stats_map_fd, &k, v) == 0)
		for (int i = 0; i < ncpus; i++)
			sum += v[i];
	free(v);
	return sum;
}

static void afxdp_report(struct io_dev *d)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;

	log_info(
	    "afxdp: steering program: %llu frames redirected, %llu for a queue "
	    "without a socket, %llu passed to the kernel, %llu for a VIP to another MAC passed, "
	    "%llu ICMP dropped, %llu SYNs shed",
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_REDIRECT),
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_NO_SOCKET),
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_PASS),
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_PASS_NOT_OUR_MAC),
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_DROP_ICMP),
	    (unsigned long long)afxdp_stat(dev, XDP_STAT_DROP_SYN_SHED));
	for (uint32_t i = 0; i < dev->n_queues; i++) {
		struct afxdp_queue *q = dev->queues[i];
		struct xdp_statistics st = {0};
		socklen_t len = sizeof(st);
		uint32_t total;

		if (!q)
			continue;
		afxdp_complete(q);
		total = q->n_free + q->in_kernel_fill + q->in_kernel_tx + q->held;
		log_msg(total == AFXDP_FRAMES ? LOG_LEVEL_INFO : LOG_LEVEL_ERR,
		        "afxdp: queue %u frames accounted %u/%u (free %u, fill %u, tx %u)%s", i,
		        total, AFXDP_FRAMES, q->n_free, q->in_kernel_fill, q->in_kernel_tx,
		        total == AFXDP_FRAMES ? "" : " LEAK");
		if (getsockopt(xsk_socket__fd(q->xsk), SOL_XDP, XDP_STATISTICS, &st, &len) == 0 &&
		    (st.rx_dropped || st.rx_invalid_descs || st.tx_invalid_descs ||
		     st.rx_ring_full || st.rx_fill_ring_empty_descs))
			log_info("afxdp: queue %u kernel: rx_dropped %llu rx_invalid %llu "
			         "tx_invalid %llu rx_ring_full %llu fill_empty %llu",
			         i, (unsigned long long)st.rx_dropped,
			         (unsigned long long)st.rx_invalid_descs,
			         (unsigned long long)st.tx_invalid_descs,
			         (unsigned long long)st.rx_ring_full,
			         (unsigned long long)st.rx_fill_ring_empty_descs);
	}
}

static void afxdp_close(struct io_dev *d)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;

	if (!dev)
		return;
	for (uint32_t i = 0; i < dev->n_queues; i++)
		afxdp_queue_free(dev->queues[i]);
	xdpfwd_close(dev->fwd);
	if (dev->xp.prog) {
		int rc = xprog_detach(&dev->xp);

		if (rc)
			log_err("afxdp: cannot detach XDP program from %s: %s", dev->ifname,
			        strerror(-rc));
	}
	free(dev->vip_keys);
	free(dev->addr_keys);
	free(dev->addr_flags);
	free(dev);
}

static int afxdp_map_fd(struct afxdp_dev *dev, const char *name, char *err, size_t errlen)
{
	int fd = xprog_obj_map_fd(&dev->xp, name);

	if (fd < 0)
		snprintf(err, errlen, "afxdp: XDP program has no map '%s'", name);
	return fd;
}

/* Tells the steering program our MAC (until then it redirects nothing: no frame is to MAC 0). */
static int afxdp_config_set(struct afxdp_dev *dev, const uint8_t mac[6], char *err, size_t errlen)
{
	struct xdp_vip_config c = {0};
	uint32_t zero = 0;
	int fd = afxdp_map_fd(dev, XDP_VIP_MAP_CONFIG, err, errlen);

	if (fd < 0)
		return -ENOENT;
	memcpy(c.mac, mac, sizeof(c.mac));
	if (bpf_map_update_elem(fd, &zero, &c, BPF_ANY)) {
		int rc = -errno;

		snprintf(err, errlen,
		         "afxdp: cannot write the XDP program's " XDP_VIP_MAP_CONFIG ": %s",
		         strerror(-rc));
		return rc;
	}
	return 0;
}

/*
 * Our steering program: named xdp_vip and using maps with all four of these names (a program of
 * another project that happens to be called xdp_vip is left alone). config_map is not asked
 * for: a maglevd of before it may have left its program.
 */
static const char *const afxdp_prog_maps[] = {XDP_VIP_MAP_VIPS, XDP_VIP_MAP_ADDRS, XDP_VIP_MAP_XSKS,
                                              XDP_VIP_MAP_STATS};
/* The xdp mode's program, xdp_fwd: its own maps besides the steering ones. */
static const char *const afxdp_fwd_maps[] = {XDP_VIP_MAP_VIPS, XDP_VIP_MAP_XSKS, XDP_FWD_MAP_VIPS,
                                             XDP_FWD_MAP_CT_BUCKETS};
static const struct xprog_match afxdp_matches[] = {
    {.name = XDP_VIP_PROG_NAME, .maps = afxdp_prog_maps, .n_maps = ARRAY_SIZE(afxdp_prog_maps)},
    {.name = XDP_FWD_PROG_NAME, .maps = afxdp_fwd_maps, .n_maps = ARRAY_SIZE(afxdp_fwd_maps)},
};

/*
 * A maglevd that died without stopping (SIGKILL, crash, OOM) leaves its program (xdp_vip, or
 * xdp_fwd in xdp mode) attached to its interface: the kernel keeps it without any process.
 * Detaches it, alone or as a component of a libxdp dispatcher, when no other process holds it; a
 * running maglevd on this interface holds it, and then the start is refused. Any other program
 * is left to the attach, which refuses. Only dev->ifindex is looked at.
 */
static int afxdp_remove_stale_one(struct afxdp_dev *dev, const struct xprog_match *m, char *err,
                                  size_t errlen)
{
	struct xprog_found f;
	uint32_t id;
	long pid;
	int rc = 0;

	/* Not there (or unreadable: the attach reports it). */
	if (xprog_find(dev->ifindex, m, &f) <= 0)
		goto out;
	id = xdp_program__id(f.prog);
	pid = xprog_holder(id);
	if (pid) {
		rc = -EBUSY;
		snprintf(err, errlen,
		         "afxdp: cannot attach XDP program to '%s': its %s (prog id %u) is held by "
		         "process %ld (another maglevd on this interface?)",
		         dev->ifname, m->name, id, pid);
		goto out;
	}
	log_warn("removing %s left attached to %s by a previous maglevd (prog id %u)", m->name,
	         dev->ifname, id);
	rc = xprog_found_detach(&f, dev->ifindex);
	if (rc)
		snprintf(err, errlen, "afxdp: cannot remove %s (prog id %u) from '%s': %s", m->name,
		         id, dev->ifname, strerror(-rc));
out:
	xprog_found_close(&f);
	return rc;
}

static int afxdp_remove_stale(struct afxdp_dev *dev, char *err, size_t errlen)
{
	for (unsigned i = 0; i < ARRAY_SIZE(afxdp_matches); i++) {
		int rc = afxdp_remove_stale_one(dev, &afxdp_matches[i], err, errlen);

		if (rc)
			return rc;
	}
	return 0;
}

/* xdp mode: sizes the connection-table maps before the object loads. */
static int afxdp_fwd_prepare(struct bpf_object *obj, void *arg)
{
	return xdpfwd_size(obj, arg);
}

static int afxdp_open(struct io_dev **out, const struct io_params *p, char *err, size_t errlen)
{
	struct afxdp_dev *dev;
	char why[AFXDP_ERR_MAX];
	bool load_failed;
	uint32_t rxq;
	int rc, n;

	if (p->queues == 0 || p->queues > IO_QUEUES_MAX) {
		snprintf(err, errlen, "afxdp: %u workers: must be 1..%u", p->queues, IO_QUEUES_MAX);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	snprintf(dev->ifname, sizeof(dev->ifname), "%s", p->ifname);
	dev->ifindex = (int)if_nametoindex(p->ifname);
	if (dev->ifindex == 0) {
		rc = -ENODEV;
		snprintf(err, errlen, "afxdp: no such interface '%s'", p->ifname);
		goto out;
	}
	rxq = afxdp_rx_queues(p->ifname);
	if (rxq && p->queues > rxq) {
		rc = -EINVAL;
		snprintf(err, errlen, "afxdp: %u workers but '%s' has %u RX queues", p->queues,
		         p->ifname, rxq);
		goto out;
	}
	/* The steering program passes VIP traffic of a queue without a socket to the kernel. */
	if (rxq > p->queues)
		log_warn(
		    "afxdp: '%s' has %u RX queues but there are %u workers: "
		    "VIP packets arriving on queues %u..%u are not seen; set dataplane.workers "
		    "to %u or 'ethtool -L %s combined %u'",
		    p->ifname, rxq, p->queues, p->queues, rxq - 1, rxq, p->ifname, p->queues);
	rc = afxdp_remove_stale(dev, err, errlen);
	if (rc)
		goto out;
	/* Native XDP first (needed for zero-copy), generic SKB mode when the driver refuses. */
	rc = xprog_attach_prepared(&dev->xp, p->bpf_path, p->kernel_ct ? XDP_FWD_SEC : XDP_VIP_SEC,
	                           dev->ifindex, XPROG_MODE_AUTO,
	                           p->kernel_ct ? afxdp_fwd_prepare : NULL, (void *)p->kernel_ct,
	                           &load_failed, why, sizeof(why));
	if (rc) {
		if (load_failed)
			xprog_log_dump(LOG_LEVEL_ERR); /* the verifier's or libbpf's reasons */
		snprintf(err, errlen, "afxdp: %s", why);
		goto out;
	}
	if ((dev->vip_map_fd = afxdp_map_fd(dev, XDP_VIP_MAP_VIPS, err, errlen)) < 0 ||
	    (dev->addr_map_fd = afxdp_map_fd(dev, XDP_VIP_MAP_ADDRS, err, errlen)) < 0 ||
	    (dev->xsks_map_fd = afxdp_map_fd(dev, XDP_VIP_MAP_XSKS, err, errlen)) < 0 ||
	    (dev->stats_map_fd = afxdp_map_fd(dev, XDP_VIP_MAP_STATS, err, errlen)) < 0 ||
	    (dev->shed_map_fd = afxdp_map_fd(dev, XDP_VIP_MAP_SHED, err, errlen)) < 0) {
		rc = -ENOENT;
		goto out;
	}
	rc = afxdp_config_set(dev, p->mac, err, errlen);
	if (rc)
		goto out;
	if (p->kernel_ct) {
		rc = xdpfwd_open(&dev->fwd, xdp_program__bpf_obj(dev->xp.prog), p->kernel_ct, err,
		                 errlen);
		if (rc)
			goto out;
	}
	for (uint32_t i = 0; i < p->queues; i++) {
		rc = afxdp_queue_open(dev, i, &dev->queues[i], err, errlen);
		if (rc)
			goto out;
		dev->n_queues = i + 1;
	}
	/* Native XDP runs before GRO; generic XDP sees merged frames. */
	if (dev->xp.mode == XDP_MODE_SKB)
		io_warn_coalescing(p->ifname, "afxdp in generic XDP mode");
	if (dev->fwd)
		n = snprintf(dev->mode, sizeof(dev->mode), "xdp (%s XDP), slow path afxdp %s",
		             dev->xp.mode == XDP_MODE_NATIVE ? "native" : "generic",
		             dev->queues[0]->zerocopy ? "zero-copy" : "copy");
	else
		n = snprintf(dev->mode, sizeof(dev->mode), "afxdp %s (%s XDP)",
		             dev->queues[0]->zerocopy ? "zero-copy" : "copy",
		             dev->xp.mode == XDP_MODE_NATIVE ? "native" : "generic");
	if (dev->queues[0]->tx_budget && n > 0 && (size_t)n < sizeof(dev->mode))
		snprintf(dev->mode + n, sizeof(dev->mode) - (size_t)n, ", %u frames a sendto",
		         AFXDP_TX_BUDGET);
	*out = (struct io_dev *)dev;
	return 0;
out:
	afxdp_close((struct io_dev *)dev);
	return rc;
}

static void afxdp_vip_key(struct xdp_vip_key *k, const struct io_vip *v)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, v->addr.b, lb_addr_len(&v->addr));
	k->family = v->addr.family == AF_INET ? XDP_FAMILY_IPV4 : XDP_FAMILY_IPV6;
	k->proto = v->proto;
	k->port = htons(v->port);
}

static void afxdp_addr_key(struct xdp_addr_key *k, const struct lb_addr *a)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, a->b, lb_addr_len(a));
	k->family = a->family == AF_INET ? XDP_FAMILY_IPV4 : XDP_FAMILY_IPV6;
}

/* Adds to addr_keys (deduplicated) with its flag bits OR-ed into flags[]. */
static void afxdp_addr_add(struct xdp_addr_key *keys, uint32_t *flags, uint32_t *n,
                           const struct lb_addr *a, uint32_t flag)
{
	struct xdp_addr_key k;

	afxdp_addr_key(&k, a);
	for (uint32_t i = 0; i < *n; i++) {
		if (memcmp(&keys[i], &k, sizeof(k)) == 0) {
			flags[i] |= flag;
			return;
		}
	}
	keys[*n] = k;
	flags[(*n)++] = flag;
}

static bool afxdp_vip_known(const struct afxdp_dev *dev, const struct xdp_vip_key *k)
{
	for (uint32_t i = 0; i < dev->n_vip_keys; i++)
		if (memcmp(&dev->vip_keys[i], k, sizeof(*k)) == 0)
			return true;
	return false;
}

static int afxdp_addr_known(const struct afxdp_dev *dev, const struct xdp_addr_key *k)
{
	for (uint32_t i = 0; i < dev->n_addr_keys; i++)
		if (memcmp(&dev->addr_keys[i], k, sizeof(*k)) == 0)
			return (int)i;
	return -1;
}

/*
 * Deletes the entries of vk/ak that the current filter does not have and rewrites the flags of
 * those it has (the failed update may have overwritten them).
 */
static void afxdp_maps_restore(struct afxdp_dev *dev, const struct xdp_vip_key *vk, uint32_t n_vk,
                               const struct xdp_addr_key *ak, uint32_t n_ak)
{
	for (uint32_t i = 0; i < n_vk; i++)
		if (!afxdp_vip_known(dev, &vk[i]))
			bpf_map_delete_elem(dev->vip_map_fd, &vk[i]);
	for (uint32_t i = 0; i < n_ak; i++) {
		int j = afxdp_addr_known(dev, &ak[i]);

		if (j < 0)
			bpf_map_delete_elem(dev->addr_map_fd, &ak[i]);
		else
			bpf_map_update_elem(dev->addr_map_fd, &ak[i], &dev->addr_flags[j], BPF_ANY);
	}
}

/*
 * New entries are written before stale ones are deleted, so a VIP present in both the old and
 * the new filter is never missing from the maps.
 */
static int afxdp_set_filter(struct io_dev *d, const struct io_filter *f)
{
	struct afxdp_dev *dev = (struct afxdp_dev *)d;
	uint32_t n_addr = 0, one = 1, n_max = f->n_vips + IO_SELF_MAX;
	struct xdp_vip_key *vk = calloc(f->n_vips ? f->n_vips : 1, sizeof(*vk));
	struct xdp_addr_key *ak = calloc(n_max, sizeof(*ak));
	uint32_t *aflags = calloc(n_max, sizeof(*aflags));
	int rc = 0;

	if (!vk || !ak || !aflags) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < f->n_vips; i++) {
		afxdp_vip_key(&vk[i], &f->vips[i]);
		afxdp_addr_add(ak, aflags, &n_addr, &f->vips[i].addr, XDP_ADDR_VIP);
	}
	for (uint32_t i = 0; i < IO_SELF_MAX; i++)
		if (f->self[i].family)
			afxdp_addr_add(ak, aflags, &n_addr, &f->self[i], XDP_ADDR_SELF);
	for (uint32_t i = 0; i < f->n_vips && !rc; i++)
		if (bpf_map_update_elem(dev->vip_map_fd, &vk[i], &one, BPF_ANY))
			rc = -errno;
	for (uint32_t i = 0; i < n_addr && !rc; i++)
		if (bpf_map_update_elem(dev->addr_map_fd, &ak[i], &aflags[i], BPF_ANY))
			rc = -errno;
	if (rc) {
		/* Map full: take back what this call added, so the maps hold the old filter. */
		afxdp_maps_restore(dev, vk, f->n_vips, ak, n_addr);
		goto out;
	}
	for (uint32_t i = 0; i < dev->n_vip_keys; i++) {
		bool keep = false;

		for (uint32_t j = 0; j < f->n_vips && !keep; j++)
			keep = memcmp(&dev->vip_keys[i], &vk[j], sizeof(*vk)) == 0;
		if (!keep)
			bpf_map_delete_elem(dev->vip_map_fd, &dev->vip_keys[i]);
	}
	for (uint32_t i = 0; i < dev->n_addr_keys; i++) {
		bool keep = false;

		for (uint32_t j = 0; j < n_addr && !keep; j++)
			keep = memcmp(&dev->addr_keys[i], &ak[j], sizeof(*ak)) == 0;
		if (!keep)
			bpf_map_delete_elem(dev->addr_map_fd, &dev->addr_keys[i]);
	}
	free(dev->vip_keys);
	free(dev->addr_keys);
	free(dev->addr_flags);
	dev->vip_keys = vk;
	dev->n_vip_keys = f->n_vips;
	dev->addr_keys = ak;
	dev->addr_flags = aflags;
	dev->n_addr_keys = n_addr;
	vk = NULL;
	ak = NULL;
	aflags = NULL;
out:
	free(vk);
	free(ak);
	free(aflags);
	return rc;
}

const struct io_ops io_afxdp_ops = {
    .name = "afxdp",
    .open = afxdp_open,
    .set_filter = afxdp_set_filter,
    .rx = afxdp_rx,
    .tx = afxdp_tx,
    .wait = afxdp_wait,
    .counters = afxdp_counters,
    .rx_pending = afxdp_rx_pending,
    .mode = afxdp_mode,
    .kernel = afxdp_kernel,
    .report = afxdp_report,
    .close = afxdp_close,
};
