/* SPDX-License-Identifier: GPL-2.0-only */
/* libFuzzer harness: config_parse over arbitrary bytes must not crash, leak or accept nonsense. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/config_yaml.h"
#include "core/maglev.h"

/* What config_parse promises about a config it accepts; a broken promise aborts the run. */
static void config_assert_valid(const struct config *c)
{
	if (!maglev_size_valid(c->table_size) || c->n_vips > CONFIG_VIPS_MAX)
		abort();
	for (uint32_t i = 0; i < c->n_vips; i++) {
		const struct config_vip *v = &c->vips[i];

		if (!maglev_size_valid(v->table_size) || v->n_backends == 0 ||
		    v->n_backends > CONFIG_BACKENDS_MAX || v->name[0] == '\0' ||
		    strnlen(v->name, CONFIG_NAME_MAX) == CONFIG_NAME_MAX)
			abort();
		if (v->health.type != HC_NONE &&
		    (v->health.port == 0 || v->health.timeout_ms >= v->health.interval_ms))
			abort();
		for (uint32_t j = 0; j < v->n_backends; j++) {
			const struct config_backend *b = &v->backends[j];

			if (b->weight > MAGLEV_WEIGHT_MAX ||
			    (b->addr.family != AF_INET && b->addr.family != AF_INET6))
				abort();
			for (uint32_t k = 0; k < j; k++)
				if (lb_addr_eq(&b->addr, &v->backends[k].addr))
					abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct config *c = NULL;
	int r = config_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof(err));

	if (r == 0) {
		config_assert_valid(c);
		config_check_dataplane(c, err, sizeof(err));
	} else if (c || strncmp(err, "fuzz.yaml", strlen("fuzz.yaml")) != 0 || strchr(err, '\n')) {
		/* A failure leaves no config and one line naming the file. */
		abort();
	}
	config_free(c);
	return 0;
}
