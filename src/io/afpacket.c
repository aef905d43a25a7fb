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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/io.h"

#define AFPACKET_BLOCK_SIZE (1u << 18) /* bytes per ring block */
#define AFPACKET_BLOCKS     64u        /* ring blocks per worker: 16 MiB */
#define AFPACKET_FRAME_SIZE 2048u      /* TPACKET_V3 frame unit (blocks hold variable frames) */
#define AFPACKET_BLOCK_TOV  1u         /* ms before a partly filled block goes to user space */
#define AFPACKET_SLOT_SIZE  (LB_HEADROOM + 9216u + 64u) /* copy buffer: headroom, jumbo, VLAN */
#define AFPACKET_SNAPLEN    0x40000u   /* filter accept length: whole frames */
#define CBPF_INSNS_MAX      BPF_MAXINSNS

/* Offsets from the Ethernet header as the filter sees the frame (VLAN tags already removed). */
#define OFF_ETHERTYPE 12u
#define OFF_IP4_FRAG  20u
#define OFF_IP4_PROTO 23u
#define OFF_IP4_DST   30u
#define OFF_IP4_VHL   14u
#define OFF_L4_DPORT  16u /* from the IPv4 header start + ETH_HLEN, for BPF_IND with X = IHL */
#define OFF_IP6_NEXT  20u
#define OFF_IP6_DST   38u
#define OFF_IP6_DPORT 56u /* no extension headers */
#define IPPROTO_GRE_NUM 47u

struct afpacket_queue {
	int fd;
	uint8_t *ring; /* AFPACKET_BLOCKS * AFPACKET_BLOCK_SIZE, shared with the kernel */
	uint32_t blk;  /* block being read */
	uint32_t left; /* packets of blk not yet read; 0 = blk not started */
	struct tpacket3_hdr *pkt;
	uint8_t slots[IO_BATCH_MAX][AFPACKET_SLOT_SIZE]; /* frames of the last rx */
	struct mmsghdr msgs[IO_BATCH_MAX];
	struct iovec iov[IO_BATCH_MAX];
	uint64_t ctr[IO_CTR_MAX];
};

struct afpacket_dev {
	char ifname[IF_NAMESIZE];
	int ifindex;
	uint32_t n_queues;
	struct afpacket_queue *queues[IO_QUEUES_MAX];
	char mode[32];
};

struct cbpf {
	struct sock_filter ins[CBPF_INSNS_MAX];
	uint32_t n;
	bool overflow;
};

static void cbpf_emit(struct cbpf *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n >= CBPF_INSNS_MAX) {
		p->overflow = true;
		return;
	}
	p->ins[p->n++] = (struct sock_filter){ .code = code, .jt = jt, .jf = jf, .k = k };
}

/*
 * One self-contained block: accept when the destination is addr, the protocol proto and (port
 * != 0) the destination port port; otherwise fall through to the next block. IPv4 non-first
 * fragments of (addr, proto) have no port and are accepted by address. Every jump is relative
 * and stays inside the block, so blocks compose without labels.
 */
static void cbpf_block(struct cbpf *p, const struct lb_addr *addr, uint8_t proto, uint16_t port)
{
	uint32_t len, at = 0, words = addr->family == AF_INET ? 1 : 4;

	/* Length: address words (2 each) + proto (2) + port part + accept (1). */
	if (addr->family == AF_INET)
		len = 2 + 2 + (port ? 5 : 0) + 1;
	else
		len = 2 * words + 2 + (port ? 2 : 0) + 1;
#define TO_END (uint8_t)(len - at - 1)
	for (uint32_t w = 0; w < words; w++) {
		uint32_t off = (addr->family == AF_INET ? OFF_IP4_DST : OFF_IP6_DST) + 4 * w;

		cbpf_emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, off), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, ntohl(addr->w[w])), at++;
	}
	cbpf_emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0,
		  addr->family == AF_INET ? OFF_IP4_PROTO : OFF_IP6_NEXT), at++;
	cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, proto), at++;
	if (port && addr->family == AF_INET) {
		cbpf_emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_IP4_FRAG), at++;
		/* Non-first fragment: jump to the accept at the end of the block. */
		cbpf_emit(p, BPF_JMP | BPF_JSET | BPF_K, (uint8_t)(len - at - 2), 0, 0x1fff), at++;
		cbpf_emit(p, BPF_LDX | BPF_B | BPF_MSH, 0, 0, OFF_IP4_VHL), at++;
		cbpf_emit(p, BPF_LD | BPF_H | BPF_IND, 0, 0, OFF_L4_DPORT), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, port), at++;
	} else if (port) {
		cbpf_emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_IP6_DPORT), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, port), at++;
	}
#undef TO_END
	cbpf_emit(p, BPF_RET | BPF_K, 0, 0, AFPACKET_SNAPLEN);
}

static bool addr_seen(const struct io_filter *f, uint32_t i)
{
	for (uint32_t j = 0; j < i; j++)
		if (lb_addr_eq(&f->vips[j].addr, &f->vips[i].addr))
			return true;
	return false;
}

/* One family's section: a block per VIP, ICMP (and IPv6 fragments) per VIP address, GRE to self. */
static void cbpf_section(struct cbpf *p, const struct io_filter *f, int family)
{
	for (uint32_t i = 0; i < f->n_vips; i++) {
		const struct io_vip *v = &f->vips[i];

		if (v->addr.family != family)
			continue;
		cbpf_block(p, &v->addr, v->proto, v->port);
		if (addr_seen(f, i))
			continue;
		if (family == AF_INET) {
			cbpf_block(p, &v->addr, IPPROTO_ICMP, 0);
		} else {
			cbpf_block(p, &v->addr, IPPROTO_ICMPV6, 0);
			cbpf_block(p, &v->addr, IPPROTO_FRAGMENT, 0);
		}
	}
	for (uint32_t i = 0; i < IO_SELF_MAX; i++)
		if (f->self[i].family == family)
			cbpf_block(p, &f->self[i], IPPROTO_GRE_NUM, 0);
	cbpf_emit(p, BPF_RET | BPF_K, 0, 0, 0);
}

/* Builds the whole filter: dispatch on EtherType, then the IPv4 and IPv6 sections. */
static int cbpf_build(struct cbpf *p, const struct io_filter *f)
{
	struct cbpf *v6 = calloc(1, sizeof(*v6));

	if (!v6)
		return -ENOMEM;
	p->n = 0;
	p->overflow = false;
	cbpf_emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_ETHERTYPE);
	cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_IP);
	cbpf_emit(p, BPF_JMP | BPF_JA, 0, 0, 3); /* to the IPv4 section */
	cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_IPV6);
	cbpf_emit(p, BPF_JMP | BPF_JA, 0, 0, 0); /* to the IPv6 section, patched below */
	cbpf_emit(p, BPF_RET | BPF_K, 0, 0, 0);
	cbpf_section(p, f, AF_INET);
	p->ins[4].k = p->n - 5;
	cbpf_section(v6, f, AF_INET6);
	for (uint32_t i = 0; i < v6->n; i++)
		cbpf_emit(p, v6->ins[i].code, v6->ins[i].jt, v6->ins[i].jf, v6->ins[i].k);
	p->overflow |= v6->overflow;
	free(v6);
	return p->overflow ? -E2BIG : 0;
}

static int afpacket_attach(int fd, struct sock_filter *ins, uint32_t n)
{
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = ins };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ? -errno : 0;
}

static int afpacket_set_filter(struct io_dev *d, const struct io_filter *f)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;
	struct cbpf *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	rc = cbpf_build(p, f);
	if (rc) {
		fprintf(stderr, "maglevd: afpacket: %u VIPs need more than %u filter instructions\n",
			f->n_vips, CBPF_INSNS_MAX);
		goto out;
	}
	/* SO_ATTACH_FILTER swaps the filter of a live socket in one step. */
	for (uint32_t i = 0; i < dev->n_queues && !rc; i++)
		rc = afpacket_attach(dev->queues[i]->fd, p->ins, p->n);
out:
	free(p);
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
	q->blk = (q->blk + 1) % AFPACKET_BLOCKS;
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
		uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid
									   : ETH_P_8021Q;
		uint16_t tag[2] = { htons(tpid), htons((uint16_t)h->hv1.tp_vlan_tci) };

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

static void afpacket_tx(struct io_dev *d, uint32_t qid, struct lb_frame *f, const enum lb_verdict *v,
			unsigned n)
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
		q->iov[k] = (struct iovec){ .iov_base = f[i].data, .iov_len = f[i].len };
		q->msgs[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &q->iov[k], .msg_iovlen = 1 } };
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
	struct pollfd pfd = { .fd = dev->queues[qid]->fd, .events = POLLIN | POLLERR };

	poll(&pfd, 1, timeout_ms);
}

static void afpacket_counters(struct io_dev *d, uint32_t qid, uint64_t *out)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;

	for (int i = 0; i < IO_CTR_MAX; i++)
		out[i] += io_counter_read(dev->queues[qid]->ctr, i);
}

static const char *afpacket_mode(const struct io_dev *d)
{
	return ((const struct afpacket_dev *)d)->mode;
}

static void afpacket_report(struct io_dev *d)
{
	struct afpacket_dev *dev = (struct afpacket_dev *)d;

	for (uint32_t i = 0; i < dev->n_queues; i++) {
		struct tpacket_stats_v3 st = { 0 };
		socklen_t len = sizeof(st);

		/* Reading the statistics also resets them; done once, at stop. */
		if (getsockopt(dev->queues[i]->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0 &&
		    st.tp_drops)
			fprintf(stderr, "maglevd: afpacket: queue %u kernel: %u of %u frames dropped "
				"(ring full)\n", i, st.tp_drops, st.tp_packets);
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
	/* One fanout group per device: the flow hash sends each flow to one worker. */
	fanout = (int)((dev->ifindex ^ getpid()) & 0xffff) | (PACKET_FANOUT_HASH << 16);
	what = "PACKET_FANOUT";
	if (setsockopt(q->fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(fanout)))
		goto fail;
	*out = q;
	return 0;
fail:
	rc = -errno;
	snprintf(err, errlen, "afpacket: %s queue %u: %s: %s", dev->ifname, id, what, strerror(-rc));
	afpacket_queue_free(q);
	return rc;
}

static int afpacket_open(struct io_dev **out, const struct io_params *p, char *err, size_t errlen)
{
	struct afpacket_dev *dev;
	int rc = 0;

	if (p->queues == 0 || p->queues > IO_QUEUES_MAX) {
		snprintf(err, errlen, "afpacket: %u workers: must be 1..%u", p->queues, IO_QUEUES_MAX);
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
	.mode = afpacket_mode,
	.report = afpacket_report,
	.close = afpacket_close,
};
