/* The worker (docs/jobs.md, "The worker"): claims runnable jobs from the
 * queue and runs each in a thread of its own (job_run), up to `parallel`
 * at once. Its own thread renews the leases of the jobs it runs, so that a
 * step may block for minutes without losing its job, and passes a cancel
 * asked in the queue to that job's waits. Setting `drain` stops it: no new
 * claims, every running job stops where it is (state kept, nothing
 * destroyed, lease released) and worker_run returns once they have. */
#ifndef FERRY_JOBS_WORKER_H
#define FERRY_JOBS_WORKER_H

#include <stdbool.h>

#include "common/clock.h"
#include "common/err.h"
#include "jobs/step.h"

struct config;

struct worker_opts {
	const char *queue;           /* queue_open's location; each thread opens it */
	const struct config *cfg;
	const struct job_steps *steps;
	int parallel;                /* jobs at once; 0: 1 */
	bool once;                   /* return when nothing is runnable and nothing runs */
	struct cancel *drain;        /* required */
	const char *owner;           /* the leases' owner; NULL: "HOST:PID" */
	int lease_s;                 /* 0: 60 */
	long long poll_ms;           /* between looks at the queue; 0: 1000 */
	/* A job's RELEASING retry waits (job_run_opts); zero: its defaults. */
	long long release_first_ms, release_max_ms;
};

/* Run jobs until drained (0) or, with `once`, until none is left to run
 * (0). Jobs that fail are the queue's business, not an error here; an
 * error is the queue itself failing. */
int worker_run(const struct worker_opts *o, struct err *e);

#endif
