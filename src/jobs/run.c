#include "jobs/run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "jobs/budget.h"
#include "remote/transport.h"
#include "vast/client.h"

/* FERRY_TEST_CRASH_AT=STATE:before|after: die here as a kill -9 would, so
 * that the crash tests can stop ferry at every step boundary. */
static void run_crash_at(enum job_state s, const char *when)
{
	const char *at = getenv("FERRY_TEST_CRASH_AT");
	char here[48];

	if (!at || !*at)
		return;
	snprintf(here, sizeof(here), "%s:%s", job_state_name(s), when);
	if (strcasecmp(at, here))
		return;
	log_warn("FERRY_TEST_CRASH_AT=%s: ferry kills itself here", at);
	raise(SIGKILL);
}

int job_event(struct job_ctx *c, const char *kind, json_t *data, struct err *e)
{
	int r = c->q->ops->event_append(c->q, c->lease, c->lease->job, kind, data, NULL, e);

	json_decref(data);
	return r;
}

int job_keep(struct job_ctx *c, struct err *e)
{
	struct queue_job j = { 0 };
	long long now = clock_mono_ms();
	bool cancelled;
	int r;

	if (cancel_is_set(c->cancel))
		return err_set(e, ERR_CANCELLED, "job %s: stopping", c->lease->job);
	if (now - c->renewed_ms >= (long long)c->lease_s * 1000 / 3) {
		r = c->q->ops->renew(c->q, c->lease, c->lease_s, e);
		if (r)
			return r;
		c->renewed_ms = now;
	}
	r = c->q->ops->get(c->q, c->lease->job, &j, e);
	if (r)
		return r;
	/* RELEASING is how a cancel is carried out: it is not cut short. */
	cancelled = j.cancel_requested && j.state != JOB_RELEASING;
	queue_job_release(&j);
	if (!cancelled)
		return 0;
	cancel_set(c->cancel);
	return err_set(e, ERR_CANCELLED, "job %s was cancelled", c->lease->job);
}

static void run_ctx_clear(struct job_ctx *c)
{
	queue_job_release(&c->job);
	job_spec_release(&c->spec);
	json_decref(c->data);
	c->data = NULL;
}

/* The job as the queue has it now. A spec this ferry cannot read (written
 * by another version) is left unread: the loop fails the job for it. */
static int run_load(struct job_ctx *c, struct err *spec_e, struct err *e)
{
	int r;

	run_ctx_clear(c);
	r = c->q->ops->get(c->q, c->lease->job, &c->job, e);
	if (r)
		return r;
	c->data = json_is_object(c->job.data) ? json_deep_copy(c->job.data) : json_object();
	err_clear(spec_e);
	if (job_spec_from_json(c->job.spec, &c->spec, spec_e))
		err_prefix(spec_e, "the job's spec");
	return 0;
}

/* Every instance of the job, for its cost and for what still lives. */
static int run_instances(struct job_ctx *c, struct queue_instance **v, size_t *n, struct err *e)
{
	return c->q->ops->instances(c->q, c->lease->job, v, n, e);
}

int job_save(struct job_ctx *c, struct err *e)
{
	struct queue_instance *v = NULL;
	size_t n = 0;
	double cost;
	int r = run_instances(c, &v, &n, e);

	if (r)
		return r;
	cost = job_cost_usd(v, n, clock_wall_s());
	free(v);
	return c->q->ops->set_data(c->q, c->lease, c->data, cost, e);
}

/* How the job will end, chosen as it leaves for RELEASING: kept in its
 * data so that a restart in RELEASING ends it the same way. */
static json_t *run_ending(struct job_ctx *c)
{
	json_t *end = json_object_get(c->data, "ending");

	return json_is_object(end) ? end : NULL;
}

/* Wind the job down: it will end in `end` for `reason`, after RELEASING
 * (or after COLLECTING and PUBLISHING when `via` is COLLECTING, so that
 * what it has is kept). A job that already has an ending keeps it. */
static int run_wind_down(struct job_ctx *c, enum job_state end, const char *reason,
			 const char *message, enum job_state via, struct err *e)
{
	enum job_state from = c->job.state;
	int r;

	if (!run_ending(c))
		json_object_set_new(c->data, "ending",
				    json_pack("{s:s, s:s, s:s}", "state", job_state_name(end),
					      "reason", reason, "message", message ? message : ""));
	r = job_save(c, e);
	if (!r && from == JOB_QUEUED && end == JOB_CANCELLED)
		return c->q->ops->set_state(c->q, c->lease, JOB_CANCELLED, reason, e);
	if (!r)
		r = c->q->ops->set_state(c->q, c->lease, via, reason, e);
	return r;
}

/* Over a limit: stop, keep what the job has and fail it for `budget`. */
static int run_check_limits(struct job_ctx *c, bool *stopped, struct err *e)
{
	struct queue_instance *v = NULL;
	size_t n = 0;
	struct job_budget b = { .max_usd = c->spec.max_usd, .max_hours = c->spec.max_hours };
	json_t *started = json_object_get(c->data, "started_at");
	char why[256];
	long long now = clock_wall_s();
	int r;

	*stopped = false;
	if (run_ending(c) || (!b.max_usd && !b.max_hours))
		return 0;
	r = run_instances(c, &v, &n, e);
	if (r)
		return r;
	b.spent_usd = job_cost_usd(v, n, now);
	b.dph = job_cost_rate(v, n);
	free(v);
	b.elapsed_s = json_is_integer(started) ? (double)(now - json_integer_value(started)) : 0;
	if (!job_budget_exceeded(&b, why, sizeof(why)))
		return 0;
	*stopped = true;
	log_warn("job %s: %s", c->lease->job, why);
	r = job_event(c, "warning", json_pack("{s:s, s:s}", "code", "budget", "message", why), e);
	if (!r)
		r = run_wind_down(c, JOB_FAILED, "budget", why,
				  c->job.state == JOB_TRAINING ? JOB_COLLECTING : JOB_RELEASING, e);
	return r;
}

/* Invariant 3: a job is never terminal while an instance of it lives. */
static int run_all_released(struct job_ctx *c, struct err *e)
{
	struct queue_instance *v = NULL;
	size_t n = 0;
	int r = run_instances(c, &v, &n, e);

	for (size_t i = 0; !r && i < n; i++)
		if (!v[i].destroyed_at)
			r = err_set(e, ERR_FAIL, "instance %s (id %lld) is not recorded destroyed",
				    v[i].label, v[i].instance_id);
	free(v);
	return r;
}

/* The state a successful step leads to, and its reason. */
static enum job_state run_next(struct job_ctx *c, const struct step_result *res,
			       const char **reason)
{
	json_t *end = run_ending(c);
	enum job_state to;

	*reason = NULL;
	if (c->job.state != JOB_RELEASING)
		return res->next != JOB_QUEUED ? res->next : job_state_next(c->job.state);
	if (end && !job_state_parse(json_string_value(json_object_get(end, "state")), &to)) {
		*reason = json_string_value(json_object_get(end, "reason"));
		return to;
	}
	return JOB_SUCCEEDED;
}

/* One step failed: fail the job for it, through RELEASING. A failure of
 * RELEASING itself is retried, never given up (a job is never terminal
 * while its instance may bill). */
static int run_step_failed(struct job_ctx *c, const struct step_result *res,
			   const struct err *se, struct backoff *again, struct err *e)
{
	const char *reason = res->reason[0] ? res->reason : "error";
	enum job_state s = c->job.state;
	int r;

	log_error("job %s: %s: %s", c->lease->job, job_state_name(s), se->msg);
	r = job_event(c, "failure",
		      json_pack("{s:s, s:s, s:s}", "state", job_state_name(s), "reason", reason,
				"message", se->msg),
		      e);
	if (r)
		return r;
	if (s != JOB_RELEASING)
		return run_wind_down(c, JOB_FAILED, reason, se->msg, JOB_RELEASING, e);
	log_warn("job %s: the release will be tried again in %lld ms", c->lease->job,
		 again->next_ms ? again->next_ms : again->first_ms);
	return backoff_sleep(again, c->cancel);
}

static int run_one_step(const struct job_run_opts *o, struct job_ctx *c, struct backoff *again,
			struct err *e)
{
	enum job_state s = c->job.state, to;
	job_step_fn fn = o->steps->fn[s];
	struct step_result res = { .next = JOB_QUEUED };
	struct err se = { 0 };
	const char *reason;
	int r, rs;

	run_crash_at(s, "before");
	r = fn ? fn(c, &res, &se) : 0;
	if (r == ERR_CHANGED)
		return err_set(e, ERR_CHANGED, "%s", se.msg);
	rs = job_save(c, e);
	if (rs)
		return rs;
	if (r == ERR_CANCELLED)
		return err_set(e, ERR_CANCELLED, "%s", se.msg);
	run_crash_at(s, "after");
	if (!r && s == JOB_RELEASING)
		r = run_all_released(c, &se);
	if (r)
		return run_step_failed(c, &res, &se, again, e);
	backoff_reset(again);
	to = run_next(c, &res, &reason);
	if (s == JOB_QUEUED && !json_object_get(c->data, "started_at")) {
		json_object_set_new(c->data, "started_at", json_integer(clock_wall_s()));
		rs = job_save(c, e);
		if (rs)
			return rs;
	}
	r = c->q->ops->set_state(c->q, c->lease, to, reason, &se);
	if (r == ERR_USAGE) /* a step asked for a move the table forbids: a bug */
		return run_wind_down(c, JOB_FAILED, "internal", se.msg, JOB_RELEASING, e);
	if (r)
		return err_set(e, r, "%s", se.msg);
	return 0;
}

int job_run(const struct job_run_opts *o, struct job_lease *l, struct err *e)
{
	struct cancel own, *stop = o->stop ? o->stop : &own;
	struct job_ctx c = { .q = o->q, .lease = l, .cfg = o->cfg, .cancel = stop,
			     .lease_s = o->lease_s > 0 ? o->lease_s : 60,
			     .renewed_ms = clock_mono_ms(), .arg = o->steps->arg };
	struct backoff again = { .first_ms = o->release_first_ms ? o->release_first_ms : 1000,
				 .max_ms = o->release_max_ms ? o->release_max_ms : 60000,
				 .jitter = true };
	struct err le = { 0 };
	int r;

	if (!o->stop)
		cancel_init_child(&own, o->drain);
	for (;;) {
		struct err spec_e = { 0 };
		bool stopped;

		r = run_load(&c, &spec_e, e);
		if (r || job_state_terminal(c.job.state))
			break;
		if (cancel_is_set(o->drain)) {
			r = err_set(e, ERR_CANCELLED, "job %s: the worker stops; the job stays %s",
				    l->job, job_state_name(c.job.state));
			break;
		}
		/* The job's own cancel ended a step; RELEASING must wait again. */
		if (cancel_is_set(stop))
			cancel_reset(stop);
		if (spec_e.code && !run_ending(&c)) {
			r = run_wind_down(&c, JOB_FAILED, "spec", spec_e.msg, JOB_RELEASING, e);
		} else if (c.job.cancel_requested && c.job.state != JOB_RELEASING &&
			   !run_ending(&c)) {
			r = run_wind_down(&c, JOB_CANCELLED, "cancelled", "cancelled on request",
					  JOB_RELEASING, e);
		} else {
			r = job_state_holds_instance(c.job.state) && c.job.state != JOB_RELEASING
				    ? run_check_limits(&c, &stopped, e)
				    : (stopped = false, 0);
			if (!r && !stopped)
				r = run_one_step(o, &c, &again, e);
		}
		if (r == ERR_CANCELLED && !cancel_is_set(o->drain))
			r = 0; /* the job's own cancel: the next turn winds it down */
		if (r)
			break;
	}
	if (r != ERR_CHANGED && o->q->ops->release(o->q, l, &le))
		log_warn("job %s: releasing the lease: %s", l->job, le.msg);
	if (r == ERR_CHANGED)
		log_warn("job %s: the lease passed to another worker; this one writes nothing more",
			 l->job);
	run_ctx_clear(&c);
	remote_close(c.rm);
	vast_client_free(c.vc);
	free(c.dir);
	if (!o->stop)
		cancel_release(&own);
	return r;
}
