/* Metrics: exposition format (HELP/TYPE once per family, escaping) and the HTTP endpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/metrics.h"
#include "helpers.h"

static void fake_collect(void *ctx, struct metrics_writer *w)
{
	atomic_uint *scrapes = ctx;
	unsigned n = atomic_fetch_add(scrapes, 1) + 1;
	const char *w0[] = {"worker", "0", NULL};
	const char *w1[] = {"worker", "1", NULL};
	const char *odd[] = {"vip", "a\"b\\c\nd", "backend", "198.18.1.11", NULL};

	metrics_family(w, "maglevd_rx_frames_total", "counter", "Frames handed\nto the pipeline");
	metrics_sample(w, "maglevd_rx_frames_total", w0, 10ull * n);
	metrics_sample(w, "maglevd_rx_frames_total", w1, 18446744073709551615ull);
	metrics_family(w, "maglevd_backend_weight", "gauge", "Weight");
	metrics_sample(w, "maglevd_backend_weight", odd, 3);
	metrics_family(w, "maglevd_config_generation", "gauge", "Generation");
	metrics_sample(w, "maglevd_config_generation", NULL, 7);
	metrics_family(w, "maglevd_last_reload_seconds", "gauge", "Reload time");
	metrics_sample_f(w, "maglevd_last_reload_seconds", NULL, 0.25);
}

/* Checks the text format: each family's HELP and TYPE once, before its samples, not interleaved. */
static void check_format(const char *text)
{
	char *copy = strdup(text), *save = NULL, *line;
	char family[128] = "", seen[16][128];
	int n_seen = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];

		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			for (int i = 0; i < n_seen; i++)
				if (strcmp(seen[i], name) == 0)
					fail_msg("HELP twice for %s", name);
			assert_true(n_seen < 16);
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
			snprintf(family, sizeof(family), "%s", name);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			assert_string_equal(name, family);
			continue;
		}
		assert_int_equal(sscanf(line, "%127[^{ ]", name), 1);
		assert_string_equal(name, family);
	}
	free(copy);
}

static void test_render(void **state)
{
	atomic_uint scrapes = 0;
	size_t len;
	char *t;

	(void)state;
	t = metrics_render(fake_collect, &scrapes, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	check_format(t);
	assert_non_null(strstr(t, "# HELP maglevd_rx_frames_total Frames handed\\nto the pipeline\n"
	                          "# TYPE maglevd_rx_frames_total counter\n"
	                          "maglevd_rx_frames_total{worker=\"0\"} 10\n"
	                          "maglevd_rx_frames_total{worker=\"1\"} 18446744073709551615\n"));
	assert_non_null(strstr(t, "maglevd_backend_weight{vip=\"a\\\"b\\\\c\\nd\","
	                          "backend=\"198.18.1.11\"} 3\n"));
	assert_non_null(strstr(t, "\nmaglevd_config_generation 7\n"));
	assert_non_null(strstr(t, "\nmaglevd_last_reload_seconds 0.25\n"));
	free(t);
}

static void test_http(void **state)
{
	struct metrics_server *s;
	atomic_uint scrapes = 0;
	char *r, *body;

	(void)state;
	assert_int_equal(metrics_start(&s, "127.0.0.1", 0, fake_collect, &scrapes), 0);
	assert_true(metrics_port(s) != 0);

	r = th_http_get(metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.0 200") ? r : strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	body = strstr(r, "\r\n\r\n");
	assert_non_null(body);
	check_format(body + 4);
	assert_non_null(strstr(body, "maglevd_rx_frames_total{worker=\"0\"} 10\n"));
	free(r);

	/* The next scrape sees the moved counter. */
	r = th_http_get(metrics_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "maglevd_rx_frames_total{worker=\"0\"} 20\n"));
	free(r);

	r = th_http_get(metrics_port(s), "GET /nope HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, " 404 "));
	free(r);
	r = th_http_get(metrics_port(s), "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	assert_non_null(strstr(r, " 405 "));
	free(r);
	assert_int_equal(atomic_load(&scrapes), 2);
	metrics_stop(s);

	assert_true(metrics_start(&s, "not-an-address", 0, fake_collect, &scrapes) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_http),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
