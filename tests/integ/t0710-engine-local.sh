#!/usr/bin/env bash
# The job engine on the local provider, with the trainer stand-in: a whole
# job from a dataset folder to the dir store; a dataset that is not ready
# (fails before any machine is taken); trainer failures and their reasons;
# a failure after the final save (a success with a warning); a cancel
# during training (the trainer stopped); ferry killed at every step
# boundary (FERRY_TEST_CRASH_AT) and started again: the job finishes, the
# trainer was launched once and the LoRA published once.
. "$(dirname "$0")/lib.sh"
require_cmd python3 sha256sum flock

state=$XDG_STATE_HOME/ferry
lock=$state/worker.lock
store=$tmpdir/store
mkdir -p "$XDG_CONFIG_HOME/ferry" "$state"
cat >"$XDG_CONFIG_HOME/ferry/config" <<EOF
store.kind = dir
store.dir = $store
trainer.command = python3 $FERRY_SRC/examples/trainer/run.py
trainer.env_file = $tmpdir/trainer.env
EOF
: >"$tmpdir/trainer.env"
bash "$FERRY_SRC/tests/integ/gen_dataset.sh" valid "$tmpdir/ds" 12 512x512 >/dev/null
mkdir -p "$tmpdir/tiny"
cp "$tmpdir/ds/$(ls "$tmpdir/ds" | grep -m1 -E '\.(jpg|png|webp)$')" "$tmpdir/tiny/"

# Stop any worker a test left running (its pid is in the lock file).
stop_worker() {
	local pid
	pid=$(cat "$lock" 2>/dev/null)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	for _ in $(seq 50); do
		flock -n "$lock" true 2>/dev/null && return 0
		sleep 0.1
	done
}
at_exit stop_worker

# submit ARGS...: a job submitted with no worker started (the lock is held
# while `train` looks), its id on stdout.
submit() {
	flock "$lock" "$FERRY" train "$tmpdir/ds" --provider local --recipe flux-schnell-lora \
		--steps 12 --param save-every=4 --param sample-every=6 "$@" --detach --json |
		json_get - .id
}
show() { "$FERRY" show "$1" --json >"$tmpdir/show.json" && json_get "$tmpdir/show.json" "$2"; }
# events JOB KIND: the codes of the job's events of that kind, as JSON.
events() {
	python3 -c 'import json,sqlite3,sys; print(json.dumps([json.loads(r[0]).get("code") for r in sqlite3.connect(sys.argv[1]).execute("SELECT data FROM events WHERE job = ? AND kind = ? ORDER BY id", sys.argv[2:])]))' "$state/queue.db" "$1" "$2"
}
launches() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM steps WHERE job = ? AND act = ?", sys.argv[2:]).fetchone()[0])' "$state/queue.db" "$1" "$2"; }

# --- a whole job --------------------------------------------------------------

t_ok "train: a whole job on the local provider" \
	"$FERRY" train "$tmpdir/ds" --provider local --recipe flux-schnell-lora --steps 12 \
	--param save-every=4 --param sample-every=6
id=$(grep -m1 -oE '[0-9]{8}-[0-9]{6}-[0-9a-f]{8}' "$T_OUT" "$T_ERR" | head -1 | sed 's/.*://')
t_match "train: it names the job" "$id" '^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$'
t_eq "show: SUCCEEDED" "$(show "$id" .state)" SUCCEEDED
t_eq "show: one instance, local" "$(json_get "$tmpdir/show.json" '[i["provider"] for i in d["instances"]]')" '["local"]'
t_eq "show: the instance is recorded released" \
	"$(json_get "$tmpdir/show.json" 'all(i["destroyed_at"] for i in d["instances"])')" true
final=$store/jobs/$id/ferry_lora/ferry_lora.safetensors
t_file "store: the final LoRA is published" "$final"
t_file "store: result.json is published" "$store/jobs/$id/result.json"
json_get "$store/jobs/$id/result.json" \
	'"\n".join(f["sha256"] + "  " + f["key"] for f in d["files"])' >"$tmpdir/sums"
t_ok "store: every file in result.json has its SHA-256" \
	bash -c "cd '$store' && sha256sum -c --quiet '$tmpdir/sums'"
t_eq "show: every published artifact has the store's SHA-256" \
	"$(json_get "$tmpdir/show.json" 'sorted(a["sha256"] + "  " + a["url"][len("file://"):] for a in d["artifacts"] if a.get("url"))' |
		python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))' | sha256sum -c --quiet >/dev/null 2>&1 && echo ok)" ok
t_eq "show: the optimizer state is pulled, never published" \
	"$(json_get "$tmpdir/show.json" '[a.get("url") for a in d["artifacts"] if a["path"].endswith("optimizer.pt")]')" '[null]'
t_file "the trainer's log is mirrored" "$state/jobs/$id/train.log"
t_ok "logs: prints the trainer's log" "$FERRY" logs "$id"
t_match "logs: it is ai-toolkit's" "$(cat "$T_OUT")" 'Running 1 job'
stop_worker

# --- a dataset that is not ready ------------------------------------------------

t_fails "train: a dataset that is not ready fails" 1 \
	"$FERRY" train "$tmpdir/tiny" --provider local --recipe flux-schnell-lora --steps 12
id=$(grep -m1 -oE '[0-9]{8}-[0-9]{6}-[0-9a-f]{8}' "$T_OUT" "$T_ERR" | head -1 | sed 's/.*://')
t_eq "not ready: FAILED dataset_not_ready" "$(show "$id" .state) $(json_get "$tmpdir/show.json" .reason)" \
	"FAILED dataset_not_ready"
t_eq "not ready: nothing was taken" "$(json_get "$tmpdir/show.json" 'len(d["instances"])')" 0
stop_worker

# --- trainer failures, one worker per case ---------------------------------------

# run_case ENV_LINE: submit, run the job with that stand-in setting, print
# "STATE REASON".
run_case() {
	local jid
	printf '%s\n' "$@" >"$tmpdir/trainer.env"
	jid=$(submit)
	"$FERRY" worker --once >"$tmpdir/worker.out" 2>&1
	: >"$tmpdir/trainer.env"
	echo "$jid" >"$tmpdir/last"
	echo "$(show "$jid" .state) $(json_get "$tmpdir/show.json" .reason)"
}
t_eq "oom in training: FAILED oom" "$(run_case FERRY_STANDIN_OOM_AT=5)" "FAILED oom"
t_eq "a NaN loss: FAILED nan_loss" "$(run_case FERRY_STANDIN_NAN_AT=4)" "FAILED nan_loss"
t_eq "the trainer killed: FAILED" "$(run_case FERRY_STANDIN_SIGNAL_AT=6:9 | cut -d' ' -f1)" FAILED
t_eq "oom after the final save: SUCCEEDED" "$(run_case FERRY_STANDIN_OOM_AT=final)" "SUCCEEDED null"
t_eq "after the final save: a warning event says so" \
	"$(events "$(cat "$tmpdir/last")" warning)" '["final_samples_failed"]'
t_file "after the final save: the LoRA is published" \
	"$store/jobs/$(cat "$tmpdir/last")/ferry_lora/ferry_lora.safetensors"

# --- a cancel during training ----------------------------------------------------

printf 'FERRY_STANDIN_STEP_S=2\n' >"$tmpdir/trainer.env"
id=$(submit)
"$FERRY" worker >"$tmpdir/worker.out" 2>&1 &
wpid=$!
for _ in $(seq 100); do
	[ "$(show "$id" .state)" = TRAINING ] && grep -q 'Running 1 job' "$state/jobs/$id/train.log" 2>/dev/null && break
	sleep 0.2
done
t_ok "cancel: a training job" "$FERRY" cancel "$id"
for _ in $(seq 300); do
	case $(show "$id" .state) in CANCELLED | FAILED | SUCCEEDED) break ;; esac
	sleep 0.2
done
t_eq "cancel: CANCELLED" "$(show "$id" .state) $(json_get "$tmpdir/show.json" .reason)" "CANCELLED cancelled"
t_ok "cancel: the trainer wrote its exit (it was stopped)" test -f "$state/local/$id/state/exit"
# [r]un.py: the pattern does not match the command line that carries it.
for _ in $(seq 50); do
	pgrep -f "[r]un.py $state/local/$id/config.json" >/dev/null || break
	sleep 0.1
done
t_fails "cancel: no stand-in runs on" 1 pgrep -f "[r]un.py $state/local/$id/config.json"
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
: >"$tmpdir/trainer.env"

# --- ferry killed at every step boundary ----------------------------------------

for st in PREPARING RENTING BOOTING UPLOADING TRAINING COLLECTING PUBLISHING RELEASING; do
	for when in before after; do
		jid=$(submit)
		FERRY_TEST_CRASH_AT=$st:$when "$FERRY" worker --once >"$tmpdir/worker.out" 2>&1
		rc=$?
		"$FERRY" worker --once >"$tmpdir/worker.out" 2>&1
		t_eq "killed at $st:$when (status $rc), then started again: SUCCEEDED, one launch, one publish" \
			"$rc $(show "$jid" .state) $(launches "$jid" launch) $(launches "$jid" publish) $(grep -c 'Running 1 job' "$state/jobs/$jid/train.log")" \
			"137 SUCCEEDED 1 1 1" || diag "$(cat "$tmpdir/worker.out")"
	done
done

done_testing
