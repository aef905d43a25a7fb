#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of scale-out (docs/scaleout.md): two maglevd hosts, each with BIRD 2 announcing
# maglevd's VIP routes over BGP to a router that runs BIRD 2 and spreads VIP traffic over both
# with ECMP (L4 hash). Shared setup: the topology with two maglevd hosts, the backends' servers,
# BIRD on the router and both hosts with their BGP and BFD sessions up (checked), no VIP route
# before maglevd runs (checked), both maglevd started. The cases (E2E_CASES selects among them;
# see lib.sh), in the order they run; each but learn first waits until both maglevd run and the
# router has two next hops to the VIPs (starting a maglevd an earlier case stopped):
#   learn         the router learns every VIP from both, the same Maglev table on both
#   spread        new connections are spread over both and all succeed
#   stop_restart  long-lived TCP connections survive one maglevd stopping (routes withdrawn
#                 first) and starting again
#   withdraw      a VIP with every backend down is withdrawn and comes back
#   sigkill       a SIGKILLed maglevd's routes vanish (its TUN device dies with it) and the router
#                 stops using it within the documented failover time, with the connections still
#                 alive; the next maglevd removes the XDP program left attached
#   frozen        a frozen host is taken out by BFD
#   bird_dies     a host whose BIRD dies is dropped at once
#   stop_both     no VIP route is left once both stop
# Exit 0 pass, 4 skip (no root, no bird, no build), anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgs}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/lib_scaleout.sh
. "$(dirname "$0")/lib_scaleout.sh"

FAILOVER_MS=2000  # documented bound for a crashed maglevd (sub-second, plus slack on 2 cores)
NEW_CONNS=60      # new connections for the spread check
LONG_CONNS=20     # long-lived connections across a stop and a restart
KILL_CONNS=12     # long-lived connections across a SIGKILL
VIP_SOLO=198.51.100.20 # VIP "solo": tcp 8080, one backend (be3) with a TCP health check
SOLO_PORT=8080

# write_lb_config I FILE: the same VIPs, backends and seed on both hosts; only the host's own
# addresses and socket differ.
write_lb_config() {
	lb_write_config "$1" "$2" \
		--vip web "$VIP_WEB4" tcp 80 all --vip dns "$VIP_DNS4" udp 53 all --vip web6 "$VIP_WEB6" tcp 80 all \
		--vip solo "$VIP_SOLO" tcp "$SOLO_PORT" 2 \
		--health "{ type: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }"
}

# ---- the cases --------------------------------------------------------------------------------

# The router learns every VIP from both maglevd.
case_learn() {
	local v i d1 d2
	for v in "$VIP_WEB4" "$VIP_DNS4" "$VIP_WEB6"; do
		check "router: $v has two ECMP next hops (lb1, lb2)" wait_for "$CONVERGE_S" nexthops_are "$v" 2
	done
	run_in "$NS_ROUTER" ip route show exact "$VIP_WEB4" | sed 's/^/    /'
	check "router BIRD: $VIP_WEB4/32 learned from lb1_4 and lb2_4" bash -c \
		"out=\$(ip netns exec '$NS_ROUTER' birdc -s '$E2E_DIR/bird.router.ctl' show route for $VIP_WEB4/32 all); grep -q 'lb1_4' <<<\"\$out\" && grep -q 'lb2_4' <<<\"\$out\""
	for i in 0 1; do
		check "lb$((i + 1)): kernel table $ANNOUNCE_TABLE holds the VIP routes (protocol $ANNOUNCE_PROTO)" bash -c \
			"ip netns exec '${LB_NS[$i]}' ip route show table $ANNOUNCE_TABLE proto $ANNOUNCE_PROTO | grep -q '^$VIP_WEB4 dev maglevd-vips'"
		check "lb$((i + 1)): maglevctl vips says web is announced" vip_state_is "$i" web announced
		check "lb$((i + 1)): maglevctl status shows announce on" bash -c \
			"'$MAGLEVCTL' status --json -s '$E2E_DIR/lb$((i + 1)).sock' | grep -q '\"announce\": \"on\"'"
		check "lb$((i + 1)): metric maglevd_vip_announced{vip=\"web\"} 1" bash -c \
			"ip netns exec '${LB_NS[$i]}' curl -s http://127.0.0.1:9180/metrics | grep -q '^maglevd_vip_announced{vip=\"web\"} 1'"
	done
	d1=$(vip_field 0 web digest)
	d2=$(vip_field 1 web digest)
	check "same Maglev table on both maglevd (digest $d1 = $d2)" [ -n "$d1" -a "$d1" = "$d2" ]
}

# New connections are spread over both maglevd and all succeed.
case_spread() {
	local f1 f2 answers n_ok df1 df2
	lbs_ready || { bad "spread: both maglevd announced (two next hops) to start with"; return; }
	f1=$(web_flows 0)
	f2=$(web_flows 1)
	answers=$(new_conns "$NEW_CONNS")
	n_ok=$(grep -c -E '^be[123]$' <<<"$answers")
	df1=$(($(web_flows 0) - f1))
	df2=$(($(web_flows 1) - f2))
	check "$NEW_CONNS new connections all answered ($n_ok)" [ "$n_ok" -eq "$NEW_CONNS" ]
	check "new connections spread over both maglevd (lb1 $df1, lb2 $df2 flows)" both_positive "$df1" "$df2"
	echo "measured: $NEW_CONNS new connections: lb1 $df1 flows, lb2 $df2 flows;" \
		"backends: $(sort <<<"$answers" | uniq -c | tr -s ' \n' ' ')" >&2
	check "IPv6: new connection through web6 answered" bash -c \
		"ip netns exec '$NS_CLIENT' curl -s -m 2 'http://[$VIP_WEB6]/' | grep -q '^be[123]\$'"
}

# Long-lived connections across a clean stop and a restart of lb1.
case_stop_restart() {
	local t0 n errs changed gap names open_errs
	lbs_ready || { bad "stop_restart: both maglevd announced (two next hops) to start with"; return; }
	open_spread_clients long "$LONG_CONNS" || return
	sleep 1
	t0=$(now_ms)
	kill -TERM "${LB_PIDS[0]}"
	if wait_since "$t0" 10 only_via "$VIP_WEB4" "$LB2_4"; then
		ok "clean stop of lb1: router has one next hop (lb2) after ${TOOK} ms (routes withdrawn first)"
		echo "measured: clean stop, SIGTERM to single next hop: ${TOOK} ms" >&2
	else
		bad "clean stop of lb1: router still routes via lb1"
	fi
	check "clean stop: web6 via lb2 only" wait_for 5 only_via "$VIP_WEB6" "$LB2_6"
	check "clean stop: maglevd lb1 exits 0" kill_pid "${LB_PIDS[0]}" 10
	LB_PIDS[0]=
	check "clean stop: log says routes withdrawn, then forwarding went on" \
		grep -q "VIP routes withdrawn; forwarding $WITHDRAW_DELAY_MS ms more" "$(lb_log 0)"
	check "clean stop: lb1's table $ANNOUNCE_TABLE is empty" bash -c \
		"[ -z \"\$(ip netns exec '$NS_LB' ip route show table $ANNOUNCE_TABLE)\" ]"
	check "clean stop: lb1's BIRD no longer has the route" bash -c \
		"! ip netns exec '$NS_LB' birdc -s '$E2E_DIR/bird.lb1.ctl' show route table vips4 | grep -q '$VIP_WEB4'"
	sleep 1
	t0=$(now_ms)
	start_lb 0 || bad "restart maglevd on lb1"
	if wait_since "$t0" 10 nexthops_are "$VIP_WEB4" 2; then
		ok "restart of lb1: router has two next hops again after $TOOK ms"
	else
		bad "restart of lb1: VIP not re-announced"
	fi
	sleep 2
	clients_stop long || bad "long-lived clients stop"
	read -r n errs changed gap names open_errs < <(clients_report long)
	errs=$((errs + open_errs))
	check "long-lived across stop + restart: $n connections reported" [ "$n" -eq "$LONG_CONNS" ]
	check "long-lived across stop + restart: no reset, no error ($errs)" [ "$errs" -eq 0 ]
	check "long-lived across stop + restart: none changed backend ($changed; backends $names)" [ "$changed" -eq 0 ]
	echo "measured: stop + restart, longest gap between two answers on one connection: ${gap} ms" >&2
}

# A VIP whose backends are all down is withdrawn, and comes back.
case_withdraw() {
	local solo_pid t0
	lbs_ready || { bad "withdraw: both maglevd announced (two next hops) to start with"; return; }
	check "solo VIP (nothing on be3:$SOLO_PORT): withdrawn on lb1" wait_for 10 vip_state_is 0 solo withdrawn
	check "solo VIP: withdrawn on lb2" wait_for 10 vip_state_is 1 solo withdrawn
	check "solo VIP: router has no route to $VIP_SOLO" wait_for 10 nexthops_are "$VIP_SOLO" 0
	check "solo VIP withdrawn: web still has two next hops" nexthops_are "$VIP_WEB4" 2
	check "solo VIP: withdrawal logged with its reason" grep -q "vip solo: every backend is down.*route is withdrawn" "$(lb_log 1)"
	bg_in "${NS_BACKENDS[2]}" "$E2E_DIR/solo.log" "$E2E_PYTHON" -m http.server "$SOLO_PORT" --bind "${BACKENDS4[2]}"
	solo_pid=$BG_PID
	t0=$(now_ms)
	if wait_since "$t0" 10 nexthops_are "$VIP_SOLO" 2; then
		ok "solo VIP: backend up -> announced again by both, router has two next hops after $TOOK ms"
	else
		bad "solo VIP: not re-announced after its backend came up"
	fi
	check "solo VIP: maglevctl vips says announced" vip_state_is 0 solo announced
	kill_pid "$solo_pid" 3
	t0=$(now_ms)
	if wait_since "$t0" 10 nexthops_are "$VIP_SOLO" 0; then
		ok "solo VIP: backend down again -> withdrawn after $TOOK ms (fall 2 x 200 ms + BGP)"
	else
		bad "solo VIP: not withdrawn after its backend went down"
	fi
}

# SIGKILL: the TUN device dies with maglevd, so do its routes; the next maglevd removes the
# xdp_vip left attached.
case_sigkill() {
	local t0 n errs changed gap names open_errs answers
	lbs_ready || { bad "sigkill: both maglevd announced (two next hops) to start with"; return; }
	open_spread_clients kill "$KILL_CONNS" || return
	sleep 1
	t0=$(now_ms)
	kill -KILL "${LB_PIDS[0]}"
	if wait_since "$t0" 10 only_via "$VIP_WEB4" "$LB2_4"; then
		check "SIGKILL of lb1: router moved to lb2 only in ${TOOK} ms (bound $FAILOVER_MS ms)" [ "$TOOK" -le "$FAILOVER_MS" ]
		echo "measured: failover after SIGKILL of maglevd (BIRD still running): ${TOOK} ms" >&2
	else
		bad "SIGKILL of lb1: router still routes via lb1 after 10 s"
	fi
	wait "${LB_PIDS[0]}" 2>/dev/null
	LB_PIDS[0]=
	check "SIGKILL: lb1's TUN device is gone" bash -c "! ip netns exec '$NS_LB' ip link show maglevd-vips >/dev/null 2>&1"
	check "SIGKILL: lb1's table $ANNOUNCE_TABLE is empty" bash -c \
		"[ -z \"\$(ip netns exec '$NS_LB' ip route show table $ANNOUNCE_TABLE)\" ]"
	check "SIGKILL: BIRD on lb1 still runs" pid_alive "$(cat "$E2E_DIR/bird.lb1.bgpid")"
	check "SIGKILL: lb1's BGP session is still established (the route went, not the session)" bash -c \
		"ip netns exec '$NS_ROUTER' birdc -s '$E2E_DIR/bird.router.ctl' show protocols lb1_4 | grep -q Established"
	sleep 2
	clients_stop kill || bad "clients stop (kill)"
	read -r n errs changed gap names open_errs < <(clients_report kill)
	errs=$((errs + open_errs))
	check "long-lived across SIGKILL: $n connections, no reset, no error ($errs)" [ "$n" -eq "$KILL_CONNS" -a "$errs" -eq 0 ]
	check "long-lived across SIGKILL: none changed backend ($changed)" [ "$changed" -eq 0 ]
	echo "measured: SIGKILL, longest gap between two answers on one connection: ${gap} ms" >&2

	# A SIGKILLed maglevd (afxdp) leaves its XDP program on the interface; the next maglevd removes
	# it itself (no operator or service-manager step) and says so.
	check "SIGKILL: maglevd's XDP program is still attached on lb1" \
		bash -c "ip netns exec '$NS_LB' ip link show '$LB_IF' | grep -q 'prog/xdp'"
	t0=$(now_ms)
	if start_lb 0 && wait_since "$t0" 10 nexthops_are "$VIP_WEB4" 2; then
		ok "restart after SIGKILL: re-announced, two next hops after $TOOK ms"
	else
		bad "restart after SIGKILL: not re-announced"
	fi
	check "restart after SIGKILL: maglevd removed the xdp_vip left attached ($(grep -m1 '^maglevd: removing' "$(lb_log 0)"))" \
		grep -q "^maglevd: removing xdp_vip left attached to $LB_IF by a previous maglevd (prog id [0-9]*)\$" "$(lb_log 0)"
	answers=$(new_conns 20)
	check "after everything: 20 new connections all answered" [ "$(grep -c -E '^be[123]$' <<<"$answers")" -eq 20 ]
}

# A frozen host (its BIRD stopped: no BFD, no keepalives): BFD takes it out.
case_frozen() {
	local bird2_pid t0 answers
	lbs_ready || { bad "frozen: both maglevd announced (two next hops) to start with"; return; }
	bird2_pid=$(cat "$E2E_DIR/bird.lb2.bgpid")
	t0=$(now_ms)
	kill -STOP "$bird2_pid"
	if wait_since "$t0" 10 only_via "$VIP_WEB4" "$LB4"; then
		check "frozen lb2 host: router drops it in ${TOOK} ms (BFD 3 x 100 ms; bound $FAILOVER_MS ms)" [ "$TOOK" -le "$FAILOVER_MS" ]
		echo "measured: failover after the lb2 host froze (BFD): ${TOOK} ms" >&2
	else
		bad "frozen lb2 host: router still routes via lb2 after 10 s"
	fi
	answers=$(new_conns 10)
	check "frozen lb2 host: 10 new connections all answered through lb1" [ "$(grep -c -E '^be[123]$' <<<"$answers")" -eq 10 ]
	t0=$(now_ms)
	kill -CONT "$bird2_pid"
	if wait_since "$t0" 30 nexthops_are "$VIP_WEB4" 2; then
		ok "lb2 host back: BGP re-established, two next hops after $TOOK ms"
	else
		bad "lb2 host back: not re-announced within 30 s"
	fi
}

# BIRD on a host dies (host fine): its BGP sessions close, the router drops it at once.
case_bird_dies() {
	local bird2_pid t0
	lbs_ready || { bad "bird_dies: both maglevd announced (two next hops) to start with"; return; }
	bird2_pid=$(cat "$E2E_DIR/bird.lb2.bgpid")
	t0=$(now_ms)
	kill -KILL "$bird2_pid"
	if wait_since "$t0" 10 only_via "$VIP_WEB4" "$LB4"; then
		check "BIRD on lb2 killed: router drops lb2 in ${TOOK} ms (no graceful-restart hold-over; bound $FAILOVER_MS ms)" [ "$TOOK" -le "$FAILOVER_MS" ]
		echo "measured: failover after BIRD on lb2 died: ${TOOK} ms" >&2
	else
		bad "BIRD on lb2 killed: router still routes via lb2 after 10 s"
	fi
	wait "$bird2_pid" 2>/dev/null
	t0=$(now_ms)
	start_bird "$NS_LB2" lb2 || bad "restart BIRD on lb2"
	if wait_since "$t0" 30 nexthops_are "$VIP_WEB4" 2; then
		ok "BIRD on lb2 back: it learns maglevd's routes again, two next hops after $TOOK ms"
	else
		bad "BIRD on lb2 back: not re-announced within 30 s"
	fi
}

# Both stop cleanly: the router has no route to any VIP.
case_stop_both() {
	local i
	lbs_ready || { bad "stop_both: both maglevd announced (two next hops) to start with"; return; }
	for i in 0 1; do
		kill_pid "${LB_PIDS[$i]}" 10 || bad "maglevd lb$((i + 1)) exit status"
		LB_PIDS[i]=
	done
	check "both stopped: router has no route to the VIPs" wait_for 10 bash -c \
		"[ -z \"\$(ip netns exec '$NS_ROUTER' ip route show exact $VIP_WEB4)\" ] && [ -z \"\$(ip netns exec '$NS_ROUTER' ip -6 route show exact $VIP_WEB6)\" ]"
}

# =============================================================================================

e2e_cases learn spread stop_restart withdraw sigkill frozen bird_dies stop_both
scaleout_require
e2e_init
T_START=$(now_ms)
# shellcheck disable=SC2119 # the default topology options
scaleout_up

write_lb_config 0 "$E2E_DIR/maglevd.lb1.yaml"
write_lb_config 1 "$E2E_DIR/maglevd.lb2.yaml"
start_lb 0 || e2e_abort "maglevd starts on lb1"
start_lb 1 || e2e_abort "maglevd starts on lb2"

e2e_run_cases

e2e_log "took $((($(now_ms) - T_START) / 1000)) s"
e2e_summary
