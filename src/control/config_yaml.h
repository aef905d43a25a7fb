/* SPDX-License-Identifier: GPL-2.0-only */
/* Reading a maglevd config file (YAML, libyaml) into the validated model of core/config.h. */
#ifndef MAGLEV_CONTROL_CONFIG_YAML_H
#define MAGLEV_CONTROL_CONFIG_YAML_H

#include <stddef.h>

#include "core/config.h"

#define CONFIG_FILE_MAX  (16u << 20) /* bytes; larger config files are refused (-EFBIG) */
#define CONFIG_DEPTH_MAX 16u         /* nesting of YAML mappings and sequences */
#define CONFIG_NODES_MAX (1u << 21)  /* YAML scalars, lists and mappings per file */

/*
 * Reads and validates the file at path, which must be a regular file (a FIFO or device is refused
 * without blocking). An empty file, or one without a `vips` section, is an error. On success *out
 * owns a new config (config_free) and 0 is returned; on failure a negative errno and err holds one
 * line: "FILE:LINE: what is wrong 'value'".
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* Same, from a buffer; name stands for the file name in messages. */
int config_parse(const char *text, size_t len, const char *name, struct config **out, char *err,
                 size_t errlen);

/*
 * Checks what the data plane needs beyond what config_parse validates (offline tools such as
 * `maglevctl table` accept configs without a dataplane section): an interface, source_ipv4 if any
 * backend is IPv4, source_ipv6 if any backend is IPv6, and an MTU of at least 1280 if any VIP or
 * backend is IPv6. Returns 0, or -EINVAL with one line in err.
 */
int config_check_dataplane(const struct config *c, char *err, size_t errlen);

/*
 * config_load, then config_check_dataplane: what a running maglevd accepts, at start and on every
 * reload alike. Same contract as config_load.
 */
int config_load_daemon(const char *path, struct config **out, char *err, size_t errlen);

#endif
