#!/usr/bin/env bash
# `ferry dataset check` on generated datasets: valid ones, each kind of
# corruption, every warning, hostile names, and the JSON report.
. "$(dirname "$0")/lib.sh"
require_cmd convert cwebp exiftool python3

gen() { bash "$GEN_DATASET" "$@" >/dev/null; }

# codes PATH: "severity:code" of every finding for PATH in the last JSON report.
codes() {
	json_get "$T_OUT" "' '.join(sorted(f['severity']+':'+f['code'] for f in d['findings'] if f['path']==$(printf '%s' "$1" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')))"
}

gen valid "$tmpdir/valid"
t_ok "a valid dataset is ready" "$FERRY" dataset check "$tmpdir/valid" --json
t_eq "ready" "$(json_get "$T_OUT" .ready)" true
t_eq "12 images" "$(json_get "$T_OUT" .images)" 12
t_eq "12 captioned" "$(json_get "$T_OUT" .captioned)" 12
t_eq "no findings" "$(json_get "$T_OUT" 'len(d["findings"])')" 0
t_eq "trigger from dataset_info.json" "$(json_get "$T_OUT" .trigger)" ohwx
want_bytes=$(find "$tmpdir/valid" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
t_eq "bytes counts every packed file" "$(json_get "$T_OUT" .bytes)" "$want_bytes"
t_ok "human output" "$FERRY" dataset check "$tmpdir/valid"
t_match "summary line says ready" "$(cat "$T_OUT")" "12 images, 12 captioned.*0 errors, 0 warnings: ready"

t_fails "too few images for --min-images 13" 1 "$FERRY" dataset check "$tmpdir/valid" --min-images 13 --json
t_eq "too_few_images" "$(codes "")" "error:too_few_images"
t_fails "too many for --max-images 5" 1 "$FERRY" dataset check "$tmpdir/valid" --max-images 5 --json
t_eq "too_many_images" "$(codes "")" "error:too_many_images"
t_ok "a trigger nobody uses" "$FERRY" dataset check "$tmpdir/valid" --trigger zzq --json
t_eq "every caption lacks it" "$(json_get "$T_OUT" 'sum(f["code"]=="missing_trigger" for f in d["findings"])')" 12
t_ok "a higher resolution" "$FERRY" dataset check "$tmpdir/valid" --resolution 2048 --json
t_eq "every image is small for it" "$(json_get "$T_OUT" 'sum(f["code"]=="small_image" for f in d["findings"])')" 12

# Each kind of damage is an error naming the file; the rest stays usable.
for spec in corrupt-truncated:broken.jpg:corrupt_image corrupt-zero:empty.png:empty_file \
	corrupt-crc:badcrc.png:corrupt_image corrupt-mismatch:notreally.jpg:wrong_extension \
	bomb:bomb.png:decompression_bomb non-utf8:latin.txt:caption_not_utf8 \
	symlink-out:outside.jpg:symlink_outside; do
	IFS=: read -r kind file code <<<"$spec"
	gen "$kind" "$tmpdir/$kind"
	t_fails "$kind: not ready" 1 "$FERRY" dataset check "$tmpdir/$kind" --json
	t_eq "$kind: $file is $code" "$(codes "$file")" "error:$code"
	t_eq "$kind: the valid images still count" "$(json_get "$T_OUT" .images)" \
		"$([ "$kind" = non-utf8 ] && echo 13 || echo 12)"
done
t_match "the CRC error says so" "$("$FERRY" dataset check "$tmpdir/corrupt-crc" | grep badcrc)" "(CRC|crc|checksum)"
t_match "the bomb is caught from its header" \
	"$("$FERRY" dataset check "$tmpdir/bomb" | grep bomb.png)" "200000"

gen ctrl-name "$tmpdir/ctrl"
t_fails "control characters in names: not ready" 1 "$FERRY" dataset check "$tmpdir/ctrl" --json
t_eq "four bad names (images and captions), escaped" \
	"$(json_get "$T_OUT" '" ".join(sorted(f["path"] for f in d["findings"] if f["code"]=="bad_name"))')" \
	'ctrl\x01char.jpg ctrl\x01char.txt new\x0aline.jpg new\x0aline.txt'

# Warnings do not stop a dataset from being ready.
gen warnings "$tmpdir/warn"
t_ok "warnings only: ready" "$FERRY" dataset check "$tmpdir/warn" --json
for spec in nocap.jpg:missing_caption emptycap.txt:empty_caption orphan.txt:orphan_caption \
	notrigger.txt:missing_trigger img_001.jpg:duplicate_image alpha.png:alpha_channel \
	cmyk.jpg:cmyk gray.jpg:grayscale deep16.png:high_bit_depth \
	rotated.jpg:exif_orientation anim.webp:animated_image large.png:large_file; do
	IFS=: read -r file code <<<"$spec"
	t_match "$file: $code" "$(codes "$file")" "warning:$code"
done
t_eq "small.jpg: small_image only" "$(codes small.jpg)" "warning:small_image"
t_eq "dup.jpg (first in path order) is kept without a finding" "$(codes dup.jpg)" ""
t_match "the duplicate names the one kept" "$(json_get "$T_OUT" '[f["message"] for f in d["findings"] if f["code"]=="duplicate_image"][0]')" "dup.jpg"
t_eq "no errors" "$(json_get "$T_OUT" .errors)" 0
t_eq "every finding has a message" "$(json_get "$T_OUT" 'all(len(f["message"])>10 for f in d["findings"])')" true

# Hostile names are just names.
gen hostile-names "$tmpdir/hostile"
(cd "$tmpdir" && t_ok "hostile names: ready" "$FERRY" dataset check "$tmpdir/hostile" --json)
t_eq "18 images" "$(json_get "$T_OUT" .images)" 18
t_eq "all captioned" "$(json_get "$T_OUT" .captioned)" 18
t_no_file "nothing was executed" "$tmpdir/x"

# Junk is skipped.
gen junk "$tmpdir/junk"
t_ok "junk is skipped" "$FERRY" dataset check "$tmpdir/junk" --json
t_eq "still 12 images, no findings" "$(json_get "$T_OUT" '[d["images"], len(d["findings"])]')" "[12,0]"

# An unreadable subfolder is an error, not a crash (root ignores permissions,
# so drop to nobody when we are root).
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
	cp -r "$tmpdir/valid" "$tmpdir/perm"
	mkdir "$tmpdir/perm/locked"
	# nobody may not reach the build tree (CI's checkout can sit under /root).
	cp "$FERRY" "$tmpdir/ferry-for-nobody"
	chmod -R a+rX "$tmpdir"
	chmod 000 "$tmpdir/perm/locked"
	t_fails "an unreadable folder: not ready" 1 runuser -u nobody -- env XDG_CACHE_HOME="$tmpdir/nobody" "$tmpdir/ferry-for-nobody" dataset check "$tmpdir/perm" --json
	t_eq "unreadable_dir" "$(codes locked)" "error:unreadable_dir"
else
	t_skip "an unreadable folder" "needs root and runuser"
	t_skip "unreadable_dir" "needs root and runuser"
fi

# Both cores: the same report with one thread and with two.
t_ok "one thread" "$FERRY" --set threads=1 dataset check "$tmpdir/warn" --json
one=$(cat "$T_OUT")
t_ok "two threads" "$FERRY" --set threads=2 dataset check "$tmpdir/warn" --json
t_eq "same report" "$(cat "$T_OUT")" "$one"

done_testing
