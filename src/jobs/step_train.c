/* TRAINING: launch the trainer once, then watch it tick by tick: mirror its
 * log into the job's folder (remote_log_sync), read it with the recipe's
 * scanner for progress events and a failure reason, and pull checkpoints
 * and samples home as they appear. It ends when the trainer has exited and
 * every byte of its log is here: exit 0, or a failure after the final LoRA
 * was saved (a warning), goes on to COLLECTING; any other end fails the job
 * for the reason the log shows. */
#include "jobs/steps.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "recipe/recipe.h"
#include "recipe/scan.h"
#include "remote/launch.h"
#include "remote/pull.h"
#include "remote/watch.h"

#define TRAIN_TICK_MS 2000
#define TRAIN_HEARTBEAT_S 10

/* The trainer command: trainer.command split on spaces, else the
 * recipe's; the config's path on the target last. */
static void train_argv(struct job_ctx *c, const char *config_path, struct strv *argv)
{
	const char *cmd = config_get(c->cfg, "trainer.command");
	const struct recipe *rc = recipe_find(c->spec.recipe);

	if (cmd && *cmd) {
		char *copy = xstrdup(cmd), *rest = copy, *w;

		while ((w = strsep(&rest, " \t")))
			if (*w)
				strv_push(argv, w);
		free(copy);
		strv_push(argv, config_path);
	} else {
		/* The recipe's command runs in its workdir; the job runs in its
		 * root, so its relative words are made absolute. */
		struct strv words = STRV_INIT;

		recipe_launch_argv(&rc->launch, config_path, &words);
		for (size_t i = 0; i < words.n; i++)
			strv_push_nodup(argv, i && rc->launch.workdir && words.v[i][0] != '/'
						      ? fsx_join(rc->launch.workdir, words.v[i])
						      : xstrdup(words.v[i]));
		strv_release(&words);
	}
}

/* trainer.env_file's KEY=VALUE lines, after the recipe's. */
static int train_env_file(struct job_ctx *c, struct strv *env, struct err *e)
{
	const char *path = config_get(c->cfg, "trainer.env_file");
	struct buf text = BUF_INIT;
	int r;

	if (!path || !*path)
		return 0;
	r = fsx_read_file(path, &text, 1 << 20, e);
	if (!r)
		r = remote_env_parse(text.data, text.len, path, env, e);
	if (r)
		err_prefix(e, "trainer.env_file");
	explicit_bzero(text.data, text.len);
	buf_release(&text);
	return r;
}

/* Whether an earlier run of this step already started the trainer: its
 * launch intent is open (killed between the two) and the target has the
 * job running or ended. */
static int train_started_before(struct remote *rm, struct job_ctx *c, bool *yes, struct err *e)
{
	struct remote_status st = { 0 };
	int r = remote_status(rm, c->lease->job, &st, e);

	*yes = !r && (!strcmp(st.state, "running") || !strcmp(st.state, "exited"));
	return r;
}

/* Launch, at most once for the job: the intent is written first. */
static int train_launch(struct job_ctx *c, struct remote *rm, json_t *train, struct err *e)
{
	const struct recipe *rc = recipe_find(c->spec.recipe);
	const char *dir = NULL;
	struct remote_launch_opts lo = { .heartbeat_s = TRAIN_HEARTBEAT_S, .cancel = c->cancel };
	struct strv env = STRV_INIT, argv = STRV_INIT;
	struct buf config = BUF_INIT;
	char *config_local = NULL, *root = job_remote_root(c), *config_path = NULL;
	long long step = json_integer_value(json_object_get(train, "launch_step"));
	bool started = false, before = false;
	int r = job_dir(c, &dir, e);

	if (!r && step)
		r = train_started_before(rm, c, &before, e);
	if (r || before)
		goto out;
	config_local = fsx_join(dir, "config.json");
	config_path = xasprintf("%s/%s/config.json", root, c->lease->job);
	r = fsx_read_file(config_local, &config, 16 << 20, e);
	if (!r)
		r = recipe_env_lines(rc, config_get(c->cfg, "hf.token"), &env, e);
	if (!r)
		r = train_env_file(c, &env, e);
	if (r)
		goto out;
	train_argv(c, config_path, &argv);
	lo.config = &config;
	lo.env = &env;
	lo.argv = (const char *const *)argv.v;
	if (!step) {
		json_t *intent = json_pack("{s:[]}", "argv");

		for (size_t i = 0; i < argv.n; i++)
			json_array_append_new(json_object_get(intent, "argv"),
					      json_string(argv.v[i]));
		r = c->q->ops->step_begin(c->q, c->lease, "launch", intent, &step, e);
		json_decref(intent);
		if (r)
			goto out;
		json_object_set_new(train, "launch_step", json_integer(step));
		r = job_save(c, e);
		if (r)
			goto out;
	}
	r = remote_launch(rm, c->lease->job, &lo, &started, e);
out:
	if (!r && step) {
		json_t *outcome = json_pack("{s:b, s:b}", "started", started, "found_running",
					    before || !started);

		r = c->q->ops->step_end(c->q, c->lease, step, outcome, e);
		if (r == ERR_EXISTS) /* ended before a restart */
			r = 0;
		json_decref(outcome);
		if (!r)
			json_object_set_new(train, "launched", json_true());
	}
	remote_env_release(&env);
	strv_release(&argv);
	buf_release(&config);
	free(config_local);
	free(config_path);
	free(root);
	return r;
}

/* A progress event when the run moved: a new step, phase or sample. */
static void train_progress(struct job_ctx *c, const struct recipe_scan_result *sr,
			   json_t *train)
{
	json_t *last = json_object_get(train, "progress");
	json_t *now = recipe_scan_json(sr);

	json_object_del(now, "checkpoints"); /* the artifacts say it better */
	if (!last || !json_equal(last, now)) {
		job_event(c, "progress", json_deep_copy(now), NULL);
		json_object_set_new(train, "progress", now);
	} else {
		json_decref(now);
	}
}

/* Pull what is complete when the run saved or sampled since the last pull. */
static int train_pull(struct job_ctx *c, struct remote *rm, const struct recipe_scan_result *sr,
		      json_t *train, bool force, struct err *e)
{
	json_int_t made = (json_int_t)(sr->checkpoints_saved + sr->samples);
	const char *dir = NULL;
	struct remote_pull_opts po = { .cancel = c->cancel };
	struct remote_pull_result pr = { 0 };
	size_t added = 0;
	char *out;
	int r;

	r = job_dir(c, &dir, e);
	if (r)
		return r;
	if (!force && json_integer_value(json_object_get(train, "pulled_at")) == made)
		return 0;
	out = fsx_join(dir, "output");
	po.dir = out;
	r = remote_pull(rm, c->lease->job, &po, NULL, &pr, e);
	if (!r)
		r = job_outputs_record(c, &added, e);
	if (!r && added)
		r = job_event(c, "artifacts",
			      json_pack("{s:I, s:I}", "added", (json_int_t)added, "bytes",
					(json_int_t)pr.bytes),
			      e);
	if (!r)
		json_object_set_new(train, "pulled_at", json_integer(made));
	free(out);
	return r;
}

/* How the run ended, from the supervisor's exit and the log. */
static int train_outcome(struct job_ctx *c, const struct remote_status *st,
			 const struct recipe_scan_result *sr, json_t *train,
			 struct step_result *res, struct err *e)
{
	bool ok = !strcmp(st->state, "exited") && st->exit_code == 0;

	json_object_set_new(train, "ended", json_true());
	json_object_set_new(train, "state", json_string(st->state));
	json_object_set_new(train, "exit_code", json_integer(st->exit_code));
	for (int w = 0; w < RECIPE_WARN_COUNT; w++)
		if (sr->warnings & (1u << w))
			job_event(c, "warning",
				  json_pack("{s:s, s:s}", "code",
					    recipe_warning_name((enum recipe_warning)w), "line",
					    sr->warning_lines[w] ? sr->warning_lines[w] : ""),
				  NULL);
	if (ok && sr->failure == RECIPE_FAIL_NONE)
		return 0;
	/* The LoRA is whole; what failed came after it (the last samples):
	 * a success with the warning above, never a run to retry. */
	if (sr->final_saved && sr->failure == RECIPE_FAIL_NONE &&
	    (sr->warnings & (1u << RECIPE_WARN_FINAL_SAMPLES)))
		return 0;
	if (!strcmp(st->state, "never-started") || !strcmp(st->state, "absent"))
		return step_because(res, "trainer_missing", err_set(e, ERR_FAIL,
				 "the trainer did not start on the target (state %s)", st->state));
	if (sr->failure != RECIPE_FAIL_NONE)
		return step_because(res, recipe_failure_name(sr->failure), err_set(e, ERR_FAIL,
				 "the trainer failed (%s): %s", recipe_failure_name(sr->failure),
				 sr->failure_line ? sr->failure_line : ""));
	return step_because(res, "trainer_exit",
			    err_set(e, ERR_FAIL, "the trainer ended %s with exit status %d",
				    st->state, st->exit_code));
}

/* A scanner that has read the log's copy so far (after a restart, the
 * whole copy again: it is bounded in memory). */
static int train_scanner(struct job_ctx *c, const char *log_path, struct recipe_scan **out,
			 struct err *e)
{
	const char *name = json_string_value(json_object_get(job_data_obj(c, "train"), "name"));
	struct recipe_scan *s = recipe_scan_new(name);
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	char *root = job_remote_root(c), *dataset = xasprintf("%s/%s/dataset", root, c->lease->job);
	int r = 0;

	/* A missing dataset is named from the folder the config gives. */
	recipe_scan_set_dataset(s, dataset);
	free(dataset);
	free(root);

	if (fd >= 0) {
		r = recipe_scan_fd(s, fd, log_path, e);
		close(fd);
	}
	if (r) {
		recipe_scan_free(s);
		s = NULL;
	}
	*out = s;
	return r;
}

int step_train(struct job_ctx *c, struct step_result *res, struct err *e)
{
	json_t *train = job_data_obj(c, "train");
	const char *dir = NULL;
	struct backoff conn = { .first_ms = 1000, .max_ms = 30000, .jitter = true };
	struct remote_log_sync_opts so = { .backoff = &conn, .cancel = c->cancel };
	struct remote_log_sync_result sr = { 0 };
	struct recipe_scan *scan = NULL;
	struct buf bytes = BUF_INIT;
	struct remote *rm;
	char *log_path = NULL;
	int r = job_dir(c, &dir, e);

	if (!r)
		r = job_remote(c, &rm, e);
	if (!r && !json_is_true(json_object_get(train, "launched"))) {
		r = train_launch(c, rm, train, e);
		if (r == ERR_CONFIG || r == ERR_USAGE)
			r = step_because(res, "config", r);
	}
	if (r)
		goto out;
	log_path = fsx_join(dir, "train.log");
	r = train_scanner(c, log_path, &scan, e);
	while (!r) {
		r = job_keep(c, e);
		if (!r) {
			buf_reset(&bytes);
			r = remote_log_sync(rm, c->lease->job, log_path, &so, &bytes, &sr, e);
		}
		if (r)
			break;
		recipe_scan_feed(scan, bytes.data, bytes.len);
		if (sr.done)
			recipe_scan_finish(scan);
		train_progress(c, recipe_scan_result(scan), train);
		r = train_pull(c, rm, recipe_scan_result(scan), train, sr.done, e);
		if (r || sr.done)
			break;
		r = job_save(c, e);
		if (!r)
			r = clock_sleep_ms(TRAIN_TICK_MS, c->cancel);
	}
	if (!r)
		r = train_outcome(c, &sr.st, recipe_scan_result(scan), train, res, e);
	else if (r == ERR_CONN)
		r = step_because(res, "unreachable", r);
out:
	recipe_scan_free(scan);
	buf_release(&bytes);
	free(log_path);
	return r;
}
