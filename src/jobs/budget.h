/* What a job has cost and run, and whether it may go on (invariant 6: a
 * job never runs past its time or cost limit). Pure arithmetic over the
 * queue's instance records; docs/jobs.md says how limits are applied. */
#ifndef FERRY_JOBS_BUDGET_H
#define FERRY_JOBS_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#include "jobs/queue.h"

/* Seconds kept in hand, at the live instance's price, for what follows a
 * stop: the final pull, publishing and the destroy. */
#define JOB_BUDGET_RESERVE_S 300.0

/* Billed so far: every instance's $/h from its creation until it was
 * destroyed, or until `now` (wall seconds) while it lives. */
double job_cost_usd(const struct queue_instance *v, size_t n, long long now);
/* $/h of the instances still alive. */
double job_cost_rate(const struct queue_instance *v, size_t n);

struct job_budget {
	double max_usd;          /* 0: no limit */
	double max_hours;        /* 0: no limit */
	double spent_usd;        /* job_cost_usd */
	double dph;              /* job_cost_rate */
	double elapsed_s;        /* since the job first left QUEUED */
	double reserve_s;        /* 0: JOB_BUDGET_RESERVE_S */
};

/* Whether going on would pass a limit once the reserve is counted: false,
 * or true with a sentence for the job's events in `why`. */
bool job_budget_exceeded(const struct job_budget *b, char *why, size_t n);
/* Whether work estimated at `est_usd` and `est_s` more still fits. */
bool job_budget_allows(const struct job_budget *b, double est_usd, double est_s);

#endif
