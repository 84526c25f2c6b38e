/* RECOVERING: the job's machine was left (it never booted, fell short of the
 * probe, or was lost): destroy it, confirmed by listing its label, exclude
 * its machine for this job, and go back to RENTING for the next offer. A
 * job that has left RECOVER_MAX machines fails (no_host) rather than try
 * the market forever. */
#include "jobs/steps.h"

#include "remote/transport.h"

#define RECOVER_MAX 3

int step_recover(struct job_ctx *c, struct step_result *res, struct err *e)
{
	json_t *why = json_object_get(c->data, "recover");
	const char *reason = json_string_value(json_object_get(why, "reason"));
	json_int_t n = json_integer_value(json_object_get(c->data, "recoveries"));
	struct queue_instance in = { 0 };
	int r = job_instance(c, &in, e);

	if (r == ERR_NOTFOUND) {
		err_clear(e);
		r = 0;
	} else if (!r) {
		json_t *ex = json_object_get(c->data, "excluded_machines");

		if (!json_is_array(ex))
			json_object_set_new(c->data, "excluded_machines", ex = json_array());
		if (in.machine_id)
			json_array_append_new(ex, json_integer(in.machine_id));
		r = job_instance_destroy(c, &in, reason ? reason : "left", e);
	}
	if (r)
		return r;
	remote_close(c->rm);
	c->rm = NULL;
	json_object_del(c->data, "target");
	json_object_del(c->data, "boot");
	json_object_set_new(c->data, "recoveries", json_integer(n + 1));
	if (n + 1 > RECOVER_MAX)
		return step_because(res, "no_host", err_set(e, ERR_FAIL,
				 "%d machines were left (the last: %s); giving up", RECOVER_MAX + 1,
				 reason ? reason : "unknown"));
	return 0;
}
