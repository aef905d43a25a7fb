#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of health checks through the tunnel (`through: tunnel`, docs/config.md): the
# probe is an HTTP GET to the VIP that maglevd's tc egress filter GRE-encapsulates to the backend,
# as client traffic goes, so a backend without the VIP on lo or without its decapsulation fails
# it; a direct check of the same backends (the VIP webd, same servers) stays up all along.
# Shared setup: the topology with two backends, their servers, one maglevd (afxdp, or HT_MODE) with
#   web   203.0.113.10 tcp 80   HTTP check through the tunnel
#   web6  2001:db8:100::10 tcp 80   the same over IPv6 (GRE over IPv6)
#   webd  198.51.100.10 tcp 80  HTTP check direct to the backends' own addresses
# The cases (E2E_CASES selects; see lib.sh), in the order they run:
#   all_up        every check up; the probes reach the backends as GRE (their decap counts
#                 them); the tc filter is on the dataplane interface
#   vip_removed   the VIP off be1's lo: be1 down for web within fall x interval (+ timeout),
#                 its reason shown by `maglevctl backends`, up for webd; new connections to web
#                 all go to be2; the VIP back: be1 up again
#   vip6_removed  the same for web6 and its IPv6 VIP
#   decap_off     be2's decap program detached: be2 down for web within the bound, up for webd;
#                 reattached: up again
#   stale         maglevd killed (SIGKILL) leaves its filter; the next start replaces it; a clean
#                 stop removes the filter, and the clsact qdisc when that maglevd made it
# HT_MODE=xdp|afpacket runs it in another data-plane mode (default afxdp).
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgt}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

HC_INTERVAL_MS=300
HC_TIMEOUT_MS=150
HC_RISE=2
HC_FALL=3
HC_SLACK_MS=700 # polling (100 ms), rebuild and scheduling on a loaded 2-core machine
# Down within fall probes: the first failing one starts at most one interval after the change,
# and the last one's verdict comes at most a timeout after it starts.
HC_BOUND_MS=$((HC_FALL * HC_INTERVAL_MS + HC_TIMEOUT_MS + HC_SLACK_MS))
VIP_DIRECT4=198.51.100.10
CURLS=20
HT_MODE=${HT_MODE:-afxdp}

ctl() { "$MAGLEVCTL" "$@" -s "$MAGLEVD_SOCKET"; }

# health_of VIP ADDR: up | down | unchecked (maglevctl backends VIP --json)
health_of() {
	ctl backends "$1" --json | "$E2E_PYTHON" -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    if b["address"] == sys.argv[1]:
        print(b["health"])' "$2"
}

health_is() { [ "$(health_of "$1" "$2")" = "$3" ]; }

# reason_of VIP ADDR: the health_reason maglevctl backends shows ("-" if none)
reason_of() {
	ctl backends "$1" --json | "$E2E_PYTHON" -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    if b["address"] == sys.argv[1]:
        print(b["health_reason"] or "-")' "$2"
}

all_up() {
	local i
	for i in 0 1; do
		health_is web "${BACKENDS4[$i]}" up && health_is webd "${BACKENDS4[$i]}" up &&
			health_is web6 "${BACKENDS6[$i]}" up || return 1
	done
}

# new_flows VIP N: N new HTTP connections from the client to VIP; the backend names, one a line.
new_flows() {
	local i url=http://$1/
	case $1 in *:*) url="http://[$1]/" ;; esac
	for ((i = 0; i < $2; i++)); do
		run_in "$NS_CLIENT" curl -s -m 2 "$url" || echo "FAILED"
	done
}

only_to() { # only_to VIP NAME: every one of CURLS new connections to VIP answered by NAME
	local got
	got=$(new_flows "$1" "$CURLS" | sort | uniq -c | awk '{ print $2 ":" $1 }' | tr '\n' ' ')
	echo "    new flows to $1: $got"
	[ "$got" = "$2:$CURLS " ]
}

both_serve() { # both_serve VIP: CURLS new connections to VIP reach be1 and be2, none fails
	local got
	got=$(new_flows "$1" "$CURLS" | sort -u | tr '\n' ' ')
	echo "    new flows to $1 answered by: $got"
	[ "$got" = "be1 be2 " ]
}

lb_tc_filter() { run_in "$NS_LB" tc filter show dev "$LB_IF" egress 2>/dev/null | grep -q hc_tunnel; }
lb_clsact() { run_in "$NS_LB" tc qdisc show dev "$LB_IF" | grep -q clsact; }
no_tc_filter() { ! lb_tc_filter; }
no_clsact() { ! lb_clsact; }

# down_within VIP ADDR WHAT: waits for ADDR down for VIP; checks it came within HC_BOUND_MS of T0.
down_within() {
	if wait_since "$T0" 5 health_is "$1" "$2" down; then
		echo "    $3: down for $1 after $TOOK ms (bound $HC_BOUND_MS ms: $HC_FALL x $HC_INTERVAL_MS + $HC_TIMEOUT_MS + slack)"
		check "$3: $2 down for $1 within the bound ($TOOK ms)" [ "$TOOK" -le "$HC_BOUND_MS" ]
	else
		bad "$3: $2 not down for $1 within 5 s"
	fi
}

# tunnel_counted: maglevctl counters has health_tunnel_encapsulated > 0 and the drops at 0.
tunnel_counted() {
	"$MAGLEVCTL" counters -s "$MAGLEVD_SOCKET" --json | "$E2E_PYTHON" -c '
import json, sys
c = {r["name"]: r["total"] for r in json.load(sys.stdin)["health"]}
print("    tunnel counters:", {k: v for k, v in c.items() if k.startswith("health_tunnel_")})
sys.exit(not (c["health_tunnel_encapsulated"] > 0 and c["health_tunnel_no_destination"] == 0 and
              c["health_tunnel_malformed"] == 0 and c["health_tunnel_no_room"] == 0))'
}

case_all_up() {
	local before after
	check "every check up (web, web6 through the tunnel; webd direct)" wait_for 10 all_up
	check "the hc_tunnel filter is on $LB_IF egress" lb_tc_filter
	before=$(decap_counter 0 decapsulated)
	sleep 1
	after=$(decap_counter 0 decapsulated)
	echo "    be1 decapsulated $before -> $after in 1 s with no client traffic"
	check "the probes reach be1 as GRE (its decap counts them)" [ "$after" -ge $((before + 4)) ]
	check "maglevd counts them (health_tunnel_encapsulated), none dropped" tunnel_counted
	check "new connections to web reach both backends" both_serve "$VIP_WEB4"
}

case_vip_removed() {
	wait_for 10 all_up || bad "precondition: all up"
	T0=$(now_ms)
	run_in "${NS_BACKENDS[0]}" ip addr del "$VIP_WEB4/32" dev lo
	down_within web "${BACKENDS4[0]}" "VIP off be1's lo"
	echo "    be1's reason: $(reason_of web "${BACKENDS4[0]}")"
	check "be1's reason is shown: timeout" [ "$(reason_of web "${BACKENDS4[0]}")" = timeout ]
	check "be1 stays up for webd (direct)" health_is webd "${BACKENDS4[0]}" up
	check "be1 stays up for web6 (its VIP is still there)" health_is web6 "${BACKENDS6[0]}" up
	check "new connections to web all go to be2" only_to "$VIP_WEB4" be2
	run_in "${NS_BACKENDS[0]}" ip addr add "$VIP_WEB4/32" dev lo
	check "VIP back on be1's lo: be1 up again for web" wait_for 5 health_is web "${BACKENDS4[0]}" up
	check "be1's reason gone once up" [ "$(reason_of web "${BACKENDS4[0]}")" = - ]
}

case_vip6_removed() {
	wait_for 10 all_up || bad "precondition: all up"
	T0=$(now_ms)
	run_in "${NS_BACKENDS[0]}" ip -6 addr del "$VIP_WEB6/128" dev lo
	down_within web6 "${BACKENDS6[0]}" "IPv6 VIP off be1's lo"
	check "be1 stays up for web (IPv4)" health_is web "${BACKENDS4[0]}" up
	check "new connections to web6 all go to be2" only_to "$VIP_WEB6" be2
	run_in "${NS_BACKENDS[0]}" ip -6 addr add "$VIP_WEB6/128" dev lo
	check "IPv6 VIP back: be1 up again for web6" wait_for 5 health_is web6 "${BACKENDS6[0]}" up
}

case_decap_off() {
	wait_for 10 all_up || bad "precondition: all up"
	T0=$(now_ms)
	backend_decap_detach 1 >/dev/null
	down_within web "${BACKENDS4[1]}" "decap off be2"
	check "be2 stays up for webd (direct)" health_is webd "${BACKENDS4[1]}" up
	check "new connections to web all go to be1" only_to "$VIP_WEB4" be1
	backend_decap_attach 1
	check "decap back on be2: be2 up again for web" wait_for 5 health_is web "${BACKENDS4[1]}" up
	check "and for web6" wait_for 5 health_is web6 "${BACKENDS6[1]}" up
}

case_stale() {
	kill -KILL "$MAGLEVD_PID"
	wait "$MAGLEVD_PID" 2>/dev/null
	MAGLEVD_PID=
	check "a killed maglevd leaves its filter on $LB_IF" lb_tc_filter
	start_maglevd "$HT_MODE" "$CONFIG" || e2e_abort "maglevd restart"
	check "the next start replaces the stale filter (logged)" \
		wait_for 5 grep -q "removed a stale hc_tunnel tc filter" "$MAGLEVD_LOG"
	check "every check up again" wait_for 10 all_up
	check "one hc_tunnel filter on $LB_IF" \
		[ "$(run_in "$NS_LB" tc filter show dev "$LB_IF" egress | grep -c hc_tunnel)" -eq 1 ]
	stop_maglevd
	check "maglevd stopped cleanly" [ $? -eq 0 ]
	check "no hc_tunnel filter left after a clean stop" no_tc_filter
	# The clsact qdisc the killed maglevd made stays (the next one cannot tell it from an
	# operator's): removed by hand here, a clean start and stop then leave none.
	run_in "$NS_LB" tc qdisc del dev "$LB_IF" clsact
	start_maglevd "$HT_MODE" "$CONFIG" || e2e_abort "maglevd restart"
	check "a fresh start makes the filter" wait_for 5 lb_tc_filter
	stop_maglevd
	check "a clean stop removes the filter" no_tc_filter
	check "and the clsact qdisc it made" no_clsact
}

e2e_cases all_up vip_removed vip6_removed decap_off stale
e2e_init
[ -x "$MAGLEVD" ] || e2e_skip "no $MAGLEVD (run make)"
[ -f "$E2E_BUILD/bpf/hc_tunnel.bpf.o" ] || e2e_skip "no $E2E_BUILD/bpf/hc_tunnel.bpf.o (run make)"
command -v tc >/dev/null || e2e_skip "no tc (iproute2)"
e2e_topology_up --backends 2 || e2e_abort "topology"
start_backend_servers || e2e_abort "backend servers"
router_takes_xdp_tx "$HT_MODE" || e2e_abort "xdp_pass on the router's $ROUTER_LB_IF"
HC="type: http, path: /, interval: ${HC_INTERVAL_MS}ms, timeout: ${HC_TIMEOUT_MS}ms, rise: $HC_RISE, fall: $HC_FALL"
CONFIG=$E2E_DIR/maglevd.tunnel.yaml
e2e_write_config "$CONFIG" --mode "$HT_MODE" \
	--vip web "$VIP_WEB4" tcp 80 all --health "{ $HC, through: tunnel }" \
	--vip web6 "$VIP_WEB6" tcp 80 all --health "{ $HC, through: tunnel }" \
	--vip webd "$VIP_DIRECT4" tcp 80 all --health "{ $HC }"
start_maglevd "$HT_MODE" "$CONFIG" || e2e_abort "maglevd"
e2e_run_cases
e2e_summary
