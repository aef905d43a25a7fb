/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The afxdp mode's XDP program: VIP steering to the AF_XDP sockets (bpf/steer.h has what it
 * steers and why), nothing else.
 */
#include "steer.h"

SEC(XDP_VIP_SEC)
int xdp_vip(struct xdp_md *ctx)
{
	return steer_frame(ctx);
}
BPF_NAME_IS(xdp_vip, XDP_VIP_PROG_NAME);

char _license[] SEC("license") = "GPL";
