/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The AF_PACKET steering filter: a classic BPF program, generated from the VIP list, that
 * accepts exactly what the XDP steering program would redirect (see io_filter) and rejects the
 * rest, so the AF_PACKET data plane only copies VIP traffic.
 */
#ifndef MAGLEV_IO_VIPFILTER_H
#define MAGLEV_IO_VIPFILTER_H

#include <linux/filter.h>
#include <stdint.h>

#include "io/io.h"

#define VIPFILTER_INSNS_MAX BPF_MAXINSNS /* the kernel's limit for one classic BPF program */
#define VIPFILTER_ACCEPT    0x40000u     /* bytes kept of an accepted frame: all of it */

/*
 * Writes the program for f into ins[0..cap) and its length into *n. The program reads frames as
 * AF_PACKET sockets see them: Ethernet header first, 802.1Q tags already removed by the kernel;
 * IPv6 transport headers are found only right after the fixed header (fragments are matched by
 * address: the fragment header is the next header). Returns 0, or -E2BIG when cap is too small.
 */
int vipfilter_build(const struct io_filter *f, struct sock_filter *ins, uint32_t cap, uint32_t *n);

/* The fallback when the VIPs do not fit: accepts every IPv4 and IPv6 frame. */
int vipfilter_build_all_ip(struct sock_filter *ins, uint32_t cap, uint32_t *n);

#endif
