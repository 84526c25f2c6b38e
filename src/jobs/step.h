/* What a step of a job gets and gives back (docs/jobs.md, "Steps"). One
 * function per state, in a table that jobs/run.c walks: a step does its
 * state's work, writing the intent of every external act before it
 * (queue step_begin) and its outcome after (step_end), and says where the
 * job goes next. It never moves the job itself: only run.c does. */
#ifndef FERRY_JOBS_STEP_H
#define FERRY_JOBS_STEP_H

#include <jansson.h>
#include <pthread.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/progress.h"
#include "jobs/job.h"
#include "jobs/queue.h"

struct config;
struct remote;
struct vast_client;

struct job_ctx {
	struct queue *q;
	struct job_lease *lease;
	const struct config *cfg;
	struct queue_job job;      /* as read at the start of this step */
	struct job_spec spec;      /* job.spec, read */
	/* The engine's record (job.data), the step's to read and change;
	 * run.c saves it after the step, whatever the step returned. */
	json_t *data;
	/* Set when this job is cancelled or the worker drains: every wait of
	 * a step takes it and ends with ERR_CANCELLED. */
	struct cancel *cancel;
	int lease_s;
	long long renewed_ms;      /* when the lease was last renewed */
	void *arg;                 /* the step table's own (tests) */
	/* Kept from step to step, let go when job_run ends. */
	char *dir;                 /* job_dir's */
	struct remote *rm;         /* job_remote's */
	struct vast_client *vc;    /* job_vast's */
};

struct step_result {
	/* Where the job goes when the step returns 0; JOB_QUEUED (0) means
	 * the state that follows in the plain order. */
	enum job_state next;
	/* When it returns an error: the reason code the job fails with
	 * ("dataset_not_ready", "oom", ...); "" is "error". */
	char reason[64];
};

typedef int (*job_step_fn)(struct job_ctx *c, struct step_result *res, struct err *e);

/* A step for each state that has work; NULL: move straight on. */
struct job_steps {
	job_step_fn fn[JOB_STATE_COUNT];
	void *arg;
};

/* For a step's long waits: renew the lease when a third of it has passed,
 * and notice a cancel asked of the job from outside (the CLI, the API).
 * 0; ERR_CANCELLED when the job was cancelled or the worker drains;
 * ERR_CHANGED when the lease was lost (write nothing more). */
int job_keep(struct job_ctx *c, struct err *e);

/* Save the job's data and the cost billed so far, as run.c does after
 * each step: for a long step that must not lose what it did so far. */
int job_save(struct job_ctx *c, struct err *e);

/* Append an event to the job's log under its lease; takes `data`'s
 * reference. */
int job_event(struct job_ctx *c, const char *kind, json_t *data, struct err *e);

/* A failure `r` (its message already in e: a part's, or err_set's) as the
 * step's, for `reason`: returns r. */
int step_because(struct step_result *res, const char *reason, int r);

/* A part's progress as the job's "progress" events {"phase", "done",
 * "total"}: at most one a second per phase, and the last one of a phase
 * (done == total) always. Safe from the part's own threads. */
struct step_progress {
	struct progress pg;        /* hand &jp.pg to the part */
	struct job_ctx *c;
	pthread_mutex_t lock;
	char phase[24];
	long long last_ms;
};

void step_progress_init(struct step_progress *jp, struct job_ctx *c);
void step_progress_release(struct step_progress *jp);

/* The job's own folder on this machine, state_dir/jobs/ID (made, 0700):
 * the pulled outputs, the log's copy, the rendered config. ERR_CONFIG
 * without settings (the unit tests' step tables). */
int job_dir(struct job_ctx *c, const char **dir, struct err *e);
/* The member `key` of the job's data, an object made when missing. */
json_t *job_data_obj(struct job_ctx *c, const char *key);
/* Where job folders live on the job's target: remote.root, except on the
 * local provider while it is left at its default, where it is
 * state_dir/local (a new string). */
char *job_remote_root(struct job_ctx *c);
/* The connection to the job's target, opened on first use and kept until
 * the job's run ends. The target comes from the spec (ssh, local) or, on
 * Vast, from the instance BOOTING recorded. */
int job_remote(struct job_ctx *c, struct remote **rm, struct err *e);

/* The Vast client for the job (vast.url, vast.api_key), made on first use
 * with the job's cancel token, kept until the job's run ends. */
int job_vast(struct job_ctx *c, struct vast_client **vc, struct err *e);
/* The job's instance that is not recorded destroyed, into *in: 0, or
 * ERR_NOTFOUND when it has none. */
int job_instance(struct job_ctx *c, struct queue_instance *in, struct err *e);
/* Destroy the job's Vast instance `in` and see by listing its label that
 * nothing of it lives, then record it destroyed, for `why`. One with no id
 * yet (its create unclear when ferry stopped) is looked for by its label. */
int job_instance_destroy(struct job_ctx *c, struct queue_instance *in, const char *why,
			 struct err *e);

/* Record each file under the job's pulled output (job_dir/output) that the
 * queue does not have at its size yet: path, size, SHA-256, the local copy.
 * *added counts the new ones (may be NULL). */
int job_outputs_record(struct job_ctx *c, size_t *added, struct err *e);

#endif
