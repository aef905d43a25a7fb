/* SPDX-License-Identifier: GPL-2.0-only */
/* libFuzzer harness: control socket request parsing and dispatch against a fake daemon state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/ctlsock.h"

#define FAKE_BACKENDS 3u /* backends of the fake VIP */

/* The fake daemon: one VIP "web" with three backends whose weights the requests change. */
struct fake_state {
	struct lb_addr vip;
	struct lb_addr backends[FAKE_BACKENDS];
	uint32_t weights[FAKE_BACKENDS];
	bool drained[FAKE_BACKENDS];
};

static bool fake_vip_match(const struct fake_state *st, const char *vip)
{
	struct lb_addr a;

	return strcmp(vip, "web") == 0 || (lb_addr_parse(vip, &a) == 0 && lb_addr_eq(&a, &st->vip));
}

static json_t *fake_handler(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
{
	struct fake_state *st = ctx;
	char a[LB_ADDR_STRLEN];
	uint32_t i;

	if (req->cmd == CTL_CMD_STATUS || req->cmd == CTL_CMD_VIPS ||
	    req->cmd == CTL_CMD_COUNTERS || req->cmd == CTL_CMD_RELOAD)
		return json_pack("{s:s}", "cmd", ctl_cmd_name(req->cmd));
	if (req->vip[0] && !fake_vip_match(st, req->vip)) {
		snprintf(err, errlen, "no VIP '%s'", req->vip);
		return NULL;
	}
	if (req->cmd == CTL_CMD_BACKENDS || req->cmd == CTL_CMD_EXPLAIN)
		return json_pack("{s:s, s:i, s:i}", "src", lb_addr_str(&req->src, a, sizeof(a)),
		                 "src_port", req->src_port, "proto", req->proto);
	for (i = 0; i < FAKE_BACKENDS; i++)
		if (lb_addr_eq(&st->backends[i], &req->backend))
			break;
	if (i == FAKE_BACKENDS) {
		snprintf(err, errlen, "no backend %s in VIP %s",
		         lb_addr_str(&req->backend, a, sizeof(a)), req->vip);
		return NULL;
	}
	if (req->cmd == CTL_CMD_WEIGHT)
		st->weights[i] = req->weight;
	else
		st->drained[i] = req->cmd == CTL_CMD_DRAIN;
	return json_pack("{s:i, s:b}", "weight", (int)st->weights[i], "drained", st->drained[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const addrs[FAKE_BACKENDS] = {"198.18.1.11", "198.18.1.12",
	                                                 "2001:db8::12"};
	struct fake_state st = {0};
	char hp[LB_ADDR_STRLEN + 16];
	struct lb_addr a;
	uint16_t port;
	char *resp;

	lb_addr_parse("203.0.113.10", &st.vip);
	for (uint32_t i = 0; i < FAKE_BACKENDS; i++) {
		lb_addr_parse(addrs[i], &st.backends[i]);
		st.weights[i] = 1;
	}
	resp = ctl_handle_line((const char *)data, size, fake_handler, &st);
	if (resp && (strchr(resp, '\n') || strncmp(resp, "{\"ok\":", 6) != 0))
		abort(); /* the protocol's one-line contract */
	free(resp);

	if (size < sizeof(hp)) {
		memcpy(hp, data, size);
		hp[size] = '\0';
		ctl_hostport_parse(hp, &a, &port);
	}
	return 0;
}
