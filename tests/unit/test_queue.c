/* Unit tests for the job queue (src/jobs/queue*.c) on a real SQLite file:
 * every op and its documented errors, leases and fencing, durability across
 * a reopen, two connections racing for jobs, and schema migrations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "testutil.h"

#define JA "20261207-061500-0000000a"
#define JB "20261207-061500-0000000b"
#define JC "20261207-061500-0000000c"
#define JD "20261207-061500-0000000d"
#define JE "20261207-061500-0000000e"
#define SHA_A "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct fx {
	char *dir;
	char *path;  /* dir/state/queue.db: the folder does not exist yet */
	struct queue *q;
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct err e = { 0 };

	f->dir = tu_mkdtemp("queue");
	f->path = fsx_join(f->dir, "state/queue.db");
	if (queue_open(&f->q, f->path, &e)) {
		fprintf(stderr, "queue_open: %s\n", e.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	queue_close(f->q);
	fsx_remove_tree(f->dir, NULL);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	struct err e = { 0 };

	queue_close(f->q);
	f->q = NULL;
	if (queue_open(&f->q, f->path, &e))
		fail_msg("reopening %s: %s", f->path, e.msg);
}

static void submit(struct queue *q, const char *id)
{
	json_t *spec = json_pack("{s:s, s:s}", "dataset", "/data/cats", "recipe", "flux-dev-lora");
	struct err e = { 0 };

	if (q->ops->submit(q, id, spec, &e))
		fail_msg("submit %s: %s", id, e.msg);
	json_decref(spec);
}

static struct job_lease claim(struct queue *q, const char *id, const char *owner)
{
	struct job_lease l;
	struct err e = { 0 };

	if (q->ops->claim(q, id, owner, 60, &l, &e))
		fail_msg("claim %s: %s", id ? id : "(any)", e.msg);
	return l;
}

static void move(struct queue *q, const struct job_lease *l, enum job_state to,
		 const char *reason)
{
	struct err e = { 0 };

	if (q->ops->set_state(q, l, to, reason, &e))
		fail_msg("moving %s to %s: %s", l->job, job_state_name(to), e.msg);
}

static enum job_state state_of(struct queue *q, const char *id)
{
	struct queue_job j;
	enum job_state s;

	assert_int_equal(q->ops->get(q, id, &j, NULL), 0);
	s = j.state;
	queue_job_release(&j);
	return s;
}

static size_t nevents(struct queue *q, const char *id)
{
	struct queue_event *v;
	size_t n;

	assert_int_equal(q->ops->events(q, id, 0, 0, &v, &n, NULL), 0);
	queue_events_free(v, n);
	return n;
}

/* The last event of a job, as {"kind": ..., "data": ...}. */
static json_t *last_event(struct queue *q, const char *id)
{
	struct queue_event *v;
	json_t *out;
	size_t n;

	assert_int_equal(q->ops->events(q, id, 0, 0, &v, &n, NULL), 0);
	assert_true(n > 0);
	out = json_pack("{s:s, s:O}", "kind", v[n - 1].kind, "data", v[n - 1].data);
	queue_events_free(v, n);
	return out;
}

static void expect_last_event(struct queue *q, const char *id, const char *want)
{
	json_t *got = last_event(q, id);

	tu_expect_json(got, want);
	json_decref(got);
}

/* A job walked along the legal moves to a terminal state. */
static void finish(struct queue *q, const char *id, enum job_state end)
{
	static const enum job_state path[] = {
		JOB_PREPARING, JOB_RENTING, JOB_BOOTING, JOB_UPLOADING, JOB_TRAINING,
		JOB_COLLECTING, JOB_PUBLISHING, JOB_RELEASING,
	};
	struct job_lease l = claim(q, id, "finisher");

	if (end == JOB_SUCCEEDED) {
		for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++)
			move(q, &l, path[i], NULL);
	} else {
		move(q, &l, JOB_PREPARING, NULL);
		move(q, &l, JOB_RELEASING, end == JOB_FAILED ? "dataset" : "cancelled");
	}
	move(q, &l, end, NULL);
	assert_int_equal(q->ops->release(q, &l, NULL), 0);
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* ---- opening and migrations --------------------------------------------- */

static void test_open_locations(void **state)
{
	struct fx *f = *state;
	struct queue *q = (struct queue *)1;
	struct err e = { 0 };
	char *where;

	assert_int_equal(queue_open(&q, "", &e), ERR_USAGE);
	assert_null(q);
	assert_int_equal(queue_open(&q, "sqlite:", &e), ERR_USAGE);
	assert_int_equal(queue_open(&q, "postgres://db/ferry", &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "postgres://db/ferry"));
	/* sqlite:PATH is the same file as PATH. */
	submit(f->q, JA);
	where = xasprintf("sqlite:%s", f->path);
	assert_int_equal(queue_open(&q, where, &e), 0);
	assert_string_equal(q->ops->name, "sqlite");
	assert_int_equal(state_of(q, JA), JOB_QUEUED);
	queue_close(q);
	queue_close(NULL);
	free(where);
}

static void test_open_schema(void **state)
{
	struct fx *f = *state;
	struct stat st;
	sqlite3 *db;
	char *wal;

	/* The folder was made private; the file is in WAL mode at the
	 * current version. */
	assert_int_equal(stat(f->dir, &st), 0);
	wal = fsx_join(f->dir, "state");
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	free(wal);
	submit(f->q, JA);
	db = raw_open(f->path);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(db, "PRAGMA application_id"), 0x46525259);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
				     " AND name IN ('jobs', 'events', 'steps', 'instances',"
				     " 'artifacts')"), 5);
	sqlite3_close(db);
	wal = xasprintf("%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	free(wal);
	/* Reopening runs nothing again: the job is still there. */
	reopen(f);
	assert_int_equal(state_of(f->q, JA), JOB_QUEUED);
	assert_int_equal(nevents(f->q, JA), 1);
}

/* A file at version 1 gets migration 2 only; its jobs stay. */
static void test_open_migrates_older(void **state)
{
	struct fx *f = *state;
	struct queue_instance *iv;
	sqlite3 *db;
	size_t n;

	submit(f->q, JA);
	queue_close(f->q);
	f->q = NULL;
	db = raw_open(f->path);
	raw_exec(db, "DROP TABLE steps; DROP TABLE instances; DROP TABLE artifacts;"
		     " PRAGMA user_version = 1");
	sqlite3_close(db);
	reopen(f);
	assert_int_equal(state_of(f->q, JA), JOB_QUEUED);
	assert_int_equal(f->q->ops->instances(f->q, JA, &iv, &n, NULL), 0);
	assert_int_equal(n, 0);
	free(iv);
	db = raw_open(f->path);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
	sqlite3_close(db);
}

static void test_open_refuses(void **state)
{
	struct fx *f = *state;
	struct queue *q = NULL;
	struct err e = { 0 };
	sqlite3 *db;
	char *other;

	/* Newer than this ferry knows. */
	queue_close(f->q);
	f->q = NULL;
	db = raw_open(f->path);
	raw_exec(db, "PRAGMA user_version = 7");
	sqlite3_close(db);
	assert_int_equal(queue_open(&q, f->path, &e), ERR_FORMAT);
	assert_null(q);
	assert_non_null(strstr(e.msg, f->path));
	assert_non_null(strstr(e.msg, "version 7"));
	assert_non_null(strstr(e.msg, "newer"));
	/* Another program's database. */
	other = fsx_join(f->dir, "other.db");
	db = raw_open(other);
	raw_exec(db, "CREATE TABLE t (x)");
	sqlite3_close(db);
	assert_int_equal(queue_open(&q, other, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "another program"));
	/* ... left as it was. */
	db = raw_open(other);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_journal_mode"
				     " WHERE journal_mode = 'delete'"), 1);
	sqlite3_close(db);
	free(other);
	/* Not a database at all. */
	tu_write_text(f->dir, "junk.db", "this is not a database, it is a text file\n");
	other = fsx_join(f->dir, "junk.db");
	assert_int_equal(queue_open(&q, other, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, other));
	free(other);
}

/* ---- jobs ---------------------------------------------------------------- */

static void test_submit_get(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	json_t *spec = json_pack("{s:s}", "dataset", "/d");
	json_t *arr = json_array();
	long long now = clock_wall_s();
	struct queue_job j;
	struct err e = { 0 };

	assert_int_equal(q->ops->submit(q, JA, spec, &e), 0);
	assert_int_equal(q->ops->submit(q, JA, spec, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, JA));
	assert_int_equal(q->ops->submit(q, "../etc", spec, &e), ERR_USAGE);
	assert_int_equal(q->ops->submit(q, NULL, spec, &e), ERR_USAGE);
	assert_int_equal(q->ops->submit(q, JB, arr, &e), ERR_USAGE);
	assert_int_equal(q->ops->submit(q, JB, NULL, &e), ERR_USAGE);

	assert_int_equal(q->ops->get(q, JA, &j, &e), 0);
	assert_string_equal(j.id, JA);
	assert_int_equal(j.state, JOB_QUEUED);
	assert_string_equal(j.reason, "");
	assert_true(json_equal(j.spec, spec));
	tu_expect_json(j.data, "{}");
	assert_int_equal(j.attempt, 1);
	assert_true(j.created_at >= now - 1 && j.created_at <= now + 1);
	assert_int_equal(j.updated_at, j.created_at);
	assert_string_equal(j.lease_owner, "");
	assert_false(j.cancel_requested);
	assert_true(j.cost_usd == 0);
	queue_job_release(&j);
	assert_int_equal(q->ops->get(q, JB, &j, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->get(q, "nope", &j, &e), ERR_USAGE);
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\":"
			  " {\"from\": null, \"to\": \"QUEUED\", \"reason\": null}}");
	json_decref(spec);
	json_decref(arr);
}

static void test_claim(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct job_lease l, a, b;
	struct queue_job j;
	struct err e = { 0 };

	assert_int_equal(q->ops->claim(q, NULL, "w1", 60, &l, &e), ERR_NOTFOUND);
	submit(q, JB);  /* older than JA although its id sorts after */
	clock_sleep_ms(2, NULL);
	submit(q, JA);
	clock_sleep_ms(2, NULL);
	submit(q, JC);
	clock_sleep_ms(2, NULL);
	submit(q, JD);

	b = claim(q, NULL, "w1");
	assert_string_equal(b.job, JB);
	assert_string_equal(b.owner, "w1");
	assert_int_equal(b.fence, 1);
	assert_true(b.expires >= clock_wall_s() + 59);
	a = claim(q, NULL, "w2");
	assert_string_equal(a.job, JA);
	/* A live lease blocks a named claim, from its holder too. */
	assert_int_equal(q->ops->claim(q, JA, "w3", 60, &l, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "w2"));
	assert_int_equal(q->ops->claim(q, JA, "w2", 60, &l, &e), ERR_EXISTS);
	/* A named claim skips older jobs. */
	l = claim(q, JD, "w3");
	assert_string_equal(l.job, JD);
	l = claim(q, NULL, "w3");
	assert_string_equal(l.job, JC);
	assert_int_equal(q->ops->claim(q, NULL, "w4", 60, &l, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->claim(q, JE, "w4", 60, &l, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->get(q, JB, &j, NULL), 0);
	assert_string_equal(j.lease_owner, "w1");
	assert_int_equal(j.lease_expires, b.expires);
	queue_job_release(&j);

	/* An ended job is not claimable, by name or not. */
	submit(q, JE);
	assert_int_equal(q->ops->request_cancel(q, JE, NULL), 0);
	assert_int_equal(q->ops->claim(q, JE, "w4", 60, &l, &e), ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "CANCELLED"));
	assert_int_equal(q->ops->claim(q, NULL, "w4", 60, &l, &e), ERR_NOTFOUND);

	/* Bad arguments. */
	assert_int_equal(q->ops->claim(q, NULL, "", 60, &l, &e), ERR_USAGE);
	assert_int_equal(q->ops->claim(q, NULL, NULL, 60, &l, &e), ERR_USAGE);
	assert_int_equal(q->ops->claim(q, NULL, "w", 0, &l, &e), ERR_USAGE);
	assert_int_equal(q->ops->claim(q, "x", "w", 60, &l, &e), ERR_USAGE);
	assert_int_equal(q->ops->claim(q, NULL, "an owner name well over sixty-four bytes long,"
				       " which is too long", 60, &l, &e), ERR_USAGE);
}

/* Jobs submitted within one millisecond are claimed in the order they came,
 * whatever their ids. */
static void test_claim_order(void **state)
{
	struct fx *f = *state;
	char id[JOB_ID_MAX];

	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "20261207-061500-%08x", 100 - i);
		submit(f->q, id);
	}
	for (int i = 0; i < 30; i++) {
		struct job_lease l = claim(f->q, NULL, "w1");

		snprintf(id, sizeof(id), "20261207-061500-%08x", 100 - i);
		assert_string_equal(l.job, id);
	}
}

static void test_renew_release(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct job_lease l, l2, other;
	struct queue_job j;
	struct err e = { 0 };

	submit(q, JA);
	assert_int_equal(q->ops->claim(q, JA, "w1", 5, &l, &e), 0);
	assert_int_equal(q->ops->renew(q, &l, 600, &e), 0);
	assert_true(l.expires >= clock_wall_s() + 599);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.lease_expires, l.expires);
	queue_job_release(&j);
	assert_int_equal(q->ops->renew(q, &l, 0, &e), ERR_USAGE);
	assert_int_equal(q->ops->renew(q, NULL, 60, &e), ERR_USAGE);
	/* A lease that names another owner or fence is not this one. */
	other = l;
	other.fence++;
	assert_int_equal(q->ops->renew(q, &other, 60, &e), ERR_CHANGED);
	assert_int_equal(q->ops->release(q, &other, &e), ERR_CHANGED);
	other = l;
	snprintf(other.owner, sizeof(other.owner), "w2");
	assert_int_equal(q->ops->renew(q, &other, 60, &e), ERR_CHANGED);
	assert_int_equal(q->ops->set_state(q, &other, JOB_PREPARING, NULL, &e), ERR_CHANGED);

	assert_int_equal(q->ops->release(q, &l, &e), 0);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_string_equal(j.lease_owner, "");
	assert_int_equal(j.lease_expires, 0);
	queue_job_release(&j);
	/* Released: nothing more under it, and the next claim has a new fence. */
	assert_int_equal(q->ops->release(q, &l, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "released"));
	assert_int_equal(q->ops->renew(q, &l, 60, &e), ERR_CHANGED);
	assert_int_equal(q->ops->set_state(q, &l, JOB_PREPARING, NULL, &e), ERR_CHANGED);
	l2 = claim(q, NULL, "w2");
	assert_string_equal(l2.job, JA);
	assert_int_equal(l2.fence, l.fence + 1);
	assert_int_equal(q->ops->release(q, NULL, &e), ERR_USAGE);
}

/* Every write of a worker that lost its lease fails and writes nothing. One
 * sleep serves every expiry case. */
static void test_lease_expiry(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct queue_instance in = { 0 }, *iv;
	struct queue_artifact art = { 0 }, *av;
	struct job_lease a1, a2, b1, c1;
	struct queue_job j;
	struct err e = { 0 };
	json_t *data = json_pack("{s:i}", "x", 1), *steps;
	long long step = 0, id = 0;
	size_t n, before;

	submit(q, JA);
	submit(q, JB);
	submit(q, JC);
	assert_int_equal(q->ops->claim(q, JA, "w1", 1, &a1, &e), 0);
	assert_int_equal(q->ops->claim(q, JB, "w1", 1, &b1, &e), 0);
	assert_int_equal(q->ops->claim(q, JC, "w1", 1, &c1, &e), 0);
	assert_int_equal(q->ops->step_begin(q, &a1, "create", NULL, &step, &e), 0);
	before = nevents(q, JA);
	clock_sleep_ms(1100, NULL);

	/* Expired, not yet claimed: writes need a live lease. */
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_string_equal(j.lease_owner, "");
	queue_job_release(&j);
	assert_int_equal(q->ops->set_state(q, &a1, JOB_PREPARING, NULL, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "expired"));

	/* Another worker takes it: the fence grows. */
	a2 = claim(q, NULL, "w2");
	assert_string_equal(a2.job, JA);
	assert_int_equal(a2.fence, a1.fence + 1);

	/* The stale worker writes nothing. */
	snprintf(in.provider, sizeof(in.provider), "vast");
	art.path = "out/a.safetensors";
	art.size = 3;
	snprintf(art.sha256, sizeof(art.sha256), SHA_A);
	assert_int_equal(q->ops->set_state(q, &a1, JOB_PREPARING, NULL, &e), ERR_CHANGED);
	assert_int_equal(q->ops->set_data(q, &a1, data, 1.5, &e), ERR_CHANGED);
	assert_int_equal(q->ops->step_begin(q, &a1, "launch", NULL, NULL, &e), ERR_CHANGED);
	assert_int_equal(q->ops->step_end(q, &a1, step, NULL, &e), ERR_CHANGED);
	assert_int_equal(q->ops->instance_put(q, &a1, &in, &e), ERR_CHANGED);
	assert_int_equal(q->ops->artifact_put(q, &a1, &art, &e), ERR_CHANGED);
	assert_int_equal(q->ops->event_append(q, &a1, JA, "log", NULL, &id, &e), ERR_CHANGED);
	assert_int_equal(q->ops->renew(q, &a1, 60, &e), ERR_CHANGED);
	assert_int_equal(q->ops->release(q, &a1, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "w2"));

	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.state, JOB_QUEUED);
	tu_expect_json(j.data, "{}");
	assert_true(j.cost_usd == 0);
	assert_string_equal(j.lease_owner, "w2");
	queue_job_release(&j);
	assert_int_equal(nevents(q, JA), before);
	assert_int_equal(q->ops->instances(q, JA, &iv, &n, NULL), 0);
	assert_int_equal(n, 0);
	free(iv);
	assert_int_equal(q->ops->artifacts(q, JA, &av, &n, NULL), 0);
	assert_int_equal(n, 0);
	queue_artifacts_free(av, n);
	assert_int_equal(q->ops->steps(q, JA, &steps, NULL), 0);
	assert_int_equal(json_array_size(steps), 1);
	assert_true(json_is_null(json_object_get(json_array_get(steps, 0), "outcome")));
	json_decref(steps);
	/* The new holder writes, and ends the act its predecessor left open. */
	move(q, &a2, JOB_PREPARING, NULL);
	assert_int_equal(q->ops->step_end(q, &a2, step, NULL, &e), 0);

	/* An expired lease nobody claimed revives, with the same fence. */
	assert_int_equal(q->ops->renew(q, &b1, 60, &e), 0);
	move(q, &b1, JOB_PREPARING, NULL);
	assert_int_equal(q->ops->claim(q, JB, "w2", 60, &a1, &e), ERR_EXISTS);

	/* An expired lease on a queued job does not hold off a cancel, and the
	 * cancel takes the lease back. */
	assert_int_equal(q->ops->request_cancel(q, JC, &e), 0);
	assert_int_equal(state_of(q, JC), JOB_CANCELLED);
	assert_int_equal(q->ops->renew(q, &c1, 60, &e), ERR_CHANGED);
	json_decref(data);
}

static void test_set_state(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct job_lease l;
	struct queue_job j;
	struct err e = { 0 };
	char longer[100];

	submit(q, JA);
	l = claim(q, JA, "w1");
	move(q, &l, JOB_PREPARING, NULL);
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\":"
			  " {\"from\": \"QUEUED\", \"to\": \"PREPARING\", \"reason\": null}}");
	move(q, &l, JOB_RENTING, NULL);
	/* Illegal moves change nothing. */
	assert_int_equal(q->ops->set_state(q, &l, JOB_TRAINING, NULL, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "RENTING"));
	assert_non_null(strstr(e.msg, "TRAINING"));
	assert_int_equal(q->ops->set_state(q, &l, JOB_SUCCEEDED, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_state(q, &l, JOB_QUEUED, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_state(q, &l, (enum job_state)99, NULL, &e), ERR_USAGE);
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(q->ops->set_state(q, &l, JOB_RELEASING, longer, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_state(q, &l, JOB_RELEASING, "a\nb", &e), ERR_USAGE);
	assert_int_equal(q->ops->set_state(q, NULL, JOB_RELEASING, NULL, &e), ERR_USAGE);
	assert_int_equal(state_of(q, JA), JOB_RENTING);
	assert_int_equal(nevents(q, JA), 3);

	/* A reason stays until another is given. */
	move(q, &l, JOB_RELEASING, "budget");
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\":"
			  " {\"from\": \"RENTING\", \"to\": \"RELEASING\", \"reason\": \"budget\"}}");
	move(q, &l, JOB_FAILED, NULL);
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\":"
			  " {\"from\": \"RELEASING\", \"to\": \"FAILED\", \"reason\": \"budget\"}}");
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.state, JOB_FAILED);
	assert_string_equal(j.reason, "budget");
	queue_job_release(&j);
	/* A worker still holding an ended job may take it back to QUEUED: a
	 * retry, with a new attempt and no reason. */
	move(q, &l, JOB_QUEUED, NULL);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.attempt, 2);
	assert_string_equal(j.reason, "");
	queue_job_release(&j);
}

static void test_set_data(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	json_t *data = json_pack("{s:i, s:s}", "pack", 3, "offer", "o1");
	json_t *arr = json_array();
	struct job_lease l;
	struct queue_job j;
	struct err e = { 0 };

	submit(q, JA);
	l = claim(q, JA, "w1");
	assert_int_equal(q->ops->set_data(q, &l, data, 0.25, &e), 0);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	tu_expect_json(j.data, "{\"offer\": \"o1\", \"pack\": 3}");
	assert_true(j.cost_usd == 0.25);
	queue_job_release(&j);
	/* NULL keeps the data; the cost always changes. */
	assert_int_equal(q->ops->set_data(q, &l, NULL, 1.75, &e), 0);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	tu_expect_json(j.data, "{\"offer\": \"o1\", \"pack\": 3}");
	assert_true(j.cost_usd == 1.75);
	queue_job_release(&j);
	assert_int_equal(q->ops->set_data(q, &l, arr, 1, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_data(q, &l, data, -1, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_data(q, &l, data, NAN, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_data(q, &l, data, INFINITY, &e), ERR_USAGE);
	assert_int_equal(q->ops->set_data(q, NULL, data, 1, &e), ERR_USAGE);
	json_decref(data);
	json_decref(arr);
}

static void test_request_cancel(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct job_lease b, c;
	struct queue_job j;
	struct err e = { 0 };
	size_t n;

	/* Queued, nobody holds it: cancelled at once. */
	submit(q, JA);
	assert_int_equal(q->ops->request_cancel(q, JA, &e), 0);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.state, JOB_CANCELLED);
	assert_string_equal(j.reason, "cancelled");
	queue_job_release(&j);
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\": {\"from\": \"QUEUED\","
			  " \"to\": \"CANCELLED\", \"reason\": \"cancelled\"}}");
	assert_int_equal(q->ops->request_cancel(q, JA, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "ended"));

	/* Running: marked for its worker, which winds it down. */
	submit(q, JB);
	b = claim(q, JB, "w1");
	move(q, &b, JOB_PREPARING, NULL);
	assert_int_equal(q->ops->request_cancel(q, JB, &e), 0);
	assert_int_equal(q->ops->get(q, JB, &j, NULL), 0);
	assert_int_equal(j.state, JOB_PREPARING);
	assert_true(j.cancel_requested);
	queue_job_release(&j);
	expect_last_event(q, JB, "{\"kind\": \"cancel\", \"data\": {}}");
	n = nevents(q, JB);
	/* Twice: no error, no second event. */
	assert_int_equal(q->ops->request_cancel(q, JB, &e), 0);
	assert_int_equal(nevents(q, JB), n);
	/* The worker still holds it. */
	move(q, &b, JOB_RELEASING, "cancelled");
	move(q, &b, JOB_CANCELLED, NULL);

	/* Queued but claimed: the worker is starting it, so it is marked. */
	submit(q, JC);
	c = claim(q, JC, "w1");
	assert_int_equal(q->ops->request_cancel(q, JC, &e), 0);
	assert_int_equal(q->ops->get(q, JC, &j, NULL), 0);
	assert_int_equal(j.state, JOB_QUEUED);
	assert_true(j.cancel_requested);
	queue_job_release(&j);
	move(q, &c, JOB_CANCELLED, NULL);

	assert_int_equal(q->ops->request_cancel(q, JD, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->request_cancel(q, "x'; --", &e), ERR_USAGE);
}

static void test_retry(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct job_lease l, l2;
	struct queue_job j;
	struct err e = { 0 };

	submit(q, JA);
	finish(q, JA, JOB_FAILED);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_string_equal(j.reason, "dataset");
	queue_job_release(&j);
	assert_int_equal(q->ops->retry(q, JA, &e), 0);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.state, JOB_QUEUED);
	assert_int_equal(j.attempt, 2);
	assert_string_equal(j.reason, "");
	assert_false(j.cancel_requested);
	queue_job_release(&j);
	expect_last_event(q, JA, "{\"kind\": \"state\", \"data\": {\"from\": \"FAILED\","
			  " \"to\": \"QUEUED\", \"reason\": \"retry\"}}");
	assert_int_equal(q->ops->retry(q, JA, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "QUEUED"));

	/* Taken from a worker that still held the ended job. */
	l = claim(q, JA, "w1");
	move(q, &l, JOB_RELEASING, NULL);
	move(q, &l, JOB_CANCELLED, NULL);
	assert_int_equal(q->ops->request_cancel(q, JA, NULL), ERR_EXISTS);
	assert_int_equal(q->ops->retry(q, JA, &e), 0);
	assert_int_equal(q->ops->set_data(q, &l, NULL, 1, &e), ERR_CHANGED);
	l2 = claim(q, NULL, "w2");
	assert_string_equal(l2.job, JA);
	assert_int_equal(l2.fence, l.fence + 2);
	assert_int_equal(q->ops->get(q, JA, &j, NULL), 0);
	assert_int_equal(j.attempt, 3);
	queue_job_release(&j);

	submit(q, JB);
	finish(q, JB, JOB_SUCCEEDED);
	assert_int_equal(q->ops->retry(q, JB, &e), ERR_USAGE);
	assert_int_equal(state_of(q, JB), JOB_SUCCEEDED);
	assert_int_equal(q->ops->retry(q, JC, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->retry(q, "", &e), ERR_USAGE);
}

static void test_list(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	static const enum job_state failed[] = { JOB_FAILED, JOB_QUEUED };
	static const enum job_state bad[] = { (enum job_state)42 };
	struct queue_filter fl = { 0 };
	struct queue_job *v;
	struct err e = { 0 };
	size_t n;

	assert_int_equal(q->ops->list(q, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_jobs_free(v, n);
	submit(q, JB);  /* oldest */
	clock_sleep_ms(2, NULL);
	submit(q, JA);
	clock_sleep_ms(2, NULL);
	submit(q, JC);
	clock_sleep_ms(2, NULL);
	submit(q, JD);  /* newest */
	finish(q, JA, JOB_SUCCEEDED);
	finish(q, JC, JOB_FAILED);

	/* Not ended, newest first. */
	assert_int_equal(q->ops->list(q, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, JD);
	assert_string_equal(v[1].id, JB);
	assert_non_null(v[1].spec);
	queue_jobs_free(v, n);
	fl.all = true;
	assert_int_equal(q->ops->list(q, &fl, &v, &n, &e), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].id, JD);
	assert_string_equal(v[1].id, JC);
	assert_string_equal(v[2].id, JA);
	assert_string_equal(v[3].id, JB);
	assert_int_equal(v[2].state, JOB_SUCCEEDED);
	queue_jobs_free(v, n);
	fl.limit = 1;
	assert_int_equal(q->ops->list(q, &fl, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, JD);
	queue_jobs_free(v, n);
	/* Exactly these states, whatever `all` says. */
	fl = (struct queue_filter){ .states = failed, .nstates = 2 };
	assert_int_equal(q->ops->list(q, &fl, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, JD);
	assert_string_equal(v[1].id, JC);
	assert_string_equal(v[2].id, JB);
	queue_jobs_free(v, n);
	fl = (struct queue_filter){ .states = bad, .nstates = 1 };
	assert_int_equal(q->ops->list(q, &fl, &v, &n, &e), ERR_USAGE);
	assert_null(v);
	assert_int_equal(n, 0);
}

/* ---- steps --------------------------------------------------------------- */

static void test_steps(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	json_t *intent = json_pack("{s:s, s:i}", "label", "ferry-" JA, "offer", 42);
	json_t *outcome = json_pack("{s:i}", "instance", 777);
	json_t *steps, *s0, *s1;
	struct job_lease l, other;
	long long st1 = 0, st2 = 0, st3 = 0;
	long long before = clock_wall_ns() / 1000000;
	struct err e = { 0 };

	submit(q, JA);
	submit(q, JB);
	other = claim(q, JB, "w1");
	assert_int_equal(q->ops->step_begin(q, &other, "probe", NULL, &st3, &e), 0);
	l = claim(q, JA, "w1");
	move(q, &l, JOB_PREPARING, NULL);
	move(q, &l, JOB_RENTING, NULL);
	assert_int_equal(q->ops->step_begin(q, &l, "create", intent, &st1, &e), 0);
	assert_int_equal(q->ops->step_begin(q, &l, "destroy", NULL, &st2, &e), 0);
	assert_true(st1 > 0 && st2 > st1);
	assert_int_equal(q->ops->step_end(q, &l, st2, NULL, &e), 0);
	assert_int_equal(q->ops->step_end(q, &l, st2, outcome, &e), ERR_EXISTS);
	assert_int_equal(q->ops->step_end(q, &l, st2 + 100, NULL, &e), ERR_NOTFOUND);
	/* Another job's step is not this job's. */
	assert_int_equal(q->ops->step_end(q, &l, st3, NULL, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->step_begin(q, &l, "", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->step_begin(q, &l, NULL, NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->step_begin(q, &l, "a\tb", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->steps(q, JC, &steps, &e), ERR_NOTFOUND);
	assert_null(steps);

	/* A worker that crashed after the create was sent: the intent is
	 * there, open, when the queue is opened again. */
	reopen(f);
	q = f->q;
	assert_int_equal(q->ops->steps(q, JA, &steps, &e), 0);
	assert_int_equal(json_array_size(steps), 2);
	s0 = json_array_get(steps, 0);
	s1 = json_array_get(steps, 1);
	assert_int_equal(json_integer_value(json_object_get(s0, "id")), st1);
	assert_string_equal(json_string_value(json_object_get(s0, "act")), "create");
	assert_string_equal(json_string_value(json_object_get(s0, "state")), "RENTING");
	assert_true(json_equal(json_object_get(s0, "intent"), intent));
	assert_true(json_is_null(json_object_get(s0, "outcome")));
	assert_true(json_is_null(json_object_get(s0, "ended_at")));
	assert_true(json_integer_value(json_object_get(s0, "started_at")) >= before);
	assert_int_equal(json_integer_value(json_object_get(s0, "attempt")), 1);
	assert_int_equal(json_integer_value(json_object_get(s0, "fence")), l.fence);
	assert_string_equal(json_string_value(json_object_get(s1, "act")), "destroy");
	tu_expect_json(json_object_get(s1, "intent"), "{}");
	tu_expect_json(json_object_get(s1, "outcome"), "{}");
	assert_true(json_integer_value(json_object_get(s1, "ended_at")) >=
		    json_integer_value(json_object_get(s1, "started_at")));
	json_decref(steps);

	/* The next holder resolves it. */
	assert_int_equal(q->ops->release(q, &l, &e), 0);
	l = claim(q, JA, "w2");
	assert_int_equal(q->ops->step_end(q, &l, st1, outcome, &e), 0);
	assert_int_equal(q->ops->steps(q, JA, &steps, &e), 0);
	tu_expect_json(json_object_get(json_array_get(steps, 0), "outcome"),
		       "{\"instance\": 777}");
	json_decref(steps);
	json_decref(intent);
	json_decref(outcome);
}

/* ---- instances ----------------------------------------------------------- */

static void test_instances(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct queue_instance in = { 0 }, second = { 0 }, bin = { 0 }, *v;
	struct job_lease l, lb;
	struct err e = { 0 };
	size_t n;

	submit(q, JA);
	submit(q, JB);
	l = claim(q, JA, "w1");
	lb = claim(q, JB, "w1");
	/* The row comes first, before the create is sent. */
	snprintf(in.provider, sizeof(in.provider), "vast");
	in.offer_id = 42;
	in.machine_id = 9;
	in.dph = 0.35;
	assert_int_equal(q->ops->instance_put(q, &l, &in, &e), 0);
	assert_true(in.row > 0);
	assert_string_equal(in.job, JA);
	assert_string_equal(in.label, "ferry-" JA);
	assert_int_equal(q->ops->instances(q, JA, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].row, in.row);
	assert_int_equal(v[0].instance_id, 0);
	assert_int_equal(v[0].created_at, 0);
	assert_int_equal(v[0].offer_id, 42);
	assert_int_equal(v[0].machine_id, 9);
	assert_true(v[0].dph == 0.35);
	assert_string_equal(v[0].provider, "vast");
	free(v);
	/* Then filled in. */
	in.instance_id = 123456;
	in.created_at = 1765000000;
	assert_int_equal(q->ops->instance_put(q, &l, &in, &e), 0);
	/* A second live instance of one job is refused. */
	snprintf(second.provider, sizeof(second.provider), "vast");
	assert_int_equal(q->ops->instance_put(q, &l, &second, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "123456"));
	assert_int_equal(second.row, 0);
	/* Another job's instance lives beside it. */
	snprintf(bin.provider, sizeof(bin.provider), "ssh");
	snprintf(bin.label, sizeof(bin.label), "my-box");
	assert_int_equal(q->ops->instance_put(q, &lb, &bin, &e), 0);
	assert_int_equal(q->ops->instances(q, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].job, JA);
	assert_int_equal(v[0].instance_id, 123456);
	assert_string_equal(v[1].job, JB);
	assert_string_equal(v[1].label, "my-box");
	free(v);
	/* Once destroyed, the next may be rented. */
	in.destroyed_at = 1765000600;
	snprintf(in.left_reason, sizeof(in.left_reason), "probe: no GPU");
	assert_int_equal(q->ops->instance_put(q, &l, &in, &e), 0);
	assert_int_equal(q->ops->instance_put(q, &l, &second, &e), 0);
	assert_true(second.row > in.row);
	assert_int_equal(q->ops->instances(q, JA, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].row, in.row);
	assert_int_equal(v[0].destroyed_at, 1765000600);
	assert_string_equal(v[0].left_reason, "probe: no GPU");
	assert_int_equal(v[1].row, second.row);
	assert_int_equal(v[1].destroyed_at, 0);
	free(v);
	assert_int_equal(q->ops->instances(q, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].row, second.row);
	free(v);

	/* Bad writes. */
	bin.row = 0;
	assert_int_equal(q->ops->instance_put(q, &l, &bin, &e), ERR_USAGE);  /* JB's */
	second.row += 1000;
	assert_int_equal(q->ops->instance_put(q, &l, &second, &e), ERR_NOTFOUND);
	second.row = in.row;  /* a row of JA, updated under JB's lease */
	second.job[0] = '\0';
	assert_int_equal(q->ops->instance_put(q, &lb, &second, &e), ERR_NOTFOUND);
	memset(&second, 0, sizeof(second));
	assert_int_equal(q->ops->instance_put(q, &l, &second, &e), ERR_USAGE);  /* provider */
	snprintf(second.provider, sizeof(second.provider), "vast");
	second.dph = -1;
	assert_int_equal(q->ops->instance_put(q, &l, &second, &e), ERR_USAGE);
	assert_int_equal(q->ops->instance_put(q, &l, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->instances(q, JC, &v, &n, &e), ERR_NOTFOUND);
	assert_null(v);
}

/* ---- artifacts ----------------------------------------------------------- */

static void test_artifacts(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	struct queue_artifact a = { 0 }, b = { 0 }, *v;
	struct job_lease l;
	struct err e = { 0 };
	size_t n;

	submit(q, JA);
	submit(q, JB);
	l = claim(q, JA, "w1");
	a.path = "out/lora_000500.safetensors";
	a.size = 1024;
	snprintf(a.sha256, sizeof(a.sha256), SHA_A);
	a.local_path = "/state/jobs/" JA "/out/lora_000500.safetensors";
	assert_int_equal(q->ops->artifact_put(q, &l, &a, &e), 0);
	b.path = "out/samples/0.jpg";
	b.size = 0;
	snprintf(b.sha256, sizeof(b.sha256), SHA_B);
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), 0);
	/* Published: the same row, updated. */
	a.key = "jobs/" JA "/lora_000500.safetensors";
	a.url = "https://cdn.example/jobs/" JA "/lora_000500.safetensors";
	a.published_at = 1765000900;
	assert_int_equal(q->ops->artifact_put(q, &l, &a, &e), 0);
	assert_int_equal(q->ops->artifacts(q, JA, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].job, JA);
	assert_string_equal(v[0].path, a.path);
	assert_int_equal(v[0].size, 1024);
	assert_string_equal(v[0].sha256, SHA_A);
	assert_string_equal(v[0].local_path, a.local_path);
	assert_string_equal(v[0].key, a.key);
	assert_string_equal(v[0].url, a.url);
	assert_int_equal(v[0].published_at, 1765000900);
	assert_string_equal(v[1].path, b.path);
	assert_null(v[1].key);
	assert_null(v[1].url);
	assert_null(v[1].local_path);
	queue_artifacts_free(v, n);
	assert_int_equal(q->ops->artifacts(q, JB, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_artifacts_free(v, n);

	/* The SHA-256 is checked. */
	snprintf(b.sha256, sizeof(b.sha256), "%s", SHA_A);
	b.sha256[0] = 'B';
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "SHA-256"));
	snprintf(b.sha256, sizeof(b.sha256), "%.63s", SHA_A);
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	snprintf(b.sha256, sizeof(b.sha256), "%s", SHA_A);
	b.sha256[10] = 'g';
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	/* Not published before its hash is known. */
	b.sha256[0] = '\0';
	b.key = "k";
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	b.key = NULL;
	snprintf(b.sha256, sizeof(b.sha256), SHA_B);
	b.size = -1;
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	b.size = 1;
	b.path = "../escape";
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	b.path = "/abs";
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	b.path = NULL;
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	b.path = "x";
	snprintf(b.job, sizeof(b.job), JB);
	assert_int_equal(q->ops->artifact_put(q, &l, &b, &e), ERR_USAGE);
	assert_int_equal(q->ops->artifact_put(q, NULL, &a, &e), ERR_USAGE);
	assert_int_equal(q->ops->artifacts(q, JC, &v, &n, &e), ERR_NOTFOUND);
	/* Nothing of that reached the file. */
	assert_int_equal(q->ops->artifacts(q, JA, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[1].size, 0);
	queue_artifacts_free(v, n);
}

/* ---- events -------------------------------------------------------------- */

static void test_events(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	json_t *progress = json_pack("{s:i, s:i}", "step", 10, "total", 100);
	struct queue_event *v;
	struct job_lease la;
	long long ids[4], last;
	long long now_ms = clock_wall_ns() / 1000000;
	struct err e = { 0 };
	size_t n;

	submit(q, JA);  /* event 1 */
	submit(q, JB);  /* event 2 */
	la = claim(q, JA, "w1");
	assert_int_equal(q->ops->event_append(q, &la, JA, "progress", progress, &ids[0], &e), 0);
	assert_int_equal(q->ops->event_append(q, NULL, JB, "log", NULL, &ids[1], &e), 0);
	assert_int_equal(q->ops->event_append(q, &la, NULL, "warning", NULL, &ids[2], &e), 0);
	assert_int_equal(q->ops->event_append(q, NULL, JA, "cost", NULL, &ids[3], &e), 0);
	assert_int_equal(q->ops->event_append(q, &la, JA, "log", NULL, NULL, &e), 0);
	for (int i = 1; i < 4; i++)
		assert_true(ids[i] > ids[i - 1]);

	/* One job's, with its own sequence. */
	assert_int_equal(q->ops->events(q, JA, 0, 0, &v, &n, &e), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[0].kind, "state");
	assert_string_equal(v[1].kind, "progress");
	assert_int_equal(v[1].id, ids[0]);
	assert_true(json_equal(v[1].data, progress));
	tu_expect_json(v[2].data, "{}");
	assert_string_equal(v[3].kind, "cost");
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(v[i].job, JA);
		assert_int_equal(v[i].seq, (long long)i + 1);
		assert_true(v[i].at >= now_ms - 1000 && v[i].at <= now_ms + 60000);
		if (i)
			assert_true(v[i].id > v[i - 1].id);
	}
	last = v[n - 1].id;
	queue_events_free(v, n);
	/* From an offset. */
	assert_int_equal(q->ops->events(q, JA, ids[2], 0, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, ids[3]);
	queue_events_free(v, n);
	assert_int_equal(q->ops->events(q, JA, last, 0, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	queue_events_free(v, n);
	/* Every job's, in order, with a limit. */
	assert_int_equal(q->ops->events(q, NULL, 0, 0, &v, &n, &e), 0);
	assert_int_equal(n, 7);
	assert_string_equal(v[0].job, JA);
	assert_string_equal(v[1].job, JB);
	assert_int_equal(v[3].id, ids[1]);
	assert_int_equal(v[3].seq, 2);
	for (size_t i = 1; i < n; i++)
		assert_true(v[i].id > v[i - 1].id);
	queue_events_free(v, n);
	assert_int_equal(q->ops->events(q, NULL, ids[0], 2, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, ids[1]);
	assert_int_equal(v[1].id, ids[2]);
	queue_events_free(v, n);

	/* Bad appends write nothing. */
	assert_int_equal(q->ops->event_append(q, &la, JA, "", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->event_append(q, &la, JA, NULL, NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->event_append(q, &la, JA, "a kind name longer than thirty-two"
					      " bytes", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->event_append(q, &la, JB, "log", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->event_append(q, NULL, NULL, "log", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->event_append(q, NULL, JC, "log", NULL, NULL, &e), ERR_NOTFOUND);
	assert_int_equal(q->ops->event_append(q, NULL, "bad", "log", NULL, NULL, &e), ERR_USAGE);
	assert_int_equal(q->ops->events(q, JC, 0, 0, &v, &n, &e), ERR_NOTFOUND);
	assert_null(v);
	assert_int_equal(nevents(q, NULL), 7);
	json_decref(progress);
}

/* ---- durability ---------------------------------------------------------- */

static void test_durable(void **state)
{
	struct fx *f = *state;
	struct queue *q = f->q;
	json_t *data = json_pack("{s:s}", "pack", "abc"), *steps;
	struct queue_instance in = { 0 }, *iv;
	struct queue_artifact a = { 0 }, *av;
	struct job_lease l, l2;
	struct queue_job j;
	struct err e = { 0 };
	size_t n;

	submit(q, JA);
	l = claim(q, JA, "w1");
	move(q, &l, JOB_PREPARING, NULL);
	assert_int_equal(q->ops->set_data(q, &l, data, 0.5, &e), 0);
	assert_int_equal(q->ops->step_begin(q, &l, "pack", data, NULL, &e), 0);
	snprintf(in.provider, sizeof(in.provider), "local");
	assert_int_equal(q->ops->instance_put(q, &l, &in, &e), 0);
	a.path = "out/a";
	snprintf(a.sha256, sizeof(a.sha256), SHA_A);
	assert_int_equal(q->ops->artifact_put(q, &l, &a, &e), 0);
	assert_int_equal(q->ops->request_cancel(q, JA, &e), 0);

	reopen(f);
	q = f->q;
	assert_int_equal(q->ops->get(q, JA, &j, &e), 0);
	assert_int_equal(j.state, JOB_PREPARING);
	tu_expect_json(j.data, "{\"pack\": \"abc\"}");
	assert_true(j.cost_usd == 0.5);
	assert_true(j.cancel_requested);
	assert_string_equal(j.lease_owner, "w1");
	queue_job_release(&j);
	/* The lease survives: its holder goes on writing. */
	move(q, &l, JOB_RELEASING, "cancelled");
	assert_int_equal(q->ops->steps(q, JA, &steps, &e), 0);
	assert_int_equal(json_array_size(steps), 1);
	json_decref(steps);
	assert_int_equal(q->ops->instances(q, JA, &iv, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(iv[0].provider, "local");
	free(iv);
	assert_int_equal(q->ops->artifacts(q, JA, &av, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(av[0].sha256, SHA_A);
	queue_artifacts_free(av, n);
	assert_int_equal(nevents(q, JA), 4);  /* queued, preparing, cancel, releasing */
	assert_int_equal(q->ops->release(q, &l, &e), 0);
	l2 = claim(q, NULL, "w2");
	assert_int_equal(l2.fence, l.fence + 1);
	json_decref(data);
}

/* ---- two connections ----------------------------------------------------- */

#define RACE_JOBS 40

struct racer {
	const char *path;
	const char *owner;
	pthread_barrier_t *start;
	char (*ids)[JOB_ID_MAX];  /* the jobs to claim by name; NULL: any */
	char won[RACE_JOBS][JOB_ID_MAX];
	int nwon, nlost, nerr;
	char err[1024];
};

static void *racer_run(void *arg)
{
	struct racer *r = arg;
	struct queue *q = NULL;
	struct err e = { 0 };

	if (queue_open(&q, r->path, &e)) {
		snprintf(r->err, sizeof(r->err), "%s", e.msg);
		r->nerr++;
		pthread_barrier_wait(r->start);
		return NULL;
	}
	pthread_barrier_wait(r->start);
	for (int i = 0; i < RACE_JOBS * 2; i++) {
		struct job_lease l;
		int rc;

		if (r->ids && i >= RACE_JOBS)
			break;
		rc = q->ops->claim(q, r->ids ? r->ids[i] : NULL, r->owner, 60, &l, &e);
		if (rc == 0) {
			/* The winner writes under its lease. */
			rc = q->ops->set_state(q, &l, JOB_PREPARING, NULL, &e);
			if (!rc)
				snprintf(r->won[r->nwon++], JOB_ID_MAX, "%s", l.job);
		}
		if (rc == ERR_NOTFOUND && !r->ids)
			break;
		if (rc == ERR_EXISTS && r->ids) {
			r->nlost++;
		} else if (rc) {
			snprintf(r->err, sizeof(r->err), "%s", e.msg);
			r->nerr++;
		}
	}
	queue_close(q);
	return NULL;
}

static void race(struct fx *f, char (*ids)[JOB_ID_MAX])
{
	struct racer *r = xcalloc(2, sizeof(*r));
	pthread_barrier_t start;
	pthread_t t[2];

	pthread_barrier_init(&start, NULL, 2);
	for (int i = 0; i < 2; i++) {
		r[i].path = f->path;
		r[i].owner = i ? "w2" : "w1";
		r[i].start = &start;
		r[i].ids = ids;
		assert_int_equal(pthread_create(&t[i], NULL, racer_run, &r[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < 2; i++)
		if (r[i].nerr)
			fail_msg("%s: %d errors, the last: %s", r[i].owner, r[i].nerr, r[i].err);
	/* Each job was won exactly once. */
	assert_int_equal(r[0].nwon + r[1].nwon, RACE_JOBS);
	if (ids)
		assert_int_equal(r[0].nlost + r[1].nlost, RACE_JOBS);
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < r[i].nwon; k++) {
			struct queue_job j;

			assert_int_equal(f->q->ops->get(f->q, r[i].won[k], &j, NULL), 0);
			assert_int_equal(j.state, JOB_PREPARING);
			assert_string_equal(j.lease_owner, r[i].owner);
			queue_job_release(&j);
			for (int m = 0; m < r[1 - i].nwon; m++)
				assert_string_not_equal(r[i].won[k], r[1 - i].won[m]);
		}
	}
	free(r);
}

static void race_submit(struct fx *f, char (*ids)[JOB_ID_MAX], int base)
{
	for (int i = 0; i < RACE_JOBS; i++) {
		snprintf(ids[i], JOB_ID_MAX, "20261207-061500-%08x", base + i);
		submit(f->q, ids[i]);
	}
}

static void test_concurrent_claims(void **state)
{
	struct fx *f = *state;
	char (*ids)[JOB_ID_MAX] = xcalloc(RACE_JOBS, JOB_ID_MAX);
	sqlite3 *db;

	race_submit(f, ids, 0x100);
	race(f, NULL);
	race_submit(f, ids, 0x200);
	race(f, ids);
	db = raw_open(f->path);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM jobs WHERE lease_fence = 1"),
			 2 * RACE_JOBS);
	sqlite3_close(db);
	free(ids);
}

struct opener {
	const char *path;
	pthread_barrier_t *start;
	int rc;
	char err[1024];
};

static void *opener_run(void *arg)
{
	struct opener *o = arg;
	struct queue *q = NULL;
	struct err e = { 0 };

	pthread_barrier_wait(o->start);
	o->rc = queue_open(&q, o->path, &e);
	snprintf(o->err, sizeof(o->err), "%s", e.msg);
	queue_close(q);
	return NULL;
}

/* Two processes starting at once on a fresh file: both open it, and the
 * schema is made once. */
static void test_concurrent_open(void **state)
{
	struct fx *f = *state;
	struct opener o[2];
	pthread_barrier_t start;
	pthread_t t[2];
	char *path = fsx_join(f->dir, "fresh/queue.db");
	sqlite3 *db;

	for (int round = 0; round < 20; round++) {
		char *p = xasprintf("%s.%d", path, round);

		pthread_barrier_init(&start, NULL, 2);
		for (int i = 0; i < 2; i++) {
			o[i] = (struct opener){ .path = p, .start = &start };
			assert_int_equal(pthread_create(&t[i], NULL, opener_run, &o[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&start);
		for (int i = 0; i < 2; i++)
			if (o[i].rc)
				fail_msg("round %d, opener %d: %s", round, i, o[i].err);
		db = raw_open(p);
		assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
		sqlite3_close(db);
		free(p);
	}
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_open_locations),
		T(test_open_schema),
		T(test_open_migrates_older),
		T(test_open_refuses),
		T(test_submit_get),
		T(test_claim),
		T(test_claim_order),
		T(test_renew_release),
		T(test_lease_expiry),
		T(test_set_state),
		T(test_set_data),
		T(test_request_cancel),
		T(test_retry),
		T(test_list),
		T(test_steps),
		T(test_instances),
		T(test_artifacts),
		T(test_events),
		T(test_durable),
		T(test_concurrent_claims),
		T(test_concurrent_open),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
