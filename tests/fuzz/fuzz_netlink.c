/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness: the rtnetlink answers and notifications maglevd parses, run through
 * nl_cb_run exactly as nl_request and the next-hop thread run them: route answers (next hops),
 * neighbour messages (next-hop MACs) and route dumps (announced VIPs). The real sources are
 * included so their static callbacks are reached; the input is copied to a buffer of its own size
 * so that a read past a message's end is caught by AddressSanitizer.
 */
#include "../../src/maglevd/announce.c"
#include "../../src/io/nexthop.c"

#define FUZZ_TABLE    100u /* announce.table of the fake announcer */
#define FUZZ_PROTOCOL 42u  /* announce.protocol */

/* Neighbour messages through the parser the event callback uses. */
static int fuzz_neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct lb_addr dst;
	uint64_t mac;
	int ifindex;

	if (nh_neigh_parse(nlh, &dst, &ifindex, &mac) && mac && !(mac & LB_NH_VALID))
		abort(); /* a usable MAC is always marked valid */
	(void)data;
	return MNL_CB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct announce a = {.cfg = {.table = FUZZ_TABLE, .protocol = FUZZ_PROTOCOL}};
	struct route_answer ra = {0};
	struct an_list routes = {0};
	struct an_dump d = {.a = &a, .out = &routes};
	uint8_t *buf;

	if (size == 0)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	/* seq 0 and portid 0: checked by neither, as for notifications. */
	nl_cb_run(buf, size, 0, 0, nh_route_cb, &ra);
	if (ra.gw.family && ra.gw.family != AF_INET && ra.gw.family != AF_INET6)
		abort();
	nl_cb_run(buf, size, 0, 0, fuzz_neigh_cb, NULL);
	nl_cb_run(buf, size, 0, 0, an_dump_cb, &d);
	if (routes.n > routes.cap)
		abort();
	free(routes.v);
	free(buf);
	return 0;
}
