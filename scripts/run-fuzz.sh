#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Runs each libFuzzer harness for a bounded time: run-fuzz.sh SECONDS FUZZER...
# Seeds come from tests/fuzz/corpus/<name>/; new inputs go to a scratch copy, not the tree.
set -u
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh" # closing_line, the one closing line of every runner
if [ $# -lt 1 ] || ! [ "$1" -gt 0 ] 2>/dev/null; then
	echo "usage: run-fuzz.sh SECONDS FUZZER..." >&2
	exit 2
fi
secs=$1
shift
passed=0 failed=0
for f in "$@"; do
	name=$(basename "$f")
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
		"$work" >"$work.log" 2>&1; then
		passed=$((passed + 1))
		echo "fuzz $name: ok ($(grep -c . "$work.log") log lines, $(ls "$work" | wc -l) corpus)"
	else
		failed=$((failed + 1))
		echo "fuzz $name: FAILED" >&2
		tail -n 40 "$work.log" >&2
	fi
	rm -rf "$work" "$work.log"
done
closing_line fuzz "$passed" "$failed"
