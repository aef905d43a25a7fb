/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the control plane's files share (ctlplane.c: state and its changes; ctlplane_requests.c:
 * control socket requests; ctlplane_metrics.c: the metrics export): struct ctlplane, its limits,
 * and the reads of its state that more than one of them makes. Not for use outside them.
 */
#ifndef MAGLEV_MAGLEVD_CTLPLANE_INT_H
#define MAGLEV_MAGLEVD_CTLPLANE_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "control/ctlsock.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "core/snapshot.h"
#include "io/hctunnel.h"
#include "maglevd/ctlplane.h"
#include "maglevd/metrics.h"
#include "maglevd/state.h"

#define CP_OVERRIDES_MAX  (CONFIG_VIPS_MAX * 16u) /* runtime weight/drain entries */
#define CP_PERCENT        100.0
#define CP_DIGEST_STRLEN  17u   /* 16 hex digits and the NUL */
#define CP_NAME_MAX       128u  /* bytes of a metric name */
#define CP_LINE_MAX       160u  /* bytes of an explain reason or flow text */
#define CP_NUM_MAX        24u   /* bytes of a number printed as a label value */
#define CP_GROW_INITIAL   64u   /* entries of a growing array's first allocation */
#define CP_RETRY_MS       1000u /* wait before retrying a failed health rebuild */
#define CP_STATUS_ERR_MAX 200u  /* bytes of a failed reload's error in systemd's STATUS= */
/* What counters, metrics and explain call the kernel's fast path (xdp mode) among workers. */
#define CP_KERNEL_WORKER "kernel"

/* A runtime change to one (VIP, backend): lost on the next reload. */
struct cp_override {
	char vip[CONFIG_NAME_MAX];
	struct lb_addr backend;
	int32_t weight; /* -1 = the config's */
	bool drained;   /* effective weight 0 until undrain, whatever weight says */
};

struct ctlplane {
	char path[CONFIG_PATH_MAX];
	struct ctlplane_hooks h;
	/*
	 * cfg, cur, ov, the statistics below and the health checker's state change only on the
	 * control thread, under lock; the metrics thread reads them under lock. The control thread
	 * reads them without it.
	 */
	pthread_mutex_t lock;
	struct config *cfg;
	struct lb_snapshot *cur;
	struct cp_override *ov;
	uint32_t n_ov;
	uint64_t config_generation; /* 1 + successful reloads */
	uint64_t reloads_ok, reloads_failed, rebuilds;
	double last_reload_ms;
	double last_rebuild_ms;
	char last_reload_error[CTL_ERR_MAX];
	uint64_t started_ms;

	struct health_checker *hc;
	/* The tunnel of `through: tunnel` checks, open while there are some; NULL otherwise or
	 * when it could not be opened (hct_err says why, the probes' failure reason). */
	struct hct *hct;
	char hct_err[CTL_ERR_MAX];
	/* The counters of tunnels closed so far (a reload without tunnel checks closes it). */
	uint64_t hct_gone[HCT_CTR_MAX];
	struct ctl_server *srv;
	struct metrics_server *ms;
	int epfd; /* holds the socket's and the checker's fds */
	atomic_int reload_asked;
	bool dirty;        /* health changed since the last build */
	uint64_t retry_ms; /* a failed health rebuild is retried from then on */

	/* VIP routes (announce.*); NULL when not enabled. Changed under lock. */
	struct announce *ann;
	bool *ann_want;       /* per cfg VIP: false = withdrawn (no backend up) */
	uint64_t ann_next_ms; /* next reconcile of the kernel table */
	bool ann_stopped;     /* everything withdrawn for a clean stop: no more syncs */

	/* The state file (control.state_dir as at start); NULL when none is kept. */
	struct state_store *state;
	uint64_t state_retry_ms; /* a failed write is tried again from then on */
};

static inline const char *cp_proto_str(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

/* d as 16 hex digits in buf[CP_DIGEST_STRLEN]; returns buf. */
static inline const char *cp_digest_str(uint64_t d, char *buf)
{
	snprintf(buf, CP_DIGEST_STRLEN, "%016llx", (unsigned long long)d);
	return buf;
}

/* ctlplane.c. The caller is the control thread, or holds cp->lock. */

/* The runtime override of (vip, backend a), or NULL. */
struct cp_override *cp_override_find(struct ctlplane *cp, const char *vip, const struct lb_addr *a);

/* Health of a configured backend: 1 up, 0 down, -1 not checked (also for NULL v or b). */
int cp_health(const struct ctlplane *cp, const struct config_vip *v,
              const struct config_backend *b);

/* Why a configured backend's check is down (its last probe's failure), NULL if it is not down. */
const char *cp_health_reason(const struct ctlplane *cp, const struct config_vip *v,
                             const struct config_backend *b);

/* "announced", "withdrawn" (no backend up), "failed" (route not in the table), or "off". */
const char *cp_announce_state(const struct ctlplane *cp, const char *vip);

/* Snapshot backend id's counters summed over the workers into *sum. */
void cp_backend_counters(const struct ctlplane *cp, uint16_t id, struct lb_backend_counters *sum);

/*
 * Builds the snapshot of cfg on top of the current one and publishes it. On success cfg (if not
 * the current config) becomes current and the old snapshot and config are freed; on failure
 * nothing changes, err says why and the caller keeps cfg. Returns 0 or a negative errno.
 */
int cp_rebuild(struct ctlplane *cp, struct config *cfg, char *err, size_t errlen);

/* ctlplane_requests.c: the control socket's handler (struct ctl_server's), ctx = cp. */
json_t *cp_handle(void *ctx, const struct ctl_request *req, char *err, size_t errlen);

/* ctlplane_metrics.c: the metrics endpoint's collector, ctx = cp; takes cp->lock. */
void cp_collect(void *ctx, struct metrics_writer *w);

/* Tunnel counter k (enum hct_counter) since start: closed tunnels' and the open one's. */
uint64_t cp_tunnel_counter(const struct ctlplane *cp, unsigned k);

#endif
