/* SPDX-License-Identifier: GPL-2.0-only */
/* lb_addr parsing, formatting and ordering. */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>

int lb_addr_cmp(const struct lb_addr *a, const struct lb_addr *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	return memcmp(a->b, b->b, sizeof(a->b));
}

int lb_addr_parse(const char *s, struct lb_addr *out)
{
	struct lb_addr a = {0};

	if (inet_pton(AF_INET, s, &a.v4) == 1) {
		a.family = AF_INET;
	} else if (inet_pton(AF_INET6, s, &a.v6) == 1) {
		a.family = AF_INET6;
	} else {
		return -EINVAL;
	}
	*out = a;
	return 0;
}

const char *lb_addr_str(const struct lb_addr *a, char *buf, size_t len)
{
	if (a->family != AF_INET && a->family != AF_INET6) {
		snprintf(buf, len, "(unset)");
		return buf;
	}
	if (!inet_ntop(a->family, a->b, buf, len))
		snprintf(buf, len, "(bad)");
	return buf;
}

socklen_t lb_addr_sockaddr(const struct lb_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = a->v4;
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = a->v6;
	return sizeof(*sin6);
}
