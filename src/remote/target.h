/* Where ferry runs a job: a host over SSH, this machine, or a Vast instance
 * resolved through the API to its SSH endpoint (docs/remote.md). The only
 * file of remote/ that knows the Vast client. */
#ifndef FERRY_REMOTE_TARGET_H
#define FERRY_REMOTE_TARGET_H

#include "common/clock.h"
#include "common/err.h"

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

struct remote_instance_wait_opts {
	int timeout_s;           /* 0: 600 */
	struct cancel *cancel;   /* may be NULL */
	/* Told each state the instance is seen in, as it changes (may be NULL). */
	void (*on_state)(void *arg, const char *actual_status, const char *status_msg);
	void *on_state_arg;
};

/* remote_target_instance, waiting (polling with backoff) until Vast says
 * the instance is running and has an SSH endpoint. ERR_TIMEOUT past the
 * deadline (naming the state it was in), ERR_CANCELLED, ERR_NOTFOUND when
 * the instance is gone, ERR_FAIL when its container exited. */
int remote_target_instance_wait(struct vast_client *c, long long id, const char *root,
				const struct remote_instance_wait_opts *o,
				struct remote_target *t, struct err *e);

void remote_target_release(struct remote_target *t);
/* "ssh://root@1.2.3.4:22" or "local:/dir", for messages (a new string). */
char *remote_target_describe(const struct remote_target *t);
/* The target as one file name (a new string): the description with '/'
 * and ':' made '_', for ferry's own records of it. */
char *remote_target_file_name(const struct remote_target *t);
/* Make `s` one file name, in place: '/' and ':' become '_'. */
void remote_file_name_safe(char *s);

#endif
