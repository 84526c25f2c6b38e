# shellcheck shell=bash
# tests/integ/sim.sh: run `ferry sim` (the simulated Vast.ai API) for a test.
#
# Source it after lib.sh, then start a simulator and point ferry or curl at it:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/sim.sh"
#   sim_start --boot-seconds 0 --seed 3 || exit 1
#   curl -s -X POST "$SIM_URL/api/v0/bundles/" -d '{"limit":5}'
#   VAST_URL=$SIM_URL VAST_API_KEY=any t_ok "search" "$FERRY" offers ...
#   t_eq "nothing left running" "$(sim_ledger | json_get - .live)" 0
#
# sim_start [FERRY-SIM-ARGS...]
#   Starts "$FERRY" sim --listen 127.0.0.1:0 ARGS... in the background (stdin
#   from /dev/null, stdout in $SIM_OUT, stderr in $SIM_ERR, both under
#   $tmpdir), waits up to 10 s for its "listening on" line, then exports
#   SIM_URL (http://127.0.0.1:PORT) and SIM_PID and registers at_exit to stop
#   it. On failure it prints diagnostics and returns 1. Call it directly, not
#   in $(...), so the variables reach the test. Each call starts a new
#   simulator and points SIM_URL at it; earlier ones keep running until
#   sim_stop or exit. Set FERRY_LOG=debug in the environment for request logs.
# sim_stop
#   Sends SIGTERM to the latest simulator, waits for it and sets SIM_STATUS to
#   its exit status (0 for a clean stop).
# sim_ledger
#   Prints GET $SIM_URL/sim/ledger: every instance ever created with its
#   state and cost (docs/sim.md), for checking what a test left behind.

if [ -n "${_SIM_SH_LOADED:-}" ]; then
	return 0
fi
_SIM_SH_LOADED=1
_sim_n=0

sim_start() {
	local i line
	_sim_n=$((_sim_n + 1))
	SIM_OUT=$tmpdir/sim.$_sim_n.out
	SIM_ERR=$tmpdir/sim.$_sim_n.err
	SIM_URL=
	"$FERRY" sim --listen 127.0.0.1:0 "$@" </dev/null >"$SIM_OUT" 2>"$SIM_ERR" &
	SIM_PID=$!
	at_exit "kill $SIM_PID 2>/dev/null; wait $SIM_PID 2>/dev/null"
	for ((i = 0; i < 100; i++)); do
		line=$(grep -m1 '^ferry sim: listening on http://' "$SIM_OUT" 2>/dev/null)
		if [ -n "$line" ]; then
			SIM_URL=${line#ferry sim: listening on }
			export SIM_URL SIM_PID SIM_OUT SIM_ERR
			return 0
		fi
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	diag "ferry sim $* did not start listening within 10 s"
	_t_show stdout "$SIM_OUT"
	_t_show stderr "$SIM_ERR"
	return 1
}

sim_stop() {
	SIM_STATUS=0
	kill -TERM "$SIM_PID" 2>/dev/null
	wait "$SIM_PID" 2>/dev/null || SIM_STATUS=$?
}

sim_ledger() {
	curl -s --max-time 10 "$SIM_URL/sim/ledger"
}
