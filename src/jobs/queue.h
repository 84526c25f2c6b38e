/* The job queue (docs/jobs.md): jobs, the intent and outcome of every
 * external act, instances, artifacts and an append-only event log per job.
 * An interface with an ops table, as git's ref back ends: SQLite now
 * (queue_sqlite.c), PostgreSQL later, and no SQL above this line.
 *
 * A worker holds a job through a lease: an owner, an expiry and a fencing
 * token that grows with every claim. Every write for a job made under a
 * lease carries the token and fails with ERR_CHANGED once the lease has
 * passed to someone else: a worker that lost its job writes nothing more.
 *
 * A `struct queue` is one connection: use it from one thread at a time.
 * Each worker thread and the API open their own; they may share a file. */
#ifndef FERRY_JOBS_QUEUE_H
#define FERRY_JOBS_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "jobs/job.h"
#include "jobs/state.h"

struct queue;

struct job_lease {
	char job[JOB_ID_MAX];
	char owner[64];
	long long fence;
	long long expires;        /* wall-clock seconds */
};

/* A job as the queue keeps it. */
struct queue_job {
	char id[JOB_ID_MAX];
	enum job_state state;
	char reason[64];          /* why it failed or stopped ("" when none) */
	json_t *spec;             /* as submitted (job_spec_to_json) */
	json_t *data;             /* the engine's own record of what its steps did */
	int attempt;              /* 1, then one more for each retry */
	long long created_at, updated_at;  /* wall-clock seconds */
	char lease_owner[64];     /* "" when no worker holds it */
	long long lease_expires;
	bool cancel_requested;
	double cost_usd;          /* billed so far, all instances */
};

void queue_job_release(struct queue_job *j);
/* Release each of a list's jobs, then the list. */
void queue_jobs_free(struct queue_job *v, size_t n);

/* A rented (or used) machine of a job. The row is written before the
 * create is sent (instance_id 0), then filled in. */
struct queue_instance {
	long long row;            /* the queue's id for it */
	char job[JOB_ID_MAX];
	char label[JOB_LABEL_MAX];
	char provider[16];        /* vast, ssh, local */
	long long instance_id;    /* Vast's; 0 until known */
	long long offer_id, machine_id;
	double dph;               /* $/h as rented */
	long long created_at;     /* 0 until created */
	long long destroyed_at;   /* 0 while it lives */
	char left_reason[128];    /* why the job left it ("" while used) */
};

struct queue_artifact {
	char job[JOB_ID_MAX];
	char *path;               /* under the job's output */
	long long size;
	char sha256[65];
	char *local_path;         /* the pulled copy */
	char *key;                /* the published key, or NULL */
	char *url;
	long long published_at;
};

void queue_artifact_release(struct queue_artifact *a);
void queue_artifacts_free(struct queue_artifact *v, size_t n);

struct queue_event {
	long long id;             /* across all jobs, increasing */
	long long seq;            /* within its job, from 1 */
	char job[JOB_ID_MAX];
	long long at;             /* wall-clock milliseconds */
	char kind[32];            /* state, progress, log, warning, failure, cost, ... */
	json_t *data;
};

void queue_events_free(struct queue_event *v, size_t n);

/* list: newest first. */
struct queue_filter {
	bool all;                 /* terminal jobs too (when states is NULL) */
	const enum job_state *states; /* exactly these; NULL: any (see all) */
	size_t nstates;
	size_t limit;             /* 0: all */
};

struct queue_ops {
	const char *name;
	void (*close)(struct queue *q);

	/* Jobs. submit: ERR_EXISTS when the id is taken. claim: the oldest
	 * runnable job (not terminal, no live lease), ERR_NOTFOUND when none;
	 * with a `job`, that one only: ERR_NOTFOUND when it is unknown or
	 * ended, ERR_EXISTS while another lease on it is live. renew:
	 * ERR_CHANGED when lost (it may revive a lease that expired unclaimed:
	 * nobody else held it in between). release clears a lease that is
	 * still this one, expired or not. Every other write under a lease
	 * fails with ERR_CHANGED once it expired or passed on. */
	int (*submit)(struct queue *q, const char *id, const json_t *spec, struct err *e);
	int (*claim)(struct queue *q, const char *job, const char *owner, int lease_s,
		     struct job_lease *l, struct err *e);
	int (*renew)(struct queue *q, struct job_lease *l, int lease_s, struct err *e);
	int (*release)(struct queue *q, const struct job_lease *l, struct err *e);
	/* End the lease `owner` holds on job `id`, live or not, so that it can
	 * be claimed at once: for a worker known to be dead (its process is
	 * gone). The fence still grows with the next claim, so nothing the dead
	 * worker might have left in flight is accepted. ERR_CHANGED when
	 * `owner` does not hold it. */
	int (*abandon)(struct queue *q, const char *id, const char *owner, struct err *e);
	int (*get)(struct queue *q, const char *id, struct queue_job *j, struct err *e);
	int (*list)(struct queue *q, const struct queue_filter *f, struct queue_job **v,
		    size_t *n, struct err *e);
	/* Under the lease; the move must be legal (job_state_can_move), else
	 * ERR_USAGE. A NULL reason keeps the job's reason. Appends a "state"
	 * event {"from", "to", "reason"}. */
	int (*set_state)(struct queue *q, const struct job_lease *l, enum job_state to,
			 const char *reason, struct err *e);
	/* Replace the data (NULL: keep it) and the cost. */
	int (*set_data)(struct queue *q, const struct job_lease *l, const json_t *data,
			double cost_usd, struct err *e);
	/* From anyone: a queued job is cancelled at once, a running one is
	 * marked for its worker. ERR_NOTFOUND, or ERR_EXISTS when it already ended. */
	int (*request_cancel)(struct queue *q, const char *id, struct err *e);
	/* A FAILED or CANCELLED job back to QUEUED, attempt + 1, taken from any
	 * lease. ERR_NOTFOUND; ERR_EXISTS when it has not ended; ERR_USAGE
	 * when it succeeded. */
	int (*retry)(struct queue *q, const char *id, struct err *e);

	/* The intent of an act, before it: *step identifies it. Any holder of
	 * the job's lease may end it (a worker that took over resolves the
	 * acts its predecessor left open). */
	int (*step_begin)(struct queue *q, const struct job_lease *l, const char *act,
			  const json_t *intent, long long *step, struct err *e);
	int (*step_end)(struct queue *q, const struct job_lease *l, long long step,
			const json_t *outcome, struct err *e);
	/* The job's acts, oldest first: [{"id", "state" (the job's, when it
	 * began), "act", "intent", "outcome" (null while open), "started_at",
	 * "ended_at" (milliseconds; null while open), "attempt", "fence"}]. */
	int (*steps)(struct queue *q, const char *id, json_t **out, struct err *e);

	/* Instances: put inserts (row 0, filled in) or updates by row; an
	 * empty label is the job's. ERR_EXISTS when the job would have two
	 * instances not destroyed (invariant 2). */
	int (*instance_put)(struct queue *q, const struct job_lease *l, struct queue_instance *in,
			    struct err *e);
	/* A job's instances (id), oldest first, or with NULL every instance
	 * not destroyed, across jobs (by job). */
	int (*instances)(struct queue *q, const char *id, struct queue_instance **v, size_t *n,
			 struct err *e);

	/* Insert or update the job's row for a->path. */
	int (*artifact_put)(struct queue *q, const struct job_lease *l,
			    const struct queue_artifact *a, struct err *e);
	int (*artifacts)(struct queue *q, const char *id, struct queue_artifact **v, size_t *n,
			 struct err *e);

	/* Append to a job's log; a NULL lease is a request from outside (a
	 * cancel). *id may be NULL. */
	int (*event_append)(struct queue *q, const struct job_lease *l, const char *job,
			    const char *kind, const json_t *data, long long *id, struct err *e);
	/* Events after `after_id` (0: from the start) of one job, or of all
	 * jobs with a NULL id; at most `limit` (0: 1000). */
	int (*events)(struct queue *q, const char *id, long long after_id, size_t limit,
		      struct queue_event **v, size_t *n, struct err *e);
};

struct queue {
	const struct queue_ops *ops;
};

/* Open the queue at `where`: a file path or "sqlite:PATH" (made with its
 * folders; migrated to the current schema). */
int queue_open(struct queue **q, const char *where, struct err *e);
struct config;
/* Where the settings put the queue: jobs.queue, else state_dir/queue.db
 * (a new string). */
char *queue_location(const struct config *cfg);
void queue_close(struct queue *q);

#endif
