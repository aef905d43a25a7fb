#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs the BPF programs' unit tests (test_xdp_vip, test_xdp_fwd, test_decap, test_hc_tunnel:
# BPF_PROG_TEST_RUN against the verifier and the helpers of the kernel they run on) under a Debian
# kernel in a VM,
# so that what the project ships is checked on the kernel Debian 12 machines boot, not only on the
# host's.
#
# Usage: scripts/check-kernel.sh [PACKAGE]   (after make all; needs no root, the VM runs the tests
# as its root)
#   PACKAGE  a Debian kernel image package, e.g. linux-image-6.1.0-47-amd64; default: what
#            linux-image-amd64 depends on in the configured archive (bookworm: 6.1).
#   ACCEL=kvm|tcg  default kvm where the CPU has VT-x or AMD-V and /dev/kvm opens, else tcg.
#   CHECK_KERNEL_TIMEOUT=seconds  for the whole VM run (default 600; a run takes about 10).
#
# The package is downloaded once into build/kernels/PACKAGE/ (vmlinuz and three modules only:
# the kernel has BPF, XDP, bpffs, devtmpfs and IPv6 built in; veth, the clsact qdisc and cls_bpf
# are modules on Debian's kernels, and test_decap's second-chance cases need a veth pair,
# test_hc_tunnel a tc filter). The initramfs holds busybox (/init's
# shell and tools), dash as /bin/sh, the tests and the BPF objects with every library they
# load, iproute2's ip (test_decap builds its namespace with it) and bpftool: when a test fails,
# /init loads each object with `bpftool prog loadall` so that the verifier's log is in the serial
# log. Prints one line "check-kernel: PASS|FAIL TEST (...)" per test from the VM, keeps the whole
# serial log in build/kernels/PACKAGE/serial.log, and ends with the closing line of
# tests/e2e/lib.sh, "check-kernel: N passed, M failed"; the status is 0 only if every test ran
# with no case skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh # closing_line

BUILD=${BUILD:-build}
TESTS=(test_xdp_vip test_xdp_fwd test_decap test_hc_tunnel)
BPF_OBJS=(xdp_vip.bpf.o xdp_fwd.bpf.o xdp_decap.bpf.o hc_tunnel.bpf.o)
TIMEOUT=${CHECK_KERNEL_TIMEOUT:-600}

die() {
	echo "check-kernel: $*" >&2
	exit 1
}

for t in "${TESTS[@]}"; do
	[ -x "$BUILD/tests/$t" ] || die "no $BUILD/tests/$t (make all first)"
done
for o in "${BPF_OBJS[@]}"; do
	[ -r "$BUILD/bpf/$o" ] || die "no $BUILD/bpf/$o (make all first)"
done
for c in qemu-system-x86_64 busybox dash ip bpftool apt-cache apt-get dpkg-deb ldd gzip; do
	command -v "$c" >/dev/null || die "no $c (scripts/install-deps.sh installs it)"
done
# busybox must be the static one: the initramfs has no library for it.
ldd "$(command -v busybox)" >/dev/null 2>&1 && die "busybox is not static (install busybox-static)"

pkg=${1:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || die "apt-cache names no kernel for linux-image-amd64 (apt-get update?)"
fi
cache="$BUILD/kernels/$pkg"
vmlinuz="$cache/vmlinuz"
# The modules the tests need, loaded in this order: veth (test_decap's namespace), the clsact
# qdisc and cls_bpf (test_hc_tunnel's tc filter).
MODULES=(drivers/net/veth net/sched/sch_ingress net/sched/cls_bpf)
have_all=1
for m in "${MODULES[@]}"; do
	[ -r "$cache/$(basename "$m").ko" ] || have_all=0
done

dl="" root=""
trap 'rm -rf "$dl" "$root"' EXIT

# The kernel: downloaded once, only vmlinuz and the modules kept (the package unpacks to 400 MB).
if [ ! -r "$vmlinuz" ] || [ "$have_all" -eq 0 ]; then
	dl=$(mktemp -d)
	# As root into a directory _apt cannot write: download as root, not as _apt.
	(cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg") ||
		die "apt-get download $pkg failed"
	mkdir -p "$dl/x"
	pats=()
	for m in "${MODULES[@]}"; do
		pats+=("./lib/modules/*/kernel/$m.ko*")
	done
	dpkg-deb --fsys-tarfile "$dl"/*.deb |
		tar -x -C "$dl/x" --wildcards './boot/vmlinuz-*' "${pats[@]}"
	mkdir -p "$cache"
	cp "$dl"/x/boot/vmlinuz-* "$vmlinuz"
	for m in "${MODULES[@]}"; do
		n=$(basename "$m")
		ko=$(find "$dl/x/lib/modules" -name "$n.ko*" | head -n1)
		case "$ko" in
		*.ko) cp "$ko" "$cache/$n.ko" ;;
		*.ko.xz) xz -dc "$ko" >"$cache/$n.ko" ;; # busybox insmod takes a plain module
		*) die "no $n module in $pkg" ;;
		esac
	done
fi

# The initramfs.
root=$(mktemp -d)
mkdir -p "$root"/{bin,bpf,tests,proc,sys,dev,tmp,run,lib/modules}
cp "$(command -v busybox)" "$root/bin/busybox"
for a in mount mkdir cat echo grep sed insmod uname poweroff basename; do
	ln -s busybox "$root/bin/$a"
done
# /bin/sh is dash, not busybox: Debian's busybox shell runs its own applets before any file in
# PATH, so test_decap's system("ip link add ... type veth peer name ...") would get busybox's ip,
# which ignores the peer's name and knows neither "nodad" nor "neigh replace".
cp "$(command -v dash)" "$root/bin/sh"
cp "$(command -v ip)" "$(command -v bpftool)" "$root/bin/"
for t in "${TESTS[@]}"; do
	cp "$BUILD/tests/$t" "$root/tests/"
done
for o in "${BPF_OBJS[@]}"; do
	cp "$BUILD/bpf/$o" "$root/bpf/"
done
mods=""
for m in "${MODULES[@]}"; do
	cp "$cache/$(basename "$m").ko" "$root/lib/modules/"
	mods="$mods $(basename "$m")"
done
# Every library and the loader, at the path ldd resolves (the loader finds them there without a
# cache: /lib/x86_64-linux-gnu is its default directory).
for lib in $(ldd "$root"/tests/* "$root/bin/sh" "$root/bin/ip" "$root/bin/bpftool" |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' | sort -u); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# check-kernel's /init: mounts, runs each test, one PASS/FAIL line each, powers off.
export PATH=/bin
echo # the console may still be on the line of the firmware's last escape sequence
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "check-kernel: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
for m in MODULES; do
	insmod /lib/modules/$m.ko || echo "check-kernel: insmod $m failed"
done
failed=0
for t in TESTS; do
	MAGLEV_BPF_DIR=/bpf /tests/$t >/tmp/$t.log 2>&1
	rc=$?
	cat /tmp/$t.log
	ran=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\.$/\1/p' /tmp/$t.log)
	passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' /tmp/$t.log)
	skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' /tmp/$t.log)
	if [ "$rc" -eq 0 ] && [ -z "$skipped" ] && [ -n "$ran" ] && [ "$ran" = "$passed" ]; then
		echo "check-kernel: PASS $t ($passed of $ran passed)"
	else
		echo "check-kernel: FAIL $t (exit $rc, ${ran:-0} run, ${passed:-0} passed, ${skipped:-0} skipped)"
		failed=1
	fi
done
if [ "$failed" -ne 0 ]; then
	# The tests silence libbpf; bpftool does not: for an object the kernel refuses, libbpf
	# prints the verifier's log ("-- BEGIN PROG LOAD LOG --"), the failing instruction last.
	for o in /bpf/*.o; do
		n=$(basename "$o" .bpf.o)
		if bpftool prog loadall "$o" "/sys/fs/bpf/$n" >/tmp/bpftool.log 2>&1; then
			echo "check-kernel: bpftool loads $o"
		else
			echo "check-kernel: bpftool cannot load $o:"
			cat /tmp/bpftool.log
		fi
	done
fi
echo "check-kernel: done"
poweroff -f
EOF
sed -i -e "s/^for t in TESTS; do/for t in ${TESTS[*]}; do/" -e "s/^for m in MODULES; do/for m in$mods; do/" "$root/init"
chmod 755 "$root/init"
initrd="$cache/initramfs.cpio.gz"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$initrd"

accel=${ACCEL:-}
if [ -z "$accel" ]; then
	# Not /dev/kvm alone: a host without VT-x/AMD-V can still have one (PVM, a paravirtual KVM
	# that only runs guest kernels built for it; Debian's hangs there before its first message).
	accel=tcg
	if [ -c /dev/kvm ] && { : <>/dev/kvm; } 2>/dev/null && grep -qwE 'vmx|svm' /proc/cpuinfo; then
		accel=kvm
	fi
fi
cpu=()
[ "$accel" = kvm ] && cpu=(-cpu host)
log="$cache/serial.log"
echo "check-kernel: booting $pkg ($accel, timeout ${TIMEOUT}s), serial log in $log"
start=$(date +%s)
rc=0
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$accel" "${cpu[@]}" -m 1024 -smp 2 \
	-nographic -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null >"$log" 2>&1 || rc=$?
secs=$(($(date +%s) - start))
tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
echo "check-kernel: VM exited with status $rc after ${secs}s"
[ "$rc" -eq 124 ] && echo "check-kernel: timed out after ${TIMEOUT}s"

grep '^check-kernel: \(kernel\|PASS\|FAIL\|insmod\)' "$log" || true
passed=0 failed=0
for t in "${TESTS[@]}"; do
	if grep -q "^check-kernel: PASS $t " "$log"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
if [ "$failed" -ne 0 ] || ! grep -q '^check-kernel: done' "$log"; then
	echo "check-kernel: the last 300 lines of the VM's serial log (all of it in $log):"
	tail -n 300 "$log"
	[ "$failed" -ne 0 ] || failed=1
fi
closing_line check-kernel "$passed" "$failed"
