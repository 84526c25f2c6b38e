#!/usr/bin/env bash
# Renting under every fault ferry sim can inject: each run ends with the
# instance rented exactly once (or a clear failure), then destroyed, and the
# ledger showing no live instance and no label with two live instances.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sim.sh"
require_cmd python3 curl ssh-keygen

cd "$tmpdir" || exit 1
export VAST_API_KEY=sim-key-123
"$FERRY" keys init >/dev/null || { echo "Bail out! keys init failed"; exit 1; }

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
ledger() { sim_ledger >ledger.json && pyq ledger.json "$1"; }

# scenario NAME FAULTS EXPECT_STATUS: rent --best, check, destroy, check.
scenario() {
	local name=$1 faults=$2 want=$3 id
	sim_start --seed 5 --api-key sim-key-123 --boot-seconds 0 --rate 0 --faults "$faults"
	export VAST_URL=$SIM_URL
	t_fails "$name: rent ends with status $want" "$want" "$FERRY" --set vast.tries=6 rent --best 'gpu_ram>=24' --label "$name" --json
	if [ "$want" = 0 ]; then
		id=$(pyq "$T_OUT" 'd["instance_id"]')
		t_eq "$name: exactly one live instance, the one reported" \
			"$(ledger '[i["id"] for i in d["instances"] if i["state"] != "destroyed"]')" "[$id]"
		t_ok "$name: destroy" "$FERRY" --set vast.tries=6 destroy "$id"
	else
		diag "$(cat "$T_ERR")"
	fi
	t_eq "$name: nothing live at the end" "$(ledger 'd["live"]')" "0"
}

scenario nocontract 'create_no_contract=1' 0
t_eq "nocontract: found by label, one create" "$(ledger 'd["creates_per_label"]["ferry-nocontract"]')" "1"
scenario lag 'create_no_contract=1,list_lag=2' 0
t_eq "lag: still one create" "$(ledger 'd["creates_per_label"]["ferry-lag"]')" "1"
scenario leftover 'create_error_leaves_instance=1' 1
t_eq "leftover: every stray destroyed" \
	"$(ledger 'all(i["state"] == "destroyed" for i in d["instances"])')" "True"
scenario taken 'offer_taken=0.6' 0
t_eq "taken: never two instances for the label" \
	"$(ledger 'len([i for i in d["instances"] if i["label"] == "ferry-taken"])')" "1"
scenario flaky 'rate_limit=0.3,server_error=0.2' 0
t_eq "flaky: one instance for the label" \
	"$(ledger 'len([i for i in d["instances"] if i["label"] == "ferry-flaky"])')" "1"
scenario slowdestroy 'destroy_fail=2' 0
scenario stuck 'stuck_loading=1' 0
scenario exited 'instance_exit_after=0' 0
scenario offline 'instance_offline_after=0' 0
scenario slow 'slow=0.3' 0

done_testing
