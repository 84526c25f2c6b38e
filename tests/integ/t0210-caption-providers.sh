#!/usr/bin/env bash
# `ferry dataset fix` filling missing captions from a caption command (no
# shell, the path as one last argument, failures reported per image) and
# from an OpenAI-compatible endpoint (tests/integ/caption_server.py: key
# checked, request shape checked, the fixed image sent, retries on 429/500,
# the key never printed).
. "$(dirname "$0")/lib.sh"
require_cmd convert cwebp exiftool python3 identify

gen() { bash "$GEN_DATASET" "$@" >/dev/null; }
# Run from the scratch folder: a name like '$(touch x).png' that reached a
# shell would leave an x here.
cd "$tmpdir" || exit 1

# caption_of DIR REL: the caption file's content, or "<missing>".
caption_of() {
	if [ -f "$1/$2" ]; then cat -- "$1/$2"; else echo "<missing>"; fi
}

# --- a caption command --------------------------------------------------------

gen hostile-names "$tmpdir/hostile" 12 256x256
# The hostile names lose their captions, so the command has to write them.
hostile=('a b.jpg' '$(touch x).png' "it's \"quoted\".webp" 'ünïcødé 日本.jpg' '-dash.jpg' 'semi;colon.jpg')
for name in "${hostile[@]}"; do
	rm -f -- "$tmpdir/hostile/${name%.*}.txt"
done
cat >"$tmpdir/cap.py" <<'PY'
import json, os, sys
with open(os.environ["CAP_LOG"], "a", encoding="utf-8", errors="surrogateescape") as f:
    f.write(json.dumps(sys.argv[1:], ensure_ascii=False) + "\n")
if "semi;colon" in sys.argv[-1] and os.environ.get("CAP_FAIL_SEMI"):
    print("warming up\nmodel exploded on this one", file=sys.stderr)
    print("\nmodel exploded again", file=sys.stderr)
    sys.exit(3)
print("  a photo of a thing \n")
PY
export CAP_LOG=$tmpdir/argv.log

t_ok "caption command fills the missing captions" \
	"$FERRY" dataset fix "$tmpdir/hostile" -o "$tmpdir/hostile-out" --resolution 256 --json \
	--caption-cmd "python3 '$tmpdir/cap.py' --flag 'two words'"
t_eq "ready" "$(json_get "$T_OUT" .ready)" true
t_eq "six captions generated" "$(json_get "$T_OUT" .summary.caption_generated)" 6
t_eq "the command ran once per missing caption" "$(wc -l <"$CAP_LOG")" 6
t_no_file "nothing was executed (no x in the working folder)" "$tmpdir/x"
t_eq "no x anywhere" "$(find "$tmpdir" -name x | wc -l)" 0
for name in "${hostile[@]}"; do
	t_eq "caption for $name (trigger added)" \
		"$(caption_of "$tmpdir/hostile-out" "${name%.*}.txt")" "ohwx, a photo of a thing"
	t_eq "$name reached the command as one last argument, intact" \
		"$(python3 -c '
import json, sys
name = sys.argv[1]
for line in open(sys.argv[2], encoding="utf-8"):
    a = json.loads(line)
    if a[-1].endswith("/" + name):
        print(len(a), a[0], a[1])
        break
else:
    print("not found")' "$name" "$CAP_LOG")" "3 --flag two words"
done
t_eq "captions that existed were left alone" "$(caption_of "$tmpdir/hostile-out" img_001.txt)" \
	"a photo of ohwx person, number 1"
t_ok "the result passes check" "$FERRY" dataset check "$tmpdir/hostile-out" --resolution 256

# One image's captioning fails: reported with the program's stderr, the rest go on.
: >"$CAP_LOG"
t_fails "a failing caption command: exit 1" 1 env CAP_FAIL_SEMI=1 \
	"$FERRY" dataset fix "$tmpdir/hostile" -o "$tmpdir/hostile-out2" --resolution 256 --json \
	--caption-cmd "python3 $tmpdir/cap.py"
t_eq "five generated" "$(json_get "$T_OUT" .summary.caption_generated)" 5
t_eq "one failed" "$(json_get "$T_OUT" .summary.caption_failed)" 1
detail=$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_failed"][0]')
t_match "the failure names the exit status" "$detail" "exit status 3"
t_match "and the program's first stderr line" "$detail" "warming up"
t_not_match "only the first line" "$detail" "again"
t_eq "the failure is on that image" \
	"$(json_get "$T_OUT" '[a["path"] for a in d["actions"] if a["action"]=="caption_failed"][0]')" \
	"semi;colon.jpg"
t_eq "its caption stays missing" "$(caption_of "$tmpdir/hostile-out2" 'semi;colon.txt')" "<missing>"
t_eq "the others were written" "$(caption_of "$tmpdir/hostile-out2" 'a b.txt')" "ohwx, a photo of a thing"
t_eq "failures counted" "$(json_get "$T_OUT" .failures)" 1

# The setting works like the flag; a program that is not there fails per image.
t_fails "caption.cmd from the environment, program missing" 1 env FERRY_CAPTION_CMD=/nonexistent/captioner \
	"$FERRY" dataset fix "$tmpdir/hostile" -o "$tmpdir/hostile-out3" --resolution 256 --json
t_eq "six failures" "$(json_get "$T_OUT" .summary.caption_failed)" 6
t_match "they say the program could not run" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_failed"][0]')" \
	"nonexistent/captioner"
t_fails "both providers as flags: usage error" 2 "$FERRY" dataset fix "$tmpdir/hostile" \
	-o "$tmpdir/never" --caption-cmd true --caption-url http://127.0.0.1:9/v1
t_no_file "nothing written" "$tmpdir/never"

# The command gets ferry's environment without the secrets in it.
cat >"$tmpdir/capenv.py" <<'PY'
import json, os
with open(os.environ["CAP_ENV_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps(dict(os.environ)) + "\n")
print("a photo of a thing")
PY
export CAP_ENV_LOG=$tmpdir/env.log
: >"$CAP_ENV_LOG"
vast="vast-$$-$RANDOM-env-secret"
openai="sk-openai-$$-$RANDOM-env-secret"
t_ok "a caption command while ferry holds secrets" env VAST_API_KEY="$vast" \
	OPENAI_API_KEY="$openai" HF_TOKEN="hf-$vast" AWS_SECRET_ACCESS_KEY="aws-$vast" \
	R2_SECRET_ACCESS_KEY="r2-$vast" FERRY_CAPTION_API_KEY="cap-$vast" FERRY_T_PLAIN=plain-value \
	"$FERRY" dataset fix "$tmpdir/hostile" -o "$tmpdir/hostile-env" --resolution 256 --json \
	--caption-cmd "python3 $tmpdir/capenv.py"
t_eq "six captions generated" "$(json_get "$T_OUT" .summary.caption_generated)" 6
t_eq "the command recorded its environment six times" "$(wc -l <"$CAP_ENV_LOG")" 6
envs_with() {
	python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if eval(sys.argv[2], {}, {"e": json.loads(l)})))' "$CAP_ENV_LOG" "$1"
}
for var in VAST_API_KEY OPENAI_API_KEY HF_TOKEN AWS_SECRET_ACCESS_KEY R2_SECRET_ACCESS_KEY \
	FERRY_CAPTION_API_KEY; do
	t_eq "$var did not reach the command" "$(envs_with "'$var' in e")" 0
done
t_eq "no secret value reached it under any name" "$(grep -c -- "env-secret" "$CAP_ENV_LOG")" 0
t_eq "ordinary variables did" "$(envs_with 'e.get("FERRY_T_PLAIN")=="plain-value" and "PATH" in e')" 6

# --- an OpenAI-compatible endpoint ------------------------------------------------

gen warnings "$tmpdir/warn" 12 512x512
rm -f "$tmpdir/warn/rotated.txt" "$tmpdir/warn/large.txt" # the server must see them fixed
key="sk-ferry-test-$$-$RANDOM-do-not-print"

# start_server NAME [VAR=VALUE...]: a stand-in in the background; sets $port and $log.
start_server() {
	local name=$1 pid
	shift
	log=$tmpdir/$name.log
	: >"$log"
	rm -f "$tmpdir/$name.port"
	env CAPTION_SERVER_KEY="$key" "$@" python3 "$FERRY_SRC/tests/integ/caption_server.py" \
		"$tmpdir/$name.port" "$log" >/dev/null 2>"$tmpdir/$name.err" &
	pid=$!
	at_exit "kill $pid 2>/dev/null"
	for _ in $(seq 100); do
		[ -s "$tmpdir/$name.port" ] && break
		sleep 0.1
	done
	port=$(cat "$tmpdir/$name.port" 2>/dev/null)
	[ -n "$port" ] || { t_fail "caption server $name did not start" "$(cat "$tmpdir/$name.err")"; done_testing; }
}

# count_log EXPR: how many logged requests satisfy a Python expression over `r`.
count_log() {
	python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if eval(sys.argv[2], {}, {"r": json.loads(l)})))' "$log" "$1"
}

start_server first429 CAPTION_SERVER_FAIL_FIRST=2 CAPTION_SERVER_FAIL_STATUS=429
export FERRY_CAPTION_API_KEY=$key
t_ok "a caption URL fills captions, through two 429s" \
	"$FERRY" -vv dataset fix "$tmpdir/warn" -o "$tmpdir/url-out" --json \
	--caption-url "http://127.0.0.1:$port/v1" --caption-model test-vision-1
t_eq "ready" "$(json_get "$T_OUT" .ready)" true
t_eq "no failures" "$(json_get "$T_OUT" .failures)" 0
# nocap.jpg, emptycap.jpg, rotated.jpg, large.png
t_eq "four captions generated" "$(json_get "$T_OUT" .summary.caption_generated)" 4
for stem in nocap emptycap rotated large; do
	t_eq "$stem.txt written from the server's answer" "$(caption_of "$tmpdir/url-out" "$stem.txt")" \
		"ohwx, a photo of a thing"
done
t_eq "two requests failed with 429" "$(count_log 'r["status"]==429')" 2
t_eq "four succeeded (the two were retried)" "$(count_log 'r["status"]==200')" 4
t_eq "every request carried the key" "$(count_log 'r["auth_ok"]')" 6
t_eq "the model was sent" "$(count_log 'r.get("model")=="test-vision-1"')" 4
t_eq "the default prompt was sent" "$(count_log '"describing this image" in (r.get("prompt") or "")')" 4
t_eq "the rotated image was sent upright (taller than wide)" \
	"$(count_log 'r.get("width")==384 and r.get("height")==512 and r.get("image_format")=="jpeg"')" 1
t_eq "the large image was sent shrunk to max-side" \
	"$(count_log 'r.get("width")==2048 and r.get("height")==2048 and r.get("image_format")=="png"')" 1
t_eq "the retries are in the debug log" "$(grep -c 'trying again' "$T_ERR")" 2
t_not_match "the key is not in stdout" "$(cat "$T_OUT")" "$key"
t_not_match "the key is not in stderr (-vv)" "$(cat "$T_ERR")" "$key"
t_eq "the key is in no output file" "$(grep -rl -- "$key" "$tmpdir/url-out" | wc -l)" 0

# 500s are retried too; content may come as a list of parts.
start_server first500 CAPTION_SERVER_FAIL_FIRST=1 CAPTION_SERVER_FAIL_STATUS=500 \
	CAPTION_SERVER_ARRAY=1 CAPTION_SERVER_RETRY_AFTER=0 CAPTION_SERVER_TEXT="a red barn"
t_ok "a 500 is retried" "$FERRY" dataset fix "$tmpdir/warn" -o "$tmpdir/url-out2" --json \
	--caption-url "http://127.0.0.1:$port/v1/chat/completions"
t_eq "one 500" "$(count_log 'r["status"]==500')" 1
t_eq "then four answers" "$(count_log 'r["status"]==200')" 4
t_eq "content parts joined" "$(caption_of "$tmpdir/url-out2" nocap.txt)" "ohwx, a red barn"

# A server that keeps failing: three tries per image, then a clear failure.
start_server always500 CAPTION_SERVER_FAIL_FIRST=1000 CAPTION_SERVER_FAIL_STATUS=503 \
	CAPTION_SERVER_RETRY_AFTER=0
t_fails "a server that always fails: exit 1" 1 "$FERRY" dataset fix "$tmpdir/warn" \
	-o "$tmpdir/url-out3" --json --caption-url "http://127.0.0.1:$port/v1"
t_eq "four caption failures" "$(json_get "$T_OUT" .summary.caption_failed)" 4
t_eq "three tries each" "$(count_log 'r["status"]==503')" 12
detail=$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_failed"][0]')
t_match "the message has the status and the server's words" "$detail" "HTTP 503.*stand-in failure"
t_match "and says how often it tried" "$detail" "after 3 tries"
t_eq "the result is still written" "$(json_get "$T_OUT" .check.ready)" true

# A wrong key: 401, not retried, and neither key is printed.
start_server wrongkey
t_fails "a wrong key: exit 1" 1 env FERRY_CAPTION_API_KEY="sk-wrong-$RANDOM-key-value" \
	"$FERRY" -vv dataset fix "$tmpdir/warn" -o "$tmpdir/url-out4" \
	--caption-url "http://127.0.0.1:$port/v1"
t_match "the 401 is reported" "$(cat "$T_OUT")" "caption_failed.*HTTP 401.*Incorrect API key"
t_eq "not retried" "$(count_log 'r["status"]==401')" 4
t_not_match "the wrong key is not printed" "$(cat "$T_OUT" "$T_ERR")" "sk-wrong-"
t_not_match "the right key is not printed" "$(cat "$T_OUT" "$T_ERR")" "$key"

# OPENAI_API_KEY works as the key too; the key never reaches argv of anything.
start_server openai
t_ok "OPENAI_API_KEY is used" env -u FERRY_CAPTION_API_KEY OPENAI_API_KEY="$key" \
	"$FERRY" dataset fix "$tmpdir/warn" -o "$tmpdir/url-out5" --caption-url "http://127.0.0.1:$port/v1"
t_eq "all four authorised" "$(count_log 'r["auth_ok"] and r["status"]==200')" 4
t_not_match "ferry config masks it" "$(env -u FERRY_CAPTION_API_KEY OPENAI_API_KEY="$key" "$FERRY" config)" "$key"

# Credentials in the URL are never shown: no user:password@, the query as "?…".
start_server userinfo
upw="pw-$$-$RANDOM-userinfo"
t_ok "a URL with user:password@" "$FERRY" -vv dataset fix "$tmpdir/warn" -o "$tmpdir/url-out6" \
	--json --caption-url "http://bob:$upw@127.0.0.1:$port/v1"
t_eq "four answers" "$(count_log 'r["status"]==200 and r["auth_ok"]')" 4
t_not_match "the password is not printed (-vv)" "$(cat "$T_OUT" "$T_ERR")" "$upw"
t_match "requests are logged with the URL, without it" "$(cat "$T_ERR")" \
	"POST http://127.0.0.1:$port/v1/chat/completions:"
t_eq "a key to this machine over http draws no warning" "$(grep -c unencrypted "$T_ERR")" 0

start_server query
qk="qk-$$-$RANDOM-query"
t_fails "a URL with ?key=: the stand-in has no such route" 1 "$FERRY" -vv dataset fix \
	"$tmpdir/warn" -o "$tmpdir/url-out7" --json --caption-url "http://127.0.0.1:$port/v1?key=$qk"
t_eq "/chat/completions went before the query" \
	"$(count_log 'r["path"]=="/v1/chat/completions?key='"$qk"'"')" 4
t_match "the server's answer is reported" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_failed"][0]')" \
	"HTTP 404"
t_match "and names the image" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_failed" and a["path"]=="nocap.jpg"][0]')" \
	"^nocap.jpg: "
t_not_match "the query's key is not printed, though the server echoed it" \
	"$(cat "$T_OUT" "$T_ERR")" "$qk"

t_ok "dry run with credentials in the URL" "$FERRY" dataset fix "$tmpdir/warn" --dry-run --json \
	--caption-url "http://bob:$upw@127.0.0.1:$port/v1?key=$qk"
t_match "the plan shows the URL without them" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_generated"][0]')" \
	"would ask url http://127.0.0.1:$port/v1/chat/completions\?…$"
t_not_match "neither is printed" "$(cat "$T_OUT" "$T_ERR")" "$upw|$qk|bob"

# A key sent over plain http:// to another machine: one warning.
t_ok "a key over http:// to another machine (dry run)" "$FERRY" dataset fix "$tmpdir/warn" \
	--dry-run --caption-url "http://caption.example.invalid/v1"
t_eq "warned once" "$(grep -c 'unencrypted' "$T_ERR")" 1
t_match "naming the URL" "$(cat "$T_ERR")" "caption.url http://caption.example.invalid/v1/chat/completions"
t_not_match "not the key" "$(cat "$T_ERR")" "$key"
t_ok "over https://" "$FERRY" dataset fix "$tmpdir/warn" --dry-run \
	--caption-url "https://caption.example.invalid/v1"
t_eq "no warning" "$(grep -c 'unencrypted' "$T_ERR")" 0
t_ok "without a key" env -u FERRY_CAPTION_API_KEY -u OPENAI_API_KEY "$FERRY" dataset fix \
	"$tmpdir/warn" --dry-run --caption-url "http://caption.example.invalid/v1"
t_eq "no warning" "$(grep -c 'unencrypted' "$T_ERR")" 0

# Dry run: nobody is asked.
start_server dry
t_ok "dry run with a caption URL" "$FERRY" dataset fix "$tmpdir/warn" --dry-run --json \
	--caption-url "http://127.0.0.1:$port/v1"
t_eq "no request made" "$(wc -l <"$log")" 0
t_match "the plan says who would be asked" \
	"$(json_get "$T_OUT" '[a["detail"] for a in d["actions"] if a["action"]=="caption_generated"][0]')" \
	"would ask url http://127.0.0.1:$port/v1/chat/completions"

done_testing
