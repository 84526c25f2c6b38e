#!/usr/bin/env bash
# A whole training round on a target with the ai-toolkit stand-in
# (examples/trainer): push the dataset, launch, follow the log to the end,
# pull the checkpoints, samples and final LoRA; a trainer killed by SIGKILL
# reads 137 (status and logs -f exit 1) and its newest checkpoint resumes
# on relaunch. Local transport
# and a real sshd.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
require_cmd python3 tar sha256sum setsid

cd "$tmpdir" || exit 1
bash "$GEN_DATASET" valid ds 12 512x512 >/dev/null || skip_all "gen_dataset failed"
"$FERRY" --set dataset.resolution=512 dataset pack ds -o ds.tar >/dev/null || skip_all "pack failed"
trainer=$FERRY_SRC/examples/trainer/run.py
config=$FERRY_SRC/examples/trainer/example-config.json

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

round() {
	local name=$1 target=$2 root=$3 out=$tmpdir/$1-out
	t_ok "$name: push" "$FERRY" remote push --target "$target" --job run ds.tar
	printf 'FERRY_STANDIN_STEP_S=0.1\n' >env1
	t_ok "$name: launch the stand-in" "$FERRY" remote launch --target "$target" --job run --config "$config" --env-file env1 --heartbeat 1 -- python3 "$trainer" config.json
	t_ok "$name: logs -f to the end" "$FERRY" remote logs --target "$target" --job run -f
	t_match "$name: the training bar as it ended" "$(cat "$T_OUT")" "standin_demo: 100%.*12/12"
	t_match "$name: exit 0" "$(cat "$T_OUT")" "trainer exited with status 0"
	t_ok "$name: pull" "$FERRY" remote pull --target "$target" --job run -o "$out" --json
	t_file "$name: the final LoRA" "$out/standin_demo/standin_demo.safetensors"
	t_eq "$name: the checkpoints kept" "$(cd "$out/standin_demo" && ls standin_demo_0*.safetensors | wc -l)" \
		"$(cd "$root/run/output/standin_demo" && ls standin_demo_0*.safetensors | wc -l)"
	t_ne "$name: samples" "$(ls "$out/standin_demo/samples" | grep -c '\.jpg$')" "0"
	t_ok "$name: each file as on the target" sh -c 'cd "$1/run/output" && find . -type f ! -path "*/.tmp/*" -exec sha256sum {} + | (cd "$2" && sha256sum -c --quiet)' sh "$root" "$out"

	# Killed mid-run by SIGKILL: 137; a relaunch resumes from the newest checkpoint.
	printf 'FERRY_STANDIN_STEP_S=0.1\nFERRY_STANDIN_SIGNAL_AT=7:9\nFERRY_STANDIN_FAULT_ONCE=%s/%s-fault\n' "$tmpdir" "$name" >env2
	t_ok "$name: push for the second job" "$FERRY" remote push --target "$target" --job run2 ds.tar
	t_ok "$name: launch one that dies" "$FERRY" remote launch --target "$target" --job run2 --config "$config" --env-file env2 --heartbeat 1 -- python3 "$trainer" config.json
	for _ in $(seq 100); do [ -f "$root/run2/state/exit" ] && break; sleep 0.2; done
	t_fails "$name: status of the killed run fails" 1 "$FERRY" remote status --target "$target" --job run2 --json
	t_eq "$name: exited 137" "$(pyq "$T_OUT" '(d["state"], d["exit_code"])')" "('exited', 137)"
	T_TIMEOUT=60 t_fails "$name: and logs -f of it" 1 "$FERRY" remote logs --target "$target" --job run2 -f
	t_match "$name: saying how it ended" "$(cat "$T_ERR")" "exited with status 137"
	t_ok "$name: relaunch" "$FERRY" remote launch --target "$target" --job run2 --config "$config" --env-file env2 --heartbeat 1 -- python3 "$trainer" config.json
	t_ok "$name: logs -f" "$FERRY" remote logs --target "$target" --job run2 -f
	t_match "$name: it resumed" "$(cat "$T_OUT")" "RESUMING FROM"
	t_match "$name: and finished" "$(cat "$T_OUT")" "trainer exited with status 0"
}

# The stand-in reads the dataset from the job root: push puts it there.
round local "local:$tmpdir/lroot" "$tmpdir/lroot"
sshd_start || exit 1
export VASTAI_SSH_KEY_PATH=$SSHD_KEY FERRY_REMOTE_ROOT=$tmpdir/sroot
round ssh "$SSHD_TARGET" "$tmpdir/sroot"

done_testing
