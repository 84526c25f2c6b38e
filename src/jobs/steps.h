/* The engine's own step table: what each state does for a real job, on
 * each provider (docs/jobs.md, "Steps"). */
#ifndef FERRY_JOBS_STEPS_H
#define FERRY_JOBS_STEPS_H

#include "jobs/step.h"

/* The steps job_run walks for real jobs. */
const struct job_steps *job_steps_default(void);

#endif
