#!/usr/bin/env bash
# The S3 test world (tests/integ/s3.sh) is right: Debian's awscli, whose
# botocore signer owes nothing to ferry's or the proxy's, round-trips files
# through it, and every check the proxy adds to s3rver answers as S3/R2 would:
# signatures (header and presigned), digests, R2's multipart rules, ListParts,
# Abort, faults, and a request log without secrets.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/s3.sh"
[ -x "$S3_AWS_BIN" ] || _s3_missing "Debian's awscli at $S3_AWS_BIN"
/usr/bin/python3 -c 'import botocore' 2>/dev/null || _s3_missing "python3-botocore for /usr/bin/python3"
s3_start || exit 1

B=$FERRY_S3_BUCKET
D=$tmpdir/files
mkdir -p "$D"
MiB=$((1024 * 1024))

sha() { sha256sum "$1" | cut -d' ' -f1; }
md5b64() { openssl dgst -md5 -binary "$1" | base64; }
# S3's multipart ETag: MD5 of the parts' binary MD5s, then -N.
multipart_etag() {
	python3 - "$@" <<'EOF'
import hashlib, sys
digests = b"".join(hashlib.md5(open(p, "rb").read()).digest() for p in sys.argv[1:])
print("%s-%d" % (hashlib.md5(digests).hexdigest(), len(sys.argv) - 1))
EOF
}
botoreq() { /usr/bin/python3 "$FERRY_SRC/tests/s3/botoreq.py" "$@"; }
# http_code URL [CURL-ARGS...]: the status of a plain curl request; the body in $D/curl.out.
http_code() {
	local url=$1
	shift
	curl -s -o "$D/curl.out" -w '%{http_code}' --max-time 30 "$@" "$url"
}
# t_refused DESC REGEX CMD...: CMD fails and its output matches REGEX.
t_refused() {
	local desc=$1 re=$2
	shift 2
	_t_run "$@"
	if [ "$T_STATUS" -ne 0 ] && [[ "$(cat "$T_OUT" "$T_ERR")" =~ $re ]]; then
		t_pass "$desc"
	else
		t_fail "$desc"
		_t_cmd_diag "non-zero, with output matching '$re'" "$@"
		return 1
	fi
}
# One attempt only: awscli must not hide a refusal or a fault by retrying.
once() { AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard "$@"; }

# --- the world ----------------------------------------------------------------
t_ok "the proxy's signer reproduces AWS's published example signatures" node "$FERRY_SRC/tests/s3/selftest.js"
t_match "endpoint is the proxy on 127.0.0.1" "$AWS_ENDPOINT_URL" '^http://127\.0\.0\.1:[0-9]+$'
t_match "a random secret per run" "$AWS_SECRET_ACCESS_KEY" '^[A-Za-z0-9]{40}$'
t_eq "the proxy is in front of s3rver, not s3rver itself" \
	"$(http_code "$S3RVER_URL/$B")-$(http_code "$AWS_ENDPOINT_URL/$B")" 200-403

# --- awscli round trips -------------------------------------------------------
head -c 1000 /dev/urandom >"$D/small"
head -c $((40 * MiB)) /dev/urandom >"$D/big"
t_ok "aws s3 cp uploads a small file" aws_s3 s3 cp --only-show-errors "$D/small" "s3://$B/small.bin"
t_ok "and downloads it" aws_s3 s3 cp --only-show-errors "s3://$B/small.bin" "$D/small.back"
t_eq "same SHA-256 back" "$(sha "$D/small.back")" "$(sha "$D/small")"
t_ok "aws s3 cp uploads 40 MiB (multipart)" aws_s3 s3 cp --only-show-errors "$D/big" "s3://$B/dir/big"
t_eq "as five 8 MiB parts" "$(grep -c "^UploadPart PUT /$B/dir/big .* 200 $((8 * MiB)) 0$" "$S3_LOG")" 5
t_match "completed through the proxy" "$(s3_log)" "CompleteMultipartUpload POST /$B/dir/big uploadId=[^ ]+ 200 "
t_ok "and downloads it" aws_s3 s3 cp --only-show-errors "s3://$B/dir/big" "$D/big.back"
t_eq "same SHA-256 back" "$(sha "$D/big.back")" "$(sha "$D/big")"
split -b $((8 * MiB)) -d "$D/big" "$D/big.part."
want_etag=$(multipart_etag "$D"/big.part.*)
t_ok "head-object" aws_s3 s3api head-object --bucket "$B" --key dir/big --query ETag --output text
t_eq "the ETag is S3's md5-of-md5s-N, not s3rver's plain MD5" "$(cat "$T_OUT")" "\"$want_etag\""
t_ok "aws s3 ls --recursive" aws_s3 s3 ls --recursive "s3://$B/"
t_match "lists the big file" "$(cat "$T_OUT")" " $((40 * MiB)) dir/big"
t_match "lists the small file" "$(cat "$T_OUT")" " 1000 small.bin"
t_ok "list-objects-v2" aws_s3 s3api list-objects-v2 --bucket "$B" --prefix dir/ --query 'Contents[0].ETag' --output text
t_eq "the listing shows the multipart ETag too" "$(cat "$T_OUT")" "\"$want_etag\""
odd="d/odd name+(1)=ü~*'!%.txt"
t_ok "a key with spaces, +, =, %, quotes and UTF-8 goes up" aws_s3 s3 cp --only-show-errors "$D/small" "s3://$B/$odd"
t_ok "is listed" aws_s3 s3 ls "s3://$B/d/"
t_match "under its own name (encoding-type=url honoured)" "$(cat "$T_OUT")" " 1000 odd name\+\(1\)=ü~\*'!%\.txt"
t_ok "and comes back" aws_s3 s3 cp --only-show-errors "s3://$B/$odd" "$D/odd.back"
t_eq "whole" "$(sha "$D/odd.back")" "$(sha "$D/small")"

# --- signatures -------------------------------------------------------------------
AWS_SECRET_ACCESS_KEY=wrong-secret t_refused "a wrong secret is SignatureDoesNotMatch" \
	'SignatureDoesNotMatch' once aws_s3 s3api list-objects-v2 --bucket "$B"
head -c 2000 /dev/urandom >"$D/other"
AWS_SECRET_ACCESS_KEY=wrong-secret t_refused "a PUT with a wrong secret is refused" \
	'SignatureDoesNotMatch' once aws_s3 s3api put-object --bucket "$B" --key never --body "$D/other"
t_refused "and stored nothing" '404|Not Found' once aws_s3 s3api head-object --bucket "$B" --key never
AWS_ACCESS_KEY_ID=AKIANOSUCHKEY t_refused "an unknown key is InvalidAccessKeyId" \
	'InvalidAccessKeyId' once aws_s3 s3api list-objects-v2 --bucket "$B"
t_eq "an unsigned request is 403" "$(http_code "$AWS_ENDPOINT_URL/$B/small.bin")" 403
t_match "AccessDenied" "$(cat "$D/curl.out")" '<Code>AccessDenied</Code>'
t_ok "botocore signs a request by hand" botoreq GET "/$B?list-type=2"
t_eq "200" "$(head -n 1 "$T_OUT")" 200
t_ok "a clock 20 minutes ahead" botoreq --skew 1200 GET "/$B?list-type=2"
t_match "is RequestTimeTooSkewed" "$(cat "$T_OUT")" '^403.*<Code>RequestTimeTooSkewed</Code>'
t_ok "another region" botoreq --region eu-west-1 GET "/$B?list-type=2"
t_match "is refused" "$(cat "$T_OUT")" '^400.*AuthorizationHeaderMalformed.*expecting .*us-east-1'
t_ok "R2's region auto" botoreq --region auto GET "/$B?list-type=2"
t_match "is refused too: the world is S3 in us-east-1" "$(cat "$T_OUT")" '^400.*AuthorizationHeaderMalformed'
t_ok "an x-amz-meta header sent but not signed" botoreq --body "$D/other" --unsigned-header 'x-amz-meta-a: b' PUT "/$B/small.bin"
t_match "is AccessDenied, HeadersNotSigned" "$(cat "$T_OUT")" '^403.*<HeadersNotSigned>x-amz-meta-a</HeadersNotSigned>'
t_ok "a body that is not the one signed" botoreq --body "$D/other" --sign-body "$D/small" PUT "/$B/small.bin"
t_match "is XAmzContentSHA256Mismatch" "$(cat "$T_OUT")" '^400.*<Code>XAmzContentSHA256Mismatch</Code>'
aws_s3 s3 cp --only-show-errors "s3://$B/small.bin" "$D/small.after" 2>&1
t_eq "and the object is untouched" "$(sha "$D/small.after")" "$(sha "$D/small")"

# --- presigned URLs -----------------------------------------------------------------
t_ok "aws s3 presign" aws_s3 s3 presign "s3://$B/small.bin" --expires-in 300
url=$(cat "$T_OUT")
sig=${url##*X-Amz-Signature=}
t_match "a presigned URL" "$url" 'X-Amz-Signature=[0-9a-f]{64}'
t_eq "curl fetches it" "$(http_code "$url")" 200
t_eq "the same bytes" "$(sha "$D/curl.out")" "$(sha "$D/small")"
last=${url: -1}
[ "$last" = 0 ] && flip=1 || flip=0
t_eq "one signature character changed: 403" "$(http_code "${url%?}$flip")" 403
t_match "SignatureDoesNotMatch" "$(cat "$D/curl.out")" '<Code>SignatureDoesNotMatch</Code>'
t_eq "a longer expiry than signed: 403" "$(http_code "${url/X-Amz-Expires=300/X-Amz-Expires=600}")" 403
t_eq "another key than signed: 403" "$(http_code "${url/small.bin/dir\/big}")" 403
t_ok "a URL that expires in 1 s" aws_s3 s3 presign "s3://$B/small.bin" --expires-in 1
short=$(cat "$T_OUT")
sleep 2.2
t_eq "is refused 2 s later" "$(http_code "$short")" 403
t_match "Request has expired" "$(cat "$D/curl.out")" '<Code>AccessDenied</Code><Message>Request has expired</Message>'
t_ok "botocore presigns for 7 days and 1 s" botoreq --presign 604801 GET "/$B/small.bin"
t_eq "over 7 days is refused" "$(http_code "$(cat "$T_OUT")")" 400
t_match "AuthorizationQueryParametersError" "$(cat "$D/curl.out")" 'AuthorizationQueryParametersError.*less than a week'
t_ok "botocore presigns a PUT" botoreq --presign 300 PUT "/$B/presigned-put"
t_eq "curl -T uploads with it" "$(http_code "$(cat "$T_OUT")" -T "$D/other")" 200
aws_s3 s3 cp --only-show-errors "s3://$B/presigned-put" "$D/put.back" 2>&1
t_eq "what it uploaded is there" "$(sha "$D/put.back")" "$(sha "$D/other")"
botoreq --presign 300 PUT "/$B/too-large" >"$D/url"
t_eq "a PUT that announces 5 GiB + 1 byte is refused at once" \
	"$(http_code "$(cat "$D/url")" -X PUT -H 'Content-Length: 5368709121' -H 'Expect: 100-continue' --data-binary '')" 400
t_match "EntityTooLarge" "$(cat "$D/curl.out")" '<Code>EntityTooLarge</Code>'

# --- Content-MD5 ------------------------------------------------------------------
t_refused "a wrong Content-MD5 is BadDigest" 'BadDigest' \
	once aws_s3 s3api put-object --bucket "$B" --key md5 --body "$D/other" --content-md5 "$(md5b64 "$D/small")"
t_refused "a malformed Content-MD5 is InvalidDigest" 'InvalidDigest' \
	once aws_s3 s3api put-object --bucket "$B" --key md5 --body "$D/other" --content-md5 "bm90IGFuIG1kNQ=="
t_ok "the right Content-MD5 is taken" \
	once aws_s3 s3api put-object --bucket "$B" --key md5 --body "$D/other" --content-md5 "$(md5b64 "$D/other")"

# --- multipart: R2's rules, ListParts, Abort --------------------------------------------
head -c $((1 * MiB)) /dev/urandom >"$D/p1m"
head -c $((5 * MiB)) /dev/urandom >"$D/p5m"
head -c $((6 * MiB)) /dev/urandom >"$D/p6m"
create() {
	aws_s3 s3api create-multipart-upload --bucket "$B" --key "$1" --query UploadId --output text
}
# part ID KEY N FILE: upload a part, print its ETag.
part() {
	once aws_s3 s3api upload-part --bucket "$B" --key "$2" --upload-id "$1" --part-number "$3" \
		--body "$4" --query ETag --output text
}
# parts_json N:ETAG...: the --multipart-upload argument for complete.
parts_json() {
	local p out=
	for p in "$@"; do
		out="$out${out:+,}{\"PartNumber\":${p%%:*},\"ETag\":${p#*:}}"
	done
	echo "{\"Parts\":[$out]}"
}
complete() {
	local id=$1 key=$2
	shift 2
	once aws_s3 s3api complete-multipart-upload --bucket "$B" --key "$key" --upload-id "$id" \
		--multipart-upload "$(parts_json "$@")"
}

id=$(create mp/small-parts)
t_match "create-multipart-upload" "$id" '^[0-9a-f]+$'
e1=$(part "$id" mp/small-parts 1 "$D/p1m")
e2=$(part "$id" mp/small-parts 2 "$D/p1m")
t_eq "a part's ETag is its MD5" "$e1" "\"$(md5sum <"$D/p1m" | cut -d' ' -f1)\""
t_refused "a first part under 5 MiB is EntityTooSmall" 'EntityTooSmall' complete "$id" mp/small-parts "1:$e1" "2:$e2"
t_ok "list-parts" aws_s3 s3api list-parts --no-paginate --bucket "$B" --key mp/small-parts --upload-id "$id" \
	--query 'Parts[].[PartNumber,Size,ETag]' --output text
t_eq "shows both parts: number, size, ETag" "$(cat "$T_OUT")" "$(printf '1\t%s\t%s\n2\t%s\t%s' "$MiB" "$e1" "$MiB" "$e2")"
t_ok "list-parts --max-parts 1" aws_s3 s3api list-parts --no-paginate --bucket "$B" --key mp/small-parts \
	--upload-id "$id" --max-parts 1 --query '[Parts[].PartNumber, IsTruncated, NextPartNumberMarker]' --output json
t_eq "is truncated after part 1" "$(tr -d ' \n' <"$T_OUT")" '[[1],true,1]'
t_ok "list-parts --part-number-marker 1" aws_s3 s3api list-parts --no-paginate --bucket "$B" --key mp/small-parts \
	--upload-id "$id" --part-number-marker 1 --query '[Parts[].PartNumber, IsTruncated]' --output json
t_eq "starts at part 2" "$(tr -d ' \n' <"$T_OUT")" '[[2],false]'
t_ok "list-multipart-uploads" aws_s3 s3api list-multipart-uploads --bucket "$B" --query 'Uploads[].UploadId' --output text
t_match "shows the open upload" "$(cat "$T_OUT")" "$id"
t_ok "abort-multipart-upload" once aws_s3 s3api abort-multipart-upload --bucket "$B" --key mp/small-parts --upload-id "$id"
t_match "is 204 in the log" "$(s3_log)" "AbortMultipartUpload DELETE /$B/mp/small-parts uploadId=$id 204 "
t_refused "list-parts after abort is NoSuchUpload" 'NoSuchUpload' \
	once aws_s3 s3api list-parts --bucket "$B" --key mp/small-parts --upload-id "$id"
t_refused "upload-part after abort is NoSuchUpload" 'NoSuchUpload' part "$id" mp/small-parts 3 "$D/p1m"
t_no_file "s3rver's parts are gone" "$S3_WORLD_DIR/data/$B/._S3rver_uploads/$id"
t_refused "a made-up upload id is NoSuchUpload" 'NoSuchUpload' part 0123abcd mp/small-parts 1 "$D/p1m"

id=$(create mp/sizes)
e1=$(part "$id" mp/sizes 1 "$D/p5m")
e2=$(part "$id" mp/sizes 2 "$D/p6m")
e3=$(part "$id" mp/sizes 3 "$D/p1m")
t_refused "unequal non-trailing parts are refused" 'InvalidPart.*same length' complete "$id" mp/sizes "1:$e1" "2:$e2" "3:$e3"
t_refused "a last part larger than the others is refused" 'InvalidPart.*same length' complete "$id" mp/sizes "1:$e1" "2:$e2"
t_refused "an ETag that is not the part's is InvalidPart" 'InvalidPart' complete "$id" mp/sizes "1:$e2" "3:$e3"
t_refused "parts out of order are InvalidPartOrder" 'InvalidPartOrder' complete "$id" mp/sizes "3:$e3" "1:$e1"
t_refused "a part never uploaded is InvalidPart" 'InvalidPart' complete "$id" mp/sizes "1:$e1" "4:$e3"
t_ok "parts 1 (5 MiB) and 3 (1 MiB) complete" complete "$id" mp/sizes "1:$e1" "3:$e3"
t_match "with the md5-of-md5s-2 ETag" "$(cat "$T_OUT")" "\"ETag\": .*$(multipart_etag "$D/p5m" "$D/p1m")"
cat "$D/p5m" "$D/p1m" >"$D/p5m1m"
aws_s3 s3 cp --only-show-errors "s3://$B/mp/sizes" "$D/sizes.back" 2>&1
t_eq "the object is parts 1 and 3" "$(sha "$D/sizes.back")" "$(sha "$D/p5m1m")"
t_refused "the completed upload is gone" 'NoSuchUpload' part "$id" mp/sizes 4 "$D/p1m"
t_ok "a plain PUT over the multipart object" once aws_s3 s3api put-object --bucket "$B" --key mp/sizes --body "$D/p1m"
t_ok "head-object" aws_s3 s3api head-object --bucket "$B" --key mp/sizes --query ETag --output text
t_eq "has a plain MD5 ETag again" "$(cat "$T_OUT")" "\"$(md5sum <"$D/p1m" | cut -d' ' -f1)\""

# --- faults ---------------------------------------------------------------------------
id=$(create mp/faults)
t_ok "drop_part armed" s3_fault drop_part 1
t_refused "an upload-part is cut halfway" '[Cc]onnection|[Bb]roken pipe|reset' part "$id" mp/faults 1 "$D/p5m"
# awscli's s3 and s3api commands put the query's two parameters in either order.
q1="(partNumber=1&uploadId=$id|uploadId=$id&partNumber=1)"
q2="(partNumber=2&uploadId=$id|uploadId=$id&partNumber=2)"
t_match "logged as dropped after about half" "$(s3_log)" "UploadPart PUT /$B/mp/faults $q1 0 (26|27)[0-9]{5} 0 fault=drop_part"
t_ok "list-parts" aws_s3 s3api list-parts --bucket "$B" --key mp/faults --upload-id "$id" --query 'Parts[].PartNumber' --output text
t_eq "has no part from it" "$(cat "$T_OUT")" None
s3_fault drop_part 1
t_ok "with retries, awscli gets the part through a drop" \
	aws_s3 s3api upload-part --bucket "$B" --key mp/faults --upload-id "$id" --part-number 1 --body "$D/p5m"
t_eq "dropped twice, then stored" "$(grep -cE "^UploadPart PUT /$B/mp/faults $q1 0 .*fault=drop_part$" "$S3_LOG") $(grep -cE "^UploadPart PUT /$B/mp/faults $q1 200 $((5 * MiB)) " "$S3_LOG")" "2 1"
t_ok "error_part armed" s3_fault error_part 1
t_refused "an upload-part gets 500 InternalError" 'InternalError' part "$id" mp/faults 2 "$D/p1m"
t_match "logged" "$(s3_log)" "UploadPart PUT /$B/mp/faults $q2 500 $MiB [0-9]+ InternalError"
t_ok "the next one goes through" part "$id" mp/faults 2 "$D/p1m"
t_ok "slow armed at 2 MiB/s" s3_fault slow 1 $((2 * MiB))
t0=$(date +%s%N)
t_ok "a slowed 5 MiB part still arrives" part "$id" mp/faults 3 "$D/p5m"
ms=$((($(date +%s%N) - t0) / 1000000))
t_match "in no less than 2 s (${ms} ms)" "$ms" '^([2-9][0-9]{3}|[0-9]{5,})$'
t_ok "/__proxy/faults" curl -sf "$AWS_ENDPOINT_URL/__proxy/faults"
t_eq "counts what fired, nothing left armed" \
	"$(json_get "$T_OUT" '[d["fired"]["drop_part"], d["fired"]["error_part"], d["fired"]["slow"], sum(d["armed"].values())]')" '[2,1,1,0]'
t_fails "an unknown fault is refused" 22 s3_fault no_such_fault
aws_s3 s3api abort-multipart-upload --bucket "$B" --key mp/faults --upload-id "$id"

# --- the log and secrets ------------------------------------------------------------------
log=$(s3_log)
for op in PutObject GetObject HeadObject ListObjects CreateMultipartUpload UploadPart \
	CompleteMultipartUpload ListParts AbortMultipartUpload ListMultipartUploads; do
	t_match "the request log has $op" "$(grep -m1 "^$op " "$S3_LOG")" "^$op [A-Z]+ /$B"
done
t_match "and the refusals with their codes" "$log" " 403 [0-9]+ [0-9]+ SignatureDoesNotMatch"
t_eq "/__proxy/log serves the same log" "$(curl -sf "$AWS_ENDPOINT_URL/__proxy/log")" "$log"
t_match "presigned queries are logged with the signature redacted" "$log" 'X-Amz-Signature=REDACTED'
t_not_match "no signature value in the log" "$log" 'Signature=[0-9a-f]{64}'
t_match "a signature to look for" "$sig" '^[0-9a-f]{64}$'
leaks=$(grep -rlF -e "$AWS_SECRET_ACCESS_KEY" -e "$sig" "$S3_WORLD_DIR" | grep -v "^$S3_WORLD_DIR/credentials$")
t_eq "neither the secret nor a signature is anywhere in the world's files (logs, s3rver's data)" "$leaks" ""
t_eq "the spool is empty" "$(find "$S3_WORLD_DIR/spool" -type f | wc -l)" 0
t_eq "the proxy wrote no errors" "$(cat "$S3_WORLD_DIR/proxy.err")" ""

done_testing
