/* PUBLISHING: the job's pulled outputs to the store under its prefix
 * (publish_dir: never the config copies, env files, partial files or the
 * optimizer state), result.json last. Each published file's SHA-256 must
 * be the one recorded when it was pulled (invariant 4); only then is the
 * artifact recorded published, with its key and URL. The intent is written
 * first; publishing again after a crash puts the same bytes under the same
 * keys, which the store skips. */
#include "jobs/steps.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "recipe/outputs.h"
#include "store/publish.h"
#include "store/store.h"

/* Mark each published file's artifact, checking its hash. */
static int publish_record(struct job_ctx *c, const json_t *result, struct err *e)
{
	struct queue_artifact *v = NULL;
	size_t n = 0, i;
	json_t *f;
	int r = c->q->ops->artifacts(c->q, c->lease->job, &v, &n, e);

	json_array_foreach(json_object_get(result, "files"), i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		const char *sha = json_string_value(json_object_get(f, "sha256"));
		struct queue_artifact *a = NULL;

		for (size_t k = 0; !r && k < n && !a; k++)
			if (!strcmp(v[k].path, path))
				a = &v[k];
		if (r)
			break;
		if (!a || strcmp(a->sha256, sha)) {
			r = err_set(e, ERR_CORRUPT, "published %s has SHA-256 %s, but %s was pulled",
				    path, sha, a ? a->sha256 : "nothing");
			break;
		}
		free(a->key);
		free(a->url);
		a->key = xstrdup(json_string_value(json_object_get(f, "key")));
		a->url = xstrdup(json_string_value(json_object_get(f, "url")));
		a->published_at = clock_wall_s();
		r = c->q->ops->artifact_put(c->q, c->lease, a, e);
	}
	queue_artifacts_free(v, n);
	return r;
}

int step_publish(struct job_ctx *c, struct step_result *res, struct err *e)
{
	json_t *pub = job_data_obj(c, "publish");
	const char *dir = NULL;
	char *prefix, *out = NULL;
	struct publish_opts po = { .private_file = recipe_output_private };
	struct store *s = NULL;
	struct step_progress jp;
	json_t *result = NULL, *intent;
	long long step = 0;
	int r;

	if (json_is_true(json_object_get(pub, "done")))
		return 0;
	r = job_dir(c, &dir, e);
	if (r)
		return r;
	prefix = c->spec.prefix ? xstrdup(c->spec.prefix) : xasprintf("jobs/%s", c->lease->job);
	out = fsx_join(dir, "output");
	r = fsx_mkdir_p(out, 0700, e);
	if (!r)
		r = store_open(&s, c->cfg, c->spec.store, NULL, e);
	if (r) {
		r = step_because(res, "store", r);
		goto out;
	}
	store_set_cancel(s, c->cancel);
	intent = json_pack("{s:s, s:s}", "prefix", prefix, "store", store_location(s));
	r = c->q->ops->step_begin(c->q, c->lease, "publish", intent, &step, e);
	json_decref(intent);
	if (r)
		goto out;
	step_progress_init(&jp, c);
	po.dir = out;
	po.prefix = prefix;
	po.pg = &jp.pg;
	r = publish_dir(s, &po, &result, e);
	step_progress_release(&jp);
	if (!r)
		r = publish_record(c, result, e);
	if (!r) {
		json_t *outcome = json_pack("{s:I}", "files",
					    (json_int_t)json_array_size(json_object_get(result,
											 "files")));

		r = c->q->ops->step_end(c->q, c->lease, step, outcome, e);
		json_decref(outcome);
	}
	if (!r) {
		json_object_set_new(pub, "done", json_true());
		json_object_set_new(pub, "prefix", json_string(prefix));
		json_object_set_new(pub, "store", json_string(store_location(s)));
		json_object_set_new(pub, "result", json_incref(result));
	} else if (r != ERR_CANCELLED) {
		r = step_because(res, r == ERR_CORRUPT ? "corrupt" : "store", r);
	}
out:
	json_decref(result);
	store_close(s);
	free(prefix);
	free(out);
	return r;
}
