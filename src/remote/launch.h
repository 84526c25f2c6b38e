/* Start the trainer on a target under the supervisor (run.sh), detached,
 * never twice (docs/remote.md, "launch"). */
#ifndef FERRY_REMOTE_LAUNCH_H
#define FERRY_REMOTE_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/str.h"
#include "remote/transport.h"

/* Read KEY=VALUE lines (blank lines, '#' comments and a leading `export `
 * allowed; CR LF ends a line too) into `env` as NAME=VALUE entries, each
 * name checked (letters, digits, '_', not starting with a digit) and each
 * value registered as a secret. `what` names the text in messages ("line
 * 3 of WHAT"). */
int remote_env_parse(const char *text, size_t len, const char *what, struct strv *env,
		     struct err *e);
/* Zero every entry (values are secrets), then release. */
void remote_env_release(struct strv *env);

struct remote_launch_opts {
	const struct buf *config; /* uploaded as config.json; NULL: none */
	/* NAME=VALUE entries, uploaded (mode 0600) as env and exported to the
	 * trainer only; names are checked and values registered as secrets.
	 * NULL: none. PYTHONUNBUFFERED=1 is always set. */
	const struct strv *env;
	const char *const *argv;  /* the trainer command, run in the job root */
	int heartbeat_s;          /* 0: 10 */
	struct cancel *cancel;    /* may be NULL */
};

/* Start the supervisor detached (setsid). *started is false when the job
 * was already running (nothing is started then). */
int remote_launch(struct remote *rm, const char *job, const struct remote_launch_opts *o,
		  bool *started, struct err *e);

/* Stop the job's trainer if it runs: SIGTERM to its supervisor, which
 * passes it on and records the exit; a second signal after `grace_s`
 * (0: 30) makes the supervisor kill it. *stopped says whether it was
 * running. Waits at most grace_s + 10 seconds for state/exit. */
int remote_stop(struct remote *rm, const char *job, int grace_s, bool *stopped, struct err *e);

#endif
