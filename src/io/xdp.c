/* SPDX-License-Identifier: GPL-2.0-only */
/* XDP programs through libxdp: find ours on an interface, attach, detach; the libraries' messages.
 */
#include "io/xdp.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define XPROG_MAP_IDS_MAX 16u  /* maps of an attached program that we look through */
#define XPROG_ERR_MAX     256u /* bytes of one libxdp error string */

/*
 * The library messages kept (whole lines, the oldest dropped first) for xprog_log_kept. Any
 * thread may be in a library when it prints, hence the lock.
 */
static pthread_mutex_t xprog_kept_lock = PTHREAD_MUTEX_INITIALIZER;
static char xprog_kept[XPROG_LOG_KEEP];
static size_t xprog_kept_len;

/* Above 0 while this thread is inside an xprog call: library warnings go to debug then. */
static _Thread_local unsigned xprog_depth;

static pthread_once_t xprog_hooks_once = PTHREAD_ONCE_INIT;

/* Appends the n bytes of msg to the kept messages, dropping the oldest whole lines for room. */
static void xprog_keep(const char *msg, size_t n)
{
	const size_t cap = sizeof(xprog_kept) - 1; /* and the terminating NUL */
	bool nl = n > 0 && msg[n - 1] == '\n';
	size_t need;

	if (n + !nl > cap) {
		/* Longer than all we keep: its last lines. */
		const char *cut = memchr(msg + (n + !nl - cap), '\n', cap - !nl);

		n = cut ? (size_t)(msg + n - cut - 1) : 0;
		msg = cut ? cut + 1 : msg;
		if (n == 0)
			return;
	}
	need = n + !nl;
	pthread_mutex_lock(&xprog_kept_lock);
	if (xprog_kept_len + need > cap) {
		size_t drop = xprog_kept_len + need - cap;
		const char *end = memchr(xprog_kept + drop - 1, '\n', xprog_kept_len - (drop - 1));

		drop = end ? (size_t)(end - xprog_kept) + 1 : xprog_kept_len;
		memmove(xprog_kept, xprog_kept + drop, xprog_kept_len - drop);
		xprog_kept_len -= drop;
	}
	memcpy(xprog_kept + xprog_kept_len, msg, n);
	xprog_kept_len += n;
	if (!nl)
		xprog_kept[xprog_kept_len++] = '\n';
	xprog_kept[xprog_kept_len] = '\0';
	pthread_mutex_unlock(&xprog_kept_lock);
}

/* Logs each non-empty line of the n bytes at text at level. */
static void xprog_log_lines(enum log_level level, const char *text, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(text, '\n', n);
		size_t len = nl ? (size_t)(nl - text) : n;

		if (len > 0)
			log_msg(level, "%.*s", (int)len, text);
		len += nl != NULL;
		text += len;
		n -= len;
	}
}

/*
 * One library message (they carry their own "libbpf: " / "libxdp: " prefix; a verifier log is one
 * message of many lines); warn: at the library's warning level. A warning is kept, and logged as
 * one unless an xprog call is running on this thread (that call's failure is reported by its
 * caller, the detail kept); everything else is detail, logged at debug.
 */
static void xprog_lib_vmsg(bool warn, const char *fmt, va_list ap)
{
	enum log_level level = LOG_LEVEL_DEBUG;
	va_list aq;
	char *msg;
	int n;

	/* libxdp without bpffs attaches the program alone, which is what we want: not a warning. */
	warn = warn && !strstr(fmt, "bpffs");
	if (warn && xprog_depth == 0)
		level = LOG_LEVEL_WARN;
	if (!warn && !log_enabled(level))
		return;
	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n <= 0 || !(msg = malloc((size_t)n + 1)))
		return;
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	if (warn)
		xprog_keep(msg, (size_t)n);
	if (log_enabled(level))
		xprog_log_lines(level, msg, (size_t)n);
	free(msg);
}

static int xprog_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	xprog_lib_vmsg(level == LIBBPF_WARN, fmt, ap);
	return 0;
}

static int xprog_libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	xprog_lib_vmsg(level == LIBXDP_WARN, fmt, ap);
	return 0;
}

static void xprog_hooks_set(void)
{
	libbpf_set_print(xprog_libbpf_print);
	libxdp_set_print(xprog_libxdp_print);
}

/* Every public call that reaches into libxdp/libbpf is bracketed by these. */
static void xprog_enter(void)
{
	pthread_once(&xprog_hooks_once, xprog_hooks_set);
	xprog_depth++;
}

static void xprog_leave(void)
{
	xprog_depth--;
}

static void xprog_kept_clear(void)
{
	pthread_mutex_lock(&xprog_kept_lock);
	xprog_kept_len = 0;
	xprog_kept[0] = '\0';
	pthread_mutex_unlock(&xprog_kept_lock);
}

void xprog_lib_enter(void)
{
	xprog_enter();
	xprog_kept_clear();
}

void xprog_lib_leave(void)
{
	xprog_leave();
}

const char *xprog_log_kept(void)
{
	return xprog_kept;
}

void xprog_log_dump(enum log_level level)
{
	pthread_mutex_lock(&xprog_kept_lock);
	xprog_log_lines(level, xprog_kept, xprog_kept_len);
	pthread_mutex_unlock(&xprog_kept_lock);
}

const char *xprog_mode_name(enum xdp_attach_mode m)
{
	switch (m) {
	case XDP_MODE_NATIVE:
		return "native";
	case XDP_MODE_SKB:
		return "skb";
	case XDP_MODE_HW:
		return "hw";
	default:
		return "unknown";
	}
}

int xprog_map_fd(const struct xdp_program *p, const char *name)
{
	uint32_t ids[XPROG_MAP_IDS_MAX], len = sizeof(struct bpf_prog_info), n;
	struct bpf_prog_info info = {0};

	info.nr_map_ids = XPROG_MAP_IDS_MAX;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(xdp_program__fd(p), &info, &len))
		return -errno;
	n = info.nr_map_ids < XPROG_MAP_IDS_MAX ? info.nr_map_ids : XPROG_MAP_IDS_MAX;
	for (uint32_t i = 0; i < n; i++) {
		struct bpf_map_info mi = {0};
		uint32_t mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0 && strcmp(mi.name, name) == 0)
			return fd;
		close(fd);
	}
	return -ENOENT;
}

static bool xprog_is_ours(const struct xdp_program *p, const struct xprog_match *m)
{
	if (!p || strcmp(xdp_program__name(p), m->name) != 0)
		return false;
	for (unsigned i = 0; i < m->n_maps; i++) {
		int fd = xprog_map_fd(p, m->maps[i]);

		if (fd < 0)
			return false;
		close(fd);
	}
	return true;
}

int xprog_find(int ifindex, const struct xprog_match *m, struct xprog_found *f)
{
	struct xdp_program *p = NULL;
	long e;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	xprog_enter();
	f->mp = xdp_multiprog__get_from_ifindex(ifindex);
	e = libxdp_get_error(f->mp);
	if (e || !f->mp) {
		f->mp = NULL;
		rc = e == -ENOENT ? 0 : (int)e; /* ENOENT: nothing attached */
		goto out;
	}
	f->mode = xdp_multiprog__attach_mode(f->mp);
	if (xdp_multiprog__is_legacy(f->mp)) {
		p = xdp_multiprog__main_prog(f->mp);
		if (xprog_is_ours(p, m))
			f->prog = p;
		else if (p)
			snprintf(f->other, sizeof(f->other), "%s", xdp_program__name(p));
	} else {
		while (!f->prog && (p = xdp_multiprog__next_prog(p, f->mp)))
			if (xprog_is_ours(p, m))
				f->prog = p;
		f->dispatcher = f->prog != NULL;
	}
	if (!f->prog && xprog_is_ours(xdp_multiprog__hw_prog(f->mp), m)) {
		f->prog = xdp_multiprog__hw_prog(f->mp);
		f->mode = XDP_MODE_HW;
	}
	rc = f->prog != NULL;
out:
	xprog_leave();
	return rc;
}

void xprog_found_close(struct xprog_found *f)
{
	if (f->mp)
		xdp_multiprog__close(f->mp);
	memset(f, 0, sizeof(*f));
}

const char *xprog_found_mode(const struct xprog_found *f)
{
	return f->dispatcher ? "multi" : xprog_mode_name(f->mode);
}

int xprog_found_detach(struct xprog_found *f, int ifindex)
{
	int rc;

	xprog_enter();
	/* Alone: the interface's program is removed; in a dispatcher: the others stay. */
	rc = xdp_program__detach(f->prog, ifindex, f->mode, 0);
	xprog_leave();
	return rc;
}

/* The program id an fdinfo file (/proc/PID/fdinfo/N) names, 0 if none. */
static uint32_t xprog_fdinfo_prog_id(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[128];
	unsigned id = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "prog_id: %u", &id) == 1)
			break;
	fclose(f);
	return id;
}

long xprog_holder(uint32_t id)
{
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *pe, *fe;
	long self = (long)getpid(), holder = 0;
	char path[PATH_MAX], link[32];

	if (!proc)
		return 0;
	while (!holder && (pe = readdir(proc))) {
		char *end;
		long pid = strtol(pe->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		if (!(fds = opendir(path)))
			continue;
		while (!holder && (fe = readdir(fds))) {
			ssize_t n;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, fe->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n < 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, "anon_inode:bpf-prog") != 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", pid, fe->d_name);
			if (xprog_fdinfo_prog_id(path) == id)
				holder = pid;
		}
		closedir(fds);
	}
	closedir(proc);
	return holder;
}

int xprog_attach(struct xprog *x, const char *path, const char *sec, int ifindex,
                 enum xprog_mode mode, bool *load_failed, char *err, size_t errlen)
{
	return xprog_attach_prepared(x, path, sec, ifindex, mode, NULL, NULL, load_failed, err,
	                             errlen);
}

int xprog_attach_prepared(struct xprog *x, const char *path, const char *sec, int ifindex,
                          enum xprog_mode mode, xprog_prepare_fn prepare, void *arg,
                          bool *load_failed, char *err, size_t errlen)
{
	enum xdp_attach_mode am = mode == XPROG_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	char why[XPROG_ERR_MAX], ifname[IF_NAMESIZE];
	struct xdp_program *p;
	bool busy, unloaded = false;
	int rc;

	memset(x, 0, sizeof(*x));
	xprog_enter();
	xprog_kept_clear();
	p = xdp_program__open_file(path, sec, NULL);
	rc = (int)libxdp_get_error(p);
	if (rc) {
		unloaded = true;
		libxdp_strerror(rc, why, sizeof(why));
		snprintf(err, errlen, "cannot open XDP program '%s': %s", path, why);
		goto out;
	}
	if (prepare) {
		rc = prepare(xdp_program__bpf_obj(p), arg);
		if (rc) {
			unloaded = true;
			snprintf(err, errlen, "cannot prepare XDP program '%s': %s", path,
			         strerror(-rc));
			xdp_program__close(p);
			goto out;
		}
	}
	/* Loaded but refused in native mode (a driver without XDP): generic XDP works anywhere. */
	rc = xdp_program__attach(p, ifindex, am, 0);
	if (rc && mode == XPROG_MODE_AUTO && xdp_program__fd(p) >= 0) {
		am = XDP_MODE_SKB;
		rc = xdp_program__attach(p, ifindex, am, 0);
	}
	if (rc) {
		/*
		 * Refused for what is attached (libxdp may refuse before it loads ours: a program
		 * attached alone cannot join a dispatcher), else not loaded, else refused here.
		 */
		libxdp_strerror(rc, why, sizeof(why));
		busy = rc == -EEXIST || rc == -EBUSY;
		unloaded = !busy && xdp_program__fd(p) < 0;
		if (!if_indextoname((unsigned)ifindex, ifname))
			snprintf(ifname, sizeof(ifname), "%d", ifindex);
		if (unloaded)
			snprintf(err, errlen,
			         "cannot load XDP program '%s' (rejected by the verifier?): %s",
			         path, why);
		else
			snprintf(err, errlen,
			         "cannot attach XDP program to '%s' in %s mode: %s%s%s%s", ifname,
			         xprog_mode_name(am), why,
			         busy ? " (another XDP program is attached; detach it with "
			                "'ip link set dev "
			              : "",
			         busy ? ifname : "", busy ? " xdp off')" : "");
		xdp_program__close(p);
		goto out;
	}
	x->prog = p;
	x->ifindex = ifindex;
	x->mode = am;
out:
	if (load_failed)
		*load_failed = unloaded;
	xprog_leave();
	return rc;
}

int xprog_obj_map_fd(const struct xprog *x, const char *name)
{
	int fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(x->prog), name);

	return fd < 0 ? -ENOENT : fd;
}

int xprog_detach(struct xprog *x)
{
	int rc;

	if (!x->prog)
		return 0;
	xprog_enter();
	rc = xdp_program__detach(x->prog, x->ifindex, x->mode, 0);
	xprog_leave();
	xprog_close(x);
	return rc;
}

void xprog_close(struct xprog *x)
{
	if (x->prog)
		xdp_program__close(x->prog);
	memset(x, 0, sizeof(*x));
}
