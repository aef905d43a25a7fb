/* SPDX-License-Identifier: GPL-2.0-only */
/* Offline views of a config's Maglev tables: `maglevctl table` and `maglevctl diff` (no daemon). */
#ifndef MAGLEV_MAGLEVCTL_OFFLINE_H
#define MAGLEV_MAGLEVCTL_OFFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

/* One VIP's table as every maglevd with this config builds it. */
struct offline_table {
	uint32_t table_size; /* M */
	uint16_t *table;     /* M indices into vip->backends, MAGLEV_EMPTY if all weights are 0 */
	uint32_t *slots;     /* slots per backend, vip->n_backends entries */
	uint64_t digest;     /* maglev_digest, by backend address */
};

/*
 * Builds v's table with c's hash_seed (backend key: lb_addr bytes, 4 for IPv4, 16 for IPv6).
 * On success out owns memory (offline_table_free). Negative errno on failure.
 */
int offline_table_build(const struct config *c, const struct config_vip *v,
                        struct offline_table *out);
void offline_table_free(struct offline_table *t);

enum offline_vip_status {
	OFFLINE_VIP_BOTH,    /* in both configs (matched by name) */
	OFFLINE_VIP_ADDED,   /* only in the new config */
	OFFLINE_VIP_REMOVED, /* only in the old config */
};

/*
 * What a config change does to one VIP's flows (docs/maglev.md, "maglevctl diff").
 * changed: flows whose backend address differs between the old and the new table. excess: changed
 * less the least that any tables with these slot counts must move, the sum over backends of
 * max(0, old share - new share) (a removed or drained backend's whole share, a backend's loss to
 * one added or given more weight): flows moved that did not have to.
 * With the same table size and hash_seed a flow keeps its slot and the counts are slots of M.
 * Otherwise (size_changed, seed_changed or hash_changed) slot i of the old table and slot j of the
 * new one serve a share 1/(M_old * M_new) of all flows; the shares are summed over all pairs and
 * the counts reported in slots of the new table (rounded). ADDED and REMOVED VIPs count every slot
 * of the table they have as changed, none as excess.
 */
struct offline_vip_diff {
	char name[CONFIG_NAME_MAX];
	enum offline_vip_status status;
	uint32_t old_size; /* 0 if ADDED */
	uint32_t new_size; /* 0 if REMOVED */
	bool size_changed; /* BOTH with old_size != new_size */
	bool seed_changed; /* BOTH, and the configs' hash_seed differ: every flow is hashed anew */
	bool hash_changed; /* BOTH, and the VIP's hash (5-tuple, source) differs: the same */
	uint64_t changed_slots;
	uint64_t excess_slots;
	double changed_pct; /* % of flows (of M when the sizes agree) */
	double excess_pct;
};

/* Diff of one VIP present in both configs. Negative errno on failure. */
int offline_vip_diff(const struct config *oldc, const struct config_vip *ov,
                     const struct config *newc, const struct config_vip *nv,
                     struct offline_vip_diff *out);

/*
 * Diffs of every VIP: those of the old config in its order (BOTH or REMOVED), then the ADDED ones
 * in the new config's order. *out is malloc'ed (free it); *n_out entries.
 */
int offline_diff(const struct config *oldc, const struct config *newc,
                 struct offline_vip_diff **out, uint32_t *n_out);

/*
 * Prints the tables of c (only the VIP named vip if not NULL) as aligned text or as JSON
 * {"vips":[{"name","address","protocol","port","hash","table_size","digest",
 *           "backends":[{"address","weight","slots"}]}]}.
 * -ENOENT with err set if no VIP has that name.
 */
int offline_table_print(FILE *out, const struct config *c, const char *vip, bool json, char *err,
                        size_t errlen);

/*
 * Prints offline_diff as aligned text or as JSON {"vips":[{"name","status","old_table_size",
 * "new_table_size","changed_slots","changed_pct","excess_slots","excess_pct"}]}.
 */
int offline_diff_print(FILE *out, const struct config *oldc, const struct config *newc, bool json,
                       char *err, size_t errlen);

/* `maglevctl table` and `maglevctl diff`: argv[0] is the subcommand name (maglevctl/command.h). */
int offline_table_run(int argc, char **argv, char *err, size_t errlen);
int offline_diff_run(int argc, char **argv, char *err, size_t errlen);

#endif
