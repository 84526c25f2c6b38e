#!/usr/bin/env bash
# The job engine on the ssh provider: a whole job on a real sshd on
# 127.0.0.1 with the trainer stand-in, published to the dir store, the
# trainer's log mirrored, the host released (nothing left running there).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
require_cmd python3 sha256sum flock setsid

sshd_start >/dev/null || skip_all "cannot start sshd"
state=$XDG_STATE_HOME/ferry
store=$tmpdir/store
root=$tmpdir/remote-root
mkdir -p "$XDG_CONFIG_HOME/ferry" "$state"
cat >"$XDG_CONFIG_HOME/ferry/config" <<CFG
store.kind = dir
store.dir = $store
remote.root = $root
ssh.key_path = $SSHD_KEY
trainer.command = python3 $FERRY_SRC/examples/trainer/run.py
CFG
bash "$FERRY_SRC/tests/integ/gen_dataset.sh" valid "$tmpdir/ds" 12 512x512 >/dev/null

stop_worker() {
	local pid
	pid=$(cat "$state/worker.lock" 2>/dev/null)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
}
at_exit stop_worker

id=$(flock "$state/worker.lock" "$FERRY" train "$tmpdir/ds" --provider "ssh:$SSHD_TARGET" \
	--recipe flux-schnell-lora --steps 12 --param save-every=4 --param sample-every=6 \
	--detach --json | json_get - .id)
t_match "train --detach: a job id" "$id" '^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$'
t_ok "worker --once: runs it" "$FERRY" worker --once
"$FERRY" show "$id" --json >"$tmpdir/show.json"
t_eq "show: SUCCEEDED" "$(json_get "$tmpdir/show.json" .state)" SUCCEEDED
t_eq "show: the instance is the ssh host" "$(json_get "$tmpdir/show.json" '[i["provider"] for i in d["instances"]]')" '["ssh"]'
t_file "the job's folder is on the host's remote.root" "$root/$id/config.json"
t_file "the trainer ran there" "$root/$id/state/exit"
t_eq "the trainer exited 0" "$(cat "$root/$id/state/exit")" 0
t_file "store: the final LoRA" "$store/jobs/$id/ferry_lora/ferry_lora.safetensors"
json_get "$store/jobs/$id/result.json" \
	'"\n".join(f["sha256"] + "  " + f["key"] for f in d["files"])' >"$tmpdir/sums"
t_ok "store: every file in result.json has its SHA-256" \
	bash -c "cd '$store' && sha256sum -c --quiet '$tmpdir/sums'"
t_ok "the log came home" grep -q 'Running 1 job' "$state/jobs/$id/train.log"
t_ok "no secret of ferry's reached the host's env file" bash -c "! grep -q -e VAST -e R2_ -e AWS_ '$root/$id/env'"

done_testing
