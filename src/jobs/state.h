/* A job's states and the moves between them (docs/jobs.md). Pure: the
 * table docs/design.md draws, the names the queue stores and the CLI and
 * API print, which states are terminal, and which moves are legal. Only
 * jobs/run.c moves a job; it asks here first. */
#ifndef FERRY_JOBS_STATE_H
#define FERRY_JOBS_STATE_H

#include <stdbool.h>

enum job_state {
	JOB_QUEUED,
	JOB_PREPARING,   /* check (fix, caption) and pack the dataset */
	JOB_RENTING,     /* rank offers, write the intent, create */
	JOB_BOOTING,     /* wait for running and SSH, probe */
	JOB_UPLOADING,   /* push the dataset, write the config and env */
	JOB_TRAINING,    /* launch once, watch, pull as outputs appear */
	JOB_COLLECTING,  /* the final pull, verified */
	JOB_PUBLISHING,  /* store and result.json */
	JOB_RELEASING,   /* destroy, confirmed by listing */
	JOB_RECOVERING,  /* a host was lost: release it, rent again, resume */
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_CANCELLED,
};

#define JOB_STATE_COUNT (JOB_CANCELLED + 1)

/* "QUEUED", ... as stored and shown. */
const char *job_state_name(enum job_state s);
/* The state called `name` (any case): 0, or ERR_USAGE. */
int job_state_parse(const char *name, enum job_state *out);
bool job_state_terminal(enum job_state s);
/* Whether a job in `from` may move to `to`:
 *   the steps in order, QUEUED ... RELEASING -> SUCCEEDED;
 *   any running state -> RELEASING (a failure, a cancel, a limit) and
 *   RELEASING -> FAILED | CANCELLED;
 *   TRAINING -> COLLECTING also when a limit stops it early;
 *   BOOTING, UPLOADING and TRAINING -> RECOVERING (a host lost or unfit),
 *   RECOVERING -> RENTING;
 *   QUEUED -> CANCELLED (nothing was done yet);
 *   FAILED | CANCELLED -> QUEUED (a retry). */
bool job_state_can_move(enum job_state from, enum job_state to);
/* The state that follows `s` when its step went as planned: the next step
 * in order, RENTING after RECOVERING, SUCCEEDED after RELEASING; a
 * terminal state is its own. */
enum job_state job_state_next(enum job_state s);
/* Whether a job in `s` may have a live instance. */
bool job_state_holds_instance(enum job_state s);

#endif
