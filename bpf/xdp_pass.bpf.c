/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * XDP_PASS for every frame, for tests and benchmarks only: on the peer of a veth whose XDP program
 * sends with XDP_TX (xdp mode), it makes the peer take those frames (a veth takes XDP_TX frames
 * only while an XDP program of its own, or GRO, runs its NAPI); and it is the baseline the
 * in-kernel benchmark subtracts (bench/bench_xdp_fwd.c: what running any program costs).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
