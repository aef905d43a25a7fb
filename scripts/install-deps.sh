#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Installs every Debian package maglevd needs to build, test, benchmark and run its demo, and
# nothing else: each line says what uses it.
set -euo pipefail

PKGS=(
	# build: compilers and make
	build-essential    # gcc, make, libc headers
	pkg-config         # the Makefile asks it for every library's flags
	clang              # the BPF programs (clang -target bpf), and libFuzzer builds
	clang-format       # make format-check (part of make check): the tree as .clang-format has it
	# libraries the binaries link
	libxdp-dev         # AF_XDP sockets and XDP program attach (xsk, xdp_program)
	libbpf-dev         # BPF objects, maps, BPF_PROG_TEST_RUN in the unit tests
	libelf-dev         # named by libbpf's pkg-config file
	zlib1g-dev         # named by libbpf's pkg-config file
	libyaml-dev        # the config file's YAML parser
	libxxhash-dev      # the Maglev permutations and the flow hash
	liburcu-dev        # snapshot publication to the workers (RCU)
	libmnl-dev         # rtnetlink: next hops, neighbours, announced routes
	libmicrohttpd-dev  # the Prometheus metrics endpoint
	libjansson-dev     # the control socket's JSON
	libpcap-dev        # maglevd --replay, the AF_PACKET filter compiler in tests
	libsystemd-dev     # sd_notify: Type=notify, READY/RELOADING/STOPPING, the watchdog
	libncurses-dev     # maglevctl top: the live view's screen (ncursesw)
	# tests
	libcmocka-dev      # unit tests
	libclang-rt-14-dev # ASan/UBSan runtime for check-san and the fuzzers
	libfuzzer-14-dev   # libFuzzer for check-fuzz
	python3            # fixture generator, e2e helpers (servers, clients, probes)
	python3-scapy      # byte-exact fixtures, raw frames in e2e tests, pcap checks
	iproute2           # ip: namespaces, veth, routes in every e2e test
	procps             # sysctl in the e2e topology
	ethtool            # offloads off on veth (tx checksum, GRO)
	iputils-ping       # ping through the VIP
	curl               # HTTP through the VIP, metrics scrapes
	socat              # UDP through the VIP
	iperf3             # bulk TCP through the VIP
	netsniff-ng        # trafgen: SYN floods and the end-to-end benchmark
	tcpdump            # captures on the wire (DSR, decap checks)
	bird2              # BGP for the scale-out test
	prometheus         # promtool and a real Prometheus server scraping maglevd (test_prometheus)
	tmux               # a real terminal for maglevctl top (test_top: send-keys, capture-pane)
	# make check-kernel: the BPF tests in a VM on Debian's kernel (the kernel itself is fetched by
	# apt-get download, not installed)
	qemu-system-x86    # the VM
	busybox-static     # the VM's /init and tools, and cpio for its initramfs
	bpftool            # loads each object in the VM when a test fails: the verifier's log
	xz-utils           # newer Debian kernels ship their modules (veth) xz-compressed
	systemd            # systemd-analyze verify of the unit (check-install)
	mandoc             # check-man: mandoc -Tlint over the man pages
	bash-completion    # check-man: maglevctl's completion run with bash-completion's helpers
	# the Debian package (make package, check-package)
	dpkg-dev           # dpkg-buildpackage
	debhelper          # dh, debhelper-compat 13
	lintian            # check-package fails on its errors
	debootstrap        # check-package: a fresh minimal Debian 12 root to install the package in
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get)" >&2
	exit 1
fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
