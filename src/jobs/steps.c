#include "jobs/steps.h"

const struct job_steps *job_steps_default(void)
{
	static const struct job_steps steps = {
		.fn = {
			[JOB_PREPARING] = step_prepare,
			[JOB_RENTING] = step_rent,
			[JOB_BOOTING] = step_boot,
			[JOB_UPLOADING] = step_upload,
			[JOB_TRAINING] = step_train,
			[JOB_COLLECTING] = step_collect,
			[JOB_PUBLISHING] = step_publish,
			[JOB_RELEASING] = step_release,
			[JOB_RECOVERING] = step_recover,
		},
	};

	return &steps;
}
