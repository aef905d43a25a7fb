/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * `maglevctl decap attach|detach|status`: the command line of the backend-side GRE decapsulation
 * loader (src/io/decap.h).
 */
#ifndef MAGLEV_MAGLEVCTL_DECAP_H
#define MAGLEV_MAGLEVCTL_DECAP_H

#include <stddef.h>

/*
 * `maglevctl decap attach DEV (-c CONFIG | --vip ADDR ...) [--mode native|skb]`,
 * `maglevctl decap detach DEV`, `maglevctl decap status DEV`: a row of maglevctl's command
 * table. argv[0] is "decap". Prints results (or the help text, for --help) on stdout; returns 0,
 * or a negative errno with one line in err (a verifier rejection also prints the verifier log on
 * stderr first).
 */
int decap_run(int argc, char **argv, char *err, size_t errlen);

#endif
