#include "jobs/steps.h"

#include <stdio.h>

#include "common/err.h"

/* Until each state's step is built, a job that reaches it fails there,
 * saying so, before anything is rented. */
static int step_not_built(struct job_ctx *c, struct step_result *res, struct err *e)
{
	snprintf(res->reason, sizeof(res->reason), "not_built");
	return err_set(e, ERR_FAIL, "%s is not built yet in this ferry",
		       job_state_name(c->job.state));
}

const struct job_steps *job_steps_default(void)
{
	static const struct job_steps steps = {
		.fn = {
			[JOB_PREPARING] = step_not_built,
		},
	};

	return &steps;
}
