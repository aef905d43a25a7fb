#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of second chance (docs/second-chance.md): two maglevd behind the ECMP router of
# test_scaleout.sh (BIRD 2, BGP, BFD; lib_scaleout.sh), four backends with the decap program,
# IP forwarding and neighbours to each other (e2e_topology_up --backends 4 --second-chance), and
# long-lived TCP connections spread over both maglevd. A change of the Maglev table followed by a
# move of flows to a maglevd without their entries is what second chance is for: a moved flow
# whose slot has a new owner reaches that owner carrying its previous one, and the new owner's
# decap program hands it on. Each case reports, per connection set, how many connections broke
# and how many were exposed (moved, and the table now names another backend).
# Shared setup: the scale-out topology with 4 backends, a TCP health check listener on every
# backend, BIRD and BGP up, both maglevd with web and web6 on be1..be3, second chance on. The
# cases (E2E_CASES selects among them; see lib.sh), in the order they run; each starts by
# bringing both maglevd to its own first config:
#   sigkill      reload both with be4 added, SIGKILL lb1: every connection survives
#   sigkill_off  the same with second chance off: reports how many broke (not a failure), and
#                that exactly the exposed ones did
#   restart      reload both with be3 removed and be4 added (no connection on be3), restart lb1:
#                every connection survives (the restarted lb1 has its previous generation from
#                its state directory)
#   flap         be2's health check fails and comes back, then lb1 restarts: every connection
#                survives, those opened while be2 was down too
#   flood        a spoofed SYN flood while a reload adds be4: every connection survives, the
#                flood's SYN-only entries are evicted first and expire
# "Survives": no reset, no error, every answer from the first backend, no gap above GAP_MAX_MS.
# Exit 0 pass, 4 skip (no root, no bird, no build, no trafgen), anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgsc}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/lib_scaleout.sh
. "$(dirname "$0")/lib_scaleout.sh"

SC_BACKENDS=4       # be1..be4: the cases add be4 (index 3)
CONNS=40            # long-lived connections per set: about a quarter of those moved are exposed
CONN_PERIOD=0.2     # seconds between two requests on one connection
GAP_MAX_MS=1500     # longest gap between two answers (a SIGKILL's failover plus TCP's RTO)
SETTLE_S=1          # requests on every connection between two steps
CT_ENTRIES=1024     # each maglevd's connection table, flows (the smallest; the flood fills it)
CT_SYN_TIMEOUT_S=5  # conntrack.tcp_syn_timeout's default: how long a flood's entry lives
HC_PORT=8081        # health checks go to a listener of their own (flap stops be2's)
HC="{ type: tcp, port: $HC_PORT, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }"
HC_WAIT_S=10        # a health change seen by both maglevd (fall/rise 2 x 200 ms, slack)
FLOOD_PPS=10000     # spoofed SYNs per second (test_synflood.sh's rate)
FLOOD_PACKETS=40000 # 4 s of flood, about 20 times each maglevd's table
FLOOD_NET=198.19    # spoofed sources 198.19.0.0/16; the router blackholes the answers
FLOOD_RELOAD_S=2    # seconds into the flood
PROBE_PACKETS=100   # SYNs sent once the flood's entries should have expired

# sc_config I SPEC [off]: host I's config: web and web6 with backends SPEC (I:WEIGHT ...), the
# health check, second chance on (unless "off"), the small connection table (and, as every
# e2e_write_config config, a state directory of its own next to its socket).
sc_config() {
	local i=$1 spec=$2 sc=(--second-chance)
	[ "${3:-on}" = on ] || sc=()
	lb_write_config "$i" "$E2E_DIR/maglevd.lb$((i + 1)).yaml" --conntrack "$CT_ENTRIES" \
		--vip web "$VIP_WEB4" tcp 80 "$spec" --health "$HC" "${sc[@]}" \
		--vip web6 "$VIP_WEB6" tcp 80 "$spec" --health "$HC" "${sc[@]}"
}

same_digest() { [ "$(vip_field 0 web digest)" = "$(vip_field 1 web digest)" ]; }

# backend_health I ADDR: up | down | unchecked, as maglevd I sees backend ADDR of web.
backend_health() {
	ctl "$1" backends web --json | "$E2E_PYTHON" -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    if b["address"] == sys.argv[1]:
        print(b["health"])' "$2"
}

health_on_both() { [ "$(backend_health 0 "$1")" = "$2" ] && [ "$(backend_health 1 "$1")" = "$2" ]; }

# reload_both SPEC [off]: both configs for SPEC, both maglevd reloaded, the same table on both.
reload_both() {
	local i
	for i in 0 1; do
		sc_config "$i" "$@"
		ctl "$i" reload >/dev/null || return 1
	done
	wait_for 5 same_digest
}

# sc_begin SPEC [off]: the start of a case: both maglevd run and are announced, with web on SPEC
# (second chance as given), every backend of SPEC healthy on both.
sc_begin() {
	local s
	if ! lbs_ready || ! reload_both "$@"; then
		bad "both maglevd ready with web on backends $1"
		return 1
	fi
	for s in $1; do
		wait_for "$HC_WAIT_S" health_on_both "${BACKENDS4[${s%%:*}]}" up ||
			{ bad "${BACKEND_NAMES[${s%%:*}]} healthy on both maglevd"; return 1; }
	done
}

# client_ports: the client's ports of its established connections to the web VIP.
client_ports() {
	run_in "$NS_CLIENT" ss -Htn state established dst "$VIP_WEB4:80" |
		awk '{ n = split($3, a, ":"); print a[n] }'
}

# tracked_on I FILE: writes to FILE the client ports whose flows maglevd I tracks now.
tracked_on() {
	# shellcheck disable=SC2046 # one port a word
	"$E2E_PYTHON" "$E2E_ROOT/tests/e2e/sc_flows.py" tracked "$E2E_DIR/lb$(($1 + 1)).sock" \
		"$CLIENT4" $(client_ports) >"$2"
}

# decap_sum NAME: the decap counter NAME summed over the backends.
decap_sum() {
	local i t=0 v
	for i in "${!NS_BACKENDS[@]}"; do
		v=$(decap_counter "$i" "$1")
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# lb_tx I: maglevd I's tx_second_chance, "run R value" (R: LB_RUNS, which a restart moves on).
lb_tx() { echo "${LB_RUNS[$1]} $(lb_counter "$E2E_DIR/lb$(($1 + 1)).sock" tx_second_chance 2>/dev/null)"; }

# mark: the counters second chance moves, now, for since.
mark() {
	MARK_TX=("$(lb_tx 0)" "$(lb_tx 1)")
	MARK_FWD=$(decap_sum second_chance_forwarded)
	MARK_RCV=$(decap_sum second_chance_received)
	MARK_LOST=$(($(decap_sum second_chance_no_route) + $(decap_sum second_chance_forwarding_off)))
}

# since: the counters' growth since mark (call it once the clients stopped): D_TX over the
# maglevd that run now (all of a run that began since), D_FWD, D_RCV, D_LOST over the backends.
since() {
	local i run v mrun mv
	D_TX=0
	for i in 0 1; do
		[ -n "${LB_PIDS[$i]}" ] || continue
		read -r run v <<<"$(lb_tx "$i")"
		read -r mrun mv <<<"${MARK_TX[$i]}"
		[ "$run" = "$mrun" ] || mv=0
		D_TX=$((D_TX + ${v:-0} - ${mv:-0}))
	done
	D_FWD=$(($(decap_sum second_chance_forwarded) - MARK_FWD))
	D_RCV=$(($(decap_sum second_chance_received) - MARK_RCV))
	D_LOST=$(($(decap_sum second_chance_no_route) + $(decap_sum second_chance_forwarding_off) - MARK_LOST))
}

# verdict TAG WHO WHAT MOVED [count]: stops TAG's clients, prints how many connections survived,
# as seen by maglevd WHO (exposed: the flows whose ports file MOVED lists, "" for every flow,
# that WHO's table now gives another backend), and checks that every one did; with "count" it
# only counts (second chance off). Sets V_EXPOSED, V_BROKEN, V_UNEXPOSED.
verdict() {
	local tag=$1 who=$2 what=$3 moved=$4 n gap names open_errs
	clients_stop "$tag" || bad "$what: clients stop ($tag)"
	read -r n V_BROKEN V_EXPOSED V_UNEXPOSED gap names open_errs < <("$E2E_PYTHON" \
		"$E2E_ROOT/tests/e2e/sc_flows.py" report "$E2E_DIR/lb$((who + 1)).sock" "$CLIENT4" \
		"$E2E_DIR/$tag.json" ${moved:+"$moved"})
	echo "survival: $what: $((n - V_BROKEN)) of $n connections survived ($V_EXPOSED exposed," \
		"$V_UNEXPOSED broken ones not exposed; backends $names; longest gap $gap ms)"
	check "$what: every connection kept reported ($(cat "$E2E_DIR/$tag.ready"): $n), none failed to open ($open_errs)" \
		[ "ready $n" = "$(cat "$E2E_DIR/$tag.ready")" -a "$open_errs" -eq 0 ]
	[ "${5:-}" != count ] || return 0
	check "$what: every connection survived ($V_BROKEN broke: reset, error or another backend)" \
		[ "$V_BROKEN" -eq 0 ]
	check "$what: longest gap between two answers ${gap} ms <= $GAP_MAX_MS ms" [ "$gap" -le "$GAP_MAX_MS" ]
}

# sc_used WHAT: the counters since mark (since) show second chance at work for V_EXPOSED exposed
# flows, every packet handed on arrived, and none was kept from its secondary by the backends'
# setup. A packet handed on in the last moment may still be on its way to the secondary: the
# counters are read again (for up to 2 s) until what was received catches up.
sc_used() {
	local i
	for ((i = 0; i < 20; i++)); do
		since
		[ "$D_RCV" -eq "$D_FWD" ] && break
		sleep 0.1
	done
	echo "counters: $1: tx_second_chance +$D_TX, decap second_chance_forwarded +$D_FWD," \
		"second_chance_received +$D_RCV, no_route/forwarding_off +$D_LOST" >&2
	if [ "$V_EXPOSED" -gt 0 ]; then
		check "$1: maglevd sent secondaries (tx_second_chance +$D_TX), new owners handed them on (forwarded +$D_FWD)" \
			both_positive "$D_TX" "$D_FWD"
	else
		skipped "$1: no connection was exposed this run; second chance was not needed"
	fi
	check "$1: every packet handed on reached its secondary (received +$D_RCV = forwarded +$D_FWD)" \
		[ "$D_RCV" -eq "$D_FWD" ]
	check "$1: no packet delivered short of its secondary (no_route/forwarding_off +$D_LOST)" \
		[ "$D_LOST" -eq 0 ]
}

# sigkill_run on|off: the SIGKILL scenario with second chance on or off; leaves lb1 dead and
# V_* set (verdict).
sigkill_run() {
	local mode=$1 tag=kill_$1 count=()
	[ "$mode" = on ] || count=(count)
	sc_begin "0 1 2" "$mode" || return 1
	open_spread_clients "$tag" "$CONNS" "" "$CONN_PERIOD" || return 1
	sleep "$SETTLE_S"
	reload_both "0 1 2 3" "$mode" || { bad "sigkill ($mode): reload both with be4 added"; return 1; }
	ok "sigkill ($mode): both maglevd reloaded with be4 added, same table ($(vip_field 1 web digest))"
	sleep "$SETTLE_S"
	tracked_on 0 "$E2E_DIR/$tag.moved"
	mark
	kill -KILL "${LB_PIDS[0]}"
	check "sigkill ($mode): router moves lb1's flows to lb2" wait_for 10 only_via "$VIP_WEB4" "$LB2_4"
	wait "${LB_PIDS[0]}" 2>/dev/null
	LB_PIDS[0]=
	sleep $((SETTLE_S * 2))
	echo "sigkill ($mode): $(wc -l <"$E2E_DIR/$tag.moved") of the $CONNS connections were on lb1"
	verdict "$tag" 1 "second chance $mode, be4 added, lb1 SIGKILLed" "$E2E_DIR/$tag.moved" "${count[@]}"
}

# ---- the cases --------------------------------------------------------------------------------

case_sigkill() {
	sigkill_run on || return
	sc_used sigkill
}

# The same with second chance off: what breaks is what second chance saves (not a failure).
case_sigkill_off() {
	sigkill_run off || return
	echo "second chance off: $V_BROKEN of $CONNS connections broke ($V_EXPOSED exposed)"
	[ "$V_BROKEN" -gt 0 ] || echo "second chance off: no connection broke: none was exposed this run"
	check "second chance off: the broken ones are the exposed ones ($V_BROKEN broke, $V_EXPOSED exposed, $V_UNEXPOSED broken not exposed)" \
		[ "$V_BROKEN" -eq "$V_EXPOSED" -a "$V_UNEXPOSED" -eq 0 ]
}

# restart_lb1 WHAT: a clean stop of lb1 (routes withdrawn first) and a start again.
restart_lb1() {
	kill -TERM "${LB_PIDS[0]}"
	check "$1: lb1 stops cleanly, its flows move to lb2" wait_for 10 only_via "$VIP_WEB4" "$LB2_4"
	kill_pid "${LB_PIDS[0]}" 10 || bad "$1: lb1 exit status"
	LB_PIDS[0]=
	sleep "$SETTLE_S"
	start_lb 0 || { bad "$1: lb1 starts again"; return 1; }
	check "$1: lb1 back, two next hops" wait_for "$CONVERGE_S" nexthops_are "$VIP_WEB4" 2
}

# A backend removed and another added in one reload, then lb1 restarts: lb1's flows meet lb2's
# table during the restart and the restarted lb1's after it, both with the previous generation.
case_restart() {
	sc_begin "0 1 2" || return
	open_spread_clients restart "$CONNS" be3 "$CONN_PERIOD" || return
	sleep "$SETTLE_S"
	reload_both "0 1 3" || { bad "restart: reload both with be3 removed, be4 added"; return; }
	sleep "$SETTLE_S"
	tracked_on 0 "$E2E_DIR/restart.moved"
	mark
	restart_lb1 restart || return
	sleep $((SETTLE_S * 2))
	verdict restart 0 "be3 removed + be4 added, lb1 restarted" "$E2E_DIR/restart.moved"
	sc_used restart
}

# hc_listener I on|off: backend I's health-check listener (servers.py on $HC_PORT of its own
# IPv4 and IPv6 address) runs or not.
hc_listener() {
	local i=$1 f=$E2E_DIR/hc.${BACKEND_NAMES[$1]}.pid
	if [ "$2" = off ]; then
		[ -f "$f" ] && kill_pid "$(cat "$f")" 3
		rm -f "$f"
		return 0
	fi
	bg_in "${NS_BACKENDS[$i]}" "$E2E_DIR/hc.${BACKEND_NAMES[$i]}.log" "$E2E_PYTHON" \
		"$E2E_ROOT/tests/e2e/servers.py" "${BACKEND_NAMES[$i]}" "${BACKENDS4[$i]}" "${BACKENDS6[$i]}" \
		--http-port "$HC_PORT" --udp-port "$HC_PORT"
	echo "$BG_PID" >"$f"
}

hc_answer() { # every backend's health-check listener answers on both its addresses
	local i
	for i in "${!NS_BACKENDS[@]}"; do
		run_in "$NS_CLIENT" curl -sf -m1 -o /dev/null "http://${BACKENDS4[$i]}:$HC_PORT/" &&
			run_in "$NS_CLIENT" curl -gsf -m1 -o /dev/null "http://[${BACKENDS6[$i]}]:$HC_PORT/" || return 1
	done
}

# be2 goes down and up (health): connections opened meanwhile sit on slots be2 gets back, tracked
# on their backends; when lb1 restarts its restored previous generation names those backends.
case_flap() {
	sc_begin "0 1 2 3" || return
	open_spread_clients flap_before $((CONNS / 2)) be2 "$CONN_PERIOD" || return
	hc_listener 1 off
	check "flap: be2's health check fails on both maglevd" wait_for "$HC_WAIT_S" health_on_both "${BACKENDS4[1]}" down
	open_spread_clients flap "$CONNS" "" "$CONN_PERIOD" || return
	hc_listener 1 on
	check "flap: be2 healthy again on both maglevd" wait_for "$HC_WAIT_S" health_on_both "${BACKENDS4[1]}" up
	check "flap: the same table on both" wait_for 5 same_digest
	sleep "$SETTLE_S"
	tracked_on 0 "$E2E_DIR/flap.moved"
	mark
	restart_lb1 flap || return
	sleep $((SETTLE_S * 2))
	verdict flap_before 0 "opened before be2's flap, lb1 restarted" "$E2E_DIR/flap.moved"
	local before=$V_EXPOSED
	verdict flap 0 "opened while be2 was down, lb1 restarted" "$E2E_DIR/flap.moved"
	V_EXPOSED=$((V_EXPOSED + before))
	sc_used flap
}

# ct_both NAME: the counter NAME of each maglevd, "LB1 LB2".
ct_both() { echo "$(lb_counter "$E2E_DIR/lb1.sock" "$1") $(lb_counter "$E2E_DIR/lb2.sock" "$1")"; }

# A spoofed SYN flood through both maglevd and a reload adding be4 during it: the long-lived
# flows keep their entries (SYN-only ones are evicted first), and the flood's entries expire.
case_flood() {
	local syn0 est0 untr0 syn1 est1 untr1 syn2 untr2 rc t0 flood_pid i probe_ev probe_untr
	sc_begin "0 1 2" || return
	open_spread_clients flood "$CONNS" "" "$CONN_PERIOD" || return
	run_in "$NS_ROUTER" ip route replace blackhole "$FLOOD_NET.0.0/16"
	e2e_write_synflood "$E2E_DIR/flood.cfg" "$FLOOD_NET"
	read -r -a syn0 <<<"$(ct_both ct_evicted_syn)"
	read -r -a est0 <<<"$(ct_both ct_evicted_established)"
	read -r -a untr0 <<<"$(ct_both ct_syn_untracked)"
	t0=$(now_ms)
	synflood_start "$E2E_DIR/flood.cfg" "$FLOOD_PACKETS" "$FLOOD_PPS"
	flood_pid=$BG_PID
	sleep "$FLOOD_RELOAD_S"
	check "flood: both maglevd reloaded with be4 added during the flood" reload_both "0 1 2 3"
	wait "$flood_pid"
	rc=$?
	check "flood: $FLOOD_PACKETS spoofed SYNs sent in $(($(now_ms) - t0)) ms (trafgen rc $rc)" [ "$rc" -eq 0 ]
	read -r -a syn1 <<<"$(ct_both ct_evicted_syn)"
	read -r -a est1 <<<"$(ct_both ct_evicted_established)"
	read -r -a untr1 <<<"$(ct_both ct_syn_untracked)"
	for i in 0 1; do
		echo "counters: flood, lb$((i + 1)): ct_evicted_syn +$((syn1[i] - syn0[i])), ct_syn_untracked" \
			"+$((untr1[i] - untr0[i])), ct_evicted_established +$((est1[i] - est0[i]))" >&2
		check "flood: it filled lb$((i + 1))'s table: SYN-only entries made room for it (+$((syn1[i] - syn0[i])))" \
			[ $((syn1[i] - syn0[i])) -gt "$CT_ENTRIES" ]
		check "flood: lb$((i + 1)) evicted no established flow (+$((est1[i] - est0[i])))" [ "${est1[i]}" -eq "${est0[i]}" ]
	done
	sleep $((CT_SYN_TIMEOUT_S + 1))
	synflood_start "$E2E_DIR/flood.cfg" "$PROBE_PACKETS" "$FLOOD_PPS"
	wait "$BG_PID"
	read -r -a syn2 <<<"$(ct_both ct_evicted_syn)"
	read -r -a untr2 <<<"$(ct_both ct_syn_untracked)"
	probe_ev=$((syn2[0] - syn1[0] + syn2[1] - syn1[1]))
	probe_untr=$((untr2[0] - untr1[0] + untr2[1] - untr1[1]))
	check "flood: its entries expired: $PROBE_PACKETS SYNs past tcp_syn_timeout (${CT_SYN_TIMEOUT_S} s) evict none (+$probe_ev, untracked +$probe_untr)" \
		[ "$probe_ev" -eq 0 -a "$probe_untr" -eq 0 ]
	verdict flood 1 "spoofed SYN flood, be4 added" ""
}

# =============================================================================================

e2e_cases sigkill sigkill_off restart flap flood
scaleout_require
command -v trafgen >/dev/null || e2e_skip "trafgen (netsniff-ng) not installed"
e2e_init
T_START=$(now_ms)
scaleout_up --backends "$SC_BACKENDS" --second-chance
for i in "${!NS_BACKENDS[@]}"; do
	hc_listener "$i" on
done
check "health-check listeners answer on every backend (IPv4 and IPv6)" wait_for 10 hc_answer

for i in 0 1; do
	sc_config "$i" "0 1 2"
	start_lb "$i" || e2e_abort "maglevd starts on lb$((i + 1))"
done

e2e_run_cases

e2e_log "took $((($(now_ms) - T_START) / 1000)) s"
e2e_summary
