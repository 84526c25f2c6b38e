/* BOOTING: wait until the job's machine answers, then probe what it has
 * (remote_wait).
 *
 * On Vast the instance is first waited for through the API, through
 * `loading`, until it runs with an SSH endpoint (remote_target_instance_wait),
 * and the endpoint is kept in the job's data ("target"). An instance that
 * never gets there, exits, or falls short of the probe is left: the job goes
 * to RECOVERING, which destroys it, excludes its machine and rents the next
 * offer. On the ssh and local providers the machine is the user's, so a probe
 * that falls short fails the job with what it found. */
#include "jobs/steps.h"

#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "remote/ready.h"
#include "remote/target.h"

#define BOOT_TIMEOUT_S 900

static void boot_on_state(void *arg, const char *status, const char *msg)
{
	job_event(arg, "instance",
		  json_pack("{s:s?, s:s?}", "status", status, "status_msg", msg), NULL);
}

/* Leave this machine: RECOVERING destroys it and rents another. */
static int boot_leave(struct job_ctx *c, struct step_result *res, const char *why, int r,
		      struct err *e)
{
	json_object_set_new(c->data, "recover",
			    json_pack("{s:s, s:s}", "reason", why, "message", err_msg(e)));
	res->next = JOB_RECOVERING;
	err_clear(e);
	return r == ERR_CANCELLED || r == ERR_CHANGED ? r : 0;
}

static int boot_vast_target(struct job_ctx *c, struct step_result *res, bool *left,
			    struct err *e)
{
	struct remote_instance_wait_opts wo = { .timeout_s = BOOT_TIMEOUT_S, .cancel = c->cancel,
						.on_state = boot_on_state, .on_state_arg = c };
	struct remote_target t = { 0 };
	struct queue_instance in = { 0 };
	struct vast_client *vc;
	char *root = job_remote_root(c), *where;
	int r = job_instance(c, &in, e);

	*left = false;
	if (!r && !in.instance_id)
		r = step_because(res, "internal",
				 err_set(e, ERR_FAIL, "RENTING recorded no instance id"));
	if (!r)
		r = job_vast(c, &vc, e);
	if (!r)
		r = remote_target_instance_wait(vc, in.instance_id, root, &wo, &t, e);
	free(root);
	if (r == ERR_TIMEOUT || r == ERR_FAIL || r == ERR_NOTFOUND) {
		*left = true;
		return boot_leave(c, res, r == ERR_TIMEOUT ? "boot_timeout" : "instance_lost", r, e);
	}
	if (r)
		return r;
	where = remote_target_describe(&t);
	json_object_set_new(c->data, "target", json_string(where));
	free(where);
	remote_target_release(&t);
	return 0;
}

int step_boot(struct job_ctx *c, struct step_result *res, struct err *e)
{
	struct remote_wait_opts wo = { .cancel = c->cancel };
	bool vast = c->spec.provider == JOB_PROVIDER_VAST, left = false;
	struct remote *rm;
	json_t *report = NULL;
	int r = vast ? boot_vast_target(c, res, &left, e) : 0;

	if (r || left)
		return r;
	r = job_remote(c, &rm, e);
	if (r == ERR_CONN)
		return vast ? boot_leave(c, res, "unreachable", r, e)
			    : step_because(res, "unreachable", r);
	if (r)
		return r;
	/* The recipe's own trainer is probed for; a trainer.command of the
	 * user's is theirs to have. */
	if (vast && !config_get(c->cfg, "trainer.command"))
		wo.trainer_repo = "/app/ai-toolkit";
	r = remote_wait(rm, &wo, &report, e);
	if (report)
		json_object_set_new(c->data, "boot", report);
	if (r == ERR_FAIL || r == ERR_TIMEOUT) {
		const char *why = r == ERR_FAIL ? "host_unfit" : "unreachable";

		return vast ? boot_leave(c, res, why, r, e) : step_because(res, why, r);
	}
	return r;
}
