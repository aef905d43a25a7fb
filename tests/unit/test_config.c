/* SPDX-License-Identifier: GPL-2.0-only */
/* Unit tests of the YAML config reader (round trip, defaults, errors with lines) and lookups. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/util.h"
#include "helpers.h"

#include "control/config_yaml.h"

#define ERR_LEN 512

static struct config *parse_ok(const char *text)
{
	char err[ERR_LEN] = "";
	struct config *c = NULL;
	int r = config_parse(text, strlen(text), "t.yaml", &c, err, sizeof(err));

	if (r != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(r, 0);
	assert_non_null(c);
	return c;
}

static void addr_is(const struct lb_addr *a, const char *want)
{
	char buf[LB_ADDR_STRLEN];

	assert_string_equal(lb_addr_str(a, buf, sizeof(buf)), want);
}

static const char full_yaml[] =
    "cluster:\n"                                                   /* 1 */
    "  hash_seed: 0xdeadbeefcafef00d\n"                            /* 2 */
    "  table_size: 251\n"                                          /* 3 */
    "dataplane:\n"                                                 /* 4 */
    "  mode: afpacket\n"                                           /* 5 */
    "  interface: veth0\n"                                         /* 6 */
    "  workers: 4\n"                                               /* 7 */
    "  source_ipv4: 198.18.0.2\n"                                  /* 8 */
    "  source_ipv6: 2001:db8::2\n"                                 /* 9 */
    "  ttl: 32\n"                                                  /* 10 */
    "  mtu: 9000\n"                                                /* 11 */
    "  nexthop_mac: 02:00:0a:0B:ff:01\n"                           /* 12 */
    "  icmp_rate: 250\n"                                           /* 13 */
    "conntrack:\n"                                                 /* 14 */
    "  entries: 4096\n"                                            /* 15 */
    "  tcp_timeout: 2h\n"                                          /* 16 */
    "  tcp_fin_timeout: 15\n"                                      /* 17 */
    "  udp_timeout: 3m\n"                                          /* 18 */
    "  icmp_timeout: 2000ms\n"                                     /* 19 */
    "control:\n"                                                   /* 20 */
    "  socket: /tmp/m.sock\n"                                      /* 21 */
    "  metrics: { enabled: false, address: '::1', port: 9999 }\n"  /* 22 */
    "vips:\n"                                                      /* 23 */
    "  - name: web\n"                                              /* 24 */
    "    address: 203.0.113.10\n"                                  /* 25 */
    "    protocol: tcp\n"                                          /* 26 */
    "    port: 80\n"                                               /* 27 */
    "    table_size: 65537\n"                                      /* 28 */
    "    health:\n"                                                /* 29 */
    "      type: http\n"                                           /* 30 */
    "      port: 8081\n"                                           /* 31 */
    "      path: /healthz\n"                                       /* 32 */
    "      expect_status: 204\n"                                   /* 33 */
    "      interval: 2s\n"                                         /* 34 */
    "      timeout: 750ms\n"                                       /* 35 */
    "      rise: 4\n"                                              /* 36 */
    "      fall: 5\n"                                              /* 37 */
    "    backends:\n"                                              /* 38 */
    "      - { address: 198.18.1.11, weight: 0 }\n"                /* 39 */
    "      - address: 198.18.1.12\n"                               /* 40 */
    "        weight: 65535\n"                                      /* 41 */
    "        health: { type: tcp, port: 8080, through: tunnel }\n" /* 42 */
    "      - address: 2001:db8:1::13\n"                            /* 43 */
    "  - name: dns.v6_1-a\n"                                       /* 44 */
    "    address: 2001:db8:100::53\n"                              /* 45 */
    "    protocol: udp\n"                                          /* 46 */
    "    port: 0\n"                                                /* 47 */
    "    backends:\n"                                              /* 48 */
    "      - address: 2001:db8:1::1\n"                             /* 49 */
    "        weight: 7\n";                                         /* 50 */

static void test_full_round_trip(void **state)
{
	struct config *c = parse_ok(full_yaml);
	const struct config_vip *v;
	const struct config_backend *b;
	static const uint8_t mac[6] = {0x02, 0x00, 0x0a, 0x0b, 0xff, 0x01};

	assert_string_equal(c->path, "t.yaml");
	assert_true(c->hash_seed == 0xdeadbeefcafef00dull);
	assert_int_equal(c->table_size, 251);

	assert_int_equal(c->dataplane.mode, DP_MODE_AFPACKET);
	assert_string_equal(c->dataplane.interface, "veth0");
	assert_int_equal(c->dataplane.workers, 4);
	addr_is(&c->dataplane.source_ipv4, "198.18.0.2");
	assert_int_equal(c->dataplane.source_ipv4.family, AF_INET);
	addr_is(&c->dataplane.source_ipv6, "2001:db8::2");
	assert_int_equal(c->dataplane.source_ipv6.family, AF_INET6);
	assert_int_equal(c->dataplane.ttl, 32);
	assert_int_equal(c->dataplane.mtu, 9000);
	assert_true(c->dataplane.has_nexthop_mac);
	assert_memory_equal(c->dataplane.nexthop_mac, mac, 6);
	assert_int_equal(c->dataplane.icmp_rate, 250);
	assert_int_equal(c->dataplane.line, 4);

	assert_int_equal(c->conntrack.entries, 4096);
	assert_int_equal(c->conntrack.tcp_timeout, 7200);
	assert_int_equal(c->conntrack.tcp_fin_timeout, 15);
	assert_int_equal(c->conntrack.udp_timeout, 180);
	assert_int_equal(c->conntrack.icmp_timeout, 2);

	assert_string_equal(c->control.socket, "/tmp/m.sock");
	assert_false(c->control.metrics_enabled);
	assert_string_equal(c->control.metrics_address, "::1");
	assert_int_equal(c->control.metrics_port, 9999);

	assert_int_equal(c->n_vips, 2);
	v = &c->vips[0];
	assert_string_equal(v->name, "web");
	addr_is(&v->addr, "203.0.113.10");
	assert_int_equal(v->proto, IPPROTO_TCP);
	assert_int_equal(v->port, 80);
	assert_int_equal(v->table_size, 65537);
	assert_int_equal(v->line, 24);
	assert_int_equal(v->health.type, HC_HTTP);
	assert_int_equal(v->health.port, 8081);
	assert_string_equal(v->health.path, "/healthz");
	assert_int_equal(v->health.expect_status, 204);
	assert_int_equal(v->health.interval_ms, 2000);
	assert_int_equal(v->health.timeout_ms, 750);
	assert_int_equal(v->health.rise, 4);
	assert_int_equal(v->health.fall, 5);
	assert_false(v->health.tunnel);
	assert_int_equal(v->n_backends, 3);

	b = &v->backends[0];
	addr_is(&b->addr, "198.18.1.11");
	assert_int_equal(b->weight, 0);
	assert_false(b->has_health);
	assert_int_equal(b->line, 39);

	b = &v->backends[1];
	addr_is(&b->addr, "198.18.1.12");
	assert_int_equal(b->weight, 65535);
	assert_int_equal(b->line, 40);
	assert_true(b->has_health);
	assert_true(b->health.tunnel);
	assert_int_equal(b->health.type, HC_TCP);
	assert_int_equal(b->health.port, 8080);
	/* The rest is inherited from the VIP's check. */
	assert_int_equal(b->health.interval_ms, 2000);
	assert_int_equal(b->health.timeout_ms, 750);
	assert_int_equal(b->health.rise, 4);
	assert_int_equal(b->health.fall, 5);

	b = &v->backends[2];
	addr_is(&b->addr, "2001:db8:1::13");
	assert_int_equal(b->addr.family, AF_INET6);
	assert_int_equal(b->weight, 1);

	v = &c->vips[1];
	assert_string_equal(v->name, "dns.v6_1-a");
	addr_is(&v->addr, "2001:db8:100::53");
	assert_int_equal(v->addr.family, AF_INET6);
	assert_int_equal(v->proto, IPPROTO_UDP);
	assert_int_equal(v->port, 0);
	assert_int_equal(v->table_size, 251); /* the cluster's */
	assert_int_equal(v->health.type, HC_NONE);
	assert_int_equal(v->n_backends, 1);
	assert_int_equal(v->backends[0].weight, 7);
	assert_int_equal(v->backends[0].line, 49);

	config_free(c);
}

/* config_vip_find by name, config_backend_find by address (a NULL VIP finds nothing). */
static void test_find(void **state)
{
	struct config *c = parse_ok(full_yaml);
	const struct config_vip *web = config_vip_find(c, "web");
	struct lb_addr a;

	(void)state;
	assert_ptr_equal(web, &c->vips[0]);
	assert_ptr_equal(config_vip_find(c, "dns.v6_1-a"), &c->vips[1]);
	assert_null(config_vip_find(c, "we"));
	assert_null(config_vip_find(c, "203.0.113.10"));
	assert_int_equal(lb_addr_parse("198.18.1.12", &a), 0);
	assert_ptr_equal(config_backend_find(web, &a), &web->backends[1]);
	assert_null(config_backend_find(&c->vips[1], &a));
	assert_null(config_backend_find(NULL, &a));
	assert_int_equal(lb_addr_parse("2001:db8:1::13", &a), 0);
	assert_ptr_equal(config_backend_find(web, &a), &web->backends[2]);
	config_free(c);
}

static void test_defaults(void **state)
{
	struct config d;
	struct config *c = parse_ok("vips:\n"
	                            "  - { name: a, address: 203.0.113.1, protocol: udp,\n"
	                            "      port: 53,\n"
	                            "      backends: [ { address: 198.18.1.1 } ] }\n");

	config_init(&d);
	assert_true(c->hash_seed == CONFIG_HASH_SEED_DEFAULT);
	assert_int_equal(c->table_size, 65537);
	assert_memory_equal(&c->dataplane, &d.dataplane, sizeof(d.dataplane));
	assert_memory_equal(&c->conntrack, &d.conntrack, sizeof(d.conntrack));
	assert_memory_equal(&c->control, &d.control, sizeof(d.control));
	assert_memory_equal(&c->announce, &d.announce, sizeof(d.announce));
	assert_false(c->announce.enabled);
	assert_int_equal(c->dataplane.mode, DP_MODE_AFXDP);
	assert_int_equal(c->dataplane.workers, 1);
	assert_int_equal(c->dataplane.ttl, 64);
	assert_int_equal(c->dataplane.mtu, 1500);
	assert_false(c->dataplane.has_nexthop_mac);
	assert_int_equal(c->dataplane.source_ipv4.family, 0);
	assert_int_equal(c->conntrack.entries, 1u << 20);
	assert_int_equal(c->conntrack.tcp_timeout, 300);
	assert_int_equal(c->conntrack.tcp_syn_timeout, 5);
	assert_int_equal(c->conntrack.max_inserts_per_second, 100000);
	assert_string_equal(c->control.socket, "/run/maglevd/maglevd.sock");
	assert_true(c->control.metrics_enabled);
	assert_string_equal(c->control.metrics_address, "127.0.0.1");
	assert_int_equal(c->control.metrics_port, 9180);
	assert_string_equal(c->control.state_dir, "/var/lib/maglevd");
	assert_int_equal(c->n_vips, 1);
	assert_int_equal(c->vips[0].table_size, 65537);
	assert_int_equal(c->vips[0].health.type, HC_NONE);
	assert_int_equal(c->vips[0].backends[0].weight, 1);
	config_free(c);

	/* Empty sections are all defaults; no VIPs only when the file says so. */
	c = parse_ok("vips: []\n");
	assert_int_equal(c->n_vips, 0);
	assert_int_equal(c->table_size, 65537);
	config_free(c);
	c = parse_ok("cluster:\ndataplane:\nconntrack: {}\ncontrol:\nvips: []\n");
	assert_int_equal(c->n_vips, 0);
	assert_int_equal(c->dataplane.workers, 1);
	assert_int_equal(c->dataplane.line, 2);
	config_free(c);
}

static void test_announce(void **state)
{
	struct config *c = parse_ok("vips: []\n"                         /* 1 */
	                            "announce:\n"                        /* 2 */
	                            "  enabled: true\n"                  /* 3 */
	                            "  table: 4000000\n"                 /* 4 */
	                            "  protocol: 201\n"                  /* 5 */
	                            "  withdraw_when_no_backends: off\n" /* 6 */
	                            "  withdraw_delay: 1500ms\n"         /* 7 */
	                            "  interface: lbvips0\n");           /* 8 */

	assert_true(c->announce.enabled);
	assert_int_equal(c->announce.table, 4000000);
	assert_int_equal(c->announce.protocol, 201);
	assert_false(c->announce.withdraw_when_no_backends);
	assert_int_equal(c->announce.withdraw_delay_ms, 1500);
	assert_string_equal(c->announce.interface, "lbvips0");
	assert_int_equal(c->announce.line, 2);
	config_free(c);

	/* Defaults: off, table 100, protocol 250, withdraw on, 1 s, maglevd-vips. */
	c = parse_ok("vips: []\nannounce: { enabled: yes }\n");
	assert_true(c->announce.enabled);
	assert_int_equal(c->announce.table, CONFIG_ANNOUNCE_TABLE_DEFAULT);
	assert_int_equal(c->announce.table, 100);
	assert_int_equal(c->announce.protocol, 250);
	assert_true(c->announce.withdraw_when_no_backends);
	assert_int_equal(c->announce.withdraw_delay_ms, 1000);
	assert_string_equal(c->announce.interface, "maglevd-vips");
	config_free(c);
	c = parse_ok("vips: []\nannounce:\n");
	assert_false(c->announce.enabled);
	assert_int_equal(c->announce.protocol, 250);
	config_free(c);
	c = parse_ok("vips: []\nannounce: { withdraw_delay: 0, table: 252, protocol: 5 }\n");
	assert_int_equal(c->announce.withdraw_delay_ms, 0);
	assert_int_equal(c->announce.table, 252);
	assert_int_equal(c->announce.protocol, 5);
	config_free(c);
}

static void test_health_defaults(void **state)
{
	struct config *c = parse_ok("vips:\n"
	                            "  - name: a\n"
	                            "    address: 203.0.113.1\n"
	                            "    protocol: tcp\n"
	                            "    port: 443\n"
	                            "    health: {}\n"
	                            "    backends:\n"
	                            "      - address: 198.18.1.1\n"
	                            "        health: { type: http }\n"
	                            "  - name: b\n"
	                            "    address: 203.0.113.1\n"
	                            "    protocol: udp\n"
	                            "    port: 0\n"
	                            "    health: { port: 7, interval: 200ms }\n"
	                            "    backends: [ { address: 198.18.1.1 } ]\n");
	const struct config_health *h = &c->vips[0].health;

	assert_int_equal(h->type, HC_TCP); /* a health mapping without type is a TCP check */
	assert_int_equal(h->port, 443);    /* the VIP's port */
	assert_int_equal(h->interval_ms, 1000);
	assert_int_equal(h->timeout_ms, 500);
	assert_int_equal(h->rise, 2);
	assert_int_equal(h->fall, 3);
	assert_int_equal(h->line, 6);
	h = &c->vips[0].backends[0].health;
	assert_true(c->vips[0].backends[0].has_health);
	assert_int_equal(h->type, HC_HTTP);
	assert_int_equal(h->port, 443);
	assert_string_equal(h->path, "/");
	assert_int_equal(h->expect_status, 200);
	h = &c->vips[1].health;
	assert_int_equal(h->port, 7);
	assert_int_equal(h->interval_ms, 200);
	assert_int_equal(h->timeout_ms, 100); /* half an interval at or below the default timeout */
	config_free(c);
}

static void test_durations_and_numbers(void **state)
{
	static const struct {
		const char *text;
		uint32_t seconds;
	} d[] = {
	    {"45", 45},   {"45s", 45},      {"3000ms", 3}, {"2m", 120},
	    {"1h", 3600}, {"168h", 604800}, {"1s", 1},     {"0x10", 0},
	};
	char text[256];

	for (size_t i = 0; i < ARRAY_SIZE(d); i++) {
		char err[ERR_LEN];
		struct config *c = NULL;
		int r;

		snprintf(text, sizeof(text), "vips: []\nconntrack:\n  udp_timeout: %s\n",
		         d[i].text);
		r = config_parse(text, strlen(text), "t.yaml", &c, err, sizeof(err));
		if (d[i].seconds == 0) {
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(c->conntrack.udp_timeout, d[i].seconds);
		config_free(c);
	}

	struct config *c = parse_ok("vips: []\nconntrack: { tcp_syn_timeout: 3000ms }\n");
	assert_int_equal(c->conntrack.tcp_syn_timeout, 3);
	assert_int_equal(c->conntrack.tcp_timeout, 300);
	config_free(c);
	c = parse_ok("vips: []\nconntrack: { max_inserts_per_second: 0 }\n");
	assert_int_equal(c->conntrack.max_inserts_per_second, 0);
	config_free(c);
	c = parse_ok("vips: []\nconntrack: { max_inserts_per_second: 100000000 }\n");
	assert_int_equal(c->conntrack.max_inserts_per_second, 100000000);
	config_free(c);
	c = parse_ok("vips: []\ncluster: { hash_seed: 18446744073709551615 }\n");
	assert_true(c->hash_seed == UINT64_MAX);
	config_free(c);
	c = parse_ok("vips: []\ncluster: { hash_seed: 0XFFFFFFFFFFFFFFFF }\n");
	assert_true(c->hash_seed == UINT64_MAX);
	config_free(c);
	c = parse_ok("vips: []\ncluster: { hash_seed: 0x5EED }\n");
	assert_true(c->hash_seed == 0x5eed);
	config_free(c);
	c = parse_ok("vips: []\ncluster: { hash_seed: 0 }\n");
	assert_true(c->hash_seed == 0);
	config_free(c);
	c = parse_ok("vips: []\ncluster: { hash_seed: 010 }\n"); /* decimal, not octal */
	assert_true(c->hash_seed == 10);
	config_free(c);
	c = parse_ok(
	    "vips: []\ncluster: { table_size: \"1048573\" }\n"); /* quoted numbers are fine */
	assert_int_equal(c->table_size, 1048573);
	config_free(c);
	c = parse_ok(
	    "vips: []\ncluster: { table_size: 7 }\ncontrol: { metrics: { enabled: no } }\n");
	assert_int_equal(c->table_size, 7);
	assert_false(c->control.metrics_enabled);
	config_free(c);
}

/* Sections in any order: VIPs still inherit the cluster's table_size. */
static void test_section_order(void **state)
{
	struct config *c = parse_ok("vips:\n"
	                            "  - name: a\n"
	                            "    backends: [ { address: 198.18.1.1 } ]\n"
	                            "    port: 1\n"
	                            "    protocol: tcp\n"
	                            "    address: 203.0.113.1\n"
	                            "cluster: { table_size: 13 }\n");

	assert_int_equal(c->vips[0].table_size, 13);
	config_free(c);
}

static void test_ipv6(void **state)
{
	struct config *c = parse_ok("dataplane: { interface: eth0, source_ipv6: 2001:db8::2 }\n"
	                            "vips:\n"
	                            "  - name: v6\n"
	                            "    address: 2001:db8:100::1\n"
	                            "    protocol: tcp\n"
	                            "    port: 443\n"
	                            "    backends:\n"
	                            "      - address: 2001:db8:1::a\n"
	                            "      - address: '2001:db8:1::b'\n"
	                            "      - address: 2001:DB8:1:0:0:0:0:c\n");
	char err[ERR_LEN];

	assert_int_equal(c->vips[0].addr.family, AF_INET6);
	addr_is(&c->vips[0].backends[2].addr, "2001:db8:1::c");
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), 0);
	config_free(c);

	/* Same backend written two ways is a duplicate. */
	const char *dup = "vips:\n"
	                  "  - name: v6\n"
	                  "    address: 2001:db8:100::1\n"
	                  "    protocol: tcp\n"
	                  "    port: 443\n"
	                  "    backends:\n"
	                  "      - address: 2001:db8:1::a\n"
	                  "      - address: 2001:DB8:1:0::A\n";
	struct config *d = NULL;
	assert_int_equal(config_parse(dup, strlen(dup), "t.yaml", &d, err, sizeof(err)), -EINVAL);
	assert_null(d);
	assert_non_null(strstr(err, "t.yaml:8: "));
	assert_non_null(strstr(err, "duplicate backend (first at line 7) '2001:db8:1::a'"));
}

struct bad {
	const char *text;
	int line;
	const char *msg; /* substring of the message after "t.yaml:LINE: " */
};

#define VIP_HEAD "vips:\n  - name: a\n    address: 203.0.113.1\n    protocol: tcp\n    port: 80\n"
/* Lines 1..5 are VIP_HEAD; a backends list follows at line 6. */
#define VIP(name, addr, proto, port)                                                               \
	"  - name: " name "\n    address: " addr "\n    protocol: " proto "\n    port: " port "\n"
#define ONE_BACKEND "    backends: [ { address: 198.18.1.1 } ]\n"

static const struct bad bad[] = {
    /* Empty, or no VIP list: what a half-written file looks like, never "no VIPs". */
    {"", 1, "the file is empty (a config with no VIPs says 'vips: []')"},
    {"---\n# nothing\n", 3, "the file is empty"}, /* the empty document ends there */
    {"\n\n~\n", 3, "the file is empty"},
    {"cluster: { table_size: 7 }\ndataplane: { interface: eth0 }\n", 1,
     "no 'vips' section (a config with no VIPs says 'vips: []')"},
    /* YAML syntax */
    {"cluster:\n  hash_seed: [1, 2\n", 3,
     "YAML syntax error: did not find expected ',' or ']' at column 1 "
     "(while parsing a flow sequence)"},
    {"cluster:\n  table_size: 7\n bad: x\n", 3, "YAML syntax error"},
    {"a: 'unterminated\n", 2, "YAML syntax error"},
    {"cluster: {}\n---\ncluster: {}\n", 2, "only one YAML document"},
    {"cluster:\n  table_size: 7\ndataplane: { interface: \"e\xff\" }\n", 3,
     "bad character: invalid leading UTF-8 octet at offset 51 '0xff'"},
    {"cluster:\n\n  table_size: \x01\n", 3, "bad character: control characters are not allowed"},
    {"cluster: &c { table_size: 7 }\ndataplane: *c\n", 2, "aliases are not supported '*c'"},
    /* unknown keys, every level */
    {"clusters: {}\n", 1, "unknown key 'clusters'"},
    {"cluster:\n  hash_sead: 1\n", 2, "cluster: unknown key 'hash_sead'"},
    {"dataplane:\n  mode: afxdp\n  iface: eth0\n", 3, "dataplane: unknown key 'iface'"},
    {"conntrack:\n  tcp: 1\n", 2, "unknown key 'tcp'"},
    {"control:\n  metrics:\n    enable: true\n", 3, "control.metrics: unknown key 'enable'"},
    {VIP_HEAD "    color: red\n" ONE_BACKEND, 6, "vips[0]: unknown key 'color'"},
    {VIP_HEAD "    backends:\n      - address: 198.18.1.1\n        wieght: 2\n", 8,
     "vips[0].backends[0]: unknown key 'wieght'"},
    {VIP_HEAD "    health:\n      kind: tcp\n" ONE_BACKEND, 7,
     "vips[0].health: unknown key 'kind'"},
    {"cluster: { table_size: 7, table_size: 11 }\n", 1, "duplicate key 'table_size'"},
    {"<<: {}\n", 1, "unknown key '<<'"},
    /* wrong types */
    {"cluster: 5\n", 1, "cluster: expected a mapping '5'"},
    {"cluster:\n  table_size: { a: 1 }\n", 2,
     "cluster.table_size: expected a scalar, not a mapping"},
    {"dataplane:\n  interface: [eth0]\n", 2, "expected a scalar, not a list"},
    {"vips: { name: a }\n", 1, "vips: expected a list of VIPs, not a mapping"},
    {"vips:\n  - just-a-string\n", 2, "vips[0]: expected a mapping (a VIP) 'just-a-string'"},
    {VIP_HEAD "    backends: 198.18.1.1\n", 6, "expected a list of backends '198.18.1.1'"},
    {VIP_HEAD "    backends:\n      - 198.18.1.1\n", 7, "vips[0].backends[0]: expected a mapping"},
    {"- 1\n- 2\n", 1, "the file must be a mapping"},
    {"[1]: x\n", 1, "keys must be scalars"},
    {"control: { metrics: { enabled: maybe } }\n", 1, "expected true or false 'maybe'"},
    {"control:\n  state_dir: var/lib/maglevd\n", 2,
     "control.state_dir: must be an absolute path, or '' for none 'var/lib/maglevd'"},
    {"control:\n  state_dir:\n", 2, "control.state_dir: value missing"},
    {"control:\n  state_dir: '/var/lib/mag levd'\n", 2, "must not hold spaces"},
    {"control:\n  state_dir: [ /var/lib ]\n", 2, "expected a scalar, not a list"},
    {"control:\n  statedir: /var/lib\n", 2, "control: unknown key 'statedir'"},
    /* table_size */
    {"cluster:\n  table_size: 65536\n", 2, "must be a prime in 7..1048573 '65536'"},
    {"cluster:\n  table_size: 5\n", 2, "must be a prime in 7..1048573 '5'"},
    {"cluster:\n  table_size: 1048583\n", 2, "must be a prime"},
    {"cluster:\n  table_size: 4294967311\n", 2, "must be a prime in 7..1048573 '4294967311'"},
    {VIP_HEAD "    table_size: 100\n" ONE_BACKEND, 6, "vips[0].table_size: must be a prime"},
    /* integers */
    {"cluster:\n  hash_seed: 12abc\n", 2, "not an integer '12abc'"},
    {"cluster:\n  hash_seed: 18446744073709551616\n", 2,
     "integer too large '18446744073709551616'"},
    {"cluster:\n  hash_seed: 0x1ffffffffffffffff\n", 2, "integer too large"},
    {"cluster:\n  hash_seed: -1\n", 2, "not an integer '-1'"},
    {"cluster:\n  hash_seed: ' 5'\n", 2, "not an integer ' 5'"},
    {"cluster:\n  hash_seed: 0x\n", 2, "not an integer '0x'"},
    {"cluster:\n  hash_seed: 1.5\n", 2, "not an integer '1.5'"},
    {"cluster:\n  hash_seed:\n", 2, "cluster.hash_seed: value missing"},
    {"dataplane:\n  interface:\nvips: []\n", 2, "dataplane.interface: value missing"},
    {"dataplane:\n  workers: 0\n", 2, "dataplane.workers: out of range 1..64 '0'"},
    {"dataplane:\n  workers: 65\n", 2, "out of range 1..64 '65'"},
    {"dataplane:\n  ttl: 256\n", 2, "out of range 1..255 '256'"},
    {"dataplane:\n  mtu: 575\n", 2, "out of range 576..9000 '575'"},
    {"dataplane:\n  mtu: 9001\n", 2, "out of range 576..9000"},
    {"conntrack:\n  entries: 1023\n", 2, "out of range 1024..67108864 '1023'"},
    {"conntrack:\n  entries: 67108865\n", 2, "out of range"},
    {"conntrack:\n  max_inserts_per_second: 100000001\n", 2,
     "conntrack.max_inserts_per_second: out of range 0..100000000 '100000001'"},
    {"conntrack:\n  max_inserts_per_second: -1\n", 2, "not an integer '-1'"},
    {"conntrack:\n  max_inserts_per_second: 1e5\n", 2, "not an integer '1e5'"},
    {"conntrack:\n  max_inserts_per_second: [1]\n", 2, "expected a scalar, not a list"},
    {"control:\n  metrics: { port: 0 }\n", 2, "out of range 1..65535 '0'"},
    {"cluster:\n  hash_seed: \"1\\0\"\n", 2, "contains a NUL byte"},
    /* durations */
    {"conntrack:\n  tcp_timeout: 10x\n", 2, "not a duration (units: ms, s, m, h) '10x'"},
    {"conntrack:\n  tcp_timeout: s\n", 2, "not a duration"},
    {"conntrack:\n  tcp_timeout: 1500ms\n", 2, "must be whole seconds '1500ms'"},
    {"conntrack:\n  tcp_timeout: 0\n", 2, "out of range 1000ms..604800000ms '0'"},
    {"conntrack:\n  udp_timeout: 169h\n", 2, "out of range"},
    {"conntrack:\n  tcp_syn_timeout: 0\n", 2,
     "conntrack.tcp_syn_timeout: out of range 1000ms..604800000ms '0'"},
    {"conntrack:\n  udp_timeout: 99999999999999999999h\n", 2, "duration too large"},
    {VIP_HEAD "    health:\n      interval: 1s\n      timeout: 1s\n" ONE_BACKEND, 8,
     "vips[0].health.timeout: timeout 1000ms must be less than interval 1000ms '1s'"},
    {VIP_HEAD "    health:\n      interval: 5ms\n" ONE_BACKEND, 7,
     "out of range 10ms..3600000ms '5ms'"},
    /* enumerations and strings */
    {"dataplane:\n  mode: dpdk\n", 2, "expected afxdp, xdp, auto or afpacket 'dpdk'"},
    {"dataplane:\n  interface: a-very-long-interface-name\n", 2, "longer than 15 bytes"},
    {"dataplane:\n  interface: 'eth 0'\n", 2, "must not hold spaces"},
    {"dataplane:\n  interface: ''\n", 2, "must not be empty"},
    {"dataplane:\n  nexthop_mac: 02:00:00:00:00\n", 2, "not a MAC address"},
    {"dataplane:\n  nexthop_mac: 02:00:00:00:00:0g\n", 2, "not a MAC address"},
    {"dataplane:\n  nexthop_mac: 02-00-00-00-00-01\n", 2, "not a MAC address"},
    {"vips:\n" VIP("a", "203.0.113.1", "sctp", "1") ONE_BACKEND, 4,
     "vips[0].protocol: expected tcp or udp 'sctp'"},
    {"vips:\n" VIP("'a b'", "203.0.113.1", "tcp", "1") ONE_BACKEND, 2, "must not hold spaces"},
    {"vips:\n" VIP("a/b", "203.0.113.1", "tcp", "1") ONE_BACKEND, 2,
     "may hold only letters, digits"},
    {"vips:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
     "    address: 203.0.113.1\n    protocol: tcp\n    port: 1\n" ONE_BACKEND,
     2, "longer than 63 bytes"},
    {VIP_HEAD "    health: { type: icmp }\n" ONE_BACKEND, 6, "expected tcp, http or none 'icmp'"},
    {VIP_HEAD "    health: { type: tcp, path: /x }\n" ONE_BACKEND, 6,
     "path: only for type http '/x'"},
    {VIP_HEAD "    health: { type: http, path: healthz }\n" ONE_BACKEND, 6,
     "must start with / 'healthz'"},
    {VIP_HEAD "    health: { type: http, expect_status: 600 }\n" ONE_BACKEND, 6,
     "out of range 100..599"},
    {VIP_HEAD "    health: { type: http, through: gre }\n" ONE_BACKEND, 6,
     "vips[0].health.through: expected direct or tunnel 'gre'"},
    {VIP_HEAD "    second_chance: please\n" ONE_BACKEND, 6,
     "vips[0].second_chance: expected true or false 'please'"},
    {"vips:\n" VIP("a", "203.0.113.1", "udp", "53") "    second_chance: true\n" ONE_BACKEND, 6,
     "vips[0].second_chance: applies to TCP VIPs only 'true'"},
    {VIP_HEAD "    hash: src\n" ONE_BACKEND, 6, "vips[0].hash: expected 5-tuple or source 'src'"},
    {VIP_HEAD "    hash: Source\n" ONE_BACKEND, 6,
     "vips[0].hash: expected 5-tuple or source 'Source'"},
    {VIP_HEAD "    hash: 5tuple\n" ONE_BACKEND, 6,
     "vips[0].hash: expected 5-tuple or source '5tuple'"},
    {VIP_HEAD "    hash:\n" ONE_BACKEND, 6, "vips[0].hash: value missing"},
    {VIP_HEAD "    hash: [ source ]\n" ONE_BACKEND, 6,
     "vips[0].hash: expected a scalar, not a list"},
    {"vips:\n" VIP("a", "203.0.113.1", "tcp", "0") "    health: { type: tcp }\n" ONE_BACKEND, 6,
     "port is required when the VIP's port is 0"},
    /* addresses */
    {"vips:\n" VIP("a", "203.0.113.256", "tcp", "1") ONE_BACKEND, 3,
     "vips[0].address: not an IPv4 or IPv6 address '203.0.113.256'"},
    {"vips:\n" VIP("a", "0.0.0.0", "tcp", "1") ONE_BACKEND, 3, "unspecified address '0.0.0.0'"},
    {VIP_HEAD "    backends: [ { address: 'ff02::1' } ]\n", 6, "multicast address 'ff02::1'"},
    {VIP_HEAD "    backends: [ { address: 198.18.1 } ]\n", 6,
     "not an IPv4 or IPv6 address '198.18.1'"},
    {VIP_HEAD "    backends: [ { weight: 1 } ]\n", 6, "vips[0].backends[0]: address is required"},
    {"dataplane:\n  source_ipv4: 2001:db8::1\n", 2, "not an IPv4 address '2001:db8::1'"},
    {"dataplane:\n  source_ipv6: 198.18.0.1\n", 2, "not an IPv6 address '198.18.0.1'"},
    {"control:\n  metrics:\n    address: localhost\n", 3,
     "not an IPv4 or IPv6 address 'localhost'"},
    {"vips:\n" VIP("a", "203.0.113.1", "tcp", "65536") ONE_BACKEND, 5,
     "out of range 0..65535 '65536'"},
    /* weights */
    {VIP_HEAD "    backends:\n      - address: 198.18.1.1\n        weight: 65536\n", 8,
     "vips[0].backends[0].weight: out of range 0..65535 '65536'"},
    {VIP_HEAD "    backends:\n      - address: 198.18.1.1\n        weight: -1\n", 8,
     "not an integer '-1'"},
    /* structure */
    {VIP_HEAD "    backends: []\n", 6, "vips[0].backends: a VIP needs at least one backend"},
    {VIP_HEAD "    backends:\n", 6, "a VIP needs at least one backend"},
    {"vips:\n  - name: a\n    address: 203.0.113.1\n    port: 1\n" ONE_BACKEND, 2,
     "vips[0]: protocol is required"},
    {"vips:\n" VIP("a", "203.0.113.1", "tcp", "1"), 2, "backends is required"},
    /* duplicates */
    {VIP_HEAD "    backends:\n      - address: 198.18.1.1\n      - address: 198.18.1.2\n"
              "      - { address: 198.18.1.1, weight: 3 }\n",
     9, "duplicate backend (first at line 7) '198.18.1.1'"},
    {VIP_HEAD ONE_BACKEND VIP("a", "203.0.113.2", "tcp", "80") ONE_BACKEND, 7,
     "duplicate VIP name (first at line 2) 'a'"},
    {VIP_HEAD ONE_BACKEND VIP("b", "203.0.113.1", "tcp", "80") ONE_BACKEND, 7,
     "duplicate VIP (same address, protocol and port as 'a' at line 2) '203.0.113.1'"},
    {"vips:\n" VIP("all", "203.0.113.1", "tcp", "0")
         ONE_BACKEND VIP("b", "203.0.113.1", "tcp", "443") ONE_BACKEND,
     7, "VIP overlaps port-0 VIP 'all' at line 2 '203.0.113.1'"},
    /* nesting */
    {"a: [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]\n", 1, "nested deeper than 16 levels"},
    /* announce */
    {"announce:\n  enabled: true\n  tabel: 100\n", 3, "announce: unknown key 'tabel'"},
    {"announce:\n  enabled: maybe\n", 2, "announce.enabled: expected true or false 'maybe'"},
    {"announce:\n  table: 0\n", 2, "announce.table: out of range 1..4294967295 '0'"},
    {"announce:\n  table: 254\n", 2, "announce.table: 253, 254 and 255 are the kernel's"},
    {"announce:\n\n  protocol: 4\n", 3, "announce.protocol: out of range 5..255 '4'"},
    {"announce:\n  protocol: 256\n", 2, "announce.protocol: out of range 5..255 '256'"},
    {"announce: { withdraw_when_no_backends: 1 }\n", 1,
     "announce.withdraw_when_no_backends: expected true or false '1'"},
    {"announce:\n  withdraw_delay: 2m\n", 2,
     "announce.withdraw_delay: out of range 0ms..60000ms '2m'"},
    {"announce:\n  interface: a/b\n", 2, "announce.interface: not an interface name 'a/b'"},
    {"announce:\n  interface: averyveryverylongname\n", 2,
     "announce.interface: longer than 15 bytes"},
    {"announce: [ true ]\n", 1, "announce: expected a mapping, not a list"},
};

/* control.state_dir: an absolute path, '' for none; the default is /var/lib/maglevd. */
static void test_state_dir(void **state)
{
	char text[CONFIG_PATH_MAX + 64], err[ERR_LEN];
	struct config *c = parse_ok("vips: []\ncontrol: { state_dir: /srv/maglevd/state/ }\n");
	int n;

	(void)state;
	assert_string_equal(c->control.state_dir, "/srv/maglevd/state/");
	config_free(c);
	c = parse_ok("vips: []\ncontrol:\n  state_dir: ''\n");
	assert_string_equal(c->control.state_dir, "");
	config_free(c);
	c = parse_ok("vips: []\ncontrol: { socket: /run/x.sock }\n");
	assert_string_equal(c->control.state_dir, CONFIG_STATE_DIR_DEFAULT);
	config_free(c);

	/* The longest that fits, and one byte more. */
	n = snprintf(text, sizeof(text), "vips: []\ncontrol: { state_dir: /%0*d }\n",
	             (int)CONFIG_PATH_MAX - 2, 0);
	c = parse_ok(text);
	assert_int_equal(strlen(c->control.state_dir), CONFIG_PATH_MAX - 1);
	config_free(c);
	n = snprintf(text, sizeof(text), "vips: []\ncontrol: { state_dir: /%0*d }\n",
	             (int)CONFIG_PATH_MAX - 1, 0);
	c = NULL;
	assert_int_equal(config_parse(text, (size_t)n, "t.yaml", &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_non_null(strstr(err, "t.yaml:2: control.state_dir: longer than 255 bytes"));
}

/* second_chance: off unless a TCP VIP says so. */
static void test_second_chance(void **state)
{
	struct config *c = parse_ok("vips:\n" VIP(
	    "a", "203.0.113.1", "tcp",
	    "80") "    second_chance: true\n" ONE_BACKEND VIP("b", "203.0.113.1", "tcp", "81")
	                                ONE_BACKEND);

	(void)state;
	assert_true(c->vips[0].second_chance);
	assert_false(c->vips[1].second_chance);
	config_free(c);
}

/* hash: 5-tuple unless a VIP says source; both words parse, for TCP and UDP VIPs alike. */
static void test_vip_hash(void **state)
{
	struct config *c = parse_ok(
	    "vips:\n" VIP("a", "203.0.113.1", "tcp", "80") "    hash: source\n" ONE_BACKEND VIP(
	        "b", "203.0.113.1", "tcp", "81")
	        ONE_BACKEND VIP("c", "203.0.113.1", "udp", "0") "    hash: '5-tuple'\n" ONE_BACKEND
	            VIP("d", "203.0.113.2", "udp", "53") "    hash: source\n" ONE_BACKEND);

	(void)state;
	assert_int_equal(c->vips[0].hash, VIP_HASH_SOURCE);
	assert_int_equal(c->vips[1].hash, VIP_HASH_5TUPLE);
	assert_int_equal(c->vips[2].hash, VIP_HASH_5TUPLE);
	assert_int_equal(c->vips[3].hash, VIP_HASH_SOURCE);
	assert_string_equal(config_vip_hash_name(c->vips[0].hash), "source");
	assert_string_equal(config_vip_hash_name(c->vips[1].hash), "5-tuple");
	config_free(c);
}

/* Each data-plane mode by its name. */
static void test_modes(void **state)
{
	static const struct {
		const char *name;
		enum dp_mode mode;
	} modes[] = {{"afxdp", DP_MODE_AFXDP},
	             {"xdp", DP_MODE_XDP},
	             {"auto", DP_MODE_AUTO},
	             {"afpacket", DP_MODE_AFPACKET}};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char text[64];
		struct config *c;

		snprintf(text, sizeof(text), "dataplane:\n  mode: %s\nvips: []\n", modes[i].name);
		c = parse_ok(text);
		assert_int_equal(c->dataplane.mode, modes[i].mode);
		config_free(c);
	}
}

static void test_errors(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char err[ERR_LEN] = "";
		char prefix[32];
		struct config *c = (struct config *)&err; /* must be reset to NULL */
		int r =
		    config_parse(bad[i].text, strlen(bad[i].text), "t.yaml", &c, err, sizeof(err));

		snprintf(prefix, sizeof(prefix), "t.yaml:%d: ", bad[i].line);
		if (r != -EINVAL || strncmp(err, prefix, strlen(prefix)) != 0 ||
		    !strstr(err, bad[i].msg) || strchr(err, '\n'))
			print_error("case %zu: r=%d err=\"%s\"; want line %d and \"%s\"\n", i, r,
			            err, bad[i].line, bad[i].msg);
		assert_int_equal(r, -EINVAL);
		assert_null(c);
		assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
		assert_non_null(strstr(err, bad[i].msg));
		assert_null(strchr(err, '\n'));
	}
}

/* A VIP list over CONFIG_VIPS_MAX, and a backend list over CONFIG_BACKENDS_MAX. */
static void test_limits(void **state)
{
	size_t cap = 1u << 20, len = 0;
	char *t = malloc(cap);
	char err[ERR_LEN];
	struct config *c = NULL;

	assert_non_null(t);
	len += (size_t)snprintf(t + len, cap - len, VIP_HEAD "    backends:\n");
	for (unsigned i = 0; i < CONFIG_BACKENDS_MAX + 1; i++)
		len += (size_t)snprintf(t + len, cap - len, "      - address: 198.18.%u.%u\n",
		                        i / 256, i % 256);
	assert_int_equal(config_parse(t, len, "t.yaml", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.yaml:4103: vips[0].backends: more than 4096 backends"));

	/* Exactly the maximum is fine. */
	len -= strlen("      - address: 198.18.16.0\n");
	assert_int_equal(config_parse(t, len, "t.yaml", &c, err, sizeof(err)), 0);
	assert_int_equal(c->vips[0].n_backends, CONFIG_BACKENDS_MAX);
	config_free(c);

	len = (size_t)snprintf(t, cap, "vips:\n");
	for (unsigned i = 0; i < CONFIG_VIPS_MAX + 1; i++)
		len += (size_t)snprintf(t + len, cap - len,
		                        "  - { name: v%u, address: 203.0.113.1, protocol: tcp,"
		                        " port: %u, backends: [ { address: 198.18.1.1 } ] }\n",
		                        i, i + 1);
	assert_int_equal(config_parse(t, len, "t.yaml", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.yaml:1026: vips: more than 1024 VIPs"));

	/* Node count: the root mapping, its key, the list and CONFIG_NODES_MAX - 2 scalars. */
	free(t);
	cap = 2 * (size_t)CONFIG_NODES_MAX + 16;
	t = malloc(cap);
	assert_non_null(t);
	len = (size_t)snprintf(t, cap, "x: [");
	for (unsigned i = 0; i < CONFIG_NODES_MAX - 2; i++) {
		if (i)
			t[len++] = ',';
		t[len++] = '1';
	}
	len += (size_t)snprintf(t + len, cap - len, "]\n");
	assert_int_equal(config_parse(t, len, "t.yaml", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml:1: more than 2097152 YAML nodes");
	free(t);

	assert_int_equal(config_parse("", CONFIG_FILE_MAX + 1, "big.yaml", &c, err, sizeof(err)),
	                 -EFBIG);
	assert_non_null(strstr(err, "big.yaml: larger than"));
}

static void test_long_value_quoted_short(void **state)
{
	char text[1024];
	char err[ERR_LEN];
	struct config *c = NULL;
	char longv[600];

	memset(longv, '9', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	snprintf(text, sizeof(text), "cluster:\n  table_size: %s\n", longv);
	assert_int_equal(config_parse(text, strlen(text), "t.yaml", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.yaml:2: cluster.table_size: integer too large '9999"));
	assert_non_null(strstr(err, "...'"));
	assert_true(strlen(err) < 200);
}

static void test_check_dataplane(void **state)
{
	char err[ERR_LEN];
	/* The minimal file of docs/config.md. */
	struct config *c = parse_ok("dataplane: { interface: eth0, source_ipv4: 198.18.0.2 }\n"
	                            "vips:\n"
	                            "  - name: web\n"
	                            "    address: 203.0.113.10\n"
	                            "    protocol: tcp\n"
	                            "    port: 80\n"
	                            "    backends:\n"
	                            "      - address: 198.18.1.11\n"
	                            "      - address: 198.18.1.12\n");

	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), 0);
	assert_int_equal(c->vips[0].n_backends, 2);
	config_free(c);

	c = parse_ok("dataplane:\n  interface: eth0\n  source_ipv4: 198.18.0.2\n"
	             "  mtu: 1000\n" VIP_HEAD ONE_BACKEND);

	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), 0);
	config_free(c);

	/* No dataplane at all: fine for config_parse (offline tools), not for maglevd. */
	c = parse_ok(VIP_HEAD ONE_BACKEND);
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml: no dataplane section (dataplane.interface is required)");
	config_free(c);

	c = parse_ok("vips: []\ndataplane:\n  workers: 2\n");
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml:2: dataplane.interface is not set");
	config_free(c);

	c = parse_ok("dataplane:\n  interface: eth0\n" VIP_HEAD ONE_BACKEND);
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml:8: VIP 'a' has IPv4 backend '198.18.1.1' but "
	                         "dataplane.source_ipv4 is not set");
	config_free(c);

	c = parse_ok("dataplane:\n  interface: eth0\n  source_ipv4: 198.18.0.2\n" VIP_HEAD
	             "    backends:\n      - address: 198.18.1.1\n      - address: 2001:db8::5\n");
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml:11: VIP 'a' has IPv6 backend '2001:db8::5' but "
	                         "dataplane.source_ipv6 is not set");
	config_free(c);

	c = parse_ok("dataplane:\n  interface: eth0\n  source_ipv6: 2001:db8::2\n"
	             "  mtu: 1200\n" VIP_HEAD "    backends:\n      - address: 2001:db8::5\n");
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.yaml:11: VIP 'a' has IPv6 backend '2001:db8::5' but "
	                         "dataplane.mtu 1200 is below 1280");
	config_free(c);
}

/* An IPv6 VIP with IPv4 backends is fine, as long as the MTU suits IPv6. */
static void test_check_dataplane_ipv6_vip(void **state)
{
	char err[ERR_LEN];
	const char *text = "dataplane:\n  interface: eth0\n  source_ipv4: 198.18.0.2\n  mtu: %u\n"
	                   "vips:\n  - name: six\n    address: 2001:db8:100::1\n    protocol: tcp\n"
	                   "    port: 80\n    backends: [ { address: 198.18.1.1 } ]\n";
	char buf[512];
	struct config *c;

	snprintf(buf, sizeof(buf), text, 1280u);
	c = parse_ok(buf);
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), 0);
	config_free(c);
	snprintf(buf, sizeof(buf), text, 1279u);
	c = parse_ok(buf);
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
	                    "t.yaml:6: VIP 'six' is IPv6 but dataplane.mtu 1279 is below 1280");
	config_free(c);
}

/* YAML forms that are accepted: anchors without aliases, tags, null health, comments, '---'. */
static void test_yaml_forms(void **state)
{
	struct config *c = parse_ok("%YAML 1.1\n"
	                            "--- # the config\n"
	                            "cluster: &cl { hash_seed: !!str 0x10 }\n"
	                            "dataplane: { nexthop_mac: ~, source_ipv4: null }\n"
	                            "vips:\n"
	                            "  - name: a\n"
	                            "    address: \"203.0.113.1\"\n"
	                            "    protocol: tcp\n"
	                            "    port: 80\n"
	                            "    health:\n"
	                            "    backends:\n"
	                            "      - address: 198.18.1.1\n"
	                            "        health: ~\n"
	                            "...\n");

	assert_true(c->hash_seed == 0x10);
	assert_false(c->dataplane.has_nexthop_mac);
	assert_int_equal(c->dataplane.source_ipv4.family, 0);
	assert_int_equal(c->vips[0].health.type, HC_NONE);
	assert_false(c->vips[0].backends[0].has_health);
	config_free(c);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	char err[ERR_LEN];
	struct config *c = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, full_yaml, strlen(full_yaml)), (ssize_t)strlen(full_yaml));
	close(fd);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c->path, path);
	assert_int_equal(c->n_vips, 2);
	config_free(c);

	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "bogus: 1\n", 9), 9);
	close(fd);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	char want[128];
	snprintf(want, sizeof(want), "%s:51: unknown key 'bogus'", path);
	assert_string_equal(err, want);
	assert_null(c);
	unlink(path);

	assert_int_equal(config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(config_load("/", &c, err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "/: not a regular file (a directory)");
	assert_int_equal(config_load("/dev/null", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "/dev/null: not a regular file (a character device)");
}

/* A FIFO as the config path is refused at once: opening it must not wait for a writer. */
static void test_load_fifo(void **state)
{
	char dir[] = "/tmp/test_config_XXXXXX", path[64], want[96], err[ERR_LEN];
	struct config *c = (struct config *)&err;
	pid_t child;
	int status;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	/* In a child with an alarm, so that a regression fails the test instead of hanging it. */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		alarm(5);
		_exit(config_load(path, &c, err, sizeof(err)) == -EINVAL && !c ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file (a FIFO)", path);
	assert_string_equal(err, want);
	unlink(path);
	rmdir(dir);
}

/* config_load_daemon is config_load plus config_check_dataplane, and frees what it refuses. */
static void test_load_daemon(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX", err[ERR_LEN];
	static const char v6_no_source[] = "dataplane: { interface: eth0 }\n" TH_YAML_VIPS_WEB6;
	struct config *c = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, v6_no_source, strlen(v6_no_source)),
	                 (ssize_t)strlen(v6_no_source));
	close(fd);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0); /* fine offline */
	config_free(c);
	assert_int_equal(config_load_daemon(path, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_non_null(strstr(err, ":8: VIP 'web6' has IPv6 backend '2001:db8:1::11' but "
	                            "dataplane.source_ipv6 is not set"));
	unlink(path);
}

/* The shipped example (docs/examples/maglevd.yaml) is valid and complete. */
static void test_example_file(void **state)
{
	char path[512];
	char err[ERR_LEN];
	struct config *c = NULL;
	const char *src = __FILE__; /* tests/unit/test_config.c, relative to the tree's root */
	const char *cut = strstr(src, "tests/unit/");

	snprintf(path, sizeof(path), "%.*sdocs/examples/maglevd.yaml", (int)(cut - src), src);
	if (config_load(path, &c, err, sizeof(err)) != 0)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->n_vips, 3);
	assert_int_equal(c->vips[1].table_size, 251);
	assert_int_equal(c->vips[1].hash, VIP_HASH_SOURCE);
	assert_int_equal(c->vips[0].hash, VIP_HASH_5TUPLE);
	assert_int_equal(c->vips[2].health.port, 443);
	assert_string_equal(c->control.state_dir, CONFIG_STATE_DIR_DEFAULT);
	assert_int_equal(config_check_dataplane(c, err, sizeof(err)), 0);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_round_trip),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_health_defaults),
	    cmocka_unit_test(test_announce),
	    cmocka_unit_test(test_durations_and_numbers),
	    cmocka_unit_test(test_section_order),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_state_dir),
	    cmocka_unit_test(test_second_chance),
	    cmocka_unit_test(test_vip_hash),
	    cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_long_value_quoted_short),
	    cmocka_unit_test(test_check_dataplane),
	    cmocka_unit_test(test_check_dataplane_ipv6_vip),
	    cmocka_unit_test(test_yaml_forms),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_load_fifo),
	    cmocka_unit_test(test_load_daemon),
	    cmocka_unit_test(test_example_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
