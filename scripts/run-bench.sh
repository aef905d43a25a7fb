#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs every benchmark binary given, then the end-to-end benchmarks (as root).
set -u
rc=0
for b in "$@"; do
	"$b" || rc=1
done
if [ -x tests/e2e/bench.sh ]; then
	if [ "$(id -u)" -eq 0 ]; then
		tests/e2e/bench.sh || rc=1
	else
		echo "bench e2e: skipped (needs root)"
	fi
fi
exit $rc
