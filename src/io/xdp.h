/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One XDP program on one interface, through libxdp, for both of our programs (the data plane's
 * xdp_vip, the backends' xdp_decap): finding ours among what is attached (alone or behind
 * libxdp's dispatcher), loading and attaching it (native XDP, else generic), detaching it; and
 * the libbpf/libxdp message hooks, which log through base/log and keep the last messages.
 */
#ifndef MAGLEV_IO_XDP_H
#define MAGLEV_IO_XDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xdp/libxdp.h>

#include "base/log.h"

#define XPROG_NAME_MAX 64u /* bytes of a foreign program's name we keep (kernel: 16) */

/* Which attached program is ours. */
struct xprog_match {
	const char *name;        /* the program's function name */
	const char *const *maps; /* it uses a map of each of these names (a namesake is not ours) */
	unsigned n_maps;         /* 0: the name alone decides */
};

enum xprog_mode {
	XPROG_MODE_AUTO,   /* native (driver) XDP; generic (SKB) XDP where the driver refuses */
	XPROG_MODE_NATIVE, /* native only */
	XPROG_MODE_SKB,    /* generic only */
};

/* What xprog_find saw on an interface; xprog_found_close releases it. */
struct xprog_found {
	struct xdp_multiprog *mp;  /* what is attached; NULL if nothing is */
	struct xdp_program *prog;  /* ours (owned by mp), NULL if not attached */
	enum xdp_attach_mode mode; /* where prog runs */
	bool dispatcher;           /* prog is a component of libxdp's dispatcher */
	/* A foreign program attached alone, "" if none: ours cannot join it (only a dispatcher is
	 * shared). */
	char other[XPROG_NAME_MAX];
};

/* A program this process loaded and attached (xprog_attach). */
struct xprog {
	struct xdp_program *prog; /* NULL when nothing is loaded */
	int ifindex;
	enum xdp_attach_mode mode; /* native or SKB: where it was attached */
};

/*
 * Looks at what is attached to ifindex for the program m describes: the one attached alone, each
 * component of a dispatcher, the offloaded one. Returns 1 with f->prog set, 0 if ours is not there
 * (f->mp may still hold what is), negative errno if the interface's programs cannot be read.
 * f is always initialised: xprog_found_close(f) whatever the result.
 */
int xprog_find(int ifindex, const struct xprog_match *m, struct xprog_found *f);
void xprog_found_close(struct xprog_found *f);

/* Where f->prog runs: "native", "skb", "hw", or "multi" (behind libxdp's dispatcher). */
const char *xprog_found_mode(const struct xprog_found *f);

/* Detaches f->prog (and only it) from ifindex. Negative errno (libxdp's) on failure. */
int xprog_found_detach(struct xprog_found *f, int ifindex);

/* A new fd (the caller closes it) of the map called name that the loaded program p uses. */
int xprog_map_fd(const struct xdp_program *p, const char *name);

/*
 * PID of a process other than this one holding the BPF program id open, 0 if none (a program
 * attached with nobody holding it was left by a process that died). Best effort over what /proc
 * shows (our PID namespace); unreadable entries are skipped.
 */
long xprog_holder(uint32_t id);

/*
 * Opens the BPF object at path and attaches its program of section sec to ifindex in mode (the
 * interface's existing programs are libxdp's to judge: it joins a dispatcher where one can be
 * made, else attaches the program alone). In XPROG_MODE_AUTO a
 * program the driver refuses in native mode is attached in generic mode; one that did not load
 * (verifier) is not tried again. On success x holds it (xprog_detach or xprog_close). On failure
 * x holds nothing, err has one line, and *load_failed (if not NULL) says whether the object did
 * not open or load: the library messages kept (xprog_log_kept) then say why. Negative errno.
 */
int xprog_attach(struct xprog *x, const char *path, const char *sec, int ifindex,
                 enum xprog_mode mode, bool *load_failed, char *err, size_t errlen);

/* Called on the opened object before it is loaded (map sizes): 0 or a negative errno. */
typedef int (*xprog_prepare_fn)(struct bpf_object *obj, void *arg);

/* xprog_attach with prepare(obj, arg) run between opening and loading the object. */
int xprog_attach_prepared(struct xprog *x, const char *path, const char *sec, int ifindex,
                          enum xprog_mode mode, xprog_prepare_fn prepare, void *arg,
                          bool *load_failed, char *err, size_t errlen);

/* The fd of the map called name of x's object (owned by it: not to be closed); -ENOENT. */
int xprog_obj_map_fd(const struct xprog *x, const char *name);

/* Detaches x's program and closes it. Negative errno if the detach failed (it is closed anyway). */
int xprog_detach(struct xprog *x);

/* Closes x's program and leaves it attached (it stays after the process exits). */
void xprog_close(struct xprog *x);

const char *xprog_mode_name(enum xdp_attach_mode m);

/*
 * libbpf's and libxdp's messages (both libraries have one process-wide print hook; ours is set by
 * the first xprog call). Each line is logged with the library's own prefix ("libbpf: ", "libxdp:
 * "). Their warnings are logged at LOG_LEVEL_WARN, except while an xprog call runs on the thread
 * (its failure is reported as one line by the caller) and libxdp's notices that bpffs is not
 * mounted (it then attaches the program alone, which is what we want): those at LOG_LEVEL_DEBUG,
 * like the libraries' info and debug messages. Warnings (not the bpffs notices) are also kept:
 * the last XPROG_LOG_KEEP bytes since xprog_attach began, for reporting why a program did not
 * load (libbpf's messages and the verifier's log).
 */
#define XPROG_LOG_KEEP 16384u /* bytes of library messages kept */

/*
 * Brackets a libbpf call made outside xprog (a tc program, src/io/hctunnel.c) the way every xprog
 * call is: the hooks installed, the kept messages cleared, warnings kept for the caller's report.
 */
void xprog_lib_enter(void);
void xprog_lib_leave(void);

/* The messages kept, whole lines each ending in '\n' ("" if none), until the libraries print again.
 */
const char *xprog_log_kept(void);

/* Logs each line kept at level. */
void xprog_log_dump(enum log_level level);

#endif
