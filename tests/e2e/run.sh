#!/usr/bin/env bash
# Runs every end-to-end test (tests/e2e/test_*.sh) as root. A test exits 0 (pass), 4 (skip) or
# anything else (fail); each builds and removes its own namespaces. E2E_ONLY=pattern selects tests.
set -u
cd "$(dirname "$0")/../.."
SKIP=4
passed=0 failed=0 skipped=0
if [ "$(id -u)" -ne 0 ]; then
	echo "e2e: 0 passed, 0 failed, all skipped (needs root)"
	exit 0
fi
for t in tests/e2e/test_*.sh; do
	[ -e "$t" ] || continue
	case "$t" in *"${E2E_ONLY:-}"*) ;; *) continue ;; esac
	echo "=== $t"
	start=$(date +%s)
	timeout --kill-after=10 600 bash "$t"
	rc=$?
	took=$(($(date +%s) - start))
	case $rc in
	0) passed=$((passed + 1)); echo "--- PASS $t (${took}s)" ;;
	"$SKIP") skipped=$((skipped + 1)); echo "--- SKIP $t" ;;
	*) failed=$((failed + 1)); echo "--- FAIL $t (rc $rc, ${took}s)" ;;
	esac
done
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
