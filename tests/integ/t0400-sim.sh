#!/usr/bin/env bash
# ferry sim, the simulated Vast.ai API, over real HTTP: options, every route,
# auth quirks, the lifecycle, v1 pagination, billing in the ledger, the rate
# limit, each fault, market files and determinism.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sim.sh"
require_cmd curl python3 ssh-keygen

KEY=sim-test-key-$$
B=$tmpdir/body
code=
ctype=

# api METHOD PATH [BODY [KEY]]: the answer's body in $B, status in $code,
# Content-Type in $ctype. KEY defaults to $KEY; an empty KEY sends none.
api() {
	local m=$1 p=$2 body=${3-} key=${4-$KEY} w
	local -a args=(-s --max-time 30 -o "$B" -w '%{http_code} %{content_type}' -X "$m")
	[ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
	w=$(curl "${args[@]}" "$SIM_URL$p")
	code=${w%% *}
	ctype=${w#* }
}

# v1 GET with URL-encoded JSON parameters: v1 'limit=5' 'order_by=[...]' ...
v1() {
	local -a args=(-s --max-time 30 -o "$B" -w '%{http_code} %{content_type}' -G
		-H "Authorization: Bearer $KEY")
	local a w
	for a in "$@"; do
		args+=(--data-urlencode "$a")
	done
	w=$(curl "${args[@]}" "$SIM_URL/api/v1/instances/")
	code=${w%% *}
	ctype=${w#* }
}

b() { json_get "$B" "$1"; }

# Poll GET instance ID until actual_status is WANT (at most ~N tenths of a second).
wait_status() {
	local id=$1 want=$2 n=${3:-80} i
	for ((i = 0; i < n; i++)); do
		api GET "/api/v0/instances/$id/"
		[ "$(b '(d["instances"] or {}).get("actual_status")')" = "$want" ] && return 0
		sleep 0.1
	done
	return 1
}

ssh-keygen -q -t ed25519 -N '' -C sim-test -f "$tmpdir/id" || exit 1
PUB=$(cat "$tmpdir/id.pub")

# --- options -----------------------------------------------------------------

t_ok "sim --help" "$FERRY" sim --help
t_match "help names every option" "$(cat "$T_OUT")" \
	"--listen.*--market.*--ssh-endpoint.*--boot-seconds.*--api-key.*--faults.*--seed.*--offers.*--rate"
t_fails "a bad --listen is a usage error" 2 "$FERRY" sim --listen nowhere
t_match "it names the value" "$(cat "$T_ERR")" "nowhere"
t_fails "a port out of range" 2 "$FERRY" sim --listen 127.0.0.1:70000
t_fails "an unknown fault" 2 "$FERRY" sim --faults 'rate_limit=0.1,typo_fault=1'
t_match "it names the item" "$(cat "$T_ERR")" "typo_fault"
t_fails "a probability over 1" 2 "$FERRY" sim --faults 'server_error=2'
t_match "it names the item and value" "$(cat "$T_ERR")" "server_error=2"
t_fails "a count that is not whole" 2 "$FERRY" sim --faults 'destroy_fail=x'
t_fails "a missing market file" 2 "$FERRY" sim --market "$tmpdir/none.json"
t_match "it names the file" "$(cat "$T_ERR")" "$tmpdir/none.json"
printf '{"offers": [\n {"id": 1,,}\n]}\n' >"$tmpdir/bad.json"
t_fails "an invalid market file" 2 "$FERRY" sim --market "$tmpdir/bad.json"
t_match "it names the file and the position" "$(cat "$T_ERR")" "bad.json.*line 2, column"
printf '{"offer": []}' >"$tmpdir/shape.json"
t_fails "a market file of the wrong shape" 2 "$FERRY" sim --market "$tmpdir/shape.json"
t_fails "--offers wants a number" 2 "$FERRY" sim --offers many
t_fails "--boot-seconds wants a number" 2 "$FERRY" sim --boot-seconds -1
t_fails "--ssh-endpoint wants HOST:PORT" 2 "$FERRY" sim --ssh-endpoint 127.0.0.1
t_fails "stray arguments" 2 "$FERRY" sim extra

# --- the main simulator -------------------------------------------------------------

FERRY_LOG=debug sim_start --boot-seconds 3 --api-key "$KEY" --seed 5 --ssh-endpoint 127.0.0.1:2222 \
	--rate 0 || exit 1
t_match "one 'listening on' line" "$(cat "$SIM_OUT")" '^ferry sim: listening on http://127\.0\.0\.1:[0-9]+$'
t_eq "nothing else on stdout" "$(wc -l <"$SIM_OUT")" 1

# Offers: unauthenticated search works, the answer is clean JSON.
api POST /api/v0/bundles/ '{}' ''
t_eq "search without a key: 200" "$code" 200
t_eq "Content-Type is exactly application/json" "$ctype" application/json
t_eq "64 offers by default" "$(b 'len(d["offers"])')" 64
t_eq "ordered by score, best first" \
	"$(b 'all(a["score"] >= b["score"] for a, b in zip(d["offers"], d["offers"][1:]))')" true
t_eq "every field of the reference sample" "$(b 'sorted(set(["id","ask_contract_id","bundle_id",
 "bundled_results","machine_id","host_id","hosting_type","hostname","rn","gpu_name","num_gpus",
 "gpu_ids","gpu_ram","gpu_total_ram","gpu_frac","gpu_arch","gpu_lanes","gpu_mem_bw",
 "gpu_display_active","gpu_max_power","gpu_max_temp","bw_nvlink","compute_cap","cuda_max_good",
 "driver_version","driver_vers","total_flops","dlperf","dlperf_per_dphtotal","flops_per_dphtotal",
 "score","cpu_name","cpu_arch","cpu_cores","cpu_cores_effective","cpu_ghz","cpu_ram","has_avx",
 "disk_space","disk_bw","disk_name","mobo_name","pci_gen","pcie_bw","os_version","inet_up",
 "inet_down","inet_up_cost","inet_down_cost","internet_up_cost_per_tb","internet_down_cost_per_tb",
 "direct_port_count","public_ipaddr","static_ip","geolocation","geolocode","dph_base","dph_total",
 "dph_total_adj","discounted_dph_total","discount_rate","discounted_hourly","storage_cost",
 "storage_total_cost","vram_costperhour","credit_discount_max","min_bid","search","instance",
 "rentable","rented","is_bid","external","reliability","reliability2","reliability_mult",
 "expected_reliability","verification","vericode","vms_enabled","is_vm_deverified","resource_type",
 "cluster_id","start_date","end_date","duration","time_remaining","time_remaining_isbid",
 "avail_vol_ask_id","avail_vol_dph","avail_vol_size","nw_disk_min_bw","nw_disk_max_bw",
 "nw_disk_avg_bw","logo","webpage"]) - set.intersection(*[set(o) for o in d["offers"]]))')" "[]"
t_eq "dph_total = dph_base + storage_cost * 5 / 720" \
	"$(b 'all(abs(o["dph_total"] - o["dph_base"] - o["storage_cost"] * 5 / 720) < 1e-9 for o in d["offers"])')" true
t_eq "gpu_total_ram = num_gpus * gpu_ram" \
	"$(b 'all(o["gpu_total_ram"] == o["num_gpus"] * o["gpu_ram"] for o in d["offers"])')" true

api POST /api/v0/bundles/ '{"limit":1000,"allocated_storage":"100","type":"bid"}' ''
t_eq "bid prices come from min_bid, storage from allocated_storage" \
	"$(b 'all(abs(o["dph_total"] - o["min_bid"] - o["storage_cost"] * 100 / 720) < 1e-9 for o in d["offers"])')" true
t_eq "300 offers by default" "$(b 'len(d["offers"])')" 300

# The vastai CLI sends values as strings; the server coerces them.
api POST /api/v0/bundles/ '{"num_gpus":{"eq":"1"},"gpu_name":{"in":["RTX 4090","RTX 3090"]},"dph_total":{"lt":"0.5"},"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"order":[["dph_total","asc"]],"limit":1000}' ''
t_eq "a filtered search answers" "$code" 200
t_ne "and finds offers" "$(b 'len(d["offers"])')" 0
t_eq "every offer matches every filter" "$(b 'all(o["num_gpus"] == 1 and o["gpu_name"] in ("RTX 4090","RTX 3090") and o["dph_total"] < 0.5 and o["verification"] == "verified" and not o["external"] for o in d["offers"])')" true
t_eq "ordered by price" "$(b 'all(a["dph_total"] <= b["dph_total"] for a, b in zip(d["offers"], d["offers"][1:]))')" true
t_eq "in the order asked" "$(b '[o["id"] for o in d["offers"]] == [o["id"] for o in sorted(d["offers"], key=lambda o: (o["dph_total"], o["id"]))]')" true
ids_filtered=$(b '[o["id"] for o in d["offers"]]')
api POST /api/v0/bundles/ '{"num_gpus":{"notin":["1"]},"geolocation":{"in":["US","CA"]},"limit":1000}' ''
t_eq "notin and country codes" "$(b 'all(o["num_gpus"] != 1 and o["geolocation"][-2:] in ("US","CA") for o in d["offers"]) and len(d["offers"]) > 0')" true
api POST /api/v0/bundles/ '{"cluster_id":{"eq":null},"limit":1000}' ''
t_eq "eq null" "$(b 'len(d["offers"])')" 300
api PUT /api/v0/search/asks/ '{"select_cols":["*"],"q":{"num_gpus":{"eq":"1"},"gpu_name":{"in":["RTX 4090","RTX 3090"]},"dph_total":{"lt":"0.5"},"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"order":[["dph_total","asc"]],"limit":1000}}'
t_eq "PUT /search/asks/ answers the same offers" "$(b '[o["id"] for o in d["offers"]]')" "$ids_filtered"
# What the official vastai CLI sends for
#   vastai search offers 'gpu_ram>=24 reliability>0.98 compute_cap>=800 driver_version>=535.0.0'
# (its defaults, its controls and bare booleans among them): Vast answers it.
api POST /api/v0/bundles/ '{"verified":{"eq":true},"external":{"eq":false},"rentable":true,"rented":{"eq":false},"gpu_ram":{"gte":24000.0},"reliability":{"gt":0.98},"compute_cap":{"gte":800},"driver_vers":{"gte":535000000},"expected_reliability":{"gte":0},"is_bid":{"eq":false},"order":[["score","desc"]],"type":"on-demand","allocated_storage":5.0,"disable_bundling":false,"target_reliability":0.98,"extra_ids":[],"limit":1000}' ''
t_eq "the vastai CLI's own search answers" "$code" 200
t_ne "with offers" "$(b 'len(d["offers"])')" 0
t_eq "each matching it" "$(b 'all(o["gpu_ram"] >= 24000 and o["reliability"] > 0.98 and o["compute_cap"] >= 800 and o["driver_vers"] >= 535000000 and o["rentable"] and not o["rented"] for o in d["offers"])')" true
api POST /api/v0/bundles/ '{"compute_cap":{"gte":800},"limit":1000}' ''
t_eq "compute_cap >= 800 leaves no P40 or V100 (610, 700)" "$(b 'any(o["compute_cap"] < 800 for o in d["offers"]) or not d["offers"]')" false
api POST /api/v0/bundles/ '{"gpu_nam":{"eq":"RTX 4090"}}' ''
t_eq "an unknown field: 400" "$code" 400
t_eq "invalid_args" "$(b .error)" invalid_args
t_match "naming the field" "$(b .msg)" "gpu_nam is not a valid search key"
api POST /api/v0/bundles/ '{"num_gpus":{"eq":"x"}}' ''
t_eq "a value that is not a number: 400" "$code" 400
api POST /api/v0/bundles/ '{"limit":' ''
t_eq "a body that is not JSON: 400" "$code" 400

# Auth: a wrong key is 404 on some routes, 401 on others; no key is wrong
# except for search.
api POST /api/v0/bundles/ '{}' wrong-key
t_eq "search with a wrong key: 404" "$code" 404
t_eq "auth_error body" "$(b '[d["success"], d["error"], d["msg"]]')" '[false,"auth_error","Invalid user key"]'
api GET /api/v0/users/current/ '' wrong-key
t_eq "user with a wrong key: 401" "$code" 401
t_eq "auth_error" "$(b .error)" auth_error
api GET /api/v0/users/current/ '' ''
t_eq "user without a key: 401" "$code" 401
api GET /api/v0/instances/1/ '' wrong-key
t_eq "an instance with a wrong key: 404" "$code" 404
t_eq "auth_error there too" "$(b .error)" auth_error
api PUT /api/v0/asks/1/ '{"image":"x"}' ''
t_eq "create without a key: 404 auth_error" "$code $(b .error)" "404 auth_error"
api GET /api/v0/users/current/
t_eq "the right key: 200" "$code" 200
t_eq "the account" "$(b '[d["has_billing"], d["can_pay"], d["credit"], d["balance"]]')" "[true,true,25.0,25.0]"
t_eq "?api_key= works too" "$(curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/api/v0/users/current/?api_key=$KEY")" 200
t_eq "a wrong ?api_key= does not" "$(curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/api/v0/users/current/?api_key=nope")" 401

# The v0 list is retired.
api GET /api/v0/instances/
t_eq "GET /api/v0/instances/: 410" "$code" 410
t_eq "deprecated_endpoint" "$(b '[d["success"], d["error"], d["msg"]]')" \
	'[false,"deprecated_endpoint","/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."]'
api GET '/api/v0/instances/?owner=me'
t_eq "with ?owner=me too" "$code" 410
api GET /api/v0/nothing/here/
t_eq "an unknown route: 404 not_found" "$code $(b .error)" "404 not_found"
api PATCH /api/v0/instances/1/ '{}'
t_eq "a method a route does not take: 405" "$code $(b .error)" "405 method_not_allowed"

# SSH keys on the account, before creating.
api POST /api/v0/ssh/ "{\"ssh_key\":\"$PUB\"}"
t_eq "register a key" "$code $(b .success)" "200 true"
t_eq "the answer carries it" "$(b .key.public_key)" "$PUB"
key_id=$(b .key.id)
api POST /api/v0/ssh/ "{\"ssh_key\":\"$PUB\"}"
t_eq "registering it again gives the same key" "$(b .key.id)" "$key_id"
api GET /api/v0/ssh/
t_eq "the list has it" "$(b '[(k["id"], k["key"], k["deleted_at"], "user_id" in k, "created_at" in k) for k in d]')" \
	"[[$key_id,\"$PUB\",null,true,true]]"
api POST /api/v0/ssh/ '{"ssh_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}'
t_eq "a private key is refused" "$code" 400
api POST /api/v0/ssh/ '{}'
t_eq "no key: 400 no_ssh_key" "$code $(b .error)" "400 no_ssh_key"

# Create on an offer with direct ports; watch it boot.
api POST /api/v0/bundles/ '{"direct_port_count":{"gte":1},"num_gpus":{"eq":1},"order":[["dph_total","asc"]]}' ''
offer=$(b '.offers[0].id')
api PUT "/api/v0/asks/$offer/" '{"client_id":"me","image":"pytorch/pytorch:2.4.0","disk":16,"label":"job-1","env":{"RUN_ID":"42","-p 8000:8000":"1"},"onstart":"touch ~/.no_auto_tmux","runtype":"ssh_direc ssh_proxy"}'
t_eq "create: 200" "$code" 200
t_eq "success with a contract" "$(b '[d["success"], type(d["new_contract"]).__name__]')" '[true,"int"]'
t_match "an instance API key" "$(b .instance_api_key)" '^[0-9a-f]{64}$'
iid=$(b .new_contract)
t_ne "the instance id is not the offer id" "$iid" "$offer"
t_eq "instance ids start at 30000000" "$((iid >= 30000000))" 1
api GET "/api/v0/instances/$iid/"
t_match "first null or loading" "$(b .instances.actual_status)" '^(null|loading)$'
t_eq "no ports yet" "$(b .instances.ports)" null
if wait_status "$iid" running; then t_pass "then running"; else t_fail "then running" "$(cat "$B")"; fi
t_eq "label, image, runtype, onstart" \
	"$(b 'list(map(d["instances"].get, ("label","image_uuid","image_runtype","onstart","intended_status","cur_state")))')" \
	'["job-1","pytorch/pytorch:2.4.0","ssh_direc ssh_proxy","touch ~/.no_auto_tmux","running","running"]'
t_eq "extra_env is a list of pairs" "$(b .instances.extra_env)" '[["RUN_ID","42"],["-p 8000:8000","1"]]'
t_eq "the proxy endpoint is --ssh-endpoint" "$(b '[d["instances"]["ssh_host"], d["instances"]["ssh_port"]]')" '["127.0.0.1",2222]'
t_eq "so is the direct one (HostPort a string)" "$(b '.instances.ports["22/tcp"][0]')" '{"HostIp":"0.0.0.0","HostPort":"2222"}'
t_eq "public_ipaddr carries whitespace" "$(b 'd["instances"]["public_ipaddr"] != d["instances"]["public_ipaddr"].strip() and d["instances"]["public_ipaddr"].strip() == "127.0.0.1"')" true
t_match "env -p ports are mapped" "$(b '.instances.ports["8000/tcp"][0].HostPort')" '^[0-9]+$'
t_eq "the instance fields of the reference" "$(b 'sorted(set(["id","machine_id","host_id","bundle_id","label","template_id","template_hash_id","template_name","actual_status","intended_status","cur_state","next_state","status_msg","image_uuid","image_args","image_runtype","onstart","extra_env","jupyter_token","ssh_host","ssh_port","ssh_idx","machine_dir_ssh_port","public_ipaddr","local_ipaddrs","static_ip","ports","direct_port_count","direct_port_start","direct_port_end","gpu_name","num_gpus","gpu_ram","gpu_totalram","gpu_frac","gpu_util","gpu_temp","gpu_arch","cuda_max_good","driver_version","cpu_name","cpu_arch","cpu_cores","cpu_cores_effective","cpu_ram","cpu_util","mem_usage","mem_limit","vmem_usage","disk_space","disk_usage","disk_util","disk_name","disk_bw","inet_up","inet_down","geolocation","verification","reliability2","dph_base","dph_total","storage_cost","storage_total_cost","min_bid","is_bid","credit_balance","credit_discount","search","instance","start_date","end_date","duration","uptime_mins","time_remaining","time_remaining_isbid","volume_info"]) - set(d["instances"]))')" "[]"
t_eq "disk as asked" "$(b .instances.disk_space)" 16.0

api POST /api/v0/bundles/ '{"limit":1000}' ''
t_eq "a rented offer leaves the market" "$(b "$offer in [o['id'] for o in d['offers']]")" false
api PUT "/api/v0/asks/$offer/" '{"image":"x"}'
t_eq "renting it again: 404" "$code" 404
t_eq "no_such_ask, as Vast words it" "$(b '[d["success"], d["error"], d["msg"], d["ask_id"], "new_contract" in d]')" \
	"[false,\"no_such_ask\",\"error 404/3603: no_such_ask Instance type by id $offer is not available.\",$offer,false]"
api PUT /api/v0/asks/1/ '{"disk":10}'
t_eq "no image: 400 invalid_args" "$code $(b .error)" "400 invalid_args"
api PUT /api/v0/asks/1/ '{"image":"x","env":"-e A=1"}'
t_eq "env as a flag string: 400" "$code $(b .error)" "400 invalid_args"
t_match "naming the problem" "$(b .msg)" "env must be an object"

# Label, stop, instance keys.
api PUT "/api/v0/instances/$iid/" '{"label":"job-1b"}'
t_eq "relabel" "$(b .msg)" "label for $iid set to 'job-1b'"
api PUT "/api/v0/instances/$iid/" "{\"label\":\"$(printf '%0300d' 0)\"}"
t_eq "a label over 256: label_too_long" "$code $(b .error)" "400 label_too_long"
api POST "/api/v0/instances/$iid/ssh/" "{\"ssh_key\":\"$PUB\"}"
t_eq "attach a key to the instance" "$code $(b .success)" "200 true"
api GET "/api/v0/instances/$iid/ssh/"
t_eq "ssh_keys is a JSON string naming it" "$(b 'type(d["ssh_keys"]).__name__ + " " + str(any(k["public_key"] == "'"$PUB"'" for k in json.loads(d["ssh_keys"])))')" "str True"
api PUT "/api/v0/instances/$iid/" '{"state":"stopped"}'
t_eq "stop" "$code" 200
api GET "/api/v0/instances/$iid/"
t_eq "stopped" "$(b '[d["instances"]["actual_status"], d["instances"]["intended_status"], d["instances"]["ports"]]')" '["stopped","stopped",null]'
api PUT "/api/v0/instances/$iid/" '{"state":"running"}'
if wait_status "$iid" running; then t_pass "started again"; else t_fail "started again" "$(cat "$B")"; fi

# A bid under min_bid: an error, no contract, yet a stopped instance that bills.
api POST /api/v0/bundles/ '{"order":[["dph_total","asc"]],"type":"bid"}' ''
bid_offer=$(b '.offers[0].id')
api PUT "/api/v0/asks/$bid_offer/" '{"image":"x","label":"cheap-bid","price":0.001}'
t_eq "a low bid: 400 invalid_price" "$code $(b .error)" "400 invalid_price"
t_eq "without new_contract" "$(b '"new_contract" in d')" false
sim_ledger >"$B"
t_eq "yet the ledger has a stopped instance with its label" \
	"$(b '[i["state"] for i in d["instances"] if i["label"] == "cheap-bid"]')" '["stopped"]'

# v1 list.
v1 'limit=25'
t_eq "v1 list: 200" "$code $ctype" "200 application/json"
t_eq "its shape" "$(b '[d["success"], d["instances_found"], d["total_instances"], d["next_token"], sorted(d["label_counts"].items())]')" \
	'[true,2,2,null,[["cheap-bid",1],["job-1b",1]]]'
v1 'select_filters={"actual_status":{"in":["running"]}}'
t_eq "filter on actual_status" "$(b '[i["id"] for i in d["instances"]]')" "[$iid]"
v1 'select_filters={"label":{"eq":"cheap-bid"}}'
t_eq "filter on label" "$(b '[i["label"] for i in d["instances"]]')" '["cheap-bid"]'
v1 'select_filters={"dph_total":{"lt":1}}'
t_eq "a computed column: 400" "$code $(b .error)" "400 invalid_args"
t_match "is not a valid search key" "$(b .msg)" "dph_total is not a valid search key"
v1 'after_token=bm9wZQ'
t_eq "a bad token: 400 invalid_token" "$code $(b .error)" "400 invalid_token"

# Destroy: gone from reads and lists; twice is 404; the ledger keeps the bill.
api DELETE "/api/v0/instances/$iid/" '{}'
t_eq "destroy" "$code $(cat "$B")" '200 {"success":true}'
api GET "/api/v0/instances/$iid/"
t_eq "a destroyed instance reads as null" "$code $(cat "$B")" '200 {"instances":null}'
api DELETE "/api/v0/instances/$iid/" '{}'
t_eq "destroying twice: 404 no_such_instance" "$code $(b .error)" "404 no_such_instance"
v1
t_eq "gone from the list" "$(b '[i["label"] for i in d["instances"]]')" '["cheap-bid"]'
sim_ledger >"$B"
t_eq "the ledger: destroyed, dated, billed" \
	"$(b "[(i['state'], i['destroyed_at'] > i['created_at'], i['billed_seconds'] > 0, i['billed_usd'] > 0, i['offer_id'] == $offer, '$PUB' in i['ssh_keys']) for i in d['instances'] if i['id'] == $iid]")" \
	'[["destroyed",true,true,true,true,true]]'
t_eq "live count, creates per label, total" \
	"$(b '[d["live"], d["creates_per_label"], d["total_usd"] > 0, abs(d["total_usd"] - sum(i["billed_usd"] for i in d["instances"])) < 1e-6]')" \
	'[1,{"job-1":1,"cheap-bid":1},true,true]'
api GET /api/v0/users/current/
t_eq "the balance went down" "$(b 'd["balance"] < 25')" true
curl -s "$SIM_URL/sim/ledger" -H 'Authorization: Bearer nope' -o /dev/null -w '%{http_code}' >"$B"
t_eq "the ledger needs no key" "$(cat "$B")" 200
t_not_match "the key never reaches the log" "$(cat "$SIM_ERR")" "$KEY"
t_match "requests are logged at debug" "$(cat "$SIM_ERR")" "GET /api/v0/instances/$iid/ -> 200"
sim_stop
t_eq "SIGTERM stops it with status 0" "$SIM_STATUS" 0

# --- v1 pagination over 30 instances --------------------------------------------------

sim_start --boot-seconds 0 --rate 0 || exit 1
# 30 offers on 30 machines (renting one offer takes its machine's others).
api POST /api/v0/bundles/ '{"limit":100}' ''
created=()
for o in $(b '" ".join(str(i) for i in list({o["machine_id"]: o["id"] for o in reversed(d["offers"])}.values())[:30])'); do
	api PUT "/api/v0/asks/$o/" "{\"image\":\"x\",\"label\":\"page-$((${#created[@]} % 2))\"}"
	created+=("$(b .new_contract)")
done
t_eq "30 created" "${#created[@]}" 30
v1 'limit=100'
t_eq "a page is at most 25" "$(b '[len(d["instances"]), d["instances_found"], d["total_instances"], d["label_counts"]]')" \
	'[25,30,30,{"page-0":15,"page-1":15}]'
seen=$(b '[i["id"] for i in d["instances"]]')
token=$(b .next_token)
t_match "a next_token" "$token" '^[A-Za-z0-9_-]+$'
v1 'limit=25' "after_token=$token"
t_eq "the second page" "$(b '[len(d["instances"]), d["next_token"]]')" '[5,null]'
all=$(python3 -c 'import json,sys; print(json.dumps(sorted(json.loads(sys.argv[1]) + json.loads(sys.argv[2])), separators=(",",":")))' "$seen" "$(b '[i["id"] for i in d["instances"]]')")
t_eq "every instance once, in id order" "$all" "[$(IFS=,; echo "${created[*]}")]"
v1 'limit=10' 'order_by=[{"col":"id","dir":"desc"}]' 'select_filters={"label":{"eq":"page-1"}}' 'select_cols=["id","label"]'
t_eq "filtered, ordered, projected" "$(b '[d["instances_found"], len(d["instances"]), d["instances"][0]["id"] == max(i["id"] for i in d["instances"]), sorted(d["instances"][0])]')" \
	'[15,10,true,["id","label"]]'
t1=$(b .next_token)
v1 'limit=10' 'order_by=[{"col":"id","dir":"desc"}]' 'select_filters={"label":{"eq":"page-1"}}' "after_token=$t1"
t_eq "its next page" "$(b '[len(d["instances"]), d["next_token"]]')" '[5,null]'
api DELETE "/api/v0/instances/${created[0]}/" '{}'
v1
t_eq "a destroyed instance leaves the pages" "$(b '[d["total_instances"], d["instances"][0]["id"]]')" "[29,${created[1]}]"

# --- rate limit --------------------------------------------------------------------------

sim_start --rate 2 || exit 1
codes=
for _ in 1 2 3 4 5 6 7 8; do
	api GET /api/v0/users/current/
	codes="$codes $code"
done
t_match "a burst past --rate is refused with 429" "$codes" "429"
t_match "the first calls pass" "$codes" "^ 200 200"
t_eq "429 is text/plain" "$ctype" text/plain
t_match "with Vast's words" "$(cat "$B")" "^API requests too frequent: endpoint threshold=2"
codes=
for _ in 1 2 3 4 5 6 7 8; do
	codes="$codes $(curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/sim/ledger")"
done
t_eq "the ledger is not rate limited" "$codes" " 200 200 200 200 200 200 200 200"
api POST /api/v0/bundles/ '{}'
t_eq "another endpoint has its own budget" "$code" 200

# --- faults ----------------------------------------------------------------------------------

sim_start --faults rate_limit=1 || exit 1
api POST /api/v0/bundles/ '{}'
t_eq "rate_limit: 429 text/plain" "$code $ctype" "429 text/plain"
t_eq "faults spare the ledger" "$(curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/sim/ledger")" 200

sim_start --faults server_error=1 --seed 4 || exit 1
fives=
for _ in 1 2 3 4 5 6; do
	api GET /api/v0/users/current/
	fives="$fives $code"
	t_eq "server_error: a body that is not JSON" "$(json_get "$B" . >/dev/null 2>&1 && echo json || echo other)" other
done
t_match "server_error: 502, 503 or 504" "$fives" "^( 50[234])+$"

sim_start --faults slow=1 || exit 1
start=$(date +%s%N)
api GET /api/v0/users/current/
t_eq "slow: the call succeeds" "$code" 200
t_eq "slow: at least a second later" "$((($(date +%s%N) - start) >= 1000000000))" 1
start=$(date +%s%N)
sim_ledger >/dev/null
t_eq "slow spares the ledger" "$((($(date +%s%N) - start) < 1000000000))" 1

sim_start --faults create_no_contract=1 --boot-seconds 0 || exit 1
api POST /api/v0/bundles/ '{}' ''
api PUT "/api/v0/asks/$(b '.offers[0].id')/" '{"image":"x","label":"nc-1"}'
t_eq "create_no_contract: success without new_contract" "$code $(cat "$B")" '200 {"success":true}'
v1 'select_filters={"label":{"eq":"nc-1"}}'
t_eq "yet the instance exists under its label" "$(b '[i["label"] for i in d["instances"]]')" '["nc-1"]'

sim_start --faults create_error_leaves_instance=1 --boot-seconds 0 || exit 1
api POST /api/v0/bundles/ '{}' ''
api PUT "/api/v0/asks/$(b '.offers[0].id')/" '{"image":"x","label":"err-1"}'
t_match "create_error_leaves_instance: an error" "$code" '^(400|500|502|503|504)$'
t_eq "and no new_contract" "$(grep -c new_contract "$B")" 0
sim_ledger >"$B"
t_eq "yet the instance exists with its label" "$(b '[(i["label"], i["state"]) for i in d["instances"]]')" '[["err-1","running"]]'

sim_start --faults offer_taken=1 || exit 1
api POST /api/v0/bundles/ '{}' ''
taken=$(b '.offers[0].id')
api PUT "/api/v0/asks/$taken/" '{"image":"x","label":"taken"}'
t_eq "offer_taken: 404 no_such_ask" "$code $(b .error)" "404 no_such_ask"
t_eq "nothing was created" "$(sim_ledger | json_get - .live)" 0
api POST /api/v0/bundles/ '{"limit":1000}' ''
t_eq "and the offer is gone from the market" "$(b "$taken in [o['id'] for o in d['offers']]")" false

sim_start --faults stuck_loading=1,destroy_fail=2,list_lag=1.5 --boot-seconds 0 || exit 1
api POST /api/v0/bundles/ '{}' ''
api PUT "/api/v0/asks/$(b '.offers[0].id')/" '{"image":"x","label":"stuck"}'
sid=$(b .new_contract)
v1
t_eq "list_lag: a new instance is not listed at once" "$(b .total_instances)" 0
sleep 1.6
v1
t_eq "list_lag: then it is" "$(b .total_instances)" 1
api GET "/api/v0/instances/$sid/"
t_eq "stuck_loading: still loading" "$(b .instances.actual_status)" loading
api DELETE "/api/v0/instances/$sid/" '{}'
t_eq "destroy_fail: the first destroy fails" "$code" 500
api DELETE "/api/v0/instances/$sid/" '{}'
t_eq "destroy_fail: so does the second" "$code" 500
api GET "/api/v0/instances/$sid/"
t_eq "and the instance is still there" "$(b .instances.id)" "$sid"
api DELETE "/api/v0/instances/$sid/" '{}'
t_eq "destroy_fail: the third succeeds" "$code" 200

for f in exit:exited offline:offline; do
	sim_start --faults "instance_${f%%:*}_after=1" --boot-seconds 0 || exit 1
	api POST /api/v0/bundles/ '{}' ''
	api PUT "/api/v0/asks/$(b '.offers[0].id')/" '{"image":"x"}'
	fid=$(b .new_contract)
	api GET "/api/v0/instances/$fid/"
	t_eq "instance_${f%%:*}_after: running at first" "$(b .instances.actual_status)" running
	if wait_status "$fid" "${f#*:}" 30; then
		t_pass "instance_${f%%:*}_after: then ${f#*:}"
	else
		t_fail "instance_${f%%:*}_after: then ${f#*:}" "$(cat "$B")"
	fi
done

# A seeded probability decides the same way each run.
outcomes() {
	local out= o
	sim_start --faults offer_taken=0.5 --seed 9 --boot-seconds 0 || return 1
	api POST /api/v0/bundles/ '{"limit":12}' ''
	for o in $(b '" ".join(str(o["id"]) for o in d["offers"])'); do
		api PUT "/api/v0/asks/$o/" '{"image":"x"}'
		out="$out$code "
	done
	sim_stop
	echo "$out"
}
# (not in $(...): sim_start must run in this shell)
outcomes >"$tmpdir/o1"
outcomes >"$tmpdir/o2"
t_match "offer_taken=0.5: some creates fail" "$(cat "$tmpdir/o1")" "404"
t_match "offer_taken=0.5: some succeed" "$(cat "$tmpdir/o1")" "200"
t_eq "the same seed, the same outcomes" "$(cat "$tmpdir/o2")" "$(cat "$tmpdir/o1")"

# --- a market file, served as it is -------------------------------------------------------------

cat >"$tmpdir/market.json" <<'EOF'
{"offers": [
 {"id": "501", "gpu_name": "RTX 4090", "num_gpus": "1", "dph_total": "0.25", "rentable": "true",
  "external": null, "reliability2": null, "weird": [1, {"a": null}], "machine_id": 77},
 {"id": 502, "gpu_name": "H100 SXM", "num_gpus": 8, "dph_total": null, "rentable": true,
  "score": "12.5", "disk_space": 10},
 {"id": 503, "gpu_name": "RTX 3090", "num_gpus": 2, "dph_total": 0.2, "rentable": false, "score": 99}
]}
EOF
sim_start --market "$tmpdir/market.json" --boot-seconds 0 || exit 1
api POST /api/v0/bundles/ '{"limit":10,"order":[["id","asc"]]}' ''
t_eq "market file: offers served verbatim" \
	"$(b 'd["offers"] == json.load(open("'"$tmpdir/market.json"'"))["offers"]')" true
api POST /api/v0/bundles/ '{"num_gpus":{"eq":1},"rentable":{"eq":true},"dph_total":{"lt":0.3}}' ''
t_eq "string fields still filter as numbers" "$(b '[o["id"] for o in d["offers"]]')" '["501"]'
api POST /api/v0/bundles/ '{}' ''
t_eq "score desc, nulls and strings coerced" "$(b '[o["id"] for o in d["offers"]]')" '[503,502,"501"]'
api PUT /api/v0/asks/501/ '{"image":"x","label":"odd"}'
t_eq "an offer with a string id can be rented" "$code $(b .success)" "200 true"
api GET "/api/v0/instances/$(b .new_contract)/"
t_eq "the instance carries the file's fields" "$(b '[d["instances"]["gpu_name"], d["instances"]["machine_id"]]')" '["RTX 4090",77]'
api PUT /api/v0/asks/502/ '{"image":"x","disk":7}'
t_eq "under 8 GB of disk: 400" "$code $(b .error)" "400 invalid_args"

# --- determinism -------------------------------------------------------------------------------------

q='{"gpu_name":{"in":["RTX 4090","A100 SXM4","H100 SXM"]},"order":[["dph_total","asc"]],"limit":50}'
sim_start --seed 11 --offers 120 || exit 1
curl -s -X POST "$SIM_URL/api/v0/bundles/" --data "$q" >"$tmpdir/d1"
sim_start --seed 11 --offers 120 || exit 1
curl -s -X POST "$SIM_URL/api/v0/bundles/" --data "$q" >"$tmpdir/d2"
sim_start --seed 12 --offers 120 || exit 1
curl -s -X POST "$SIM_URL/api/v0/bundles/" --data "$q" >"$tmpdir/d3"
t_ne "an answer has offers" "$(json_get "$tmpdir/d1" 'len(d["offers"])')" 0
t_eq "the same seed gives the same bytes" "$(cat "$tmpdir/d2")" "$(cat "$tmpdir/d1")"
t_ne "another seed gives another market" "$(cat "$tmpdir/d3")" "$(cat "$tmpdir/d1")"
t_eq "--offers sets the market's size" "$(curl -s -X POST "$SIM_URL/api/v0/bundles/" --data '{"limit":1000}' | json_get - 'len(d["offers"])')" 120

done_testing
