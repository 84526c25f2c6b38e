/* Unit tests for src/jobs/view.c: the JSON shapes `ferry show` and the API
 * print, finding a job by a prefix of its id, the lines of the live view,
 * reading the local trainer log and the worker's lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/view.h"
#include "testutil.h"

#define JA "20261207-061500-0000000a"
#define JB "20261207-061500-0000000b"
#define JC "20261207-061501-0000000c"

struct fx {
	char *dir;
	struct queue *q;
};

static void submit(struct queue *q, const char *id)
{
	json_t *spec = json_pack("{s:s, s:s, s:s}", "dataset", "/data/cats", "recipe",
				 "flux-dev-lora", "name", "cats");
	struct err e = { 0 };

	if (q->ops->submit(q, id, spec, &e))
		fail_msg("submit %s: %s", id, e.msg);
	json_decref(spec);
}

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char *path;
	struct err e = { 0 };

	f->dir = tu_mkdtemp("view");
	path = fsx_join(f->dir, "queue.db");
	if (queue_open(&f->q, path, &e)) {
		fprintf(stderr, "queue_open: %s\n", e.msg);
		free(path);
		return -1;
	}
	free(path);
	submit(f->q, JA);
	submit(f->q, JB);
	submit(f->q, JC);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	queue_close(f->q);
	fsx_remove_tree(f->dir, NULL);
	free(f->dir);
	free(f);
	return 0;
}

static void test_resolve(void **state)
{
	struct fx *f = *state;
	char id[JOB_ID_MAX];
	struct err e = { 0 };

	assert_int_equal(job_view_resolve(f->q, JA, id, &e), 0);
	assert_string_equal(id, JA);
	assert_int_equal(job_view_resolve(f->q, "20261207-061501", id, &e), 0);
	assert_string_equal(id, JC);
	assert_int_equal(job_view_resolve(f->q, "20261207-061500-0000000b", id, &e), 0);
	assert_string_equal(id, JB);

	assert_int_equal(job_view_resolve(f->q, "20261207-0615", id, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, JA));
	assert_non_null(strstr(e.msg, JB));
	assert_non_null(strstr(e.msg, JC));
	assert_non_null(strstr(e.msg, "3 jobs"));

	assert_int_equal(job_view_resolve(f->q, "2027", id, &e), ERR_NOTFOUND);
	assert_int_equal(job_view_resolve(f->q, "20261207-061500-0000000f", id, &e), ERR_NOTFOUND);
	assert_int_equal(job_view_resolve(f->q, "", id, &e), ERR_USAGE);
	assert_int_equal(job_view_resolve(f->q, "../etc", id, &e), ERR_USAGE);
	assert_int_equal(job_view_resolve(f->q, "2026\x1b[2J", id, &e), ERR_USAGE);
	assert_null(strchr(e.msg, '\x1b'));
}

static void test_show_json(void **state)
{
	struct fx *f = *state;
	struct job_lease l;
	struct queue_instance in = { 0 };
	struct queue_artifact a = { 0 };
	struct job_view v;
	struct err e = { 0 };
	json_t *o, *x;

	assert_int_equal(f->q->ops->claim(f->q, JA, "test:1", 60, &l, &e), 0);
	assert_int_equal(f->q->ops->set_state(f->q, &l, JOB_PREPARING, NULL, &e), 0);
	x = json_pack("{s:i, s:i, s:f, s:f, s:f}", "step", 10, "total", 100, "loss", 0.5,
		      "rate_s_per_it", 2.0, "eta_s", 180.0);
	assert_int_equal(f->q->ops->event_append(f->q, &l, JA, "progress", x, NULL, &e), 0);
	json_decref(x);
	snprintf(in.provider, sizeof(in.provider), "vast");
	in.instance_id = 123;
	in.dph = 0.5;
	in.created_at = 1000;
	assert_int_equal(f->q->ops->instance_put(f->q, &l, &in, &e), 0);
	a.path = (char *)"out/cats.safetensors";
	a.size = 3;
	snprintf(a.sha256, sizeof(a.sha256), "%s",
		 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(f->q->ops->artifact_put(f->q, &l, &a, &e), 0);

	assert_int_equal(job_view_load(f->q, JA, &v, &e), 0);
	o = job_view_json(&v);
	assert_string_equal(json_string_value(json_object_get(o, "id")), JA);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "PREPARING");
	assert_string_equal(json_string_value(json_object_get(o, "name")), "cats");
	assert_true(json_is_null(json_object_get(o, "reason")));
	assert_true(json_is_null(json_object_get(o, "result")));
	assert_string_equal(json_string_value(json_object_get(o, "worker")), "test:1");
	assert_int_equal(json_integer_value(json_object_get(o, "events")), 3);
	assert_int_equal(json_array_size(json_object_get(o, "timeline")), 2);
	x = json_array_get(json_object_get(o, "timeline"), 1);
	assert_string_equal(json_string_value(json_object_get(x, "from")), "QUEUED");
	assert_string_equal(json_string_value(json_object_get(x, "to")), "PREPARING");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "progress"),
							     "step")), 10);
	x = json_array_get(json_object_get(o, "instances"), 0);
	assert_int_equal(json_integer_value(json_object_get(x, "id")), 123);
	assert_string_equal(json_string_value(json_object_get(x, "provider")), "vast");
	assert_int_equal(json_integer_value(json_object_get(x, "created_at")), 1000);
	assert_true(json_is_null(json_object_get(x, "destroyed_at")));
	x = json_array_get(json_object_get(o, "artifacts"), 0);
	assert_string_equal(json_string_value(json_object_get(x, "path")), "out/cats.safetensors");
	assert_int_equal(strlen(json_string_value(json_object_get(x, "sha256"))), 64);
	assert_true(json_is_null(json_object_get(x, "url")));
	assert_true(json_is_number(json_object_get(o, "cost_usd")));
	json_decref(o);
	job_view_release(&v);

	/* Ended: the result. */
	assert_int_equal(f->q->ops->request_cancel(f->q, JB, &e), 0);
	assert_int_equal(job_view_load(f->q, JB, &v, &e), 0);
	o = job_view_json(&v);
	x = json_object_get(o, "result");
	assert_string_equal(json_string_value(json_object_get(x, "state")), "CANCELLED");
	assert_string_equal(json_string_value(json_object_get(x, "reason")), "cancelled");
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "cancelled");
	json_decref(o);
	o = job_view_summary_json(&v.job);
	assert_null(json_object_get(o, "instances"));
	assert_string_equal(json_string_value(json_object_get(o, "id")), JB);
	assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 1);
	json_decref(o);
	job_view_release(&v);

	assert_int_equal(job_view_load(f->q, "20261207-061500-0000000f", &v, &e), ERR_NOTFOUND);
}

static void test_lines(void **state)
{
	struct job_progress p;
	struct queue_event ev = { .at = 1796623200000LL, .kind = "state" };
	struct buf b = BUF_INIT;
	char d[32];
	json_t *data;

	job_view_duration(45, d, sizeof(d));
	assert_string_equal(d, "45s");
	job_view_duration(725, d, sizeof(d));
	assert_string_equal(d, "12m05s");
	job_view_duration(3 * 3600 + 240, d, sizeof(d));
	assert_string_equal(d, "3h04m");
	job_view_duration(2 * 86400 + 3 * 3600, d, sizeof(d));
	assert_string_equal(d, "2d03h");
	job_view_duration(-1, d, sizeof(d));
	assert_string_equal(d, "-");
	job_view_duration(NAN, d, sizeof(d));
	assert_string_equal(d, "-");

	data = json_pack("{s:i, s:i, s:f, s:f, s:n, s:s}", "step", 50, "total", 200, "loss", 0.25,
			 "rate_s_per_it", 0.5, "eta_s", "phase", "training");
	job_progress_read(data, &p);
	assert_int_equal(p.step, 50);
	assert_int_equal(p.total, 200);
	assert_true(isnan(p.eta_s));
	job_view_status(JOB_TRAINING, &p, 1.5, 4, 8, &b);
	assert_string_equal(b.data, "TRAINING   [##......] 50/200  2.00 it/s  loss 0.25  $1.50 of ~$4.00");
	buf_reset(&b);
	job_view_status(JOB_QUEUED, NULL, 0, 0, 8, &b);
	assert_string_equal(b.data, "QUEUED      $0.00");
	buf_reset(&b);

	snprintf(ev.job, sizeof(ev.job), JA);
	ev.data = json_pack("{s:s, s:s, s:s}", "from", "PREPARING", "to", "RELEASING", "reason",
			    "not_built");
	job_view_event_line(&ev, &b);
	assert_string_equal(b.data, "2026-12-07T06:00:00Z " JA " state PREPARING -> RELEASING "
			    "(not_built)");
	json_decref(ev.data);
	buf_reset(&b);

	snprintf(ev.kind, sizeof(ev.kind), "progress");
	ev.data = data;
	job_view_event_line(&ev, &b);
	assert_string_equal(b.data, "2026-12-07T06:00:00Z " JA " progress 50/200  2.00 it/s  "
			    "loss 0.25");
	buf_reset(&b);

	snprintf(ev.kind, sizeof(ev.kind), "failure");
	ev.data = json_pack("{s:s, s:s, s:s}", "state", "TRAINING", "reason", "oom", "message",
			    "out of memory\x1b[2J");
	job_view_event_line(&ev, &b);
	assert_non_null(strstr(b.data, " failure TRAINING oom: out of memory\\x1b[2J"));
	json_decref(ev.data);
	buf_reset(&b);

	snprintf(ev.kind, sizeof(ev.kind), "cancel");
	ev.data = NULL;
	job_view_event_line(&ev, &b);
	assert_string_equal(b.data, "2026-12-07T06:00:00Z " JA " cancel");
	json_decref(data);
	buf_release(&b);
}

static void test_log_read(void **state)
{
	char *dir = tu_mkdtemp("viewlog"), *path = job_view_log_path(dir, JA), *want;
	struct buf b = BUF_INIT;
	struct err e = { 0 };
	off_t off = 0;

	want = xasprintf("%s/jobs/%s/train.log", dir, JA);
	assert_string_equal(path, want);
	assert_int_equal(job_view_log_read(path, &off, &b, &e), ERR_NOTFOUND);
	tu_write_text(dir, "jobs/" JA "/train.log", "one\ntwo\n");
	assert_int_equal(job_view_log_read(path, &off, &b, &e), 0);
	assert_string_equal(b.data, "one\ntwo\n");
	assert_int_equal(off, 8);
	buf_reset(&b);
	assert_int_equal(job_view_log_read(path, &off, &b, &e), 0);
	assert_int_equal(b.len, 0);
	tu_write_text(dir, "jobs/" JA "/train.log", "one\ntwo\nthree\n");
	assert_int_equal(job_view_log_read(path, &off, &b, &e), 0);
	assert_string_equal(b.data, "three\n");
	buf_reset(&b);
	/* Written again, shorter: from the start. */
	tu_write_text(dir, "jobs/" JA "/train.log", "new\n");
	assert_int_equal(job_view_log_read(path, &off, &b, &e), 0);
	assert_string_equal(b.data, "new\n");
	buf_release(&b);
	fsx_remove_tree(dir, NULL);
	free(want);
	free(path);
	free(dir);
}

static void test_worker_lock(void **state)
{
	char *dir = tu_mkdtemp("viewlock");
	struct err e = { 0 };
	long holder = -1;
	int fd = -1, fd2 = -1;
	char pid[32];

	assert_false(job_worker_running(dir, &holder));
	assert_int_equal(holder, 0);
	assert_int_equal(job_worker_lock(dir, &fd, &holder, &e), 0);
	assert_true(fd >= 0);
	assert_true(job_worker_running(dir, &holder));
	assert_int_equal(holder, (long)getpid());
	assert_int_equal(job_worker_lock(dir, &fd2, &holder, &e), ERR_EXISTS);
	assert_int_equal(fd2, -1);
	assert_int_equal(holder, (long)getpid());
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	assert_non_null(strstr(e.msg, pid));
	close(fd);
	assert_false(job_worker_running(dir, &holder));
	assert_int_equal(job_worker_lock(dir, &fd, &holder, &e), 0);
	close(fd);
	fsx_remove_tree(dir, NULL);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolve, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_show_json, fx_setup, fx_teardown),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_log_read),
		cmocka_unit_test(test_worker_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
