/* SPDX-License-Identifier: GPL-2.0-only */
/* `maglevctl decap`: its arguments, VIPs from a config, results printed (loader: io/decap.c). */
#include "maglevctl/decap.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/config_yaml.h"
#include "maglevctl/command.h"
#include "core/config.h"
#include "io/bpfobj.h"
#include "io/decap.h"
#include "io/xdp.h"

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
	enum xprog_mode mode = XPROG_MODE_AUTO;
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
				mode = XPROG_MODE_NATIVE;
			else if (!strcmp(argv[i], "skb"))
				mode = XPROG_MODE_SKB;
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
		if (strstr(err, "verifier") && *xprog_log_kept())
			fprintf(stderr, "libbpf/verifier log:\n%s", xprog_log_kept());
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
	size_t width = 0; /* of the longest counter name: one column of values */
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
		if (strlen(decap_counter_name[i]) > width)
			width = strlen(decap_counter_name[i]);
	for (int i = 0; i < DECAP_CTR_MAX; i++)
		printf("%-*s %llu\n", (int)width, decap_counter_name[i],
		       (unsigned long long)st.counters[i]);
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
