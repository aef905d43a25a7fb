/* SPDX-License-Identifier: GPL-2.0-only */
/* The data plane: I/O backend, worker threads over the RCU-published snapshot, next hops. */
#include "io/dataplane.h"

#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "base/clock.h"
#include "base/log.h"
#include "bpf/xdp_fwd.h"
#include "bpf/xdp_vip.h"
#include "core/conntrack.h"
#include "io/bpfobj.h"
#include "io/nexthop.h"
#include "io/xdpfwd.h"

struct dp_worker {
	struct dataplane *dp;
	uint32_t id;
	int cpu; /* pinned to; -1 = not pinned */
	struct lb_worker *w;
	pthread_t thread;
	bool started;
	/*
	 * Written by the worker, read by the control thread, both relaxed: loops counts passes of
	 * the worker's loop (the watchdog's sign of life), stall_ms is a test hook's request.
	 */
	uint64_t loops;
	uint32_t stall_ms;
	uint64_t ctr[IO_CTR_MAX]; /* NO_SNAPSHOT; the backend keeps the rest */
	struct lb_frame frames[IO_BATCH_MAX];
	enum lb_verdict verdicts[IO_BATCH_MAX];
};

struct dataplane {
	const struct io_ops *ops;
	struct io_dev *dev;
	struct xdpfwd *fwd; /* xdp mode: the kernel's forwarding maps (the backend's); else NULL */
	struct nh_resolver *nh; /* NULL with dataplane.nexthop_mac */
	struct lb_snapshot **current;
	struct config_dataplane cfg;
	struct io_vip *filter; /* VIPs the backend steers now */
	uint32_t n_filter;
	const struct lb_nexthop *watched[NH_WATCHES_MAX];
	uint32_t n_watched;
	bool first_prepare_done;
	atomic_bool stop;
	bool halted;
	uint32_t n_workers;
	struct dp_worker *workers;
	char mode[80];
};

/*
 * The stall a test asked for (dataplane_worker_stall): the worker sleeps outside any RCU read
 * section, taking no frames, in slices so that a stop still ends it within DATAPLANE_IDLE_MS.
 */
static void dp_worker_stall_run(struct dp_worker *wk, uint32_t ms)
{
	struct dataplane *dp = wk->dp;
	uint64_t until = clock_now_ms() + ms;

	log_warn("worker %u: stalled for %u ms on request (test hook)", wk->id, ms);
	while (!atomic_load_explicit(&dp->stop, memory_order_relaxed) && clock_now_ms() < until) {
		struct timespec ts = clock_ms_timespec(DATAPLANE_IDLE_MS);

		nanosleep(&ts, NULL);
	}
	log_info("worker %u: stall over", wk->id);
}

static void *dp_worker_run(void *arg)
{
	struct dp_worker *wk = arg;
	struct dataplane *dp = wk->dp;
	const struct io_ops *ops = dp->ops;
	uint64_t loops = 0;

	rcu_register_thread();
	while (!atomic_load_explicit(&dp->stop, memory_order_relaxed)) {
		unsigned n;
		const struct lb_snapshot *s;

		__atomic_store_n(&wk->loops, ++loops, __ATOMIC_RELAXED);
		if (__builtin_expect(__atomic_load_n(&wk->stall_ms, __ATOMIC_RELAXED) != 0, 0))
			dp_worker_stall_run(
			    wk, __atomic_exchange_n(&wk->stall_ms, 0, __ATOMIC_RELAXED));
		n = ops->rx(dp->dev, wk->id, wk->frames, IO_BATCH_MAX);
		if (n == 0) {
			ops->wait(dp->dev, wk->id, DATAPLANE_IDLE_MS);
			continue;
		}
		rcu_read_lock();
		s = rcu_dereference(*dp->current);
		if (s) {
			lb_process_batch(wk->w, s, wk->frames, wk->verdicts, n, clock_now_ns());
		} else {
			for (unsigned i = 0; i < n; i++)
				wk->verdicts[i] = LB_DROP;
			io_count(wk->ctr, IO_CTR_NO_SNAPSHOT, n);
		}
		rcu_read_unlock();
		ops->tx(dp->dev, wk->id, wk->frames, wk->verdicts, n);
	}
	rcu_unregister_thread();
	return NULL;
}

/* The i-th CPU this process may run on, round robin; -1 if the set cannot be read. */
static int dp_cpu_pick(uint32_t i)
{
	cpu_set_t set;
	uint32_t n, k = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	n = (uint32_t)CPU_COUNT(&set);
	if (n == 0)
		return -1;
	i %= n;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (k++ == i)
			return c;
	}
	return -1;
}

static int dp_if_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		rc = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return rc;
}

static int dp_set_filter(struct dataplane *dp, struct io_vip *vips, uint32_t n)
{
	struct io_filter f = {.vips = vips, .n_vips = n};
	int rc;

	if (dp->cfg.source_ipv4.family)
		f.self[0] = dp->cfg.source_ipv4;
	if (dp->cfg.source_ipv6.family)
		f.self[1] = dp->cfg.source_ipv6;
	rc = dp->ops->set_filter(dp->dev, &f);
	if (rc)
		return rc;
	free(dp->filter);
	dp->filter = vips;
	dp->n_filter = n;
	return 0;
}

static bool dp_vip_eq(const struct io_vip *a, const struct io_vip *b)
{
	return lb_addr_eq(&a->addr, &b->addr) && a->proto == b->proto && a->port == b->port;
}

int dataplane_prepare(struct dataplane *dp, struct lb_snapshot *next)
{
	uint32_t n = dp->n_filter;
	struct io_vip *vips = calloc((size_t)dp->n_filter + next->n_vips + 1, sizeof(*vips));
	int rc;

	if (!vips)
		return -ENOMEM;
	if (dp->cfg.has_nexthop_mac) {
		uint64_t mac = nh_mac_encode(dp->cfg.nexthop_mac);

		for (uint32_t i = 0; i < next->n_nexthops; i++)
			atomic_store_explicit(&next->nexthops[i].mac, mac, memory_order_relaxed);
	} else if (next->n_nexthops) {
		rc = nh_watch(dp->nh, next->nexthops, next->n_nexthops,
		              dp->fwd ? xdpfwd_next_nexthops(dp->fwd) : NULL);
		if (rc) {
			free(vips);
			return rc;
		}
		dp->watched[dp->n_watched++] = next->nexthops;
		if (!dp->first_prepare_done) {
			uint32_t left = nh_wait(dp->nh, DATAPLANE_NH_WAIT_MS);

			if (left)
				log_warn("%u of %u next hops not resolved yet; their packets "
				         "are dropped until they are",
				         left, next->n_nexthops);
		}
	}
	dp->first_prepare_done = true;
	/* Old VIPs plus new ones: workers may still run the old snapshot until commit. */
	if (dp->n_filter)
		memcpy(vips, dp->filter, dp->n_filter * sizeof(*vips));
	for (uint32_t i = 0; i < next->n_vips; i++) {
		struct io_vip v = {
		    .addr = next->vips[i].addr,
		    .proto = next->vips[i].proto,
		    .port = next->vips[i].port,
		};
		bool dup = false;

		for (uint32_t j = 0; j < n && !dup; j++)
			dup = dp_vip_eq(&vips[j], &v);
		if (!dup)
			vips[n++] = v;
	}
	rc = dp_set_filter(dp, vips, n);
	if (rc)
		free(vips);
	/* The kernel switches to next here, the workers at the caller's pointer swap. */
	if (!rc && dp->fwd) {
		char err[256];

		rc = xdpfwd_publish(dp->fwd, next, err, sizeof(err));
		if (rc)
			log_err("%s", err);
	}
	if (rc) {
		/* The caller frees next: the resolver must not write into it any more. */
		if (!dp->cfg.has_nexthop_mac && next->n_nexthops) {
			nh_unwatch(dp->nh, next->nexthops);
			dp->n_watched--;
		}
	}
	return rc;
}

void dataplane_commit(struct dataplane *dp, const struct lb_snapshot *now_published)
{
	struct io_vip *vips = calloc((size_t)now_published->n_vips + 1, sizeof(*vips));

	for (uint32_t w = 0; w < dp->n_watched;) {
		if (dp->watched[w] != now_published->nexthops) {
			nh_unwatch(dp->nh, dp->watched[w]);
			dp->watched[w] = dp->watched[--dp->n_watched];
		} else {
			w++;
		}
	}
	if (!vips)
		return; /* the filter keeps the old VIPs too: harmless, they PASS */
	for (uint32_t i = 0; i < now_published->n_vips; i++)
		vips[i] = (struct io_vip){
		    .addr = now_published->vips[i].addr,
		    .proto = now_published->vips[i].proto,
		    .port = now_published->vips[i].port,
		};
	if (dp_set_filter(dp, vips, now_published->n_vips)) {
		log_warn("cannot remove old VIPs from the steering filter");
		free(vips);
	}
}

void dataplane_halt(struct dataplane *dp)
{
	if (!dp || dp->halted)
		return;
	atomic_store(&dp->stop, true);
	for (uint32_t i = 0; i < dp->n_workers; i++)
		if (dp->workers[i].started)
			pthread_join(dp->workers[i].thread, NULL);
	if (dp->dev && dp->n_workers && dp->workers[0].started)
		dp->ops->report(dp->dev);
	dp->halted = true;
}

void dataplane_stop(struct dataplane *dp)
{
	if (!dp)
		return;
	dataplane_halt(dp);
	if (dp->dev)
		dp->ops->close(dp->dev);
	nh_stop(dp->nh);
	for (uint32_t i = 0; i < dp->n_workers; i++)
		if (dp->workers[i].w)
			lb_worker_destroy(dp->workers[i].w);
	free(dp->workers);
	free(dp->filter);
	free(dp);
}

/* 1 if the sysctl file holds "1", 0 if "0", -1 if it cannot be read. */
static int dp_sysctl_flag(const char *fmt, const char *ifname)
{
	char path[128];
	int c = -1;
	FILE *f;

	snprintf(path, sizeof(path), fmt, ifname);
	f = fopen(path, "re");
	if (!f)
		return -1;
	c = fgetc(f);
	fclose(f);
	return c == '1' ? 1 : c == '0' ? 0 : -1;
}

/*
 * AF_PACKET receives a copy: the kernel still processes every VIP packet. On a host that does
 * not forward, a packet for an address it does not own is dropped without an ICMP error; with
 * forwarding on, the kernel would route the copy back out (duplicates, loops until the TTL ends).
 */
static void dp_afpacket_check_forwarding(const char *ifname)
{
	if (dp_sysctl_flag("/proc/sys/net/ipv4/conf/%s/forwarding", ifname) == 1)
		log_warn("afpacket: IPv4 forwarding is on for %s, so the kernel forwards its own "
		         "copy of VIP packets too; set net.ipv4.conf.%s.forwarding=0",
		         ifname, ifname);
	if (dp_sysctl_flag("/proc/sys/net/ipv6/conf/%s/forwarding", ifname) == 1)
		log_warn("afpacket: IPv6 forwarding is on for %s, so the kernel forwards its own "
		         "copy of VIP packets too; set net.ipv6.conf.%s.forwarding=0",
		         ifname, ifname);
}

/* lb_ct_fallback_fn over the kernel's connection table (xdp mode). */
static bool dp_kernel_ct(void *ctx, const struct lb_flow_key *k, uint64_t hash, uint32_t now,
                         uint32_t *bref, uint32_t *secondary)
{
	uint32_t expires;
	uint8_t flags;

	return xdpfwd_ct_peek(ctx, k, hash, bref, secondary, &expires, &flags) &&
	       !ct_expired(expires, now);
}

/* dataplane.mode auto: afxdp where the driver takes zero-copy AF_XDP sockets, else xdp. */
static enum dp_mode dp_mode_auto(const char *ifname)
{
	int zc = io_afxdp_zerocopy(ifname);

	if (zc < 0)
		log_warn("dataplane.mode auto: cannot probe %s for zero-copy AF_XDP (%s): xdp",
		         ifname, strerror(-zc));
	else
		log_info("dataplane.mode auto: %s %s: %s", ifname,
		         zc ? "takes zero-copy AF_XDP sockets" : "has no zero-copy AF_XDP",
		         zc ? "afxdp" : "xdp");
	return zc == 1 ? DP_MODE_AFXDP : DP_MODE_XDP;
}

int dataplane_start(struct dataplane **out, const struct config *cfg, struct lb_snapshot **current,
                    char *err, size_t errlen)
{
	const struct config_dataplane *c = &cfg->dataplane;
	struct io_params params = {.ifname = c->interface, .queues = c->workers};
	char bpf_path[PATH_MAX];
	struct lb_worker_params wp;
	struct dataplane *dp;
	int rc, ifindex;

	lb_worker_params_init(&wp, &cfg->conntrack);
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return -ENOMEM;
	dp->cfg = *c;
	c = &dp->cfg; /* with auto's choice of mode */
	dp->current = current;
	ifindex = (int)if_nametoindex(c->interface);
	if (ifindex == 0) {
		rc = -ENODEV;
		snprintf(err, errlen, "dataplane.interface: no such interface '%s'", c->interface);
		goto out;
	}
	if (c->mode == DP_MODE_AUTO)
		dp->cfg.mode = dp_mode_auto(c->interface);
	dp->ops = c->mode == DP_MODE_AFPACKET ? &io_afpacket_ops : &io_afxdp_ops;
	rc = dp_if_mac(c->interface, wp.mac);
	if (rc) {
		snprintf(err, errlen, "dataplane.interface '%s': cannot read its MAC: %s",
		         c->interface, strerror(-rc));
		goto out;
	}
	memcpy(params.mac, wp.mac, sizeof(params.mac));
	if (!c->has_nexthop_mac) {
		rc = nh_start(&dp->nh, ifindex, err, errlen);
		if (rc)
			goto out;
	}
	if (c->mode == DP_MODE_AFPACKET)
		dp_afpacket_check_forwarding(c->interface);
	/* afxdp reports a miss */
	bpfobj_path(c->mode == DP_MODE_XDP ? XDP_FWD_OBJ_FILE : XDP_VIP_OBJ_FILE, bpf_path,
	            sizeof(bpf_path));
	params.bpf_path = bpf_path;
	if (c->mode == DP_MODE_XDP)
		params.kernel_ct = &cfg->conntrack;
	rc = dp->ops->open(&dp->dev, &params, err, errlen);
	if (rc) {
		dp->dev = NULL;
		goto out;
	}
	dp->fwd = dp->ops->kernel ? dp->ops->kernel(dp->dev) : NULL;
	if (dp->fwd) {
		wp.ct_fallback = dp_kernel_ct;
		wp.ct_fallback_ctx = dp->fwd;
	}
	snprintf(dp->mode, sizeof(dp->mode), "%s", dp->ops->mode(dp->dev));
	dp->workers = calloc(c->workers, sizeof(*dp->workers));
	if (!dp->workers) {
		rc = -ENOMEM;
		goto out;
	}
	dp->n_workers = c->workers;
	for (uint32_t i = 0; i < dp->n_workers; i++) {
		struct dp_worker *wk = &dp->workers[i];

		wk->dp = dp;
		wk->id = i;
		wp.id = i;
		wk->w = lb_worker_create(&wp);
		if (!wk->w) {
			rc = -ENOMEM;
			snprintf(err, errlen,
			         "worker %u: cannot allocate its connection table "
			         "(%u entries)",
			         i, wp.ct_entries);
			goto out;
		}
	}
	for (uint32_t i = 0; i < dp->n_workers; i++) {
		struct dp_worker *wk = &dp->workers[i];

		rc = -pthread_create(&wk->thread, NULL, dp_worker_run, wk);
		if (rc) {
			snprintf(err, errlen, "worker %u: cannot start thread: %s", i,
			         strerror(-rc));
			goto out;
		}
		wk->started = true;
		wk->cpu = dp_cpu_pick(i);
		if (wk->cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(wk->cpu, &set);
			if (pthread_setaffinity_np(wk->thread, sizeof(set), &set))
				wk->cpu = -1;
		}
		log_info("worker %u on queue %u, cpu %d", i, i, wk->cpu);
	}
	*out = dp;
	return 0;
out:
	dataplane_stop(dp);
	return rc;
}

uint32_t dataplane_worker_count(const struct dataplane *dp)
{
	return dp->n_workers;
}

struct lb_worker *dataplane_worker(const struct dataplane *dp, uint32_t i)
{
	return i < dp->n_workers ? dp->workers[i].w : NULL;
}

void dataplane_io_counters(const struct dataplane *dp, uint32_t i, uint64_t *out)
{
	if (i >= dp->n_workers)
		return;
	dp->ops->counters(dp->dev, i, out);
	for (int k = 0; k < IO_CTR_MAX; k++)
		out[k] += io_counter_read(dp->workers[i].ctr, k);
}

uint64_t dataplane_worker_loops(const struct dataplane *dp, uint32_t i)
{
	return i < dp->n_workers ? __atomic_load_n(&dp->workers[i].loops, __ATOMIC_RELAXED) : 0;
}

bool dataplane_worker_rx_pending(const struct dataplane *dp, uint32_t i)
{
	return i < dp->n_workers && !dp->halted && dp->ops->rx_pending(dp->dev, i);
}

int dataplane_worker_stall(struct dataplane *dp, uint32_t i, uint32_t ms)
{
	if (i >= dp->n_workers || ms == 0 || ms > DATAPLANE_STALL_MAX_MS)
		return -EINVAL;
	__atomic_store_n(&dp->workers[i].stall_ms, ms, __ATOMIC_RELAXED);
	return 0;
}

const char *dataplane_mode(const struct dataplane *dp)
{
	return dp->mode;
}

bool dataplane_kernel_forwards(const struct dataplane *dp)
{
	return dp->fwd != NULL;
}

void dataplane_kernel_counters(const struct dataplane *dp, uint64_t *ctr)
{
	if (dp->fwd)
		xdpfwd_counters(dp->fwd, ctr);
}

void dataplane_kernel_backend_counters(const struct dataplane *dp, uint16_t id,
                                       struct lb_backend_counters *out)
{
	if (dp->fwd)
		xdpfwd_backend_counters(dp->fwd, id, out);
}

bool dataplane_kernel_explain(const struct dataplane *dp, const struct lb_snapshot *s,
                              const struct lb_flow_key *k, struct lb_explanation *out)
{
	uint32_t bref, sref, expires;
	uint8_t flags;

	if (!dp->fwd || lb_explain(NULL, s, k, out) < 0 ||
	    !xdpfwd_ct_peek(dp->fwd, k, lb_flow_hash(k, s->hash_seed), &bref, &sref, &expires,
	                    &flags))
		return false;
	lb_explain_tracked(s, k, bref, sref, expires, flags, out);
	return true;
}
