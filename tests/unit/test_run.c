/* Unit tests for one job's step loop (src/jobs/run.c) on a real SQLite
 * queue, with a step table of the tests' own: the plain path, a failing
 * step, a release that fails before it holds, a cancel from another
 * connection, a worker's drain, a limit passed, a lease lost, a move the
 * state table forbids, an unreadable spec, and a kill -9 at a step
 * boundary (FERRY_TEST_CRASH_AT) followed by a second worker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/run.h"
#include "testutil.h"

#define JA "20261207-061500-0000000a"

struct fx {
	char *dir;
	char *path;
	struct queue *q;
	struct cancel drain;
	/* What the steps do. */
	enum job_state fail_in;       /* this state's step fails (JOB_QUEUED: none) */
	int release_fails;            /* RELEASING fails this many times first */
	enum job_state next_from_upload; /* UPLOADING asks for this (JOB_QUEUED: plain) */
	bool wait_in_training;        /* TRAINING waits on its token, calling job_keep */
	bool cancel_seen_in_release;  /* RELEASING found its token set */
	int calls[JOB_STATE_COUNT];
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct err e = { 0 };

	f->dir = tu_mkdtemp("run");
	f->path = fsx_join(f->dir, "queue.db");
	if (queue_open(&f->q, f->path, &e)) {
		fprintf(stderr, "queue_open: %s\n", e.msg);
		return -1;
	}
	cancel_init(&f->drain);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	queue_close(f->q);
	cancel_release(&f->drain);
	fsx_remove_tree(f->dir, NULL);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

static void submit_spec(struct queue *q, const char *spec_text)
{
	struct err e = { 0 };
	json_error_t je;
	json_t *spec = json_loads(spec_text, 0, &je);

	assert_non_null(spec);
	if (q->ops->submit(q, JA, spec, &e))
		fail_msg("submit: %s", e.msg);
	json_decref(spec);
}

static void submit(struct queue *q, const char *limits)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "{\"dataset\": \"/d\", \"provider\": \"local\"%s%s}", limits ? ", " : "",
		 limits ? limits : "");
	submit_spec(q, text);
}

static struct job_lease claim(struct queue *q, int lease_s)
{
	struct job_lease l;
	struct err e = { 0 };

	if (q->ops->claim(q, JA, "test-worker", lease_s, &l, &e))
		fail_msg("claim: %s", e.msg);
	return l;
}

/* The one step function of the table: counts its calls in the job's data
 * (so a second process sees the first's) and does what the fixture says. */
static int fake_step(struct job_ctx *c, struct step_result *res, struct err *e)
{
	struct fx *f = c->arg;
	enum job_state s = c->job.state;
	const char *name = job_state_name(s);
	json_t *calls = json_object_get(c->data, "calls");
	int r;

	f->calls[s]++;
	if (!calls)
		json_object_set_new(c->data, "calls", calls = json_object());
	json_object_set_new(calls, name,
			    json_integer(json_integer_value(json_object_get(calls, name)) + 1));
	if (s == f->fail_in) {
		snprintf(res->reason, sizeof(res->reason), "oom");
		return err_set(e, ERR_FAIL, "%s went wrong", name);
	}
	if (s == JOB_RENTING) {
		struct queue_instance in = { .instance_id = 7, .dph = 3600.0,
					     .created_at = clock_wall_s() - 10 };

		snprintf(in.provider, sizeof(in.provider), "vast");
		return c->q->ops->instance_put(c->q, c->lease, &in, e);
	}
	if (s == JOB_UPLOADING && f->next_from_upload != JOB_QUEUED)
		res->next = f->next_from_upload;
	if (s == JOB_TRAINING && f->wait_in_training) {
		while (!(r = job_keep(c, e)))
			if ((r = clock_sleep_ms(50, c->cancel)))
				break;
		return r == ERR_CANCELLED ? err_set(e, r, "training stopped") : r;
	}
	if (s == JOB_RELEASING) {
		struct queue_instance *v = NULL;
		size_t n = 0;

		f->cancel_seen_in_release |= cancel_is_set(c->cancel);
		if (f->release_fails-- > 0)
			return err_set(e, ERR_FAIL, "the destroy was refused");
		r = c->q->ops->instances(c->q, c->lease->job, &v, &n, e);
		for (size_t i = 0; !r && i < n; i++) {
			if (v[i].destroyed_at)
				continue;
			v[i].destroyed_at = clock_wall_s();
			r = c->q->ops->instance_put(c->q, c->lease, &v[i], e);
		}
		free(v);
		return r;
	}
	return 0;
}

static struct job_steps fake_steps(struct fx *f)
{
	struct job_steps t = { .arg = f };

	for (int s = JOB_PREPARING; s <= JOB_RECOVERING; s++)
		t.fn[s] = fake_step;
	return t;
}

static int run(struct fx *f, int lease_s, struct err *e)
{
	struct job_steps t = fake_steps(f);
	struct job_run_opts o = { .q = f->q, .steps = &t, .drain = &f->drain, .lease_s = lease_s,
				  .release_first_ms = 10, .release_max_ms = 20 };
	struct job_lease l = claim(f->q, lease_s);

	return job_run(&o, &l, e);
}

static struct queue_job get(struct fx *f)
{
	struct queue_job j;
	struct err e = { 0 };

	if (f->q->ops->get(f->q, JA, &j, &e))
		fail_msg("get: %s", e.msg);
	return j;
}

/* The job's states as its events tell them, "A>B>C". */
static void states_seen(struct fx *f, char *out, size_t n)
{
	struct queue_event *v = NULL;
	size_t nv = 0, len = 0;
	struct err e = { 0 };

	assert_int_equal(f->q->ops->events(f->q, JA, 0, 0, &v, &nv, &e), 0);
	out[0] = '\0';
	for (size_t i = 0; i < nv; i++) {
		if (strcmp(v[i].kind, "state"))
			continue;
		len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ">" : "",
					json_string_value(json_object_get(v[i].data, "to")));
	}
	queue_events_free(v, nv);
}

static void assert_released(struct fx *f)
{
	struct queue_instance *v = NULL;
	size_t n = 0;
	struct err e = { 0 };
	struct queue_job j = get(f);

	assert_string_equal(j.lease_owner, "");
	queue_job_release(&j);
	assert_int_equal(f->q->ops->instances(f->q, JA, &v, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		assert_true(v[i].destroyed_at > 0);
	free(v);
}

static void test_plain_path(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;
	char seen[512];

	submit(f->q, NULL);
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_SUCCEEDED);
	assert_string_equal(j.reason, "");
	/* Cost was saved from the instance's record: 10 s at $3600/h. */
	assert_true(j.cost_usd >= 9.0 && j.cost_usd < 60.0);
	assert_true(json_is_integer(json_object_get(j.data, "started_at")));
	queue_job_release(&j);
	states_seen(f, seen, sizeof(seen));
	assert_string_equal(seen, "QUEUED>PREPARING>RENTING>BOOTING>UPLOADING>TRAINING>COLLECTING>"
				  "PUBLISHING>RELEASING>SUCCEEDED");
	for (int s = JOB_PREPARING; s <= JOB_RELEASING; s++)
		assert_int_equal(f->calls[s], 1);
	assert_int_equal(f->calls[JOB_RECOVERING], 0);
	assert_released(f);
}

static void test_step_fails(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;
	char seen[512];

	f->fail_in = JOB_UPLOADING;
	f->release_fails = 2; /* and the release is refused twice, then holds */
	submit(f->q, NULL);
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_FAILED);
	assert_string_equal(j.reason, "oom");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j.data, "ending"), "message")),
			    "UPLOADING went wrong");
	queue_job_release(&j);
	states_seen(f, seen, sizeof(seen));
	assert_string_equal(seen, "QUEUED>PREPARING>RENTING>BOOTING>UPLOADING>RELEASING>FAILED");
	assert_int_equal(f->calls[JOB_TRAINING], 0);
	assert_int_equal(f->calls[JOB_RELEASING], 3);
	assert_released(f);
}

static void test_illegal_move(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;

	f->next_from_upload = JOB_SUCCEEDED;
	submit(f->q, NULL);
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_FAILED);
	assert_string_equal(j.reason, "internal");
	queue_job_release(&j);
	assert_released(f);
}

static void test_bad_spec(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;

	submit_spec(f->q, "{\"dataset\": \"/d\", \"recipe\": \"no-such-recipe\"}");
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_FAILED);
	assert_string_equal(j.reason, "spec");
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(j.data, "ending"), "message")),
			       "no-such-recipe"));
	queue_job_release(&j);
	assert_int_equal(f->calls[JOB_PREPARING], 0);
}

struct later {
	struct fx *f;
	bool drain;
};

/* From a connection of its own, as the CLI or the API would. */
static void *cancel_later(void *arg)
{
	struct later *l = arg;
	struct queue *q;
	struct err e = { 0 };

	clock_sleep_ms(300, NULL);
	if (l->drain) {
		cancel_set(&l->f->drain);
		return NULL;
	}
	assert_int_equal(queue_open(&q, l->f->path, &e), 0);
	assert_int_equal(q->ops->request_cancel(q, JA, &e), 0);
	queue_close(q);
	return NULL;
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct later l = { f, false };
	struct err e = { 0 };
	struct queue_job j;
	pthread_t t;
	char seen[512];

	f->wait_in_training = true;
	submit(f->q, NULL);
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &l), 0);
	assert_int_equal(run(f, 60, &e), 0);
	pthread_join(t, NULL);
	j = get(f);
	assert_int_equal(j.state, JOB_CANCELLED);
	assert_string_equal(j.reason, "cancelled");
	queue_job_release(&j);
	states_seen(f, seen, sizeof(seen));
	assert_string_equal(seen, "QUEUED>PREPARING>RENTING>BOOTING>UPLOADING>TRAINING>RELEASING>"
				  "CANCELLED");
	/* The release that carries the cancel out is not cut short by it. */
	assert_false(f->cancel_seen_in_release);
	assert_int_equal(f->calls[JOB_COLLECTING], 0);
	assert_released(f);
}

static void test_drain(void **state)
{
	struct fx *f = *state;
	struct later l = { f, true };
	struct err e = { 0 };
	struct queue_job j;
	struct queue_instance *v = NULL;
	size_t n = 0;
	pthread_t t;
	long long t0 = clock_mono_ms();

	f->wait_in_training = true;
	submit(f->q, NULL);
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &l), 0);
	assert_int_equal(run(f, 60, &e), ERR_CANCELLED);
	pthread_join(t, NULL);
	assert_true(clock_mono_ms() - t0 < 5000);
	/* The job stays where it was, its instance alive, its lease free. */
	j = get(f);
	assert_int_equal(j.state, JOB_TRAINING);
	assert_string_equal(j.lease_owner, "");
	queue_job_release(&j);
	assert_int_equal(f->calls[JOB_RELEASING], 0);
	assert_int_equal(f->q->ops->instances(f->q, JA, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].destroyed_at, 0);
	free(v);
}

static void test_budget(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;
	char seen[512];

	/* $3600/h for 10 s already: $10, over a limit of $5. */
	submit(f->q, "\"limits\": {\"max_usd\": 5}");
	f->wait_in_training = true; /* never reached: the limit stops it first */
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_FAILED);
	assert_string_equal(j.reason, "budget");
	queue_job_release(&j);
	states_seen(f, seen, sizeof(seen));
	assert_string_equal(seen, "QUEUED>PREPARING>RENTING>BOOTING>RELEASING>FAILED");
	assert_int_equal(f->calls[JOB_BOOTING], 0);
	assert_released(f);
}

static void test_lease_lost(void **state)
{
	struct fx *f = *state;
	struct queue *other;
	struct job_lease l2;
	struct err e = { 0 };
	struct queue_job j;

	/* PREPARING fails, and by the time it says so the lease has gone to
	 * another worker: nothing more is written by the first. */
	submit(f->q, NULL);
	f->fail_in = JOB_PREPARING;
	{
		struct job_steps t = fake_steps(f);
		struct job_run_opts o = { .q = f->q, .steps = &t, .lease_s = 1 };
		struct job_lease l = claim(f->q, 1);

		clock_sleep_ms(1500, NULL);
		assert_int_equal(queue_open(&other, f->path, &e), 0);
		assert_int_equal(other->ops->claim(other, JA, "other-worker", 60, &l2, &e), 0);
		assert_int_equal(job_run(&o, &l, &e), ERR_CHANGED);
	}
	j = get(f);
	assert_int_equal(j.state, JOB_QUEUED);
	assert_string_equal(j.lease_owner, "other-worker");
	queue_job_release(&j);
	queue_close(other);
}

/* Killed right after TRAINING's step, before the move was written: a new
 * worker runs TRAINING again (steps are idempotent) and finishes. */
static void test_crash_at(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct queue_job j;
	int status;
	pid_t pid;

	submit(f->q, NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct queue *q;

		setenv("FERRY_TEST_CRASH_AT", "training:after", 1);
		if (queue_open(&q, f->path, &e))
			_exit(3);
		f->q = q;
		run(f, 3, &e);
		_exit(4); /* not reached */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	j = get(f);
	assert_int_equal(j.state, JOB_TRAINING);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j.data, "calls"),
							    "TRAINING")),
			 1);
	queue_job_release(&j);
	clock_sleep_ms(3200, NULL); /* the dead worker's lease runs out */
	assert_int_equal(run(f, 60, &e), 0);
	j = get(f);
	assert_int_equal(j.state, JOB_SUCCEEDED);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j.data, "calls"),
							    "TRAINING")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j.data, "calls"),
							    "RENTING")),
			 1);
	queue_job_release(&j);
	assert_released(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain_path, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_step_fails, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_illegal_move, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_spec, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drain, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_budget, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_lost, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_at, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
