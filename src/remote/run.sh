#!/bin/sh
# run.sh: ferry's remote supervisor. ferry embeds this file in its binary,
# uploads it to <job root>/run.sh and starts it detached:
#
#   cd ROOT && setsid sh run.sh -i 10 ROOT -- TRAINER ARGS... </dev/null >/dev/null 2>&1 &
#
# Usage: sh run.sh [-i HEARTBEAT_SECONDS] ROOT -- TRAINER ARGS...
#
#   -i N     refresh state/heartbeat every N seconds (a positive whole number;
#            default 10) while the trainer runs, even when it prints nothing.
#   ROOT     the job root. The supervisor and the trainer run in it; state/ is
#            made there.
#   --       required; everything after it is the trainer's argv, run as is
#            (never through a shell, so nothing in it is interpreted).
#
# Files under ROOT (every state file that holds a value is written to a
# temporary file in state/ and renamed over the old one, so a reader never
# sees half of one):
#
#   state/pid          the supervisor's pid, written once it owns the job.
#   state/started      the start time, epoch seconds.
#   state/trainer_pid  the trainer's pid (its process group and session too,
#                      when setsid(1) is on the host).
#   state/heartbeat    epoch seconds, written when the trainer starts and
#                      every HEARTBEAT_SECONDS while it runs; the refresher
#                      (a subshell of the supervisor) stops with the trainer
#                      and within HEARTBEAT_SECONDS of the supervisor's death.
#   state/exit         written when the trainer ends, whatever way: its exit
#                      code, or 128+N when signal N killed it (137 for SIGKILL,
#                      the OOM killer's signal). Never left out: `set -e` is
#                      not used here, unlike the earlier system whose status
#                      file was written only on success.
#   state/stopping     made when the supervisor forwards a stop signal (a
#                      trainer process stopped before it could drop the
#                      supervisor's signal traps exits 143 on seeing it).
#   state/supervisor.log  the supervisor's own stdout and stderr (shell
#                      diagnostics), kept out of train.log.
#   train.log          the trainer's stdout and stderr, appended (stdin is
#                      /dev/null). The supervisor adds `[ferry] ...` lines: when
#                      it forwards a signal, and last of all, on a line of its
#                      own, `[ferry] trainer exited with status N`, written
#                      before state/exit so that whoever sees state/exit and
#                      reads the log once more has every line.
#   env                optional, written by ferry with mode 0600: lines
#                      NAME='value' (single-quote shell quoting). Sourced with
#                      `set -a` in the trainer's process only, just before it
#                      execs the trainer, so the values are in the trainer's
#                      environment and never in any argv or in train.log. An
#                      env file that does not parse starts no trainer: exit 126
#                      and a `[ferry]` line that quotes nothing from the file.
#
# Start-up, in order: cd ROOT, mkdir -p state, take the start lock
# (state/lock, a directory), then refuse with exit 3 when state/pid names a live
# supervisor (the pid answers kill -0 or has /proc/PID, and its /proc cmdline,
# where readable, mentions run.sh) and state/exit does not exist: a job already
# runs, and nothing is touched. A pid file whose process is gone (or is some
# other program now) is stale and taken over. Then state/exit (and
# state/trainer_pid, state/stopping) is removed, state/started and state/pid
# written, the lock released, and the supervisor's stdio moved off whatever
# started it (stdin /dev/null, stdout and stderr to state/supervisor.log, fds
# 3-9 closed), so no SSH channel is held open by any process of the job (the
# earlier system's nohup lesson).
#
# Signals: SIGTERM, SIGINT or SIGHUP to the supervisor forward SIGTERM to the
# trainer (to its whole process group when setsid(1) put it in its own
# session); a second such signal forwards SIGKILL. The supervisor keeps
# waiting, then writes state/exit as always. A signal that arrives before the
# trainer starts means it is not started: state/exit is 128+that signal.
# (SIGINT cannot be caught when the supervisor was started in the background
# by a non-interactive shell, which starts it with SIGINT ignored.)
#
# Exit status: the trainer's (as in state/exit); 2 for a usage error or a ROOT
# that cannot be entered; 3 when a job already runs in ROOT.
#
# Only POSIX sh (dash, busybox sh, bash), coreutils, kill, sleep, date, mv and,
# when present, setsid(1). Internal names start with _ so that no variable from
# the env file can be confused with them.

_usage() {
	printf '%s\n' 'usage: sh run.sh [-i HEARTBEAT_SECONDS] ROOT -- TRAINER ARGS...' >&2
	exit 2
}

_die() {
	_code=$1
	shift
	printf 'run.sh: %s\n' "$*" >&2
	exit "$_code"
}

# _put FILE VALUE: write VALUE and a newline to FILE through a temporary file
# in the same directory, then rename it over FILE.
_put() {
	case $1 in
	*/*) _tmp=${1%/*}/.${1##*/}.tmp.$$ ;;
	*) _tmp=.$1.tmp.$$ ;;
	esac
	if printf '%s\n' "$2" >"$_tmp" && mv -f -- "$_tmp" "$1"; then
		return 0
	fi
	rm -f -- "$_tmp"
	return 1
}

# _alive PID: whether PID is a live supervisor (see the header).
_alive() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ "$1" != "$$" ] || return 1
	kill -0 "$1" 2>/dev/null || [ -d "/proc/$1" ] || return 1
	if [ -r "/proc/$1/cmdline" ]; then
		case $(tr '\000' ' ' 2>/dev/null <"/proc/$1/cmdline") in
		*run.sh*) return 0 ;;
		*) return 1 ;;
		esac
	fi
	return 0
}

# _running PID: whether PID is a process that has not ended (a zombie has:
# its parent may be an init that never reaps).
_running() {
	kill -0 "$1" 2>/dev/null || return 1
	{ read -r _l <"/proc/$1/stat"; } 2>/dev/null || return 0
	case ${_l##*) } in
	Z* | X*) return 1 ;;
	esac
	return 0
}

# --- signals ------------------------------------------------------------------

_nsig=0   # signals received
_signo=   # the first one's number
_got=0    # set by the handler; the wait loop clears it
_tpid=    # the trainer's pid, once started
_group=   # non-empty when the trainer leads its own process group
_ended=   # non-empty once the trainer's status is in

# shellcheck disable=SC2317 # called from the traps below
# _on_signal N: count it, and pass it on when the trainer runs.
_on_signal() {
	_nsig=$((_nsig + 1))
	_got=1
	[ -n "$_signo" ] || _signo=$1
	_forward "$1"
}

# shellcheck disable=SC2317
# _forward N: signal N was received: send the running trainer SIGTERM, or
# SIGKILL when this is not the first signal.
_forward() {
	[ -n "$_tpid" ] && [ -z "$_ended" ] || return 0
	if [ "$_nsig" -le 1 ]; then _fwd=TERM; else _fwd=KILL; fi
	# Before the signal: a trainer process so young that it has not yet
	# dropped our traps would lose it, and looks for this file instead.
	: >state/stopping
	printf '[ferry] supervisor got signal %s: sending SIG%s to the trainer\n' "$1" "$_fwd" >>train.log
	if [ -n "$_group" ]; then
		kill -"$_fwd" -"$_tpid" 2>/dev/null || kill -"$_fwd" "$_tpid" 2>/dev/null
	else
		kill -"$_fwd" "$_tpid" 2>/dev/null
	fi
	return 0
}
trap '_on_signal 15' TERM
trap '_on_signal 2' INT
trap '_on_signal 1' HUP

# --- arguments ----------------------------------------------------------------

_hb=10
case ${1-} in
-i)
	[ $# -ge 2 ] || _usage
	_hb=$2
	shift 2
	;;
-i*)
	_hb=${1#-i}
	shift
	;;
esac
case $_hb in
'' | *[!0-9]*) _die 2 "the heartbeat interval must be a whole number of seconds, not '$_hb'" ;;
esac
[ "$_hb" -gt 0 ] || _die 2 "the heartbeat interval must be at least 1 second"
if [ $# -lt 3 ] || [ "$2" != -- ]; then
	_usage
fi
_root=$1
shift 2
[ -n "$_root" ] || _die 2 "the job root is empty"
case $_root in
-*) _root=./$_root ;;
esac
unset CDPATH
cd "$_root" 2>/dev/null || _die 2 "cannot enter the job root $_root"
mkdir -p state 2>/dev/null || _die 2 "cannot make state/ in $PWD"

# --- claim the job ------------------------------------------------------------

_n=0
_stolen=0
while ! mkdir state/lock 2>/dev/null; do
	_n=$((_n + 1))
	if [ "$_n" -ge 2 ]; then
		# A start takes milliseconds: a lock this old was left by a
		# supervisor that died while starting, unless its owner still lives.
		_owner=$(cat state/lock/pid 2>/dev/null)
		if _alive "$_owner" || [ "$_stolen" -ge 2 ]; then
			_die 3 "another supervisor is starting in $PWD (state/lock); nothing started"
		fi
		rm -rf state/lock
		_stolen=$((_stolen + 1))
		_n=0
		continue
	fi
	sleep 1
done
printf '%s\n' "$$" >state/lock/pid

_old=$(cat state/pid 2>/dev/null)
if [ ! -e state/exit ] && _alive "$_old"; then
	rm -rf state/lock
	_die 3 "a job is already running in $PWD (supervisor pid $_old); nothing started"
fi
# Removed before state/pid changes: a reader sees the old run end or this one
# start, never the old exit code beside the new pid.
rm -f state/exit state/trainer_pid state/stopping
if ! _put state/started "$(date +%s)" || ! _put state/pid "$$"; then
	rm -rf state/lock
	_die 2 "cannot write state/ in $PWD"
fi
rm -rf state/lock

# Nothing of whoever started us stays open in this process or its children.
exec </dev/null >state/supervisor.log 2>&1
exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-

# --- run the trainer ----------------------------------------------------------

_st=
if [ "$_nsig" -gt 0 ]; then
	printf '[ferry] supervisor got signal %s before the trainer started: not started\n' "$_signo" >>train.log
	_st=$((128 + _signo))
else
	if _setsid=$(command -v setsid 2>/dev/null) && [ -n "$_setsid" ]; then
		# The trainer in a session (and process group) of its own, so that a
		# stop reaches its children too. The subshell is not a group leader,
		# so setsid(1) does not fork: $! stays the trainer's pid.
		set -- "$_setsid" "$@"
		_group=1
	fi
	(
		# A stop that came while this process was being forked.
		[ ! -e state/stopping ] || exit 143
		if [ -f ./env ]; then
			# shellcheck source=/dev/null # written by ferry
			if ! (set -a && . ./env) </dev/null >/dev/null 2>&1; then
				printf '%s\n' '[ferry] the env file could not be read; the trainer was not started' >&2
				exit 126
			fi
			set -a
			# shellcheck source=/dev/null
			. ./env
			set +a
		fi
		exec "$@"
	) </dev/null >>train.log 2>&1 &
	_tpid=$!
	# A signal that came while the trainer was being started is passed on
	# now (the handler had no pid to send it to).
	[ "$_nsig" -eq 0 ] || _forward "$_signo"
	_put state/trainer_pid "$_tpid"

	# The heartbeat: its own loop, stopped by SIGUSR1 from us, deaf to the
	# signals that stop a job, and gone within one interval of our death or
	# of the trainer's (should a SIGUSR1 be lost: bash, for one, can drop a
	# signal that comes while the subshell is still setting its trap).
	# The trap only notes the stop and ends the sleep it knows of; the loop
	# itself leaves, so that a SIGUSR1 landing between `sleep &` and `$!`
	# cannot orphan that sleep, nor one landing inside _put leave its
	# temporary file.
	_sup=$$
	(
		_sp=
		_halt=
		trap '' TERM INT HUP
		trap '_halt=1; [ -z "$_sp" ] || kill -KILL "$_sp" 2>/dev/null' USR1
		while [ -z "$_halt" ] && _running "$_sup" && _running "$_tpid"; do
			_put state/heartbeat "$(date +%s)"
			[ -z "$_halt" ] || break
			sleep "$_hb" &
			_sp=$!
			[ -z "$_halt" ] || kill -KILL "$_sp" 2>/dev/null
			wait "$_sp"
			# A trap during `wait` returns early: wait for the sleep itself.
			while _running "$_sp"; do wait "$_sp"; done 2>/dev/null
			_sp=
		done
		exit 0
	) </dev/null >/dev/null 2>&1 &
	_hbpid=$!

	# A trapped signal interrupts `wait` (status > 128): wait again until one
	# returns with no signal in between. Shells keep reporting a reaped
	# child's status to later waits; one that answers 127 (unknown pid)
	# instead leaves the status we already have.
	while :; do
		_got=0
		wait "$_tpid"
		_rc=$?
		if [ "$_rc" -eq 127 ] && [ -n "$_st" ]; then
			break
		fi
		_st=$_rc
		[ "$_got" -eq 1 ] || break
	done
	_ended=1
	# ksh93 reports 256+N for signal N.
	[ "$_st" -le 255 ] || _st=$((_st - 128))

	kill -USR1 "$_hbpid" 2>/dev/null
fi

# --- record the end -------------------------------------------------------------

if [ -s train.log ] && [ -n "$(tail -c 1 train.log 2>/dev/null)" ]; then
	printf '\n' >>train.log
fi
printf '[ferry] trainer exited with status %s\n' "$_st" >>train.log
if ! _put state/exit "$_st"; then
	printf '%s\n' "$_st" >state/exit
fi
if [ -n "$_tpid" ]; then
	# Once more, for a first SIGUSR1 that came before the loop's trap; the
	# loop is ours to wait for, so that it never outlives us.
	kill -USR1 "$_hbpid" 2>/dev/null
	while kill -0 "$_hbpid" 2>/dev/null; do
		wait "$_hbpid" 2>/dev/null
	done
	# A heartbeat stopped between writing and renaming leaves its
	# temporary file (it is named with our pid: $$ in a subshell is ours).
	rm -f -- "state/.heartbeat.tmp.$$"
fi
exit "$_st"
