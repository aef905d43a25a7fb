/* SPDX-License-Identifier: GPL-2.0-only */
/* The forwarding pipeline: classify a frame, choose a backend, encapsulate or answer. */
#include "core/pipeline.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "core/conntrack.h"
#include "core/encap.h"
#include "core/icmp.h"
#include "core/pkt.h"

#define NS_PER_SEC        1000000000ull
#define LB_PREFETCH_AHEAD 8u /* frames between an entry prefetch and its use in a batch */
/* choose(): not a backend id (those fit 16 bits) but a drop counted under counter c. */
#define CHOOSE_DROP(c)     (0x10000u | (uint32_t)(c))
#define CHOOSE_DROP_CTR(r) ((r)&0xffffu)
/* The destination MAC in the first 8 bytes of a frame read as one word (eth_dst48). */
#define ETH_DST_MASK (~(LB_WORD_BYTE(0xff, 6) | LB_WORD_BYTE(0xff, 7)))

enum job_kind {
	JOB_VERDICT, /* decided while classifying: count and return */
	JOB_FLOW,    /* for a VIP: choose a backend, then encapsulate / steer / re-target */
	JOB_ECHO,    /* ICMP echo request to a VIP address */
};

/* What classifying one frame found; the second stage acts on it. */
struct lb_job {
	uint8_t kind;
	uint8_t verdict;
	bool steer;    /* ip is an ICMP error about the flow (not tracked, counted apart) */
	bool retarget; /* ip came in GRE to us: rewrite the outer header instead of wrapping */
	bool track;    /* look the flow up in the connection table */
	bool insert;   /* and track it if missing */
	uint8_t tcp_flags;
	uint16_t sec;     /* choose: the secondary the packet carries (second chance), or none */
	uint16_t counter; /* JOB_VERDICT: counter to add 1 to */
	uint16_t vip;
	uint32_t gre_off; /* retarget: GRE header */
	uint64_t hash;
	struct ct_place place; /* track: the flow's place in the connection table */
	bool prefetch;         /* batch: load place's lines (the job before had another bucket) */
	struct pkt_ip ip;      /* the packet sent on (for retarget: the inner one) */
	struct pkt_ip outer;   /* retarget: the outer IP header */
	struct lb_flow_key key;
};

struct lb_worker {
	struct lb_worker_params p;
	uint64_t mac48; /* p.mac as eth_dst48 reads it from a frame */
	struct ct_table *ct;
	uint64_t ctr[LB_CTR_MAX];
	struct lb_backend_counters *bctr; /* LB_BACKEND_IDS_MAX */
	uint64_t icmp_credit;             /* token bucket, in units of 1e-9 token */
	uint64_t icmp_last_ns;
	bool icmp_started;
	struct lb_job jobs[LB_BATCH_MAX];
};

/* The destination MAC of frame d (at least 8 bytes) as one word: one load and a mask. */
static inline uint64_t eth_dst48(const uint8_t *d)
{
	uint64_t v;

	memcpy(&v, d, 8);
	return v & ETH_DST_MASK;
}

void lb_worker_params_init(struct lb_worker_params *p, const struct config_conntrack *ct)
{
	*p = (struct lb_worker_params){
	    .ct_entries = ct->entries,
	    .tcp_timeout = ct->tcp_timeout,
	    .tcp_fin_timeout = ct->tcp_fin_timeout,
	    .tcp_syn_timeout = ct->tcp_syn_timeout,
	    .udp_timeout = ct->udp_timeout,
	    .icmp_timeout = ct->icmp_timeout,
	    .ct_max_inserts = ct->max_inserts_per_second,
	};
}

struct lb_worker *lb_worker_create(const struct lb_worker_params *p)
{
	struct lb_worker *w;
	struct ct_params cp = {
	    .tcp = p->tcp_timeout,
	    .tcp_fin = p->tcp_fin_timeout,
	    .tcp_syn = p->tcp_syn_timeout,
	    .udp = p->udp_timeout,
	    .other = p->icmp_timeout,
	    .max_inserts = p->ct_max_inserts,
	};

	if (posix_memalign((void **)&w, 64, sizeof(*w)))
		return NULL;
	memset(w, 0, sizeof(*w));
	w->p = *p;
	{
		uint8_t b[8] = {0};

		memcpy(b, p->mac, sizeof(p->mac));
		w->mac48 = eth_dst48(b);
	}
	w->ct = ct_create(p->ct_entries, &cp);
	w->bctr = calloc(LB_BACKEND_IDS_MAX, sizeof(*w->bctr));
	if (!w->ct || !w->bctr) {
		lb_worker_destroy(w);
		return NULL;
	}
	return w;
}

void lb_worker_destroy(struct lb_worker *w)
{
	if (!w)
		return;
	ct_destroy(w->ct);
	free(w->bctr);
	free(w);
}

const uint64_t *lb_worker_counters(const struct lb_worker *w)
{
	return w->ctr;
}

const struct lb_backend_counters *lb_worker_backend_counters(const struct lb_worker *w)
{
	return w->bctr;
}

uint32_t lb_worker_ct_capacity(const struct lb_worker *w)
{
	return ct_capacity(w->ct);
}

size_t lb_worker_ct_bytes(const struct lb_worker *w)
{
	return (size_t)ct_capacity(w->ct) * CT_BYTES_PER_FLOW;
}

static inline void count(struct lb_worker *w, unsigned c)
{
	LB_CTR_ADD(w->ctr[c], 1);
}

static inline void job_verdict(struct lb_job *j, enum lb_verdict v, unsigned counter)
{
	j->kind = JOB_VERDICT;
	j->verdict = (uint8_t)v;
	j->counter = (uint16_t)counter;
}

static inline uint8_t af_of(uint8_t family)
{
	return family == 4 ? AF_INET : AF_INET6;
}

static inline uint32_t addr_len_of(uint8_t family)
{
	return family == 4 ? 4u : 16u;
}

/*
 * Checks the source src of a packet of family 4 or 6 to dst (a VIP address): 0 if it can be a
 * client's, else the drop counter. No client has an IPv4 source in 0.0.0.0/8, 127.0.0.0/8,
 * 224.0.0.0/4 or 255.255.255.255 (Linux's martian sources; 240.0.0.0/4 is let through, as Linux
 * does, since private networks use it), nor an IPv6 source ::, ::1, in ff00::/8 or IPv4-mapped
 * ::ffff:0:0/96 (Linux's ip6_rcv drops those too); nor is a client the VIP address itself.
 * Answers and forwarding to such a source would go to ourselves, a group or nowhere, and a
 * tracked entry for one would only take the place of a real flow.
 */
static inline unsigned source_check(uint8_t family, const uint8_t *src, const uint8_t *dst)
{
	uint64_t s0, s1, d0, d1, lo;

	if (family == 4) {
		uint32_t s4, d4;

		memcpy(&s4, src, 4);
		memcpy(&d4, dst, 4);
		if (src[0] == 0 || src[0] == 127 || (src[0] & 0xf0) == 0xe0 || s4 == 0xffffffffu)
			return LB_CTR_DROP_BAD_SOURCE;
		return s4 == d4 ? LB_CTR_DROP_SOURCE_IS_VIP : 0;
	}
	memcpy(&s0, src, 8);
	memcpy(&s1, src + 8, 8);
	memcpy(&d0, dst, 8);
	memcpy(&d1, dst + 8, 8);
	lo = be64toh(s1);
	/* ff00::/8; or a zero first half and then 0:ffff:a.b.c.d (IPv4-mapped), 0 (::) or 1 (::1).
	 */
	if (src[0] == 0xff || (s0 == 0 && ((lo >> 32) == 0xffffu || lo <= 1)))
		return LB_CTR_DROP_BAD_SOURCE;
	return s0 == d0 && s1 == d1 ? LB_CTR_DROP_SOURCE_IS_VIP : 0;
}

/* A TCP/UDP packet ip to VIP address ai: its VIP and flow. Sets j->kind. */
static inline __attribute__((always_inline)) void classify_l4(const struct lb_snapshot *s,
                                                              const uint8_t *d,
                                                              const struct pkt_ip *ip, int32_t ai,
                                                              struct lb_job *j)
{
	uint16_t sport = 0, dport = 0;
	int32_t vip;

	if (ip->frag) {
		unsigned bad;

		vip = s->addrs[ai].frag_vip[ip->proto == IPPROTO_UDP];
		if (vip == LB_VIP_NONE) {
			job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_VIP);
			return;
		}
		/* Untracked: no entry vouches for the source, so every fragment is checked. */
		bad = source_check(ip->family, pkt_ip_src(d, ip), pkt_ip_dst(d, ip));
		if (bad) {
			job_verdict(j, LB_DROP, bad);
			return;
		}
		j->track = false;
		j->insert = false;
		j->tcp_flags = 0;
	} else {
		int err = pkt_parse_ports(d, ip, &sport, &dport, &j->tcp_flags);

		if (err) {
			job_verdict(j, LB_DROP, (unsigned)err);
			return;
		}
		vip = snapshot_vip_find(s, ai, ip->proto, ntohs(dport));
		if (vip < 0) {
			job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_VIP);
			return;
		}
		j->track = true;
		j->insert = true;
	}
	j->kind = JOB_FLOW;
	j->vip = (uint16_t)vip;
	lb_flow_key_fill(&j->key, ip->family, pkt_ip_src(d, ip), pkt_ip_dst(d, ip), ip->proto,
	                 sport, dport);
	j->hash = lb_flow_hash_secret(&j->key, s->hash_secret);
}

/*
 * An ICMP error to VIP address ai: the flow it is about is the quoted packet reversed (VIP to
 * client becomes client to VIP), hashed like the forward direction.
 */
static void classify_icmp_error(const struct lb_snapshot *s, const uint8_t *d,
                                const struct pkt_ip *ip, int32_t ai, struct lb_job *j)
{
	struct pkt_ip e;
	uint16_t sport = 0, dport = 0;
	int32_t vip;
	uint32_t al = addr_len_of(ip->family);

	if (pkt_parse_ip(d, ip->l4off + PKT_ICMP_HLEN, ip->end, ip->family, true, &e) ||
	    memcmp(pkt_ip_src(d, &e), pkt_ip_dst(d, ip), al) != 0 ||
	    (e.proto != IPPROTO_TCP && e.proto != IPPROTO_UDP)) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_BAD_EMBEDDED);
		return;
	}
	if (e.has_l4) {
		if (e.end - e.l4off < 4) {
			job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_BAD_EMBEDDED);
			return;
		}
		/* The quoted packet went VIP -> client: its source port is the VIP's. */
		memcpy(&dport, d + e.l4off, 2);
		memcpy(&sport, d + e.l4off + 2, 2);
		vip = snapshot_vip_find(s, ai, e.proto, ntohs(dport));
		j->track = true;
	} else {
		vip = s->addrs[ai].frag_vip[e.proto == IPPROTO_UDP];
		if (vip == LB_VIP_NONE)
			vip = -1;
		j->track = false;
	}
	if (vip < 0) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_BAD_EMBEDDED);
		return;
	}
	j->kind = JOB_FLOW;
	j->steer = true;
	j->insert = false;
	j->tcp_flags = 0;
	j->vip = (uint16_t)vip;
	lb_flow_key_fill(&j->key, ip->family, pkt_ip_dst(d, &e), pkt_ip_src(d, &e), e.proto, sport,
	                 dport);
	j->hash = lb_flow_hash_secret(&j->key, s->hash_secret);
}

/* An echo request or an ICMP error to a VIP address: answered or sent on only from a client. */
static bool icmp_source_ok(const uint8_t *d, const struct pkt_ip *ip, struct lb_job *j)
{
	unsigned bad = source_check(ip->family, pkt_ip_src(d, ip), pkt_ip_dst(d, ip));

	if (bad)
		job_verdict(j, LB_DROP, bad);
	return !bad;
}

static void classify_icmp(const struct lb_snapshot *s, const uint8_t *d, const struct pkt_ip *ip,
                          int32_t ai, struct lb_job *j)
{
	uint8_t type;

	if (ip->frag) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_FRAGMENT);
		return;
	}
	if (ip->end - ip->l4off < PKT_ICMP_HLEN) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_TRUNCATED);
		return;
	}
	type = d[ip->l4off];
	if (ip->family == 4) {
		if (type == ICMP_ECHO_REQUEST) {
			if (icmp_source_ok(d, ip, j))
				j->kind = JOB_ECHO;
			return;
		}
		if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED) {
			if (icmp_source_ok(d, ip, j))
				classify_icmp_error(s, d, ip, ai, j);
			return;
		}
	} else {
		if (type == ICMP6_ECHO_REQUEST) {
			if (icmp_source_ok(d, ip, j))
				j->kind = JOB_ECHO;
			return;
		}
		if (type == ICMP6_DEST_UNREACH || type == ICMP6_PACKET_TOO_BIG ||
		    type == ICMP6_TIME_EXCEEDED) {
			if (icmp_source_ok(d, ip, j))
				classify_icmp_error(s, d, ip, ai, j);
			return;
		}
		if (type >= ICMP6_ND_FIRST && type <= ICMP6_ND_LAST) {
			job_verdict(j, LB_PASS, LB_CTR_PASS_ICMP6_ND);
			return;
		}
	}
	job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_UNSUPPORTED);
}

static inline bool is_our_source(const struct lb_snapshot *s, const uint8_t *d,
                                 const struct pkt_ip *ip)
{
	const struct lb_addr *a = ip->family == 4 ? &s->source_ipv4 : &s->source_ipv6;

	return a->family == af_of(ip->family) &&
	       memcmp(a->b, pkt_ip_dst(d, ip), addr_len_of(ip->family)) == 0;
}

/* GRE to one of our source addresses: re-target it if its inner packet is for a VIP. */
static void classify_gre(const struct lb_snapshot *s, const uint8_t *d, const struct pkt_ip *outer,
                         struct lb_job *j)
{
	uint32_t g = outer->l4off;
	uint16_t proto;
	uint8_t ifam;
	int32_t ai;
	int err;

	if (outer->frag) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_GRE_UNSUPPORTED);
		return;
	}
	if (outer->end - g < PKT_GRE_HLEN) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_GRE_TRUNCATED);
		return;
	}
	proto = pkt_load16(d + g + 2);
	if (pkt_load16(d + g) != 0 || (proto != GRE_PROTO_IPV4 && proto != GRE_PROTO_IPV6)) {
		job_verdict(j, LB_DROP, LB_CTR_DROP_GRE_UNSUPPORTED);
		return;
	}
	ifam = proto == GRE_PROTO_IPV4 ? 4 : 6;
	err = pkt_parse_ip(d, g + PKT_GRE_HLEN, outer->end, ifam, false, &j->ip);
	if (err) {
		job_verdict(j, LB_DROP, (unsigned)err);
		return;
	}
	ai = snapshot_addr_find(s, af_of(ifam), pkt_ip_dst(d, &j->ip));
	if (ai < 0) {
		job_verdict(j, LB_PASS, LB_CTR_PASS_GRE_NOT_VIP);
		return;
	}
	if (j->ip.proto == IPPROTO_TCP || j->ip.proto == IPPROTO_UDP) {
		classify_l4(s, d, &j->ip, ai, j);
	} else if ((ifam == 4 && j->ip.proto == IPPROTO_ICMP) ||
	           (ifam == 6 && j->ip.proto == IPPROTO_ICMPV6)) {
		classify_icmp(s, d, &j->ip, ai, j);
		if (j->kind == JOB_ECHO)
			job_verdict(j, LB_DROP, LB_CTR_DROP_ICMP_UNSUPPORTED);
	} else {
		job_verdict(j, LB_PASS, LB_CTR_PASS_GRE_NOT_VIP);
		return;
	}
	if (j->kind == JOB_VERDICT && j->counter == LB_CTR_PASS_NOT_VIP)
		j->counter = LB_CTR_PASS_GRE_NOT_VIP;
	if (j->kind == JOB_FLOW) {
		j->retarget = true;
		j->outer = *outer;
		j->gre_off = g;
	}
}

/*
 * The common case with one bounds check and one VIP probe: an untagged IPv4 frame without options
 * or fragmentation, carrying TCP or UDP to an IPv4 VIP. Returns true with j exactly as the
 * general path below and classify's MAC check would have left it, or false, having decided
 * nothing, for any other frame.
 */
static inline __attribute__((always_inline)) bool classify_ipv4_fast(const struct lb_snapshot *s,
                                                                     const uint64_t *mac48,
                                                                     const struct lb_frame *f,
                                                                     struct lb_job *j)
{
	const uint8_t *d = f->data, *h = d + PKT_ETH_HLEN;
	uint32_t tot;
	uint16_t sport, dport;
	uint8_t proto;
	int32_t vip;
	int err;

	/*
	 * Ethernet + IPv4 + the 4 bytes of ports (the VIP key's 8 bytes); the IPv4 length bounds
	 * every later read.
	 */
	if (f->len < PKT_ETH_HLEN + PKT_IPV4_HLEN + 4 || pkt_load16(d + 12) != PKT_ETHERTYPE_IPV4 ||
	    h[0] != 0x45)
		return false;
	proto = h[9];
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false;
	tot = pkt_load16(h + 2);
	if (tot < PKT_IPV4_HLEN || tot > f->len - PKT_ETH_HLEN ||
	    (pkt_load16(h + 6) & (PKT_IPV4_MF | PKT_IPV4_OFFMASK)))
		return false;
	vip = snapshot_vip4_find(s, lb_vip4_key(h + 16, proto));
	if (vip == LB_VIP4_NOT_ADDR) {
		job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_VIP);
		return true;
	}
	/* A VIP address but no VIP for the port, or a malformed L4 header: the general path. */
	if (vip < 0)
		return false;
	j->steer = false;
	j->retarget = false;
	j->ip = (struct pkt_ip){
	    .off = PKT_ETH_HLEN,
	    .len = tot,
	    .l4off = PKT_ETH_HLEN + PKT_IPV4_HLEN,
	    .end = PKT_ETH_HLEN + tot,
	    .family = 4,
	    .proto = proto,
	    .frag = false,
	    .has_l4 = true,
	    .df = (h[6] & (PKT_IPV4_DF >> 8)) != 0,
	    .tos = h[1],
	    .id = pkt_load16(h + 4),
	};
	err = pkt_parse_ports(d, &j->ip, &sport, &dport, &j->tcp_flags);
	if (err) {
		job_verdict(j, LB_DROP, (unsigned)err);
		return true;
	}
	if (__builtin_expect(eth_dst48(d) != *mac48, 0)) {
		job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_OUR_MAC);
		return true;
	}
	j->kind = JOB_FLOW;
	j->track = true;
	j->insert = true;
	j->vip = (uint16_t)vip;
	lb_flow_key_fill(&j->key, 4, h + 12, h + 16, proto, sport, dport);
	j->hash = lb_flow_hash_secret(&j->key, s->hash_secret);
	return true;
}

/* Any frame classify_ipv4_fast does not take: parses and classifies f into j by its headers. */
static inline __attribute__((always_inline)) void
classify_general(const struct lb_snapshot *s, const struct lb_frame *f, struct lb_job *j)
{
	const uint8_t *d = f->data;
	uint32_t l3off;
	uint16_t et;
	int32_t ai;
	int err;

	j->steer = false;
	j->retarget = false;
	err = pkt_parse_eth(d, f->len, &l3off, &et);
	if (err) {
		job_verdict(j, LB_DROP, (unsigned)err);
		return;
	}
	if (et == PKT_ETHERTYPE_IPV4)
		err = pkt_parse_ip(d, l3off, f->len, 4, false, &j->ip);
	else if (et == PKT_ETHERTYPE_IPV6)
		err = pkt_parse_ip(d, l3off, f->len, 6, false, &j->ip);
	else
		err = -1;
	if (err) {
		if (err < 0)
			job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_IP);
		else
			job_verdict(j, LB_DROP, (unsigned)err);
		return;
	}
	if (j->ip.proto == GRE_IPPROTO && is_our_source(s, d, &j->ip)) {
		struct pkt_ip outer = j->ip;

		classify_gre(s, d, &outer, j);
		return;
	}
	ai = snapshot_addr_find(s, af_of(j->ip.family), pkt_ip_dst(d, &j->ip));
	if (ai < 0) {
		job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_VIP);
		return;
	}
	if (j->ip.proto == IPPROTO_TCP || j->ip.proto == IPPROTO_UDP)
		classify_l4(s, d, &j->ip, ai, j);
	else if (j->ip.proto == (j->ip.family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6))
		classify_icmp(s, d, &j->ip, ai, j);
	else
		job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_VIP);
}

/*
 * First stage: parse and classify f into j, reading only the frame, the snapshot and *mac48 (our
 * MAC, see eth_dst48; by reference, so that the batch loop loads it where it is compared instead
 * of keeping a register for it on every path). A frame the pipeline would act on (forward,
 * re-target, steer, answer) but sent to another destination MAC is not ours: the kernel decides
 * about it as it would without us (it drops another host's frames, and has its own rules for
 * broadcast and multicast).
 */
static inline __attribute__((always_inline)) void classify(const struct lb_snapshot *s,
                                                           const uint64_t *mac48,
                                                           const struct lb_frame *f,
                                                           struct lb_job *j)
{
	if (__builtin_expect(classify_ipv4_fast(s, mac48, f, j), 1))
		return;
	classify_general(s, f, j);
	/* Acted-on frames have at least Ethernet + IP headers: 8 bytes can be read. */
	if (j->kind != JOB_VERDICT && eth_dst48(f->data) != *mac48)
		job_verdict(j, LB_PASS, LB_CTR_PASS_NOT_OUR_MAC);
}

/* ICMP error token bucket: burst and rate of s->icmp_rate per second. */
static bool icmp_allow(struct lb_worker *w, uint32_t rate, uint64_t now_ns)
{
	uint64_t cap = (uint64_t)rate * NS_PER_SEC, el;

	if (!w->icmp_started) {
		w->icmp_started = true;
		w->icmp_credit = cap;
		w->icmp_last_ns = now_ns;
	}
	el = now_ns > w->icmp_last_ns ? now_ns - w->icmp_last_ns : 0;
	w->icmp_last_ns = now_ns > w->icmp_last_ns ? now_ns : w->icmp_last_ns;
	if (el >= NS_PER_SEC)
		w->icmp_credit = cap;
	else
		w->icmp_credit += el * rate;
	if (w->icmp_credit > cap)
		w->icmp_credit = cap;
	if (w->icmp_credit < NS_PER_SEC)
		return false;
	w->icmp_credit -= NS_PER_SEC;
	return true;
}

static inline bool backend_usable(const struct lb_snapshot *s, uint32_t bref, uint16_t vip)
{
	uint16_t id = LB_BREF_ID(bref);

	/* In use, up, same tag (the id was not reused) and the packet's VIP: see lb_backend.accept
	 */
	return id < s->n_backends && s->backends[id].accept == LB_BACKEND_ACCEPT(vip, bref);
}

/*
 * The hash of j's Maglev slot in VIP v: the flow hash, or for a VIP with hash: source that of the
 * key without its ports (slot_hash_source), computed only when a slot is needed (a table miss, a
 * re-choice), so that the connection table keeps hashing flows apart and a tracked flow costs
 * nothing more.
 */
static __attribute__((noinline, cold)) uint64_t slot_hash_source(const struct lb_snapshot *s,
                                                                 const struct lb_job *j)
{
	return lb_flow_hash_source_secret(&j->key, s->hash_secret);
}

/* The slot hash of j under hash mode mode (enum vip_hash). */
static inline uint64_t slot_hash_mode(const struct lb_snapshot *s, uint8_t mode,
                                      const struct lb_job *j)
{
	if (__builtin_expect(mode == VIP_HASH_SOURCE, 0))
		return slot_hash_source(s, j);
	return j->hash;
}

/* Out of line, as slot_hash_source: the 5-tuple path keeps the code it had. */
static __attribute__((noinline, cold)) uint16_t table_choice_source(const struct lb_snapshot *s,
                                                                    const struct lb_job *j)
{
	const struct lb_vip *v = &s->vips[j->vip];

	return v->table[slot_hash_source(s, j) % v->table_size];
}

static inline uint16_t table_choice(const struct lb_snapshot *s, const struct lb_job *j)
{
	const struct lb_vip *v = &s->vips[j->vip];

	if (__builtin_expect(v->hash == VIP_HASH_SOURCE, 0))
		return table_choice_source(s, j);
	return v->table[j->hash % v->table_size];
}

/*
 * The secondary reference a new entry of j's flow, chosen id, keeps: a TCP packet that is not a
 * SYN starts a flow this maglevd has not seen from its start, so it may belong to the slot's
 * previous owner (snapshot_secondary); a SYN, UDP or an ICMP error about the flow never does.
 */
static inline uint32_t secondary_of(const struct lb_snapshot *s, const struct lb_job *j,
                                    uint16_t id)
{
	const struct lb_vip *v = &s->vips[j->vip];
	uint16_t sec;

	/* The VIP first: its line is loaded (the table pointer), and most VIPs have it off. */
	if (__builtin_expect(!v->second_chance, 1) || j->tcp_flags & PKT_TCP_SYN || j->steer ||
	    j->key.proto != IPPROTO_TCP)
		return LB_BREF_NONE;
	/* The previous generation's slot, under the mode flows were hashed with then. */
	sec = snapshot_secondary(s, v, slot_hash_mode(s, v->prev.hash, j), id);
	return sec == LB_BACKEND_NONE ? LB_BREF_NONE : LB_BREF(sec, s->backends[sec].tag);
}

/* The secondary j carries from an entry's reference sref: none once that backend is gone. */
static inline uint16_t secondary_usable(const struct lb_snapshot *s, const struct lb_job *j,
                                        uint32_t sref)
{
	if (__builtin_expect(sref == LB_BREF_NONE, 1) || j->steer ||
	    !backend_usable(s, sref, j->vip))
		return LB_BACKEND_NONE;
	return LB_BREF_ID(sref);
}

/*
 * Chooses the backend of j's flow: connection table, else the VIP's Maglev table. Returns its id,
 * LB_BACKEND_NONE, or CHOOSE_DROP(counter) for a new flow whose source no client can have
 * (source_check, here so that tracked flows skip it: an entry is only made for a flow that passed
 * it; untracked jobs were checked while classifying).
 */
static uint32_t choose(struct lb_worker *w, const struct lb_snapshot *s, struct lb_job *j,
                       uint32_t now)
{
	struct ct_table *ct = w->ct;
	struct ct_ref r;
	uint16_t id;

	j->sec = LB_BACKEND_NONE;
	if (!j->track)
		return table_choice(s, j);
	/* Branch hints on the hot path: a tracked flow hits, its backend is usable, it is sent. */
	if (__builtin_expect(ct_lookup(ct, j->place, &j->key, now, &r), 1)) {
		uint32_t bref = r.e->bref;

		if (__builtin_expect(backend_usable(s, bref, j->vip), 1)) {
			count(w, LB_CTR_CT_HIT);
			if (j->insert)
				ct_touch_ref(ct, r, j->key.proto, j->tcp_flags, now);
			j->sec = secondary_usable(s, j, r.e->secondary);
			return LB_BREF_ID(bref);
		}
		id = table_choice(s, j);
		if (id == LB_BACKEND_NONE || !j->insert)
			return id;
		count(w, LB_CTR_CT_RECHOSEN);
		r.e->bref = LB_BREF(id, s->backends[id].tag);
		r.e->secondary = secondary_of(s, j, id);
		j->sec = secondary_usable(s, j, r.e->secondary);
		ct_touch_ref(ct, r, j->key.proto, j->tcp_flags, now);
		LB_CTR_ADD(w->bctr[id].flows, 1);
		return id;
	}
	if (__builtin_expect(w->p.ct_fallback != NULL, 0)) {
		uint32_t bref, sref;

		if (w->p.ct_fallback(w->p.ct_fallback_ctx, &j->key, j->hash, now, &bref, &sref) &&
		    backend_usable(s, bref, j->vip)) {
			count(w, LB_CTR_CT_HIT);
			j->sec = secondary_usable(s, j, sref);
			return LB_BREF_ID(bref);
		}
	}
	if (j->insert) {
		unsigned bad = source_check(j->key.family, j->key.src, j->key.dst);

		if (__builtin_expect(bad, 0))
			return CHOOSE_DROP(bad);
	}
	count(w, LB_CTR_CT_MISS);
	id = table_choice(s, j);
	if (id != LB_BACKEND_NONE && j->insert) {
		uint32_t sref = secondary_of(s, j, id);
		struct ct_insert_result ir;
		int64_t made = ct_insert(ct, &j->key, j->hash, LB_BREF(id, s->backends[id].tag),
		                         sref, j->tcp_flags, now, &ir);

		j->sec = secondary_usable(s, j, sref);
		/* Not inserted: the flow is counted as the backend's when it is tracked. */
		if (made < 0) {
			count(w,
			      made == -EAGAIN ? LB_CTR_CT_INSERT_LIMITED : LB_CTR_CT_SYN_UNTRACKED);
			return id;
		}
		if (__builtin_expect(ir.moved, 0))
			LB_CTR_ADD(w->ctr[LB_CTR_CT_MOVED], ir.moved);
		if (ir.evicted != CT_EVICT_NONE) {
			count(w, LB_CTR_CT_EVICTED);
			count(w, ir.evicted == CT_EVICT_SYN_ONLY ? LB_CTR_CT_EVICTED_SYN
			                                         : LB_CTR_CT_EVICTED_ESTABLISHED);
		}
		LB_CTR_ADD(w->bctr[id].flows, 1);
	}
	return id;
}

static enum lb_verdict drop(struct lb_worker *w, unsigned c)
{
	count(w, c);
	return LB_DROP;
}

/* Second stage: act on j. */
/* An echo request to a VIP address: the reply, in place. Off the hot path. */
static __attribute__((noinline, cold)) enum lb_verdict act_echo(struct lb_worker *w,
                                                                const struct lb_snapshot *s,
                                                                struct lb_frame *f,
                                                                const struct lb_job *j)
{
	icmp_echo_reply(f, &j->ip, s->ttl);
	count(w, j->ip.family == 4 ? LB_CTR_TX_ICMP_ECHO_REPLY : LB_CTR_TX_ICMP6_ECHO_REPLY);
	return LB_TX;
}

/* Encapsulated, the packet would exceed the MTU (see docs/pipeline.md, "MTU"). */
static __attribute__((noinline, cold)) enum lb_verdict
act_too_big(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
            const struct lb_job *j, uint32_t mtu, uint64_t now_ns)
{
	int err;

	if (j->steer)
		return drop(w, LB_CTR_DROP_TOO_BIG_ICMP);
	if (!j->ip.df)
		return drop(w, LB_CTR_DROP_TOO_BIG_NO_DF);
	if (!icmp_allow(w, s->icmp_rate, now_ns))
		return drop(w, LB_CTR_ICMP_RATE_LIMITED);
	err = icmp_too_big(f, &j->ip, mtu, s->ttl);
	if (err)
		return drop(w, (unsigned)err);
	count(w, j->ip.family == 4 ? LB_CTR_TX_ICMP_FRAG_NEEDED : LB_CTR_TX_ICMP6_TOO_BIG);
	return LB_TX;
}

/* A GRE packet to us: rewrite its outer header for backend b. */
static __attribute__((noinline, cold)) int act_retarget(struct lb_worker *w,
                                                        const struct lb_snapshot *s,
                                                        struct lb_frame *f, const struct lb_job *j,
                                                        const struct lb_backend *b, uint64_t mac)
{
	struct gre_outer o = {
	    .eth_dst = mac,
	    .eth_src = w->p.mac,
	    .src = b->addr.family == AF_INET ? &s->source_ipv4 : &s->source_ipv6,
	    .dst = &b->addr,
	    .ttl = s->ttl,
	    .tos = j->ip.tos,
	    .df = j->ip.df,
	    .id = j->ip.id,
	};
	int err = gre_retarget(f, &j->outer, j->gre_off, &o, s->mtu);

	if (err) {
		count(w, (unsigned)err);
		return err;
	}
	count(w, LB_CTR_TX_RETARGET);
	return 0;
}

/* Second stage for a JOB_FLOW or JOB_ECHO job (verdict jobs are counted by the caller). */
static enum lb_verdict act(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
                           struct lb_job *j, uint64_t now_ns)
{
	const struct lb_backend *b;
	struct lb_backend_counters *bc;
	uint64_t mac;
	uint32_t r;
	uint16_t id;
	uint8_t baf;
	int err;

	if (__builtin_expect(j->kind == JOB_ECHO, 0))
		return act_echo(w, s, f, j);
	if (j->ip.frag)
		count(w, LB_CTR_FRAGMENTS);
	r = choose(w, s, j, ct_tick(now_ns));
	if (__builtin_expect(r >= LB_BACKEND_NONE, 0))
		return drop(w, r == LB_BACKEND_NONE ? LB_CTR_DROP_NO_BACKEND : CHOOSE_DROP_CTR(r));
	id = (uint16_t)r;
	b = &s->backends[id];
	baf = b->addr.family;
	mac = atomic_load_explicit(&s->nexthops[b->nexthop].mac, memory_order_relaxed);
	if (__builtin_expect(!(mac & LB_NH_VALID), 0))
		return drop(w, LB_CTR_DROP_NEXTHOP_UNRESOLVED);
	if (__builtin_expect(!b->has_source, 0))
		return drop(w, LB_CTR_DROP_NO_SOURCE_ADDR);
	if (__builtin_expect(j->retarget, 0)) {
		if (act_retarget(w, s, f, j, b, mac))
			return LB_DROP;
	} else {
		if (__builtin_expect(j->ip.len > b->inner_mtu, 0))
			return act_too_big(w, s, f, j, b->inner_mtu, now_ns);
		if (__builtin_expect(j->sec == LB_BACKEND_NONE, 1)) {
			err = gre_encap(f, &j->ip, mac, w->p.mac, b);
		} else {
			err = gre_encap_sc(f, &j->ip, mac, w->p.mac, b, &s->backends[j->sec]);
			if (!err)
				count(w, LB_CTR_TX_SECOND_CHANCE);
		}
		if (__builtin_expect(err, 0))
			return drop(w, (unsigned)err);
		count(w, baf == AF_INET ? LB_CTR_TX_GRE_IPV4 : LB_CTR_TX_GRE_IPV6);
	}
	if (j->steer)
		count(w, LB_CTR_ICMP_STEERED);
	bc = &w->bctr[id];
	LB_CTR_ADD(bc->packets, 1);
	LB_CTR_ADD(bc->bytes, j->ip.len);
	return LB_TX;
}

/* Both stages' hand-off: verdicts decided while classifying are counted here, without a call. */
static inline enum lb_verdict finish(struct lb_worker *w, const struct lb_snapshot *s,
                                     struct lb_frame *f, struct lb_job *j, uint64_t now_ns)
{
	if (j->kind == JOB_VERDICT) {
		count(w, j->counter);
		return (enum lb_verdict)j->verdict;
	}
	return act(w, s, f, j, now_ns);
}

enum lb_verdict lb_process(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
                           uint64_t now_ns)
{
	struct lb_job *j = &w->jobs[0];

	count(w, LB_CTR_RX_FRAMES);
	classify(s, &w->mac48, f, j);
	if (j->kind == JOB_FLOW && j->track)
		j->place = ct_place_of(w->ct, j->hash);
	return finish(w, s, f, j, now_ns);
}

/* The second prefetch of job j (see lb_process_batch) at tick now. */
static inline __attribute__((always_inline)) void prefetch_job(const struct lb_worker *w,
                                                               const struct lb_job *j, uint32_t now)
{
	if (j->prefetch && !ct_prefetch_entries(j->place))
		ct_prefetch_miss(w->ct, j->place, now,
		                 j->insert &&
		                     (ct_flags_new(j->key.proto, j->tcp_flags) & CT_F_SYN));
}

void lb_process_batch(struct lb_worker *w, const struct lb_snapshot *s, struct lb_frame *f,
                      enum lb_verdict *v, unsigned n, uint64_t now_ns)
{
	uint32_t tick = ct_tick(now_ns);

	while (n) {
		unsigned m = n < LB_BATCH_MAX ? n : LB_BATCH_MAX;

		const struct ct_bucket *last = NULL;

		LB_CTR_ADD(w->ctr[LB_CTR_RX_FRAMES], m);
		for (unsigned i = 0; i < m; i++) {
			struct lb_job *j = &w->jobs[i];

			classify(s, &w->mac48, &f[i], j);
			j->prefetch = false;
			if (j->kind == JOB_FLOW && j->track) {
				j->place = ct_place_of(w->ct, j->hash);
				/* A burst of one flow (or bucket) has its lines loaded once. */
				j->prefetch = j->place.h != last;
				last = j->place.h;
				if (j->prefetch)
					ct_prefetch(j->place);
			}
		}
		/*
		 * Entries are prefetched LB_PREFETCH_AHEAD frames before they are used, once their
		 * bucket headers (prefetched above) have had the whole classify pass to arrive.
		 */
		for (unsigned i = 0; i < m && i < LB_PREFETCH_AHEAD; i++)
			prefetch_job(w, &w->jobs[i], tick);
		for (unsigned i = 0; i + LB_PREFETCH_AHEAD < m; i++) {
			prefetch_job(w, &w->jobs[i + LB_PREFETCH_AHEAD], tick);
			v[i] = finish(w, s, &f[i], &w->jobs[i], now_ns);
		}
		for (unsigned i = m > LB_PREFETCH_AHEAD ? m - LB_PREFETCH_AHEAD : 0; i < m; i++)
			v[i] = finish(w, s, &f[i], &w->jobs[i], now_ns);
		f += m;
		v += m;
		n -= m;
	}
}

int lb_explain(const struct lb_worker *w, const struct lb_snapshot *s, const struct lb_flow_key *k,
               struct lb_explanation *out)
{
	struct lb_job j;
	int32_t ai, vip;
	uint8_t af = k->family == LB_FLOW_V4 ? AF_INET : AF_INET6;

	memset(out, 0, sizeof(*out));
	out->vip = -1;
	out->table_backend = LB_BACKEND_NONE;
	out->backend = LB_BACKEND_NONE;
	out->secondary = LB_BACKEND_NONE;
	ai = snapshot_addr_find(s, af, k->dst);
	if (ai < 0)
		return -ENOENT;
	vip = snapshot_vip_find(s, ai, k->proto, ntohs(k->dport));
	if (vip < 0)
		return -ENOENT;
	j.vip = (uint16_t)vip;
	j.key = *k;
	/* The connection table's hash; the slot's may leave the ports out (slot_hash). */
	j.hash = lb_flow_hash(k, s->hash_seed);
	out->vip = vip;
	out->hash_source = s->vips[vip].hash == VIP_HASH_SOURCE;
	if (out->hash_source)
		lb_flow_key_source(&out->hash_key, k);
	else
		out->hash_key = *k;
	out->hash = lb_flow_hash(&out->hash_key, s->hash_seed);
	out->slot = (uint32_t)(out->hash % s->vips[vip].table_size);
	out->table_backend = table_choice(s, &j);
	out->backend = out->table_backend;
	/* As for a new flow's first packet that is not a SYN. */
	j.tcp_flags = 0;
	j.steer = false;
	if (out->table_backend != LB_BACKEND_NONE)
		out->secondary = secondary_usable(s, &j, secondary_of(s, &j, out->table_backend));
	/* A flow from a source no client can have is dropped before tracking and the table. */
	out->refused = (uint16_t)source_check(k->family == LB_FLOW_V4 ? 4 : 6, k->src, k->dst);
	if (out->refused) {
		out->backend = LB_BACKEND_NONE;
		out->secondary = LB_BACKEND_NONE;
		return 0;
	}
	if (w) {
		uint32_t bref, sref, expires;
		uint8_t flags;

		if (ct_peek(w->ct, k, j.hash, &bref, &sref, &expires, &flags))
			lb_explain_tracked(s, k, bref, sref, expires, flags, out);
	}
	return 0;
}

void lb_explain_tracked(const struct lb_snapshot *s, const struct lb_flow_key *k, uint32_t bref,
                        uint32_t secondary, uint32_t expires, uint8_t flags,
                        struct lb_explanation *out)
{
	struct lb_job j = {.vip = (uint16_t)out->vip, .key = *k};

	out->tracked = true;
	out->tracked_bref = bref;
	out->tracked_expires_ns = (uint64_t)expires << CT_TICK_SHIFT;
	out->tracked_syn_only = (flags & CT_F_SYN) != 0;
	out->tracked_closing = (flags & CT_F_FIN) != 0;
	out->tracked_usable = backend_usable(s, bref, j.vip);
	if (out->tracked_usable && !out->refused) {
		out->backend = LB_BREF_ID(bref);
		out->secondary = secondary_usable(s, &j, secondary);
	}
}
