#!/usr/bin/env bash
# ferry offers against ferry sim: the query language end to end (the body
# the server gets, filters applied), the table and --json, whole-job
# ranking with its filters and --explain, and the client's retries and
# error messages (rate limits, 5xx, a refused key).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sim.sh"
require_cmd python3 curl

cd "$tmpdir" || exit 1
sim_start --seed 7 --offers 300 --api-key sim-key-123 --rate 0
export VAST_URL=$SIM_URL VAST_API_KEY=sim-key-123

# pyq FILE EXPR: evaluate a python expression over the JSON in FILE (as d).
pyq() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# --- usage --------------------------------------------------------------------
t_ok "offers --help" "$FERRY" offers --help
t_match "help names the language" "$(cat "$T_OUT")" "field op value"
t_fails "a term without operator is a usage error" 2 "$FERRY" offers gpu_ram
t_match "and names the term" "$(cat "$T_ERR")" "gpu_ram"
t_fails "a doubled operator is a usage error" 2 "$FERRY" offers 'gpu_ram>>24'
t_fails "--rank without --recipe" 2 "$FERRY" offers --rank --steps 10 --dataset-bytes 1
t_fails "--rank with an unknown recipe" 2 "$FERRY" offers --rank --recipe nope --steps 10 --dataset-bytes 1
t_match "which names the recipes" "$(cat "$T_ERR")" "flux-dev-lora"
t_fails "--explain without --rank" 2 "$FERRY" offers --explain

# --- the body, as vastai sends it ----------------------------------------------
t_ok "print-query" "$FERRY" offers --print-query 'gpu_ram>=24' 'duration>3' 'dph<0.5' gpu_name=RTX_4090 'geolocation in [US,CA]' verified=any -o 'num_gpus,dlperf-' --limit 7
cp "$T_OUT" q.json
t_eq "gpu_ram in MB as a float" "$(pyq q.json 'd["gpu_ram"]')" "{'gte': 24000.0}"
t_eq "duration in seconds" "$(pyq q.json 'd["duration"]')" "{'gt': 259200.0}"
t_eq "dph alias, value a string" "$(pyq q.json 'd["dph_total"]')" "{'lt': '0.5'}"
t_eq "underscore is a space" "$(pyq q.json 'd["gpu_name"]')" "{'eq': 'RTX 4090'}"
t_eq "in list" "$(pyq q.json 'd["geolocation"]')" "{'in': ['US', 'CA']}"
t_eq "field=any removes a default" "$(pyq q.json '"verified" in d')" "False"
t_eq "other defaults stay" "$(pyq q.json 'd["rentable"]')" "{'eq': True}"
t_eq "order" "$(pyq q.json 'd["order"]')" "[['num_gpus', 'asc'], ['dlperf', 'desc']]"
t_eq "limit" "$(pyq q.json 'd["limit"]')" "7"
t_ok "-n drops the defaults" "$FERRY" offers --print-query -n
t_eq "no verified, external or rentable" "$(pyq "$T_OUT" '[k for k in ("verified","external","rentable") if k in d]')" "[]"

# --- searching ----------------------------------------------------------------
t_ok "a plain search" "$FERRY" offers
t_match "prints a table" "$(head -1 "$T_OUT")" "^ID +GPU +VRAM\\(GB\\) +\\\$/h +DLPerf"
cp "$T_OUT" table.txt
t_ok "the same search as JSON" "$FERRY" offers --json
# The table speaks the filter's units and fields: GB of 1000 MB, one
# decimal (a 24564 MB card is 24.6, not 25, so gpu_ram>=25 drops it), and
# the reliability field a reliability filter reads.
t_eq "VRAM and reliability as the filter reads them" \
	"$(sed -n 2p table.txt | python3 -c 'import sys; l = sys.stdin.read(); print(l[0:10].strip(), l[30:38].strip(), l[63:69].strip())')" \
	"$(pyq "$T_OUT" '"%d %.1f %.3f" % (d["offers"][0]["id"], d["offers"][0]["gpu_ram"] / 1000, d["offers"][0]["reliability"])')"
t_ok "search --json for RTX 4090s" "$FERRY" offers --json gpu_name=RTX_4090
cp "$T_OUT" a.json
t_ne "some offers" "$(pyq a.json 'len(d["offers"])')" "0"
t_eq "every one an RTX 4090" "$(pyq a.json 'sorted(set(o["gpu_name"] for o in d["offers"]))')" "['RTX 4090']"
t_eq "every one verified (a default)" "$(pyq a.json 'all(o["verification"] == "verified" for o in d["offers"])')" "True"
t_ok "gpu_ram>=48, cheapest first" "$FERRY" offers --json 'gpu_ram>=48' -o dph_total
cp "$T_OUT" b.json
t_eq "all at least 48 GB" "$(pyq b.json 'all(o["gpu_ram"] >= 48000 for o in d["offers"])')" "True"
t_eq "sorted by dph_total" "$(pyq b.json '[o["dph_total"] for o in d["offers"]] == sorted(o["dph_total"] for o in d["offers"])')" "True"
t_ok "--limit 5" "$FERRY" offers --json --limit 5
t_eq "five offers" "$(pyq "$T_OUT" 'len(d["offers"])')" "5"
t_ok "num_gpus in [2,4]" "$FERRY" offers --json 'num_gpus in [2,4]'
t_eq "only 2 and 4 GPUs" "$(pyq "$T_OUT" 'sorted(set(o["num_gpus"] for o in d["offers"])) in ([2],[4],[2,4])')" "True"
t_ok "all offers with -n" "$FERRY" offers --json -n --limit 1000
n_all=$(pyq "$T_OUT" 'len(d["offers"])')
t_ok "default filters" "$FERRY" offers --json --limit 1000
n_def=$(pyq "$T_OUT" 'len(d["offers"])')
t_eq "-n shows more" "$([ "$n_all" -gt "$n_def" ] && echo yes)" "yes"
t_fails "an unknown field is the server's error" 1 "$FERRY" offers 'frobs>3'
t_match "named in the message" "$(cat "$T_ERR")" "frobs"

# --- ranking ------------------------------------------------------------------
t_ok "rank for flux-dev-lora" "$FERRY" offers --rank --recipe flux-dev-lora --steps 2000 --dataset-bytes 200000000 --json --top 0
cp "$T_OUT" r.json
t_ne "some offers can run it" "$(pyq r.json 'len(d["ranked"])')" "0"
t_eq "cheapest whole job first" "$(pyq r.json '[x["total_usd"] for x in d["ranked"]] == sorted(x["total_usd"] for x in d["ranked"])')" "True"
t_match "the filters it added are listed" "$(pyq r.json 'd["filters_added"]')" "gpu_ram"
t_eq "the VRAM filter went to the server" "$(pyq r.json 'd["query"]["gpu_ram"]')" "{'gte': 24000.0}"
t_ok "rank, table with --explain" "$FERRY" offers --rank --recipe flux-dev-lora --steps 2000 --dataset-bytes 200000000 --explain --top 3
t_match "explain shows the terms" "$(cat "$T_OUT")" "upload"
t_match "the added filters are printed" "$(cat "$T_ERR")" "added gpu_ram"
gen_ok=0
bash "$GEN_DATASET" valid ds 12 512x512 >/dev/null && gen_ok=1
if [ $gen_ok = 1 ]; then
	t_ok "rank with --dataset DIR" "$FERRY" offers --rank --recipe flux-schnell-lora --steps 500 --dataset ds --json
	t_ne "sized from the folder" "$(pyq "$T_OUT" 'd["ranked"][0]["upload_s"]')" "0"
else
	t_skip "rank with --dataset DIR" "gen_dataset failed"
	t_skip "sized from the folder" "gen_dataset failed"
fi

# A GPU 4.75x faster at 3.6x the price wins a long job and loses a short one.
cat >market.json <<'JSON'
{"offers": [
 {"id": 1001, "machine_id": 1, "gpu_name": "H100 SXM", "num_gpus": 1, "gpu_ram": 81559, "gpu_total_ram": 81559,
  "dph_total": 0.90, "dph_base": 0.89, "dlperf": 300, "reliability2": 0.995, "inet_down": 2000, "inet_up": 1000,
  "cuda_max_good": 13.0, "driver_version": "580.82.07", "compute_cap": 900, "disk_space": 500, "verified": true,
  "rentable": true, "external": false, "score": 10, "geolocation": "Oregon, US"},
 {"id": 1002, "machine_id": 2, "gpu_name": "RTX 3090", "num_gpus": 1, "gpu_ram": 24576, "gpu_total_ram": 24576,
  "dph_total": 0.25, "dph_base": 0.24, "dlperf": 40, "reliability2": 0.995, "inet_down": 2000, "inet_up": 1000,
  "cuda_max_good": 13.0, "driver_version": "580.82.07", "compute_cap": 860, "disk_space": 500, "verified": true,
  "rentable": true, "external": false, "score": 20, "geolocation": "Texas, US"}
]}
JSON
t_ok "rank a saved answer (--from), long job" "$FERRY" offers --from market.json --rank --recipe flux-schnell-lora --steps 20000 --dataset-bytes 100000000 --json
t_eq "the H100 wins 20000 steps" "$(pyq "$T_OUT" 'd["ranked"][0]["offer_id"]')" "1001"
t_ok "short job" "$FERRY" offers --from market.json --rank --recipe flux-schnell-lora --steps 10 --dataset-bytes 100000000 --json
t_eq "the 3090 wins 10 steps" "$(pyq "$T_OUT" 'd["ranked"][0]["offer_id"]')" "1002"
t_ok "--exclude-machine" "$FERRY" offers --from market.json --rank --recipe flux-schnell-lora --steps 20000 --dataset-bytes 1 --exclude-machine 1 --json
t_eq "the excluded machine is gone" "$(pyq "$T_OUT" '[x["offer_id"] for x in d["ranked"]]')" "[1002]"

# --- errors and retries -------------------------------------------------------
t_fails "a refused key is a credentials error" 3 env VAST_API_KEY=wrong-key-456 "$FERRY" offers
t_match "said as a bad key" "$(cat "$T_ERR")" "refused the API key"
t_not_match "the key is not shown" "$(cat "$T_ERR")" "wrong-key-456"
t_ok "-vvv traces the exchange" "$FERRY" -vvv offers --limit 1
t_match "request and answer lines" "$(cat "$T_ERR")" "> POST /api/v0/bundles/.*< HTTP/1.1 200"
t_match "the key as ****" "$(cat "$T_ERR")" "Authorization: \\*\\*\\*\\*"
t_not_match "never the key" "$(cat "$T_ERR")" "sim-key-123"
t_ok "search needs no key" env -u VAST_API_KEY "$FERRY" offers --limit 3
t_fails "an unreachable API" 1 env VAST_URL=http://127.0.0.1:9 "$FERRY" --set vast.tries=2 offers
t_match "says it cannot reach it, and how often it tried" "$(cat "$T_ERR")" "after 2 tries.*cannot reach"

sim_start --seed 3 --api-key sim-key-123 --rate 0 --faults 'rate_limit=0.5,server_error=0.3'
export VAST_URL=$SIM_URL
t_ok "429s and 5xx are retried" "$FERRY" -v offers --json --limit 3
t_match "the retries are logged" "$(cat "$T_ERR")" "trying again"
t_eq "and the answer arrives" "$(pyq "$T_OUT" 'len(d["offers"])')" "3"
sim_start --seed 3 --api-key sim-key-123 --faults 'rate_limit=1'
export VAST_URL=$SIM_URL
t_fails "a rate limit that never lifts" 1 "$FERRY" --set vast.tries=2 offers
t_match "is reported as one" "$(cat "$T_ERR")" "429.*rate limited"

done_testing
