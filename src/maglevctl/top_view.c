/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl top`'s pure part: command line, samples to rates, the frame's lines and JSON. */
#include "maglevctl/top_view.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "maglevctl/command.h"

#define TOP_LINES_FIRST 64u /* lines allocated at first; doubled as needed */
#define TOP_CELL_MAX    32u /* bytes of one formatted number or state cell */
#define TOP_HELP_COL    28u /* where the help text starts, as online_usage has it */

void top_usage(FILE *f)
{
	static const char *const help[] = {
	    "per VIP and backend: packets/s, bits/s, new",
	    "flows/s, health, weight, share; drops by reason.",
	    "-i, --interval SECONDS between frames (default 1,",
	    "0.1..60); q quits. --once: one frame on stdout",
	    "from two samples an interval apart (text, or",
	    "--json), then exit",
	};

	fprintf(f, "Live view (online; -s, -c as for the online commands):\n"
	           "  top [VIP] [-i SECONDS] [--once [--json]]\n");
	for (size_t i = 0; i < ARRAY_SIZE(help); i++)
		fprintf(f, "  %-*s%s\n", (int)TOP_HELP_COL, "", help[i]);
}

static int top_usage_err(const char *why, const char *arg, char *err, size_t errlen)
{
	snprintf(err, errlen,
	         "%s%s%s%susage: maglevctl top [VIP] [-i SECONDS] [--once [--json]] [-s SOCKET] "
	         "[-c CONFIG]",
	         why, arg ? " '" : "", arg ? arg : "", arg ? "'; " : "; ");
	return COMMAND_USAGE;
}

int top_parse(int argc, char **argv, struct top_args *out, char *err, size_t errlen)
{
	static const struct option opts[] = {
	    {"interval", required_argument, NULL, 'i'},
	    {"once", no_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"socket", required_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	memset(out, 0, sizeof(*out));
	out->interval_s = TOP_INTERVAL_DEFAULT_S;
	optind = 0; /* GNU getopt: start over for this argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "i:s:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			errno = 0;
			out->interval_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(out->interval_s) ||
			    out->interval_s < TOP_INTERVAL_MIN_S ||
			    out->interval_s > TOP_INTERVAL_MAX_S) {
				snprintf(err, errlen,
				         "interval must be %.1f..%.0f seconds, not '%s'",
				         TOP_INTERVAL_MIN_S, TOP_INTERVAL_MAX_S, optarg);
				return COMMAND_USAGE;
			}
			break;
		case 'o':
			out->once = true;
			break;
		case 'j':
			out->json = true;
			break;
		case 's':
			out->sock = optarg;
			break;
		case 'c':
			out->config = optarg;
			break;
		case 'h':
			out->help = true;
			return 0;
		default:
			return top_usage_err("bad option", argv[optind - 1], err, errlen);
		}
	}
	if (out->sock && out->config)
		return top_usage_err("-s and -c exclude each other", NULL, err, errlen);
	if (out->json && !out->once)
		return top_usage_err("--json needs --once", NULL, err, errlen);
	if (argc - optind > 1)
		return top_usage_err("more than one VIP", argv[optind + 1], err, errlen);
	if (argc - optind == 1)
		out->vip = argv[optind];
	return 0;
}

void top_sample_clear(struct top_sample *s)
{
	json_decref(s->status);
	json_decref(s->vips);
	json_decref(s->backends);
	json_decref(s->counters);
	memset(s, 0, sizeof(*s));
}

/*
 * The counters whose frames are lost, besides the pipeline's drop_*: the I/O layer's (the kernel
 * or the ring lost them, or they could not be sent or given back) and the too-big packets whose
 * ICMP error was rate limited. An io_ counter whose name says drop counts too, so a new one shows.
 */
static const char *const top_drop_extra[] = {
    "icmp_rate_limited", "io_tx_errors", "io_rx_truncated", "io_no_snapshot", "io_xsk_rx_ring_full",
};

bool top_is_drop_counter(const char *name)
{
	if (strncmp(name, "drop_", 5) == 0 ||
	    (strncmp(name, "io_", 3) == 0 && strstr(name, "drop")))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(top_drop_extra); i++)
		if (strcmp(name, top_drop_extra[i]) == 0)
			return true;
	return false;
}

static const char *top_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An integer member; 0 when missing (a daemon that does not send it). */
static int64_t top_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static uint64_t top_u64(json_t *o, const char *key)
{
	int64_t v = top_int(o, key);

	return v > 0 ? (uint64_t)v : 0;
}

/* (cur - prev) / dt; NAN if there is no previous value or the counter went back. */
static double top_rate(uint64_t cur, uint64_t prev, bool have_prev, double dt)
{
	if (!have_prev || cur < prev || !(dt > 0))
		return NAN;
	return (double)(cur - prev) / dt;
}

/* The element of array arr whose key is val (and, if key2, whose key2 is val2); hint first. */
static json_t *top_find(json_t *arr, size_t hint, const char *key, const char *val,
                        const char *key2, const char *val2)
{
	size_t n = json_array_size(arr);

	for (size_t k = 0; k < n; k++) {
		json_t *e = json_array_get(arr, (hint + k) % n);
		const char *a = top_str(e, key), *b = key2 ? top_str(e, key2) : NULL;

		if (a && strcmp(a, val) == 0 && (!key2 || (b && strcmp(b, val2) == 0)))
			return e;
	}
	return NULL;
}

static bool top_vip_selected(json_t *vip, const char *only)
{
	const char *name = top_str(vip, "name"), *addr = top_str(vip, "address");

	return !only || (name && strcmp(name, only) == 0) || (addr && strcmp(addr, only) == 0);
}

/* The arrays of a sample top reads; false (err set) if one is missing. */
static bool top_sample_arrays(const struct top_sample *s, json_t **vips, json_t **backends,
                              json_t **counters, char *err, size_t errlen)
{
	*vips = json_object_get(s->vips, "vips");
	*backends = json_object_get(s->backends, "backends");
	*counters = json_object_get(s->counters, "counters");
	if (json_is_array(*vips) && json_is_array(*backends) && json_is_array(*counters) &&
	    json_is_object(s->status))
		return true;
	snprintf(err, errlen, "maglevd's answer lacks %s",
	         !json_is_array(*vips)       ? "vips"
	         : !json_is_array(*backends) ? "backends"
	         : !json_is_array(*counters) ? "counters"
	                                     : "status");
	return false;
}

static void top_backend_fill(struct top_backend_row *r, json_t *b, json_t *pb, double dt)
{
	r->address = top_str(b, "address");
	r->health = top_str(b, "health");
	r->state = top_str(b, "state");
	r->weight = top_int(b, "weight");
	r->config_weight = top_int(b, "config_weight");
	r->packets = top_u64(b, "packets");
	r->bytes = top_u64(b, "bytes");
	r->flows = top_u64(b, "flows");
	r->pps = top_rate(r->packets, top_u64(pb, "packets"), pb, dt);
	r->bps = top_rate(r->bytes, top_u64(pb, "bytes"), pb, dt) * 8;
	r->fps = top_rate(r->flows, top_u64(pb, "flows"), pb, dt);
	r->share_pct = NAN;
	if (!r->address)
		r->address = "?";
	if (!r->health)
		r->health = "?";
	if (!r->state)
		r->state = "?";
}

static void top_vip_fill(struct top_vip_row *r, json_t *vj, json_t *pv, double dt)
{
	r->name = top_str(vj, "name");
	r->address = top_str(vj, "address");
	r->protocol = top_str(vj, "protocol");
	r->port = top_int(vj, "port");
	r->n_backends = top_int(vj, "backends");
	r->up = top_int(vj, "up");
	r->packets = top_u64(vj, "packets");
	r->bytes = top_u64(vj, "bytes");
	r->flows = top_u64(vj, "flows");
	r->pps = top_rate(r->packets, top_u64(pv, "packets"), pv, dt);
	r->bps = top_rate(r->bytes, top_u64(pv, "bytes"), pv, dt) * 8;
	r->fps = top_rate(r->flows, top_u64(pv, "flows"), pv, dt);
	if (!r->name)
		r->name = "?";
	if (!r->address)
		r->address = "?";
	if (!r->protocol)
		r->protocol = "?";
}

/* Each backend's share of the packets its VIP's backends got in the interval. */
static void top_vip_shares(struct top_view *v, const struct top_vip_row *r)
{
	double sum = 0;

	for (size_t j = r->first; j < r->first + r->n; j++) {
		if (isnan(v->backends[j].pps))
			return; /* one unknown makes every share unknown */
		sum += v->backends[j].pps;
	}
	if (!(sum > 0))
		return;
	for (size_t j = r->first; j < r->first + r->n; j++)
		v->backends[j].share_pct = 100.0 * v->backends[j].pps / sum;
}

int top_view_build(const struct top_sample *prev, const struct top_sample *cur, const char *vip,
                   struct top_view *v, char *err, size_t errlen)
{
	json_t *vips, *backends, *counters, *pvips = NULL, *pbackends = NULL, *pcounters = NULL;
	json_t *e, *pe;
	size_t i, nb = 0;
	double dt = NAN;

	memset(v, 0, sizeof(*v));
	if (!top_sample_arrays(cur, &vips, &backends, &counters, err, errlen))
		return -EPROTO;
	if (prev && (!top_sample_arrays(prev, &pvips, &pbackends, &pcounters, err, errlen) ||
	             top_int(prev->status, "uptime_s") > top_int(cur->status, "uptime_s")))
		prev = NULL; /* a bad or a restarted daemon's sample: nothing to subtract */
	if (prev)
		dt = cur->t_s - prev->t_s;
	if (!(dt > 0)) {
		prev = NULL;
		dt = NAN;
		pvips = pbackends = pcounters = NULL;
	}
	v->version = top_str(cur->status, "version");
	v->mode = top_str(cur->status, "mode");
	v->uptime_s = top_int(cur->status, "uptime_s");
	v->workers = top_int(cur->status, "workers");
	v->config_generation = top_int(cur->status, "config_generation");
	v->interval_s = dt;

	v->vips = calloc(json_array_size(vips) + 1, sizeof(*v->vips));
	v->backends = calloc(json_array_size(backends) + 1, sizeof(*v->backends));
	v->drops = calloc(json_array_size(counters) + 1, sizeof(*v->drops));
	if (!v->vips || !v->backends || !v->drops) {
		top_view_free(v);
		return -ENOMEM;
	}
	json_array_foreach(vips, i, e)
	{
		struct top_vip_row *r = &v->vips[v->n_vips];
		size_t j;
		json_t *b;

		if (!top_vip_selected(e, vip))
			continue;
		top_vip_fill(
		    r, e, prev ? top_find(pvips, i, "name", top_str(e, "name"), NULL, NULL) : NULL,
		    dt);
		r->first = nb;
		json_array_foreach(backends, j, b)
		{
			const char *bv = top_str(b, "vip");

			if (!bv || strcmp(bv, r->name) != 0)
				continue;
			pe = prev ? top_find(pbackends, j, "vip", bv, "address",
			                     top_str(b, "address"))
			          : NULL;
			top_backend_fill(&v->backends[nb++], b, pe, dt);
		}
		r->n = nb - r->first;
		top_vip_shares(v, r);
		v->n_vips++;
	}
	v->n_backends = nb;
	if (vip && v->n_vips == 0) {
		snprintf(err, errlen, "no VIP '%s'", vip);
		top_view_free(v);
		return -ENOENT;
	}
	v->rx_fps = NAN;
	v->drops_ps = prev ? 0 : NAN;
	json_array_foreach(counters, i, e)
	{
		const char *name = top_str(e, "name");
		uint64_t total = top_u64(e, "total");

		if (!name)
			continue;
		pe = prev ? top_find(pcounters, i, "name", name, NULL, NULL) : NULL;
		if (strcmp(name, "rx_frames") == 0)
			v->rx_fps = top_rate(total, top_u64(pe, "total"), pe, dt);
		if (!top_is_drop_counter(name) || total == 0)
			continue;
		v->drops[v->n_drops] = (struct top_drop_row){
		    .name = name,
		    .total = total,
		    .per_s = top_rate(total, top_u64(pe, "total"), pe, dt),
		};
		/* A reason new since the previous sample counted from 0 there. */
		if (prev && !pe)
			v->drops[v->n_drops].per_s = (double)total / dt;
		v->drops_ps += v->drops[v->n_drops].per_s;
		v->n_drops++;
	}
	return 0;
}

void top_view_free(struct top_view *v)
{
	free(v->vips);
	free(v->backends);
	free(v->drops);
	memset(v, 0, sizeof(*v));
}

void top_fmt_num(double v, char *buf, size_t len)
{
	static const char suffix[] = "kMGTPE";
	int s = -1;

	if (isnan(v) || v < 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (v < 1000) {
		snprintf(buf, len, v == floor(v) || v >= 10 ? "%.0f" : "%.1f", v);
		return;
	}
	while (v >= 1000 && s + 1 < (int)sizeof(suffix) - 1) {
		v /= 1000;
		s++;
	}
	snprintf(buf, len, v < 10 ? "%.2f%c" : v < 100 ? "%.1f%c" : "%.0f%c", v, suffix[s]);
}

void top_lines_free(struct top_lines *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Appends one line; what the daemon sent cannot put control characters on the terminal. */
static int __attribute__((format(printf, 3, 4)))
top_addf(struct top_lines *l, enum top_line_kind kind, const char *fmt, ...)
{
	struct top_line *line;
	va_list ap;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : TOP_LINES_FIRST;
		struct top_line *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	line = &l->v[l->n++];
	line->kind = kind;
	va_start(ap, fmt);
	vsnprintf(line->text, sizeof(line->text), fmt, ap);
	va_end(ap);
	for (char *p = line->text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return 0;
}

/* "12m34s", "3h04m", "2d03h". */
static void top_fmt_uptime(int64_t s, char *buf, size_t len)
{
	if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600),
		         (long long)(s % 3600 / 60));
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)(s / 86400),
		         (long long)(s % 86400 / 3600));
}

/* A VIP's first cell: "web 203.0.113.10:80/tcp", "web6 [2001:db8::10]:80/tcp", port 0 "/tcp". */
static void top_vip_cell(const struct top_vip_row *r, char *buf, size_t len)
{
	bool v6 = strchr(r->address, ':') != NULL;

	if (r->port)
		snprintf(buf, len, "%s %s%s%s:%lld/%s", r->name, v6 ? "[" : "", r->address,
		         v6 ? "]" : "", (long long)r->port, r->protocol);
	else
		snprintf(buf, len, "%s %s/%s", r->name, r->address, r->protocol);
}

#define TOP_ROW_FMT "%-*.*s %-8s %-9s %7s %6s %7s %7s %7s %7s"

int top_render_note(const char *clock, const char *note, struct top_lines *out)
{
	if (top_addf(out, TOP_LINE_HEADER, "maglevctl top  %s", clock ? clock : "") < 0)
		return -ENOMEM;
	return top_addf(out, TOP_LINE_NOTE, "%s", note);
}

int top_render(const struct top_view *v, const char *clock, struct top_lines *out)
{
	char up[TOP_CELL_MAX], iv[TOP_CELL_MAX], rx[TOP_CELL_MAX], pps[TOP_CELL_MAX],
	    bps[TOP_CELL_MAX], fps[TOP_CELL_MAX], tot[TOP_CELL_MAX], cell[TOP_LINE_MAX];
	char state[TOP_CELL_MAX], weight[TOP_CELL_MAX], share[TOP_CELL_MAX];
	double all_pps = isnan(v->interval_s) ? NAN : 0, all_bps = all_pps;
	int64_t n_up = 0, n_all = 0;
	size_t w = TOP_NAME_COL_MIN;
	int ret = 0;

	for (size_t i = 0; i < v->n_vips; i++) {
		const struct top_vip_row *r = &v->vips[i];

		top_vip_cell(r, cell, sizeof(cell));
		if (strlen(cell) > w)
			w = strlen(cell);
		for (size_t j = r->first; j < r->first + r->n; j++)
			if (strlen(v->backends[j].address) + 2 > w)
				w = strlen(v->backends[j].address) + 2;
		all_pps += r->pps;
		all_bps += r->bps;
		n_up += r->up;
		n_all += r->n_backends;
	}
	if (w > TOP_NAME_COL_MAX)
		w = TOP_NAME_COL_MAX;

	top_fmt_uptime(v->uptime_s, up, sizeof(up));
	if (isnan(v->interval_s))
		snprintf(iv, sizeof(iv), "-");
	else
		snprintf(iv, sizeof(iv), "%.2fs", v->interval_s);
	ret |= top_addf(out, TOP_LINE_HEADER,
	                "maglevd %s  up %s  mode %s  workers %lld  config %lld  interval %s  %s",
	                v->version ? v->version : "?", up, v->mode ? v->mode : "?",
	                (long long)v->workers, (long long)v->config_generation, iv,
	                clock ? clock : "");
	top_fmt_num(v->rx_fps, rx, sizeof(rx));
	top_fmt_num(all_pps, pps, sizeof(pps));
	top_fmt_num(all_bps, bps, sizeof(bps));
	top_fmt_num(v->drops_ps, tot, sizeof(tot));
	ret |= top_addf(out, TOP_LINE_HEADER,
	                "frames %s/s  to backends %s pkt/s %s bit/s  drops %s/s  VIPs %zu  "
	                "backends up %lld/%lld",
	                rx, pps, bps, tot, v->n_vips, (long long)n_up, (long long)n_all);
	ret |= top_addf(out, TOP_LINE_TITLE, TOP_ROW_FMT, (int)w, (int)w, "VIP / BACKEND", "STATE",
	                "HEALTH", "WEIGHT", "SHARE", "PKT/S", "BIT/S", "FLOWS/S", "PACKETS");
	for (size_t i = 0; i < v->n_vips; i++) {
		const struct top_vip_row *r = &v->vips[i];

		top_vip_cell(r, cell, sizeof(cell));
		snprintf(state, sizeof(state), "%lld/%lld up", (long long)r->up,
		         (long long)r->n_backends);
		top_fmt_num(r->pps, pps, sizeof(pps));
		top_fmt_num(r->bps, bps, sizeof(bps));
		top_fmt_num(r->fps, fps, sizeof(fps));
		top_fmt_num((double)r->packets, tot, sizeof(tot));
		ret |= top_addf(out, TOP_LINE_VIP, TOP_ROW_FMT, (int)w, (int)w, cell, state, "", "",
		                "", pps, bps, fps, tot);
		for (size_t j = r->first; j < r->first + r->n; j++) {
			const struct top_backend_row *b = &v->backends[j];

			snprintf(cell, sizeof(cell), "  %s", b->address);
			/* A runtime weight the config does not have: "now/config". */
			if (b->weight != b->config_weight)
				snprintf(weight, sizeof(weight), "%lld/%lld", (long long)b->weight,
				         (long long)b->config_weight);
			else
				snprintf(weight, sizeof(weight), "%lld", (long long)b->weight);
			if (isnan(b->share_pct))
				snprintf(share, sizeof(share), "-");
			else
				snprintf(share, sizeof(share), "%.1f%%", b->share_pct);
			top_fmt_num(b->pps, pps, sizeof(pps));
			top_fmt_num(b->bps, bps, sizeof(bps));
			top_fmt_num(b->fps, fps, sizeof(fps));
			top_fmt_num((double)b->packets, tot, sizeof(tot));
			ret |= top_addf(out, TOP_LINE_BACKEND, TOP_ROW_FMT, (int)w, (int)w, cell,
			                b->state, b->health, weight, share, pps, bps, fps, tot);
		}
	}
	if (v->n_drops) {
		ret |=
		    top_addf(out, TOP_LINE_TITLE, "%-*s %12s %9s", (int)w, "DROPS", "TOTAL", "/S");
		for (size_t i = 0; i < v->n_drops; i++) {
			top_fmt_num(v->drops[i].per_s, pps, sizeof(pps));
			ret |=
			    top_addf(out, TOP_LINE_DROP, "%-*.*s %12llu %9s", (int)w, (int)w,
			             v->drops[i].name, (unsigned long long)v->drops[i].total, pps);
		}
	}
	return ret < 0 ? -ENOMEM : 0;
}

static json_t *top_num_json(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

json_t *top_view_json(const struct top_view *v)
{
	json_t *vips = json_array(), *drops = json_array(), *res;

	for (size_t i = 0; i < v->n_vips; i++) {
		const struct top_vip_row *r = &v->vips[i];
		json_t *bs = json_array();

		for (size_t j = r->first; j < r->first + r->n; j++) {
			const struct top_backend_row *b = &v->backends[j];

			json_array_append_new(
			    bs, json_pack(
			            "{s:s, s:s, s:s, s:I, s:I, s:o, s:I, s:I, s:I, s:o, s:o, s:o}",
			            "address", b->address, "health", b->health, "state", b->state,
			            "weight", (json_int_t)b->weight, "config_weight",
			            (json_int_t)b->config_weight, "share_pct",
			            top_num_json(b->share_pct), "packets", (json_int_t)b->packets,
			            "bytes", (json_int_t)b->bytes, "flows", (json_int_t)b->flows,
			            "packets_per_s", top_num_json(b->pps), "bits_per_s",
			            top_num_json(b->bps), "flows_per_s", top_num_json(b->fps)));
		}
		json_array_append_new(
		    vips,
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
		              "name", r->name, "address", r->address, "protocol", r->protocol,
		              "port", (json_int_t)r->port, "backends_total",
		              (json_int_t)r->n_backends, "backends_up", (json_int_t)r->up,
		              "packets", (json_int_t)r->packets, "bytes", (json_int_t)r->bytes,
		              "flows", (json_int_t)r->flows, "packets_per_s", top_num_json(r->pps),
		              "bits_per_s", top_num_json(r->bps), "flows_per_s",
		              top_num_json(r->fps), "backends", bs));
	}
	for (size_t i = 0; i < v->n_drops; i++)
		json_array_append_new(drops, json_pack("{s:s, s:I, s:o}", "name", v->drops[i].name,
		                                       "total", (json_int_t)v->drops[i].total,
		                                       "per_s", top_num_json(v->drops[i].per_s)));
	res = json_pack("{s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "version",
	                v->version ? json_string(v->version) : json_null(), "mode",
	                v->mode ? json_string(v->mode) : json_null(), "uptime_s",
	                (json_int_t)v->uptime_s, "workers", (json_int_t)v->workers,
	                "config_generation", (json_int_t)v->config_generation, "interval_s",
	                top_num_json(v->interval_s), "frames_per_s", top_num_json(v->rx_fps),
	                "drops_per_s", top_num_json(v->drops_ps), "vips", vips, "drops", drops);
	return res;
}
