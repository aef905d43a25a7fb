# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# tests/e2e/lib.sh: the end-to-end topology (client, router, maglevd host, three backends (or N) in
# network namespaces joined by veth) and the helpers the tests, the benchmark and the demo build on.
#
# Source it, then:
#   e2e_cases a b c          # the test's cases, functions case_a ...; E2E_CASES selects (below)
#   e2e_init                 # root check (exit 4 = skip), temp dir, stale cleanup, trap on EXIT
#   e2e_topology_up          # namespaces, addresses, routes, backends with the XDP decap attached
#   start_backend_servers    # HTTP :80 ("beN\n"), UDP echo :53, iperf3 -s on every backend
#   start_maglevd afxdp      # writes the config (e2e_write_config) and runs build/maglevd in the
#                            # lb namespace; or e2e_write_config FILE OPTION... and start_maglevd
#                            # MODE FILE
#   e2e_run_cases            # each case: checks with check/ok/bad, e.g.
#   check "web answers" run_in "$NS_CLIENT" curl -sf "http://$VIP_WEB4/"
#   stop_maglevd             # (e2e_cleanup, run by the trap, stops everything and removes it all)
#   e2e_summary              # the closing line "test_x: N passed, M failed"; the exit status
#
# Every name starts with $E2E_PREFIX (default "mgw") so several runs can coexist; veth pairs are
# created straight inside their namespaces, so nothing is left in the root namespace. Addresses
# (IPv4 and IPv6):
#
#   client 198.18.0.2 2001:db8::2 -- router 198.18.0.1 2001:db8::1       (client eth0 / router cl0)
#   lb     198.18.2.2 2001:db8:2::2 -- router 198.18.2.1 2001:db8:2::1   (lb eth0 / router lb0)
#   beN    198.18.1.1N 2001:db8:1::1N -- router bridge br0 198.18.1.1 2001:db8:1::1 (beN eth0 / router beN)
#   lb2    198.18.3.2 2001:db8:3::2 -- router 198.18.3.1 2001:db8:3::1   (lb2 eth0 / router lb2;
#          only with e2e_topology_up --two-lbs: a second maglevd host for scale-out)
#   router routes 203.0.113.0/24, 198.51.100.0/24, 2001:db8:100::/64 (the VIPs) via the lb
#          (not with --no-vip-routes: then BGP puts them there).
#   backends: the VIPs on lo, rp_filter=0, arp_ignore=1, arp_announce=2, XDP GRE decap on eth0.

E2E_PREFIX=${E2E_PREFIX:-mgw}
E2E_SKIP=4
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_BUILD=${E2E_BUILD:-$E2E_ROOT/build}
E2E_PYTHON=${E2E_PYTHON:-/usr/bin/python3} # Debian's, which has scapy
MAGLEVD=${MAGLEVD:-$E2E_BUILD/maglevd}
MAGLEVCTL=${MAGLEVCTL:-$E2E_BUILD/maglevctl}
E2E_DIR=${E2E_DIR:-} # per-run temp dir (configs, logs, sockets, PID files); set by e2e_init

NS_CLIENT=$E2E_PREFIX-client
NS_ROUTER=$E2E_PREFIX-router
NS_LB=$E2E_PREFIX-lb
NS_LB2=$E2E_PREFIX-lb2 # only with e2e_topology_up --two-lbs
E2E_BACKENDS_DEFAULT=3 # backends e2e_topology_up builds unless --backends N
E2E_BACKENDS_MAX=9     # addresses 198.18.1.11 .. .19
NS_BACKENDS=()         # namespaces of the backends, BACKEND_NAMES their names (be1 ...),
BACKEND_NAMES=()       # BACKENDS4/6 their addresses: set by e2e_backends_set

CLIENT_IF=eth0 # in $NS_CLIENT
LB_IF=eth0     # in $NS_LB: maglevd's dataplane.interface
BE_IF=eth0     # in each backend namespace
ROUTER_CLIENT_IF=cl0
ROUTER_LB_IF=lb0
ROUTER_LB2_IF=lb2
ROUTER_BRIDGE=br0 # backends' side; its ports are named be1..beN

CLIENT4=198.18.0.2
CLIENT6=2001:db8::2
ROUTER_CLIENT4=198.18.0.1
ROUTER_CLIENT6=2001:db8::1
ROUTER_LB4=198.18.2.1
ROUTER_LB6=2001:db8:2::1
ROUTER_BE4=198.18.1.1
ROUTER_BE6=2001:db8:1::1
LB4=198.18.2.2
LB6=2001:db8:2::2
ROUTER_LB2_4=198.18.3.1
ROUTER_LB2_6=2001:db8:3::1
LB2_4=198.18.3.2
LB2_6=2001:db8:3::2
BACKENDS4=()
BACKENDS6=()

# e2e_backends_set N: the backends are be1..beN (namespaces, names, addresses 198.18.1.1N and
# 2001:db8:1::1N); e2e_topology_up --backends N calls it, lib.sh sets the default 3 below.
e2e_backends_set() {
	local n=$1 k
	if ! [ "$n" -ge 1 ] 2>/dev/null || [ "$n" -gt "$E2E_BACKENDS_MAX" ]; then
		e2e_log "e2e_backends_set: '$n' backends (1..$E2E_BACKENDS_MAX)"
		return 1
	fi
	NS_BACKENDS=() BACKEND_NAMES=() BACKENDS4=() BACKENDS6=()
	for ((k = 1; k <= n; k++)); do
		NS_BACKENDS+=("$E2E_PREFIX-be$k")
		BACKEND_NAMES+=("be$k")
		BACKENDS4+=("198.18.1.1$k")
		BACKENDS6+=("2001:db8:1::1$k")
	done
}
e2e_backends_set "$E2E_BACKENDS_DEFAULT"

VIP_WEB4=203.0.113.10    # tcp 80 in the maglevd config ("web")
VIP_DNS4=203.0.113.11    # udp 53 ("dns")
VIP_WEB6=2001:db8:100::10 # tcp 80 ("web6")
VIP_DNS6=2001:db8:100::11 # udp 53 ("dns6")
VIPS=("$VIP_WEB4" "$VIP_DNS4" "$VIP_WEB6" "$VIP_DNS6") # put on every backend's lo
VIP_ROUTES4=(203.0.113.0/24 198.51.100.0/24)
VIP_ROUTES6=(2001:db8:100::/64)

E2E_WAIT_STEP=0.1 # seconds between polls in wait_for

MAGLEVD_PID=
MAGLEVD_CONFIG=
MAGLEVD_LOG=
MAGLEVD_SOCKET=

e2e_log() { echo "e2e[$E2E_PREFIX]: $*" >&2; }

# run_in NS CMD...: runs CMD inside namespace NS.
run_in() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# bg_in NS LOG CMD...: starts CMD in NS in the background, output to LOG; sets BG_PID to its PID
# and records it (e2e_cleanup kills it). `ip netns exec` execs CMD, so the PID is CMD's own. Call
# it directly, not in $(...), so that the process stays a child of this shell (wait works).
BG_PID=
bg_in() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	BG_PID=$!
	echo "$BG_PID" >>"$E2E_DIR/pids"
}

# pid_alive PID: true while PID runs (a zombie that has not been waited for counts as ended).
pid_alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# kill_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 5), then SIGKILL. Returns the
# process's exit status (our child) or 0.
kill_pid() {
	local pid=$1 secs=${2:-5} i
	if ! pid_alive "$pid"; then
		wait "$pid" 2>/dev/null
		return $?
	fi
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < secs * 10; i++)); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	if pid_alive "$pid"; then
		e2e_log "pid $pid ignored SIGTERM for ${secs}s, killing it"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

# Check bookkeeping: ok/bad/skipped count and print one line each; check DESCRIPTION CMD... runs
# CMD. A test ends with `e2e_summary`.
failures=0
checks=0
skips=0
ok() {
	checks=$((checks + 1))
	echo "ok   $checks: $*"
}
bad() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL $checks: $*"
}
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
# skipped WHAT: a check this machine cannot make (a tool missing, say); not counted as passed.
skipped() {
	skips=$((skips + 1))
	echo "skip: $*"
}

# closing_line NAME PASSED FAILED [SKIPPED]: the last line of every test and runner, "NAME: N
# passed, M failed" (", K skipped" if K > 0); true if none failed.
closing_line() {
	local skip=""
	[ "${4:-0}" -eq 0 ] || skip=", $4 skipped"
	echo "$1: $2 passed, $3 failed$skip"
	[ "$3" -eq 0 ]
}

E2E_TEST=${E2E_TEST:-$(basename "$0" .sh)} # the test's name in its closing line

# e2e_summary: the closing line over this test's checks; its status is the test's.
e2e_summary() {
	closing_line "$E2E_TEST" $((checks - failures)) "$failures" "$skips"
}

# e2e_abort WHAT: a failed check WHAT after which the test cannot go on (its shared setup failed):
# the closing line, exit 1.
e2e_abort() {
	bad "$*"
	e2e_summary
	exit 1
}

# Cases. A test names its cases, each a function case_NAME, before its setup, and runs them after:
#   e2e_cases a b c   # E2E_CASES=list: prints "TEST: a b c" and exits 0; a selection that
#                     # matches none of them skips the test (exit 4) before any setup
#   ... shared setup (topology, servers, maglevd) ...
#   e2e_run_cases     # runs the selected ones, always in the order named
# E2E_CASES is a comma-separated list of names or shell patterns ("drain,health*"); unset or empty
# selects every case. Each case sets up the state it needs beyond the shared setup, so that one
# selected alone still checks what it says.
E2E_SELECTED=()
e2e_cases() {
	local name pat pats=()
	if [ "${E2E_CASES:-}" = list ]; then
		echo "$E2E_TEST: $*"
		exit 0
	fi
	IFS=, read -r -a pats <<<"${E2E_CASES:-}"
	for name in "$@"; do
		declare -F "case_$name" >/dev/null || { echo "e2e_cases: no function case_$name" >&2; exit 1; }
		if [ ${#pats[@]} -eq 0 ]; then
			E2E_SELECTED+=("$name")
			continue
		fi
		for pat in "${pats[@]}"; do
			pat=${pat//[[:space:]]/}
			# shellcheck disable=SC2053 # a pattern, unquoted on purpose
			if [[ $name == $pat ]]; then
				E2E_SELECTED+=("$name")
				break
			fi
		done
	done
	[ ${#E2E_SELECTED[@]} -gt 0 ] || e2e_skip "E2E_CASES='$E2E_CASES' selects none of $*"
	[ -z "${E2E_CASES:-}" ] || echo "cases: ${E2E_SELECTED[*]} (E2E_CASES='$E2E_CASES')"
}

e2e_run_cases() {
	local name
	for name in "${E2E_SELECTED[@]}"; do
		echo "# case $name"
		"case_$name"
	done
}

now_ms() { date +%s%3N; }

# wait_for SECONDS CMD...: polls CMD until it succeeds (0) or SECONDS have passed (1).
wait_for() {
	local secs=$1 i n
	shift
	n=$(awk -v s="$secs" -v st="$E2E_WAIT_STEP" 'BEGIN { printf "%d", s / st }')
	for ((i = 0; i <= n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep "$E2E_WAIT_STEP"
	done
	return 1
}

# wait_since T0 SECONDS CMD...: wait_for, and on success TOOK = ms from T0 (a now_ms) until CMD
# first succeeded: how long something took that started at T0.
wait_since() {
	local t0=$1
	shift
	wait_for "$@" || return 1
	TOOK=$(($(now_ms) - t0))
}

# e2e_skip MSG: prints why and exits with the skip code.
e2e_skip() {
	echo "SKIP: $*"
	exit "$E2E_SKIP"
}

# e2e_namespaces: every namespace with our prefix (also stale ones from an earlier run).
e2e_namespaces() {
	ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^${E2E_PREFIX}-(client|router|lb|lb2|be[0-9]+)$" || true
}

# e2e_cleanup: stops what we started (by PID), deletes every namespace with our prefix (after
# killing what still runs inside it: only our own runs use our prefix) and the temp dir.
e2e_cleanup() {
	local pid ns
	if [ -n "$MAGLEVD_PID" ]; then
		kill_pid "$MAGLEVD_PID" 5 || true
		MAGLEVD_PID=
	fi
	if [ -n "$E2E_DIR" ] && [ -f "$E2E_DIR/pids" ]; then
		while read -r pid; do
			[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
		done <"$E2E_DIR/pids"
		sleep 0.2
		while read -r pid; do
			[ -n "$pid" ] || continue
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		done <"$E2E_DIR/pids"
		rm -f "$E2E_DIR/pids"
	fi
	for ns in $(e2e_namespaces); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$E2E_DIR" ] && [ -d "$E2E_DIR" ] && [ -z "${E2E_KEEP:-}" ]; then
		rm -rf "$E2E_DIR"
	fi
	return 0
}

# e2e_init: skips (exit 4) unless root; makes the temp dir; removes stale namespaces with our
# prefix; installs e2e_cleanup as the EXIT trap (INT/TERM exit through it).
e2e_init() {
	[ "$(id -u)" -eq 0 ] || e2e_skip "needs root"
	E2E_DIR=$(mktemp -d "/tmp/${E2E_PREFIX}-e2e.XXXXXX")
	: >"$E2E_DIR/pids"
	local d=$E2E_DIR
	E2E_DIR=
	e2e_cleanup
	E2E_DIR=$d
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

e2e_sysctl() {
	local ns=$1
	shift
	run_in "$ns" sysctl -q -w "$@" >/dev/null
}

# e2e_netns_add NS: a namespace with lo up and IPv6 DAD off (addresses usable at once).
e2e_netns_add() {
	local ns=$1
	ip netns add "$ns"
	run_in "$ns" ip link set lo up
	e2e_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# e2e_veth NS1 IF1 NS2 IF2: a veth pair created inside the two namespaces, both ends up, TX
# checksum offload off (so AF_XDP, AF_PACKET and XDP see complete checksums; environment.md).
e2e_veth() {
	local ns1=$1 if1=$2 ns2=$3 if2=$4
	ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2"
	run_in "$ns1" ethtool -K "$if1" tx off >/dev/null 2>&1
	run_in "$ns2" ethtool -K "$if2" tx off >/dev/null 2>&1
	run_in "$ns1" ip link set "$if1" up
	run_in "$ns2" ip link set "$if2" up
}

e2e_addr() {
	local ns=$1 dev=$2 a4=$3 a6=$4
	run_in "$ns" ip addr add "$a4" dev "$dev"
	run_in "$ns" ip -6 addr add "$a6" dev "$dev" nodad
}

# router_takes_xdp_tx MODE: for dataplane.mode MODE xdp (else nothing), an XDP_PASS program on
# the router's side of the lb's link. In xdp mode maglevd sends with XDP_TX, and a veth takes what
# its peer sends that way only while an XDP program of its own runs (GRO was not enough here); a
# physical NIC sends XDP_TX frames to the wire without any of this.
router_takes_xdp_tx() {
	[ "$1" = xdp ] || return 0
	run_in "$NS_ROUTER" ip link set dev "$ROUTER_LB_IF" xdp obj "$E2E_BUILD/bpf/xdp_pass.bpf.o" sec xdp
}

# e2e_topology_up [--no-decap] [--two-lbs] [--no-vip-routes] [--backends N] [--second-chance]:
# builds the whole topology; the backends get the XDP GRE decap program (maglevctl decap attach)
# unless --no-decap. --two-lbs adds the second maglevd host $NS_LB2; --no-vip-routes leaves the
# router without static routes to the VIPs (a routing daemon adds them); --backends N builds
# be1..beN instead of the default three (e2e_backends_set); --second-chance readies the backends
# for second chance (backends_second_chance).
e2e_topology_up() {
	local decap=1 two_lbs=0 vip_routes=1 sc=0 i ns r
	while [ $# -gt 0 ]; do
		case $1 in
		--no-decap) decap=0 ;;
		--two-lbs) two_lbs=1 ;;
		--no-vip-routes) vip_routes=0 ;;
		--second-chance) sc=1 ;;
		--backends)
			e2e_backends_set "${2:-}" || return 1
			shift
			;;
		*) e2e_log "e2e_topology_up: unknown option $1"; return 1 ;;
		esac
		shift
	done
	for ns in "$NS_CLIENT" "$NS_ROUTER" "$NS_LB" "${NS_BACKENDS[@]}"; do
		e2e_netns_add "$ns" || return 1
	done
	if [ "$two_lbs" -eq 1 ]; then
		e2e_netns_add "$NS_LB2" || return 1
	fi

	e2e_sysctl "$NS_ROUTER" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	run_in "$NS_ROUTER" ip link add "$ROUTER_BRIDGE" type bridge
	run_in "$NS_ROUTER" ip link set "$ROUTER_BRIDGE" up

	e2e_veth "$NS_CLIENT" "$CLIENT_IF" "$NS_ROUTER" "$ROUTER_CLIENT_IF"
	e2e_addr "$NS_CLIENT" "$CLIENT_IF" "$CLIENT4/24" "$CLIENT6/64"
	e2e_addr "$NS_ROUTER" "$ROUTER_CLIENT_IF" "$ROUTER_CLIENT4/24" "$ROUTER_CLIENT6/64"
	run_in "$NS_CLIENT" ip route add default via "$ROUTER_CLIENT4"
	run_in "$NS_CLIENT" ip -6 route add default via "$ROUTER_CLIENT6"

	e2e_veth "$NS_LB" "$LB_IF" "$NS_ROUTER" "$ROUTER_LB_IF"
	e2e_addr "$NS_LB" "$LB_IF" "$LB4/24" "$LB6/64"
	e2e_addr "$NS_ROUTER" "$ROUTER_LB_IF" "$ROUTER_LB4/24" "$ROUTER_LB6/64"
	run_in "$NS_LB" ip route add default via "$ROUTER_LB4"
	run_in "$NS_LB" ip -6 route add default via "$ROUTER_LB6"

	if [ "$two_lbs" -eq 1 ]; then
		e2e_veth "$NS_LB2" "$LB_IF" "$NS_ROUTER" "$ROUTER_LB2_IF"
		e2e_addr "$NS_LB2" "$LB_IF" "$LB2_4/24" "$LB2_6/64"
		e2e_addr "$NS_ROUTER" "$ROUTER_LB2_IF" "$ROUTER_LB2_4/24" "$ROUTER_LB2_6/64"
		run_in "$NS_LB2" ip route add default via "$ROUTER_LB2_4"
		run_in "$NS_LB2" ip -6 route add default via "$ROUTER_LB2_6"
	fi

	e2e_addr "$NS_ROUTER" "$ROUTER_BRIDGE" "$ROUTER_BE4/24" "$ROUTER_BE6/64"
	for i in "${!NS_BACKENDS[@]}"; do
		ns=${NS_BACKENDS[$i]}
		e2e_veth "$ns" "$BE_IF" "$NS_ROUTER" "${BACKEND_NAMES[$i]}"
		run_in "$NS_ROUTER" ip link set "${BACKEND_NAMES[$i]}" master "$ROUTER_BRIDGE"
		e2e_addr "$ns" "$BE_IF" "${BACKENDS4[$i]}/24" "${BACKENDS6[$i]}/64"
		run_in "$ns" ip route add default via "$ROUTER_BE4"
		run_in "$ns" ip -6 route add default via "$ROUTER_BE6"
		e2e_sysctl "$ns" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
			"net.ipv4.conf.$BE_IF.rp_filter=0" net.ipv4.conf.lo.rp_filter=0
		for r in "${VIPS[@]}"; do
			case $r in
			*:*) run_in "$ns" ip -6 addr add "$r/128" dev lo ;;
			*) run_in "$ns" ip addr add "$r/32" dev lo ;;
			esac
		done
	done

	if [ "$vip_routes" -eq 1 ]; then
		for r in "${VIP_ROUTES4[@]}"; do
			run_in "$NS_ROUTER" ip route add "$r" via "$LB4"
		done
		for r in "${VIP_ROUTES6[@]}"; do
			run_in "$NS_ROUTER" ip -6 route add "$r" via "$LB6"
		done
	fi
	# Replies from the backends have the VIP as source and enter on br0 while the VIP's route
	# points at lb0: strict reverse-path filtering would drop them.
	for r in all default "$ROUTER_CLIENT_IF" "$ROUTER_LB_IF" "$ROUTER_BRIDGE"; do
		e2e_sysctl "$NS_ROUTER" "net.ipv4.conf.$r.rp_filter=0"
	done
	if [ "$two_lbs" -eq 1 ]; then
		e2e_sysctl "$NS_ROUTER" "net.ipv4.conf.$ROUTER_LB2_IF.rp_filter=0"
	fi

	if [ "$decap" -eq 1 ]; then
		for i in "${!NS_BACKENDS[@]}"; do
			backend_decap_attach "$i" || return 1
		done
	fi
	if [ "$sc" -eq 1 ]; then
		backends_second_chance || return 1
	fi
	wait_for 5 run_in "$NS_CLIENT" ping -c1 -W1 "${BACKENDS4[-1]}" || {
		e2e_log "topology: client cannot reach ${BACKENDS4[-1]}"
		return 1
	}
}

# backend_decap_attach I: attaches the XDP GRE decap program to backend I's eth0 with every VIP.
backend_decap_attach() {
	local i=$1 args=() v
	for v in "${VIPS[@]}"; do
		args+=(--vip "$v")
	done
	run_in "${NS_BACKENDS[$i]}" "$MAGLEVCTL" decap attach "$BE_IF" "${args[@]}" >>"$E2E_DIR/decap.log" 2>&1 || {
		e2e_log "decap attach on ${BACKEND_NAMES[$i]} failed:"
		cat "$E2E_DIR/decap.log" >&2
		return 1
	}
}

backend_decap_detach() {
	run_in "${NS_BACKENDS[$1]}" "$MAGLEVCTL" decap detach "$BE_IF"
}

# backends_second_chance: what second chance asks of the backends (docs/second-chance.md), on
# every backend: IP forwarding on $BE_IF (IPv4 and IPv6; bpf_fib_lookup answers only where the
# interface forwards) and a permanent neighbour entry for each other backend (a packet handed on
# needs its next hop resolved, and a learnt entry could be stale or gone). On the router, GRO on
# the bridge ports: a veth takes the frames its peer sends by XDP_TX only while its NAPI runs,
# which GRO (or an XDP program of its own) turns on.
backends_second_chance() {
	local i j mac
	for i in "${!NS_BACKENDS[@]}"; do
		e2e_sysctl "${NS_BACKENDS[$i]}" "net.ipv4.conf.$BE_IF.forwarding=1" \
			"net.ipv6.conf.$BE_IF.forwarding=1" || return 1
		run_in "$NS_ROUTER" ethtool -K "${BACKEND_NAMES[$i]}" gro on >/dev/null || return 1
	done
	for j in "${!NS_BACKENDS[@]}"; do
		mac=$(run_in "${NS_BACKENDS[$j]}" cat "/sys/class/net/$BE_IF/address") || return 1
		for i in "${!NS_BACKENDS[@]}"; do
			[ "$i" -ne "$j" ] || continue
			run_in "${NS_BACKENDS[$i]}" ip neigh replace "${BACKENDS4[$j]}" lladdr "$mac" \
				dev "$BE_IF" nud permanent &&
				run_in "${NS_BACKENDS[$i]}" ip -6 neigh replace "${BACKENDS6[$j]}" lladdr "$mac" \
					dev "$BE_IF" nud permanent || return 1
		done
	done
}

# decap_counter I NAME: counter NAME of the decap program on backend I (maglevctl decap status).
decap_counter() {
	run_in "${NS_BACKENDS[$1]}" "$MAGLEVCTL" decap status "$BE_IF" | awk -v n="$2" '$1 == n { print $2 }'
}

# start_backend_servers [I...]: on backends I (default all): HTTP :80 answering "beN\n", UDP
# echo :53 (both bound to every VIP and the backend's own addresses), iperf3 -s on 5201. Waits
# until they answer on the backend's own address.
start_backend_servers() {
	local idx=("$@") i ns
	[ ${#idx[@]} -eq 0 ] && idx=("${!NS_BACKENDS[@]}")
	for i in "${idx[@]}"; do
		ns=${NS_BACKENDS[$i]}
		bg_in "$ns" "$E2E_DIR/servers.${BACKEND_NAMES[$i]}.log" "$E2E_PYTHON" \
			"$E2E_ROOT/tests/e2e/servers.py" "${BACKEND_NAMES[$i]}" "${VIPS[@]}" \
			"${BACKENDS4[$i]}" "${BACKENDS6[$i]}"
		echo "$BG_PID" >"$E2E_DIR/servers.${BACKEND_NAMES[$i]}.pid"
		bg_in "$ns" "$E2E_DIR/iperf3.${BACKEND_NAMES[$i]}.log" iperf3 -s -p 5201
		echo "$BG_PID" >"$E2E_DIR/iperf3.${BACKEND_NAMES[$i]}.pid"
	done
	for i in "${idx[@]}"; do
		wait_for 10 e2e_servers_answer "$i" || {
			e2e_log "servers on ${BACKEND_NAMES[$i]} did not come up:"
			cat "$E2E_DIR/servers.${BACKEND_NAMES[$i]}.log" >&2
			return 1
		}
	done
}

# e2e_servers_answer I: backend I's HTTP and UDP echo both answer on its own address.
e2e_servers_answer() {
	local ns=${NS_BACKENDS[$1]} a=${BACKENDS4[$1]}
	run_in "$ns" curl -sf -m1 "http://$a/" >/dev/null &&
		[ "$(echo ping | run_in "$ns" socat -T1 - "UDP4:$a:53" 2>/dev/null)" = ping ]
}

# stop_backend_servers [I...]: stops the HTTP/UDP servers (not iperf3) of backends I (default all).
stop_backend_servers() {
	local idx=("$@") i f
	[ ${#idx[@]} -eq 0 ] && idx=("${!NS_BACKENDS[@]}")
	for i in "${idx[@]}"; do
		f=$E2E_DIR/servers.${BACKEND_NAMES[$i]}.pid
		[ -f "$f" ] && kill_pid "$(cat "$f")" 3
		rm -f "$f"
	done
	return 0
}

# e2e_write_config FILE [OPTION...]: writes a maglevd config for this topology; every test, the
# benchmark and the demo write theirs with it. The defaults: afxdp on $LB_IF with the lb's
# addresses as GRE sources, the control socket $E2E_DIR/maglevd.sock with the state directory
# next to it (SOCKET without .sock, plus .state: one per maglevd), and the four VIPs web (tcp
# 80) and dns (udp 53) with the three IPv4 backends, web6 (tcp 80) and dns6 (udp 53) with the three
# IPv6 backends, each of weight 1. Options (a later one overrides an earlier one):
#   --mode MODE            dataplane.mode (an unknown one too: tests of the config's errors)
#   --interface IF         dataplane.interface
#   --source ADDR4 ADDR6   dataplane.source_ipv4 and source_ipv6 (a second maglevd host)
#   --workers N            dataplane.workers
#   --nexthop-mac MAC      dataplane.nexthop_mac
#   --conntrack ENTRIES    conntrack.entries
#   --socket PATH          control.socket (and control.state_dir from it, see above)
#   --announce TABLE PROTOCOL DELAY_MS
#                          announce the VIP routes in kernel table TABLE as protocol PROTOCOL,
#                          withdrawn while every backend is down, withdraw_delay DELAY_MS
#   --vip NAME ADDR PROTO PORT BACKENDS
#                          a VIP; BACKENDS is "all" or a list (commas or spaces) of I or I:WEIGHT,
#                          I = 0, 1 ... into BACKENDS4 or BACKENDS6 by ADDR's family (weight 1
#                          if not given). Given any --vip, only the VIPs named are written, in
#                          order
#   --health YAML          the health check (a YAML flow mapping) of the --vip before it
#   --second-chance        second_chance: true for the --vip before it
#   --hash MODE            hash: MODE (5-tuple or source) for the --vip before it
#   --default-vips         the four default VIPs, here in the order of the --vip options
#   --append TEXT          TEXT verbatim at the end (under vips:, e.g. a broken VIP)
e2e_write_config() {
	local f=$1 mode=afxdp ifname=$LB_IF src4=$LB4 src6=$LB6 workers='' nhmac='' ct='' sock
	local an_table='' an_proto='' an_delay='' append=() k
	local names=() addrs=() protos=() ports=() backends=() health=() sc=() hash=()
	sock=$E2E_DIR/maglevd.sock
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--mode) mode=$2; shift 2 ;;
		--interface) ifname=$2; shift 2 ;;
		--source) src4=$2; src6=$3; shift 3 ;;
		--workers) workers=$2; shift 2 ;;
		--nexthop-mac) nhmac=$2; shift 2 ;;
		--conntrack) ct=$2; shift 2 ;;
		--socket) sock=$2; shift 2 ;;
		--announce) an_table=$2; an_proto=$3; an_delay=$4; shift 4 ;;
		--vip)
			[ $# -ge 6 ] || { e2e_log "e2e_write_config: --vip NAME ADDR PROTO PORT BACKENDS"; return 1; }
			names+=("$2") addrs+=("$3") protos+=("$4") ports+=("$5") backends+=("$6") health+=("")
			sc+=("") hash+=("")
			shift 6
			;;
		--hash)
			[ ${#names[@]} -gt 0 ] || { e2e_log "e2e_write_config: $1 before any --vip"; return 1; }
			hash[${#names[@]} - 1]=$2
			shift 2
			;;
		--health | --second-chance)
			[ ${#names[@]} -gt 0 ] || { e2e_log "e2e_write_config: $1 before any --vip"; return 1; }
			if [ "$1" = --health ]; then
				health[${#names[@]} - 1]=$2
				shift
			else
				sc[${#names[@]} - 1]=true
			fi
			shift
			;;
		--default-vips) e2e_default_vips; shift ;;
		--append) append+=("$2"); shift 2 ;;
		*) e2e_log "e2e_write_config: unknown option $1"; return 1 ;;
		esac
	done
	[ ${#names[@]} -gt 0 ] || e2e_default_vips
	{
		echo "# maglevd config written by tests/e2e/lib.sh (prefix $E2E_PREFIX)"
		echo "cluster: { hash_seed: 0x5eed, table_size: 65537 }"
		echo "dataplane:"
		echo "  mode: $mode"
		echo "  interface: $ifname"
		[ -z "$workers" ] || echo "  workers: $workers"
		[ -z "$nhmac" ] || echo "  nexthop_mac: $nhmac"
		echo "  source_ipv4: $src4"
		echo "  source_ipv6: $src6"
		[ -z "$ct" ] || echo "conntrack: { entries: $ct }"
		echo "control: { socket: $sock, state_dir: ${sock%.sock}.state }"
		if [ -n "$an_table" ]; then
			echo "announce:"
			echo "  enabled: true"
			echo "  table: $an_table"
			echo "  protocol: $an_proto"
			echo "  withdraw_when_no_backends: true"
			echo "  withdraw_delay: ${an_delay}ms"
		fi
		echo "vips:"
		for k in "${!names[@]}"; do
			e2e_config_vip "${names[$k]}" "${addrs[$k]}" "${protos[$k]}" "${ports[$k]}" \
				"${backends[$k]}" "${health[$k]}" "${sc[$k]}" "${hash[$k]}"
		done
		[ ${#append[@]} -eq 0 ] || printf '%s\n' "${append[@]}"
	} >"$f"
}

# e2e_default_vips: appends the four default VIPs to e2e_write_config's lists.
e2e_default_vips() {
	names+=(web dns web6 dns6)
	addrs+=("$VIP_WEB4" "$VIP_DNS4" "$VIP_WEB6" "$VIP_DNS6")
	protos+=(tcp udp tcp udp)
	ports+=(80 53 80 53)
	backends+=(all all all all)
	health+=("" "" "" "")
	sc+=("" "" "" "")
	hash+=("" "" "" "")
}

# e2e_config_vip NAME ADDR PROTO PORT BACKENDS [HEALTH [SECOND_CHANCE [HASH]]]: one VIP of
# e2e_write_config (BACKENDS and HEALTH as there; SECOND_CHANCE "true" or empty; HASH 5-tuple,
# source or empty).
e2e_config_vip() {
	local name=$1 addr=$2 proto=$3 port=$4 spec=${5//,/ } hc=${6:-} chance=${7:-} hmode=${8:-}
	local s i fam=BACKENDS4
	case $addr in *:*) fam=BACKENDS6 ;; esac
	local -n e2e_addrs=$fam
	[ "$spec" = all ] && spec=${!e2e_addrs[*]}
	echo "  - name: $name"
	echo "    address: $addr"
	echo "    protocol: $proto"
	echo "    port: $port"
	[ -z "$hc" ] || echo "    health: $hc"
	[ -z "$chance" ] || echo "    second_chance: $chance"
	[ -z "$hmode" ] || echo "    hash: $hmode"
	echo "    backends:"
	for s in $spec; do
		i=${s%%:*}
		[ "$s" = "$i" ] && s=$i:1
		echo "      - { address: ${e2e_addrs[$i]}, weight: ${s#*:} }"
	done
}

# start_maglevd MODE [CONFIG]: runs build/maglevd -c CONFIG in the lb namespace (CONFIG defaults
# to the one e2e_write_config writes for MODE). Sets MAGLEVD_PID, MAGLEVD_CONFIG, MAGLEVD_LOG,
# MAGLEVD_SOCKET. E2E_MAGLEVD_CPUS (a taskset CPU list) confines it, and so its workers, to those
# CPUs. Ready when its control socket exists (or, for afxdp and xdp, its XDP program is on
# $LB_IF); fails with its log if it exits or is not ready within 10 s.
start_maglevd() {
	local mode=$1 i
	MAGLEVD_CONFIG=${2:-$E2E_DIR/maglevd.$mode.yaml}
	MAGLEVD_LOG=$E2E_DIR/maglevd.$mode.log
	MAGLEVD_SOCKET=$E2E_DIR/maglevd.sock
	[ -x "$MAGLEVD" ] || { e2e_log "no $MAGLEVD (run make)"; return 1; }
	[ -n "${2:-}" ] || e2e_write_config "$MAGLEVD_CONFIG" --mode "$mode"
	rm -f "$MAGLEVD_SOCKET"
	if [ -n "${E2E_MAGLEVD_CPUS:-}" ]; then
		bg_in "$NS_LB" "$MAGLEVD_LOG" taskset -c "$E2E_MAGLEVD_CPUS" "$MAGLEVD" -c "$MAGLEVD_CONFIG"
	else
		bg_in "$NS_LB" "$MAGLEVD_LOG" "$MAGLEVD" -c "$MAGLEVD_CONFIG"
	fi
	MAGLEVD_PID=$BG_PID
	for ((i = 0; i < 100; i++)); do
		if ! pid_alive "$MAGLEVD_PID"; then
			wait "$MAGLEVD_PID" 2>/dev/null
			e2e_log "maglevd ($mode) exited at start (rc $?):"
			cat "$MAGLEVD_LOG" >&2
			MAGLEVD_PID=
			return 1
		fi
		[ -S "$MAGLEVD_SOCKET" ] && return 0
		if [ "$mode" != afpacket ] && run_in "$NS_LB" ip link show "$LB_IF" | grep -q 'prog/xdp'; then
			sleep 0.3 # sockets bound right after the program is attached
			return 0
		fi
		sleep 0.1
	done
	e2e_log "maglevd ($mode) not ready after 10 s:"
	cat "$MAGLEVD_LOG" >&2
	return 1
}

# stop_maglevd: SIGTERM, waits (5 s, then SIGKILL); returns maglevd's exit status.
stop_maglevd() {
	local rc=0
	[ -n "$MAGLEVD_PID" ] || return 0
	kill_pid "$MAGLEVD_PID" 5 || rc=$?
	MAGLEVD_PID=
	return $rc
}

# lb_xdp_attached: true if some XDP program is attached to the lb's interface.
lb_xdp_attached() {
	run_in "$NS_LB" ip link show "$LB_IF" | grep -q 'prog/xdp'
}

# link_stat NS DEV FIELD: one counter of DEV (rx_packets, tx_packets, rx_bytes, ...) from sysfs.
link_stat() {
	run_in "$1" cat "/sys/class/net/$2/statistics/$3"
}

# e2e_write_synflood FILE NET: a trafgen config of one TCP SYN to the web VIP with a random source
# address in NET.0.0/16 (NET is "A.B"), source port, IP id and sequence number, from the client to
# the router. The router should blackhole NET.0.0/16, where the backends' answers go.
e2e_write_synflood() {
	local src dst net=$2
	src=$(run_in "$NS_CLIENT" cat "/sys/class/net/$CLIENT_IF/address")
	dst=$(run_in "$NS_ROUTER" cat "/sys/class/net/$ROUTER_CLIENT_IF/address")
	{
		echo "{"
		echo "  0x${dst//:/, 0x},"
		echo "  0x${src//:/, 0x},"
		echo "  c16(0x0800),"
		echo "  0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33),"
		echo "  ${net//./, }, drnd(2),"
		echo "  ${VIP_WEB4//./, },"
		echo "  drnd(2), c16(80), drnd(4), c32(0),"
		echo "  0x50, 0x02, c16(64240), csumtcp(14, 34), c16(0),"
		echo "}"
	} >"$1"
}

# synflood_start FILE PACKETS PPS: trafgen sends PACKETS frames of FILE (e2e_write_synflood) at
# PPS from the client in the background (BG_PID), killed if it takes three times as long as it
# should plus 10 s (a loaded machine sends slower than asked).
synflood_start() {
	bg_in "$NS_CLIENT" "$E2E_DIR/flood.log" timeout $(($2 / $3 * 3 + 10)) trafgen --dev "$CLIENT_IF" \
		--conf "$1" --num "$2" --rate "${3}pps" --cpus 1 --no-cpu-stats
}

# lb_counter SOCKET NAME: the counter NAME (maglevctl counters, summed over workers) of the
# maglevd at control socket SOCKET.
lb_counter() {
	"$MAGLEVCTL" counters -s "$1" | awk -v n="$2" '$1 == n { print $2 }'
}

# clients_start TAG OPEN KEEP AVOID [PERIOD]: long-lived keep-alive clients of the web VIP in the
# background (tests/e2e/control_clients.py: OPEN opened, KEEP kept, none on backend AVOID, a GET
# every PERIOD seconds, default 0.1); waits until ready and prints "ready K".
clients_start() {
	local tag=$1
	rm -f "$E2E_DIR/$tag.ready" "$E2E_DIR/$tag.stop" "$E2E_DIR/$tag.json"
	bg_in "$NS_CLIENT" "$E2E_DIR/$tag.log" "$E2E_PYTHON" "$E2E_ROOT/tests/e2e/control_clients.py" \
		"$VIP_WEB4" 80 --open "$2" --keep "$3" --avoid "$4" --ready "$E2E_DIR/$tag.ready" \
		--stop "$E2E_DIR/$tag.stop" --out "$E2E_DIR/$tag.json" --period "${5:-0.1}" \
		--max-seconds 300
	echo "$BG_PID" >"$E2E_DIR/$tag.pid"
	wait_for 60 test -s "$E2E_DIR/$tag.ready" || { cat "$E2E_DIR/$tag.log" >&2; return 1; }
	cat "$E2E_DIR/$tag.ready"
}

# clients_stop TAG: asks the clients to finish (each closes with a FIN) and waits for the summary.
clients_stop() {
	local tag=$1 pid
	pid=$(cat "$E2E_DIR/$tag.pid")
	touch "$E2E_DIR/$tag.stop"
	wait_for 20 test -s "$E2E_DIR/$tag.json"
	wait "$pid" 2>/dev/null
	[ -s "$E2E_DIR/$tag.json" ] || { cat "$E2E_DIR/$tag.log" >&2; return 1; }
}

# clients_report TAG: prints "conns errors changed max_gap_ms backends open_errors" from the
# summary (backends comma-separated, "-" if none; open_errors: connections that failed to open);
# each error is listed on stderr.
clients_report() {
	"$E2E_PYTHON" - "$E2E_DIR/$1.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
c = s["conns"]
errs = sum(len(x["errors"]) for x in c)
changed = sum(1 for x in c if x["changed"])
gap = max([x["max_gap_ms"] for x in c] or [0])
names = sorted(set(x["backend"] for x in c))
print(len(c), errs, changed, gap, ",".join(names) or "-", len(s["open_errors"]))
for x in c:
    for e in x["errors"]:
        print("  conn %d (%s): %s" % (x["sport"], x["backend"], e), file=sys.stderr)
for e in s["open_errors"]:
    print("  open: %s" % e, file=sys.stderr)
EOF
}
