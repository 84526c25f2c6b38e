# shellcheck shell=bash
# tests/integ/sshd.sh: a real OpenSSH server on 127.0.0.1 for a test, with
# generated host and user keys.
#
# Source it after lib.sh, then start the server and talk to it:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/sshd.sh"
#   sshd_start || exit 1
#   t_ok "echo over ssh" sshd_ssh echo hi
#   "$FERRY" remote wait --target "$SSHD_TARGET" ...   # with VASTAI_SSH_KEY_PATH=$SSHD_KEY
#   sshd_kill_connections      # every connection dropped, the listener kept
#   sshd_restart               # the same server (port, host key) started again
#
# sshd_start
#   Skips the whole script (skip_all) when $SSHD_BIN (default /usr/sbin/sshd),
#   ssh or ssh-keygen is missing. Otherwise, under $tmpdir/sshd/: makes an
#   ed25519 host key (host_ed25519) and user key pair (id_ed25519, .pub),
#   authorized_keys holding the user key, and sshd_config: ListenAddress
#   127.0.0.1 on a free port, that HostKey, AuthorizedKeysFile, PidFile
#   sshd.pid, StrictModes no, UsePAM no, password and keyboard-interactive
#   authentication off, PermitRootLogin prohibit-password (CI runs as root),
#   Subsystem sftp internal-sftp, LogLevel VERBOSE, PrintMotd no,
#   PermitUserEnvironment no, and room for many connections and multiplexed
#   sessions (MaxStartups, MaxSessions). Starts `$SSHD_BIN -D -e -f CONFIG`
#   in the background (stdin /dev/null, its log appended to $SSHD_LOG), waits
#   up to 15 s until a real `ssh ... true` with the user key works, registers
#   at_exit to stop it (connections included), and exports:
#     SSHD_PORT, SSHD_USER ($(id -un)), SSHD_KEY (the private key; the public
#     key is $SSHD_KEY.pub), SSHD_TARGET (ssh://USER@127.0.0.1:PORT),
#     SSHD_PID (the listener), SSHD_DIR, SSHD_CONFIG, SSHD_LOG,
#     SSHD_HOST_KEY_PUB (the host's public key file, for known_hosts checks).
#   SSHD_SSH_OPTS (an array) holds the client options sshd_ssh uses: no config
#   file, no known_hosts (StrictHostKeyChecking=no,
#   UserKnownHostsFile=/dev/null), BatchMode, the key and the port.
#   On failure it prints diagnostics (the tail of the log) and returns 1.
#   Call it directly, not in $(...), so that the variables reach the test.
#   One server per test script.
# sshd_ssh ARGS...
#   ssh "${SSHD_SSH_OPTS[@]}" USER@127.0.0.1 ARGS... (stdin inherited).
# sshd_stop
#   Drops every connection and stops the listener; waits for it.
# sshd_restart
#   sshd_stop, then the same server again: same port, keys and log. Every
#   connection is gone afterwards; returns 1 (with diagnostics) if it does not
#   come back within 15 s.
# sshd_kill_connections
#   SIGKILLs every per-connection sshd process (each connection is a session
#   of its own, led by a child of the listener) but not the listener, and not
#   the commands those connections started (sshd runs each in a session of
#   its own, as a dropped network leaves them). Clients see the connection
#   closed (ssh exits 255). Waits (bounded) until the listener has no child.
# sshd_connections
#   Prints how many connections (children of the listener) are open.

if [ -n "${_SSHD_SH_LOADED:-}" ]; then
	return 0
fi
_SSHD_SH_LOADED=1
SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}

# _sshd_free_port: a TCP port on 127.0.0.1 that nothing listens on just now.
_sshd_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# _sshd_launch: start the listener from $SSHD_CONFIG and wait until ssh works.
_sshd_launch() {
	local i
	"$SSHD_BIN" -D -e -f "$SSHD_CONFIG" </dev/null >>"$SSHD_LOG" 2>&1 &
	SSHD_PID=$!
	export SSHD_PID
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$SSHD_PID" 2>/dev/null; then
			wait "$SSHD_PID" 2>/dev/null
			return 2
		fi
		# A cheap probe first: is the port accepting yet?
		if (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null &&
			timeout 10 ssh "${SSHD_SSH_OPTS[@]}" -o ConnectTimeout=5 \
				"$SSHD_USER@127.0.0.1" true </dev/null >/dev/null 2>>"$SSHD_DIR/probe.err"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

_sshd_fail() {
	diag "$1"
	_t_show "sshd log" "$SSHD_LOG"
	[ -s "$SSHD_DIR/probe.err" ] && _t_show "ssh probe" "$SSHD_DIR/probe.err"
	return 1
}

sshd_start() {
	local tool attempt rc
	[ -x "$SSHD_BIN" ] || skip_all "needs an OpenSSH server at $SSHD_BIN (apt-get install openssh-server; scripts/deps.sh installs it)"
	for tool in ssh ssh-keygen python3 timeout; do
		command -v "$tool" >/dev/null 2>&1 || skip_all "needs $tool"
	done
	SSHD_DIR=$tmpdir/sshd
	SSHD_CONFIG=$SSHD_DIR/sshd_config
	SSHD_LOG=$SSHD_DIR/sshd.log
	SSHD_KEY=$SSHD_DIR/id_ed25519
	SSHD_HOST_KEY_PUB=$SSHD_DIR/host_ed25519.pub
	SSHD_USER=$(id -un)
	mkdir -p "$SSHD_DIR" || return 1
	chmod 700 "$SSHD_DIR"
	ssh-keygen -q -t ed25519 -N '' -C ferry-test-host -f "$SSHD_DIR/host_ed25519" </dev/null >/dev/null &&
		ssh-keygen -q -t ed25519 -N '' -C ferry-test-user -f "$SSHD_KEY" </dev/null >/dev/null || {
		diag "ssh-keygen failed"
		return 1
	}
	cp "$SSHD_KEY.pub" "$SSHD_DIR/authorized_keys"
	chmod 600 "$SSHD_DIR/authorized_keys"
	# Privilege separation wants its empty directory when sshd runs as root.
	[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
	: >"$SSHD_LOG"
	for ((attempt = 1; attempt <= 3; attempt++)); do
		SSHD_PORT=$(_sshd_free_port) || {
			diag "cannot find a free port"
			return 1
		}
		cat >"$SSHD_CONFIG" <<EOF
# written by tests/integ/sshd.sh
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey "$SSHD_DIR/host_ed25519"
AuthorizedKeysFile "$SSHD_DIR/authorized_keys"
PidFile "$SSHD_DIR/sshd.pid"
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitUserEnvironment no
Subsystem sftp internal-sftp
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 200
MaxSessions 100
MaxAuthTries 20
EOF
		SSHD_TARGET=ssh://$SSHD_USER@127.0.0.1:$SSHD_PORT
		SSHD_SSH_OPTS=(-F /dev/null -i "$SSHD_KEY" -p "$SSHD_PORT"
			-o IdentitiesOnly=yes -o StrictHostKeyChecking=no
			-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)
		export SSHD_PORT SSHD_USER SSHD_KEY SSHD_TARGET SSHD_DIR SSHD_CONFIG \
			SSHD_LOG SSHD_HOST_KEY_PUB
		rc=0
		_sshd_launch || rc=$?
		if [ "$rc" = 0 ]; then
			at_exit "sshd_stop"
			return 0
		fi
		# Exited at once: most likely the port was taken in between; try
		# another. Anything else is a real failure.
		[ "$rc" = 2 ] && grep -q 'Address already in use' "$SSHD_LOG" && continue
		kill "$SSHD_PID" 2>/dev/null
		wait "$SSHD_PID" 2>/dev/null
		_sshd_fail "sshd did not accept ssh logins within 15 s (status $rc)"
		return 1
	done
	_sshd_fail "sshd could not listen (3 ports tried)"
}

sshd_ssh() {
	ssh "${SSHD_SSH_OPTS[@]}" "$SSHD_USER@127.0.0.1" "$@"
}

# _sshd_procs: "PID PPID SID" for every process, from /proc (no procps needed).
_sshd_procs() {
	local f s
	local -a a
	for f in /proc/[0-9]*/stat; do
		{ read -r s <"$f"; } 2>/dev/null || continue
		# "PID (COMM) STATE PPID PGRP SID ...": COMM may hold anything.
		read -r -a a <<<"${s##*) }"
		echo "${s%% *} ${a[1]} ${a[3]}"
	done
}

# _sshd_children: the listener's children, one per connection.
_sshd_children() {
	[ -n "${SSHD_PID:-}" ] || return 0
	_sshd_procs | while read -r p pp _; do
		[ "$pp" = "$SSHD_PID" ] && echo "$p"
	done
}

sshd_connections() {
	_sshd_children | wc -l
}

sshd_kill_connections() {
	local c i p sid
	local -a kids
	mapfile -t kids < <(_sshd_children)
	if [ ${#kids[@]} -gt 0 ]; then
		# Each connection's sshd processes share a session led by the
		# listener's child; the commands they run have sessions of their own.
		while read -r p _ sid; do
			for c in "${kids[@]}"; do
				[ "$sid" = "$c" ] && kill -KILL "$p" 2>/dev/null
			done
		done < <(_sshd_procs)
		kill -KILL "${kids[@]}" 2>/dev/null
	fi
	for ((i = 0; i < 100; i++)); do
		[ -z "$(_sshd_children)" ] && return 0
		sleep 0.05
	done
	diag "sshd_kill_connections: connections still open: $(_sshd_children | tr '\n' ' ')"
	return 1
}

sshd_stop() {
	[ -n "${SSHD_PID:-}" ] || return 0
	sshd_kill_connections >/dev/null
	kill -TERM "$SSHD_PID" 2>/dev/null
	wait "$SSHD_PID" 2>/dev/null
	SSHD_PID=
}

sshd_restart() {
	local rc=0
	sshd_stop
	_sshd_launch || rc=$?
	[ "$rc" = 0 ] && return 0
	kill "$SSHD_PID" 2>/dev/null
	wait "$SSHD_PID" 2>/dev/null
	SSHD_PID=
	_sshd_fail "sshd did not come back after a restart (status $rc)"
}
