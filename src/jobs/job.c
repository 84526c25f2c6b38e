#include "jobs/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "recipe/recipe.h"
#include "recipe/render.h"

/* Parameters ferry sets itself: the job's folders on the target. */
static const char *const job_owned_params[] = { "dataset", "output", "job", "remote-root",
						"captions", NULL };

static const char *const job_unready_names[] = { "fail", "fix", "caption" };

const char *job_provider_name(enum job_provider p)
{
	return p == JOB_PROVIDER_SSH ? "ssh" : p == JOB_PROVIDER_LOCAL ? "local" : "vast";
}

const char *job_unready_name(enum job_unready u)
{
	return job_unready_names[u];
}

int job_provider_parse(const char *text, struct job_spec *s, struct err *e)
{
	free(s->target);
	s->target = NULL;
	if (!strcmp(text, "vast")) {
		s->provider = JOB_PROVIDER_VAST;
	} else if (!strcmp(text, "local")) {
		s->provider = JOB_PROVIDER_LOCAL;
	} else if (!strncmp(text, "ssh:", 4) && text[4]) {
		s->provider = JOB_PROVIDER_SSH;
		s->target = xstrdup(text + 4);
	} else {
		return err_set(e, ERR_USAGE, "provider must be vast, local or ssh:TARGET "
			       "(ssh:ssh://USER@HOST:PORT), not '%s'", text);
	}
	return 0;
}

/* A text field: a string without control characters, UTF-8. */
static int job_text(const json_t *v, const char *field, char **out, struct err *e)
{
	const char *t = json_string_value(v);

	if (!json_is_string(v))
		return err_set(e, ERR_USAGE, "%s must be a string", field);
	if (!str_utf8_valid(t, json_string_length(v)) || str_has_ctrl(t) ||
	    strlen(t) != json_string_length(v))
		return err_set(e, ERR_USAGE, "%s must be UTF-8 text without control characters",
			       field);
	free(*out);
	*out = xstrdup(t);
	return 0;
}

static int job_number(const json_t *v, const char *field, double min, double max, double *out,
		      struct err *e)
{
	double d = json_number_value(v);

	if (!json_is_number(v) || !isfinite(d) || d < min || d > max)
		return err_set(e, ERR_USAGE, "%s must be a number from %g to %g", field, min, max);
	*out = d;
	return 0;
}

/* A parameter's value as recipe_param_set takes it. */
static char *job_param_text(const json_t *v)
{
	struct buf b = BUF_INIT;
	size_t i;
	json_t *x;

	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return xasprintf("%.17g", json_real_value(v));
	if (!json_is_array(v))
		return NULL;
	json_array_foreach(v, i, x) {
		if (!json_is_integer(x)) {
			buf_release(&b);
			return NULL;
		}
		buf_printf(&b, "%s%lld", i ? "," : "", (long long)json_integer_value(x));
	}
	return buf_detach(&b, NULL);
}

/* Check each parameter against the recipe; keep them as strings under
 * the recipe's own names (batch_size is taken for batch-size). */
static int job_params(const json_t *v, const char *recipe, json_t **out, struct err *e)
{
	const struct recipe *rc = recipe_find(recipe);
	struct recipe_params p = { 0 };
	const char *key;
	json_t *val, *params = json_object();
	int r = 0;

	if (!json_is_object(v)) {
		json_decref(params);
		return err_set(e, ERR_USAGE, "params must be an object of the recipe's parameters");
	}
	json_object_foreach((json_t *)v, key, val) {
		char *name = xstrdup(key), *text;

		for (char *c = name; *c; c++)
			if (*c == '_')
				*c = '-';
		for (const char *const *o = job_owned_params; *o && !r; o++)
			if (!strcmp(name, *o))
				r = err_set(e, ERR_USAGE, "params.%s is ferry's to set (the job's own "
					    "folders on the target)", key);
		text = r ? NULL : job_param_text(val);
		if (!r && !text)
			r = err_set(e, ERR_USAGE, "params.%s must be a string or a number", key);
		if (!r) {
			r = recipe_param_set(&p, name, text, e);
			if (r)
				err_prefix(e, "params (recipe %s)", rc ? rc->name : recipe);
		}
		if (!r)
			json_object_set_new(params, name, json_string(text));
		free(text);
		free(name);
		if (r)
			break;
	}
	recipe_params_release(&p);
	if (r) {
		json_decref(params);
		return r;
	}
	*out = params;
	return 0;
}

static int job_limits(const json_t *v, struct job_spec *s, struct err *e)
{
	const char *key;
	json_t *val;

	if (!json_is_object(v))
		return err_set(e, ERR_USAGE, "limits must be an object (max_hours, max_usd)");
	json_object_foreach((json_t *)v, key, val) {
		int r;

		if (!strcmp(key, "max_hours"))
			r = job_number(val, "limits.max_hours", 0, 24 * 30, &s->max_hours, e);
		else if (!strcmp(key, "max_usd"))
			r = job_number(val, "limits.max_usd", 0, 100000, &s->max_usd, e);
		else
			r = err_set(e, ERR_USAGE, "limits.%s is not a limit (max_hours, max_usd)", key);
		if (r)
			return r;
	}
	return 0;
}

static int job_query(const json_t *v, struct strv *q, struct err *e)
{
	size_t i;
	json_t *x;

	if (!json_is_array(v))
		return err_set(e, ERR_USAGE, "query must be a list of offer query terms");
	json_array_foreach(v, i, x) {
		char *t = NULL;
		char field[32];
		int r;

		snprintf(field, sizeof(field), "query[%zu]", i);
		r = job_text(x, field, &t, e);
		if (r)
			return r;
		strv_push_nodup(q, t);
	}
	return 0;
}

static int job_field(const char *key, const json_t *v, struct job_spec *s, struct err *e)
{
	int r;

	if (!strcmp(key, "name"))
		return job_text(v, "name", &s->name, e);
	if (!strcmp(key, "dataset"))
		return job_text(v, "dataset", &s->dataset, e);
	if (!strcmp(key, "recipe")) {
		r = job_text(v, "recipe", &s->recipe, e);
		if (!r && !recipe_find(s->recipe))
			r = err_set(e, ERR_USAGE, "recipe '%s' is not one of ferry's (%s)", s->recipe,
				    recipe_names());
		return r;
	}
	if (!strcmp(key, "params"))
		return 0; /* read once the recipe is known */
	if (!strcmp(key, "trainer_config"))
		return job_text(v, "trainer_config", &s->trainer_config, e);
	if (!strcmp(key, "provider")) {
		if (!json_is_string(v))
			return err_set(e, ERR_USAGE, "provider must be a string (vast, local, "
				       "ssh:TARGET)");
		r = job_provider_parse(json_string_value(v), s, e);
		return r ? err_prefix(e, "provider") : 0;
	}
	if (!strcmp(key, "query"))
		return job_query(v, &s->query, e);
	if (!strcmp(key, "interruptible")) {
		if (!json_is_boolean(v))
			return err_set(e, ERR_USAGE, "interruptible must be true or false");
		s->interruptible = json_is_true(v);
		return 0;
	}
	if (!strcmp(key, "bid"))
		return job_number(v, "bid", 0.001, 128, &s->bid, e);
	if (!strcmp(key, "limits"))
		return job_limits(v, s, e);
	if (!strcmp(key, "store")) {
		r = job_text(v, "store", &s->store, e);
		if (!r && strcmp(s->store, "dir") && strcmp(s->store, "s3"))
			r = err_set(e, ERR_USAGE, "store must be dir or s3, not '%s'", s->store);
		return r;
	}
	if (!strcmp(key, "prefix"))
		return job_text(v, "prefix", &s->prefix, e);
	if (!strcmp(key, "unready")) {
		for (size_t i = 0; i < 3; i++) {
			if (json_is_string(v) && !strcmp(json_string_value(v), job_unready_names[i])) {
				s->unready = (enum job_unready)i;
				return 0;
			}
		}
		return err_set(e, ERR_USAGE, "unready must be fail, fix or caption");
	}
	if (!strcmp(key, "webhook"))
		return job_text(v, "webhook", &s->webhook, e);
	return err_set(e, ERR_USAGE, "'%s' is not a field of a job (dataset, recipe, params, "
		       "trainer_config, provider, query, interruptible, bid, limits, store, "
		       "prefix, unready, webhook, name)", key);
}

int job_spec_from_json(const json_t *j, struct job_spec *s, struct err *e)
{
	const char *key;
	json_t *v;
	int r = 0;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(j))
		return err_set(e, ERR_USAGE, "a job is a JSON object");
	json_object_foreach((json_t *)j, key, v) {
		r = job_field(key, v, s, e);
		if (r)
			goto out;
	}
	if (!s->dataset) {
		r = err_set(e, ERR_USAGE, "dataset is required (the dataset folder)");
		goto out;
	}
	if (!s->recipe)
		s->recipe = xstrdup(recipe_all(&(size_t){ 0 })[0].name);
	v = json_object_get(j, "params");
	if (v)
		r = job_params(v, s->recipe, &s->params, e);
	else
		s->params = json_object(); /* the recipe's defaults */
	if (r)
		goto out;
	if (s->query.n && s->provider != JOB_PROVIDER_VAST) {
		r = err_set(e, ERR_USAGE, "query goes with the vast provider, not %s",
			    job_provider_name(s->provider));
		goto out;
	}
	if ((s->interruptible || s->bid > 0) && s->provider != JOB_PROVIDER_VAST) {
		r = err_set(e, ERR_USAGE, "interruptible and bid go with the vast provider");
		goto out;
	}
	if (s->bid > 0 && !s->interruptible)
		r = err_set(e, ERR_USAGE, "bid goes with interruptible: true");
out:
	if (r)
		job_spec_release(s);
	return r;
}

json_t *job_spec_to_json(const struct job_spec *s)
{
	json_t *j = json_object(), *limits = json_object();
	char *provider = s->provider == JOB_PROVIDER_SSH ? xasprintf("ssh:%s", s->target)
							  : xstrdup(job_provider_name(s->provider));

	if (s->name)
		json_object_set_new(j, "name", json_string(s->name));
	json_object_set_new(j, "dataset", json_string(s->dataset));
	json_object_set_new(j, "recipe", json_string(s->recipe));
	json_object_set_new(j, "params", s->params ? json_deep_copy(s->params) : json_object());
	if (s->trainer_config)
		json_object_set_new(j, "trainer_config", json_string(s->trainer_config));
	json_object_set_new(j, "provider", json_string(provider));
	if (s->query.n) {
		json_t *q = json_array();

		for (size_t i = 0; i < s->query.n; i++)
			json_array_append_new(q, json_string(s->query.v[i]));
		json_object_set_new(j, "query", q);
	}
	json_object_set_new(j, "interruptible", json_boolean(s->interruptible));
	if (s->bid > 0)
		json_object_set_new(j, "bid", json_real(s->bid));
	if (s->max_hours > 0)
		json_object_set_new(limits, "max_hours", json_real(s->max_hours));
	if (s->max_usd > 0)
		json_object_set_new(limits, "max_usd", json_real(s->max_usd));
	json_object_set_new(j, "limits", limits);
	if (s->store)
		json_object_set_new(j, "store", json_string(s->store));
	if (s->prefix)
		json_object_set_new(j, "prefix", json_string(s->prefix));
	json_object_set_new(j, "unready", json_string(job_unready_name(s->unready)));
	if (s->webhook)
		json_object_set_new(j, "webhook", json_string(s->webhook));
	free(provider);
	return j;
}

void job_spec_release(struct job_spec *s)
{
	free(s->name);
	free(s->dataset);
	free(s->recipe);
	json_decref(s->params);
	free(s->trainer_config);
	free(s->target);
	strv_release(&s->query);
	free(s->store);
	free(s->prefix);
	free(s->webhook);
	memset(s, 0, sizeof(*s));
}

void job_id_new(char out[JOB_ID_MAX])
{
	time_t now = (time_t)clock_wall_s();
	unsigned int rnd = 0;
	struct tm tm;
	char ts[20];

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)clock_mono_ms() ^ (unsigned int)now;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%d-%H%M%S", &tm);
	snprintf(out, JOB_ID_MAX, "%s-%08x", ts, rnd);
}

bool job_id_valid(const char *id)
{
	static const char shape[] = "dddddddd-dddddd-xxxxxxxx";

	if (!id || strlen(id) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		char c = id[i];

		if (shape[i] == '-' ? c != '-'
		    : shape[i] == 'd' ? !(c >= '0' && c <= '9')
		    : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

void job_label(const char *id, char out[JOB_LABEL_MAX])
{
	snprintf(out, JOB_LABEL_MAX, "ferry-%s", id);
}
