/* What a step of a job gets and gives back (docs/jobs.md, "Steps"). One
 * function per state, in a table that jobs/run.c walks: a step does its
 * state's work, writing the intent of every external act before it
 * (queue step_begin) and its outcome after (step_end), and says where the
 * job goes next. It never moves the job itself: only run.c does. */
#ifndef FERRY_JOBS_STEP_H
#define FERRY_JOBS_STEP_H

#include <jansson.h>

#include "common/clock.h"
#include "common/err.h"
#include "jobs/job.h"
#include "jobs/queue.h"

struct config;

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

/* Append an event to the job's log under its lease. */
int job_event(struct job_ctx *c, const char *kind, json_t *data, struct err *e);

#endif
