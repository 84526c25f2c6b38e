#!/usr/bin/env bash
# bench/transfer.sh [SIZE_MB...]: `ferry remote push` of an archive of each
# size (default 300 and 1024) over a real sshd on 127.0.0.1, against `scp`
# of the same file to the same server run in this script, median of 3 runs
# each (RUNS=N); then a push killed at about half and run again, timed.
# ferry's push does more than copy: it hashes the archive here and there,
# extracts it and checks every file against SHA256SUMS; scp only copies.
# Reports, at each size, full/scp (the full push's median over scp's) and
# resumed/full (the resumed push's time over the full push's median).
# Goals (exit 1 when one is missed):
#   - full/scp <= 1.1;
#   - resumed/full <= 0.6;
#   - the resumed push sends at most 5 % more than the remainder.
# Uses tests/integ/sshd.sh for the server (sshd, ssh-keygen needed).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
runs=${RUNS:-3}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(300 1024)
export FERRY=${FERRY:-$src/build/ferry} FERRY_SRC=$src
for mb in "${sizes[@]}"; do
	[[ $mb =~ ^[0-9]+$ ]] || { echo "usage: bench/transfer.sh [SIZE_MB...]" >&2; exit 2; }
done
[ -x "$FERRY" ] || { echo "bench/transfer.sh: no ferry binary at $FERRY (build first)" >&2; exit 2; }

# lib.sh gives a private temp dir and XDG folders; sshd.sh the server.
. "$src/tests/integ/lib.sh" >/dev/null
. "$src/tests/integ/sshd.sh"
sshd_start >/dev/null || { echo "bench/transfer.sh: cannot start sshd" >&2; exit 1; }
export VASTAI_SSH_KEY_PATH=$SSHD_KEY FERRY_REMOTE_ROOT=$tmpdir/root
cd "$tmpdir" || exit 1

ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || echo "bench/transfer.sh: $* failed" >&2
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
run_ferry() {
	"$FERRY" remote push --target "$SSHD_TARGET" --job j big.tar
}
# scp takes -P for the port; build its options from ssh's.
scp_opts=()
for o in "${SSHD_SSH_OPTS[@]}"; do
	case $o in
	-p) scp_opts+=(-P) ;;
	*) scp_opts+=("$o") ;;
	esac
done
run_scp() {
	scp -q "${scp_opts[@]}" big.tar "$SSHD_USER@127.0.0.1:$tmpdir/scp.out"
}
median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Each run starts alike, untimed: the last copies deleted, nothing waiting to
# be written back (otherwise one tool pays for the other's dirty pages) and
# the archive in the page cache (this VM reclaims cold pages, so it may not
# be otherwise; an archive just packed is).
settle() {
	rm -rf "$FERRY_REMOTE_ROOT/j" "$tmpdir/scp.out"
	sync
	cat big.tar >/dev/null
}
# A killed ferry leaves its ControlMaster (ControlPersist): end it, so that
# the resumed push connects afresh, as every full push does.
end_masters() {
	local s
	for s in "$XDG_RUNTIME_DIR"/ferry/ssh/*; do
		[ -S "$s" ] && ssh -o ControlPath="$s" -O exit ferry-bench >/dev/null 2>&1
	done
}

ok=1
summary=()
for mb in "${sizes[@]}"; do
	mkdir data
	head -c $((mb * 1048576)) /dev/urandom >data/big.bin
	(cd data && sha256sum big.bin >SHA256SUMS)
	tar -cf big.tar -C data big.bin SHA256SUMS
	rm -rf data
	bytes=$(stat -c %s big.tar)
	printf '\narchive: %.1f MiB\n' "$(echo "$bytes / 1048576" | bc -l)"

	ferry_t=() scp_t=()
	for ((i = 1; i <= runs; i++)); do
		settle
		f=$(ms run_ferry)
		settle
		s=$(ms run_scp)
		cmp -s big.tar "$tmpdir/scp.out" || { echo "bench/transfer.sh: scp copy differs" >&2; exit 1; }
		ferry_t+=("$f")
		scp_t+=("$s")
		printf 'run %d: ferry push %6d ms   scp %6d ms\n' "$i" "$f" "$s"
	done
	fm=$(median "${ferry_t[@]}")
	sm=$(median "${scp_t[@]}")

	# Interrupted at about half: kill ferry and its ssh, push again, timed.
	settle
	part=$FERRY_REMOTE_ROOT/j/dataset.tar.part
	setsid "$FERRY" remote push --target "$SSHD_TARGET" --job j big.tar >/dev/null 2>&1 &
	pid=$!
	while :; do
		have=$(stat -c %s "$part" 2>/dev/null || echo 0)
		[ "$have" -ge $((bytes / 2)) ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	pkill -KILL -s "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	have=$(stat -c %s "$part" 2>/dev/null || echo 0)
	end_masters
	sync
	cat big.tar >/dev/null
	t0=$(date +%s%N)
	"$FERRY" remote push --target "$SSHD_TARGET" --job j big.tar --json >resume.json || { echo "resume failed" >&2; exit 1; }
	rt=$((($(date +%s%N) - t0) / 1000000))
	sent=$(python3 -c 'import json; print(json.load(open("resume.json"))["sent"])')
	resends=$(python3 -c 'import json; print(json.load(open("resume.json"))["resends"])')
	# The remainder when ferry was killed (the target may have held a little
	# more a moment later: data in flight still landed).
	remainder=$((bytes - have))
	over=$(echo "scale=2; ($sent - $remainder) * 100 / $remainder" | bc -l)
	full_scp=$(echo "scale=2; $fm / $sm" | bc -l)
	resumed_full=$(echo "scale=2; $rt / $fm" | bc -l)

	printf 'ferry remote push: median %d ms (%.0f MiB/s, verified and extracted)\n' "$fm" "$(echo "$bytes / 1048576 / ($fm / 1000)" | bc -l)"
	printf 'scp:               median %d ms (%.0f MiB/s)\n' "$sm" "$(echo "$bytes / 1048576 / ($sm / 1000)" | bc -l)"
	printf 'resumed push:      %d ms after a kill at %d of %d bytes; sent %d for a remainder of %d (%s%% over), %d resends\n' \
		"$rt" "$have" "$bytes" "$sent" "$remainder" "$over" "$resends"
	printf 'full/scp:          %s (goal <= 1.1)\n' "$full_scp"
	printf 'resumed/full:      %s (goal <= 0.6)\n' "$resumed_full"
	summary+=("$(printf '%5d MiB: full/scp %s, resumed/full %s' "$mb" "$full_scp" "$resumed_full")")
	[ "$(echo "$full_scp <= 1.1" | bc -l)" = 1 ] || { echo "FAIL ($mb MiB): the full push takes more than 1.1x scp"; ok=0; }
	[ "$(echo "$resumed_full <= 0.6" | bc -l)" = 1 ] || { echo "FAIL ($mb MiB): the resumed push takes more than 0.6x a full one"; ok=0; }
	[ "$(echo "$over <= 5" | bc -l)" = 1 ] || { echo "FAIL ($mb MiB): resume sent more than 5% over the remainder"; ok=0; }
	rm -rf big.tar resume.json "$FERRY_REMOTE_ROOT/j"
done
printf '\n'
printf '%s\n' "${summary[@]}"
[ "$ok" = 1 ] && echo PASS
_t_done=1 # no TAP here: lib.sh's exit trap only cleans up and keeps the status
[ "$ok" = 1 ]
