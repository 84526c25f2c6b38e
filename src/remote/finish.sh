#!/bin/sh
# finish.sh ROOT SHA256 HASHER CHECKER: put an uploaded dataset in place in
# the job root ROOT, once it is whole. ferry embeds this file and runs it as
#
#   sh -c "$(cat finish.sh)" ferry-finish ROOT SHA256 "$(cat hasher.sh)" "$(cat check_sums.sh)"
#
# (HASHER and CHECKER are the texts of hasher.sh and check_sums.sh.)
#
# In ROOT: hashes dataset.tar.part in the background while it extracts it
# into dataset.tmp/ (tar reads 128 KiB records, -b 256: a quarter less CPU
# than its 10 KiB default) and checks every file against SHA256SUMS (all from
# the page cache; on a loopback or fast link a tee in the stream cost more
# than these passes), then compares the hash with SHA256 (the archive's, as
# ferry computed it) and only then puts dataset/ in place, writes
# dataset/.ferry-archive-sha256 and deletes the upload. A hash that differs
# wins over whatever tar or the check said: the upload is not the archive.
#
# Prints "ok" (also when dataset/ already came from SHA256), or "sha:HEX"
# when the upload's hash is HEX, not SHA256 (nothing else changed). Exit 1,
# with tar's or the check's messages on stderr, when a verified upload does
# not extract or a file does not match.
#
# One finish at a time in ROOT: the lock .ferry-finish.lock (a directory
# holding the owner's pid). A push whose connection dropped during its
# finish leaves that finish running on the target; a push started again
# waits for it (as long as the owner lives, and its /proc cmdline, where
# readable, is a finish), then finds the dataset there. A lock whose owner is
# gone is taken over.
#
# Only POSIX sh and coreutils (GNU tar).

if [ $# -ne 4 ]; then
	echo 'usage: sh finish.sh ROOT SHA256 HASHER CHECKER' >&2
	exit 2
fi
cd "$1" || exit 1
_want=$2
_hasher=$3
_checker=$4
_lock=.ferry-finish.lock

# _alive PID: whether PID is a live finish.
_alive() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/cmdline" ]; then
		case $(tr '\000' ' ' 2>/dev/null <"/proc/$1/cmdline") in
		*ferry-finish* | *finish.sh*) return 0 ;;
		*) return 1 ;;
		esac
	fi
	return 0
}

# _done: whether dataset/ already came from this archive.
_done() {
	[ "$(cat dataset/.ferry-archive-sha256 2>/dev/null)" = "$_want" ]
}

# A closed connection must not stop the clean-up below.
trap '' PIPE
_empty=0
while ! mkdir "$_lock" 2>/dev/null; do
	_owner=$(cat "$_lock/pid" 2>/dev/null)
	if [ -z "$_owner" ]; then
		# Being taken this very moment, or left by an owner that died
		# before it wrote its pid: the latter once it stays so.
		_empty=$((_empty + 1))
		if [ "$_empty" -ge 3 ]; then
			rm -rf "$_lock"
			_empty=0
		fi
	elif ! _alive "$_owner"; then
		rm -rf "$_lock"
		continue
	fi
	sleep 1
done
trap 'rm -rf dataset.tmp .ferry-sha .ferry-tar.err .ferry-check.err "$_lock"' EXIT
trap 'exit 1' INT TERM HUP
printf '%s\n' "$$" >"$_lock/pid"

if _done; then
	rm -f dataset.tar.part
	echo ok
	exit 0
fi
[ -f dataset.tar.part ] || {
	echo "$1: no upload to finish (dataset.tar.part)" >&2
	exit 1
}
rm -rf dataset.tmp && mkdir dataset.tmp || exit 1
sh -c "$_hasher" ferry-hash dataset.tar.part >.ferry-sha &
_h=$!
tar -b 256 -xf dataset.tar.part -C dataset.tmp --no-same-owner --no-same-permissions \
	2>.ferry-tar.err
_t=$?
_c=1
if [ "$_t" = 0 ]; then
	sh -c "$_checker" ferry-check dataset.tmp ../.ferry-chk 2>.ferry-check.err
	_c=$?
fi
if ! wait "$_h"; then
	echo "$1: hashing dataset.tar.part failed" >&2
	exit 1
fi
_got=$(cat .ferry-sha)
if [ "$_got" != "$_want" ]; then
	echo "sha:$_got"
	exit 0
fi
if [ "$_t" != 0 ]; then
	cat .ferry-tar.err >&2
	exit 1
fi
if [ "$_c" != 0 ]; then
	cat .ferry-check.err >&2
	exit 1
fi
printf '%s\n' "$_want" >dataset.tmp/.ferry-archive-sha256 && rm -rf dataset &&
	mv dataset.tmp dataset && rm -f dataset.tar.part || exit 1
echo ok
