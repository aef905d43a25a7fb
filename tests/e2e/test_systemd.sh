#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of maglevd under systemd's notification protocol, without systemd: the test
# plays systemd's part (tests/e2e/notify_tool.py binds the NOTIFY_SOCKET datagram socket and logs
# every message with its CLOCK_MONOTONIC time) and runs the real maglevd with NOTIFY_SOCKET,
# WATCHDOG_USEC=2 s and MAGLEVD_TEST_HOOKS=1 on the lib.sh topology. Shared setup: the topology
# and the backends' servers. One case per data-plane mode, each a whole run of one maglevd:
#   afxdp, afpacket   READY=1 (with STATUS=) once, and a connection through the VIP works right
#                     after it; WATCHDOG=1 about every second; RELOADING=1 (MONOTONIC_USEC=) then
#                     READY=1 around a SIGHUP reload, a refused SIGHUP reload and a socket
#                     reload; a worker stalled with an empty ring keeps the pings; one stalled
#                     while traffic waits for it stops them within the watchdog interval (logged
#                     once, named in STATUS=) and they resume after; STOPPING=1 on SIGTERM.
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgsd}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

WD_USEC=2000000 # WATCHDOG_USEC: maglevd looks at its workers and pings every second
WD_S=2          # the same in seconds: WatchdogSec=, after which systemd would kill it
PING_S=1        # half of it: the ping interval
SLACK_S=0.6     # scheduling slack on a loaded 2-core machine
STALL_S=5       # the stall with traffic; longer than WD_S, so systemd would act on it
IDLE_STALL_S=3  # the stall without traffic
UDP_PPS=50      # traffic to the stalled worker
NOTIFY_TOOL=$E2E_ROOT/tests/e2e/notify_tool.py

NOTIFY_SOCK= # set after e2e_init: in $E2E_DIR
NOTIFY_OUT=
LISTEN_PID=

# notify_listen: a fresh listener on $NOTIFY_SOCK logging to $NOTIFY_OUT.
notify_listen() {
	rm -f "$NOTIFY_OUT" "$E2E_DIR/notify.stop"
	: >"$NOTIFY_OUT"
	"$E2E_PYTHON" "$NOTIFY_TOOL" listen "$NOTIFY_SOCK" "$NOTIFY_OUT" --stop "$E2E_DIR/notify.stop" \
		--max-seconds 300 >"$E2E_DIR/notify_tool.log" 2>&1 &
	LISTEN_PID=$!
	echo "$LISTEN_PID" >>"$E2E_DIR/pids"
	wait_for 5 test -S "$NOTIFY_SOCK"
}

notify_unlisten() {
	touch "$E2E_DIR/notify.stop"
	wait "$LISTEN_PID" 2>/dev/null
	LISTEN_PID=
}

# lines_after N [PATTERN]: the messages after line N of the log (WATCHDOG=1 left out), each
# without its time; PATTERN (grep -E) keeps only those that match.
lines_after() {
	tail -n +$(($1 + 1)) "$NOTIFY_OUT" | cut -d' ' -f2- | grep -v '^WATCHDOG=1$' | grep -E "${2:-.}"
}

log_lines() { wc -l <"$NOTIFY_OUT"; }

# after_has N PATTERN: a line after line N of the log matches PATTERN (grep -E, time included).
after_has() { tail -n +$(($1 + 1)) "$NOTIFY_OUT" | grep -qE "$2"; }

# pings_in FROM TO: the times of the WATCHDOG=1 lines in [FROM, TO) (monotonic seconds).
pings_in() {
	awk -v a="$1" -v b="$2" '$2 == "WATCHDOG=1" && $1 >= a && $1 < b { print $1 }' "$NOTIFY_OUT"
}

# now_mono: CLOCK_MONOTONIC in seconds, as the listener writes it.
now_mono() { "$E2E_PYTHON" -c 'import time; print("%.3f" % time.monotonic())'; }

not() { ! "$@"; }

# fcmp EXPR: a floating-point comparison (awk), e.g. fcmp "1.2 < 3".
fcmp() { awk "BEGIN { exit !($*) }"; }

# last_after_matches N PATTERN: the last message after line N (no WATCHDOG=1) matches PATTERN.
last_after_matches() { lines_after "$1" | tail -n 1 | grep -qE "$2"; }

# reload_pair GOT RESULT: GOT is two lines, RELOADING=1|MONOTONIC_USEC=N and READY=1|STATUS=...
# whose last reload is RESULT.
reload_pair() {
	[ "$(echo "$1" | wc -l)" -eq 2 ] &&
		echo "$1" | sed -n 1p | grep -qE '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$' &&
		echo "$1" | sed -n 2p | grep -qE "^READY=1\|STATUS=.*last reload ($2)"
}

# reload_check WHAT MARK RESULT: after line MARK, exactly RELOADING=1|MONOTONIC_USEC=N and then
# READY=1 with a STATUS= whose last reload is RESULT (a grep -E pattern).
reload_check() {
	local what=$1 mark=$2 result=$3 got
	if ! wait_for 5 after_has "$mark" ' READY=1'; then
		bad "$what: no READY=1 after it"
		return
	fi
	got=$(lines_after "$mark")
	check "$what: RELOADING=1 with MONOTONIC_USEC=, then READY=1 (got: $(echo "$got" | tr '\n' '^'))" \
		reload_pair "$got" "$result"
}

run_mode() {
	local mode=$1 cfg=$E2E_DIR/maglevd.$1.yaml mark first pings t0 t1 n gap t_stall ans udp_pid status
	notify_listen || { bad "$mode: notify listener up"; return; }
	e2e_write_config "$cfg" --mode "$mode" --workers 1
	if ! NOTIFY_SOCKET=$NOTIFY_SOCK WATCHDOG_USEC=$WD_USEC MAGLEVD_TEST_HOOKS=1 \
		start_maglevd "$mode" "$cfg"; then
		bad "$mode: maglevd starts"
		notify_unlisten
		return
	fi

	# READY=1 once the data plane forwards: a connection right after it gets through.
	check "$mode: READY=1 within 10 s" wait_for 10 grep -q ' READY=1' "$NOTIFY_OUT"
	check "$mode: a connection through the VIP right after READY=1" \
		run_in "$NS_CLIENT" curl -sf -m 3 -o /dev/null "http://$VIP_WEB4/"
	first=$(lines_after 0 | head -n 1)
	check "$mode: the first message is READY=1 with the summary ($first)" \
		grep -qE "^READY=1\|STATUS=$mode.*, 4 VIPs, 12/12 backends up, config generation 1, last reload none\$" <<<"$first"
	check "$mode: maglevd logged its watchdog (every 1000 ms)" \
		grep -q 'watchdog: every 1000 ms' "$MAGLEVD_LOG"

	# WATCHDOG=1 about every second.
	t0=$(now_mono)
	sleep 4.5
	pings=$(pings_in "$t0" 1e12)
	n=$(echo "$pings" | grep -c .)
	check "$mode: at least 3 WATCHDOG=1 in 4.5 s ($n)" [ "$n" -ge 3 ]
	gap=$(echo "$pings" | awk 'NR > 1 { d = $1 - p; if (d > mx) mx = d; if (mn == "" || d < mn) mn = d } { p = $1 } END { printf "%.3f %.3f", mn, mx }')
	check "$mode: pings ${PING_S} s apart (shortest, longest: $gap)" \
		fcmp "${gap% *} > $PING_S - $SLACK_S && ${gap#* } < $PING_S + $SLACK_S"

	# Reloads: SIGHUP, a refused SIGHUP, the socket.
	e2e_write_config "$cfg" --mode "$mode" --workers 1 --default-vips --vip extra 198.51.100.10 tcp 80 all
	mark=$(log_lines)
	kill -HUP "$MAGLEVD_PID"
	reload_check "$mode: SIGHUP reload" "$mark" ok
	check "$mode: its STATUS= has the new VIP" last_after_matches "$mark" \
		', 5 VIPs, 15/15 backends up, config generation 2, last reload ok$'
	e2e_write_config "$cfg" --mode "$mode" --workers 1 --append "  - { name: broken"
	mark=$(log_lines)
	kill -HUP "$MAGLEVD_PID"
	reload_check "$mode: refused SIGHUP reload" "$mark" "failed: $cfg:[0-9]+"
	e2e_write_config "$cfg" --mode "$mode" --workers 1
	mark=$(log_lines)
	check "$mode: maglevctl reload" "$MAGLEVCTL" reload -s "$MAGLEVD_SOCKET"
	reload_check "$mode: socket reload" "$mark" ok

	# A stalled worker with nothing waiting for it is idle, not stuck: the pings go on.
	ans=$("$E2E_PYTHON" "$NOTIFY_TOOL" stall "$MAGLEVD_SOCKET" 0 "$IDLE_STALL_S") ||
		bad "$mode: test-stall request ($ans)"
	t_stall=${ans%% *}
	sleep $((IDLE_STALL_S + 1))
	n=$(pings_in "$t_stall" "$(awk -v t="$t_stall" -v s="$IDLE_STALL_S" 'BEGIN { print t + s }')" | grep -c .)
	check "$mode: idle stalled worker: pings go on ($n in ${IDLE_STALL_S} s)" [ "$n" -ge $((IDLE_STALL_S - 1)) ]
	check "$mode: idle stalled worker: not logged as stuck" not grep -q 'made no progress' "$MAGLEVD_LOG"

	# Stalled while traffic waits for it: the pings stop within the interval, resume after.
	bg_in "$NS_CLIENT" "$E2E_DIR/udp.log" "$E2E_PYTHON" "$NOTIFY_TOOL" udp "$VIP_DNS4" 53 \
		$((STALL_S + 4)) "$UDP_PPS"
	udp_pid=$BG_PID
	sleep 1
	ans=$("$E2E_PYTHON" "$NOTIFY_TOOL" stall "$MAGLEVD_SOCKET" 0 "$STALL_S") ||
		bad "$mode: test-stall request ($ans)"
	t_stall=${ans%% *}
	sleep $((STALL_S + 3))
	wait "$udp_pid" 2>/dev/null
	t0=$(awk -v t="$t_stall" -v w="$WD_S" -v s="$SLACK_S" 'BEGIN { print t + w + s }')
	t1=$(awk -v t="$t_stall" -v s="$STALL_S" 'BEGIN { print t + s }')
	e2e_log "$mode: last ping $(pings_in 0 "$t1" | tail -n 1 | awk -v t="$t_stall" '{ printf "%.3f", $1 - t }') s after the stall began, first after it $(pings_in "$t1" 1e12 | head -n 1 | awk -v t="$t1" '{ printf "%.3f", $1 - t }') s after its end"
	n=$(pings_in "$t0" "$t1" | grep -c .)
	check "$mode: stuck worker: no WATCHDOG=1 from ${WD_S} s (+${SLACK_S}) after the stall to its end ($n)" [ "$n" -eq 0 ]
	gap=$(pings_in "$(awk -v t="$t_stall" 'BEGIN { print t - 3 }')" 1e12 |
		awk 'NR > 1 { d = $1 - p; if (d > mx) mx = d } { p = $1 } END { printf "%.3f", mx }')
	check "$mode: stuck worker: the longest gap between pings ($gap s) exceeds WatchdogSec=${WD_S}s" \
		fcmp "$gap > $WD_S"
	n=$(pings_in "$t1" "$(awk -v t="$t1" -v w="$WD_S" -v s="$SLACK_S" 'BEGIN { print t + w + s }')" | grep -c .)
	check "$mode: stuck worker: pings resume within ${WD_S} s of the stall's end ($n)" [ "$n" -ge 1 ]
	check "$mode: stuck worker: logged once as an error naming it" \
		[ "$(grep -c 'watchdog: worker 0 made no progress' "$MAGLEVD_LOG")" = 1 ]
	check "$mode: stuck worker: recovery logged" grep -q 'watchdog: worker 0 makes progress again' "$MAGLEVD_LOG"
	status=$(grep -o 'STATUS=watchdog: 1 worker stuck (worker 0), not pinging; [^|]*' "$NOTIFY_OUT" | head -n 1)
	check "$mode: stuck worker: STATUS= says so ($status)" [ -n "$status" ]
	check "$mode: stuck worker: STATUS= back to the summary after" last_after_matches 0 "^STATUS=$mode"
	check "$mode: traffic flows after the stall" run_in "$NS_CLIENT" curl -sf -m 3 -o /dev/null "http://$VIP_WEB4/"

	# SIGTERM: STOPPING=1, a clean exit, no ping after it.
	mark=$(log_lines)
	check "$mode: maglevd stops cleanly on SIGTERM" stop_maglevd
	check "$mode: STOPPING=1 on SIGTERM" after_has "$mark" ' STOPPING=1\|STATUS=stopping$'
	check "$mode: no WATCHDOG=1 after STOPPING=1" not grep -q WATCHDOG=1 <(sed -n '/STOPPING=1/,$p' "$NOTIFY_OUT")
	notify_unlisten
}

case_afxdp() { run_mode afxdp; }
case_afpacket() { run_mode afpacket; }

e2e_cases afxdp afpacket
e2e_init
NOTIFY_SOCK=$E2E_DIR/notify.sock
NOTIFY_OUT=$E2E_DIR/notify.log
e2e_topology_up || e2e_abort "topology up"
start_backend_servers || e2e_abort "backend servers"
e2e_run_cases
e2e_summary
