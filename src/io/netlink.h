/* One rtnetlink request and its whole answer over libmnl, shared by next hops and VIP routes. */
#ifndef MAGLEV_IO_NETLINK_H
#define MAGLEV_IO_NETLINK_H

#include <stdint.h>

#include <libmnl/libmnl.h>

/*
 * Sends nlh on nl with the next sequence number from *seq and runs cb (NULL: none) over the
 * answer until it is complete: the ACK for NLM_F_ACK, NLMSG_DONE for NLM_F_DUMP, else the one
 * reply. Returns 0, or -errno (a netlink error answer included).
 */
int nl_request(struct mnl_socket *nl, uint32_t *seq, struct nlmsghdr *nlh, mnl_cb_t cb,
	       void *data);

#endif
