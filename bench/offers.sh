#!/usr/bin/env bash
# bench/offers.sh [N]: read and rank a search answer of N offers (default
# 10,000: about 24 MB, as every offer carries all ~110 fields of a real
# /bundles/ offer) with `ferry offers --from FILE --rank ...`, beside
# python3 loading the same JSON and sorting it by dph_total.
#
# The answer comes from ferry sim's built-in market (`ferry sim --offers N`
# and one POST /api/v0/bundles/ with limit N), so it has every field real
# Vast offers have. The two commands alternate, 5 runs each (RUNS=N), and
# the medians are compared. Claims (exit 1 when one fails):
#   - ferry reads and ranks the answer in under 0.5 s;
#   - ferry's peak RSS is at most 4x the answer's size (bounded by it,
#     not growing with anything else).
# The ratio python3/ferry is printed for information.
#
# FERRY selects the binary (default build/ferry; use a release-like build).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
n=${1:-10000}
runs=${RUNS:-5}
FERRY=${FERRY:-$src/build/ferry}
work=$here/out/offers-work

[[ $n =~ ^[0-9]+$ ]] || { echo "usage: bench/offers.sh [N]" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "bench/offers.sh: no ferry binary at $FERRY (build first)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/offers.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench/offers.sh: needs curl" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache XDG_STATE_HOME=$work/state
answer=$work/answer.json

"$FERRY" sim --listen 127.0.0.1:0 --offers "$n" --seed 42 --rate 0 >"$work/sim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	grep -q 'listening on' "$work/sim.log" && break
	sleep 0.1
done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$work/sim.log" | head -1)
[ -n "$url" ] || { echo "bench/offers.sh: ferry sim did not start" >&2; cat "$work/sim.log" >&2; exit 1; }
curl -sf -X POST -H 'Content-Type: application/json' \
	-d "{\"limit\": $n, \"order\": [[\"score\", \"desc\"]]}" "$url/api/v0/bundles/" >"$answer"
kill $sim
count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["offers"]))' "$answer")
bytes=$(stat -c %s "$answer")
printf 'answer: %d offers, %.1f MB\n' "$count" "$(echo "$bytes / 1000000" | bc -l)"

ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@"
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
run_ferry() {
	/usr/bin/time -o "$work/rss" -f '%M' "$FERRY" offers --from "$answer" --rank \
		--recipe flux-dev-lora --steps 2000 --dataset-bytes 200000000 --json --top 0 >"$work/ferry.json"
}
run_python() {
	/usr/bin/time -o "$work/rss.py" -f '%M' python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
offers = sorted(d["offers"], key=lambda o: float(o.get("dph_total") or 0))
print(len(offers))' "$answer" >/dev/null
}

ferry_t=() py_t=() rss_max=0 rss_py=0
for ((i = 1; i <= runs; i++)); do
	t=$(ms run_ferry)
	rss=$(cat "$work/rss")
	[ "$rss" -le "$rss_max" ] || rss_max=$rss
	p=$(ms run_python)
	r=$(cat "$work/rss.py")
	[ "$r" -le "$rss_py" ] || rss_py=$r
	ferry_t+=("$t")
	py_t+=("$p")
	printf 'run %d: ferry %5d ms (peak RSS %6d KiB)   python3 %5d ms (peak RSS %6d KiB)\n' "$i" "$t" "$rss" "$p" "$r"
done
ranked=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["ranked"]))' "$work/ferry.json")
[ "$ranked" -gt 0 ] || { echo "bench/offers.sh: ferry ranked nothing" >&2; exit 1; }

median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fm=$(median "${ferry_t[@]}")
pm=$(median "${py_t[@]}")
printf '\nferry offers --rank (read + rank %d, %d kept): median %d ms, peak RSS %.1f MiB\n' \
	"$count" "$ranked" "$fm" "$(echo "$rss_max / 1024" | bc -l)"
printf 'python3 json.load + sort:                        median %d ms, peak RSS %.1f MiB\n' \
	"$pm" "$(echo "$rss_py / 1024" | bc -l)"
printf 'ratio python3/ferry:       %s\n' "$(echo "scale=2; $pm / $fm" | bc -l)"
printf 'ferry RSS / answer size:   %s (must be <= 4)\n' "$(echo "scale=2; $rss_max * 1024 / $bytes" | bc -l)"
rm -rf "$work"

ok=1
[ "$fm" -lt 500 ] || { echo "FAIL: ferry took ${fm} ms, not under 500"; ok=0; }
[ $((rss_max * 1024)) -le $((4 * bytes)) ] || { echo "FAIL: peak RSS above 4x the answer"; ok=0; }
[ "$ok" = 1 ] && echo "PASS"
[ "$ok" = 1 ]
