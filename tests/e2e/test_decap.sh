#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end test of the backend XDP GRE decapsulation alone (no maglevd): from the lb namespace,
# scapy sends GRE-wrapped packets (outer lb -> be1, inner client -> VIP) and the client must get
# the replies straight from be1 with the VIP as source (DSR). Also: non-GRE traffic to the backend
# keeps working, the counters move, and `maglevctl decap detach` removes the program.
# Shared setup: the topology (every backend with xdp_decap attached), be1's servers. The cases
# (E2E_CASES selects among them; see lib.sh), in the order they run; each needs only that setup:
#   attached   xdp_decap stays attached on be1 after maglevctl exited
#   gre_dsr    GRE-wrapped ICMP and UDP to the VIPs (IPv4, IPv6, IPv6 in IPv4) answered by be1
#              from the VIP straight to the client; GRE to a non-VIP or with a key is not
#              decapsulated; the counters move
#   plain      be1's own addresses answer ping and HTTP with xdp_decap attached
#   errors     a missing device, no root, no BPF object, a program the verifier refuses, a bad
#              config, a bad VIP: each a clear error (the verifier case reattaches be2's program)
#   skb_mode   attach --mode skb -c CONFIG (generic XDP, the VIPs from a maglevd config) works
#   detach     detach removes the program; then the kernel does not answer GRE
# Exit 0 pass, 4 skip (not root, no scapy, nothing built), 1 fail.
set -u
. "$(dirname "$0")/lib.sh"

BE=${NS_BACKENDS[0]}
BE_ADDR4=${BACKENDS4[0]}
BE_ADDR6=${BACKENDS6[0]}

# decap_counter NAME: one counter of be1's program (empty if unreachable).
decap_counter() {
	run_in "$BE" "$MAGLEVCTL" decap status "$BE_IF" | awk -v n="$1" '$1 == n { print $2 }'
}

# capture_start NS NAME: tcpdump on NS's eth0 into $E2E_DIR/NAME.pcap; sets CAP_PID.
capture_start() {
	local ns=$1 name=$2
	bg_in "$ns" "$E2E_DIR/$name.tcpdump.log" tcpdump -i eth0 -n -U -w "$E2E_DIR/$name.pcap" \
		'icmp or icmp6 or udp or proto 47'
	CAP_PID=$BG_PID
	wait_for 5 grep -q "listening on" "$E2E_DIR/$name.tcpdump.log"
}

capture_stop() {
	sleep 0.5
	kill_pid "$1" 3 || true
}

# vip_replies_at_least PCAP N: PCAP holds at least N packets from a VIP.
vip_replies_at_least() {
	[ "$(tcpdump -n -r "$1" 'src net 203.0.113.0/24 or src net 2001:db8:100::/64' 2>/dev/null |
		wc -l)" -ge "$2" ]
}

# send_gre: from the lb namespace, GRE-wrapped requests to be1 (scapy, raw IP sockets).
# Tag bytes in the payloads let the checks find each reply.
send_gre() {
	run_in "$NS_LB" "$E2E_PYTHON" - "$LB4" "$BE_ADDR4" "$LB6" "$BE_ADDR6" "$CLIENT4" "$CLIENT6" \
		"$VIP_WEB4" "$VIP_DNS4" "$VIP_WEB6" "$VIP_DNS6" "$@" <<'EOF'
import sys
from scapy.all import IP, IPv6, GRE, ICMP, UDP, ICMPv6EchoRequest, Raw, send, conf
conf.verb = 0
lb4, be4, lb6, be6, c4, c6, web4, dns4, web6, dns6 = sys.argv[1:11]
what = sys.argv[11:]
pkts = []
if "vip" in what:
    pkts += [
        IP(src=lb4, dst=be4) / GRE(proto=0x0800) / IP(src=c4, dst=web4) / ICMP(id=0x4d47, seq=1) / Raw(b"decap-icmp4"),
        IP(src=lb4, dst=be4) / GRE(proto=0x0800) / IP(src=c4, dst=dns4) / UDP(sport=40001, dport=53) / Raw(b"decap-udp4"),
        IPv6(src=lb6, dst=be6) / GRE(proto=0x86DD) / IPv6(src=c6, dst=web6) / ICMPv6EchoRequest(id=0x4d47, seq=2, data=b"decap-icmp6"),
        IPv6(src=lb6, dst=be6) / GRE(proto=0x86DD) / IPv6(src=c6, dst=dns6) / UDP(sport=40002, dport=53) / Raw(b"decap-udp6"),
        # outer IPv4, inner IPv6: the outer family does not have to match the inner one
        IP(src=lb4, dst=be4) / GRE(proto=0x86DD) / IPv6(src=c6, dst=dns6) / UDP(sport=40003, dport=53) / Raw(b"decap-udp64"),
    ]
if "novip" in what:
    # inner destination not a VIP: passed untouched (and the kernel, without GRE, drops it)
    pkts.append(IP(src=lb4, dst=be4) / GRE(proto=0x0800) / IP(src=c4, dst="203.0.113.99") / ICMP(id=0x4d47, seq=9) / Raw(b"decap-novip"))
if "key" in what:
    # GRE with the key flag (RFC 2890): not decapsulated
    pkts.append(IP(src=lb4, dst=be4) / GRE(proto=0x0800, key_present=1, key=7) / IP(src=c4, dst=web4) / ICMP(id=0x4d47, seq=10) / Raw(b"decap-key"))
for p in pkts:
    send(p)
EOF
}

# replies PCAP: prints one line per echo reply in PCAP: "SRC DST PAYLOAD" (ICMP/ICMPv6 echo
# replies, UDP from port 53). Payloads are read as raw bytes (scapy would parse port 53 as DNS).
replies() {
	"$E2E_PYTHON" - "$1" <<'EOF'
import sys
from scapy.all import rdpcap, IP, IPv6, GRE
for p in rdpcap(sys.argv[1]):
    if GRE in p:
        print("GRE", p.summary())
        continue
    if IP in p:
        l3 = p[IP]
        proto = l3.proto
    elif IPv6 in p:
        l3 = p[IPv6]
        proto = l3.nh
    else:
        continue
    raw = bytes(l3.payload)
    if proto == 1 and raw[:1] == b"\x00":        # ICMP echo reply
        data = raw[8:]
    elif proto == 58 and raw[:1] == b"\x81":     # ICMPv6 echo reply
        data = raw[8:]
    elif proto == 17 and raw[:2] == b"\x00\x35":  # UDP from port 53
        data = raw[8:]
    else:
        continue
    print(l3.src, l3.dst, data.decode(errors="replace"))
EOF
}

case_attached() {
	if run_in "$BE" ip link show "$BE_IF" | grep -q 'prog/xdp.*name xdp_decap'; then
		ok "xdp_decap attached on be1 after maglevctl exited"
	else
		bad "xdp_decap not attached on be1"
	fi
}

case_gre_dsr() {
	local d0 p0 u0 d1 p1 u1 out
	d0=$(decap_counter decapsulated)
	p0=$(decap_counter passed)
	u0=$(decap_counter unsupported)
	capture_start "$NS_CLIENT" client || { bad "tcpdump on client"; return; }
	local cpid=$CAP_PID
	capture_start "$NS_LB" lb || { bad "tcpdump on lb"; return; }
	local lpid=$CAP_PID
	send_gre vip novip key || bad "scapy send"
	# Replies may wait for neighbour resolution on the way (and for CPU on a loaded machine).
	wait_for 5 vip_replies_at_least "$E2E_DIR/client.pcap" 5
	capture_stop "$cpid"
	capture_stop "$lpid"
	out=$(replies "$E2E_DIR/client.pcap")
	echo "$out" | sed 's/^/     client got: /'
	check_reply "$out" "$VIP_WEB4 $CLIENT4 decap-icmp4" "ICMP echo to $VIP_WEB4 answered by be1 from the VIP"
	check_reply "$out" "$VIP_DNS4 $CLIENT4 decap-udp4" "UDP to $VIP_DNS4:53 echoed from the VIP"
	check_reply "$out" "$VIP_WEB6 $CLIENT6 decap-icmp6" "ICMPv6 echo to $VIP_WEB6 answered from the VIP"
	check_reply "$out" "$VIP_DNS6 $CLIENT6 decap-udp6" "UDP to [$VIP_DNS6]:53 echoed from the VIP"
	check_reply "$out" "$VIP_DNS6 $CLIENT6 decap-udp64" "IPv6 inside IPv4 GRE echoed from the VIP"
	if echo "$out" | grep -q "decap-novip\|decap-key"; then
		bad "a reply came for GRE that must not be decapsulated"
	else
		ok "no reply for GRE to a non-VIP or with the key flag"
	fi
	if replies "$E2E_DIR/lb.pcap" | grep -q "decap-"; then
		bad "a reply crossed the lb namespace (not DSR)"
	else
		ok "no reply crossed the lb namespace (DSR)"
	fi
	d1=$(decap_counter decapsulated)
	p1=$(decap_counter passed)
	u1=$(decap_counter unsupported)
	[ "$((d1 - d0))" -eq 5 ] && ok "decapsulated counter +5 ($d0 -> $d1)" ||
		bad "decapsulated counter $d0 -> $d1, expected +5"
	[ "$((p1 - p0))" -ge 1 ] && ok "passed counter moved ($p0 -> $p1)" ||
		bad "passed counter $p0 -> $p1"
	[ "$((u1 - u0))" -eq 1 ] && ok "unsupported counter +1 for the keyed GRE ($u0 -> $u1)" ||
		bad "unsupported counter $u0 -> $u1, expected +1"
}

check_reply() {
	if echo "$1" | grep -qxF "$2"; then
		ok "$3"
	else
		bad "$3 (no '$2')"
	fi
}

case_plain() {
	run_in "$NS_CLIENT" ping -c2 -i0.2 -W1 "$BE_ADDR4" >/dev/null &&
		ok "ping client -> be1 own address with xdp_decap attached" ||
		bad "ping client -> be1 $BE_ADDR4"
	run_in "$NS_CLIENT" ping -6 -c2 -i0.2 -W1 "$BE_ADDR6" >/dev/null &&
		ok "ping6 client -> be1 own address" || bad "ping6 client -> be1 $BE_ADDR6"
	local body
	body=$(run_in "$NS_CLIENT" curl -s -m3 "http://$BE_ADDR4/")
	[ "$body" = be1 ] && ok "HTTP to be1's own address answered 'be1'" ||
		bad "HTTP to be1's own address: '$body'"
}

case_detach() {
	local out msg rc
	run_in "$BE" "$MAGLEVCTL" decap detach "$BE_IF" >/dev/null || bad "decap detach failed"
	if run_in "$BE" ip link show "$BE_IF" | grep -q 'prog/xdp'; then
		bad "an XDP program is still on be1 after detach"
	else
		ok "decap detach removed the program"
	fi
	msg=$(run_in "$BE" "$MAGLEVCTL" decap status "$BE_IF" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "not attached" &&
		ok "decap status after detach fails: '$msg'" || bad "decap status after detach: rc $rc '$msg'"
	# Without the program the kernel (no GRE) must not answer: the replies above were its doing.
	capture_start "$NS_CLIENT" client2 || { bad "tcpdump on client"; return; }
	local cpid=$CAP_PID
	send_gre vip
	sleep 1
	capture_stop "$cpid"
	out=$(replies "$E2E_DIR/client2.pcap")
	[ -z "$out" ] && ok "no replies to GRE once detached" || bad "replies without the program: $out"
}

case_skb_mode() {
	local out d0 d1
	run_in "$BE" "$MAGLEVCTL" decap detach "$BE_IF" >/dev/null || bad "decap detach failed"
	# The VIPs from a maglevd config this time.
	e2e_write_config "$E2E_DIR/maglevd.yaml"
	out=$(run_in "$BE" "$MAGLEVCTL" decap attach "$BE_IF" --mode skb -c "$E2E_DIR/maglevd.yaml" 2>&1)
	echo "$out" | grep -q "attached in skb mode, 4 VIPs" && ok "attach --mode skb -c CONFIG: '$out'" ||
		bad "attach --mode skb -c CONFIG: '$out'"
	run_in "$BE" ip link show "$BE_IF" | grep -q xdpgeneric && ok "generic XDP on be1" ||
		bad "no generic XDP on be1"
	d0=$(decap_counter decapsulated)
	capture_start "$NS_CLIENT" client_skb || { bad "tcpdump on client"; return; }
	local cpid=$CAP_PID
	send_gre vip
	wait_for 5 vip_replies_at_least "$E2E_DIR/client_skb.pcap" 5
	capture_stop "$cpid"
	out=$(replies "$E2E_DIR/client_skb.pcap")
	[ "$(echo "$out" | grep -c decap-)" -eq 5 ] && ok "skb mode: 5 replies from the VIPs" ||
		bad "skb mode: replies '$out'"
	d1=$(decap_counter decapsulated)
	[ "$((d1 - d0))" -eq 5 ] && ok "skb mode: decapsulated +5" ||
		bad "skb mode: decapsulated $d0 -> $d1"
}

case_errors() {
	local msg rc
	msg=$(run_in "$BE" "$MAGLEVCTL" decap attach nosuchdev --vip "$VIP_WEB4" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "no such device 'nosuchdev'" &&
		ok "attach to a missing device: '$msg'" || bad "attach nosuchdev: rc $rc '$msg'"
	msg=$(run_in "$BE" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$MAGLEVCTL" decap attach "$BE_IF" --vip "$VIP_WEB4" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "root" && ok "attach as non-root: '$msg'" ||
		bad "attach as non-root: rc $rc '$msg'"
	msg=$(MAGLEV_BPF_DIR=$E2E_DIR run_in "$BE" "$MAGLEVCTL" decap attach "$BE_IF" --vip "$VIP_WEB4" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "no BPF object" && ok "missing BPF object: '$msg'" ||
		bad "missing BPF object: rc $rc '$msg'"
	# A program the verifier must refuse (reads the packet without a bounds check).
	mkdir -p "$E2E_DIR/badbpf"
	cat >"$E2E_DIR/badbpf/bad.bpf.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;

	return p[100] ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
EOF
	if clang -O2 -target bpf -I"/usr/include/$(cc -dumpmachine)" -c "$E2E_DIR/badbpf/bad.bpf.c" \
		-o "$E2E_DIR/badbpf/xdp_decap.bpf.o" 2>/dev/null; then
		backend_decap_detach 1 >/dev/null
		msg=$(MAGLEV_BPF_DIR=$E2E_DIR/badbpf run_in "${NS_BACKENDS[1]}" "$MAGLEVCTL" decap attach \
			"$BE_IF" --vip "$VIP_WEB4" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] && echo "$msg" | grep -q "rejected by the verifier" &&
			echo "$msg" | grep -q "invalid access to packet" &&
			! run_in "${NS_BACKENDS[1]}" ip link show "$BE_IF" | grep -q prog/xdp; then
			ok "verifier rejection: '$(echo "$msg" | tail -1)' (log shown)"
		else
			bad "verifier rejection: rc $rc '$msg'"
		fi
		backend_decap_attach 1
	else
		skipped "verifier rejection (no clang)"
	fi
	printf 'vips:\n  - name: web\n    adress: 203.0.113.10\n' >"$E2E_DIR/bad.yaml"
	msg=$(run_in "$BE" "$MAGLEVCTL" decap attach "$BE_IF" -c "$E2E_DIR/bad.yaml" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "bad.yaml:3" && ok "bad config: '$msg'" ||
		bad "bad config: rc $rc '$msg'"
	msg=$(run_in "$BE" "$MAGLEVCTL" decap attach "$BE_IF" --vip 203.0.113.300 2>&1)
	rc=$?
	[ $rc -ne 0 ] && echo "$msg" | grep -q "203.0.113.300" && ok "bad VIP address: '$msg'" ||
		bad "bad VIP: rc $rc '$msg'"
}

e2e_cases attached gre_dsr plain errors skb_mode detach
e2e_init
"$E2E_PYTHON" -c 'import scapy.all' 2>/dev/null || e2e_skip "no python3-scapy ($E2E_PYTHON)"
[ -x "$MAGLEVCTL" ] || e2e_skip "no $MAGLEVCTL (run make)"
[ -f "$E2E_BUILD/bpf/xdp_decap.bpf.o" ] || e2e_skip "no $E2E_BUILD/bpf/xdp_decap.bpf.o (run make)"
e2e_topology_up || e2e_abort "topology"
start_backend_servers 0 || e2e_abort "backend servers"
e2e_run_cases
e2e_summary
