/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness over the forwarding pipeline: any bytes as a received frame, in a buffer of
 * exactly that size (plus headroom), with a fixed config. Must never crash, read or write out of
 * bounds, or send a frame outside the buffer. Seeds: tests/fuzz/corpus/fuzz_pipeline/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pipeline.h"
#include "core/snapshot.h"
#include "tests/unit/tcfg.h"

static struct lb_snapshot *snap;
static struct lb_worker *worker;
static uint64_t clock_ns;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config *c = tcfg_fixture();
	struct lb_worker_params p = {
	    .ct_entries = 4096,
	    .tcp_timeout = 300,
	    .tcp_fin_timeout = 10,
	    .tcp_syn_timeout = 5,
	    .udp_timeout = 30,
	    .icmp_timeout = 10,
	};
	char err[256];

	(void)argc;
	(void)argv;
	/* Small tables so fuzzing stays fast; a small MTU so "too big" paths are reached. */
	c->vips[5].table_size = 251;
	c->dataplane.mtu = 576;
	c->dataplane.icmp_rate = 1000000;
	memcpy(p.mac, TCFG_MAC_ME, 6);
	if (snapshot_build(c, NULL, NULL, &snap, err, sizeof(err)) != 0)
		abort();
	worker = lb_worker_create(&p);
	if (!worker)
		abort();
	config_free(c);
	return 0;
}

static void check(const struct lb_frame *f, const uint8_t *mem, size_t cap, enum lb_verdict v)
{
	if (v != LB_TX)
		return;
	if (f->data < mem || f->data + f->len > mem + cap || f->len < 14)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *mem;
	struct lb_frame f;
	enum lb_verdict v;

	if (size > 65535)
		return 0;
	clock_ns += 50000000ull; /* 50 ms a frame: timeouts and the ICMP bucket move */
	mem = malloc(LB_HEADROOM + size);
	if (!mem)
		return 0;
	memcpy(mem + LB_HEADROOM, data, size);
	f = (struct lb_frame){mem + LB_HEADROOM, (uint32_t)size, LB_HEADROOM};
	v = lb_process(worker, snap, &f, clock_ns);
	check(&f, mem, LB_HEADROOM + size, v);
	/* The same frame through the batch path, twice in one batch (the second may hit). */
	{
		uint8_t *m2 = malloc(2 * (LB_HEADROOM + size));
		struct lb_frame fb[2];
		enum lb_verdict vb[2];

		if (m2) {
			for (unsigned i = 0; i < 2; i++) {
				uint8_t *base = m2 + i * (LB_HEADROOM + size);

				memcpy(base + LB_HEADROOM, data, size);
				fb[i] = (struct lb_frame){base + LB_HEADROOM, (uint32_t)size,
				                          LB_HEADROOM};
			}
			lb_process_batch(worker, snap, fb, vb, 2, clock_ns);
			for (unsigned i = 0; i < 2; i++)
				check(&fb[i], m2 + i * (LB_HEADROOM + size), LB_HEADROOM + size,
				      vb[i]);
			free(m2);
		}
	}
	free(mem);
	return 0;
}
