/* A job's folder on a target, and the few things every step does in it
 * (docs/remote.md). The layout (docs/design.md):
 *   ROOT/JOB/ dataset.tar.part dataset/ config.json env run.sh train.log
 *             state/{pid,exit,heartbeat,started} output/...
 * The steps are ready.h (wait), push.h, launch.h, watch.h (status, logs)
 * and pull.h. */
#ifndef FERRY_REMOTE_JOBDIR_H
#define FERRY_REMOTE_JOBDIR_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "remote/transport.h"

/* A job id names a folder: not empty, no '/', not "." or "..", at most 200
 * bytes, no NUL. Anything else (spaces, quotes, $(), newlines) is fine: it
 * is always quoted. */
int remote_job_check(const char *job, struct err *e);
/* ROOT/JOB (a new string). */
char *remote_job_root(struct remote *rm, const char *job);

/* Build a command line: `%q` takes a string and writes it quoted, `%d`
 * an int, `%lld` a long long, `%%` a percent sign; everything else is
 * copied as it is (ferry's own constant shell text). */
void remote_cmdf(struct buf *b, const char *tmpl, ...);
/* Append `sh -c SCRIPT NAME` (SCRIPT quoted): an embedded shell program,
 * its $0 NAME; the caller appends its arguments with remote_cmdf(" %q"). */
void remote_cmd_script(struct buf *b, const unsigned char *script, const char *name);

/* Run a command; a non-zero exit is ERR_FAIL "WHAT failed on the target
 * (exit N): <the first line of its stderr>". */
int remote_run(struct remote *rm, const char *cmd, const struct remote_io *io, struct buf *out,
	       const char *what, struct err *e);
/* Write `data` to `path` on the target atomically (a temporary file,
 * renamed) with `mode` ("600"). */
int remote_put(struct remote *rm, const char *path, const void *data, size_t len,
	       const char *mode, struct cancel *cancel, struct err *e);
/* The SHA-256 of a file on the target (hasher.sh). */
int remote_sha256(struct remote *rm, const char *path, char hex[65], struct cancel *cancel,
		  struct err *e);

/* The embedded hasher.sh, which finish.sh is also handed. */
extern const unsigned char remote_hasher_sh[];
extern const size_t remote_hasher_sh_len;

#endif
