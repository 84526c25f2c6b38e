#!/usr/bin/env bash
# The job engine on the vast provider, against `ferry sim` whose instances'
# SSH endpoint is a real sshd on 127.0.0.1, with the trainer stand-in: a
# whole job (ranked, rented with its label, booted through `loading`,
# trained, published, destroyed and confirmed gone); Vast's faults on the
# way (503s, a create that answers an error yet leaves an instance, one
# without new_contract, an instance stuck loading, destroys that fail);
# ferry killed at the boundaries where money is at stake. Every case ends
# with the sim's ledger: nothing live, one create per label.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
. "$(dirname "$0")/sim.sh"
require_cmd python3 sha256sum flock setsid curl

sshd_start >/dev/null || skip_all "cannot start sshd"
state=$XDG_STATE_HOME/ferry
store=$tmpdir/store
root=$tmpdir/remote-root
mkdir -p "$XDG_CONFIG_HOME/ferry" "$state"
cat >"$XDG_CONFIG_HOME/ferry/config" <<CFG
store.kind = dir
store.dir = $store
remote.root = $root
ssh.key_path = $SSHD_KEY
trainer.command = python3 $FERRY_SRC/examples/trainer/run.py
vast.api_key = sim-key-123
CFG
bash "$FERRY_SRC/tests/integ/gen_dataset.sh" valid "$tmpdir/ds" 12 512x512 >/dev/null

submit() {
	flock "$state/worker.lock" "$FERRY" train "$tmpdir/ds" --provider vast \
		--recipe flux-schnell-lora --steps 12 --param save-every=4 --param sample-every=6 \
		--detach --json | json_get - .id
}
show() { "$FERRY" show "$1" --json >"$tmpdir/show.json" && json_get "$tmpdir/show.json" "$2"; }
# ledger_ok: nothing live and no label created twice.
ledger_ok() {
	sim_ledger | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["live"], max([n for l, n in d["creates_per_label"].items() if l] or [0]))'
}

# sim_case FAULTS [CRASH]: a new sim with those faults, one job run by a
# worker (killed at CRASH, then started again), "STATE LIVE MAXCREATES".
sim_case() {
	local id rc=0
	sim_start --seed 5 --api-key sim-key-123 --boot-seconds 2 --rate 0 \
		--ssh-endpoint "127.0.0.1:$SSHD_PORT" ${1:+--faults "$1"} || return 1
	export VAST_URL=$SIM_URL
	id=$(submit)
	echo "$id" >"$tmpdir/last"
	if [ -n "${2:-}" ]; then
		FERRY_TEST_CRASH_AT=$2 "$FERRY" worker --once >"$tmpdir/worker.crash" 2>&1
	fi
	"$FERRY" worker --once >"$tmpdir/worker.out" 2>&1
	echo "$(show "$id" .state) $(ledger_ok)"
	sim_stop
}

t_eq "a whole job on Vast: SUCCEEDED, nothing left running, one create" "$(sim_case)" \
	"SUCCEEDED 0 1" || diag "$(cat "$tmpdir/worker.out")"
id=$(cat "$tmpdir/last")
t_file "store: the final LoRA" "$store/jobs/$id/ferry_lora/ferry_lora.safetensors"
t_eq "show: one vast instance, with an id, destroyed" \
	"$(json_get "$tmpdir/show.json" '[(i["provider"], i["id"] > 0, i["destroyed_at"] > 0) for i in d["instances"]]')" \
	'[["vast",true,true]]'
t_match "show: what it cost" "$(json_get "$tmpdir/show.json" .cost_usd)" '^[0-9.e-]+$'
t_ok "the trainer ran on the instance's endpoint" test -f "$root/$id/state/exit"

t_eq "503s on the way" "$(sim_case 'server_error=0.2')" "SUCCEEDED 0 1" ||
	diag "$(cat "$tmpdir/worker.out")"
# Each create that errs has left an instance under the label, which ferry
# destroyed before trying the next offer: more than one create, none live.
t_match "a create that errs yet leaves an instance" \
	"$(sim_case 'create_error_leaves_instance=0.5')" '^SUCCEEDED 0 [0-9]+$' || diag "$(cat "$tmpdir/worker.out")"
t_match "every create errs: FAILED, and nothing is left running" \
	"$(sim_case 'create_error_leaves_instance=1')" '^FAILED 0 [0-9]+$' || diag "$(cat "$tmpdir/worker.out")"
t_eq "a create without new_contract" "$(sim_case 'create_no_contract=1')" "SUCCEEDED 0 1" ||
	diag "$(cat "$tmpdir/worker.out")"
t_eq "destroys that fail twice" "$(sim_case 'destroy_fail=2')" "SUCCEEDED 0 1" ||
	diag "$(cat "$tmpdir/worker.out")"
for at in RENTING:after BOOTING:before TRAINING:after RELEASING:before; do
	t_eq "killed at $at, then started again" "$(sim_case '' "$at")" "SUCCEEDED 0 1" ||
		diag "$(cat "$tmpdir/worker.out")"
done

done_testing
