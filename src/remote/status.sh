#!/bin/sh
# status.sh ROOT [brief]: the state of the job in ROOT, for `ferry remote
# status` and `logs`. ferry embeds this file and runs it as
#
#   sh -c "$(cat status.sh)" ferry-status ROOT [brief]
#
# Prints, one a line (each only when known):
#   state=absent             ROOT does not exist (nothing else is printed)
#   now=EPOCH                the target's clock
#   pid=PID                  state/pid: the supervisor (run.sh)
#   alive=1                  that supervisor runs (a zombie does not; where
#                            /proc shows its cmdline, it must be run.sh's)
#   exit=N                   state/exit: the trainer ended with N
#   heartbeat=EPOCH          state/heartbeat
#   log=BYTES                the size of train.log
#   disk=KB                  free space under ROOT       (not with brief)
#   gpu=UTIL, MEM, TOTAL, C  the first GPU, nvidia-smi   (not with brief)
#
# The supervisor is looked at before state/exit, and state/exit before the
# log: run.sh writes its last log line, then state/exit, then ends, so a
# supervisor seen gone with no exit file vanished, and once state/exit is
# seen the log holds every byte.
#
# Only POSIX sh, coreutils and awk.

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo 'usage: sh status.sh ROOT [brief]' >&2
	exit 2
fi

# _alive PID: whether PID is a running supervisor.
_alive() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$1" 2>/dev/null || return 1
	if { read -r _l <"/proc/$1/stat"; } 2>/dev/null; then
		case ${_l##*) } in
		Z* | X*) return 1 ;;
		esac
	fi
	if [ -r "/proc/$1/cmdline" ]; then
		case $(tr '\000' ' ' 2>/dev/null <"/proc/$1/cmdline") in
		*run.sh*) ;;
		*) return 1 ;;
		esac
	fi
	return 0
}

cd "$1" 2>/dev/null || {
	echo state=absent
	exit 0
}
echo "now=$(date +%s)"
_pid=
[ -f state/pid ] && _pid=$(cat state/pid 2>/dev/null)
[ -n "$_pid" ] && echo "pid=$_pid"
_alive "$_pid" && echo alive=1
[ -f state/exit ] && echo "exit=$(cat state/exit)"
[ -f state/heartbeat ] && echo "heartbeat=$(cat state/heartbeat)"
if [ -f train.log ]; then
	_n=$(wc -c <train.log)
	echo "log=$((_n))"
fi
[ "${2-}" = brief ] && exit 0
df -Pk . 2>/dev/null | awk 'NR==2 { print "disk=" $4 }'
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu \
		--format=csv,noheader,nounits 2>/dev/null | head -1 | sed 's/^/gpu=/'
fi
exit 0
