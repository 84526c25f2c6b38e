/* `ferry train`: submit a job, make sure a worker runs it, follow it
 * (docs/train.md). The following is shared with `ferry attach`. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/bar.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "jobs/job.h"
#include "jobs/queue.h"
#include "jobs/view.h"

const char cmd_train_usage[] =
	"usage: ferry train DATASET [options]\n"
	"       ferry train -f JOB.json [DATASET] [options]\n"
	"\n"
	"Submit a training job, start a worker in the background when none runs for\n"
	"this state folder (its log: state_dir/worker.log), and follow the job: on a\n"
	"terminal one live line (state, step/total, rate, loss, ETA, $ so far), else\n"
	"one line per event. ^C detaches (the job goes on; `ferry attach ID` follows\n"
	"it again) and never cancels. Exit status: the job's outcome, 0 SUCCEEDED,\n"
	"1 FAILED or CANCELLED (130 when detached); 2 for a bad flag, job file or\n"
	"field, and then nothing is submitted.\n"
	"\n"
	"Options (each sets a field of the job; docs/train.md has the job file):\n"
	"  -f, --file FILE        the job as JSON; the options below override it\n"
	"  --recipe R             the recipe (default: the first, flux-dev-lora)\n"
	"  --trigger W            the trigger word (params.trigger)\n"
	"  --steps N              training steps (params.steps)\n"
	"  --param KEY=VALUE      any recipe parameter (repeatable; `ferry recipe show`)\n"
	"  --provider P           vast (default), local, or ssh:TARGET\n"
	"                         (ssh:ssh://USER@HOST:PORT)\n"
	"  --max-hours H          stop and fail (budget) past H hours\n"
	"  --max-usd D            stop and fail (budget) past D dollars\n"
	"  --store dir|s3         where the LoRA is published (default: store.kind)\n"
	"  --prefix P             its key prefix (default jobs/ID)\n"
	"  --unready fail|fix|caption\n"
	"                         a dataset that is not ready: fail (default), repair\n"
	"                         a copy, or also write missing captions\n"
	"  --name NAME            a name for people\n"
	"  --detach               submit, start the worker and return at once\n"
	"  --json                 print the job as JSON (with --detach: at once; else\n"
	"                         at the end, the event lines going to stderr)\n";

/* ^C and SIGTERM detach from a followed job. A signal handler reaches only
 * what is at file scope. */
static struct cancel follow_detach;

static void follow_on_signal(int sig)
{
	cancel_set_flag(&follow_detach);
}

static int follow_columns(void)
{
	struct winsize ws;

	if (!ioctl(2, TIOCGWINSZ, &ws) && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

/* Draw the live line. cli/bar.c keeps the terminal's state (on, drawn). */
static void follow_draw(struct cli_bar *bar, const struct queue_job *j,
			const struct job_progress *p)
{
	struct buf line = BUF_INIT;
	double est = json_number_value(json_object_get(j->data, "estimate_usd"));
	int cols = follow_columns();

	job_view_status(j->state, p, j->cost_usd, est, cols >= 100 ? 24 : 12, &line);
	if (line.len >= (size_t)cols)
		line.data[cols - 1] = '\0';
	fprintf(stderr, "\r\033[K%s", line.data);
	fflush(stderr);
	bar->drawn = true;
	buf_release(&line);
}

/* The end of a followed job: what it ended as, where its files are. */
static int follow_outcome(struct queue *q, const char *id, FILE *lines, bool json,
			  struct err *e)
{
	struct job_view v;
	int r = job_view_load(q, id, &v, e);

	if (r)
		return cli_fail(e);
	if (json) {
		json_t *o = job_view_json(&v);

		json_print(stdout, o, 1);
		json_decref(o);
	}
	if (v.job.state == JOB_SUCCEEDED) {
		fprintf(lines, "job %s SUCCEEDED\n", id);
		for (size_t i = 0; i < v.nartifacts; i++) {
			const struct queue_artifact *a = &v.artifacts[i];

			fprintf(lines, "  %s  %s\n", a->path,
				a->url ? a->url : a->local_path ? a->local_path : "");
		}
	} else {
		json_t *end = json_object_get(v.job.data, "ending");

		log_fprintf(lines, "job %s %s%s%s%s%s%s\n", id, job_state_name(v.job.state),
			    v.job.reason[0] ? " (" : "", v.job.reason, v.job.reason[0] ? ")" : "",
			    json_str(end, "message", "")[0] ? ": " : "", json_str(end, "message", ""));
	}
	r = v.job.state == JOB_SUCCEEDED ? EXIT_OK : EXIT_FAILED;
	job_view_release(&v);
	return r;
}

int cli_job_follow(struct cli *cli, struct queue *q, const char *id, bool json)
{
	struct cli_signals sigs;
	struct cli_bar bar;
	struct job_progress p;
	bool have_p = false;
	FILE *lines;
	long long after = 0;
	struct err e = { 0 };
	int status = -1;

	cli_bar_init(&bar, NULL);
	lines = bar.on || json ? stderr : stdout;
	cancel_init(&follow_detach);
	cli_catch_signals(follow_on_signal, &sigs);
	while (status < 0) {
		struct queue_event *ev = NULL;
		struct queue_job j;
		size_t n = 0;

		if (q->ops->events(q, id, after, 0, &ev, &n, &e) || q->ops->get(q, id, &j, &e)) {
			queue_events_free(ev, n);
			cli_bar_end(&bar);
			status = cli_fail(&e);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			struct buf line = BUF_INIT;

			after = ev[i].id;
			if (!strcmp(ev[i].kind, "progress")) {
				job_progress_read(ev[i].data, &p);
				have_p = true;
				if (bar.on)
					continue;
			}
			cli_bar_end(&bar);
			job_view_event_line(&ev[i], &line);
			fprintf(lines, "%s\n", line.data);
			buf_release(&line);
		}
		fflush(lines);
		if (bar.on)
			follow_draw(&bar, &j, have_p ? &p : NULL);
		if (job_state_terminal(j.state) && !n) {
			cli_bar_end(&bar);
			status = follow_outcome(q, id, lines, json, &e);
		} else if (!n && clock_sleep_ms(500, &follow_detach)) {
			cli_bar_end(&bar);
			fprintf(stderr, "ferry: detached from job %s, which goes on (%s). Follow it "
				"again with `ferry attach %s`; stop it with `ferry cancel %s`.\n", id,
				job_state_name(j.state), id, id);
			status = 128 + SIGINT;
		}
		queue_job_release(&j);
		queue_events_free(ev, n);
	}
	cli_restore_signals(&sigs);
	cancel_release(&follow_detach);
	return status;
}

/* A path of the job made absolute, so that the worker finds it from
 * wherever it runs. */
static int train_abs_path(json_t *spec, const char *field)
{
	const char *path = json_string_value(json_object_get(spec, field));
	char *abs;

	if (!path)
		return 0; /* absent, or not a string: job_spec_from_json says so */
	abs = realpath(path, NULL);
	if (!abs) {
		log_fprintf(stderr, "ferry train: %s %s: %s\n", field, path, strerror(errno));
		return EXIT_USAGE;
	}
	json_object_set_new(spec, field, json_string(abs));
	free(abs);
	return 0;
}

/* The job file's object, or an exit status. */
static int train_read_file(const char *path, json_t **out)
{
	struct buf b = BUF_INIT;
	struct err e = { 0 };
	int r = fsx_read_file(path, &b, (size_t)1 << 20, &e);

	if (!r)
		r = json_parse(b.data, b.len, path, out, &e);
	buf_release(&b);
	if (!r && !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		r = err_set(&e, ERR_USAGE, "%s: a job is a JSON object", path);
	}
	if (r) {
		log_fprintf(stderr, "ferry train: %s\n", e.msg);
		return EXIT_USAGE;
	}
	return 0;
}

/* A member object of the spec (params, limits) to add flags to, made when
 * missing; NULL when the file holds something else there (reported when
 * the spec is read). */
static json_t *train_member(json_t *spec, const char *key)
{
	json_t *m = json_object_get(spec, key);

	if (!m) {
		m = json_object();
		json_object_set_new(spec, key, m);
	}
	return json_is_object(m) ? m : NULL;
}

/* Lay what the flags set over the job file's fields. */
static void train_merge(json_t *spec, json_t *top, json_t *params, json_t *limits)
{
	json_t *m;

	json_object_update(spec, top);
	if (json_object_size(params) && (m = train_member(spec, "params")))
		json_object_update(m, params);
	if (json_object_size(limits) && (m = train_member(spec, "limits")))
		json_object_update(m, limits);
}

static int train_number(const char *opt, const char *arg, json_t *limits, const char *key)
{
	double d;

	if (!str_to_double(arg, &d) || d < 0)
		return cli_usage("train", "%s wants a number, not '%s'", opt, arg);
	json_object_set_new(limits, key, json_real(d));
	return 0;
}

static int train_param(const char *arg, json_t *params)
{
	const char *eq = strchr(arg, '=');
	char *key;

	if (!eq || eq == arg)
		return cli_usage("train", "--param wants KEY=VALUE, not '%s'", arg);
	key = xstrndup(arg, (size_t)(eq - arg));
	json_object_set_new(params, key, json_string(eq + 1));
	free(key);
	return 0;
}

/* Submit `spec` under a new id (in *id) and make sure a worker runs. */
static int train_submit(struct cli *cli, struct queue *q, const json_t *spec,
			char id[JOB_ID_MAX])
{
	struct err e = { 0 };
	bool started;
	int r;

	job_id_new(id);
	r = q->ops->submit(q, id, spec, &e);
	if (!r)
		r = cli_worker_ensure(cli, &started, &e);
	return r ? cli_fail(&e) : EXIT_OK;
}

int cmd_train(struct cli *cli, int argc, char **argv)
{
	enum { O_RECIPE = 256, O_TRIGGER, O_STEPS, O_PROVIDER, O_MAX_HOURS, O_MAX_USD, O_STORE,
	       O_PREFIX, O_UNREADY, O_NAME, O_PARAM, O_DETACH, O_JSON };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "trigger", required_argument, NULL, O_TRIGGER },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "param", required_argument, NULL, O_PARAM },
		{ "provider", required_argument, NULL, O_PROVIDER },
		{ "max-hours", required_argument, NULL, O_MAX_HOURS },
		{ "max-usd", required_argument, NULL, O_MAX_USD },
		{ "store", required_argument, NULL, O_STORE },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "unready", required_argument, NULL, O_UNREADY },
		{ "name", required_argument, NULL, O_NAME },
		{ "detach", no_argument, NULL, O_DETACH },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { int opt; const char *field; } fields[] = {
		{ O_RECIPE, "recipe" }, { O_PROVIDER, "provider" }, { O_STORE, "store" },
		{ O_PREFIX, "prefix" }, { O_UNREADY, "unready" }, { O_NAME, "name" },
	};
	json_t *top = json_object(), *params = json_object(), *limits = json_object();
	json_t *spec = NULL, *canon = NULL;
	struct job_spec js = { 0 };
	struct queue *q = NULL;
	const char *file = NULL;
	char *where = NULL, id[JOB_ID_MAX];
	bool detach = false, json = false;
	struct err e = { 0 };
	int c, status = EXIT_OK;

	while (status == EXIT_OK && (c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (fields[i].opt == c)
				json_object_set_new(top, fields[i].field, json_string(optarg));
		switch (c) {
		case 'f': file = optarg; break;
		case O_TRIGGER: json_object_set_new(params, "trigger", json_string(optarg)); break;
		case O_STEPS: json_object_set_new(params, "steps", json_string(optarg)); break;
		case O_PARAM: status = train_param(optarg, params); break;
		case O_MAX_HOURS: status = train_number("--max-hours", optarg, limits, "max_hours"); break;
		case O_MAX_USD: status = train_number("--max-usd", optarg, limits, "max_usd"); break;
		case O_DETACH: detach = true; break;
		case O_JSON: json = true; break;
		case 'h': fputs(cmd_train_usage, stdout); goto out;
		case '?': status = cli_usage("train", "unknown option"); break;
		default: break;
		}
	}
	if (status)
		goto out;
	if (optind < argc)
		json_object_set_new(top, "dataset", json_string(argv[optind++]));
	if (optind < argc) {
		status = cli_usage("train", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!file && !json_object_get(top, "dataset")) {
		status = cli_usage("train", "give a DATASET folder, or a job file (-f JOB.json)");
		goto out;
	}
	if (file)
		status = train_read_file(file, &spec);
	else
		spec = json_object();
	if (status)
		goto out;
	train_merge(spec, top, params, limits);
	status = train_abs_path(spec, "dataset");
	if (!status)
		status = train_abs_path(spec, "trainer_config");
	if (status)
		goto out;
	if (job_spec_from_json(spec, &js, &e)) {
		log_fprintf(stderr, "ferry train: %s%s%s\n", file ? file : "", file ? ": " : "",
			    e.msg);
		status = EXIT_USAGE;
		goto out;
	}
	canon = job_spec_to_json(&js);
	where = queue_location(cli->cfg);
	if (queue_open(&q, where, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	status = train_submit(cli, q, canon, id);
	if (status)
		goto out;
	if (detach) {
		struct queue_job j;

		if (q->ops->get(q, id, &j, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		if (json) {
			json_t *o = job_view_summary_json(&j);

			json_print(stdout, o, 1);
			json_decref(o);
		} else {
			printf("%s\n", id);
			fprintf(stderr, "ferry: job %s queued; `ferry attach %s` follows it\n", id, id);
		}
		queue_job_release(&j);
		goto out;
	}
	fprintf(stderr, "ferry: job %s queued (^C detaches; the job goes on)\n", id);
	status = cli_job_follow(cli, q, id, json);
out:
	queue_close(q);
	free(where);
	job_spec_release(&js);
	json_decref(canon);
	json_decref(spec);
	json_decref(top);
	json_decref(params);
	json_decref(limits);
	return status;
}
