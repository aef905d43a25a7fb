/* SPDX-License-Identifier: GPL-2.0-only */
/* Configuration defaults, lookups of a VIP and a backend, the forwarding check and release. */
#include "core/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_init(struct config *c)
{
	*c = (struct config){
	    .hash_seed = CONFIG_HASH_SEED_DEFAULT,
	    .table_size = CONFIG_TABLE_SIZE_DEFAULT,
	    .dataplane =
	        {
	            .mode = DP_MODE_AFXDP,
	            .workers = CONFIG_WORKERS_DEFAULT,
	            .ttl = CONFIG_TTL_DEFAULT,
	            .mtu = CONFIG_MTU_DEFAULT,
	            .icmp_rate = CONFIG_ICMP_RATE_DEFAULT,
	        },
	    .conntrack =
	        {
	            .entries = CONFIG_CT_ENTRIES_DEFAULT,
	            .tcp_timeout = CONFIG_CT_TCP_TIMEOUT_DEFAULT,
	            .tcp_fin_timeout = CONFIG_CT_TCP_FIN_TIMEOUT_DEFAULT,
	            .tcp_syn_timeout = CONFIG_CT_TCP_SYN_TIMEOUT_DEFAULT,
	            .udp_timeout = CONFIG_CT_UDP_TIMEOUT_DEFAULT,
	            .icmp_timeout = CONFIG_CT_ICMP_TIMEOUT_DEFAULT,
	            .max_inserts_per_second = CONFIG_CT_MAX_INSERTS_DEFAULT,
	        },
	    .control =
	        {
	            .socket = CONFIG_SOCKET_DEFAULT,
	            .metrics_enabled = true,
	            .metrics_address = CONFIG_METRICS_ADDR_DEFAULT,
	            .metrics_port = CONFIG_METRICS_PORT_DEFAULT,
	            .state_dir = CONFIG_STATE_DIR_DEFAULT,
	        },
	    .announce =
	        {
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

const struct config_vip *config_vip_find(const struct config *c, const char *name)
{
	for (uint32_t i = 0; i < c->n_vips; i++)
		if (strcmp(c->vips[i].name, name) == 0)
			return &c->vips[i];
	return NULL;
}

const struct config_backend *config_backend_find(const struct config_vip *v,
                                                 const struct lb_addr *a)
{
	for (uint32_t i = 0; v && i < v->n_backends; i++)
		if (lb_addr_eq(&v->backends[i].addr, a))
			return &v->backends[i];
	return NULL;
}

const char *config_vip_hash_name(enum vip_hash h)
{
	return h == VIP_HASH_SOURCE ? "source" : "5-tuple";
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

int config_check_forwarding(const struct config *c, char *err, size_t errlen)
{
	const struct config_dataplane *d = &c->dataplane;
	char buf[LB_ADDR_STRLEN];

	for (uint32_t i = 0; i < c->n_vips; i++) {
		const struct config_vip *vip = &c->vips[i];

		if (vip->addr.family == AF_INET6 && d->mtu < CONFIG_MTU_IPV6_MIN) {
			snprintf(err, errlen,
			         "%s:%d: VIP '%s' is IPv6 but dataplane.mtu %u is below %u",
			         c->path, vip->line, vip->name, d->mtu, CONFIG_MTU_IPV6_MIN);
			return -EINVAL;
		}
		for (uint32_t j = 0; j < vip->n_backends; j++) {
			const struct config_backend *b = &vip->backends[j];
			bool v4 = b->addr.family == AF_INET;
			const struct lb_addr *src = v4 ? &d->source_ipv4 : &d->source_ipv6;
			char fam = v4 ? '4' : '6';

			lb_addr_str(&b->addr, buf, sizeof(buf));
			if (src->family != b->addr.family) {
				snprintf(err, errlen,
				         "%s:%d: VIP '%s' has IPv%c backend '%s' but "
				         "dataplane.source_ipv%c is not set",
				         c->path, b->line, vip->name, fam, buf, fam);
				return -EINVAL;
			}
			if (!v4 && d->mtu < CONFIG_MTU_IPV6_MIN) {
				snprintf(err, errlen,
				         "%s:%d: VIP '%s' has IPv6 backend '%s' but "
				         "dataplane.mtu %u is below %u",
				         c->path, b->line, vip->name, buf, d->mtu,
				         CONFIG_MTU_IPV6_MIN);
				return -EINVAL;
			}
		}
	}
	return 0;
}
