#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of `maglevctl top` on the namespace topology of lib.sh, afxdp mode, with a real
# terminal: tmux runs top (new-session, send-keys, capture-pane, resize-window) while a bounded
# UDP load (tests/e2e/udp_load.py: every datagram a new flow) goes through a VIP.
# Shared setup: the topology, the backends' servers, one maglevd with VIPs web (tcp 80), dns
# (udp 53) and dns6 (udp 53, IPv6), three backends each, no health checks.
# The cases (E2E_CASES selects among them; see lib.sh), in the order they run:
#   live     under load, the screen shows the dns VIP and its three backends with packets/s near
#            the load's rate, new flows/s too, web idle; a resize to 40x6 cuts the frame and top
#            keeps running; q ends it (exit 0, the terminal's screen restored)
#   ctrl_c   Ctrl-C ends it too, by the signal, with the screen restored
#   once     --once prints one frame without escape codes (the rates from two samples an interval
#            apart), --once --json the same numbers; usage and connection errors exit 2 and 1;
#            no terminal, no live view
#   drained  a drained backend shows as drained with a 0.0% share and no packets while the other
#            two share the load
#   lost     maglevd stopped under a running top: "connection lost", top keeps retrying; a new
#            maglevd is shown again without rates first; q ends it
# Exit 0 pass, 4 skip, anything else fail.
set -u
export E2E_PREFIX=${E2E_PREFIX:-mgt}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

LOAD_RATE=400   # datagrams a second from the client
LOAD_SLACK=0.5  # top's packets/s within LOAD_SLACK of the load's rate, either way (a loaded machine)
TERM_COLS=150   # the tmux window top draws in
TERM_ROWS=40
SMALL_COLS=40   # the window resized to this
SMALL_ROWS=6
TMUX_SOCK=$E2E_PREFIX-top # tmux -L: a server of this test's own

ctl_quiet() { "$MAGLEVCTL" "$@" -s "$MAGLEVD_SOCKET" >/dev/null; }
tm() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }

# top_start NAME [ARGS...]: maglevctl top -s SOCKET ARGS in a new tmux session NAME, under a
# bash that writes top's exit status (128 + N for signal N) to $E2E_DIR/NAME.rc when it ends (tmux
# alone may be slow to reap a pane's process); TOP_PID is top's PID.
top_start() {
	local name=$1 i
	shift
	rm -f "$E2E_DIR/$name.rc"
	tm new-session -d -s "$name" -x "$TERM_COLS" -y "$TERM_ROWS" \
		"bash -c 'trap : INT; \"\$@\"; echo \$? >$E2E_DIR/$name.rc' top $MAGLEVCTL top -s $MAGLEVD_SOCKET $*"
	TOP_PID=
	for ((i = 0; i < 50; i++)); do
		TOP_PID=$(pgrep -P "$(pane "$name" pane_pid)" -x maglevctl) && break
		sleep 0.1
	done
	[ -n "$TOP_PID" ]
}

screen() { tm capture-pane -p -t "$1"; }
pane() { tm display-message -p -t "$1" "#{$2}"; } # pane NAME FORMAT-VARIABLE
screen_has() { screen "$1" | grep -qF -- "$2"; }

# num TEXT: top's number ("950", "1.23k", "45.6M", "-" = 0) as an integer.
num() {
	awk -v s="$1" 'BEGIN { m = 1; if (s ~ /k$/) m = 1e3; else if (s ~ /M$/) m = 1e6;
		else if (s ~ /G$/) m = 1e9; printf "%d\n", (s + 0) * m }'
}

# rows VIP < FRAME: "vip PKT/S FLOWS/S" for the VIP's row, then "be ADDR STATE SHARE PKT/S FLOWS/S"
# for each of its backends, from a frame as top lays it out.
rows() {
	awk -v vip="$1" '
		$2 ~ /^(\[[0-9a-f:]+\]|[0-9.]+):[0-9]+\/(tcp|udp)$/ {
			cur = $1
			if (cur == vip) print "vip", $5, $7
			next
		}
		/^DROPS/ { cur = "" }
		cur == vip && NF == 9 && $1 ~ /^[0-9a-f:.]+$/ { print "be", $1, $2, $5, $6, $8 }'
}

in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; } # in_range N LO HI

near_rate() { # near_rate VALUE RATE: VALUE within LOAD_SLACK of RATE
	awk -v v="$1" -v r="$2" -v s="$LOAD_SLACK" 'BEGIN { exit !(v >= r * (1 - s) && v <= r * (1 + s)) }'
}

# load_start TAG ADDR SECONDS: the UDP load to ADDR:53 in the background.
load_start() {
	rm -f "$E2E_DIR/$1.load" "$E2E_DIR/$1.stop"
	bg_in "$NS_CLIENT" "$E2E_DIR/$1.load.log" "$E2E_PYTHON" "$E2E_ROOT/tests/e2e/udp_load.py" \
		"$2" 53 "$LOAD_RATE" "$3" "$E2E_DIR/$1.load" --stop "$E2E_DIR/$1.stop"
	echo "$BG_PID" >"$E2E_DIR/$1.load.pid"
}

# load_stop TAG: ends the load; prints the rate it achieved (datagrams a second).
load_stop() {
	touch "$E2E_DIR/$1.stop"
	wait_for 5 test -s "$E2E_DIR/$1.load"
	wait "$(cat "$E2E_DIR/$1.load.pid")" 2>/dev/null
	"$E2E_PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1]))
print(int(r["sent"] / r["seconds"]) if r["seconds"] > 0 else 0)' "$E2E_DIR/$1.load" 2>/dev/null || echo 0
}

# frame_ready NAME VIP: the screen has the VIP with a measured packet rate above 0.
frame_ready() {
	local r
	r=$(screen "$1" | rows "$2" | awk '$1 == "vip" { print $2 }')
	[ -n "$r" ] && [ "$r" != - ] && [ "$(num "$r")" -gt 0 ]
}

# exited NAME: top of session NAME has ended; its exit status in EXIT_STATUS.
exited() {
	[ -s "$E2E_DIR/$1.rc" ] || return 1
	EXIT_STATUS=$(cat "$E2E_DIR/$1.rc")
}

case_live() {
	local f=$E2E_DIR/live.screen small pid rate r vip_pps fps n shares
	load_start live "$VIP_DNS4" 30
	check "live: top starts in a tmux pane" top_start live
	pid=$TOP_PID
	check "live: within 5 s the screen shows dns with packets/s" wait_for 5 frame_ready live dns
	sleep 1.2 # one more frame: a whole interval under load
	screen live >"$f"
	cat "$f"
	check "live: header names maglevd's version and mode" \
		grep -qE "^maglevd [0-9]+\.[0-9]+\.[0-9]+ +up .* mode afxdp.* workers [0-9]+ " "$f"
	check "live: column titles" grep -q "^VIP / BACKEND .*PKT/S .*BIT/S .*FLOWS/S" "$f"
	r=$(rows dns <"$f")
	vip_pps=$(num "$(awk '$1 == "vip" { print $2 }' <<<"$r")")
	fps=$(num "$(awk '$1 == "vip" { print $3 }' <<<"$r")")
	n=$(awk '$1 == "be" && $5 != "-" && $5 != "0" { n++ } END { print n + 0 }' <<<"$r")
	check "live: the dns VIP's three backends all have packets/s ($n)" [ "$n" -eq 3 ]
	shares=$(awk '$1 == "be" { sub(/%$/, "", $4); s += $4 } END { printf "%.0f", s }' <<<"$r")
	check "live: their shares add up to 100% ($shares)" in_range "$shares" 99 101
	check "live: web is idle (0 packets/s)" \
		[ "$(rows web <"$f" | awk '$1 == "vip" { print $2 }')" = 0 ]
	small=$E2E_DIR/live.small
	tm resize-window -t live -x "$SMALL_COLS" -y "$SMALL_ROWS"
	sleep 1.5
	screen live >"$small"
	cat "$small"
	check "live: at ${SMALL_COLS}x$SMALL_ROWS the frame is cut to the width" \
		awk -v w="$SMALL_COLS" 'length($0) > w { exit 1 }' "$small"
	check "live: ... the last row says how much is hidden" grep -q "^q quit .*more lines" "$small"
	check "live: ... and top still runs" pid_alive "$pid"
	tm resize-window -t live -x "$TERM_COLS" -y "$TERM_ROWS"
	check "live: back to ${TERM_COLS}x$TERM_ROWS, the whole frame again" \
		wait_for 3 screen_has live "VIP / BACKEND"
	tm send-keys -t live q
	check "live: q ends top" wait_for 5 exited live
	check "live: ... with status 0 (${EXIT_STATUS:-})" [ "${EXIT_STATUS:-}" = 0 ]
	check "live: ... its process is gone" bash -c "! kill -0 $pid 2>/dev/null"
	check "live: ... and the screen is restored (the frame is gone)" \
		bash -c "! tmux -L '$TMUX_SOCK' capture-pane -p -t live | grep -q 'VIP / BACKEND'"
	rate=$(load_stop live)
	e2e_log "live: load $rate datagrams/s, top showed $vip_pps packets/s, $fps new flows/s"
	check "live: the load ran at about $LOAD_RATE/s ($rate)" near_rate "$rate" "$LOAD_RATE"
	check "live: dns packets/s ($vip_pps) match the load ($rate/s)" near_rate "$vip_pps" "$rate"
	check "live: dns new flows/s ($fps) match it too (a flow a datagram)" near_rate "$fps" "$rate"
	tm kill-session -t live 2>/dev/null
}

case_ctrl_c() {
	local pid
	check "ctrl_c: top starts in a tmux pane" top_start cc
	pid=$TOP_PID
	check "ctrl_c: top draws its frame" wait_for 5 screen_has cc "VIP / BACKEND"
	tm send-keys -t cc C-c
	check "ctrl_c: Ctrl-C ends top" wait_for 5 exited cc
	check "ctrl_c: ... by SIGINT (status ${EXIT_STATUS:-}: 128 + 2)" [ "${EXIT_STATUS:-}" = 130 ]
	check "ctrl_c: ... its process is gone" bash -c "! kill -0 $pid 2>/dev/null"
	check "ctrl_c: ... and the screen is restored" \
		bash -c "! tmux -L '$TMUX_SOCK' capture-pane -p -t cc | grep -q 'VIP / BACKEND'"
	tm kill-session -t cc 2>/dev/null
}

case_once() {
	local out=$E2E_DIR/once.txt js=$E2E_DIR/once.json t0 took rc rate r vip_pps
	load_start once "$VIP_DNS4" 30
	sleep 1
	t0=$(now_ms)
	"$MAGLEVCTL" top --once -i 1 -s "$MAGLEVD_SOCKET" >"$out" 2>"$E2E_DIR/once.err"
	rc=$?
	took=$(($(now_ms) - t0))
	cat "$out"
	check "once: exit 0 ($rc)" [ "$rc" -eq 0 ]
	check "once: two samples an interval apart (${took} ms)" in_range "$took" 1000 5000
	check "once: no escape codes or other control bytes" bash -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$out'"
	check "once: header with the measured interval" grep -qE "interval (0\.9|1\.[0-9])[0-9]s" "$out"
	r=$(rows dns <"$out")
	vip_pps=$(num "$(awk '$1 == "vip" { print $2 }' <<<"$r")")
	check "once: dns and three backends" [ "$(grep -c '^be' <<<"$r")" -eq 3 ]
	"$MAGLEVCTL" top --once --json -i 1 -s "$MAGLEVD_SOCKET" >"$js"
	check "once --json: exit 0" [ $? -eq 0 ]
	check "once --json: the rates, shares and states" "$E2E_PYTHON" - "$js" "$LOAD_RATE" "$LOAD_SLACK" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
rate, slack = float(sys.argv[2]), float(sys.argv[3])
vips = {x["name"]: x for x in v["vips"]}
dns, web = vips["dns"], vips["web"]
assert 0.9 <= v["interval_s"] <= 2.0, v["interval_s"]
assert v["mode"].startswith("afxdp") and v["version"], v
assert rate * (1 - slack) <= dns["packets_per_s"] <= rate * (1 + slack), dns
assert dns["bits_per_s"] > dns["packets_per_s"] * 8 * 28, dns  # at least IP + UDP headers
assert web["packets_per_s"] == 0, web
assert len(dns["backends"]) == 3 and dns["backends_up"] == 3, dns
assert abs(sum(b["share_pct"] for b in dns["backends"]) - 100) < 0.5, dns
assert all(b["packets_per_s"] > 0 and b["state"] == "active" for b in dns["backends"]), dns
assert all(b["health"] == "unchecked" for b in dns["backends"]), dns
EOF
	"$MAGLEVCTL" top dns --once -i 0.5 -s "$MAGLEVD_SOCKET" >"$out"
	check "once: top dns shows only dns" bash -c "grep -q '^dns ' '$out' && ! grep -q '^web ' '$out'"
	"$MAGLEVCTL" top nope --once -i 0.2 -s "$MAGLEVD_SOCKET" >"$out" 2>"$E2E_DIR/once.err"
	rc=$?
	check "once: an unknown VIP exits 1 ($rc) naming it" \
		bash -c "[ $rc -eq 1 ] && grep -q \"no VIP 'nope'\" '$E2E_DIR/once.err' && [ ! -s '$out' ]"
	"$MAGLEVCTL" top --once -i 0 -s "$MAGLEVD_SOCKET" 2>/dev/null
	check "once: a bad interval exits 2" [ $? -eq 2 ]
	"$MAGLEVCTL" top --once -s "$E2E_DIR/none.sock" 2>"$E2E_DIR/once.err"
	rc=$?
	check "once: no daemon exits 1 ($rc) and says so" \
		bash -c "[ $rc -eq 1 ] && grep -q 'is maglevd running' '$E2E_DIR/once.err'"
	"$MAGLEVCTL" top -s "$MAGLEVD_SOCKET" </dev/null >"$out" 2>"$E2E_DIR/once.err"
	rc=$?
	check "once: without a terminal the live view exits 1 ($rc), pointing at --once" \
		bash -c "[ $rc -eq 1 ] && grep -q -- '--once' '$E2E_DIR/once.err'"
	rate=$(load_stop once)
	check "once: dns packets/s ($vip_pps) match the load ($rate/s)" near_rate "$vip_pps" "$rate"
}

case_drained() {
	local out=$E2E_DIR/drained.txt js=$E2E_DIR/drained.json r be=${BACKENDS6[1]}
	# dns6 has seen no flows before: every flow of this load is chosen after the drain.
	check "drained: drain dns6 $be" ctl_quiet drain dns6 "$be"
	load_start drained "$VIP_DNS6" 30
	sleep 1
	"$MAGLEVCTL" top dns6 --once -i 1 -s "$MAGLEVD_SOCKET" >"$out"
	cat "$out"
	r=$(rows dns6 <"$out")
	check "drained: $be shows drained, 0.0% share, 0 packets/s" \
		grep -qE "^be $be drained 0\.0% 0 " <<<"$r"
	check "drained: its weight shows as 0/1 (runtime/config)" \
		grep -qE "^  $be +drained +unchecked +0/1 " "$out"
	check "drained: the two others share the load" \
		[ "$(awk '$1 == "be" && $3 == "active" && $5 != "0" && $5 != "-" { n++ } END { print n + 0 }' <<<"$r")" -eq 2 ]
	"$MAGLEVCTL" top dns6 --once --json -i 1 -s "$MAGLEVD_SOCKET" >"$js"
	check "drained: --json has state drained, share 0, weight 0 of 1" "$E2E_PYTHON" - "$js" "$be" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
(dns6,) = v["vips"]
b = {x["address"]: x for x in dns6["backends"]}
d = b.pop(sys.argv[2])
assert d["state"] == "drained" and d["share_pct"] == 0 and d["packets_per_s"] == 0, d
assert d["weight"] == 0 and d["config_weight"] == 1, d
assert all(x["share_pct"] > 20 for x in b.values()), b
assert abs(sum(x["share_pct"] for x in b.values()) - 100) < 0.5, b
EOF
	load_stop drained >/dev/null
	check "drained: undrain" ctl_quiet undrain dns6 "$be"
}

case_lost() {
	local pid
	check "lost: top starts in a tmux pane" top_start lost
	pid=$TOP_PID
	check "lost: top draws its frame" wait_for 5 screen_has lost "dns 203.0.113.11:53/udp"
	stop_maglevd
	check "lost: maglevd stopped: the screen says connection lost" \
		wait_for 5 screen_has lost "connection lost"
	screen lost
	check "lost: ... and top keeps running" pid_alive "$pid"
	start_maglevd afxdp "$CFG" || e2e_abort "lost: maglevd restarts"
	check "lost: maglevd back: the note is gone, the VIPs are shown again" \
		wait_for 10 bash -c "s=\$(tmux -L '$TMUX_SOCK' capture-pane -p -t lost); \
			grep -qF 'dns 203.0.113.11:53/udp' <<<\"\$s\" && ! grep -q 'connection lost' <<<\"\$s\""
	tm send-keys -t lost q
	check "lost: q ends top" wait_for 5 exited lost
	check "lost: ... with status 0 (${EXIT_STATUS:-})" [ "${EXIT_STATUS:-}" = 0 ]
	tm kill-session -t lost 2>/dev/null
}

e2e_cases live ctrl_c once drained lost
e2e_init
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_skip "build maglevd and maglevctl first (make)"
command -v tmux >/dev/null || e2e_skip "no tmux (scripts/install-deps.sh)"
trap 'tm kill-server 2>/dev/null; e2e_cleanup' EXIT
e2e_topology_up || e2e_abort "topology"
start_backend_servers || e2e_abort "backend servers"
CFG=$E2E_DIR/maglevd.top.yaml
e2e_write_config "$CFG" --vip web "$VIP_WEB4" tcp 80 all --vip dns "$VIP_DNS4" udp 53 all \
	--vip dns6 "$VIP_DNS6" udp 53 all
start_maglevd afxdp "$CFG" || e2e_abort "maglevd starts"
wait_for 10 test -S "$MAGLEVD_SOCKET" || e2e_abort "control socket appears"
# A session that stays, so that the server (and remain-on-exit: a pane whose top ended keeps its
# screen for capture-pane) is there before any top starts.
tm new-session -d -s keep -x 20 -y 5 "sleep 600" || e2e_abort "tmux starts"
tm set-option -g remain-on-exit on
e2e_run_cases
stop_maglevd
check "maglevd exits cleanly" [ $? -eq 0 ]
e2e_summary
