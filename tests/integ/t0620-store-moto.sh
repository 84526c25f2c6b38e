#!/usr/bin/env bash
# t0620-store-moto: the s3 store against moto, an S3 whose answers are shaped
# unlike AWS's and s3rver's: a CompleteMultipartUpload answer whose root is
# <CompleteMultipartUploadResponse> and a <ListPartsResponse> must be read by
# what they hold. A real multipart upload (put, get back, the ETag made of the
# parts' MD5s), and one killed halfway and resumed through ListParts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/s3.sh"
require_cmd sha256sum curl python3
moto_start || exit 1
export FERRY_STORE=s3

sha() { sha256sum "$1" | cut -d' ' -f1; }
# moto_py CODE...: boto3 against moto (a third signer; moto checks none).
moto_py() {
	python3 -c "import boto3, json, sys
s3 = boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', region_name='us-east-1')
$1"
}

mkdir -p "$tmpdir/files"
head -c $((12 * 1024 * 1024 + 777)) /dev/urandom >"$tmpdir/files/big.bin"

# --- one multipart upload ------------------------------------------------------

t_ok "moto: multipart put" "$FERRY" --set s3.part_size_mb=5 --set s3.multipart_mb=5 \
	store put --json "$tmpdir/files/big.bin" m/big.bin
t_eq "moto: 3 parts of 5 MiB, all sent" \
	"$(json_get "$T_OUT" '[d["multipart"], d["parts"], d["parts_sent"], d["part_size"]]')" \
	"[true,3,3,5242880]"
t_eq "moto: put reports the file's SHA-256" "$(json_get "$T_OUT" .sha256)" "$(sha "$tmpdir/files/big.bin")"
t_ok "moto: boto3 sees the object" moto_py "h = s3.head_object(Bucket='ferry-test', Key='m/big.bin')
print(h['ContentLength'], h['ETag'], h['Metadata'].get('sha256', ''))"
t_match "moto: its size, a multipart ETag and x-amz-meta-sha256" "$(cat "$T_OUT")" \
	"^$((12 * 1024 * 1024 + 777)) \"[0-9a-f]{32}-3\" $(sha "$tmpdir/files/big.bin")$"
t_ok "moto: no upload left open" moto_py "print(len(s3.list_multipart_uploads(Bucket='ferry-test').get('Uploads', [])))"
t_eq "moto: ... none" "$(cat "$T_OUT")" 0
t_ok "moto: get" "$FERRY" store get m/big.bin "$tmpdir/back.bin"
t_eq "moto: get gives the same bytes" "$(sha "$tmpdir/back.bin")" "$(sha "$tmpdir/files/big.bin")"
t_ok "moto: put again" "$FERRY" --set s3.part_size_mb=5 --set s3.multipart_mb=5 \
	store put --json "$tmpdir/files/big.bin" m/big.bin
t_eq "moto: the same object is not sent again" "$(json_get "$T_OUT" .skipped)" true

# --- killed halfway, resumed through ListParts -------------------------------------

head -c $((160 * 1024 * 1024)) /dev/urandom >"$tmpdir/files/resume.bin"
"$FERRY" --set s3.part_size_mb=5 --set s3.parallel=1 store put "$tmpdir/files/resume.bin" r/resume.bin \
	</dev/null >/dev/null 2>"$tmpdir/kill.err" &
pid=$!
parts=0
for ((i = 0; i < 600; i++)); do
	parts=$(moto_py "u = s3.list_multipart_uploads(Bucket='ferry-test').get('Uploads', [])
print(len(s3.list_parts(Bucket='ferry-test', Key='r/resume.bin', UploadId=u[0]['UploadId']).get('Parts', [])) if u else 0)" 2>/dev/null)
	[ "${parts:-0}" -ge 3 ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ "${parts:-0}" -ge 3 ] && [ "$parts" -lt 32 ]; then
	t_pass "moto: the upload was killed after $parts of 32 parts"
	t_ok "moto: put again resumes" "$FERRY" --set s3.part_size_mb=5 store put --json \
		"$tmpdir/files/resume.bin" r/resume.bin
	t_eq "moto: resumed, only the missing parts sent" \
		"$(json_get "$T_OUT" '[d["resumed"], d["parts"], d["parts_sent"] <= 32 - '"$parts"']')" "[true,32,true]"
	t_ok "moto: get the resumed object" "$FERRY" store get r/resume.bin "$tmpdir/resume-back.bin"
	t_eq "moto: the resumed object is the file" "$(sha "$tmpdir/resume-back.bin")" "$(sha "$tmpdir/files/resume.bin")"
else
	t_skip "moto: resume after a kill" "the upload did not stop halfway (parts seen: ${parts:-none})"
fi

done_testing
