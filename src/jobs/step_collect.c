/* COLLECTING: the last pull of the job's outputs, each file checked against
 * the target's SHA-256 (remote_pull), and every file recorded with its own
 * (job_outputs_record). What the run left is read by the recipe's rules:
 * the final LoRA, checkpoints, samples, and what must never be published. */
#include "jobs/steps.h"

#include <stdlib.h>

#include "common/fsx.h"
#include "recipe/outputs.h"
#include "remote/pull.h"

int step_collect(struct job_ctx *c, struct step_result *res, struct err *e)
{
	const char *dir = NULL;
	const char *name = json_string_value(json_object_get(job_data_obj(c, "train"), "name"));
	struct remote_pull_opts po = { .cancel = c->cancel };
	struct remote_pull_result pr = { 0 };
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct step_progress jp;
	struct remote *rm;
	char *out;
	int r;

	r = job_dir(c, &dir, e);
	if (r)
		return r;
	out = fsx_join(dir, "output");
	po.dir = out;
	step_progress_init(&jp, c);
	r = job_remote(c, &rm, e);
	if (!r)
		r = remote_pull(rm, c->lease->job, &po, &jp.pg, &pr, e);
	step_progress_release(&jp);
	if (r == ERR_CONN)
		r = step_because(res, "unreachable", r);
	if (!r)
		r = job_outputs_record(c, NULL, e);
	if (!r && fsx_mkdir_p(out, 0700, e) == 0)
		r = recipe_outputs_read_dir(&o, out, e);
	if (!r)
		r = recipe_outputs_classify(&o, name, e);
	if (!r)
		json_object_set_new(c->data, "outputs", recipe_outputs_json(&o));
	/* A run stopped early (a limit, a cancel) keeps what it has; one that
	 * finished must have its LoRA. */
	if (!r && o.final < 0 && !json_object_get(c->data, "ending"))
		r = step_because(res, "no_final_lora", err_set(e, ERR_FAIL,
			      "the trainer ended without the final LoRA (%s.safetensors) in its "
			      "output", name ? name : "NAME"));
	recipe_outputs_release(&o);
	free(out);
	return r;
}
