/* SPDX-License-Identifier: GPL-2.0-only */
/* Where maglevd and maglevctl find their BPF objects: $MAGLEV_BPF_DIR, the build tree, installed.
 */
#ifndef MAGLEV_IO_BPFOBJ_H
#define MAGLEV_IO_BPFOBJ_H

#include <stddef.h>

#define BPFOBJ_DIR_ENV "MAGLEV_BPF_DIR" /* a directory that overrides every other place */

/* Where `make install` puts the BPF objects: $(PREFIX)/lib/maglevd/bpf, fixed at build time. */
extern const char bpfobj_dir_installed[];

/*
 * Writes into path where the BPF object file name is: $MAGLEV_BPF_DIR/name when that variable is
 * set and not empty (nowhere else then, so a test can point at a broken or missing object), else
 * <directory of the running binary>/bpf/name when it is readable (a build tree: build/maglevd
 * next to build/bpf/), else bpfobj_dir_installed/name. Returns 0 if path is readable, -ENOENT if
 * not (path then names the last place looked, for the error message), -ENAMETOOLONG if it does
 * not fit in len.
 */
int bpfobj_path(const char *name, char *path, size_t len);

#endif
