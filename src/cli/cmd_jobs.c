/* `ferry jobs`, `show`, `logs`, `attach`, `cancel` and `retry`: the queue's
 * jobs for people and scripts (docs/train.md). A JOB argument is a job's
 * id or a prefix of exactly one. */
#include "cli/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/view.h"

const char cmd_jobs_usage[] =
	"usage: ferry jobs [--all] [--json]\n"
	"\n"
	"The jobs that have not ended, newest first: id, state, reason, age, cost\n"
	"and name.\n"
	"  --all    ended jobs too\n"
	"  --json   a JSON list, one object per job (docs/train.md)\n";

const char cmd_show_usage[] =
	"usage: ferry show JOB [--json]\n"
	"\n"
	"One job in full: its spec, its timeline (every state it went through), its\n"
	"instances, what it cost, its artifacts and how it ended. --json prints the\n"
	"shape docs/train.md documents (id, state, reason, instances, artifacts,\n"
	"cost_usd, events, result, ...).\n";

const char cmd_logs_usage[] =
	"usage: ferry logs JOB [-f]\n"
	"\n"
	"The trainer's log, from the local copy the worker keeps\n"
	"(state_dir/jobs/ID/train.log). A job with no log yet says so.\n"
	"  -f, --follow   print what is added until the job ends (^C stops)\n";

const char cmd_attach_usage[] =
	"usage: ferry attach JOB [--json]\n"
	"\n"
	"Follow a job as `ferry train` does, from its first event: a live line on a\n"
	"terminal, else one line per event. ^C detaches; the job goes on. Exit\n"
	"status: 0 when it SUCCEEDED, 1 when it FAILED or was CANCELLED, 130 when\n"
	"detached.\n";

const char cmd_cancel_usage[] =
	"usage: ferry cancel JOB\n"
	"\n"
	"Cancel a job: a queued one ends CANCELLED at once; a running one is marked,\n"
	"and its worker releases its instance before it ends CANCELLED. A job that\n"
	"already ended is an error (exit 1).\n";

const char cmd_retry_usage[] =
	"usage: ferry retry JOB\n"
	"\n"
	"Queue a FAILED or CANCELLED job again (its attempt count goes up by one);\n"
	"the worker takes it up where its data says. A job that has not ended is an\n"
	"error (exit 1); one that SUCCEEDED is not retried (exit 2: submit it again).\n";

/* Parse a command of the form NAME [JOB] [flags] (JOB when `want_job`):
 * the options in `opts` besides --help set *flags bits (their `val` is the
 * bit; 'f' is F_FOLLOW). Returns -1 to go on, else an exit status. */
static int jobs_args(const char *name, const char *usage, int argc, char **argv,
		     const struct option *opts, const char *sopts, bool want_job, int *flags,
		     const char **job)
{
	int c;

	*flags = 0;
	*job = NULL;
	while ((c = getopt_long(argc, argv, sopts, opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		if (c == '?' || c == ':')
			return cli_usage(name, "unknown option");
		*flags |= c == 'f' ? 1 : c;
	}
	if (want_job && optind >= argc)
		return cli_usage(name, "give a JOB (its id, or the start of it)");
	if (want_job)
		*job = argv[optind++];
	if (optind < argc)
		return cli_usage(name, "unexpected argument '%s'", argv[optind]);
	return -1;
}

/* Open the queue and find the job `arg` names. */
static int jobs_open(struct cli *cli, const char *arg, struct queue **q, char id[JOB_ID_MAX],
		     struct err *e)
{
	char *where = queue_location(cli->cfg);
	int r = queue_open(q, where, e);

	free(where);
	if (!r && arg)
		r = job_view_resolve(*q, arg, id, e);
	return r;
}

enum { F_FOLLOW = 1, F_JSON = 2, F_ALL = 4 };

static void jobs_money(double usd, char *out, size_t n)
{
	snprintf(out, n, "$%.2f", usd);
}

int cmd_jobs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, F_ALL },
		{ "json", no_argument, NULL, F_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct queue_filter f = { 0 };
	struct queue_job *v = NULL;
	struct queue *q = NULL;
	const char *extra;
	struct err e = { 0 };
	size_t n = 0;
	int flags, status;
	long long now = clock_wall_s();

	status = jobs_args("jobs", cmd_jobs_usage, argc, argv, opts, "h", false, &flags, &extra);
	if (status != -1)
		return status;
	f.all = flags & F_ALL;
	if (jobs_open(cli, NULL, &q, NULL, &e) || q->ops->list(q, &f, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	status = EXIT_OK;
	if (flags & F_JSON) {
		json_t *list = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(list, job_view_summary_json(&v[i]));
		json_print(stdout, list, 1);
		json_decref(list);
		goto out;
	}
	if (!n) {
		fprintf(stderr, "ferry: no jobs%s\n", f.all ? "" : " running or queued (--all "
			"shows the ended ones too)");
		goto out;
	}
	printf("%-24s  %-10s  %-18s  %7s  %8s  %s\n", "ID", "STATE", "REASON", "AGE", "COST",
	       "NAME");
	for (size_t i = 0; i < n; i++) {
		struct buf name = BUF_INIT;
		char age[32], cost[32];

		str_escape(json_str(v[i].spec, "name", ""), &name);
		job_view_duration((double)(now - v[i].created_at), age, sizeof(age));
		jobs_money(v[i].cost_usd, cost, sizeof(cost));
		printf("%-24s  %-10s  %-18.18s  %7s  %8s  %s\n", v[i].id,
		       job_state_name(v[i].state), v[i].reason[0] ? v[i].reason : "-", age, cost,
		       name.data);
		buf_release(&name);
	}
out:
	queue_jobs_free(v, n);
	queue_close(q);
	return status;
}

static void show_time(const char *label, long long at_s)
{
	time_t t = (time_t)at_s;
	struct tm tm;
	char when[32];

	if (!at_s)
		return;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("  %-13s %s\n", label, when);
}

/* A JSON value for people: strings as they are (escaped), the rest as JSON. */
static void show_value(const char *label, const json_t *v)
{
	struct buf b = BUF_INIT;

	char *text = NULL;

	if (json_is_string(v)) {
		str_escape(json_string_value(v), &b);
	} else {
		text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
		str_escape(text ? text : "", &b);
	}
	printf("  %-13s %s\n", label, b.data);
	free(text);
	buf_release(&b);
}

static void show_text(const struct job_view *v)
{
	const struct queue_job *j = &v->job;
	json_t *result = NULL;
	const char *key;
	json_t *val;
	char cost[32];

	printf("job %s  %s%s%s%s\n", j->id, job_state_name(j->state), j->reason[0] ? " (" : "",
	       j->reason, j->reason[0] ? ")" : "");
	json_object_foreach(j->spec, key, val)
		show_value(key, val);
	printf("  %-13s %d\n", "attempt", j->attempt);
	show_time("created", j->created_at);
	show_time("updated", j->updated_at);
	jobs_money(j->cost_usd, cost, sizeof(cost));
	printf("  %-13s %s\n", "cost", cost);
	if (j->lease_owner[0])
		printf("  %-13s %s\n", "worker", j->lease_owner);
	if (j->cancel_requested && !job_state_terminal(j->state))
		printf("  %-13s %s\n", "cancel", "asked for; the worker is winding it down");
	printf("timeline\n");
	for (size_t i = 0; i < json_array_size(v->timeline); i++) {
		json_t *t = json_array_get(v->timeline, i);
		struct queue_event ev = { .at = json_int(t, "at", 0), .kind = "state" };
		struct buf line = BUF_INIT;

		ev.data = t;
		job_view_event_line(&ev, &line);
		printf("  %s\n", line.data);
		buf_release(&line);
	}
	if (v->ninstances)
		printf("instances\n");
	for (size_t i = 0; i < v->ninstances; i++) {
		const struct queue_instance *in = &v->instances[i];

		printf("  %s  %s  id %lld  $%.3f/h  %s%s%s\n", in->label, in->provider,
		       in->instance_id, in->dph, in->destroyed_at ? "destroyed" : "alive",
		       in->left_reason[0] ? ": " : "", in->left_reason);
		show_time("created", in->created_at);
		show_time("destroyed", in->destroyed_at);
	}
	if (v->nartifacts)
		printf("artifacts\n");
	for (size_t i = 0; i < v->nartifacts; i++) {
		const struct queue_artifact *a = &v->artifacts[i];

		printf("  %s  %lld bytes  sha256 %s%s%s\n", a->path, a->size, a->sha256,
		       a->url ? "  " : "", a->url ? a->url : "");
	}
	printf("events          %lld\n", v->nevents);
	result = job_view_json(v);
	val = json_object_get(result, "result");
	if (json_is_object(val)) {
		printf("result\n");
		show_value("state", json_object_get(val, "state"));
		if (!json_is_null(json_object_get(val, "reason")))
			show_value("reason", json_object_get(val, "reason"));
		if (!json_is_null(json_object_get(val, "message")))
			show_value("message", json_object_get(val, "message"));
	}
	json_decref(result);
}

int cmd_show(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, F_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct job_view v = { 0 };
	struct queue *q = NULL;
	const char *arg;
	char id[JOB_ID_MAX];
	struct err e = { 0 };
	int flags, status;

	status = jobs_args("show", cmd_show_usage, argc, argv, opts, "h", true, &flags, &arg);
	if (status != -1)
		return status;
	if (jobs_open(cli, arg, &q, id, &e) || job_view_load(q, id, &v, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	status = EXIT_OK;
	if (flags & F_JSON) {
		json_t *o = job_view_json(&v);

		json_print(stdout, o, 1);
		json_decref(o);
	} else {
		show_text(&v);
	}
out:
	job_view_release(&v);
	queue_close(q);
	return status;
}

/* ^C stops `logs -f`. */
static struct cancel logs_stop;

static void logs_on_signal(int sig)
{
	cancel_set_flag(&logs_stop);
}

int cmd_logs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_signals sigs;
	struct queue *q = NULL;
	struct buf chunk = BUF_INIT;
	const char *arg;
	char id[JOB_ID_MAX], *path = NULL;
	struct err e = { 0 };
	off_t offset = 0;
	bool said = false;
	int flags, status, r;

	status = jobs_args("logs", cmd_logs_usage, argc, argv, opts, "fh", true, &flags, &arg);
	if (status != -1)
		return status;
	if (jobs_open(cli, arg, &q, id, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	status = EXIT_OK;
	path = job_view_log_path(config_get(cli->cfg, "state_dir"), id);
	cancel_init(&logs_stop);
	cli_catch_signals(logs_on_signal, &sigs);
	for (;;) {
		struct queue_job j;
		bool ended;

		if (q->ops->get(q, id, &j, &e)) {
			status = cli_fail(&e);
			break;
		}
		ended = job_state_terminal(j.state);
		buf_reset(&chunk);
		r = job_view_log_read(path, &offset, &chunk, &e);
		if (r == ERR_NOTFOUND && !said) {
			fprintf(stderr, "ferry: job %s has no trainer log %s(%s; it would be %s)\n", id,
				ended ? "" : "yet ", job_state_name(j.state), path);
			said = true;
		} else if (r && r != ERR_NOTFOUND) {
			queue_job_release(&j);
			status = cli_fail(&e);
			break;
		}
		fwrite(chunk.data, 1, chunk.len, stdout);
		fflush(stdout);
		queue_job_release(&j);
		/* One more read after the end: what the last tick wrote. */
		if (!(flags & F_FOLLOW) || (ended && !chunk.len))
			break;
		if (!chunk.len && clock_sleep_ms(500, &logs_stop)) {
			status = 128 + SIGINT;
			break;
		}
	}
	cli_restore_signals(&sigs);
	cancel_release(&logs_stop);
out:
	buf_release(&chunk);
	free(path);
	queue_close(q);
	return status;
}

int cmd_attach(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, F_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct queue *q = NULL;
	const char *arg;
	char id[JOB_ID_MAX];
	struct err e = { 0 };
	int flags, status;

	status = jobs_args("attach", cmd_attach_usage, argc, argv, opts, "h", true, &flags, &arg);
	if (status != -1)
		return status;
	if (jobs_open(cli, arg, &q, id, &e))
		status = cli_fail(&e);
	else
		status = cli_job_follow(cli, q, id, flags & F_JSON);
	queue_close(q);
	return status;
}

/* cancel and retry: one queue call on the job. */
static int jobs_act(struct cli *cli, int argc, char **argv, const char *name, const char *usage,
		    bool cancel)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct queue *q = NULL;
	struct queue_job j = { 0 };
	const char *arg;
	char id[JOB_ID_MAX];
	struct err e = { 0 };
	int flags, status, r;

	status = jobs_args(name, usage, argc, argv, opts, "h", true, &flags, &arg);
	if (status != -1)
		return status;
	status = EXIT_OK;
	r = jobs_open(cli, arg, &q, id, &e);
	if (!r)
		r = cancel ? q->ops->request_cancel(q, id, &e) : q->ops->retry(q, id, &e);
	if (!r)
		r = q->ops->get(q, id, &j, &e);
	if (r) {
		status = cli_fail(&e);
	} else if (cancel && j.state == JOB_CANCELLED) {
		printf("job %s CANCELLED\n", id);
	} else if (cancel) {
		printf("job %s: cancel asked for; its worker releases it, then it ends "
		       "CANCELLED (%s now)\n", id, job_state_name(j.state));
	} else {
		printf("job %s queued again (attempt %d)\n", id, j.attempt);
	}
	queue_job_release(&j);
	queue_close(q);
	return status;
}

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	return jobs_act(cli, argc, argv, "cancel", cmd_cancel_usage, true);
}

int cmd_retry(struct cli *cli, int argc, char **argv)
{
	return jobs_act(cli, argc, argv, "retry", cmd_retry_usage, false);
}
