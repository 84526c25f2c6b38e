/* Upload a packed dataset to a job's folder, resumable and verified
 * (docs/remote.md, "push"). */
#ifndef FERRY_REMOTE_PUSH_H
#define FERRY_REMOTE_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/progress.h"
#include "remote/transport.h"

/* Resumed uploads start at a multiple of this below the size found on the
 * target: the writer there seeks in whole blocks (POSIX dd). */
#define REMOTE_PUSH_BLOCK 65536

struct remote_push_opts {
	const char *cache_dir;    /* remembers the archive's hash while it is unchanged; NULL: none */
	struct cancel *cancel;    /* may be NULL */
};

struct remote_push_result {
	char sha256[65];
	uint64_t bytes;           /* archive size */
	uint64_t sent;            /* bytes sent by this push */
	uint64_t resumed_from;    /* where this push's upload started */
	size_t files;
	bool already;             /* the extracted dataset was there and verified */
	int resends;              /* corrupted uploads sent again */
};

/* Upload ARCHIVE (from ds_pack) to the job, resuming dataset.tar.part,
 * check its SHA-256 on the target, extract it into dataset/ and verify
 * every file against SHA256SUMS. Progress ("uploading", bytes on the
 * target of the archive's size) goes to `pg` (may be NULL), ending at the
 * whole size. Cancelled (ERR_CANCELLED), it leaves a part a later push
 * resumes; the upload is safe against a writer of an earlier push still
 * running on the target (each writes the archive's bytes at their own
 * offsets). */
int remote_push(struct remote *rm, const char *job, const char *archive,
		const struct remote_push_opts *o, const struct progress *pg,
		struct remote_push_result *res, struct err *e);

#endif
