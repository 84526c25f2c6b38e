/* Readiness: wait until a target answers over SSH, then probe what it has
 * (docs/remote.md, "wait"). */
#ifndef FERRY_REMOTE_READY_H
#define FERRY_REMOTE_READY_H

#include <jansson.h>

#include "common/clock.h"
#include "common/err.h"
#include "remote/transport.h"

struct remote_wait_opts {
	int timeout_s;            /* overall deadline; 0: 600 */
	int auth_tries;           /* "Permission denied" answers tolerated; 0: 6 */
	const char *trainer;      /* a path that must exist (NULL: not probed) */
	/* A git checkout on the target (the trainer's, e.g. /app/ai-toolkit)
	 * whose commit is reported as "trainer_commit" (NULL: not probed). */
	const char *trainer_repo;
	double need_disk_gb;      /* free space needed under the root; 0: none */
	/* Called when a target that answered starts refusing the key; returns
	 * 0 when the key was attached again. */
	int (*reattach)(void *arg, struct err *e);
	void *reattach_arg;
	struct cancel *cancel;    /* may be NULL */
};

/* Wait until the target answers over SSH, then probe it (probe.sh).
 * *report is a new object: {"reachable", "seconds", "tries", "trainer",
 * "trainer_commit" (a string, or null when the checkout has none), "gpus":
 * [{name, driver, memory_mb}], "disk_free_gb", "tar", "sha256sum", "ok",
 * "problems": [...]}. ERR_FAIL when a probe failed, ERR_TIMEOUT past the
 * deadline, ERR_CANCELLED within about 100 ms of o->cancel being set. */
int remote_wait(struct remote *rm, const struct remote_wait_opts *o, json_t **report,
		struct err *e);

/* Read probe.sh's output `text` into `rep` (an object holding a
 * "problems" array, which gets what falls short of `o`). */
void remote_probe_parse(const char *text, const struct remote_wait_opts *o, json_t *rep);

#endif
