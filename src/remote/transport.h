/* Running commands and moving bytes on a target: a rented machine over
 * OpenSSH (one ControlMaster per target), or this machine with local
 * processes (docs/remote.md). Commands are one shell command line in which
 * every value was quoted with str_shell_quote: nothing a user or a dataset
 * supplies is ever interpreted by a shell. */
#ifndef FERRY_REMOTE_TRANSPORT_H
#define FERRY_REMOTE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/clock.h"
#include "config/config.h"
#include "remote/target.h"

struct remote;

/* Settings: the identity (ssh.key_path), known hosts under state_dir, and
 * control sockets under a private runtime folder. */
int remote_open(struct remote **out, const struct remote_target *t, const struct config *cfg,
		struct err *e);
/* Ends the ControlMaster (ssh -O exit); a no-op for local targets. */
void remote_close(struct remote *rm);
const struct remote_target *remote_target_of(const struct remote *rm);

struct remote_io {
	const void *input;       /* bytes for stdin, or NULL */
	size_t input_len;
	int in_fd;               /* with use_in_fd: stdin from this file */
	bool use_in_fd;
	int out_fd;              /* with use_out_fd: stdout to this file */
	bool use_out_fd;
	int timeout_ms;          /* <= 0: none */
	void (*tick)(void *arg); /* progress, about every 200 ms */
	void *tick_arg;
	struct cancel *cancel;   /* set: the command is killed, ERR_CANCELLED */
};

/* Run `cmd` (a POSIX sh command line) on the target. 0 with *status the
 * command's exit status; ERR_CONN when ssh could not connect or the
 * connection dropped (ssh's 255), with ssh's own message; ERR_TIMEOUT
 * when the limit passed, ERR_CANCELLED when io->cancel was set (the whole
 * local process group is killed either way; over SSH, what the command
 * started on the target sees its input end and its output closed). */
int remote_exec(struct remote *rm, const char *cmd, const struct remote_io *io, struct buf *out,
		struct buf *errout, int *status, struct err *e);
/* The same, interactive (a terminal when there is one), for `ferry ssh`. */
int remote_interactive(struct remote *rm, const char *cmd, int *status, struct err *e);

#endif
