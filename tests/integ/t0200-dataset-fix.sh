#!/usr/bin/env bash
# `ferry dataset fix`: a dataset with every warning and several errors comes
# out ready; originals stay byte-identical; each repair is visible with
# ImageMagick's identify; dry run writes nothing; in place keeps what it
# replaced under .ferry-removed; refusals and exit codes.
. "$(dirname "$0")/lib.sh"
require_cmd convert cwebp exiftool python3 identify sha256sum

gen() { bash "$GEN_DATASET" "$@" >/dev/null; }
cd "$tmpdir" || exit 1

# fmt FILE FORMAT: identify's answer for the first frame.
fmt() { identify -format "$2" "$1[0]" 2>&1; }
# action PATH CODE [FILE]: how many CODE actions name PATH in a JSON report
# (default: the last command's output).
action() {
	json_get "${3:-$T_OUT}" "sum(1 for a in d['actions'] if a['path']==$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1") and a['action']=='$2')"
}
tree_sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# Warnings of every kind, plus errors: truncated, empty, bomb, PNG named
# .jpg, Latin-1 caption, a control character in a caption's whitespace.
ds=$tmpdir/ds
gen warnings "$ds" 12 512x512
for kind in corrupt-truncated:broken corrupt-zero:empty corrupt-mismatch:notreally \
	bomb:bomb non-utf8:latin; do
	gen "${kind%%:*}" "$tmpdir/k-${kind%%:*}" 12 512x512
	cp -- "$tmpdir/k-${kind%%:*}/${kind#*:}".* "$ds/"
done
printf 'ohwx\tperson \r\n  on   a\r\nbeach\r\n' >"$ds/img_004.txt"
echo "notes" >"$ds/README.md"

t_fails "the input is not ready" 1 "$FERRY" dataset check "$ds" --json
t_ne "it has errors" "$(json_get "$T_OUT" .errors)" 0
t_ne "and warnings" "$(json_get "$T_OUT" .warnings)" 0
before=$(tree_sums "$ds")

t_ok "fix writes a ready copy" "$FERRY" dataset fix "$ds" -o "$tmpdir/out" --json \
	--max-side 1024 --resolution 384 --default-caption "a photo"
out=$tmpdir/out
t_eq "report: out" "$(json_get "$T_OUT" .out)" "$out"
t_eq "report: not a dry run" "$(json_get "$T_OUT" .dry_run)" false
t_eq "report: ready" "$(json_get "$T_OUT" .ready)" true
t_eq "report: the check of the result has no errors" "$(json_get "$T_OUT" .check.errors)" 0
t_eq "report: summary counts the actions" \
	"$(json_get "$T_OUT" 'sum(d["summary"].values())==len(d["actions"])')" true
t_eq "every action has path and action" \
	"$(json_get "$T_OUT" 'all(a["path"] and a["action"] for a in d["actions"])')" true
cp "$T_OUT" "$tmpdir/fix.json"
t_eq "the original is byte-identical" "$(tree_sums "$ds")" "$before"
t_ok "check passes on the result" "$FERRY" dataset check "$out" --resolution 384 --json
t_eq "no warnings but small.jpg (fix never upscales)" \
	"$(json_get "$T_OUT" '" ".join(sorted(f["code"]+":"+f["path"] for f in d["findings"]))')" \
	"small_image:small.jpg"
t_no_file "no temporary folder left" "$(ls -d "$out".tmp-* 2>/dev/null | head -n1)"

# Images, one repair each.
t_eq "rotated.jpg was 512x384 with orientation 6" "$(fmt "$ds/rotated.jpg" '%wx%h %[orientation]')" \
	"512x384 RightTop"
t_eq "rotated.jpg is upright 384x512, no tag" "$(fmt "$out/rotated.jpg" '%wx%h %[orientation]')" \
	"384x512 Undefined"
t_eq "alpha.png had alpha" "$(fmt "$ds/alpha.png" '%A')" "True"
t_eq "alpha.png has none" "$(fmt "$out/alpha.png" '%A')" "False"
t_eq "alpha.png became white where it was transparent" \
	"$(convert "$out/alpha.png" -crop 1x1+511+511 -depth 8 txt:- | grep -o '#[0-9A-F]\{6\}')" "#FFFFFF"
t_eq "cmyk.jpg was CMYK" "$(fmt "$ds/cmyk.jpg" '%[colorspace]')" "CMYK"
t_eq "cmyk.jpg is sRGB" "$(fmt "$out/cmyk.jpg" '%[colorspace]')" "sRGB"
t_eq "gray.jpg was one channel" "$(fmt "$ds/gray.jpg" '%[colorspace]')" "Gray"
t_eq "gray.jpg is sRGB" "$(fmt "$out/gray.jpg" '%[colorspace]')" "sRGB"
t_eq "deep16.png was 16-bit" "$(fmt "$ds/deep16.png" '%z')" 16
t_eq "deep16.png is 8-bit" "$(fmt "$out/deep16.png" '%z')" 8
t_eq "large.png was 4096x4096" "$(fmt "$ds/large.png" '%wx%h')" "4096x4096"
t_eq "large.png's longer side is --max-side" "$(fmt "$out/large.png" '%wx%h')" "1024x1024"
t_eq "anim.webp had 2 frames" "$(identify "$ds/anim.webp" | wc -l)" 2
t_eq "anim.webp has 1" "$(identify "$out/anim.webp" | wc -l)" 1
t_eq "re-encoded files carry no EXIF or profile" \
	"$(exiftool -q -q -EXIF:all -ICC_Profile:all "$out/rotated.jpg" "$out/anim.webp" "$out/cmyk.jpg" | wc -l)" 0
t_eq "an image that needed nothing is copied byte for byte" \
	"$(sha256sum <"$out/img_004.jpg")" "$(sha256sum <"$ds/img_004.jpg")"
t_eq "so is its format (still a WebP)" "$(fmt "$out/img_006.webp" '%m')" "WEBP"

# Dropped and renamed files.
t_eq "exactly one of the duplicates is left" \
	"$(find "$out" -type f -exec sha256sum {} + | grep -c "$(sha256sum <"$ds/dup.jpg" | cut -c1-64)")" 1
t_file "the first in path order (dup.jpg) is kept" "$out/dup.jpg"
t_no_file "img_001.jpg is dropped" "$out/img_001.jpg"
report=$tmpdir/fix.json
t_eq "reported as a duplicate" "$(action img_001.jpg dropped_duplicate "$report")" 1
for f in broken.jpg empty.png bomb.png; do
	t_no_file "$f is dropped" "$out/$f"
	t_eq "$f reported as dropped_corrupt" "$(action "$f" dropped_corrupt "$report")" 1
	t_no_file "and its caption" "$out/${f%.*}.txt"
done
t_no_file "notreally.jpg is not there" "$out/notreally.jpg"
t_eq "it is notreally.png, a PNG" "$(fmt "$out/notreally.png" '%m')" "PNG"
t_eq "reported as renamed" "$(action notreally.jpg renamed "$report")" 1
t_file "its caption follows the stem" "$out/notreally.txt"
t_no_file "orphan.txt is dropped" "$out/orphan.txt"
t_eq "reported" "$(action orphan.txt dropped_orphan_caption "$report")" 1
t_no_file "README.md is not copied" "$out/README.md"
t_eq "dataset_info.json is copied as is" "$(cat "$out/dataset_info.json")" "$(cat "$ds/dataset_info.json")"

# Captions.
t_eq "latin.txt is now UTF-8" "$(cat "$out/latin.txt")" "une photo de ohwx à la plage, été, café crème"
t_eq "reported as converted" "$(action latin.txt caption_converted_utf8 "$report")" 1
t_eq "img_004.txt: whitespace tidied" "$(cat "$out/img_004.txt")" "ohwx person on a beach"
t_eq "one line, LF-terminated" "$(wc -l <"$out/img_004.txt") $(tail -c 1 "$out/img_004.txt" | od -An -tx1 | tr -d ' ')" "1 0a"
t_eq "reported as normalized" "$(action img_004.txt caption_normalized "$report")" 1
t_eq "notrigger.txt gets the trigger in front" "$(cat "$out/notrigger.txt")" \
	"ohwx, a photo of a person standing in a field"
t_eq "reported" "$(action notrigger.txt trigger_inserted "$report")" 1
t_eq "nocap.jpg gets the default caption (with the trigger)" "$(cat "$out/nocap.txt")" "ohwx, a photo"
t_eq "emptycap.jpg too" "$(cat "$out/emptycap.txt")" "ohwx, a photo"
t_eq "captions that were fine are copied as they were" \
	"$(sha256sum <"$out/img_005.txt")" "$(sha256sum <"$ds/img_005.txt")"

# Human output.
t_ok "human report" "$FERRY" dataset fix "$ds" -o "$tmpdir/out-human" --max-side 1024 --resolution 384
t_match "one line per action" "$(cat "$T_OUT")" $'\nrotated +rotated.jpg: EXIF orientation 6'
t_match "the summary" "$(cat "$T_OUT")" "fixed:.*[0-9]+ copied"
t_match "and the check of the result" "$(cat "$T_OUT")" "out-human: [0-9]+ images.*: ready"
t_match "a missing caption without a default is reported" "$(cat "$T_OUT")" "caption_missing +nocap.jpg"

# Dry run: nothing written, the plan reported.
t_ok "dry run" "$FERRY" dataset fix "$ds" -o "$tmpdir/dry" --dry-run --json --max-side 1024
t_no_file "no output folder" "$tmpdir/dry"
t_eq "no temporary folder" "$(ls -d "$tmpdir"/dry.tmp-* 2>/dev/null | wc -l)" 0
t_eq "dry_run in the report" "$(json_get "$T_OUT" .dry_run)" true
t_eq "the plan has the resize" "$(action large.png resized)" 1
t_match "with the size it would have" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="resized"][0]')" "1024x1024"
t_eq "no check without a result" "$(json_get "$T_OUT" '"check" in d')" false
t_eq "the original is still byte-identical" "$(tree_sums "$ds")" "$before"

# Refusals: never overwrite, never write into the dataset.
mkdir "$tmpdir/full" && echo keep >"$tmpdir/full/keep.txt"
t_fails "a non-empty output folder is refused" 2 "$FERRY" dataset fix "$ds" -o "$tmpdir/full"
t_match "saying why" "$(cat "$T_ERR")" "not empty"
t_eq "and left as it was" "$(ls -A "$tmpdir/full")" "keep.txt"
mkdir "$tmpdir/empty"
t_ok "an empty output folder is fine" "$FERRY" dataset fix "$ds" -o "$tmpdir/empty" --max-side 1024
t_file "and filled" "$tmpdir/empty/dup.jpg"
t_fails "an output inside the dataset is refused" 2 "$FERRY" dataset fix "$ds" -o "$ds/fixed"
t_no_file "nothing created there" "$ds/fixed"
t_fails "no -o and no --in-place" 2 "$FERRY" dataset fix "$ds"
t_fails "-o and --in-place together" 2 "$FERRY" dataset fix "$ds" -o "$tmpdir/x1" --in-place
t_fails "a dataset that is not there" 2 "$FERRY" dataset fix "$tmpdir/nope" -o "$tmpdir/x2"
t_no_file "no output for it" "$tmpdir/x2"

# Fixed, but still not ready: exit 1.
gen valid "$tmpdir/few" 3 256x256
t_fails "three images are too few: exit 1" 1 "$FERRY" dataset fix "$tmpdir/few" -o "$tmpdir/few-out" --json
t_eq "the copy is written anyway" "$(find "$tmpdir/few-out" -name '*.jpg' -o -name '*.png' | wc -l)" 3
t_eq "and says why it is not ready" \
	"$(json_get "$T_OUT" '[f["code"] for f in d["check"]["findings"] if f["severity"]=="error"]')" \
	'["too_few_images"]'

# In place: replaced and dropped originals kept under .ferry-removed.
cp -a "$ds" "$tmpdir/ip"
ip=$tmpdir/ip
t_ok "in place" "$FERRY" dataset fix "$ip" --in-place --json --max-side 1024 --resolution 384 \
	--default-caption "a photo"
removed=$(json_get "$T_OUT" .removed)
t_match "originals go to .ferry-removed/<time>" "$removed" "^$ip/\.ferry-removed/[0-9]{8}T[0-9]{6}Z$"
t_eq "the replaced rotated.jpg is kept there, unchanged" \
	"$(sha256sum <"$removed/rotated.jpg")" "$(sha256sum <"$ds/rotated.jpg")"
t_eq "rotated.jpg in the dataset is the fixed one" "$(fmt "$ip/rotated.jpg" '%wx%h')" "384x512"
for f in broken.jpg empty.png bomb.png img_001.jpg orphan.txt notreally.jpg; do
	t_file "$f kept aside" "$removed/$f"
	t_no_file "$f gone from the dataset" "$ip/$f"
done
t_file "notreally.png is in the dataset" "$ip/notreally.png"
t_eq "the Latin-1 latin.txt is kept aside" "$(cmp "$removed/latin.txt" "$ds/latin.txt" && echo same)" same
t_eq "and replaced by its UTF-8 form" "$(cat "$ip/latin.txt")" "une photo de ohwx à la plage, été, café crème"
t_file "README.md is left alone" "$ip/README.md"
t_no_file "unchanged files are not moved" "$removed/img_004.jpg"
t_eq "unchanged files are untouched" "$(sha256sum <"$ip/img_004.jpg")" "$(sha256sum <"$ds/img_004.jpg")"
t_eq "no staging folder left" "$(ls -A "$ip" | grep -c '^\.ferry-fix')" 0
t_ok "the dataset now passes check" "$FERRY" dataset check "$ip" --resolution 384 --json
t_eq "removed files are not scanned" "$(json_get "$T_OUT" 'any(".ferry-removed" in f["path"] for f in d["findings"])')" false
t_ok "a second run in place" "$FERRY" dataset fix "$ip" --in-place --json --max-side 1024 --resolution 384
t_eq "has nothing to do" "$(json_get "$T_OUT" 'sorted(set(a["action"] for a in d["actions"]))')" '["kept","skipped"]'
t_eq "and moves nothing" "$(json_get "$T_OUT" .removed)" null

# Links inside the dataset: a kept link becomes a regular file. a.jpg ->
# real/x.jpg comes first in path order, so the link is the duplicate kept and
# real/x.jpg the one dropped; the link must not be left pointing at nothing.
gen valid "$tmpdir/ln" 12 256x256
ln_ds=$tmpdir/ln
mkdir "$ln_ds/real"
mv "$ln_ds/img_001.jpg" "$ln_ds/real/x.jpg"
mv "$ln_ds/img_001.txt" "$ln_ds/real/x.txt"
ln -s real/x.jpg "$ln_ds/a.jpg"
ln -s real/x.txt "$ln_ds/a.txt"
x_sum=$(sha256sum <"$ln_ds/real/x.jpg")
x_txt=$(cat "$ln_ds/real/x.txt")
t_ok "a copy of a dataset with links" "$FERRY" dataset fix "$ln_ds" -o "$tmpdir/ln-out" --json \
	--resolution 256
t_eq "a.jpg in the copy is a regular file" "$([ -f "$tmpdir/ln-out/a.jpg" ] && [ ! -L "$tmpdir/ln-out/a.jpg" ] && echo regular)" regular
t_eq "with the bytes it pointed to" "$(sha256sum <"$tmpdir/ln-out/a.jpg")" "$x_sum"
t_ok "in place, with links" "$FERRY" dataset fix "$ln_ds" --in-place --json --resolution 256
t_eq "ready" "$(json_get "$T_OUT" .ready)" true
t_eq "no broken link in the result" \
	"$(json_get "$T_OUT" '[f["code"] for f in d["check"]["findings"] if "symlink" in f["code"]]')" "[]"
t_match "the link is reported as written out" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["path"]=="a.jpg" and a["action"]=="copied"][0]')" \
	"symbolic link"
ln_removed=$(json_get "$T_OUT" .removed)
for f in a.jpg a.txt; do
	t_eq "$f is now a regular file" "$([ -f "$ln_ds/$f" ] && [ ! -L "$ln_ds/$f" ] && echo regular)" regular
	t_eq "the $f link itself is kept aside" "$([ -L "$ln_removed/$f" ] && echo link)" link
done
t_eq "a.jpg has the bytes it pointed to" "$(sha256sum <"$ln_ds/a.jpg")" "$x_sum"
t_eq "a.txt the caption" "$(cat "$ln_ds/a.txt")" "$x_txt"
t_file "the dropped duplicate is kept aside" "$ln_removed/real/x.jpg"
t_eq "no link left in the dataset" "$(find "$ln_ds" -path "$ln_ds/.ferry-removed" -prune -o -type l -print | wc -l)" 0
t_ok "the dataset passes check" "$FERRY" dataset check "$ln_ds" --resolution 256

# Hostile names are only names.
gen hostile-names "$tmpdir/hostile" 12 256x256
t_ok "hostile names" "$FERRY" dataset fix "$tmpdir/hostile" -o "$tmpdir/hostile-out" --resolution 384
for name in 'a b.jpg' '$(touch x).png' "it's \"quoted\".webp" 'ünïcødé 日本.jpg' '-dash.jpg' 'semi;colon.jpg'; do
	t_eq "$name copied intact" "$(sha256sum <"$tmpdir/hostile-out/$name")" "$(sha256sum <"$tmpdir/hostile/$name")"
done
t_no_file "nothing was executed" "$tmpdir/x"

done_testing
