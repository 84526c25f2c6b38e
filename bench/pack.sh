#!/usr/bin/env bash
# bench/pack.sh [SIZE_MB]: time `ferry dataset pack DIR -o OUT` against the
# baseline `tar -cf - DIR | tee OUT2 | sha256sum` (which also writes an
# archive and hashes it, but checks nothing and hashes no single file).
#
# The dataset (1100 MiB of realistic JPEG/PNG pictures with captions, from
# tests/integ/gen_dataset.sh big) is generated once and kept under
# bench/out/; a larger SIZE_MB is made of as many copies of it as it takes,
# in subfolders. `ferry dataset check` runs once first, so pack reuses its
# verdicts as it would in real use; ferry's archive cache is cleared before
# every ferry run so that it really packs. The two commands alternate, 5 runs
# each (RUNS=N to change), so the page cache warms both alike. Prints the
# medians, the ratio baseline/ferry (must be >= 2.0) and ferry's peak RSS
# from /usr/bin/time (must be < 64 MiB); exits 1 when either claim fails.
#
#   bench/pack.sh          about 1.1 GiB
#   bench/pack.sh 3072     about 3 GiB (the RSS claim on a bigger set)
#
# FERRY selects the binary (default build/ferry; use a release-like build).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
base_mb=1100
mb=${1:-$base_mb}
runs=${RUNS:-5}
FERRY=${FERRY:-$src/build/ferry}
out=$here/out
base=$out/pack-$base_mb
data=$out/pack-$mb
work=$out/pack-work

[[ $mb =~ ^[0-9]+$ ]] || { echo "usage: bench/pack.sh [SIZE_MB]" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "bench/pack.sh: no ferry binary at $FERRY (build first)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/pack.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

mkdir -p "$out"
if [ ! -f "$base.done" ]; then
	echo "generating a ${base_mb} MiB dataset in $base (once) ..."
	rm -rf "$base"
	bash "$src/tests/integ/gen_dataset.sh" big "$base" "$base_mb"
	touch "$base.done"
fi
if [ ! -f "$data.done" ]; then
	echo "assembling a ${mb} MiB dataset in $data from copies of $base (once) ..."
	rm -rf "$data"
	mkdir -p "$data"
	cp "$base/dataset_info.json" "$data/"
	for ((n = 1; n * base_mb < mb + base_mb; n++)); do
		mkdir "$data/copy$n"
		find "$base" -maxdepth 1 -type f -name 'big_*' -exec cp -t "$data/copy$n" {} +
	done
	touch "$data.done"
fi

# ferry's own settings and caches, away from the user's.
rm -rf "$work"
mkdir -p "$work/config/ferry" "$work/cache"
export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache
# Copies hold more images than the default limit of 1000.
printf 'dataset.max_images = 1000000\n' >"$work/config/ferry/config"
unset FERRY_CACHE_DIR FERRY_THREADS

bytes=$(du -sb "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
printf 'dataset: %s, %d files, %.2f GiB\n' "$data" "$files" "$(echo "$bytes / 1073741824" | bc -l)"

start=$(date +%s%N)
status=0
"$FERRY" dataset check "$data" >/dev/null || status=$?
[ "$status" -le 1 ] || { echo "bench/pack.sh: ferry dataset check failed ($status)" >&2; exit 1; }
printf 'check (once, decodes every image): %.2f s\n' "$(echo "($(date +%s%N) - $start) / 1000000000" | bc -l)"

parent=$(dirname "$data")
name=$(basename "$data")
ferry_t=() base_t=() rss_max=0

# ms CMD...: run CMD, print its wall time in milliseconds.
ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@"
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

run_ferry() {
	rm -rf "$XDG_CACHE_HOME/ferry/datasets"
	rm -f "$work/ferry.tar"
	/usr/bin/time -o "$work/rss" -f '%M' "$FERRY" dataset pack "$data" -o "$work/ferry.tar" >"$work/ferry.out"
}

run_base() {
	rm -f "$work/tar.tar"
	tar -C "$parent" -cf - "$name" | tee "$work/tar.tar" | sha256sum >/dev/null
}

for ((i = 1; i <= runs; i++)); do
	t=$(ms run_ferry)
	rss=$(cat "$work/rss")
	[ "$rss" -le "$rss_max" ] || rss_max=$rss
	grep -q '^sha256' "$work/ferry.out" || { echo "bench/pack.sh: ferry printed no sha256" >&2; exit 1; }
	ferry_t+=("$t")
	b=$(ms run_base)
	base_t+=("$b")
	printf 'run %d: ferry %6d ms (peak RSS %d KiB)   tar|tee|sha256sum %6d ms\n' "$i" "$t" "$rss" "$b"
done

median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

fm=$(median "${ferry_t[@]}")
bm=$(median "${base_t[@]}")
ratio=$(echo "scale=2; $bm / $fm" | bc -l)
rss_mib=$(echo "scale=1; $rss_max / 1024" | bc -l)
printf '\nferry dataset pack:        median %d ms, %.0f MiB/s\n' "$fm" "$(echo "$bytes / 1048576 / ($fm / 1000)" | bc -l)"
printf 'tar | tee | sha256sum:     median %d ms, %.0f MiB/s\n' "$bm" "$(echo "$bytes / 1048576 / ($bm / 1000)" | bc -l)"
printf 'ratio baseline/ferry:      %s (must be >= 2.0)\n' "$ratio"
printf 'ferry peak RSS:            %s MiB (must be < 64)\n' "$rss_mib"
cmp -s "$work/ferry.tar" "$XDG_CACHE_HOME/ferry/datasets/$(awk '/^sha256/ { print $2 }' "$work/ferry.out").tar" ||
	{ echo "bench/pack.sh: -o copy differs from the cached archive" >&2; exit 1; }
rm -rf "$work"

ok=1
[ "$(echo "$ratio >= 2.0" | bc -l)" = 1 ] || { echo "FAIL: ratio below 2.0"; ok=0; }
[ "$rss_max" -lt $((64 * 1024)) ] || { echo "FAIL: peak RSS not below 64 MiB"; ok=0; }
[ "$ok" = 1 ] && echo "PASS"
[ "$ok" = 1 ]
