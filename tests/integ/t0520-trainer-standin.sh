#!/usr/bin/env bash
# The trainer stand-in (examples/trainer/run.py): ai-toolkit's output layout
# and names, valid safetensors and JPEGs, the training bar's tqdm format with
# \r redraws on stderr, pruning, resuming from the newest checkpoint, files
# that grow while written, and every failure it imitates with ai-toolkit's
# exit status and words.
. "$(dirname "$0")/lib.sh"
require_cmd python3 convert cwebp exiftool identify timeout

cd "$tmpdir" || exit 1
bash "$GEN_DATASET" valid dataset 12 512x512 >/dev/null || skip_all "gen_dataset.sh valid failed"

. "$(dirname "$0")/t0520-standin-lib.bash"
export FERRY_STANDIN_CKPT_KB=64

# names DIR [PATTERN]: the names of the files in DIR matching PATTERN, sorted,
# on one line.
names() {
	find "$1" -mindepth 1 -maxdepth 1 -name "${2:-*}" -printf '%f\n' | LC_ALL=C sort | tr '\n' ' '
}

# check_safetensors FILE STEP: a valid safetensors file whose metadata step is STEP.
check_safetensors() {
	python3 - "$1" "$2" <<'PY'
import json, math, struct, sys
path, step = sys.argv[1], int(sys.argv[2])
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
assert 8 + n <= len(b), "header runs past the end"
h = json.loads(b[8:8 + n].decode("utf-8"))
meta = h.pop("__metadata__")
assert all(isinstance(v, str) for v in meta.values()), meta
info = json.loads(meta["training_info"])
assert info["step"] == step, (info, step)
assert meta["ss_base_model_version"] == "flux.1" and meta["ss_output_name"]
assert json.loads(meta["software"])["name"] == "ai-toolkit"
assert h, "no tensors"
spans = sorted(v["data_offsets"] for v in h.values())
pos = 0
for (a, z) in spans:
    assert a == pos and z >= a, spans
    pos = z
assert 8 + n + pos == len(b), "data size does not match the header"
sizes = {"F16": 2, "BF16": 2, "F32": 4}
for k, v in h.items():
    a, z = v["data_offsets"]
    assert z - a == math.prod(v["shape"]) * sizes[v["dtype"]], k
PY
}

# check_jpeg FILE: SOI, well-formed segments (DQT, SOF0, DHT, SOS), entropy
# data, EOI at the very end.
check_jpeg() {
	python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:2] == b"\xff\xd8", "no SOI"
assert b[-2:] == b"\xff\xd9", "no EOI at the end"
i, seen = 2, set()
while True:
    assert b[i] == 0xFF, "not a marker at %d" % i
    m = b[i + 1]
    ln = struct.unpack(">H", b[i + 2:i + 4])[0]
    seen.add(m)
    i += 2 + ln
    if m == 0xDA:
        break
assert {0xDB, 0xC0, 0xC4} <= seen, sorted(seen)
while True:  # entropy-coded data: 0xFF only as FF00 or RSTn, until EOI
    j = b.index(b"\xff", i)
    if b[j + 1] == 0x00 or 0xD0 <= b[j + 1] <= 0xD7:
        i = j + 2
        continue
    assert b[j + 1] == 0xD9 and j + 2 == len(b), "stray marker %02x" % b[j + 1]
    break
PY
}

# --- the example config ---------------------------------------------------------
t_ok "the example config trains" python3 "$RUN" "$EXAMPLE"
cp "$T_OUT" ex.out
cp "$T_ERR" ex.err
out=$(cat ex.out)
root=output/standin_demo
t_match "start-up lines" "$out" $'^Running 1 job\n\\{\n'
t_match "job banner" "$out" $'#############################################\n# Running job: standin_demo\n#############################################\n\nRunning  1 process\nLoading Flux model\nLoading transformer\nQuantizing transformer'
t_match "network lines" "$out" $'create LoRA network. base dim \\(rank\\): 16, alpha: 16\nneuron dropout: p=None, rank dropout: None, module dropout: None\ncreate LoRA for Text Encoder: 0 modules.\ncreate LoRA for U-Net: 494 modules.'
t_match "dataset block counts the real images" "$out" $'Dataset: dataset\n  -  Preprocessing image dimensions\n  -  Found 12 images\nBucket sizes for dataset:\n512x512: 12 files\n1 buckets made\nCaching latents for dataset\n - Saving latents to disk'
t_match "baseline samples" "$out" "Generating baseline samples before training"
t_match "saves are announced" "$out" $'\nSaving at step 4\nSaved checkpoint to output/standin_demo/standin_demo_000000004.safetensors\nSaved optimizer to output/standin_demo/optimizer.pt'
t_match "the final save is announced, before the last samples" "$out" $'Saved checkpoint to output/standin_demo/standin_demo.safetensors\nSaved optimizer to output/standin_demo/optimizer.pt\nUnloading assistant lora\nLoading assistant lora$'
t_not_match "no closing summary on success" "$out" "Result:"
t_not_match "no bar on stdout" "$out" "standin_demo: +[0-9]+%"
err=$(cat ex.err)
t_match "model-loading bar on stderr" "$err" $'\rLoading checkpoint shards: 100%\\|██████████\\| 3/3 \\[[0-9:]+<00:00, +[0-9.]+(it/s|s/it)\\]\n'
t_match "latent-caching bar on stderr" "$err" $'\rCaching latents to disk: 100%\\|██████████\\| 12/12 \\['
t_match "sampling bar is transient" "$err" $'\rGenerating Images:   0%\\|          \\| 0/2 \\[00:00<\\?, \\?it/s\\]'

t_eq "output layout" "$(cd "$root" && find . -path ./samples -prune -o -type f -print | LC_ALL=C sort | tr '\n' ' ')" \
	"./config.yaml ./optimizer.pt ./standin_demo.safetensors ./standin_demo_000000004.safetensors ./standin_demo_000000008.safetensors "
t_eq "checkpoints every save_every=4 of 12 steps: 4 and 8" \
	"$(names "$root" 'standin_demo_*.safetensors')" "standin_demo_000000004.safetensors standin_demo_000000008.safetensors "
ok=1
for f in "$root"/standin_demo_00000000[48].safetensors; do
	s=${f##*_}
	s=$((10#${s%.safetensors}))
	check_safetensors "$f" "$s" || ok=0
done
check_safetensors "$root/standin_demo.safetensors" 12 || ok=0
pass_if "checkpoints are valid safetensors with their step" [ "$ok" = 1 ]
t_ok "optimizer.pt is a torch-style zip" python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert "optimizer/data.pkl" in z.namelist()' "$root/optimizer.pt"

samples=$(names "$root/samples" '*.jpg' | tr ' ' '\n')
t_eq "six samples: 2 prompts at steps 0, 6 and 12" "$(echo "$samples" | grep -cE '^[0-9]{13}__0000000(00|06|12)_[01]\.jpg$')" 6
t_eq "sample steps and prompt indexes" "$(echo "$samples" | sed -E 's/^[0-9]+__//' | LC_ALL=C sort | tr '\n' ' ')" \
	"000000000_0.jpg 000000000_1.jpg 000000006_0.jpg 000000006_1.jpg 000000012_0.jpg 000000012_1.jpg "
t_eq "samples/.tmp is left empty" "$(names "$root/samples/.tmp")" ""
t_eq "samples/.thumbs holds a thumbnail per sample" "$(names "$root/samples/.thumbs" | wc -w)" 6
ok=1
for f in "$root"/samples/*.jpg "$root"/samples/.thumbs/*.jpg; do
	check_jpeg "$f" || { ok=0; diag "bad JPEG: $f"; }
done
pass_if "samples are well-formed JPEGs" [ "$ok" = 1 ]
t_eq "identify reads the samples at their sizes" \
	"$(identify -format '%m %wx%h\n' "$root"/samples/*.jpg | sort | uniq -c | awk '{ print $1, $2, $3 }' | tr '\n' ' ')" \
	"3 JPEG 256x256 3 JPEG 320x192 "
first=$(find "$root/samples" -maxdepth 1 -name '*_0.jpg' | head -1)
t_ok "ImageMagick decodes a sample" convert "$first" "$tmpdir/decoded.png"
t_eq "thumbnails are 300 px wide" "$(identify -format '%w\n' "$root"/samples/.thumbs/*.jpg | sort -u)" 300
t_ok "config.yaml holds the config (parsed as YAML)" python3 - "$root/config.yaml" "$EXAMPLE" <<'PY'
import json, sys
try:
    import yaml
except ImportError:
    sys.exit(0)
got = yaml.safe_load(open(sys.argv[1]))
want = json.loads(open(sys.argv[2]).read().replace("[name]", "standin_demo"))
assert got == want, (got, want)
PY
t_file "the dataset folder gets .aitk_size.json" dataset/.aitk_size.json
t_eq "and a latent cache per image" "$(names dataset/_latent_cache '*.safetensors' | wc -w)" 12

t_ok "the training bar is tqdm's, redrawn with \\r on stderr" python3 - ex.err standin_demo 12 <<'PY'
import re, sys
err = open(sys.argv[1], encoding="utf-8", newline="").read()
name, total = sys.argv[2], int(sys.argv[3])
lines = [l for l in err.split("\n") if name + ":" in l]
assert len(lines) == 1, "the training bar spans %d lines; tqdm redraws one" % len(lines)
frames = [f.rstrip(" ") for f in lines[0].split("\r") if f.startswith(name + ":")]
assert len(frames) >= total + 1, len(frames)
UTF = " " + "".join(map(chr, range(0x258F, 0x2587, -1)))
rx = re.compile(r"^%s: +(\d+)%%\|(.{10})\| (\d+)/(\d+) \[(\d\d:\d\d)<(\d\d:\d\d|\?), "
                r"( ?\d+\.\d\d|\?)(it/s|s/it)(, lr: 4\.0e-04 loss: \d\.\d{3}e[-+]\d\d)?\]$" % re.escape(name))
# the suggested regex from the reference
ref = re.compile(r"^(\S+):\s+(\d+)%\|.*\|\s+(\d+)/(\d+) \[([\d:]+)<([\d:?]+),\s+([\d.?]+)(s/it|it/s)(?:, lr: (\S+) loss: (\S+))?\]")
prev = -1
for f in frames:
    m = rx.match(f)
    assert m, "not tqdm's format: %r" % f
    assert ref.match(f), f
    n, tot = int(m.group(3)), int(m.group(4))
    assert tot == total and n >= prev, f
    prev = n
    frac = n / tot
    assert f.startswith("%s: %3.0f%%|" % (name, frac * 100)), f
    full, part = divmod(int(frac * 10 * 8), 8)
    bar = UTF[-1] * full + ((UTF[part] + " " * (10 - full - 1)) if full < 10 else "")
    assert m.group(2) == bar, (f, bar)
assert frames[0] == "%s:   0%%|          | 0/%d [00:00<?, ?it/s]" % (name, total), frames[0]
assert frames[-1].startswith("%s: 100%%|%s| %d/%d [" % (name, UTF[-1] * 10, total, total)), frames[-1]
assert ", lr: 4.0e-04 loss: " in frames[-1]
assert lines[0].endswith("\n") or err.split(lines[0], 1)[1].startswith("\n")
PY

# --- pruning: max_step_saves_to_keep ------------------------------------------------
cfg keep.json keep 'save.save_every=2' 'save.max_step_saves_to_keep=2' 'sample.sample_every=100'
t_ok "save_every=2, keep 2" python3 "$RUN" keep.json
t_eq "three old saves removed" "$(grep -c '^Removing old save: output/keep/keep_0000000' "$T_OUT")" 3
t_eq "the newest two and the final remain" "$(names output/keep '*.safetensors')" \
	"keep.safetensors keep_000000008.safetensors keep_000000010.safetensors "

# --- resume ---------------------------------------------------------------------------
cfg res.json res 'save.save_every=3' 'sample.sample_every=100'
t_fails "FAIL_AT=7 stops the first run" 1 env FERRY_STANDIN_FAIL_AT=7 python3 "$RUN" res.json
t_eq "checkpoints 3 and 6 were written" "$(names output/res '*.safetensors')" \
	"res_000000003.safetensors res_000000006.safetensors "
t_ok "a rerun resumes" python3 "$RUN" res.json
out=$(cat "$T_OUT")
t_match "from the newest checkpoint" "$out" $'#### IMPORTANT RESUMING FROM output/res/res_000000006.safetensors ####\nLoading from output/res/res_000000006.safetensors\nFound step 6 in metadata, starting from there\nLoading optimizer state from output/res/optimizer.pt\nUpdating optimizer LR from params'
t_not_match "no baseline samples on resume" "$out" "Generating baseline samples"
t_match "the bar starts at the resumed step" "$(tr '\r' '\n' <"$T_ERR" | grep -a '^res:' | head -1)" '^res:  50%\|█████     \| 6/12 \[00:00<\?, \?it/s\]'
t_eq "the step count continues: 9, then the final" "$(names output/res '*.safetensors')" \
	"res.safetensors res_000000003.safetensors res_000000006.safetensors res_000000009.safetensors "
pass_if "the final LoRA says step 12" check_safetensors output/res/res.safetensors 12
t_eq "samples only from step 12 after the resume" "$(names output/res/samples '*.jpg' | tr ' ' '\n' | sed -E 's/^[0-9]+__//' | LC_ALL=C sort | tr '\n' ' ')" \
	"000000000_0.jpg 000000000_1.jpg 000000012_0.jpg 000000012_1.jpg "

# --- failures ---------------------------------------------------------------------------
footer=$'Result:\n - 0 completed jobs\n - 1 failure\n========================================$'
cfg f.json fail 'save.save_every=3' 'sample.sample_every=100'
t_fails "FAIL_AT=5: exit 1" 1 env FERRY_STANDIN_FAIL_AT=5 python3 "$RUN" f.json
t_not_match "no Batch Items (gone since 3b1f7b0)" "$(cat "$T_OUT")" "Batch Items:"
t_eq "one traceback" "$(grep -c 'Traceback (most recent call last)' "$T_ERR")" 1
t_match "the error line and footer" "$(cat "$T_OUT")" $'\nError running job: stand-in failure at step 5 \\(FERRY_STANDIN_FAIL_AT=5\\)\n\n========================================\n'"$footer"
t_match "the traceback" "$(cat "$T_ERR")" $'Traceback \\(most recent call last\\):\n.*\nRuntimeError: stand-in failure at step 5 \\(FERRY_STANDIN_FAIL_AT=5\\)$'
t_no_file "no final LoRA after a failure" output/fail/fail.safetensors
rm -rf output/fail
t_fails "FAIL_MSG sets the message" 1 env FERRY_STANDIN_FAIL_AT=2 FERRY_STANDIN_FAIL_MSG="CUBLAS_STATUS_EXECUTION_FAILED" python3 "$RUN" f.json
t_match "  and it is printed" "$(cat "$T_OUT")" "Error running job: CUBLAS_STATUS_EXECUTION_FAILED"
rm -rf output/fail
t_fails "FAIL_AT=load: exit 1" 1 env FERRY_STANDIN_FAIL_AT=load python3 "$RUN" f.json
t_match "  before the transformer loads" "$(cat "$T_OUT")" $'Loading Flux model\nError running job: '

t_fails "OOM_AT=3: exit 1" 1 env FERRY_STANDIN_OOM_AT=3 python3 "$RUN" f.json
out=$(cat "$T_OUT")
t_match "three OOM banners" "$out" $'# OOM during training step, skipping batch 1/3 #\n.*# OOM during training step, skipping batch 2/3 #\n.*# OOM during training step, skipping batch 3/3 #\n'
t_match "then the abort" "$out" $'Error running job: OOM during training step 3 times in a row, aborting training\n\n========================================\n'"$footer"
rm -rf output/fail
t_fails "OOM_AT=load: exit 1" 1 env FERRY_STANDIN_OOM_AT=load python3 "$RUN" f.json
t_match "  torch.OutOfMemoryError while quantizing" "$(cat "$T_ERR")" $'\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate [0-9.]+ MiB'
t_match "  after Quantizing transformer" "$(cat "$T_OUT")" $'Quantizing transformer\nError running job: CUDA out of memory.'

# hangs FILE REGEX CMD...: CMD runs with output in hang.out and hang.err until
# FILE matches REGEX; then it must stay alive with neither growing for a
# while, and die of SIGTERM (no handler) when sent one.
# shellcheck disable=SC2317 # called through t_ok
hangs() {
	python3 - "$@" <<'PY'
import os, re, subprocess, sys, time
watch, pattern, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
with open("hang.out", "wb") as o, open("hang.err", "wb") as e:
    p = subprocess.Popen(cmd, stdout=o, stderr=e)
deadline = time.time() + 60
while not re.search(pattern, open(watch, encoding="utf-8", errors="replace", newline="").read()):
    assert p.poll() is None, "exited (%s) before the hang" % p.returncode
    assert time.time() < deadline, "never reached the hang"
    time.sleep(0.02)
time.sleep(0.3)
sizes = os.path.getsize("hang.out"), os.path.getsize("hang.err")
time.sleep(0.6)
assert p.poll() is None, "exited (%s) instead of hanging" % p.returncode
assert sizes == (os.path.getsize("hang.out"), os.path.getsize("hang.err")), "output grew while hanging"
p.terminate()
assert p.wait() == -15, p.returncode
PY
}
rm -rf output/fail
t_ok "HANG_AT=4: alive, silent, ended by SIGTERM" hangs hang.out 'Saved optimizer to' \
	env FERRY_STANDIN_HANG_AT=4 python3 "$RUN" f.json
t_match "  the bar stopped at 4/12 (steps done)" "$(tr '\r' '\n' <hang.err | grep -a '^fail:' | tail -1)" '^fail: +33%\|.*\| 4/12 \['
t_match "  nothing after the save at 3" "$(tail -1 hang.out)" "Saved optimizer to output/fail/optimizer.pt"
rm -rf output/fail
t_ok "HANG_AT=load: silent after Loading transformer" hangs hang.out $'Loading transformer\n' \
	env FERRY_STANDIN_HANG_AT=load python3 "$RUN" f.json
t_eq "  the last line" "$(tail -1 hang.out)" "Loading transformer"
rm -rf output/fail
t_ok "HANG_AT=download: silent part-way through a download bar" hangs hang.err 'Downloading \(incomplete total\.\.\.\): +52%' \
	env FERRY_STANDIN_HANG_AT=download python3 "$RUN" f.json
t_match "  the last frame" "$(tr '\r' '\n' <hang.err | tail -1)" '^Downloading \(incomplete total\.\.\.\): +52%\|█████▏    \| 12\.5G/23\.8G \['

# (the braces keep bash's "Killed" notices out of the TAP stream)
rm -rf output/fail
{ env FERRY_STANDIN_SIGNAL_AT=5:9 python3 "$RUN" f.json >sig.out 2>sig.err; } 2>/dev/null
t_eq "SIGNAL_AT=5:9 dies by SIGKILL: 137 from bash" "$?" 137
t_match "  after the checkpoint at 3" "$(tail -1 sig.out)" "Saved optimizer to"
rm -rf output/fail
{ env FERRY_STANDIN_SIGNAL_AT=5:SIGKILL python3 "$RUN" f.json >sig.out 2>sig.err; } 2>/dev/null
t_eq "SIGNAL_AT=5:SIGKILL, by name" "$?" 137
{ env FERRY_STANDIN_SIGNAL_AT=5:15 python3 "$RUN" f.json >sig.out 2>sig.err; } 2>/dev/null
t_eq "SIGNAL_AT=5:15: SIGTERM has no handler, 143" "$?" 143
rm -rf output/fail
t_ok "SIGNAL_AT=5:INT: ai-toolkit stops and exits 0" env FERRY_STANDIN_SIGNAL_AT=5:INT python3 "$RUN" f.json
t_match "  with the Job stopped banner" "$(cat "$T_OUT")" $'========================================\nJob stopped\n========================================'
t_no_file "  and no final LoRA" output/fail/fail.safetensors

rm -rf output/fail
{ env FERRY_STANDIN_SIGNAL_AT=save:9 python3 "$RUN" f.json >sig.out 2>sig.err; } 2>/dev/null
t_eq "SIGNAL_AT=save:9: killed while writing the first checkpoint" "$?" 137
t_ok "  which is left truncated" python3 -c '
import os, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
assert len(b) < 8 + n + 2 * 16 * 3072 * 2, len(b)' output/fail/fail_000000003.safetensors
t_fails "  a rerun tries to resume from it and fails like safetensors" 1 python3 "$RUN" f.json
t_match "  with safetensors' words" "$(cat "$T_OUT")" $'#### IMPORTANT RESUMING FROM output/fail/fail_000000003.safetensors ####\nLoading from output/fail/fail_000000003.safetensors\nError running job: Error while deserializing header: MetadataIncompleteBuffer'

rm -rf output/fail
t_fails "HF_AUTH=1: exit 1" 1 env FERRY_STANDIN_HF_AUTH=1 python3 "$RUN" f.json
t_match "  GatedRepoError 401" "$(cat "$T_ERR")" $'huggingface_hub.errors.GatedRepoError: 401 Client Error.*\nCannot access gated repo for url https://huggingface.co/[^ ]+\\.\nAccess to model [^ ]+ is restricted. You must have access to it and be authenticated to access it. Please log in.'
t_match "  after Loading transformer" "$(cat "$T_OUT")" $'Loading transformer\nError running job: 401 Client Error'
t_fails "HF_AUTH=403: licence not accepted" 1 env FERRY_STANDIN_HF_AUTH=403 python3 "$RUN" f.json
t_match "  403 (hub 1.x), wrapped by diffusers" "$(cat "$T_ERR")" $'GatedRepoError: 403 Client Error.*not in the authorized list.*\nOSError: You are trying to access a gated repo.\nMake sure to have access to it at https://huggingface.co/black-forest-labs/FLUX.1-schnell.'
cfg dev.json dev 'model.name_or_path="black-forest-labs/FLUX.1-dev"' 'train.steps=3' 'sample.sample_every=100'
t_fails "FLUX.1-dev without HF_TOKEN fails like a gated model" 1 python3 "$RUN" dev.json
t_match "  401 for FLUX.1-dev" "$(cat "$T_OUT")" "Error running job: 401 Client Error.*Access to model black-forest-labs/FLUX.1-dev is restricted"
t_ok "FLUX.1-dev with HF_TOKEN trains" env HF_TOKEN=hf_test python3 "$RUN" dev.json
rm -rf output/dev
echo 'HF_TOKEN="hf_from_dotenv"' >aitk/.env
t_ok "HF_TOKEN from the .env beside run.py" python3 "$RUN" dev.json
rm aitk/.env

cfg miss.json miss "datasets=[{\"folder_path\": \"$tmpdir/no such folder\"}]"
t_fails "missing dataset folder: exit 1" 1 python3 "$RUN" miss.json
t_not_match "  before any Dataset: line" "$(cat "$T_OUT")" "Dataset: "
t_match "  FileNotFoundError like ai-toolkit" "$(cat "$T_OUT")" "Error running job: \\[Errno 2\\] No such file or directory: '$tmpdir/no such folder'"
t_match "  in the traceback" "$(tail -1 "$T_ERR")" "^FileNotFoundError: \\[Errno 2\\] No such file or directory: '$tmpdir/no such folder'$"
mkdir -p empty/.hidden
cp dataset/img_001.jpg empty/.hidden/
echo caption >empty/a.txt
cfg empty.json empty 'datasets=[{"folder_path": "empty"}]'
t_fails "a folder without images: exit 1" 1 python3 "$RUN" empty.json
t_match "  no images found" "$(cat "$T_OUT")" $'  -  Found 0 images\nError running job: no images found in empty\n'
t_fails "CUDA_KERNEL=1: exit 1" 1 env FERRY_STANDIN_CUDA_KERNEL=1 python3 "$RUN" f.json
t_match "  no kernel image" "$(cat "$T_OUT")" "Error running job: CUDA error: no kernel image is available for execution on the device"
rm -rf output/fail
t_fails "DISK_FULL_AT=5: exit 1" 1 env FERRY_STANDIN_DISK_FULL_AT=5 python3 "$RUN" f.json
t_match "  at the save at 6" "$(cat "$T_OUT")" $'Saving at step 6\nError running job: Error while serializing: IoError\\(Os \\{ code: 28, kind: StorageFull, message: "No space left on device" \\}\\)'
rm -rf output/fail
t_fails "FAULT_ONCE: the fault fires once" 1 env FERRY_STANDIN_FAULT_ONCE="$tmpdir/once" FERRY_STANDIN_FAIL_AT=5 python3 "$RUN" f.json
t_ok "  and the relaunch with the same environment succeeds" env FERRY_STANDIN_FAULT_ONCE="$tmpdir/once" FERRY_STANDIN_FAIL_AT=5 python3 "$RUN" f.json
t_fails "a bad setting is refused" 2 env FERRY_STANDIN_SIGNAL_AT=5 python3 "$RUN" f.json
t_match "  naming it" "$(cat "$T_ERR")" "FERRY_STANDIN_SIGNAL_AT=5: expected WHEN:SIG"

# --- run.py's CLI ------------------------------------------------------------------------
t_fails "an unknown config file" 1 python3 "$RUN" nope.json
t_match "  Could not find config file" "$(cat "$T_OUT")" $'^Running 1 job\nError running job: Could not find config file nope.json\n'
rm -rf output/miss output/keep
t_ok "-r swallows failures: exit 0" python3 "$RUN" -r miss.json keep.json
t_match "  runs both" "$(cat "$T_OUT")" $'^Running 2 jobs\n.*Error running job: .*# Running job: keep\n'
t_not_match "  with no summary" "$(cat "$T_OUT")" "Result:"
# shellcheck disable=SC2016 # a literal ${RUN_NAME} for the stand-in to expand
sed 's/"standin_demo"/"${RUN_NAME}"/' "$EXAMPLE" >envname.json
t_fails "\${VAR} unset" 1 python3 "$RUN" envname.json
t_match "  ai-toolkit's message" "$(cat "$T_OUT")" "Error running job: Environment variable RUN_NAME not set. Please ensure it's defined before proceeding."
t_ok "\${VAR} set" env RUN_NAME=from_env python3 "$RUN" envname.json
t_file "  names the job" output/from_env/from_env.safetensors
t_ok "-l copies the output, with # bars" python3 "$RUN" -l logs/run.log keep.json
t_match "  the log has the bar in ASCII" "$(tr '\r' '\n' <logs/run.log)" $'\nkeep: 100%\\|##########\\| 12/12 \\['
t_match "  and the stdout lines" "$(cat logs/run.log)" "Saved checkpoint to output/keep/keep.safetensors"
rm -rf output/keep
t_ok "DOWNLOAD=1 shows Hugging Face download bars" env FERRY_STANDIN_DOWNLOAD=1 python3 "$RUN" keep.json
t_match "  in bytes, aggregated (hub 1.x)" "$(tr '\r' '\n' <"$T_ERR")" $'\nDownload complete: 100%\\|██████████\\| 23.8G/23.8G \\[[0-9:]+<00:00, +[0-9.]+[kMG]?B/s\\]'

# --- a checkpoint grows while it is written -----------------------------------------------
cfg grow.json grow 'train.steps=4' 'save.save_every=2' 'sample.sample_every=100'
t_ok "a puller sees a growing checkpoint" env FERRY_STANDIN_SAVE_S=0.4 FERRY_STANDIN_CKPT_KB=512 python3 - "$RUN" grow.json <<'PY'
import os, subprocess, sys, time
p = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
path = "output/grow/grow_000000002.safetensors"
sizes = []
while p.poll() is None:
    try:
        s = os.path.getsize(path)
        if not sizes or sizes[-1] != s:
            sizes.append(s)
    except OSError:
        pass
    time.sleep(0.01)
assert p.returncode == 0, p.returncode
assert len(sizes) >= 3 and sizes == sorted(sizes), sizes
print(sizes)
PY

done_testing
