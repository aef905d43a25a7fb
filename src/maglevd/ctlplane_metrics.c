/* SPDX-License-Identifier: GPL-2.0-only */
/* The control plane's metrics export: the Prometheus collector over workers, snapshot and state. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "control/ctlsock.h"
#include "core/counters.h"
#include "maglevd/announce.h"
#include "maglevd/ctlplane_int.h"
#include "maglevd/health.h"
#include "maglevd/metrics.h"

static void cp_metric_name(char *buf, const char *name, const char *suffix)
{
	snprintf(buf, CP_NAME_MAX, "maglevd_%s%s", name, suffix);
}

#define CP_DROPS_FAMILY "maglevd_drops_total"
#define CP_DROP_PREFIX  "drop_" /* of the pipeline counters that go into CP_DROPS_FAMILY */

/* The reason label of pipeline counter name if it is a drop counter (name without "drop_"). */
static const char *cp_drop_reason(const char *name)
{
	return strncmp(name, CP_DROP_PREFIX, strlen(CP_DROP_PREFIX)) == 0
	           ? name + strlen(CP_DROP_PREFIX)
	           : NULL;
}

/* Pipeline counter k of worker i (0 while the data plane has no such worker). */
static uint64_t cp_worker_counter(const struct ctlplane *cp, uint32_t i, uint32_t k)
{
	const struct lb_worker *wk = cp->h.worker ? cp->h.worker(cp->h.ctx, i) : NULL;

	return wk ? lb_counter_read(&lb_worker_counters(wk)[k]) : 0;
}

/* The families with a sample per (VIP, backend), labels vip and backend, in the order written. */
enum cp_backend_family {
	CP_BF_PACKETS,
	CP_BF_BYTES,
	CP_BF_FLOWS,
	CP_BF_UP,
	CP_BF_WEIGHT,
	CP_BF_SLOTS,
	CP_BF_N
};

static const struct {
	const char *name, *type, *help;
} cp_backend_families[CP_BF_N] = {
    [CP_BF_PACKETS] = {"maglevd_backend_packets_total", "counter", "Packets sent to the backend"},
    [CP_BF_BYTES] = {"maglevd_backend_bytes_total", "counter",
                     "Bytes sent to the backend, before encapsulation"},
    [CP_BF_FLOWS] = {"maglevd_backend_flows_total", "counter", "New flows given to the backend"},
    [CP_BF_UP] = {"maglevd_backend_up", "gauge",
                  "Health check result: 1 up (or not checked), 0 down"},
    [CP_BF_WEIGHT] = {"maglevd_backend_weight", "gauge",
                      "Effective weight (config or runtime; 0 = drained)"},
    [CP_BF_SLOTS] = {"maglevd_backend_slots", "gauge", "Maglev table slots of the backend"},
};

/* Family f's sample of snapshot backend id; cv is its VIP's config (only CP_BF_UP reads it). */
static uint64_t cp_backend_value(const struct ctlplane *cp, enum cp_backend_family f,
                                 const struct config_vip *cv, uint16_t id)
{
	const struct lb_backend *b = &cp->cur->backends[id];
	struct lb_backend_counters c;

	switch (f) {
	case CP_BF_PACKETS:
	case CP_BF_BYTES:
	case CP_BF_FLOWS:
		cp_backend_counters(cp, id, &c);
		return f == CP_BF_PACKETS ? c.packets : f == CP_BF_BYTES ? c.bytes : c.flows;
	case CP_BF_UP:
		return cp_health(cp, cv, config_backend_find(cv, &b->addr)) != 0;
	case CP_BF_WEIGHT:
		return b->weight;
	case CP_BF_SLOTS:
		return b->slots;
	case CP_BF_N:
		break;
	}
	return 0;
}

void cp_collect(void *ctx, struct metrics_writer *w)
{
	struct ctlplane *cp = ctx;
	uint32_t nw = cp->h.n_workers;
	char name[CP_NAME_MAX], wid[CP_NUM_MAX], a[LB_ADDR_STRLEN], d[CP_DIGEST_STRLEN];
	char port[CP_NUM_MAX], m[CP_NUM_MAX];
	const char *wl[] = {"worker", wid, NULL};
	const struct lb_snapshot *s;

	uint64_t kernel[LB_CTR_MAX] = {0};

	pthread_mutex_lock(&cp->lock);
	s = cp->cur;
	if (cp->h.kernel_counters)
		cp->h.kernel_counters(cp->h.ctx, kernel);
	for (uint32_t k = 0; k < LB_CTR_MAX; k++) {
		if (cp_drop_reason(lb_counter_name[k]))
			continue;
		cp_metric_name(name, lb_counter_name[k], "_total");
		metrics_family(w, name, "counter", lb_counter_help[k]);
		for (uint32_t i = 0; i < nw; i++) {
			snprintf(wid, sizeof(wid), "%u", i);
			metrics_sample(w, name, wl, cp_worker_counter(cp, i, k));
		}
	}
	/*
	 * The drop_* counters as one family with a reason label, so that a query can sum or break
	 * down drops without listing every reason (and a new reason shows up by itself).
	 */
	metrics_family(w, CP_DROPS_FAMILY, "counter",
	               "Frames the pipeline dropped, by reason (the drop_* counters of maglevctl "
	               "counters; docs/pipeline.md)");
	for (uint32_t k = 0; k < LB_CTR_MAX; k++) {
		const char *reason = cp_drop_reason(lb_counter_name[k]);
		const char *l[] = {"worker", wid, "reason", reason, NULL};

		if (!reason)
			continue;
		for (uint32_t i = 0; i < nw; i++) {
			snprintf(wid, sizeof(wid), "%u", i);
			metrics_sample(w, CP_DROPS_FAMILY, l, cp_worker_counter(cp, i, k));
		}
		/* The kernel's fast path (xdp mode) as a worker of its own. */
		if (cp->h.kernel_counters) {
			snprintf(wid, sizeof(wid), "%s", CP_KERNEL_WORKER);
			metrics_sample(w, name, wl, kernel[k]);
		}
	}
	if (cp->h.io_counters && cp->h.n_io_counters) {
		uint32_t nio = cp->h.n_io_counters;
		uint64_t *io = calloc((size_t)nw * nio + 1, sizeof(*io));

		for (uint32_t i = 0; io && i < nw; i++)
			cp->h.io_counters(cp->h.ctx, i, io + (size_t)i * nio);
		for (uint32_t k = 0; io && k < nio; k++) {
			cp_metric_name(name, cp->h.io_counter_names[k], "_total");
			metrics_family(w, name, "counter", cp->h.io_counter_help[k]);
			for (uint32_t i = 0; i < nw; i++) {
				snprintf(wid, sizeof(wid), "%u", i);
				metrics_sample(w, name, wl, io[(size_t)i * nio + k]);
			}
		}
		free(io);
	}
	for (int f = 0; f < CP_BF_N; f++) {
		metrics_family(w, cp_backend_families[f].name, cp_backend_families[f].type,
		               cp_backend_families[f].help);
		for (uint32_t i = 0; i < s->n_vips; i++) {
			const struct config_vip *cv =
			    f == CP_BF_UP ? config_vip_find(cp->cfg, s->vips[i].name) : NULL;

			for (uint32_t j = 0; j < s->vips[i].n_backends; j++) {
				uint16_t id = s->vips[i].backends[j];
				const char *l[] = {"vip", s->vips[i].name, "backend",
				                   lb_addr_str(&s->backends[id].addr, a, sizeof(a)),
				                   NULL};

				metrics_sample(w, cp_backend_families[f].name, l,
				               cp_backend_value(cp, f, cv, id));
			}
		}
	}
	metrics_family(
	    w, "maglevd_vip_info", "gauge",
	    "One per VIP; equal digest and hash labels prove equal choices across maglevd");
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];
		const char *l[] = {"vip",        v->name,
		                   "address",    lb_addr_str(&v->addr, a, sizeof(a)),
		                   "protocol",   cp_proto_str(v->proto),
		                   "port",       port,
		                   "table_size", m,
		                   "digest",     cp_digest_str(v->digest, d),
		                   "hash",       config_vip_hash_name(v->hash),
		                   NULL};

		snprintf(port, sizeof(port), "%u", v->port);
		snprintf(m, sizeof(m), "%u", v->table_size);
		metrics_sample(w, "maglevd_vip_info", l, 1);
	}
	metrics_family(w, "maglevd_vip_announced", "gauge",
	               "1 while the VIP's route is in the announce table (BGP announces it)");
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const char *l[] = {"vip", s->vips[i].name, NULL};

		metrics_sample(w, "maglevd_vip_announced", l,
		               strcmp(cp_announce_state(cp, s->vips[i].name), "announced") == 0);
	}
	for (uint32_t k = 0; k < STATE_CTR_MAX; k++) {
		cp_metric_name(name, state_counter_name[k], "_total");
		metrics_family(w, name, "counter", state_counter_help[k]);
		metrics_sample(w, name, NULL, state_counter_get(cp->state, k));
	}
	for (uint32_t k = 0; k < ANNOUNCE_CTR_MAX; k++) {
		cp_metric_name(name, announce_counter_name[k], "_total");
		metrics_family(w, name, "counter", announce_counter_help[k]);
		metrics_sample(w, name, NULL, announce_counter_get(cp->ann, k));
	}
	metrics_family(w, "maglevd_config_generation", "gauge",
	               "1 + successful reloads of the config file");
	metrics_sample(w, "maglevd_config_generation", NULL, cp->config_generation);
	metrics_family(w, "maglevd_snapshot_generation", "gauge",
	               "Snapshots published (reloads, runtime changes, health changes)");
	metrics_sample(w, "maglevd_snapshot_generation", NULL, s->generation);
	metrics_family(w, "maglevd_reloads_total", "counter", "Config reloads by result");
	{
		const char *ok[] = {"result", "success", NULL};
		const char *bad[] = {"result", "failure", NULL};

		metrics_sample(w, "maglevd_reloads_total", ok, cp->reloads_ok);
		metrics_sample(w, "maglevd_reloads_total", bad, cp->reloads_failed);
	}
	metrics_family(w, "maglevd_last_reload_duration_seconds", "gauge",
	               "Time of the last successful reload: parse, build, publish");
	metrics_sample_f(w, "maglevd_last_reload_duration_seconds", NULL,
	                 cp->last_reload_ms / (double)MSEC_PER_SEC);
	metrics_family(w, "maglevd_health_checks", "gauge", "Distinct health checks running");
	metrics_sample(w, "maglevd_health_checks", NULL, health_count(cp->hc));
	metrics_family(w, "maglevd_health_probes_inflight", "gauge",
	               "Health probes in flight (each holds a socket)");
	metrics_sample(w, "maglevd_health_probes_inflight", NULL, health_inflight(cp->hc));
	metrics_family(w, "maglevd_health_probes_inflight_max", "gauge",
	               "Cap on health probes in flight; due checks wait for a slot");
	metrics_sample(w, "maglevd_health_probes_inflight_max", NULL, health_inflight_max(cp->hc));
	for (uint32_t k = 0; k < HEALTH_CTR_MAX; k++) {
		cp_metric_name(name, health_counter_name[k], "_total");
		metrics_family(w, name, "counter", health_counter_help[k]);
		metrics_sample(w, name, NULL, health_counter_get(cp->hc, k));
	}
	for (uint32_t k = 0; k < HCT_CTR_MAX; k++) {
		cp_metric_name(name, hct_counter_name[k], "_total");
		metrics_family(w, name, "counter", hct_counter_help[k]);
		metrics_sample(w, name, NULL, cp_tunnel_counter(cp, k));
	}
	metrics_family(w, "maglevd_uptime_seconds", "gauge", "Seconds since maglevd started");
	metrics_sample(w, "maglevd_uptime_seconds", NULL,
	               (clock_now_ms() - cp->started_ms) / MSEC_PER_SEC);
	metrics_family(w, "maglevd_control_clients_closed_total", "counter",
	               "Control socket clients the daemon closed: timeout (no complete request, "
	               "or its answer not read, in time), evicted (the slowest, for a new client), "
	               "refused (a new client while every slot was being answered)");
	for (int k = 0; k < CTL_CLOSE_N; k++) {
		const char *l[] = {"reason", ctl_close_name((enum ctl_close)k), NULL};

		metrics_sample(w, "maglevd_control_clients_closed_total", l,
		               ctl_server_closed(cp->srv, (enum ctl_close)k));
	}
	pthread_mutex_unlock(&cp->lock);
}
