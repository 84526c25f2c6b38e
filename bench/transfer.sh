#!/usr/bin/env bash
# bench/transfer.sh [SIZE_MB]: `ferry remote push` of a SIZE_MB archive
# (default 1024) over a real sshd on 127.0.0.1, against `scp` of the same
# file to the same server, median of 3 runs each (RUNS=N). ferry's push does
# more than copy: it hashes the archive here and there, extracts it and
# checks every file with sha256sum -c; scp only copies. Claims (exit 1 when
# one fails):
#   - ferry's push is at least as fast as scp (ratio scp/ferry >= 1.0);
#   - a push killed at about half and run again sends at most 5 % more than
#     the remainder.
# Uses tests/integ/sshd.sh for the server (sshd, ssh-keygen needed).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
mb=${1:-1024}
runs=${RUNS:-3}
export FERRY=${FERRY:-$src/build/ferry} FERRY_SRC=$src
[[ $mb =~ ^[0-9]+$ ]] || { echo "usage: bench/transfer.sh [SIZE_MB]" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "bench/transfer.sh: no ferry binary at $FERRY (build first)" >&2; exit 2; }

# lib.sh gives a private temp dir and XDG folders; sshd.sh the server.
. "$src/tests/integ/lib.sh" >/dev/null
. "$src/tests/integ/sshd.sh"
sshd_start >/dev/null || { echo "bench/transfer.sh: cannot start sshd" >&2; exit 1; }
export VASTAI_SSH_KEY_PATH=$SSHD_KEY FERRY_REMOTE_ROOT=$tmpdir/root
cd "$tmpdir" || exit 1

mkdir data
head -c $((mb * 1048576)) /dev/urandom >data/big.bin
(cd data && sha256sum big.bin >SHA256SUMS)
tar -cf big.tar -C data big.bin SHA256SUMS
rm -rf data
bytes=$(stat -c %s big.tar)
printf 'archive: %.1f MiB\n' "$(echo "$bytes / 1048576" | bc -l)"

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

ferry_t=() scp_t=()
# Each run starts alike, untimed: the last copies deleted, nothing waiting to
# be written back (otherwise one tool pays for the other's dirty pages) and
# the archive in the page cache (this VM reclaims cold pages, so it may not
# be otherwise; an archive just packed is).
settle() {
	rm -rf "$FERRY_REMOTE_ROOT/j" "$tmpdir/scp.out"
	sync
	cat big.tar >/dev/null
}
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
median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fm=$(median "${ferry_t[@]}")
sm=$(median "${scp_t[@]}")
ratio=$(echo "scale=2; $sm / $fm" | bc -l)

# Interrupted at about half: kill ferry and its ssh, push again.
rm -rf "$FERRY_REMOTE_ROOT/j"
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
"$FERRY" remote push --target "$SSHD_TARGET" --job j big.tar --json >resume.json || { echo "resume failed" >&2; exit 1; }
sent=$(python3 -c 'import json; print(json.load(open("resume.json"))["sent"])')
# The remainder when ferry was killed (what the target held a moment later
# may be a little more: data in flight still landed).
remainder=$((bytes - have))
over=$(echo "scale=2; ($sent - $remainder) * 100 / $remainder" | bc -l)

printf '\nferry remote push: median %d ms (%.0f MiB/s, verified and extracted)\n' "$fm" "$(echo "$bytes / 1048576 / ($fm / 1000)" | bc -l)"
printf 'scp:               median %d ms (%.0f MiB/s)\n' "$sm" "$(echo "$bytes / 1048576 / ($sm / 1000)" | bc -l)"
printf 'ratio scp/ferry:   %s (must be >= 1.0)\n' "$ratio"
printf 'resume: killed at %d of %d bytes; sent %d again for a remainder of %d: %s%% over (must be <= 5)\n' \
	"$have" "$bytes" "$sent" "$remainder" "$over"
ok=1
[ "$(echo "$ratio >= 1.0" | bc -l)" = 1 ] || { echo "FAIL: ferry slower than scp"; ok=0; }
[ "$(echo "$over <= 5" | bc -l)" = 1 ] || { echo "FAIL: resume sent more than 5% over the remainder"; ok=0; }
[ "$ok" = 1 ] && echo PASS
_t_done=1 # no TAP here: lib.sh's exit trap only cleans up and keeps the status
[ "$ok" = 1 ]
