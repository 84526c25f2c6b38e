# shellcheck shell=bash
# tests/integ/lib.sh: a small TAP library for ferry's integration tests.
#
# Source it first thing from a test script, then call the t_* helpers and end
# with done_testing (or announce the count up front with plan N):
#
#   . "$(dirname "$0")/lib.sh"
#   t_ok    "help prints"        "$FERRY" --help
#   t_match "help names check"   "$(cat "$T_OUT")" 'dataset check'
#   t_fails "unknown flag is 2"  2 "$FERRY" --no-such-flag
#   t_eq    "state"              "$(json_get "$T_OUT" .state)" SUCCEEDED
#   done_testing
#
# CTest runs each script as `bash tests/integ/tNNNN-name.sh` with FERRY (the
# binary), FERRY_SRC (source dir) and FERRY_BUILD (build dir) in the
# environment; run by hand, the defaults below find ./build/ferry.
#
# What sourcing does:
#   - makes $tmpdir (mktemp -d under ${TMPDIR:-/tmp}); removed on exit unless
#     FERRY_KEEP_TMP=1 is set; the working directory is left unchanged.
#   - points HOME's XDG folders (XDG_CACHE_HOME, XDG_CONFIG_HOME,
#     XDG_STATE_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR) into $tmpdir, and clears
#     ferry's settings from the environment (FERRY_* other than FERRY,
#     FERRY_SRC, FERRY_BUILD, FERRY_KEEP_TMP; VAST_*, VASTAI_*, R2_*, AWS_*,
#     OPENAI_API_KEY), so a test sees only what it sets itself. HOME itself is
#     left alone (tools such as pyenv's python3 shim need it).
#   - sets LC_ALL=C.UTF-8 and TZ=UTC.
#
# Helpers (each prints `ok N - desc` or `not ok N - desc` plus `# ` diagnostics):
#   t_ok DESC CMD ARGS...           passes when CMD exits 0
#   t_fails DESC STATUS CMD ARGS... passes when CMD exits exactly STATUS
#   t_eq DESC GOT EXPECTED          string equality
#   t_ne DESC GOT UNEXPECTED        string inequality
#   t_match DESC STRING REGEX       bash ERE match ([[ =~ ]])
#   t_not_match DESC STRING REGEX   the opposite
#   t_file DESC PATH                PATH is a regular file (symlinks followed)
#   t_no_file DESC PATH             nothing at PATH, not even a dangling link
#   t_pass DESC / t_fail DESC [DIAG...] / t_skip DESC REASON
#   diag MSG...                     print `# MSG` lines
#   plan N | done_testing | skip_all REASON | require_cmd CMD...
#   at_exit 'shell code'            run at exit (last registered runs first),
#                                   e.g. at_exit "kill $server_pid"
#   json_get FILE EXPR              print a value from a JSON file ('-' = stdin)
#
# t_ok and t_fails run CMD in the current shell (so shell functions work) with
# stdout in $T_OUT, stderr in $T_ERR and the status in $T_STATUS, all kept
# until the next t_ok/t_fails so the test can look at them. Programs (not
# shell functions) run under `timeout $T_TIMEOUT` (default 300 s; 0 = none).
# Stdin is inherited: redirect it (</dev/null) when the command must not read.
#
# The script's exit status is non-zero when any test failed, when the number of
# tests differs from the plan, or when it ends without plan/done_testing.

if [ -n "${_T_LIB_LOADED:-}" ]; then
	return 0
fi
_T_LIB_LOADED=1

_t_n=0          # tests run
_t_failed=0     # tests failed
_t_planned=     # N from plan, empty if none
_t_done=0       # done_testing or skip_all reached
_t_exit_cmds=() # at_exit registrations

# --- paths -------------------------------------------------------------------

if [ -z "${FERRY_SRC:-}" ]; then
	FERRY_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fi
if [ -z "${FERRY:-}" ]; then
	if [ -n "${FERRY_BUILD:-}" ]; then
		FERRY=$FERRY_BUILD/ferry
	else
		FERRY=$FERRY_SRC/build/ferry
	fi
fi
case $FERRY in
/*) ;;
*/*) FERRY=$PWD/$FERRY ;;
esac
case ${FERRY_BUILD:-} in
'') FERRY_BUILD=$(dirname "$FERRY") ;;
/*) ;;
*) FERRY_BUILD=$PWD/$FERRY_BUILD ;;
esac
export FERRY FERRY_SRC FERRY_BUILD
# shellcheck disable=SC2034 # for the scripts that source this file
GEN_DATASET=$FERRY_SRC/tests/integ/gen_dataset.sh

# --- environment ---------------------------------------------------------------

while IFS= read -r _t_var; do
	case $_t_var in
	FERRY | FERRY_SRC | FERRY_BUILD | FERRY_KEEP_TMP) ;;
	FERRY_* | VAST_* | VASTAI_* | R2_* | AWS_* | OPENAI_API_KEY) unset "$_t_var" ;;
	esac
done < <(compgen -e)
unset _t_var

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-integ.XXXXXX") || {
	echo "Bail out! cannot make a temporary directory"
	exit 255
}
mkdir -p "$tmpdir/.t" "$tmpdir/xdg/cache" "$tmpdir/xdg/config" "$tmpdir/xdg/state" \
	"$tmpdir/xdg/data" "$tmpdir/xdg/runtime"
chmod 700 "$tmpdir/xdg/runtime"
export XDG_CACHE_HOME=$tmpdir/xdg/cache
export XDG_CONFIG_HOME=$tmpdir/xdg/config
export XDG_STATE_HOME=$tmpdir/xdg/state
export XDG_DATA_HOME=$tmpdir/xdg/data
export XDG_RUNTIME_DIR=$tmpdir/xdg/runtime
export LC_ALL=C.UTF-8 TZ=UTC

T_OUT=$tmpdir/.t/stdout
T_ERR=$tmpdir/.t/stderr
T_STATUS=
T_TIMEOUT=${T_TIMEOUT:-300}
: >"$T_OUT"
: >"$T_ERR"

# --- exit handling ---------------------------------------------------------------

at_exit() {
	_t_exit_cmds+=("$*")
}

_t_on_exit() {
	local rc=$? i
	set +e
	for ((i = ${#_t_exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_t_exit_cmds[i]}"
	done
	if [ "$_t_done" != 1 ]; then
		if [ -n "$_t_planned" ]; then
			if [ "$_t_n" -ne "$_t_planned" ]; then
				echo "# planned $_t_planned tests but ran $_t_n (script exited with status $rc)"
				[ "$rc" -ne 0 ] || rc=255
			fi
		else
			echo "# script ended after $_t_n tests without done_testing (status $rc)"
			echo "1..$_t_n"
			[ "$rc" -ne 0 ] || rc=255
		fi
	fi
	if [ "$_t_failed" -gt 0 ]; then
		echo "# failed $_t_failed of $_t_n tests"
		[ "$rc" -ne 0 ] || rc=1
	fi
	if [ -n "${FERRY_KEEP_TMP:-}" ]; then
		echo "# kept $tmpdir"
	else
		chmod -R u+rwX "$tmpdir" 2>/dev/null
		rm -rf "$tmpdir"
	fi
	exit "$rc"
}
trap _t_on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- plan ------------------------------------------------------------------------

plan() {
	_t_planned=$1
	echo "1..$1"
}

# done_testing: prints the plan (when none was given) and ends the script.
done_testing() {
	if [ -n "$_t_planned" ]; then
		if [ "$_t_n" -ne "$_t_planned" ]; then
			echo "# planned $_t_planned tests but ran $_t_n"
			_t_failed=$((_t_failed + 1))
		fi
	else
		echo "1..$_t_n"
	fi
	_t_done=1
	exit 0
}

skip_all() {
	echo "1..0 # SKIP $*"
	_t_done=1
	exit 0
}

# require_cmd CMD...: skip the whole script when a tool is missing.
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip_all "needs $c"
	done
}

# --- reporting -------------------------------------------------------------------

# diag MSG...: each argument, and each line in it, as a `# ` line.
diag() {
	local arg line
	for arg in "$@"; do
		while IFS= read -r line; do
			echo "# $line"
		done <<<"$arg"
	done
}

# _t_show LABEL FILE: the tail of FILE as indented diagnostics.
_t_show() {
	local label=$1 file=$2 n max=${T_DIAG_LINES:-40}
	[ -s "$file" ] || {
		echo "#   $label: (empty)"
		return 0
	}
	n=$(wc -l <"$file")
	if [ "$n" -gt "$max" ]; then
		echo "#   $label (last $max of $n lines):"
	else
		echo "#   $label:"
	fi
	tail -n "$max" "$file" | LC_ALL=C awk '{ gsub(/[[:cntrl:]]/, "?"); print "#     " $0 }'
}

t_pass() {
	_t_n=$((_t_n + 1))
	echo "ok $_t_n - $1"
}

t_fail() {
	_t_n=$((_t_n + 1))
	_t_failed=$((_t_failed + 1))
	echo "not ok $_t_n - $1"
	# Report the first caller outside this file.
	local i where=
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		if [ "${BASH_SOURCE[i]}" != "${BASH_SOURCE[0]}" ]; then
			where=" at ${BASH_SOURCE[i]#"$FERRY_SRC"/} line ${BASH_LINENO[i - 1]}"
			break
		fi
	done
	echo "#   Failed test '$1'$where"
	shift
	[ $# -eq 0 ] || diag "$@"
}

t_skip() {
	_t_n=$((_t_n + 1))
	echo "ok $_t_n - $1 # SKIP ${2:-}"
}

# --- running commands ------------------------------------------------------------

_t_run() {
	local -a pre=()
	if [ "${T_TIMEOUT:-0}" != 0 ] && [ "$(type -t "$1")" = file ] &&
		command -v timeout >/dev/null 2>&1; then
		pre=(timeout -k 10 "$T_TIMEOUT")
	fi
	T_STATUS=0
	${pre[@]+"${pre[@]}"} "$@" >"$T_OUT" 2>"$T_ERR" || T_STATUS=$?
}

_t_cmd_diag() {
	local expected=$1 q
	shift
	printf -v q '%q ' "$@"
	echo "#   command: ${q% }"
	if [ "$T_STATUS" = 124 ] && [ "$(type -t "$1")" = file ] && [ "${T_TIMEOUT:-0}" != 0 ]; then
		echo "#   exit status: 124 (timed out after ${T_TIMEOUT}s?), expected $expected"
	elif [ "$T_STATUS" -gt 128 ]; then
		echo "#   exit status: $T_STATUS (signal $((T_STATUS - 128))), expected $expected"
	else
		echo "#   exit status: $T_STATUS, expected $expected"
	fi
	_t_show stdout "$T_OUT"
	_t_show stderr "$T_ERR"
}

t_ok() {
	local desc=$1
	shift
	_t_run "$@"
	if [ "$T_STATUS" -eq 0 ]; then
		t_pass "$desc"
	else
		t_fail "$desc"
		_t_cmd_diag 0 "$@"
		return 1
	fi
}

t_fails() {
	local desc=$1 want=$2
	shift 2
	_t_run "$@"
	if [ "$T_STATUS" -eq "$want" ]; then
		t_pass "$desc"
	else
		t_fail "$desc"
		_t_cmd_diag "$want" "$@"
		return 1
	fi
}

# --- comparisons -----------------------------------------------------------------

_t_quote() {
	local s=$1
	if [ "${#s}" -gt 2000 ]; then
		s="${s:0:2000}... (${#1} chars)"
	fi
	printf "'%s'" "$s"
}

t_eq() {
	if [ "$2" == "$3" ]; then
		t_pass "$1"
	else
		t_fail "$1" "  got:      $(_t_quote "$2")" "  expected: $(_t_quote "$3")"
		return 1
	fi
}

t_ne() {
	if [ "$2" != "$3" ]; then
		t_pass "$1"
	else
		t_fail "$1" "  got:      $(_t_quote "$2")" "  expected anything else"
		return 1
	fi
}

t_match() {
	if [[ $2 =~ $3 ]]; then
		t_pass "$1"
	else
		t_fail "$1" "  string:   $(_t_quote "$2")" "  no match: $(_t_quote "$3")"
		return 1
	fi
}

t_not_match() {
	if ! [[ $2 =~ $3 ]]; then
		t_pass "$1"
	else
		t_fail "$1" "  string:   $(_t_quote "$2")" "  matches:  $(_t_quote "$3")"
		return 1
	fi
}

t_file() {
	if [ -f "$2" ]; then
		t_pass "$1"
	else
		local what="missing" dir
		if [ -L "$2" ]; then
			what="a dangling symlink"
		elif [ -e "$2" ]; then
			what="not a regular file"
		fi
		dir=$(dirname -- "$2")
		t_fail "$1" "  $(_t_quote "$2") is $what" "  $dir holds: $(find "$dir" -mindepth 1 -maxdepth 1 -printf '%f ' 2>&1 | head -c 2000)"
		return 1
	fi
}

t_no_file() {
	if [ ! -e "$2" ] && [ ! -L "$2" ]; then
		t_pass "$1"
	else
		t_fail "$1" "  $(_t_quote "$2") exists"
		return 1
	fi
}

# --- JSON ----------------------------------------------------------------------------

# json_get FILE EXPR: print one value from the JSON document in FILE ('-' reads
# stdin). EXPR is either a jq-like path (.a.b[0]["odd key"], or . for the
# whole document) or a Python expression over the document `d`
# (e.g. 'len(d["items"])', '[i["name"] for i in d["items"]]').
# Strings print raw, true/false/null print as JSON words, numbers, arrays and
# objects print as compact JSON. A missing key or index prints a message on
# stderr and returns 1; unreadable JSON returns 2.
json_get() {
	python3 -c '
import json, re, sys
path, expr = sys.argv[1], sys.argv[2]
try:
    if path == "-":
        d = json.load(sys.stdin)
    else:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
except (OSError, ValueError) as e:
    print("json_get: %s: %s" % (path, e), file=sys.stderr)
    sys.exit(2)
try:
    if expr.startswith("."):
        v, rest = d, expr[1:]
        tok = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]")
        while rest:
            m = tok.match(rest)
            if not m:
                raise SyntaxError("bad path at %r" % rest)
            if m.group(1) is not None:
                v = v[m.group(1)]
            elif m.group(2) is not None:
                v = v[int(m.group(2))]
            else:
                v = v[json.loads(m.group(3))]
            rest = rest[m.end():]
    else:
        v = eval(expr, {"json": json}, {"d": d})
except (KeyError, IndexError, TypeError) as e:
    print("json_get: %s: no %s (%s: %s)" % (path, expr, type(e).__name__, e), file=sys.stderr)
    sys.exit(1)
except SyntaxError as e:
    print("json_get: bad expression %r: %s" % (expr, e), file=sys.stderr)
    sys.exit(2)
if isinstance(v, str):
    print(v)
else:
    print(json.dumps(v, separators=(",", ":"), ensure_ascii=False))
' "$1" "$2"
}
