# shellcheck shell=bash
# Shared by t0520-trainer-standin.sh and t0525-standin-fidelity.sh (sourced
# after lib.sh, in $tmpdir): a copy of the trainer stand-in and a helper to
# write configs from its example. Not a test itself (the .bash suffix keeps
# it out of the tests/integ/t*.sh glob).

# A copy of the stand-in, so that no .env above the source tree is read.
mkdir aitk
cp "$FERRY_SRC/examples/trainer/run.py" aitk/run.py
RUN=$tmpdir/aitk/run.py
EXAMPLE=$FERRY_SRC/examples/trainer/example-config.json
export FERRY_STANDIN_STEP_S=0.005 FERRY_STANDIN_LOAD_S=0.01
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_DISABLE_PROGRESS_BARS SEED

# cfg OUT NAME [KEY=JSON...]: the example config renamed, with process keys
# (dotted paths) replaced; KEY=- deletes one.
cfg() {
	python3 - "$EXAMPLE" "$@" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
out, name = sys.argv[2], sys.argv[3]
c["config"]["name"] = name
p = c["config"]["process"][0]
for a in sys.argv[4:]:
    k, v = a.split("=", 1)
    d = p
    ks = k.split(".")
    for x in ks[:-1]:
        d = d[x]
    if v == "-":
        del d[ks[-1]]
    else:
        d[ks[-1]] = json.loads(v)
json.dump(c, open(out, "w"), indent=2)
PY
}

# pass_if DESC CMD...: one test that passes when CMD succeeds.
pass_if() {
	local desc=$1
	shift
	if "$@"; then t_pass "$desc"; else t_fail "$desc"; fi
}
