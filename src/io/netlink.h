/* SPDX-License-Identifier: GPL-2.0-only */
/* One rtnetlink request and its whole answer over libmnl, shared by next hops and VIP routes. */
#ifndef MAGLEV_IO_NETLINK_H
#define MAGLEV_IO_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

/*
 * Sends nlh on nl with the next sequence number from *seq and runs cb (NULL: none) over the
 * answer until it is complete: the ACK for NLM_F_ACK, NLMSG_DONE for NLM_F_DUMP, else the one
 * reply. Returns 0, or -errno (a netlink error answer included).
 */
int nl_request(struct mnl_socket *nl, uint32_t *seq, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);

/*
 * mnl_cb_run over len received bytes, once every message in them is known to fit with its
 * alignment padding: libmnl's own check compares the length as a signed int, so a length of 2^31
 * or more would step it outside the buffer, and it reads attributes up to the aligned end. A buffer
 * with a message that does not fit is refused whole: MNL_CB_ERROR with errno EBADMSG. Callbacks
 * still check that a message holds the header they read (nl_payload_has).
 */
int nl_cb_run(const void *buf, size_t len, uint32_t seq, uint32_t portid, mnl_cb_t cb, void *data);

/* True if nlh's payload holds at least n bytes (a struct rtmsg, ndmsg, ...). */
static inline bool nl_payload_has(const struct nlmsghdr *nlh, size_t n)
{
	return mnl_nlmsg_get_payload_len(nlh) >= n;
}

#endif
