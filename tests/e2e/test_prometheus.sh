#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# maglevd's metrics as a real Prometheus sees them, on the namespace topology of lib.sh (afxdp).
# Shared setup: the topology, the backends' servers, one maglevd (web VIP with an HTTP health
# check, dns VIP unchecked), traffic through both VIPs, and a Prometheus server (Debian's
# prometheus) in the lb namespace on loopback, storage in the run's temp dir, scraping maglevd
# every second. The cases, in the order they run:
#   promtool   `promtool check metrics` finds nothing to say about a live /metrics
#   rate       known UDP traffic through the dns VIP: increase() and rate() of the per-backend
#              packets as Prometheus answers them agree with maglevd's own counters and with the
#              packets sent
#   health     a backend whose servers stop is down in Prometheus (maglevd_backend_up), and up
#              again once they are back
#   dashboard  dist/grafana-maglevd.json is JSON, every metric it names is a family of the live
#              /metrics, every query it holds is valid PromQL that Prometheus answers with data
#   flood      200 clients dripping header bytes and 200 idle ones, from four addresses, hold
#              no scrape off: every scrape from another address is answered, and so are
#              Prometheus's own
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgp}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

METRICS_ADDR=127.0.0.1:9180
METRICS_URL=http://$METRICS_ADDR/metrics
PROM_ADDR=127.0.0.1:9090 # Prometheus's own HTTP API, in the lb namespace
PROM_SCRAPE_S=1
PROM_READY_S=30      # Prometheus answers /-/ready within this (it replays an empty WAL)
PROM_SAMPLES_MIN=3   # scrapes of maglevd it must have before the traffic of a case
UDP_FLOWS=100        # distinct source ports (flows) of the rate case's traffic ...
UDP_PER_FLOW=20      # ... each sending this many datagrams
UDP_PPS=1000         # the sender's pace
RATE_WINDOW_S=20     # range of increase() and rate(): it spans the traffic and samples around it
# increase() extrapolates the counter's change between the first and last samples in the range to
# the range's edges, by at most 1.1 scrape intervals at each end when samples reach that close to
# them: it returns the change times 1 .. RATE_WINDOW_S / (RATE_WINDOW_S - 2.2 x scrape). With the
# traffic wholly inside the range (samples of the flat counter on both sides), the answer must be
# at least the packets counted and at most that much over.
RATE_SLACK=$(awk -v w="$RATE_WINDOW_S" -v s="$PROM_SCRAPE_S" 'BEGIN { printf "%.4f", w / (w - 2.2 * s) }')
HC_INTERVAL_MS=200
HC_FALL=2
HC_RISE=2
# fall x interval for maglevd to see it, then a scrape, then up to 1 s until Prometheus's query
# sees the sample, and slack for a loaded 2-core machine.
HEALTH_WAIT_S=10
FLOOD_SECONDS=8
FLOOD_DRIP=200
FLOOD_IDLE=200
FLOOD_FROM=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
FLOOD_SCRAPER=127.0.0.1
DASHBOARD=$E2E_ROOT/dist/grafana-maglevd.json

PROM_PID=

metrics() { run_in "$NS_LB" curl -s -m 3 "$METRICS_URL"; }

# prom_query EXPR: the instant query's answer (JSON) from Prometheus's HTTP API.
prom_query() {
	run_in "$NS_LB" curl -s -m 5 --get "http://$PROM_ADDR/api/v1/query" --data-urlencode "query=$1"
}

# prom_value EXPR: the value of the query's one sample (empty if it has none or several).
prom_value() {
	prom_query "$1" | "$E2E_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
res = r["data"]["result"] if r.get("status") == "success" else []
if len(res) == 1:
    print(res[0]["value"][1])'
}

# prom_is EXPR WANT: the query's one value equals WANT (numerically).
prom_is() {
	local v
	v=$(prom_value "$1")
	[ -n "$v" ] && awk -v v="$v" -v w="$2" 'BEGIN { exit !(v + 0 == w + 0) }'
}

# backend_packets VIP BACKEND: maglevd_backend_packets_total of it, from /metrics itself.
backend_packets() {
	metrics | awk -v l="maglevd_backend_packets_total{vip=\"$1\",backend=\"$2\"}" '$1 == l { print $2 }'
}

prom_start() {
	local dir=$E2E_DIR/prom
	mkdir -p "$dir/data"
	cat >"$dir/prometheus.yml" <<EOF
# written by tests/e2e/test_prometheus.sh
global:
  scrape_interval: ${PROM_SCRAPE_S}s
  scrape_timeout: ${PROM_SCRAPE_S}s
  evaluation_interval: ${PROM_SCRAPE_S}s
scrape_configs:
  - job_name: maglevd
    static_configs:
      - targets: ['$METRICS_ADDR']
EOF
	promtool check config "$dir/prometheus.yml" >"$dir/check.log" 2>&1 || { cat "$dir/check.log" >&2; return 1; }
	bg_in "$NS_LB" "$dir/prometheus.log" prometheus --config.file="$dir/prometheus.yml" \
		--storage.tsdb.path="$dir/data" --web.listen-address="$PROM_ADDR" \
		--storage.tsdb.retention.time=1h
	PROM_PID=$BG_PID
	wait_for "$PROM_READY_S" run_in "$NS_LB" curl -sf -m 1 "http://$PROM_ADDR/-/ready" || {
		e2e_log "prometheus not ready after ${PROM_READY_S}s:"
		tail -20 "$dir/prometheus.log" >&2
		return 1
	}
}

# prom_has_samples N: Prometheus has N or more scrapes of maglevd in the last minute, all up.
prom_has_samples() {
	[ -n "$(prom_value "count_over_time(up{job=\"maglevd\"}[1m]) >= $1")" ] &&
		prom_is "min_over_time(up{job=\"maglevd\"}[1m])" 1
}

# udp_traffic FLOWS PER_FLOW PPS: datagrams to the dns VIP from the client, FLOWS source ports
# each sending PER_FLOW, paced at PPS; prints "sent echoed" (echoes come back from the backends).
udp_traffic() {
	run_in "$NS_CLIENT" "$E2E_PYTHON" - "$VIP_DNS4" 53 "$@" <<'EOF'
import selectors, socket, sys, time
vip, port, flows, per, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
socks = []
for _ in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((vip, port))
    socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
sent = echoed = 0
t0 = time.monotonic()
def drain(wait):
    global echoed
    for key, _ in sel.select(timeout=wait):
        try:
            while key.fileobj.recv(2048):
                echoed += 1
        except BlockingIOError:
            pass
for r in range(per):
    for s in socks:
        s.send(b"prometheus %d" % sent)
        sent += 1
        while sent > (time.monotonic() - t0) * pps:  # pace
            drain(0.001)
end = time.monotonic() + 3.0  # the last echoes
while echoed < sent and time.monotonic() < end:
    drain(0.05)
print(sent, echoed)
EOF
}

# ---------------------------------------------------------------------------------------------

case_promtool() {
	local out rc
	metrics >"$E2E_DIR/metrics.txt"
	check "promtool: /metrics scraped ($(grep -c '^# TYPE' "$E2E_DIR/metrics.txt") families)" \
		grep -q '^maglevd_uptime_seconds ' "$E2E_DIR/metrics.txt"
	out=$(promtool check metrics <"$E2E_DIR/metrics.txt" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
		ok "promtool check metrics: nothing to report"
	else
		bad "promtool check metrics (rc $rc): $out"
	fi
	check "promtool: traffic is in it (backend packets > 0)" \
		awk '$1 ~ /^maglevd_backend_packets_total\{/ { s += $2 } END { exit !(s > 0) }' "$E2E_DIR/metrics.txt"
}

case_rate() {
	local i before=() after=() sent echoed delta total=0 inc r lo hi want_rate
	check "rate: Prometheus has $PROM_SAMPLES_MIN scrapes of maglevd, all up" \
		wait_for 20 prom_has_samples "$PROM_SAMPLES_MIN"
	for i in 0 1 2; do
		before[i]=$(backend_packets dns "${BACKENDS4[$i]}")
	done
	read -r sent echoed < <(udp_traffic "$UDP_FLOWS" "$UDP_PER_FLOW" "$UDP_PPS")
	check "rate: $sent datagrams sent through the dns VIP, $echoed echoed" [ "${echoed:-0}" -eq "$sent" ]
	# Two scrapes after the last packet, so the range has the flat counter on its far side.
	sleep $((2 * PROM_SCRAPE_S + 1))
	for i in 0 1 2; do
		after[i]=$(backend_packets dns "${BACKENDS4[$i]}")
		delta=$((after[i] - before[i]))
		total=$((total + delta))
		inc=$(prom_value "increase(maglevd_backend_packets_total{vip=\"dns\",backend=\"${BACKENDS4[$i]}\"}[${RATE_WINDOW_S}s])")
		lo=$delta
		hi=$(awk -v d="$delta" -v s="$RATE_SLACK" 'BEGIN { printf "%.1f", d * s + 1 }')
		if [ -n "$inc" ] && awk -v v="$inc" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
			ok "rate: ${BACKEND_NAMES[$i]}: increase() $inc for $delta packets counted (within $lo..$hi)"
		else
			bad "rate: ${BACKEND_NAMES[$i]}: increase() '${inc}' for $delta packets counted (want $lo..$hi)"
		fi
	done
	check "rate: maglevd counted every datagram sent ($total of $sent)" [ "$total" -eq "$sent" ]
	r=$(prom_value "sum(rate(maglevd_backend_packets_total{vip=\"dns\"}[${RATE_WINDOW_S}s]))")
	want_rate=$(awk -v n="$sent" -v w="$RATE_WINDOW_S" 'BEGIN { printf "%.2f", n / w }')
	hi=$(awk -v n="$sent" -v w="$RATE_WINDOW_S" -v s="$RATE_SLACK" 'BEGIN { printf "%.2f", (n * s + 3) / w }')
	if [ -n "$r" ] && awk -v v="$r" -v lo="$want_rate" -v hi="$hi" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
		ok "rate: sum of rate() over ${RATE_WINDOW_S}s $r/s for $sent packets ($want_rate..$hi)"
	else
		bad "rate: sum of rate() over ${RATE_WINDOW_S}s '${r}'/s for $sent packets (want $want_rate..$hi)"
	fi
	check "rate: every backend got some of the $UDP_FLOWS flows" \
		prom_is "count(increase(maglevd_backend_packets_total{vip=\"dns\"}[${RATE_WINDOW_S}s]) > 0)" 3
	# Each flow is new to the connection table once: flows_total rises by exactly UDP_FLOWS.
	inc=$(prom_value "sum(increase(maglevd_backend_flows_total{vip=\"dns\"}[${RATE_WINDOW_S}s]))")
	hi=$(awk -v d="$UDP_FLOWS" -v s="$RATE_SLACK" 'BEGIN { printf "%.1f", d * s + 1 }')
	if [ -n "$inc" ] && awk -v v="$inc" -v lo="$UDP_FLOWS" -v hi="$hi" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
		ok "rate: new flows, increase() $inc for the $UDP_FLOWS flows sent ($UDP_FLOWS..$hi)"
	else
		bad "rate: new flows, increase() '${inc}' for the $UDP_FLOWS flows sent (want $UDP_FLOWS..$hi)"
	fi
}

case_health() {
	local b=${BACKENDS4[1]} t0
	check "health: all three web backends up in Prometheus" \
		wait_for "$HEALTH_WAIT_S" prom_is 'sum(maglevd_backend_up{vip="web"})' 3
	stop_backend_servers 1
	t0=$(now_ms)
	if wait_since "$t0" "$HEALTH_WAIT_S" prom_is "maglevd_backend_up{vip=\"web\",backend=\"$b\"}" 0; then
		ok "health: ${BACKEND_NAMES[1]} down in Prometheus ${TOOK} ms after its servers stopped"
	else
		bad "health: ${BACKEND_NAMES[1]} not down in Prometheus within ${HEALTH_WAIT_S}s"
	fi
	check "health: 2 of 3 web backends up" prom_is 'sum(maglevd_backend_up{vip="web"})' 2
	check "health: the dns VIP (no check) keeps all three up" prom_is 'sum(maglevd_backend_up{vip="dns"})' 3
	start_backend_servers 1 || bad "health: ${BACKEND_NAMES[1]}'s servers restart"
	t0=$(now_ms)
	if wait_since "$t0" "$HEALTH_WAIT_S" prom_is "maglevd_backend_up{vip=\"web\",backend=\"$b\"}" 1; then
		ok "health: ${BACKEND_NAMES[1]} up again in Prometheus after ${TOOK} ms"
	else
		bad "health: ${BACKEND_NAMES[1]} not up again in Prometheus within ${HEALTH_WAIT_S}s"
	fi
}

case_dashboard() {
	local name missing=0 n=0 q
	check "dashboard: $DASHBOARD is JSON" "$E2E_PYTHON" -m json.tool "$DASHBOARD" /dev/null
	metrics >"$E2E_DIR/metrics.txt"
	for name in $("$E2E_PYTHON" - "$DASHBOARD" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
names = set()
def walk(x):
    if isinstance(x, dict):
        for k, v in x.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                names.update(re.findall(r"\bmaglevd_[a-z0-9_]+", v))
            walk(v)
    elif isinstance(x, list):
        for v in x:
            walk(v)
walk(d)
print("\n".join(sorted(names)))
EOF
	); do
		n=$((n + 1))
		grep -q "^# TYPE $name " "$E2E_DIR/metrics.txt" || {
			missing=$((missing + 1))
			e2e_log "dashboard names $name, which /metrics does not have"
		}
	done
	check "dashboard: all $n metric names it uses are families of /metrics ($missing missing)" \
		[ "$n" -gt 0 ] && [ "$missing" -eq 0 ]
	# Every panel query, with Grafana's variables given values, as Prometheus parses and answers it.
	missing=0 n=0
	while IFS= read -r q; do
		n=$((n + 1))
		prom_query "$q" | "$E2E_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if r.get("status") == "success" and r["data"]["result"] else 1)' || {
			missing=$((missing + 1))
			e2e_log "dashboard query gets no data: $q"
		}
	done < <("$E2E_PYTHON" - "$DASHBOARD" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["panels"]:
    for t in p.get("targets", []):
        q = t["expr"].replace("$__rate_interval", "30s").replace("$vip", "dns|web")
        # "> 0" filters leave nothing on a quiet maglevd: what matters is that it parses and its
        # series exist.
        print(q.replace(") > 0", ") >= 0"))
EOF
	)
	check "dashboard: all $n panel queries answered with data ($missing without)" \
		[ "$n" -gt 0 ] && [ "$missing" -eq 0 ]
	check "dashboard: the vip variable's values are the VIPs" \
		prom_is 'count(count by (vip) (maglevd_vip_info))' 2
}

case_flood() {
	local out tried answered n up
	check "flood: Prometheus scrapes maglevd before it" wait_for 20 prom_has_samples "$PROM_SAMPLES_MIN"
	out=$(run_in "$NS_LB" "$E2E_PYTHON" "$E2E_ROOT/tests/e2e/metrics_flood.py" "${METRICS_ADDR%:*}" \
		"${METRICS_ADDR#*:}" --drip "$FLOOD_DRIP" --idle "$FLOOD_IDLE" --from "$FLOOD_FROM" \
		--scrape-from "$FLOOD_SCRAPER" --seconds "$FLOOD_SECONDS")
	e2e_log "flood: $out"
	tried=$(echo "$out" | "$E2E_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tried"])')
	answered=$(echo "$out" | "$E2E_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["answered"])')
	check "flood: $FLOOD_DRIP dripping and $FLOOD_IDLE idle clients: $answered of $tried scrapes answered" \
		[ "${tried:-0}" -gt 0 ] && [ "$answered" -eq "$tried" ]
	check "flood: the server closed slow clients (evicted counted)" \
		bash -c "ip netns exec '$NS_LB' curl -s -m 3 '$METRICS_URL' | awk '\$1 == \"maglevd_metrics_connections_closed_total{reason=\\\"evicted\\\"}\" { exit !(\$2 > 0) }'"
	# Prometheus keeps its connection open between scrapes: the flood must not evict it. Every
	# scrape in the flood's time recorded (a failed one as up 0), at least one each 2 s.
	sleep "$PROM_SCRAPE_S"
	n=$(prom_value "count_over_time(up{job=\"maglevd\"}[${FLOOD_SECONDS}s])")
	up=$(prom_value "sum_over_time(up{job=\"maglevd\"}[${FLOOD_SECONDS}s])")
	check "flood: Prometheus's own scrapes in it: ${up:-?} of ${n:-?} up" \
		[ "${n:-0}" -ge $((FLOOD_SECONDS / (2 * PROM_SCRAPE_S))) ] && [ "${up:-x}" = "$n" ]
}

# ---------------------------------------------------------------------------------------------

e2e_cases promtool rate health dashboard flood
e2e_init
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_skip "build maglevd and maglevctl first (make)"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
	e2e_skip "no prometheus/promtool (Debian package prometheus; scripts/install-deps.sh)"
e2e_topology_up || e2e_abort "topology"
start_backend_servers || e2e_abort "backend servers"
CFG=$E2E_DIR/maglevd.yaml
e2e_write_config "$CFG" --vip web "$VIP_WEB4" tcp 80 all \
	--health "{ type: http, path: /, interval: ${HC_INTERVAL_MS}ms, timeout: 100ms, rise: $HC_RISE, fall: $HC_FALL }" \
	--vip dns "$VIP_DNS4" udp 53 all
start_maglevd afxdp "$CFG" || e2e_abort "maglevd starts"
wait_for 10 test -S "$MAGLEVD_SOCKET" || e2e_abort "control socket appears"
for ((k = 0; k < 6; k++)); do
	run_in "$NS_CLIENT" curl -s -m 2 -o /dev/null "http://$VIP_WEB4/"
done
prom_start || e2e_abort "prometheus starts in $NS_LB"

e2e_run_cases

check "maglevd still running" pid_alive "$MAGLEVD_PID"
kill_pid "$PROM_PID" 10 || true
check "prometheus stopped" bash -c "! kill -0 $PROM_PID 2>/dev/null"
stop_maglevd || bad "maglevd exit status"
e2e_summary
