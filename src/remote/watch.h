/* Watching a job on a target: its state in one round trip, and its log,
 * fetched by offset and mirrored into a local copy (docs/remote.md,
 * "status" and "logs"). */
#ifndef FERRY_REMOTE_WATCH_H
#define FERRY_REMOTE_WATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "remote/transport.h"

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

/* One round trip (status.sh). */
int remote_status(struct remote *rm, const char *job, struct remote_status *st, struct err *e);
/* Read status.sh's output (changed in place) into *st. */
void remote_status_parse(char *text, struct remote_status *st);
json_t *remote_status_json(const struct remote_status *st);
/* ERR_FAIL when the run failed: the trainer exited non-zero, or its
 * supervisor is gone without an exit status (vanished); else 0 (running,
 * exited 0, never started, absent). */
int remote_status_failed(const struct remote_status *st, struct err *e);

/* Look at the job's state (status.sh brief: no disk or GPU), then append
 * the log bytes after `offset` to `out` (at most `max`). st->log_bytes is
 * the log's size on the target, smaller than `offset` when the job was
 * started afresh; once st->state is no longer "running", what was fetched
 * is all there is. ERR_NOTFOUND when the job has no folder. */
int remote_log_fetch(struct remote *rm, const char *job, uint64_t offset, size_t max,
		     struct cancel *cancel, struct buf *out, struct remote_status *st,
		     struct err *e);

/* The local copy of a job's log: STATE_DIR/remote/TARGET/JOB/train.log
 * (a new string; TARGET as remote_target_file_name). */
char *remote_log_path(const struct remote *rm, const char *state_dir, const char *job);

struct remote_log_sync_opts {
	size_t max;               /* bytes per round trip; 0: 4 MiB */
	/* After a dropped connection: wait as *backoff says (the caller's, so
	 * that the waits grow across calls; a success resets it) and try
	 * again, until `cancel` is set. NULL: ERR_CONN at once. */
	struct backoff *backoff;
	struct cancel *cancel;    /* may be NULL */
};

struct remote_log_sync_result {
	uint64_t bytes;           /* appended by this call */
	uint64_t size;            /* the local copy's size now */
	/* No more will come: the trainer is not running (st.state says how it
	 * ended, or that it never started) and every byte is here. */
	bool done;
	bool restarted;           /* the log began afresh; the old copy was moved aside */
	struct remote_status st;  /* the state, as seen before the last bytes were read */
};

/* One step of mirroring the job's log into `local_path` (made, with its
 * folder, mode 0600): fetch the bytes after the copy's size until none are
 * waiting, appending them there and to `out` (may be NULL). Bytes already
 * here are never fetched again. A log that restarted on the target
 * (shorter than the copy) moves the copy aside as local_path.MTIME and
 * starts a new one. Call it again (each tick) until res->done. */
int remote_log_sync(struct remote *rm, const char *job, const char *local_path,
		    const struct remote_log_sync_opts *o, struct buf *out,
		    struct remote_log_sync_result *res, struct err *e);

#endif
