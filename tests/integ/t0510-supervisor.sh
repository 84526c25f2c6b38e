#!/usr/bin/env bash
# The remote supervisor src/remote/run.sh, run locally under every POSIX sh at
# hand (sh, dash, busybox sh, bash --posix) with small fake trainers: exit
# codes, deaths by signal, stops, heartbeats, train.log, the env file and its
# secrets, a second start, stale pid files and locks, detached starts that
# hold no caller's descriptor, hostile job roots, usage errors.
. "$(dirname "$0")/lib.sh"
T_TIMEOUT=30

RUN=$FERRY_SRC/src/remote/run.sh
[ -f "$RUN" ] || skip_all "no $RUN"

# The shells to run it with: sh first, then each other one installed that is
# not the same program as sh.
shells=("sh")
sh_real=$(readlink -f "$(command -v sh)")
command -v dash >/dev/null && [ "$(readlink -f "$(command -v dash)")" != "$sh_real" ] && shells+=("dash")
command -v busybox >/dev/null && busybox sh -c true 2>/dev/null && shells+=("busybox sh")
command -v bash >/dev/null && [ "$(readlink -f "$(command -v bash)")" != "$sh_real" ] && shells+=("bash --posix")
diag "shells: ${shells[*]} (sh is $sh_real)"
command -v setsid >/dev/null && have_setsid=1 || have_setsid=

# --- helpers --------------------------------------------------------------------

n_root=0
# newroot [NAME]: make a fresh job root, its path in $root.
newroot() {
	n_root=$((n_root + 1))
	root=$tmpdir/roots/${1:-r$n_root}
	mkdir -p "$root"
}

# wait_until SECONDS CMD...: poll CMD every 50 ms; 1 if it never succeeds.
wait_until() {
	local n=$(($1 * 20))
	shift
	while ((n-- > 0)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

has() { grep -qF -- "$2" "$1" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }

# procs_in DIR: pids of the processes whose working directory is DIR.
procs_in() {
	local d p
	for d in /proc/[0-9]*; do
		[ "$d/cwd" -ef "$1" ] 2>/dev/null || continue
		p=${d#/proc/}
		[ "$p" = "$BASHPID" ] || echo "$p"
	done
}

# bg SHELL ARGS...: start the supervisor in the background for the job root
# $root, its pid in $sup.
bg() {
	local shell=$1
	shift
	# shellcheck disable=SC2086 # "busybox sh" is two words
	$shell "$RUN" "$@" </dev/null >"$tmpdir/bg.out" 2>"$tmpdir/bg.err" &
	sup=$!
	at_exit "reap $sup $(printf %q "$root")"
}

# reap PID ROOT: at exit, kill a supervisor and its trainer's group if left.
reap() {
	local t
	kill -KILL "$1" 2>/dev/null
	t=$(cat "$2/state/trainer_pid" 2>/dev/null) || return 0
	kill -KILL -"$t" "$t" 2>/dev/null
}

# sid_of PID: its session id.
sid_of() {
	local s
	read -r s <"/proc/$1/stat" 2>/dev/null || return 1
	s=${s##*) }
	set -- $s
	echo "$4"
}

# A trainer that prints $1 (when given), waits silently (at most 10 s) for a
# file named go in its working directory, then prints $2 (when given).
GATED='[ -z "$1" ] || echo "$1"; i=0; while [ ! -f go ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; [ -z "$2" ] || echo "$2"'

# last_line FILE
last_line() { tail -n 1 "$1" 2>/dev/null; }

# --- per shell ------------------------------------------------------------------------

for shell in "${shells[@]}"; do
	diag "--- $shell"
	# shellcheck disable=SC2206
	S=($shell)

	for code in 0 3 42; do
		newroot
		t_fails "$shell: exit $code passes through" "$code" "${S[@]}" "$RUN" -i 1 "$root" -- sh -c "exit $code" </dev/null
		t_eq "$shell: state/exit is $code" "$(cat "$root/state/exit" 2>&1)" "$code"
		t_eq "$shell: train.log ends with the status line" "$(last_line "$root/train.log")" \
			"[ferry] trainer exited with status $code"
	done
	t_eq "$shell: state/pid is the supervisor's, started is a time" \
		"$(grep -c '^[0-9][0-9]*$' "$root/state/pid" "$root/state/started" | cut -d: -f2 | tr '\n' ' ')" "1 1 "
	t_eq "$shell: no temporary file left in state/" "$(find "$root/state" -name '.*' | wc -l)" 0
	t_eq "$shell: nothing left running in the root" "$(procs_in "$root")" ""

	# An instant trainer: the heartbeat loop has barely started when it is
	# told to stop (a signal that can come before its trap is set).
	instant() {
		local i
		for ((i = 0; i < 25; i++)); do
			newroot
			timeout 5 "$@" "$RUN" -i 1 "$root" -- true </dev/null || {
				echo "run $i: status $? (124: hung)"
				return 1
			}
		done
	}
	t_ok "$shell: 25 instant trainers in a row, none hangs" instant "${S[@]}"

	newroot
	t_fails "$shell: a trainer killed by SIGKILL" 137 "${S[@]}" "$RUN" -i 1 "$root" -- \
		sh -c 'echo before; kill -KILL $$' </dev/null
	t_eq "$shell: state/exit is 137" "$(cat "$root/state/exit" 2>&1)" 137
	t_eq "$shell: train.log" "$(cat "$root/train.log")" $'before\n[ferry] trainer exited with status 137'

	newroot
	t_fails "$shell: a trainer that is not there" 127 "${S[@]}" "$RUN" -i 1 "$root" -- \
		/nonexistent/trainer </dev/null
	t_eq "$shell: state/exit is 127" "$(cat "$root/state/exit" 2>&1)" 127

	# stdout and stderr appended; a last line without newline is ended.
	newroot
	printf 'from an earlier run\n' >"$root/train.log"
	t_ok "$shell: a trainer writing to stdout and stderr" "${S[@]}" "$RUN" -i 1 "$root" -- \
		sh -c 'echo to-stdout; echo to-stderr >&2; read x && echo "stdin gave $x"; printf "step 5/5\r"' </dev/null
	t_eq "$shell: both appended to train.log, stdin empty, the status on a line of its own" \
		"$(cat "$root/train.log")" \
		$'from an earlier run\nto-stdout\nto-stderr\nstep 5/5\r\n[ferry] trainer exited with status 0'
	t_eq "$shell: the supervisor itself printed nothing" "$(cat "$T_OUT" "$T_ERR")" ""

	# SIGTERM to the supervisor reaches the trainer; 143 recorded.
	newroot
	bg "$shell" -i 1 "$root" -- sh -c 'trap "echo trainer got TERM; exit 143" TERM; echo ready; while :; do sleep 0.1; done'
	wait_until 5 has "$root/train.log" ready || diag "the trainer did not start"
	kill -TERM "$sup"
	rc=0
	wait "$sup" || rc=$?
	t_eq "$shell: SIGTERM to the supervisor: it exits 143" "$rc" 143
	t_match "$shell: the trainer got SIGTERM" "$(cat "$root/train.log")" \
		$'ready\n\\[ferry\\] supervisor got signal 15: sending SIGTERM to the trainer\n(.*\n)?trainer got TERM\n\\[ferry\\] trainer exited with status 143$'
	t_eq "$shell: state/exit is 143" "$(cat "$root/state/exit" 2>&1)" 143
	t_eq "$shell: nothing left running in the root (heartbeat, sleeps)" "$(procs_in "$root")" ""

	# A silent trainer: the heartbeat moves on.
	newroot
	bg "$shell" -i 1 "$root" -- sh -c "$GATED" trainer
	wait_until 5 test -s "$root/state/heartbeat"
	hb1=$(cat "$root/state/heartbeat" 2>/dev/null)
	moved() { hb2=$(cat "$root/state/heartbeat" 2>/dev/null) && [ "$hb2" != "$hb1" ]; }
	wait_until 4 moved
	t_match "$shell: heartbeat is epoch seconds" "$hb1" '^[0-9]{10}$'
	if [ -n "$hb1" ] && [ -n "$hb2" ] && [ "$hb2" -ge $((hb1 + 1)) ] && [ "$hb2" -le "$(date +%s)" ]; then
		t_pass "$shell: heartbeat refreshed while the trainer prints nothing ($hb1 -> $hb2)"
	else
		t_fail "$shell: heartbeat refreshed while the trainer prints nothing" "  $hb1 -> $hb2"
	fi
	t_eq "$shell: the silent trainer's log is empty" "$(cat "$root/train.log" 2>&1)" ""
	touch "$root/go"
	rc=0
	wait "$sup" || rc=$?
	t_eq "$shell: it ends with 0" "$rc/$(cat "$root/state/exit" 2>&1)" "0/0"
	t_eq "$shell: no heartbeat loop outlives the supervisor" "$(procs_in "$root")" ""

	# The env file: in the trainer's environment, nowhere else.
	newroot
	secret="hunter2-$RANDOM$RANDOM-XYZZY"
	tricky="it's \$(touch PWNED) \`touch PWNED\` ; \"q\" \\ end"
	# What ferry writes: NAME='value', each ' as '\''.
	{
		printf "FERRY_TEST_SECRET='%s'\n" "$secret"
		printf "FERRY_TEST_TRICKY='%s'\n" "${tricky//\'/\'\\\'\'}"
	} >"$root/env"
	chmod 600 "$root/env"
	bg "$shell" -i 1 "$root" -- sh -c 'printf "%s\n" "$FERRY_TEST_SECRET" >seen; printf "%s\n" "$FERRY_TEST_TRICKY" >>seen; echo ready; i=0; while [ ! -f go ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done' ARGV-MARKER-$$
	wait_until 5 has "$root/train.log" ready
	found_argv=
	found_marker=
	for f in /proc/[0-9]*/cmdline; do
		c=$(tr '\0' ' ' 2>/dev/null <"$f")
		[[ $c == *"$secret"* ]] && found_argv+=" ${f#/proc/}"
		[[ $c == *ARGV-MARKER-$$* ]] && found_marker=1
	done
	t_eq "$shell: (the argv scan sees the trainer's argv)" "$found_marker" 1
	t_eq "$shell: the secret is in no process's argv" "$found_argv" ""
	t_match "$shell: the secret is not in the supervisor's environment" \
		"$(tr '\0' '\n' <"/proc/$sup/environ" | grep -c "$secret")" '^0$'
	tpid=$(cat "$root/state/trainer_pid" 2>/dev/null)
	t_match "$shell: the trainer's environment has it" \
		"$(tr '\0' '\n' <"/proc/$tpid/environ" 2>/dev/null | grep -c "FERRY_TEST_SECRET=$secret")" '^1$'
	touch "$root/go"
	wait "$sup"
	t_eq "$shell: the trainer saw both values exactly" "$(cat "$root/seen" 2>&1)" "$secret"$'\n'"$tricky"
	t_no_file "$shell: nothing in the env file was executed" "$root/PWNED"
	t_eq "$shell: train.log has no secret" "$(grep -c "$secret" "$root/train.log" "$root/state/supervisor.log" | cut -d: -f2 | tr '\n' ' ')" "0 0 "
	t_eq "$shell: the env-file trainer exits 0" "$(cat "$root/state/exit" 2>&1)" 0
done

sh=${shells[0]}
diag "--- more, with $sh"

# --- an env file that does not parse ------------------------------------------------------

newroot
printf "GOOD='fine'\nBAD='unterminated secret-value-42\n" >"$root/env"
t_fails "an env file that does not parse: 126" 126 sh "$RUN" -i 1 "$root" -- sh -c 'echo should-not-run' </dev/null
t_eq "the trainer did not run; the log says why, quoting nothing" "$(cat "$root/train.log")" \
	$'[ferry] the env file could not be read; the trainer was not started\n[ferry] trainer exited with status 126'

# --- stop: a trainer's children, and a trainer that ignores SIGTERM -------------------------

if [ -n "$have_setsid" ]; then
	newroot
	bg sh -i 1 "$root" -- sh -c 'sleep 30 & echo $! >child.pid; echo ready; wait'
	wait_until 5 has "$root/train.log" ready
	child=$(cat "$root/child.pid")
	t_ok "the trainer's child runs" alive "$child"
	tpid=$(cat "$root/state/trainer_pid")
	t_eq "the trainer leads its own session" "$(sid_of "$tpid")" "$tpid"
	kill -TERM "$sup"
	wait "$sup"
	t_ok "a stop reaches the trainer's whole process group" wait_until 3 dead "$child"
	kill -KILL "$child" 2>/dev/null
else
	t_skip "the trainer's process group" "no setsid"
fi

newroot
bg sh -i 1 "$root" -- sh -c 'trap "echo ignoring TERM" TERM; echo ready; while :; do sleep 0.1; done'
wait_until 5 has "$root/train.log" ready
kill -TERM "$sup"
wait_until 3 has "$root/train.log" "ignoring TERM"
t_ok "a trainer that ignores SIGTERM keeps the supervisor waiting" alive "$sup"
t_no_file "no state/exit yet" "$root/state/exit"
kill -TERM "$sup"
rc=0
wait "$sup" || rc=$?
t_eq "a second signal sends SIGKILL: 137" "$rc/$(cat "$root/state/exit" 2>&1)" "137/137"
t_match "the log says so" "$(cat "$root/train.log")" 'sending SIGKILL to the trainer'

# SIGTERM at every moment of the start: whenever it lands, the run ends at
# once, and a supervisor that owned the job (wrote state/pid) wrote state/exit.
early() {
	local i k d rc bad=
	local -a argv
	for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do
		newroot
		sh "$RUN" -i 1 "$root" -- sleep 20 </dev/null >/dev/null 2>&1 &
		sup=$!
		# Not before sh runs run.sh: a signal that reaches the forked bash
		# first would run this script's own TERM trap there.
		for ((k = 0; k < 20000; k++)); do
			mapfile -d '' -t argv <"/proc/$sup/cmdline" 2>/dev/null
			[[ ${argv[1]:-} == "$RUN" ]] && break
		done
		d=$(printf '0.%03d' $((i * 2)))
		[ "$d" = 0.000 ] || sleep "$d"
		kill -TERM "$sup"
		timeout 5 bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.02; done' _ "$sup" || {
			echo "run $i (TERM after $d s): still running after 5 s"
			reap "$sup" "$root"
			bad=1
		}
		rc=0
		wait "$sup" || rc=$?
		if [ -f "$root/state/pid" ]; then
			[ "$rc/$(cat "$root/state/exit" 2>&1)" = 143/143 ] || {
				echo "run $i: status $rc, state/exit $(cat "$root/state/exit" 2>&1)"
				bad=1
			}
		elif [ "$rc" != 143 ]; then
			echo "run $i: stopped before owning the job, with status $rc"
			bad=1
		fi
		[ -z "$(procs_in "$root")" ] || {
			echo "run $i: left running: $(procs_in "$root")"
			reap "$sup" "$root"
			bad=1
		}
	done
	[ -z "$bad" ]
}
t_ok "SIGTERM at any moment of the start: ended at once, state/exit 143 once owned" early

# --- the supervisor killed outright: its heartbeat loop goes too ------------------------------

newroot
bg sh -i 1 "$root" -- sh -c 'echo ready; exec sleep 30'
wait_until 5 has "$root/train.log" ready
tpid=$(cat "$root/state/trainer_pid")
kill -KILL "$sup"
wait "$sup" 2>/dev/null
left() { [ "$(procs_in "$root")" = "$tpid" ]; }
t_ok "SIGKILLed supervisor: within 2 intervals only the trainer is left" wait_until 3 left
kill -KILL "$tpid" 2>/dev/null

# --- one job at a time ---------------------------------------------------------------------

newroot
bg sh -i 1 "$root" -- sh -c "$GATED" trainer first first-done
wait_until 5 has "$root/train.log" first
first_pid=$(cat "$root/state/pid")
t_eq "state/pid is the running supervisor" "$first_pid" "$sup"
t_fails "a second start while one runs refuses with 3" 3 sh "$RUN" -i 1 "$root" -- sh -c 'echo second' </dev/null
t_match "and says why on stderr" "$(cat "$T_ERR")" 'already running.*nothing started'
t_eq "state/pid untouched" "$(cat "$root/state/pid")" "$first_pid"
t_no_file "no state/exit" "$root/state/exit"
t_no_file "no lock left" "$root/state/lock"
touch "$root/go"
rc=0
wait "$sup" || rc=$?
t_eq "the first job ends as it would have" "$rc/$(cat "$root/state/exit" 2>&1)" "0/0"
t_eq "its log has no trace of the second" "$(cat "$root/train.log")" \
	$'first\nfirst-done\n[ferry] trainer exited with status 0'

# After the end, a new start is fine: state/exit replaced.
t_fails "a start after the end runs" 5 sh "$RUN" -i 1 "$root" -- sh -c 'exit 5' </dev/null
t_eq "state/exit is the new one" "$(cat "$root/state/exit")" 5

# Stale pid files: a dead pid, and a live process that is no supervisor.
newroot
mkdir -p "$root/state"
sh -c 'exit 0' &
deadpid=$!
wait "$deadpid"
echo "$deadpid" >"$root/state/pid"
t_ok "a pid file naming a dead process is taken over" sh "$RUN" -i 1 "$root" -- sh -c 'echo took-over' </dev/null
t_ne "state/pid replaced" "$(cat "$root/state/pid")" "$deadpid"
t_match "and the trainer ran" "$(cat "$root/train.log")" took-over
newroot
mkdir -p "$root/state"
sleep 20 &
other=$!
at_exit "kill $other 2>/dev/null"
echo "$other" >"$root/state/pid"
t_ok "a pid file naming some other live program is taken over" sh "$RUN" -i 1 "$root" -- true </dev/null
kill "$other" 2>/dev/null

# A start lock left by a supervisor that died while starting.
newroot
mkdir -p "$root/state/lock"
echo "$deadpid" >"$root/state/lock/pid"
t_ok "a stale start lock is taken over" sh "$RUN" -i 1 "$root" -- true </dev/null
t_no_file "and released" "$root/state/lock"

# --- detached starts -----------------------------------------------------------------------

newroot
cp "$RUN" "$root/run.sh"
start=$(date +%s%N)
bash -c 'cd "$1" && setsid sh ./run.sh -i 1 "$1" -- sh -c "$2" trainer detached after </dev/null >/dev/null 2>&1 &' \
	_ "$root" "$GATED"
ms=$((($(date +%s%N) - start) / 1000000))
t_no_file "setsid ... & returns at once (${ms} ms), before the job ends" "$root/state/exit"
wait_until 5 has "$root/train.log" detached
dpid=$(cat "$root/state/pid" 2>/dev/null)
t_ok "the job goes on after the starting shell is gone" alive "$dpid"
t_eq "the supervisor leads its own session" "$(sid_of "$dpid")" "$dpid"
touch "$root/go"
t_ok "and ends" wait_until 6 test -f "$root/state/exit"
t_eq "exit 0, log complete" "$(cat "$root/state/exit")|$(cat "$root/train.log")" \
	$'0|detached\nafter\n[ferry] trainer exited with status 0'

# The nohup lesson: nothing of the job holds the caller's stdout or stderr, even
# when it is started without redirections (as ssh's channel would be).
newroot
start=$(date +%s%N)
out=$(sh "$RUN" -i 1 "$root" -- sh -c "$GATED" trainer started &)
ms=$((($(date +%s%N) - start) / 1000000))
t_no_file "started in \$(... &) without redirections, it returns at once (${ms} ms), before the job ends" \
	"$root/state/exit"
t_eq "and printed nothing there" "$out" ""
t_ok "while the job runs" wait_until 3 has "$root/train.log" started
touch "$root/go"
t_ok "then ends" wait_until 5 test -f "$root/state/exit"

# --- hostile roots and arguments -------------------------------------------------------------

for name in $'j $(touch PWNED) \'q\' "d" `touch PWNED` ;x\n ü 日本' '-dash root' ' lead space'; do
	newroot "$name"
	t_fails "hostile root $(printf %q "$name")" 4 sh "$RUN" -i 1 "$root" -- \
		sh -c 'pwd >cwd; printf "%s\n" "$@" >args; exit 4' trainer '$(touch PWNED)' "a b" '`touch PWNED`' ';' </dev/null
	t_eq "  the trainer ran in it" "$(cat "$root/cwd" 2>&1)" "$root"
	t_eq "  its args arrived as given" "$(cat "$root/args" 2>&1)" $'$(touch PWNED)\na b\n`touch PWNED`\n;'
	t_eq "  state/exit" "$(cat "$root/state/exit" 2>&1)" 4
done
t_eq "nothing was executed (no PWNED anywhere)" "$(find "$tmpdir" "$PWD" -maxdepth 3 -name PWNED 2>/dev/null)" ""
newroot
(cd "$tmpdir/roots" && t_fails "a relative root" 0 sh "$RUN" -i 1 "${root##*/}" -- true </dev/null)
t_file "  worked" "$root/state/exit"

# --- usage --------------------------------------------------------------------------------

newroot
t_fails "no -- is a usage error" 2 sh "$RUN" "$root" true </dev/null
t_match "  with the usage line" "$(cat "$T_ERR")" 'usage: sh run.sh \[-i HEARTBEAT_SECONDS\] ROOT -- TRAINER ARGS'
t_fails "no trainer" 2 sh "$RUN" "$root" -- </dev/null
t_fails "-i 0" 2 sh "$RUN" -i 0 "$root" -- true </dev/null
t_fails "-i x" 2 sh "$RUN" -i x "$root" -- true </dev/null
t_fails "a root that is not there" 2 sh "$RUN" "$tmpdir/no/such/root" -- true </dev/null
t_no_file "none of those started anything" "$root/state"
t_fails "-i5 is accepted" 0 sh "$RUN" -i5 "$root" -- true </dev/null
t_fails "so is no -i" 0 sh "$RUN" "$root" -- true </dev/null

done_testing
