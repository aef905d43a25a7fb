/* SPDX-License-Identifier: GPL-2.0-only */
/* maglevd: the load balancer daemon entry point, and its offline pcap replay mode. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/version.h"
#include "control/config_yaml.h"
#include "maglevd/daemon.h"
#include "io/replay.h"

#define ERR_MAX 512u /* bytes of an error message */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: maglevd -c FILE                                 run the load balancer\n"
	    "       maglevd -c FILE --replay IN.pcap --output OUT.pcap\n"
	    "                                                       run the forwarding pipeline\n"
	    "                                                       over a pcap, write what it "
	    "sends\n"
	    "options:\n"
	    "  -c, --config FILE   configuration (YAML, see docs/config.md)\n"
	    "      --replay FILE   Ethernet pcap to run through the pipeline (needs\n"
	    "                      dataplane.nexthop_mac); prints the counters\n"
	    "      --output FILE   pcap the transmitted frames are written to (with --replay)\n"
	    "  -v, --verbose       log debug messages too\n"
	    "  -h, --help          this text\n"
	    "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
	enum { OPT_REPLAY = 256, OPT_OUTPUT };
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"replay", required_argument, NULL, OPT_REPLAY},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *replay = NULL, *output = NULL;
	struct config *cfg = NULL;
	struct replay_result res;
	char err[ERR_MAX] = "";
	int c, ret;

	log_init("maglevd");
	while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case OPT_REPLAY:
			replay = optarg;
			break;
		case OPT_OUTPUT:
			output = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("maglevd %s\n", MAGLEV_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "maglevd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!config_path) {
		fprintf(stderr, "maglevd: -c FILE is required\n");
		usage(stderr);
		return 2;
	}
	if (!!replay != !!output) {
		fprintf(stderr, "maglevd: --replay and --output go together\n");
		return 2;
	}
	if (!replay)
		return daemon_run(config_path);
	ret = config_load(config_path, &cfg, err, sizeof(err));
	if (ret == 0)
		ret = replay_run(cfg, replay, output, stdout, &res, err, sizeof(err));
	config_free(cfg);
	if (ret) {
		fprintf(stderr, "maglevd: %s\n", err);
		return 1;
	}
	return 0;
}
