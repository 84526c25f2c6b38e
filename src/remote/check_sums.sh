#!/bin/sh
# check_sums.sh DIR SCRATCH: check every file listed in DIR/SHA256SUMS
# against its hash. ferry embeds this file and runs it (from finish.sh) as
#
#   sh -c "$(cat check_sums.sh)" ferry-check DIR SCRATCH
#
# SCRATCH is a prefix for temporary files (SCRATCH.aa, SCRATCH.aa.got, ...),
# absolute or relative to DIR, and outside DIR; they are removed at the end.
#
# The list is split into as many chunks as the target has cores (up to 8,
# GNU split) and the chunks are hashed side by side. With openssl and xargs
# there, and no escaped name in the list (sha256sum writes a name holding a
# backslash or newline escaped, with a leading backslash), openssl hashes the
# files (about 4x coreutils) and the result is compared with SHA256SUMS as a
# whole; otherwise, and to name the files when that comparison fails,
# sha256sum -c --strict does it, writing "NAME: FAILED" lines on stderr.
#
# Exit 0 when every file matches, 1 otherwise. Only POSIX sh and coreutils
# (openssl and GNU xargs optional).

if [ $# -ne 2 ]; then
	echo 'usage: sh check_sums.sh DIR SCRATCH' >&2
	exit 2
fi
cd "$1" || exit 1
_s=$2
[ -f SHA256SUMS ] || {
	echo "$1: no SHA256SUMS" >&2
	exit 1
}
_n=$(nproc 2>/dev/null || echo 1)
[ "$_n" -gt 8 ] && _n=8
rm -f "$_s".??*
if ! { [ "$_n" -gt 1 ] && split -n "l/$_n" SHA256SUMS "$_s." 2>/dev/null; }; then
	cp SHA256SUMS "$_s.aa" || exit 1
fi
_ok=1
# shellcheck disable=SC1003 # a backslash at the start of a line, no quote
if command -v openssl >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1 &&
	! grep -q '^\\' SHA256SUMS; then
	_pids=
	for _f in "$_s".??; do
		cut -c67- "$_f" | xargs -r -d '\n' openssl dgst -sha256 -r -- >"$_f.got" 2>/dev/null &
		_pids="$_pids $!"
	done
	for _p in $_pids; do
		wait "$_p" || true
	done
	cat "$_s".??.got >"$_s.got"
	sed 's/^\([0-9a-f]\{64\}\)  /\1 */' SHA256SUMS | cmp -s - "$_s.got" && _ok=0
fi
if [ "$_ok" != 0 ]; then
	_ok=0
	_pids=
	for _f in "$_s".??; do
		[ -s "$_f" ] || continue
		sha256sum -c --quiet --strict "$_f" >&2 &
		_pids="$_pids $!"
	done
	for _p in $_pids; do
		wait "$_p" || _ok=1
	done
fi
rm -f "$_s".??*
exit "$_ok"
