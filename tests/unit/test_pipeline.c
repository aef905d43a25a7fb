/* SPDX-License-Identifier: GPL-2.0-only */
/* Pipeline tests: byte-exact fixtures (scapy-built), and flow properties across snapshots. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/util.h"
#include "core/encap.h"
#include "core/pipeline.h"
#include "core/pkt.h"
#include "core/snapshot.h"
#include "fixtures/pipeline_fixtures.h"
#include "tcfg.h"
#include "tsnap.h"
#include "tframes.h"

#define NOW_NS  (1000ull * 1000000000ull) /* any start time: the clock is the test's */
#define N_FLOWS 400u

static struct lb_worker *worker_new(uint32_t entries)
{
	struct lb_worker_params p = {
	    .id = 0,
	    .ct_entries = entries,
	    .tcp_timeout = 300,
	    .tcp_fin_timeout = 10,
	    .tcp_syn_timeout = 5,
	    .udp_timeout = 30,
	    .icmp_timeout = 10,
	};
	struct lb_worker *w;

	memcpy(p.mac, TCFG_MAC_ME, 6);
	w = lb_worker_create(&p);
	assert_non_null(w);
	return w;
}

static uint64_t ctr(const struct lb_worker *w, enum lb_counter c)
{
	return lb_counter_read(&lb_worker_counters(w)[c]);
}

static void check_fixture(const struct fixture *fx, enum lb_verdict v, const struct lb_frame *f,
                          uint64_t before, uint64_t after)
{
	if ((int)v != fx->verdict)
		fail_msg("%s: verdict %d, expected %d", fx->name, v, fx->verdict);
	if (after != before + 1)
		fail_msg("%s: counter %s went %llu -> %llu", fx->name, lb_counter_name[fx->counter],
		         (unsigned long long)before, (unsigned long long)after);
	if (!fx->out)
		return;
	if (f->len != fx->out_len)
		fail_msg("%s: output %u bytes, expected %u", fx->name, f->len, fx->out_len);
	for (uint32_t i = 0; i < f->len; i++)
		if (f->data[i] != fx->out[i])
			fail_msg("%s: output byte %u is 0x%02x, expected 0x%02x", fx->name, i,
			         f->data[i], fx->out[i]);
}

static void test_fixtures(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	static struct tbuf b;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
		const struct fixture *fx = &fixtures[i];
		struct lb_frame f = tbuf_frame(&b, fx->in, fx->in_len);
		uint64_t before = ctr(w, (enum lb_counter)fx->counter);
		enum lb_verdict v = lb_process(w, s, &f, NOW_NS);

		check_fixture(fx, v, &f, before, ctr(w, (enum lb_counter)fx->counter));
	}
	assert_int_equal(ctr(w, LB_CTR_RX_FRAMES), ARRAY_SIZE(fixtures));
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* The same fixtures through lb_process_batch, all in one batch (chunked past LB_BATCH_MAX). */
static void test_fixtures_batch(void **state)
{
	enum { N = ARRAY_SIZE(fixtures) };
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	static struct tbuf b[N];
	struct lb_frame f[N];
	enum lb_verdict v[N];
	uint64_t before[LB_CTR_MAX];

	(void)state;
	for (size_t i = 0; i < N; i++)
		f[i] = tbuf_frame(&b[i], fixtures[i].in, fixtures[i].in_len);
	for (unsigned k = 0; k < LB_CTR_MAX; k++)
		before[k] = ctr(w, (enum lb_counter)k);
	lb_process_batch(w, s, f, v, N, NOW_NS);
	for (size_t i = 0; i < N; i++)
		check_fixture(&fixtures[i], v[i], &f[i], 0, 1);
	assert_int_equal(ctr(w, LB_CTR_RX_FRAMES) - before[LB_CTR_RX_FRAMES], N);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* The flow key of an untagged IPv4 (20-byte header) or IPv6 TCP/UDP fixture frame, if it is one. */
static bool fixture_flow_key(const uint8_t *d, uint32_t len, struct lb_flow_key *k)
{
	uint16_t sport, dport;

	if (len >= 14 + 20 + 4 && d[12] == 0x08 && d[13] == 0x00 && d[14] == 0x45 &&
	    (d[23] == 6 || d[23] == 17) && !(pkt_load16(d + 20) & 0x3fff)) {
		memcpy(&sport, d + 34, 2);
		memcpy(&dport, d + 36, 2);
		lb_flow_key_fill(k, LB_FLOW_V4, d + 26, d + 30, d[23], sport, dport);
		return true;
	}
	if (len >= 14 + 40 + 4 && d[12] == 0x86 && d[13] == 0xdd && (d[20] == 6 || d[20] == 17)) {
		memcpy(&sport, d + 54, 2);
		memcpy(&dport, d + 56, 2);
		lb_flow_key_fill(k, LB_FLOW_V6, d + 22, d + 38, d[20], sport, dport);
		return true;
	}
	return false;
}

/*
 * A frame from a source no client can have, or not sent to our MAC, leaves no connection-table
 * entry behind (and does not count as a table miss); a good one of the same shape does.
 */
static void test_refused_untracked(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	static struct tbuf b;
	unsigned refused = 0, tracked = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
		const struct fixture *fx = &fixtures[i];
		bool refuse = fx->counter == LB_CTR_DROP_BAD_SOURCE ||
		              fx->counter == LB_CTR_DROP_SOURCE_IS_VIP ||
		              fx->counter == LB_CTR_PASS_NOT_OUR_MAC;
		struct lb_frame f = tbuf_frame(&b, fx->in, fx->in_len);
		struct lb_explanation ex;
		struct lb_flow_key k;
		uint64_t miss = ctr(w, LB_CTR_CT_MISS);

		if (!fixture_flow_key(fx->in, fx->in_len, &k) ||
		    (!refuse && fx->counter != LB_CTR_TX_GRE_IPV4 &&
		     fx->counter != LB_CTR_TX_GRE_IPV6))
			continue;
		lb_process(w, s, &f, NOW_NS);
		if (lb_explain(w, s, &k, &ex) != 0)
			fail_msg("%s: not a VIP flow", fx->name);
		if (ex.tracked == refuse)
			fail_msg("%s: tracked %d after the frame", fx->name, ex.tracked);
		if (refuse && ctr(w, LB_CTR_CT_MISS) != miss)
			fail_msg("%s: counted as a table miss", fx->name);
		/* explain names the drop for a source no client has (the MAC is not in the key). */
		if (fx->counter != LB_CTR_PASS_NOT_OUR_MAC &&
		    (ex.refused != (refuse ? fx->counter : 0) ||
		     (refuse && ex.backend != LB_BACKEND_NONE)))
			fail_msg("%s: explain refused %u backend %u", fx->name, ex.refused,
			         ex.backend);
		refused += refuse;
		tracked += !refuse;
	}
	/* Every address class of the fixtures, and the good flows that show the check can fail. */
	assert_true(refused >= 19);
	assert_true(tracked >= 5);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* Every prefix of every fixture, in a buffer of exactly that size: counted, never out of bounds. */
static void test_truncations(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	uint64_t n = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
		for (uint32_t len = 0; len <= fixtures[i].in_len; len++) {
			uint8_t *mem = malloc(LB_HEADROOM + len + 1);
			struct lb_frame f = {mem + LB_HEADROOM, len, LB_HEADROOM};

			memcpy(f.data, fixtures[i].in, len);
			lb_process(w, s, &f, NOW_NS);
			assert_true(f.data >= mem && f.data + f.len <= mem + LB_HEADROOM + len);
			free(mem);
			n++;
		}
	}
	assert_int_equal(ctr(w, LB_CTR_RX_FRAMES), n);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/*
 * The one-probe IPv4 VIP table gives the general lookup's answer for every (address, protocol,
 * port) near the fixture's VIPs, including a port-0 VIP sharing an address with a port VIP.
 */
static void test_vip4_find(void **state)
{
	static const char *const extra[] = {"198.18.3.1"};
	static const char *const addrs[] = {"203.0.113.10", "203.0.113.11", "203.0.113.12",
	                                    "203.0.113.20", "203.0.113.21", "203.0.113.99",
	                                    "198.18.100.7", "0.0.0.0"};
	static const uint16_t ports[] = {0, 53, 79, 80, 81, 443, 8080, 65535};
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP};
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = NULL;
	char err[256];
	unsigned hits = 0;

	(void)state;
	tcfg_vip(c, "web4all", "203.0.113.10", IPPROTO_TCP, 0, extra, 1, 0);
	assert_int_equal(snapshot_build(c, NULL, NULL, &s, err, sizeof(err)), 0);
	for (unsigned a = 0; a < ARRAY_SIZE(addrs); a++) {
		struct lb_addr la = tcfg_addr(addrs[a]);
		int32_t ai = snapshot_addr_find(s, AF_INET, la.b);

		for (unsigned p = 0; p < ARRAY_SIZE(protos); p++) {
			for (unsigned q = 0; q < ARRAY_SIZE(ports); q++) {
				int32_t want = ai < 0
				                   ? LB_VIP4_NOT_ADDR
				                   : snapshot_vip_find(s, ai, protos[p], ports[q]);
				uint8_t kb[8] = {0};
				int32_t got;

				memcpy(kb, la.b, 4);
				memcpy(kb + 4, "\x55\xaa",
				       2); /* a source port: not part of the key */
				kb[6] = (uint8_t)(ports[q] >> 8);
				kb[7] = (uint8_t)ports[q];
				got = snapshot_vip4_find(s, lb_vip4_key(kb, protos[p]));

				if (ai >= 0 && want < 0)
					want = LB_VIP4_NO_PORT;
				assert_int_equal(got, want);
				hits += got >= 0;
			}
		}
	}
	assert_true(hits > 8);
	snapshot_free(s);
	config_free(c);
}

/*
 * The packet path's hash (precomputed XXH3 secret) equals the documented one for any key and seed,
 * and a snapshot carries the secret of its hash_seed.
 */
static void test_flow_hash_secret(void **state)
{
	static const uint64_t seeds[] = {0, 1, 0x5eed, 0x8000000000000000ull, ~0ull};
	uint8_t secret[LB_FLOW_SECRET_LEN];
	struct config *c = tcfg_new();
	struct lb_snapshot *s = NULL;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char err[256];

	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(seeds); i++) {
		lb_flow_secret_make(secret, seeds[i]);
		for (unsigned n = 0; n < 1000; n++) {
			struct lb_flow_key k;

			for (unsigned b = 0; b < sizeof(k); b++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				((uint8_t *)&k)[b] = (uint8_t)x;
			}
			assert_true(lb_flow_hash_secret(&k, secret) == lb_flow_hash(&k, seeds[i]));
		}
	}
	tcfg_dataplane(c);
	c->hash_seed = 0x5eed;
	assert_int_equal(snapshot_build(c, NULL, NULL, &s, err, sizeof(err)), 0);
	lb_flow_secret_make(secret, 0x5eed);
	assert_memory_equal(s->hash_secret, secret, LB_FLOW_SECRET_LEN);
	snapshot_free(s);
	config_free(c);
}

/* The flow hash is XXH3-64 over the documented 40-byte layout (docs/pipeline.md). */
static void test_flow_hash_layout(void **state)
{
	struct lb_addr a = tcfg_addr("198.18.100.7"), v = tcfg_addr("203.0.113.20");
	struct lb_addr a6 = tcfg_addr("2001:db8:200::7"), v6 = tcfg_addr("2001:db8:100::20");
	uint8_t raw[40] = {0};
	struct lb_flow_key k;

	(void)state;
	lb_flow_key_make(&k, &a, &v, 6, 40000, 80);
	memcpy(raw, "\xc6\x12\x64\x07", 4);
	memcpy(raw + 16, "\xcb\x00\x71\x14", 4);
	memcpy(raw + 32, "\x9c\x40\x00\x50\x06\x04", 6);
	assert_memory_equal(&k, raw, 40);
	assert_true(lb_flow_hash(&k, 0x5eed) == XXH3_64bits_withSeed(raw, 40, 0x5eed));
	assert_true(lb_flow_hash(&k, 0x5eed) != lb_flow_hash(&k, 0x5eee));

	memset(raw, 0, sizeof(raw));
	lb_flow_key_make(&k, &a6, &v6, 17, 53, 0);
	memcpy(raw, a6.b, 16);
	memcpy(raw + 16, v6.b, 16);
	memcpy(raw + 32, "\x00\x35\x00\x00\x11\x06", 6);
	assert_memory_equal(&k, raw, 40);
}

/* Sends a flow's packet and returns the backend it went to (outer destination), "" if not TX. */
static const char *send_flow(struct lb_worker *w, const struct lb_snapshot *s, const char *client,
                             const char *vip, uint8_t proto, uint16_t sport, uint16_t dport,
                             uint8_t flags, uint64_t now, char *out)
{
	static struct tbuf b;
	uint8_t pkt[128];
	uint32_t n = strchr(vip, ':') ? tf_flow6(pkt, client, vip, proto, sport, dport, flags)
	                              : tf_flow4(pkt, client, vip, proto, sport, dport, flags);
	struct lb_frame f = tbuf_frame(&b, pkt, n);

	out[0] = 0;
	if (lb_process(w, s, &f, now) != LB_TX)
		return out;
	return tf_outer_dst(&f, out);
}

/*
 * The secondary a GRE frame the pipeline sent carries, as text ("" without the shim), after
 * checking the shim's fixed part and that the inner packet follows it unchanged (inner, n bytes).
 */
static const char *sent_secondary(const struct lb_frame *f, const uint8_t *inner, uint32_t n,
                                  char *buf)
{
	bool v6 = f->data[12] == 0x86;
	uint32_t g = 14 + (v6 ? 40 : 20), alen = v6 ? 16 : 4;
	struct lb_addr a = {.family = v6 ? AF_INET6 : AF_INET};

	buf[0] = 0;
	if (pkt_load16(f->data + g + 2) != GRE_PROTO_SC) {
		assert_int_equal(f->len, g + 4 + n);
		assert_memory_equal(f->data + g + 4, inner, n);
		return buf;
	}
	assert_int_equal(f->data[g + 4], GRE_SC_VERSION << 4); /* no flag set by maglevd */
	assert_int_equal(f->data[g + 5], 0);
	assert_int_equal(pkt_load16(f->data + g + 6), inner[0] >> 4 == 4 ? 0x0800 : 0x86dd);
	assert_int_equal(f->len, g + 4 + GRE_SC_SHIM_HLEN + alen + n);
	assert_memory_equal(f->data + g + 4 + GRE_SC_SHIM_HLEN + alen, inner, n);
	memcpy(a.b, f->data + g + 4 + GRE_SC_SHIM_HLEN, alen);
	return lb_addr_str(&a, buf, LB_ADDR_STRLEN);
}

/*
 * Second chance, as a maglevd without the flows' entries sees them after a backend was added:
 * a flow's non-SYN packets carry the slot's previous owner when it differs (and every later
 * packet of the flow too, through its entry); SYN-first flows, UDP and VIPs without
 * second_chance carry nothing; a second-chance VIP's inner MTU leaves room for the shim.
 */
static void test_second_chance(void **state)
{
	struct config *c = tcfg_fixture();
	struct config_vip *mv = &c->vips[5];
	struct lb_snapshot *s1, *s2, *s3;
	struct lb_worker *w = worker_new(1 << 16), *w2 = worker_new(1 << 16);
	static struct tbuf b;
	struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.20");
	unsigned carried = 0, expected = 0;

	(void)state;
	mv->second_chance = true;
	s1 = snap(c, NULL, NULL);
	tcfg_backend_add(mv, "198.18.2.5", 1);
	s2 = snap(c, s1, NULL);
	assert_int_equal(s2->backends[s2->vips[5].backends[0]].inner_mtu, 1500 - 24 - 8);
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < N_FLOWS; i++) {
			uint8_t pkt[128];
			uint32_t n = tf_flow4(pkt, "198.18.100.7", "203.0.113.20", 6,
			                      (uint16_t)(20000 + i), 80, 0x10);
			struct lb_frame f = tbuf_frame(&b, pkt, n);
			struct lb_flow_key k;
			struct lb_explanation e;
			char got[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN] = "", pri[LB_ADDR_STRLEN];
			uint16_t old;

			lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(20000 + i), 80);
			assert_int_equal(lb_explain(NULL, s2, &k, &e), 0);
			old = s1->vips[5].table[e.hash % s1->vips[5].table_size];
			lb_addr_str(&s2->backends[e.table_backend].addr, pri, sizeof(pri));
			if (!lb_addr_eq(&s1->backends[old].addr,
			                &s2->backends[e.table_backend].addr))
				lb_addr_str(&s1->backends[old].addr, want, sizeof(want));
			/* explain says it, untracked (as a first packet that is not a SYN) and
			 * tracked (from the entry). */
			assert_int_equal(lb_explain(round ? w : NULL, s2, &k, &e), 0);
			assert_string_equal(
			    e.secondary == LB_BACKEND_NONE
			        ? ""
			        : lb_addr_str(&s2->backends[e.secondary].addr, got, sizeof(got)),
			    want);
			assert_int_equal(lb_process(w, s2, &f, NOW_NS), LB_TX);
			assert_string_equal(tf_outer_dst(&f, got), pri);
			assert_string_equal(sent_secondary(&f, pkt + 14, n - 14, got), want);
			carried += want[0] != 0;
			expected += want[0] != 0 && round == 0;
		}
	}
	/* About the fifth of the flows whose slots the new backend took, each packet of them. */
	assert_in_range(expected, N_FLOWS / 10, N_FLOWS * 3 / 10);
	assert_int_equal(carried, 2 * expected);
	assert_int_equal(ctr(w, LB_CTR_TX_SECOND_CHANCE), carried);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), N_FLOWS);

	/* Flows that start with a SYN here, and UDP, carry nothing, then or later. */
	for (unsigned i = 0; i < N_FLOWS; i++) {
		char got[LB_ADDR_STRLEN];

		send_flow(w, s2, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x02,
		          NOW_NS, got);
		send_flow(w, s2, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x10,
		          NOW_NS, got);
	}
	assert_int_equal(ctr(w, LB_CTR_TX_SECOND_CHANCE), carried);

	/* Off: the same packets on a maglevd without entries carry nothing. */
	mv->second_chance = false;
	s3 = snap(c, s2, NULL);
	for (unsigned i = 0; i < N_FLOWS; i++) {
		char got[LB_ADDR_STRLEN];

		send_flow(w2, s3, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(20000 + i), 80,
		          0x10, NOW_NS, got);
	}
	assert_int_equal(ctr(w2, LB_CTR_TX_SECOND_CHANCE), 0);
	assert_int_equal(s3->backends[s3->vips[5].backends[0]].inner_mtu, 1500 - 24);
	lb_worker_destroy(w);
	lb_worker_destroy(w2);
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(s3);
	config_free(c);
}

/*
 * Second chance under outer IPv6: IPv6 clients of a VIP whose backends are three IPv6 ones and an
 * IPv4 one, a fourth IPv6 backend added. A flow carries its previous owner (16 bytes in the shim)
 * only when that owner is of its new owner's family.
 */
static void test_second_chance_v6(void **state)
{
	static const char *const b6[] = {"2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::3",
	                                 "198.18.2.9"};
	struct config *c = tcfg_fixture();
	struct config_vip *v;
	struct lb_snapshot *s1, *s2;
	struct lb_worker *w = worker_new(1 << 16);
	static struct tbuf b;
	struct lb_addr cl = tcfg_addr("2001:db8:200::7"), vip = tcfg_addr("2001:db8:100::30");
	unsigned carried = 0, other_family = 0;
	uint32_t vi = c->n_vips;

	(void)state;
	v = tcfg_vip(c, "sc6", "2001:db8:100::30", IPPROTO_TCP, 80, b6, 4, 65537);
	v->second_chance = true;
	s1 = snap(c, NULL, NULL);
	tcfg_backend_add(&c->vips[vi], "2001:db8:2::5", 1);
	s2 = snap(c, s1, NULL);
	for (unsigned i = 0; i < N_FLOWS; i++) {
		uint8_t pkt[128];
		uint32_t n = tf_flow6(pkt, "2001:db8:200::7", "2001:db8:100::30", 6,
		                      (uint16_t)(30000 + i), 80, 0x10);
		struct lb_frame f = tbuf_frame(&b, pkt, n);
		struct lb_flow_key k;
		struct lb_explanation e;
		char got[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN] = "";
		const struct lb_backend *pri, *old;

		lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(30000 + i), 80);
		assert_int_equal(lb_explain(NULL, s2, &k, &e), 0);
		pri = &s2->backends[e.table_backend];
		old = &s1->backends[s1->vips[vi].table[e.hash % s1->vips[vi].table_size]];
		if (!lb_addr_eq(&old->addr, &pri->addr)) {
			if (old->addr.family == pri->addr.family)
				lb_addr_str(&old->addr, want, sizeof(want));
			else
				other_family++;
		}
		assert_int_equal(lb_process(w, s2, &f, NOW_NS), LB_TX);
		assert_string_equal(sent_secondary(&f, pkt + 14, n - 14, got), want);
		carried += want[0] != 0;
	}
	assert_true(carried > 0);
	assert_int_equal(ctr(w, LB_CTR_TX_SECOND_CHANCE), carried);
	assert_true(other_family > 0); /* moved off the IPv4 backend: carried nothing */
	lb_worker_destroy(w);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/* A tracked flow stays on its backend while the table changes under it. */
static void test_stickiness(void **state)
{
	struct config *c = tcfg_fixture();
	struct config_vip *mv = &c->vips[5];
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2, *s3, *s4, *s5;
	struct lb_worker *w = worker_new(1 << 16);
	static char first[N_FLOWS][LB_ADDR_STRLEN];
	char got[LB_ADDR_STRLEN];
	unsigned moved_in_table = 0, on_b2 = 0, on_b3 = 0, on_b4 = 0;
	uint64_t rechosen;
	struct snapshot_override ov[2];
	struct snapshot_state st = {.v = ov, .n = 0};

	(void)state;
	assert_string_equal(mv->name, "multi");
	for (unsigned i = 0; i < N_FLOWS; i++) {
		send_flow(w, s1, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(10000 + i), 80, 0x02,
		          NOW_NS, first[i]);
		assert_true(first[i][0]);
	}
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), N_FLOWS);

	/* A backend added: the table moves some flows, the connection table keeps them. */
	tcfg_backend_add(mv, "198.18.2.5", 1);
	s2 = snap(c, s1, NULL);
	for (unsigned i = 0; i < N_FLOWS; i++) {
		struct lb_flow_key k;
		struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.20");
		struct lb_explanation e;
		char tb[LB_ADDR_STRLEN];

		lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(10000 + i), 80);
		assert_int_equal(lb_explain(w, s2, &k, &e), 0);
		assert_true(e.tracked && e.tracked_usable);
		lb_addr_str(&s2->backends[e.table_backend].addr, tb, sizeof(tb));
		if (strcmp(tb, first[i]) != 0)
			moved_in_table++;
		send_flow(w, s2, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(10000 + i), 80, 0x10,
		          NOW_NS + 1000000000ull, got);
		assert_string_equal(got, first[i]);
	}
	assert_true(moved_in_table > 0);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), N_FLOWS);

	/* Backend .2 removed, .3 down, .4 drained (weight 0). */
	tcfg_backend_del(mv, 1);
	ov[0] = (struct snapshot_override){.vip = "multi", .weight = -1, .down = true};
	ov[0].backend = tcfg_addr("198.18.2.3");
	ov[1] = (struct snapshot_override){.vip = "multi", .weight = 0, .down = false};
	ov[1].backend = tcfg_addr("198.18.2.4");
	st.n = 2;
	s3 = snap(c, s2, &st);
	rechosen = ctr(w, LB_CTR_CT_RECHOSEN);
	for (unsigned i = 0; i < N_FLOWS; i++) {
		send_flow(w, s3, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(10000 + i), 80, 0x10,
		          NOW_NS + 2000000000ull, got);
		if (!strcmp(first[i], "198.18.2.2") || !strcmp(first[i], "198.18.2.3")) {
			on_b2 += !strcmp(first[i], "198.18.2.2");
			on_b3 += !strcmp(first[i], "198.18.2.3");
			assert_string_not_equal(got, "198.18.2.2");
			assert_string_not_equal(got, "198.18.2.3");
			assert_string_not_equal(got, "198.18.2.4");
		} else {
			on_b4 += !strcmp(first[i], "198.18.2.4");
			assert_string_equal(got, first[i]);
		}
	}
	assert_true(on_b2 > 0 && on_b3 > 0 && on_b4 > 0);
	assert_int_equal(ctr(w, LB_CTR_CT_RECHOSEN) - rechosen, on_b2 + on_b3);
	/* New flows never go to the drained or down backends. */
	for (unsigned i = 0; i < N_FLOWS; i++) {
		send_flow(w, s3, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(10000 + i), 80, 0x02,
		          NOW_NS + 2000000000ull, got);
		assert_string_not_equal(got, "198.18.2.3");
		assert_string_not_equal(got, "198.18.2.4");
	}

	/*
	 * Stale tag: .1 removed frees its id; a new backend then takes that id with a new tag, so
	 * flows tracked on .1 are re-chosen instead of following the id to the newcomer blindly.
	 */
	{
		uint16_t old_id = snapshot_backend_find(s3, 5, &(struct lb_addr){0});
		struct lb_addr b1 = tcfg_addr("198.18.2.1");
		unsigned on_b1 = 0;

		(void)old_id;
		old_id = snapshot_backend_find(s3, 5, &b1);
		assert_int_not_equal(old_id, LB_BACKEND_NONE);
		tcfg_backend_del(mv, 0);
		st.n = 0;
		s4 = snap(c, s3, &st);
		assert_false(s4->backends[old_id].in_use);
		tcfg_backend_add(mv, "198.18.2.9", 1);
		s5 = snap(c, s4, &st);
		assert_true(s5->backends[old_id].in_use);
		assert_int_equal(s5->backends[old_id].tag,
		                 (uint16_t)(s3->backends[old_id].tag + 1));
		rechosen = ctr(w, LB_CTR_CT_RECHOSEN);
		for (unsigned i = 0; i < N_FLOWS; i++) {
			if (strcmp(first[i], "198.18.2.1") != 0)
				continue;
			on_b1++;
			send_flow(w, s5, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(10000 + i),
			          80, 0x10, NOW_NS + 3000000000ull, got);
			assert_true(got[0]);
		}
		assert_true(on_b1 > 0);
		assert_int_equal(ctr(w, LB_CTR_CT_RECHOSEN) - rechosen, on_b1);
	}
	lb_worker_destroy(w);
	snapshot_free(s1);
	snapshot_free(s2);
	snapshot_free(s3);
	snapshot_free(s4);
	snapshot_free(s5);
	config_free(c);
}

/* All fragments of a datagram meet at one backend: the 3-tuple one. */
static void test_fragments_same_backend(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	static struct tbuf b;
	unsigned distinct = 0;
	char seen[4][LB_ADDR_STRLEN] = {""};

	(void)state;
	for (unsigned i = 0; i < 64; i++) {
		char client[32], got1[LB_ADDR_STRLEN], got2[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN];
		uint8_t pkt[128];
		uint32_t n;
		struct lb_frame f;
		struct lb_flow_key k;
		struct lb_explanation e;
		struct lb_addr cl, vip = tcfg_addr("203.0.113.21");

		snprintf(client, sizeof(client), "198.18.%u.%u", 100 + i / 200, 1 + i % 200);
		/* First fragment: UDP header present, MF set. */
		n = tf_eth(pkt, 0x0800);
		n += tf_ip4(pkt + n, client, "203.0.113.21", 17, 20 + 16, (uint16_t)i, 0x2000);
		n += tf_l4(pkt + n, 17, (uint16_t)(3000 + i), 53, 0, 100);
		memset(pkt + n, 0xab, 8);
		n += 8;
		f = tbuf_frame(&b, pkt, n);
		assert_int_equal(lb_process(w, s, &f, NOW_NS), LB_TX);
		tf_outer_dst(&f, got1);
		/* Last fragment: offset 2 (16 bytes), no UDP header. */
		n = tf_eth(pkt, 0x0800);
		n += tf_ip4(pkt + n, client, "203.0.113.21", 17, 20 + 8, (uint16_t)i, 2);
		memset(pkt + n, 0xcd, 8);
		n += 8;
		f = tbuf_frame(&b, pkt, n);
		assert_int_equal(lb_process(w, s, &f, NOW_NS), LB_TX);
		tf_outer_dst(&f, got2);
		assert_string_equal(got1, got2);
		cl = tcfg_addr(client);
		lb_flow_key_make(&k, &cl, &vip, 17, 0, 0);
		assert_int_equal(lb_explain(NULL, s, &k, &e), 0);
		lb_addr_str(&s->backends[e.backend].addr, want, sizeof(want));
		assert_string_equal(got1, want);
		for (unsigned j = 0; j < 4; j++) {
			if (!strcmp(seen[j], got1))
				break;
			if (!seen[j][0]) {
				snprintf(seen[j], sizeof(seen[j]), "%s", got1);
				distinct++;
				break;
			}
		}
	}
	assert_true(distinct > 1);
	assert_int_equal(ctr(w, LB_CTR_FRAGMENTS), 128);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 0); /* fragments are not tracked */
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* ICMP errors about a flow go to that flow's backend, tracked (even when the table moved) or not.
 */
static void test_icmp_steering(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL), *s2;
	struct lb_worker *w = worker_new(1 << 14);
	struct lb_worker *fresh = worker_new(1024);
	static struct tbuf b;
	static char fwd[64][LB_ADDR_STRLEN];

	(void)state;
	for (unsigned i = 0; i < 64; i++)
		send_flow(w, s, "198.18.100.9", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x02,
		          NOW_NS, fwd[i]);
	tcfg_backend_add(&c->vips[5], "198.18.2.6", 1);
	tcfg_backend_add(&c->vips[5], "198.18.2.7", 1);
	s2 = snap(c, s, NULL);
	for (unsigned i = 0; i < 64; i++) {
		uint8_t pkt[256];
		uint32_t n = tf_eth(pkt, 0x0800), q;
		char got[LB_ADDR_STRLEN];
		struct lb_frame f;

		n += tf_ip4(pkt + n, "198.18.5.5", "203.0.113.20", 1, 20 + 8 + 20 + 20, 1, 0);
		memcpy(pkt + n, "\x03\x04\x00\x00\x00\x00\x05\x78", 8);
		n += 8;
		q = n;
		n += tf_ip4(pkt + n, "203.0.113.20", "198.18.100.9", 6, 1400, 1, 0x4000);
		n += tf_l4(pkt + n, 6, 80, (uint16_t)(20000 + i), 0x10, 0);
		(void)q;
		f = tbuf_frame(&b, pkt, n);
		assert_int_equal(lb_process(w, s2, &f, NOW_NS + 1), LB_TX);
		assert_string_equal(tf_outer_dst(&f, got), fwd[i]);
		/* Without connection state the table decides, as for the forward direction. */
		f = tbuf_frame(&b, pkt, n);
		assert_int_equal(lb_process(fresh, s, &f, NOW_NS + 1), LB_TX);
		assert_string_equal(tf_outer_dst(&f, got), fwd[i]);
	}
	assert_int_equal(ctr(w, LB_CTR_ICMP_STEERED), 64);
	assert_int_equal(ctr(fresh, LB_CTR_CT_MISS), 64);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS),
	                 64); /* the forward SYNs only: errors insert none */
	lb_worker_destroy(w);
	lb_worker_destroy(fresh);
	snapshot_free(s);
	snapshot_free(s2);
	config_free(c);
}

/* Frag-needed generation is limited to icmp_rate a second, with a burst of as many. */
static void test_icmp_rate_limit(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s;
	struct lb_worker *w = worker_new(1024);
	const struct fixture *fx = NULL;
	static struct tbuf b;
	unsigned tx = 0;

	(void)state;
	c->dataplane.icmp_rate = 3;
	s = snap(c, NULL, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++)
		if (!strcmp(fixtures[i].name, "frag_needed"))
			fx = &fixtures[i];
	assert_non_null(fx);
	for (unsigned i = 0; i < 10; i++) {
		struct lb_frame f = tbuf_frame(&b, fx->in, fx->in_len);

		tx += lb_process(w, s, &f, NOW_NS) == LB_TX;
	}
	assert_int_equal(tx, 3);
	assert_int_equal(ctr(w, LB_CTR_ICMP_RATE_LIMITED), 7);
	for (unsigned i = 0; i < 3; i++) {
		/* A third of a second later one token is back. */
		struct lb_frame f = tbuf_frame(&b, fx->in, fx->in_len);

		assert_int_equal(lb_process(w, s, &f, NOW_NS + (i + 1) * 334000000ull), LB_TX);
		f = tbuf_frame(&b, fx->in, fx->in_len);
		assert_int_equal(lb_process(w, s, &f, NOW_NS + (i + 1) * 334000000ull), LB_DROP);
	}
	assert_int_equal(ctr(w, LB_CTR_TX_ICMP_FRAG_NEEDED), 6);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* Unresolved next hop, missing source address, no backend with weight, too little headroom. */
static void test_counted_drops(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s;
	struct lb_worker *w = worker_new(1024);
	const struct fixture *fx = &fixtures[0];
	static struct tbuf b;
	struct lb_frame f;
	char got[LB_ADDR_STRLEN];

	(void)state;
	assert_string_equal(fx->name, "tcp4_to_backend4");
	c->dataplane.has_nexthop_mac = false;
	c->dataplane.source_ipv6.family = 0;
	c->vips[6].backends[0].weight = 0;
	c->vips[6].backends[1].weight = 0;
	c->vips[6].backends[2].weight = 0;
	c->vips[6].backends[3].weight = 0;
	s = snap(c, NULL, NULL);
	f = tbuf_frame(&b, fx->in, fx->in_len);
	assert_int_equal(lb_process(w, s, &f, NOW_NS), LB_DROP);
	assert_int_equal(ctr(w, LB_CTR_DROP_NEXTHOP_UNRESOLVED), 1);
	for (uint32_t i = 0; i < s->n_nexthops; i++)
		atomic_store_explicit(&s->nexthops[i].mac, LB_NH_VALID | 0x020000000002ull,
		                      memory_order_relaxed);
	f = tbuf_frame(&b, fx->in, fx->in_len);
	assert_int_equal(lb_process(w, s, &f, NOW_NS), LB_TX);
	assert_int_equal(f.len, fx->out_len);
	assert_memory_equal(f.data, fx->out, f.len);

	f = tbuf_frame(&b, fx->in, fx->in_len);
	f.headroom = 8;
	assert_int_equal(lb_process(w, s, &f, NOW_NS), LB_DROP);
	assert_int_equal(ctr(w, LB_CTR_DROP_NO_HEADROOM), 1);

	send_flow(w, s, "198.18.100.7", "203.0.113.11", 6, 1234, 80, 0x02, NOW_NS, got);
	assert_string_equal(got, "");
	assert_int_equal(ctr(w, LB_CTR_DROP_NO_SOURCE_ADDR), 1);

	send_flow(w, s, "198.18.100.7", "203.0.113.21", 17, 1234, 53, 0, NOW_NS, got);
	assert_string_equal(got, "");
	assert_int_equal(ctr(w, LB_CTR_DROP_NO_BACKEND), 1);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/*
 * Flows expire with the injected clock; FIN shortens the timeout, and so does a SYN-only state
 * (refreshed by retransmitted SYNs, ended by the handshake's ACK).
 */
static void test_pipeline_timeouts(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	char got[LB_ADDR_STRLEN];
	const uint64_t sec = 1000000000ull;

	(void)state;
	send_flow(w, s, "198.18.100.7", "203.0.113.21", 17, 5000, 53, 0, NOW_NS, got);
	send_flow(w, s, "198.18.100.7", "203.0.113.21", 17, 5000, 53, 0, NOW_NS + 25 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 1);
	send_flow(w, s, "198.18.100.7", "203.0.113.21", 17, 5000, 53, 0, NOW_NS + 70 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 2);

	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5001, 80, 0x02, NOW_NS, got);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5001, 80, 0x10, NOW_NS + 1 * sec, got);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5001, 80, 0x10, NOW_NS + 200 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 3);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5001, 80, 0x11, NOW_NS + 201 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 4);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5001, 80, 0x10, NOW_NS + 214 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 4);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 4);

	/* SYN-only: SYN, its retransmit 3 s later (a hit), then nothing for 6 s: forgotten. */
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5002, 80, 0x02, NOW_NS, got);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5002, 80, 0x02, NOW_NS + 3 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 5);
	send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 5002, 80, 0x10, NOW_NS + 9 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 5);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 6);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

#define FLOOD_ENTRIES 4096u                   /* connection table of the flood test, flows */
#define FLOOD_LIVE    (FLOOD_ENTRIES * 3 / 5) /* established flows: 60% load */
#define FLOOD_SYNS    (FLOOD_ENTRIES * 16)    /* distinct spoofed SYN-only flows */

/* Spoofed SYN source n: 198.19.0.0/16, port 1024 + n % 256. */
static void flood_client(unsigned n, char *a, size_t len)
{
	snprintf(a, len, "198.19.%u.%u", (n >> 16) & 0xff, (n >> 8) & 0xff);
}

/*
 * The reload case: established flows fill 60% of the table, a SYN flood of 16 times its capacity
 * follows, then a backend is added. Every established flow stays on its backend (none was pushed
 * out, so none is re-hashed onto the new table), the flood evicted only SYN-only entries, and its
 * entries are gone once tcp_syn_timeout has passed.
 */
static void test_syn_flood_reload(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1 = snap(c, NULL, NULL), *s2;
	struct lb_worker *w = worker_new(FLOOD_ENTRIES);
	static char first[FLOOD_LIVE][LB_ADDR_STRLEN];
	static bool live[FLOOD_LIVE];
	struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.20");
	char got[LB_ADDR_STRLEN], a[LB_ADDR_STRLEN];
	const uint64_t sec = 1000000000ull;
	unsigned n_live = 0, moved_in_table = 0;
	uint64_t miss;

	(void)state;
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		uint16_t port = (uint16_t)(10000 + i);

		send_flow(w, s1, "198.18.100.7", "203.0.113.20", 6, port, 80, 0x02, NOW_NS, got);
		send_flow(w, s1, "198.18.100.7", "203.0.113.20", 6, port, 80, 0x10,
		          NOW_NS + sec / 10, first[i]);
		assert_true(first[i][0]);
	}
	/* Some buckets overflowed while filling: the flood must keep the flows left. */
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k;
		struct lb_explanation e;

		lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(10000 + i), 80);
		assert_int_equal(lb_explain(w, s1, &k, &e), 0);
		live[i] = e.tracked && !e.tracked_syn_only;
		n_live += live[i];
	}
	assert_true(n_live > FLOOD_LIVE * 95 / 100);
	assert_int_equal(ctr(w, LB_CTR_CT_EVICTED_SYN), 0);

	/* The flood: SYNs only, from distinct spoofed sources, over 4 s. */
	for (unsigned n = 0; n < FLOOD_SYNS; n++) {
		flood_client(n, a, sizeof(a));
		send_flow(w, s1, a, "203.0.113.20", 6, (uint16_t)(1024 + (n & 0xff)), 80, 0x02,
		          NOW_NS + sec + (uint64_t)n * (4 * sec / FLOOD_SYNS), got);
		assert_true(got[0]);
	}
	assert_true(ctr(w, LB_CTR_CT_EVICTED_SYN) > FLOOD_SYNS / 2);
	assert_true(ctr(w, LB_CTR_CT_SYN_UNTRACKED) > 0);
	assert_int_equal(ctr(w, LB_CTR_CT_EVICTED_ESTABLISHED),
	                 ctr(w, LB_CTR_CT_EVICTED) - ctr(w, LB_CTR_CT_EVICTED_SYN));

	/* A backend added: the table moves some flows; the tracked ones stay where they are. */
	tcfg_backend_add(&c->vips[5], "198.18.2.5", 1);
	s2 = snap(c, s1, NULL);
	for (unsigned i = 0; i < FLOOD_LIVE; i++) {
		struct lb_flow_key k;
		struct lb_explanation e;

		if (!live[i])
			continue;
		lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(10000 + i), 80);
		assert_int_equal(lb_explain(NULL, s2, &k, &e), 0);
		lb_addr_str(&s2->backends[e.table_backend].addr, a, sizeof(a));
		moved_in_table += strcmp(a, first[i]) != 0;
		send_flow(w, s2, "198.18.100.7", "203.0.113.20", 6, (uint16_t)(10000 + i), 80, 0x10,
		          NOW_NS + 6 * sec, got);
		if (strcmp(got, first[i]) != 0)
			fail_msg("established flow %u moved from %s to %s", i, first[i], got);
	}
	assert_true(moved_in_table > n_live / 10);

	/* 5 s after the last SYN the flood's entries have expired: its SYNs miss again. */
	miss = ctr(w, LB_CTR_CT_MISS);
	for (unsigned n = FLOOD_SYNS - 1024; n < FLOOD_SYNS; n++) {
		flood_client(n, a, sizeof(a));
		send_flow(w, s2, a, "203.0.113.20", 6, (uint16_t)(1024 + (n & 0xff)), 80, 0x02,
		          NOW_NS + 11 * sec, got);
	}
	assert_int_equal(ctr(w, LB_CTR_CT_MISS) - miss, 1024);
	lb_worker_destroy(w);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/*
 * conntrack.max_inserts_per_second, from the config to the worker: new flows beyond it in one
 * second are still sent to their table backend, untracked and counted (ct_insert_limited); a
 * second later new flows are tracked again, and tracked ones were never affected.
 */
static void test_insert_cap(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker_params p;
	struct lb_worker *w;
	char got[LB_ADDR_STRLEN];
	const uint64_t sec = 1000000000ull;

	(void)state;
	c->conntrack.max_inserts_per_second = 10;
	lb_worker_params_init(&p, &c->conntrack);
	memcpy(p.mac, TCFG_MAC_ME, 6);
	w = lb_worker_create(&p);
	assert_non_null(w);
	for (unsigned i = 0; i < 15; i++) {
		send_flow(w, s, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x02,
		          NOW_NS, got);
		assert_true(got[0]);
	}
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 15);
	assert_int_equal(ctr(w, LB_CTR_CT_INSERT_LIMITED), 5);
	/* The ten tracked flows hit; the five others miss again and are still over the cap. */
	for (unsigned i = 0; i < 15; i++)
		send_flow(w, s, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x10,
		          NOW_NS + sec / 2, got);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 10);
	assert_int_equal(ctr(w, LB_CTR_CT_INSERT_LIMITED), 10);
	for (unsigned i = 10; i < 15; i++)
		send_flow(w, s, "198.18.100.8", "203.0.113.20", 6, (uint16_t)(20000 + i), 80, 0x10,
		          NOW_NS + 2 * sec, got);
	assert_int_equal(ctr(w, LB_CTR_CT_INSERT_LIMITED), 10);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 25);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* Per backend counters and lb_explain for a flow and for a tuple that is not for a VIP. */
static void test_backend_counters_explain(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.20");
	struct lb_addr other = tcfg_addr("203.0.113.99");
	struct lb_flow_key k;
	struct lb_explanation e;
	const struct lb_backend_counters *bc = lb_worker_backend_counters(w);
	char got[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN];

	(void)state;
	lb_flow_key_make(&k, &cl, &vip, 6, 4242, 80);
	assert_int_equal(lb_explain(w, s, &k, &e), 0);
	assert_int_equal(e.vip, 5);
	assert_false(e.tracked);
	assert_int_equal(e.slot, (uint32_t)(e.hash % 65537));
	assert_int_equal(e.table_backend, s->vips[5].table[e.slot]);
	assert_int_equal(e.backend, e.table_backend);
	for (unsigned i = 0; i < 3; i++) {
		send_flow(w, s, "198.18.100.7", "203.0.113.20", 6, 4242, 80, i ? 0x10 : 0x02,
		          NOW_NS + i, got);
		if (i == 0) { /* the SYN: tracked, SYN-only until the ACK */
			assert_int_equal(lb_explain(w, s, &k, &e), 0);
			assert_true(e.tracked && e.tracked_syn_only && !e.tracked_closing);
		}
	}
	lb_addr_str(&s->backends[e.backend].addr, want, sizeof(want));
	assert_string_equal(got, want);
	assert_int_equal(lb_counter_read(&bc[e.backend].packets), 3);
	assert_int_equal(lb_counter_read(&bc[e.backend].bytes), 3 * 40);
	assert_int_equal(lb_counter_read(&bc[e.backend].flows), 1);
	assert_int_equal(lb_explain(w, s, &k, &e), 0);
	assert_true(e.tracked && e.tracked_usable);
	assert_false(e.tracked_syn_only || e.tracked_closing);
	assert_int_equal(LB_BREF_ID(e.tracked_bref), e.backend);
	assert_true(e.tracked_expires_ns > NOW_NS);
	lb_flow_key_make(&k, &cl, &other, 6, 4242, 80);
	assert_int_equal(lb_explain(w, s, &k, &e), -ENOENT);
	assert_int_equal(e.vip, -1);
	lb_flow_key_make(&k, &cl, &vip, 17, 4242, 80);
	assert_int_equal(lb_explain(w, s, &k, &e), -ENOENT);
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/* The index of the fixture config's VIP named name. */
static uint32_t vip_index(const struct lb_snapshot *s, const char *name)
{
	for (uint32_t i = 0; i < s->n_vips; i++)
		if (!strcmp(s->vips[i].name, name))
			return i;
	fail_msg("no VIP %s", name);
	return 0;
}

/*
 * hash: source. Every connection of one client to srcweb (40 source ports) meets one backend,
 * the one explain names from the key without ports; the 5-tuple VIP tupweb (the same backends,
 * so the same table) spreads the same connections; several clients spread over srcweb too.
 */
static void test_hash_source(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1 << 12);
	struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.30");
	uint32_t si = vip_index(s, "srcweb"), ti = vip_index(s, "tupweb");
	char got[LB_ADDR_STRLEN], first[LB_ADDR_STRLEN], seen[4][LB_ADDR_STRLEN];
	unsigned n_seen = 0;
	struct lb_flow_key k, nk;
	struct lb_explanation e;

	(void)state;
	assert_int_equal(s->vips[si].hash, VIP_HASH_SOURCE);
	assert_int_equal(s->vips[ti].hash, VIP_HASH_5TUPLE);
	/* The same table: the difference below is only what is hashed. */
	assert_int_equal(s->vips[si].table_size, s->vips[ti].table_size);
	for (uint32_t i = 0; i < s->vips[si].table_size; i++)
		assert_true(lb_addr_eq(&s->backends[s->vips[si].table[i]].addr,
		                       &s->backends[s->vips[ti].table[i]].addr));
	lb_flow_key_make(&k, &cl, &vip, 6, 41000, 80);
	lb_flow_key_make(&nk, &cl, &vip, 6, 0, 0);
	assert_int_equal(lb_explain(NULL, s, &k, &e), 0);
	assert_true(e.hash_source);
	assert_true(lb_flow_key_eq(&e.hash_key, &nk));
	assert_true(e.hash == lb_flow_hash(&nk, s->hash_seed));
	assert_int_equal(e.slot, (uint32_t)(e.hash % s->vips[si].table_size));
	lb_addr_str(&s->backends[e.table_backend].addr, first, sizeof(first));
	for (unsigned i = 0; i < 40; i++) {
		uint16_t port = (uint16_t)(41000 + 97 * i);

		send_flow(w, s, "198.18.100.7", "203.0.113.30", 6, port, 80, 0x02, NOW_NS, got);
		assert_string_equal(got, first);
		/* Later packets too, from the flow's own entry. */
		send_flow(w, s, "198.18.100.7", "203.0.113.30", 6, port, 80, 0x10, NOW_NS, got);
		assert_string_equal(got, first);
		send_flow(w, s, "198.18.100.7", "203.0.113.31", 6, port, 80, 0x02, NOW_NS, got);
		for (unsigned j = 0; j <= n_seen && j < ARRAY_SIZE(seen); j++) {
			if (j == n_seen) {
				snprintf(seen[n_seen++], sizeof(seen[0]), "%s", got);
				break;
			}
			if (!strcmp(seen[j], got))
				break;
		}
	}
	/* A 5-tuple VIP: the 40 connections of the client land on more than one backend. */
	assert_true(n_seen > 1);
	/* Each connection is still a flow of its own: 80 table misses, 40 hits. */
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), 80);
	assert_int_equal(ctr(w, LB_CTR_CT_HIT), 40);
	n_seen = 0;
	for (unsigned i = 0; i < 40; i++) {
		char cl_s[LB_ADDR_STRLEN];

		snprintf(cl_s, sizeof(cl_s), "198.18.101.%u", i + 1);
		send_flow(w, s, cl_s, "203.0.113.30", 6, 41000, 80, 0x02, NOW_NS, got);
		n_seen += strcmp(got, first) != 0;
	}
	/* Clients of other addresses spread over the backends. */
	assert_in_range(n_seen, 10, 39);
	/* explain of the 5-tuple VIP: the flow key itself. */
	vip = tcfg_addr("203.0.113.31");
	lb_flow_key_make(&k, &cl, &vip, 6, 41000, 80);
	assert_int_equal(lb_explain(NULL, s, &k, &e), 0);
	assert_false(e.hash_source);
	assert_true(lb_flow_key_eq(&e.hash_key, &k));
	assert_true(e.hash == lb_flow_hash(&k, s->hash_seed));
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/*
 * The connection table keeps hashing flows apart for a source VIP: 400 connections of one client
 * fill a 1024-flow table to 40% with no eviction (one bucket pair would hold 16), each tracked.
 */
static void test_hash_source_tracked_apart(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s = snap(c, NULL, NULL);
	struct lb_worker *w = worker_new(1024);
	struct lb_addr cl = tcfg_addr("198.18.100.7"), vip = tcfg_addr("203.0.113.30");
	char got[LB_ADDR_STRLEN];

	(void)state;
	for (unsigned i = 0; i < N_FLOWS; i++)
		send_flow(w, s, "198.18.100.7", "203.0.113.30", 6, (uint16_t)(20000 + i), 80, 0x10,
		          NOW_NS, got);
	assert_int_equal(ctr(w, LB_CTR_CT_MISS), N_FLOWS);
	assert_int_equal(ctr(w, LB_CTR_CT_EVICTED), 0);
	for (unsigned i = 0; i < N_FLOWS; i++) {
		struct lb_flow_key k;
		struct lb_explanation e;

		lb_flow_key_make(&k, &cl, &vip, 6, (uint16_t)(20000 + i), 80);
		assert_int_equal(lb_explain(w, s, &k, &e), 0);
		assert_true(e.tracked && e.tracked_usable);
	}
	lb_worker_destroy(w);
	snapshot_free(s);
	config_free(c);
}

/*
 * Second chance on a source VIP: after a backend is added, every connection of a client that
 * moved carries the client's previous owner (the old table's slot of the key without ports),
 * and all its connections the same one.
 */
static void test_hash_source_second_chance(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2;
	struct lb_worker *w = worker_new(1 << 14);
	static struct tbuf b;
	uint32_t si;
	unsigned moved = 0;

	(void)state;
	for (si = 0; strcmp(c->vips[si].name, "srcweb"); si++)
		;
	c->vips[si].second_chance = true;
	s1 = snap(c, NULL, NULL);
	tcfg_backend_add(&c->vips[si], "198.18.3.5", 1);
	s2 = snap(c, s1, NULL);
	for (unsigned ci = 0; ci < 40; ci++) {
		char client[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN] = "", pri[LB_ADDR_STRLEN];
		struct lb_addr cl, vip = tcfg_addr("203.0.113.30");
		struct lb_flow_key k;
		struct lb_explanation e;
		uint16_t old;

		snprintf(client, sizeof(client), "198.18.102.%u", ci + 1);
		cl = tcfg_addr(client);
		lb_flow_key_make(&k, &cl, &vip, 6, 0, 0);
		old = s1->vips[si].table[lb_flow_hash(&k, s1->hash_seed) % s1->vips[si].table_size];
		lb_flow_key_make(&k, &cl, &vip, 6, 1234, 80);
		assert_int_equal(lb_explain(NULL, s2, &k, &e), 0);
		lb_addr_str(&s2->backends[e.table_backend].addr, pri, sizeof(pri));
		if (!lb_addr_eq(&s1->backends[old].addr, &s2->backends[e.table_backend].addr))
			lb_addr_str(&s1->backends[old].addr, want, sizeof(want));
		moved += want[0] != 0;
		for (unsigned p = 0; p < 5; p++) {
			uint8_t pkt[128];
			uint32_t n = tf_flow4(pkt, client, "203.0.113.30", 6,
			                      (uint16_t)(30000 + 11 * p), 80, 0x10);
			struct lb_frame f = tbuf_frame(&b, pkt, n);
			char got[LB_ADDR_STRLEN];

			assert_int_equal(lb_process(w, s2, &f, NOW_NS), LB_TX);
			assert_string_equal(tf_outer_dst(&f, got), pri);
			assert_string_equal(sent_secondary(&f, pkt + 14, n - 14, got), want);
		}
	}
	/* About the fifth of the clients, whose slots the new backend took. */
	assert_in_range(moved, 2, 20);
	assert_int_equal(ctr(w, LB_CTR_TX_SECOND_CHANCE), 5 * moved);
	lb_worker_destroy(w);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

/*
 * A reload that changes only a VIP's hash mode moves flows to other slots as a new backend set
 * would: the table the flows were hashed onto with the old mode is the previous generation, and
 * second chance looks a flow up there with the old mode's key. Here the 5-tuple VIP tupweb
 * becomes hash: source; each flow's secondary is the backend the old mode gave it (computed from
 * the old snapshot's table directly), wherever the new mode puts it elsewhere.
 */
static void test_hash_mode_change_second_chance(void **state)
{
	struct config *c = tcfg_fixture();
	struct lb_snapshot *s1, *s2;
	struct lb_worker *w = worker_new(1 << 14);
	static struct tbuf b;
	unsigned moved = 0, flows = 0;
	uint32_t ti;

	(void)state;
	for (ti = 0; strcmp(c->vips[ti].name, "tupweb"); ti++)
		;
	c->vips[ti].second_chance = true;
	s1 = snap(c, NULL, NULL);
	c->vips[ti].hash = VIP_HASH_SOURCE;
	s2 = snap(c, s1, NULL);
	assert_int_equal(s2->vips[ti].prev_origin, LB_PREV_SNAPSHOT);
	assert_int_equal(s2->vips[ti].prev.hash, VIP_HASH_5TUPLE);
	assert_int_equal(s2->vips[ti].hash, VIP_HASH_SOURCE);
	for (unsigned ci = 0; ci < 20; ci++)
		for (unsigned p = 0; p < 4; p++) {
			char client[LB_ADDR_STRLEN], want[LB_ADDR_STRLEN] = "", got[LB_ADDR_STRLEN];
			struct lb_addr cl, vip = tcfg_addr("203.0.113.31");
			uint16_t sport = (uint16_t)(31000 + 7 * p + ci), old, now;
			struct lb_flow_key k;
			uint8_t pkt[128];
			uint32_t n;
			struct lb_frame f;

			snprintf(client, sizeof(client), "198.18.103.%u", ci + 1);
			cl = tcfg_addr(client);
			lb_flow_key_make(&k, &cl, &vip, 6, sport, 80);
			old = s1->vips[ti]
			          .table[lb_flow_hash(&k, s1->hash_seed) % s1->vips[ti].table_size];
			lb_flow_key_make(&k, &cl, &vip, 6, 0, 0);
			now = s2->vips[ti]
			          .table[lb_flow_hash(&k, s2->hash_seed) % s2->vips[ti].table_size];
			if (!lb_addr_eq(&s1->backends[old].addr, &s2->backends[now].addr))
				lb_addr_str(&s1->backends[old].addr, want, sizeof(want));
			moved += want[0] != 0;
			flows++;
			n = tf_flow4(pkt, client, "203.0.113.31", 6, sport, 80, 0x10);
			f = tbuf_frame(&b, pkt, n);
			assert_int_equal(lb_process(w, s2, &f, NOW_NS), LB_TX);
			assert_string_equal(sent_secondary(&f, pkt + 14, n - 14, got), want);
		}
	/* Four backends: about three flows in four meet another one under the new mode. */
	assert_in_range(moved, flows / 2, flows - 1);
	assert_int_equal(ctr(w, LB_CTR_TX_SECOND_CHANCE), moved);
	lb_worker_destroy(w);
	snapshot_free(s1);
	snapshot_free(s2);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixtures),
	    cmocka_unit_test(test_hash_mode_change_second_chance),
	    cmocka_unit_test(test_fixtures_batch),
	    cmocka_unit_test(test_refused_untracked),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_flow_hash_layout),
	    cmocka_unit_test(test_flow_hash_secret),
	    cmocka_unit_test(test_vip4_find),
	    cmocka_unit_test(test_stickiness),
	    cmocka_unit_test(test_second_chance),
	    cmocka_unit_test(test_second_chance_v6),
	    cmocka_unit_test(test_fragments_same_backend),
	    cmocka_unit_test(test_icmp_steering),
	    cmocka_unit_test(test_icmp_rate_limit),
	    cmocka_unit_test(test_counted_drops),
	    cmocka_unit_test(test_pipeline_timeouts),
	    cmocka_unit_test(test_syn_flood_reload),
	    cmocka_unit_test(test_insert_cap),
	    cmocka_unit_test(test_backend_counters_explain),
	    cmocka_unit_test(test_hash_source),
	    cmocka_unit_test(test_hash_source_tracked_apart),
	    cmocka_unit_test(test_hash_source_second_chance),
	};

	return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
