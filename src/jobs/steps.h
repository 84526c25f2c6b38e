/* The engine's own step table: what each state does for a real job, on
 * each provider (docs/jobs.md, "Steps"). */
#ifndef FERRY_JOBS_STEPS_H
#define FERRY_JOBS_STEPS_H

#include "jobs/step.h"

/* The steps job_run walks for real jobs. */
const struct job_steps *job_steps_default(void);

/* Each state's step, one file each (jobs/step_<state>.c). */
int step_prepare(struct job_ctx *c, struct step_result *res, struct err *e);
int step_rent(struct job_ctx *c, struct step_result *res, struct err *e);
int step_boot(struct job_ctx *c, struct step_result *res, struct err *e);
int step_upload(struct job_ctx *c, struct step_result *res, struct err *e);
int step_train(struct job_ctx *c, struct step_result *res, struct err *e);
int step_collect(struct job_ctx *c, struct step_result *res, struct err *e);
int step_publish(struct job_ctx *c, struct step_result *res, struct err *e);
int step_release(struct job_ctx *c, struct step_result *res, struct err *e);
int step_recover(struct job_ctx *c, struct step_result *res, struct err *e);

#endif
