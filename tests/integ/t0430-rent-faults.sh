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

# scenario NAME FAULTS EXPECT_STATUS [SEED]: rent --best, check, destroy, check.
scenario() {
	local name=$1 faults=$2 want=$3 seed=${4:-5} id
	sim_start --seed "$seed" --api-key sim-key-123 --boot-seconds 0 --rate 0 --faults "$faults"
	export VAST_URL=$SIM_URL
	t_fails "$name: rent ends with status $want" "$want" "$FERRY" --set vast.tries=6 rent --best 'gpu_ram>=24' --label "$name" --json
	cp "$T_OUT" "$name.json"
	cp "$T_ERR" "$name.err"
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

creates() { ledger "d['creates_per_label'].get('ferry-$1', 0)"; }

# A success without new_contract: the label finds it, nothing is created twice.
scenario nocontract 'create_no_contract=1' 0
t_eq "nocontract: one create" "$(creates nocontract)" "1"
scenario lag 'create_no_contract=1,list_lag=2' 0
t_eq "lag: found late, still one create" "$(creates lag)" "1"

# The list lags longer than ferry looks: it fails rather than create again,
# says how to find the instance, and --adopt keeps it once it shows.
sim_start --seed 5 --api-key sim-key-123 --boot-seconds 0 --rate 0 --faults 'create_no_contract=1,list_lag=9'
export VAST_URL=$SIM_URL
t_fails "lost: rent fails" 1 "$FERRY" rent --best 'gpu_ram>=24' --label lost
t_match "lost: does not create another, and says how to find it" "$(cat "$T_ERR")" "does not create another.*--adopt"
t_eq "lost: one create" "$(creates lost)" "1"
sleep 4
t_ok "lost: --adopt keeps it once it shows" "$FERRY" rent --best 'gpu_ram>=24' --label lost --adopt --json
t_eq "lost: adopted, no new create" "$(pyq "$T_OUT" 'd["adopted"]') $(creates lost)" "True 1"
t_ok "lost: destroy" "$FERRY" destroy --label ferry-lost
t_eq "lost: nothing live" "$(ledger 'd["live"]')" "0"

# Failed creates that leave instances: each is found and destroyed, even
# when the list lags, and a 4xx stops the rent.
scenario leftover 'create_error_leaves_instance=1' 1
t_eq "leftover: every stray destroyed" \
	"$(ledger 'all(i["state"] == "destroyed" for i in d["instances"])')" "True"
scenario leftlag 'create_error_leaves_instance=1,list_lag=3' 1
t_eq "leftlag: every stray destroyed" \
	"$(ledger 'all(i["state"] == "destroyed" for i in d["instances"])')" "True"

# Offers someone else takes: ferry moves on to the next one.
scenario taken 'offer_taken=0.5' 0 3
t_eq "taken: four creates (offers moved on)" "$(pyq taken.json 'd["creates"]')" "4"
t_eq "taken: one instance for the label" \
	"$(ledger 'len([i for i in d["instances"] if i["label"] == "ferry-taken"])')" "1"
scenario alltaken 'offer_taken=1' 1
t_eq "alltaken: five offers tried" "$(grep -c 'warning: create of offer .* no_such_ask' alltaken.err)" "5"
t_eq "alltaken: no instance at all" "$(creates alltaken)" "0"

# 429s are retried, a create included; an outage fails cleanly.
scenario limited 'rate_limit=0.4' 0
scenario outage 'server_error=1' 1
t_eq "outage: nothing created" "$(creates outage)" "0"

scenario slowdestroy 'destroy_fail=2' 0
scenario stuck 'stuck_loading=1' 0
scenario exited 'instance_exit_after=0' 0
scenario offline 'instance_offline_after=0' 0
scenario slow 'slow=0.3' 0

done_testing
