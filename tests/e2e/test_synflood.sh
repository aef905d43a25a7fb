#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end: spoofed SYN floods (trafgen in the client namespace, random sources in
# 198.19.0.0/16 that the router blackholes) while 20 long-lived connections to the web VIP run,
# with a reload adding a third backend in the middle of each flood (a connection pushed out of
# the table would be re-hashed onto the new Maglev table and reset by the backend it lands on).
# Cases (E2E_CASES selects; see lib.sh), each with its own maglevd:
#   table    afpacket, the smallest table (1024 flows), a flood 40 times its size: SYN-only
#            entries are evicted, established ones never
#   rate     afxdp, a 1M-flow table, the highest rate this rig offers (trafgen asked for
#            150,000/s): the worker falls behind and sheds SYNs in the steering program, so the
#            kernel drops nothing at its RX ring, and no long-lived connection stalls over a
#            second or breaks; the share of the flood dropped is printed
# The environment may resize the rate case: SYNFLOOD_PPS, SYNFLOOD_SECONDS, SYNFLOOD_CT.
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgf}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

CLIENTS=20          # long-lived connections
CLIENT_PERIOD=0.2   # seconds between two requests of a connection (a stall shows as a gap)
STALL_MAX_MS=1000   # longest gap between two answers on a long-lived connection
FLOOD_NET=198.19    # spoofed sources 198.19.0.0/16; the router blackholes the answers
# table case
TABLE_CT=1024       # maglevd's table, flows (the smallest it takes)
TABLE_PPS=10000     # spoofed SYNs per second
TABLE_SECONDS=4     # about 40 times the table
# rate case
RATE_CT=${SYNFLOOD_CT:-1048576}
RATE_PPS=${SYNFLOOD_PPS:-150000} # more than trafgen reaches here (about 95,000/s)
RATE_SECONDS=${SYNFLOOD_SECONDS:-10}

# write_config FILE MODE ENTRIES I...: the web VIP with backends I (0..2), weight 1.
write_config() {
	local f=$1 mode=$2 entries=$3
	shift 3
	e2e_write_config "$f" --mode "$mode" --conntrack "$entries" --vip web "$VIP_WEB4" tcp 80 "$*"
}

counter() { lb_counter "$MAGLEVD_SOCKET" "$1"; } # counter NAME: maglevd's, summed over workers

# flood MODE ENTRIES PPS SECONDS: maglevd (web on be1 and be2) in MODE with a table of ENTRIES,
# the long-lived connections, PPS spoofed SYNs a second for SECONDS with a reload adding be3
# half-way; checks and prints what the connections and the counters saw. Sets SYN_EVICTED and
# SYN_UNTRACKED for the caller's own checks; stops maglevd.
flood() {
	local mode=$1 entries=$2 pps=$3 secs=$4 packets=$(($3 * $4)) cfg=$E2E_DIR/maglevd.yaml
	local ready t0 flood_pid rc est n errs changed gap names rx lost shed
	write_config "$cfg" "$mode" "$entries" 0 1
	start_maglevd "$mode" "$cfg" || { bad "maglevd starts ($mode)"; return; }
	ready=$(clients_start long "$CLIENTS" "$CLIENTS" "" "$CLIENT_PERIOD") || { bad "clients start"; return; }
	check "$CLIENTS long-lived connections open ($ready)" [ "$ready" = "ready $CLIENTS" ]

	e2e_write_synflood "$E2E_DIR/flood.cfg" "$FLOOD_NET"
	t0=$(now_ms)
	synflood_start "$E2E_DIR/flood.cfg" "$packets" "$pps"
	flood_pid=$BG_PID
	sleep $((secs / 2))
	write_config "$cfg" "$mode" "$entries" 0 1 2
	check "reload adding be3 during the flood" "$MAGLEVCTL" reload -s "$MAGLEVD_SOCKET"
	wait "$flood_pid"
	rc=$?
	check "flood of $packets SYNs sent in $(($(now_ms) - t0)) ms (trafgen rc $rc)" [ "$rc" -eq 0 ]
	sleep 1 # a few more requests on every connection after the flood

	SYN_EVICTED=$(counter ct_evicted_syn)
	SYN_UNTRACKED=$(counter ct_syn_untracked)
	est=$(counter ct_evicted_established)
	rx=$(counter rx_frames)
	lost=$(counter io_rx_kernel_drops)
	shed=$(counter io_xdp_drop_syn_shed)
	echo "counters: ct_evicted_syn ${SYN_EVICTED:-?}, ct_syn_untracked ${SYN_UNTRACKED:-?}," \
		"ct_evicted_established ${est:-?}" >&2
	echo "measured: $packets SYNs asked for at $pps/s ($mode, $entries flows): maglevd read" \
		"${rx:-?} frames; dropped before it: ${lost:-?} by the kernel at the full RX ring," \
		"${shed:-0} shed by the steering program" \
		"($(awk -v d="$((${lost:-0} + ${shed:-0}))" -v n="$packets" 'BEGIN { printf "%.1f", 100 * d / n }')%" \
		"of the flood)" >&2
	check "no established flow evicted (${est:-?})" [ "${est:-1}" -eq 0 ]
	clients_stop long || bad "clients stop"
	read -r n errs changed gap names _ < <(clients_report long)
	echo "measured: longest gap between two answers on a long-lived connection: $gap ms" >&2
	check "long-lived: $n connections reported ($names)" [ "$n" -eq "$CLIENTS" ]
	check "long-lived: no reset, no error ($errs)" [ "$errs" -eq 0 ]
	check "long-lived: none changed backend ($changed)" [ "$changed" -eq 0 ]
	check "long-lived: no stall over $STALL_MAX_MS ms (longest gap $gap ms)" [ "$gap" -le "$STALL_MAX_MS" ]
	check "maglevd still running" pid_alive "$MAGLEVD_PID"
	stop_maglevd || bad "maglevd exit status"
}

case_table() {
	flood afpacket "$TABLE_CT" "$TABLE_PPS" "$TABLE_SECONDS"
	check "the flood filled the table (SYN-only evictions $SYN_EVICTED, untracked SYNs $SYN_UNTRACKED)" \
		[ "$((${SYN_EVICTED:-0} + ${SYN_UNTRACKED:-0}))" -gt "$TABLE_CT" ]
}

case_rate() {
	flood afxdp "$RATE_CT" "$RATE_PPS" "$RATE_SECONDS"
}

e2e_cases table rate
e2e_init
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_skip "build maglevd and maglevctl first (make)"
command -v trafgen >/dev/null || e2e_skip "trafgen (netsniff-ng) not installed"
e2e_topology_up || e2e_abort "topology"
run_in "$NS_ROUTER" ip route add blackhole "$FLOOD_NET.0.0/16"
start_backend_servers || e2e_abort "backend servers"
e2e_run_cases
e2e_summary
