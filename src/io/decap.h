/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Backend-side GRE decapsulation, the loader: attaching bpf/xdp_decap.bpf.o to an interface
 * (src/io/xdp.h), filling its VIP map, reading its counters, detaching it. `maglevctl decap`
 * (src/maglevctl/decap.c) is its command line.
 */
#ifndef MAGLEV_IO_DECAP_H
#define MAGLEV_IO_DECAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/xdp_decap.h"
#include "core/addr.h"
#include "io/xdp.h"

struct decap_status {
	bool attached;
	const char *mode; /* "native", "skb", "hw" or "multi" (libxdp dispatcher); static */
	uint32_t prog_id;
	uint32_t n_vips;
	struct lb_addr vips[DECAP_VIPS_MAX];
	uint64_t counters[DECAP_CTR_MAX]; /* summed over CPUs */
};

extern const char *const decap_counter_name[DECAP_CTR_MAX];

/*
 * Attaches the program in obj_path to dev with the n VIP addresses (at most DECAP_VIPS_MAX) and
 * leaves it attached when the process exits (netlink attachment, or libxdp's pinned dispatcher
 * when bpffs is mounted). If xdp_decap is already on dev, only its VIP set is replaced (counters
 * kept) and *replaced is set; another program attached alone is refused (-EBUSY). *mode_name
 * tells where it runs. Errors: negative errno, one line in err (a program that did not load:
 * "rejected by the verifier", with the libraries' messages in xprog_log_kept).
 */
int decap_attach(const char *dev, const char *obj_path, enum xprog_mode mode,
                 const struct lb_addr *vips, size_t n, const char **mode_name, bool *replaced,
                 char *err, size_t errlen);

/* Detaches xdp_decap from dev; -ENOENT if it is not there. */
int decap_detach(const char *dev, char *err, size_t errlen);

/* Fills st (st->attached false if xdp_decap is not on dev: still 0). */
int decap_status_read(const char *dev, struct decap_status *st, char *err, size_t errlen);

#endif
