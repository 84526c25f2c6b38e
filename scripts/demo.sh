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

cat <<'MSG'

That is the dataset pipeline. Renting a GPU, training, collecting checkpoints
and publishing are not built yet: they come with the next parts of ferry.
MSG
