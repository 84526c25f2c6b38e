#!/usr/bin/env bash
# bench/store.sh [SIZE_MB]: `ferry store put` of a SIZE_MB file (default
# 1024) to the local S3 world (s3rver behind our SigV4-checking proxy,
# tests/integ/s3.sh), against `aws s3 cp` (Debian's awscli) of the same file
# to the same server, median of 3 runs each (RUNS=N). Both sign every
# payload's SHA-256 and go up in parts; ferry also hashes the whole file first
# (its x-amz-meta-sha256), sends Content-MD5 per part and checks every ETag.
# Claims (exit 1 when one fails):
#   - ferry is at least as fast as aws s3 cp (ratio aws/ferry >= 1.0);
#   - ferry's peak RSS (/usr/bin/time -f %M), less what the same binary holds
#     doing nothing (`ferry store ls` of an empty dir store: the shared
#     libraries, some 24 MiB), stays under parts in flight x part size
#     (s3.parallel x s3.part_size_mb): parts are read from the file as they
#     are sent, the file is never held.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
mb=${1:-1024}
runs=${RUNS:-3}
export FERRY=${FERRY:-$src/build/ferry} FERRY_SRC=$src
[[ $mb =~ ^[0-9]+$ ]] || { echo "usage: bench/store.sh [SIZE_MB]" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "bench/store.sh: no ferry binary at $FERRY (build first)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/store.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

. "$src/tests/integ/lib.sh" >/dev/null
. "$src/tests/integ/s3.sh"
s3_start >/dev/null || { echo "bench/store.sh: cannot start the S3 world" >&2; exit 1; }
[ -x "$S3_AWS_BIN" ] || { echo "bench/store.sh: needs $S3_AWS_BIN (awscli)" >&2; exit 2; }
export FERRY_STORE=s3
cd "$tmpdir" || exit 1

head -c $((mb * 1048576)) /dev/urandom >big.bin
sum=$(sha256sum big.bin | cut -d' ' -f1)
parallel=$("$FERRY" config s3.parallel)
part_mb=$("$FERRY" config s3.part_size_mb)
bound_kb=$((parallel * part_mb * 1024))
base_kb=$(/usr/bin/time -f %M "$FERRY" store ls --store dir 2>&1 >/dev/null | tail -n1)
printf 'file: %d MiB; ferry: %d parts of %d MiB in flight; aws: its defaults\n' \
	"$mb" "$parallel" "$part_mb"

# ms CMD...: milliseconds CMD took (it must succeed).
ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>"$tmpdir/last.err" || {
		echo "bench/store.sh: $* failed:" >&2
		cat "$tmpdir/last.err" >&2
		exit 1
	}
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
run_ferry() {
	/usr/bin/time -o "$tmpdir/rss" -f %M "$FERRY" store put big.bin "bench/ferry-$1"
}
run_aws() {
	aws_s3 s3 cp --only-show-errors big.bin "s3://$FERRY_S3_BUCKET/bench/aws-$1"
}
# Both copies must arrive whole; then they go, so that s3rver's disk holds
# one at a time.
check_and_drop() {
	local got
	"$FERRY" store get "bench/$1" check.bin >/dev/null || { echo "bench/store.sh: cannot read back bench/$1" >&2; exit 1; }
	got=$(sha256sum check.bin | cut -d' ' -f1)
	[ "$got" = "$sum" ] || { echo "bench/store.sh: bench/$1 differs from the file sent" >&2; exit 1; }
	rm -f check.bin
	"$FERRY" store rm "bench/$1" >/dev/null
}

ferry_t=() aws_t=() rss=()
for ((i = 1; i <= runs; i++)); do
	f=$(ms run_ferry "$i") || exit 1
	rss+=("$(tail -n1 "$tmpdir/rss")")
	check_and_drop "ferry-$i"
	a=$(ms run_aws "$i") || exit 1
	check_and_drop "aws-$i"
	printf 'run %d: ferry %6d ms (peak RSS %d KiB)   aws s3 cp %6d ms\n' "$i" "$f" "${rss[-1]}" "$a"
	ferry_t+=("$f")
	aws_t+=("$a")
done
median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fm=$(median "${ferry_t[@]}")
am=$(median "${aws_t[@]}")
peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)
ratio=$(echo "scale=2; $am / $fm" | bc -l)
printf 'median: ferry %d ms (%.0f MiB/s), aws s3 cp %d ms (%.0f MiB/s)\n' \
	"$fm" "$(echo "$mb * 1000 / $fm" | bc -l)" "$am" "$(echo "$mb * 1000 / $am" | bc -l)"
printf 'ratio aws/ferry: %s (claim: >= 1.0)\n' "$ratio"
printf 'ferry peak RSS: %d KiB, %d KiB over the %d KiB it holds idle; bound: %d parts x %d MiB = %d KiB (claim: under it)\n' \
	"$peak" "$((peak - base_kb))" "$base_kb" "$parallel" "$part_mb" "$bound_kb"

status=0
if [ "$(echo "$ratio < 1.0" | bc -l)" = 1 ]; then
	echo "CLAIM FAILED: ferry is slower than aws s3 cp"
	status=1
fi
if [ "$((peak - base_kb))" -gt "$bound_kb" ]; then
	echo "CLAIM FAILED: ferry's peak RSS is over parts in flight x part size"
	status=1
fi
_t_done=1 # no TAP here: lib.sh's exit trap only cleans up and keeps the status
exit $status
