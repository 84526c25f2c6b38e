#!/usr/bin/env bash
# The trainer stand-in against the real ai-toolkit (27a03a9): one test per
# item of §5 of the fidelity note (shared/reference/ai-toolkit-fidelity.md),
# and `ferry recipe scan-log` on the logs it writes for the scanner's rules
# that follow from them (a failure after the final save, a missing dataset
# with no Dataset: line, httpx downloads, a killed DataLoader worker, a NaN
# loss, a failed optimizer save, the config echo).
. "$(dirname "$0")/lib.sh"
require_cmd python3

cd "$tmpdir" || exit 1
bash "$GEN_DATASET" valid dataset 6 512x512 >/dev/null || skip_all "gen_dataset.sh valid failed"

. "$(dirname "$0")/t0520-standin-lib.bash"
export FERRY_STANDIN_CKPT_KB=16

# run LOG ARGS...: the stand-in with stdout and stderr in one log, as
# ferry's supervisor writes train.log; its status in $rc.
run() {
	local log=$1
	shift
	rc=0
	python3 "$RUN" "$@" >"$log" 2>&1 || rc=$?
}

# scan LOG [ARGS...]: scan-log --json into scan.json; its status in $src.
scan() {
	src=0
	"$FERRY" recipe scan-log --json "$@" >scan.json 2>scan.err || src=$?
}

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# frames LOG: every line and every \r-drawn frame of LOG on a line of its own.
frames() {
	tr '\r' '\n' <"$1"
}

# --- 1. the final LoRA is saved before the last sample round (f743ccf) ------------------
cfg order.json order 'train.steps=6' 'save.save_every=3' 'sample.sample_every=3'
run order.log order.json
t_eq "1. a clean run exits 0" "$rc" 0
final_at=$(frames order.log | grep -an '^Saved checkpoint to output/order/order.safetensors$' | cut -d: -f1)
last_round=$(frames order.log | grep -an '^Generating Images: 100%' | tail -1 | cut -d: -f1)
pass_if "1. the final save (line $final_at), then the last sample round (line $last_round)" \
	test "${final_at:-0}" -gt 0 -a "${last_round:-0}" -gt "${final_at:-0}"
FERRY_STANDIN_OOM_AT=final run oomfinal.log order.json
t_eq "1. an OOM in the last sample round: exit 1" "$rc" 1
t_file "1.   with the final LoRA on disk" output/order/order.safetensors
scan oomfinal.log
t_eq "1.   scan-log: done with a warning, exit 0" "$src $(pyq scan.json '(d["phase"], d["failure"], [w["code"] for w in d["warnings"]], d["exit_status"])')" \
	"0 ('done', None, ['final_samples_failed'], None)"
t_match "1.   the warning shows the error" "$(pyq scan.json 'd["warnings"][0]["line"]')" "Error running job: CUDA out of memory"

# --- 2. the bar counts steps done, paused while saving and sampling ----------------------
rm -rf output/bar
cfg bar.json bar 'train.steps=8' 'save.save_every=4' 'sample.sample_every=100'
FERRY_STANDIN_STEP_S=0.02 FERRY_STANDIN_SAVE_S=1.5 run bar.log bar.json
t_eq "2. the frame before 'Saving at step 4' shows 4/8" \
	"$(frames bar.log | grep -a -B2 '^Saving at step 4$' | grep -ao '| [0-9]*/8 ' | tail -1)" "| 4/8 "
t_match "2. the save's 1.5 s is left out of the rate (it/s just after it)" \
	"$(frames bar.log | grep -a '^bar: .*| 5/8 ' | tail -1)" '[0-9.]+it/s'
t_eq "2. and it ends at 8/8" "$(frames bar.log | grep -ao '^bar: 100%.*| 8/8 ' | tail -1 | grep -c '8/8')" 1

# --- 3. a missing dataset fails before any Dataset: line ---------------------------------
cfg miss.json miss "datasets=[{\"folder_path\": \"$tmpdir/nothere\", \"resolution\": [512]}]"
run miss.log miss.json
t_eq "3. missing dataset: exit 1" "$rc" 1
t_eq "3.   no Dataset: line" "$(grep -c '^Dataset: ' miss.log)" 0
t_match "3.   FileNotFoundError from open()" "$(cat miss.log)" "FileNotFoundError: \[Errno 2\] No such file or directory: '$tmpdir/nothere'"
scan miss.log
t_eq "3.   scan-log: dataset_missing from the echoed folder_path, exit 1" "$src $(pyq scan.json 'd["failure"]["code"]')" "1 dataset_missing"
grep -v '"folder_path"' miss.log >miss-noecho.log
scan miss-noecho.log --dataset "$tmpdir/nothere/"
t_eq "3.   or from --dataset, the config's folder" "$(pyq scan.json 'd["failure"]["code"]')" "dataset_missing"

# --- 4. a failing step: no Batch Items, one traceback --------------------------------------
rm -rf output/f
cfg f.json f 'train.steps=8' 'save.save_every=3' 'sample.sample_every=100'
FERRY_STANDIN_FAIL_AT=4 run f.log f.json
t_eq "4. FAIL_AT=4: exit 1" "$rc" 1
t_eq "4.   no Batch Items" "$(grep -c 'Batch Items' f.log)" 0
t_eq "4.   one traceback" "$(grep -c 'Traceback (most recent call last)' f.log)" 1
t_match "4.   error line, footer, then the traceback" "$(cat f.log)" $'Error running job: stand-in failure at step 4[^\n]*\n\n=+\nResult:\n - 0 completed jobs\n - 1 failure\n=+\n.*Traceback'

# --- 5. downloads come per part, as huggingface_hub 1.x draws them -----------------------------
rm -rf output/dl
cfg dl.json dl 'train.steps=2' 'sample.sample_every=100' 'train.disable_sampling=true'
FERRY_STANDIN_DOWNLOAD=1 run dl.log dl.json
t_eq "5. each part's download after its Loading line" \
	"$(frames dl.log | grep -a '^Loading \(transformer\|VAE\|T5\|CLIP\)$\|^Fetching [0-9] files: 100%' | sed 's/: 100%.*//' | uniq | tr '\n' '|')" \
	"Loading transformer|Fetching 3 files|Loading VAE|Fetching 1 files|Loading T5|Fetching 2 files|Loading CLIP|Fetching 1 files|"
t_match "5.   one aggregated byte bar per part" "$(frames dl.log)" $'\nDownloading \\(incomplete total\\.\\.\\.\\):   0%\\|          \\| 0\\.00/23\\.8G \\['
t_match "5.   ending as Download complete" "$(frames dl.log)" $'\nDownload complete: 100%\\|██████████\\| 23\\.8G/23\\.8G \\['
t_eq "5.   no per-file bars" "$(frames dl.log | grep -c 'diffusion_pytorch_model-0000')" 0
# fails_as DESC VAR=VALUE LOG CODE: dl.json run afresh with VAR=VALUE exits 1,
# and scan-log reads CODE in its log (and exits 1).
fails_as() {
	rm -rf output/dl
	env "$2" python3 "$RUN" dl.json >"$3" 2>&1 && rc=0 || rc=$?
	scan "$3"
	t_eq "$1: $4, exit 1" "$rc $src $(pyq scan.json 'd["failure"]["code"]')" "1 1 $4"
}
fails_as "5. an httpx timeout" FERRY_STANDIN_DOWNLOAD_FAIL=timeout dl-timeout.log download_stalled
fails_as "5. an httpx incomplete read" FERRY_STANDIN_DOWNLOAD_FAIL=incomplete dl-incomplete.log download_stalled
t_match "5.   httpx's own words" "$(cat dl-timeout.log)" "httpx.ReadTimeout: The read operation timed out"

# --- 6. schnell's assistant LoRA around loading and every sample round ----------------------
rm -rf output/order
run sch.log order.json
t_match "6. the adapter at load" "$(cat sch.log)" $'Grabbing lora from the hub: ostris/FLUX.1-schnell-training-adapter\nFusing in LoRA\nLoading assistant lora\n'
t_eq "6. unloaded and loaded again around each of the 3 rounds" \
	"$(frames sch.log | grep -ac '^Unloading assistant lora$') $(frames sch.log | grep -ac '^Loading assistant lora$')" "3 4"
cut_at=$(grep -abo 'Loading assistant lora' sch.log | sed -n 3p | cut -d: -f1)
t_eq "6.   the scanner stays out of loading for them" \
	"$(head -c "$((cut_at + 23))" sch.log | "$FERRY" recipe scan-log --json - | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])')" "sampling"

# --- 7. the other load lines -----------------------------------------------------------------
t_match "7. T5's own shards bar" "$(frames sch.log)" $'\nLoading T5\n(.*\n)?Loading checkpoint shards: 100%\\|██████████\\| 2/2 \\['
t_match "7. every LoRA line" "$(cat sch.log)" $'create LoRA network. base dim \\(rank\\): 16, alpha: 16\nneuron dropout: p=None, rank dropout: None, module dropout: None\ncreate LoRA for Text Encoder: 0 modules.\ncreate LoRA for U-Net: 494 modules.'

# --- 8. thumbnails: .thumbs/<file>.jpg, 300x300 ----------------------------------------------
t_eq "8. a thumbnail per sample, named <file>.jpg" \
	"$(cd output/order/samples && for f in *.jpg; do [ -f ".thumbs/$f.jpg" ] && echo y; done | wc -l) $(find output/order/samples -maxdepth 1 -name '*.jpg' | wc -l)" "6 6"
t_eq "8.   300x300" "$(python3 - output/order/samples/.thumbs <<'PY'
import os, struct, sys
sizes = set()
for n in os.listdir(sys.argv[1]):
    b = open(os.path.join(sys.argv[1], n), "rb").read()
    i = b.index(b"\xff\xc0")
    h, w = struct.unpack(">HH", b[i + 5:i + 9])
    sizes.add("%dx%d" % (w, h))
print(" ".join(sorted(sizes)))
PY
)" "300x300"
t_eq "8.   nothing left in .tmp" "$(find output/order/samples/.tmp -type f | wc -l)" 0

# --- 9. metadata: format pt, no stand-in key ---------------------------------------------------
t_eq "9. format: pt, as ai-toolkit's metadata.py" "$(python3 - output/order/order.safetensors <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
m = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]
print(m.get("format"), "ferry_standin" in m)
PY
)" "pt False"

# --- 10. buckets divisible by 32, the nearest area ------------------------------------------------
bash "$GEN_DATASET" valid wide 2 500x300 >/dev/null || skip_all "gen_dataset.sh 500x300 failed"
cfg bk.json bk "datasets=[{\"folder_path\": \"$tmpdir/wide\", \"resolution\": [512]}]" 'train.steps=1' 'train.disable_sampling=true'
run bk.log bk.json
t_match "10. 500x300 at 512 goes to 512x288 (64-flooring said 448x256)" "$(cat bk.log)" $'Bucket sizes for [^\n]*wide:\n512x288: 2 files\n'

# --- 11. _controls: only the files directly in it ---------------------------------------------
base=$(grep -ao '  -  Found [0-9]* images' order.log | head -1 | grep -o '[0-9]*')
cp -r dataset ctl
mkdir -p ctl/_controls/sub
cp dataset/img_001.jpg ctl/_controls/a.jpg
cp dataset/img_001.jpg ctl/_controls/sub/b.jpg
cfg ctl.json ctl "datasets=[{\"folder_path\": \"$tmpdir/ctl\", \"resolution\": [512]}]" 'train.steps=1' 'train.disable_sampling=true'
run ctl.log ctl.json
t_match "11. _controls/sub is walked, _controls' own file is not ($base + 1)" "$(cat ctl.log)" "  -  Found $((base + 1)) images"

# --- 12. .aitk_size.json before the image count ------------------------------------------------
mkdir -p empty
cfg empty.json empty "datasets=[{\"folder_path\": \"$tmpdir/empty\", \"resolution\": [512]}]"
run empty.log empty.json
t_eq "12. no images: exit 1" "$rc" 1
t_eq "12.   .aitk_size.json written anyway, version 0.1.2" "$(pyq empty/.aitk_size.json 'd')" "{'__version__': '0.1.2'}"
scan empty.log
t_eq "12.   scan-log: no_images" "$(pyq scan.json 'd["failure"]["code"]')" "no_images"

# --- 13. the config lookup: never config/<arg> itself ------------------------------------------
mkdir -p aitk/config
cfg aitk/config/look.json look 'train.steps=1' 'train.disable_sampling=true'
mkdir -p elsewhere
(cd elsewhere && python3 "$RUN" look.json >look.log 2>&1)
t_match "13. config/look.json itself is not used" "$(cat elsewhere/look.log)" "Error running job: Could not find config file look.json"
(cd elsewhere && python3 "$RUN" look >look.log 2>&1)
t_match "13. config/look + .json is" "$(cat elsewhere/look.log)" "# Running job: look"

# --- 14. a missing training_folder is os.path.join's TypeError ---------------------------------
cfg notf.json notf 'training_folder=-'
run notf.log notf.json
t_match "14. TypeError, as ai-toolkit" "$(cat notf.log)" "Error running job: expected str, bytes or os.PathLike object, not NoneType"

# --- 15. sample_start_step ------------------------------------------------------------------------
rm -rf output/sss
cfg sss.json sss 'train.steps=8' 'save.save_every=100' 'sample.sample_every=2' 'sample.sample_start_step=5'
run sss.log sss.json
t_eq "15. in-loop samples only from step 5: 6, then the final 8" \
	"$(find output/sss/samples -maxdepth 1 -name '*_0.jpg' -printf '%f\n' | sed -E 's/^[0-9]+__0*([0-9]+)_0\.jpg$/\1/' | sort -n | tr '\n' ' ')" "0 6 8 "

# --- 16. Hugging Face auth, as hub 1.x words it -----------------------------------------------
cfg dev.json dev 'model.name_or_path="black-forest-labs/FLUX.1-dev"' 'train.steps=2' 'sample.sample_every=100'
HF_TOKEN=not-a-token run dev.log dev.json
t_eq "16. a token that is none: 401, exit 1" "$rc $(grep -c 'GatedRepoError: 401' dev.log)" "1 1"
FERRY_STANDIN_HF_AUTH=403 run dev403.log dev.json
t_match "16. 403: not in the authorized list, wrapped by diffusers" "$(cat dev403.log)" $'not in the authorized list.*\n(.*\n)*OSError: You are trying to access a gated repo.'
scan dev403.log
t_eq "16.   scan-log: hf_auth, exit 1" "$src $(pyq scan.json 'd["failure"]["code"]')" "1 hf_auth"

# --- 17. disk full in the download, the latent cache and the optimizer save -------------------
fails_as "17. disk full in the download" FERRY_STANDIN_DISK_FULL_AT=download disk-download.log disk_full
fails_as "17. disk full in the latent cache" FERRY_STANDIN_DISK_FULL_AT=cache disk-cache.log disk_full
t_match "17.   the download's Errno 28" "$(cat disk-download.log)" "OSError: \[Errno 28\] No space left on device"
rm -rf output/f
FERRY_STANDIN_DISK_FULL_AT=optimizer run opt.log f.json
t_eq "17. a failed optimizer save: training goes on, exit 0" "$rc" 0
t_match "17.   torch's words, then Could not save optimizer" "$(cat opt.log)" $'PytorchStreamWriter failed writing file data/0: file write failed\nCould not save optimizer\n'
t_file "17.   and the final LoRA" output/f/f.safetensors
scan opt.log
t_eq "17.   scan-log: done, optimizer not trusted, a warning" \
	"$src $(pyq scan.json '(d["phase"], d["failure"], d["optimizer_trusted"], [w["code"] for w in d["warnings"]])')" \
	"0 ('done', None, False, ['optimizer_save_failed'])"

rm -rf output/f
FERRY_STANDIN_DISK_FULL_AT=optimizer FERRY_STANDIN_SIGNAL_AT=5:9 run optkill.log f.json
t_ok "17. killed after a failed optimizer save: outputs --log" "$FERRY" recipe outputs --json --log optkill.log output/f
t_eq "17.   resume: the checkpoint, not the optimizer.pt" "$(pyq "$T_OUT" '(d["resume"], d["resume_ready"], d["optimizer_trusted"])')" \
	"(['f_000000003.safetensors'], False, False)"
t_ok "17.   without --log it would go" "$FERRY" recipe outputs --json output/f
t_eq "17.   (as before)" "$(pyq "$T_OUT" 'd["resume_ready"]')" "True"

# --- the scanner on the stand-in's other faults --------------------------------------------------
rm -rf output/f
FERRY_STANDIN_NAN_AT=4 run nan.log f.json
scan nan.log
t_eq "NaN loss: exit 0 from the trainer, nan_loss from scan-log (exit 1)" "$rc $src $(pyq scan.json 'd["failure"]["code"]')" "0 1 nan_loss"
t_eq "  the loss is not the last finite one" "$(pyq scan.json 'd["loss"]')" "None"
"$FERRY" recipe scan-log nan.log >nan.txt 2>&1
t_match "  and reads nan" "$(cat nan.txt)" "loss +nan"
rm -rf output/f
FERRY_STANDIN_WORKER_KILLED_AT=3 run worker.log f.json
scan worker.log
t_eq "a DataLoader worker killed: killed" "$rc $src $(pyq scan.json 'd["failure"]["code"]')" "1 1 killed"
rm -rf output/echo
cfg echo.json echo 'train.steps=2' 'sample.sample_every=100' \
	'sample.prompts=["ohwx, a sign: Error running job: CUDA out of memory", "ohwx, Killed, loss is nan, No space left on device"]'
run echo.log echo.json
scan echo.log
t_eq "the config echo's prompts raise nothing" "$rc $src $(pyq scan.json '(d["phase"], d["failure"])')" "0 0 ('done', None)"

done_testing
