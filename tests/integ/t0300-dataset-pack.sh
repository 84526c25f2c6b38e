#!/usr/bin/env bash
# ferry dataset pack / unpack: deterministic archives, coreutils-only
# verification, hostile names, refusing datasets with errors, the archive
# cache, and unpack refusing damaged or unsafe archives.
. "$(dirname "$0")/lib.sh"
require_cmd python3 tar sha256sum convert cwebp

cd "$tmpdir" || exit 1
# Train at 512 so that the generated 512x512 pictures raise no warnings.
mkdir -p "$XDG_CONFIG_HOME/ferry"
printf 'dataset.resolution = 512\n' >"$XDG_CONFIG_HOME/ferry/config"
gen() { bash "$GEN_DATASET" "$@" 512x512 >/dev/null; }
gen valid ds1 12
GEN_OK=$?
[ "$GEN_OK" = 0 ] || skip_all "gen_dataset.sh valid failed"

# tar_py SCRIPT ARGS...: a python3 tarfile helper.
tar_py() {
	python3 - "$@"
}

# --- help and usage ----------------------------------------------------------
t_ok "pack --help" "$FERRY" dataset pack --help
t_match "pack help names its options" "$(cat "$T_OUT")" "-o, --output FILE.*"$'\n'".*--force"
t_ok "unpack --help" "$FERRY" dataset unpack --help
t_match "unpack help says what it refuses" "$(cat "$T_OUT")" "Links,"
t_fails "pack without a folder" 2 "$FERRY" dataset pack
t_fails "pack of a missing folder" 2 "$FERRY" dataset pack "$tmpdir/nope"
t_fails "unpack with one argument" 2 "$FERRY" dataset unpack a.tar
t_fails "unpack of a missing archive" 2 "$FERRY" dataset unpack "$tmpdir/nope.tar" out
t_fails "pack: unknown option" 2 "$FERRY" dataset pack ds1 --frob

# --- pack, layout, coreutils verification ------------------------------------
t_ok "pack ds1 -o a.tar" "$FERRY" dataset pack ds1 -o a.tar
out=$(cat "$T_OUT")
t_match "prints the archive path" "$out" "archive +a.tar"
t_match "prints the SHA-256" "$out" "sha256 +[0-9a-f]{64}"
t_match "prints size and count" "$out" "bytes +[0-9]+"$'\n'"files +25"
t_not_match "first pack is not reused" "$out" "reused"
sha1=$(sha256sum a.tar | cut -d' ' -f1)
t_match "the printed SHA-256 is the archive's" "$out" "sha256 +$sha1"
t_file "cached as <sha>.tar" "$XDG_CACHE_HOME/ferry/datasets/$sha1.tar"
t_eq "manifest.json is the first entry" "$(tar -tf a.tar | head -1)" "manifest.json"
t_eq "SHA256SUMS is the second" "$(tar -tf a.tar | sed -n 2p)" "SHA256SUMS"
t_eq "entries: manifest, sums and 25 files" "$(tar -tf a.tar | wc -l)" "27"
t_eq "the rest is sorted" "$(tar -tf a.tar | tail -n +3)" "$(tar -tf a.tar | tail -n +3 | LC_ALL=C sort)"
t_eq "fixed owners, modes and times" \
	"$(tar --numeric-owner -tvf a.tar | awk '{ print $1, $2, $4, $5 }' | sort -u)" \
	"-rw-r--r-- 0/0 1970-01-01 00:00"
mkdir plain
t_ok "plain tar -xf" tar -xf a.tar -C plain
t_ok "sha256sum -c SHA256SUMS with coreutils alone" \
	env -i PATH=/usr/bin:/bin sh -c 'cd plain && sha256sum -c --strict SHA256SUMS'
t_eq "SHA256SUMS lists every file" "$(wc -l <plain/SHA256SUMS)" "25"
t_ok "manifest is JSON with no absolute path, user or time" python3 - plain/manifest.json "$tmpdir" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = json.loads(text)
assert sys.argv[2] not in text, "the dataset's location leaks"
assert "mtime" not in text and "uid" not in text and "1970" not in text
assert m["format"] == "ferry-dataset" and m["version"] == 1
assert m["totals"]["files"] == len(m["files"]) == 25
for f in m["files"]:
    assert not f["path"].startswith("/") and ".." not in f["path"].split("/")
    assert len(f["sha256"]) == 64 and f["size"] >= 0
    if f["role"] == "image":
        assert f["width"] == 512 and f["height"] == 512 and f["format"] in ("jpeg", "png", "webp")
assert m["check"]["ready"] is True and m["check"]["errors"] == 0
PY
t_ok "python's tarfile reads it" python3 -c '
import sys, tarfile
names = tarfile.open(sys.argv[1]).getnames()
assert names[0] == "manifest.json" and "sub/img_002.jpg" in names, names
' a.tar

# --- unpack round trip ----------------------------------------------------------
t_ok "unpack a.tar" "$FERRY" dataset unpack a.tar un1
t_match "unpack reports the archive's SHA-256" "$(cat "$T_OUT")" "$sha1"
t_ok "round trip is byte-identical (diff -r)" diff -r ds1 un1
t_no_file "manifest.json is not extracted" un1/manifest.json
t_fails "unpack into a non-empty folder" 1 "$FERRY" dataset unpack a.tar un1
t_match "it says why" "$(cat "$T_ERR")" "not empty"
mkdir empty-target
t_ok "unpack into an empty folder" "$FERRY" dataset unpack a.tar empty-target --json
t_eq "unpack --json files" "$(json_get "$T_OUT" .files)" "25"

# --- determinism: other times, owners, modes, umask, directory order ------------
mkdir ds2
# Copy in reverse order so the directory order differs.
(cd ds1 && find . -type f | LC_ALL=C sort -r) | while IFS= read -r f; do
	mkdir -p "ds2/$(dirname "$f")"
	cp "ds1/$f" "ds2/$f"
done
find ds2 -type f -exec touch -d '2001-02-03 04:05:06.789' {} +
find ds2 -type f -exec chmod 0600 {} +
chmod 0700 ds2/sub
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chown -R nobody ds2
fi
t_ok "pack the copy (other cache, umask 077)" env XDG_CACHE_HOME="$tmpdir/cache2" \
	sh -c 'umask 077; exec "$0" dataset pack ds2 -o b.tar --json' "$FERRY"
t_eq "same SHA-256 from the copy" "$(json_get "$T_OUT" .sha256)" "$sha1"
t_ok "byte-identical archives" cmp a.tar b.tar
LC_ALL=C t_ok "pack under the C locale" env XDG_CACHE_HOME="$tmpdir/cache3" "$FERRY" dataset pack ds2 --json
t_eq "same SHA-256 under LC_ALL=C" "$(json_get "$T_OUT" .sha256)" "$sha1"

# --- hostile names --------------------------------------------------------------
gen hostile-names hn 12
t_ok "pack hostile names" "$FERRY" dataset pack hn -o hn.tar
t_ok "unpack hostile names" "$FERRY" dataset unpack hn.tar hn-un
t_ok "hostile names round-trip (diff -r)" diff -r hn hn-un
for name in 'a b.jpg' '$(touch x).png' "it's \"quoted\".webp" 'ünïcødé 日本.jpg' '-dash.jpg' 'semi;colon.jpg'; do
	t_file "unpacked: $name" "hn-un/$name"
done
t_ok "tar -tvf lists the UTF-8 name plainly" tar -tvf hn.tar
t_match "tar shows ünïcødé 日本.jpg" "$(cat "$T_OUT")" "ünïcødé 日本.jpg"
t_not_match "no hdrcharset=BINARY for GNU tar to warn about" "$(cat "$T_ERR")" "hdrcharset"
mkdir hn-plain
t_ok "plain tar -xf of hostile names" tar -xf hn.tar -C hn-plain
t_ok "sha256sum -c with hostile names" sh -c 'cd hn-plain && sha256sum -c --strict SHA256SUMS'
t_ok "python's tarfile agrees on the names" python3 -c '
import os, sys, tarfile
names = set(tarfile.open(sys.argv[1]).getnames()) - {"manifest.json", "SHA256SUMS"}
disk = set()
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        disk.add(os.path.relpath(os.path.join(root, f), sys.argv[2]))
assert names == disk, (names ^ disk)
' hn.tar hn
t_no_file "nothing was executed (no ./x)" x
t_no_file "nothing was executed (no hn-un/x)" hn-un/x
t_no_file "nothing was executed (no hn/x)" hn/x

# --- a dataset with errors ------------------------------------------------------
gen corrupt-truncated bad 12
t_fails "a dataset with errors is refused" 1 "$FERRY" dataset pack bad -o bad.tar
t_match "the errors are listed" "$(cat "$T_ERR")" "corrupt_image +broken.jpg"
t_match "and --force is suggested" "$(cat "$T_ERR")" "--force"
t_no_file "no archive at -o" bad.tar
t_ok "--force packs it" "$FERRY" dataset pack bad -o bad.tar --force
t_not_match "without the broken file" "$(tar -tf bad.tar)" "broken\.jpg"
t_match "with the others" "$(tar -tf bad.tar)" "img_001\.jpg"
t_eq "the manifest records the errors" \
	"$(tar -xOf bad.tar manifest.json | json_get - '[d["check"]["ready"], d["check"]["findings"]["corrupt_image"]]')" \
	"[false,1]"

# --- tampering and unsafe archives ------------------------------------------------
t_ok "flip a byte inside sub/img_002.jpg's data" tar_py a.tar tampered.tar sub/img_002.jpg <<'PY'
import sys, tarfile
src, dst, name = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
with tarfile.open(src) as t:
    m = t.getmember(name)
    data[m.offset_data + m.size // 2] ^= 0xFF
open(dst, "wb").write(data)
PY
t_fails "unpack refuses the altered archive" 1 "$FERRY" dataset unpack tampered.tar t-out
t_match "naming the file" "$(cat "$T_ERR")" "sub/img_002.jpg: content does not match"
t_no_file "nothing is left at the target" t-out
t_eq "no temporary folder is left" "$(ls -A | grep -c '\.t-out\.unpack-')" "0"

# hostile KIND: the valid archive plus one bad entry, written by python's tarfile.
hostile() {
	tar_py a.tar "hostile-$1.tar" "$1" "$tmpdir" <<'PY'
import io, sys, tarfile
src, dst, kind, tmp = sys.argv[1:5]
with tarfile.open(src) as t, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as o:
    for m in t.getmembers():
        o.addfile(m, t.extractfile(m))
    if kind == "dotdot":
        ti = tarfile.TarInfo("../evil.jpg")
    elif kind == "absolute":
        ti = tarfile.TarInfo(tmp + "/abs-evil.jpg")
    elif kind == "symlink":
        ti = tarfile.TarInfo("img_001.jpg.lnk")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "unlisted":
        ti = tarfile.TarInfo("extra.jpg")
    data = b"evil"
    if ti.type == tarfile.REGTYPE:
        ti.size = len(data)
        o.addfile(ti, io.BytesIO(data))
    else:
        o.addfile(ti)
PY
}
for kind in dotdot absolute symlink unlisted; do
	t_ok "build a tar with a $kind entry" hostile "$kind"
	t_fails "unpack refuses the $kind entry" 1 "$FERRY" dataset unpack "hostile-$kind.tar" "h-$kind"
	t_no_file "nothing unpacked for $kind" "h-$kind"
done
t_match "../evil.jpg is named" "$(cd "$tmpdir" && "$FERRY" dataset unpack hostile-dotdot.tar x1 2>&1)" "\.\./evil\.jpg: unsafe path"
t_match "the absolute path is named" "$("$FERRY" dataset unpack hostile-absolute.tar x2 2>&1)" "abs-evil\.jpg: unsafe path"
t_match "the symlink is named" "$("$FERRY" dataset unpack hostile-symlink.tar x3 2>&1)" "img_001\.jpg\.lnk: is a symbolic link"
t_match "the unlisted entry is named" "$("$FERRY" dataset unpack hostile-unlisted.tar x4 2>&1)" "extra\.jpg: not listed in the manifest"
t_no_file "../evil.jpg was not written" "$tmpdir/evil.jpg"
t_no_file "the absolute path was not written" "$tmpdir/abs-evil.jpg"

# --- the archive cache --------------------------------------------------------------
start=$(date +%s%N)
t_ok "pack ds1 again" "$FERRY" dataset pack ds1 --json
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
t_eq "reused" "$(json_get "$T_OUT" .reused)" "true"
t_eq "same SHA-256" "$(json_get "$T_OUT" .sha256)" "$sha1"
t_ok "reuse is fast (${elapsed_ms} ms)" test "$elapsed_ms" -lt 3000
t_ok "pack ds1 again, for people" "$FERRY" dataset pack ds1
t_match "says it reused the cached archive" "$(cat "$T_OUT")" "reused cached archive"
printf 'a photo of ohwx person, edited\n' >ds1/img_005.txt
t_ok "pack after editing one caption" "$FERRY" dataset pack ds1 --json
t_eq "not reused" "$(json_get "$T_OUT" .reused)" "false"
t_ne "a new SHA-256" "$(json_get "$T_OUT" .sha256)" "$sha1"
rm -f "$XDG_CACHE_HOME/ferry/datasets/$sha1.tar"
cp -r un1 ds1b
t_ok "a lost cached archive is packed again" "$FERRY" dataset pack ds1b --json
t_eq "same SHA-256 as before" "$(json_get "$T_OUT" .sha256)" "$sha1"
t_eq "and not reused" "$(json_get "$T_OUT" .reused)" "false"

done_testing
