/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl top`'s pure part: its command line, rates and shares from two samples, the frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/util.h"
#include "maglevctl/command.h"
#include "maglevctl/top_view.h"

#define ARGS_MAX  10
#define DT_S      2.0  /* seconds between the two samples below */
#define RATE_EPS  1e-9 /* the rates are exact quotients of small integers */
#define START_T_S 100.0

/*
 * Two samples of a maglevd with VIP web (three backends: .11 active with 1000 -> 1600 packets,
 * .12 active 500 -> 800, .13 drained, no packets in the interval) and VIP web6 (one backend),
 * taken DT_S apart, and the counters of both. Packets are 100 bytes; flows 10 -> 16, 5 -> 8.
 */
static const char *const status0 = "{\"version\": \"0.1.0\", \"uptime_s\": 3700, \"mode\": "
                                   "\"afxdp\", \"workers\": 2, \"config_generation\": 3}";
static const char *const status1 = "{\"version\": \"0.1.0\", \"uptime_s\": 3702, \"mode\": "
                                   "\"afxdp\", \"workers\": 2, \"config_generation\": 3}";
static const char *const vips0 =
    "{\"vips\": ["
    "{\"name\": \"web\", \"address\": \"203.0.113.10\", \"protocol\": \"tcp\", \"port\": 80, "
    "\"backends\": 3, \"up\": 3, \"packets\": 1700, \"bytes\": 170000, \"flows\": 15},"
    "{\"name\": \"web6\", \"address\": \"2001:db8:100::10\", \"protocol\": \"tcp\", \"port\": "
    "80, \"backends\": 1, \"up\": 0, \"packets\": 0, \"bytes\": 0, \"flows\": 0}]}";
static const char *const vips1 =
    "{\"vips\": ["
    "{\"name\": \"web\", \"address\": \"203.0.113.10\", \"protocol\": \"tcp\", \"port\": 80, "
    "\"backends\": 3, \"up\": 3, \"packets\": 2600, \"bytes\": 260000, \"flows\": 24},"
    "{\"name\": \"web6\", \"address\": \"2001:db8:100::10\", \"protocol\": \"tcp\", \"port\": "
    "80, \"backends\": 1, \"up\": 0, \"packets\": 0, \"bytes\": 0, \"flows\": 0}]}";
#define BACKEND_JSON(vip, addr, w, cw, health, state, p, by, f)                                    \
	"{\"vip\": \"" vip "\", \"address\": \"" addr "\", \"weight\": " #w                        \
	", \"config_weight\": " #cw ", \"health\": \"" health "\", \"state\": \"" state            \
	"\", \"slots\": 1, \"share_pct\": 1.0, \"packets\": " #p ", \"bytes\": " #by               \
	", \"flows\": " #f "}"
static const char *const backends0 = "{\"backends\": [" BACKEND_JSON(
    "web", "198.18.1.11", 1, 1, "up", "active", 1000, 100000,
    10) "," BACKEND_JSON("web", "198.18.1.12", 1, 1, "up", "active", 500, 50000,
                         5) "," BACKEND_JSON("web", "198.18.1.13", 1, 1, "up", "active", 200, 20000,
                                             0) "," BACKEND_JSON("web6", "2001:db8:1::11", 1, 1,
                                                                 "down", "down", 0, 0, 0) "]}";
static const char *const backends1 = "{\"backends\": [" BACKEND_JSON(
    "web", "198.18.1.11", 1, 1, "up", "active", 1600, 160000,
    16) "," BACKEND_JSON("web", "198.18.1.12", 1, 1, "up", "active", 800, 80000,
                         8) "," BACKEND_JSON("web", "198.18.1.13", 0, 1, "up", "drained", 200,
                                             20000, 0) "," BACKEND_JSON("web6", "2001:db8:1::11", 1,
                                                                        1, "down", "down", 0, 0,
                                                                        0) "]}";
static const char *const counters0 =
    "{\"workers\": 2, \"counters\": ["
    "{\"name\": \"io_rx_frames\", \"total\": 5000}, {\"name\": \"rx_frames\", \"total\": 4000},"
    "{\"name\": \"drop_no_backend\", \"total\": 10}, {\"name\": \"drop_tcp_truncated\", "
    "\"total\": 0}, {\"name\": \"io_xsk_rx_dropped\", \"total\": 4}, "
    "{\"name\": \"ct_hit\", \"total\": 77}]}";
static const char *const counters1 =
    "{\"workers\": 2, \"counters\": ["
    "{\"name\": \"io_rx_frames\", \"total\": 7000}, {\"name\": \"rx_frames\", \"total\": 6000},"
    "{\"name\": \"drop_no_backend\", \"total\": 30}, {\"name\": \"drop_tcp_truncated\", "
    "\"total\": 0}, {\"name\": \"io_xsk_rx_dropped\", \"total\": 4}, "
    "{\"name\": \"ct_hit\", \"total\": 99}]}";

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad fixture JSON: %s at %d", e.text, e.position);
	return j;
}

static void sample_load(struct top_sample *s, double t, const char *st, const char *v,
                        const char *b, const char *c)
{
	s->t_s = t;
	s->status = load(st);
	s->vips = load(v);
	s->backends = load(b);
	s->counters = load(c);
}

struct two {
	struct top_sample s0, s1;
};

static int two_setup(void **state)
{
	static struct two t;

	sample_load(&t.s0, START_T_S, status0, vips0, backends0, counters0);
	sample_load(&t.s1, START_T_S + DT_S, status1, vips1, backends1, counters1);
	*state = &t;
	return 0;
}

static int two_teardown(void **state)
{
	struct two *t = *state;

	top_sample_clear(&t->s0);
	top_sample_clear(&t->s1);
	return 0;
}

static int parse(const char *const *in, struct top_args *a, char *err, size_t errlen)
{
	char *argv[ARGS_MAX + 1];
	int n = 0;

	argv[n++] = "top";
	while (in[n - 1] && n < ARGS_MAX)
		argv[n] = (char *)in[n - 1], n++;
	argv[n] = NULL;
	return top_parse(n, argv, a, err, errlen);
}

static void test_parse(void **state)
{
	static const char *const none[] = {NULL};
	static const char *const full[] = {"-i",     "0.5", "web", "--once",
	                                   "--json", "-s",  "/s",  NULL};
	static const char *const longer[] = {"--interval=60", "-c", "/m.yaml", NULL};
	static const struct {
		const char *in[ARGS_MAX];
		const char *err;
	} bad[] = {
	    {{"-i", "0.05"}, "interval must be 0.1..60 seconds, not '0.05'"},
	    {{"-i", "61"}, "not '61'"},
	    {{"-i", "1s"}, "not '1s'"},
	    {{"-i", "nan"}, "not 'nan'"},
	    {{"-i", ""}, "not ''"},
	    {{"--json"}, "--json needs --once"},
	    {{"web", "dns"}, "more than one VIP 'dns'"},
	    {{"-s", "/s", "-c", "/m"}, "-s and -c exclude each other"},
	    {{"--bogus"}, "bad option '--bogus'"},
	    {{"-i"}, "bad option '-i'"},
	};
	char err[256];
	struct top_args a;

	(void)state;
	assert_int_equal(parse(none, &a, err, sizeof(err)), 0);
	assert_true(a.interval_s == TOP_INTERVAL_DEFAULT_S);
	assert_false(a.once || a.json || a.help);
	assert_null(a.vip);
	assert_int_equal(parse(full, &a, err, sizeof(err)), 0);
	assert_true(a.interval_s == 0.5);
	assert_true(a.once && a.json);
	assert_string_equal(a.vip, "web");
	assert_string_equal(a.sock, "/s");
	assert_int_equal(parse(longer, &a, err, sizeof(err)), 0);
	assert_true(a.interval_s == TOP_INTERVAL_MAX_S);
	assert_string_equal(a.config, "/m.yaml");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i].in, &a, err, sizeof(err)), COMMAND_USAGE);
		if (!strstr(err, bad[i].err))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].err);
		assert_non_null(strstr(err, "usage: maglevctl top") ?: strstr(err, "interval"));
	}
}

/* The help names the bounds the parser applies. */
static void test_usage(void **state)
{
	char buf[2048], want[64];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	assert_non_null(f);
	top_usage(f);
	fclose(f);
	snprintf(want, sizeof(want), "(default %.0f,", TOP_INTERVAL_DEFAULT_S);
	assert_non_null(strstr(buf, want));
	snprintf(want, sizeof(want), "%.1f..%.0f)", TOP_INTERVAL_MIN_S, TOP_INTERVAL_MAX_S);
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, "\n  top [VIP]"));
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		assert_true(strlen(line) <= 80);
}

static void test_fmt_num(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {NAN, "-"},       {-1, "-"},         {0, "0"},        {0.25, "0.2"},
	    {7.5, "7.5"},     {7, "7"},          {12.4, "12"},    {950, "950"},
	    {999.4, "999"},   {1000, "1.00k"},   {1234, "1.23k"}, {45600, "45.6k"},
	    {456000, "456k"}, {45.6e6, "45.6M"}, {789e9, "789G"}, {1.234e12, "1.23T"},
	    {5e21, "5000E"},
	};
	char buf[TOP_LINE_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		top_fmt_num(cases[i].v, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("%g: '%s', want '%s'", cases[i].v, buf, cases[i].want);
	}
}

static void test_drop_counters(void **state)
{
	static const char *const drops[] = {
	    "drop_no_backend",  "drop_ipv4_bad_len",    "io_xsk_rx_dropped", "io_rx_kernel_drops",
	    "io_xdp_drop_icmp", "io_xdp_drop_syn_shed", "io_pass_dropped",   "icmp_rate_limited",
	    "io_tx_errors",     "io_rx_truncated",      "io_no_snapshot",    "io_xsk_rx_ring_full",
	};
	static const char *const others[] = {
	    "rx_frames",
	    "tx_gre_ipv4",
	    "ct_hit",
	    "ct_evicted",
	    "io_rx_frames",
	    "pass_not_vip",
	    "io_xdp_slow_source",
	    "health_probes_failed",
	    "dropx",
	    "",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(drops); i++)
		if (!top_is_drop_counter(drops[i]))
			fail_msg("%s is a drop counter", drops[i]);
	for (size_t i = 0; i < ARRAY_SIZE(others); i++)
		if (top_is_drop_counter(others[i]))
			fail_msg("%s is no drop counter", others[i]);
}

static void near(double got, double want)
{
	if (isnan(want) ? !isnan(got) : !(fabs(got - want) < RATE_EPS))
		fail_msg("got %.9g, want %.9g", got, want);
}

static void test_rates(void **state)
{
	struct two *t = *state;
	char err[128] = "";
	struct top_view v;
	const struct top_backend_row *b;

	assert_int_equal(top_view_build(&t->s0, &t->s1, NULL, &v, err, sizeof(err)), 0);
	assert_string_equal(v.version, "0.1.0");
	assert_string_equal(v.mode, "afxdp");
	assert_int_equal(v.uptime_s, 3702);
	assert_int_equal(v.workers, 2);
	near(v.interval_s, DT_S);
	near(v.rx_fps, 2000 / DT_S); /* the pipeline's rx_frames, not io_rx_frames */
	assert_int_equal(v.n_vips, 2);
	assert_int_equal(v.n_backends, 4);
	assert_string_equal(v.vips[0].name, "web");
	assert_int_equal(v.vips[0].first, 0);
	assert_int_equal(v.vips[0].n, 3);
	near(v.vips[0].pps, 900 / DT_S);
	near(v.vips[0].bps, 90000 * 8 / DT_S);
	near(v.vips[0].fps, 9 / DT_S);
	b = &v.backends[0];
	assert_string_equal(b->address, "198.18.1.11");
	near(b->pps, 600 / DT_S);
	near(b->bps, 60000 * 8 / DT_S);
	near(b->fps, 6 / DT_S);
	near(b->share_pct, 100.0 * 600 / 900);
	near(v.backends[1].share_pct, 100.0 * 300 / 900);
	b = &v.backends[2];
	assert_string_equal(b->state, "drained");
	assert_int_equal(b->weight, 0);
	assert_int_equal(b->config_weight, 1);
	near(b->pps, 0);
	near(b->share_pct, 0);
	/* web6 had no packets: its rates are 0, its share unknown. */
	assert_int_equal(v.vips[1].first, 3);
	assert_int_equal(v.vips[1].n, 1);
	near(v.vips[1].pps, 0);
	near(v.backends[3].pps, 0);
	assert_true(isnan(v.backends[3].share_pct));
	/* Drops: the non-zero ones, with rates; the zero one and the non-drops left out. */
	assert_int_equal(v.n_drops, 2);
	assert_string_equal(v.drops[0].name, "drop_no_backend");
	assert_int_equal(v.drops[0].total, 30);
	near(v.drops[0].per_s, 20 / DT_S);
	assert_string_equal(v.drops[1].name, "io_xsk_rx_dropped");
	near(v.drops[1].per_s, 0);
	near(v.drops_ps, 20 / DT_S);
	top_view_free(&v);
}

/* Without a previous sample, or with one that cannot be subtracted, every rate is unknown. */
static void test_no_rates(void **state)
{
	struct two *t = *state;
	struct top_sample restarted = t->s1;
	char err[128] = "";
	struct top_view v;

	assert_int_equal(top_view_build(NULL, &t->s0, NULL, &v, err, sizeof(err)), 0);
	assert_true(isnan(v.interval_s) && isnan(v.rx_fps) && isnan(v.drops_ps));
	assert_true(isnan(v.vips[0].pps) && isnan(v.vips[0].bps) && isnan(v.vips[0].fps));
	for (size_t j = 0; j < v.n_backends; j++)
		assert_true(isnan(v.backends[j].pps) && isnan(v.backends[j].share_pct));
	assert_int_equal(v.backends[0].packets, 1000);
	assert_int_equal(v.n_drops, 2);
	assert_true(isnan(v.drops[0].per_s));
	top_view_free(&v);

	/* maglevd restarted between the samples: its uptime went back. */
	restarted.status = load(status0);
	json_object_set_new(restarted.status, "uptime_s", json_integer(5));
	assert_int_equal(top_view_build(&t->s0, &restarted, NULL, &v, err, sizeof(err)), 0);
	assert_true(isnan(v.interval_s) && isnan(v.vips[0].pps));
	top_view_free(&v);
	json_decref(restarted.status);

	/* The same sample twice (no time between): no rates, no division by zero. */
	assert_int_equal(top_view_build(&t->s1, &t->s1, NULL, &v, err, sizeof(err)), 0);
	assert_true(isnan(v.interval_s) && isnan(v.backends[0].pps));
	top_view_free(&v);
}

/* A counter that went back, or a backend new in the second sample: that row's rates unknown. */
static void test_row_rates(void **state)
{
	struct two *t = *state;
	struct top_sample s = t->s1;
	char err[128] = "";
	struct top_view v;
	json_t *arr;

	s.backends = load(backends1);
	arr = json_object_get(s.backends, "backends");
	json_object_set_new(json_array_get(arr, 1), "packets", json_integer(100));
	json_object_set_new(json_array_get(arr, 3), "address", json_string("2001:db8:1::99"));
	/* Reordered: rows are matched by VIP and address, not by position. */
	json_array_insert(arr, 0, json_array_get(arr, 2));
	json_array_remove(arr, 3);
	assert_int_equal(top_view_build(&t->s0, &s, NULL, &v, err, sizeof(err)), 0);
	assert_string_equal(v.backends[0].address, "198.18.1.13");
	assert_string_equal(v.backends[1].address, "198.18.1.11");
	near(v.backends[1].pps, 600 / DT_S);
	assert_string_equal(v.backends[2].address, "198.18.1.12");
	assert_true(isnan(v.backends[2].pps));
	near(v.backends[2].fps, 3 / DT_S);           /* its flows did not go back */
	assert_true(isnan(v.backends[1].share_pct)); /* a VIP with an unknown row has no shares */
	assert_string_equal(v.backends[3].address, "2001:db8:1::99");
	assert_true(isnan(v.backends[3].pps));
	top_view_free(&v);
	json_decref(s.backends);
}

static void test_vip_filter(void **state)
{
	struct two *t = *state;
	char err[128] = "";
	struct top_view v;

	assert_int_equal(top_view_build(&t->s0, &t->s1, "web6", &v, err, sizeof(err)), 0);
	assert_int_equal(v.n_vips, 1);
	assert_string_equal(v.vips[0].name, "web6");
	assert_int_equal(v.n_backends, 1);
	assert_int_equal(v.vips[0].first, 0);
	top_view_free(&v);
	assert_int_equal(top_view_build(&t->s0, &t->s1, "203.0.113.10", &v, err, sizeof(err)), 0);
	assert_int_equal(v.n_vips, 1);
	assert_string_equal(v.vips[0].name, "web");
	assert_int_equal(v.n_backends, 3);
	near(v.backends[0].share_pct, 100.0 * 600 / 900);
	top_view_free(&v);
	assert_int_equal(top_view_build(&t->s0, &t->s1, "nope", &v, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "no VIP 'nope'");
	assert_null(v.vips);
}

static void test_bad_answer(void **state)
{
	struct two *t = *state;
	struct top_sample s = t->s1;
	char err[128] = "";
	struct top_view v;

	s.counters = load("{\"workers\": 2}");
	assert_int_equal(top_view_build(&t->s0, &s, NULL, &v, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "maglevd's answer lacks counters");
	json_decref(s.counters);
	/* A bad previous sample only costs the rates. */
	s = t->s0;
	s.vips = load("{}");
	assert_int_equal(top_view_build(&s, &t->s1, NULL, &v, err, sizeof(err)), 0);
	assert_true(isnan(v.vips[0].pps));
	top_view_free(&v);
	json_decref(s.vips);
}

/* Index of the first line containing all of the words (NULL-terminated), or -1. */
static int line_with(const struct top_lines *l, const char *const *words)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t k = 0;

		while (words[k] && strstr(l->v[i].text, words[k]))
			k++;
		if (!words[k])
			return (int)i;
	}
	return -1;
}

#define HAS(l, ...) line_with(l, (const char *const[]){__VA_ARGS__, NULL})

/* The columns of a line: its whitespace-separated words into w[0..n). */
static size_t words_of(const char *text, char w[][TOP_LINE_MAX], size_t max)
{
	char buf[TOP_LINE_MAX];
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", text);
	for (char *p = strtok(buf, " "); p && n < max; p = strtok(NULL, " "))
		snprintf(w[n++], TOP_LINE_MAX, "%s", p);
	return n;
}

static void test_render(void **state)
{
	struct two *t = *state;
	struct top_lines l = {0};
	char err[128] = "", w[16][TOP_LINE_MAX];
	struct top_view v;
	size_t title_len;
	int i;

	assert_int_equal(top_view_build(&t->s0, &t->s1, NULL, &v, err, sizeof(err)), 0);
	assert_int_equal(top_render(&v, "12:34:56", &l), 0);
	top_view_free(&v);
	for (size_t k = 0; k < l.n; k++)
		print_message("%s\n", l.v[k].text);
	assert_int_equal(l.v[0].kind, TOP_LINE_HEADER);
	assert_int_equal(l.v[1].kind, TOP_LINE_HEADER);
	assert_non_null(strstr(l.v[0].text, "maglevd 0.1.0  up 1h01m  mode afxdp  workers 2  "
	                                    "config 3  interval 2.00s  12:34:56"));
	assert_non_null(strstr(l.v[1].text, "frames 1.00k/s  to backends 450 pkt/s 360k bit/s  "
	                                    "drops 10/s  VIPs 2  backends up 3/4"));
	assert_int_equal(l.v[TOP_HEADER_LINES].kind, TOP_LINE_TITLE);
	title_len = strlen(l.v[TOP_HEADER_LINES].text);
	assert_int_equal(words_of(l.v[TOP_HEADER_LINES].text, w, 16), 11);
	assert_string_equal(w[0], "VIP");
	assert_string_equal(w[3], "STATE");
	assert_string_equal(w[10], "PACKETS");

	i = HAS(&l, "web 203.0.113.10:80/tcp");
	assert_int_equal(i, TOP_HEADER_LINES + 1);
	assert_int_equal(l.v[i].kind, TOP_LINE_VIP);
	assert_int_equal(strlen(l.v[i].text), title_len); /* the columns line up */
	assert_int_equal(words_of(l.v[i].text, w, 16), 8);
	assert_string_equal(w[2], "3/3");
	assert_string_equal(w[4], "450");   /* pkt/s */
	assert_string_equal(w[5], "360k");  /* bit/s */
	assert_string_equal(w[6], "4.5");   /* new flows/s */
	assert_string_equal(w[7], "2.60k"); /* packets */

	i = HAS(&l, "198.18.1.11 ");
	assert_int_equal(l.v[i].kind, TOP_LINE_BACKEND);
	assert_int_equal(strlen(l.v[i].text), title_len);
	assert_int_equal(words_of(l.v[i].text, w, 16), 9);
	assert_string_equal(w[1], "active");
	assert_string_equal(w[2], "up");
	assert_string_equal(w[3], "1");
	assert_string_equal(w[4], "66.7%");
	assert_string_equal(w[5], "300");
	assert_string_equal(w[6], "240k");
	assert_string_equal(w[7], "3"); /* whole numbers without a fraction */
	assert_string_equal(w[8], "1.60k");
	i = HAS(&l, "198.18.1.13 ");
	assert_int_equal(words_of(l.v[i].text, w, 16), 9);
	assert_string_equal(w[1], "drained");
	assert_string_equal(w[3], "0/1"); /* runtime weight / the config's */
	assert_string_equal(w[4], "0.0%");
	assert_string_equal(w[5], "0");
	assert_true(HAS(&l, "web6 [2001:db8:100::10]:80/tcp", "0/1 up") > i);
	i = HAS(&l, "2001:db8:1::11 ");
	assert_int_equal(words_of(l.v[i].text, w, 16), 9);
	assert_string_equal(w[1], "down");
	assert_string_equal(w[4], "-"); /* no packets for the VIP: no share */

	i = HAS(&l, "DROPS", "TOTAL", "/S");
	assert_true(i > 0);
	assert_int_equal(l.v[i].kind, TOP_LINE_TITLE);
	assert_int_equal(words_of(l.v[i + 1].text, w, 16), 3);
	assert_string_equal(w[0], "drop_no_backend");
	assert_string_equal(w[1], "30");
	assert_string_equal(w[2], "10");
	assert_int_equal(l.v[i + 1].kind, TOP_LINE_DROP);
	assert_int_equal(HAS(&l, "io_xsk_rx_dropped", " 4 ", " 0"), i + 2);
	assert_int_equal(HAS(&l, "drop_tcp_truncated"), -1);
	assert_int_equal(HAS(&l, "ct_hit"), -1);
	assert_int_equal(l.n, (size_t)i + 3);
	top_lines_free(&l);

	/* The first frame: totals, and "-" for every rate and share. */
	assert_int_equal(top_view_build(NULL, &t->s0, NULL, &v, err, sizeof(err)), 0);
	assert_int_equal(top_render(&v, "t", &l), 0);
	top_view_free(&v);
	assert_non_null(strstr(l.v[0].text, "interval -  t"));
	assert_non_null(strstr(l.v[1].text, "frames -/s  to backends - pkt/s - bit/s  drops -/s"));
	i = HAS(&l, "198.18.1.11 ");
	assert_int_equal(words_of(l.v[i].text, w, 16), 9);
	assert_string_equal(w[4], "-");
	assert_string_equal(w[5], "-");
	assert_string_equal(w[8], "1.00k");
	top_lines_free(&l);
}

/* Long or hostile names: cut to the column, control characters shown as '?'. */
static void test_render_names(void **state)
{
	struct two *t = *state;
	struct top_sample s = t->s1;
	struct top_lines l = {0};
	char err[128] = "", name[TOP_NAME_COL_MAX * 2];
	struct top_view v;
	json_t *b;
	size_t i;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	s.vips = load(vips1);
	s.backends = load(backends1);
	json_object_set_new(json_array_get(json_object_get(s.vips, "vips"), 0), "name",
	                    json_string(name));
	json_array_foreach(json_object_get(s.backends, "backends"), i, b)
	{
		if (i < 3)
			json_object_set_new(b, "vip", json_string(name));
	}
	json_object_set_new(json_array_get(json_object_get(s.vips, "vips"), 1), "name",
	                    json_string("we\x1b[2Jb6"));
	json_object_set_new(json_array_get(json_object_get(s.backends, "backends"), 3), "vip",
	                    json_string("we\x1b[2Jb6"));
	assert_int_equal(top_view_build(&t->s0, &s, NULL, &v, err, sizeof(err)), 0);
	assert_int_equal(top_render(&v, "t", &l), 0);
	top_view_free(&v);
	for (i = 0; i < l.n; i++) {
		for (const char *p = l.v[i].text; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
		assert_true(strlen(l.v[i].text) < TOP_LINE_MAX - 1);
	}
	i = (size_t)HAS(&l, "VIP / BACKEND");
	assert_int_equal(strlen(l.v[i].text), strlen(l.v[i + 1].text));
	assert_int_equal(strncmp(l.v[i + 1].text, name, TOP_NAME_COL_MAX), 0);
	assert_int_equal(l.v[i + 1].text[TOP_NAME_COL_MAX], ' ');
	assert_true(HAS(&l, "we?[2Jb6 [2001:db8:100::10]:80/tcp") > 0);
	top_lines_free(&l);
	json_decref(s.vips);
	json_decref(s.backends);

	assert_int_equal(top_render_note("t", "no VIP 'x'", &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[1].kind, TOP_LINE_NOTE);
	assert_string_equal(l.v[1].text, "no VIP 'x'");
	top_lines_free(&l);
}

static void test_json(void **state)
{
	struct two *t = *state;
	char err[128] = "";
	struct top_view v;
	json_t *j, *b;

	assert_int_equal(top_view_build(&t->s0, &t->s1, NULL, &v, err, sizeof(err)), 0);
	j = top_view_json(&v);
	top_view_free(&v);
	assert_non_null(j);
	near(json_real_value(json_object_get(j, "interval_s")), DT_S);
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "afxdp");
	b = json_array_get(
	    json_object_get(json_array_get(json_object_get(j, "vips"), 0), "backends"), 2);
	assert_string_equal(json_string_value(json_object_get(b, "state")), "drained");
	near(json_real_value(json_object_get(b, "share_pct")), 0);
	near(json_real_value(
	         json_object_get(json_array_get(json_object_get(j, "vips"), 0), "packets_per_s")),
	     900 / DT_S);
	b = json_array_get(
	    json_object_get(json_array_get(json_object_get(j, "vips"), 1), "backends"), 0);
	assert_true(json_is_null(json_object_get(b, "share_pct")));
	assert_int_equal(json_array_size(json_object_get(j, "drops")), 2);
	json_decref(j);

	assert_int_equal(top_view_build(NULL, &t->s1, NULL, &v, err, sizeof(err)), 0);
	j = top_view_json(&v);
	top_view_free(&v);
	assert_true(json_is_null(json_object_get(j, "interval_s")));
	b = json_array_get(
	    json_object_get(json_array_get(json_object_get(j, "vips"), 0), "backends"), 0);
	assert_true(json_is_null(json_object_get(b, "packets_per_s")));
	assert_int_equal(json_integer_value(json_object_get(b, "packets")), 1600);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),        cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_fmt_num),      cmocka_unit_test(test_drop_counters),
	    cmocka_unit_test(test_rates),        cmocka_unit_test(test_no_rates),
	    cmocka_unit_test(test_row_rates),    cmocka_unit_test(test_vip_filter),
	    cmocka_unit_test(test_bad_answer),   cmocka_unit_test(test_render),
	    cmocka_unit_test(test_render_names), cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, two_setup, two_teardown);
}
