#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The demo (README's first quick-start command; `make demo`), as root on Debian 12: installs the
# packages, builds, sets up the namespace topology of tests/e2e/lib.sh (client, router, maglevd
# host, three backends with the XDP GRE decap), runs maglevd (afxdp), sends DEMO_REQUESTS (1000)
# HTTP requests to the VIP with curl (a new connection each), prints how they spread over the
# backends and maglevd's counters, and removes everything again (also on failure or Ctrl-C).
# DEMO_BINDIR=/usr/sbin runs the installed maglevd and maglevctl there (the Debian package's)
# instead: nothing is installed or built, and the topology's tools must be there already
# (DEMO_TOOLS; scripts/check-package.sh runs it so in a fresh root).
set -u
cd "$(dirname "$0")/.." || exit 1

DEMO_REQUESTS=${DEMO_REQUESTS:-1000}
DEMO_MODE=${DEMO_MODE:-afxdp}
DEMO_BINDIR=${DEMO_BINDIR:-}
# What tests/e2e/lib.sh's topology, servers and clients run, by command (and Debian package).
DEMO_TOOLS="ip:iproute2 sysctl:procps ethtool:ethtool ping:iputils-ping curl:curl socat:socat
	iperf3:iperf3 python3:python3"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (it installs packages and builds network namespaces)" >&2
	exit 1
fi
if [ -n "$DEMO_BINDIR" ]; then
	export MAGLEVD=$DEMO_BINDIR/maglevd MAGLEVCTL=$DEMO_BINDIR/maglevctl
	missing=
	for t in $DEMO_TOOLS; do
		command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"
	done
	if [ -n "$missing" ]; then
		echo "demo: DEMO_BINDIR set, so nothing is installed; missing:$missing" >&2
		exit 1
	fi
	echo "== using the installed $MAGLEVD ($("$MAGLEVD" --version)) and $MAGLEVCTL"
else
	echo "== installing packages (scripts/install-deps.sh)"
	scripts/install-deps.sh || { echo "demo: package installation failed" >&2; exit 1; }
	echo "== building (make)"
	make -j2 >/dev/null || { echo "demo: build failed (run make to see why)" >&2; exit 1; }
fi

. tests/e2e/lib.sh
e2e_init

echo "== topology: client $CLIENT4 -> router -> maglevd host $LB4 -> GRE -> backends ${BACKENDS4[*]}"
e2e_topology_up || { echo "demo: topology setup failed" >&2; exit 1; }
start_backend_servers || { echo "demo: backend servers did not start" >&2; exit 1; }
echo "== starting maglevd ($DEMO_MODE) on $NS_LB:$LB_IF"
start_maglevd "$DEMO_MODE" || { echo "demo: maglevd did not start" >&2; exit 1; }
echo "   config: VIP web $VIP_WEB4 tcp 80 -> ${BACKENDS4[*]}"

lb_rx0=$(link_stat "$NS_LB" "$LB_IF" rx_packets)
lb_tx0=$(link_stat "$NS_LB" "$LB_IF" tx_packets)
cl_rx0=$(link_stat "$NS_CLIENT" "$CLIENT_IF" rx_packets)

echo "== $DEMO_REQUESTS HTTP requests to http://$VIP_WEB4/ (curl, a new connection each)"
# One curl, one URL per request; "Connection: close" makes each request its own TCP connection
# (its own source port, so its own flow through the Maglev table).
run_in "$NS_CLIENT" curl -s -m 3 -H 'Connection: close' "http://$VIP_WEB4/demo/[1-$DEMO_REQUESTS]" \
	>"$E2E_DIR/answers" 2>"$E2E_DIR/curl.err"
ok=$(grep -cE '^be[0-9]+$' "$E2E_DIR/answers")
echo "   $ok answered, $((DEMO_REQUESTS - ok)) failed"
printf '   %-8s %8s %7s\n' backend requests share
for b in "${BACKEND_NAMES[@]}"; do
	n=$(grep -cx "$b" "$E2E_DIR/answers")
	pct=$(awk -v n="$n" -v t="$DEMO_REQUESTS" 'BEGIN { printf "%.1f%%", 100 * n / t }')
	printf '   %-8s %8d %7s\n' "$b" "$n" "$pct"
done

lb_rx=$(($(link_stat "$NS_LB" "$LB_IF" rx_packets) - lb_rx0))
lb_tx=$(($(link_stat "$NS_LB" "$LB_IF" tx_packets) - lb_tx0))
cl_rx=$(($(link_stat "$NS_CLIENT" "$CLIENT_IF" rx_packets) - cl_rx0))
echo "== direct server return: the maglevd host's $LB_IF received $lb_rx packets and sent $lb_tx"
echo "   (client -> VIP in, GRE to the backends out); the client received $cl_rx packets, the"
echo "   replies, straight from the backends"

shown=0
if "$MAGLEVCTL" --help 2>&1 | grep -qw counters; then
	echo "== maglevd counters (maglevctl counters; the ones above zero)"
	# Rows are "name total per_worker...": keep the non-numeric lines and the non-zero rows.
	run_in "$NS_LB" "$MAGLEVCTL" counters -s "$MAGLEVD_SOCKET" >"$E2E_DIR/counters" 2>&1 &&
		shown=1
	awk 'NF && ($2 !~ /^[0-9]+$/ || $2 > 0) { print "   " $0 }' "$E2E_DIR/counters"
fi
echo "== the backends' XDP GRE decapsulation (maglevctl decap status)"
for i in 0 1 2; do
	echo "   ${BACKEND_NAMES[$i]}: $(run_in "${NS_BACKENDS[$i]}" "$MAGLEVCTL" decap status "$BE_IF" |
		awk '$1 == "decapsulated" { print "decapsulated " $2 }')"
done
stop_maglevd || echo "demo: maglevd did not stop cleanly"
if [ -s "$MAGLEVD_LOG" ]; then
	echo "== maglevd's log"
	# Its closing counter summary repeats what maglevctl showed.
	if [ "$shown" -eq 1 ]; then
		awk '/counters \(sum/ { exit } { print "   " $0 }' "$MAGLEVD_LOG"
	else
		sed 's/^/   /' "$MAGLEVD_LOG" | tail -60
	fi
fi
echo "== tearing down"
closing_line demo "$ok" $((DEMO_REQUESTS - ok)) # requests answered and not
