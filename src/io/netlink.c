/* One rtnetlink request and its whole answer over libmnl. */
#include "io/netlink.h"

#include <errno.h>
#include <stdbool.h>

int nl_request(struct mnl_socket *nl, uint32_t *seq, struct nlmsghdr *nlh, mnl_cb_t cb,
	       void *data)
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
		rc = mnl_cb_run(buf, (size_t)len, *seq, portid, cb, data);
	} while (rc == MNL_CB_OK && more);
	return rc < 0 ? -errno : 0;
}
