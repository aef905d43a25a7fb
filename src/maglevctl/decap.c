/* Backend-side GRE decapsulation: libxdp attach/detach of xdp_decap, its VIP map and counters. */
#include "maglevctl/decap.h"

#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "control/config_yaml.h"
#include "maglevctl/command.h"
#include "core/config.h"
#include "io/bpfobj.h"

#define DECAP_LOG_MAX       16384u /* bytes of libxdp/libbpf messages kept for an error report */
#define DECAP_ERR_MAX       256u   /* bytes of one libxdp error string */
#define DECAP_MAP_IDS_MAX   16u    /* maps a program can use that we look through */
#define DECAP_PROG_NAME_MAX 64u    /* bytes of a program name we keep (kernel: 16) */

/* clang-format off */
const char *const decap_counter_name[DECAP_CTR_MAX] = {
#define DECAP_COUNTER_NAME(id, name, help) [DECAP_CTR_##id] = name,
	DECAP_COUNTERS(DECAP_COUNTER_NAME)
#undef DECAP_COUNTER_NAME
};
/* clang-format on */

/*
 * libxdp and libbpf report through print callbacks (e.g. "No bpffs found", the verifier log).
 * They are kept here, not printed, so a command prints one clear line; the verifier log is shown
 * only when loading fails. Process-wide because the libraries' callbacks are.
 */
static char decap_log[DECAP_LOG_MAX];
static size_t decap_log_len;

static void decap_log_vadd(const char *fmt, va_list ap)
{
	int n;

	if (decap_log_len >= sizeof(decap_log) - 1)
		return;
	n = vsnprintf(decap_log + decap_log_len, sizeof(decap_log) - decap_log_len, fmt, ap);
	if (n > 0)
		decap_log_len += (size_t)n;
	if (decap_log_len > sizeof(decap_log) - 1)
		decap_log_len = sizeof(decap_log) - 1;
}

static int decap_libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBXDP_DEBUG)
		decap_log_vadd(fmt, ap);
	return 0;
}

static int decap_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_DEBUG)
		decap_log_vadd(fmt, ap);
	return 0;
}

static void decap_log_capture(void)
{
	decap_log_len = 0;
	decap_log[0] = '\0';
	libxdp_set_print(decap_libxdp_print);
	libbpf_set_print(decap_libbpf_print);
}

static void decap_key_from_addr(const struct lb_addr *a, struct decap_vip_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = a->family == AF_INET ? DECAP_FAMILY_IPV4 : DECAP_FAMILY_IPV6;
	memcpy(k->addr, a->b, lb_addr_len(a));
}

static void decap_addr_from_key(const struct decap_vip_key *k, struct lb_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = k->family == DECAP_FAMILY_IPV4 ? AF_INET : AF_INET6;
	memcpy(a->b, k->addr, lb_addr_len(a));
}

static const char *decap_mode_name(enum xdp_attach_mode m)
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

/*
 * Looks for xdp_decap on ifindex. Returns 1 and sets *mp (caller closes) and *prog (owned by
 * *mp) if found, 0 if not (nothing to close), negative errno on failure. *other is set to the
 * name of a foreign program attached without libxdp's dispatcher (ours cannot join it), if any;
 * the name is copied to other_buf (DECAP_PROG_NAME_MAX bytes) since mp is closed.
 */
static int decap_find(int ifindex, struct xdp_multiprog **mpp, struct xdp_program **progp,
                      const char **other, char *other_buf)
{
	struct xdp_multiprog *mp;
	struct xdp_program *p;
	long e;

	*mpp = NULL;
	*progp = NULL;
	*other = NULL;
	mp = xdp_multiprog__get_from_ifindex(ifindex);
	e = libxdp_get_error(mp);
	if (e == -ENOENT || (!e && !mp))
		return 0;
	if (e)
		return (int)e;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && strcmp(xdp_program__name(p), DECAP_PROG_NAME) == 0)
			goto found;
		if (p) {
			snprintf(other_buf, DECAP_PROG_NAME_MAX, "%s", xdp_program__name(p));
			*other = other_buf;
		}
	} else {
		for (p = xdp_multiprog__next_prog(NULL, mp); p;
		     p = xdp_multiprog__next_prog(p, mp)) {
			if (strcmp(xdp_program__name(p), DECAP_PROG_NAME) == 0)
				goto found;
		}
	}
	p = xdp_multiprog__hw_prog(mp);
	if (p && strcmp(xdp_program__name(p), DECAP_PROG_NAME) == 0)
		goto found;
	xdp_multiprog__close(mp);
	return 0;
found:
	*mpp = mp;
	*progp = p;
	return 1;
}

/* The fd of the map called name that the program prog_fd uses; negative errno if none. */
static int decap_prog_map_fd(int prog_fd, const char *name)
{
	struct bpf_prog_info info;
	struct bpf_map_info minfo;
	__u32 ids[DECAP_MAP_IDS_MAX];
	__u32 len = sizeof(info), mlen, i, n;
	int fd;

	memset(&info, 0, sizeof(info));
	info.nr_map_ids = DECAP_MAP_IDS_MAX;
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno;
	n = info.nr_map_ids < DECAP_MAP_IDS_MAX ? info.nr_map_ids : DECAP_MAP_IDS_MAX;
	for (i = 0; i < n; i++) {
		fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			continue;
		memset(&minfo, 0, sizeof(minfo));
		mlen = sizeof(minfo);
		if (bpf_obj_get_info_by_fd(fd, &minfo, &mlen) == 0 && strcmp(minfo.name, name) == 0)
			return fd;
		close(fd);
	}
	return -ENOENT;
}

/*
 * Makes the VIP map hold exactly vips[0..n): adds the new ones first, then deletes the others,
 * so a VIP present before and after is never missing in between.
 */
static int decap_vips_set(int map_fd, const struct lb_addr *vips, size_t n, char *err,
                          size_t errlen)
{
	struct decap_vip_key k, next, stale[DECAP_VIPS_MAX];
	size_t i, j, n_stale = 0;
	__u32 one = 1;
	void *prev = NULL;
	bool keep;

	for (i = 0; i < n; i++) {
		decap_key_from_addr(&vips[i], &k);
		if (bpf_map_update_elem(map_fd, &k, &one, BPF_ANY)) {
			char buf[LB_ADDR_STRLEN];
			int e = errno;

			snprintf(err, errlen, "adding VIP %s to the map: %s",
			         lb_addr_str(&vips[i], buf, sizeof(buf)), strerror(e));
			return -e;
		}
	}
	while (n_stale < DECAP_VIPS_MAX && bpf_map_get_next_key(map_fd, prev, &next) == 0) {
		keep = false;
		for (j = 0; j < n && !keep; j++) {
			decap_key_from_addr(&vips[j], &k);
			keep = memcmp(&k, &next, sizeof(k)) == 0;
		}
		if (!keep)
			stale[n_stale++] = next;
		k = next;
		prev = &k;
	}
	for (i = 0; i < n_stale; i++)
		bpf_map_delete_elem(map_fd, &stale[i]);
	return 0;
}

static int decap_ifindex(const char *dev, char *err, size_t errlen)
{
	unsigned int ifindex = if_nametoindex(dev);

	if (!ifindex) {
		snprintf(err, errlen, "no such device '%s'", dev);
		return -ENODEV;
	}
	return (int)ifindex;
}

/*
 * decap_find on the interface named dev, with libxdp's messages captured: its index in *ifindex,
 * the same results as decap_find, and one line in err on failure.
 */
static int decap_find_dev(const char *dev, int *ifindex, struct xdp_multiprog **mp,
                          struct xdp_program **prog, const char **other, char *other_buf,
                          char *err, size_t errlen)
{
	char ebuf[DECAP_ERR_MAX];
	int r;

	*mp = NULL;
	*prog = NULL;
	*other = NULL;
	*ifindex = decap_ifindex(dev, err, errlen);
	if (*ifindex < 0)
		return *ifindex;
	decap_log_capture();
	r = decap_find(*ifindex, mp, prog, other, other_buf);
	if (r < 0) {
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "%s: reading its XDP programs: %s", dev, ebuf);
	}
	return r;
}

/* Where the xdp_decap found in mp runs: its attach mode, or "multi" behind libxdp's dispatcher. */
static const char *decap_attached_mode(struct xdp_multiprog *mp)
{
	return xdp_multiprog__is_legacy(mp) ? decap_mode_name(xdp_multiprog__attach_mode(mp))
	                                    : "multi";
}

int decap_attach(const char *dev, const char *obj_path, enum decap_mode mode,
                 const struct lb_addr *vips, size_t n, const char **mode_name, bool *replaced,
                 char *err, size_t errlen)
{
	struct xdp_multiprog *mp = NULL;
	struct xdp_program *found = NULL, *prog = NULL;
	enum xdp_attach_mode am;
	const char *other;
	char ebuf[DECAP_ERR_MAX], other_buf[DECAP_PROG_NAME_MAX];
	int ifindex, map_fd = -1, r;

	*replaced = false;
	*mode_name = "none";
	if (n > DECAP_VIPS_MAX) {
		snprintf(err, errlen, "%zu VIPs, at most %u fit the map", n, DECAP_VIPS_MAX);
		return -E2BIG;
	}
	r = decap_find_dev(dev, &ifindex, &mp, &found, &other, other_buf, err, errlen);
	if (r < 0)
		goto out;
	if (r == 1) {
		*replaced = true;
		*mode_name = decap_attached_mode(mp);
		map_fd = decap_prog_map_fd(xdp_program__fd(found), DECAP_MAP_VIPS);
		if (map_fd < 0) {
			r = map_fd;
			snprintf(err, errlen,
			         "%s: xdp_decap is attached but its map %s is unreachable: %s", dev,
			         DECAP_MAP_VIPS, strerror(-r));
			goto out;
		}
		r = decap_vips_set(map_fd, vips, n, err, errlen);
		goto out;
	}
	if (other) {
		snprintf(err, errlen, "%s already has XDP program '%s'; detach it first", dev,
		         other);
		r = -EBUSY;
		goto out;
	}

	prog = xdp_program__open_file(obj_path, "xdp", NULL);
	r = (int)libxdp_get_error(prog);
	if (r) {
		prog = NULL;
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "opening %s: %s", obj_path, ebuf);
		goto out;
	}
	am = mode == DECAP_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	r = xdp_program__attach(prog, ifindex, am, 0);
	if (r && mode == DECAP_MODE_AUTO && xdp_program__fd(prog) >= 0) {
		/* Loaded but refused in native mode (driver without XDP): generic XDP works
		 * anywhere. */
		am = XDP_MODE_SKB;
		r = xdp_program__attach(prog, ifindex, am, 0);
	}
	if (r) {
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		if (xdp_program__fd(prog) < 0)
			snprintf(err, errlen, "loading %s failed (rejected by the verifier?): %s",
			         obj_path, ebuf);
		else
			snprintf(err, errlen, "attaching to %s in %s mode failed: %s", dev,
			         decap_mode_name(am), ebuf);
		goto out;
	}
	/*
	 * The map is filled right after the attach (libxdp loads and attaches in one call): for
	 * that moment GRE for the VIPs passes to the kernel untouched, as before the attach.
	 */
	*mode_name = decap_mode_name(am);
	map_fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(prog), DECAP_MAP_VIPS);
	if (map_fd < 0) {
		r = -ENOENT;
		snprintf(err, errlen, "%s has no map %s", obj_path, DECAP_MAP_VIPS);
		xdp_program__detach(prog, ifindex, am, 0);
		goto out;
	}
	r = decap_vips_set(map_fd, vips, n, err, errlen);
	if (r)
		xdp_program__detach(prog, ifindex, am, 0);
	map_fd = -1; /* owned by the bpf_object */
out:
	if (map_fd >= 0)
		close(map_fd);
	if (prog)
		xdp_program__close(prog);
	if (mp)
		xdp_multiprog__close(mp);
	return r;
}

int decap_detach(const char *dev, char *err, size_t errlen)
{
	struct xdp_multiprog *mp = NULL;
	struct xdp_program *prog = NULL;
	const char *other;
	char ebuf[DECAP_ERR_MAX], other_buf[DECAP_PROG_NAME_MAX];
	int ifindex, r;

	r = decap_find_dev(dev, &ifindex, &mp, &prog, &other, other_buf, err, errlen);
	if (r < 0)
		return r;
	if (r == 0) {
		snprintf(err, errlen, "%s: xdp_decap is not attached", dev);
		return -ENOENT;
	}
	if (xdp_multiprog__is_legacy(mp))
		r = xdp_multiprog__detach(mp);
	else
		r = xdp_program__detach(prog, ifindex, xdp_multiprog__attach_mode(mp), 0);
	if (r) {
		libxdp_strerror(r, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "%s: detaching xdp_decap: %s", dev, ebuf);
	}
	xdp_multiprog__close(mp);
	return r;
}

int decap_status_read(const char *dev, struct decap_status *st, char *err, size_t errlen)
{
	struct xdp_multiprog *mp = NULL;
	struct xdp_program *prog = NULL;
	struct decap_vip_key k, kprev;
	const char *other;
	char other_buf[DECAP_PROG_NAME_MAX];
	int ifindex, ncpu, map_fd = -1, r;
	__u64 *vals = NULL;
	void *prev = NULL;
	__u32 i;

	memset(st, 0, sizeof(*st));
	st->mode = "none";
	r = decap_find_dev(dev, &ifindex, &mp, &prog, &other, other_buf, err, errlen);
	if (r <= 0)
		return r;
	st->attached = true;
	st->prog_id = xdp_program__id(prog);
	st->mode = decap_attached_mode(mp);

	map_fd = decap_prog_map_fd(xdp_program__fd(prog), DECAP_MAP_VIPS);
	if (map_fd < 0) {
		r = map_fd;
		snprintf(err, errlen, "%s: map %s unreachable: %s", dev, DECAP_MAP_VIPS,
		         strerror(-r));
		goto out;
	}
	while (st->n_vips < DECAP_VIPS_MAX && bpf_map_get_next_key(map_fd, prev, &k) == 0) {
		decap_addr_from_key(&k, &st->vips[st->n_vips++]);
		kprev = k;
		prev = &kprev;
	}
	close(map_fd);

	map_fd = decap_prog_map_fd(xdp_program__fd(prog), DECAP_MAP_COUNTERS);
	if (map_fd < 0) {
		r = map_fd;
		snprintf(err, errlen, "%s: map %s unreachable: %s", dev, DECAP_MAP_COUNTERS,
		         strerror(-r));
		goto out;
	}
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0) {
		r = ncpu < 0 ? ncpu : -EINVAL;
		snprintf(err, errlen, "counting possible CPUs: %s", strerror(-r));
		goto out;
	}
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < DECAP_CTR_MAX; i++) {
		if (bpf_map_lookup_elem(map_fd, &i, vals)) {
			r = -errno;
			snprintf(err, errlen, "%s: reading counter %s: %s", dev,
			         decap_counter_name[i], strerror(-r));
			goto out;
		}
		for (int c = 0; c < ncpu; c++)
			st->counters[i] += vals[c];
	}
	r = 0;
out:
	free(vals);
	if (map_fd >= 0)
		close(map_fd);
	xdp_multiprog__close(mp);
	return r;
}

#define DECAP_USAGE                                                                                \
	"usage: maglevctl decap attach DEV (-c CONFIG | --vip ADDR [--vip ADDR ...]) [--mode "     \
	"native|skb]\n"                                                                            \
	"       maglevctl decap detach DEV\n"                                                      \
	"       maglevctl decap status DEV\n"

static void decap_usage(FILE *f)
{
	fprintf(
	    f,
	    DECAP_USAGE
	    "Attaches the XDP GRE decapsulation program (for backends without kernel GRE) to DEV.\n"
	    "Frames GRE-wrapped to DEV whose inner destination is one of the VIPs (every VIP "
	    "address\n"
	    "in CONFIG, or each --vip) are decapsulated and passed to the stack; everything else\n"
	    "passes untouched. Native XDP is tried first, then generic (skb) mode. Attaching "
	    "again\n"
	    "replaces the VIP set. The program stays attached after maglevctl exits. Needs root.\n"
	    "status prints the mode, the VIPs and the counters; it fails if DEV has no xdp_decap.\n"
	    "The BPF object is $%s/%s, else <dir of maglevctl>/bpf/%s, else\n"
	    "%s/%s. See docs/backends.md.\n",
	    BPFOBJ_DIR_ENV, DECAP_OBJ_FILE, DECAP_OBJ_FILE, bpfobj_dir_installed, DECAP_OBJ_FILE);
}

static int decap_usage_err(char *err, size_t errlen, const char *why, const char *arg)
{
	snprintf(err, errlen, "%s%s%s%s (maglevctl decap --help)", why, arg ? " '" : "",
	         arg ? arg : "", arg ? "'" : "");
	return COMMAND_USAGE;
}

static int decap_need_root(char *err, size_t errlen)
{
	if (geteuid() == 0)
		return 0;
	snprintf(err, errlen, "must run as root (XDP needs CAP_BPF and CAP_NET_ADMIN)");
	return -EPERM;
}

/* Appends a to vips (deduplicated); -E2BIG when full. */
static int decap_vip_add(struct lb_addr *vips, size_t *n, const struct lb_addr *a)
{
	for (size_t i = 0; i < *n; i++)
		if (lb_addr_eq(&vips[i], a))
			return 0;
	if (*n >= DECAP_VIPS_MAX)
		return -E2BIG;
	vips[(*n)++] = *a;
	return 0;
}

/* Every distinct VIP address of the config at path. */
static int decap_vips_from_config(const char *path, struct lb_addr *vips, size_t *n, char *err,
                                  size_t errlen)
{
	struct config *cfg = NULL;
	int r;

	r = config_load(path, &cfg, err, errlen);
	if (r)
		return r;
	for (uint32_t v = 0; v < cfg->n_vips; v++) {
		r = decap_vip_add(vips, n, &cfg->vips[v].addr);
		if (r) {
			snprintf(err, errlen, "%s: more than %u VIP addresses", path,
			         DECAP_VIPS_MAX);
			goto out;
		}
	}
	if (*n == 0) {
		r = -EINVAL;
		snprintf(err, errlen, "%s has no VIPs", path);
	}
out:
	config_free(cfg);
	return r;
}

static int decap_cmd_attach(int argc, char **argv, char *err, size_t errlen)
{
	static struct lb_addr vips[DECAP_VIPS_MAX];
	char obj[PATH_MAX];
	const char *dev = NULL, *config = NULL, *mode_name;
	enum decap_mode mode = DECAP_MODE_AUTO;
	struct lb_addr a;
	size_t n = 0;
	bool replaced, any_vip = false;
	int i, r;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if ((!strcmp(arg, "-c") || !strcmp(arg, "--config")) && i + 1 < argc) {
			config = argv[++i];
		} else if (!strcmp(arg, "--vip") && i + 1 < argc) {
			any_vip = true;
			if (lb_addr_parse(argv[++i], &a))
				return decap_usage_err(err, errlen, "bad VIP address", argv[i]);
			if (decap_vip_add(vips, &n, &a)) {
				snprintf(err, errlen, "more than %u VIPs", DECAP_VIPS_MAX);
				return -E2BIG;
			}
		} else if (!strcmp(arg, "--mode") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "native"))
				mode = DECAP_MODE_NATIVE;
			else if (!strcmp(argv[i], "skb"))
				mode = DECAP_MODE_SKB;
			else
				return decap_usage_err(err, errlen, "mode is native or skb, not",
				                       argv[i]);
		} else if (arg[0] != '-' && !dev) {
			dev = arg;
		} else {
			return decap_usage_err(err, errlen, "unexpected argument", arg);
		}
	}
	if (!dev)
		return decap_usage_err(err, errlen, "attach: no device", NULL);
	if (!config && !any_vip)
		return decap_usage_err(err, errlen, "attach: give -c CONFIG or --vip ADDR", NULL);
	if (config && any_vip)
		return decap_usage_err(err, errlen, "attach: -c and --vip exclude each other",
		                       NULL);
	if (config) {
		r = decap_vips_from_config(config, vips, &n, err, errlen);
		if (r)
			return r;
	}
	r = decap_need_root(err, errlen);
	if (r)
		return r;
	r = bpfobj_path(DECAP_OBJ_FILE, obj, sizeof(obj));
	if (r) {
		snprintf(err, errlen, "no BPF object at %s (run make or make install, or set %s)",
		         obj, BPFOBJ_DIR_ENV);
		return r;
	}
	r = decap_attach(dev, obj, mode, vips, n, &mode_name, &replaced, err, errlen);
	if (r) {
		if (strstr(err, "verifier") && decap_log_len > 0)
			fprintf(stderr, "libbpf/verifier log:\n%s", decap_log);
		return r;
	}
	if (replaced)
		printf("%s: xdp_decap already attached (%s mode): VIP set replaced, %zu VIPs\n",
		       dev, mode_name, n);
	else
		printf("%s: xdp_decap attached in %s mode, %zu VIPs\n", dev, mode_name, n);
	return 0;
}

static int decap_cmd_detach(int argc, char **argv, char *err, size_t errlen)
{
	int r;

	if (argc != 1 || argv[0][0] == '-')
		return decap_usage_err(err, errlen, "detach takes one device", NULL);
	r = decap_need_root(err, errlen);
	if (r)
		return r;
	r = decap_detach(argv[0], err, errlen);
	if (r)
		return r;
	printf("%s: xdp_decap detached\n", argv[0]);
	return 0;
}

static int decap_cmd_status(int argc, char **argv, char *err, size_t errlen)
{
	static struct decap_status st;
	char buf[LB_ADDR_STRLEN];
	int r;

	if (argc != 1 || argv[0][0] == '-')
		return decap_usage_err(err, errlen, "status takes one device", NULL);
	r = decap_need_root(err, errlen);
	if (r)
		return r;
	r = decap_status_read(argv[0], &st, err, errlen);
	if (r && !st.attached)
		return r;
	if (!st.attached) {
		snprintf(err, errlen, "%s: xdp_decap not attached", argv[0]);
		return -ENOENT;
	}
	printf("%s: xdp_decap attached (%s mode, program id %u)\n", argv[0], st.mode, st.prog_id);
	if (r)
		return r;
	printf("vips:");
	for (uint32_t i = 0; i < st.n_vips; i++)
		printf(" %s", lb_addr_str(&st.vips[i], buf, sizeof(buf)));
	printf("\n");
	for (int i = 0; i < DECAP_CTR_MAX; i++)
		printf("%-14s %llu\n", decap_counter_name[i], (unsigned long long)st.counters[i]);
	return 0;
}

int decap_run(int argc, char **argv, char *err, size_t errlen)
{
	if (argc < 2)
		return decap_usage_err(err, errlen, "attach, detach or status?", NULL);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		decap_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "attach"))
		return decap_cmd_attach(argc - 2, argv + 2, err, errlen);
	if (!strcmp(argv[1], "detach"))
		return decap_cmd_detach(argc - 2, argv + 2, err, errlen);
	if (!strcmp(argv[1], "status"))
		return decap_cmd_status(argc - 2, argv + 2, err, errlen);
	return decap_usage_err(err, errlen, "unknown decap command", argv[1]);
}
