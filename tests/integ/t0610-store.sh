#!/usr/bin/env bash
# t0610-store: the artifact store, both kinds. The dir store on its own; the
# s3 store against s3rver behind our SigV4-verifying proxy (tests/integ/s3.sh):
# put/get/ls/rm/presign, a multipart upload checked by downloading it with
# Debian's awscli, an upload killed with SIGKILL halfway and resumed (only the
# missing parts are sent again), a wrong secret, a part dropped halfway and a
# part answered 500 (each retried), a part that keeps failing (the upload is
# aborted), and `ferry publish` (result.json last, config.yaml and the other
# never-published files left out, every URL fetched and checked).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/s3.sh"
require_cmd sha256sum curl python3
s3_start || exit 1

sha() { sha256sum "$1" | cut -d' ' -f1; }
# count OP STATUS [FROM_LINE]: requests of one operation with one status.
count() {
	s3_log | tail -n +"${3:-1}" | awk -v op="$1" -v st="$2" '$1 == op && $5 == st' | wc -l
}
mark() { echo $(($(s3_log | wc -l) + 1)); }

mkdir -p "$tmpdir/files"
head -c 100000 /dev/urandom >"$tmpdir/files/small.bin"
head -c $((40 * 1024 * 1024 + 12345)) /dev/urandom >"$tmpdir/files/big.bin"

# --- the dir store -------------------------------------------------------------------

store=$XDG_STATE_HOME/ferry/artifacts
t_ok "dir: put" "$FERRY" store put "$tmpdir/files/small.bin" runs/a/small.bin
t_eq "dir: the file is in the state folder, same bytes" \
	"$(sha "$store/runs/a/small.bin")" "$(sha "$tmpdir/files/small.bin")"
t_ok "dir: put again" "$FERRY" store put "$tmpdir/files/small.bin" runs/a/small.bin
t_match "dir: the same file is not copied again" "$(cat "$T_OUT")" 'already there'
t_ok "dir: ls --json" "$FERRY" store ls --json runs/
t_eq "dir: ls lists the key and its size" \
	"$(json_get "$T_OUT" '[(o["key"], o["size"]) for o in d["objects"]]')" '[["runs/a/small.bin",100000]]'
t_ok "dir: get" "$FERRY" store get runs/a/small.bin "$tmpdir/dir-back.bin"
t_eq "dir: get gives the same bytes" "$(sha "$tmpdir/dir-back.bin")" "$(sha "$tmpdir/files/small.bin")"
t_ok "dir: presign gives a file URL" "$FERRY" store presign runs/a/small.bin
t_eq "dir: the URL names the file" "$(cat "$T_OUT")" "file://$store/runs/a/small.bin"
t_fails "dir: a key with .. is a usage error" 2 "$FERRY" store put "$tmpdir/files/small.bin" ../escape
t_ok "dir: rm" "$FERRY" store rm runs/a/small.bin
t_no_file "dir: rm removed the file and its empty folders" "$store/runs"
t_fails "dir: rm of a missing key fails" 1 "$FERRY" store rm runs/a/small.bin

# --- the s3 store: the basics ----------------------------------------------------------

export FERRY_STORE=s3
m=$(mark)
t_ok "s3: put a small file" "$FERRY" store put --json "$tmpdir/files/small.bin" a/small.bin
t_eq "s3: one PutObject" "$(count PutObject 200 "$m")" 1
t_eq "s3: put reports its SHA-256" "$(json_get "$T_OUT" .sha256)" "$(sha "$tmpdir/files/small.bin")"
m=$(mark)
t_ok "s3: put the same file again" "$FERRY" store put --json "$tmpdir/files/small.bin" a/small.bin
t_eq "s3: the same object is not sent again" "$(json_get "$T_OUT" .skipped)/$(count PutObject 200 "$m")" "true/0"
t_ok "s3: ls --json" "$FERRY" store ls --json a/
t_eq "s3: ls lists the key and its size" \
	"$(json_get "$T_OUT" '[(o["key"], o["size"]) for o in d["objects"]]')" '[["a/small.bin",100000]]'
t_ok "s3: get" "$FERRY" store get a/small.bin "$tmpdir/back.bin"
t_eq "s3: get gives the same bytes" "$(sha "$tmpdir/back.bin")" "$(sha "$tmpdir/files/small.bin")"

t_ok "s3: presign a GET" "$FERRY" store presign --expires 600 a/small.bin
url=$(cat "$T_OUT")
t_match "s3: the URL is presigned for 600 s" "$url" 'X-Amz-Expires=600&.*X-Amz-Signature=[0-9a-f]{64}$'
t_ok "s3: curl fetches the presigned URL" curl -sSf -o "$tmpdir/presigned.bin" "$url"
t_eq "s3: ... and gets the object" "$(sha "$tmpdir/presigned.bin")" "$(sha "$tmpdir/files/small.bin")"
t_ok "s3: presign a PUT" "$FERRY" store presign --put a/by-url.txt
echo "sent through a presigned PUT" >"$tmpdir/by-url.txt"
t_ok "s3: curl uploads through it" curl -sSf -T "$tmpdir/by-url.txt" "$(cat "$T_OUT")"
t_ok "s3: ... and the object is there" "$FERRY" store get a/by-url.txt "$tmpdir/by-url.back"
t_eq "s3: ... with those bytes" "$(cat "$tmpdir/by-url.back")" "sent through a presigned PUT"
t_fails "s3: a presigned URL lasts at most 7 days" 2 "$FERRY" store presign --expires 604801 a/small.bin
t_eq "s3: a presigned URL used for another key is refused with 403" "$(curl -s -o /dev/null -w '%{http_code}' "${url/a\/small.bin/a\/by-url.txt}")" 403

t_ok "s3: rm" "$FERRY" store rm a/by-url.txt
t_fails "s3: get after rm fails" 1 "$FERRY" store get a/by-url.txt "$tmpdir/gone"
t_match "s3: ... saying there is no such object" "$(cat "$T_ERR")" 'no object s3://ferry-test/a/by-url.txt'
t_no_file "s3: ... and leaves no file behind" "$tmpdir/gone"

# --- multipart -------------------------------------------------------------------------

export FERRY_STATE_DIR=$XDG_STATE_HOME/ferry
m=$(mark)
t_ok "s3: put a 40 MiB file in 5 MiB parts" \
	"$FERRY" --set s3.part_size_mb=5 store put --json "$tmpdir/files/big.bin" b/big.bin
t_eq "s3: 9 parts of 5 MiB" "$(json_get "$T_OUT" '[d["multipart"], d["parts"], d["part_size"]]')" \
	"[true,9,5242880]"
t_eq "s3: 9 UploadPart, 1 Create, 1 Complete" \
	"$(count UploadPart 200 "$m")/$(count CreateMultipartUpload 200 "$m")/$(count CompleteMultipartUpload 200 "$m")" "9/1/1"
t_ok "s3: awscli downloads it" aws_s3 s3 cp --only-show-errors "s3://$FERRY_S3_BUCKET/b/big.bin" "$tmpdir/aws-big.bin"
t_eq "s3: ... with the same SHA-256" "$(sha "$tmpdir/aws-big.bin")" "$(sha "$tmpdir/files/big.bin")"
t_eq "s3: no upload record is left" "$(find "$FERRY_STATE_DIR/uploads" -name '*.json' 2>/dev/null | wc -l)" 0

# --- killed halfway, resumed -----------------------------------------------------------

head -c $((60 * 1024 * 1024)) /dev/urandom >"$tmpdir/files/resume.bin"
s3_fault slow 1000 $((8 * 1024 * 1024))
m=$(mark)
"$FERRY" --set s3.part_size_mb=5 --set s3.parallel=1 store put "$tmpdir/files/resume.bin" c/resume.bin \
	>"$tmpdir/killed.out" 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do
	[ "$(count UploadPart 200 "$m")" -ge 4 ] && break
	sleep 0.1
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
sleep 1
before=$(count UploadPart 200 "$m")
s3_fault slow 0
t_ne "s3: the killed run sent some parts" "$before" 0
t_ne "s3: ... but not all 12" "$before" 12
t_eq "s3: ... and left its upload record" "$(find "$FERRY_STATE_DIR/uploads" -name '*.json' | wc -l)" 1
m=$(mark)
t_ok "s3: put again resumes" "$FERRY" --set s3.part_size_mb=8 store put --json "$tmpdir/files/resume.bin" c/resume.bin
t_eq "s3: resumed with the recorded part size, not the new setting" \
	"$(json_get "$T_OUT" '[d["resumed"], d["parts"], d["part_size"]]')" "[true,12,5242880]"
t_eq "s3: only the missing parts were sent" "$(count UploadPart 200 "$m")" $((12 - before))
t_eq "s3: ... found with ListParts, without a new upload" \
	"$(count ListParts 200 "$m")/$(count CreateMultipartUpload 200 "$m")" "1/0"
t_ok "s3: awscli downloads the resumed object" aws_s3 s3 cp --only-show-errors "s3://$FERRY_S3_BUCKET/c/resume.bin" "$tmpdir/aws-resume.bin"
t_eq "s3: ... with the same SHA-256" "$(sha "$tmpdir/aws-resume.bin")" "$(sha "$tmpdir/files/resume.bin")"
t_eq "s3: the record is gone once complete" "$(find "$FERRY_STATE_DIR/uploads" -name '*.json' | wc -l)" 0

# --- faults ----------------------------------------------------------------------------

head -c $((20 * 1024 * 1024)) /dev/urandom >"$tmpdir/files/faults.bin"
s3_fault drop_part 1
m=$(mark)
t_ok "s3: a part whose connection drops halfway" \
	"$FERRY" --set s3.part_size_mb=5 store put "$tmpdir/files/faults.bin" d/drop.bin
t_eq "s3: ... is cut once and sent again: 4 parts arrive" \
	"$(s3_log | tail -n +"$m" | grep -c 'fault=drop_part')/$(count UploadPart 200 "$m")" "1/4"
s3_fault error_part 2
m=$(mark)
t_ok "s3: parts answered 500" "$FERRY" --set s3.part_size_mb=5 store put "$tmpdir/files/faults.bin" d/error.bin
t_eq "s3: ... are retried: 2 answered 500, 4 arrive" "$(count UploadPart 500 "$m")/$(count UploadPart 200 "$m")" "2/4"
t_ok "s3: awscli downloads it" aws_s3 s3 cp --only-show-errors "s3://$FERRY_S3_BUCKET/d/error.bin" "$tmpdir/aws-error.bin"
t_eq "s3: ... with the same SHA-256" "$(sha "$tmpdir/aws-error.bin")" "$(sha "$tmpdir/files/faults.bin")"

s3_fault error_part 100
m=$(mark)
t_fails "s3: a part that keeps failing fails the upload" 1 \
	"$FERRY" --set s3.part_size_mb=5 --set s3.tries=2 store put "$tmpdir/files/faults.bin" d/never.bin
t_match "s3: ... with S3's code and the number of tries" "$(cat "$T_ERR")" 'after 2 tries.*500 InternalError'
t_eq "s3: ... and the upload is aborted" "$(count AbortMultipartUpload 204 "$m")" 1
t_eq "s3: ... leaving no record" "$(find "$FERRY_STATE_DIR/uploads" -name '*.json' | wc -l)" 0
s3_fault error_part 0

# --- credentials -------------------------------------------------------------------------

t_fails "s3: a wrong secret is a credentials error (3)" 3 \
	env AWS_SECRET_ACCESS_KEY=not-the-secret-key "$FERRY" store put "$tmpdir/files/small.bin" e/x.bin
t_match "s3: ... that says so" "$(cat "$T_ERR")" 'credentials were refused.*AWS_SECRET_ACCESS_KEY'
t_not_match "s3: ... without showing the secret" "$(cat "$T_ERR")" 'not-the-secret-key'
t_fails "s3: a wrong secret on a GET names S3's code" 3 \
	env AWS_SECRET_ACCESS_KEY=not-the-secret-key "$FERRY" store ls
t_match "s3: ... SignatureDoesNotMatch" "$(cat "$T_ERR")" '403 SignatureDoesNotMatch'
t_fails "s3: no bucket is a configuration error" 3 env -u FERRY_S3_BUCKET "$FERRY" store ls
t_ok "s3: a traced put" "$FERRY" -vvv store put "$tmpdir/files/small.bin" e/traced.bin
t_not_match "s3: the trace never shows the secret or a signature" "$(cat "$T_ERR")" \
	"$AWS_SECRET_ACCESS_KEY|Signature=[0-9a-f]{64}"
t_match "s3: ... though it shows the exchange" "$(cat "$T_ERR")" 'Authorization: \*\*\*\*'

# --- publish ---------------------------------------------------------------------------

job=$tmpdir/job
mkdir -p "$job/samples" "$job/.ferry-state"
head -c 300000 /dev/urandom >"$job/my_lora.safetensors"
head -c 20000 /dev/urandom >"$job/samples/1.png"
head -c 1000 /dev/urandom >"$job/optimizer.pt"
printf 'config:\n  hf_token: hf_secret_value\n' >"$job/config.yaml"
echo 'HF_TOKEN=hf_secret_value' >"$job/.env"
echo partial >"$job/samples/2.png.part"
echo mark >"$job/.ferry-state/pulled"
m=$(mark)
t_ok "publish to s3" "$FERRY" publish "$job" --prefix jobs/j1 --json
cp "$T_OUT" "$tmpdir/result-out.json"
t_eq "publish: result.json lists the artifacts" \
	"$(json_get "$tmpdir/result-out.json" '[f["key"] for f in d["files"]]')" \
	'["jobs/j1/my_lora.safetensors","jobs/j1/samples/1.png"]'
t_eq "publish: ... and what was left out" \
	"$(json_get "$tmpdir/result-out.json" 'sorted(s["path"] for s in d["skipped"])')" \
	'[".env",".ferry-state/pulled","config.yaml","optimizer.pt","samples/2.png.part"]'
t_eq "publish: result.json is the last object written" \
	"$(s3_log | tail -n +"$m" | awk '$1 == "PutObject" { p = $3 } END { print p }')" \
	"/$FERRY_S3_BUCKET/jobs/j1/result.json"
t_eq "publish: config.yaml never reached the store" \
	"$(s3_log | tail -n +"$m" | grep -c 'config.yaml\|\.env\|optimizer')" 0
t_ok "publish: awscli fetches result.json" aws_s3 s3 cp --only-show-errors "s3://$FERRY_S3_BUCKET/jobs/j1/result.json" "$tmpdir/result.json"
t_eq "publish: ... the same as printed" \
	"$(json_get "$tmpdir/result.json" .files)" "$(json_get "$tmpdir/result-out.json" .files)"
ok=0
for i in 0 1; do
	url=$(json_get "$tmpdir/result.json" ".files[$i].url")
	want=$(json_get "$tmpdir/result.json" ".files[$i].sha256")
	curl -sSf -o "$tmpdir/fetched" "$url" && [ "$(sha "$tmpdir/fetched")" = "$want" ] && ok=$((ok + 1))
done
t_eq "publish: every presigned URL serves its file, SHA-256 as listed" "$ok" 2
t_ok "publish: --with-optimizer" "$FERRY" publish "$job" --prefix jobs/j2 --with-optimizer --json
t_match "publish: ... publishes optimizer.pt" "$(json_get "$T_OUT" '[f["path"] for f in d["files"]]')" 'optimizer.pt'
t_ok "publish: with a public URL" env R2_PUBLIC_URL=https://pub.example.org/ "$FERRY" publish "$job" --prefix jobs/j3 --json
t_eq "publish: ... the URLs are public ones" "$(json_get "$T_OUT" '[f["url"] for f in d["files"]]')" \
	'["https://pub.example.org/jobs/j3/my_lora.safetensors","https://pub.example.org/jobs/j3/samples/1.png"]'
t_ok "publish to the dir store" "$FERRY" publish --store dir "$job" --prefix jobs/j1
t_file "publish: dir: result.json is there" "$XDG_STATE_HOME/ferry/artifacts/jobs/j1/result.json"
t_no_file "publish: dir: config.yaml is not" "$XDG_STATE_HOME/ferry/artifacts/jobs/j1/config.yaml"

# The progress bar: on a terminal only.
if command -v script >/dev/null; then
	t_ok "s3: put on a terminal" script -qec "$(printf '%q ' "$FERRY" store put "$tmpdir/files/big.bin" tty/big.bin)" /dev/null
	t_match "s3: ... shows a bar with the rate" "$(tr '\r' '\n' <"$T_OUT")" "%  .* of 40\.0 MiB .*MiB/s"
fi
t_ok "s3: put off a terminal" "$FERRY" store put "$tmpdir/files/big.bin" notty/big.bin
t_not_match "s3: ... shows none" "$(cat "$T_ERR")" "MiB/s"

done_testing
