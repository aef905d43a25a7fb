/* SPDX-License-Identifier: GPL-2.0-only */
/* Classic BPF generation for the AF_PACKET steering filter: one fixed-shape block per match. */
#include "io/vipfilter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <stdbool.h>

/* Offsets from the Ethernet header as the filter sees the frame (no VLAN tag: see vipfilter.h). */
#define IP6_HLEN             40u /* the fixed IPv6 header */
#define OFF_ETHERTYPE        (2u * ETH_ALEN)
#define OFF_IP4_VHL          (ETH_HLEN + 0u)
#define OFF_IP4_FRAG         (ETH_HLEN + 6u)
#define OFF_IP4_PROTO        (ETH_HLEN + 9u)
#define OFF_IP4_DST          (ETH_HLEN + 16u)
#define OFF_IP4_DPORT        (ETH_HLEN + 2u) /* added to X = IPv4 header length (BPF_IND) */
#define OFF_IP6_NEXT         (ETH_HLEN + 6u)
#define OFF_IP6_DST          (ETH_HLEN + 24u)
#define OFF_IP6_DPORT        (ETH_HLEN + IP6_HLEN + 2u) /* transport right after the fixed header */
#define IP4_FRAG_OFFSET_MASK 0x1fffu

struct cbpf {
	struct sock_filter *ins;
	uint32_t n, cap;
	bool overflow;
};

static void cbpf_emit(struct cbpf *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n >= p->cap) {
		p->overflow = true;
		return;
	}
	p->ins[p->n++] = (struct sock_filter){.code = code, .jt = jt, .jf = jf, .k = k};
}

/*
 * One self-contained block: accept when the destination is addr, the protocol proto and (port
 * != 0) the destination port port; otherwise fall through to the next block. IPv4 non-first
 * fragments of (addr, proto) carry no port and are accepted by address. Every jump is forward,
 * short and stays inside the block, so blocks compose without labels or long jumps.
 */
static void cbpf_block(struct cbpf *p, const struct lb_addr *addr, uint8_t proto, uint16_t port)
{
	bool v4 = addr->family == AF_INET;
	uint32_t words = v4 ? 1 : 4, at = 0;
	/* Instructions: 2 per address word, 2 for the protocol, the port part, 1 accept. */
	uint32_t len = 2 * words + 2 + (port ? (v4 ? 5 : 2) : 0) + 1;
#define TO_END    ((uint8_t)(len - at - 1)) /* jump offset to the next block */
#define TO_ACCEPT ((uint8_t)(len - at - 2)) /* jump offset to this block's accept */
	for (uint32_t w = 0; w < words; w++) {
		uint32_t off = (v4 ? OFF_IP4_DST : OFF_IP6_DST) + 4 * w;

		cbpf_emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, off), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, ntohl(addr->w[w])), at++;
	}
	cbpf_emit(p, BPF_LD | BPF_B | BPF_ABS, 0, 0, v4 ? OFF_IP4_PROTO : OFF_IP6_NEXT), at++;
	cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, proto), at++;
	if (port && v4) {
		cbpf_emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_IP4_FRAG), at++;
		cbpf_emit(p, BPF_JMP | BPF_JSET | BPF_K, TO_ACCEPT, 0, IP4_FRAG_OFFSET_MASK), at++;
		cbpf_emit(p, BPF_LDX | BPF_B | BPF_MSH, 0, 0, OFF_IP4_VHL), at++;
		cbpf_emit(p, BPF_LD | BPF_H | BPF_IND, 0, 0, OFF_IP4_DPORT), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, port), at++;
	} else if (port) {
		cbpf_emit(p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_IP6_DPORT), at++;
		cbpf_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_END, port), at++;
	}
#undef TO_END
#undef TO_ACCEPT
	cbpf_emit(p, BPF_RET | BPF_K, 0, 0, VIPFILTER_ACCEPT);
}

static bool addr_seen(const struct io_filter *f, uint32_t i)
{
	for (uint32_t j = 0; j < i; j++)
		if (lb_addr_eq(&f->vips[j].addr, &f->vips[i].addr))
			return true;
	return false;
}

/* One family's section: a block per VIP, ICMP (and IPv6 fragments) per address, GRE to self. */
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
			cbpf_block(p, &f->self[i], IPPROTO_GRE, 0);
	cbpf_emit(p, BPF_RET | BPF_K, 0, 0, 0);
}

int vipfilter_build(const struct io_filter *f, struct sock_filter *ins, uint32_t cap, uint32_t *n)
{
	struct cbpf p = {.ins = ins, .cap = cap};
	uint32_t v6_jump;

	/* Dispatch on EtherType; ja has a 32-bit offset, so sections may be of any length. */
	cbpf_emit(&p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_ETHERTYPE);
	cbpf_emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_IP);
	cbpf_emit(&p, BPF_JMP | BPF_JA, 0, 0, 3); /* to the IPv4 section at 6 */
	cbpf_emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_IPV6);
	v6_jump = p.n;
	cbpf_emit(&p, BPF_JMP | BPF_JA, 0, 0, 0); /* to the IPv6 section, patched below */
	cbpf_emit(&p, BPF_RET | BPF_K, 0, 0, 0);
	cbpf_section(&p, f, AF_INET);
	if (!p.overflow)
		ins[v6_jump].k = p.n - (v6_jump + 1);
	cbpf_section(&p, f, AF_INET6);
	if (p.overflow)
		return -E2BIG;
	*n = p.n;
	return 0;
}

int vipfilter_build_all_ip(struct sock_filter *ins, uint32_t cap, uint32_t *n)
{
	struct cbpf p = {.ins = ins, .cap = cap};

	cbpf_emit(&p, BPF_LD | BPF_H | BPF_ABS, 0, 0, OFF_ETHERTYPE);
	cbpf_emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, ETH_P_IP);
	cbpf_emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ETH_P_IPV6);
	cbpf_emit(&p, BPF_RET | BPF_K, 0, 0, VIPFILTER_ACCEPT);
	cbpf_emit(&p, BPF_RET | BPF_K, 0, 0, 0);
	if (p.overflow)
		return -E2BIG;
	*n = p.n;
	return 0;
}
