/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness: `maglevd --replay` over an arbitrary capture file. The input is the file
 * (libpcap's reader: pcap and pcapng headers, record lengths, link types), and each frame in it
 * runs through the pipeline with a small config; what it sends goes to /dev/null.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "control/config_yaml.h"
#include "io/replay.h"

static const char fuzz_config[] =
    "cluster: { table_size: 251 }\n"
    "dataplane:\n"
    "  interface: eth0\n"
    "  source_ipv4: 198.18.2.2\n"
    "  source_ipv6: 2001:db8:2::2\n"
    "  nexthop_mac: 02:00:00:00:02:01\n"
    "conntrack: { entries: 1024 }\n"
    "vips:\n"
    "  - name: web\n"
    "    address: 203.0.113.10\n"
    "    protocol: tcp\n"
    "    port: 80\n"
    "    backends: [ { address: 198.18.1.11 }, { address: 2001:db8:1::12 } ]\n"
    "  - name: dns6\n"
    "    address: 2001:db8:100::53\n"
    "    protocol: udp\n"
    "    port: 0\n"
    "    backends: [ { address: 198.18.1.13 } ]\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *cfg;
	struct replay_result res;
	char path[64], err[512];
	int fd;

	if (!cfg && config_parse(fuzz_config, strlen(fuzz_config), "fuzz.yaml", &cfg, err,
	                         sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_pcap: %s\n", err);
		abort();
	}
	fd = memfd_create("fuzz.pcap", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (replay_run(cfg, path, "/dev/null", NULL, &res, err, sizeof(err)) == 0 &&
		    res.frames_out + res.frames_pass + res.frames_drop != res.frames_in)
			abort(); /* every frame read gets exactly one verdict */
	}
	close(fd);
	return 0;
}
