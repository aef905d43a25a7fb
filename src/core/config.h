/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The configuration model: what a maglevd config file says, after parsing and validation.
 * Plain data; src/control/config_yaml.c fills it from YAML. docs/config.md is the reference.
 */
#ifndef MAGLEV_CORE_CONFIG_H
#define MAGLEV_CORE_CONFIG_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"

#define CONFIG_NAME_MAX                 64u   /* VIP name, bytes with the NUL */
#define CONFIG_PATH_MAX                 256u  /* file paths in the config, bytes with the NUL */
#define CONFIG_VIPS_MAX                 1024u /* VIPs per config */
#define CONFIG_BACKENDS_MAX             4096u /* backends per VIP */
#define CONFIG_WORKERS_MAX              64u   /* worker threads (RX queues) */
#define CONFIG_TTL_MIN                  1u
#define CONFIG_TTL_MAX                  255u
#define CONFIG_MTU_MIN                  576u  /* bytes; smallest MTU every IPv4 host must accept */
#define CONFIG_MTU_MAX                  9000u /* bytes; jumbo frames */
#define CONFIG_MTU_IPV6_MIN             1280u /* bytes; IPv6 needs links of at least this (RFC 8200) */
#define CONFIG_ICMP_RATE_MAX            1000000u   /* generated ICMP errors per second per worker */
#define CONFIG_CT_ENTRIES_MIN           1024u      /* flows per worker */
#define CONFIG_CT_ENTRIES_MAX           (1u << 26) /* flows per worker; 4 GiB of 64-byte entries */
#define CONFIG_CT_TIMEOUT_MIN           1u         /* seconds */
#define CONFIG_CT_TIMEOUT_MAX           604800u    /* seconds (one week) */
#define CONFIG_CT_MAX_INSERTS_MAX       100000000u /* entries a second; above any packet rate */
#define CONFIG_HC_INTERVAL_MIN_MS       10u        /* health check interval floor, ms */
#define CONFIG_HC_INTERVAL_MAX_MS       3600000u   /* one hour, ms */
#define CONFIG_HC_TIMEOUT_MIN_MS        1u         /* ms; must also be below the interval */
#define CONFIG_HC_RISE_FALL_MAX         100u       /* checks in a row */
#define CONFIG_HC_INTERVAL_DEFAULT_MS   1000u
#define CONFIG_HC_TIMEOUT_DEFAULT_MS    500u
#define CONFIG_HC_RISE_DEFAULT          2u
#define CONFIG_HC_FALL_DEFAULT          3u
#define CONFIG_HC_EXPECT_STATUS_DEFAULT 200u
#define CONFIG_HC_PATH_DEFAULT          "/"

#define CONFIG_HASH_SEED_DEFAULT          0x5eedull
#define CONFIG_TABLE_SIZE_DEFAULT         65537u /* M; same as MAGLEV_SIZE_DEFAULT */
#define CONFIG_TTL_DEFAULT                64u    /* outer TTL / hop limit of GRE packets */
#define CONFIG_MTU_DEFAULT                1500u  /* egress MTU, bytes of IP packet */
#define CONFIG_WORKERS_DEFAULT            1u
#define CONFIG_CT_ENTRIES_DEFAULT         (1u << 20) /* tracked flows per worker */
#define CONFIG_CT_TCP_TIMEOUT_DEFAULT     300u       /* seconds, established TCP */
#define CONFIG_CT_TCP_FIN_TIMEOUT_DEFAULT 10u        /* seconds, TCP after FIN or RST */
/*
 * New connection-table entries a second per worker; new flows beyond are served untracked. The
 * default table (2^20 flows) fills with about this many short connections a second (each lasting
 * its round trips and then tcp_fin_timeout), so a faster flood cannot churn it faster than real
 * traffic of that rate would, and the worst insert (a full table: ~50 header reads) stays a small
 * share of a worker.
 */
#define CONFIG_CT_MAX_INSERTS_DEFAULT 100000u
/*
 * Seconds, TCP that sent only bare SYNs. The entry need only last from the SYN to the client's
 * ACK: one round trip plus the backend's SYN-ACK retransmits at 1 s and 3 s if one is lost (a
 * client's SYN retransmits refresh it). A flood of R spoofed SYNs/s holds only about 5 R entries.
 */
#define CONFIG_CT_TCP_SYN_TIMEOUT_DEFAULT 5u
#define CONFIG_CT_UDP_TIMEOUT_DEFAULT     30u   /* seconds */
#define CONFIG_CT_ICMP_TIMEOUT_DEFAULT    10u   /* seconds */
#define CONFIG_ICMP_RATE_DEFAULT          1000u /* generated ICMP errors per second per worker */
#define CONFIG_SOCKET_DEFAULT             "/run/maglevd/maglevd.sock"
#define CONFIG_SOCKET_MAX                 108u /* bytes with the NUL: sizeof(sockaddr_un.sun_path) */
#define CONFIG_METRICS_ADDR_DEFAULT       "127.0.0.1"
#define CONFIG_METRICS_PORT_DEFAULT       9180u
#define CONFIG_STATE_DIR_DEFAULT          "/var/lib/maglevd" /* dist/maglevd.service's StateDirectory */
#define CONFIG_ANNOUNCE_TABLE_DEFAULT     100u /* kernel routing table of the VIP routes */
#define CONFIG_ANNOUNCE_PROTOCOL_DEFAULT  250u /* rtm_protocol marking maglevd's routes */
#define CONFIG_ANNOUNCE_PROTOCOL_MIN      5u   /* 0..4 are the kernel's own (unspec..static) */
#define CONFIG_ANNOUNCE_PROTOCOL_MAX      255u
#define CONFIG_ANNOUNCE_TABLE_RESERVED    253u /* 253..255: default, main, local; refused */
#define CONFIG_ANNOUNCE_INTERFACE_DEFAULT "maglevd-vips" /* TUN device the routes point into */
#define CONFIG_ANNOUNCE_DELAY_DEFAULT_MS  1000u  /* forwarding after withdrawal on a clean stop */
#define CONFIG_ANNOUNCE_DELAY_MAX_MS      60000u /* ms */

enum dp_mode {
	DP_MODE_AFXDP,    /* AF_XDP through libxdp (default) */
	DP_MODE_AFPACKET, /* TPACKET_V3 fallback */
	DP_MODE_XDP,      /* forwarding in the XDP program, AF_XDP for the slow path */
	DP_MODE_AUTO,     /* afxdp where the driver has zero-copy AF_XDP, else xdp (at start) */
};

/*
 * What a VIP's Maglev slot is hashed on (docs/pipeline.md, "Flow hash"): the whole flow key, or
 * the key without its ports, so that every connection of one client address meets one backend.
 */
enum vip_hash {
	VIP_HASH_5TUPLE, /* hash: 5-tuple (default) */
	VIP_HASH_SOURCE, /* hash: source */
};

enum hc_type {
	HC_NONE, /* no health check: the backend is always up */
	HC_TCP,  /* TCP connect */
	HC_HTTP, /* HTTP GET path, expect status */
};

struct config_health {
	enum hc_type type;
	uint16_t port;          /* port checked; the VIP's port when not set (0 only for HC_NONE) */
	uint16_t expect_status; /* HTTP status that means up; default 200 */
	char path[CONFIG_PATH_MAX]; /* HTTP request path; default "/" */
	uint32_t interval_ms;       /* default 1000 */
	uint32_t timeout_ms;        /* default 500 */
	uint32_t rise;              /* successes in a row to come up; default 2 */
	uint32_t fall;              /* failures in a row to go down; default 3 */
	bool tunnel; /* through: tunnel: probes to the VIP, GRE-encapsulated (default direct) */
	int line;    /* line of the health: mapping; 0 if defaulted */
};

struct config_backend {
	struct lb_addr addr;
	uint32_t weight; /* 0..65535; 0 = drain */
	bool has_health; /* health below overrides the VIP's */
	struct config_health health;
	int line; /* line in the config file, for messages */
};

struct config_vip {
	char name[CONFIG_NAME_MAX];
	struct lb_addr addr;
	uint8_t proto;               /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;               /* host order; 0 = every port */
	uint32_t table_size;         /* M for this VIP (cluster's unless overridden) */
	struct config_health health; /* type HC_NONE if none */
	bool second_chance;          /* GRE to backends carries the previous owner (TCP only) */
	enum vip_hash hash;          /* what the Maglev slot is hashed on */
	struct config_backend *backends;
	uint32_t n_backends;
	int line;
};

struct config_dataplane {
	enum dp_mode mode;
	char interface[IF_NAMESIZE]; /* where VIP traffic arrives and GRE leaves */
	uint32_t workers;            /* RX queues / worker threads */
	struct lb_addr source_ipv4;  /* outer source of GRE to IPv4 backends */
	struct lb_addr source_ipv6;  /* outer source of GRE to IPv6 backends */
	uint8_t ttl;                 /* outer TTL / hop limit */
	uint16_t mtu;                /* egress MTU */
	bool has_nexthop_mac;        /* else the kernel's neighbour table (netlink) */
	uint8_t nexthop_mac[6];
	uint32_t icmp_rate; /* generated ICMP errors per second per worker; 0 = none */
	int line;           /* line of the dataplane: key; 0 if the section is absent */
};

struct config_conntrack {
	uint32_t entries;                /* flows per worker */
	uint32_t tcp_timeout;            /* seconds */
	uint32_t tcp_fin_timeout;        /* seconds */
	uint32_t tcp_syn_timeout;        /* seconds */
	uint32_t udp_timeout;            /* seconds */
	uint32_t icmp_timeout;           /* seconds */
	uint32_t max_inserts_per_second; /* new entries per worker; 0 = unlimited */
};

struct config_control {
	char socket[CONFIG_SOCKET_MAX]; /* maglevctl Unix socket */
	bool metrics_enabled;
	char metrics_address[LB_ADDR_STRLEN];
	uint16_t metrics_port;
	/* maglevd's state directory (absolute): what a restart restores; "" = none kept */
	char state_dir[CONFIG_PATH_MAX];
};

/* VIP routes in a kernel table for a BGP daemon (BIRD) to export; docs/scaleout.md. */
struct config_announce {
	bool enabled;
	uint32_t table;                 /* kernel routing table, 1..2^32-1 but not 253..255 */
	uint8_t protocol;               /* rtm_protocol of our routes, 5..255 */
	bool withdraw_when_no_backends; /* withdraw a VIP whose backends are all health-down */
	uint32_t withdraw_delay_ms;  /* clean stop: keep forwarding this long after withdrawing */
	char interface[IF_NAMESIZE]; /* TUN device the routes point into (dies with maglevd) */
	int line;                    /* line of the announce: key; 0 if absent */
};

struct config {
	char path[CONFIG_PATH_MAX]; /* file it came from, for messages */
	uint64_t hash_seed;
	uint32_t table_size; /* cluster default M */
	struct config_dataplane dataplane;
	struct config_conntrack conntrack;
	struct config_control control;
	struct config_announce announce;
	struct config_vip *vips;
	uint32_t n_vips;
};

/* Sets every field to its default (no VIPs). */
void config_init(struct config *c);

/* Sets h to the health-check defaults with type HC_NONE and port 0. */
void config_health_init(struct config_health *h);

/*
 * What forwarding needs beyond a valid file: an outer source address for each backend family and
 * an MTU that IPv6 allows where IPv6 is used. 0, or -EINVAL with "FILE:LINE: reason" in err.
 */
int config_check_forwarding(const struct config *c, char *err, size_t errlen);

/* The VIP of c named name, or NULL. */
const struct config_vip *config_vip_find(const struct config *c, const char *name);

/* The backend of v with address a, or NULL (also for NULL v). */
const struct config_backend *config_backend_find(const struct config_vip *v,
                                                 const struct lb_addr *a);

/* The config file's word for h: "5-tuple" or "source". */
const char *config_vip_hash_name(enum vip_hash h);

/* Frees what config_load allocated, including c itself; NULL is fine. */
void config_free(struct config *c);

#endif
