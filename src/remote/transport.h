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
#include "config/config.h"

struct vast_client;

enum remote_kind { REMOTE_SSH, REMOTE_LOCAL };

/* Where: a host and the folder job roots live in. */
struct remote_target {
	enum remote_kind kind;
	char *user;              /* ssh: login (default root) */
	char *host;              /* ssh */
	int port;                /* ssh (default 22) */
	char *root;              /* job roots' parent: remote.root, or local:DIR */
	long long instance;      /* the Vast instance it was resolved from, or 0 */
};

/* Parse "ssh://[user@]host[:port]", "[user@]host[:port]", "local" or
 * "local:DIR". `root` is remote.root (ssh targets and plain "local"). */
int remote_target_parse(const char *spec, const char *root, struct remote_target *t,
			struct err *e);
/* Resolve a Vast instance: direct public_ipaddr + ports["22/tcp"] when
 * mapped, else ssh_host:ssh_port; user root. ERR_NOTFOUND while it has no
 * SSH endpoint yet. */
int remote_target_instance(struct vast_client *c, long long id, const char *root,
			   struct remote_target *t, struct err *e);
void remote_target_release(struct remote_target *t);
/* "ssh://root@1.2.3.4:22" or "local:/dir", for messages (a new string). */
char *remote_target_describe(const struct remote_target *t);

struct remote;

/* Settings: the identity (ssh.key_path), known hosts under state_dir, and
 * control sockets under a private runtime folder. */
int remote_open(struct remote **out, const struct remote_target *t, const struct config *cfg,
		struct err *e);
/* Ends the ControlMaster (ssh -O exit); a no-op for local targets. */
void remote_close(struct remote *r);
const struct remote_target *remote_target_of(const struct remote *r);

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
};

/* Run `cmd` (a POSIX sh command line) on the target. 0 with *status the
 * command's exit status; ERR_CONN when ssh could not connect or the
 * connection dropped (ssh's 255), with ssh's own message; ERR_TIMEOUT
 * when the limit passed (the whole process group is killed). */
int remote_exec(struct remote *r, const char *cmd, const struct remote_io *io, struct buf *out,
		struct buf *errout, int *status, struct err *e);
/* The same, interactive (a terminal when there is one), for `ferry ssh`. */
int remote_interactive(struct remote *r, const char *cmd, int *status, struct err *e);

#endif
