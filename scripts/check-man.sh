#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Checks the man pages (docs/man) and maglevctl's bash completion against the programs:
# mandoc -Tlint finds no warning or error in any page; every option of `maglevd --help` is in
# maglevd(8); every command, decap action and option that `maglevctl help` and the offline and
# decap commands' usages print is in maglevctl(8) and in the bash completion; every key of each
# key table in src/control/config_yaml.c is in its section of maglevd.yaml(5), and that page has
# no key the parser does not know. A new option, command or key fails here until it is written up.
# Usage: scripts/check-man.sh (after make; MAGLEVD, MAGLEVCTL name other binaries)
# Ends with "check-man: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh # ok, bad, check, e2e_summary, e2e_abort; MAGLEVD, MAGLEVCTL
man=docs/man
completion=dist/bash-completion/maglevctl
[ -x "$MAGLEVD" ] && [ -x "$MAGLEVCTL" ] || e2e_abort "no $MAGLEVD or $MAGLEVCTL (run make)"
command -v mandoc >/dev/null || e2e_abort "no mandoc (scripts/install-deps.sh)"

for page in "$man"/*.[58]; do
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	check "mandoc -Tlint: $page has no warning${out:+: $out}" [ -z "$out" ]
done

# opts TEXT: every option spelled in TEXT ("-c", "--config", "--config=X" -> "--config"), once.
opts() {
	grep -oE '(^|[][ (|,])--?[a-z][a-z0-9-]*' <<<"$1" | sed 's/^[][ (|,]//' | sort -u
}
# has_fl PAGE OPT: PAGE documents OPT as mdoc writes it ("-c" is "Fl c", "--json" is "Fl -json").
has_fl() {
	grep -qE "(^|[ ])Fl ${2#-}( |$)" "$1"
}

help_d=$("$MAGLEVD" --help) || e2e_abort "maglevd --help failed"
n=0
for o in $(opts "$help_d"); do
	check "maglevd(8) has $o" has_fl "$man/maglevd.8" "$o"
	n=$((n + 1))
done
check "maglevd --help named options ($n)" [ "$n" -ge 6 ]

help_c=$("$MAGLEVCTL" help) || e2e_abort "maglevctl help failed"
# The commands: the first word of each two-space-indented line of the command lists.
cmds=$(awk '/^((Offline and backend|Online) commands|Live view)/ { on = 1; next }
	/^[^ ]/ { on = 0 } on && /^  [a-z]/ { print $1 }' <<<"$help_c" | sort -u)
check "maglevctl help lists commands ($(wc -w <<<"$cmds"))" [ "$(wc -w <<<"$cmds")" -ge 10 ]
usages=$help_c
for c in $cmds help; do
	check "maglevctl(8) has command $c" grep -qE "^\.It Cm $c( |$)" "$man/maglevctl.8"
	check "bash completion has command $c" grep -qE "^[[:space:]]*local commands=\".*\\<$c\\>" \
		"$completion"
done
for c in table diff decap; do
	usages+=$'\n'$("$MAGLEVCTL" "$c" --help) || bad "maglevctl $c --help failed"
done
actions=$(grep -oE 'maglevctl decap [a-z]+' <<<"$usages" | awk '{ print $3 }' | sort -u)
check "decap --help names its actions ($(wc -w <<<"$actions"))" [ "$(wc -w <<<"$actions")" -ge 3 ]
for a in $actions; do
	check "maglevctl(8) has decap $a" grep -qE "^\.It Cm decap $a( |$)" "$man/maglevctl.8"
	check "bash completion has decap $a" grep -qE "compgen -W \"[^\"]*\\<$a\\>" "$completion"
done
for o in $(opts "$usages"); do
	check "maglevctl(8) has $o" has_fl "$man/maglevctl.8" "$o"
	check "bash completion has $o" grep -qE -- "[\" ]${o}[\" ]" "$completion"
done

# The bash completion at work (bash-completion's own helpers), as a shell would call it.
if [ -r /usr/share/bash-completion/bash_completion ]; then
	# complete_words WORD...: what the completion offers for the last WORD.
	complete_words() {
		PATH="$(dirname "$MAGLEVCTL"):$PATH" bash -c '
			. /usr/share/bash-completion/bash_completion
			. "$1"
			shift
			COMP_WORDS=("$@")
			COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
			COMP_LINE="${COMP_WORDS[*]}"
			COMP_POINT=${#COMP_LINE}
			_maglevctl maglevctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
			printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$completion" "$@"
	}
	got=$(complete_words maglevctl dr)
	check "completion: 'maglevctl dr' offers drain ($got)" [ "$got" = "drain " ]
	got=$(complete_words maglevctl -s /run/x.sock und)
	check "completion: after -s PATH, 'und' offers undrain ($got)" [ "$got" = "undrain " ]
	got=$(complete_words maglevctl top --o)
	check "completion: 'top --o' offers --once ($got)" [ "$got" = "--once " ]
	got=$(complete_words maglevctl decap "")
	check "completion: decap offers its actions ($got)" [ "$got" = "--help -h attach detach status " ]
	got=$(complete_words maglevctl table -c docs/examples/maglevd.yaml --vip "")
	check "completion: table --vip offers the config's VIP names ($got)" \
		[ "$got" = "dns web web6 " ]
	got=$(complete_words maglevctl decap attach eth0 --mode "")
	check "completion: --mode offers native and skb ($got)" [ "$got" = "native skb " ]
else
	skipped "bash completion at work (no bash-completion package)"
fi

# Config keys: each key table of the parser, the section of maglevd.yaml(5) it belongs in.
declare -A section=([root]=ROOT [cluster]=cluster [dataplane]=dataplane [conntrack]=conntrack
	[control]=control [metrics]=control [announce]=announce [vip]=vips [backend]=backends
	[health]=health)
# The tables: "static const char *const NAME_keys[...] = { "a", "b", ... };", one key a line.
keys=$(awk '/^static const char \*const [a-z]+_keys\[/ { t = $5; sub(/_keys.*/, "", t); on = 1 }
	on { line = $0; while (match(line, /"[a-z0-9_]+"/)) {
		print t, substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, RSTART + RLENGTH) } }
	on && /;/ { on = 0 }' src/control/config_yaml.c)
check "config_yaml.c has key tables ($(wc -l <<<"$keys") keys)" [ "$(wc -l <<<"$keys")" -ge 40 ]
# sect NAME: the lines of maglevd.yaml(5)'s subsection NAME (.Ss NAME up to the next .Ss or .Sh).
sect() {
	awk -v s="$1" '/^\.S[sh] / { on = ($1 == ".Ss" && $2 == s) ; next } on' "$man/maglevd.yaml.5"
}
while read -r table key; do
	s=${section[$table]:-}
	if [ -z "$s" ]; then
		bad "key table '${table}_keys' has no section in check-man.sh (and maglevd.yaml(5)?)"
	elif [ "$s" = ROOT ]; then
		check "maglevd.yaml(5) has section $key" grep -qx "\.Ss $key" "$man/maglevd.yaml.5"
	else
		check "maglevd.yaml(5) $s has $key" grep -qE "^\.It Cm $key( |$)" <(sect "$s")
	fi
done <<<"$keys"
# And the reverse: no key in the page that the parser does not know (in that section).
for s in cluster dataplane conntrack control announce vips backends health; do
	known=$(for t in "${!section[@]}"; do
		[ "${section[$t]}" = "$s" ] && awk -v t="$t" '$1 == t { print $2 }' <<<"$keys"
	done)
	for key in $(sect "$s" | awk '$1 == ".It" && $2 == "Cm" { print $3 }'); do
		check "maglevd.yaml(5) $s.$key is a key of the parser" grep -qx "$key" <<<"$known"
	done
done
e2e_summary
