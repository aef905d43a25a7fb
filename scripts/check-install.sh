#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Checks `make install`: into a staging DESTDIR (every file in its place), then into a scratch
# PREFIX whose maglevctl must find the installed BPF object with no build tree and no
# $MAGLEV_BPF_DIR (as root it attaches xdp_decap to lo in a scratch network namespace).
# Usage: scripts/check-install.sh   (E2E_PREFIX names the namespace, default "mgi")
# Ends with the closing line of tests/e2e/lib.sh: "check-install: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

prefix=${E2E_PREFIX:-mgi}
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh # ok, bad, check, skipped, e2e_summary
tmp=$(mktemp -d)
ns="$prefix-install"
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

make -s install DESTDIR="$tmp/stage" >/dev/null || e2e_abort "make install DESTDIR=$tmp/stage"
for f in usr/local/sbin/maglevd usr/local/sbin/maglevctl \
	usr/local/lib/maglevd/bpf/xdp_vip.bpf.o usr/local/lib/maglevd/bpf/xdp_decap.bpf.o \
	usr/local/lib/maglevd/bpf/hc_tunnel.bpf.o \
	etc/maglevd/maglevd.yaml.example usr/local/lib/systemd/system/maglevd.service \
	usr/local/share/man/man8/maglevd.8 usr/local/share/man/man8/maglevctl.8 \
	usr/local/share/man/man5/maglevd.yaml.5 usr/local/share/bash-completion/completions/maglevctl; do
	check "DESTDIR install has /$f" [ -f "$tmp/stage/$f" ]
done
check "installed maglevd(8) names the installed BPF directory" \
	grep -q '^\.It Pa /usr/local/lib/maglevd/bpf/xdp_vip.bpf.o$' "$tmp/stage/usr/local/share/man/man8/maglevd.8"
check "unit's ExecStart" grep -qx 'ExecStart=/usr/local/sbin/maglevd -c /etc/maglevd/maglevd.yaml' \
	"$tmp/stage/usr/local/lib/systemd/system/maglevd.service"
check "unit sets LimitNOFILE (health probes and clients need descriptors)" \
	grep -qx 'LimitNOFILE=[0-9]*' "$tmp/stage/usr/local/lib/systemd/system/maglevd.service"
check "unit makes the state directory (control.state_dir's default /var/lib/maglevd)" \
	grep -qx 'StateDirectory=maglevd' "$tmp/stage/usr/local/lib/systemd/system/maglevd.service"
check "unit is Type=notify with a watchdog" bash -c \
	"grep -qx 'Type=notify' '$tmp/stage/usr/local/lib/systemd/system/maglevd.service' &&
	 grep -qx 'WatchdogSec=[0-9]*s' '$tmp/stage/usr/local/lib/systemd/system/maglevd.service'"
check "unit makes the control socket's directory (control.socket's default /run/maglevd/)" \
	grep -qx 'RuntimeDirectory=maglevd' "$tmp/stage/usr/local/lib/systemd/system/maglevd.service"
if command -v systemd-analyze >/dev/null; then
	# MANPATH: the unit's Documentation= man pages must be the installed ones.
	check "systemd-analyze verify finds nothing wrong with the installed unit (man pages too)" bash -c \
		"sed 's|^ExecStart=[^ ]*|ExecStart=$tmp/stage/usr/local/sbin/maglevd|' \
			'$tmp/stage/usr/local/lib/systemd/system/maglevd.service' >'$tmp/maglevd.service' &&
		 MANPATH='$tmp/stage/usr/local/share/man' systemd-analyze verify '$tmp/maglevd.service'"
else
	skipped "systemd-analyze verify (no systemd-analyze)"
fi

# A scratch PREFIX rebuilds the binaries with that BPF directory compiled in; the build tree's
# own objects are put back afterwards by the plain make below.
make -s install PREFIX="$tmp/prefix" SYSCONFDIR="$tmp/etc" >/dev/null ||
	e2e_abort "make install PREFIX=$tmp/prefix"
check "unit paths follow PREFIX" \
	grep -q "ExecStart=$tmp/prefix/sbin/maglevd -c $tmp/etc/maglevd/maglevd.yaml" \
	"$tmp/prefix/lib/systemd/system/maglevd.service"
check "maglevctl names the installed BPF directory" bash -c \
	"env -u MAGLEV_BPF_DIR '$tmp/prefix/sbin/maglevctl' decap --help | grep -qF '$tmp/prefix/lib/maglevd/bpf/xdp_decap.bpf.o'"
if [ "$(id -u)" -eq 0 ]; then
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	if out=$(env -u MAGLEV_BPF_DIR ip netns exec "$ns" "$tmp/prefix/sbin/maglevctl" decap attach lo \
		--vip 203.0.113.10 --mode skb 2>&1); then
		ok "installed maglevctl found its BPF object: $out"
	else
		bad "installed maglevctl: $out"
	fi
else
	skipped "attach with the installed object (not root)"
fi
check "plain make puts the build tree's objects back" bash -c 'make -s >/dev/null'
e2e_summary
