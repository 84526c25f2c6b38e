#include "jobs/step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "recipe/outputs.h"
#include "remote/target.h"
#include "remote/transport.h"
#include "vast/client.h"
#include "vast/model.h"
#include "common/log.h"

int step_because(struct step_result *res, const char *reason, int r)
{
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	return r;
}

int job_dir(struct job_ctx *c, const char **out, struct err *e)
{
	const char *state = c->cfg ? config_get(c->cfg, "state_dir") : NULL;
	char *dir;
	int r;

	*out = c->dir;
	if (c->dir)
		return 0;
	if (!state)
		return err_set(e, ERR_CONFIG, "no state_dir setting for job %s's files",
			       c->lease->job);
	dir = xasprintf("%s/jobs/%s", state, c->lease->job);
	r = fsx_mkdir_p(dir, 0700, e);
	if (r) {
		free(dir);
		return r;
	}
	*out = c->dir = dir;
	return 0;
}

json_t *job_data_obj(struct job_ctx *c, const char *key)
{
	json_t *o = json_object_get(c->data, key);

	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(c->data, key, o);
	}
	return o;
}

char *job_remote_root(struct job_ctx *c)
{
	if (c->spec.provider == JOB_PROVIDER_LOCAL &&
	    !strcmp(config_origin(c->cfg, "remote.root"), "default"))
		return xasprintf("%s/local", config_get(c->cfg, "state_dir"));
	return xstrdup(config_get(c->cfg, "remote.root"));
}

int job_remote(struct job_ctx *c, struct remote **rm, struct err *e)
{
	struct remote_target t = { 0 };
	char *root, *spec = NULL;
	int r;

	if (c->rm) {
		*rm = c->rm;
		return 0;
	}
	root = job_remote_root(c);
	switch (c->spec.provider) {
	case JOB_PROVIDER_LOCAL:
		spec = xasprintf("local:%s", root);
		r = remote_target_parse(spec, root, &t, e);
		break;
	case JOB_PROVIDER_SSH:
		r = remote_target_parse(c->spec.target, root, &t, e);
		break;
	default: {
		/* BOOTING found the instance's SSH endpoint. */
		const char *target = json_string_value(json_object_get(c->data, "target"));

		r = target ? remote_target_parse(target, root, &t, e)
			   : err_set(e, ERR_FAIL, "job %s has no instance endpoint yet",
				     c->lease->job);
		break;
	}
	}
	if (!r)
		r = remote_open(&c->rm, &t, c->cfg, e);
	remote_target_release(&t);
	free(spec);
	free(root);
	*rm = c->rm;
	return r;
}

static void step_progress_fn(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct step_progress *jp = arg;
	long long now = clock_mono_ms();
	bool same = !strcmp(jp->phase, phase);

	pthread_mutex_lock(&jp->lock);
	if (!same || now - jp->last_ms >= 1000 || (total && done == total)) {
		snprintf(jp->phase, sizeof(jp->phase), "%s", phase);
		jp->last_ms = now;
		/* An event lost here costs one sample of a bar: never a step. */
		job_event(jp->c, "progress",
			  json_pack("{s:s, s:I, s:I}", "phase", phase, "done", (json_int_t)done,
				    "total", (json_int_t)total),
			  NULL);
	}
	pthread_mutex_unlock(&jp->lock);
}

void step_progress_init(struct step_progress *jp, struct job_ctx *c)
{
	memset(jp, 0, sizeof(*jp));
	jp->pg = (struct progress){ step_progress_fn, jp };
	jp->c = c;
	pthread_mutex_init(&jp->lock, NULL);
}

void step_progress_release(struct step_progress *jp)
{
	pthread_mutex_destroy(&jp->lock);
}

/* Whether the queue has `rel` at `size` already. */
static bool job_output_known(const struct queue_artifact *v, size_t n, const char *rel,
			     long long size)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].path, rel))
			return v[i].size == size;
	return false;
}

int job_outputs_record(struct job_ctx *c, size_t *added, struct err *e)
{
	const char *dir = NULL;
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct queue_artifact *v = NULL;
	size_t n = 0, count = 0;
	char *out;
	int r;

	if (added)
		*added = 0;
	r = job_dir(c, &dir, e);
	if (r)
		return r;
	out = fsx_join(dir, "output");
	r = c->q->ops->artifacts(c->q, c->lease->job, &v, &n, e);
	if (!r && access(out, F_OK) == 0)
		r = recipe_outputs_read_dir(&o, out, e);
	for (size_t i = 0; !r && i < o.n; i++) {
		const struct recipe_output *f = &o.files[i];
		struct queue_artifact a = { .path = f->path, .size = f->size };
		uint64_t size;

		if (str_ends_with_ci(f->path, ".part") || job_output_known(v, n, f->path, f->size))
			continue;
		snprintf(a.job, sizeof(a.job), "%s", c->lease->job);
		a.local_path = fsx_join(out, f->path);
		r = sha256_file(a.local_path, a.sha256, &size, e);
		a.size = (long long)size;
		if (!r)
			r = c->q->ops->artifact_put(c->q, c->lease, &a, e);
		free(a.local_path);
		count += !r;
	}
	if (added)
		*added = count;
	recipe_outputs_release(&o);
	queue_artifacts_free(v, n);
	free(out);
	return r;
}

int job_vast(struct job_ctx *c, struct vast_client **vc, struct err *e)
{
	int r = 0;

	if (!c->vc) {
		r = vast_client_from_config(&c->vc, c->cfg, true, e);
		if (!r)
			vast_client_set_cancel(c->vc, c->cancel);
	}
	*vc = c->vc;
	return r;
}

int job_instance(struct job_ctx *c, struct queue_instance *in, struct err *e)
{
	struct queue_instance *v = NULL;
	size_t n = 0;
	int r = c->q->ops->instances(c->q, c->lease->job, &v, &n, e);

	for (size_t i = 0; !r && i < n; i++) {
		if (!v[i].destroyed_at) {
			*in = v[i];
			free(v);
			return 0;
		}
	}
	free(v);
	return r ? r : ERR_NOTFOUND;
}

/* Whether anything with the label still lives on Vast. */
static int job_label_live(struct vast_client *vc, const char *label, long long *id, struct err *e)
{
	struct vast_instance *v = NULL;
	size_t n = 0;
	int r = vast_list_instances(vc, label, &v, &n, e);

	*id = 0;
	for (size_t i = 0; !r && i < n && !*id; i++)
		*id = v[i].id;
	vast_instances_free(v, n);
	return r;
}

int job_instance_destroy(struct job_ctx *c, struct queue_instance *in, const char *why,
			 struct err *e)
{
	struct vast_client *vc;
	long long left = 0;
	int r = job_vast(c, &vc, e);

	if (!r && in->instance_id)
		r = vast_destroy_confirm(vc, in->instance_id, e);
	/* The label too: an unclear create may have left one. */
	while (!r && !(r = job_label_live(vc, in->label, &left, e)) && left) {
		log_warn("job %s: instance %lld still carries %s; destroying it", c->lease->job,
			 left, in->label);
		r = vast_destroy_confirm(vc, left, e);
	}
	if (r)
		return r;
	in->destroyed_at = clock_wall_s();
	snprintf(in->left_reason, sizeof(in->left_reason), "%s", why);
	r = c->q->ops->instance_put(c->q, c->lease, in, e);
	if (!r)
		r = job_event(c, "instance",
			      json_pack("{s:s, s:I, s:s}", "destroyed", in->label, "id",
					(json_int_t)in->instance_id, "why", why),
			      e);
	return r;
}
