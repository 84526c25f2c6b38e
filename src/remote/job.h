/* A job's folder on a target and what ferry does in it (docs/remote.md):
 * readiness, verified resumable upload, the detached supervised trainer,
 * its state, its log and its outputs. The layout (ARCHITECTURE.md):
 *   ROOT/JOB/ dataset.tar(.part) dataset/ config.json env run.sh train.log
 *             state/{pid,exit,heartbeat,started} output/... */
#ifndef FERRY_REMOTE_JOB_H
#define FERRY_REMOTE_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "remote/transport.h"

/* A job id names a folder: not empty, no '/', not "." or "..", at most 200
 * bytes, no NUL. Anything else (spaces, quotes, $(), newlines) is fine: it
 * is always quoted. */
int remote_job_check(const char *job, struct err *e);
/* ROOT/JOB (a new string). */
char *remote_job_root(struct remote *r, const char *job);

/* Build a command line: `%q` takes a string and writes it quoted, `%d`
 * an int, `%lld` a long long, `%%` a percent sign; everything else is
 * copied as it is (ferry's own constant shell text). */
void remote_cmdf(struct buf *b, const char *tmpl, ...);

struct remote_wait_opts {
	int timeout_s;            /* overall deadline; 0: 600 */
	int auth_tries;           /* "Permission denied" answers tolerated; 0: 6 */
	const char *trainer;      /* a path that must exist (NULL: not probed) */
	double need_disk_gb;      /* free space needed under the root; 0: none */
	/* Called when a target that answered starts refusing the key; returns
	 * 0 when the key was attached again. */
	int (*reattach)(void *arg, struct err *e);
	void *reattach_arg;
};

/* Wait until the target answers `echo` over SSH, then probe it. *report is
 * a new object: {"reachable", "seconds", "tries", "trainer", "gpus": [{name,
 * driver, memory_mb}], "disk_free_gb", "tar", "sha256sum", "ok",
 * "problems": [...]}. ERR_FAIL when a probe failed, ERR_TIMEOUT past the
 * deadline. */
int remote_wait(struct remote *r, const struct remote_wait_opts *o, json_t **report,
		struct err *e);

struct remote_push_result {
	char sha256[65];
	uint64_t bytes;           /* archive size */
	uint64_t sent;            /* bytes sent by this push */
	uint64_t resumed_from;    /* bytes found on the target */
	size_t files;
	bool already;             /* the extracted dataset was there and verified */
	int resends;              /* corrupted uploads sent again */
};

/* Upload ARCHIVE to the job (resuming dataset.tar.part), check its SHA-256
 * on the target, extract it into dataset/ and verify every file against
 * SHA256SUMS. `progress` shows a bar (on a terminal); `cache_dir` (NULL:
 * none) remembers the archive's hash while the file is unchanged. */
int remote_push(struct remote *r, const char *job, const char *archive, const char *cache_dir,
		bool progress, struct remote_push_result *res, struct err *e);

struct remote_launch_opts {
	const char *config;       /* local file, uploaded as config.json; NULL: none */
	const char *env_file;     /* local KEY=VALUE lines, uploaded 0600 as env; NULL: none */
	const char *const *argv;  /* the trainer command, run in the job root */
	int heartbeat_s;          /* 0: 10 */
};

/* Start the supervisor detached (setsid). *started is false when the job
 * was already running (nothing is started then). */
int remote_launch(struct remote *r, const char *job, const struct remote_launch_opts *o,
		  bool *started, struct err *e);

struct remote_status {
	const char *state;        /* running | exited | never-started | vanished | absent */
	int exit_code;            /* when exited */
	long long pid;
	long long heartbeat_age_s;/* -1: none */
	long long log_bytes;
	long long disk_free_kb;   /* -1: unknown */
	char gpu[256];            /* "util %, mem used MiB, mem total MiB, temp C" or "" */
	long long now;            /* the target's clock */
};

/* One round trip. */
int remote_status(struct remote *r, const char *job, struct remote_status *st, struct err *e);
json_t *remote_status_json(const struct remote_status *st);

/* Append the log bytes after `offset` to `out` (at most `max`); *done tells
 * the trainer has exited (and so no more will come once fetched); *size is
 * the log's whole size on the target (smaller than `offset` when the job
 * was started afresh). */
int remote_log_fetch(struct remote *r, const char *job, uint64_t offset, size_t max,
		     struct buf *out, bool *done, uint64_t *size, struct err *e);

struct remote_pull_opts {
	const char *dir;          /* local folder */
	const char *const *patterns; /* globs on the path under output/; NULL: all */
	int settle_s;             /* seconds between the two looks; 0: 2 */
};

struct remote_pull_result {
	size_t fetched, skipped, incomplete;
	uint64_t bytes;
};

/* Fetch the job's complete, new or changed output files, resuming partial
 * downloads and checking each file's SHA-256 against the target's. */
int remote_pull(struct remote *r, const char *job, const struct remote_pull_opts *o,
		struct remote_pull_result *res, struct err *e);

#endif
