/* SPDX-License-Identifier: GPL-2.0-only */
/* The control plane state and its changes: reload, runtime overrides, rebuilds, health, announce.
 */
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
#include "maglevd/announce.h"
#include "control/config_yaml.h"
#include "control/ctlsock.h"
#include "core/counters.h"
#include "io/hctunnel.h"
#include "maglevd/ctlplane_int.h"
#include "maglevd/health.h"
#include "maglevd/metrics.h"
#include "maglevd/notify.h"
#include "maglevd/state.h"

/* The health check a backend of a VIP has: its own, else the VIP's; false if none. */
static bool cp_target(const struct config_vip *v, const struct config_backend *b,
                      struct health_target *t)
{
	const struct config_health *h = b->has_health ? &b->health : &v->health;

	if (h->type == HC_NONE)
		return false;
	return health_target_from_config(t, h, &b->addr, v) == 0;
}

struct cp_override *cp_override_find(struct ctlplane *cp, const char *vip, const struct lb_addr *a)
{
	for (uint32_t i = 0; i < cp->n_ov; i++)
		if (strcmp(cp->ov[i].vip, vip) == 0 && lb_addr_eq(&cp->ov[i].backend, a))
			return &cp->ov[i];
	return NULL;
}

int cp_health(const struct ctlplane *cp, const struct config_vip *v, const struct config_backend *b)
{
	struct health_target t;

	if (!v || !b || !cp_target(v, b, &t))
		return -1;
	return health_is_up(cp->hc, &t) ? 1 : 0;
}

const char *cp_health_reason(const struct ctlplane *cp, const struct config_vip *v,
                             const struct config_backend *b)
{
	struct health_target t;

	if (!v || !b || !cp_target(v, b, &t))
		return NULL;
	return health_reason(cp->hc, &t);
}

/*
 * The checker's tunnel hook: points slot at t's backend as the data path reaches it now (outer
 * source of its family, the configured TTL, the next hop MAC the resolver keeps in the current
 * snapshot), so the probe's packets leave as a client's would. A next hop not resolved (yet)
 * fails the probe with that reason.
 */
static int cp_tunnel_prepare(void *ctx, const struct health_target *t, uint32_t slot,
                             uint32_t *mark, char *why, size_t len)
{
	const struct ctlplane *cp = ctx;
	const struct config_dataplane *dp = &cp->cfg->dataplane;
	const struct lb_snapshot *s = cp->cur;
	const struct lb_addr *src = t->addr.family == AF_INET ? &dp->source_ipv4 : &dp->source_ipv6;
	uint64_t m = 0;
	uint8_t mac[ETH_ALEN];
	int ret;

	if (!cp->hct) {
		snprintf(why, len, "no tunnel: %s", cp->hct_err);
		return -ENODEV;
	}
	if (src->family != t->addr.family) {
		snprintf(why, len, "no dataplane.source_ipv%c",
		         t->addr.family == AF_INET ? '4' : '6');
		return -EINVAL;
	}
	/* One next hop per distinct backend address; probes are few next to packets. */
	for (uint32_t i = 0; i < s->n_nexthops; i++) {
		if (lb_addr_eq(&s->nexthops[i].addr, &t->addr)) {
			m = atomic_load_explicit(&s->nexthops[i].mac, memory_order_relaxed);
			break;
		}
	}
	if (!(m & LB_NH_VALID)) {
		snprintf(why, len, "next hop unresolved");
		return -EHOSTUNREACH;
	}
	for (int i = 0; i < ETH_ALEN; i++)
		mac[i] = (uint8_t)(m >> (8 * (ETH_ALEN - 1 - i)));
	ret = hct_set(cp->hct, slot, src, &t->addr, dp->ttl, mac);
	if (ret < 0) {
		snprintf(why, len, "tunnel slot: %s", strerror(-ret));
		return ret;
	}
	*mark = hct_mark(slot);
	return 0;
}

static void cp_tunnel_release(void *ctx, uint32_t slot)
{
	struct ctlplane *cp = ctx;

	if (cp->hct)
		hct_clear(cp->hct, slot);
}

uint64_t cp_tunnel_counter(const struct ctlplane *cp, unsigned k)
{
	if (k >= HCT_CTR_MAX)
		return 0;
	return cp->hct_gone[k] + (cp->hct ? hct_counter(cp->hct, (enum hct_counter)k) : 0);
}

/*
 * Opens the tunnel when cfg has tunnel checks (n_tunnel) and it is not open, or tried again
 * after a failure at an earlier reload; closes it when none are left.
 */
static void cp_tunnel_sync(struct ctlplane *cp, const struct config *cfg, uint32_t n_tunnel)
{
	struct hct *t = NULL;
	int ret;

	/* cp->hct changes under the lock: the metrics thread reads its counters. */
	if (!n_tunnel) {
		pthread_mutex_lock(&cp->lock);
		t = cp->hct;
		for (unsigned k = 0; t && k < HCT_CTR_MAX; k++)
			cp->hct_gone[k] += hct_counter(t, (enum hct_counter)k);
		cp->hct = NULL;
		pthread_mutex_unlock(&cp->lock);
		hct_close(t);
		return;
	}
	if (cp->hct)
		return;
	ret = hct_open(&t, cfg->dataplane.interface, cp->hct_err, sizeof(cp->hct_err));
	if (ret < 0) {
		log_err("health: %u checks through the tunnel will fail: %s", n_tunnel,
		        cp->hct_err);
		return;
	}
	pthread_mutex_lock(&cp->lock);
	cp->hct = t;
	pthread_mutex_unlock(&cp->lock);
	log_info("health: probes of %u checks go through the tunnel (tc egress on %s)", n_tunnel,
	         cfg->dataplane.interface);
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
			log_warn(
			    "vip %s: every backend is down; ignoring health checks for it "
			    "(fail open) until one comes back%s",
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
	uint32_t n = 0, cap = 0, n_tunnel = 0;
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
			if (health_target_from_config(&t[n], h, &b->addr, v) < 0) {
				char a[LB_ADDR_STRLEN];

				log_warn(
				    "vip %s backend %s: health check has no port (VIP port 0): "
				    "not checked",
				    v->name, lb_addr_str(&b->addr, a, sizeof(a)));
				continue;
			}
			snprintf(t[n].vip, sizeof(t[n].vip), "%s", v->name);
			n_tunnel += t[n].tunnel;
			n++;
		}
	}
	/* Open before the checks that need it are set: their first probes find it. */
	if (n_tunnel)
		cp_tunnel_sync(cp, cfg, n_tunnel);
	/* The metrics thread reads the checker under the lock (cp_health). */
	pthread_mutex_lock(&cp->lock);
	ret = health_set_targets(cp->hc, t, n);
	pthread_mutex_unlock(&cp->lock);
	if (ret < 0)
		log_err("health checks not updated: %s", strerror(-ret));
	else if (!n_tunnel)
		cp_tunnel_sync(cp, cfg, 0);
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

const char *cp_announce_state(const struct ctlplane *cp, const char *vip)
{
	const struct config_vip *cv = config_vip_find(cp->cfg, vip);

	if (!cp->ann || !cv)
		return "off";
	if (announce_is_live(cp->ann, &cv->addr))
		return "announced";
	if (cp->ann_stopped || (cp->ann_want && !cp->ann_want[cv - cp->cfg->vips]))
		return "withdrawn";
	return "failed";
}

/*
 * Writes the state file of the current snapshot (state_store_save skips an unchanged one, logs
 * and counts a failure); a failure is tried again after STATE_RETRY_MS by ctlplane_run.
 */
static void cp_state_save(struct ctlplane *cp)
{
	if (cp->state && state_store_save(cp->state, cp->cur) < 0)
		cp->state_retry_ms = clock_now_ms() + STATE_RETRY_MS;
}

/* After the first build from a state file: per VIP, what it restored or why not. */
static void cp_restore_log(const struct lb_snapshot *s, const char *path)
{
	uint32_t restored = 0;
	char d[CP_DIGEST_STRLEN];

	for (uint32_t i = 0; i < s->n_vips; i++) {
		const struct lb_vip *v = &s->vips[i];

		if (v->prev_origin == LB_PREV_HISTORY) {
			restored++;
			log_info("vip %s: previous generation %s restored from %s (second chances "
			         "for the change made before this start)",
			         v->name, cp_digest_str(v->prev.digest, d), path);
		} else if (v->prev_origin == LB_PREV_HISTORY_MISMATCH) {
			log_warn(
			    "vip %s: %s holds a generation that does not build to its digest "
			    "(another Maglev build, or a damaged file): no previous generation",
			    v->name, path);
		}
	}
	log_info("state: %u of %u VIPs have a previous generation from %s", restored, s->n_vips,
	         path);
}

int ctlplane_build_first(const struct config *cfg, struct lb_snapshot **out, char *err,
                         size_t errlen)
{
	const char *dir = cfg->control.state_dir;
	struct snapshot_history h = {0};
	struct snapshot_state st = {0};
	char why[STATE_ERR_MAX], path[STATE_PATH_MAX];
	int ret = -ENOENT;

	if (!dir[0])
		log_info("state: control.state_dir is '': nothing is kept across restarts");
	else
		ret = state_load(dir, &h, why, sizeof(why));
	if (ret == 0 && h.hash_seed != cfg->hash_seed)
		log_warn("state file %s ignored: written under hash_seed 0x%llx, the config has "
		         "0x%llx (its tables would be others): no previous generations",
		         state_file_path(dir, path), (unsigned long long)h.hash_seed,
		         (unsigned long long)cfg->hash_seed);
	else if (ret == 0)
		st.history = &h;
	else if (ret == -ENOENT && dir[0])
		log_info("state: no %s yet (a first start): no previous generations to restore",
		         state_file_path(dir, path));
	else if (dir[0])
		log_warn("state file ignored: %s; no previous generations", why);
	ret = snapshot_build(cfg, NULL, &st, out, err, errlen);
	if (ret == 0 && st.history)
		cp_restore_log(*out, state_file_path(dir, path));
	state_history_free(&h);
	return ret;
}

/*
 * The one-line summary systemd shows (STATUS=): mode, VIPs, backends up of all (health; a
 * backend in two VIPs counts twice), config generation, the last reload's result. notify sends
 * it only when it changed.
 */
static void cp_notify_status(struct ctlplane *cp)
{
	char status[NOTIFY_STATUS_MAX];
	uint32_t up = 0, total = 0;
	int l;

	if (!notify_enabled(cp->h.notify))
		return;
	for (uint32_t i = 0; i < cp->cfg->n_vips; i++) {
		const struct config_vip *v = &cp->cfg->vips[i];

		for (uint32_t j = 0; j < v->n_backends; j++) {
			total++;
			up += cp_health(cp, v, &v->backends[j]) != 0;
		}
	}
	l = snprintf(status, sizeof(status),
	             "%s, %u VIPs, %u/%u backends up, config generation %llu, last reload ",
	             cp->h.mode ? cp->h.mode(cp->h.ctx) : "none", cp->cfg->n_vips, up, total,
	             (unsigned long long)cp->config_generation);
	if (l > 0 && (size_t)l < sizeof(status))
		snprintf(status + l, sizeof(status) - (size_t)l, "%s%.*s",
		         cp->last_reload_error[0] ? "failed: "
		         : cp->reloads_ok         ? "ok"
		                                  : "none",
		         (int)CP_STATUS_ERR_MAX, cp->last_reload_error);
	notify_status(cp->h.notify, status);
}

int cp_rebuild(struct ctlplane *cp, struct config *cfg, char *err, size_t errlen)
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
	cp_state_save(cp);
	cp_notify_status(cp);
	return 0;
}

/*
 * After a successful reload to cfg: a warning for each runtime drain or weight of ov that the
 * reload reset (documented, but an operator who drained a backend should not find it serving
 * again without a word). An undrain that left nothing changed is not one.
 */
static void cp_overrides_reset_log(const struct config *cfg, const struct cp_override *ov,
                                   uint32_t n_ov)
{
	for (uint32_t i = 0; i < n_ov; i++) {
		const struct cp_override *o = &ov[i];
		const struct config_vip *cv = config_vip_find(cfg, o->vip);
		const struct config_backend *cb = cv ? config_backend_find(cv, &o->backend) : NULL;
		char a[LB_ADDR_STRLEN], what[CP_NUM_MAX + 16], now[CP_LINE_MAX];

		if (!o->drained && o->weight < 0)
			continue;
		if (o->drained)
			snprintf(what, sizeof(what), "drain");
		else
			snprintf(what, sizeof(what), "weight %d", o->weight);
		if (cb)
			snprintf(now, sizeof(now), "the config's weight %u applies", cb->weight);
		else
			snprintf(now, sizeof(now), "it is no longer in the config");
		log_warn("reload: vip %s backend %s: runtime %s reset, %s (write it to the config "
		         "to keep it)",
		         o->vip, lb_addr_str(&o->backend, a, sizeof(a)), what, now);
	}
}

int ctlplane_reload(struct ctlplane *cp, char *err, size_t errlen)
{
	struct cp_override *ov;
	struct config *cfg;
	double t0 = clock_now_ms_f(), took;
	uint32_t n_ov;
	int ret;

	notify_reloading(cp->h.notify);
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
		log_warn("reload: conntrack changes (entries, timeouts, insert cap) take effect on "
		         "restart only");
	if (cfg->announce.enabled != cp->cfg->announce.enabled ||
	    cfg->announce.table != cp->cfg->announce.table ||
	    cfg->announce.protocol != cp->cfg->announce.protocol ||
	    strcmp(cfg->announce.interface, cp->cfg->announce.interface) != 0)
		log_warn("reload: announce.enabled, table, protocol and interface changes take "
		         "effect on restart only");
	if (strcmp(cfg->control.state_dir, cp->cfg->control.state_dir) != 0)
		log_warn("reload: control.state_dir changes take effect on restart only (the state "
		         "file stays in '%s')",
		         cp->cfg->control.state_dir);
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
	cp_overrides_reset_log(cp->cfg, ov, n_ov);
	free(ov);
	took = clock_now_ms_f() - t0;
	pthread_mutex_lock(&cp->lock);
	cp->config_generation++;
	cp->reloads_ok++;
	cp->last_reload_ms = took;
	cp->last_reload_error[0] = '\0';
	pthread_mutex_unlock(&cp->lock);
	log_info(
	    "reload: %s: config generation %llu, snapshot generation %llu, %u VIPs, in %.3f ms",
	    cp->path, (unsigned long long)cp->config_generation,
	    (unsigned long long)cp->cur->generation, cp->cfg->n_vips, took);
	cp_notify_status(cp);
	notify_ready(cp->h.notify);
	return 0;
fail:
	pthread_mutex_lock(&cp->lock);
	cp->reloads_failed++;
	snprintf(cp->last_reload_error, sizeof(cp->last_reload_error), "%s", err);
	pthread_mutex_unlock(&cp->lock);
	log_err("reload failed, the running config stays: %s", err);
	/* Refused: the running config serves on, which is what READY=1 tells systemd. */
	cp_notify_status(cp);
	notify_ready(cp->h.notify);
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

void cp_backend_counters(const struct ctlplane *cp, uint16_t id, struct lb_backend_counters *sum)
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
	if (cp->h.kernel_backend_counters)
		cp->h.kernel_backend_counters(cp->h.ctx, id, sum);
}

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
	/* Before the metrics thread starts: it reads the store's counters. */
	if (cfg->control.state_dir[0]) {
		ret = state_store_create(&cp->state, cfg->control.state_dir);
		if (ret < 0) {
			snprintf(err, errlen, "state directory %s: %s", cfg->control.state_dir,
			         strerror(-ret));
			goto out;
		}
	}
	ret = health_create(&cp->hc, cp_on_health, cp);
	if (ret < 0) {
		snprintf(err, errlen, "health checks: %s", strerror(-ret));
		goto out;
	}
	{
		struct health_tunnel tun = {
		    .prepare = cp_tunnel_prepare, .release = cp_tunnel_release, .ctx = cp};

		snprintf(tun.ifname, sizeof(tun.ifname), "%s", cfg->dataplane.interface);
		health_set_tunnel(cp->hc, &tun);
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
			/* maglevd does not start without it (docs/config.md): say what to change.
			 */
			snprintf(
			    err, errlen,
			    "control.metrics: cannot listen on address %s port %u: %s (change "
			    "control.metrics.address or .port, or set control.metrics.enabled: "
			    "false)",
			    cfg->control.metrics_address, cfg->control.metrics_port,
			    strerror(-ret));
			goto out;
		}
	}
	if (cfg->announce.enabled) {
		ret = announce_open(&cp->ann, &cfg->announce, err, errlen);
		if (ret < 0)
			goto out;
		cp_announce(cp);
	}
	cp_state_save(cp);
	cp_notify_status(cp);
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
	if (cp->state && state_store_pending(cp->state) && clock_now_ms() >= cp->state_retry_ms)
		cp_state_save(cp);
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
	state_store_destroy(cp->state);
	announce_close(cp->ann);
	free(cp->ann_want);
	ctl_server_close(cp->srv);
	health_destroy(cp->hc);
	hct_close(cp->hct);
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
