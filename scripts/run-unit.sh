#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs each unit-test binary given and prints one closing line with the totals.
set -u
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh" # closing_line, the one closing line of every runner
passed=0 failed=0
for t in "$@"; do
	if "$t"; then
		passed=$((passed + 1))
	else
		echo "FAILED: $t" >&2
		failed=$((failed + 1))
	fi
done
closing_line unit "$passed" "$failed"
