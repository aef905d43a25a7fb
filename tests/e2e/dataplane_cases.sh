# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# tests/e2e/dataplane_cases.sh: issue 4's data-plane end-to-end cases, run for one mode by
# test_afxdp.sh, test_xdp.sh and test_afpacket.sh (DP_MODE=afxdp|xdp|afpacket). Sources lib.sh
# for the topology.
# The cases (E2E_CASES selects among them; see lib.sh), in the order they run:
#
#   http               300 HTTP requests to the VIP, each a new connection: all succeed, every
#                      backend >= 20%; 30 over IPv6
#   iperf              iperf3 TCP through a VIP for 3 s
#   dsr                direct server return: the router's link to maglevd carries client->VIP,
#                      never VIP->client
#   host               the maglevd host's own traffic (ping, TCP) works while maglevd runs
#   udp_icmp           UDP echo through the UDP VIPs and ping to the VIPs (IPv4 and IPv6)
#   pmtu               a 10 MB upload completes with MTU 1500 everywhere (frag-needed, IPv6
#                      packet too big)
#   nexthop_flush      next hops follow the kernel: after the lb's neighbour table is flushed,
#                      traffic resumes
#   reload             SIGHUP reload: a VIP added is steered (its ping answered), a VIP removed no
#                      longer is, a bad config is refused and traffic keeps flowing
#   retarget           UDP to a VIP wrapped in GRE to maglevd's own address reaches a backend,
#                      whose echo comes straight back to the client
#   refused_frames     SYNs to the VIP sent to the broadcast, a multicast or another host's MAC,
#                      or from sources no client can have: no GRE out, each counted; the same SYNs
#                      from the client to our MAC go out
#   hash_source        hash: source VIPs (sticky, sticky6: TCP 80 on the dns VIPs' addresses):
#                      40 connections of one client (distinct source ports) all meet one backend,
#                      over IPv4 and IPv6; 12 more client addresses each meet one backend and
#                      together more than one; the 5-tuple VIP web spreads the client's 40;
#                      explain shows the mode and the key without ports
#   syn_burst          20 kpps of new flows (SYNs with distinct source ports, for 3 s) in
#                      trafgen's rate mode, which sends each second's 20000 in one burst: < 1%
#                      lost, counted at the backends and by maglevd
#   stop               after SIGTERM: exit 0, no XDP program left on the interface, no AF_XDP
#                      frame leaked
#   bad_start          start-up failures (no such interface, bad config, another program's
#                      XDP): exit 1, one message
#   restart_after_kill (afxdp, xdp) after a SIGKILL the next maglevd removes the XDP program left attached
#                      (logged) and serves; a second maglevd while one runs is refused
#   nexthop_mac        dataplane.nexthop_mac: with the router's MAC configured (no netlink),
#                      requests are answered
#   workers            two workers on a two-queue interface: both get frames, 300 requests all
#                      answered (replaces the lb's link with a two-queue one)
#
# The shared setup is the topology and the backends' servers; maglevd runs with the config
# dp_write_config writes. The cases up to stop need that maglevd running and start it if it is not
# (dp_running); stop stops it, checking how; the ones after it need it stopped (dp_stopped) and
# start their own.

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DP_MODE=${DP_MODE:?DP_MODE=afxdp, xdp or afpacket}
# dp_xdp: an XDP program of ours is on the lb's interface (afxdp: xdp_vip; xdp: xdp_fwd).
dp_xdp() { [ "$DP_MODE" != afpacket ]; }
[ "$DP_MODE" = xdp ] && DP_PROG=xdp_fwd || DP_PROG=xdp_vip


DP_REQUESTS=300
DP_SHARE_MIN=60 # requests per backend: 20% of DP_REQUESTS
DP_UPLOAD_BYTES=10000000
VIP_BULK_PORT=5201 # iperf3 through VIP_WEB4:5201, one backend (iperf3's two connections meet)
VIP_BURST_PORT=8080 # SYN bursts to VIP_WEB4:8080: no backend listens, each answers with a RST
DP_BURST_PPS=20000  # SYNs a second
DP_BURST_SECONDS=3

# dp_write_config FILE [OPTION...]: the config of these cases (e2e_write_config's default VIPs,
# bulk and burst), in DP_MODE; OPTIONs are e2e_write_config's.
dp_write_config() {
	local f=$1
	shift
	e2e_write_config "$f" --mode "$DP_MODE" --default-vips \
		--vip bulk "$VIP_WEB4" tcp "$VIP_BULK_PORT" 0 \
		--vip burst "$VIP_WEB4" tcp "$VIP_BURST_PORT" all \
		--vip sticky "$VIP_DNS4" tcp 80 all --hash source \
		--vip sticky6 "$VIP_DNS6" tcp 80 all --hash source "$@"
}

# dp_start_maglevd CONFIG [TAG]: maglevd in the lb namespace, log maglevd.MODE[.TAG].log;
# ready when it logs "running".
dp_start_maglevd() {
	local i
	MAGLEVD_CONFIG=$1
	MAGLEVD_LOG=$E2E_DIR/maglevd.$DP_MODE${2:+.$2}.log
	bg_in "$NS_LB" "$MAGLEVD_LOG" "$MAGLEVD" -c "$MAGLEVD_CONFIG"
	MAGLEVD_PID=$BG_PID
	for ((i = 0; i < 100; i++)); do
		grep -q '^maglevd: running' "$MAGLEVD_LOG" 2>/dev/null && return 0
		if ! pid_alive "$MAGLEVD_PID"; then
			e2e_log "maglevd ($DP_MODE) exited at start:"
			cat "$MAGLEVD_LOG" >&2
			MAGLEVD_PID=
			return 1
		fi
		sleep 0.1
	done
	e2e_log "maglevd ($DP_MODE) not running after 10 s:"
	cat "$MAGLEVD_LOG" >&2
	return 1
}

DP_CONFIG= # the config of the cases that need maglevd running, written once by dp_main
DP_START_FAILED=0

# dp_running CASE: maglevd runs with DP_CONFIG (started now if it was not). A failed check for
# CASE if the maglevd an earlier case left running has exited (then a new one is started), or if
# it cannot start (and no second attempt for the cases after it).
dp_running() {
	local rc=0
	if [ -n "$MAGLEVD_PID" ]; then
		pid_alive "$MAGLEVD_PID" && return 0
		wait "$MAGLEVD_PID" 2>/dev/null || rc=$?
		bad "$1: the maglevd left running had exited (rc $rc) before this case"
		cat "$MAGLEVD_LOG"
		MAGLEVD_PID=
	fi
	if [ "$DP_START_FAILED" -eq 0 ] && dp_start_maglevd "$DP_CONFIG"; then
		return 0
	fi
	DP_START_FAILED=1
	bad "$1: maglevd ($DP_MODE) did not start"
	return 1
}

# dp_stopped: no maglevd runs (one left by an earlier case is stopped; stop checks how).
dp_stopped() {
	[ -n "$MAGLEVD_PID" ] || return 0
	stop_maglevd || e2e_log "maglevd exited $? when stopped for the next case"
	return 0
}

case_http() {
	local out n i c
	dp_running "http" || return
	out=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-$DP_REQUESTS]")
	n=$(grep -c '^be[0-9]$' <<<"$out")
	[ "$n" -eq "$DP_REQUESTS" ] || { bad "http: $n of $DP_REQUESTS requests answered"; return; }
	for i in "${BACKEND_NAMES[@]}"; do
		c=$(grep -c "^$i\$" <<<"$out")
		[ "$c" -ge "$DP_SHARE_MIN" ] || { bad "http: $i served $c of $DP_REQUESTS (< 20%)"; return; }
	done
	ok "http: $DP_REQUESTS/$DP_REQUESTS new connections answered; $(for i in "${BACKEND_NAMES[@]}"; do printf '%s=%s ' "$i" "$(grep -c "^$i\$" <<<"$out")"; done)"
	out=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://[$VIP_WEB6]/?[1-30]")
	n=$(grep -c '^be[0-9]$' <<<"$out")
	[ "$n" -eq 30 ] && ok "http over IPv6: 30/30" || bad "http over IPv6: $n of 30 answered"
}

case_iperf() {
	local out
	dp_running "iperf3" || return
	out=$(run_in "$NS_CLIENT" timeout 20 iperf3 -c "$VIP_WEB4" -p "$VIP_BULK_PORT" -t 3 -f m 2>&1)
	if grep -q 'receiver' <<<"$out"; then
		ok "iperf3: $(grep receiver <<<"$out" | awk '{ print $7, $8 }')"
	else
		bad "iperf3 failed: $(tail -3 <<<"$out" | tr '\n' ' ')"
	fi
}

case_dsr() {
	local cap=$E2E_DIR/dsr.pcap fwd back icmp pid
	dp_running "dsr" || return
	# Background jobs of a script ignore SIGINT: tcpdump is stopped with SIGTERM, and writes
	# each packet at once (--immediate-mode -U) so none is left in its buffer.
	bg_in "$NS_ROUTER" "$E2E_DIR/tcpdump.log" tcpdump -ni "$ROUTER_LB_IF" -w "$cap" -U \
		--immediate-mode \
		"(tcp port 80 and host $VIP_WEB4) or (icmp and src host $LB4)"
	pid=$BG_PID
	wait_for 5 grep -q listening "$E2E_DIR/tcpdump.log"
	run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-20]" >/dev/null
	sleep 1
	kill_pid "$pid" 3
	fwd=$(tcpdump -nr "$cap" "tcp and dst host $VIP_WEB4" 2>/dev/null | wc -l)
	back=$(tcpdump -nr "$cap" "tcp and src host $VIP_WEB4" 2>/dev/null | wc -l)
	# The lb kernel must not answer VIP packets itself (AF_PACKET: it gets a copy of each).
	icmp=$(tcpdump -nr "$cap" "icmp and src host $LB4" 2>/dev/null | wc -l)
	if [ "$fwd" -gt 0 ] && [ "$back" -eq 0 ] && [ "$icmp" -eq 0 ]; then
		ok "dsr: $fwd client->VIP packets toward maglevd, 0 VIP->client, 0 ICMP from the lb host"
	else
		bad "dsr: $fwd client->VIP, $back VIP->client, $icmp ICMP from the lb host on the link to maglevd"
	fi
}

case_host() {
	local out
	dp_running "host" || return
	run_in "$NS_CLIENT" ping -c 2 -i 0.2 -W 1 "$LB4" >/dev/null || { bad "host: ping $LB4"; return; }
	bg_in "$NS_LB" "$E2E_DIR/lbhttp.log" "$E2E_PYTHON" -m http.server 8080 --bind "$LB4" \
		--directory "$E2E_DIR"
	wait_for 5 run_in "$NS_LB" curl -sf -m1 -o /dev/null "http://$LB4:8080/"
	out=$(run_in "$NS_CLIENT" curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$LB4:8080/")
	[ "$out" = 200 ] && ok "host: ping and TCP to $LB4 work" ||
		bad "host: TCP to $LB4:8080 gave '$out'"
}

case_udp_icmp() {
	local out v
	dp_running "udp_icmp: udp" || return
	for v in "UDP4:$VIP_DNS4" "UDP6:[$VIP_DNS6]"; do
		out=$(echo "echo-$v" | run_in "$NS_CLIENT" socat -t 2 - "$v:53" 2>&1)
		[ "$out" = "echo-$v" ] || { bad "udp_icmp: udp echo via $v: got '$out'"; return; }
	done
	for v in "$VIP_WEB4" "$VIP_WEB6"; do
		run_in "$NS_CLIENT" ping -c 3 -i 0.2 -W 1 "$v" >/dev/null ||
			{ bad "udp_icmp: ping $v not answered"; return; }
	done
	ok "udp_icmp: udp echo and ping via IPv4 and IPv6 VIPs"
}

case_pmtu() {
	local out file=$E2E_DIR/upload.bin
	dp_running "pmtu" || return
	# A file, not stdin: curl then sends Content-Length instead of chunked encoding.
	head -c "$DP_UPLOAD_BYTES" /dev/zero >"$file"
	out=$(run_in "$NS_CLIENT" curl -s -m 60 -H 'Expect:' -T "$file" "http://$VIP_WEB4/upload")
	if grep -qE "^be[0-9] $DP_UPLOAD_BYTES\$" <<<"$out"; then
		ok "pmtu: 10 MB upload through MTU 1500 completed ($out); client route: $(run_in "$NS_CLIENT" ip route get "$VIP_WEB4" | grep -o 'mtu [0-9]*' | head -1)"
	else
		bad "pmtu: upload answered '$out'"
	fi
	out=$(run_in "$NS_CLIENT" curl -s -m 60 -H 'Expect:' -T "$file" "http://[$VIP_WEB6]/upload")
	if grep -qE "^be[0-9] $DP_UPLOAD_BYTES\$" <<<"$out"; then
		ok "pmtu over IPv6: 10 MB upload completed ($out); client route: $(run_in "$NS_CLIENT" ip -6 route get "$VIP_WEB6" | grep -o 'mtu [0-9]*' | head -1)"
	else
		bad "pmtu over IPv6: upload answered '$out'"
	fi
}

case_stop() {
	local rc=0
	dp_running "stop" || return
	stop_maglevd || rc=$?
	[ "$rc" -eq 0 ] || bad "stop: maglevd exited $rc"
	if lb_xdp_attached; then
		bad "stop: an XDP program is still attached to $LB_IF"
	elif grep -q 'LEAK' "$MAGLEVD_LOG"; then
		bad "stop: AF_XDP frames leaked: $(grep LEAK "$MAGLEVD_LOG")"
	else
		ok "stop: exit $rc, nothing attached to $LB_IF$(grep -o 'frames accounted [0-9/]*' "$MAGLEVD_LOG" | head -1 | sed 's/^/, /')$(grep -o 'drop_nexthop_unresolved *[0-9]*' "$MAGLEVD_LOG" | tr -s ' ' | sed 's/^/, /')"
	fi
	echo "# maglevd log ($DP_MODE)"
	cat "$MAGLEVD_LOG"
}

case_bad_start() {
	local cfg=$E2E_DIR/bad.yaml out rc=0
	dp_stopped
	dp_write_config "$cfg" --interface nosuchif0
	out=$(run_in "$NS_LB" "$MAGLEVD" -c "$cfg" 2>&1) || rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q nosuchif0 <<<"$out"; then
		ok "bad_start: bad interface: exit 1, '$out'"
	else
		bad "bad_start: bad interface: exit $rc, output '$out'"
	fi
	lb_xdp_attached && bad "bad_start: bad interface: XDP left attached"
	rc=0
	dp_write_config "$cfg" --mode nosuchmode
	out=$(run_in "$NS_LB" "$MAGLEVD" -c "$cfg" 2>&1) || rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q 'bad.yaml:[0-9]' <<<"$out"; then
		ok "bad_start: bad config: exit 1, '$out'"
	else
		bad "bad_start: bad config: exit $rc, output '$out'"
	fi
	dp_xdp || return 0
	# XDP refused: another project's program (the backends' GRE decap) holds the interface.
	rc=0
	run_in "$NS_LB" "$MAGLEVCTL" decap attach "$LB_IF" --vip "$VIP_WEB4" >"$E2E_DIR/lbdecap.log" 2>&1 ||
		{ bad "bad_start: xdp refused: cannot attach the decap program: $(cat "$E2E_DIR/lbdecap.log")"; return; }
	out=$(run_in "$NS_LB" "$MAGLEVD" -c "$DP_CONFIG" 2>&1) || rc=$?
	lb_xdp_attached || bad "bad_start: xdp refused: maglevd removed the decap program"
	run_in "$NS_LB" "$MAGLEVCTL" decap detach "$LB_IF" >>"$E2E_DIR/lbdecap.log" 2>&1
	if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q 'another XDP program' <<<"$out"; then
		ok "bad_start: xdp refused: exit 1, '$out'"
	else
		bad "bad_start: xdp refused: exit $rc, output '$out'"
	fi
	lb_xdp_attached && bad "bad_start: xdp refused: XDP left attached after decap detach"
}

# lb_xdp_id: the id of the XDP program attached to the lb's interface (empty if none).
lb_xdp_id() {
	run_in "$NS_LB" ip link show "$LB_IF" | grep -oE 'prog/xdp[a-z]* id [0-9]+' | awk '{ print $3 }'
}

dp_http_answered() {
	run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-$1]" | grep -c '^be[0-9]$'
}

# restart_after_kill (afxdp, xdp): a maglevd killed with SIGKILL leaves its program attached; a second maglevd started
# while the first runs is refused, one started after the kill removes the stale program and serves.
case_restart_after_kill() {
	local cfg=$DP_CONFIG out rc=0 id n pid
	dp_stopped
	dp_start_maglevd "$cfg" killed || { bad "restart_after_kill: kill: maglevd did not start"; return; }
	out=$(run_in "$NS_LB" "$MAGLEVD" -c "$cfg" 2>&1) || rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "held by process $MAGLEVD_PID" <<<"$out"; then
		ok "restart_after_kill: second maglevd while one runs: exit 1, '$out'"
	else
		bad "restart_after_kill: second maglevd while one runs: exit $rc, output '$out'"
	fi
	n=$(dp_http_answered 10)
	[ "$n" -eq 10 ] || bad "restart_after_kill: the first maglevd serves $n of 10 after the refused second"
	id=$(lb_xdp_id)
	pid=$MAGLEVD_PID
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	MAGLEVD_PID=
	[ -n "$id" ] || { bad "restart_after_kill: kill: no XDP program left attached after SIGKILL"; return; }
	dp_start_maglevd "$cfg" restarted || { bad "restart_after_kill: restart after SIGKILL: maglevd did not start"; return; }
	grep -qx "maglevd: removing $DP_PROG left attached to $LB_IF by a previous maglevd (prog id $id)" "$MAGLEVD_LOG" ||
		bad "restart_after_kill: restart after SIGKILL: no removal line for prog id $id in the log"
	n=$(dp_http_answered 20)
	rc=0
	stop_maglevd || rc=$?
	if [ "$n" -eq 20 ] && [ "$rc" -eq 0 ] && ! lb_xdp_attached && ! grep -q LEAK "$MAGLEVD_LOG"; then
		ok "restart_after_kill: restart after SIGKILL: prog id $id removed ('$(grep '^maglevd: removing' "$MAGLEVD_LOG")'), 20/20 answered, clean stop, nothing attached"
	else
		bad "restart_after_kill: restart after SIGKILL: $n of 20 answered, exit $rc, attached: $(lb_xdp_id)"
		cat "$MAGLEVD_LOG"
	fi
}

# auto (xdp runs only): dataplane.mode auto on veth, which has no zero-copy AF_XDP, picks xdp;
# the probe leaves nothing attached, and traffic flows.
case_auto() {
	local cfg=$E2E_DIR/auto.yaml n rc=0 line
	dp_stopped
	e2e_write_config "$cfg" --mode auto --default-vips
	dp_start_maglevd "$cfg" auto || { bad "auto: maglevd did not start"; return; }
	line=$(grep '^maglevd: dataplane.mode auto' "$MAGLEVD_LOG")
	n=$(dp_http_answered 20)
	grep -q "^maglevd: running on $LB_IF, xdp (" "$MAGLEVD_LOG" ||
		bad "auto: not running in xdp mode: $(grep '^maglevd: running' "$MAGLEVD_LOG")"
	stop_maglevd || rc=$?
	if [ "$line" = "maglevd: dataplane.mode auto: $LB_IF has no zero-copy AF_XDP: xdp" ] &&
		[ "$n" -eq 20 ] && [ "$rc" -eq 0 ] && ! lb_xdp_attached; then
		ok "auto: '$line', 20/20 answered, clean stop"
	else
		bad "auto: '$line', $n of 20 answered, exit $rc, attached: $(lb_xdp_id)"
	fi
}

case_nexthop_flush() {
	local i ok=0 out
	dp_running "nexthop_flush" || return
	run_in "$NS_LB" ip neigh flush dev "$LB_IF"
	run_in "$NS_LB" ip -6 neigh flush dev "$LB_IF"
	# Unresolved next hops are asked for again every NH_RETRY_MS (1 s): allow a few seconds.
	for ((i = 0; i < 50; i++)); do
		out=$(run_in "$NS_CLIENT" curl -s --connect-timeout 1 -m 2 -H 'Connection: close' \
			"http://$VIP_WEB4/?[1-10]" | grep -c '^be[0-9]$')
		if [ "$out" -eq 10 ]; then
			ok=1
			break
		fi
		sleep 0.2
	done
	[ "$ok" -eq 1 ] && ok "nexthop_flush: traffic resumed after a neighbour flush (attempt $((i + 1)))" ||
		bad "nexthop_flush: traffic did not resume after a neighbour flush"
}

# dp_lb_link_multiqueue: replaces the lb's link to the router with a veth pair of 2 queues.
dp_lb_link_multiqueue() {
	run_in "$NS_LB" ip link del "$LB_IF"
	ip link add "$LB_IF" netns "$NS_LB" numtxqueues 2 numrxqueues 2 type veth \
		peer name "$ROUTER_LB_IF" netns "$NS_ROUTER" numtxqueues 2 numrxqueues 2 || return 1
	run_in "$NS_LB" ethtool -K "$LB_IF" tx off >/dev/null 2>&1
	run_in "$NS_ROUTER" ethtool -K "$ROUTER_LB_IF" tx off >/dev/null 2>&1
	run_in "$NS_LB" ip link set "$LB_IF" up
	run_in "$NS_ROUTER" ip link set "$ROUTER_LB_IF" up
	e2e_addr "$NS_LB" "$LB_IF" "$LB4/24" "$LB6/64"
	e2e_addr "$NS_ROUTER" "$ROUTER_LB_IF" "$ROUTER_LB4/24" "$ROUTER_LB6/64"
	run_in "$NS_LB" ip route add default via "$ROUTER_LB4"
	run_in "$NS_LB" ip -6 route add default via "$ROUTER_LB6"
	local r
	for r in "${VIP_ROUTES4[@]}"; do
		run_in "$NS_ROUTER" ip route replace "$r" via "$LB4"
	done
	for r in "${VIP_ROUTES6[@]}"; do
		run_in "$NS_ROUTER" ip -6 route replace "$r" via "$LB6"
	done
	e2e_sysctl "$NS_ROUTER" "net.ipv4.conf.$ROUTER_LB_IF.rp_filter=0"
	router_takes_xdp_tx "$DP_MODE" || return 1
	wait_for 5 run_in "$NS_LB" ping -c1 -W1 "$ROUTER_LB4"
}

case_workers() {
	local cfg=$E2E_DIR/maglevd.workers.yaml out n w busy=0
	dp_stopped
	dp_lb_link_multiqueue || { bad "workers: cannot make a 2-queue link"; return; }
	dp_write_config "$cfg" --workers 2
	dp_start_maglevd "$cfg" workers || { bad "workers: maglevd did not start"; return; }
	out=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-$DP_REQUESTS]")
	n=$(grep -c '^be[0-9]$' <<<"$out")
	stop_maglevd || bad "workers: maglevd exit status $?"
	for w in 0 1; do
		grep -qE "^maglevd: worker $w: [1-9][0-9]* frames received" "$MAGLEVD_LOG" &&
			busy=$((busy + 1))
	done
	# xdp mode: the kernel forwards the requests; its workers see only the slow path.
	[ "$DP_MODE" = xdp ] && grep -qE "^maglevd: kernel fast path: [1-9][0-9]* frames" "$MAGLEVD_LOG" &&
		busy=2
	if [ "$n" -eq "$DP_REQUESTS" ] && [ "$busy" -eq 2 ] && ! grep -q LEAK "$MAGLEVD_LOG"; then
		ok "workers: $n/$DP_REQUESTS answered; $(grep -E '^maglevd: worker [01]:' "$MAGLEVD_LOG" | sed 's/^maglevd: //' | tr '\n' ' ')"
	else
		bad "workers: $n/$DP_REQUESTS answered, $busy of 2 workers got frames"
		cat "$MAGLEVD_LOG"
	fi
	lb_xdp_attached && bad "workers: XDP left attached"
}

VIP_NEW4=203.0.113.20 # added and removed by reloads (answered by maglevd's own ICMP echo)

dp_reloads_more_than() {
	[ "$(grep -c '^maglevd: reload' "$MAGLEVD_LOG")" -gt "$1" ]
}

# dp_reload CONFIG: copies CONFIG over the running one, SIGHUP, waits for the log line.
dp_reload() {
	local n
	n=$(grep -c '^maglevd: reload' "$MAGLEVD_LOG")
	cp "$1" "$MAGLEVD_CONFIG"
	kill -HUP "$MAGLEVD_PID"
	wait_for 5 dp_reloads_more_than "$n"
}

dp_vip_pings() {
	run_in "$NS_CLIENT" ping -c 1 -W 1 "$1" >/dev/null 2>&1
}

case_reload() {
	local base=$E2E_DIR/reload.base.yaml more=$E2E_DIR/reload.more.yaml bad=$E2E_DIR/reload.bad.yaml n
	dp_running "reload" || return
	cp "$DP_CONFIG" "$base"
	dp_write_config "$more" --vip new "$VIP_NEW4" tcp 80 all
	dp_write_config "$bad" --append "  - name: broken"
	dp_vip_pings "$VIP_NEW4" && { bad "reload: $VIP_NEW4 answers before it is a VIP"; return; }
	dp_reload "$more" || { bad "reload: no reload logged"; return; }
	grep -q '^maglevd: reload: .*generation' "$MAGLEVD_LOG" ||
		{ bad "reload: $(tail -1 "$MAGLEVD_LOG")"; return; }
	wait_for 3 dp_vip_pings "$VIP_NEW4" || { bad "reload: added VIP $VIP_NEW4 not answered"; return; }
	dp_reload "$bad" || { bad "reload: no log line for the bad config"; return; }
	grep -q '^maglevd: reload failed' "$MAGLEVD_LOG" || { bad "reload: bad config accepted"; return; }
	n=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-20]" | grep -c '^be[0-9]$')
	[ "$n" -eq 20 ] || { bad "reload: after a refused reload $n of 20 requests answered"; return; }
	dp_vip_pings "$VIP_NEW4" || { bad "reload: refused reload dropped $VIP_NEW4"; return; }
	dp_reload "$base" || { bad "reload: no reload logged"; return; }
	dp_vip_pings "$VIP_NEW4" && { bad "reload: removed VIP $VIP_NEW4 still answered"; return; }
	n=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-20]" | grep -c '^be[0-9]$')
	[ "$n" -eq 20 ] || { bad "reload: after removing a VIP $n of 20 requests answered"; return; }
	ok "reload: VIP added (answered), bad config refused ($(grep '^maglevd: reload failed' "$MAGLEVD_LOG" | sed 's/.*stays: //')), VIP removed (not answered)"
}

case_retarget() {
	local out
	dp_running "retarget" || return
	out=$(run_in "$NS_CLIENT" "$E2E_PYTHON" "$E2E_ROOT/tests/e2e/gre_probe.py" "$CLIENT4" "$LB4" \
		"$VIP_DNS4" 53 "retarget-$DP_MODE" 2>&1) &&
		ok "retarget: GRE to $LB4 with UDP to $VIP_DNS4 inside echoed: $out" ||
		bad "retarget: $out"
}

DP_HASH_CONNS=40   # connections of one client in hash_source
DP_HASH_CLIENTS=12 # more client addresses in hash_source (198.18.0.100 ...), 3 connections each

# dp_answers URL [CURL_OPTION...]: the backend names that answered each new connection to URL
# (a curl URL range: one connection each, so each from its own source port), one a line.
dp_answers() {
	local url=$1
	shift
	run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 10 -H 'Connection: close' "$@" "$url" |
		grep '^be[0-9]$'
}

case_hash_source() {
	local out n names a i per all=() ex
	dp_running "hash_source" || return
	for a in "$VIP_DNS4" "[$VIP_DNS6]"; do
		out=$(dp_answers "http://$a/?[1-$DP_HASH_CONNS]")
		n=$(grep -c . <<<"$out")
		names=$(sort -u <<<"$out" | tr '\n' ' ')
		if [ "$n" -eq "$DP_HASH_CONNS" ] && [ "$(sort -u <<<"$out" | wc -l)" -eq 1 ]; then
			ok "hash_source: $DP_HASH_CONNS connections of $CLIENT4 to source VIP $a all on $names"
		else
			bad "hash_source: $DP_HASH_CONNS connections to source VIP $a: $n answered, by $names"
		fi
	done
	out=$(dp_answers "http://$VIP_WEB4/?[1-$DP_HASH_CONNS]")
	n=$(sort -u <<<"$out" | wc -l)
	[ "$(grep -c . <<<"$out")" -eq "$DP_HASH_CONNS" ] && [ "$n" -gt 1 ] &&
		ok "hash_source: the 5-tuple VIP web spreads the same client's $DP_HASH_CONNS connections over $n backends" ||
		bad "hash_source: 5-tuple VIP web: $(grep -c . <<<"$out") answered by $n backends"
	for ((i = 0; i < DP_HASH_CLIENTS; i++)); do
		run_in "$NS_CLIENT" ip addr add "198.18.0.$((100 + i))/32" dev "$CLIENT_IF"
	done
	for ((i = 0; i < DP_HASH_CLIENTS; i++)); do
		a=198.18.0.$((100 + i))
		out=$(dp_answers "http://$VIP_DNS4/?[1-3]" --interface "$a")
		per=$(sort -u <<<"$out")
		if [ "$(grep -c . <<<"$out")" -ne 3 ] || [ "$(wc -l <<<"$per")" -ne 1 ]; then
			bad "hash_source: client $a: $(grep -c . <<<"$out") of 3 answered, by $(tr '\n' ' ' <<<"$per")"
			per=
		fi
		all+=("$per")
	done
	for ((i = 0; i < DP_HASH_CLIENTS; i++)); do
		run_in "$NS_CLIENT" ip addr del "198.18.0.$((100 + i))/32" dev "$CLIENT_IF"
	done
	n=$(printf '%s\n' "${all[@]}" | grep . | sort -u | wc -l)
	[ "$n" -gt 1 ] &&
		ok "hash_source: $DP_HASH_CLIENTS client addresses, each on one backend, spread over $n: $(printf '%s\n' "${all[@]}" | sort | uniq -c | tr -s ' \n' ' ')" ||
		bad "hash_source: $DP_HASH_CLIENTS client addresses all on one backend or unanswered: ${all[*]}"
	# explain: the mode, the key without ports, and the backend the client's connections met.
	ex=$(run_in "$NS_LB" "$MAGLEVCTL" explain sticky "$CLIENT4:40000" -s "$E2E_DIR/maglevd.sock" --json)
	out=$(dp_answers "http://$VIP_DNS4/?[1-1]")
	"$E2E_PYTHON" -c '
import json, sys
e = json.loads(sys.argv[1])
want_key = "tcp %s:0 -> %s:0" % (sys.argv[2], sys.argv[3])
backend = "198.18.1.1" + sys.argv[4][2:]
assert e["hash_mode"] == "source", e["hash_mode"]
assert e["hash_key"] == want_key, e["hash_key"]
assert e["table_backend"] == backend, (e["table_backend"], backend)
' "$ex" "$CLIENT4" "$VIP_DNS4" "$out" 2>"$E2E_DIR/hash_explain.err" &&
		ok "hash_source: explain sticky: hash_mode source, key without ports, the backend that answered ($out)" ||
		bad "hash_source: explain sticky: $(tail -1 "$E2E_DIR/hash_explain.err"): $ex"
}

DP_PROBE_FRAMES=20 # frames of each kind frame_probe.py sends

# dp_counter NAME: maglevd's counter NAME, summed over workers (0 if it has none).
dp_counter() {
	run_in "$NS_LB" "$MAGLEVCTL" counters -s "$E2E_DIR/maglevd.sock" 2>/dev/null |
		awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# dp_probe KIND: frame_probe.py KIND from the router onto the lb's link.
dp_probe() {
	local mac
	mac=$(run_in "$NS_LB" cat "/sys/class/net/$LB_IF/address")
	run_in "$NS_ROUTER" "$E2E_PYTHON" "$E2E_ROOT/tests/e2e/frame_probe.py" "$ROUTER_LB_IF" \
		"$mac" "$CLIENT4" "$VIP_WEB4" 80 "$DP_PROBE_FRAMES" "$1" >/dev/null
}

# dp_wait_counter NAME MIN: waits (2 s at most) until counter NAME reaches MIN.
dp_counter_reached() { [ "$(dp_counter "$1")" -ge "$2" ]; }
dp_wait_counter() { wait_for 2 dp_counter_reached "$1" "$2"; }

case_refused_frames() {
	local n=$DP_PROBE_FRAMES mac_ctr gre0 mac0 bad0 vip0 gre1 mac1 bad1 vip1
	dp_running "refused_frames" || return
	# AF_XDP: the steering program leaves them to the kernel; AF_PACKET: the pipeline passes them.
	dp_xdp && mac_ctr=io_xdp_pass_not_our_mac || mac_ctr=pass_not_our_mac
	gre0=$(dp_counter tx_gre_ipv4)
	mac0=$(dp_counter "$mac_ctr")
	bad0=$(dp_counter drop_bad_source)
	vip0=$(dp_counter drop_source_is_vip)
	dp_probe mac || { bad "refused_frames: frame_probe.py mac failed"; return; }
	dp_probe src || { bad "refused_frames: frame_probe.py src failed"; return; }
	dp_wait_counter "$mac_ctr" $((mac0 + 3 * n))
	dp_wait_counter drop_source_is_vip $((vip0 + n))
	gre1=$(dp_counter tx_gre_ipv4)
	mac1=$(dp_counter "$mac_ctr")
	bad1=$(dp_counter drop_bad_source)
	vip1=$(dp_counter drop_source_is_vip)
	if [ "$gre1" -ne "$gre0" ] || [ $((mac1 - mac0)) -ne $((3 * n)) ] ||
		[ $((bad1 - bad0)) -ne $((3 * n)) ] || [ $((vip1 - vip0)) -ne "$n" ]; then
		bad "refused_frames: tx_gre_ipv4 +$((gre1 - gre0)) (want 0), $mac_ctr +$((mac1 - mac0)) (want $((3 * n))), drop_bad_source +$((bad1 - bad0)) (want $((3 * n))), drop_source_is_vip +$((vip1 - vip0)) (want $n)"
		return
	fi
	# The control: the same SYNs from the client to our MAC are forwarded.
	dp_probe good || { bad "refused_frames: frame_probe.py good failed"; return; }
	if dp_wait_counter tx_gre_ipv4 $((gre1 + n)); then
		ok "refused_frames: $((3 * n)) to other MACs ($mac_ctr), $((3 * n)) from martian sources, $n from the VIP itself: no GRE out; $n good ones forwarded"
	else
		bad "refused_frames: the control SYNs were not forwarded (tx_gre_ipv4 +$(($(dp_counter tx_gre_ipv4) - gre1)) of $n)"
	fi
}

case_nexthop_mac() {
	local cfg=$E2E_DIR/maglevd.nhmac.yaml mac n
	dp_stopped
	mac=$(run_in "$NS_ROUTER" cat "/sys/class/net/$ROUTER_LB_IF/address")
	dp_write_config "$cfg" --nexthop-mac "$mac"
	run_in "$NS_LB" ip neigh flush dev "$LB_IF"
	dp_start_maglevd "$cfg" nhmac || { bad "nexthop_mac: maglevd did not start"; return; }
	n=$(run_in "$NS_CLIENT" curl -s --connect-timeout 3 -m 5 -H 'Connection: close' \
		"http://$VIP_WEB4/?[1-30]" | grep -c '^be[0-9]$')
	stop_maglevd || bad "nexthop_mac: maglevd exit status $?"
	[ "$n" -eq 30 ] && ok "nexthop_mac $mac: 30/30 answered" ||
		bad "nexthop_mac: $n of 30 answered"
}

# dp_decapsulated: GRE frames the three backends' XDP decap programs have decapsulated so far.
dp_decapsulated() {
	local ns sum=0 n
	for ns in "${NS_BACKENDS[@]}"; do
		n=$(run_in "$ns" "$MAGLEVCTL" decap status "$BE_IF" | awk '$1 == "decapsulated" { print $2 }')
		sum=$((sum + ${n:-0}))
	done
	echo "$sum"
}

# dp_io_counters NAME...: the totals of maglevd's counters NAME..., one a line ("-" if absent).
dp_io_counters() {
	run_in "$NS_LB" "$MAGLEVCTL" counters -s "$E2E_DIR/maglevd.sock" --json | "$E2E_PYTHON" -c '
import json, sys
c = {r["name"]: r["total"] for r in json.load(sys.stdin)["counters"]}
for n in sys.argv[1:]:
    print(c.get(n, "-"))
' "$@"
}

# dp_numbers_only ARRAY...: replaces what is not a number in the named arrays with 0.
dp_numbers_only() {
	local -n dp_arr
	local name i
	for name in "$@"; do
		dp_arr=$name
		for i in "${!dp_arr[@]}"; do
			[[ ${dp_arr[$i]} =~ ^[0-9]+$ ]] || dp_arr[$i]=0
		done
	done
}

# dp_delivered_settles: true once the backends' count has not moved for 0.3 s.
dp_delivered_settles() {
	local a b
	a=$(dp_decapsulated)
	sleep 0.3
	b=$(dp_decapsulated)
	[ "$a" = "$b" ]
}

# syn_burst: a burst of new flows. trafgen's rate mode (-b) does not space the packets: it sends each
# second's quota at full speed (about 125 kpps through the lb's XDP receive here) and then
# sleeps, so 20 kpps is one burst of 20000 SYNs a second. maglevd drains them more slowly (on
# veth each sendto also runs the router's and the backends' receive path), so the burst waits in
# the socket's buffers: AF_XDP's RX ring and UMEM, AF_PACKET's ring. While the AF_XDP RX ring held
# only half the UMEM frames (4096), it overflowed within about 85 ms of each burst and a quarter
# of the SYNs were dropped (io_xsk_rx_ring_full); AF_PACKET's 64 blocks, each handed over 1 ms
# after it was opened, held about 8000 SYNs and lost up to 8%.
case_syn_burst() {
	local cfg=$E2E_DIR/syn.trafgen n=$((DP_BURST_PPS * DP_BURST_SECONDS)) router_mac client_mac
	local sent0 sent got0 got lost names=(io_rx_frames io_rx_kernel_drops) c0 c1 rx drops xsk=""
	dp_running "syn_burst" || return
	command -v trafgen >/dev/null || { bad "syn_burst: no trafgen (Debian package netsniff-ng)"; return; }
	dp_xdp && names+=(io_xsk_rx_ring_full io_xsk_rx_dropped io_xsk_fill_empty)
	router_mac=$(run_in "$NS_ROUTER" cat "/sys/class/net/$ROUTER_CLIENT_IF/address")
	client_mac=$(run_in "$NS_CLIENT" cat "/sys/class/net/$CLIENT_IF/address")
	cat >"$cfg" <<EOF
{
  eth(da=$router_mac, sa=$client_mac),
  ipv4(sa=$CLIENT4, da=$VIP_WEB4, ttl=64, df),
  tcp(sp=dinc(1024, 65023), dp=$VIP_BURST_PORT, seq=drnd(), syn),
}
EOF
	mapfile -t c0 < <(dp_io_counters "${names[@]}")
	got0=$(dp_decapsulated)
	sent0=$(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets)
	timeout $((DP_BURST_SECONDS + 10)) ip netns exec "$NS_CLIENT" trafgen -o "$CLIENT_IF" -c "$cfg" \
		-P 1 -b "${DP_BURST_PPS}pps" -n "$n" -q -C >"$E2E_DIR/trafgen.log" 2>&1
	sent=$(($(link_stat "$NS_CLIENT" "$CLIENT_IF" tx_packets) - sent0))
	wait_for 5 dp_delivered_settles
	got=$(($(dp_decapsulated) - got0))
	mapfile -t c1 < <(dp_io_counters "${names[@]}")
	[ "$sent" -ge "$n" ] || { bad "syn_burst: trafgen sent $sent of $n: $(tail -2 "$E2E_DIR/trafgen.log")"; return; }
	if [ "${#c1[@]}" -ne "${#names[@]}" ] || printf '%s\n' "${c0[@]}" "${c1[@]}" | grep -qvx '[0-9][0-9]*'; then
		bad "syn_burst: counters ${names[*]} not all in 'maglevctl counters': ${c1[*]}"
		dp_numbers_only c0 c1
	elif dp_xdp; then
		xsk=", RX ring full $((c1[2] - c0[2])), no fill frame $((c1[3] - c0[3])), fill ring empty $((c1[4] - c0[4]))"
	fi
	rx=$((${c1[0]:-0} - ${c0[0]:-0}))
	drops=$((${c1[1]:-0} - ${c0[1]:-0}))
	lost=$((sent > got ? sent - got : 0))
	if [ $((lost * 100)) -lt "$sent" ] && [ $((drops * 100)) -lt "$sent" ]; then
		ok "syn_burst: $got of $sent SYNs ($DP_BURST_PPS a second) reached the backends; maglevd received $rx, kernel drops $drops$xsk"
	else
		bad "syn_burst: $got of $sent SYNs ($DP_BURST_PPS a second) reached the backends ($lost lost, limit 1%); maglevd received $rx, kernel drops $drops$xsk"
	fi
}

dp_main() {
	local cases=(http iperf dsr host udp_icmp pmtu nexthop_flush reload retarget refused_frames
		hash_source syn_burst stop bad_start)
	dp_xdp && cases+=(restart_after_kill)
	[ "$DP_MODE" = xdp ] && cases+=(auto)
	cases+=(nexthop_mac workers)
	e2e_cases "${cases[@]}"
	e2e_init
	[ -x "$MAGLEVD" ] || e2e_skip "no $MAGLEVD (run make)"
	[ -x "$MAGLEVCTL" ] || e2e_skip "no $MAGLEVCTL (run make)"
	e2e_topology_up || e2e_abort "topology"
	router_takes_xdp_tx "$DP_MODE" || e2e_abort "XDP_PASS on the router's link to the lb"
	start_backend_servers || e2e_abort "backend servers"
	DP_CONFIG=$E2E_DIR/maglevd.yaml
	dp_write_config "$DP_CONFIG"
	e2e_run_cases
	dp_stopped
	e2e_summary
}
