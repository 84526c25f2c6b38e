/* UPLOADING: push the packed dataset to the job's folder on its machine
 * (resumed, verified, extracted: remote_push) and render the trainer's
 * config for that folder, kept in the job's folder here until the launch
 * uploads it. */
#include "jobs/steps.h"

#include <stdlib.h>

#include "common/fsx.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "recipe/recipe.h"
#include "recipe/render.h"
#include "remote/push.h"

/* The spec's recipe parameters, then the paths on the target: ROOT/ID. */
static int upload_params(struct job_ctx *c, struct recipe_params *p, struct err *e)
{
	char *root = job_remote_root(c);
	const char *key;
	json_t *v;
	int r = 0;

	json_object_foreach(c->spec.params, key, v) {
		r = recipe_param_set(p, key, json_string_value(v), e);
		if (r) {
			err_prefix(e, "params.%s", key);
			break;
		}
	}
	if (!r)
		r = recipe_param_set(p, "job", c->lease->job, e);
	if (!r)
		r = recipe_param_set(p, "remote-root", root, e);
	if (!r)
		r = recipe_param_set(p, "captions", c->spec.dataset, e);
	free(root);
	return r;
}

static int upload_render(struct job_ctx *c, struct err *e)
{
	const struct recipe *rc = recipe_find(c->spec.recipe);
	const char *dir = NULL;
	struct recipe_params p = { 0 };
	struct buf text = BUF_INIT;
	json_t *config = NULL;
	char *path = NULL;
	int r;

	r = job_dir(c, &dir, e);
	if (r)
		return r;
	if (!rc)
		return err_set(e, ERR_USAGE, "recipe '%s' is not one of: %s", c->spec.recipe,
			       recipe_names());
	r = upload_params(c, &p, e);
	if (!r)
		r = recipe_render(rc, &p, &config, e);
	if (!r)
		r = recipe_config_text(rc, config, &text, e);
	if (!r) {
		path = fsx_join(dir, "config.json");
		r = fsx_write_atomic(path, text.data, text.len, 0600, e);
	}
	if (!r)
		json_object_set_new(job_data_obj(c, "train"), "name",
				    json_string(p.name ? p.name : RECIPE_DEFAULT_NAME));
	free(path);
	json_decref(config);
	buf_release(&text);
	recipe_params_release(&p);
	return r;
}

int step_upload(struct job_ctx *c, struct step_result *res, struct err *e)
{
	const char *archive = json_string_value(json_object_get(job_data_obj(c, "dataset"),
								"archive"));
	struct remote_push_opts po = { .cancel = c->cancel };
	struct remote_push_result pr = { 0 };
	struct step_progress jp;
	struct remote *rm;
	int r;

	/* Rendered first: a config the recipe refuses fails before any upload. */
	r = upload_render(c, e);
	if (r)
		return step_because(res, "config", r);
	if (!archive)
		return step_because(res, "internal",
				    err_set(e, ERR_FAIL, "PREPARING recorded no dataset archive"));
	r = job_remote(c, &rm, e);
	if (r)
		return r == ERR_CONN ? step_because(res, "unreachable", r) : r;
	step_progress_init(&jp, c);
	r = remote_push(rm, c->lease->job, archive, &po, &jp.pg, &pr, e);
	step_progress_release(&jp);
	if (r == ERR_CONN)
		return step_because(res, "unreachable", r);
	if (r)
		return r;
	json_object_set_new(c->data, "upload",
			    json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:i}", "sha256", pr.sha256,
				      "bytes", (json_int_t)pr.bytes, "sent", (json_int_t)pr.sent,
				      "resumed_from", (json_int_t)pr.resumed_from, "files",
				      (json_int_t)pr.files, "already", pr.already, "resends",
				      pr.resends));
	return 0;
}
