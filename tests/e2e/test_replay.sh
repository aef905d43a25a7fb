#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# maglevd --replay over the scapy-built fixture frames: every transmitted frame must equal the
# independently built expected frame, in order, and the counters are printed (hash: source VIPs
# among them, so the replay chooses as the pipeline does). No root needed.
# Shared setup: the fixture captures and a replay config. The cases (E2E_CASES selects among
# them; see lib.sh), each needing only that setup:
#   frames           every frame out byte-identical to the expected one; the counters printed
#   broadcast_first  a capture that starts with a broadcast ARP gives the same output
#   no_nexthop_mac   without nexthop_mac the replay refuses to run, with a clear message
set -u
. "$(dirname "$0")/lib.sh"
cd "$E2E_ROOT" || exit 1

# replay IN OUT [CONFIG]: maglevd --replay IN into OUT; its report in OUT.report.
replay() {
	"$MAGLEVD" -c "${3:-$tmp/maglevd.yaml}" --replay "$1" --output "$2" >"$2.report"
}

# replayed: $tmp/out.pcap, the replay of the fixtures (made once).
replayed() {
	[ -s "$tmp/out.pcap" ] || replay "$tmp/in.pcap" "$tmp/out.pcap"
}

frames_equal() { # frames_equal GOT WANT: same frames, same bytes, same timestamps
	"$E2E_PYTHON" - "$1" "$2" <<'PY'
import sys
from scapy.all import rdpcap
got, want = rdpcap(sys.argv[1]), rdpcap(sys.argv[2])
assert len(got) == len(want), "frames out: %d, expected %d" % (len(got), len(want))
for i, (g, w) in enumerate(zip(got, want)):
    assert bytes(g) == bytes(w), "frame %d differs:\n%s\n%s" % (i, bytes(g).hex(), bytes(w).hex())
    assert abs(float(g.time) - float(w.time)) < 1e-6, "frame %d timestamp" % i
print("replay: %d frames byte-identical to the expected ones" % len(got))
PY
}

case_frames() {
	check "replay of the fixture frames runs" replay "$tmp/in.pcap" "$tmp/out.pcap"
	cat "$tmp/out.pcap.report"
	check "report has tx_gre_ipv4" grep -q '^tx_gre_ipv4 ' "$tmp/out.pcap.report"
	check "report has tx_retarget" grep -q '^tx_retarget ' "$tmp/out.pcap.report"
	check "report has drop_ipv4_bad_len" grep -q '^drop_ipv4_bad_len ' "$tmp/out.pcap.report"
	check "every frame out byte-identical to the expected one, in order" \
		frames_equal "$tmp/out.pcap" "$tmp/expected.pcap"
}

# Our MAC is the first unicast destination: a capture that starts with a broadcast ARP gives the
# same output (with the first frame's destination, every VIP frame would be passed).
case_broadcast_first() {
	"$E2E_PYTHON" - "$tmp/in.pcap" "$tmp/in_bcast.pcap" <<'PY'
import logging
import sys
from scapy.all import rdpcap, wrpcap, Ether, ARP, Raw
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
frames = [Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:aa") / ARP(psrc="198.18.100.7", pdst="198.18.0.1")]
frames += rdpcap(sys.argv[1])
out = []
for i, f in enumerate(frames):
    out.append(Raw(bytes(f)))
    out[-1].time = frames[1].time - 1 if i == 0 else f.time
wrpcap(sys.argv[2], out, linktype=1)
PY
	replayed || { bad "replay of the fixture frames"; return; }
	check "replay after a broadcast first frame runs" replay "$tmp/in_bcast.pcap" "$tmp/out_bcast.pcap"
	check "replay after a broadcast first frame gives the same output" \
		cmp "$tmp/out.pcap" "$tmp/out_bcast.pcap"
}

# Without nexthop_mac the replay refuses to run, with a clear message.
case_no_nexthop_mac() {
	sed '/nexthop_mac/d' "$tmp/maglevd.yaml" >"$tmp/nomac.yaml"
	if replay "$tmp/in.pcap" "$tmp/x.pcap" "$tmp/nomac.yaml" 2>"$tmp/err"; then
		bad "replay without nexthop_mac refused"
	else
		ok "replay without nexthop_mac refused"
	fi
	check "its message: nexthop_mac is required ($(cat "$tmp/err"))" grep -q "nexthop_mac is required" "$tmp/err"
}

e2e_cases frames broadcast_first no_nexthop_mac
[ -x "$MAGLEVD" ] || e2e_abort "$MAGLEVD exists (run make)"
"$E2E_PYTHON" -c 'import scapy' 2>/dev/null || e2e_skip "python3-scapy missing"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$E2E_PYTHON" tests/unit/fixtures/gen_pipeline_fixtures.py --pcap "$tmp" ||
	e2e_abort "fixture captures generated"
cat >"$tmp/maglevd.yaml" <<'YAML'
cluster: { hash_seed: 0x5eed, table_size: 251 }
dataplane:
  source_ipv4: 198.18.0.1
  source_ipv6: "2001:db8::1"
  ttl: 64
  mtu: 1500
  nexthop_mac: "02:00:00:00:00:02"
vips:
  - { name: web4, address: 203.0.113.10, protocol: tcp, port: 80, backends: [ { address: 198.18.1.11, weight: 1 } ] }
  - { name: web4v6, address: 203.0.113.11, protocol: tcp, port: 80, backends: [ { address: "2001:db8:1::11", weight: 1 } ] }
  - { name: dns4, address: 203.0.113.12, protocol: udp, port: 0, backends: [ { address: 198.18.1.12, weight: 1 } ] }
  - { name: web6, address: "2001:db8:100::10", protocol: tcp, port: 443, backends: [ { address: "2001:db8:1::13", weight: 1 } ] }
  - { name: web6v4, address: "2001:db8:100::11", protocol: udp, port: 53, backends: [ { address: 198.18.1.14, weight: 1 } ] }
  - { name: srcweb, address: 203.0.113.30, protocol: tcp, port: 80, hash: source,
      backends: [ { address: 198.18.3.1 }, { address: 198.18.3.2 }, { address: 198.18.3.3 }, { address: 198.18.3.4 } ] }
  - { name: tupweb, address: 203.0.113.31, protocol: tcp, port: 80, hash: 5-tuple,
      backends: [ { address: 198.18.3.1 }, { address: 198.18.3.2 }, { address: 198.18.3.3 }, { address: 198.18.3.4 } ] }
  - { name: srcdns6, address: "2001:db8:100::31", protocol: udp, port: 0, hash: source,
      backends: [ { address: "2001:db8:3::1" }, { address: "2001:db8:3::2" }, { address: "2001:db8:3::3" }, { address: "2001:db8:3::4" } ] }
YAML

e2e_run_cases
e2e_summary
