#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end: a spoofed SYN flood does not push established flows out of the connection table.
# Long-lived connections to the web VIP (two backends), then a bounded flood of SYNs from random
# spoofed sources (trafgen in the client namespace) many times the size of maglevd's 1024-flow
# table, and in the middle of it a reload adding a third backend: a connection pushed out of the
# table would be re-hashed onto the new Maglev table and reset by the backend it lands on.
# afpacket mode: the flood must not cost the connections packets at the RX ring.
# Shared setup: the topology, the servers, maglevd with web on be1 and be2. One case (E2E_CASES
# selects it; see lib.sh): flood. After it: maglevd still runs and exits cleanly.
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgf}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

CT_ENTRIES=1024      # maglevd's table, flows (the smallest it takes)
CLIENTS=20           # long-lived connections
CLIENT_PERIOD=0.5    # seconds between two requests of a connection
FLOOD_PPS=10000      # spoofed SYNs per second
FLOOD_PACKETS=40000  # 4 s of flood: about 40 times the table
FLOOD_NET=198.19     # spoofed sources 198.19.0.0/16; the router blackholes the answers
RELOAD_AFTER=2       # seconds into the flood

# write_config FILE I...: the web VIP with backends I (0..2), weight 1, and a small table.
write_config() {
	local f=$1
	shift
	e2e_write_config "$f" --mode afpacket --conntrack "$CT_ENTRIES" --vip web "$VIP_WEB4" tcp 80 "$*"
}

counter() { lb_counter "$MAGLEVD_SOCKET" "$1"; } # counter NAME: maglevd's, summed over workers

# The flood with a reload in the middle of it (starts from web on be1 and be2, as the setup
# leaves it, and leaves it on all three).
case_flood() {
	local ready t0 flood_pid rc syn untracked est n errs changed names
	ready=$(clients_start long "$CLIENTS" "$CLIENTS" "" "$CLIENT_PERIOD") || { bad "clients start"; return; }
	check "$CLIENTS long-lived connections open ($ready)" [ "$ready" = "ready $CLIENTS" ]

	e2e_write_synflood "$E2E_DIR/flood.cfg" "$FLOOD_NET"
	t0=$(now_ms)
	synflood_start "$E2E_DIR/flood.cfg" "$FLOOD_PACKETS" "$FLOOD_PPS"
	flood_pid=$BG_PID
	sleep "$RELOAD_AFTER"
	write_config "$CFG" 0 1 2
	check "reload adding be3 during the flood" "$MAGLEVCTL" reload -s "$MAGLEVD_SOCKET"
	wait "$flood_pid"
	rc=$?
	check "flood of $FLOOD_PACKETS SYNs sent in $(($(now_ms) - t0)) ms (trafgen rc $rc)" [ "$rc" -eq 0 ]
	sleep 1 # two more requests on every connection after the flood

	syn=$(counter ct_evicted_syn)
	untracked=$(counter ct_syn_untracked)
	est=$(counter ct_evicted_established)
	echo "counters: ct_evicted_syn ${syn:-?}, ct_syn_untracked ${untracked:-?}," \
		"ct_evicted_established ${est:-?}" >&2
	check "the flood filled the table (SYN-only evictions $syn, untracked SYNs $untracked)" \
		[ "$((${syn:-0} + ${untracked:-0}))" -gt "$CT_ENTRIES" ]
	check "no established flow evicted (${est:-?})" [ "${est:-1}" -eq 0 ]
	clients_stop long || bad "clients stop"
	read -r n errs changed _ names _ < <(clients_report long)
	check "long-lived: $n connections reported ($names)" [ "$n" -eq "$CLIENTS" ]
	check "long-lived: no reset, no error ($errs)" [ "$errs" -eq 0 ]
	check "long-lived: none changed backend ($changed)" [ "$changed" -eq 0 ]
}

e2e_cases flood
e2e_init
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_skip "build maglevd and maglevctl first (make)"
command -v trafgen >/dev/null || e2e_skip "trafgen (netsniff-ng) not installed"
e2e_topology_up || e2e_abort "topology"
run_in "$NS_ROUTER" ip route add blackhole "$FLOOD_NET.0.0/16"
start_backend_servers || e2e_abort "backend servers"
CFG=$E2E_DIR/maglevd.yaml
write_config "$CFG" 0 1
start_maglevd afpacket "$CFG" || e2e_abort "maglevd starts"
wait_for 10 test -S "$MAGLEVD_SOCKET" || e2e_abort "control socket appears"

e2e_run_cases

check "maglevd still running" pid_alive "$MAGLEVD_PID"
stop_maglevd || bad "maglevd exit status"
e2e_summary
