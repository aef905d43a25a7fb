#!/usr/bin/env bash
# End-to-end benchmark (`make bench`, root): 64-byte UDP frames from the client with trafgen
# (netsniff-ng), many flows (source ports vary), to the UDP VIP, on the lib.sh topology. Counts
# the packets delivered to the three backends (an XDP sink on each backend's veth drops UDP and
# GRE frames and the veth's xdp_drops counter counts them) and prints, per row, the pps offered
# by the client, the pps delivered, and the ratio to kernel IP forwarding:
#   kernel IP forwarding  the lb namespace routes the VIP like a plain router (no maglevd); the
#                         router spreads what comes back from the lb over the backends (ECMP,
#                         L4 hash), so the packets take the same hops as through maglevd
#   maglevd afxdp / afpacket  build/maglevd in the lb namespace, GRE to the backends; the lb's
#                         kernel forwarding is off, so whatever arrives went through maglevd.
# CPUs: trafgen runs on CPU 0 (with the client's, router's and backends' softirq work it causes);
# the load balancer gets BENCH_LB_CPU (default: the last CPU) for itself in every row: maglevd
# runs confined to it (its worker is pinned there), and for kernel forwarding the lb's receive
# processing is steered there with RPS. With one CPU everything shares CPU 0.
# BENCH_REPEAT (default 3) runs of BENCH_SECONDS (default 5) per row, after BENCH_WARMUP (default
# 1) seconds of the same traffic; the row shows the run with the median delivered rate.
# Figures are noisy on a shared 2-core machine: compare the ratios of one run.
set -u
. "$(dirname "$0")/lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_REPEAT=${BENCH_REPEAT:-3} # timed runs a row; the median is printed
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_CPUS=${BENCH_CPUS:-1} # trafgen processes (one per CPU)
BENCH_SPORT_MIN=1024  # source ports of the flows: one flow each
BENCH_SPORT_MAX=65023 # 64000 flows
BENCH_PAYLOAD=18      # bytes: 14 + 20 + 8 + 18 = 60, a 64-byte frame with the FCS
BENCH_TABLE=100       # router's routing table for what comes back from the lb (kernel row)
SINK_OBJ=$E2E_BUILD/bpf/xdp_bench_sink.bpf.o
BENCH_LB_CPU=${BENCH_LB_CPU:-$(($(nproc) - 1))}

e2e_init
command -v trafgen >/dev/null || e2e_skip "no trafgen (Debian package netsniff-ng)"
[ -f "$SINK_OBJ" ] || e2e_skip "no $SINK_OBJ (run make)"

# delivered: frames the backends' sinks dropped so far (sum over backends and queues).
delivered() {
	local ns sum=0 n
	for ns in "${NS_BACKENDS[@]}"; do
		n=$(run_in "$ns" ethtool -S "$BE_IF" | awk '/rx_queue_[0-9]+_xdp_drops:/ { s += $2 } END { print s + 0 }')
		sum=$((sum + n))
	done
	echo "$sum"
}

# traffic SECONDS: trafgen on one CPU for SECONDS (SIGINT ends it).
traffic() {
	timeout -s INT "$1" ip netns exec "$NS_CLIENT" trafgen -o "$CLIENT_IF" -c "$E2E_DIR/udp.trafgen" \
		-P "$BENCH_CPUS" >>"$E2E_DIR/trafgen.log" 2>&1
	sleep 0.3 # frames still on their way
}

# measure: warm-up, then BENCH_REPEAT timed runs; sets ROW_PPS (delivered) and ROW_OFFERED from
# the run with the median delivered rate (other work on a shared machine skews single runs).
ROW_PPS=0
ROW_OFFERED=0
ROW_RUNS=
KERNEL_PPS=0
measure() {
	local d0 d1 t0 t1 s0 s1 secs i runs=()
	traffic "$BENCH_WARMUP"
	for ((i = 0; i < BENCH_REPEAT; i++)); do
		d0=$(delivered)
		t0=$(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets)
		s0=$(date +%s.%N)
		traffic "$BENCH_SECONDS"
		s1=$(date +%s.%N)
		d1=$(delivered)
		t1=$(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets)
		secs=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }')
		runs+=("$(awk -v d="$((d1 - d0))" -v t="$((t1 - t0))" -v s="$secs" \
			'BEGIN { printf "%d %d", d / s, t / s }')")
	done
	read -r ROW_PPS ROW_OFFERED < <(printf '%s\n' "${runs[@]}" | sort -n |
		awk -v m="$(((BENCH_REPEAT + 1) / 2))" 'NR == m')
	ROW_RUNS=$(printf '%s\n' "${runs[@]}" | awk '{ printf "%s%s", sep, $1; sep = " " }')
}

row() {
	local ratio="-"
	if [ "$KERNEL_PPS" -gt 0 ] && [[ $3 =~ ^[0-9]+$ ]]; then
		ratio=$(awk -v a="$3" -v b="$KERNEL_PPS" 'BEGIN { printf "%.2f", a / b }')
	fi
	printf '%-24s %12s %14s %10s   %s\n' "$1" "$2" "$3" "$ratio" "$ROW_RUNS"
}

# lb_rps MASK: the CPUs (hex mask; 0 = off) that process what the lb's interface receives.
lb_rps() {
	local q
	for q in $(run_in "$NS_LB" sh -c "ls -d /sys/class/net/$LB_IF/queues/rx-*"); do
		run_in "$NS_LB" sh -c "echo $1 > $q/rps_cpus"
	done
}

kernel_forwarding() {
	local on=$1 i nh=()
	if [ "$on" -eq 1 ]; then
		lb_rps "$(printf '%x' $((1 << BENCH_LB_CPU)))"
		e2e_sysctl "$NS_LB" net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
			"net.ipv4.conf.$LB_IF.send_redirects=0"
		e2e_sysctl "$NS_ROUTER" net.ipv4.fib_multipath_hash_policy=1
		for i in 0 1 2; do
			nh+=(nexthop via "${BACKENDS4[$i]}")
		done
		run_in "$NS_ROUTER" ip route add "$VIP_DNS4/32" table "$BENCH_TABLE" "${nh[@]}"
		run_in "$NS_ROUTER" ip rule add iif "$ROUTER_LB_IF" lookup "$BENCH_TABLE" pref 100
	else
		lb_rps 0
		e2e_sysctl "$NS_LB" net.ipv4.ip_forward=0
		run_in "$NS_ROUTER" ip rule del iif "$ROUTER_LB_IF" lookup "$BENCH_TABLE" pref 100 2>/dev/null
		run_in "$NS_ROUTER" ip route flush table "$BENCH_TABLE" 2>/dev/null
	fi
	return 0
}

maglevd_row() {
	local mode=$1 why
	if [ ! -x "$MAGLEVD" ]; then
		printf '%-24s not available (no %s)\n' "maglevd $mode" "$MAGLEVD"
		return
	fi
	if ! E2E_MAGLEVD_CPUS=$BENCH_LB_CPU start_maglevd "$mode" 2>"$E2E_DIR/start.$mode.err"; then
		why=$(grep -v '^e2e' "$E2E_DIR/start.$mode.err" | head -1)
		printf '%-24s not available (%s)\n' "maglevd $mode" "${why:-did not start}"
		return
	fi
	measure
	row "maglevd $mode" "$ROW_OFFERED" "$ROW_PPS"
	# Its I/O and drop counters above zero (warm-up and run), for where the frames went.
	run_in "$NS_LB" "$MAGLEVCTL" counters -s "$MAGLEVD_SOCKET" 2>/dev/null |
		awk '$1 ~ /^(io_|drop_)/ && $2 ~ /^[0-9]+$/ && $2 > 0 { printf "    %s %s\n", $1, $2 }'
	if ! stop_maglevd; then
		echo "  (maglevd $mode did not stop cleanly; log: $MAGLEVD_LOG)"
	fi
	# maglevd's own account (frames its workers received and sent), for where the rest went.
	grep -E "worker [0-9]+: .*received|running on" "$MAGLEVD_LOG" | sed 's/^/    /'
	return 0
}

e2e_topology_up --no-decap || { echo "bench e2e: topology failed"; exit 1; }
for i in 0 1 2; do
	run_in "${NS_BACKENDS[$i]}" ip link set dev "$BE_IF" xdpdrv obj "$SINK_OBJ" sec xdp || {
		echo "bench e2e: cannot attach the sink on ${BACKEND_NAMES[$i]}"
		exit 1
	}
	run_in "$NS_ROUTER" ping -c1 -W1 "${BACKENDS4[$i]}" >/dev/null
done
run_in "$NS_LB" ping -c1 -W1 "$ROUTER_LB4" >/dev/null
run_in "$NS_CLIENT" ping -c1 -W1 "$ROUTER_CLIENT4" >/dev/null

router_mac=$(run_in "$NS_ROUTER" cat "/sys/class/net/$ROUTER_CLIENT_IF/address")
client_mac=$(run_in "$NS_CLIENT" cat "/sys/class/net/$CLIENT_IF/address")
cat >"$E2E_DIR/udp.trafgen" <<EOF
{
  eth(da=$router_mac, sa=$client_mac),
  ipv4(sa=$CLIENT4, da=$VIP_DNS4, ttl=64, df),
  udp(sp=dinc($BENCH_SPORT_MIN, $BENCH_SPORT_MAX), dp=53),
  fill(0x42, $BENCH_PAYLOAD)
}
EOF

echo "end to end: 64-byte UDP to $VIP_DNS4:53, $((BENCH_SPORT_MAX - BENCH_SPORT_MIN + 1)) flows, median of $BENCH_REPEAT runs of ${BENCH_SECONDS}s"
echo "trafgen on $BENCH_CPUS CPU(s) from CPU 0; the load balancer on CPU $BENCH_LB_CPU (maglevd pinned, kernel via RPS)"
printf '%-24s %12s %14s %10s   %s\n' "path" "offered pps" "delivered pps" "vs kernel" \
	"delivered pps of each run"
kernel_forwarding 1
measure
KERNEL_PPS=$ROW_PPS
row "kernel IP forwarding" "$ROW_OFFERED" "$ROW_PPS"
kernel_forwarding 0
maglevd_row afxdp
maglevd_row afpacket
