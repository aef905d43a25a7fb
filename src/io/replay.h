/* SPDX-License-Identifier: GPL-2.0-only */
/* Offline replay: the forwarding pipeline over a pcap file, every transmitted frame to another. */
#ifndef MAGLEV_IO_REPLAY_H
#define MAGLEV_IO_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

#define REPLAY_FRAME_MAX 65535u /* bytes of a frame read from the pcap (snaplen we handle) */

struct replay_result {
	uint64_t frames_in;   /* frames read */
	uint64_t frames_out;  /* frames written (verdict TX) */
	uint64_t frames_pass; /* verdict PASS */
	uint64_t frames_drop; /* verdict DROP */
	uint64_t truncated;   /* frames captured shorter than they were on the wire */
};

/*
 * Runs one worker of the pipeline for cfg over the Ethernet pcap in_path (timestamps are the
 * clock) and writes every frame it transmits (GRE, re-targeted, generated ICMP) to out_path with
 * the input frame's timestamp. Next hops are cfg's dataplane.nexthop_mac (required); our MAC (the
 * only destination MAC whose frames are acted on, and the source of what is sent) is the
 * destination of the first frame sent to a unicast MAC. Prints the nonzero counters to report
 * (NULL: none).
 * Returns 0 or a negative errno with one line in err.
 */
int replay_run(const struct config *cfg, const char *in_path, const char *out_path, FILE *report,
               struct replay_result *res, char *err, size_t errlen);

#endif
