#!/usr/bin/env bash
# `make demo`: the dataset pipeline on examples/dataset, the market against
# ferry sim, and a training round on this machine (recipe, push, launch,
# logs, pull, scan, publish), all in a scratch folder.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ferry="$top/build/ferry"
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Keep the demo's caches out of the user's own.
export XDG_CACHE_HOME="$work/cache" XDG_STATE_HOME="$work/state" XDG_CONFIG_HOME="$work/config"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }

step "Check the example dataset (warnings are expected)" \
  ferry dataset check examples/dataset --trigger ohwx
"$ferry" dataset check "$top/examples/dataset" --trigger ohwx
echo "(exit status $?)"

step "Repair it into a copy: captions, trigger word, sizes, colour" \
  ferry dataset fix examples/dataset -o fixed --trigger ohwx --default-caption "a photo of [trigger]"
"$ferry" dataset fix "$top/examples/dataset" -o "$work/fixed" --trigger ohwx \
  --default-caption "a photo of [trigger]" || exit 1

step "Check the repaired copy" ferry dataset check fixed --trigger ohwx
"$ferry" dataset check "$work/fixed" --trigger ohwx || exit 1

step "Pack it: deterministic tar named by its SHA-256, with a manifest" \
  ferry dataset pack fixed -o dataset.tar
"$ferry" dataset pack "$work/fixed" -o "$work/dataset.tar" || exit 1

step "Pack again: the cached archive is reused" ferry dataset pack fixed
"$ferry" dataset pack "$work/fixed" || exit 1

step "Unpack and verify every file against the manifest" \
  ferry dataset unpack dataset.tar unpacked
"$ferry" dataset unpack "$work/dataset.tar" "$work/unpacked" || exit 1

step "What a GPU host with only coreutils does: plain tar, then sha256sum -c" \
  "tar -xf dataset.tar -C plain && (cd plain && sha256sum -c --quiet SHA256SUMS)"
mkdir "$work/plain" && tar -xf "$work/dataset.tar" -C "$work/plain" &&
  (cd "$work/plain" && sha256sum -c --quiet --strict SHA256SUMS) &&
  echo "all $(grep -c . "$work/plain/SHA256SUMS") files match SHA256SUMS" || exit 1

# --- the market, rehearsed against ferry sim ---------------------------------
step "Start ferry sim, a simulated Vast.ai API (nothing is spent)" \
  ferry sim --listen 127.0.0.1:0 --api-key demo-key --boot-seconds 2 --seed 4
"$ferry" sim --listen 127.0.0.1:0 --api-key demo-key --boot-seconds 2 --seed 4 \
  >"$work/sim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$work/sim.log" && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$work/sim.log" | head -1)
[ -n "$url" ] || { cat "$work/sim.log"; exit 1; }
echo "$url"
export VAST_URL=$url VAST_API_KEY=demo-key

step "Make an SSH key for instances, and look at the account" \
  "ferry keys init && ferry whoami"
"$ferry" keys init && "$ferry" whoami || exit 1

step "Rank offers by the cost of the whole job, not \$/hour" \
  ferry offers --rank --recipe flux-dev-lora --steps 2000 --dataset fixed --top 5
"$ferry" offers --rank --recipe flux-dev-lora --steps 2000 --dataset "$work/fixed" --top 5 || exit 1

step "Rent the first 24 GB offer that can be had, cheapest first" \
  ferry rent --best 'gpu_ram>=24' -o dph_total --label demo
"$ferry" rent --best 'gpu_ram>=24' -o dph_total --label demo || exit 1
sleep 3

step "List instances" ferry instances
"$ferry" instances || exit 1

step "Destroy it and confirm it is gone" ferry destroy --label ferry-demo
"$ferry" destroy --label ferry-demo || exit 1

step "The simulator's ledger: what was rented, billed and destroyed" \
  "curl -s \$VAST_URL/sim/ledger"
curl -s "$url/sim/ledger" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for i in d["instances"]:
    print("instance %s  %-12s %-10s billed %.0f s, $%.4f" % (i["id"], i["label"], i["state"], i["billed_seconds"], i["billed_usd"]))
print("live instances: %d" % d["live"])' || exit 1

# --- remote execution, rehearsed on this machine -------------------------------
target="local:$work/remote"
step "Push the dataset to a target (here: this machine) and verify it there" \
  ferry remote push --target local:remote --job demo dataset.tar
"$ferry" remote push --target "$target" --job demo "$work/dataset.tar" || exit 1

step "Render ai-toolkit's config from a recipe: absolute paths in the job, prompts from the captions" \
  ferry recipe render flux-schnell-lora --job demo --name demo_lora --steps 12 \
  --save-every 4 --sample-every 6 --captions fixed -o config.json
"$ferry" --set remote.root="$work/remote" recipe render flux-schnell-lora --job demo \
  --name demo_lora --steps 12 --save-every 4 --sample-every 6 --captions "$work/fixed" \
  -o "$work/config.json" || exit 1
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; p=c["process"][0]
print("lr %s, %s, %s, alpha %s; dataset %s" % (p["train"]["lr"], p["train"]["noise_scheduler"],
      p["train"]["optimizer"], p["network"]["linear_alpha"], p["datasets"][0]["folder_path"]))
for q in p["sample"]["prompts"]: print("  sample prompt:", q)' "$work/config.json" || exit 1

step "Start the trainer detached under ferry's supervisor (the ai-toolkit stand-in)" \
  ferry remote launch --target local:remote --job demo --config config.json \
  -- python3 examples/trainer/run.py config.json
"$ferry" remote launch --target "$target" --job demo --config "$work/config.json" \
  -- python3 "$top/examples/trainer/run.py" config.json || exit 1

step "Follow its log until it ends" ferry remote logs --target local:remote --job demo -f
"$ferry" remote logs --target "$target" --job demo -f | tail -n 8 || exit 1

step "Its state" ferry remote status --target local:remote --job demo
"$ferry" remote status --target "$target" --job demo || exit 1

step "Bring the outputs home, each file verified" \
  ferry remote pull --target local:remote --job demo -o outputs
"$ferry" remote pull --target "$target" --job demo -o "$work/outputs" || exit 1
(cd "$work/outputs" && find . -path ./.ferry-pulled -prune -o -name '*.safetensors' -print | sort)

step "Read the trainer's log as ferry does: phase, progress, checkpoints, failure" \
  ferry recipe scan-log train.log
"$ferry" recipe scan-log "$work/remote/demo/train.log" || exit 1

step "What came out: checkpoints, the final LoRA, samples, what a resume needs" \
  ferry recipe outputs outputs
"$ferry" recipe outputs "$work/outputs" || exit 1

step "Publish it to the artifact store (a folder here; R2/S3 with --store s3)" \
  ferry publish outputs/demo_lora --prefix jobs/demo
"$ferry" publish "$work/outputs/demo_lora" --prefix jobs/demo | tail -n 1; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for f in d["files"]:
    if "/samples/" not in f["key"]: print("  %-42s %7d  sha256 %s…" % (f["key"], f["size"], f["sha256"][:16]))
print("  and %d sample images; never published: %s" % (sum("/samples/" in f["key"] for f in d["files"]),
      ", ".join(s["path"] for s in d["skipped"])))' "$work/state/ferry/artifacts/jobs/demo/result.json" || exit 1

cat <<'MSG'

That is the dataset pipeline, the market, remote execution, trainer recipes
and publishing. The job queue that ties them together on rented machines is
not built yet: it comes with the next part of ferry.
MSG
