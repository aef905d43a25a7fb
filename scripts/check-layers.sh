#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The layering, checked on every #include (make check-layers; make check runs it):
#   src/base      nothing of ours but base, and libc
#   src/core      base and core, libc, <xxhash.h> and the SIMD intrinsics: pure code
#   src/io        base, core, io, the BPF programs' ABI headers (bpf/*.h); no program folder
#   src/control   base, core, control (what both programs speak); no program folder
#   src/maglevd   anything but src/maglevctl
#   src/maglevctl anything but src/maglevd
#   bpf/          nothing of src/: the kernel/user contract lives in bpf/*.h, user space includes it
# Prints each violation as FILE:LINE: what, and exits 1 if there is one.
set -u
cd "$(dirname "$0")/.."

# Headers core may include besides its own and base's: libc and friends, nothing that links.
CORE_SYSTEM='^(std[a-z]*|string|strings|errno|math|endian|limits|assert|time|sys/(mman|socket|types)|net/if|netinet/in|arpa/inet|xxhash|emmintrin|immintrin)\.h$'

bad=0
violation() {
	echo "$1: $2" >&2
	bad=$((bad + 1))
}

# may_include LAYER HEADER: 0 if a file of LAYER may include "HEADER" (a path under src/).
may_include() {
	local layer=$1 dir=${2%%/*}
	case $layer in
	base) [ "$dir" = base ] ;;
	core) [ "$dir" = base ] || [ "$dir" = core ] ;;
	io) case $dir in base | core | io | bpf) true ;; *) false ;; esac ;;
	control) case $dir in base | core | control) true ;; *) false ;; esac ;;
	maglevd) [ "$dir" != maglevctl ] ;;
	maglevctl) [ "$dir" != maglevd ] ;;
	*) true ;;
	esac
}

for f in $(git ls-files 'src/*.c' 'src/*.h' 2>/dev/null || find src -name '*.[ch]'); do
	layer=${f#src/}
	layer=${layer%%/*}
	while IFS=: read -r line inc; do
		hdr=$(sed -E 's/^#include[[:space:]]*["<]([^">]*)[">].*/\1/' <<<"$inc")
		case $inc in
		*'"'*)
			case $hdr in
			../* | */../*) violation "$f:$line" "relative include \"$hdr\"" ;;
			*/*) may_include "$layer" "$hdr" || violation "$f:$line" "$layer includes \"$hdr\"" ;;
			esac
			;;
		*)
			if [ "$layer" = core ] && ! grep -Eq "$CORE_SYSTEM" <<<"$hdr"; then
				violation "$f:$line" "core includes <$hdr> (core is pure: libc, xxhash only)"
			fi
			;;
		esac
	done < <(grep -n '^#include' "$f")
done

for f in $(git ls-files 'bpf/*' 2>/dev/null || find bpf -type f); do
	case $f in *.c | *.h) ;; *) continue ;; esac
	while IFS=: read -r line inc; do
		case $inc in
		*'"'*/*) violation "$f:$line" "bpf/ includes from elsewhere: $inc" ;;
		esac
	done < <(grep -n '^#include' "$f")
done

if [ "$bad" -ne 0 ]; then
	echo "layers: $bad violation(s)" >&2
	exit 1
fi
echo "layers: ok"
