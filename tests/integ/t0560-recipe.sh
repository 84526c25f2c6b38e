#!/usr/bin/env bash
# ferry recipe: list and show, render (each parameter, errors naming the
# parameter and its range, absolute paths, prompts from captions, no token
# even when HF_TOKEN is set), a rendered config run by the ai-toolkit
# stand-in, scan-log on its logs (a file, standard input, --json, failures,
# a stalled download) and outputs on its output folder and on listings.
. "$(dirname "$0")/lib.sh"
require_cmd python3

cd "$tmpdir" || exit 1
trainer=$FERRY_SRC/examples/trainer/run.py
export FERRY_STANDIN_STEP_S=0.01 FERRY_STANDIN_LOAD_S=0.05
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# --- list and show ---------------------------------------------------------------
t_ok "recipe --help" "$FERRY" recipe --help
t_match "help names the subcommands" "$(cat "$T_OUT")" "scan-log FILE.*outputs LISTING"
t_fails "recipe alone is a usage error" 2 "$FERRY" recipe
t_ok "list" "$FERRY" recipe list
t_match "list names flux-dev-lora" "$(cat "$T_OUT")" "flux-dev-lora +black-forest-labs/FLUX.1-dev"
t_match "list names flux-schnell-lora" "$(cat "$T_OUT")" "flux-schnell-lora"
t_ok "list --json" "$FERRY" recipe list --json
t_eq "both recipes" "$(pyq "$T_OUT" '[r["name"] for r in d["recipes"]]')" "['flux-dev-lora', 'flux-schnell-lora']"
t_ok "show flux-dev-lora" "$FERRY" recipe show flux-dev-lora
show=$(cat "$T_OUT")
t_match "show: the image" "$show" "trainer image +ostris/aitoolkit"
t_match "show: how it starts" "$show" "cd /app/ai-toolkit && python run.py CONFIG"
t_match "show: the token it needs" "$show" "HF_TOKEN +\(yours\)"
t_match "show: VRAM and driver" "$show" "24 GB per GPU.*"
t_match "show: a parameter's range" "$show" "--rank.*range: a whole number from 1 to 128"
t_ok "show --json" "$FERRY" recipe show flux-schnell-lora --json
t_eq "schnell needs no token" "$(pyq "$T_OUT" 'd["needs_hf_token"], [e["name"] for e in d["env"]]')" "(False, ['PYTHONUNBUFFERED', 'HF_HUB_DISABLE_XET'])"
t_eq "the stand-in's command" "$(pyq "$T_OUT" 'd["standin"]["argv"]')" "['python3', 'examples/trainer/run.py', 'CONFIG']"
t_fails "show an unknown recipe" 2 "$FERRY" recipe show nope
t_match "which names the recipes" "$(cat "$T_ERR")" "flux-dev-lora, flux-schnell-lora"

# --- render --------------------------------------------------------------------
bash "$GEN_DATASET" valid ds 6 512x512 >/dev/null || skip_all "gen_dataset failed"
t_ok "render to a file" "$FERRY" recipe render flux-schnell-lora --name t1 --trigger ohwx \
	--steps 12 --save-every 4 --sample-every 6 --rank 8 --lr 4e-4 --resolution 512 \
	--dataset ds --output out -o cfg.json
t_eq "nothing on stdout with -o" "$(cat "$T_OUT")" ""
t_eq "the dataset path made absolute" "$(pyq cfg.json 'd["config"]["process"][0]["datasets"][0]["folder_path"]')" "$tmpdir/ds"
t_eq "the output path made absolute" "$(pyq cfg.json 'd["config"]["process"][0]["training_folder"]')" "$tmpdir/out"
t_eq "steps, rank, alpha, lr" "$(pyq cfg.json '(lambda p: (p["train"]["steps"], p["network"]["linear"], p["network"]["linear_alpha"], p["train"]["lr"]))(d["config"]["process"][0])')" "(12, 8, 8, 0.0004)"
t_eq "unsafe code defaults written" "$(pyq cfg.json '(lambda p: (p["train"]["noise_scheduler"], p["sample"]["sampler"], p["train"]["dtype"], p["train"]["optimizer"]))(d["config"]["process"][0])')" "('flowmatch', 'flowmatch', 'bf16', 'adamw8bit')"
t_eq "prompts from captions, with the trigger" "$(pyq cfg.json 'all(p.startswith("ohwx") or "ohwx" in p for p in d["config"]["process"][0]["sample"]["prompts"]) and len(d["config"]["process"][0]["sample"]["prompts"])')" "4"
cp cfg.json first.json
t_ok "render again over it" "$FERRY" recipe render flux-schnell-lora --name t1 --steps 20 --dataset ds --output out -o cfg.json
t_eq "replaced whole" "$(pyq cfg.json 'd["config"]["process"][0]["train"]["steps"]')" "20"
t_eq "no temporary file left" "$(ls -A | grep -c '^cfg\.json\.' || true)" "0"
t_ok "render to standard output" "$FERRY" recipe render flux-dev-lora --steps 100
t_eq "defaults follow the job layout" "$(pyq "$T_OUT" 'd["config"]["process"][0]["training_folder"]')" "/root/ferry/ferry_lora/output"
t_eq "short run: half the steps" "$(pyq "$T_OUT" 'd["config"]["process"][0]["save"]["save_every"]')" "50"

# Errors name the parameter and the range.
t_fails "--steps 0" 2 "$FERRY" recipe render flux-dev-lora --steps 0
t_match "names --steps and its range" "$(cat "$T_ERR")" "--steps must be a whole number from 1 to 100000, not '0'"
t_fails "--rank 500" 2 "$FERRY" recipe render flux-dev-lora --rank 500
t_match "names --rank and its range" "$(cat "$T_ERR")" "--rank must be a whole number from 1 to 128"
t_fails "--lr 1" 2 "$FERRY" recipe render flux-dev-lora --lr 1
t_match "names --lr and its range" "$(cat "$T_ERR")" "--lr must be a number from 1e-7 to 0.01"
t_fails "--resolution 500" 2 "$FERRY" recipe render flux-dev-lora --resolution 500
t_match "names --resolution and its rule" "$(cat "$T_ERR")" "--resolution must be .*multiple of 64"
t_fails "--save-every past the steps" 2 "$FERRY" recipe render flux-dev-lora --steps 50 --save-every 80
t_match "names --save-every and the steps" "$(cat "$T_ERR")" "--save-every must be a whole number from 1 to the steps \(50\), not 80"
t_fails "--name with a space" 2 "$FERRY" recipe render flux-dev-lora --name "a b"
t_match "names --name" "$(cat "$T_ERR")" "--name must be 1 to 64 of A-Z"
t_fails "an unknown recipe" 2 "$FERRY" recipe render nope
t_fails "a missing prompts file" 1 "$FERRY" recipe render flux-dev-lora --prompts nothere.txt
t_match "names --prompts" "$(cat "$T_ERR")" "--prompts"

# ai-toolkit's resume glob (NAME* next to the checkpoints) and its path filter.
for n in con config.yaml sam samples opt optimizer.pt loss; do
	t_fails "--name $n collides with ai-toolkit's resume" 2 "$FERRY" recipe render flux-dev-lora --name "$n"
done
t_match "and says which file and why" "$(cat "$T_ERR")" "--name 'loss' begins loss_log.db.*load loss_log.db as the LoRA"
t_ok "--name configs is fine (no file begins it)" "$FERRY" recipe render flux-dev-lora --name configs
t_fails "--output holding _cn" 2 "$FERRY" recipe render flux-dev-lora --name face --output /data/x_cn/out
t_match "names --output and the tag" "$(cat "$T_ERR")" "--output '/data/x_cn/out' puts '_cn' in the output path"
t_fails "--job holding _t2i" 2 "$FERRY" recipe render flux-dev-lora --name face --job run_t2i
t_match "names --job" "$(cat "$T_ERR")" "--job 'run_t2i' puts '_t2i'"
t_fails "remote.root holding _LoRA" 2 "$FERRY" --set remote.root=/srv/my_LoRA recipe render flux-dev-lora --name face
t_match "names remote.root" "$(cat "$T_ERR")" "remote.root '/srv/my_LoRA' puts '_LoRA'"
t_ok "a name holding the tag too is fine" "$FERRY" recipe render flux-dev-lora --name face_cn --output /data/x_cn/out

# The env file: HF_TOKEN from hf.token, the recipe's fixed variables.
t_fails "env for the gated model without a token" 3 "$FERRY" recipe env flux-dev-lora -o dev.env
t_match "says to set hf.token" "$(cat "$T_ERR")" "HF_TOKEN.*hf.token"
t_fails "env needs -o" 2 "$FERRY" recipe env flux-dev-lora
t_ok "env for schnell" "$FERRY" recipe env flux-schnell-lora -o schnell.env
t_eq "the fixed variables" "$(cat schnell.env)" "PYTHONUNBUFFERED=1
HF_HUB_DISABLE_XET=1"
HF_TOKEN=hf_IntegTokenValue0123456789 t_ok "env with hf.token" "$FERRY" recipe env flux-dev-lora -o dev.env
t_eq "the token and xet off" "$(cat dev.env)" "HF_TOKEN=hf_IntegTokenValue0123456789
PYTHONUNBUFFERED=1
HF_HUB_DISABLE_XET=1"
t_eq "mode 0600" "$(stat -c %a dev.env)" "600"
t_eq "nothing printed" "$(cat "$T_OUT")" ""
t_match "show: the pinned image" "$show" "trainer image +ostris/aitoolkit:0.12.26"

# No token, ever.
export HF_TOKEN=hf_IntegTokenValue0123456789
t_ok "render flux-dev-lora with HF_TOKEN set" "$FERRY" recipe render flux-dev-lora --dataset ds -o dev.json
t_eq "the token is not in the config" "$(grep -c "$HF_TOKEN" dev.json || true)" "0"
t_eq "nor its name" "$(grep -c 'HF_TOKEN' dev.json || true)" "0"
printf 'a ${HF_TOKEN} prompt\n' >p.txt
t_ok "a \${VAR} in a prompt" "$FERRY" recipe render flux-dev-lora --prompts p.txt
t_eq "is written so ai-toolkit cannot expand it" "$(grep -c '\$' "$T_OUT" || true)" "0"
t_eq "and reads back as written" "$(pyq "$T_OUT" 'd["config"]["process"][0]["sample"]["prompts"]')" "['a \${HF_TOKEN} prompt']"
t_fails "the token as the trigger is refused" 2 "$FERRY" recipe render flux-dev-lora --trigger "$HF_TOKEN"
t_not_match "and the message does not show it" "$(cat "$T_ERR")" "$HF_TOKEN"
t_match "but says why" "$(cat "$T_ERR")" "HF_TOKEN"
unset HF_TOKEN

# --- the stand-in runs what render wrote ----------------------------------------------
t_ok "the stand-in runs the rendered config" sh -c 'python3 "$1" first.json >run.log 2>&1' sh "$trainer"
t_file "and writes the final LoRA" out/t1/t1.safetensors
t_ok "scan-log FILE" "$FERRY" recipe scan-log run.log
t_match "done" "$(cat "$T_OUT")" "phase +done"
t_ok "scan-log - --json" sh -c '"$1" recipe scan-log --json - <run.log >scan.json' sh "$FERRY"
t_eq "phase, step, total, samples" "$(pyq scan.json '(d["phase"], d["step"], d["total"], d["samples"])')" "('done', 12, 12, 12)"
t_eq "checkpoints" "$(pyq scan.json '[(c["step"], c["final"]) for c in d["checkpoints"]]')" "[(4, False), (8, False), (12, True)]"
t_eq "lr and no failure" "$(pyq scan.json '(d["lr"], d["failure"])')" "(0.0004, None)"

# The remote job layout: defaults put dataset/ and output/ under root/JOB.
mkdir -p root/j1 && cp -r ds root/j1/dataset
t_ok "render with the job layout" "$FERRY" --set remote.root="$tmpdir/root" recipe render flux-schnell-lora --job j1 --steps 6 --captions root/j1/dataset -o root/j1/config.json
t_ok "the stand-in runs it from the job root" sh -c 'cd root/j1 && python3 "$1" config.json >train.log 2>&1' sh "$trainer"
t_file "output under the job" root/j1/output/ferry_lora/ferry_lora.safetensors

# --- through ferry's supervisor: the log it really writes ----------------------------
# Killed by SIGKILL after the step-4 checkpoint, then relaunched: one
# train.log holds both runs, and the exit line lands glued to a bar.
bash "$GEN_DATASET" valid ds12 12 512x512 >/dev/null || skip_all "gen_dataset failed"
"$FERRY" --set dataset.resolution=512 dataset pack ds12 -o ds12.tar >/dev/null || skip_all "pack failed"
lroot=$tmpdir/lroot
t_ok "push to a local target" "$FERRY" remote push --target "local:$lroot" --job sj ds12.tar
t_ok "render for that job" "$FERRY" --set remote.root="$lroot" recipe render flux-schnell-lora --job sj --name sj --steps 8 --captions ds12 -o sj.json
printf 'FERRY_STANDIN_SIGNAL_AT=5:9\nFERRY_STANDIN_FAULT_ONCE=%s/sj-fault\n' "$tmpdir" >sj.env
t_ok "launch it under the supervisor" "$FERRY" remote launch --target "local:$lroot" --job sj --config sj.json --env-file sj.env --heartbeat 1 -- python3 "$trainer" config.json
for _ in $(seq 150); do [ -f "$lroot/sj/state/exit" ] && break; sleep 0.2; done
t_fails "scan-log the supervisor's log: failed, exit 1" 1 "$FERRY" recipe scan-log --json "$lroot/sj/train.log"
t_eq "killed (137), the bar at 5 of 8 (steps done)" "$(pyq "$T_OUT" '(d["phase"], d["failure"]["code"], d["exit_status"], d["step"], d["total"])')" "('failed', 'killed', 137, 5, 8)"
t_eq "the step-4 checkpoint" "$(pyq "$T_OUT" '[(c["step"], c["final"]) for c in d["checkpoints"]]')" "[(4, False)]"
t_ok "outputs of the killed run" "$FERRY" recipe outputs --json "$lroot/sj/output"
t_eq "what a resume needs" "$(pyq "$T_OUT" 'd["resume"]')" "['sj/sj_000000004.safetensors', 'sj/optimizer.pt']"
t_ok "relaunch" "$FERRY" remote launch --target "local:$lroot" --job sj --config sj.json --env-file sj.env --heartbeat 1 -- python3 "$trainer" config.json
t_ok "follow it to the end" "$FERRY" remote logs --target "local:$lroot" --job sj -f
t_ok "scan-log both runs" "$FERRY" recipe scan-log --json "$lroot/sj/train.log"
t_eq "done, resumed from 4, exit 0" "$(pyq "$T_OUT" '(d["phase"], d["failure"], d["resumed_from"], d["exit_status"], d["step"])')" "('done', None, 4, 0, 8)"

# --- scan-log on failures -------------------------------------------------------------
# a fresh output folder each: the first run's final LoRA would be resumed from
sed "s#$tmpdir/out#$tmpdir/out-oom#" first.json >oom.json
FERRY_STANDIN_OOM_AT=3 python3 "$trainer" oom.json >oom.log 2>&1
t_fails "scan-log an OOM" 1 "$FERRY" recipe scan-log --json oom.log
t_eq "oom" "$(pyq "$T_OUT" '(d["phase"], d["failure"]["code"])')" "('failed', 'oom')"
t_match "with the line that shows it" "$(pyq "$T_OUT" 'd["failure"]["line"]')" "3 times in a row"
sed "s#$tmpdir/out#$tmpdir/out-auth#" first.json >auth.json
FERRY_STANDIN_HF_AUTH=403 python3 "$trainer" auth.json >auth.log 2>&1
t_fails "scan-log a licence not accepted" 1 "$FERRY" recipe scan-log --json auth.log
t_eq "hf_auth" "$(pyq "$T_OUT" 'd["failure"]["code"]')" "hf_auth"
sed "s#$tmpdir/ds#$tmpdir/nothere#" first.json >missing.json
python3 "$trainer" missing.json >missing.log 2>&1
t_fails "scan-log a missing dataset" 1 "$FERRY" recipe scan-log missing.log
t_match "dataset_missing" "$(cat "$T_OUT")" "failure +dataset_missing"
printf 'Running 1 job\n# Running job: t1\nLoading Flux model\nLoading transformer\n' >stalled.log
touch -d '1 hour ago' stalled.log
t_fails "scan-log a silent download" 1 "$FERRY" recipe scan-log --stall-after 600 --json stalled.log
t_eq "download_stalled" "$(pyq "$T_OUT" '(d["failure"]["code"], d["failure"]["line"])')" "('download_stalled', 'Loading transformer')"
t_ok "without --stall-after it is loading" "$FERRY" recipe scan-log --json stalled.log
t_eq "loading" "$(pyq "$T_OUT" '(d["phase"], d["failure"])')" "('loading', None)"
t_fails "scan-log a missing file" 1 "$FERRY" recipe scan-log nothere.log

# --- outputs ------------------------------------------------------------------------
t_ok "outputs DIR --json" "$FERRY" recipe outputs out --json
t_eq "complete, final" "$(pyq "$T_OUT" '(d["complete"], d["final"], d["resume"])')" "(True, 't1/t1.safetensors', [])"
t_eq "config.yaml never published" "$(pyq "$T_OUT" 'd["never_publish"]')" "['t1/config.yaml']"
t_eq "samples with step and prompt" "$(pyq "$T_OUT" 'sorted(set((s["step"], s["prompt"]) for s in d["samples"]))[:5]')" "[(0, 0), (0, 1), (0, 2), (0, 3), (6, 0)]"
printf 't1/t1_000000004.safetensors\nt1/t1_000000008.safetensors\nt1/optimizer.pt\nt1/config.yaml\n' >listing.txt
t_ok "outputs LISTING" "$FERRY" recipe outputs listing.txt
t_match "the newest checkpoint goes into a resume" "$(cat "$T_OUT")" "step 8 +t1/t1_000000008.safetensors  \[resume\]"
t_ok "outputs - --json" sh -c '"$1" recipe outputs --json - <listing.txt' sh "$FERRY"
t_eq "resume set" "$(pyq "$T_OUT" '(d["resume"], d["resume_ready"])')" "(['t1/t1_000000008.safetensors', 't1/optimizer.pt'], True)"
printf 'a/a_000000004.safetensors\nb/b_000000004.safetensors\n' >two.txt
t_fails "two runs need --name" 2 "$FERRY" recipe outputs two.txt
t_ok "--name picks one" "$FERRY" recipe outputs --name b --json two.txt
t_eq "b's checkpoint" "$(pyq "$T_OUT" '[c["path"] for c in d["checkpoints"]]')" "['b/b_000000004.safetensors']"

done_testing
