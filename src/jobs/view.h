/* How a job is shown (docs/train.md): the JSON shapes scripts and the HTTP
 * API rely on, the lines `ferry train` and `ferry attach` print, finding a
 * job by a prefix of its id, the job's local trainer log, and the lock that
 * keeps one worker per state folder. Reading only: nothing here changes a
 * job (jobs/run.c does). */
#ifndef FERRY_JOBS_VIEW_H
#define FERRY_JOBS_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "jobs/queue.h"

/* Everything `ferry show` prints of one job. */
struct job_view {
	struct queue_job job;
	struct queue_instance *instances;
	size_t ninstances;
	struct queue_artifact *artifacts;
	size_t nartifacts;
	json_t *timeline;          /* the state events: [{"at", "from", "to", "reason"}] */
	json_t *progress;          /* the newest progress event's data, or NULL */
	long long nevents;         /* every event of the job */
	long long last_event;      /* the newest event's id (0: none) */
};

/* Read job `id` and all it has from the queue. */
int job_view_load(struct queue *q, const char *id, struct job_view *v, struct err *e);
void job_view_release(struct job_view *v);

/* A job in a listing (`ferry jobs --json`, `ferry train --detach --json`):
 * {"id", "name", "state", "reason", "attempt", "created_at", "updated_at",
 *  "cost_usd", "cancel_requested", "worker", "spec"}; times in wall-clock
 * seconds, "name", "reason" and "worker" null when none. */
json_t *job_view_summary_json(const struct queue_job *j);
/* One job in full (`ferry show --json`, the API): the summary and
 * "instances": [{"id", "label", "provider", "offer_id", "machine_id", "dph",
 *   "created_at", "destroyed_at", "left_reason"}] (ids and times null while
 *   unknown or alive), "artifacts": [{"path", "size", "sha256", "local_path",
 *   "key", "url", "published_at"}], "timeline", "progress", "events" (the
 *   count), "last_event" and "result": null until the job ended, then
 *   {"state", "reason", "message"}. */
json_t *job_view_json(const struct job_view *v);

/* The job `arg` names: its full id, or a prefix of exactly one job's id.
 * ERR_NOTFOUND when none; ERR_USAGE when several, listing them. */
int job_view_resolve(struct queue *q, const char *arg, char id[JOB_ID_MAX], struct err *e);

/* A progress event's data as the recipe's log scanner writes it
 * (recipe_scan_json): unknown numbers are -1 (step, total) or NAN. */
struct job_progress {
	long long step, total;
	double loss, rate_s_per_it, eta_s;
};

void job_progress_read(const json_t *data, struct job_progress *p);
/* "45s", "12m05s", "3h04m", "2d03h"; "-" for a negative or unknown one. */
void job_view_duration(double seconds, char *out, size_t n);
/* The live view's one line, without any terminal control: the state, a
 * bar of `width` cells with step/total, the rate, the loss, the ETA, the
 * cost so far and, when known (> 0), the estimate. `progress` may be NULL. */
void job_view_status(enum job_state state, const struct job_progress *progress,
		     double cost_usd, double estimate_usd, int width, struct buf *out);
/* One event as a line of text, without the newline: its time (UTC, ISO
 * 8601), its kind and what it says; text from outside escaped. */
void job_view_event_line(const struct queue_event *ev, struct buf *out);

/* The local copy of job `id`'s trainer log: state_dir/jobs/ID/train.log
 * (a new string). */
char *job_view_log_path(const char *state_dir, const char *id);
/* Append the bytes of `path` from *offset on to `out`, and move *offset
 * past them; a file that became shorter than *offset is read from the
 * start again. ERR_NOTFOUND when there is no file (yet). */
int job_view_log_read(const char *path, off_t *offset, struct buf *out, struct err *e);

/* The worker's lock, state_dir/worker.lock: one worker per state folder.
 * Take it (*fd holds it until closed) and write this process's id in it;
 * ERR_EXISTS when another process holds it, naming its pid (*holder, 0
 * when it has not written it yet). */
int job_worker_lock(const char *state_dir, int *fd, long *holder, struct err *e);
/* Whether a process holds the worker's lock (and which, *holder; 0 when
 * unknown), without keeping it. */
bool job_worker_running(const char *state_dir, long *holder);

#endif
