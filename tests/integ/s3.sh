# shellcheck shell=bash
# tests/integ/s3.sh: a local S3 world for a test: s3rver (npm, pinned in
# tests/s3/package-lock.json) behind tests/s3/proxy.js, our strict proxy that
# verifies every SigV4 signature, Content-MD5 and x-amz-content-sha256,
# enforces R2's multipart rules, does ListParts and Abort (which s3rver
# cannot), injects faults and logs every request.
#
# Source it after lib.sh, then start the world and talk to it:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/s3.sh"
#   s3_start || exit 1
#   "$FERRY" store put --store s3 FILE KEY       # reads the AWS_* it exported
#   aws_s3 s3 cp "s3://$FERRY_S3_BUCKET/KEY" copy
#   s3_fault drop_part 1                          # the next part is cut halfway
#   s3_log | grep ' UploadPart '
#
# s3_start
#   Skips the whole script (skip_all) when node or s3rver is missing (run
#   scripts/deps.sh); under CI=true that is a failure instead. Starts s3rver
#   (NODE_OPTIONS=--openssl-legacy-provider, -d $S3_WORLD_DIR/data, 127.0.0.1,
#   a free port, --no-vhost-buckets, the bucket made at start) and the proxy
#   in front of it, waits until both answer (15 s at most), registers at_exit
#   to stop them, and exports:
#     AWS_ENDPOINT_URL       the proxy, http://127.0.0.1:PORT (path style)
#     AWS_ACCESS_KEY_ID      random per run; the only key the proxy accepts
#     AWS_SECRET_ACCESS_KEY  random per run
#     AWS_REGION             us-east-1, the only region the proxy takes
#     FERRY_S3_BUCKET        ferry-test, already made
#     S3_WORLD_DIR           $tmpdir/s3: data/ (s3rver's files), spool/,
#                            requests.log, proxy.err, s3rver.out, aws/
#     S3_LOG                 the request log file (see s3_log)
#     S3RVER_URL             s3rver itself, unsigned and unchecked: for tests
#                            that must look behind the proxy only
#     S3_PROXY_PID, S3RVER_PID
#   On failure it prints diagnostics and returns 1. Call it directly, not in
#   $(...). One world per test script.
# s3_fault NAME [COUNT] [RATE]
#   Arms a fault in the proxy for the next COUNT (default 1; 0 disarms)
#   matching requests:
#     drop_part   UploadPart: the client's connection is closed once half the
#                 body has arrived (nothing reaches s3rver)
#     error_part  UploadPart: the body is read, then 500 InternalError
#     slow        UploadPart or PutObject: the body is read at RATE bytes/s
#                 (default 1 MiB/s)
#   `curl $AWS_ENDPOINT_URL/__proxy/faults` shows what is armed and what fired.
# s3_log
#   Prints the request log, one line per S3 request, in arrival-of-answer
#   order: OP METHOD PATH QUERY STATUS BYTES_IN BYTES_OUT [NOTE]
#     OP      the S3 operation: PutObject, UploadPart, CreateMultipartUpload,
#             CompleteMultipartUpload, ListParts, AbortMultipartUpload,
#             GetObject, HeadObject, ListObjects, DeleteObject, ...
#     PATH    as sent (percent-encoded); QUERY as sent, X-Amz-Signature's
#             value replaced by REDACTED, or - when empty
#     STATUS  the HTTP status, 0 when no answer was sent
#     BYTES_IN / BYTES_OUT  body bytes received from / sent to the client
#     NOTE    fault=drop_part, client-gone, ... when there is one
#   A line is written before its answer's last byte leaves, so a client that
#   has its answer finds the line.
# moto_start
#   Instead of s3_start (one world per script): moto 5 (`python3 -m
#   moto.server`, for the python3 on PATH), a second S3 implementation whose
#   answers are shaped unlike AWS's and s3rver's (<CompleteMultipartUploadResponse>,
#   <ListPartsResponse>). It checks no signature and has no faults or request
#   log. Skips the script when python3 cannot import moto.server (deps.sh does
#   not install it). Starts it on 127.0.0.1 and a free port, waits (15 s),
#   makes the bucket, registers at_exit to stop it, and exports
#   AWS_ENDPOINT_URL (moto itself), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_REGION (us-east-1), FERRY_S3_BUCKET (ferry-test), S3_WORLD_DIR
#   ($tmpdir/moto: moto.out) and MOTO_PID.
# aws_s3 ARGS...
#   Debian's /usr/bin/aws (botocore: a signer independent of ferry's and the
#   proxy's) with --endpoint-url $AWS_ENDPOINT_URL, path-style addressing, no
#   pager, and a private config under $S3_WORLD_DIR/aws so ~/.aws is never
#   read, e.g. `aws_s3 s3 ls s3://$FERRY_S3_BUCKET/` or `aws_s3 s3api
#   list-parts ...`. Environment set before the call (AWS_MAX_ATTEMPTS=1,
#   AWS_SECRET_ACCESS_KEY=wrong) applies.
#
# Also: tests/s3/botoreq.py sends one request signed by botocore and then bent
# on purpose (a body other than the signed one, an unsigned header, a skewed
# clock) or prints a presigned URL; GET $AWS_ENDPOINT_URL/__proxy/uploads lists
# the open multipart uploads and their parts as JSON, /__proxy/log the log.

if [ -n "${_S3_SH_LOADED:-}" ]; then
	return 0
fi
_S3_SH_LOADED=1
S3_AWS_BIN=${S3_AWS_BIN:-/usr/bin/aws}

# _s3_missing WHAT: skip the script (fail it under CI, where deps.sh ran).
_s3_missing() {
	if [ "${CI:-}" = true ]; then
		echo "Bail out! the S3 test world needs $1 (scripts/deps.sh installs it)"
		exit 1
	fi
	skip_all "needs $1 (run scripts/deps.sh)"
}

_s3_random() {
	head -c 64 /dev/urandom | base64 -w0 | tr -dc "$1" | head -c "$2"
}

# _s3_wait_for FILE PID WHAT: wait (15 s) until FILE is non-empty.
_s3_wait_for() {
	local i
	for ((i = 0; i < 150; i++)); do
		[ -s "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	diag "$3 did not start within 15 s"
	return 1
}

_s3_fail() {
	diag "$1"
	_t_show "s3rver" "$S3_WORLD_DIR/s3rver.out"
	_t_show "proxy" "$S3_WORLD_DIR/proxy.err"
	return 1
}

s3_start() {
	local s3dir=$FERRY_SRC/tests/s3 line port i
	command -v node >/dev/null 2>&1 || _s3_missing node
	[ -f "$s3dir/node_modules/s3rver/bin/s3rver.js" ] || _s3_missing "s3rver in tests/s3/node_modules"
	command -v curl >/dev/null 2>&1 || _s3_missing curl

	S3_WORLD_DIR=$tmpdir/s3
	S3_LOG=$S3_WORLD_DIR/requests.log
	mkdir -p "$S3_WORLD_DIR/data" "$S3_WORLD_DIR/spool" "$S3_WORLD_DIR/aws" || return 1
	: >"$S3_LOG"
	FERRY_S3_BUCKET=ferry-test
	AWS_ACCESS_KEY_ID=FERRYTEST$(_s3_random 'A-Z0-9' 11)
	AWS_SECRET_ACCESS_KEY=$(_s3_random 'A-Za-z0-9' 40)
	AWS_REGION=us-east-1
	(umask 077 && echo "$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY" >"$S3_WORLD_DIR/credentials")
	cat >"$S3_WORLD_DIR/aws/config" <<EOF
[default]
region = $AWS_REGION
s3 =
  addressing_style = path
EOF
	: >"$S3_WORLD_DIR/aws/credentials"

	NODE_OPTIONS=--openssl-legacy-provider node "$s3dir/node_modules/s3rver/bin/s3rver.js" \
		-d "$S3_WORLD_DIR/data" -a 127.0.0.1 -p 0 -s --no-vhost-buckets \
		--configure-bucket "$FERRY_S3_BUCKET" \
		</dev/null >"$S3_WORLD_DIR/s3rver.out" 2>&1 &
	S3RVER_PID=$!
	at_exit "kill $S3RVER_PID 2>/dev/null; wait $S3RVER_PID 2>/dev/null"
	for ((i = 0; i < 150; i++)); do
		line=$(grep -m1 -o 'S3rver listening on 127.0.0.1:[0-9]*' "$S3_WORLD_DIR/s3rver.out" 2>/dev/null)
		[ -n "$line" ] && break
		kill -0 "$S3RVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$line" ] || {
		_s3_fail "s3rver did not start listening within 15 s"
		return 1
	}
	S3RVER_URL=http://127.0.0.1:${line##*:}

	node "$s3dir/proxy.js" --upstream "$S3RVER_URL" \
		--credentials "$S3_WORLD_DIR/credentials" --port-file "$S3_WORLD_DIR/proxy.port" \
		--log "$S3_LOG" --spool "$S3_WORLD_DIR/spool" --data-dir "$S3_WORLD_DIR/data" \
		--region "$AWS_REGION" </dev/null >"$S3_WORLD_DIR/proxy.err" 2>&1 &
	S3_PROXY_PID=$!
	at_exit "kill $S3_PROXY_PID 2>/dev/null; wait $S3_PROXY_PID 2>/dev/null"
	_s3_wait_for "$S3_WORLD_DIR/proxy.port" "$S3_PROXY_PID" "the S3 proxy" || {
		_s3_fail "the S3 proxy did not start"
		return 1
	}
	port=$(cat "$S3_WORLD_DIR/proxy.port")
	AWS_ENDPOINT_URL=http://127.0.0.1:$port
	export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION \
		FERRY_S3_BUCKET S3_WORLD_DIR S3_LOG S3RVER_URL S3_PROXY_PID S3RVER_PID
	# Ready when the bucket s3rver made answers through the proxy's control side.
	if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -I "$S3RVER_URL/$FERRY_S3_BUCKET")" != 200 ] ||
		! curl -sf --max-time 10 "$AWS_ENDPOINT_URL/__proxy/faults" >/dev/null; then
		_s3_fail "the S3 world does not answer (bucket $FERRY_S3_BUCKET at $S3RVER_URL, proxy at $AWS_ENDPOINT_URL)"
		return 1
	fi
	return 0
}

moto_start() {
	local port i
	command -v curl >/dev/null 2>&1 || _s3_missing curl
	python3 -c 'import moto.server' 2>/dev/null ||
		skip_all "needs moto 5 for python3 (pip install 'moto[server]')"
	S3_WORLD_DIR=$tmpdir/moto
	mkdir -p "$S3_WORLD_DIR" || return 1
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
	python3 -m moto.server -H 127.0.0.1 -p "$port" </dev/null >"$S3_WORLD_DIR/moto.out" 2>&1 &
	MOTO_PID=$!
	at_exit "kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null"
	AWS_ENDPOINT_URL=http://127.0.0.1:$port
	for ((i = 0; i < 150; i++)); do
		curl -s -o /dev/null --max-time 2 "$AWS_ENDPOINT_URL/" && break
		kill -0 "$MOTO_PID" 2>/dev/null || break
		sleep 0.1
	done
	FERRY_S3_BUCKET=ferry-test
	AWS_ACCESS_KEY_ID=FERRYMOTO$(_s3_random 'A-Z0-9' 11)
	AWS_SECRET_ACCESS_KEY=$(_s3_random 'A-Za-z0-9' 40)
	AWS_REGION=us-east-1
	if ! curl -sf -o /dev/null --max-time 10 -X PUT "$AWS_ENDPOINT_URL/$FERRY_S3_BUCKET"; then
		diag "moto did not start or refused the bucket (at $AWS_ENDPOINT_URL)"
		_t_show "moto" "$S3_WORLD_DIR/moto.out"
		return 1
	fi
	export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION \
		FERRY_S3_BUCKET S3_WORLD_DIR MOTO_PID
	return 0
}

s3_fault() {
	local url="$AWS_ENDPOINT_URL/__proxy/fault?name=$1&count=${2:-1}"
	[ -z "${3:-}" ] || url="$url&rate=$3"
	curl -sS --fail-with-body --max-time 10 -X POST "$url" >/dev/null
}

s3_log() {
	cat "$S3_LOG"
}

aws_s3() {
	[ -x "$S3_AWS_BIN" ] || {
		echo "aws_s3: $S3_AWS_BIN is missing (apt-get install awscli; scripts/deps.sh installs it)" >&2
		return 127
	}
	env -u PYTHONPATH -u PYTHONHOME -u AWS_PROFILE -u AWS_DEFAULT_PROFILE \
		AWS_CONFIG_FILE="$S3_WORLD_DIR/aws/config" \
		AWS_SHARED_CREDENTIALS_FILE="$S3_WORLD_DIR/aws/credentials" \
		AWS_EC2_METADATA_DISABLED=true AWS_PAGER= \
		AWS_DEFAULT_REGION="$AWS_REGION" \
		"$S3_AWS_BIN" --endpoint-url "$AWS_ENDPOINT_URL" --no-cli-pager \
		--cli-connect-timeout 10 --cli-read-timeout 120 "$@"
}
