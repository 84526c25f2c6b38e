#!/usr/bin/env bash
# `make demo`: the dataset pipeline on examples/dataset, in a scratch folder.
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

step "Start the trainer detached under ferry's supervisor (the ai-toolkit stand-in)" \
  ferry remote launch --target local:remote --job demo --config example-config.json \
  -- python3 examples/trainer/run.py config.json
"$ferry" remote launch --target "$target" --job demo \
  --config "$top/examples/trainer/example-config.json" \
  -- python3 "$top/examples/trainer/run.py" config.json || exit 1

step "Follow its log until it ends" ferry remote logs --target local:remote --job demo -f
"$ferry" remote logs --target "$target" --job demo -f | tail -n 8 || exit 1

step "Its state" ferry remote status --target local:remote --job demo
"$ferry" remote status --target "$target" --job demo || exit 1

step "Bring the outputs home, each file verified" \
  ferry remote pull --target local:remote --job demo -o outputs
"$ferry" remote pull --target "$target" --job demo -o "$work/outputs" || exit 1
(cd "$work/outputs" && find . -path ./.ferry-pulled -prune -o -name '*.safetensors' -print | sort)

cat <<'MSG'

That is the dataset pipeline, the market and remote execution. Recipes that
render ai-toolkit configs, publishing to R2/S3 and the job queue that ties
them together are not built yet: they come with the next parts of ferry.
MSG
