/* SPDX-License-Identifier: GPL-2.0-only */
/* Names and help texts of the packet I/O counters, and checks shared by the I/O backends. */
#include "io/io.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

COUNTER_LIST_DEFINE(io_counter, IO_COUNTERS, IO_CTR_MAX);

/* Reads one legacy ethtool value (ETHTOOL_GGRO, ETHTOOL_GFLAGS); -1 if the driver cannot say. */
static long io_ethtool_get(int fd, const char *ifname, uint32_t cmd)
{
	struct ethtool_value ev = {.cmd = cmd};
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ev;
	return ioctl(fd, SIOCETHTOOL, &ifr) ? -1 : (long)ev.data;
}

void io_warn_coalescing(const char *ifname, const char *who)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	long gro, flags;

	if (fd < 0)
		return;
	gro = io_ethtool_get(fd, ifname, ETHTOOL_GGRO);
	flags = io_ethtool_get(fd, ifname, ETHTOOL_GFLAGS);
	close(fd);
	if (gro > 0 || (flags > 0 && (flags & ETH_FLAG_LRO)))
		log_warn("%s sees packets after GRO/LRO: %s merges TCP segments into frames larger "
		         "than the MTU, which cannot be forwarded; turn it off with "
		         "'ethtool -K %s gro off lro off'",
		         who, ifname, ifname);
}
