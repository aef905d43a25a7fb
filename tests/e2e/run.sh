#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs every end-to-end test (tests/e2e/test_*.sh). A test exits 0 (pass), 4 (skip: not root, a
# tool missing, no case selected) or anything else (fail); each builds and removes its own
# namespaces. E2E_ONLY=pattern selects tests by file name; E2E_CASES (exported to every test)
# selects cases within them, and E2E_CASES=list prints each test's cases (lib.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh
export E2E_CASES=${E2E_CASES:-}
passed=0 failed=0 skipped=0
for t in tests/e2e/test_*.sh; do
	[ -e "$t" ] || continue
	case "$t" in *"${E2E_ONLY:-}"*) ;; *) continue ;; esac
	if [ "$E2E_CASES" = list ]; then
		bash "$t"
		continue
	fi
	echo "=== $t"
	start=$(date +%s)
	timeout --kill-after=10 600 bash "$t"
	rc=$?
	took=$(($(date +%s) - start))
	case $rc in
	0) passed=$((passed + 1)); echo "--- PASS $t (${took}s)" ;;
	"$E2E_SKIP") skipped=$((skipped + 1)); echo "--- SKIP $t" ;;
	*) failed=$((failed + 1)); echo "--- FAIL $t (rc $rc, ${took}s)" ;;
	esac
done
[ "$E2E_CASES" = list ] && exit 0
closing_line e2e "$passed" "$failed" "$skipped"
