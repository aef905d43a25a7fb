/* SPDX-License-Identifier: GPL-2.0-only */
/* One rtnetlink request and its whole answer over libmnl. */
#include "io/netlink.h"

#include <errno.h>
#include <stdbool.h>

#define NL_ALIGN 4u /* bytes: netlink messages start at multiples of this (NLMSG_ALIGNTO) */

int nl_cb_run(const void *buf, size_t len, uint32_t seq, uint32_t portid, mnl_cb_t cb, void *data)
{
	for (size_t off = 0; off + sizeof(struct nlmsghdr) <= len;) {
		const struct nlmsghdr *nlh = (const void *)((const char *)buf + off);
		/* Aligned (in size_t: NLMSG_ALIGN wraps at 2^32): libmnl reads up to there. */
		size_t aligned = ((size_t)nlh->nlmsg_len + NL_ALIGN - 1) & ~(size_t)(NL_ALIGN - 1);

		if (nlh->nlmsg_len < sizeof(*nlh) || aligned > len - off) {
			errno = EBADMSG;
			return MNL_CB_ERROR;
		}
		off += aligned;
	}
	return mnl_cb_run(buf, len, seq, portid, cb, data);
}

int nl_request(struct mnl_socket *nl, uint32_t *seq, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned int portid = mnl_socket_get_portid(nl);
	bool more = nlh->nlmsg_flags & (NLM_F_ACK | NLM_F_DUMP);
	ssize_t len;
	int rc;

	nlh->nlmsg_seq = ++*seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (len < 0)
			return -errno;
		rc = nl_cb_run(buf, (size_t)len, *seq, portid, cb, data);
	} while (rc == MNL_CB_OK && more);
	return rc < 0 ? -errno : 0;
}
