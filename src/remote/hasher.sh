#!/bin/sh
# hasher.sh FILE: print the SHA-256 of FILE on the target, as 64 hex digits
# and a newline. ferry embeds this file and runs it as
#
#   sh -c "$(cat hasher.sh)" ferry-hash FILE
#
# openssl when the target has it (it uses the CPU's SHA instructions, several
# times faster than coreutils), else sha256sum. Exit 1 when FILE cannot be
# read. Only POSIX sh and coreutils (openssl optional).

if [ $# -ne 1 ]; then
	echo 'usage: sh hasher.sh FILE' >&2
	exit 2
fi
if command -v openssl >/dev/null 2>&1; then
	_h=$(openssl dgst -sha256 -r <"$1") || exit 1
else
	_h=$(sha256sum <"$1") || exit 1
fi
printf '%s\n' "${_h%% *}"
