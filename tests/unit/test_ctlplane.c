/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The control plane end to end without a data plane: a real config file, control socket, health
 * checks against loopback listeners, metrics over HTTP, and two pipeline workers for counters and
 * explain. Reload, bad reload, weight/drain/undrain, health down/up and the all-down policy; the
 * state directory across restarts of the control plane.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control/config_yaml.h"
#include "io/hctunnel.h"
#include "maglevd/ctlplane.h"
#include "control/ctlsock.h"
#include "maglevd/health.h"
#include "maglevd/state.h"
#include "tframes.h"
#include "tsnap.h"
#include "helpers.h"
#include "tctlplane.h"

#define WAIT_MAX_MS 4000 /* bound of every wait for a health change */

struct fixture {
	char dir[64];
	char cfg_path[96];
	char sock[96];
	char state_dir[128]; /* control.state_dir that write_config writes */
	uint16_t metrics_port;
	uint16_t hc_port;
	int hc_listener;
	struct lb_worker *workers[2];
	atomic_int publishes;
	struct tctl ctl;
};

static const struct lb_worker *fx_worker(void *ctx, uint32_t i)
{
	struct fixture *f = ctx;

	return i < 2 ? f->workers[i] : NULL;
}

static int fx_publish(void *ctx, const struct config *cfg, struct lb_snapshot *next, char *err,
                      size_t errlen)
{
	struct fixture *f = ctx;

	(void)cfg;
	(void)next;
	(void)err;
	(void)errlen;
	atomic_fetch_add(&f->publishes, 1);
	return 0;
}

static const char *fx_mode(void *ctx)
{
	(void)ctx;
	return "test";
}

static void write_config(struct fixture *f, int n_web, bool broken)
{
	FILE *fp = fopen(f->cfg_path, "w");

	assert_non_null(fp);
	fprintf(fp,
	        "cluster: { table_size: 1009 }\n"
	        "dataplane: { interface: lo, source_ipv4: 198.18.2.2 }\n"
	        "control:\n"
	        "  socket: %s\n"
	        "  metrics: { address: 127.0.0.1, port: %u }\n"
	        "  state_dir: '%s'\n"
	        "vips:\n"
	        "  - name: web\n"
	        "    address: 203.0.113.10\n"
	        "    protocol: tcp\n"
	        "    port: 80\n"
	        "    backends:\n",
	        f->sock, f->metrics_port, f->state_dir);
	for (int i = 0; i < n_web; i++)
		fprintf(fp, "      - { address: 198.18.1.%d, weight: 1 }\n", 11 + i);
	fprintf(
	    fp,
	    "  - name: hc\n"
	    "    address: 203.0.113.20\n"
	    "    protocol: tcp\n"
	    "    port: 80\n"
	    "    health: { type: tcp, port: %u, interval: 40ms, timeout: 30ms, rise: 1, fall: 2 }\n"
	    "    backends:\n"
	    "      - { address: 127.0.0.1, weight: 1 }\n"
	    "      - { address: 127.0.0.2, weight: 1 }\n"
	    "  - name: sticky\n"
	    "    address: 203.0.113.30\n"
	    "    protocol: tcp\n"
	    "    port: 443\n"
	    "    hash: source\n"
	    "    backends: [ { address: 198.18.1.11 }, { address: 198.18.1.12 } ]\n",
	    f->hc_port);
	if (broken)
		fprintf(fp, "  - name: bad\n    address: 203.0.113.300\n    protocol: tcp\n"
		            "    port: 81\n    backends:\n      - { address: 198.18.1.11 }\n");
	fclose(fp);
}

/* Starts a control plane on the config file, the first snapshot as maglevd builds it. */
static void fx_start(struct fixture *f)
{
	struct ctlplane_hooks h = {
	    .publish = fx_publish, .worker = fx_worker, .n_workers = 2, .mode = fx_mode};

	h.ctx = f;
	tctl_start(&f->ctl, f->cfg_path, &h);
}

/* Stops the control plane fx_start started (as a maglevd stop would). */
static void fx_stop(struct fixture *f)
{
	tctl_stop(&f->ctl);
}

/* A fixture in a new temporary directory (state_dir DIR/state), its control plane running. */
static struct fixture *fx_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct lb_worker_params wp = {.ct_entries = 1024,
	                              .tcp_timeout = 300,
	                              .tcp_fin_timeout = 10,
	                              .tcp_syn_timeout = 5,
	                              .udp_timeout = 30,
	                              .icmp_timeout = 10};
	int probe;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/maglev-cp-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/maglevd.yaml", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->dir);
	snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir);
	/* A free port for metrics: bind one, release it, and use it. */
	probe = th_listen_loopback(&f->metrics_port);
	close(probe);
	f->hc_listener = th_listen_loopback(&f->hc_port);
	write_config(f, 3, false);
	memcpy(wp.mac, TCFG_MAC_ME, 6);
	for (uint32_t i = 0; i < 2; i++) {
		wp.id = i;
		f->workers[i] = lb_worker_create(&wp);
		assert_non_null(f->workers[i]);
	}
	fx_start(f);
	return f;
}

/* Stops f's control plane if it runs and removes everything f made. */
static void fx_free(struct fixture *f)
{
	char path[STATE_PATH_MAX];

	if (f->ctl.cp)
		fx_stop(f);
	for (int i = 0; i < 2; i++)
		lb_worker_destroy(f->workers[i]);
	if (f->hc_listener >= 0)
		close(f->hc_listener);
	snprintf(path, sizeof(path), "%s/state/%s", f->dir, STATE_FILE_NAME);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", f->dir);
	rmdir(path);
	unlink(f->cfg_path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
}

static int setup(void **state)
{
	*state = fx_new();
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* Sends one request; returns the result object (owned by *resp) or NULL with the error in err. */
static json_t *call(struct fixture *f, json_t *req, json_t **resp, char *err)
{
	int ret = ctl_call(f->sock, req, resp, 10000, err, CTL_ERR_MAX);

	json_decref(req);
	assert_int_equal(ret, 0);
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		snprintf(err, CTL_ERR_MAX, "%s",
		         json_string_value(json_object_get(*resp, "error")));
		return NULL;
	}
	return json_object_get(*resp, "result");
}

/* The row of backends [VIP] for address a (borrowed from *resp). */
static json_t *backend_row(struct fixture *f, const char *vip, const char *a, json_t **resp)
{
	char err[CTL_ERR_MAX];
	json_t *r = call(f, json_pack("{s:s, s:s}", "cmd", "backends", "vip", vip), resp, err);
	json_t *row;
	size_t i;

	assert_non_null(r);
	json_array_foreach(json_object_get(r, "backends"), i,
	                   row) if (strcmp(json_string_value(json_object_get(row, "address")), a) ==
	                            0) return row;
	return NULL;
}

static json_int_t row_int(json_t *row, const char *key)
{
	return json_integer_value(json_object_get(row, key));
}

static const char *row_str(json_t *row, const char *key)
{
	return json_string_value(json_object_get(row, key));
}

static void test_status_and_counters(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX];
	json_t *resp, *r;

	r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	assert_non_null(r);
	assert_string_equal(row_str(r, "mode"), "test");
	assert_int_equal(row_int(r, "workers"), 2);
	assert_int_equal(row_int(r, "config_generation"), 1);
	assert_string_equal(row_str(r, "config"), f->cfg_path);
	assert_int_equal(json_array_size(json_object_get(r, "vips")), 3);
	assert_int_equal(strlen(row_str(json_array_get(json_object_get(r, "vips"), 0), "digest")),
	                 16);
	assert_true(row_int(r, "health_probes_inflight_max") >= 1);
	assert_true(row_int(r, "health_probes_inflight") <=
	            row_int(r, "health_probes_inflight_max"));
	assert_int_equal(row_int(r, "health_local_errors"), 0);
	json_decref(resp);

	r = call(f, json_pack("{s:s}", "cmd", "counters"), &resp, err);
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "counters")), LB_CTR_MAX);
	assert_int_equal(json_array_size(json_object_get(
	                     json_array_get(json_object_get(r, "counters"), 0), "per_worker")),
	                 2);
	/* The checker's counters, then the tunnel's (0: no check goes through it). */
	assert_int_equal(json_array_size(json_object_get(r, "health")),
	                 HEALTH_CTR_MAX + HCT_CTR_MAX);
	assert_string_equal(
	    row_str(json_array_get(json_object_get(r, "health"), HEALTH_CTR_LOCAL_ERRORS), "name"),
	    "health_local_errors");
	assert_string_equal(row_str(json_array_get(json_object_get(r, "health"),
	                                           HEALTH_CTR_MAX + HCT_CTR_ENCAPSULATED),
	                            "name"),
	                    "health_tunnel_encapsulated");
	assert_int_equal(row_int(json_array_get(json_object_get(r, "health"),
	                                        HEALTH_CTR_MAX + HCT_CTR_ENCAPSULATED),
	                         "total"),
	                 0);
	json_decref(resp);

	r = call(f, json_pack("{s:s}", "cmd", "vips"), &resp, err);
	assert_non_null(r);
	assert_string_equal(row_str(json_array_get(json_object_get(r, "vips"), 0), "address"),
	                    "203.0.113.10");
	/* Each VIP's hash mode: the default, and sticky's hash: source. */
	assert_string_equal(row_str(json_array_get(json_object_get(r, "vips"), 0), "hash"),
	                    "5-tuple");
	assert_string_equal(row_str(json_array_get(json_object_get(r, "vips"), 2), "hash"),
	                    "source");
	json_decref(resp);

	r = call(f, json_pack("{s:s, s:s}", "cmd", "backends", "vip", "nope"), &resp, err);
	assert_null(r);
	assert_string_equal(err, "no VIP 'nope'");
	json_decref(resp);
}

static void test_weight_drain_reload(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX], want[160];
	json_t *resp, *r, *row;
	json_int_t slots_before;

	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_non_null(row);
	assert_int_equal(row_int(row, "weight"), 1);
	slots_before = row_int(row, "slots");
	assert_true(slots_before >= 1009 / 3 && slots_before <= 1009 / 3 + 1);
	json_decref(resp);

	r = call(f,
	         json_pack("{s:s, s:s, s:s, s:i}", "cmd", "weight", "vip", "web", "backend",
	                   "198.18.1.11", "weight", 3),
	         &resp, err);
	assert_non_null(r);
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_int_equal(row_int(row, "weight"), 3);
	assert_int_equal(row_int(row, "config_weight"), 1);
	assert_true(row_int(row, "slots") > 1009 / 2); /* 3 of 5 weight units */
	json_decref(resp);

	r = call(f,
	         json_pack("{s:s, s:s, s:s}", "cmd", "drain", "vip", "203.0.113.10", "backend",
	                   "198.18.1.11"),
	         &resp, err);
	assert_non_null(r);
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_int_equal(row_int(row, "weight"), 0);
	assert_int_equal(row_int(row, "slots"), 0);
	assert_string_equal(row_str(row, "state"), "drained");
	json_decref(resp);

	r = call(
	    f,
	    json_pack("{s:s, s:s, s:s}", "cmd", "undrain", "vip", "web", "backend", "198.18.1.11"),
	    &resp, err);
	assert_non_null(r);
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_int_equal(row_int(row, "weight"), 3); /* the runtime weight it had before drain */
	json_decref(resp);

	r = call(
	    f, json_pack("{s:s, s:s, s:s}", "cmd", "drain", "vip", "web", "backend", "198.18.9.9"),
	    &resp, err);
	assert_null(r);
	assert_string_equal(err, "VIP web has no backend 198.18.9.9");
	json_decref(resp);

	/* A bad config is refused with FILE:LINE and changes nothing, runtime weight included. */
	write_config(f, 3, true);
	r = call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err);
	assert_null(r);
	snprintf(want, sizeof(want), "%s:", f->cfg_path);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "203.0.113.300"));
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_int_equal(row_int(row, "weight"), 3);
	json_decref(resp);

	/* A good reload adds a backend and drops the runtime weight. */
	write_config(f, 4, false);
	r = call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err);
	assert_non_null(r);
	assert_int_equal(row_int(r, "config_generation"), 2);
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.14", &resp);
	assert_non_null(row);
	json_decref(resp);
	row = backend_row(f, "web", "198.18.1.11", &resp);
	assert_int_equal(row_int(row, "weight"), 1);
	json_decref(resp);

	/* SIGHUP's path: the flag, then the control loop reloads. */
	ctlplane_request_reload(f->ctl.cp);
	for (int i = 0; i < 200; i++) {
		r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
		if (row_int(r, "config_generation") == 3)
			break;
		json_decref(resp);
		resp = NULL;
		usleep(10000);
	}
	assert_non_null(resp);
	assert_int_equal(row_int(r, "reloads_ok"), 2);
	assert_int_equal(row_int(r, "reloads_failed"), 1);
	json_decref(resp);
}

/* Writes text as the whole config file. */
static void write_text(struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->cfg_path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The number of VIPs that `status` reports. */
static size_t status_vips(struct fixture *f)
{
	char err[CTL_ERR_MAX];
	json_t *resp, *r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	size_t n;

	assert_non_null(r);
	n = json_array_size(json_object_get(r, "vips"));
	json_decref(resp);
	return n;
}

/*
 * A reload checks what start-up checks: an empty file (a write caught half-way) and a config the
 * data plane cannot serve (IPv6 backends, no source_ipv6) are refused and both VIPs keep serving;
 * a config that says `vips: []` is the only way to serve none.
 */
static void test_reload_checks_like_start(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX], hdr[384];
	json_t *resp, *r;

	write_text(f, "");
	r = call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err);
	assert_null(r);
	assert_non_null(strstr(err, "the file is empty"));
	json_decref(resp);
	assert_int_equal(status_vips(f), 3);

	write_text(f, "dataplane: { interface: lo, source_ipv4: 198.18.2.2 }\n" TH_YAML_VIPS_WEB6);
	r = call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err);
	assert_null(r);
	assert_non_null(strstr(err, "dataplane.source_ipv6 is not set"));
	json_decref(resp);
	assert_int_equal(status_vips(f), 3);

	snprintf(hdr, sizeof(hdr),
	         "dataplane: { interface: lo, source_ipv4: 198.18.2.2 }\n"
	         "control: { socket: %s, metrics: { address: 127.0.0.1, port: %u },\n"
	         "  state_dir: '%s' }\n"
	         "vips: []\n",
	         f->sock, f->metrics_port, f->state_dir);
	write_text(f, hdr);
	r = call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err);
	assert_non_null(r);
	json_decref(resp);
	assert_int_equal(status_vips(f), 0);
}

static void test_explain(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX];
	json_t *resp, *r;

	r = call(f,
	         json_pack("{s:s, s:s, s:s, s:i}", "cmd", "explain", "vip", "web", "src",
	                   "198.18.0.2", "src_port", 40000),
	         &resp, err);
	assert_non_null(r);
	assert_true(row_int(r, "slot") < 1009);
	assert_int_equal(row_int(r, "table_size"), 1009);
	assert_non_null(row_str(r, "backend"));
	assert_string_equal(row_str(r, "backend"), row_str(r, "table_backend"));
	assert_non_null(strstr(row_str(r, "reason"), "table slot"));
	assert_non_null(strstr(row_str(r, "flow"), "tcp 198.18.0.2:40000 -> 203.0.113.10:80"));
	assert_int_equal(json_array_size(json_object_get(r, "tracked")), 0);
	assert_string_equal(row_str(r, "backend_health"), "unchecked");
	assert_string_equal(row_str(r, "backend_state"), "active");
	/* No second chance on web, nor a previous generation: no secondary. */
	assert_true(json_is_null(json_object_get(r, "secondary")));
	/* A 5-tuple VIP hashes the flow itself. */
	assert_string_equal(row_str(r, "hash_mode"), "5-tuple");
	assert_string_equal(row_str(r, "hash_key"), "tcp 198.18.0.2:40000 -> 203.0.113.10:80");
	assert_string_equal(row_str(r, "hash_key_bytes"),
	                    "c6120002000000000000000000000000cb00710a000000000000000000000000"
	                    "9c40005006040000");
	json_decref(resp);

	/* A source VIP hashes the key without ports, so every port of the client is one slot. */
	{
		char hash[17] = "", slot[16] = "";

		for (int port = 40000; port < 40003; port++) {
			r = call(f,
			         json_pack("{s:s, s:s, s:s, s:i}", "cmd", "explain", "vip",
			                   "sticky", "src", "198.18.0.2", "src_port", port),
			         &resp, err);
			assert_non_null(r);
			assert_string_equal(row_str(r, "hash_mode"), "source");
			assert_string_equal(row_str(r, "hash_key"),
			                    "tcp 198.18.0.2:0 -> 203.0.113.30:0");
			assert_string_equal(
			    row_str(r, "hash_key_bytes"),
			    "c6120002000000000000000000000000cb00711e000000000000000000000000"
			    "0000000006040000");
			if (port == 40000) {
				snprintf(hash, sizeof(hash), "%s", row_str(r, "hash"));
				snprintf(slot, sizeof(slot), "%lld", (long long)row_int(r, "slot"));
			}
			assert_string_equal(row_str(r, "hash"), hash);
			assert_int_equal(row_int(r, "slot"), strtoll(slot, NULL, 10));
			json_decref(resp);
		}
	}

	r = call(f,
	         json_pack("{s:s, s:s, s:s}", "cmd", "explain", "vip", "web", "src", "2001:db8::1"),
	         &resp, err);
	assert_null(r);
	assert_non_null(strstr(err, "different address families"));
	json_decref(resp);
}

/* explain shows the state of a flow's entry on the worker that tracks it: SYN-only, then on. */
static void test_explain_tracked_state(void **state)
{
	static const uint8_t tcp_flags[] = {0x02, 0x02, 0x10, 0x11};
	static const char *const want[] = {"syn-only", "syn-only", "established", "closing"};
	struct fixture *f = *state;
	struct config *cfg;
	struct lb_snapshot *s;
	static struct tbuf b;
	char err[CTL_ERR_MAX];
	json_t *resp, *r, *t;
	uint8_t pkt[128];

	/*
	 * The workers' snapshot: built from the same file, so the same backend ids and tags, with
	 * the outer addresses and next hop that sending needs.
	 */
	if (config_load(f->cfg_path, &cfg, err, sizeof(err)) < 0)
		fail_msg("config_load: %s", err);
	tcfg_dataplane(cfg);
	s = snap(cfg, NULL, NULL);
	for (unsigned i = 0; i < sizeof(tcp_flags); i++) {
		uint32_t n =
		    tf_flow4(pkt, "198.18.0.3", "203.0.113.10", 6, 40001, 80, tcp_flags[i]);
		struct lb_frame fr = tbuf_frame(&b, pkt, n);

		assert_int_equal(lb_process(f->workers[0], s, &fr, 1000000000ull * (i + 1)), LB_TX);
		r = call(f,
		         json_pack("{s:s, s:s, s:s, s:i}", "cmd", "explain", "vip", "web", "src",
		                   "198.18.0.3", "src_port", 40001),
		         &resp, err);
		assert_non_null(r);
		t = json_object_get(r, "tracked");
		assert_int_equal(json_array_size(t), 1);
		assert_int_equal(row_int(json_array_get(t, 0), "worker"), 0);
		assert_non_null(row_str(json_array_get(t, 0), "state"));
		assert_string_equal(row_str(json_array_get(t, 0), "state"), want[i]);
		assert_true(json_is_true(json_object_get(json_array_get(t, 0), "usable")));
		json_decref(resp);
	}
	snapshot_free(s);
	config_free(cfg);
}

static json_t *wait_health(struct fixture *f, const char *a, const char *want, json_t **resp)
{
	struct timespec t0, t;
	json_t *row;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		row = backend_row(f, "hc", a, resp);
		if (strcmp(row_str(row, "health"), want) == 0)
			return row;
		json_decref(*resp);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    WAIT_MAX_MS)
			fail_msg("%s never became %s", a, want);
		usleep(10000);
	}
}

static struct fixture *reset_fx; /* for reload_to_three, which th_capture_stderr runs */

static void override(struct fixture *f, const char *cmd, const char *backend, int weight)
{
	char err[CTL_ERR_MAX];
	json_t *resp,
	    *req = json_pack("{s:s, s:s, s:s}", "cmd", cmd, "vip", "web", "backend", backend);

	if (weight >= 0)
		json_object_set_new(req, "weight", json_integer(weight));
	assert_non_null(call(f, req, &resp, err));
	json_decref(resp);
}

static void reload_to_three(void)
{
	char err[CTL_ERR_MAX];
	json_t *resp;

	write_config(reset_fx, 3, false);
	assert_non_null(call(reset_fx, json_pack("{s:s}", "cmd", "reload"), &resp, err));
	json_decref(resp);
}

/*
 * A successful reload resets the runtime drains and weights, and logs a warning for each (the
 * backend, what was reset, what applies now); a drain undone by undrain is not one.
 */
static void test_reload_logs_reset(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX];
	const char *log;
	json_t *resp;

	write_config(f, 4, false);
	assert_non_null(call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err));
	json_decref(resp);
	override(f, "drain", "198.18.1.11", -1);
	override(f, "weight", "198.18.1.12", 5);
	override(f, "drain", "198.18.1.13", -1);
	override(f, "undrain", "198.18.1.13", -1);
	override(f, "weight", "198.18.1.14", 2);
	reset_fx = f;
	log = th_capture_stderr(reload_to_three);
	assert_non_null(strstr(log, "reload: vip web backend 198.18.1.11: runtime drain reset, "
	                            "the config's weight 1 applies (write it to the config to "
	                            "keep it)\n"));
	assert_non_null(strstr(log, "reload: vip web backend 198.18.1.12: runtime weight 5 reset, "
	                            "the config's weight 1 applies"));
	assert_non_null(strstr(log, "reload: vip web backend 198.18.1.14: runtime weight 2 reset, "
	                            "it is no longer in the config"));
	assert_null(strstr(log, "198.18.1.13"));
	/* Nothing to reset on the next one. */
	log = th_capture_stderr(reload_to_three);
	assert_null(strstr(log, "runtime"));
	assert_non_null(strstr(log, "reload: "));
}

/*
 * A metrics port that cannot be bound stops the control plane from starting (so maglevd from
 * starting), with a message that names the key, the address, the port and the reason.
 */
static void test_metrics_port_taken(void **state)
{
	struct fixture *f = *state;
	struct ctlplane_hooks h = {
	    .publish = fx_publish, .worker = fx_worker, .n_workers = 2, .mode = fx_mode, .ctx = f};
	char err[CTL_ERR_MAX], want[CTL_ERR_MAX];
	struct lb_snapshot *first;
	struct ctlplane *cp = NULL;
	struct config *cfg;
	uint16_t port;
	int taken;

	fx_stop(f);
	port = f->metrics_port;
	taken = th_listen_loopback(&port);
	assert_int_equal(config_load(f->cfg_path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(ctlplane_build_first(cfg, &first, err, sizeof(err)), 0);
	assert_true(ctlplane_create(&cp, f->cfg_path, cfg, first, &h, err, sizeof(err)) < 0);
	assert_null(cp);
	snprintf(want, sizeof(want),
	         "control.metrics: cannot listen on address 127.0.0.1 port %u: Address already in "
	         "use (change control.metrics.address or .port, or set "
	         "control.metrics.enabled: false)",
	         f->metrics_port);
	assert_string_equal(err, want);
	snapshot_free(first); /* the caller's still, on failure */
	config_free(cfg);
	close(taken);
	/* The port free again, it starts (and the fixture's teardown stops it). */
	fx_start(f);
}

static void test_health_and_metrics(void **state)
{
	struct fixture *f = *state;
	json_t *resp, *row;
	char *m;

	/* 127.0.0.2 has no listener on the port: down, out of the table. 127.0.0.1 stays up. */
	row = wait_health(f, "127.0.0.2", "down", &resp);
	assert_string_equal(row_str(row, "state"), "down");
	assert_int_equal(row_int(row, "slots"), 0);
	json_decref(resp);
	row = backend_row(f, "hc", "127.0.0.1", &resp);
	assert_string_equal(row_str(row, "health"), "up");
	assert_int_equal(row_int(row, "slots"), 1009);
	json_decref(resp);

	m = th_http_get(f->metrics_port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(m, " 200 "));
	assert_non_null(strstr(m, "maglevd_backend_up{vip=\"hc\",backend=\"127.0.0.2\"} 0\n"));
	assert_non_null(strstr(m, "maglevd_backend_up{vip=\"hc\",backend=\"127.0.0.1\"} 1\n"));
	assert_non_null(
	    strstr(m, "maglevd_backend_slots{vip=\"hc\",backend=\"127.0.0.1\"} 1009\n"));
	assert_non_null(strstr(m, "maglevd_vip_info{vip=\"web\",address=\"203.0.113.10\","
	                          "protocol=\"tcp\",port=\"80\",table_size=\"1009\",digest=\""));
	assert_non_null(strstr(m, "\",hash=\"5-tuple\"} 1\n"));
	{
		/* sticky (hash: source) has the label too: its line ends with it. */
		static const char tail[] = ",hash=\"source\"} 1";
		const char *sticky = strstr(m, "maglevd_vip_info{vip=\"sticky\",");
		const char *end = sticky ? strchr(sticky, '\n') : NULL;
		const size_t n = sizeof(tail) - 1;

		assert_non_null(end);
		assert_true((size_t)(end - sticky) > n && memcmp(end - n, tail, n) == 0);
	}
	assert_non_null(strstr(m, "# TYPE maglevd_rx_frames_total counter\n"));
	assert_non_null(strstr(m, "maglevd_rx_frames_total{worker=\"1\"} 0\n"));
	/* Drops are one family by reason, not a family per reason. */
	assert_non_null(strstr(m, "# TYPE maglevd_drops_total counter\n"));
	assert_non_null(strstr(m, "\nmaglevd_drops_total{worker=\"1\",reason=\"no_backend\"} 0\n"));
	assert_non_null(
	    strstr(m, "\nmaglevd_drops_total{worker=\"0\",reason=\"eth_truncated\"} 0\n"));
	assert_null(strstr(m, "maglevd_drop_"));
	assert_non_null(strstr(m, "maglevd_reloads_total{result=\"success\"} "));
	assert_non_null(strstr(m, "\nmaglevd_config_generation "));
	assert_non_null(strstr(m, "\nmaglevd_health_checks 2\n"));
	assert_non_null(strstr(m, "\nmaglevd_health_probes_inflight_max "));
	assert_non_null(strstr(m, "# TYPE maglevd_health_local_errors_total counter\n"));
	assert_non_null(strstr(m, "\nmaglevd_health_local_errors_total 0\n"));
	assert_non_null(strstr(m, "\nmaglevd_health_probes_failed_total "));
	assert_non_null(strstr(m, "# TYPE maglevd_state_writes_total counter\n"));
	assert_non_null(strstr(m, "\nmaglevd_state_writes_skipped_total "));
	assert_non_null(strstr(m, "\nmaglevd_state_write_errors_total 0\n"));
	free(m);

	/* Every backend down: fail open, both serve again (health still says down). */
	close(f->hc_listener);
	f->hc_listener = -1;
	row = wait_health(f, "127.0.0.1", "down", &resp);
	for (int i = 0; i < 100 && strcmp(row_str(row, "state"), "active") != 0; i++) {
		json_decref(resp);
		usleep(10000);
		row = backend_row(f, "hc", "127.0.0.1", &resp);
	}
	assert_string_equal(row_str(row, "state"), "active");
	assert_true(row_int(row, "slots") > 0);
	json_decref(resp);
	row = backend_row(f, "hc", "127.0.0.2", &resp);
	assert_string_equal(row_str(row, "state"), "active");
	json_decref(resp);

	/* One comes back (rise 1): health takes over again, the other is out. */
	f->hc_listener = th_listen_loopback(&f->hc_port);
	row = wait_health(f, "127.0.0.1", "up", &resp);
	json_decref(resp);
	for (int i = 0; i < 100; i++) {
		row = backend_row(f, "hc", "127.0.0.2", &resp);
		if (strcmp(row_str(row, "state"), "down") == 0)
			break;
		json_decref(resp);
		resp = NULL;
		usleep(10000);
	}
	assert_non_null(resp);
	assert_string_equal(row_str(row, "state"), "down");
	json_decref(resp);
	assert_true(atomic_load(&f->publishes) >= 3);
}

#define DIGEST_LEN 17u /* 16 hex digits and the NUL */

/* The web VIP's (first) digest and previous digest ("" for none) from `vips`; `status` agrees. */
static void web_digests(struct fixture *f, char *digest, char *prev)
{
	char err[CTL_ERR_MAX];
	json_t *resp, *r, *row, *p;

	r = call(f, json_pack("{s:s}", "cmd", "vips"), &resp, err);
	assert_non_null(r);
	row = json_array_get(json_object_get(r, "vips"), 0);
	assert_string_equal(row_str(row, "name"), "web");
	p = json_object_get(row, "previous_digest");
	assert_true(json_is_null(p) || (json_is_string(p) && strlen(json_string_value(p)) == 16));
	snprintf(digest, DIGEST_LEN, "%s", row_str(row, "digest"));
	snprintf(prev, DIGEST_LEN, "%s", json_is_null(p) ? "" : json_string_value(p));
	json_decref(resp);
	r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	assert_non_null(r);
	row = json_array_get(json_object_get(r, "vips"), 0);
	assert_string_equal(row_str(row, "digest"), digest);
	p = json_object_get(row, "previous_digest");
	assert_string_equal(json_is_null(p) ? "" : json_string_value(p), prev);
	json_decref(resp);
}

/* The web VIP's digest and previous digest after each step of history_run. */
struct web_history {
	char digest[4][DIGEST_LEN], prev[4][DIGEST_LEN];
};

/*
 * One config history from f's first start with config A (web of 3 backends): a reload to A and
 * a 4th backend (B), a restart with B, a restart with A and a 4th and 5th backend (C).
 */
static void history_run(struct fixture *f, struct web_history *w)
{
	char err[CTL_ERR_MAX];
	json_t *resp;

	web_digests(f, w->digest[0], w->prev[0]);
	write_config(f, 4, false);
	assert_non_null(call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err));
	json_decref(resp);
	web_digests(f, w->digest[1], w->prev[1]);
	fx_stop(f);
	fx_start(f);
	web_digests(f, w->digest[2], w->prev[2]);
	fx_stop(f);
	write_config(f, 5, false);
	fx_start(f);
	web_digests(f, w->digest[3], w->prev[3]);
}

/*
 * The previous generation survives a restart: after A, reload to B, stop, start with B, the
 * previous generation is A's table again (D_A); stopped and started with C, it is B's.
 */
static void test_state_restart(void **state)
{
	struct fixture *f = *state;
	char path[STATE_PATH_MAX];
	struct web_history w;
	struct stat st;

	history_run(f, &w);
	assert_string_equal(w.prev[0], ""); /* a first start: none */
	assert_string_not_equal(w.digest[1], w.digest[0]);
	assert_string_equal(w.prev[1], w.digest[0]);   /* the reload's: A */
	assert_string_equal(w.digest[2], w.digest[1]); /* started with B */
	assert_string_equal(w.prev[2], w.digest[0]);   /* restored: A */
	assert_string_not_equal(w.digest[3], w.digest[2]);
	assert_string_equal(w.prev[3], w.digest[2]); /* the change made while stopped: B */
	assert_int_equal(stat(state_file_path(f->state_dir, path), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	snprintf(path, sizeof(path), "%s/%s", f->state_dir, STATE_TMP_NAME);
	assert_int_equal(stat(path, &st), -1);
}

/* Two maglevd with the same config history (each its own state directory): equal digests. */
static void test_state_same_history(void **state)
{
	struct fixture *f = *state, *g = fx_new();
	struct web_history a, b;

	history_run(f, &a);
	history_run(g, &b);
	fx_free(g);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(a.digest[i], b.digest[i]);
		assert_string_equal(a.prev[i], b.prev[i]);
	}
	assert_string_not_equal(a.prev[3], "");
}

static json_int_t status_int(struct fixture *f, const char *key)
{
	char err[CTL_ERR_MAX];
	json_t *resp, *r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	json_int_t v;

	assert_non_null(r);
	assert_true(json_is_integer(json_object_get(r, key)));
	v = row_int(r, key);
	json_decref(resp);
	return v;
}

/* Sets web's backend 198.18.1.11 to weight w at runtime (a rebuild and publish). */
static void web_weight(struct fixture *f, int w)
{
	char err[CTL_ERR_MAX];
	json_t *resp, *r;

	r = call(f,
	         json_pack("{s:s, s:s, s:s, s:i}", "cmd", "weight", "vip", "web", "backend",
	                   "198.18.1.11", "weight", w),
	         &resp, err);
	assert_non_null(r);
	json_decref(resp);
}

/*
 * A publish whose state is the one on disk writes nothing; one that changes it writes. A state
 * directory that cannot be made fails every write, counted, and serving goes on.
 */
static void test_state_writes(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX];
	json_int_t writes;
	json_t *resp, *r;

	/*
	 * Health settles first (127.0.0.2 has no listener) and its rebuild is published, state
	 * file included: no rebuild races the counts below.
	 */
	wait_health(f, "127.0.0.2", "down", &resp);
	json_decref(resp);
	for (int i = 0; i < 100; i++) {
		json_t *row = backend_row(f, "hc", "127.0.0.2", &resp);
		bool down = strcmp(row_str(row, "state"), "down") == 0;

		json_decref(resp);
		if (down)
			break;
		usleep(10000);
	}
	r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	assert_non_null(r);
	assert_string_equal(row_str(r, "state_dir"), f->state_dir);
	json_decref(resp);
	writes = status_int(f, "state_writes");
	assert_true(writes >= 1);
	assert_int_equal(status_int(f, "state_write_errors"), 0);

	assert_non_null(call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err));
	json_decref(resp);
	assert_int_equal(status_int(f, "state_writes"), writes); /* the same file */
	web_weight(f, 2);
	assert_int_equal(status_int(f, "state_writes"), writes + 1);

	/* A reload does not move the state directory: that takes a restart. */
	snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->cfg_path);
	write_config(f, 3, false);
	assert_non_null(call(f, json_pack("{s:s}", "cmd", "reload"), &resp, err));
	json_decref(resp);
	r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	assert_string_not_equal(row_str(r, "state_dir"), f->state_dir);
	json_decref(resp);
	assert_int_equal(status_int(f, "state_write_errors"), 0);

	/* Under a regular file no directory can be made. */
	fx_stop(f);
	fx_start(f);
	assert_int_equal(status_int(f, "state_writes"), 0);
	assert_int_equal(status_int(f, "state_write_errors"), 1);
	web_weight(f, 2);
	assert_int_equal(status_int(f, "state_write_errors"), 2);
	assert_int_equal(status_vips(f), 3);
	r = call(f, json_pack("{s:s}", "cmd", "status"), &resp, err);
	assert_string_equal(row_str(r, "state_dir"), f->state_dir);
	json_decref(resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_status_and_counters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_weight_drain_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_checks_like_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_explain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_explain_tracked_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_logs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics_port_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_and_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_same_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_writes, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctlplane", tests, NULL, NULL);
}
