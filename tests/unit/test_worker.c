/* Unit tests for the worker (src/jobs/worker.c) on a real SQLite queue with
 * a step table of the tests' own: jobs run at most `parallel` at once and
 * all finish with --once; a step that blocks longer than its lease keeps
 * its job (the worker renews it); a cancel asked from another connection
 * reaches a step that never calls job_keep; a drain stops every job where
 * it is, and a second worker finishes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/worker.h"
#include "testutil.h"

static const char *const ids[] = { "20261207-061500-0000000a", "20261207-061500-0000000b",
				   "20261207-061500-0000000c" };

struct fx {
	char *dir;
	char *path;
	struct queue *q;
	struct cancel drain;
	long long train_ms;        /* TRAINING sleeps this long on its token */
	atomic_int in_training, most_in_training;
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct err e = { 0 };

	f->dir = tu_mkdtemp("worker");
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

static void submit(struct fx *f, size_t n)
{
	struct err e = { 0 };
	json_t *spec = json_pack("{s:s, s:s}", "dataset", "/d", "provider", "local");

	for (size_t i = 0; i < n; i++)
		if (f->q->ops->submit(f->q, ids[i], spec, &e))
			fail_msg("submit: %s", e.msg);
	json_decref(spec);
}

/* TRAINING sleeps on the job's token alone (it never calls job_keep), so
 * only the worker can stop it early or keep its lease. */
static int train_step(struct job_ctx *c, struct step_result *res, struct err *e)
{
	struct fx *f = c->arg;
	int now = atomic_fetch_add(&f->in_training, 1) + 1;
	int most = atomic_load(&f->most_in_training);
	int r;

	while (now > most && !atomic_compare_exchange_weak(&f->most_in_training, &most, now))
		;
	r = clock_sleep_ms(f->train_ms, c->cancel);
	atomic_fetch_sub(&f->in_training, 1);
	return r ? err_set(e, r, "training stopped") : 0;
}

static int run_worker(struct fx *f, int parallel, int lease_s, bool once, struct err *e)
{
	struct job_steps t = { .arg = f };
	struct worker_opts o = { .queue = f->path, .steps = &t, .parallel = parallel,
				 .once = once, .drain = &f->drain, .owner = "test-worker",
				 .lease_s = lease_s, .poll_ms = 50 };

	t.fn[JOB_TRAINING] = train_step;
	return worker_run(&o, e);
}

static enum job_state state_of(struct fx *f, size_t i, char owner[64])
{
	struct queue_job j;
	struct err e = { 0 };
	enum job_state s;

	if (f->q->ops->get(f->q, ids[i], &j, &e))
		fail_msg("get: %s", e.msg);
	s = j.state;
	if (owner)
		memcpy(owner, j.lease_owner, 64);
	queue_job_release(&j);
	return s;
}

static void test_parallel_once(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };

	f->train_ms = 300;
	submit(f, 3);
	assert_int_equal(run_worker(f, 2, 60, true, &e), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(state_of(f, i, NULL), JOB_SUCCEEDED);
	assert_int_equal(atomic_load(&f->most_in_training), 2);
}

static void test_lease_kept(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };

	/* 2.5 s in one step on a 1 s lease: the worker's renewals keep it. */
	f->train_ms = 2500;
	submit(f, 1);
	assert_int_equal(run_worker(f, 1, 1, true, &e), 0);
	assert_int_equal(state_of(f, 0, NULL), JOB_SUCCEEDED);
}

struct later {
	struct fx *f;
	bool drain;
};

static void *act_later(void *arg)
{
	struct later *l = arg;
	struct queue *q;
	struct err e = { 0 };

	clock_sleep_ms(500, NULL);
	if (l->drain) {
		cancel_set(&l->f->drain);
		return NULL;
	}
	assert_int_equal(queue_open(&q, l->f->path, &e), 0);
	assert_int_equal(q->ops->request_cancel(q, ids[0], &e), 0);
	queue_close(q);
	return NULL;
}

static void test_cancel_reaches_step(void **state)
{
	struct fx *f = *state;
	struct later l = { f, false };
	struct err e = { 0 };
	pthread_t t;
	long long t0 = clock_mono_ms();

	f->train_ms = 60000;
	submit(f, 1);
	assert_int_equal(pthread_create(&t, NULL, act_later, &l), 0);
	assert_int_equal(run_worker(f, 1, 60, true, &e), 0);
	pthread_join(t, NULL);
	assert_true(clock_mono_ms() - t0 < 10000);
	assert_int_equal(state_of(f, 0, NULL), JOB_CANCELLED);
}

static void test_drain_then_resume(void **state)
{
	struct fx *f = *state;
	struct later l = { f, true };
	struct err e = { 0 };
	char owner[64];
	pthread_t t;
	long long t0 = clock_mono_ms();

	f->train_ms = 60000;
	submit(f, 2);
	assert_int_equal(pthread_create(&t, NULL, act_later, &l), 0);
	assert_int_equal(run_worker(f, 2, 60, false, &e), 0);
	pthread_join(t, NULL);
	assert_true(clock_mono_ms() - t0 < 10000);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(state_of(f, i, owner), JOB_TRAINING);
		assert_string_equal(owner, "");
	}
	/* The next worker takes both up where they stopped. */
	cancel_reset(&f->drain);
	f->train_ms = 10;
	assert_int_equal(run_worker(f, 2, 60, true, &e), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(state_of(f, i, NULL), JOB_SUCCEEDED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parallel_once, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_kept, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_reaches_step, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drain_then_resume, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
