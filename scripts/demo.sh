#!/usr/bin/env bash
# `make demo`: the dataset pipeline on examples/dataset, the market against
# ferry sim, and a training round on this machine (recipe, push, launch,
# logs, pull, scan, publish), then the whole loop as one `ferry train`, all
# in a scratch folder. Every command is
# printed exactly as it is run, from that folder, with ferry on PATH.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PATH="$top/build:$PATH"
cd "$work" || exit 1
ln -s "$top/examples" examples
# Keep the demo's caches out of the user's own.
export XDG_CACHE_HOME="$work/cache" XDG_STATE_HOME="$work/state" XDG_CONFIG_HOME="$work/config"

title() { printf '\n\033[1m== %s\033[0m\n' "$1"; }
# show CMD...: print a command as a shell would read it back (a lone |,
# &&, & or >FILE is shell syntax, printed as is).
show() {
	local w out='$'
	for w in "$@"; do
		if [[ $w =~ ^[A-Za-z0-9_./:=,@%+-]+$ || $w =~ ^(\||&&|&|\>[a-z.]+)$ ]]; then out+=" $w"
		elif [[ $w != *"'"* ]]; then out+=" '$w'"
		else out+=" $(printf '%q' "$w")"; fi
	done
	printf '%s\n' "$out"
}
# run CMD...: show it, then run it.
run() { show "$@"; "$@"; }
# must CMD...: show it, run it, stop the demo if it fails.
must() { run "$@" || { echo "demo: failed: $*" >&2; exit 1; }; }

title "Check the example dataset (warnings are expected)"
run ferry dataset check examples/dataset --trigger ohwx
echo "(exit status $?)"

title "Repair it into a copy: captions, trigger word, sizes, colour"
must ferry dataset fix examples/dataset -o fixed --trigger ohwx --default-caption "a photo of [trigger]"

title "Check the repaired copy"
must ferry dataset check fixed --trigger ohwx

title "Pack it: deterministic tar named by its SHA-256, with a manifest"
must ferry dataset pack fixed -o dataset.tar

title "Pack again: the cached archive is reused"
must ferry dataset pack fixed

title "Unpack and verify every file against the manifest"
must ferry dataset unpack dataset.tar unpacked

title "What a GPU host with only coreutils does: plain tar, then sha256sum -c"
must mkdir plain
must tar -xf dataset.tar -C plain
show cd plain '&&' sha256sum -c --quiet --strict SHA256SUMS
(cd plain && sha256sum -c --quiet --strict SHA256SUMS) &&
  echo "all $(grep -c . plain/SHA256SUMS) files match SHA256SUMS" || exit 1

# --- the market, rehearsed against ferry sim ---------------------------------
# The sim's instances answer SSH on a real sshd on 127.0.0.1 (as root, as
# Vast's do), so that ferry train can run a whole job on "Vast" below.
sshd_port=
sshd_pid=
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	title "Start an sshd on 127.0.0.1 to stand in for the instances' SSH"
	mkdir -p sshd /run/sshd && chmod 700 sshd
	ssh-keygen -q -t ed25519 -N '' -f sshd/host_ed25519 </dev/null >/dev/null || exit 1
	: >sshd/authorized_keys && chmod 600 sshd/authorized_keys
	sshd_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >sshd/config <<CFG
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $work/sshd/host_ed25519
AuthorizedKeysFile $work/sshd/authorized_keys
PidFile $work/sshd/pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 50
MaxSessions 50
CFG
	show /usr/sbin/sshd -D -e -f sshd/config '&'
	/usr/sbin/sshd -D -e -f sshd/config </dev/null >sshd/log 2>&1 &
	sshd_pid=$!
fi
title "Start ferry sim, a simulated Vast.ai API (nothing is spent)"
simargs=(--listen 127.0.0.1:0 --api-key demo-key --boot-seconds 2 --seed 4)
[ -z "$sshd_port" ] || simargs+=(--ssh-endpoint "127.0.0.1:$sshd_port")
show ferry sim "${simargs[@]}" '>sim.log' '&'
ferry sim "${simargs[@]}" >sim.log 2>&1 &
sim=$!
trap 'kill $sim $sshd_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q 'listening on' sim.log && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' sim.log | head -1)
[ -n "$url" ] || { cat sim.log; exit 1; }
show export VAST_URL="$url" VAST_API_KEY=demo-key
export VAST_URL=$url VAST_API_KEY=demo-key

title "Make an SSH key for instances, and look at the account"
must ferry keys init
# What Vast does with the account's key: the instances accept it.
[ -z "$sshd_port" ] || cat config/ferry/ssh/id_ed25519.pub >>sshd/authorized_keys || exit 1
must ferry whoami

title "Rank offers by the cost of the whole job, not \$/hour"
must ferry offers --rank --recipe flux-dev-lora --steps 2000 --dataset fixed --top 5

title "Rent the first 24 GB offer that can be had, cheapest first"
must ferry rent --best 'gpu_ram>=24' -o dph_total --label demo
sleep 3

title "List instances"
must ferry instances

title "Destroy it, by the label it was rented with, and confirm it is gone"
must ferry destroy --label demo

title "The simulator's ledger: what was rented, billed and destroyed"
show curl -s "$url/sim/ledger"
curl -s "$url/sim/ledger" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for i in d["instances"]:
    print("instance %s  %-12s %-10s billed %.0f s, $%.4f" % (i["id"], i["label"], i["state"], i["billed_seconds"], i["billed_usd"]))
print("live instances: %d" % d["live"])
sys.exit(1 if d["live"] else 0)' || { echo "demo: an instance is still live" >&2; exit 1; }

# --- remote execution, rehearsed on this machine -------------------------------
title "One setting says where job folders live on a target: remote.root"
show export FERRY_REMOTE_ROOT="$work/remote"
export FERRY_REMOTE_ROOT=$work/remote

title "Push the dataset to a target (here: this machine, under remote.root) and verify it there"
must ferry remote push --target local --job demo dataset.tar

title "Render ai-toolkit's config from a recipe: paths in the job folder, prompts from the captions"
must ferry recipe render flux-schnell-lora --job demo --name demo_lora --steps 12 \
  --save-every 4 --sample-every 6 --captions fixed -o config.json
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; p=c["process"][0]
print("lr %s, %s, %s, alpha %s; dataset %s" % (p["train"]["lr"], p["train"]["noise_scheduler"],
      p["train"]["optimizer"], p["network"]["linear_alpha"], p["datasets"][0]["folder_path"]))
for q in p["sample"]["prompts"]: print("  sample prompt:", q)' config.json || exit 1

title "Start the trainer detached under ferry's supervisor (the ai-toolkit stand-in)"
must ferry remote launch --target local --job demo --config config.json \
  -- python3 "$top/examples/trainer/run.py" config.json

title "Follow its log until it ends"
show ferry remote logs --target local --job demo -f '|' tail -n 8
ferry remote logs --target local --job demo -f | tail -n 8; [ "${PIPESTATUS[0]}" = 0 ] || exit 1

title "Its state"
must ferry remote status --target local --job demo

title "Bring the outputs home, each file verified"
must ferry remote pull --target local --job demo -o outputs
(cd outputs && find . -path ./.ferry-pulled -prune -o -name '*.safetensors' -print | sort)

title "Read the trainer's log as ferry does: phase, progress, checkpoints, failure"
must ferry recipe scan-log remote/demo/train.log

title "What came out: checkpoints, the final LoRA, samples, what a resume needs"
must ferry recipe outputs outputs

title "Publish it to the artifact store (a folder here; R2/S3 with --store s3)"
show ferry publish outputs/demo_lora --prefix jobs/demo '|' tail -n 1
ferry publish outputs/demo_lora --prefix jobs/demo | tail -n 1; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for f in d["files"]:
    if "/samples/" not in f["key"]: print("  %-42s %7d  sha256 %s…" % (f["key"], f["size"], f["sha256"][:16]))
print("  and %d sample images; never published: %s" % (sum("/samples/" in f["key"] for f in d["files"]),
      ", ".join(s["path"] for s in d["skipped"])))' state/ferry/artifacts/jobs/demo/result.json || exit 1

# --- the whole loop as one command --------------------------------------------
title "The whole loop as one command: ferry train (here on this machine, with the stand-in)"
show export FERRY_TRAINER_COMMAND="python3 $top/examples/trainer/run.py"
export FERRY_TRAINER_COMMAND="python3 $top/examples/trainer/run.py"
trap 'kill $(cat "$work/state/ferry/worker.lock" 2>/dev/null) $sim $sshd_pid 2>/dev/null; rm -rf "$work"' EXIT
must ferry train fixed --provider local --recipe flux-schnell-lora --steps 12 \
  --param save-every=4 --param sample-every=6 --name demo

title "The queue remembers it: its state, instance, cost and artifacts"
must ferry jobs --all
job=$(ferry jobs --all --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])') || exit 1
show ferry show "$job" --json '|' python3 ...
ferry show "$job" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)
print("  %s %s, cost $%.2f, %d artifacts, %d published" % (d["id"], d["state"], d["cost_usd"],
      len(d["artifacts"]), sum(1 for a in d["artifacts"] if a.get("url"))))
for i in d["instances"]: print("  instance %s on %s, released: %s" % (i.get("label"), i["provider"], bool(i["destroyed_at"])))
sys.exit(0 if d["state"] == "SUCCEEDED" else 1)' || { echo "demo: the job did not succeed" >&2; exit 1; }

# --- the whole loop on "Vast": the sim, its instances on the local sshd ------
if [ -z "$sshd_port" ]; then
	cat <<'MSG'

(The same job on Vast, rehearsed against ferry sim, needs root and an sshd:
the sim's instances are reached as root@, as Vast's are. Skipped here.)
MSG
	exit 0
fi
title "The same job on Vast.ai, rehearsed: ranked, rented, booted, trained, published, destroyed"
must ferry train fixed --provider vast --recipe flux-schnell-lora --steps 12 \
  --param save-every=4 --param sample-every=6 --name demo-vast
job=$(ferry jobs --all --json | python3 -c 'import json,sys; print([j["id"] for j in json.load(sys.stdin) if j.get("name") == "demo-vast"][0])') || exit 1
show ferry show "$job" --json '|' python3 ...
ferry show "$job" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)
print("  %s %s, cost $%.4f, %d artifacts published" % (d["id"], d["state"], d["cost_usd"],
      sum(1 for a in d["artifacts"] if a.get("url"))))
for i in d["instances"]: print("  instance %s (offer %s, $%.3f/h) destroyed: %s" % (i["id"], i.get("offer_id"), i.get("dph") or 0, bool(i["destroyed_at"])))
sys.exit(0 if d["state"] == "SUCCEEDED" else 1)' || { echo "demo: the Vast job did not succeed" >&2; exit 1; }

title "The simulator's ledger at the end: nothing left running"
curl -s "$url/sim/ledger" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for i in d["instances"]:
    print("instance %s  %-32s %-10s billed %.0f s, $%.4f" % (i["id"], i["label"], i["state"], i["billed_seconds"], i["billed_usd"]))
print("live instances: %d" % d["live"])
sys.exit(1 if d["live"] else 0)' || { echo "demo: an instance is still live" >&2; exit 1; }

cat <<'MSG'

That is the dataset pipeline, the market, remote execution, trainer recipes,
publishing, and ferry train, which joins them, here and on (simulated) Vast.ai:
on the real one it is the same command with VAST_API_KEY set.
MSG
