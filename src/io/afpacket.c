/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * AF_PACKET packet I/O, the portable fallback: a TPACKET_V3 receive ring per worker behind a
 * classic BPF filter generated from the VIP list (PACKET_FANOUT_HASH spreads flows over
 * workers), frames copied into buffers with headroom, LB_TX frames sent with sendmmsg.
 * The kernel still gets its own copy of every frame; see docs/dataplane.md for why that is
 * harmless on a host that does not forward.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "io/io.h"
#include "io/vipfilter.h"

/*
 * The kernel hands a block to user space when it is full or AFPACKET_BLOCK_TOV after it was
 * opened, whichever comes first, so a block never holds more than a timeout's worth of frames.
 * Many small blocks keep a burst's backlog bounded by the ring's memory rather than by its
 * block count: 64 blocks of 256 KiB held 64 ms of a 125 kpps burst (about 8000 SYNs, each
 * block 1/15 full); 1024 blocks of 16 KiB (about 110 SYNs, or one 9 KiB frame, each) hold about
 * 110000 SYNs (docs/dataplane.md, "Bursts").
 */
#define AFPACKET_BLOCK_SIZE (1u << 14) /* bytes per ring block */
#define AFPACKET_BLOCKS     1024u      /* ring blocks per worker: 16 MiB */
#define AFPACKET_FRAME_SIZE 2048u      /* TPACKET_V3 frame unit (blocks hold variable frames) */
#define AFPACKET_BLOCK_TOV  1u         /* ms before a partly filled block goes to user space */
#define AFPACKET_SLOT_SIZE  (LB_HEADROOM + 9216u + 64u) /* copy buffer: headroom, jumbo, VLAN */

struct afpacket_queue {
	int fd;
	uint8_t *ring; /* AFPACKET_BLOCKS * AFPACKET_BLOCK_SIZE, shared with the kernel */
	uint32_t blk;  /* block being read; written by the worker with relaxed atomic stores */
	uint32_t left; /* packets of blk not yet read; 0 = blk not started */
	struct tpacket3_hdr *pkt;
	uint8_t slots[IO_BATCH_MAX][AFPACKET_SLOT_SIZE]; /* frames of the last rx */
	struct mmsghdr msgs[IO_BATCH_MAX];
	struct iovec iov[IO_BATCH_MAX];
	uint64_t ctr[IO_CTR_MAX];
	/* PACKET_STATISTICS resets when read: the drops read so far (any control thread). */
	_Atomic uint64_t kernel_drops, kernel_packets;
};

struct afpacket_dev {
	char ifname[IF_NAMESIZE];
	int ifindex;
	uint32_t n_queues;
	uint32_t fanout_id; /* PACKET_FANOUT group the kernel gave the first socket */
	struct afpacket_queue *queues[IO_QUEUES_MAX];
	char mode[32];
};

static int afpacket_attach(int fd, struct sock_filter *ins, uint32_t n)
{
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = ins};

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ? -errno : 0;
}

static int afpacket_set_filter(struct io_dev *d, const struct io_filter *f)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct sock_filter *ins = calloc(VIPFILTER_INSNS_MAX, sizeof(*ins));
	uint32_t n;
	int rc;

	if (!ins)
		return -ENOMEM;
	rc = vipfilter_build(f, ins, VIPFILTER_INSNS_MAX, &n);
	if (rc == -E2BIG) {
		/* Still correct, only slower: the pipeline passes what is not for a VIP. */
		log_warn("afpacket: %u VIPs need more than %u filter instructions: copying every "
		         "IPv4/IPv6 frame instead",
		         f->n_vips, VIPFILTER_INSNS_MAX);
		rc = vipfilter_build_all_ip(ins, VIPFILTER_INSNS_MAX, &n);
	}
	if (rc)
		goto out;
	/* SO_ATTACH_FILTER swaps the filter of a live socket in one step. */
	for (uint32_t i = 0; i < dev->n_queues && !rc; i++)
		rc = afpacket_attach(dev->queues[i]->fd, ins, n);
out:
	free(ins);
	return rc;
}

static struct tpacket_block_desc *afpacket_block(struct afpacket_queue *q, uint32_t i)
{
	return (struct tpacket_block_desc *)(q->ring + (size_t)i * AFPACKET_BLOCK_SIZE);
}

static void afpacket_block_release(struct afpacket_queue *q)
{
	struct tpacket_block_desc *bd = afpacket_block(q, q->blk);

	/* Our reads of the block happen before the kernel may reuse it. */
	__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
	/* Atomic: afpacket_rx_pending reads it from the control thread. */
	__atomic_store_n(&q->blk, (q->blk + 1) % AFPACKET_BLOCKS, __ATOMIC_RELAXED);
	q->left = 0;
	q->pkt = NULL;
}

/* Copies one ring frame into slot s, re-inserting an 802.1Q tag the kernel stripped. */
static bool afpacket_copy(struct afpacket_queue *q, const struct tpacket3_hdr *h, uint32_t s,
                          struct lb_frame *f)
{
	const uint8_t *src = (const uint8_t *)h + h->tp_mac;
	uint8_t *dst = q->slots[s] + LB_HEADROOM;
	bool vlan = (h->tp_status & TP_STATUS_VLAN_VALID) != 0;
	uint32_t len = h->tp_snaplen + (vlan ? 4 : 0);

	if (h->tp_snaplen < h->tp_len || h->tp_snaplen < 2 * ETH_ALEN ||
	    len > AFPACKET_SLOT_SIZE - LB_HEADROOM)
		return false;
	if (vlan) {
		uint16_t tpid =
		    (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
		uint16_t tag[2] = {htons(tpid), htons((uint16_t)h->hv1.tp_vlan_tci)};

		memcpy(dst, src, 2 * ETH_ALEN);
		memcpy(dst + 2 * ETH_ALEN, tag, sizeof(tag));
		memcpy(dst + 2 * ETH_ALEN + 4, src + 2 * ETH_ALEN, h->tp_snaplen - 2 * ETH_ALEN);
	} else {
		memcpy(dst, src, h->tp_snaplen);
	}
	f->data = dst;
	f->len = len;
	f->headroom = LB_HEADROOM;
	return true;
}

static unsigned afpacket_rx(struct io_dev *d, uint32_t qid, struct lb_frame *f, unsigned max)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct afpacket_queue *q = dev->queues[qid];
	unsigned n = 0;

	if (max > IO_BATCH_MAX)
		max = IO_BATCH_MAX;
	/* Bounded: at most every block once per call. */
	for (uint32_t tries = 0; n < max && tries <= AFPACKET_BLOCKS; tries++) {
		struct tpacket_block_desc *bd = afpacket_block(q, q->blk);

		if (q->left == 0 && !q->pkt) {
			if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) &
			      TP_STATUS_USER))
				break;
			q->left = bd->hdr.bh1.num_pkts;
			q->pkt = (struct tpacket3_hdr *)((uint8_t *)bd +
			                                 bd->hdr.bh1.offset_to_first_pkt);
		}
		while (q->left && n < max) {
			struct tpacket3_hdr *h = q->pkt;

			if (afpacket_copy(q, h, n, &f[n]))
				n++;
			else
				io_count(q->ctr, IO_CTR_RX_TRUNCATED, 1);
			q->pkt = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
			q->left--;
		}
		if (q->left == 0)
			afpacket_block_release(q);
	}
	io_count(q->ctr, IO_CTR_RX_FRAMES, n);
	return n;
}

static void afpacket_tx(struct io_dev *d, uint32_t qid, struct lb_frame *f,
                        const enum lb_verdict *v, unsigned n)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct afpacket_queue *q = dev->queues[qid];
	unsigned k = 0;
	int sent;

	for (unsigned i = 0; i < n; i++) {
		if (v[i] == LB_PASS)
			io_count(q->ctr, IO_CTR_PASS_IGNORED, 1);
		if (v[i] != LB_TX)
			continue;
		q->iov[k] = (struct iovec){.iov_base = f[i].data, .iov_len = f[i].len};
		q->msgs[k] = (struct mmsghdr){
		    .msg_hdr = {.msg_iov = &q->iov[k], .msg_iovlen = 1},
		};
		k++;
	}
	if (k == 0)
		return;
	sent = sendmmsg(q->fd, q->msgs, k, MSG_DONTWAIT);
	if (sent < 0)
		sent = 0;
	io_count(q->ctr, IO_CTR_TX_FRAMES, (uint64_t)sent);
	io_count(q->ctr, IO_CTR_TX_ERRORS, k - (unsigned)sent);
}

static void afpacket_wait(struct io_dev *d, uint32_t qid, int timeout_ms)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct pollfd pfd = {.fd = dev->queues[qid]->fd, .events = POLLIN | POLLERR};

	poll(&pfd, 1, timeout_ms);
}

/* Folds the kernel's statistics of queue q (reset by reading) into its running totals. */
static void afpacket_kernel_stats(struct afpacket_queue *q)
{
	struct tpacket_stats_v3 st = {0};
	socklen_t len = sizeof(st);

	if (getsockopt(q->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
		atomic_fetch_add(&q->kernel_drops, st.tp_drops);
		atomic_fetch_add(&q->kernel_packets, st.tp_packets);
	}
}

static void afpacket_counters(struct io_dev *d, uint32_t qid, uint64_t *out)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct afpacket_queue *q = dev->queues[qid];

	for (int i = 0; i < IO_CTR_MAX; i++)
		out[i] += io_counter_read(q->ctr, i);
	afpacket_kernel_stats(q);
	out[IO_CTR_RX_KERNEL_DROPS] += atomic_load(&q->kernel_drops);
}

/*
 * The kernel fills blocks in ring order and the worker releases them in the same order, so frames
 * wait exactly when the block the worker is at (the one it reads, or the next it will) has been
 * handed to user space. A partly filled block is handed over after AFPACKET_BLOCK_TOV, so a frame
 * shows here at most that late.
 */
static bool afpacket_rx_pending(struct io_dev *d, uint32_t qid)
{
	struct afpacket_queue *q = ((struct afpacket_dev *)d)->queues[qid];
	struct tpacket_block_desc *bd =
	    afpacket_block(q, __atomic_load_n(&q->blk, __ATOMIC_RELAXED));

	return (__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
}

static const char *afpacket_mode(const struct io_dev *d)
{
	return ((const struct afpacket_dev *)d)->mode;
}

static void afpacket_report(struct io_dev *d)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;

	for (uint32_t i = 0; i < dev->n_queues; i++) {
		struct afpacket_queue *q = dev->queues[i];
		uint64_t drops;

		afpacket_kernel_stats(q);
		drops = atomic_load(&q->kernel_drops);
		if (drops)
			log_info(
			    "afpacket: queue %u kernel: %llu of %llu frames dropped (ring full)", i,
			    (unsigned long long)drops,
			    (unsigned long long)atomic_load(&q->kernel_packets));
	}
}

static void afpacket_queue_free(struct afpacket_queue *q)
{
	if (!q)
		return;
	if (q->ring)
		munmap(q->ring, (size_t)AFPACKET_BLOCKS * AFPACKET_BLOCK_SIZE);
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}

static void afpacket_close(struct io_dev *d)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;

	if (!dev)
		return;
	for (uint32_t i = 0; i < dev->n_queues; i++)
		afpacket_queue_free(dev->queues[i]);
	free(dev);
}

static int afpacket_queue_open(struct afpacket_dev *dev, uint32_t id, struct afpacket_queue **out,
                               char *err, size_t errlen)
{
	struct sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
	struct tpacket_req3 req = {
	    .tp_block_size = AFPACKET_BLOCK_SIZE,
	    .tp_block_nr = AFPACKET_BLOCKS,
	    .tp_frame_size = AFPACKET_FRAME_SIZE,
	    .tp_frame_nr = AFPACKET_BLOCK_SIZE / AFPACKET_FRAME_SIZE * AFPACKET_BLOCKS,
	    .tp_retire_blk_tov = AFPACKET_BLOCK_TOV,
	};
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(ETH_P_ALL),
	    .sll_ifindex = dev->ifindex,
	};
	int ver = TPACKET_V3, one = 1, fanout, rc;
	const char *what;
	struct afpacket_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	/* Protocol 0: no frame is queued before the filter is attached and the socket bound. */
	q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	what = "socket(AF_PACKET)";
	if (q->fd < 0)
		goto fail;
	what = "SO_ATTACH_FILTER";
	if (afpacket_attach(q->fd, &none, 1))
		goto fail;
	what = "PACKET_VERSION";
	if (setsockopt(q->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)))
		goto fail;
	what = "PACKET_RX_RING";
	if (setsockopt(q->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)))
		goto fail;
	/* Our own transmissions must not come back to our ring. */
	what = "PACKET_IGNORE_OUTGOING";
	if (setsockopt(q->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)))
		goto fail;
	/* Frames we send are complete: no need to go through the qdisc layer. */
	setsockopt(q->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	q->ring = mmap(NULL, (size_t)AFPACKET_BLOCKS * AFPACKET_BLOCK_SIZE, PROT_READ | PROT_WRITE,
	               MAP_SHARED, q->fd, 0);
	what = "mmap of the RX ring";
	if (q->ring == MAP_FAILED) {
		q->ring = NULL;
		goto fail;
	}
	what = "bind";
	if (bind(q->fd, (struct sockaddr *)&sll, sizeof(sll)))
		goto fail;
	/*
	 * One fanout group per device: the flow hash sends each flow to one worker. The kernel
	 * picks a group id no one else uses for the first socket; the others join that id.
	 */
	fanout = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
	if (id > 0)
		fanout = dev->fanout_id | (PACKET_FANOUT_HASH << 16);
	what = "PACKET_FANOUT";
	if (setsockopt(q->fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(fanout)))
		goto fail;
	if (id == 0) {
		socklen_t len = sizeof(fanout);

		what = "getsockopt(PACKET_FANOUT)";
		if (getsockopt(q->fd, SOL_PACKET, PACKET_FANOUT, &fanout, &len))
			goto fail;
		dev->fanout_id = (uint32_t)fanout & 0xffffu;
	}
	*out = q;
	return 0;
fail:
	rc = -errno;
	snprintf(err, errlen, "afpacket: %s queue %u: %s: %s", dev->ifname, id, what,
	         strerror(-rc));
	afpacket_queue_free(q);
	return rc;
}

static int afpacket_open(struct io_dev **out, const struct io_params *p, char *err, size_t errlen)
{
	struct afpacket_dev *dev;
	int rc = 0;

	if (p->queues == 0 || p->queues > IO_QUEUES_MAX) {
		snprintf(err, errlen, "afpacket: %u workers: must be 1..%u", p->queues,
		         IO_QUEUES_MAX);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	snprintf(dev->ifname, sizeof(dev->ifname), "%s", p->ifname);
	snprintf(dev->mode, sizeof(dev->mode), "afpacket");
	dev->ifindex = (int)if_nametoindex(p->ifname);
	if (dev->ifindex == 0) {
		rc = -ENODEV;
		snprintf(err, errlen, "afpacket: no such interface '%s'", p->ifname);
		goto out;
	}
	for (uint32_t i = 0; i < p->queues; i++) {
		rc = afpacket_queue_open(dev, i, &dev->queues[i], err, errlen);
		if (rc)
			goto out;
		dev->n_queues = i + 1;
	}
	io_warn_coalescing(p->ifname, "afpacket");
	*out = (struct io_dev *)dev;
	return 0;
out:
	afpacket_close((struct io_dev *)dev);
	return rc;
}

const struct io_ops io_afpacket_ops = {
    .name = "afpacket",
    .open = afpacket_open,
    .set_filter = afpacket_set_filter,
    .rx = afpacket_rx,
    .tx = afpacket_tx,
    .wait = afpacket_wait,
    .counters = afpacket_counters,
    .rx_pending = afpacket_rx_pending,
    .mode = afpacket_mode,
    .report = afpacket_report,
    .close = afpacket_close,
};
