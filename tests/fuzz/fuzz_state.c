/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness: state_decode over arbitrary bytes (a damaged or hostile state file) must not
 * crash or leak, must keep what it accepts within its limits, and a first snapshot built from
 * what it accepted must always build (a state file never stops a start). The snapshot's own state
 * then decodes again. Seeds: tests/fuzz/corpus/fuzz_state/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/maglev.h"
#include "maglevd/state.h"
#include "tests/unit/tcfg.h"

#define FUZZ_TABLE_SIZE 251u /* the fixed config's table size: small, so builds are quick */

static struct config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two VIPs the seeds name ("web", "dns"), each with backends the seeds have. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const web[] = {"198.18.1.11", "198.18.1.12", "198.18.1.13"};
	static const char *const dns[] = {"2001:db8:1::11", "198.18.1.12"};

	(void)argc;
	(void)argv;
	cfg = tcfg_new();
	cfg->table_size = FUZZ_TABLE_SIZE;
	tcfg_dataplane(cfg);
	tcfg_vip(cfg, "web", "203.0.113.10", IPPROTO_TCP, 80, web, 3, 0)->second_chance = true;
	tcfg_vip(cfg, "dns", "203.0.113.11", IPPROTO_UDP, 53, dns, 2, 0);
	return 0;
}

/* What state_decode promises about a history it accepts; a broken promise aborts the run. */
static void gen_assert_valid(const struct lb_gen *g, bool optional)
{
	if (optional && g->table_size == 0 && !g->backends)
		return;
	if (!maglev_size_valid(g->table_size) || g->n_backends == 0 ||
	    g->n_backends > CONFIG_BACKENDS_MAX)
		abort();
	for (uint32_t i = 0; i < g->n_backends; i++)
		if (g->backends[i].weight > MAGLEV_WEIGHT_MAX ||
		    (g->backends[i].addr.family != AF_INET &&
		     g->backends[i].addr.family != AF_INET6))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_history h;
	struct snapshot_state st = {.history = &h};
	struct lb_snapshot *s = NULL;
	char err[STATE_ERR_MAX];
	size_t len;
	char *text;

	if (state_decode((const char *)data, size, &h, err, sizeof(err)) < 0) {
		/* A refusal keeps nothing and says why in one line. */
		if (h.v || h.n || !err[0] || strchr(err, '\n'))
			abort();
		return 0;
	}
	if (h.n > CONFIG_VIPS_MAX)
		abort();
	for (uint32_t i = 0; i < h.n; i++) {
		if (!h.v[i].name[0] || strnlen(h.v[i].name, CONFIG_NAME_MAX) == CONFIG_NAME_MAX)
			abort();
		gen_assert_valid(&h.v[i].current, false);
		gen_assert_valid(&h.v[i].previous, true);
	}
	/* Under the history's own seed, so that its generations are rebuilt and compared. */
	cfg->hash_seed = h.hash_seed;
	if (snapshot_build(cfg, NULL, &st, &s, err, sizeof(err)) < 0)
		abort();
	state_history_free(&h);
	text = state_encode(s, &len);
	if (!text || state_decode(text, len, &h, err, sizeof(err)) < 0 || h.n != s->n_vips)
		abort();
	state_history_free(&h);
	free(text);
	snapshot_free(s);
	return 0;
}
