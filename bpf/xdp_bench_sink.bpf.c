/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Benchmark sink for a backend's interface (tests/e2e/bench.sh): drops every IPv4/IPv6 UDP or
 * GRE frame, so the end-to-end benchmark counts what reached the backend (the veth's XDP drop
 * counter) without spending the backend's CPU on its stack; passes everything else (ARP, NDP,
 * ICMP) so neighbour resolution keeps working. Not for production use.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline int sink_proto(__u8 proto)
{
	return proto == IPPROTO_UDP || proto == IPPROTO_GRE ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		return sink_proto(ip->protocol);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		return sink_proto(ip6->nexthdr);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
