/* SPDX-License-Identifier: GPL-2.0-only */
/* Offline pcap replay through the pipeline (libpcap). */
#include "io/replay.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pipeline.h"
#include "core/snapshot.h"

#define REPLAY_NS_PER_S 1000000000ull

/* The data plane needs a source address for every backend family and, here, a next-hop MAC. */
static int replay_check_config(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->dataplane.has_nexthop_mac) {
		snprintf(err, errlen, "%s: dataplane.nexthop_mac is required for --replay",
		         cfg->path);
		return -EINVAL;
	}
	return config_check_forwarding(cfg, err, errlen);
}

/*
 * Our MAC for a capture: the destination of its first frame sent to a unicast MAC (the group bit
 * of the first byte clear), so that a capture starting with broadcast ARP or multicast neighbour
 * discovery still gives the MAC of the host it was taken on. Read with a handle of its own; left
 * zero when no frame has a unicast destination (then every frame is to a group: none is ours).
 */
static int replay_our_mac(const char *in_path, uint8_t mac[ETH_ALEN], char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *in;
	int rc;

	memset(mac, 0, ETH_ALEN);
	in = pcap_open_offline(in_path, perr);
	if (!in) {
		snprintf(err, errlen, "%s: %s", in_path, perr);
		return -ENOENT;
	}
	while ((rc = pcap_next_ex(in, &h, &data)) == 1) {
		if (h->caplen >= ETH_ALEN && !(data[0] & 1)) {
			memcpy(mac, data, ETH_ALEN);
			break;
		}
	}
	if (rc == -1)
		snprintf(err, errlen, "%s: %s", in_path, pcap_geterr(in));
	pcap_close(in);
	return rc == -1 ? -EIO : 0;
}

/* One line of the counter summary, to the report file. */
static void replay_report_line(void *ctx, const char *text)
{
	fprintf(ctx, "%s\n", text);
}

int replay_run(const struct config *cfg, const char *in_path, const char *out_path, FILE *report,
               struct replay_result *res, char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct lb_snapshot *s = NULL;
	struct lb_worker *w = NULL;
	pcap_t *in = NULL, *dead = NULL;
	pcap_dumper_t *out = NULL;
	uint8_t *buf = NULL;
	struct lb_worker_params wp;
	struct pcap_pkthdr *h;
	const u_char *data;
	int ret, rc;

	memset(res, 0, sizeof(*res));
	lb_worker_params_init(&wp, &cfg->conntrack);
	ret = replay_check_config(cfg, err, errlen);
	if (ret)
		goto out;
	ret = snapshot_build(cfg, NULL, NULL, &s, err, errlen);
	if (ret)
		goto out;
	ret = replay_our_mac(in_path, wp.mac, err, errlen);
	if (ret)
		goto out;
	w = lb_worker_create(&wp);
	if (!w) {
		ret = -ENOMEM;
		snprintf(err, errlen, "cannot allocate a worker of %u flows", wp.ct_entries);
		goto out;
	}
	in = pcap_open_offline_with_tstamp_precision(in_path, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!in) {
		snprintf(err, errlen, "%s: %s", in_path, perr);
		ret = -ENOENT;
		goto out;
	}
	if (pcap_datalink(in) != DLT_EN10MB) {
		snprintf(err, errlen, "%s: link type %s, only Ethernet (EN10MB) is replayed",
		         in_path, pcap_datalink_val_to_name(pcap_datalink(in)) ?: "unknown");
		ret = -EINVAL;
		goto out;
	}
	dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, REPLAY_FRAME_MAX,
	                                            PCAP_TSTAMP_PRECISION_NANO);
	if (!dead) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	out = pcap_dump_open(dead, out_path);
	if (!out) {
		snprintf(err, errlen, "%s: %s", out_path, pcap_geterr(dead));
		ret = -EIO;
		goto out;
	}
	buf = malloc(LB_HEADROOM + REPLAY_FRAME_MAX);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while ((rc = pcap_next_ex(in, &h, &data)) == 1) {
		struct lb_frame f;
		struct pcap_pkthdr oh;
		/* Opened with nanosecond precision: tv_usec holds nanoseconds. */
		uint64_t now = (uint64_t)h->ts.tv_sec * REPLAY_NS_PER_S + (uint64_t)h->ts.tv_usec;
		uint32_t len = h->caplen < REPLAY_FRAME_MAX ? h->caplen : REPLAY_FRAME_MAX;
		enum lb_verdict v;

		res->frames_in++;
		if (h->caplen < h->len)
			res->truncated++;
		memcpy(buf + LB_HEADROOM, data, len);
		f = (struct lb_frame){buf + LB_HEADROOM, len, LB_HEADROOM};
		v = lb_process(w, s, &f, now);
		if (v == LB_PASS) {
			res->frames_pass++;
			continue;
		}
		if (v == LB_DROP) {
			res->frames_drop++;
			continue;
		}
		oh.ts = h->ts;
		oh.caplen = f.len;
		oh.len = f.len;
		pcap_dump((u_char *)out, &oh, f.data);
		res->frames_out++;
	}
	if (rc == -1) {
		snprintf(err, errlen, "%s: %s", in_path, pcap_geterr(in));
		ret = -EIO;
		goto out;
	}
	if (pcap_dump_flush(out)) {
		snprintf(err, errlen, "%s: write failed", out_path);
		ret = -EIO;
		goto out;
	}
	if (report) {
		fprintf(report, "replay: %llu frames in, %llu out, %llu passed, %llu dropped",
		        (unsigned long long)res->frames_in, (unsigned long long)res->frames_out,
		        (unsigned long long)res->frames_pass, (unsigned long long)res->frames_drop);
		if (res->truncated)
			fprintf(report, ", %llu cut short by the capture",
			        (unsigned long long)res->truncated);
		fprintf(report, "\n");
		if (w)
			lb_counters_summary(lb_counter_name, lb_worker_counters(w), LB_CTR_MAX,
			                    replay_report_line, report);
	}
	ret = 0;
out:
	if (out)
		pcap_dump_close(out);
	if (dead)
		pcap_close(dead);
	if (in)
		pcap_close(in);
	free(buf);
	lb_worker_destroy(w);
	snapshot_free(s);
	return ret;
}
