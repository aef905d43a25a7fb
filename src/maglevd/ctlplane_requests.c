/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket requests: status, vips, backends, counters, reload, weight/drain, explain. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/version.h"
#include "control/ctlsock.h"
#include "core/counters.h"
#include "core/flow.h"
#include "maglevd/announce.h"
#include "maglevd/ctlplane_int.h"
#include "maglevd/health.h"

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

static json_t *cp_backend_json(const struct ctlplane *cp, const struct lb_vip *v, uint16_t id)
{
	const struct lb_backend *b = &cp->cur->backends[id];
	const struct config_vip *cv = config_vip_find(cp->cfg, v->name);
	const struct config_backend *cb = config_backend_find(cv, &b->addr);
	struct lb_backend_counters c;
	char a[LB_ADDR_STRLEN];
	int health = cp_health(cp, cv, cb);
	const char *state = !b->up ? "down" : b->weight == 0 ? "drained" : "active";
	const char *why = cp_health_reason(cp, cv, cb);

	cp_backend_counters(cp, id, &c);
	return json_pack(
	    "{s:s, s:s, s:I, s:I, s:s, s:o, s:s, s:I, s:f, s:I, s:I, s:I}", "vip", v->name,
	    "address", lb_addr_str(&b->addr, a, sizeof(a)), "weight", (json_int_t)b->weight,
	    "config_weight", (json_int_t)(cb ? cb->weight : 0), "health",
	    health < 0 ? "unchecked"
	    : health   ? "up"
	               : "down",
	    "health_reason", why ? json_string(why) : json_null(), "state", state, "slots",
	    (json_int_t)b->slots, "share_pct",
	    v->table_size ? CP_PERCENT * b->slots / v->table_size : 0.0, "packets",
	    (json_int_t)c.packets, "bytes", (json_int_t)c.bytes, "flows", (json_int_t)c.flows);
}

/* The digest of v's previous generation as 16 hex digits, or null when it has none. */
static json_t *cp_prev_digest_json(const struct lb_vip *v)
{
	char d[CP_DIGEST_STRLEN];

	return v->prev_table ? json_string(cp_digest_str(v->prev.digest, d)) : json_null();
}

static json_t *cp_req_status(struct ctlplane *cp)
{
	json_t *vips = json_array(), *res;
	char d[CP_DIGEST_STRLEN];

	for (uint32_t i = 0; i < cp->cur->n_vips; i++) {
		const struct lb_vip *v = &cp->cur->vips[i];

		json_array_append_new(vips, json_pack("{s:s, s:I, s:s, s:o}", "name", v->name,
		                                      "table_size", (json_int_t)v->table_size,
		                                      "digest", cp_digest_str(v->digest, d),
		                                      "previous_digest", cp_prev_digest_json(v)));
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

		json_object_set_new(res, "announce",
		                    json_string(cp->ann_stopped ? "stopped" : "on"));
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
		json_object_set_new(res, "state_dir",
		                    cp->state ? json_string(state_store_dir(cp->state))
		                              : json_null());
		json_object_set_new(
		    res, "state_writes",
		    json_integer((json_int_t)state_counter_get(cp->state, STATE_CTR_WRITES)));
		json_object_set_new(
		    res, "state_write_errors",
		    json_integer((json_int_t)state_counter_get(cp->state, STATE_CTR_WRITE_ERRORS)));
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
		    json_pack(
		        "{s:s, s:s, s:s, s:i, s:s, s:I, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:s}",
		        "name", v->name, "address", lb_addr_str(&v->addr, a, sizeof(a)), "protocol",
		        cp_proto_str(v->proto), "port", v->port, "hash",
		        config_vip_hash_name(v->hash), "table_size", (json_int_t)v->table_size,
		        "digest", cp_digest_str(v->digest, d), "previous_digest",
		        cp_prev_digest_json(v), "backends", (json_int_t)v->n_backends, "up",
		        (json_int_t)up, "packets", (json_int_t)sum.packets, "bytes",
		        (json_int_t)sum.bytes, "flows", (json_int_t)sum.flows, "announce",
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
	uint64_t kernel[LB_CTR_MAX] = {0};
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
	if (cp->h.kernel_counters)
		cp->h.kernel_counters(cp->h.ctx, kernel);
	for (uint32_t k = 0; k < LB_CTR_MAX; k++) {
		json_t *per = json_array(), *row;
		uint64_t total = kernel[k];

		for (uint32_t w = 0; w < nw; w++) {
			const struct lb_worker *wk =
			    cp->h.worker ? cp->h.worker(cp->h.ctx, w) : NULL;
			uint64_t v = wk ? lb_counter_read(&lb_worker_counters(wk)[k]) : 0;

			total += v;
			json_array_append_new(per, json_integer((json_int_t)v));
		}
		row = json_pack("{s:s, s:I, s:o}", "name", lb_counter_name[k], "total",
		                (json_int_t)total, "per_worker", per);
		/* xdp mode: what the kernel's fast path counted, part of the total. */
		if (cp->h.kernel_counters)
			json_object_set_new(row, CP_KERNEL_WORKER,
			                    json_integer((json_int_t)kernel[k]));
		json_array_append_new(rows, row);
	}
	/* The control thread's own: one total each, no per-worker split. */
	for (uint32_t k = 0; k < HEALTH_CTR_MAX; k++)
		json_array_append_new(health, json_pack("{s:s, s:I}", "name",
		                                        health_counter_name[k], "total",
		                                        (json_int_t)health_counter_get(cp->hc, k)));
	for (uint32_t k = 0; k < HCT_CTR_MAX; k++)
		json_array_append_new(health,
		                      json_pack("{s:s, s:I}", "name", hct_counter_name[k], "total",
		                                (json_int_t)cp_tunnel_counter(cp, k)));
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
	cv = config_vip_find(cp->cfg, cp->cur->vips[vi].name);
	if (!config_backend_find(cv, &req->backend)) {
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

/*
 * What v's slot was hashed on (lb_explanation.hash_key): the hash mode, the key as a flow ("tcp
 * SRC:PORT -> VIP:PORT", ports 0 for a source VIP) and its 40 bytes in hex, set on res.
 */
static void cp_explain_hash_key(json_t *res, const struct lb_vip *v,
                                const struct lb_explanation *ex)
{
	const struct lb_flow_key *k = &ex->hash_key;
	struct lb_addr src = {.family = v->addr.family}, dst = src;
	char sa[LB_ADDR_STRLEN], da[LB_ADDR_STRLEN], line[CP_LINE_MAX];
	char hex[2 * LB_FLOW_KEY_LEN + 1];

	memcpy(src.b, k->src, lb_addr_len(&src));
	memcpy(dst.b, k->dst, lb_addr_len(&dst));
	snprintf(line, sizeof(line), "%s %s:%u -> %s:%u", cp_proto_str(k->proto),
	         lb_addr_str(&src, sa, sizeof(sa)), ntohs(k->sport),
	         lb_addr_str(&dst, da, sizeof(da)), ntohs(k->dport));
	for (unsigned i = 0; i < LB_FLOW_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)k)[i]);
	json_object_set_new(res, "hash_mode", json_string(config_vip_hash_name(v->hash)));
	json_object_set_new(res, "hash_key", json_string(line));
	json_object_set_new(res, "hash_key_bytes", json_string(hex));
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
	uint16_t backend, secondary, dport;
	uint8_t proto;
	int32_t vi = cp_vip_find(s, req->vip, req->proto, req->dst_port);
	int32_t usable_worker = -1;
	bool kernel_tracked = false;

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
	secondary = ex.secondary;
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
			secondary = wx.secondary;
		}
	}
	/* xdp mode: the kernel's table, where the flows its fast path forwards are. */
	if (cp->h.kernel_explain && cp->h.kernel_explain(cp->h.ctx, s, &k, &wx)) {
		json_array_append_new(
		    tracked,
		    json_pack("{s:s, s:o, s:b, s:s}", "worker", CP_KERNEL_WORKER, "backend",
		              cp_addr_json(s, LB_BREF_ID(wx.tracked_bref)), "usable",
		              wx.tracked_usable, "state", cp_ct_state_str(proto, &wx)));
		if (wx.tracked_usable && usable_worker < 0) {
			kernel_tracked = true;
			backend = wx.backend;
			secondary = wx.secondary;
		}
	}
	if (ex.refused)
		snprintf(reason, sizeof(reason), "no client has this source: dropped (%s)",
		         lb_counter_name[ex.refused]);
	else if (usable_worker >= 0)
		snprintf(reason, sizeof(reason), "tracked flow on worker %d", usable_worker);
	else if (kernel_tracked)
		snprintf(reason, sizeof(reason), "tracked flow in the kernel's table");
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
		cp_explain_hash_key(res, v, &ex);
		/* Second chance: the previous owner the backend (primary) hands unknown packets to.
		 */
		json_object_set_new(res, "secondary", cp_addr_json(s, secondary));
		if (backend != LB_BACKEND_NONE && backend < s->n_backends) {
			const struct lb_backend *b = &s->backends[backend];

			json_object_set_new(res, "backend_state",
			                    json_string(!b->up           ? "down"
			                                : b->weight == 0 ? "drained"
			                                                 : "active"));
			{
				const struct config_vip *cv = config_vip_find(cp->cfg, v->name);
				int hl = cp_health(cp, cv, config_backend_find(cv, &b->addr));

				json_object_set_new(res, "backend_health",
				                    json_string(hl < 0 ? "unchecked"
				                                : hl   ? "up"
				                                       : "down"));
			}
		}
	}
	return res;
}

/* The watchdog's test hook: refused unless the daemon lent worker_stall (MAGLEVD_TEST_HOOKS=1). */
static json_t *cp_req_test_stall(struct ctlplane *cp, const struct ctl_request *req, char *err,
                                 size_t errlen)
{
	int ret;

	if (!cp->h.worker_stall) {
		snprintf(err, errlen,
		         "test-stall is a test hook: maglevd was not started with "
		         "MAGLEVD_TEST_HOOKS=1");
		return NULL;
	}
	if (req->worker >= cp->h.n_workers) {
		snprintf(err, errlen, "no worker %u (maglevd runs %u)", req->worker,
		         cp->h.n_workers);
		return NULL;
	}
	ret = cp->h.worker_stall(cp->h.ctx, req->worker, req->seconds * (uint32_t)MSEC_PER_SEC);
	if (ret < 0) {
		snprintf(err, errlen, "worker %u: cannot stall: %s", req->worker, strerror(-ret));
		return NULL;
	}
	return json_pack("{s:I, s:I}", "worker", (json_int_t)req->worker, "seconds",
	                 (json_int_t)req->seconds);
}

json_t *cp_handle(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
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
	case CTL_CMD_TEST_STALL:
		return cp_req_test_stall(cp, req, err, errlen);
	}
	snprintf(err, errlen, "unknown command");
	return NULL;
}
