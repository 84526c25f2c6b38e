#!/usr/bin/env bash
# ferry keys, whoami, rent, instances and destroy against ferry sim: keys
# registered before the create and attached after, labels always set, a
# label never rented twice, failed creates cleaned up, destroy confirmed,
# and the ledger showing nothing leaked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sim.sh"
require_cmd python3 curl ssh-keygen

cd "$tmpdir" || exit 1
sim_start --seed 11 --api-key sim-key-123 --boot-seconds 1 --rate 0
export VAST_URL=$SIM_URL VAST_API_KEY=sim-key-123

pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
ledger() { sim_ledger >ledger.json && pyq ledger.json "$1"; }
# An offer id from the market: the Nth cheapest 24 GB+ offer.
offer() {
	"$FERRY" offers --json 'gpu_ram>=24' -o dph_total --limit 10 >offers.json &&
		pyq offers.json "d['offers'][$1]['id']"
}

# --- keys and whoami ----------------------------------------------------------
t_fails "rent without a key says how to make one" 3 "$FERRY" rent 1
t_match "names keys init" "$(cat "$T_ERR")" "ferry keys init"
t_ok "keys init" "$FERRY" keys init
key=$XDG_CONFIG_HOME/ferry/ssh/id_ed25519
t_file "private key made" "$key"
t_eq "private key mode 600" "$(stat -c %a "$key")" "600"
t_fails "keys init never overwrites" 1 "$FERRY" keys init
t_ok "whoami" "$FERRY" whoami
t_match "shows the balance" "$(cat "$T_OUT")" "balance +\\\$[0-9]"
t_match "the key is valid" "$(cat "$T_OUT")" "api key +valid"
t_match "ssh key not registered yet" "$(cat "$T_OUT")" "not registered"
t_fails "whoami with a refused key" 3 env VAST_API_KEY=bad-key-789 "$FERRY" whoami
t_match "says the key was refused" "$(cat "$T_ERR")" "refused the API key"
t_not_match "without showing it" "$(cat "$T_ERR")" "bad-key-789"
t_fails "whoami without a key" 3 env -u VAST_API_KEY "$FERRY" whoami
t_ok "keys add" "$FERRY" keys add
t_match "registered" "$(cat "$T_OUT")" "^registered"
t_ok "keys add again" "$FERRY" keys add
t_match "not twice" "$(cat "$T_OUT")" "already registered"
t_ok "keys list --json" "$FERRY" keys list --json
t_eq "one key, marked as ferry's" "$(pyq "$T_OUT" '[k["ferry"] for k in d]')" "[True]"
t_ok "whoami --json" "$FERRY" whoami --json
t_eq "the key is registered now" "$(pyq "$T_OUT" 'd["ssh_key_registered"]')" "True"

# --- rent, instances, destroy -------------------------------------------------
o1=$(offer 0)
t_ok "rent an offer" env HF_TOKEN=hf_secret_value_1234 "$FERRY" rent "$o1" --label job1 --env FOO=bar --env HF_TOKEN --json
cp "$T_OUT" r1.json
id1=$(pyq r1.json 'd["instance_id"]')
t_eq "the label got its prefix" "$(pyq r1.json 'd["label"]')" "ferry-job1"
t_eq "one create" "$(pyq r1.json 'd["creates"]')" "1"
t_not_match "the token is never printed" "$(cat "$T_OUT" "$T_ERR")" "hf_secret_value_1234"
t_eq "ledger: one live instance" "$(ledger 'd["live"]')" "1"
t_eq "ledger: labelled" "$(ledger '[i["label"] for i in d["instances"]]')" "['ferry-job1']"
t_eq "ledger: our key attached" "$(ledger 'len(d["instances"][0]["ssh_keys"]) >= 1')" "True"
t_ok "instances --json" "$FERRY" instances --json
t_eq "lists it" "$(pyq "$T_OUT" '[i["id"] for i in d]')" "[$id1]"
curl -s -H "Authorization: Bearer sim-key-123" "$SIM_URL/api/v0/instances/$id1/" >show.json
t_eq "env sent as an object" "$(pyq show.json 'dict(d["instances"]["extra_env"]).get("FOO")')" "bar"
t_eq "ssh asked for direct and proxy" "$(pyq show.json 'd["instances"]["image_runtype"]')" "ssh_direc ssh_proxy"

ssh-keygen -q -t ed25519 -N '' -C other -f other
t_ok "keys attach another key" "$FERRY" keys attach "$id1" other
t_eq "ledger: that key is on the instance" \
	"$(ledger "any('$(cut -d' ' -f2 other.pub)' in k for k in d['instances'][0]['ssh_keys'])")" "True"
t_fails "keys add takes no --json" 2 "$FERRY" keys add --json

t_fails "the same label is not rented twice" 1 "$FERRY" rent "$(offer 1)" --label job1
t_match "says it exists" "$(cat "$T_ERR")" "already exists \\(id $id1\\)"
t_ok "--adopt keeps the one there" "$FERRY" rent "$(offer 1)" --label job1 --adopt --json
t_eq "same instance" "$(pyq "$T_OUT" 'd["instance_id"]')" "$id1"
t_eq "no create sent" "$(ledger 'd["creates_per_label"]["ferry-job1"]')" "1"

sleep 2
t_ok "instances table" "$FERRY" instances
t_match "running, with its ssh endpoint" "$(cat "$T_OUT")" "$id1 +ferry-job1 +running .*127.0.0.1:[0-9]+"

t_fails "renting a taken offer fails" 1 "$FERRY" rent "$o1" --label job2
t_match "says it is not available" "$(cat "$T_ERR")" "no_such_ask|not available"
t_eq "and nothing is left behind" "$(ledger 'd["live"]')" "1"

t_ok "destroy" "$FERRY" destroy "$id1"
t_match "confirmed" "$(cat "$T_OUT")" "destroyed $id1"
t_eq "ledger: nothing live" "$(ledger 'd["live"]')" "0"
t_eq "ledger: billed" "$(ledger 'd["instances"][0]["billed_usd"] > 0')" "True"
t_fails "destroying it again is an error" 1 "$FERRY" destroy "$id1"
t_match "saying there is no such instance" "$(cat "$T_ERR")" "no instance $id1 on this account"
t_not_match "never 'destroyed'" "$(cat "$T_OUT")" "destroyed"
t_fails "an id never rented" 1 "$FERRY" destroy 987654321
t_match "is named" "$(cat "$T_ERR")" "no instance 987654321"

t_ok "rent --best" "$FERRY" rent --best 'gpu_ram>=24' -o dph_total --json
id2=$(pyq "$T_OUT" 'd["instance_id"]')
label2=$(pyq "$T_OUT" 'd["label"]')
t_match "a generated label" "$label2" "^ferry-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"
t_ok "destroy --label" "$FERRY" destroy --label "$label2"
t_eq "ledger: nothing live" "$(ledger 'd["live"]')" "0"

# An interruptible bid below the floor: with cancel_unavail false Vast
# answers an error yet leaves a stopped instance that bills; ferry sends
# cancel_unavail true, so the create just fails (t0430 covers the trap).
o3=$(offer 2)
t_fails "a bid that is too low" 1 "$FERRY" rent "$o3" --label lowbid --interruptible --bid 0.001
t_match "says why" "$(cat "$T_ERR")" "invalid_price"
t_eq "nothing live" "$(ledger 'd["live"]')" "0"
t_eq "nothing left behind" "$(ledger 'len([i for i in d["instances"] if i["label"] == "ferry-lowbid"])')" "0"

# A bid at the offer's floor, looked up for a single offer.
o4=$(offer 3)
t_ok "interruptible without --bid bids the minimum" "$FERRY" rent "$o4" --label bid --interruptible --json
id4=$(pyq "$T_OUT" 'd["instance_id"]')
curl -s -H "Authorization: Bearer sim-key-123" "$SIM_URL/api/v0/instances/$id4/" >bid.json
t_eq "it is a bid instance" "$(pyq bid.json 'd["instances"]["is_bid"]')" "True"
t_ok "destroy it" "$FERRY" destroy "$id4"

# Nothing from --env reaches a trace, whatever its name or spelling.
t_ok "-vvv rent with odd env values" env DB_URL='postgres://u:hunter2pw@db/x' "$FERRY" -vvv rent "$(offer 4)" --label traced --env DB_URL --env 'ODD=abc\def"ghijk'
t_match "the trace shows the create body" "$(cat "$T_ERR")" "> body .*\"label\":\"ferry-traced\""
t_not_match "no env value in it" "$(cat "$T_ERR")" "hunter2pw|abc.{0,3}def.{0,3}ghijk"
t_not_match "nor the instance's own key" "$(cat "$T_ERR")" "instance_api_key\":\"[0-9a-f]{8}"
t_ok "destroy --label ferry-traced" "$FERRY" destroy --label ferry-traced

# The name given to rent finds what it made, with or without the prefix.
t_ok "rent --label myjob" "$FERRY" rent "$(offer 5)" --label myjob --json
id6=$(pyq "$T_OUT" 'd["instance_id"]')
t_ok "instances --label myjob" "$FERRY" instances --label myjob --json
t_eq "finds it" "$(pyq "$T_OUT" '[i["id"] for i in d]')" "[$id6]"
t_ok "destroy --label myjob" "$FERRY" destroy --label myjob
t_match "destroys it" "$(cat "$T_OUT")" "destroyed $id6"
t_eq "ledger: nothing live" "$(ledger 'd["live"]')" "0"
t_fails "destroy --label with nothing labelled so" 1 "$FERRY" destroy --label myjob
t_match "says so" "$(cat "$T_ERR")" "no instance is labelled ferry-myjob"

t_fails "one rent per label at a time" 1 flock "$XDG_STATE_HOME/ferry/locks/rent-ferry-busy" "$FERRY" rent "$(offer 4)" --label busy
t_match "says another ferry is at it" "$(cat "$T_ERR")" "another ferry is renting label ferry-busy"
t_eq "nothing was created" "$(ledger 'd["creates_per_label"].get("ferry-busy", 0)')" "0"
t_fails "a label that is not UTF-8" 2 "$FERRY" rent 1 --label $'x\xff'
t_fails "instances --label that is not UTF-8" 2 "$FERRY" instances --label $'x\xff'
t_fails "--disk nan" 2 "$FERRY" rent 1 --disk nan
t_fails "a bid without --interruptible" 2 "$FERRY" rent 1 --bid 0.5
t_fails "--env without a value or variable" 2 "$FERRY" rent 1 --env NOT_SET_ANYWHERE_X
t_fails "destroy without ids" 2 "$FERRY" destroy

done_testing
