#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end benchmark (`make bench`, root): 64-byte UDP frames from the client with trafgen
# (netsniff-ng), many flows (source ports vary), to the UDP VIP, on the lib.sh topology. Counts
# the packets delivered to the three backends (an XDP sink on each backend's veth drops UDP and
# GRE frames and the veth's xdp_drops counter counts them) and prints, per row, the pps offered
# by the client, the pps delivered, and the ratio to kernel IP forwarding:
#   kernel IP forwarding  the lb namespace routes the VIP like a plain router (no maglevd); the
#                         router spreads what comes back from the lb over the backends (ECMP,
#                         L4 hash), so the packets take the same hops as through maglevd
#   maglevd afxdp / xdp / afpacket  build/maglevd in the lb namespace, GRE to the backends; the lb's
#                         kernel forwarding is off, so whatever arrives went through maglevd.
# CPUs: trafgen runs on CPU 0 (with the client's, router's and backends' softirq work it causes);
# the load balancer gets BENCH_LB_CPU (default: the last CPU) for itself in every row: maglevd
# runs confined to it (its worker is pinned there), and for kernel forwarding the lb's receive
# processing is steered there with RPS. With one CPU everything shares CPU 0. On a host shared
# with other work the LB CPU is not the load balancer's alone: kernel forwarding runs as softirq,
# which preempts every process, while maglevd's worker is a process that the scheduler shares
# out with whatever else runs there (measured on a busy 2-core host: the lb's softirq work got
# 70-87% of the CPU, maglevd at nice 0 about a third). So maglevd runs at nice BENCH_LB_NICE
# (default -10; 0 turns it off) in its rows, as a load balancer owning its core would. One asymmetry
# remains: veth runs the receiver's XDP program where the sender transmits, so in the afxdp row
# the steering program and the copy of each frame into the UMEM run on CPU 0 (the router
# forwards the client's frames there), which slows trafgen: compare the offered column. (RPS on
# the router's client side would move it, but then trafgen waits for its frames to be freed on
# the other CPU and offers a few thousand pps.)
# BENCH_REPEAT (default 3) rounds; a round runs every row once, BENCH_SECONDS (default 5) each
# after BENCH_WARMUP (default 1) seconds of the same traffic, so the rows of a round see the same
# load from the rest of the machine. A row shows its median offered and delivered rates, and the
# median over rounds of its delivered rate divided by kernel forwarding's in the same round.
# CPU: every row also shows the CPU time of the whole machine (/proc/stat: user, nice, system,
# irq, softirq, steal, over all CPUs) per delivered packet, and the same less what generating
# the packets costs: each round first measures trafgen alone (its frames dropped by an XDP sink
# on the router's client side, so that nothing else handles them) as machine CPU per offered
# packet, and a row subtracts that times its offered packets. What remains is the path's cost:
# router, load balancer and backends' sinks, wherever it runs (on veth an XDP program runs on the
# sending CPU, so per-process times would hide the xdp mode's work in trafgen's). Other work on
# the machine counts too: run it on a quiet one.
# Figures are noisy on a shared 2-core machine: the per-round ratio is the figure to compare.
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
BENCH_LB_NICE=${BENCH_LB_NICE:--10} # maglevd's threads; 0 = leave them at the default
CLK_TCK=$(getconf CLK_TCK)

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

# busy_ticks: CPU time of the machine so far, in USER_HZ ticks (every state but idle and iowait).
busy_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# run_once: warm-up, then one timed run; prints "delivered_pps offered_pps delivered offered
# busy_us" (the last three: totals of the timed run).
run_once() {
	local d0 d1 t0 t1 s0 s1 b0 b1 secs
	traffic "$BENCH_WARMUP"
	d0=$(delivered)
	t0=$(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets)
	b0=$(busy_ticks)
	s0=$(date +%s.%N)
	traffic "$BENCH_SECONDS"
	s1=$(date +%s.%N)
	b1=$(busy_ticks)
	d1=$(delivered)
	t1=$(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets)
	secs=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }')
	awk -v d="$((d1 - d0))" -v t="$((t1 - t0))" -v s="$secs" -v b="$((b1 - b0))" -v hz="$CLK_TCK" \
		'BEGIN { printf "%d %d %d %d %d\n", d / s, t / s, d, t, b * 1000000 / hz }'
}

# generator_run ROUND: trafgen alone (the router's client side drops its frames); appends
# "round cpu_us_per_offered" to runs.gen.
generator_run() {
	local r
	run_in "$NS_ROUTER" ip link set dev "$ROUTER_CLIENT_IF" xdpdrv obj "$SINK_OBJ" sec xdp || return 0
	r=$(run_once)
	run_in "$NS_ROUTER" ip link set dev "$ROUTER_CLIENT_IF" xdpdrv off
	echo "$1 $r" | awk '$5 > 0 { printf "%s %.4f\n", $1, $6 / $5 }' >>"$E2E_DIR/runs.gen"
}

# median: the median of the numbers on stdin, one a line.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}

# row NAME: the line of row NAME from $E2E_DIR/runs.NAME (run_once lines after the round) and
# the kernel row's and the generator's runs of the same rounds.
row() {
	local f=$E2E_DIR/runs.$1 k=$E2E_DIR/runs.kernel g=$E2E_DIR/runs.gen off dlv ratio each cpu path
	off=$(awk '{ print $3 }' "$f" | median)
	dlv=$(awk '{ print $2 }' "$f" | median)
	ratio=$(awk 'NR == FNR { k[$1] = $2; next } ($1 in k) && k[$1] > 0 { printf "%.3f\n", $2 / k[$1] }' \
		"$k" "$f" | median)
	[ "$ratio" = - ] || ratio=$(printf '%.2f' "$ratio")
	cpu=$(awk '$4 > 0 { printf "%.3f\n", $6 / $4 }' "$f" | median)
	path=$(awk 'NR == FNR { g[$1] = $2; next } ($1 in g) && $4 > 0 { printf "%.3f\n", ($6 - g[$1] * $5) / $4 }' \
		"$g" "$f" 2>/dev/null | median)
	each=$(awk '{ printf "%s%s", sep, $2; sep = " " }' "$f")
	printf '%-24s %12s %14s %10s %9s %9s   %s\n' "$2" "$off" "$dlv" "$ratio" "$cpu" "$path" "$each"
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

# lb_renice PID: every thread of PID to nice BENCH_LB_NICE (see the header).
lb_renice() {
	local t
	[ "$BENCH_LB_NICE" = 0 ] && return 0
	for t in /proc/"$1"/task/*; do
		renice -n "$BENCH_LB_NICE" -p "${t##*/}" >/dev/null 2>&1
	done
	return 0
}

# maglevd_run MODE ROUND: one timed run through maglevd in MODE; appends to runs.MODE, its
# non-zero io_/drop_ counters to counters.MODE and its frame account to account.MODE.
maglevd_run() {
	local mode=$1 round=$2 why
	if [ ! -x "$MAGLEVD" ]; then
		echo "not available (no $MAGLEVD)" >"$E2E_DIR/na.$mode"
		return
	fi
	if ! E2E_MAGLEVD_CPUS=$BENCH_LB_CPU start_maglevd "$mode" 2>"$E2E_DIR/start.$mode.err"; then
		why=$(grep -v '^e2e' "$E2E_DIR/start.$mode.err" | head -1)
		echo "not available (${why:-did not start})" >"$E2E_DIR/na.$mode"
		return
	fi
	lb_renice "$MAGLEVD_PID"
	router_takes_xdp_tx "$mode"
	echo "$round $(run_once)" >>"$E2E_DIR/runs.$mode"
	[ "$mode" = xdp ] && run_in "$NS_ROUTER" ip link set dev "$ROUTER_LB_IF" xdp off
	run_in "$NS_LB" "$MAGLEVCTL" counters -s "$MAGLEVD_SOCKET" 2>/dev/null |
		awk '$1 ~ /^(io_|drop_)/ && $2 ~ /^[0-9]+$/ && $2 > 0 { print $1, $2 }' >>"$E2E_DIR/counters.$mode"
	if ! stop_maglevd; then
		echo "  (maglevd $mode did not stop cleanly; log: $MAGLEVD_LOG)" >>"$E2E_DIR/account.$mode"
	fi
	grep -E "worker [0-9]+: .*received|running on" "$MAGLEVD_LOG" >>"$E2E_DIR/account.$mode"
	return 0
}

# maglevd_row MODE: its line, its counters summed over the rounds (warm-ups included), and
# maglevd's own account of the last round (frames its workers received and sent).
maglevd_row() {
	local mode=$1
	if [ ! -s "$E2E_DIR/runs.$mode" ]; then
		printf '%-24s %s\n' "maglevd $mode" "$(cat "$E2E_DIR/na.$mode" 2>/dev/null)"
		return
	fi
	row "$mode" "maglevd $mode"
	awk '{ s[$1] += $2; if (!($1 in o)) o[$1] = n++ } END { for (k in o) print o[k], k, s[k] }' \
		"$E2E_DIR/counters.$mode" | sort -n | awk '{ printf "    %s %s (%d runs)\n", $2, $3, r }' r="$BENCH_REPEAT"
	grep -E "running on" "$E2E_DIR/account.$mode" | tail -1 | sed 's/^/    /'
	grep -vE "running on" "$E2E_DIR/account.$mode" | tail -1 | sed 's/^/    last run: /'
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

echo "end to end: 64-byte UDP to $VIP_DNS4:53, $((BENCH_SPORT_MAX - BENCH_SPORT_MIN + 1)) flows, $BENCH_REPEAT rounds of ${BENCH_SECONDS}s a row, medians"
echo "trafgen on $BENCH_CPUS CPU(s) from CPU 0; the load balancer on CPU $BENCH_LB_CPU (maglevd pinned at nice $BENCH_LB_NICE, kernel via RPS)"
for ((round = 1; round <= BENCH_REPEAT; round++)); do
	generator_run "$round"
	kernel_forwarding 1
	echo "$round $(run_once)" >>"$E2E_DIR/runs.kernel"
	kernel_forwarding 0
	maglevd_run afxdp "$round"
	maglevd_run xdp "$round"
	maglevd_run afpacket "$round"
done
printf '%-24s %12s %14s %10s %9s %9s   %s\n' "path" "offered pps" "delivered pps" "vs kernel" \
	"CPU us" "path us" "delivered pps of each round"
echo "(CPU us: the machine's CPU time per delivered packet; path us: the same less trafgen's" \
	"own, $(awk '{ print $2 }' "$E2E_DIR/runs.gen" 2>/dev/null | median) us per offered packet alone)"
row kernel "kernel IP forwarding"
maglevd_row afxdp
maglevd_row xdp
maglevd_row afpacket
