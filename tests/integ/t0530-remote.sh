#!/usr/bin/env bash
# ferry remote (exec, wait, push, launch, status, logs, pull) against a real
# sshd on 127.0.0.1 and against the local transport: hostile names execute
# nothing, uploads resume and catch damage (and survive the writer of a
# killed push still draining on the target), training survives dropped
# connections, SIGKILL reads 137 and fails status and logs -f, logs and
# outputs are fetched once each, SIGTERM stops a wait or a push at once,
# wait reports the trainer checkout's commit and waits through Vast's
# loading.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
require_cmd python3 tar sha256sum setsid

cd "$tmpdir" || exit 1
bash "$GEN_DATASET" valid ds 12 512x512 >/dev/null || skip_all "gen_dataset failed"
"$FERRY" --set dataset.resolution=512 dataset pack ds -o ds.tar >/dev/null || skip_all "pack failed"
size=$(stat -c %s ds.tar)
sha=$(sha256sum ds.tar | cut -d' ' -f1)

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# A trainer: writes output/m/ck_N.bin in pieces (so a puller can catch one
# growing), prints a \r-redrawn bar on stderr, then exits with $1.
cat >trainer.sh <<'SH'
mkdir -p output/m
n=${STEPS:-4}
i=1
while [ $i -le $n ]; do
	printf '\rjob: step %d/%d' $i $n >&2
	head -c 20000 /dev/zero >output/m/ck_$i.bin
	sleep 0.3
	head -c 20000 /dev/zero >>output/m/ck_$i.bin
	# Halfway, hold until the test has looked at a running job, so a
	# slow machine cannot let training end before status is asked.
	if [ $i -eq $((n / 2)) ] && [ -n "$HOLD" ]; then
		w=0
		while [ ! -e release ] && [ $w -lt 600 ]; do sleep 0.1; w=$((w + 1)); done
	fi
	i=$((i + 1))
done
printf '\n' >&2
echo "token ${HF_TOKEN:+is set}"
exit "${1:-0}"
SH

hostile='j $(touch PWNED) '"'q'"' "d" ü
x'

# suite NAME TARGET ROOT: the same checks on one transport. ROOT is where
# the target keeps job roots, as this machine sees it.
suite() {
	local name=$1 target=$2 root=$3 jr
	jr="$root/$hostile"
	rm -rf "$XDG_STATE_HOME/ferry/remote" # the local copies of logs

	t_ok "$name: exec quotes every argument" "$FERRY" remote exec --target "$target" -- printf '%s|' 'a b' '$(touch PWNED)' "q'uote" '*'
	t_eq "$name: arguments arrive as they are" "$(cat "$T_OUT")" "a b|\$(touch PWNED)|q'uote|*|"
	t_fails "$name: a command's own status comes back" 7 "$FERRY" remote exec --target "$target" -- sh -c 'exit 7'
	t_ok "$name: wait --json" "$FERRY" remote wait --target "$target" --json --timeout 30
	t_eq "$name: reachable, tar and sha256sum there" "$(pyq "$T_OUT" '(d["reachable"], d["tar"], d["sha256sum"], d["ok"])')" "(True, True, True, True)"
	t_fails "$name: wait names a missing trainer" 1 "$FERRY" remote wait --target "$target" --trainer /nonexistent/run.py --timeout 30

	# --- push: resume, damage, hostile names ---
	mkdir -p "$jr"
	head -c $((size / 2)) ds.tar >"$jr/dataset.tar.part"
	t_ok "$name: push resumes a half upload" "$FERRY" remote push --target "$target" --job "$hostile" ds.tar --json
	# (from the last whole 64 KiB block: the target's writer seeks in blocks)
	from=$((size / 2 - size / 2 % 65536))
	t_eq "$name: from half, the rest sent" "$(pyq "$T_OUT" '(d["resumed_from"], d["sent"], d["sha256"])')" "($from, $((size - from)), '$sha')"
	t_ok "$name: the dataset verifies there" sh -c "cd \"\$1/dataset\" && sha256sum -c --quiet SHA256SUMS" sh "$jr"
	t_ok "$name: push again finds it there" "$FERRY" remote push --target "$target" --job "$hostile" ds.tar --json
	t_eq "$name: nothing sent" "$(pyq "$T_OUT" '(d["already"], d["sent"])')" "(True, 0)"
	rm -rf "$jr"
	mkdir -p "$jr"
	head -c $((size / 2)) ds.tar | python3 -c 'import sys; b=bytearray(sys.stdin.buffer.read()); b[100]^=1; sys.stdout.buffer.write(b)' >"$jr/dataset.tar.part"
	t_ok "$name: a damaged upload is caught and sent again" "$FERRY" remote push --target "$target" --job "$hostile" ds.tar --json
	t_eq "$name: one resend, right hash" "$(pyq "$T_OUT" '(d["resends"], d["sha256"])')" "(1, '$sha')"
	t_no_file "$name: nothing was executed" "$tmpdir/PWNED"
	t_no_file "$name: nor in the job root" "$jr/PWNED"

	# --- launch, status, logs, pull ---
	printf 'HF_TOKEN=hf_supersecret_123\n' >envfile
	t_ok "$name: launch" env STEPS=10 "$FERRY" remote launch --target "$target" --job "$hostile" --env-file envfile --heartbeat 1 -- sh -c 'STEPS=10 HOLD=1 exec sh "$0" 0' "$tmpdir/trainer.sh"
	t_match "$name: started" "$(cat "$T_OUT")" "^started"
	t_ok "$name: launch again" "$FERRY" remote launch --target "$target" --job "$hostile" -- true
	t_match "$name: starts nothing" "$(cat "$T_OUT")" "already running"
	t_ok "$name: status --json" "$FERRY" remote status --target "$target" --job "$hostile" --json
	t_eq "$name: running" "$(pyq "$T_OUT" 'd["state"]')" "running"
	t_eq "$name: env file is 600" "$(stat -c %a "$jr/env")" "600"
	if [ "$name" = ssh ]; then
		# Every connection dropped, the master included: training goes on.
		sshd_kill_connections
	fi
	t_ok "$name: pull during training" "$FERRY" remote pull --target "$target" --job "$hostile" -o pulled --json
	t_ne "$name: some outputs still being written" "$(pyq "$T_OUT" 'd["fetched"] + d["incomplete"]')" "0"
	touch "$jr/release"
	sleep 3
	t_ok "$name: logs -f follows to the end" "$FERRY" remote logs --target "$target" --job "$hostile" -f
	t_match "$name: the bar as it finally stood" "$(cat "$T_OUT")" "job: step 10/10"
	t_not_match "$name: not every redraw" "$(cat "$T_OUT")" "step 1/10"
	t_match "$name: the supervisor's last line" "$(cat "$T_OUT")" "trainer exited with status 0"
	t_match "$name: env reached the trainer" "$(cat "$T_OUT")" "token is set"
	t_not_match "$name: the secret never in the log" "$(cat "$jr/train.log")" "hf_supersecret"
	t_ok "$name: logs again" "$FERRY" remote logs --target "$target" --job "$hostile"
	t_eq "$name: the local copy holds the log once" "$(cat "$XDG_STATE_HOME"/ferry/remote/*/*/train.log | grep -c 'trainer exited')" "1"
	t_ok "$name: status after" "$FERRY" remote status --target "$target" --job "$hostile" --json
	t_eq "$name: exited 0" "$(pyq "$T_OUT" '(d["state"], d["exit_code"])')" "('exited', 0)"
	t_ok "$name: pull after" "$FERRY" remote pull --target "$target" --job "$hostile" -o pulled --json
	t_eq "$name: every checkpoint here, whole" "$(ls pulled/m | wc -l) $(cat pulled/m/*.bin | wc -c)" "10 400000"
	t_ok "$name: pull once more" "$FERRY" remote pull --target "$target" --job "$hostile" -o pulled --json
	t_eq "$name: nothing fetched twice" "$(pyq "$T_OUT" '(d["fetched"], d["skipped"])')" "(0, 10)"
	weird=$'we\nird $(touch PWNED) \'q\' \xc3\xbc.bin'
	printf 'odd' >"$jr/output/m/$weird"
	t_ok "$name: pull a file with a hostile name" "$FERRY" remote pull --target "$target" --job "$hostile" -o pulled --json
	t_eq "$name: fetched, under its own name" "$(pyq "$T_OUT" 'd["fetched"]') $(cat "pulled/m/$weird")" "1 odd"
	t_no_file "$name: and nothing ran" "$tmpdir/PWNED"
	rm -rf pulled "$XDG_STATE_HOME/ferry/remote"

	# --- SIGKILL reads 137; a hung trainer shows a heartbeat, no log ---
	t_ok "$name: launch a sleeper" "$FERRY" remote launch --target "$target" --job k --heartbeat 1 -- sleep 60
	sleep 2.5
	t_ok "$name: status of a silent trainer" "$FERRY" remote status --target "$target" --job k --json
	t_eq "$name: heartbeat fresh, log empty" "$(pyq "$T_OUT" '(d["state"], d["heartbeat_age_s"] <= 2, d["log_bytes"])')" "('running', True, 0)"
	kill -KILL "$(cat "$root/k/state/trainer_pid")" || true
	sleep 1.5
	t_fails "$name: status after SIGKILL fails" 1 "$FERRY" remote status --target "$target" --job k --json
	t_eq "$name: exited 137" "$(pyq "$T_OUT" '(d["state"], d["exit_code"])')" "('exited', 137)"
	t_match "$name: saying so" "$(cat "$T_ERR")" "job k: the trainer exited with status 137"
	T_TIMEOUT=60 t_fails "$name: logs -f of the killed run fails" 1 "$FERRY" remote logs --target "$target" --job k -f
	t_match "$name: after its last line" "$(cat "$T_OUT")" "trainer exited with status 137"
	t_match "$name: saying why" "$(cat "$T_ERR")" "exited with status 137"
	t_ok "$name: a job never started" "$FERRY" remote status --target "$target" --job nothing-here --json
	t_eq "$name: absent" "$(pyq "$T_OUT" 'd["state"]')" "absent"
	T_TIMEOUT=60 t_fails "$name: logs -f of a job with no folder" 1 "$FERRY" remote logs --target "$target" --job nothing-here -f
	t_match "$name: says so" "$(cat "$T_ERR")" "no folder"
	mkdir -p "$root/pushed-only"
	T_TIMEOUT=60 t_fails "$name: logs -f of a job never launched ends" 1 "$FERRY" remote logs --target "$target" --job pushed-only -f
	t_match "$name: saying it was never launched" "$(cat "$T_ERR")" "never launched"
	t_ok "$name: status of it" "$FERRY" remote status --target "$target" --job pushed-only --json
	t_eq "$name: never started, not a failure" "$(pyq "$T_OUT" 'd["state"]')" "never-started"

	# --- a supervisor killed: vanished, a failure ---
	t_ok "$name: launch one more sleeper" "$FERRY" remote launch --target "$target" --job v --heartbeat 1 -- sleep 60
	kill -KILL "$(cat "$root/v/state/pid")"
	kill -KILL "$(cat "$root/v/state/trainer_pid")" 2>/dev/null
	sleep 0.5
	t_fails "$name: status of a vanished job fails" 1 "$FERRY" remote status --target "$target" --job v --json
	t_eq "$name: vanished" "$(pyq "$T_OUT" 'd["state"]')" "vanished"
	T_TIMEOUT=60 t_fails "$name: logs -f of it ends, failing" 1 "$FERRY" remote logs --target "$target" --job v -f
	t_match "$name: saying it vanished" "$(cat "$T_ERR")" "vanished"
}

suite local "local:$tmpdir/lroot" "$tmpdir/lroot"

# Pull takes a file the trainer has moved past, though it grew between the
# two looks (2 s apart): a later file was written after it.
mkdir -p "$tmpdir/mp/j/output/m"
printf 'part one ' >"$tmpdir/mp/j/output/m/a.bin"
(sleep 0.7; printf 'part two' >>"$tmpdir/mp/j/output/m/a.bin"; sleep 0.5; printf 'b' >"$tmpdir/mp/j/output/m/b.bin") &
t_ok "pull while a is finished and b begun" "$FERRY" remote pull --target "local:$tmpdir/mp" --job j -o mp-pulled --json
wait $!
t_eq "a fetched whole, b left for later" "$(pyq "$T_OUT" '(d["fetched"], d["incomplete"])') $(cat mp-pulled/m/a.bin)" "(1, 1) part one part two"

# The progress bar: on a terminal only, ending at 100 %.
if command -v script >/dev/null; then
	t_ok "push on a terminal" script -qec "$(printf '%q ' "$FERRY" remote push --target "local:$tmpdir/tty" --job j ds.tar)" /dev/null
	t_match "shows a bar with its rate, ending at 100 %" "$(tr '\r' '\n' <"$T_OUT")" "uploading +100\.0% .*MiB/s"
fi
t_ok "push without a terminal" "$FERRY" remote push --target "local:$tmpdir/notty" --job j ds.tar
t_not_match "shows no bar" "$(cat "$T_ERR")" "MiB/s"

# A push killed while its writer on the target goes on: over the local
# transport ferry's commands run in process groups of their own, so a
# SIGKILLed ferry leaves the target's writer running, here slowly (64 KiB
# every 20 ms, through a shim for the writers, dd and cat), while the next
# push reads the part's size and writes the rest. Each writer writes the
# archive's bytes at their own offsets: the late ones land where they
# belong, and the upload verifies the first time.
mkdir -p slow mid/src
realhead=$(command -v head) realcat=$(command -v cat) realdd=$(command -v dd)
for tool in dd cat; do
	real=$realdd
	[ $tool = cat ] && real=$realcat
	cat >"slow/$tool" <<SH
#!/bin/sh
{ while $realhead -c 65536 >"$tmpdir/slow/chunk.\$\$" && [ -s "$tmpdir/slow/chunk.\$\$" ]; do
	$realcat "$tmpdir/slow/chunk.\$\$"; sleep 0.02; done; rm -f "$tmpdir/slow/chunk.\$\$"; } | $real "\$@"
SH
	chmod +x "slow/$tool"
done
head -c 6000000 /dev/urandom >mid/src/mid.bin
(cd mid/src && sha256sum mid.bin >SHA256SUMS)
tar -cf mid.tar -C mid/src mid.bin SHA256SUMS
midpart=$tmpdir/midroot/j/dataset.tar.part
# The killed push resumes a part itself: its writer and the next one's both
# continue a part (each appended at the end of the file, before).
mkdir -p "$tmpdir/midroot/j"
head -c 500000 mid.tar >"$midpart"
env PATH="$tmpdir/slow:$PATH" "$FERRY" remote push --target "local:$tmpdir/midroot" --job j mid.tar >/dev/null 2>&1 &
midpid=$!
for _ in $(seq 300); do
	[ "$(stat -c %s "$midpart" 2>/dev/null || echo 0)" -gt 1500000 ] && break
	sleep 0.02
done
kill -KILL "$midpid"
wait "$midpid" 2>/dev/null
have=$(stat -c %s "$midpart")
t_ne "the killed push's writer goes on" "$(find /proc/[0-9]*/fd -maxdepth 1 -name 1 -lname "$midpart" 2>/dev/null)" ""
t_ok "a push while the killed one's writer still writes" "$FERRY" remote push --target "local:$tmpdir/midroot" --job j mid.tar --json
t_eq "resumed from where it was, verified the first time" "$(pyq "$T_OUT" "d['resumed_from'] >= $have - 65535 and d['resends'] == 0")" "True"
t_ok "the file there is whole" cmp mid/src/mid.bin "$tmpdir/midroot/j/dataset/mid.bin"

# A fresh push keeps one copy: no archive left once extracted.
t_ok "a fresh push" "$FERRY" remote push --target "local:$tmpdir/fresh" --job j ds.tar --json
t_eq "sent whole, verified" "$(pyq "$T_OUT" '(d["resumed_from"], d["sent"], d["sha256"])')" "(0, $size, '$sha')"
t_no_file "the archive is gone once extracted" "$tmpdir/fresh/j/dataset.tar"
t_ok "the dataset verifies there" sh -c 'cd "$1" && sha256sum -c --quiet SHA256SUMS' sh "$tmpdir/fresh/j/dataset"
# Targets without openssl (or xargs) check with sha256sum -c; a file that tar
# wrote wrong is named whichever way it was checked. PATH is the target's
# here: the local transport runs its commands with ferry's environment.
mkdir nossl spoil
for f in /usr/bin/* /bin/*; do
	case ${f##*/} in openssl) ;; *) ln -sf "$f" "nossl/${f##*/}" ;; esac
done
cat >spoil/tar <<SH
#!/bin/sh
# tar, then one byte more in the first caption it wrote.
$(command -v tar) "\$@" || exit \$?
f=\$(find dataset.tmp -name '*.txt' -type f | sort | head -n 1)
[ -n "\$f" ] && printf x >>"\$f"
exit 0
SH
chmod +x spoil/tar
t_ok "a push where the target has no openssl" env PATH="$tmpdir/nossl" "$FERRY" remote push --target "local:$tmpdir/nossl-root" --job j ds.tar --json
t_ok "verified all the same" sh -c 'cd "$1" && sha256sum -c --quiet SHA256SUMS' sh "$tmpdir/nossl-root/j/dataset"
for how in openssl sha256sum; do
	path=$tmpdir/spoil:$PATH
	[ $how = sha256sum ] && path=$tmpdir/spoil:$tmpdir/nossl
	t_fails "$how: a file extracted wrong fails the push" 1 env PATH="$path" "$FERRY" remote push --target "local:$tmpdir/spoil-$how" --job j ds.tar
	t_match "$how: naming the file" "$(cat "$T_ERR")" "\.txt: FAILED"
	t_no_file "$how: no dataset took its place" "$tmpdir/spoil-$how/j/dataset"
done

sshd_start || exit 1
export VASTAI_SSH_KEY_PATH=$SSHD_KEY FERRY_REMOTE_ROOT=$tmpdir/sroot
suite ssh "$SSHD_TARGET" "$tmpdir/sroot"
t_ok "a known-hosts file of ferry's own" test -s "$XDG_STATE_HOME/ferry/ssh/known_hosts.d/127.0.0.1-$SSHD_PORT"
t_fails "a bad port is a connection error" 1 "$FERRY" remote exec --target "ssh://$SSHD_USER@127.0.0.1:9" -- true
t_match "said as one" "$(cat "$T_ERR")" "cannot reach ssh://"
t_fails "a bad job id" 2 "$FERRY" remote status --target "$SSHD_TARGET" --job ../x

# Real interruptions of a 150 MB push over SSH.
mkdir -p big
head -c 150000000 /dev/urandom >big/big.bin
(cd big && sha256sum big.bin >SHA256SUMS)
tar -cf big.tar -C big big.bin SHA256SUMS
bigsize=$(stat -c %s big.tar)
bigpart=$tmpdir/sroot/big/dataset.tar.part
# part_over N: wait (up to 6 s) until the upload holds more than N bytes.
part_over() {
	local _i have
	for _i in $(seq 300); do
		have=$(stat -c %s "$bigpart" 2>/dev/null || echo 0)
		[ "$have" -gt "$1" ] && return 0
		sleep 0.02
	done
	return 1
}
# resumed_whole FILE: the push resumed (from a block at most 64 KiB below
# $have), sent only the rest and no resend, and the dataset is whole.
resumed_whole() {
	pyq "$1" "d['resumed_from'] >= $have - 65535 and d['sent'] == $bigsize - d['resumed_from'] and d['resends'] == 0"
}

# SIGTERM: the push stops at once, and leaves what the next one resumes.
setsid "$FERRY" remote push --target "$SSHD_TARGET" --job big big.tar >/dev/null 2>"$tmpdir/term.err" &
pushpid=$!
part_over $((bigsize / 4)) || diag "the upload did not start"
t0=$(date +%s%N)
kill -TERM "$pushpid"
wait "$pushpid"
st=$?
t_eq "SIGTERM stops a push with 143" "$st" 143
t_eq "within a second" "$(( ($(date +%s%N) - t0) / 1000000 < 1000 ))" 1
t_match "saying it was cancelled" "$(cat "$tmpdir/term.err")" "cancelled"
sleep 0.5 # (what was in flight lands)
have=$(stat -c %s "$bigpart" 2>/dev/null || echo 0)
t_eq "the stopped push left part of it" "$([ "$have" -gt 0 ] && [ "$have" -lt "$bigsize" ] && echo partial)" "partial"
t_ok "push again" "$FERRY" remote push --target "$SSHD_TARGET" --job big big.tar --json
t_eq "it resumed where the target was, and sent only the rest" "$(resumed_whole "$T_OUT")" "True"
t_ok "and the file there is whole" cmp big/big.bin "$tmpdir/sroot/big/dataset/big.bin"

rm -rf big big.tar

# ferry ssh: a login shell in the job root.
t_ok "ferry ssh runs a shell in the job root" sh -c 'printf "pwd; exit 0\n" | "$1" ssh "$2" --job k' sh "$FERRY" "$SSHD_TARGET"
t_eq "there" "$(tail -1 "$T_OUT")" "$tmpdir/sroot/k"

# wait --trainer-repo: the commit of a real git checkout on the target,
# read there without git.
if command -v git >/dev/null; then
	git init -q trainer-repo
	git -C trainer-repo -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m one
	git -C trainer-repo pack-refs --all
	git -C trainer-repo -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m two
	t_ok "wait --trainer-repo" "$FERRY" remote wait --target "$SSHD_TARGET" --trainer-repo "$tmpdir/trainer-repo" --json --timeout 30
	t_eq "reports the checkout's commit" "$(pyq "$T_OUT" 'd["trainer_commit"]')" "$(git -C trainer-repo rev-parse HEAD)"
	t_ok "wait --trainer-repo, for people" "$FERRY" remote wait --target "$SSHD_TARGET" --trainer-repo "$tmpdir/trainer-repo" --timeout 30
	t_match "shows it" "$(cat "$T_OUT")" "trainer commit $(git -C trainer-repo rev-parse HEAD)"
	t_ok "wait --trainer-repo of a folder that is no checkout" "$FERRY" remote wait --target "$SSHD_TARGET" --trainer-repo "$tmpdir/big-not-here" --json --timeout 30
	t_eq "null, and not a problem" "$(pyq "$T_OUT" '(d["trainer_commit"], d["ok"])')" "(None, True)"
else
	t_skip "wait --trainer-repo" "git is not installed"
fi

# SIGTERM stops a wait at once (nothing answers on port 9: it backs off).
"$FERRY" remote wait --target "ssh://$SSHD_USER@127.0.0.1:9" --timeout 60 2>term.err &
waitpid=$!
sleep 1.5
t0=$(date +%s%N)
kill -TERM "$waitpid"
wait "$waitpid"
t_eq "SIGTERM stops a wait with 143" "$?" 143
t_eq "within a second" "$(( ($(date +%s%N) - t0) / 1000000 < 1000 ))" 1
t_match "saying it was cancelled" "$(cat term.err)" "cancelled"

# --instance: resolved through the Vast API (ferry sim pointing at this sshd).
. "$FERRY_SRC/tests/integ/sim.sh"
sim_start --seed 3 --api-key sim-key-123 --boot-seconds 0 --rate 0 --ssh-endpoint "127.0.0.1:$SSHD_PORT"
export VAST_URL=$SIM_URL VAST_API_KEY=sim-key-123
"$FERRY" rent --best 'gpu_ram>=24' --label remote --json >rent.json || diag "rent failed"
inst=$(pyq rent.json 'd["instance_id"]')
t_ok "wait --instance" "$FERRY" remote wait --instance "$inst" --json --timeout 30
t_eq "reachable through the instance's endpoint" "$(pyq "$T_OUT" 'd["reachable"]')" "True"
t_ok "a known-hosts file for the instance" test -s "$XDG_STATE_HOME/ferry/ssh/known_hosts.d/instance-$inst"
attached() { sim_ledger | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["instances"][0]["ssh_keys"]))'; }
before=$(attached)
ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger
t_fails "a refused key gives up, bounded" 1 env VASTAI_SSH_KEY_PATH="$tmpdir/stranger" "$FERRY" remote wait --instance "$inst" --timeout 60
t_match "saying the key is refused" "$(cat "$T_ERR")" "key is refused"
t_eq "after attaching it again through the API" "$(attached)" "$((before + 1))"
"$FERRY" destroy "$inst" >/dev/null

# wait --instance waits through Vast's loading (here 4 s) until SSH
# answers, within its deadline.
sim_start --seed 4 --api-key sim-key-123 --boot-seconds 4 --rate 0 --ssh-endpoint "127.0.0.1:$SSHD_PORT"
export VAST_URL=$SIM_URL
"$FERRY" rent --best 'gpu_ram>=24' --label booting --json >rent2.json || diag "rent failed"
inst=$(pyq rent2.json 'd["instance_id"]')
t0=$(date +%s%N)
t_ok "wait --instance of an instance still loading" "$FERRY" -v remote wait --instance "$inst" --json --timeout 60
t_eq "reachable once it runs" "$(pyq "$T_OUT" 'd["reachable"]')" "True"
t_eq "after its boot" "$(( ($(date +%s%N) - t0) / 1000000 >= 3000 ))" 1
t_match "having said it was loading" "$(cat "$T_ERR")" "instance $inst is loading"
"$FERRY" destroy "$inst" >/dev/null
"$FERRY" rent --best 'gpu_ram>=24' --label booting2 --json >rent3.json || diag "rent failed"
inst=$(pyq rent3.json 'd["instance_id"]')
t_fails "a deadline shorter than the boot" 1 "$FERRY" remote wait --instance "$inst" --timeout 2
t_match "names the state it was in" "$(cat "$T_ERR")" "instance $inst is still (loading|being created)"
"$FERRY" destroy "$inst" >/dev/null
t_eq "nothing left running" "$(sim_ledger | python3 -c 'import json,sys; print(json.load(sys.stdin)["live"])')" 0

done_testing
