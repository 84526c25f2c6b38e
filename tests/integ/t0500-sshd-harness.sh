#!/usr/bin/env bash
# The test sshd (tests/integ/sshd.sh): a real OpenSSH server on 127.0.0.1 with
# generated keys. Logins with the exported key and no other, sftp, dropped
# connections (ControlMaster included) with the listener kept, restarts on the
# same port and host key, and stop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
T_TIMEOUT=20

sshd_start || exit 1

remote=$SSHD_USER@127.0.0.1

# --- what sshd_start exports -----------------------------------------------------

t_match "SSHD_PORT is a port" "$SSHD_PORT" '^[1-9][0-9]*$'
t_eq "SSHD_USER is who runs the tests" "$SSHD_USER" "$(id -un)"
t_eq "SSHD_TARGET" "$SSHD_TARGET" "ssh://$(id -un)@127.0.0.1:$SSHD_PORT"
t_file "SSHD_KEY is a file" "$SSHD_KEY"
t_file "its public key beside it" "$SSHD_KEY.pub"
t_match "an ed25519 user key" "$(cat "$SSHD_KEY.pub")" '^ssh-ed25519 '
t_match "an ed25519 host key" "$(cat "$SSHD_HOST_KEY_PUB")" '^ssh-ed25519 '
t_match "the listener is alive" "$(kill -0 "$SSHD_PID" 2>&1 && echo alive)" alive
t_match "the config has what the tests rely on" "$(cat "$SSHD_CONFIG")" \
	'ListenAddress 127\.0\.0\.1.*PasswordAuthentication no.*KbdInteractiveAuthentication no.*PermitRootLogin prohibit-password.*PermitUserEnvironment no.*Subsystem sftp internal-sftp'

# --- logins ---------------------------------------------------------------------

t_ok "a command over ssh with the key" ssh "${SSHD_SSH_OPTS[@]}" "$remote" echo hello '"$USER"' </dev/null
t_eq "its output" "$(cat "$T_OUT")" "hello $SSHD_USER"
t_fails "its exit code comes back" 7 ssh "${SSHD_SSH_OPTS[@]}" "$remote" 'exit 7' </dev/null
t_ok "the function sshd_ssh" sshd_ssh id -un </dev/null
t_eq "logged in as SSHD_USER" "$(cat "$T_OUT")" "$SSHD_USER"

ssh-keygen -q -t ed25519 -N '' -f "$tmpdir/other_key" </dev/null >/dev/null
t_fails "another key is refused (255)" 255 ssh -F /dev/null -i "$tmpdir/other_key" -p "$SSHD_PORT" \
	-o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	-o BatchMode=yes -o LogLevel=ERROR "$remote" true </dev/null
t_match "and says so" "$(cat "$T_ERR")" 'Permission denied'
t_match "the log names the refused key" "$(cat "$SSHD_LOG")" 'Failed publickey'

kh=$tmpdir/known_hosts
t_ok "accept-new records the host key" ssh -F /dev/null -i "$SSHD_KEY" -p "$SSHD_PORT" \
	-o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$kh" \
	-o BatchMode=yes -o LogLevel=ERROR "$remote" true </dev/null
t_ok "the recorded key is the host key" grep -qF -- "$(cut -d' ' -f2 "$SSHD_HOST_KEY_PUB")" "$kh"

printf 'payload %s\n' "$RANDOM" >"$tmpdir/payload"
t_ok "sftp subsystem (scp -s)" scp -s -F /dev/null -i "$SSHD_KEY" -P "$SSHD_PORT" \
	-o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	-o BatchMode=yes -o LogLevel=ERROR "$tmpdir/payload" "$remote:$tmpdir/payload.copy" </dev/null
t_eq "the copy arrived" "$(cat "$tmpdir/payload.copy" 2>&1)" "$(cat "$tmpdir/payload")"

# --- dropped connections ------------------------------------------------------------

# wait_for FILE: up to 10 s for FILE to be non-empty.
wait_for() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_for_cmd CMD...: up to 10 s for CMD to succeed.
wait_for_cmd() {
	local i
	for ((i = 0; i < 200; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# A held connection running a remote command, and a ControlMaster. (Odd sleep
# lengths: other tests kill their own `sleep 60` by name.)
ctl=$tmpdir/ctl
ssh "${SSHD_SSH_OPTS[@]}" "$remote" "echo \$\$ >'$tmpdir/held.pid'; echo started; exec sleep 59.5" \
	</dev/null >"$tmpdir/held.out" 2>"$tmpdir/held.err" &
held=$!
t_ok "a ControlMaster starts" timeout 20 ssh "${SSHD_SSH_OPTS[@]}" -o ControlMaster=yes -o ControlPath="$ctl" \
	-o ControlPersist=60 -fN "$remote" </dev/null
t_ok "the master answers" ssh "${SSHD_SSH_OPTS[@]}" -o ControlPath="$ctl" -O check "$remote" </dev/null
t_ok "a command through the master" ssh "${SSHD_SSH_OPTS[@]}" -o ControlPath="$ctl" "$remote" echo muxed </dev/null
t_eq "its output" "$(cat "$T_OUT")" muxed
wait_for "$tmpdir/held.out" || diag "the held connection printed nothing: $(cat "$tmpdir/held.err")"
t_eq "the held connection runs" "$(cat "$tmpdir/held.out")" started
n=$(sshd_connections)
t_match "sshd_connections counts both" "$n" '^[2-9]$|^[1-9][0-9]+$'
listener=$SSHD_PID

t_ok "sshd_kill_connections" sshd_kill_connections
t_eq "no connection left" "$(sshd_connections)" 0
t_eq "the listener is the same and alive" "$(kill -0 "$listener" 2>&1 && echo "$SSHD_PID")" "$listener"
rc=0
timeout 10 bash -c 'wait_pid() { while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }; wait_pid '"$held" || rc=$?
wait "$held"
held_rc=$?
t_eq "the held client saw its connection closed (255)" "$rc/$held_rc" "0/255"
t_fails "the master is gone" 255 ssh "${SSHD_SSH_OPTS[@]}" -o ControlPath="$ctl" -O check "$remote" </dev/null
rpid=$(cat "$tmpdir/held.pid")
t_match "the remote command outlives its connection, as on a dropped network" \
	"$(kill -0 "$rpid" 2>&1 && echo alive)" alive
kill "$rpid" 2>/dev/null
t_ok "new logins work after the drop" ssh "${SSHD_SSH_OPTS[@]}" "$remote" true </dev/null

# --- restart ------------------------------------------------------------------------

ssh "${SSHD_SSH_OPTS[@]}" "$remote" "echo started; exec sleep 58.5" \
	</dev/null >"$tmpdir/held2.out" 2>/dev/null &
held=$!
wait_for "$tmpdir/held2.out"
port=$SSHD_PORT
t_ok "sshd_restart" sshd_restart
t_eq "the same port" "$SSHD_PORT" "$port"
t_ne "a new listener" "$SSHD_PID" "$listener"
# (The readiness probe's own connection may take a moment to close.)
no_conn() { [ "$(sshd_connections)" = 0 ]; }
t_ok "no connection survived" wait_for_cmd no_conn
wait "$held"
t_eq "the held client saw its connection closed (255)" "$?" 255
t_ok "the same host key (strict known_hosts check)" ssh -F /dev/null -i "$SSHD_KEY" -p "$SSHD_PORT" \
	-o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$kh" \
	-o BatchMode=yes -o LogLevel=ERROR "$remote" echo again </dev/null
t_eq "its output" "$(cat "$T_OUT")" again

# --- stop -------------------------------------------------------------------------

listener=$SSHD_PID
sshd_stop
t_eq "sshd_stop clears SSHD_PID" "${SSHD_PID:-}" ""
t_match "the listener is gone" "$(kill -0 "$listener" 2>&1 || echo gone)" gone
t_fails "nothing listens any more (255)" 255 ssh "${SSHD_SSH_OPTS[@]}" -o ConnectTimeout=5 "$remote" true </dev/null

done_testing
