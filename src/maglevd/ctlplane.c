/* The control plane of a running maglevd: reload, overrides, health, rebuilds, socket, metrics. */
#include "maglevd/ctlplane.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/version.h"
#include "maglevd/announce.h"
#include "control/config_yaml.h"
#include "control/ctlsock.h"
#include "maglevd/health.h"
#include "maglevd/metrics.h"
#include "core/counters.h"
#include "core/flow.h"

#define CP_OVERRIDES_MAX (CONFIG_VIPS_MAX * 16u) /* runtime weight/drain entries */
#define CP_PERCENT       100.0
#define CP_DIGEST_STRLEN 17u  /* 16 hex digits and the NUL */
#define CP_NAME_MAX      128u /* bytes of a metric name */
#define CP_LINE_MAX      160u /* bytes of an explain reason or flow text */
#define CP_NUM_MAX       24u  /* bytes of a number printed as a label value */
#define CP_GROW_INITIAL  64u  /* entries of a growing array's first allocation */
#define CP_RETRY_MS      1000u /* wait before retrying a failed health rebuild */

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
	struct ctl_server *srv;
	struct metrics_server *ms;
	int epfd; /* holds the socket's and the checker's fds */
	atomic_int reload_asked;
	bool dirty;        /* health changed since the last build */
	uint64_t retry_ms; /* a failed health rebuild is retried from then on */

	/* VIP routes (announce.*); NULL when not enabled. Changed under lock. */
	struct announce *ann;
	bool *ann_want;        /* per cfg VIP: false = withdrawn (no backend up) */
	uint64_t ann_next_ms;  /* next reconcile of the kernel table */
	bool ann_stopped;      /* everything withdrawn for a clean stop: no more syncs */
};

static const char *cp_proto_str(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

/* The health check a backend of a VIP has: its own, else the VIP's; false if none. */
static bool cp_target(const struct config_vip *v, const struct config_backend *b,
                      struct health_target *t)
{
	const struct config_health *h = b->has_health ? &b->health : &v->health;

	if (h->type == HC_NONE)
		return false;
	return health_target_from_config(t, h, &b->addr, v->port) == 0;
}

static const struct config_vip *cp_cfg_vip(const struct config *cfg, const char *name)
{
	for (uint32_t i = 0; i < cfg->n_vips; i++)
		if (strcmp(cfg->vips[i].name, name) == 0)
			return &cfg->vips[i];
	return NULL;
}

static const struct config_backend *cp_cfg_backend(const struct config_vip *v,
                                                   const struct lb_addr *a)
{
	for (uint32_t i = 0; v && i < v->n_backends; i++)
		if (lb_addr_eq(&v->backends[i].addr, a))
			return &v->backends[i];
	return NULL;
}

static struct cp_override *cp_override_find(struct ctlplane *cp, const char *vip,
                                            const struct lb_addr *a)
{
	for (uint32_t i = 0; i < cp->n_ov; i++)
		if (strcmp(cp->ov[i].vip, vip) == 0 && lb_addr_eq(&cp->ov[i].backend, a))
			return &cp->ov[i];
	return NULL;
}

/* Health of a configured backend: 1 up, 0 down, -1 not checked. */
static int cp_health(const struct ctlplane *cp, const struct config_vip *v,
                     const struct config_backend *b)
{
	struct health_target t;

	if (!v || !b || !cp_target(v, b, &t))
		return -1;
	return health_is_up(cp->hc, &t) ? 1 : 0;
}

/*
 * The snapshot_state of cfg: runtime weights and drains, and health. All-down policy (fail
 * open): when every backend of a VIP that would take flows by weight is down, health is ignored
 * for that VIP, so it keeps serving on its full table instead of dropping every flow.
 */
static int cp_state_build(struct ctlplane *cp, const struct config *cfg,
                          struct snapshot_override **out, uint32_t *n_out, bool *want)
{
	struct snapshot_override *v = NULL;
	uint32_t n = 0, cap = 0;

	for (uint32_t i = 0; i < cfg->n_vips; i++) {
		const struct config_vip *vip = &cfg->vips[i];
		uint32_t first = n, eligible = 0, up = 0;

		for (uint32_t j = 0; j < vip->n_backends; j++) {
			const struct config_backend *b = &vip->backends[j];
			struct cp_override *o = cp_override_find(cp, vip->name, &b->addr);
			int32_t weight = o ? (o->drained ? 0 : o->weight) : -1;
			uint32_t eff = weight >= 0 ? (uint32_t)weight : b->weight;
			bool down = cp_health(cp, vip, b) == 0;

			if (eff > 0) {
				eligible++;
				up += !down;
			}
			if (weight < 0 && !down)
				continue;
			if (n == cap) {
				struct snapshot_override *nv;

				cap = cap ? cap * 2 : CP_GROW_INITIAL;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			memset(&v[n], 0, sizeof(v[n]));
			snprintf(v[n].vip, sizeof(v[n].vip), "%s", vip->name);
			v[n].backend = b->addr;
			v[n].weight = weight;
			v[n].down = down;
			n++;
		}
		want[i] = true;
		if (eligible && !up) {
			fprintf(
			    stderr,
			    "maglevd: vip %s: every backend is down; ignoring health checks for "
			    "it (fail open) until one comes back%s\n",
			    vip->name,
			    cp->ann && cfg->announce.withdraw_when_no_backends
			        ? "; its route is withdrawn (announce.withdraw_when_no_backends)"
			        : "");
			for (uint32_t k = first; k < n; k++)
				v[k].down = false;
			want[i] = !cfg->announce.withdraw_when_no_backends;
		}
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* The health targets of cfg into the checker; a check that cannot be made is logged. */
static void cp_targets_set(struct ctlplane *cp, const struct config *cfg)
{
	struct health_target *t = NULL;
	uint32_t n = 0, cap = 0;
	int ret;

	for (uint32_t i = 0; i < cfg->n_vips; i++) {
		const struct config_vip *v = &cfg->vips[i];

		for (uint32_t j = 0; j < v->n_backends; j++) {
			const struct config_backend *b = &v->backends[j];
			const struct config_health *h = b->has_health ? &b->health : &v->health;

			if (h->type == HC_NONE)
				continue;
			if (n == cap) {
				struct health_target *nt;

				cap = cap ? cap * 2 : CP_GROW_INITIAL;
				nt = realloc(t, cap * sizeof(*t));
				if (!nt)
					goto out;
				t = nt;
			}
			if (health_target_from_config(&t[n], h, &b->addr, v->port) < 0) {
				char a[LB_ADDR_STRLEN];

				log_warn("vip %s backend %s: health check has no port (VIP port 0): "
					 "not checked",
					 v->name, lb_addr_str(&b->addr, a, sizeof(a)));
				continue;
			}
			n++;
		}
	}
	/* The metrics thread reads the checker under the lock (cp_health). */
	pthread_mutex_lock(&cp->lock);
	ret = health_set_targets(cp->hc, t, n);
	pthread_mutex_unlock(&cp->lock);
	if (ret < 0)
		log_err("health checks not updated: %s", strerror(-ret));
out:
	free(t);
}

/*
 * Brings the kernel's VIP routes in line with the current config and health: one route per
 * address that has a VIP not withdrawn. Failures are logged and counted by the announcer and
 * retried after ANNOUNCE_RETRY_MS; the table is re-checked every ANNOUNCE_RECONCILE_MS anyway.
 */
static void cp_announce(struct ctlplane *cp)
{
	const struct config *cfg = cp->cfg;
	struct lb_addr *want;
	uint32_t n = 0;
	int ret;

	if (!cp->ann || cp->ann_stopped)
		return;
	want = calloc(cfg->n_vips + 1, sizeof(*want));
	if (!want) {
		cp->ann_next_ms = clock_now_ms() + ANNOUNCE_RETRY_MS;
		return;
	}
	for (uint32_t i = 0; i < cfg->n_vips; i++)
		if (!cp->ann_want || cp->ann_want[i])
			want[n++] = cfg->vips[i].addr;
	pthread_mutex_lock(&cp->lock);
	ret = announce_sync(cp->ann, want, n);
	pthread_mutex_unlock(&cp->lock);
	free(want);
	cp->ann_next_ms = clock_now_ms() + (ret < 0 ? ANNOUNCE_RETRY_MS : ANNOUNCE_RECONCILE_MS);
}

/* "announced", "withdrawn" (no backend up), "failed" (route not in the table), or "off". */
static const char *cp_announce_state(const struct ctlplane *cp, const char *vip)
{
	const struct config_vip *cv = cp_cfg_vip(cp->cfg, vip);

	if (!cp->ann || !cv)
		return "off";
	if (announce_is_live(cp->ann, &cv->addr))
		return "announced";
	if (cp->ann_stopped || (cp->ann_want && !cp->ann_want[cv - cp->cfg->vips]))
		return "withdrawn";
	return "failed";
}

/*
 * Builds the snapshot of cfg on top of the current one and publishes it. On success cfg (if not
 * the current config) becomes current and the old snapshot and config are freed; on failure
 * nothing changes and the caller keeps cfg.
 */
static int cp_rebuild(struct ctlplane *cp, struct config *cfg, char *err, size_t errlen)
{
	struct snapshot_override *ov = NULL;
	struct snapshot_state st = {0};
	struct lb_snapshot *next = NULL, *old;
	struct config *old_cfg = NULL;
	double t0 = clock_now_ms_f();
	bool *want = calloc(cfg->n_vips + 1, sizeof(*want)), *old_want;
	int ret;

	ret = want ? cp_state_build(cp, cfg, &ov, &st.n, want) : -ENOMEM;
	if (ret < 0) {
		free(want);
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	st.v = ov;
	ret = snapshot_build(cfg, cp->cur, &st, &next, err, errlen);
	free(ov);
	if (ret < 0) {
		free(want);
		return ret;
	}
	ret = cp->h.publish ? cp->h.publish(cp->h.ctx, cfg, next, err, errlen) : 0;
	if (ret < 0) {
		free(want);
		snapshot_free(next);
		return ret;
	}
	pthread_mutex_lock(&cp->lock);
	old_want = cp->ann_want;
	cp->ann_want = want;
	old = cp->cur;
	cp->cur = next;
	if (cfg != cp->cfg) {
		old_cfg = cp->cfg;
		cp->cfg = cfg;
	}
	cp->rebuilds++;
	cp->last_rebuild_ms = clock_now_ms_f() - t0;
	pthread_mutex_unlock(&cp->lock);
	free(old_want);
	snapshot_free(old);
	config_free(old_cfg);
	cp_announce(cp);
	return 0;
}

int ctlplane_reload(struct ctlplane *cp, char *err, size_t errlen)
{
	struct cp_override *ov;
	struct config *cfg;
	double t0 = clock_now_ms_f(), took;
	uint32_t n_ov;
	int ret;

	ret = config_load_daemon(cp->path, &cfg, err, errlen);
	if (ret < 0)
		goto fail;
	if (strcmp(cfg->control.socket, cp->cfg->control.socket) != 0 ||
	    cfg->control.metrics_port != cp->cfg->control.metrics_port ||
	    strcmp(cfg->control.metrics_address, cp->cfg->control.metrics_address) != 0 ||
	    strcmp(cfg->dataplane.interface, cp->cfg->dataplane.interface) != 0 ||
	    cfg->dataplane.workers != cp->cfg->dataplane.workers ||
	    cfg->dataplane.mode != cp->cfg->dataplane.mode)
		log_warn("reload: control socket, metrics, interface, mode and workers changes "
		         "take effect on restart only");
	if (memcmp(&cfg->conntrack, &cp->cfg->conntrack, sizeof(cfg->conntrack)) != 0)
		log_warn("reload: conntrack changes (entries, timeouts) take effect on restart only");
	if (cfg->announce.enabled != cp->cfg->announce.enabled ||
	    cfg->announce.table != cp->cfg->announce.table ||
	    cfg->announce.protocol != cp->cfg->announce.protocol ||
	    strcmp(cfg->announce.interface, cp->cfg->announce.interface) != 0)
		log_warn("reload: announce.enabled, table, protocol and interface changes take "
		         "effect on restart only");
	/* Runtime overrides end with a reload: set them aside, restore them if it fails. */
	ov = cp->ov;
	n_ov = cp->n_ov;
	cp->ov = NULL;
	cp->n_ov = 0;
	cp_targets_set(cp, cfg);
	ret = cp_rebuild(cp, cfg, err, errlen);
	if (ret < 0) {
		cp->ov = ov;
		cp->n_ov = n_ov;
		cp_targets_set(cp, cp->cfg);
		config_free(cfg);
		goto fail;
	}
	free(ov);
	took = clock_now_ms_f() - t0;
	pthread_mutex_lock(&cp->lock);
	cp->config_generation++;
	cp->reloads_ok++;
	cp->last_reload_ms = took;
	cp->last_reload_error[0] = '\0';
	pthread_mutex_unlock(&cp->lock);
	log_info("reload: %s: config generation %llu, snapshot generation %llu, %u VIPs, in %.3f ms",
	         cp->path, (unsigned long long)cp->config_generation,
	        (unsigned long long)cp->cur->generation, cp->cfg->n_vips, took);
	return 0;
fail:
	pthread_mutex_lock(&cp->lock);
	cp->reloads_failed++;
	snprintf(cp->last_reload_error, sizeof(cp->last_reload_error), "%s", err);
	pthread_mutex_unlock(&cp->lock);
	log_err("reload failed, the running config stays: %s", err);
	return ret;
}

void ctlplane_request_reload(struct ctlplane *cp)
{
	atomic_store(&cp->reload_asked, 1);
}

static void cp_on_health(void *ctx, const struct health_target *t, bool up)
{
	struct ctlplane *cp = ctx;

	(void)t;
	(void)up;
	cp->dirty = true;
}

/* ---- control socket requests ---- */

/* The snapshot VIP a request names, by name, else by address (first match); -1 if none. */
static int32_t cp_vip_find(const struct lb_snapshot *s, const char *name, uint8_t proto,
                           uint16_t port)
{
	struct lb_addr a;
	bool is_addr = lb_addr_parse(name, &a) == 0;

	for (uint32_t i = 0; i < s->n_vips; i++)
		if (strcmp(s->vips[i].name, name) == 0)
			return (int32_t)i;
	if (!is_addr)
		return -1;
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];

		if (!lb_addr_eq(&v->addr, &a) || (proto && v->proto != proto) ||
		    (port && v->port && v->port != port))
			continue;
		return (int32_t)i;
	}
	return -1;
}

static void cp_backend_counters(const struct ctlplane *cp, uint16_t id,
                                struct lb_backend_counters *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (uint32_t w = 0; w < cp->h.n_workers; w++) {
		const struct lb_worker *wk = cp->h.worker ? cp->h.worker(cp->h.ctx, w) : NULL;
		const struct lb_backend_counters *c;

		if (!wk)
			continue;
		c = &lb_worker_backend_counters(wk)[id];
		sum->packets += lb_counter_read(&c->packets);
		sum->bytes += lb_counter_read(&c->bytes);
		sum->flows += lb_counter_read(&c->flows);
	}
}

static const char *cp_digest_str(uint64_t d, char *buf)
{
	snprintf(buf, CP_DIGEST_STRLEN, "%016llx", (unsigned long long)d);
	return buf;
}

static json_t *cp_backend_json(const struct ctlplane *cp, const struct lb_vip *v, uint16_t id)
{
	const struct lb_backend *b = &cp->cur->backends[id];
	const struct config_vip *cv = cp_cfg_vip(cp->cfg, v->name);
	const struct config_backend *cb = cp_cfg_backend(cv, &b->addr);
	struct lb_backend_counters c;
	char a[LB_ADDR_STRLEN];
	int health = cp_health(cp, cv, cb);
	const char *state = !b->up ? "down" : b->weight == 0 ? "drained" : "active";

	cp_backend_counters(cp, id, &c);
	return json_pack(
	    "{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:f, s:I, s:I, s:I}", "vip", v->name, "address",
	    lb_addr_str(&b->addr, a, sizeof(a)), "weight", (json_int_t)b->weight, "config_weight",
	    (json_int_t)(cb ? cb->weight : 0), "health",
	    health < 0 ? "unchecked"
	    : health   ? "up"
	               : "down",
	    "state", state, "slots", (json_int_t)b->slots, "share_pct",
	    v->table_size ? CP_PERCENT * b->slots / v->table_size : 0.0, "packets",
	    (json_int_t)c.packets, "bytes", (json_int_t)c.bytes, "flows", (json_int_t)c.flows);
}

static json_t *cp_req_status(struct ctlplane *cp)
{
	json_t *vips = json_array(), *res;
	char d[CP_DIGEST_STRLEN];

	for (uint32_t i = 0; i < cp->cur->n_vips; i++) {
		const struct lb_vip *v = &cp->cur->vips[i];

		json_array_append_new(vips, json_pack("{s:s, s:I, s:s}", "name", v->name,
		                                      "table_size", (json_int_t)v->table_size,
		                                      "digest", cp_digest_str(v->digest, d)));
	}
	res = json_pack("{s:s, s:I, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:f, s:s, s:I, s:o}",
	                 "version", MAGLEV_VERSION, "uptime_s",
	                 (json_int_t)((clock_now_ms() - cp->started_ms) / MSEC_PER_SEC), "mode",
	                 cp->h.mode ? cp->h.mode(cp->h.ctx) : "none", "workers",
	                 (json_int_t)cp->h.n_workers, "config", cp->path, "config_generation",
	                 (json_int_t)cp->config_generation, "snapshot_generation",
	                 (json_int_t)cp->cur->generation, "reloads_ok", (json_int_t)cp->reloads_ok,
	                 "reloads_failed", (json_int_t)cp->reloads_failed, "last_reload_ms",
	                 cp->last_reload_ms, "last_reload_error", cp->last_reload_error,
	                 "health_checks", (json_int_t)health_count(cp->hc), "vips", vips);
	if (res && cp->ann) {
		const struct config_announce *an = announce_config(cp->ann);

		json_object_set_new(res, "announce", json_string(cp->ann_stopped ? "stopped" : "on"));
		json_object_set_new(res, "announce_table", json_integer(an->table));
		json_object_set_new(res, "announce_protocol", json_integer(an->protocol));
		json_object_set_new(res, "announce_interface", json_string(an->interface));
		json_object_set_new(res, "announced_routes",
		                    json_integer(announce_live_count(cp->ann)));
		json_object_set_new(
		    res, "announce_errors",
		    json_integer((json_int_t)announce_counter_get(cp->ann, ANNOUNCE_CTR_ERRORS)));
	} else if (res) {
		json_object_set_new(res, "announce", json_string("off"));
	}
	if (res) {
		json_object_set_new(res, "health_probes_inflight",
		                    json_integer(health_inflight(cp->hc)));
		json_object_set_new(res, "health_probes_inflight_max",
		                    json_integer(health_inflight_max(cp->hc)));
		json_object_set_new(
		    res, "health_local_errors",
		    json_integer((json_int_t)health_counter_get(cp->hc, HEALTH_CTR_LOCAL_ERRORS)));
	}
	return res;
}

static json_t *cp_req_vips(struct ctlplane *cp)
{
	json_t *vips = json_array();
	char a[LB_ADDR_STRLEN], d[CP_DIGEST_STRLEN];

	for (uint32_t i = 0; i < cp->cur->n_vips; i++) {
		const struct lb_vip *v = &cp->cur->vips[i];
		struct lb_backend_counters sum = {0}, c;
		uint32_t up = 0;

		for (uint32_t j = 0; j < v->n_backends; j++) {
			cp_backend_counters(cp, v->backends[j], &c);
			sum.packets += c.packets;
			sum.bytes += c.bytes;
			sum.flows += c.flows;
			up += cp->cur->backends[v->backends[j]].up;
		}
		json_array_append_new(
		    vips,
		    json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "name",
		              v->name, "address", lb_addr_str(&v->addr, a, sizeof(a)), "protocol",
		              cp_proto_str(v->proto), "port", v->port, "table_size",
		              (json_int_t)v->table_size, "digest", cp_digest_str(v->digest, d),
		              "backends", (json_int_t)v->n_backends, "up", (json_int_t)up,
		              "packets", (json_int_t)sum.packets, "bytes", (json_int_t)sum.bytes,
		              "flows", (json_int_t)sum.flows, "announce",
		              cp_announce_state(cp, v->name)));
	}
	return json_pack("{s:o}", "vips", vips);
}

static json_t *cp_req_backends(struct ctlplane *cp, const struct ctl_request *req, char *err,
                               size_t errlen)
{
	json_t *rows = json_array();
	int32_t only = -1;

	if (req->vip[0]) {
		only = cp_vip_find(cp->cur, req->vip, 0, 0);
		if (only < 0) {
			json_decref(rows);
			snprintf(err, errlen, "no VIP '%s'", req->vip);
			return NULL;
		}
	}
	for (uint32_t i = 0; i < cp->cur->n_vips; i++) {
		const struct lb_vip *v = &cp->cur->vips[i];

		if (only >= 0 && (uint32_t)only != i)
			continue;
		for (uint32_t j = 0; j < v->n_backends; j++)
			json_array_append_new(rows, cp_backend_json(cp, v, v->backends[j]));
	}
	return json_pack("{s:o}", "backends", rows);
}

static json_t *cp_req_counters(struct ctlplane *cp)
{
	uint32_t nw = cp->h.n_workers, nio = cp->h.n_io_counters;
	json_t *rows = json_array(), *health = json_array();
	uint64_t *io = calloc((size_t)nw * nio + 1, sizeof(*io));

	if (!io)
		return NULL;
	for (uint32_t w = 0; w < nw && cp->h.io_counters; w++)
		cp->h.io_counters(cp->h.ctx, w, io + (size_t)w * nio);
	for (uint32_t k = 0; k < nio; k++) {
		json_t *per = json_array();
		uint64_t total = 0;

		for (uint32_t w = 0; w < nw; w++) {
			total += io[(size_t)w * nio + k];
			json_array_append_new(per,
			                      json_integer((json_int_t)io[(size_t)w * nio + k]));
		}
		json_array_append_new(rows, json_pack("{s:s, s:I, s:o}", "name",
		                                      cp->h.io_counter_names[k], "total",
		                                      (json_int_t)total, "per_worker", per));
	}
	free(io);
	for (uint32_t k = 0; k < LB_CTR_MAX; k++) {
		json_t *per = json_array();
		uint64_t total = 0;

		for (uint32_t w = 0; w < nw; w++) {
			const struct lb_worker *wk =
			    cp->h.worker ? cp->h.worker(cp->h.ctx, w) : NULL;
			uint64_t v = wk ? lb_counter_read(&lb_worker_counters(wk)[k]) : 0;

			total += v;
			json_array_append_new(per, json_integer((json_int_t)v));
		}
		json_array_append_new(rows,
		                      json_pack("{s:s, s:I, s:o}", "name", lb_counter_name[k],
		                                "total", (json_int_t)total, "per_worker", per));
	}
	/* The control thread's own: one total each, no per-worker split. */
	for (uint32_t k = 0; k < HEALTH_CTR_MAX; k++)
		json_array_append_new(health, json_pack("{s:s, s:I}", "name",
		                                        health_counter_name[k], "total",
		                                        (json_int_t)health_counter_get(cp->hc, k)));
	return json_pack("{s:I, s:o, s:o}", "workers", (json_int_t)nw, "counters", rows, "health",
	                 health);
}

static json_t *cp_req_reload(struct ctlplane *cp, char *err, size_t errlen)
{
	if (ctlplane_reload(cp, err, errlen) < 0)
		return NULL;
	return json_pack("{s:I, s:I, s:f}", "config_generation", (json_int_t)cp->config_generation,
	                 "snapshot_generation", (json_int_t)cp->cur->generation, "took_ms",
	                 cp->last_reload_ms);
}

static json_t *cp_req_override(struct ctlplane *cp, const struct ctl_request *req, char *err,
                               size_t errlen)
{
	struct cp_override *o, saved = {0};
	const struct config_vip *cv;
	bool had;
	int32_t vi = cp_vip_find(cp->cur, req->vip, 0, 0);
	char a[LB_ADDR_STRLEN];
	uint16_t id;

	if (vi < 0) {
		snprintf(err, errlen, "no VIP '%s'", req->vip);
		return NULL;
	}
	cv = cp_cfg_vip(cp->cfg, cp->cur->vips[vi].name);
	if (!cp_cfg_backend(cv, &req->backend)) {
		snprintf(err, errlen, "VIP %s has no backend %s", cp->cur->vips[vi].name,
		         lb_addr_str(&req->backend, a, sizeof(a)));
		return NULL;
	}
	o = cp_override_find(cp, cv->name, &req->backend);
	had = o != NULL;
	if (!o) {
		struct cp_override *nv;

		if (cp->n_ov >= CP_OVERRIDES_MAX) {
			snprintf(err, errlen,
			         "more than %u runtime changes: write them to the "
			         "config and reload",
			         CP_OVERRIDES_MAX);
			return NULL;
		}
		nv = realloc(cp->ov, (cp->n_ov + 1) * sizeof(*nv));
		if (!nv) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		pthread_mutex_lock(&cp->lock);
		cp->ov = nv;
		o = &cp->ov[cp->n_ov++];
		memset(o, 0, sizeof(*o));
		snprintf(o->vip, sizeof(o->vip), "%s", cv->name);
		o->backend = req->backend;
		o->weight = -1;
		pthread_mutex_unlock(&cp->lock);
	}
	saved = *o;
	if (req->cmd == CTL_CMD_WEIGHT) {
		o->weight = (int32_t)req->weight;
		o->drained = false;
	} else {
		o->drained = req->cmd == CTL_CMD_DRAIN;
	}
	if (cp_rebuild(cp, cp->cfg, err, errlen) < 0) {
		if (had)
			*o = saved;
		else
			cp->n_ov--;
		return NULL;
	}
	lb_addr_str(&req->backend, a, sizeof(a));
	log_info("vip %s backend %s: %s%s (runtime; lost on reload)", cv->name, a,
	         ctl_cmd_name(req->cmd), req->cmd == CTL_CMD_WEIGHT ? " set" : "");
	id = snapshot_backend_find(cp->cur, (uint32_t)vi, &req->backend);
	return json_pack("{s:o, s:I}", "backend",
	                 id == LB_BACKEND_NONE ? json_null()
	                                       : cp_backend_json(cp, &cp->cur->vips[vi], id),
	                 "snapshot_generation", (json_int_t)cp->cur->generation);
}

static json_t *cp_addr_json(const struct lb_snapshot *s, uint16_t id)
{
	char a[LB_ADDR_STRLEN];

	if (id == LB_BACKEND_NONE || id >= s->n_backends)
		return json_null();
	return json_string(lb_addr_str(&s->backends[id].addr, a, sizeof(a)));
}

/* The state of a tracked entry, for explain: TCP's, or "active" for a flow of another protocol. */
static const char *cp_ct_state_str(uint8_t proto, const struct lb_explanation *x)
{
	if (proto != IPPROTO_TCP)
		return "active";
	if (x->tracked_syn_only)
		return "syn-only";
	return x->tracked_closing ? "closing" : "established";
}

static json_t *cp_req_explain(struct ctlplane *cp, const struct ctl_request *req, char *err,
                              size_t errlen)
{
	const struct lb_snapshot *s = cp->cur;
	struct lb_explanation ex, wx;
	struct lb_flow_key k;
	const struct lb_vip *v;
	json_t *tracked = json_array(), *res;
	char reason[CP_LINE_MAX], sa[LB_ADDR_STRLEN], va[LB_ADDR_STRLEN], flow[CP_LINE_MAX];
	uint16_t backend, dport;
	uint8_t proto;
	int32_t vi = cp_vip_find(s, req->vip, req->proto, req->dst_port);
	int32_t usable_worker = -1;

	if (vi < 0) {
		json_decref(tracked);
		snprintf(err, errlen, "no VIP '%s'%s", req->vip,
		         req->proto || req->dst_port ? " with that protocol and port" : "");
		return NULL;
	}
	v = &s->vips[vi];
	if (req->src.family != v->addr.family) {
		json_decref(tracked);
		snprintf(err, errlen, "source and VIP %s are of different address families",
		         v->name);
		return NULL;
	}
	proto = req->proto ? req->proto : v->proto;
	dport = req->dst_port ? req->dst_port : v->port;
	if (!dport) {
		json_decref(tracked);
		snprintf(err, errlen, "VIP %s takes every port: give DST_PORT", v->name);
		return NULL;
	}
	lb_flow_key_make(&k, &req->src, &v->addr, proto, req->src_port, dport);
	if (lb_explain(NULL, s, &k, &ex) < 0 || ex.vip != vi) {
		json_decref(tracked);
		snprintf(err, errlen, "the flow is for no VIP");
		return NULL;
	}
	backend = ex.backend;
	for (uint32_t w = 0; w < cp->h.n_workers; w++) {
		const struct lb_worker *wk = cp->h.worker ? cp->h.worker(cp->h.ctx, w) : NULL;

		if (!wk || lb_explain(wk, s, &k, &wx) < 0 || !wx.tracked)
			continue;
		json_array_append_new(
		    tracked, json_pack("{s:I, s:o, s:b, s:s}", "worker", (json_int_t)w, "backend",
		                       cp_addr_json(s, LB_BREF_ID(wx.tracked_bref)), "usable",
		                       wx.tracked_usable, "state", cp_ct_state_str(proto, &wx)));
		if (wx.tracked_usable && usable_worker < 0) {
			usable_worker = (int32_t)w;
			backend = wx.backend;
		}
	}
	if (ex.refused)
		snprintf(reason, sizeof(reason), "no client has this source: dropped (%s)",
		         lb_counter_name[ex.refused]);
	else if (usable_worker >= 0)
		snprintf(reason, sizeof(reason), "tracked flow on worker %d", usable_worker);
	else if (ex.table_backend == LB_BACKEND_NONE)
		snprintf(reason, sizeof(reason),
		         "table slot %u of %u is empty (no backend takes "
		         "flows): dropped",
		         ex.slot, v->table_size);
	else
		snprintf(reason, sizeof(reason), "table slot %u of %u", ex.slot, v->table_size);
	snprintf(flow, sizeof(flow), "%s %s:%u -> %s:%u", cp_proto_str(proto),
	         lb_addr_str(&req->src, sa, sizeof(sa)), req->src_port,
	         lb_addr_str(&v->addr, va, sizeof(va)), dport);
	res = json_pack("{s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:o, s:o}", "vip", v->name, "flow",
	                flow, "backend", cp_addr_json(s, backend), "reason", reason, "hash", "",
	                "slot", (json_int_t)ex.slot, "table_size", (json_int_t)v->table_size,
	                "table_backend", cp_addr_json(s, ex.table_backend), "tracked", tracked);
	if (res) {
		char h[CP_DIGEST_STRLEN];

		json_object_set_new(res, "hash", json_string(cp_digest_str(ex.hash, h)));
		if (backend != LB_BACKEND_NONE && backend < s->n_backends) {
			const struct lb_backend *b = &s->backends[backend];

			json_object_set_new(res, "backend_state",
			                    json_string(!b->up           ? "down"
			                                : b->weight == 0 ? "drained"
			                                                 : "active"));
			{
				const struct config_vip *cv = cp_cfg_vip(cp->cfg, v->name);
				int hl = cp_health(cp, cv, cp_cfg_backend(cv, &b->addr));

				json_object_set_new(res, "backend_health",
				                    json_string(hl < 0 ? "unchecked"
				                                : hl   ? "up"
				                                       : "down"));
			}
		}
	}
	return res;
}

static json_t *cp_handle(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
{
	struct ctlplane *cp = ctx;

	switch (req->cmd) {
	case CTL_CMD_STATUS:
		return cp_req_status(cp);
	case CTL_CMD_VIPS:
		return cp_req_vips(cp);
	case CTL_CMD_BACKENDS:
		return cp_req_backends(cp, req, err, errlen);
	case CTL_CMD_COUNTERS:
		return cp_req_counters(cp);
	case CTL_CMD_RELOAD:
		return cp_req_reload(cp, err, errlen);
	case CTL_CMD_WEIGHT:
	case CTL_CMD_DRAIN:
	case CTL_CMD_UNDRAIN:
		return cp_req_override(cp, req, err, errlen);
	case CTL_CMD_EXPLAIN:
		return cp_req_explain(cp, req, err, errlen);
	}
	snprintf(err, errlen, "unknown command");
	return NULL;
}

/* ---- metrics ---- */

static void cp_metric_name(char *buf, const char *name, const char *suffix)
{
	snprintf(buf, CP_NAME_MAX, "maglevd_%s%s", name, suffix);
}

static void cp_collect(void *ctx, struct metrics_writer *w)
{
	struct ctlplane *cp = ctx;
	uint32_t nw = cp->h.n_workers;
	char name[CP_NAME_MAX], wid[CP_NUM_MAX], a[LB_ADDR_STRLEN], d[CP_DIGEST_STRLEN];
	char port[CP_NUM_MAX], m[CP_NUM_MAX];
	const char *wl[] = {"worker", wid, NULL};
	const struct lb_snapshot *s;
	static const char *const bfam[3][2] = {
	    {"maglevd_backend_packets_total", "Packets sent to the backend"},
	    {"maglevd_backend_bytes_total", "Bytes sent to the backend, before encapsulation"},
	    {"maglevd_backend_flows_total", "New flows given to the backend"},
	};

	pthread_mutex_lock(&cp->lock);
	s = cp->cur;
	for (uint32_t k = 0; k < LB_CTR_MAX; k++) {
		cp_metric_name(name, lb_counter_name[k], "_total");
		metrics_family(w, name, "counter", lb_counter_help[k]);
		for (uint32_t i = 0; i < nw; i++) {
			const struct lb_worker *wk =
			    cp->h.worker ? cp->h.worker(cp->h.ctx, i) : NULL;

			snprintf(wid, sizeof(wid), "%u", i);
			metrics_sample(w, name, wl,
			               wk ? lb_counter_read(&lb_worker_counters(wk)[k]) : 0);
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
	for (int f = 0; f < 3; f++) {
		metrics_family(w, bfam[f][0], "counter", bfam[f][1]);
		for (uint32_t i = 0; i < s->n_vips; i++)
			for (uint32_t j = 0; j < s->vips[i].n_backends; j++) {
				uint16_t id = s->vips[i].backends[j];
				const char *l[] = {"vip", s->vips[i].name, "backend",
				                   lb_addr_str(&s->backends[id].addr, a, sizeof(a)),
				                   NULL};
				struct lb_backend_counters c;

				cp_backend_counters(cp, id, &c);
				metrics_sample(w, bfam[f][0], l,
				               f == 0   ? c.packets
				               : f == 1 ? c.bytes
				                        : c.flows);
			}
	}
	metrics_family(w, "maglevd_backend_up", "gauge",
	               "Health check result: 1 up (or not checked), 0 down");
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct config_vip *cv = cp_cfg_vip(cp->cfg, s->vips[i].name);

		for (uint32_t j = 0; j < s->vips[i].n_backends; j++) {
			const struct lb_backend *b = &s->backends[s->vips[i].backends[j]];
			const char *l[] = {"vip", s->vips[i].name, "backend",
			                   lb_addr_str(&b->addr, a, sizeof(a)), NULL};

			metrics_sample(w, "maglevd_backend_up", l,
			               cp_health(cp, cv, cp_cfg_backend(cv, &b->addr)) != 0);
		}
	}
	metrics_family(w, "maglevd_backend_weight", "gauge",
	               "Effective weight (config or runtime; 0 = drained)");
	for (uint32_t i = 0; i < s->n_vips; i++)
		for (uint32_t j = 0; j < s->vips[i].n_backends; j++) {
			const struct lb_backend *b = &s->backends[s->vips[i].backends[j]];
			const char *l[] = {"vip", s->vips[i].name, "backend",
			                   lb_addr_str(&b->addr, a, sizeof(a)), NULL};

			metrics_sample(w, "maglevd_backend_weight", l, b->weight);
		}
	metrics_family(w, "maglevd_backend_slots", "gauge", "Maglev table slots of the backend");
	for (uint32_t i = 0; i < s->n_vips; i++)
		for (uint32_t j = 0; j < s->vips[i].n_backends; j++) {
			const struct lb_backend *b = &s->backends[s->vips[i].backends[j]];
			const char *l[] = {"vip", s->vips[i].name, "backend",
			                   lb_addr_str(&b->addr, a, sizeof(a)), NULL};

			metrics_sample(w, "maglevd_backend_slots", l, b->slots);
		}
	metrics_family(w, "maglevd_vip_info", "gauge",
	               "One per VIP; the digest label proves equal tables across maglevd");
	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];
		const char *l[] = {"vip",        v->name,
		                   "address",    lb_addr_str(&v->addr, a, sizeof(a)),
		                   "protocol",   cp_proto_str(v->proto),
		                   "port",       port,
		                   "table_size", m,
		                   "digest",     cp_digest_str(v->digest, d),
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

/* ---- life cycle ---- */

int ctlplane_create(struct ctlplane **out, const char *path, struct config *cfg,
                    struct lb_snapshot *cur, const struct ctlplane_hooks *hooks, char *err,
                    size_t errlen)
{
	struct ctlplane *cp = calloc(1, sizeof(*cp));
	int ret;

	if (cp)
		cp->epfd = -1;
	if (!cp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&cp->lock, NULL);
	snprintf(cp->path, sizeof(cp->path), "%s", path);
	cp->h = *hooks;
	cp->cfg = cfg;
	cp->cur = cur;
	cp->config_generation = 1;
	cp->started_ms = clock_now_ms();
	cp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (cp->epfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto out;
	}
	ret = health_create(&cp->hc, cp_on_health, cp);
	if (ret < 0) {
		snprintf(err, errlen, "health checks: %s", strerror(-ret));
		goto out;
	}
	cp_targets_set(cp, cfg);
	ret = ctl_socket_dir_prepare(cfg->control.socket, err, errlen);
	if (ret < 0)
		goto out;
	ret = ctl_server_open(&cp->srv, cfg->control.socket, 0, cp_handle, cp);
	if (ret < 0) {
		snprintf(err, errlen, "control socket %s: %s", cfg->control.socket, strerror(-ret));
		goto out;
	}
	{
		struct epoll_event ev = {.events = EPOLLIN};

		if (epoll_ctl(cp->epfd, EPOLL_CTL_ADD, ctl_server_fd(cp->srv), &ev) < 0 ||
		    epoll_ctl(cp->epfd, EPOLL_CTL_ADD, health_fd(cp->hc), &ev) < 0) {
			ret = -errno;
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			goto out;
		}
	}
	if (cfg->control.metrics_enabled) {
		ret = metrics_start(&cp->ms, cfg->control.metrics_address,
		                    cfg->control.metrics_port, NULL, cp_collect, cp);
		if (ret < 0) {
			snprintf(
			    err, errlen,
			    "metrics on %s port %u: cannot listen (port in use, or address not "
			    "local; set control.metrics)",
			    cfg->control.metrics_address, cfg->control.metrics_port);
			goto out;
		}
	}
	if (cfg->announce.enabled) {
		ret = announce_open(&cp->ann, &cfg->announce, err, errlen);
		if (ret < 0)
			goto out;
		cp_announce(cp);
	}
	*out = cp;
	return 0;
out:
	/* The caller keeps cfg and cur on failure. */
	ctlplane_destroy(cp, &cur, &cfg);
	return ret;
}

int ctlplane_run(struct ctlplane *cp, int timeout_ms)
{
	struct pollfd p[2] = {
	    {.fd = ctl_server_fd(cp->srv), .events = POLLIN},
	    {.fd = health_fd(cp->hc), .events = POLLIN},
	};
	char err[CTL_ERR_MAX];
	int ret;

	if (poll(p, 2, atomic_load(&cp->reload_asked) ? 0 : timeout_ms) < 0 && errno != EINTR)
		return -errno;
	if (p[1].revents) {
		pthread_mutex_lock(&cp->lock);
		ret = health_dispatch(cp->hc, 0);
		pthread_mutex_unlock(&cp->lock);
		if (ret < 0)
			return ret;
	}
	/* Always: the server also drops idle clients on its own clock. */
	ret = ctl_server_dispatch(cp->srv, 0);
	if (ret < 0)
		return ret;
	if (atomic_exchange(&cp->reload_asked, 0))
		ctlplane_reload(cp, err, sizeof(err));
	if (cp->ann && !cp->ann_stopped && clock_now_ms() >= cp->ann_next_ms)
		cp_announce(cp);
	if (cp->dirty && clock_now_ms() >= cp->retry_ms) {
		cp->dirty = false;
		ret = cp_rebuild(cp, cp->cfg, err, sizeof(err));
		if (ret < 0) {
			log_err("rebuild after a health change failed (retry in %u ms): %s",
			        CP_RETRY_MS, err);
			cp->dirty = true;
			cp->retry_ms = clock_now_ms() + CP_RETRY_MS;
		} else {
			log_info("health change published: snapshot generation %llu in %.3f ms",
			         (unsigned long long)cp->cur->generation, cp->last_rebuild_ms);
		}
	}
	return 0;
}

uint32_t ctlplane_withdraw(struct ctlplane *cp)
{
	if (!cp || !cp->ann || cp->ann_stopped)
		return 0;
	pthread_mutex_lock(&cp->lock);
	announce_sync(cp->ann, NULL, 0);
	cp->ann_stopped = true;
	pthread_mutex_unlock(&cp->lock);
	return cp->cfg->announce.withdraw_delay_ms;
}

int ctlplane_fd(const struct ctlplane *cp)
{
	return cp->epfd;
}

void ctlplane_destroy(struct ctlplane *cp, struct lb_snapshot **cur, struct config **cfg)
{
	if (!cp)
		return;
	metrics_stop(cp->ms);
	announce_close(cp->ann);
	free(cp->ann_want);
	ctl_server_close(cp->srv);
	health_destroy(cp->hc);
	if (cp->epfd >= 0)
		close(cp->epfd);
	if (cur)
		*cur = cp->cur;
	else
		snapshot_free(cp->cur);
	if (cfg)
		*cfg = cp->cfg;
	else
		config_free(cp->cfg);
	free(cp->ov);
	pthread_mutex_destroy(&cp->lock);
	free(cp);
}
