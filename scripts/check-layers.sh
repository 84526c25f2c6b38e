#!/usr/bin/env bash
# Fail on any include that goes against the part order of ARCHITECTURE.md:
# a part includes only itself and the parts below it. Also checks that
# each .c includes its own header first, when it has one.
set -euo pipefail
cd "$(dirname "$0")/.."

order=(common config dataset vast store recipe remote jobs sim api cli)
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done

bad=0
for f in src/*/*.[ch]; do
	part=${f#src/}; part=${part%%/*}
	if [[ -z ${rank[$part]+x} ]]; then
		echo "check-layers: $f: part '$part' is not in the order (${order[*]})" >&2
		bad=1
		continue
	fi
	while IFS=: read -r line inc; do
		dep=${inc%%/*}
		[[ $inc == */* ]] || continue # a header of the same folder
		if [[ -z ${rank[$dep]+x} ]]; then
			echo "check-layers: $f:$line includes $inc, of no known part" >&2
			bad=1
		elif (( ${rank[$dep]} > ${rank[$part]} )); then
			echo "check-layers: $f:$line: $part includes $inc, but $dep is above $part" >&2
			bad=1
		fi
	done < <(grep -n '^#include "' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
	if [[ $f == *.c && -f ${f%.c}.h ]]; then
		first=$(grep -m1 '^#include' "$f" | sed -E 's/^#include [<"]([^">]+)[">].*/\1/')
		own=${f#src/}; own=${own%.c}.h
		if [[ $first != "$own" && $first != "$(basename "$own")" ]]; then
			echo "check-layers: $f: the first include is $first, not its own header $own" >&2
			bad=1
		fi
	fi
done
if (( bad )); then
	echo "check-layers: FAILED (order: ${order[*]})" >&2
	exit 1
fi
echo "check-layers: ok (${order[*]})"
