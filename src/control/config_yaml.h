/* Reading a maglevd config file (YAML, libyaml) into the validated model of core/config.h. */
#ifndef MAGLEV_CONTROL_CONFIG_YAML_H
#define MAGLEV_CONTROL_CONFIG_YAML_H

#include <stddef.h>

#include "core/config.h"

/*
 * Reads and validates the file at path. On success *out owns a new config (config_free) and 0 is
 * returned; on failure a negative errno and err holds one line: "FILE:LINE: what is wrong 'value'".
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* Same, from a buffer; name stands for the file name in messages. */
int config_parse(const char *text, size_t len, const char *name, struct config **out, char *err,
		 size_t errlen);

#endif
