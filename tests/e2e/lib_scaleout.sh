# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# tests/e2e/lib_scaleout.sh: two maglevd behind an ECMP router fed by BIRD 2 (docs/scaleout.md),
# on lib.sh's topology with --two-lbs; what test_scaleout.sh and test_second_chance.sh share.
# Source it after lib.sh, then:
#   scaleout_require        # skips (exit 4) without bird/birdc; before e2e_init
#   scaleout_up [OPT...]    # after e2e_init: the topology (e2e_topology_up --two-lbs
#                           # --no-vip-routes OPT...), L4 ECMP hashing, the backends' servers,
#                           # BIRD on the router and both hosts, BGP and BFD up (checked)
#   lb_write_config I FILE [e2e_write_config OPTION...]   # host I's maglevd config
#   start_lb I              # maglevd on host I (0 or 1) with $E2E_DIR/maglevd.lbN.yaml
#   lbs_ready               # both maglevd run and the router has two next hops to the VIPs
# Hosts are numbered 0 and 1 (lb1, lb2): ctl I ARGS runs maglevctl against host I's maglevd.

ROUTER_AS=65000
LB_AS=65001
ANNOUNCE_TABLE=100
ANNOUNCE_PROTO=250
WITHDRAW_DELAY_MS=1000
CONVERGE_S=15 # BGP sessions coming up, routes appearing after a start

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

# BIRD_BGP_TIMERS: the BGP session timers and BFD of every session, both ends: a dead peer is
# noticed in 3 s by BGP and in 0.3 s by BFD, a lost session retried within seconds.
BIRD_BGP_TIMERS='	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;'

# write_bird_lb I FILE: BIRD on maglevd host I: learn maglevd's routes (table 100, protocol 250)
# and announce them to the router over BGP, one session per address family, with BFD.
write_bird_lb() {
	local i=$1 f=$2 fam
	local -A local_addr=([4]=${LB_ADDR4[$i]} [6]=${LB_ADDR6[$i]})
	local -A peer_addr=([4]=${LB_ROUTER4[$i]} [6]=${LB_ROUTER6[$i]})
	{
		cat <<EOB
# BIRD 2 on maglevd host $((i + 1)) (written by tests/e2e/lib_scaleout.sh; see docs/scaleout.md)
log stderr all;
router id ${LB_ADDR4[$i]};

protocol device { scan time 10; }

ipv4 table vips4;
ipv6 table vips6;

# maglevd writes one route per VIP into kernel table $ANNOUNCE_TABLE, marked protocol $ANNOUNCE_PROTO.
EOB
		for fam in 4 6; do
			cat <<EOB
protocol kernel maglevd$fam {
	kernel table $ANNOUNCE_TABLE;
	learn;
	scan time 10;
	ipv$fam { table vips$fam; import where krt_source = $ANNOUNCE_PROTO; export none; };
}
EOB
		done
		cat <<EOB

protocol bfd {
	interface "$LB_IF" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}

EOB
		for fam in 4 6; do
			cat <<EOB
protocol bgp router$fam {
	local ${local_addr[$fam]} as $LB_AS;
	neighbor ${peer_addr[$fam]} as $ROUTER_AS;
$BIRD_BGP_TIMERS
	ipv$fam { table vips$fam; import none; export all; next hop self; };
}
EOB
		done
	} >"$f"
}

# write_bird_router FILE: BIRD on the router: BGP from both maglevd hosts, VIP prefixes only,
# equal routes merged into one multipath route in the kernel's main table.
write_bird_router() {
	local fam
	{
		cat <<EOB
# BIRD 2 on the router (written by tests/e2e/lib_scaleout.sh; see docs/scaleout.md)
log stderr all;
router id $ROUTER_CLIENT4;

protocol device { scan time 10; }

EOB
		for fam in 4 6; do
			printf 'protocol kernel kernel%s {\n\tmerge paths on;\n\tipv%s { import none; export all; };\n}\n' \
				"$fam" "$fam"
		done
		cat <<EOB

protocol bfd {
	interface "lb*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}

filter vips4_in { if net ~ [ 203.0.113.0/24{32,32}, 198.51.100.0/24{32,32} ] then accept; reject; }
filter vips6_in { if net ~ [ 2001:db8:100::/64{128,128} ] then accept; reject; }

EOB
		for fam in 4 6; do
			cat <<EOB
template bgp maglevd$fam {
	local as $ROUTER_AS;
$BIRD_BGP_TIMERS
	ipv$fam { import filter vips${fam}_in; export none; };
}
EOB
		done
		cat <<EOB
protocol bgp lb1_4 from maglevd4 { neighbor $LB4 as $LB_AS; }
protocol bgp lb2_4 from maglevd4 { neighbor $LB2_4 as $LB_AS; }
protocol bgp lb1_6 from maglevd6 { neighbor $LB6 as $LB_AS; }
protocol bgp lb2_6 from maglevd6 { neighbor $LB2_6 as $LB_AS; }
EOB
	} >"$1"
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

# scaleout_require: skips the test (exit 4) unless BIRD 2 is installed.
scaleout_require() {
	if ! command -v bird >/dev/null || ! command -v birdc >/dev/null; then
		e2e_skip "BIRD 2 (bird, birdc) not installed (apt-get install bird2)"
	fi
}

# scaleout_up [e2e_topology_up OPTION...]: the shared setup of a scale-out test, up to (not
# including) maglevd: the topology with both maglevd hosts and no static VIP routes, ECMP over the
# 5-tuple, the backends' servers, BIRD on the router and both hosts with their BGP and BFD
# sessions up, and no VIP route yet (each a check; a failure aborts the test).
scaleout_up() {
	if [ ! -x "$MAGLEVD" ] || [ ! -x "$MAGLEVCTL" ]; then
		e2e_skip "build maglevd and maglevctl first (make)"
	fi
	e2e_topology_up --two-lbs --no-vip-routes "$@" || e2e_abort "topology"
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
}

# ---- maglevd ----------------------------------------------------------------------------------

# lb_write_config I FILE [OPTION...]: host I's maglevd config: its own GRE source addresses and
# control socket, VIP announcement for BIRD, a connection table of 65536 flows unless an OPTION
# says otherwise, and the OPTIONs of e2e_write_config (the VIPs: the same on both hosts).
lb_write_config() {
	local i=$1 f=$2
	shift 2
	e2e_write_config "$f" --source "${LB_ADDR4[$i]}" "${LB_ADDR6[$i]}" --conntrack 65536 \
		--socket "$E2E_DIR/lb$((i + 1)).sock" --announce "$ANNOUNCE_TABLE" "$ANNOUNCE_PROTO" \
		"$WITHDRAW_DELAY_MS" "$@"
}

# start_lb I: maglevd on host I with $E2E_DIR/maglevd.lbN.yaml; ready when its control socket
# answers.
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

# open_spread_clients TAG N [AVOID [PERIOD]]: N long-lived clients through the web VIP (none
# kept on backend AVOID, a request every PERIOD seconds; clients_start); checks that all opened
# and that both maglevd carry some of them.
open_spread_clients() {
	local tag=$1 n=$2 open=$2 f1 f2 df1 df2 ready
	[ -z "${3:-}" ] || open=$((n * 3)) # enough to keep n off AVOID
	f1=$(web_flows 0)
	f2=$(web_flows 1)
	ready=$(clients_start "$tag" "$open" "$n" "${3:-}" "${4:-0.1}") ||
		{ bad "long-lived clients start ($tag)"; return 1; }
	df1=$(($(web_flows 0) - f1))
	df2=$(($(web_flows 1) - f2))
	check "$n long-lived connections open ($ready) through both maglevd (new flows: lb1 $df1, lb2 $df2)" \
		both_positive "$df1" "$df2" "$([ "$ready" = "ready $n" ] && echo 1 || echo 0)"
}

# lbs_ready: both maglevd run (started if a case stopped one) and the router has two next hops to
# web and web6, the state every case of a scale-out test starts from. A maglevd that exited on its
# own is a failed check (and is started again).
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
