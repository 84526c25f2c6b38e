/* One job's step loop (docs/jobs.md, "Running a job"): read the job, run
 * its state's step, save what the step recorded, move the job on. The only
 * code that changes a job's state. Between steps it applies what holds for
 * every state: a cancel asked from outside, the job's time and cost limits,
 * and the rule that a job is never terminal while an instance of it lives.
 * Where a job ends is decided when it enters RELEASING and kept in its
 * data ("ending"), so that a worker that restarts there ends it the same
 * way. FERRY_TEST_CRASH_AT=STATE:before|after kills the process at that
 * step boundary, for the crash tests (invariant 7). */
#ifndef FERRY_JOBS_RUN_H
#define FERRY_JOBS_RUN_H

#include "common/clock.h"
#include "common/err.h"
#include "jobs/queue.h"
#include "jobs/step.h"

struct config;

struct job_run_opts {
	struct queue *q;
	const struct config *cfg;
	const struct job_steps *steps;
	/* The worker's drain: set, the job stops where it is, its state kept
	 * and nothing destroyed; the lease is released. May be NULL. */
	const struct cancel *drain;
	/* This job's own token, whose parent is `drain`: whoever watches the
	 * queue (the worker) sets it when the job is cancelled, to stop the
	 * step's waits at once. NULL: job_run keeps one of its own, and a
	 * cancel is seen when a step calls job_keep. */
	struct cancel *stop;
	int lease_s;               /* 0: 60 */
	/* RELEASING is retried until it succeeds; these are its waits
	 * (zero: 1 s doubling to 60 s). */
	long long release_first_ms, release_max_ms;
};

/* Run the job `l` holds until it ends (0), the worker drains
 * (ERR_CANCELLED) or the lease is lost (ERR_CHANGED). The lease is
 * released either way, unless it was lost. */
int job_run(const struct job_run_opts *o, struct job_lease *l, struct err *e);

#endif
