#!/usr/bin/env bash
# Self-test of the integration test kit: lib.sh's TAP output and every kind
# gen_dataset.sh makes, plus the committed example data set.
# Single-quoted $ below is meant literally (scripts, hostile names).
# shellcheck disable=SC2016
# shellcheck source=tests/integ/lib.sh
. "$(dirname "$0")/lib.sh"

require_cmd convert identify cwebp exiftool python3 sha256sum

gen=$GEN_DATASET

# img_info FILE: identify's "format WxH colorspace depth alpha frames" of frame 0.
img_info() {
	identify -format '%m %wx%h %[colorspace] %z %A %n\n' "$1" 2>/dev/null | head -n 1
}

# tree_sums DIR: sha256 of every file under DIR, by relative path.
tree_sums() {
	(cd "$1" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# --- lib.sh itself -------------------------------------------------------------

cat >"$tmpdir/selftest.sh" <<'EOF'
. "$FERRY_SRC/tests/integ/lib.sh"
echo "# tmpdir=$tmpdir"
t_ok "true passes" true
t_ok "false fails" sh -c 'echo out-text; echo err-text >&2; exit 3'
t_fails "exit 3 is 3" 3 sh -c 'exit 3'
t_fails "exit 0 is not 3" 3 true
t_eq "eq" a a
t_eq "eq fails" a b
t_match "match" "hello world" '^hello'
t_file "file missing" "$tmpdir/nope"
t_no_file "no file" "$tmpdir/nope"
echo '{"a":{"b":[1,"two"]}}' >"$tmpdir/j.json"
t_eq "json path" "$(json_get "$tmpdir/j.json" '.a.b[1]')" two
t_eq "json expr" "$(json_get "$tmpdir/j.json" 'len(d["a"]["b"])')" 2
t_eq "xdg cache in tmpdir" "$XDG_CACHE_HOME" "$tmpdir/xdg/cache"
done_testing
EOF
t_fails "a script with failures exits 1" 1 bash "$tmpdir/selftest.sh"
out=$(cat "$T_OUT")
t_match "passing test prints ok" "$out" $'(^|\n)ok 1 - true passes\n'
t_match "failing test prints not ok" "$out" $'\nnot ok 2 - false fails\n'
t_match "failure shows exit status" "$out" $'#   exit status: 3, expected 0\n'
t_match "failure shows stdout" "$out" $'#     out-text\n'
t_match "failure shows stderr" "$out" $'#     err-text\n'
t_match "t_fails with wrong status fails" "$out" $'\nnot ok 4 - exit 0 is not 3\n'
t_match "t_eq shows got/expected" "$out" $'#   got:      \'a\'\n#   expected: \'b\''
t_match "plan printed at the end" "$out" $'\n1\\.\\.12\n'
t_match "failure count" "$out" '# failed 4 of 12 tests'
t_not_match "no failures for passing checks" "$out" 'not ok (1|3|5|7|9|10|11|12) '
child_tmp=$(sed -n 's/^# tmpdir=//p' "$T_OUT")
t_ne "child had a tmpdir" "$child_tmp" ""
t_no_file "child tmpdir removed on exit" "$child_tmp"

printf '%s\n' '. "$FERRY_SRC/tests/integ/lib.sh"' 't_ok "one" true' >"$tmpdir/nodone.sh"
t_fails "a script without done_testing fails" 255 bash "$tmpdir/nodone.sh"
printf '%s\n' '. "$FERRY_SRC/tests/integ/lib.sh"' 'plan 2' 't_ok "one" true' 'done_testing' >"$tmpdir/short.sh"
t_fails "a script running fewer tests than planned fails" 1 bash "$tmpdir/short.sh"
printf '%s\n' '. "$FERRY_SRC/tests/integ/lib.sh"' 'plan 1' 't_ok "one" true' 'done_testing' >"$tmpdir/good.sh"
t_ok "a passing script exits 0" bash "$tmpdir/good.sh"
t_eq "its output" "$(cat "$T_OUT")" $'1..1\nok 1 - one'

# --- valid -------------------------------------------------------------------------

start=$SECONDS
t_ok "valid generates" bash "$gen" valid "$tmpdir/valid"
diag "valid: $((SECONDS - start)) s"
v=$tmpdir/valid
expected="dataset_info.json
img_001.jpg
img_001.txt
img_003.png
img_003.txt
img_004.jpg
img_004.txt
img_005.jpg
img_005.txt
img_006.txt
img_006.webp
img_007.jpg
img_007.txt
img_008.jpg
img_008.txt
img_009.png
img_009.txt
img_010.jpg
img_010.txt
img_011.jpg
img_011.txt
img_012.txt
img_012.webp
sub/img_002.jpg
sub/img_002.txt"
t_eq "valid file list" "$(cd "$v" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)" "$expected"
bad=
for f in "$v"/img_*.* "$v"/sub/img_*.*; do
	case $f in
	*.txt) grep -q ohwx "$f" || bad+=" $f" ;;
	*.jpg) [ "$(img_info "$f")" = "JPEG 1024x1024 sRGB 8 False 1" ] || bad+=" $f:$(img_info "$f")" ;;
	*.png) [ "$(img_info "$f")" = "PNG 1024x1024 sRGB 8 False 1" ] || bad+=" $f:$(img_info "$f")" ;;
	*.webp) [ "$(img_info "$f")" = "WEBP 1024x1024 sRGB 8 False 1" ] || bad+=" $f:$(img_info "$f")" ;;
	esac
done
t_eq "valid images are 1024x1024 of their type, captions name ohwx" "$bad" ""
t_eq "caption text" "$(cat "$v/sub/img_002.txt")" "a photo of ohwx person, number 2"
t_eq "dataset_info trigger" "$(json_get "$v/dataset_info.json" '.triggerWords[0]')" ohwx
t_eq "dataset_info name" "$(json_get "$v/dataset_info.json" .name)" test
jpg_size=$(stat -c %s "$v/img_001.jpg")
t_ok "JPEGs are realistic in size (200-600 KB)" test "$jpg_size" -gt 200000 -a "$jpg_size" -lt 600000

t_ok "valid generates again" bash "$gen" valid "$tmpdir/valid2"
t_eq "valid is byte-identical across runs" "$(tree_sums "$tmpdir/valid2")" "$(tree_sums "$v")"

t_ok "COUNT and SIZE are honoured" bash "$gen" valid "$tmpdir/small" 3 320x240
t_eq "three images" "$(find "$tmpdir/small" -name 'img_*' ! -name '*.txt' | wc -l)" 3
t_eq "of SIZE" "$(img_info "$tmpdir/small/img_003.png")" "PNG 320x240 sRGB 8 False 1"

# The other kinds: small base sets keep this test quick.
kind() {
	local k=$1
	start=$SECONDS
	t_ok "$k generates" bash "$gen" "$k" "$tmpdir/$k/ds" "${@:2}"
	diag "$k: $((SECONDS - start)) s"
	d=$tmpdir/$k/ds
}

# --- corrupt ---------------------------------------------------------------------

kind corrupt-truncated 3 512x512
t_file "broken.jpg" "$d/broken.jpg"
t_file "broken.txt" "$d/broken.txt"
full=$(stat -c %s "$d/img_001.jpg")
t_eq "broken.jpg is half of img_001.jpg" "$(stat -c %s "$d/broken.jpg")" "$((full / 2))"
t_ok "broken.jpg is img_001.jpg's first half" cmp -n "$((full / 2))" "$d/broken.jpg" "$d/img_001.jpg"
t_ne "broken.jpg lacks the EOI marker" "$(tail -c 2 "$d/broken.jpg" | od -An -tx1 | tr -d ' ')" ffd9

kind corrupt-zero 3 512x512
t_file "empty.png" "$d/empty.png"
t_eq "empty.png has no bytes" "$(stat -c %s "$d/empty.png")" 0
t_file "empty.txt" "$d/empty.txt"

# png_chunks FILE: "TYPE LENGTH crc-ok|crc-bad" per chunk, and the IHDR size.
png_chunks() {
	python3 - "$1" <<'PY'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos = 8
while pos < len(b):
    n, k = struct.unpack(">I4s", b[pos:pos + 8])
    data = b[pos + 8:pos + 8 + n]
    crc = struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0]
    ok = "crc-ok" if zlib.crc32(k + data) == crc else "crc-bad"
    extra = " %dx%d" % struct.unpack(">II", data[:8]) if k == b"IHDR" else ""
    print(k.decode(), ok + extra)
    pos += 12 + n
PY
}

kind corrupt-crc 3 512x512
t_file "badcrc.png" "$d/badcrc.png"
t_file "badcrc.txt" "$d/badcrc.txt"
chunks=$(png_chunks "$d/badcrc.png")
t_match "badcrc.png's first IDAT fails its CRC" "$chunks" $'IHDR crc-ok 512x512\n(.*\n)?IDAT crc-bad'
t_eq "only one chunk is bad" "$(grep -c crc-bad <<<"$chunks")" 1
t_match "and it ends with IEND" "$chunks" $'IEND crc-ok$'

kind corrupt-mismatch 3 512x512
t_file "notreally.jpg" "$d/notreally.jpg"
t_file "notreally.txt" "$d/notreally.txt"
t_eq "notreally.jpg holds PNG bytes" "$(head -c 8 "$d/notreally.jpg" | od -An -tx1 | tr -d ' ')" 89504e470d0a1a0a

kind bomb 3 512x512
t_file "bomb.png" "$d/bomb.png"
t_file "bomb.txt" "$d/bomb.txt"
t_eq "bomb.png claims 200000x200000 with good CRCs" "$(png_chunks "$d/bomb.png")" \
	$'IHDR crc-ok 200000x200000\nIDAT crc-ok\nIEND crc-ok'
t_ok "bomb.png is tiny" test "$(stat -c %s "$d/bomb.png")" -lt 1000

# --- names -----------------------------------------------------------------------

kind hostile-names 3 512x512
bad=
for stem in 'a b' '$(touch x)' "it's \"quoted\"" 'ünïcødé 日本' '-dash' 'semi;colon'; do
	n=$(find "$d" -maxdepth 1 -name "$stem.*" ! -name '*.txt' | wc -l)
	[ "$n" -eq 1 ] && [ -f "$d/$stem.txt" ] || bad+=" [$stem]"
done
t_eq "each hostile name has an image and a caption" "$bad" ""
t_file "the webp one" "$d/it's \"quoted\".webp"
t_eq "hostile names made 6 images" "$(find "$d" -maxdepth 1 -type f ! -name '*.txt' ! -name 'img_*' ! -name '*.json' | wc -l)" 6
t_no_file "nothing ran \$(touch x) in the data set" "$d/x"
t_no_file "nor in the working directory" "$PWD/x"

kind ctrl-name 3 512x512
t_file "newline name" "$d/"$'new\nline.jpg'
t_file "newline caption" "$d/"$'new\nline.txt'
t_file "\\x01 name" "$d/"$'ctrl\x01char.jpg'
t_file "\\x01 caption" "$d/"$'ctrl\x01char.txt'

# --- warnings ----------------------------------------------------------------------

kind warnings
for f in nocap.jpg emptycap.jpg emptycap.txt orphan.txt notrigger.jpg notrigger.txt dup.jpg dup.txt \
	small.jpg small.txt alpha.png alpha.txt cmyk.jpg cmyk.txt gray.jpg gray.txt deep16.png deep16.txt \
	rotated.jpg rotated.txt anim.webp anim.txt large.png large.txt; do
	t_file "warnings: $f" "$d/$f"
done
t_no_file "nocap.jpg has no caption" "$d/nocap.txt"
t_eq "orphan.txt has no image" "$(find "$d" -name 'orphan.*' | wc -l)" 1
t_eq "emptycap.txt is empty" "$(stat -c %s "$d/emptycap.txt")" 0
t_not_match "notrigger.txt lacks the trigger" "$(cat "$d/notrigger.txt")" ohwx
t_ok "dup.jpg is a byte copy of img_001.jpg" cmp "$d/dup.jpg" "$d/img_001.jpg"
t_eq "small.jpg" "$(img_info "$d/small.jpg")" "JPEG 256x256 sRGB 8 False 1"
t_match "alpha.png has alpha" "$(img_info "$d/alpha.png")" '^PNG 1024x1024 sRGB 8 (True|Blend) 1$'
t_eq "cmyk.jpg is CMYK" "$(img_info "$d/cmyk.jpg")" "JPEG 1024x1024 CMYK 8 False 1"
t_eq "gray.jpg is grayscale" "$(img_info "$d/gray.jpg")" "JPEG 1024x1024 Gray 8 False 1"
t_eq "deep16.png is 16-bit" "$(img_info "$d/deep16.png")" "PNG 1024x1024 sRGB 16 False 1"
t_eq "deep16.png's IHDR says bit depth 16" "$(od -An -tu1 -j24 -N1 "$d/deep16.png" | tr -d ' ')" 16
t_eq "rotated.jpg is 1024x768 as stored" "$(img_info "$d/rotated.jpg")" "JPEG 1024x768 sRGB 8 False 1"
t_eq "rotated.jpg has EXIF Orientation 6" "$(exiftool -s3 -n -Orientation "$d/rotated.jpg")" 6
t_eq "anim.webp has 2 frames" "$(img_info "$d/anim.webp")" "WEBP 1024x1024 sRGB 8 False 2"
t_eq "large.png is 4096x4096" "$(img_info "$d/large.png")" "PNG 4096x4096 sRGB 8 False 1"
t_ok "large.png is over 40 MB" test "$(stat -c %s "$d/large.png")" -gt 40000000

# --- text, links, junk ---------------------------------------------------------------

kind non-utf8 3 512x512
t_file "latin.jpg" "$d/latin.jpg"
t_file "latin.txt" "$d/latin.txt"
t_fails "latin.txt is not UTF-8" 1 python3 -c 'import sys; open(sys.argv[1], encoding="utf-8").read()' "$d/latin.txt"
t_ok "latin.txt holds 0xE9 and the trigger" python3 -c \
	'import sys; b = open(sys.argv[1], "rb").read(); sys.exit(not (b"\xe9" in b and b"ohwx" in b))' "$d/latin.txt"

kind symlink-out 3 512x512
t_ok "outside.jpg is a symlink" test -L "$d/outside.jpg"
t_eq "pointing outside the data set" "$(readlink -f "$d/outside.jpg")" "$(readlink -f "$d/../outside-target.jpg")"
t_eq "to a JPEG" "$(img_info "$d/outside.jpg")" "JPEG 512x512 sRGB 8 False 1"
t_file "outside.txt" "$d/outside.txt"

kind junk 3 512x512
for f in .DS_Store __MACOSX/._a.jpg ._b.jpg .hidden/x.jpg; do
	t_file "junk: $f" "$d/$f"
done
t_eq ".DS_Store magic" "$(head -c 8 "$d/.DS_Store" | od -An -c | tr -s ' ')" ' \0 \0 \0 001 B u d 1'
t_eq "AppleDouble magic" "$(head -c 4 "$d/._b.jpg" | od -An -tx1 | tr -d ' ')" 00051607
t_eq ".hidden/x.jpg is a real JPEG" "$(img_info "$d/.hidden/x.jpg")" "JPEG 512x512 sRGB 8 False 1"

# --- big ----------------------------------------------------------------------------

start=$SECONDS
t_ok "big generates 8 MiB" bash "$gen" big "$tmpdir/big" 8
diag "big 8 MiB: $((SECONDS - start)) s"
total=$(find "$tmpdir/big" -name 'big_*' ! -name '*.txt' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
t_ok "at least 8 MiB of images ($total bytes)" test "$total" -ge $((8 * 1024 * 1024))
t_ok "and not far over (< 16 MiB)" test "$total" -lt $((16 * 1024 * 1024))
t_eq "big_0001.jpg is a 2048x2048 JPEG" "$(img_info "$tmpdir/big/big_0001.jpg")" "JPEG 2048x2048 sRGB 8 False 1"
t_file "with a caption" "$tmpdir/big/big_0001.txt"
t_eq "no two big files share bytes" \
	"$(cd "$tmpdir/big" && sha256sum big_* | awk '{ print $1 }' | sort | uniq -d)" ""

# --- the committed example ---------------------------------------------------------------

ex=$FERRY_SRC/examples/dataset
t_eq "example: 10 JPEG" "$(find "$ex" -name '*.jpg' | wc -l)" 10
t_eq "example: 1 PNG" "$(find "$ex" -name '*.png' | wc -l)" 1
t_eq "example: 1 WebP" "$(find "$ex" -name '*.webp' | wc -l)" 1
t_eq "example: 11 captions" "$(find "$ex" -name '*.txt' | wc -l)" 11
t_no_file "example: img_07.jpg has no caption" "$ex/img_07.txt"
t_not_match "example: img_04.txt lacks the trigger" "$(cat "$ex/img_04.txt")" ohwx
t_eq "example: trigger" "$(json_get "$ex/dataset_info.json" '.triggerWords')" '["ohwx"]'
t_ok "example: under 3 MB" test "$(du -sb "$ex" | cut -f1)" -lt 3000000
bad=
for f in "$ex"/img_*.{jpg,png,webp}; do
	[[ $(img_info "$f") =~ ^(JPEG|PNG|WEBP)\ 1024x1024\ sRGB\ 8\ False\ 1$ ]] || bad+=" $f"
done
t_eq "example: all 1024x1024 sRGB" "$bad" ""

done_testing
