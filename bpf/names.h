/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * BPF side only: ties an identifier the program declares (a map, the program's function) to the
 * string its loader looks it up by (bpf/xdp_*.h). C needs the identifier written out in the
 * declaration; this check makes a rename on either side a build error.
 */
#ifndef MAGLEV_BPF_NAMES_H
#define MAGLEV_BPF_NAMES_H

/* Fails to compile unless ident is declared and spelled exactly as the string name. */
#define BPF_NAME_IS(ident, name)                                                                   \
	_Static_assert(sizeof(&(ident)) != 0 && __builtin_strcmp(#ident, name) == 0,               \
	               #ident " is not named " name)

#endif
