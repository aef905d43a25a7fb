/*
 * Backend-side GRE decapsulation: attaching bpf/xdp_decap.bpf.o to an interface with libxdp,
 * filling its VIP map, reading its counters, detaching it; and the `maglevctl decap` command.
 */
#ifndef MAGLEV_CONTROL_DECAP_H
#define MAGLEV_CONTROL_DECAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/xdp_decap.h"
#include "core/addr.h"

#define DECAP_OBJ_FILE "xdp_decap.bpf.o" /* found with bpfobj_path (src/io/bpfobj.h) */

enum decap_mode {
	DECAP_MODE_AUTO, /* native (driver) XDP, else generic (SKB) XDP */
	DECAP_MODE_NATIVE,
	DECAP_MODE_SKB,
};

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
 * kept) and *replaced is set. *mode_name tells where it runs. Errors: negative errno, one line in
 * err.
 */
int decap_attach(const char *dev, const char *obj_path, enum decap_mode mode,
                 const struct lb_addr *vips, size_t n, const char **mode_name, bool *replaced,
                 char *err, size_t errlen);

/* Detaches xdp_decap from dev; -ENOENT if it is not there. */
int decap_detach(const char *dev, char *err, size_t errlen);

/* Fills st (st->attached false if xdp_decap is not on dev: still 0). */
int decap_status_read(const char *dev, struct decap_status *st, char *err, size_t errlen);

/*
 * `maglevctl decap attach DEV (-c CONFIG | --vip ADDR ...) [--mode native|skb]`,
 * `maglevctl decap detach DEV`, `maglevctl decap status DEV`: a row of maglevctl's command
 * table. argv[0] is "decap". Prints results (or the help text, for --help) on stdout; returns 0,
 * or a negative errno with one line in err (a verifier rejection also prints the verifier log on
 * stderr first).
 */
int decap_run(int argc, char **argv, char *err, size_t errlen);

#endif
