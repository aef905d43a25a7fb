#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of the control plane (issue 5) on the namespace topology of lib.sh, in
# CONTROL_MODE (default afxdp; test_control_xdp.sh runs it in xdp mode, where the kernel forwards:
# long-lived connections, drain and health failover then go through the XDP program's table).
# Shared setup: the topology, the backends' servers, one maglevd (web VIP with HTTP health checks,
# dns VIP) started with a soft open files limit of 1024, every backend healthy. The cases
# (E2E_CASES selects among them; see lib.sh), in the order they run:
#   startup        the open files limit raised, the socket's mode, status and counters answer
#   long_lived     long-lived connections across reloads, re-weight, drain and failed reloads
#                  (a config that does not parse, an empty file by socket and by SIGHUP); it
#                  ends with be3 undrained and web at weights 3:1:1
#   drain          new connections avoid a drained backend, its existing ones finish normally
#   health         health-check failover (be2's servers stopped) and return
#   fail_open      every backend down: the VIP keeps its full table
#   explain        explain agrees with where real connections went
#   vip_steering   VIPs removed and added by a reload leave and join the XDP steering map
#   metrics        metrics move with traffic; the failed reloads of this run are counted
#   sighup         SIGHUP reloads too
#   state_restart  after a change, a restarted maglevd has the same digest and previous digest
#                  (the state directory); it ends with web at weights 1:1:2
# After the cases: maglevd still runs and exits cleanly.
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgc}
CONTROL_MODE=${CONTROL_MODE:-afxdp}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

HC_INTERVAL_MS=200
HC_TIMEOUT_MS=100
HC_RISE=2
HC_FALL=2
HC_SLACK_MS=1500 # scheduling slack on a loaded 2-core machine, on top of the configured bound
CLIENTS_KEEP=20
CLIENTS_OPEN=60 # opened to find CLIENTS_KEEP that are not on the backend about to be removed
CURLS=60        # new connections per "where do new flows go" check
METRICS_URL=http://127.0.0.1:9180/metrics

ctl() { "$MAGLEVCTL" "$@" -s "$MAGLEVD_SOCKET"; }

be_name_of() { # be_name_of ADDR -> be1..be3
	local i
	for i in 0 1 2; do
		[ "${BACKENDS4[$i]}" = "$1" ] && { echo "${BACKEND_NAMES[$i]}"; return 0; }
	done
	echo "?"
}

# write_config FILE SPEC...: the web VIP with backends SPEC ("I:WEIGHT", I = 0..2) and an HTTP
# health check, and the dns VIP (all three backends) unless NO_DNS is set.
write_config() {
	local f=$1 dns=()
	shift
	[ -n "${NO_DNS:-}" ] || dns=(--vip dns "$VIP_DNS4" udp 53 all)
	e2e_write_config "$f" --vip web "$VIP_WEB4" tcp 80 "$*" \
		--health "{ type: http, path: /, interval: ${HC_INTERVAL_MS}ms, timeout: ${HC_TIMEOUT_MS}ms, rise: $HC_RISE, fall: $HC_FALL }" \
		"${dns[@]}"
}

# new_flows N: N new HTTP connections from the client; prints the backend names, one a line.
new_flows() {
	local i
	for ((i = 0; i < $1; i++)); do
		run_in "$NS_CLIENT" curl -s -m 2 "http://$VIP_WEB4/" || echo "FAILED"
	done
}

metric_sum() { # metric_sum NAME: sum of every sample of NAME at /metrics
	run_in "$NS_LB" curl -s -m 2 "$METRICS_URL" |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}

backend_health() { # backend_health ADDR: up | down | unchecked
	ctl backends web --json | "$E2E_PYTHON" -c '
import json, sys
for b in json.load(sys.stdin)["backends"]:
    if b["address"] == sys.argv[1]:
        print(b["health"])' "$1"
}

health_is() { [ "$(backend_health "$1")" = "$2" ]; }

all_up() { health_is "${BACKENDS4[0]}" up && health_is "${BACKENDS4[1]}" up && health_is "${BACKENDS4[2]}" up; }
all_down() { health_is "${BACKENDS4[0]}" down && health_is "${BACKENDS4[1]}" down && health_is "${BACKENDS4[2]}" down; }

config_generation() {
	ctl status --json | "$E2E_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["config_generation"])'
}

RELOAD_FAILURES=0 # reloads this run has made fail (maglevd_reloads_total{result="failure"})

# ---------------------------------------------------------------------------------------------

case_startup() {
	check "open files soft limit raised to the hard one ($NOFILE_HARD)" \
		[ "$(awk '/^Max open files/ { print $4 }' "/proc/$MAGLEVD_PID/limits")" = "$NOFILE_HARD" ]
	e2e_log "maglevd holds $(ls "/proc/$MAGLEVD_PID/fd" | wc -l) descriptors"
	check "control socket is mode 0600" [ "$(stat -c %a "$MAGLEVD_SOCKET")" = 600 ]
	check "maglevctl status answers" ctl status
	check "maglevctl counters lists the health checker's, no local errors" \
		bash -c "'$MAGLEVCTL' counters -s '$MAGLEVD_SOCKET' | grep -qE '^health_local_errors +0 *\$'"
}

# Long-lived connections across reloads, re-weight, drain and a failed reload.
case_long_lived() {
	local ready gen0 gen1 out rc n errs changed gap names
	ready=$(clients_start long "$CLIENTS_OPEN" "$CLIENTS_KEEP" be3) || { bad "clients start"; return; }
	check "$CLIENTS_KEEP long-lived connections open, none on be3 ($ready)" [ "$ready" = "ready $CLIENTS_KEEP" ]
	gen0=$(config_generation)

	sleep 1
	write_config "$CFG" 0:1 1:1
	check "reload removing be3 (no client on it) succeeds" ctl reload
	sleep 1
	write_config "$CFG" 0:1 1:1 2:1
	check "reload adding be3 back succeeds" ctl reload
	sleep 1
	write_config "$CFG" 0:3 1:1 2:1
	check "reload re-weighting be1 to 3 succeeds" ctl reload
	sleep 1
	check "drain of be3 (no client on it) succeeds" ctl drain web "${BACKENDS4[2]}"
	sleep 1
	cp "$CFG" "$CFG.good"
	printf 'vips:\n  - name: web\n    address: [oops\n' >"$CFG"
	out=$(ctl reload 2>&1)
	rc=$?
	RELOAD_FAILURES=$((RELOAD_FAILURES + 1))
	check "failed reload: maglevctl exits non-zero" [ "$rc" -ne 0 ]
	check "failed reload: error names FILE:LINE ($out)" grep -q "$CFG:[0-9]" <<<"$out"
	: >"$CFG" # what a reload reads half-way through a non-atomic write
	out=$(ctl reload 2>&1)
	RELOAD_FAILURES=$((RELOAD_FAILURES + 1))
	check "empty file: reload refused ($out)" grep -q "the file is empty" <<<"$out"
	kill -HUP "$MAGLEVD_PID"
	RELOAD_FAILURES=$((RELOAD_FAILURES + 1))
	check "empty file: SIGHUP reload refused too (logged twice now)" wait_for 5 bash -c \
		"[ \$(grep -c 'reload failed, the running config stays: $CFG:1: the file is empty' '$MAGLEVD_LOG') -eq 2 ]"
	gen1=$(config_generation)
	check "failed reloads: generation $gen1 = $gen0 + 3" [ "$gen1" -eq $((gen0 + 3)) ]
	check "failed reload: be3 still drained (old state serving)" \
		bash -c "'$MAGLEVCTL' backends web --json -s '$MAGLEVD_SOCKET' | grep -q '\"state\": \"drained\"'"
	cp "$CFG.good" "$CFG"
	sleep 1
	clients_stop long || bad "clients stop"
	read -r n errs changed gap names _ < <(clients_report long)
	check "long-lived: $n connections reported" [ "$n" -eq "$CLIENTS_KEEP" ]
	check "long-lived: no reset, no error ($errs)" [ "$errs" -eq 0 ]
	check "long-lived: none changed backend ($changed)" [ "$changed" -eq 0 ]
	check "long-lived: no stall, longest gap ${gap} ms < 1000 ms" [ "$gap" -lt 1000 ]
	check "undrain be3" ctl undrain web "${BACKENDS4[2]}"
}

# Drain: new connections avoid the backend, its existing ones finish normally.
case_drain() {
	local ready flows n errs changed gap names
	ready=$(clients_start drain 30 30 "") || { bad "drain clients start"; return; }
	check "drain of be3" ctl drain web "${BACKENDS4[2]}"
	flows=$(new_flows "$CURLS")
	check "after drain: every new connection answered" [ "$(grep -c -E '^be[123]$' <<<"$flows")" -eq "$CURLS" ]
	check "after drain: no new connection on be3" [ "$(grep -c '^be3$' <<<"$flows")" -eq 0 ]
	sleep 1
	clients_stop drain || bad "drain clients stop"
	read -r n errs changed gap names _ < <(clients_report drain)
	check "drain: existing connections included be3 ($names)" grep -q be3 <<<"$names"
	check "drain: existing connections (be3's too) finished without error ($errs)" [ "$errs" -eq 0 ]
	check "undrain be3 again" ctl undrain web "${BACKENDS4[2]}"
	flows=$(new_flows "$CURLS")
	check "after undrain: be3 gets new connections again" [ "$(grep -c '^be3$' <<<"$flows")" -gt 0 ]
}

# Health: stop be2's servers, it goes down; start them, it comes back.
case_health() {
	local t0 limit flows
	t0=$(now_ms)
	stop_backend_servers 1
	limit=$((HC_FALL * HC_INTERVAL_MS + HC_TIMEOUT_MS + HC_SLACK_MS))
	if wait_since "$t0" 10 health_is "${BACKENDS4[1]}" down; then
		check "health: be2 down in ${TOOK} ms (fall x interval + timeout = $((HC_FALL * HC_INTERVAL_MS + HC_TIMEOUT_MS)) ms, +slack)" [ "$TOOK" -le "$limit" ]
		echo "measured: dead backend detected in ${TOOK} ms" >&2
	else
		bad "health: be2 never marked down"
	fi
	flows=$(new_flows "$CURLS")
	check "health: every new connection answered after be2 went down" [ "$(grep -c -E '^be[13]$' <<<"$flows")" -eq "$CURLS" ]
	check "health: no new connection on be2" [ "$(grep -c '^be2$' <<<"$flows")" -eq 0 ]
	t0=$(now_ms)
	start_backend_servers 1 || bad "restart be2 servers"
	if wait_since "$t0" 10 health_is "${BACKENDS4[1]}" up; then
		check "health: be2 up again in ${TOOK} ms (rise x interval = $((HC_RISE * HC_INTERVAL_MS)) ms, +slack)" [ "$TOOK" -le $((HC_RISE * HC_INTERVAL_MS + HC_SLACK_MS)) ]
	else
		bad "health: be2 never came back"
	fi
	flows=$(new_flows "$CURLS")
	check "health: be2 gets new connections again" [ "$(grep -c '^be2$' <<<"$flows")" -gt 0 ]
}

# Every backend down: fail open (the VIP keeps its full table).
case_fail_open() {
	stop_backend_servers 0 1 2
	check "all down: every web backend marked down by health checks" wait_for 10 all_down
	check "all down: fail open, every backend still in service" \
		bash -c "[ \"\$('$MAGLEVCTL' backends web --json -s '$MAGLEVD_SOCKET' | grep -c '\"state\": \"active\"')\" -eq 3 ]"
	check "all down: fail-open logged" grep -q "vip web: every backend is down" "$MAGLEVD_LOG"
	start_backend_servers 0 1 2 || bad "restart servers"
	check "all down: every backend back up" wait_for 10 all_up
}

# Explain agrees with where real connections went.
case_explain() {
	local agree=0 port got addr
	for port in 61001 61002 61003 61004 61005 61006; do # outside ip_local_port_range
		got=$(run_in "$NS_CLIENT" curl -s -m 2 --local-port "$port" "http://$VIP_WEB4/")
		addr=$(ctl explain web "$CLIENT4:$port" --json | "$E2E_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
		if [ "$(be_name_of "$addr")" = "$got" ]; then
			agree=$((agree + 1))
		else
			echo "explain: port $port went to '$got', explain says $addr" >&2
		fi
	done
	check "explain agrees with 6 of 6 real connections ($agree)" [ "$agree" -eq 6 ]
	ctl explain web "$CLIENT4:61001" || bad "explain (human form)"
}

udp_echo() { # true if a UDP datagram to the dns VIP is echoed
	run_in "$NS_CLIENT" "$E2E_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for i in range(3):
    s.sendto(b"ping", (sys.argv[1], 53))
    try:
        if s.recvfrom(64)[0] == b"ping":
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)' "$VIP_DNS4"
}

# VIPs removed and added by a reload leave and join the XDP steering map.
case_vip_steering() {
	check "dns VIP answers before" udp_echo
	NO_DNS=1 write_config "$CFG" 0:1 1:1 2:1
	check "reload removing the dns VIP" ctl reload
	if udp_echo; then bad "removed VIP no longer answered"; else ok "removed VIP no longer answered"; fi
	write_config "$CFG" 0:1 1:1 2:1
	check "reload adding the dns VIP back" ctl reload
	check "re-added VIP answered again" udp_echo
}

# Metrics move with traffic.
case_metrics() {
	local rx0 pk0 rx1 pk1
	rx0=$(metric_sum maglevd_rx_frames_total)
	pk0=$(metric_sum maglevd_backend_packets_total)
	new_flows 20 >/dev/null
	rx1=$(metric_sum maglevd_rx_frames_total)
	pk1=$(metric_sum maglevd_backend_packets_total)
	check "metrics: rx_frames moved ($rx0 -> $rx1)" [ "$rx1" -gt "$rx0" ]
	check "metrics: backend packets moved ($pk0 -> $pk1)" [ "$pk1" -gt "$pk0" ]
	check "metrics: vip_info with digest and hash mode" bash -c "ip netns exec '$NS_LB' curl -s '$METRICS_URL' | grep -q '^maglevd_vip_info{vip=\"web\".*digest=\"[0-9a-f]\{16\}\",hash=\"5-tuple\"} 1'"
	check "metrics: reload failures counted ($RELOAD_FAILURES made by this run)" bash -c "ip netns exec '$NS_LB' curl -s '$METRICS_URL' | grep -q '^maglevd_reloads_total{result=\"failure\"} $RELOAD_FAILURES'"
}

# SIGHUP reloads too.
case_sighup() {
	local gen
	gen=$(config_generation)
	write_config "$CFG" 0:1 1:1 2:2
	kill -HUP "$MAGLEVD_PID"
	check "SIGHUP: reload logged" wait_for 5 grep -q "reload: .*config generation $((gen + 1))" "$MAGLEVD_LOG"
}

# vip_digests NAME: "DIGEST PREVIOUS_DIGEST" of a VIP from vips --json (PREVIOUS "null" if none).
vip_digests() {
	ctl vips --json | "$E2E_PYTHON" -c '
import json, sys
for v in json.load(sys.stdin)["vips"]:
    if v["name"] == sys.argv[1]:
        print(v["digest"], v["previous_digest"] or "null")' "$1"
}

# The previous generation survives a restart: the state directory keeps it.
case_state_restart() {
	local before after
	write_config "$CFG" 0:1 1:1 2:1
	check "state_restart: reload to weights 1:1:1" ctl reload
	write_config "$CFG" 0:1 1:1 2:2
	check "state_restart: reload to weights 1:1:2" ctl reload
	wait_for 10 all_up
	before=$(vip_digests web)
	case $before in
	*null* | '') bad "state_restart: web has no previous generation to keep ('$before')"; return ;;
	esac
	check "state_restart: the state file is written" test -s "$E2E_DIR/maglevd.state/state.json"
	check "state_restart: no state write failed" [ "$(metric_sum maglevd_state_write_errors_total)" = 0 ]
	stop_maglevd || bad "state_restart: maglevd exit status"
	start_maglevd afxdp "$CFG" || e2e_abort "state_restart: maglevd restarts"
	wait_for 10 all_up
	after=$(vip_digests web)
	check "state_restart: digest and previous digest as before the restart ($before)" [ "$after" = "$before" ]
	check "state_restart: the restore is logged" \
		grep -q "vip web: previous generation ${before#* } restored from $E2E_DIR/maglevd.state/state.json" "$MAGLEVD_LOG"
}

# ---------------------------------------------------------------------------------------------

e2e_cases startup long_lived drain health fail_open explain vip_steering metrics sighup state_restart
e2e_init
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_skip "build maglevd and maglevctl first (make)"
e2e_topology_up || e2e_abort "topology"
router_takes_xdp_tx "$CONTROL_MODE" || e2e_abort "XDP_PASS on the router's link to the lb"
start_backend_servers || e2e_abort "backend servers"
CFG=$E2E_DIR/maglevd.yaml
write_config "$CFG" 0:1 1:1 2:1
# Started with the usual soft open files limit: maglevd raises it to the hard one itself.
NOFILE_HARD=$(ulimit -Hn)
[ "$NOFILE_HARD" = unlimited ] || [ "$NOFILE_HARD" -le 1024 ] || ulimit -Sn 1024
start_maglevd "$CONTROL_MODE" "$CFG" || e2e_abort "maglevd starts"
wait_for 10 test -S "$MAGLEVD_SOCKET" || e2e_abort "control socket appears"
wait_for 10 all_up

e2e_run_cases

check "maglevd still running" pid_alive "$MAGLEVD_PID"
stop_maglevd || bad "maglevd exit status"
e2e_summary
