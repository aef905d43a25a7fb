#!/usr/bin/env bash
# maglevctl table / diff as a user runs them: exit codes, JSON shapes, errors on stderr, options
# before or after the command, and the digest recomputed by the Python reference in docs/maglev.md
# (an independent implementation over libxxhash). No root and no namespaces needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
SKIP=4
[ -x build/maglevctl ] || { echo "build/maglevctl missing (run make)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ctl=build/maglevctl
example=docs/examples/maglevd.yaml

$ctl --help | grep -q '^  table ' || { echo "--help lacks table"; exit 1; }
$ctl --help | grep -q '^  diff ' || { echo "--help lacks diff"; exit 1; }

# Human table and JSON table: slots add up to M, 16-hex-digit digests.
$ctl table -c "$example" | grep -q 'digest [0-9a-f]\{16\}'
$ctl table -c "$example" --json >"$tmp/table.json"
/usr/bin/python3 - "$tmp/table.json" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
assert set(doc) == {"vips"}, doc.keys()
for v in doc["vips"]:
    assert set(v) == {"name", "table_size", "digest", "backends"}, v.keys()
    assert re.fullmatch(r"[0-9a-f]{16}", v["digest"]), v["digest"]
    assert sum(b["slots"] for b in v["backends"]) == v["table_size"], v["name"]
    for b in v["backends"]:
        assert set(b) == {"address", "weight", "slots"}, b.keys()
print("table JSON ok:", len(doc["vips"]), "VIPs")
PY

# The documented Python reference gives the same digest (VIP dns: M 251, two IPv4 backends).
sed -n '/^```python$/,/^```$/p' docs/maglev.md | sed '1d;$d' | sed '/^bs = /,$d' >"$tmp/ref.py"
cat >>"$tmp/ref.py" <<'PY'
import ipaddress, json, sys
doc = json.load(open(sys.argv[1]))
for v in doc["vips"]:
    if v["name"] != "dns":
        continue
    bs = [(ipaddress.ip_address(b["address"]).packed, b["weight"]) for b in v["backends"]]
    got = "%016x" % digest(build(bs, v["table_size"], 0x5eed), bs)
    assert got == v["digest"], (got, v["digest"])
    print("python reference digest matches:", got)
PY
if /usr/bin/python3 -c 'import ctypes; ctypes.CDLL("libxxhash.so.0")' 2>/dev/null; then
	/usr/bin/python3 "$tmp/ref.py" "$tmp/table.json"
else
	echo "libxxhash.so.0 not loadable from Python: reference check skipped"
fi

# diff: the same file moves nothing; dropping a backend moves its slots and some excess.
$ctl diff "$example" "$example" --json >"$tmp/same.json"
/usr/bin/python3 -c '
import json, sys
for v in json.load(open(sys.argv[1]))["vips"]:
    assert v["changed_slots"] == 0 and v["excess_slots"] == 0, v
print("diff of a file with itself: nothing moves")' "$tmp/same.json"
sed '/- address: 198.18.2.2/d' "$example" >"$tmp/less.yaml"
$ctl diff "$example" "$tmp/less.yaml"
$ctl diff "$example" "$tmp/less.yaml" --json >"$tmp/less.json"
/usr/bin/python3 -c '
import json, sys
d = {v["name"]: v for v in json.load(open(sys.argv[1]))["vips"]}
dns = d["dns"]
keys = {"name", "status", "old_table_size", "new_table_size", "changed_slots", "changed_pct",
        "excess_slots", "excess_pct"}
assert set(dns) == keys, dns.keys()
assert dns["status"] == "both" and dns["changed_slots"] > 0 and dns["excess_slots"] == 0, dns
assert d["web"]["changed_slots"] == 0, d["web"]
print("diff after removing a backend: dns", dns["changed_slots"], "slots moved, none excess")' \
	"$tmp/less.json"

# A bad config: exit 1, the file and line on stderr, nothing on stdout.
printf 'cluster:\n  table_size: 65536\n' >"$tmp/bad.yaml"
if $ctl table -c "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"; then
	echo "bad config accepted"
	exit 1
fi
grep -q 'bad.yaml:2:' "$tmp/err" || { echo "error lacks file:line:"; cat "$tmp/err"; exit 1; }
[ ! -s "$tmp/out" ] || { echo "output on stdout for a bad config"; exit 1; }
if $ctl diff "$example" "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; then
	echo "diff with a bad config succeeded"
	exit 1
fi
grep -q 'bad.yaml:2:' "$tmp/err"
if $ctl table -c "$example" --vip nope >/dev/null 2>"$tmp/err"; then
	echo "unknown VIP accepted"
	exit 1
fi
grep -q "no VIP named 'nope'" "$tmp/err"

# Options may come before the command: the same table either way.
$ctl table -c "$example" >"$tmp/after"
$ctl -c "$example" table >"$tmp/before"
cmp -s "$tmp/after" "$tmp/before" || { echo "-c before 'table' gives another table"; exit 1; }

# Exit status: 2 for every usage error, 1 when a well-formed command fails.
exit_is() {
	local want=$1 rc=0
	shift
	"$ctl" "$@" >/dev/null 2>"$tmp/err" || rc=$?
	[ "$rc" -eq "$want" ] && [ -s "$tmp/err" ] && return 0
	echo "maglevctl $*: exit $rc, want $want; stderr: $(cat "$tmp/err")"
	exit 1
}
exit_is 2
exit_is 2 frobnicate
exit_is 2 -x status
exit_is 2 -s
exit_is 2 -s "$tmp/none.sock"
exit_is 2 status extra
exit_is 2 status --bogus
exit_is 2 weight web 198.18.1.11 70000
exit_is 2 explain web 1.2.3:80
exit_is 2 table
exit_is 2 diff "$example"
exit_is 2 decap frobnicate
exit_is 2 decap attach
exit_is 1 -s "$tmp/none.sock" status
exit_is 1 status -s "$tmp/none.sock"
exit_is 1 table -c "$tmp/bad.yaml"
echo "maglevctl offline: ok"
