/* RELEASING: let go of the job's machine. A trainer still running (the job
 * was cancelled, failed or passed a limit) is stopped first; then each
 * instance not yet recorded destroyed is released and recorded so, with
 * why the job left it. On the ssh and local providers the machine is the
 * user's: releasing it is stopping the trainer and closing the connection.
 * run.c does not end the job while any instance is not recorded destroyed. */
#include "jobs/steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "remote/launch.h"
#include "remote/transport.h"

/* The trainer of a job that was launched and did not finish. */
static int release_stop_trainer(struct job_ctx *c, struct err *e)
{
	struct remote *rm;
	struct err se = { 0 };
	bool stopped = false;
	int r;

	/* A Vast instance is destroyed with its trainer. */
	if (c->spec.provider == JOB_PROVIDER_VAST ||
	    !json_is_true(json_object_get(job_data_obj(c, "train"), "launched")) ||
	    json_is_true(json_object_get(job_data_obj(c, "train"), "ended")))
		return 0;
	r = job_remote(c, &rm, e);
	if (!r)
		r = remote_stop(rm, c->lease->job, 30, &stopped, &se);
	if (r == ERR_CONN) {
		/* The user's host does not answer: say so, and let go of it. */
		log_warn("job %s: could not stop the trainer: %s", c->lease->job, se.msg);
		return job_event(c, "warning",
				 json_pack("{s:s, s:s}", "code", "trainer_not_stopped", "message",
					   se.msg),
				 e);
	}
	if (r)
		return err_set(e, r, "%s", se.msg);
	if (!r && stopped)
		r = job_event(c, "trainer", json_pack("{s:s}", "stopped", "by ferry"), e);
	return r;
}

int step_release(struct job_ctx *c, struct step_result *res, struct err *e)
{
	json_t *ending = json_object_get(c->data, "ending");
	const char *why = json_string_value(json_object_get(ending, "reason"));
	struct queue_instance *v = NULL;
	size_t n = 0;
	int r = release_stop_trainer(c, e);

	if (!r)
		r = c->q->ops->instances(c->q, c->lease->job, &v, &n, e);
	for (size_t i = 0; !r && i < n; i++) {
		if (v[i].destroyed_at)
			continue;
		if (!strcmp(v[i].provider, "vast")) {
			r = job_instance_destroy(c, &v[i], why ? why : "done", e);
			continue;
		}
		v[i].destroyed_at = clock_wall_s();
		snprintf(v[i].left_reason, sizeof(v[i].left_reason), "%s", why ? why : "done");
		r = c->q->ops->instance_put(c->q, c->lease, &v[i], e);
	}
	free(v);
	if (!r) {
		remote_close(c->rm);
		c->rm = NULL;
	}
	return r;
}
