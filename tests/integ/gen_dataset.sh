#!/usr/bin/env bash
# gen_dataset.sh: writes deterministic test datasets for ferry.
#
#   gen_dataset.sh KIND DIR [COUNT] [SIZE]     COUNT default 12, SIZE default 1024x1024
#   gen_dataset.sh big DIR SIZE_MB             benchmark data set of about SIZE_MB MiB
#   gen_dataset.sh example DIR                 the committed examples/dataset
#
# Every kind but big and example starts from the `valid` data set and adds the
# files named below (each added image has a same-stem caption containing the
# trigger unless stated otherwise). Same arguments, same bytes, every run.
#
#   valid              img_NNN.{jpg,png,webp} (i%6==3: png, i%6==0: webp, else jpg),
#                      img_002 under sub/, captions img_NNN.txt
#                      "a photo of ohwx person, number N", dataset_info.json
#   corrupt-truncated  broken.jpg: the first half (floor) of img_001.jpg's bytes
#   corrupt-zero       empty.png: zero bytes
#   corrupt-crc        badcrc.png: one byte of the first IDAT's data inverted, CRC kept
#   corrupt-mismatch   notreally.jpg: PNG bytes
#   bomb               bomb.png: IHDR says 200000x200000 RGB8, tiny IDAT, valid CRCs
#   hostile-names      'a b.jpg' '$(touch x).png' 'it'"'"'s "quoted".webp'
#                      'ünïcødé 日本.jpg' '-dash.jpg' 'semi;colon.jpg'
#   warnings           nocap.jpg (no caption), emptycap.jpg (+ empty emptycap.txt),
#                      orphan.txt (no image), notrigger.jpg (caption lacks ohwx),
#                      dup.jpg (byte copy of img_001.jpg), small.jpg (256x256),
#                      alpha.png (RGBA, gradient alpha), cmyk.jpg, gray.jpg,
#                      deep16.png (16-bit RGB), rotated.jpg (W x 3W/4, EXIF Orientation 6),
#                      anim.webp (2 frames), large.png (4096x4096 8-bit noise, ~48 MiB)
#   non-utf8           latin.jpg + latin.txt (ISO-8859-1 bytes, contains ohwx)
#   symlink-out        outside.jpg -> ../outside-target.jpg (DIR/../outside-target.jpg
#                      is written too), caption outside.txt
#   ctrl-name          $'new\nline.jpg' and $'ctrl\x01char.jpg', with captions
#   junk               .DS_Store, __MACOSX/._a.jpg, ._b.jpg (AppleDouble), .hidden/x.jpg
#
# Tools: ImageMagick's convert, cwebp, exiftool, python3, coreutils.
# GEN_JOBS sets the parallelism (default: number of CPUs).
set -euo pipefail

SELF=$(readlink -f "$0")
JOBS=${GEN_JOBS:-$(nproc 2>/dev/null || echo 2)}
TRIGGER=ohwx

# Options that keep ImageMagick from writing timestamps or other varying bits.
STRIP=(-strip +set date:create +set date:modify +set date:timestamp)
# shellcheck disable=SC2054 # the comma belongs to the ImageMagick option
PNGDEF=(-define png:exclude-chunks=date,time)

die() {
	echo "gen_dataset: $*" >&2
	exit 2
}

usage() {
	sed -n '2,8p' "$SELF" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# render SEED SIZE OUT [convert options...]: a plasma picture (realistic-looking
# content that does not compress trivially) written to OUT, format from OUT's
# extension (jpg/jpeg, png, webp). Q sets JPEG/WebP quality (default 90),
# BLUR softens the picture (default none), DEPTH sets bits per sample (default 8). OUT must be a plain name: write to a
# simple name and rename for odd names.
render() {
	local seed=$1 size=$2 out=$3
	shift 3
	local -a base=(convert -seed "$seed" -size "$size" plasma:fractal)
	[ -z "${BLUR:-}" ] || base+=(-blur "0x$BLUR")
	base+=(-depth "${DEPTH:-8}" "$@" "${STRIP[@]}")
	case $out in
	*.jpg | *.jpeg) "${base[@]}" -quality "${Q:-90}" "jpg:$out" ;;
	*.png) "${base[@]}" "${PNGDEF[@]}" "png:$out" ;;
	*.webp)
		"${base[@]}" "${PNGDEF[@]}" "png:$out.tmp.png"
		cwebp -quiet -q "${Q:-90}" -metadata none "$out.tmp.png" -o "$out"
		rm -f "$out.tmp.png"
		;;
	*) die "render: unknown extension: $out" ;;
	esac
}

# caption FILE TEXT: write TEXT and a newline.
caption() {
	printf '%s\n' "$2" >"$1"
}

# image_with_caption NAME SEED [convert options...]: DIR/NAME plus its
# same-stem caption, through a temporary plain name so any NAME works.
image_with_caption() {
	local name=$1 seed=$2 ext tmp
	shift 2
	ext=${name##*.}
	tmp=$DIR/.gen-tmp-$seed.$ext
	render "$seed" "$SIZE" "$tmp" "$@"
	mv -- "$tmp" "$DIR/$name"
	caption "$DIR/${name%.*}.txt" "a photo of $TRIGGER person, ${name%.*}"
}

dataset_info() {
	printf '{"name":"test","description":"generated","triggerWords":["%s"]}\n' "$TRIGGER" \
		>"$DIR/dataset_info.json"
}

gen_valid() {
	local i ext rel
	mkdir -p "$DIR"
	for ((i = 1; i <= COUNT; i++)); do
		case $((i % 6)) in
		3) ext=png ;;
		0) ext=webp ;;
		*) ext=jpg ;;
		esac
		rel=$(printf 'img_%03d' "$i")
		[ "$i" -ne 2 ] || rel=sub/$rel
		mkdir -p "$(dirname "$DIR/$rel")"
		caption "$DIR/$rel.txt" "a photo of $TRIGGER person, number $i"
		printf '%s\n' "$i" "$SIZE" "$DIR/$rel.$ext"
	done | xargs -d '\n' -n 3 -P "$JOBS" bash "$SELF" __render
	dataset_info
}

# png_tool MODE FILE...: byte-level PNG surgery in Python.
png_tool() {
	python3 - "$@" <<'PY'
import struct, sys, zlib

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

mode, path = sys.argv[1], sys.argv[2]
if mode == "flip-idat":
    b = bytearray(open(path, "rb").read())
    pos = 8
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        if kind == b"IDAT":
            b[pos + 8 + n // 2] ^= 0xFF
            break
        pos += 12 + n
    else:
        sys.exit("no IDAT in " + path)
    open(path, "wb").write(bytes(b))
elif mode == "bomb":
    w = h = 200000
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    # A few rows' worth of zeros: the header is what matters.
    idat = zlib.compress(b"\0" * 4096, 9)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                           chunk(b"IDAT", idat) + chunk(b"IEND", b""))
elif mode == "appledouble":
    # AppleDouble header: magic, version, filler, one Finder Info entry.
    hdr = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 1)
    hdr += struct.pack(">III", 9, 26 + 12, 32)
    open(path, "wb").write((hdr + b"TEXTttxt" + b"\0" * 24).ljust(4096, b"\0"))
elif mode == "ds_store":
    open(path, "wb").write((b"\0\0\0\1Bud1" + b"\0" * 22).ljust(6148, b"\0"))
else:
    sys.exit("png_tool: unknown mode " + mode)
PY
}

gen_kind() {
	local w h tmp
	case $KIND in
	valid) gen_valid ;;
	corrupt-truncated)
		gen_valid
		head -c "$(($(stat -c %s "$DIR/img_001.jpg") / 2))" "$DIR/img_001.jpg" >"$DIR/broken.jpg"
		caption "$DIR/broken.txt" "a photo of $TRIGGER person, broken"
		;;
	corrupt-zero)
		gen_valid
		: >"$DIR/empty.png"
		caption "$DIR/empty.txt" "a photo of $TRIGGER person, empty"
		;;
	corrupt-crc)
		gen_valid
		image_with_caption badcrc.png 102
		png_tool flip-idat "$DIR/badcrc.png"
		;;
	corrupt-mismatch)
		gen_valid
		render 103 "$SIZE" "$DIR/notreally.png"
		mv "$DIR/notreally.png" "$DIR/notreally.jpg"
		caption "$DIR/notreally.txt" "a photo of $TRIGGER person, notreally"
		;;
	bomb)
		gen_valid
		png_tool bomb "$DIR/bomb.png"
		caption "$DIR/bomb.txt" "a photo of $TRIGGER person, bomb"
		;;
	hostile-names)
		gen_valid
		image_with_caption 'a b.jpg' 110 &
		# shellcheck disable=SC2016 # the name is meant literally
		image_with_caption '$(touch x).png' 111 &
		image_with_caption "it's \"quoted\".webp" 112 &
		image_with_caption 'ünïcødé 日本.jpg' 113 &
		image_with_caption '-dash.jpg' 114 &
		image_with_caption 'semi;colon.jpg' 115 &
		wait_all
		;;
	warnings)
		gen_valid
		w=${SIZE%%x*}
		h=$((w * 3 / 4))
		render 120 "$SIZE" "$DIR/nocap.jpg" &
		image_with_caption emptycap.jpg 121 &
		image_with_caption notrigger.jpg 122 &
		SIZE=256x256 image_with_caption small.jpg 123 &
		image_with_caption alpha.png 124 \( -size "$SIZE" gradient:white-black \) \
			-alpha off -compose CopyOpacity -composite -define png:color-type=6 &
		image_with_caption cmyk.jpg 125 -colorspace CMYK &
		image_with_caption gray.jpg 126 -colorspace Gray &
		DEPTH=16 image_with_caption deep16.png 127 -define png:bit-depth=16 &
		SIZE=${w}x$h image_with_caption rotated.jpg 128 &
		wait_all
		: >"$DIR/emptycap.txt"
		caption "$DIR/notrigger.txt" "a photo of a person standing in a field"
		caption "$DIR/orphan.txt" "a photo of $TRIGGER person, orphan"
		cp "$DIR/img_001.jpg" "$DIR/dup.jpg"
		caption "$DIR/dup.txt" "a photo of $TRIGGER person, dup"
		exiftool -q -Orientation=6 -n -overwrite_original "$DIR/rotated.jpg"
		tmp=$DIR/.gen-tmp-anim
		mkdir -p "$tmp"
		render 129 "$SIZE" "$tmp/a.png" &
		render 130 "$SIZE" "$tmp/b.png" &
		# Pure noise is large in bytes: about 3 bytes a pixel whatever the compressor.
		convert -seed 131 -size 4096x4096 xc: +noise Random -depth 8 "${STRIP[@]}" \
			"${PNGDEF[@]}" -define png:compression-level=1 "png:$DIR/large.png" &
		wait_all
		convert -delay 10 "$tmp/a.png" "$tmp/b.png" -loop 0 "${STRIP[@]}" -quality 80 "webp:$DIR/anim.webp"
		rm -rf "$tmp"
		caption "$DIR/anim.txt" "a photo of $TRIGGER person, anim"
		caption "$DIR/large.txt" "a photo of $TRIGGER person, large"
		;;
	non-utf8)
		gen_valid
		render 140 "$SIZE" "$DIR/latin.jpg"
		printf 'une photo de %s \xe0 la plage, \xe9t\xe9, caf\xe9 cr\xe8me\n' "$TRIGGER" >"$DIR/latin.txt"
		;;
	symlink-out)
		gen_valid
		render 150 "$SIZE" "$DIR/../outside-target.jpg"
		ln -sfn ../outside-target.jpg "$DIR/outside.jpg"
		caption "$DIR/outside.txt" "a photo of $TRIGGER person, outside"
		;;
	ctrl-name)
		gen_valid
		image_with_caption $'new\nline.jpg' 160
		image_with_caption $'ctrl\x01char.jpg' 161
		;;
	junk)
		gen_valid
		png_tool ds_store "$DIR/.DS_Store"
		mkdir -p "$DIR/__MACOSX" "$DIR/.hidden"
		png_tool appledouble "$DIR/__MACOSX/._a.jpg"
		png_tool appledouble "$DIR/._b.jpg"
		render 170 "$SIZE" "$DIR/.hidden/x.jpg"
		;;
	*) die "unknown kind: $KIND (try: valid corrupt-truncated corrupt-zero corrupt-crc corrupt-mismatch bomb hostile-names warnings non-utf8 symlink-out ctrl-name junk big example)" ;;
	esac
}

# wait_all: wait for every background job, failing if any failed.
wait_all() {
	local pid rc=0
	for pid in $(jobs -p); do
		wait "$pid" || rc=1
	done
	[ "$rc" -eq 0 ] || die "a background step failed"
}

# The committed example: 10 JPEG + 1 PNG + 1 WebP at 1024x1024, softened and at
# quality 85 to stay small; img_07.jpg has no caption and img_04.txt lacks the
# trigger, so `ferry dataset check` has warnings to show and `fix` work to do.
gen_example() {
	local captions=(
		""
		"a photo of ohwx person smiling, close-up portrait, soft window light"
		"ohwx person standing on a beach at sunset, full body shot"
		"a photo of ohwx person wearing a red jacket in a snowy forest"
		"a person sitting at a cafe table, reading a book"
		"ohwx person riding a bicycle through a city street, motion blur"
		"portrait of ohwx person, black and white, studio lighting"
		""
		"ohwx person laughing with friends at a picnic, natural light"
		"a photo of ohwx person hiking on a mountain trail, wide angle"
		"ohwx person in a business suit, office background, headshot"
		"a photo of ohwx person holding a cup of coffee, morning light"
		"ohwx person looking out of a train window, cinematic"
	)
	local i name ext
	mkdir -p "$DIR"
	for ((i = 1; i <= 12; i++)); do
		case $i in
		11) ext=png ;;
		12) ext=webp ;;
		*) ext=jpg ;;
		esac
		name=$(printf 'img_%02d' "$i")
		printf '%s\n' "$((200 + i))" 1024x1024 "$DIR/$name.$ext"
		[ "$i" -eq 7 ] || caption "$DIR/$name.txt" "${captions[i]}"
	done | Q=85 BLUR=1 xargs -d '\n' -n 3 -P "$JOBS" bash "$SELF" __render
	printf '%s\n' '{"name":"example","description":"A tiny example data set for ferry demo: 12 pictures of ohwx person.","triggerWords":["ohwx"]}' \
		>"$DIR/dataset_info.json"
}

# big: about SIZE_MB MiB, mostly 2048x2048 JPEG (1.8-3.1 MiB, quality 90-94) and one PNG in
# 25 (~8 MiB). A few noisy plasma bases are made once; each file is a base
# rolled by a different offset and encoded at a different quality, so no two
# files share bytes.
gen_big() {
	local mb=$1 target total=0 i=0 batch n b tmp
	if ! [[ $mb =~ ^[0-9]+$ ]] || [ "$mb" -eq 0 ]; then
		die "big: SIZE_MB must be a positive number"
	fi
	target=$((mb * 1024 * 1024))
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/gen-big.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	mkdir -p "$DIR"
	for ((b = 0; b < 6; b++)); do
		printf '%s\n' "$b" "$tmp/base$b.ppm"
	done | xargs -d '\n' -n 2 -P "$JOBS" bash "$SELF" __big_base
	dataset_info
	batch=$((JOBS * 8))
	while [ "$total" -lt "$target" ]; do
		# Enough files for what is missing at ~2.2 MiB each, one batch at most.
		n=$(((target - total + 2306866) / 2306867))
		[ "$n" -le "$batch" ] || n=$batch
		# (The loop runs in a subshell: i advances after it.)
		for ((b = 1; b <= n; b++)); do
			printf '%s\n' "$((i + b))" "$tmp" "$DIR"
		done | xargs -d '\n' -n 3 -P "$JOBS" bash "$SELF" __big_one
		i=$((i + n))
		total=$(find "$DIR" -type f -name 'big_*' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
	done
}

main() {
	case ${1:-} in
	__render)
		# internal: SEED SIZE OUT (xargs worker); Q and BLUR from the environment
		render "$2" "$3" "$4"
		exit 0
		;;
	__big_base)
		convert -seed "$((300 + $2))" -size 2048x2048 plasma:fractal -attenuate 0.3 +noise Gaussian \
			-depth 8 "${STRIP[@]}" "ppm:$3"
		exit 0
		;;
	__big_one)
		local i=$2 tmp=$3 dir=$4 name
		name=$(printf 'big_%04d' "$i")
		local roll=(-roll "+$((i * 173 % 2048))+$((i * 311 % 2048))")
		if [ $((i % 25)) -eq 0 ]; then
			convert "$tmp/base$((i % 6)).ppm" "${roll[@]}" "${STRIP[@]}" "${PNGDEF[@]}" \
				-define png:compression-level=3 "png:$dir/$name.png"
		else
			convert "$tmp/base$((i % 6)).ppm" "${roll[@]}" "${STRIP[@]}" \
				-quality "$((90 + i % 5))" "jpg:$dir/$name.jpg"
		fi
		caption "$dir/$name.txt" "a photo of $TRIGGER person, number $i"
		exit 0
		;;
	'' | -h | --help) usage ;;
	esac
	KIND=$1
	DIR=${2:-}
	[ -n "$DIR" ] || usage
	case $KIND in
	big)
		gen_big "${3:-}"
		;;
	example)
		gen_example
		;;
	*)
		COUNT=${3:-12}
		SIZE=${4:-1024x1024}
		[[ $COUNT =~ ^[0-9]+$ ]] || die "COUNT must be a number"
		[[ $SIZE =~ ^[0-9]+x[0-9]+$ ]] || die "SIZE must look like 1024x1024"
		[ "$COUNT" -ge 1 ] || die "COUNT must be at least 1"
		gen_kind
		;;
	esac
}

main "$@"
