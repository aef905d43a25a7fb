#!/usr/bin/env bash
# maglevd --replay over the scapy-built fixture frames: every transmitted frame must equal the
# independently built expected frame, in order, and the counters are printed. No root needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
SKIP=4
[ -x build/maglevd ] || { echo "build/maglevd missing (run make)"; exit 1; }
/usr/bin/python3 -c 'import scapy' 2>/dev/null || { echo "python3-scapy missing"; exit $SKIP; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 tests/unit/fixtures/gen_pipeline_fixtures.py --pcap "$tmp"
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
YAML

build/maglevd -c "$tmp/maglevd.yaml" --replay "$tmp/in.pcap" --output "$tmp/out.pcap" | tee "$tmp/report"
grep -q '^tx_gre_ipv4 ' "$tmp/report"
grep -q '^tx_retarget ' "$tmp/report"
grep -q '^drop_ipv4_bad_len ' "$tmp/report"

/usr/bin/python3 - "$tmp/out.pcap" "$tmp/expected.pcap" <<'PY'
import sys
from scapy.all import rdpcap
got, want = rdpcap(sys.argv[1]), rdpcap(sys.argv[2])
assert len(got) == len(want), "frames out: %d, expected %d" % (len(got), len(want))
for i, (g, w) in enumerate(zip(got, want)):
    assert bytes(g) == bytes(w), "frame %d differs:\n%s\n%s" % (i, bytes(g).hex(), bytes(w).hex())
    assert abs(float(g.time) - float(w.time)) < 1e-6, "frame %d timestamp" % i
print("replay: %d frames byte-identical to the expected ones" % len(got))
PY

# Our MAC is the first unicast destination: a capture that starts with a broadcast ARP gives the
# same output (with the first frame's destination, every VIP frame would be passed).
/usr/bin/python3 - "$tmp/in.pcap" "$tmp/in_bcast.pcap" <<'PY'
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
build/maglevd -c "$tmp/maglevd.yaml" --replay "$tmp/in_bcast.pcap" --output "$tmp/out_bcast.pcap" >/dev/null
cmp "$tmp/out.pcap" "$tmp/out_bcast.pcap" || { echo "replay after a broadcast first frame differs"; exit 1; }

# Without nexthop_mac the replay refuses to run, with a clear message.
sed '/nexthop_mac/d' "$tmp/maglevd.yaml" >"$tmp/nomac.yaml"
if build/maglevd -c "$tmp/nomac.yaml" --replay "$tmp/in.pcap" --output "$tmp/x.pcap" 2>"$tmp/err"; then
	echo "replay without nexthop_mac succeeded"; exit 1
fi
grep -q "nexthop_mac is required" "$tmp/err"
echo "test_replay: ok"
