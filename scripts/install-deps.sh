#!/usr/bin/env bash
# Installs every Debian package maglevd needs to build, test, benchmark and run its demo.
set -euo pipefail

PKGS=(
	# build
	build-essential make pkg-config clang llvm
	libxdp-dev libbpf-dev libelf-dev zlib1g-dev
	libcyaml-dev libyaml-dev libxxhash-dev liburcu-dev libmnl-dev
	libmicrohttpd-dev libjansson-dev libpcap-dev libcmocka-dev
	libclang-rt-14-dev libfuzzer-14-dev
	# run and test
	iproute2 ethtool iputils-ping procps psmisc curl socat iperf3 netsniff-ng
	tcpdump xdp-tools bpftool python3 python3-scapy bird2 hyperfine
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
