/* Configuration defaults and release. */
#include "core/config.h"

#include <stdlib.h>

void config_init(struct config *c)
{
	*c = (struct config){
		.hash_seed = CONFIG_HASH_SEED_DEFAULT,
		.table_size = CONFIG_TABLE_SIZE_DEFAULT,
		.dataplane = {
			.mode = DP_MODE_AFXDP,
			.workers = CONFIG_WORKERS_DEFAULT,
			.ttl = CONFIG_TTL_DEFAULT,
			.mtu = CONFIG_MTU_DEFAULT,
			.icmp_rate = CONFIG_ICMP_RATE_DEFAULT,
		},
		.conntrack = {
			.entries = CONFIG_CT_ENTRIES_DEFAULT,
			.tcp_timeout = CONFIG_CT_TCP_TIMEOUT_DEFAULT,
			.tcp_fin_timeout = CONFIG_CT_TCP_FIN_TIMEOUT_DEFAULT,
			.udp_timeout = CONFIG_CT_UDP_TIMEOUT_DEFAULT,
			.icmp_timeout = CONFIG_CT_ICMP_TIMEOUT_DEFAULT,
		},
		.control = {
			.socket = CONFIG_SOCKET_DEFAULT,
			.metrics_enabled = true,
			.metrics_address = CONFIG_METRICS_ADDR_DEFAULT,
			.metrics_port = CONFIG_METRICS_PORT_DEFAULT,
		},
		.announce = {
			.table = CONFIG_ANNOUNCE_TABLE_DEFAULT,
			.protocol = CONFIG_ANNOUNCE_PROTOCOL_DEFAULT,
			.withdraw_when_no_backends = true,
			.withdraw_delay_ms = CONFIG_ANNOUNCE_DELAY_DEFAULT_MS,
			.interface = CONFIG_ANNOUNCE_INTERFACE_DEFAULT,
		},
	};
}

void config_health_init(struct config_health *h)
{
	*h = (struct config_health){
		.type = HC_NONE,
		.expect_status = CONFIG_HC_EXPECT_STATUS_DEFAULT,
		.path = CONFIG_HC_PATH_DEFAULT,
		.interval_ms = CONFIG_HC_INTERVAL_DEFAULT_MS,
		.timeout_ms = CONFIG_HC_TIMEOUT_DEFAULT_MS,
		.rise = CONFIG_HC_RISE_DEFAULT,
		.fall = CONFIG_HC_FALL_DEFAULT,
	};
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n_vips; i++)
		free(c->vips[i].backends);
	free(c->vips);
	free(c);
}
