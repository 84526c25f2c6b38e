#!/usr/bin/env bash
# ferry remote push DIR: given a dataset folder instead of an archive, push
# checks and packs it (ds_check_and_pack, as `ferry dataset pack` does) into
# the job's local state, STATE_DIR/remote/TARGET/JOB/dataset.tar, and pushes
# that archive; over the local transport and a real sshd. The same folder
# again reuses the archive and sends nothing; a folder with errors is refused
# before anything reaches the target.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
require_cmd python3 tar sha256sum

cd "$tmpdir" || exit 1
bash "$GEN_DATASET" valid ds 12 512x512 >/dev/null || skip_all "gen_dataset failed"
bash "$GEN_DATASET" corrupt-truncated bad 12 512x512 >/dev/null || skip_all "gen_dataset failed"
mkdir -p "$XDG_CONFIG_HOME/ferry"
printf 'dataset.resolution = 512\n' >"$XDG_CONFIG_HOME/ferry/config"
"$FERRY" dataset pack ds -o ref.tar >/dev/null || skip_all "pack failed"
sha=$(sha256sum ref.tar | cut -d' ' -f1)

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# suite NAME TARGET ROOT: ROOT is where the target keeps job roots, as this
# machine sees it.
suite() {
	local name=$1 target=$2 root=$3 job="folder job" archive

	t_ok "$name: push a dataset folder" "$FERRY" remote push --target "$target" --job "$job" ds --json
	# (push counts manifest.json and SHA256SUMS too)
	t_eq "$name: packed and pushed, the archive's SHA-256 both times" \
		"$(pyq "$T_OUT" '(d["pack"]["sha256"], d["sha256"], d["already"], d["pack"]["files"], d["files"])')" \
		"('$sha', '$sha', False, 25, 27)"
	archive=$(pyq "$T_OUT" 'd["pack"]["archive"]')
	t_match "$name: the archive is in the job's local state" "$archive" \
		"^$XDG_STATE_HOME/ferry/remote/[^/]+/$job/dataset\.tar$"
	t_eq "$name: ... the same bytes as dataset pack makes" "$(sha256sum "$archive" | cut -d' ' -f1)" "$sha"
	t_ok "$name: the dataset verifies there" sh -c 'cd "$1/dataset" && sha256sum -c --quiet SHA256SUMS' sh "$root/$job"
	t_eq "$name: every file of the folder is there" \
		"$(cd ds && find . -type f | LC_ALL=C sort)" \
		"$(cd "$root/$job/dataset" && find . -type f ! -name manifest.json ! -name SHA256SUMS ! -name .ferry-archive-sha256 | LC_ALL=C sort)"

	t_ok "$name: push the folder again" "$FERRY" remote push --target "$target" --job "$job" ds --json
	t_eq "$name: the archive reused, nothing sent" \
		"$(pyq "$T_OUT" '(d["pack"]["reused"], d["already"], d["sent"])')" "(True, True, 0)"

	t_ok "$name: without --json" "$FERRY" remote push --target "$target" --job "$job" ds
	t_match "$name: says what was packed and pushed" "$(cat "$T_OUT")" \
		"^packed .*/dataset\.tar: 25 files, [0-9]+ bytes \(reused\)"$'\n'"already there: 27 files"

	t_fails "$name: a folder with errors is refused" 1 "$FERRY" remote push --target "$target" --job bad bad
	t_match "$name: the errors are listed" "$(cat "$T_ERR")" "corrupt_image +broken\.jpg"
	t_match "$name: the way out is named" "$(cat "$T_ERR")" "dataset pack --force"
	t_no_file "$name: nothing reached the target" "$root/bad/dataset"
	t_eq "$name: no archive in the job's state" \
		"$(find "$XDG_STATE_HOME/ferry/remote" -path '*/bad/dataset.tar' | wc -l)" 0

	t_fails "$name: neither a folder nor an archive" 1 "$FERRY" remote push --target "$target" --job x "$tmpdir/nope"
}

suite local "local:$tmpdir/lroot" "$tmpdir/lroot"

# The bar: packing, then uploading, on a terminal only.
if command -v script >/dev/null; then
	rm -rf "$XDG_CACHE_HOME/ferry/datasets"
	t_ok "push DIR on a terminal" script -qec "$(printf '%q ' "$FERRY" remote push --target "local:$tmpdir/tty" --job j ds)" /dev/null
	t_match "shows packing, then uploading, each to 100 %" "$(tr '\r' '\n' <"$T_OUT")" \
		"packing +100\.0% .*"$'\n'".*uploading +100\.0% "
fi

sshd_start || exit 1
export VASTAI_SSH_KEY_PATH=$SSHD_KEY FERRY_REMOTE_ROOT=$tmpdir/sroot
suite ssh "$SSHD_TARGET" "$tmpdir/sroot"

done_testing
