#!/usr/bin/env bash
# Checks `make install`: into a staging DESTDIR (every file in its place), then into a scratch
# PREFIX whose maglevctl must find the installed BPF object with no build tree and no
# $MAGLEV_BPF_DIR (as root it attaches xdp_decap to lo in a scratch network namespace).
# Usage: scripts/check-install.sh   (E2E_PREFIX names the namespace, default "mgi")
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${E2E_PREFIX:-mgi}
tmp=$(mktemp -d)
ns="$prefix-install"
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "check-install: $*" >&2
	exit 1
}

make -s install DESTDIR="$tmp/stage" >/dev/null
for f in usr/local/sbin/maglevd usr/local/sbin/maglevctl \
	usr/local/lib/maglevd/bpf/xdp_vip.bpf.o usr/local/lib/maglevd/bpf/xdp_decap.bpf.o \
	etc/maglevd/maglevd.yaml.example usr/local/lib/systemd/system/maglevd.service; do
	[ -f "$tmp/stage/$f" ] || fail "DESTDIR install lacks /$f"
done
grep -qx 'ExecStart=/usr/local/sbin/maglevd -c /etc/maglevd/maglevd.yaml' \
	"$tmp/stage/usr/local/lib/systemd/system/maglevd.service" || fail "unit's ExecStart"
grep -qx 'LimitNOFILE=[0-9]*' "$tmp/stage/usr/local/lib/systemd/system/maglevd.service" ||
	fail "unit sets no LimitNOFILE (health probes and clients need descriptors)"
echo "check-install: DESTDIR install complete"

# A scratch PREFIX rebuilds the binaries with that BPF directory compiled in; the build tree's
# own objects are put back afterwards by the plain make below.
make -s install PREFIX="$tmp/prefix" SYSCONFDIR="$tmp/etc" >/dev/null
grep -q "ExecStart=$tmp/prefix/sbin/maglevd -c $tmp/etc/maglevd/maglevd.yaml" \
	"$tmp/prefix/lib/systemd/system/maglevd.service" || fail "unit paths do not follow PREFIX"
env -u MAGLEV_BPF_DIR "$tmp/prefix/sbin/maglevctl" decap --help |
	grep -qF "$tmp/prefix/lib/maglevd/bpf/xdp_decap.bpf.o" ||
	fail "maglevctl does not name the installed BPF directory"
if [ "$(id -u)" -eq 0 ]; then
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	out=$(env -u MAGLEV_BPF_DIR ip netns exec "$ns" "$tmp/prefix/sbin/maglevctl" decap attach lo \
		--vip 203.0.113.10 --mode skb 2>&1) || fail "installed maglevctl: $out"
	echo "check-install: installed maglevctl found its BPF object: $out"
else
	echo "check-install: not root, attach with the installed object skipped"
fi
make -s >/dev/null
echo "check-install: ok"
