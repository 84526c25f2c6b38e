/* Bring a job's outputs home: complete, new or changed files only,
 * resumed and verified (docs/remote.md, "pull"). */
#ifndef FERRY_REMOTE_PULL_H
#define FERRY_REMOTE_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/progress.h"
#include "remote/transport.h"

struct remote_pull_opts {
	const char *dir;          /* local folder */
	const char *const *patterns; /* globs on the path under output/; NULL: all */
	int settle_s;             /* seconds between the two looks; 0: 2 */
	struct cancel *cancel;    /* may be NULL */
};

struct remote_pull_result {
	size_t fetched, skipped, incomplete;
	uint64_t bytes;
};

/* Fetch the job's complete, new or changed output files, resuming partial
 * downloads (FILE.part) and checking each file's SHA-256 against the
 * target's. Progress ("downloading", bytes of the file being fetched) goes
 * to `pg` (may be NULL). Cancelled (ERR_CANCELLED), a partial file stays
 * FILE.part for the next pull to resume. */
int remote_pull(struct remote *rm, const char *job, const struct remote_pull_opts *o,
		const struct progress *pg, struct remote_pull_result *res, struct err *e);

#endif
