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

ROUTER_AS=65000
LB_AS=65001
ANNOUNCE_TABLE=100
ANNOUNCE_PROTO=250
WITHDRAW_DELAY_MS=1000
FAILOVER_MS=2000  # documented bound for a crashed maglevd (sub-second, plus slack on 2 cores)
CONVERGE_S=15     # BGP sessions coming up, routes appearing after a start
NEW_CONNS=60      # new connections for the spread check
LONG_CONNS=20     # long-lived connections across a stop and a restart
KILL_CONNS=12     # long-lived connections across a SIGKILL
VIP_SOLO=198.51.100.20 # VIP "solo": tcp 8080, one backend (be3) with a TCP health check
SOLO_PORT=8080

LB_NS=("$NS_LB" "$NS_LB2")
LB_ADDR4=("$LB4" "$LB2_4")
LB_ADDR6=("$LB6" "$LB2_6")
LB_ROUTER4=("$ROUTER_LB4" "$ROUTER_LB2_4")
LB_ROUTER6=("$ROUTER_LB6" "$ROUTER_LB2_6")
LB_PIDS=("" "")
LB_RUNS=(0 0)



both_positive() { # both_positive N...: every N is above 0
	local x
	for x in "$@"; do
		[ "$x" -gt 0 ] || return 1
	done
}

# ---- BIRD -------------------------------------------------------------------------------------

# write_bird_lb I FILE: BIRD on maglevd host I: learn maglevd's routes (table 100, protocol 250)
# and announce them to the router over BGP, one session per address family, with BFD.
write_bird_lb() {
	local i=$1 f=$2
	cat >"$f" <<EOF
# BIRD 2 on maglevd host $((i + 1)) (written by tests/e2e/test_scaleout.sh; see docs/scaleout.md)
log stderr all;
router id ${LB_ADDR4[$i]};

protocol device { scan time 10; }

ipv4 table vips4;
ipv6 table vips6;

# maglevd writes one route per VIP into kernel table $ANNOUNCE_TABLE, marked protocol $ANNOUNCE_PROTO.
protocol kernel maglevd4 {
	kernel table $ANNOUNCE_TABLE;
	learn;
	scan time 10;
	ipv4 { table vips4; import where krt_source = $ANNOUNCE_PROTO; export none; };
}
protocol kernel maglevd6 {
	kernel table $ANNOUNCE_TABLE;
	learn;
	scan time 10;
	ipv6 { table vips6; import where krt_source = $ANNOUNCE_PROTO; export none; };
}

protocol bfd {
	interface "$LB_IF" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}

protocol bgp router4 {
	local ${LB_ADDR4[$i]} as $LB_AS;
	neighbor ${LB_ROUTER4[$i]} as $ROUTER_AS;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
	ipv4 { table vips4; import none; export all; next hop self; };
}
protocol bgp router6 {
	local ${LB_ADDR6[$i]} as $LB_AS;
	neighbor ${LB_ROUTER6[$i]} as $ROUTER_AS;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
	ipv6 { table vips6; import none; export all; next hop self; };
}
EOF
}

# write_bird_router FILE: BIRD on the router: BGP from both maglevd hosts, VIP prefixes only,
# equal routes merged into one multipath route in the kernel's main table.
write_bird_router() {
	cat >"$1" <<EOF
# BIRD 2 on the router (written by tests/e2e/test_scaleout.sh; see docs/scaleout.md)
log stderr all;
router id $ROUTER_CLIENT4;

protocol device { scan time 10; }

protocol kernel kernel4 {
	merge paths on;
	ipv4 { import none; export all; };
}
protocol kernel kernel6 {
	merge paths on;
	ipv6 { import none; export all; };
}

protocol bfd {
	interface "lb*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}

filter vips4_in { if net ~ [ 203.0.113.0/24{32,32}, 198.51.100.0/24{32,32} ] then accept; reject; }
filter vips6_in { if net ~ [ 2001:db8:100::/64{128,128} ] then accept; reject; }

template bgp maglevd4 {
	local as $ROUTER_AS;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
	ipv4 { import filter vips4_in; export none; };
}
template bgp maglevd6 {
	local as $ROUTER_AS;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
	ipv6 { import filter vips6_in; export none; };
}
protocol bgp lb1_4 from maglevd4 { neighbor $LB4 as $LB_AS; }
protocol bgp lb2_4 from maglevd4 { neighbor $LB2_4 as $LB_AS; }
protocol bgp lb1_6 from maglevd6 { neighbor $LB6 as $LB_AS; }
protocol bgp lb2_6 from maglevd6 { neighbor $LB2_6 as $LB_AS; }
EOF
}

# start_bird NS NAME: bird -f in NS with $E2E_DIR/bird.NAME.{conf,ctl,pid,log}.
start_bird() {
	local ns=$1 name=$2
	bird -p -c "$E2E_DIR/bird.$name.conf" || { e2e_log "bird.$name.conf does not parse"; return 1; }
	bg_in "$ns" "$E2E_DIR/bird.$name.log" bird -f -c "$E2E_DIR/bird.$name.conf" \
		-s "$E2E_DIR/bird.$name.ctl" -P "$E2E_DIR/bird.$name.pid"
	echo "$BG_PID" >"$E2E_DIR/bird.$name.bgpid"
}

birdc_in() { # birdc_in NS NAME COMMAND...
	local ns=$1 name=$2
	shift 2
	run_in "$ns" birdc -s "$E2E_DIR/bird.$name.ctl" "$@"
}

bgp_established() { # all four BGP sessions of the router are up
	[ "$(birdc_in "$NS_ROUTER" router show protocols | grep -c 'Established')" -eq 4 ]
}

# ---- maglevd ----------------------------------------------------------------------------------

# write_lb_config I FILE: the same VIPs, backends and seed on both hosts; only the host's own
# addresses and socket differ.
write_lb_config() {
	local i=$1 f=$2
	e2e_write_config "$f" --source "${LB_ADDR4[$i]}" "${LB_ADDR6[$i]}" --conntrack 65536 \
		--socket "$E2E_DIR/lb$((i + 1)).sock" --announce "$ANNOUNCE_TABLE" "$ANNOUNCE_PROTO" "$WITHDRAW_DELAY_MS" \
		--vip web "$VIP_WEB4" tcp 80 all --vip dns "$VIP_DNS4" udp 53 all --vip web6 "$VIP_WEB6" tcp 80 all \
		--vip solo "$VIP_SOLO" tcp "$SOLO_PORT" 2 \
		--health "{ type: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }"
}

# start_lb I: maglevd on host I; ready when its control socket answers.
start_lb() {
	local i=$1 n k
	n=$((i + 1))
	LB_RUNS[i]=$((LB_RUNS[i] + 1))
	local log=$E2E_DIR/maglevd.lb$n.run${LB_RUNS[$i]}.log
	rm -f "$E2E_DIR/lb$n.sock"
	bg_in "${LB_NS[$i]}" "$log" "$MAGLEVD" -c "$E2E_DIR/maglevd.lb$n.yaml"
	LB_PIDS[i]=$BG_PID
	for ((k = 0; k < 100; k++)); do
		if ! pid_alive "${LB_PIDS[$i]}"; then
			e2e_log "maglevd on lb$n exited at start:"
			cat "$log" >&2
			LB_PIDS[i]=
			return 1
		fi
		[ -S "$E2E_DIR/lb$n.sock" ] && ctl "$i" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	e2e_log "maglevd on lb$n not ready after 10 s:"
	cat "$log" >&2
	return 1
}

lb_log() { echo "$E2E_DIR/maglevd.lb$(($1 + 1)).run${LB_RUNS[$1]}.log"; }

ctl() { # ctl I ARGS...: maglevctl against host I's maglevd
	local i=$1
	shift
	"$MAGLEVCTL" "$@" -s "$E2E_DIR/lb$((i + 1)).sock"
}

# vip_field I VIP FIELD: a field of one VIP from `maglevctl vips --json` on host I.
vip_field() {
	ctl "$1" vips --json | "$E2E_PYTHON" -c '
import json, sys
for v in json.load(sys.stdin)["vips"]:
    if v["name"] == sys.argv[1]:
        print(v[sys.argv[2]])' "$2" "$3"
}

vip_state_is() { [ "$(vip_field "$1" "$2" announce)" = "$3" ]; }

# ---- the router's view ------------------------------------------------------------------------

# nexthops ADDR: next hops of the router's kernel route to ADDR (0 = no route).
nexthops() {
	local fam=-4 out
	case $1 in *:*) fam=-6 ;; esac
	out=$(run_in "$NS_ROUTER" ip "$fam" route show exact "$1" 2>/dev/null)
	if [ -z "$out" ]; then
		echo 0
	elif grep -q nexthop <<<"$out"; then
		grep -c "nexthop via" <<<"$out"
	else
		echo 1
	fi
}

nexthops_are() { [ "$(nexthops "$1")" -eq "$2" ]; }

# only_via ADDR GW: the router's route to ADDR is a single next hop through GW.
only_via() {
	local fam=-4
	case $1 in *:*) fam=-6 ;; esac
	[ "$(nexthops "$1")" -eq 1 ] &&
		run_in "$NS_ROUTER" ip "$fam" route show exact "$1" | grep -q "via $2 "
}

# ---- clients (long-lived ones: lib.sh's clients_start, clients_stop, clients_report) -----------

# new_conns N: N new HTTP connections to the web VIP; prints the answers, one a line.
new_conns() {
	local k
	for ((k = 0; k < $1; k++)); do
		run_in "$NS_CLIENT" curl -s -m 2 "http://$VIP_WEB4/" || echo "FAILED"
	done
}

web_flows() { vip_field "$1" web flows; } # new flows the host's maglevd gave to web backends

# open_spread_clients TAG N: N long-lived clients through the VIP; checks that all opened and
# that both maglevd carry some of them.
open_spread_clients() {
	local tag=$1 n=$2 f1 f2 df1 df2 ready
	f1=$(web_flows 0)
	f2=$(web_flows 1)
	ready=$(clients_start "$tag" "$n" "$n" "") || { bad "long-lived clients start ($tag)"; return 1; }
	df1=$(($(web_flows 0) - f1))
	df2=$(($(web_flows 1) - f2))
	check "$n long-lived connections open ($ready) through both maglevd (lb1 $df1, lb2 $df2)" \
		both_positive "$df1" "$df2" "$([ "$ready" = "ready $n" ] && echo 1 || echo 0)"
}

# lbs_ready: both maglevd run (started if a case stopped one) and the router has two next hops to
# web and web6, the state every case but learn starts from (and all but stop_both leave behind).
# A maglevd that exited on its own is a failed check (and is started again).
lbs_ready() {
	local i rc
	for i in 0 1; do
		[ -n "${LB_PIDS[$i]}" ] && pid_alive "${LB_PIDS[$i]}" && continue
		if [ -n "${LB_PIDS[$i]}" ]; then
			rc=0
			wait "${LB_PIDS[$i]}" 2>/dev/null || rc=$?
			bad "maglevd on lb$((i + 1)) had exited (rc $rc) before this case"
			LB_PIDS[i]=
		fi
		start_lb "$i" || return 1
	done
	wait_for "$CONVERGE_S" nexthops_are "$VIP_WEB4" 2 && wait_for "$CONVERGE_S" nexthops_are "$VIP_WEB6" 2
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
if ! command -v bird >/dev/null || ! command -v birdc >/dev/null; then
	e2e_skip "BIRD 2 (bird, birdc) not installed (apt-get install bird2)"
fi
e2e_init
if [ ! -x "$MAGLEVD" ] || [ ! -x "$MAGLEVCTL" ]; then
	e2e_skip "build maglevd and maglevctl first (make)"
fi
T_START=$(now_ms)
e2e_topology_up --two-lbs --no-vip-routes || e2e_abort "topology"
# ECMP over the 5-tuple (L4), so the flows of one client spread over both maglevd.
e2e_sysctl "$NS_ROUTER" net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
start_backend_servers || e2e_abort "backend servers"

write_bird_router "$E2E_DIR/bird.router.conf"
write_bird_lb 0 "$E2E_DIR/bird.lb1.conf"
write_bird_lb 1 "$E2E_DIR/bird.lb2.conf"
start_bird "$NS_ROUTER" router || e2e_abort "BIRD starts on the router"
start_bird "$NS_LB" lb1 || e2e_abort "BIRD starts on lb1"
start_bird "$NS_LB2" lb2 || e2e_abort "BIRD starts on lb2"
if ! wait_for "$CONVERGE_S" bgp_established; then
	birdc_in "$NS_ROUTER" router show protocols all >&2
	e2e_abort "BGP sessions router <-> lb1, lb2 (IPv4 and IPv6) established"
fi
ok "BGP sessions router <-> lb1, lb2 (IPv4 and IPv6) established"
check "BFD sessions up on the router" wait_for 5 bash -c \
	"[ \"\$(ip netns exec '$NS_ROUTER' birdc -s '$E2E_DIR/bird.router.ctl' show bfd sessions | grep -c ' Up ')\" -ge 4 ]"
check "no VIP route at the router before maglevd runs" nexthops_are "$VIP_WEB4" 0

write_lb_config 0 "$E2E_DIR/maglevd.lb1.yaml"
write_lb_config 1 "$E2E_DIR/maglevd.lb2.yaml"
start_lb 0 || e2e_abort "maglevd starts on lb1"
start_lb 1 || e2e_abort "maglevd starts on lb2"

e2e_run_cases

e2e_log "took $((($(now_ms) - T_START) / 1000)) s"
e2e_summary
