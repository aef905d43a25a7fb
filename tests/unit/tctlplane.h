/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A control plane run by a test as maglevd runs it: the first snapshot built from a config file,
 * ctlplane_create with the test's hooks, ctlplane_run on a thread of its own until stopped. Include
 * after <cmocka.h>: a failure fails the calling test.
 */
#ifndef MAGLEV_TESTS_UNIT_TCTLPLANE_H
#define MAGLEV_TESTS_UNIT_TCTLPLANE_H

#include <pthread.h>
#include <stdatomic.h>

#include "control/config_yaml.h"
#include "control/ctlsock.h"
#include "maglevd/ctlplane.h"

#define TCTL_RUN_MS 10 /* one ctlplane_run wait: how soon a stop is seen */

struct tctl {
	struct ctlplane *cp;
	atomic_bool stop;
	pthread_t thread;
};

static void *tctl_thread(void *arg)
{
	struct tctl *t = arg;

	while (!atomic_load(&t->stop))
		if (ctlplane_run(t->cp, TCTL_RUN_MS) < 0)
			break;
	return NULL;
}

/* Starts a control plane on config file cfg_path with hooks h, its thread running. */
static inline void tctl_start(struct tctl *t, const char *cfg_path, const struct ctlplane_hooks *h)
{
	char err[CTL_ERR_MAX];
	struct lb_snapshot *first;
	struct config *cfg;

	if (config_load(cfg_path, &cfg, err, sizeof(err)) < 0)
		fail_msg("config_load: %s", err);
	if (ctlplane_build_first(cfg, &first, err, sizeof(err)) < 0)
		fail_msg("first snapshot: %s", err);
	if (ctlplane_create(&t->cp, cfg_path, cfg, first, h, err, sizeof(err)) < 0)
		fail_msg("ctlplane_create: %s", err);
	atomic_store(&t->stop, false);
	assert_int_equal(pthread_create(&t->thread, NULL, tctl_thread, t), 0);
}

/* Stops what tctl_start started, as a maglevd stop would. */
static inline void tctl_stop(struct tctl *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	ctlplane_destroy(t->cp, NULL, NULL);
	t->cp = NULL;
}

#endif
