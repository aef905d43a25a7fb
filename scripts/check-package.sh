#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Checks the Debian package: debian/changelog has src/base/version.h's version; it builds
# (dpkg-buildpackage -us -uc -b, in a copy of the tree) into maglevd_VERSION_ARCH.deb with every
# file in its place; lintian finds no error (its whole output is printed); and on a fresh minimal
# Debian 12 root (debootstrap --variant=minbase bookworm) `apt-get install ./maglevd_*.deb` pulls
# in only shared-library packages (beyond what their own Recommends add), after which the installed maglevd --version, maglevctl table
# -c /etc/maglevd/maglevd.yaml.example and the demo (scripts/demo.sh with DEMO_BINDIR=/usr/sbin)
# run there; then remove and purge take it away again.
# Usage: scripts/check-package.sh (root). CHECK_PACKAGE_CACHE (default /var/cache/maglevd-check)
# keeps the debootstrap tarball between runs; CHECK_PACKAGE_MIRROR (default
# http://deb.debian.org/debian) is the archive. The root is set up and used in a mount namespace
# of its own (unshare -m), so every mount it gets goes away with it, however the test ends.
# E2E_PREFIX names the demo's namespaces (default "mgp"). Ends with "check-package: N passed, M
# failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh # ok, bad, check, skipped, e2e_summary, e2e_abort, e2e_skip
cache=${CHECK_PACKAGE_CACHE:-/var/cache/maglevd-check}
mirror=${CHECK_PACKAGE_MIRROR:-http://deb.debian.org/debian}
prefix=${E2E_PREFIX:-mgp}
suite=bookworm
# What the demo's topology, servers and clients need in the root (scripts/demo.sh, DEMO_TOOLS).
demo_pkgs="iproute2 procps ethtool iputils-ping curl socat iperf3 python3"
start=$(date +%s)

[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (debootstrap, chroot, network namespaces)"
for t in dpkg-buildpackage dh lintian debootstrap unshare; do
	command -v "$t" >/dev/null || e2e_abort "no $t (scripts/install-deps.sh)"
done

version=$(sed -n 's/^#define MAGLEV_VERSION "\(.*\)"$/\1/p' src/base/version.h)
deb_version=$(dpkg-parsechangelog -S Version)
check "debian/changelog's version $deb_version is src/base/version.h's $version" \
	[ -n "$version" ] && [ "$deb_version" = "$version" ]

tmp=$(mktemp -d /tmp/check-package.XXXXXX)
root=$tmp/root
# No mount is left under $root (they live in the namespace of the unshare below); check it all
# the same before removing anything, since a bound /dev would be removed with it.
cleanup() {
	if findmnt -rn -o TARGET | grep -qF "$root"; then
		echo "check-package: mounts left under $root; not removing $tmp" >&2
		return
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# Build in a copy: dpkg-buildpackage cleans (make clean) and writes into the parent directory.
mkdir -p "$tmp/src"
git ls-files -co --exclude-standard -z | tar -c --null -T - -f - | tar -x -C "$tmp/src" -f - ||
	e2e_abort "copying the tree"
t0=$(date +%s)
if (cd "$tmp/src" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0)) s)"
else
	tail -30 "$tmp/build.log"
	e2e_abort "dpkg-buildpackage -us -uc -b (log above)"
fi
arch=$(dpkg --print-architecture)
deb=$tmp/maglevd_${version}_$arch.deb
check "built $(basename "$deb")" [ -f "$deb" ]
[ -f "$deb" ] || e2e_abort "no package"

dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/sbin/maglevd /usr/sbin/maglevctl /usr/lib/maglevd/bpf/xdp_vip.bpf.o \
	/usr/lib/maglevd/bpf/xdp_decap.bpf.o /usr/lib/maglevd/bpf/hc_tunnel.bpf.o \
	/etc/maglevd/maglevd.yaml.example \
	/lib/systemd/system/maglevd.service /usr/share/man/man8/maglevd.8.gz \
	/usr/share/man/man8/maglevctl.8.gz /usr/share/man/man5/maglevd.yaml.5.gz \
	/usr/share/bash-completion/completions/maglevctl /usr/share/doc/maglevd/copyright; do
	check "package has $f" grep -qx "$f" "$tmp/files"
done
check "the example config is a conffile" bash -c \
	"dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./conffiles | grep -qx /etc/maglevd/maglevd.yaml.example"
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./lib/systemd/system/maglevd.service >"$tmp/unit"
check "the unit runs /usr/sbin/maglevd -c /etc/maglevd/maglevd.yaml" \
	grep -qx 'ExecStart=/usr/sbin/maglevd -c /etc/maglevd/maglevd.yaml' "$tmp/unit"
check "nothing of /usr/local in the unit" bash -c "! grep -q /usr/local '$tmp/unit'"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
check "Depends names the libraries (from \${shlibs:Depends})" bash -c \
	"grep -q 'libxdp1' <<<'$depends' && grep -q 'libc6' <<<'$depends'"
check "the package recommends nothing" [ -z "$(dpkg-deb -f "$deb" Recommends)" ]

# lintian as root says so on stderr; every tag it prints (errors to pedantic and info) is shown.
lintian --pedantic --display-info "$tmp/maglevd_${version}_${arch}.changes" >"$tmp/lintian" 2>&1
grep -v '^running with root privileges' "$tmp/lintian" | grep -v '^N:' | sed 's/^/   lintian: /'
errors=$(grep -c '^E:' "$tmp/lintian")
check "lintian: no errors ($errors errors, $(grep -c '^W:' "$tmp/lintian") warnings)" \
	[ "$errors" -eq 0 ]

# The fresh root, from a cached tarball of the packages debootstrap fetches.
mkdir -p "$cache"
tarball=$cache/$suite-minbase-$arch.tgz
t0=$(date +%s)
if [ ! -s "$tarball" ]; then
	debootstrap --variant=minbase --make-tarball="$tarball.tmp" "$suite" "$tmp/fetch" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1 ||
		{ tail -20 "$tmp/debootstrap.log"; e2e_abort "debootstrap --make-tarball"; }
	mv "$tarball.tmp" "$tarball"
	rm -rf "$tmp/fetch"
fi
debootstrap --variant=minbase --unpack-tarball="$tarball" "$suite" "$root" "$mirror" \
	>"$tmp/debootstrap.log" 2>&1 ||
	{ tail -20 "$tmp/debootstrap.log"; e2e_abort "debootstrap --unpack-tarball"; }
ok "fresh $suite minbase root ($(($(date +%s) - t0)) s)"

cp "$deb" "$root/root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" # no service starts in the root
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/root/maglevd"
git ls-files -co --exclude-standard -z scripts tests/e2e | tar -c --null -T - -f - |
	tar -x -C "$root/root/maglevd" -f -

# What runs in the root: the steps print "ok ..." / "FAIL ..." lines that are counted below.
cat >"$root/root/inroot.sh" <<EOF
#!/bin/bash
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
step() { local w=\$1; shift; if "\$@"; then echo "ok \$w"; else echo "FAIL \$w"; fi; }
cd /root
apt-get update -q >/root/apt.log 2>&1 || { echo "FAIL apt-get update"; tail -5 /root/apt.log; exit 1; }
dpkg-query -W -f '\${Package}\n' | sort >/root/before
# What the package's Depends need: apt-get without the Recommends of those (a library's
# Recommends, such as libdbus-1-3's dbus through libpcap0.8, are apt's policy, not a need).
apt-get install -s --no-install-recommends ./$(basename "$deb") 2>>/root/apt.log |
	awk '\$1 == "Inst" && \$2 != "maglevd" { print \$2 }' | sort >/root/needed
step "apt-get install ./$(basename "$deb")" \
	bash -c 'apt-get install -y -q ./$(basename "$deb") >>/root/apt.log 2>&1'
dpkg-query -W -f '\${Package}\n' | sort >/root/after
comm -13 /root/before /root/after | grep -vx maglevd >/root/new
echo "pulled in by Depends: \$(tr '\n' ' ' </root/needed)"
echo "pulled in by those libraries' Recommends: \$(comm -13 /root/needed /root/new | tr '\n' ' ')"
nonlib=
for p in \$(cat /root/needed); do
	dpkg -L "\$p" | grep -qE '^/(usr/)?lib/[^/]+/[^/]+\.so\.[0-9]' || nonlib="\$nonlib \$p"
done
step "\$(wc -l </root/needed) packages needed, each a shared library (not:\${nonlib:- none})" \
	[ -s /root/needed ] && [ -z "\$nonlib" ]
step "all of them installed" bash -c '[ -z "\$(comm -23 /root/needed /root/new)" ]'
step "ldd finds every library of maglevd and maglevctl" \
	bash -c '! ldd /usr/sbin/maglevd /usr/sbin/maglevctl | grep -q "not found"'
v=\$(maglevd --version)
step "installed maglevd --version: \$v" [ "\$v" = "maglevd $version" ]
step "installed maglevctl table -c /etc/maglevd/maglevd.yaml.example" \
	bash -c 'maglevctl table -c /etc/maglevd/maglevd.yaml.example >/root/table && grep -q "^vip web " /root/table'
step "installed maglevctl finds the packaged decap object" \
	bash -c 'maglevctl decap --help | grep -qF /usr/lib/maglevd/bpf/xdp_decap.bpf.o'
step "installed man pages" test -s /usr/share/man/man8/maglevctl.8.gz -a -s /usr/share/man/man5/maglevd.yaml.5.gz
apt-get install -y -q --no-install-recommends $demo_pkgs >>/root/apt.log 2>&1 ||
	{ echo "FAIL installing the demo's tools"; tail -5 /root/apt.log; exit 1; }
cd /root/maglevd
DEMO_BINDIR=/usr/sbin DEMO_REQUESTS=200 E2E_PREFIX=$prefix scripts/demo.sh >/root/demo.log 2>&1
rc=\$?
sed 's/^/   demo: /' /root/demo.log | tail -25
step "the demo with the installed binaries (exit \$rc)" [ \$rc -eq 0 ]
step "the demo: every request answered" grep -qE '^demo: 200 passed, 0 failed' /root/demo.log
step "apt-get remove maglevd" bash -c 'apt-get remove -y -q maglevd >>/root/apt.log 2>&1'
step "removed: no /usr/sbin/maglevd, the example config kept" \
	bash -c '[ ! -e /usr/sbin/maglevd ] && [ -f /etc/maglevd/maglevd.yaml.example ]'
step "apt-get purge maglevd: no /etc/maglevd/maglevd.yaml.example" \
	bash -c 'apt-get purge -y -q maglevd >>/root/apt.log 2>&1 && [ ! -e /etc/maglevd/maglevd.yaml.example ]'
EOF
chmod 0755 "$root/root/inroot.sh"

t0=$(date +%s)
# The root must be a mount point of its own for `ip netns exec` (environment.md).
unshare -m --propagation private bash -c '
	set -e
	r=$1
	mount --bind "$r" "$r"
	mount --bind /dev "$r/dev"
	mount --bind /dev/pts "$r/dev/pts"
	mount -t proc proc "$r/proc"
	mount -t sysfs sysfs "$r/sys"
	mount -t tmpfs tmpfs "$r/run"
	exec chroot "$r" /root/inroot.sh' _ "$root" >"$tmp/inroot.log" 2>&1
rc=$?
while IFS= read -r line; do
	case $line in
	ok\ *) ok "in the root: ${line#ok }" ;;
	FAIL\ *) bad "in the root: ${line#FAIL }" ;;
	*) echo "$line" ;;
	esac
done <"$tmp/inroot.log"
check "the steps in the root ran to the end (exit $rc, $(($(date +%s) - t0)) s)" [ "$rc" -eq 0 ]
check "no mount left under the root" bash -c "! findmnt -rn -o TARGET | grep -qF '$root'"
echo "check-package: $(($(date +%s) - start)) s"
e2e_summary
