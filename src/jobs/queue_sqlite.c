#include "jobs/queue_sqlite.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/str.h"
#include "common/xalloc.h"

/* schema_sqlite.sql, embedded by cmake/embed.cmake. */
extern const unsigned char jobs_schema_sqlite[];
extern const size_t jobs_schema_sqlite_len;

/* How long a statement waits for another connection's write to end. Writes
 * here take milliseconds; a lock held longer is a stuck process. */
#define QS_BUSY_MS 5000
/* PRAGMA application_id of a ferry queue ("FRRY"). */
#define QS_APP_ID 0x46525259
#define QS_MAX_MIGRATIONS 64
#define QS_EVENTS_LIMIT 1000
#define QS_TERMINAL "('SUCCEEDED', 'FAILED', 'CANCELLED')"
#define QS_JOB_COLS                                                                   \
	"id, state, reason, spec, data, attempt, created_ms, updated_ms, lease_owner," \
	" lease_expires_ms, cancel_requested, cost_usd"
#define QS_INSTANCE_COLS                                                        \
	"id, job, label, provider, instance_id, offer_id, machine_id, dph, created_s," \
	" destroyed_s, left_reason"
#define QS_ARTIFACT_COLS "job, path, size, sha256, local_path, key, url, published_s"

struct qs {
	struct queue q; /* first: the struct queue * callers hold is this */
	sqlite3 *db;
	char *path;
};

static struct qs *qs_of(struct queue *q)
{
	return (struct qs *)q;
}

static long long qs_now_ms(void)
{
	return clock_wall_ns() / 1000000;
}

/* An error from SQLite while doing `what` ("claiming a job"), as a code
 * and a message naming the file. */
static int qs_fail(struct qs *s, struct err *e, int rc, const char *what)
{
	const char *msg = sqlite3_errmsg(s->db);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return err_set(e, ERR_IO,
			       "queue %s: %s: another process kept the database locked for more"
			       " than %d s; try again, or stop the process that holds it",
			       s->path, what, QS_BUSY_MS / 1000);
	case SQLITE_NOTADB:
		return err_set(e, ERR_FORMAT,
			       "queue %s is not a SQLite database (%s); the queue location must"
			       " name a ferry queue file", s->path, msg);
	case SQLITE_CORRUPT:
		return err_set(e, ERR_CORRUPT,
			       "queue %s is damaged (%s, while %s); move it aside and restore it"
			       " from a backup", s->path, msg, what);
	case SQLITE_FULL:
		return err_set(e, ERR_IO, "queue %s: %s: the disk is full", s->path, what);
	case SQLITE_CANTOPEN:
		return err_set(e, ERR_IO, "cannot open queue %s: %s", s->path, msg);
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_IOERR:
		return err_set(e, ERR_IO, "queue %s: %s: %s", s->path, what, msg);
	default:
		return err_set(e, ERR_FAIL, "queue %s: %s: %s", s->path, what, msg);
	}
}

static char *qs_json_text(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Prepare `sql`, binding one value per letter of `fmt` as ?1, ?2, ...:
 * t a string (NULL binds NULL), i a long long, n an int, d a double, j a
 * json_t (NULL binds NULL). */
static int qs_vprep(struct qs *s, struct err *e, const char *what, sqlite3_stmt **st,
		    const char *sql, const char *fmt, va_list ap)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	int r = 0;

	for (int i = 0; rc == SQLITE_OK && fmt && fmt[i]; i++) {
		const char *text;
		const json_t *json;
		char *dumped;

		switch (fmt[i]) {
		case 't':
			text = va_arg(ap, const char *);
			rc = text ? sqlite3_bind_text(*st, i + 1, text, -1, SQLITE_TRANSIENT)
				  : sqlite3_bind_null(*st, i + 1);
			break;
		case 'i':
			rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, long long));
			break;
		case 'n':
			rc = sqlite3_bind_int(*st, i + 1, va_arg(ap, int));
			break;
		case 'd':
			rc = sqlite3_bind_double(*st, i + 1, va_arg(ap, double));
			break;
		case 'j':
			json = va_arg(ap, const json_t *);
			if (!json) {
				rc = sqlite3_bind_null(*st, i + 1);
				break;
			}
			dumped = qs_json_text(json);
			if (!dumped) {
				r = err_set(e, ERR_USAGE, "queue %s: %s: a value cannot be written"
					    " as JSON", s->path, what);
				goto out;
			}
			rc = sqlite3_bind_text(*st, i + 1, dumped, -1, free);
			break;
		default:
			abort(); /* a bug in this file */
		}
	}
	if (rc != SQLITE_OK)
		r = qs_fail(s, e, rc, what);
out:
	if (r) {
		sqlite3_finalize(*st);
		*st = NULL;
	}
	return r;
}

static int qs_prep(struct qs *s, struct err *e, const char *what, sqlite3_stmt **st,
		   const char *sql, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = qs_vprep(s, e, what, st, sql, fmt, ap);
	va_end(ap);
	return r;
}

/* Step: 1 for a row, 0 when done, or a negative error. */
static int qs_step(struct qs *s, sqlite3_stmt *st, const char *what, struct err *e)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return qs_fail(s, e, rc, what);
}

/* Run a statement to its end; *changes (may be NULL) is the rows it wrote. */
static int qs_run(struct qs *s, struct err *e, const char *what, int *changes,
		  const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = qs_vprep(s, e, what, &st, sql, fmt, ap);
	va_end(ap);
	while (!r) {
		r = qs_step(s, st, what, e);
		if (r == 0)
			break;
		if (r > 0)
			r = 0;
	}
	if (changes)
		*changes = r ? 0 : sqlite3_changes(s->db);
	sqlite3_finalize(st);
	return r;
}

static int qs_exec(struct qs *s, const char *sql, const char *what, struct err *e)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : qs_fail(s, e, rc, what);
}

/* Every write takes the write lock first: a read that later upgrades to a
 * write fails with SQLITE_BUSY_SNAPSHOT whatever the busy timeout. */
static int qs_begin(struct qs *s, const char *what, struct err *e)
{
	return qs_exec(s, "BEGIN IMMEDIATE", what, e);
}

/* Commit when r is 0, else roll back; returns r or the commit's error. */
static int qs_end(struct qs *s, int r, const char *what, struct err *e)
{
	if (!r)
		r = qs_exec(s, "COMMIT", what, e);
	if (r && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static const char *qs_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static void qs_copy(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const char *t = qs_text(st, col);

	snprintf(dst, size, "%s", t ? t : "");
}

static char *qs_dup(sqlite3_stmt *st, int col)
{
	const char *t = qs_text(st, col);

	return t ? xstrdup(t) : NULL;
}

/* A JSON column (SQL NULL reads as JSON null). */
static int qs_json(struct qs *s, sqlite3_stmt *st, int col, const char *job, const char *what,
		   json_t **out, struct err *e)
{
	const char *t = qs_text(st, col);
	json_error_t je;

	*out = t ? json_loads(t, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je) : json_null();
	if (!*out)
		return err_set(e, ERR_CORRUPT, "queue %s: job %s: the stored %s is not JSON: %s",
			       s->path, job, what, je.text);
	return 0;
}

static int qs_state(struct qs *s, sqlite3_stmt *st, int col, const char *job,
		    enum job_state *out, struct err *e)
{
	const char *t = qs_text(st, col);

	if (job_state_parse(t, out))
		return err_set(e, ERR_CORRUPT, "queue %s: job %s has an unknown state '%s'",
			       s->path, job, t ? t : "");
	return 0;
}

/* An id from a caller (maybe from a request): only job_id_new's form. */
static int qs_check_id(struct qs *s, const char *id, struct err *e)
{
	struct buf b = BUF_INIT;
	int r;

	if (job_id_valid(id))
		return 0;
	str_escape(id ? id : "", &b);
	r = err_set(e, ERR_USAGE, "queue %s: '%.40s' is not a job id (ids look like"
		    " 20261207-061500-3fa9c2d1)", s->path, b.data);
	buf_release(&b);
	return r;
}

/* Whether a fixed-size string field is terminated and within its size. */
static bool qs_fits(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

static int qs_no_job(struct qs *s, const char *id, struct err *e)
{
	return err_set(e, ERR_NOTFOUND, "queue %s: no job %s", s->path, id);
}

/* Whether job `id` exists (ERR_NOTFOUND when not). */
static int qs_job_exists(struct qs *s, const char *id, const char *what, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int r = qs_check_id(s, id, e);

	if (!r)
		r = qs_prep(s, e, what, &st, "SELECT 1 FROM jobs WHERE id = ?1", "t", id);
	if (!r)
		r = qs_step(s, st, what, e);
	if (r == 0)
		r = qs_no_job(s, id, e);
	else if (r > 0)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

/* Job `id`'s row: `cols` (", a, b") after its state, which is parsed
 * into *state. The caller finalizes *st, positioned on the row. */
static int qs_job_row(struct qs *s, const char *id, const char *cols, const char *what,
		      sqlite3_stmt **st, enum job_state *state, struct err *e)
{
	char sql[256];
	int r;

	snprintf(sql, sizeof(sql), "SELECT state%s FROM jobs WHERE id = ?1", cols);
	r = qs_prep(s, e, what, st, sql, "t", id);
	if (!r)
		r = qs_step(s, *st, what, e);
	if (r == 0)
		r = qs_no_job(s, id, e);
	if (r > 0)
		r = qs_state(s, *st, 0, id, state, e);
	return r;
}

/* ---- the lease ---------------------------------------------------------- */

struct qs_held {
	enum job_state state;
	int attempt;
};

/* Inside a write transaction: whether `l` still holds its job. The owner
 * and the fence must match; with `live`, the lease must not have expired
 * either. */
static int qs_hold(struct qs *s, const struct job_lease *l, long long now, bool live,
		   struct qs_held *h, struct err *e)
{
	const char *what = "checking a lease";
	sqlite3_stmt *st = NULL;
	enum job_state state;
	const char *owner;
	long long fence, expires;
	int r;

	if (!l || !qs_fits(l->job, sizeof(l->job)) || !qs_fits(l->owner, sizeof(l->owner)))
		return err_set(e, ERR_USAGE, "queue %s: a write for a job needs its lease",
			       s->path);
	r = qs_job_row(s, l->job, ", lease_owner, lease_fence, lease_expires_ms, attempt", what,
		       &st, &state, e);
	if (r)
		goto out;
	owner = qs_text(st, 1);
	fence = sqlite3_column_int64(st, 2);
	expires = sqlite3_column_int64(st, 3);
	if (!owner) {
		r = err_set(e, ERR_CHANGED,
			    "queue %s: job %s: this worker no longer holds it (its lease was"
			    " released, or a cancel or retry took it back); it must write nothing"
			    " more for it", s->path, l->job);
		goto out;
	}
	if (fence != l->fence) {
		r = err_set(e, ERR_CHANGED,
			    "queue %s: job %s: its lease passed to another worker (%s, fence %lld;"
			    " this one held fence %lld); this worker must write nothing more"
			    " for it", s->path, l->job, owner, fence, l->fence);
		goto out;
	}
	if (strcmp(owner, l->owner)) {
		r = err_set(e, ERR_CHANGED,
			    "queue %s: job %s: its lease passed to another worker (%s, not %s)",
			    s->path, l->job, owner, l->owner);
		goto out;
	}
	if (live && expires <= now) {
		r = err_set(e, ERR_CHANGED,
			    "queue %s: job %s: its lease expired %lld ms ago and may pass to"
			    " another worker; renew it before writing", s->path, l->job,
			    now - expires);
		goto out;
	}
	if (h) {
		h->state = state;
		h->attempt = sqlite3_column_int(st, 4);
	}
out:
	sqlite3_finalize(st);
	return r;
}

/* ---- events ------------------------------------------------------------- */

/* Inside a write transaction: append to the job's log. */
static int qs_event_add(struct qs *s, const char *job, const char *kind, const json_t *data,
			long long now, long long *id, struct err *e)
{
	const char *what = "appending an event";
	sqlite3_stmt *st = NULL;
	json_t *empty = data ? NULL : json_object();
	long long seq;
	int r;

	r = qs_prep(s, e, what, &st,
		    "UPDATE jobs SET event_seq = event_seq + 1 WHERE id = ?1 RETURNING event_seq",
		    "t", job);
	if (!r)
		r = qs_step(s, st, what, e);
	if (r == 0)
		r = qs_no_job(s, job, e);
	if (r < 0)
		goto out;
	seq = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	r = qs_run(s, e, what, NULL,
		   "INSERT INTO events (job, seq, at_ms, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
		   "tiitj", job, seq, now, kind, data ? data : empty);
	if (!r && id)
		*id = sqlite3_last_insert_rowid(s->db);
out:
	sqlite3_finalize(st);
	json_decref(empty);
	return r;
}

/* A "state" event; from < 0 for a new job. */
static int qs_state_event(struct qs *s, const char *job, int from, enum job_state to,
			  const char *reason, long long now, struct err *e)
{
	json_t *data = json_pack("{s:o, s:s, s:o}",
				 "from", from < 0 ? json_null()
						  : json_string(job_state_name((enum job_state)from)),
				 "to", job_state_name(to),
				 "reason", reason && *reason ? json_string(reason) : json_null());
	int r = qs_event_add(s, job, "state", data, now, NULL, e);

	json_decref(data);
	return r;
}

/* ---- opening and migrating ---------------------------------------------- */

struct qs_migration {
	int version;
	char *sql;
};

/* The steps of schema_sqlite.sql: each "-- migration N" line starts step N,
 * numbered 1, 2, ... in order. */
static int qs_migrations(struct qs_migration *m, int *n, struct err *e)
{
	static const char marker[] = "-- migration ";
	const char *text = (const char *)jobs_schema_sqlite;
	const char *end = text + jobs_schema_sqlite_len, *p = text, *body = NULL;

	*n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;

		if (!strncmp(p, marker, sizeof(marker) - 1)) {
			char num[16];
			long long v = 0;
			size_t len = (size_t)((nl ? nl : end) - p) - (sizeof(marker) - 1);

			snprintf(num, sizeof(num), "%.*s", (int)len, p + sizeof(marker) - 1);
			if (str_to_i64(str_trim(num), &v) || v != *n + 1 || *n == QS_MAX_MIGRATIONS)
				return err_set(e, ERR_FAIL, "the queue's schema has a migration"
					       " numbered '%s' after %d (a bug in ferry)", num, *n);
			if (*n)
				m[*n - 1].sql = xstrndup(body, (size_t)(p - body));
			m[*n].version = (int)v;
			m[*n].sql = NULL;
			(*n)++;
			body = next;
		}
		p = next;
	}
	if (*n)
		m[*n - 1].sql = xstrndup(body, (size_t)(end - body));
	return 0;
}

/* Whether the file is a ferry queue (or empty) that this ferry can use;
 * *version is its schema version. One statement reads all three, so one
 * snapshot: another connection may be migrating the file right now. */
static int qs_identify(struct qs *s, int known, int *version, struct err *e)
{
	const char *what = "reading the schema version";
	sqlite3_stmt *st = NULL;
	int app = 0, tables = 0;
	int r = qs_prep(s, e, what, &st,
			"SELECT (SELECT user_version FROM pragma_user_version),"
			" (SELECT application_id FROM pragma_application_id),"
			" (SELECT count(*) FROM sqlite_schema)", NULL);

	if (!r)
		r = qs_step(s, st, what, e);
	if (r > 0) {
		r = 0;
		*version = sqlite3_column_int(st, 0);
		app = sqlite3_column_int(st, 1);
		tables = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	if (r)
		return r;
	if (app != QS_APP_ID && (app || *version || tables))
		return err_set(e, ERR_FORMAT, "queue %s is a SQLite database of another program,"
			       " not a ferry queue; the queue location must name a ferry queue file",
			       s->path);
	if (*version > known)
		return err_set(e, ERR_FORMAT, "queue %s has schema version %d, newer than the %d"
			       " this ferry knows: a newer ferry wrote it, and only that one can"
			       " use it", s->path, *version, known);
	return 0;
}

/* Take the file from `version` to the last of the n steps, in one
 * transaction. */
static int qs_migrate(struct qs *s, const struct qs_migration *m, int n, int version,
		      struct err *e)
{
	const char *what = "migrating the schema";
	char sql[96];
	int r;

	if (version == n)
		return 0;
	/* Another connection may be migrating too: look again holding the lock. */
	r = qs_begin(s, what, e);
	if (r)
		return r;
	r = qs_identify(s, n, &version, e);
	for (int i = version; i < n && !r; i++) {
		int rc = sqlite3_exec(s->db, m[i].sql, NULL, NULL, NULL);

		if (rc != SQLITE_OK) {
			r = qs_fail(s, e, rc, what);
			err_prefix(e, "migration %d", m[i].version);
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d",
		 QS_APP_ID, n);
	if (!r && version < n)
		r = qs_exec(s, sql, what, e);
	return qs_end(s, r, what, e);
}

/* Switching a file to WAL needs it alone for a moment, and SQLite answers
 * SQLITE_BUSY at once, without waiting, while another connection opens it
 * too: try again until the busy timeout. */
static int qs_wal(struct qs *s, struct err *e)
{
	long long deadline = clock_mono_ms() + QS_BUSY_MS;
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc, r;

	for (;;) {
		r = qs_prep(s, e, "opening", &st, "PRAGMA journal_mode = WAL", NULL);
		if (r)
			return r;
		rc = sqlite3_step(st);
		if ((rc & 0xff) != SQLITE_BUSY || clock_mono_ms() >= deadline)
			break;
		sqlite3_finalize(st);
		clock_sleep_ms(10, NULL);
	}
	if (rc != SQLITE_ROW) {
		r = qs_fail(s, e, rc, "opening");
		goto out;
	}
	mode = qs_text(st, 0);
	if (!mode || strcmp(mode, "wal"))
		r = err_set(e, ERR_IO, "queue %s: cannot use a write-ahead log (journal mode %s);"
			    " keep the queue on a local file system", s->path, mode ? mode : "?");
out:
	sqlite3_finalize(st);
	return r;
}

static void qs_close(struct queue *q)
{
	struct qs *s = qs_of(q);

	if (!s)
		return;
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

static const struct queue_ops qs_ops;

int queue_sqlite_open(struct queue **q, const char *path, struct err *e)
{
	struct qs *s = xcalloc(1, sizeof(*s));
	struct qs_migration m[QS_MAX_MIGRATIONS];
	int n = 0, version = 0, rc, r;

	*q = NULL;
	s->q.ops = &qs_ops;
	s->path = xstrdup(path);
	r = qs_migrations(m, &n, e);
	if (r)
		goto out;
	r = fsx_mkdir_parent(path, 0700, e);
	if (r) {
		err_prefix(e, "queue %s", path);
		goto out;
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		r = qs_fail(s, e, rc, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, QS_BUSY_MS);
	/* Before anything is written: a file that is not a database, or is
	 * another program's, is left as it was. */
	r = qs_identify(s, n, &version, e);
	if (r)
		goto out;
	r = qs_wal(s, e);
	if (r)
		goto out;
	/* FULL: the intent of a paid act must survive a power cut too, and a
	 * commit's one fsync is cheap at the queue's rate of writes.
	 * trusted_schema stays on: the tables' CHECKs call json_valid(), which
	 * SQLite 3.40 does not count as innocuous, and the file lives in the
	 * user's own private folder. */
	r = qs_exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", "opening", e);
	if (!r)
		r = qs_migrate(s, m, n, version, e);
out:
	for (int i = 0; i < n; i++)
		free(m[i].sql);
	if (r) {
		qs_close(&s->q);
		return r;
	}
	*q = &s->q;
	return 0;
}

/* ---- jobs --------------------------------------------------------------- */

static int qs_read_job(struct qs *s, sqlite3_stmt *st, long long now, struct queue_job *j,
		       struct err *e)
{
	const char *owner = qs_text(st, 8);
	long long expires = sqlite3_column_int64(st, 9);
	int r;

	memset(j, 0, sizeof(*j));
	qs_copy(j->id, sizeof(j->id), st, 0);
	r = qs_state(s, st, 1, j->id, &j->state, e);
	qs_copy(j->reason, sizeof(j->reason), st, 2);
	if (!r)
		r = qs_json(s, st, 3, j->id, "spec", &j->spec, e);
	if (!r)
		r = qs_json(s, st, 4, j->id, "data", &j->data, e);
	j->attempt = sqlite3_column_int(st, 5);
	j->created_at = sqlite3_column_int64(st, 6) / 1000;
	j->updated_at = sqlite3_column_int64(st, 7) / 1000;
	if (owner && expires > now) {
		snprintf(j->lease_owner, sizeof(j->lease_owner), "%s", owner);
		j->lease_expires = expires / 1000;
	}
	j->cancel_requested = sqlite3_column_int(st, 10) != 0;
	j->cost_usd = sqlite3_column_double(st, 11);
	if (r)
		queue_job_release(j);
	return r;
}

static int qs_submit(struct queue *q, const char *id, const json_t *spec, struct err *e)
{
	const char *what = "submitting a job";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	long long now = 0;
	int r = qs_check_id(s, id, e);

	if (r)
		return r;
	if (!json_is_object(spec))
		return err_set(e, ERR_USAGE, "queue %s: job %s: the spec must be a JSON object",
			       s->path, id);
	r = qs_begin(s, what, e);
	if (r)
		return r;
	/* Creation times are strictly increasing, so that claim and list keep
	 * the order jobs came in, within a millisecond too. */
	r = qs_prep(s, e, what, &st,
		    "INSERT INTO jobs (id, state, spec, created_ms, updated_ms)"
		    " SELECT ?1, 'QUEUED', ?2, t, t FROM (SELECT max(?3,"
		    " coalesce(max(created_ms) + 1, 0)) AS t FROM jobs) RETURNING created_ms",
		    "tji", id, spec, qs_now_ms());
	if (!r)
		r = qs_step(s, st, what, e);
	if (r < 0 && sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		r = err_set(e, ERR_EXISTS, "queue %s: job %s already exists", s->path, id);
	if (r > 0)
		now = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (r > 0)
		r = qs_state_event(s, id, -1, JOB_QUEUED, NULL, now, e);
	return qs_end(s, r, what, e);
}

static int qs_check_owner(struct qs *s, const char *owner, int lease_s, struct err *e)
{
	if (!owner || !*owner || strnlen(owner, sizeof(((struct job_lease *)0)->owner)) ==
	    sizeof(((struct job_lease *)0)->owner))
		return err_set(e, ERR_USAGE, "queue %s: a lease owner must be 1 to %zu bytes",
			       s->path, sizeof(((struct job_lease *)0)->owner) - 1);
	if (lease_s <= 0)
		return err_set(e, ERR_USAGE, "queue %s: a lease must last at least a second, not %d",
			       s->path, lease_s);
	return 0;
}

static int qs_claim(struct queue *q, const char *job, const char *owner, int lease_s,
		    struct job_lease *l, struct err *e)
{
	const char *what = "claiming a job";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	long long now = 0, expires = 0;
	char id[JOB_ID_MAX];
	int r = qs_check_owner(s, owner, lease_s, e);

	if (!r && job)
		r = qs_check_id(s, job, e);
	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	expires = now + lease_s * 1000LL;
	if (job) {
		enum job_state state;

		r = qs_job_row(s, job, ", lease_owner, lease_expires_ms", what, &st, &state, e);
		if (r)
			goto out;
		if (job_state_terminal(state)) {
			r = err_set(e, ERR_NOTFOUND, "queue %s: job %s has ended (%s)", s->path, job,
				    job_state_name(state));
			goto out;
		}
		if (qs_text(st, 1) && sqlite3_column_int64(st, 2) > now) {
			r = err_set(e, ERR_EXISTS, "queue %s: job %s is held by %s for %lld s more",
				    s->path, job, qs_text(st, 1),
				    (sqlite3_column_int64(st, 2) - now + 999) / 1000);
			goto out;
		}
		snprintf(id, sizeof(id), "%s", job);
	} else {
		r = qs_prep(s, e, what, &st,
			    "SELECT id FROM jobs WHERE state NOT IN " QS_TERMINAL
			    " AND (lease_owner IS NULL OR lease_expires_ms <= ?1)"
			    " ORDER BY created_ms, id LIMIT 1", "i", now);
		if (!r)
			r = qs_step(s, st, what, e);
		if (r == 0)
			r = err_set(e, ERR_NOTFOUND, "queue %s: no job is waiting for a worker",
				    s->path);
		if (r < 0)
			goto out;
		qs_copy(id, sizeof(id), st, 0);
	}
	sqlite3_finalize(st);
	st = NULL;
	r = qs_prep(s, e, what, &st,
		    "UPDATE jobs SET lease_owner = ?2, lease_expires_ms = ?3,"
		    " lease_fence = lease_fence + 1 WHERE id = ?1 RETURNING lease_fence",
		    "tti", id, owner, expires);
	if (!r)
		r = qs_step(s, st, what, e);
	if (r == 0)
		r = qs_no_job(s, id, e);
	if (r < 0)
		goto out;
	r = 0;
	memset(l, 0, sizeof(*l));
	snprintf(l->job, sizeof(l->job), "%s", id);
	snprintf(l->owner, sizeof(l->owner), "%s", owner);
	l->fence = sqlite3_column_int64(st, 0);
	l->expires = expires / 1000;
out:
	sqlite3_finalize(st);
	return qs_end(s, r, what, e);
}

static int qs_renew(struct queue *q, struct job_lease *l, int lease_s, struct err *e)
{
	const char *what = "renewing a lease";
	struct qs *s = qs_of(q);
	long long now = 0, expires = 0;
	int r = qs_check_owner(s, l ? l->owner : NULL, lease_s, e);

	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	expires = now + lease_s * 1000LL;
	/* An expired lease nobody claimed is still this one: the fence shows
	 * that no other worker held the job in between. */
	r = qs_hold(s, l, now, false, NULL, e);
	if (!r)
		r = qs_run(s, e, what, NULL, "UPDATE jobs SET lease_expires_ms = ?2 WHERE id = ?1",
			   "ti", l->job, expires);
	r = qs_end(s, r, what, e);
	if (!r)
		l->expires = expires / 1000;
	return r;
}

static int qs_release(struct queue *q, const struct job_lease *l, struct err *e)
{
	const char *what = "releasing a lease";
	struct qs *s = qs_of(q);
	int r = qs_begin(s, what, e);

	if (r)
		return r;
	r = qs_hold(s, l, qs_now_ms(), false, NULL, e);
	if (!r)
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET lease_owner = NULL, lease_expires_ms = 0 WHERE id = ?1",
			   "t", l->job);
	return qs_end(s, r, what, e);
}

static int qs_abandon(struct queue *q, const char *id, const char *owner, struct err *e)
{
	const char *what = "taking a dead worker's lease";
	struct qs *s = qs_of(q);
	int changes = 0;
	int r = qs_check_id(s, id, e);

	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		return r;
	r = qs_run(s, e, what, &changes,
		   "UPDATE jobs SET lease_owner = NULL, lease_expires_ms = 0"
		   " WHERE id = ?1 AND lease_owner = ?2",
		   "tt", id, owner);
	if (!r && !changes)
		r = err_set(e, ERR_CHANGED, "queue %s: job %s is not held by %s", s->path, id,
			    owner);
	return qs_end(s, r, what, e);
}

static int qs_get(struct queue *q, const char *id, struct queue_job *j, struct err *e)
{
	const char *what = "reading a job";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	int r = qs_check_id(s, id, e);

	memset(j, 0, sizeof(*j));
	if (!r)
		r = qs_prep(s, e, what, &st, "SELECT " QS_JOB_COLS " FROM jobs WHERE id = ?1",
			    "t", id);
	if (!r)
		r = qs_step(s, st, what, e);
	if (r == 0)
		r = qs_no_job(s, id, e);
	else if (r > 0)
		r = qs_read_job(s, st, qs_now_ms(), j, e);
	sqlite3_finalize(st);
	return r;
}

static int qs_list(struct queue *q, const struct queue_filter *f, struct queue_job **v,
		   size_t *n, struct err *e)
{
	const char *what = "listing jobs";
	static const struct queue_filter none = { 0 };
	struct qs *s = qs_of(q);
	struct buf sql = BUF_INIT;
	sqlite3_stmt *st = NULL;
	long long now = qs_now_ms();
	size_t alloc = 0;
	int r = 0;

	*v = NULL;
	*n = 0;
	if (!f)
		f = &none;
	buf_puts(&sql, "SELECT " QS_JOB_COLS " FROM jobs");
	if (f->states && f->nstates) {
		buf_puts(&sql, " WHERE state IN (");
		for (size_t i = 0; i < f->nstates; i++) {
			if ((unsigned)f->states[i] >= JOB_STATE_COUNT) {
				r = err_set(e, ERR_USAGE, "queue %s: no job state %d", s->path,
					    (int)f->states[i]);
				goto out;
			}
			/* The names are this program's own constants. */
			buf_printf(&sql, "%s'%s'", i ? ", " : "", job_state_name(f->states[i]));
		}
		buf_puts(&sql, ")");
	} else if (!f->all) {
		buf_puts(&sql, " WHERE state NOT IN " QS_TERMINAL);
	}
	buf_puts(&sql, " ORDER BY created_ms DESC, id DESC");
	if (f->limit)
		buf_printf(&sql, " LIMIT %zu", f->limit);
	r = qs_prep(s, e, what, &st, sql.data, NULL);
	while (!r) {
		r = qs_step(s, st, what, e);
		if (r <= 0)
			break;
		ALLOC_GROW(*v, *n + 1, alloc);
		r = qs_read_job(s, st, now, &(*v)[*n], e);
		if (!r)
			(*n)++;
	}
out:
	sqlite3_finalize(st);
	buf_release(&sql);
	if (r) {
		queue_jobs_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return r;
}

static int qs_set_state(struct queue *q, const struct job_lease *l, enum job_state to,
			const char *reason, struct err *e)
{
	const char *what = "changing a job's state";
	struct qs *s = qs_of(q);
	long long now = 0;
	struct qs_held h;
	int r;

	if ((unsigned)to >= JOB_STATE_COUNT)
		return err_set(e, ERR_USAGE, "queue %s: no job state %d", s->path, (int)to);
	if (reason && (strlen(reason) >= sizeof(((struct queue_job *)0)->reason) ||
		       str_has_ctrl(reason) || !str_utf8_valid(reason, strlen(reason))))
		return err_set(e, ERR_USAGE, "queue %s: a job's reason must be under %zu printable"
			       " bytes", s->path, sizeof(((struct queue_job *)0)->reason));
	r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	r = qs_hold(s, l, now, true, &h, e);
	if (r)
		goto out;
	if (!job_state_can_move(h.state, to)) {
		r = err_set(e, ERR_USAGE, "queue %s: job %s cannot move from %s to %s", s->path,
			    l->job, job_state_name(h.state), job_state_name(to));
		goto out;
	}
	/* Back to QUEUED is a retry, however it comes. */
	if (to == JOB_QUEUED)
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET state = ?2, reason = coalesce(?3, ''), updated_ms = ?4,"
			   " attempt = attempt + 1, cancel_requested = 0 WHERE id = ?1",
			   "ttti", l->job, job_state_name(to), reason, now);
	else
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET state = ?2, reason = coalesce(?3, reason), updated_ms = ?4"
			   " WHERE id = ?1", "ttti", l->job, job_state_name(to), reason, now);
	if (!r) {
		char now_reason[sizeof(((struct queue_job *)0)->reason)];
		sqlite3_stmt *st = NULL;

		/* The event names the reason the job now has. */
		r = qs_prep(s, e, what, &st, "SELECT reason FROM jobs WHERE id = ?1", "t", l->job);
		if (!r)
			r = qs_step(s, st, what, e);
		if (r > 0) {
			qs_copy(now_reason, sizeof(now_reason), st, 0);
			r = qs_state_event(s, l->job, (int)h.state, to, now_reason, now, e);
		}
		sqlite3_finalize(st);
	}
out:
	return qs_end(s, r, what, e);
}

static int qs_set_data(struct queue *q, const struct job_lease *l, const json_t *data,
		       double cost_usd, struct err *e)
{
	const char *what = "recording a job's data";
	struct qs *s = qs_of(q);
	long long now = 0;
	int r;

	if (!isfinite(cost_usd) || cost_usd < 0)
		return err_set(e, ERR_USAGE, "queue %s: a job's cost must be a sum of dollars,"
			       " not %g", s->path, cost_usd);
	if (data && !json_is_object(data))
		return err_set(e, ERR_USAGE, "queue %s: a job's data must be a JSON object",
			       s->path);
	r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	r = qs_hold(s, l, now, true, NULL, e);
	if (!r)
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET data = coalesce(?2, data), cost_usd = ?3, updated_ms = ?4"
			   " WHERE id = ?1", "tjdi", l->job, data, cost_usd, now);
	return qs_end(s, r, what, e);
}

static int qs_request_cancel(struct queue *q, const char *id, struct err *e)
{
	const char *what = "cancelling a job";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	long long now = 0;
	enum job_state state;
	bool held, asked;
	int r = qs_check_id(s, id, e);

	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	r = qs_job_row(s, id, ", lease_owner, lease_expires_ms, cancel_requested", what, &st,
		       &state, e);
	if (r)
		goto out;
	held = qs_text(st, 1) && sqlite3_column_int64(st, 2) > now;
	asked = sqlite3_column_int(st, 3) != 0;
	if (job_state_terminal(state)) {
		r = err_set(e, ERR_EXISTS, "queue %s: job %s has already ended (%s)", s->path, id,
			    job_state_name(state));
	} else if (state == JOB_QUEUED && !held) {
		/* Nothing was done yet. Taking the lease back (a new fence) stops
		 * a worker whose lease ran out from reviving it. */
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET state = 'CANCELLED', reason = 'cancelled',"
			   " cancel_requested = 1, lease_owner = NULL, lease_expires_ms = 0,"
			   " lease_fence = lease_fence + 1, updated_ms = ?2 WHERE id = ?1",
			   "ti", id, now);
		if (!r)
			r = qs_state_event(s, id, (int)JOB_QUEUED, JOB_CANCELLED, "cancelled", now, e);
	} else if (!asked) {
		/* A worker holds it: it sees the mark and winds the job down. */
		r = qs_run(s, e, what, NULL,
			   "UPDATE jobs SET cancel_requested = 1, updated_ms = ?2 WHERE id = ?1",
			   "ti", id, now);
		if (!r)
			r = qs_event_add(s, id, "cancel", NULL, now, NULL, e);
	}
out:
	sqlite3_finalize(st);
	return qs_end(s, r, what, e);
}

static int qs_retry(struct queue *q, const char *id, struct err *e)
{
	const char *what = "retrying a job";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	long long now = 0;
	enum job_state state;
	int r = qs_check_id(s, id, e);

	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	r = qs_job_row(s, id, "", what, &st, &state, e);
	if (r)
		goto out;
	if (!job_state_terminal(state)) {
		r = err_set(e, ERR_EXISTS, "queue %s: job %s has not ended (%s); cancel it first",
			    s->path, id, job_state_name(state));
		goto out;
	}
	if (!job_state_can_move(state, JOB_QUEUED)) {
		r = err_set(e, ERR_USAGE, "queue %s: job %s %s; submit it again to run it again",
			    s->path, id, job_state_name(state));
		goto out;
	}
	/* Taken from any worker still holding it: its writes fail from now. */
	r = qs_run(s, e, what, NULL,
		   "UPDATE jobs SET state = 'QUEUED', reason = '', attempt = attempt + 1,"
		   " cancel_requested = 0, lease_owner = NULL, lease_expires_ms = 0,"
		   " lease_fence = lease_fence + 1, updated_ms = ?2 WHERE id = ?1", "ti", id, now);
	if (!r)
		r = qs_state_event(s, id, (int)state, JOB_QUEUED, "retry", now, e);
out:
	sqlite3_finalize(st);
	return qs_end(s, r, what, e);
}

/* ---- steps -------------------------------------------------------------- */

static int qs_check_word(struct qs *s, const char *what, const char *v, size_t max,
			 struct err *e)
{
	if (!v || !*v || strlen(v) >= max || str_has_ctrl(v))
		return err_set(e, ERR_USAGE, "queue %s: %s must be 1 to %zu printable bytes",
			       s->path, what, max - 1);
	return 0;
}

static int qs_step_begin(struct queue *q, const struct job_lease *l, const char *act,
			 const json_t *intent, long long *step, struct err *e)
{
	const char *what = "recording an intent";
	struct qs *s = qs_of(q);
	json_t *empty = intent ? NULL : json_object();
	long long now = 0;
	struct qs_held h;
	int r = qs_check_word(s, "an act's name", act, 64, e);

	if (!r)
		r = qs_begin(s, what, e);
	if (r)
		goto out;
	now = qs_now_ms();
	r = qs_hold(s, l, now, true, &h, e);
	if (!r)
		r = qs_run(s, e, what, NULL,
			   "INSERT INTO steps (job, attempt, fence, state, act, intent, started_ms)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", "tnittji", l->job, h.attempt,
			   l->fence, job_state_name(h.state), act, intent ? intent : empty, now);
	if (!r && step)
		*step = sqlite3_last_insert_rowid(s->db);
	r = qs_end(s, r, what, e);
out:
	json_decref(empty);
	return r;
}

static int qs_step_end(struct queue *q, const struct job_lease *l, long long step,
		       const json_t *outcome, struct err *e)
{
	const char *what = "recording an outcome";
	struct qs *s = qs_of(q);
	json_t *empty = outcome ? NULL : json_object();
	sqlite3_stmt *st = NULL;
	long long now = 0;
	int changes = 0;
	int r = qs_begin(s, what, e);

	if (r)
		goto out;
	now = qs_now_ms();
	r = qs_hold(s, l, now, true, NULL, e);
	if (!r)
		r = qs_run(s, e, what, &changes,
			   "UPDATE steps SET outcome = ?3, ended_ms = ?4"
			   " WHERE id = ?1 AND job = ?2 AND ended_ms IS NULL", "itji",
			   step, l->job, outcome ? outcome : empty, now);
	if (!r && !changes) {
		r = qs_prep(s, e, what, &st, "SELECT 1 FROM steps WHERE id = ?1 AND job = ?2",
			    "it", step, l->job);
		if (!r)
			r = qs_step(s, st, what, e);
		if (r == 0)
			r = err_set(e, ERR_NOTFOUND, "queue %s: job %s has no step %lld", s->path,
				    l->job, step);
		else if (r > 0)
			r = err_set(e, ERR_EXISTS, "queue %s: step %lld of job %s has already"
				    " ended", s->path, step, l->job);
		sqlite3_finalize(st);
	}
	r = qs_end(s, r, what, e);
out:
	json_decref(empty);
	return r;
}

static json_t *qs_int_or_null(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL
		       ? json_null() : json_integer(sqlite3_column_int64(st, col));
}

static int qs_steps(struct queue *q, const char *id, json_t **out, struct err *e)
{
	const char *what = "reading a job's steps";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	int r = qs_job_exists(s, id, what, e);

	*out = NULL;
	if (!r)
		r = qs_prep(s, e, what, &st,
			    "SELECT id, state, act, intent, outcome, started_ms, ended_ms, attempt,"
			    " fence FROM steps WHERE job = ?1 ORDER BY id", "t", id);
	while (!r) {
		json_t *intent = NULL, *outcome = NULL;

		r = qs_step(s, st, what, e);
		if (r <= 0)
			break;
		r = qs_json(s, st, 3, id, "intent", &intent, e);
		if (!r)
			r = qs_json(s, st, 4, id, "outcome", &outcome, e);
		if (r) {
			json_decref(intent);
			break;
		}
		json_array_append_new(list, json_pack(
			"{s:I, s:s, s:s, s:o, s:o, s:I, s:o, s:i, s:I}",
			"id", (json_int_t)sqlite3_column_int64(st, 0),
			"state", qs_text(st, 1), "act", qs_text(st, 2),
			"intent", intent, "outcome", outcome,
			"started_at", (json_int_t)sqlite3_column_int64(st, 5),
			"ended_at", qs_int_or_null(st, 6),
			"attempt", sqlite3_column_int(st, 7),
			"fence", (json_int_t)sqlite3_column_int64(st, 8)));
	}
	sqlite3_finalize(st);
	if (r)
		json_decref(list);
	else
		*out = list;
	return r;
}

/* ---- instances ---------------------------------------------------------- */

static int qs_instance_check(struct qs *s, const struct job_lease *l,
			     struct queue_instance *in, struct err *e)
{
	if (!in)
		return err_set(e, ERR_USAGE, "queue %s: no instance given", s->path);
	if (!qs_fits(in->job, sizeof(in->job)) || !qs_fits(in->label, sizeof(in->label)) ||
	    !qs_fits(in->provider, sizeof(in->provider)) ||
	    !qs_fits(in->left_reason, sizeof(in->left_reason)))
		return err_set(e, ERR_USAGE, "queue %s: an instance field is not a terminated"
			       " string", s->path);
	if (l && in->job[0] && strcmp(in->job, l->job))
		return err_set(e, ERR_USAGE, "queue %s: an instance of job %s cannot be written"
			       " under the lease of job %s", s->path, in->job, l->job);
	if (!in->provider[0])
		return err_set(e, ERR_USAGE, "queue %s: an instance needs its provider", s->path);
	if (!isfinite(in->dph) || in->dph < 0)
		return err_set(e, ERR_USAGE, "queue %s: an instance's $/h must be a price, not %g",
			       s->path, in->dph);
	return 0;
}

/* The row that makes a second live instance impossible, for the message. */
static int qs_live_clash(struct qs *s, const char *job, struct err *e)
{
	const char *what = "recording an instance";
	sqlite3_stmt *st = NULL;
	long long row = 0, instance = 0;

	if (!qs_prep(s, NULL, what, &st, "SELECT id, instance_id FROM instances"
		     " WHERE job = ?1 AND destroyed_s = 0", "t", job) &&
	    qs_step(s, st, what, NULL) > 0) {
		row = sqlite3_column_int64(st, 0);
		instance = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return err_set(e, ERR_EXISTS, "queue %s: job %s already has a live instance (row %lld,"
		       " instance %lld); record that it was destroyed before renting another",
		       s->path, job, row, instance);
}

static int qs_instance_put(struct queue *q, const struct job_lease *l, struct queue_instance *in,
			   struct err *e)
{
	const char *what = "recording an instance";
	struct qs *s = qs_of(q);
	char label[JOB_LABEL_MAX];
	int changes = 0;
	int r = qs_instance_check(s, l, in, e);

	if (r)
		return r;
	r = qs_begin(s, what, e);
	if (r)
		return r;
	r = qs_hold(s, l, qs_now_ms(), true, NULL, e);
	if (r)
		goto out;
	if (in->label[0])
		snprintf(label, sizeof(label), "%s", in->label);
	else
		job_label(l->job, label);
	if (!in->row)
		r = qs_run(s, e, what, NULL,
			   "INSERT INTO instances (job, label, provider, instance_id, offer_id,"
			   " machine_id, dph, created_s, destroyed_s, left_reason)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", "tttiiidiit",
			   l->job, label, in->provider, in->instance_id, in->offer_id,
			   in->machine_id, in->dph, in->created_at, in->destroyed_at,
			   in->left_reason);
	else
		r = qs_run(s, e, what, &changes,
			   "UPDATE instances SET label = ?2, provider = ?3, instance_id = ?4,"
			   " offer_id = ?5, machine_id = ?6, dph = ?7, created_s = ?8,"
			   " destroyed_s = ?9, left_reason = ?10 WHERE id = ?11 AND job = ?1",
			   "tttiiidiiti", l->job, label, in->provider, in->instance_id,
			   in->offer_id, in->machine_id, in->dph, in->created_at,
			   in->destroyed_at, in->left_reason, in->row);
	if (r && sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
		r = qs_live_clash(s, l->job, e);
	else if (!r && in->row && !changes)
		r = err_set(e, ERR_NOTFOUND, "queue %s: job %s has no instance row %lld", s->path,
			    l->job, in->row);
	if (!r) {
		if (!in->row)
			in->row = sqlite3_last_insert_rowid(s->db);
		snprintf(in->job, sizeof(in->job), "%s", l->job);
		snprintf(in->label, sizeof(in->label), "%s", label);
	}
out:
	return qs_end(s, r, what, e);
}

static int qs_instances(struct queue *q, const char *id, struct queue_instance **v, size_t *n,
			struct err *e)
{
	const char *what = "reading instances";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int r = 0;

	*v = NULL;
	*n = 0;
	if (id)
		r = qs_job_exists(s, id, what, e);
	if (!r && id)
		r = qs_prep(s, e, what, &st, "SELECT " QS_INSTANCE_COLS " FROM instances"
			    " WHERE job = ?1 ORDER BY id", "t", id);
	else if (!r)
		r = qs_prep(s, e, what, &st, "SELECT " QS_INSTANCE_COLS " FROM instances"
			    " WHERE destroyed_s = 0 ORDER BY job, id", NULL);
	while (!r) {
		struct queue_instance *in;

		r = qs_step(s, st, what, e);
		if (r <= 0)
			break;
		r = 0;
		ALLOC_GROW(*v, *n + 1, alloc);
		in = &(*v)[(*n)++];
		memset(in, 0, sizeof(*in));
		in->row = sqlite3_column_int64(st, 0);
		qs_copy(in->job, sizeof(in->job), st, 1);
		qs_copy(in->label, sizeof(in->label), st, 2);
		qs_copy(in->provider, sizeof(in->provider), st, 3);
		in->instance_id = sqlite3_column_int64(st, 4);
		in->offer_id = sqlite3_column_int64(st, 5);
		in->machine_id = sqlite3_column_int64(st, 6);
		in->dph = sqlite3_column_double(st, 7);
		in->created_at = sqlite3_column_int64(st, 8);
		in->destroyed_at = sqlite3_column_int64(st, 9);
		qs_copy(in->left_reason, sizeof(in->left_reason), st, 10);
	}
	sqlite3_finalize(st);
	if (r) {
		free(*v);
		*v = NULL;
		*n = 0;
	}
	return r;
}

/* ---- artifacts ---------------------------------------------------------- */

static bool qs_sha256_ok(const char *hex)
{
	size_t i;

	for (i = 0; hex[i]; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	return i == 0 || i == 64;
}

static int qs_artifact_put(struct queue *q, const struct job_lease *l,
			   const struct queue_artifact *a, struct err *e)
{
	const char *what = "recording an artifact";
	struct qs *s = qs_of(q);
	long long now = 0;
	int r;

	if (!a || !a->path || !fsx_relpath_safe(a->path))
		return err_set(e, ERR_USAGE, "queue %s: an artifact's path must be relative, without"
			       " '.' or '..'", s->path);
	if (!qs_fits(a->job, sizeof(a->job)) || (l && a->job[0] && strcmp(a->job, l->job)))
		return err_set(e, ERR_USAGE, "queue %s: artifact %s is not job %s's", s->path,
			       a->path, l ? l->job : "?");
	if (a->size < 0 || !qs_fits(a->sha256, sizeof(a->sha256)) || !qs_sha256_ok(a->sha256))
		return err_set(e, ERR_USAGE, "queue %s: artifact %s needs a size and a SHA-256 of"
			       " 64 lowercase hex digits", s->path, a->path);
	/* Invariant 4: published only once its hash is known. */
	if (a->key && !a->sha256[0])
		return err_set(e, ERR_USAGE, "queue %s: artifact %s cannot be published without its"
			       " SHA-256", s->path, a->path);
	r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	r = qs_hold(s, l, now, true, NULL, e);
	if (!r)
		r = qs_run(s, e, what, NULL,
			   "INSERT INTO artifacts (job, path, size, sha256, local_path, key, url,"
			   " published_s, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
			   " ON CONFLICT (job, path) DO UPDATE SET size = excluded.size,"
			   " sha256 = excluded.sha256, local_path = excluded.local_path,"
			   " key = excluded.key, url = excluded.url,"
			   " published_s = excluded.published_s, updated_ms = excluded.updated_ms",
			   "ttittttii", l->job, a->path, a->size, a->sha256, a->local_path, a->key,
			   a->url, a->published_at, now);
	return qs_end(s, r, what, e);
}

static int qs_artifacts(struct queue *q, const char *id, struct queue_artifact **v, size_t *n,
			struct err *e)
{
	const char *what = "reading artifacts";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int r = qs_job_exists(s, id, what, e);

	*v = NULL;
	*n = 0;
	if (!r)
		r = qs_prep(s, e, what, &st, "SELECT " QS_ARTIFACT_COLS " FROM artifacts"
			    " WHERE job = ?1 ORDER BY path", "t", id);
	while (!r) {
		struct queue_artifact *a;

		r = qs_step(s, st, what, e);
		if (r <= 0)
			break;
		r = 0;
		ALLOC_GROW(*v, *n + 1, alloc);
		a = &(*v)[(*n)++];
		memset(a, 0, sizeof(*a));
		qs_copy(a->job, sizeof(a->job), st, 0);
		a->path = qs_dup(st, 1);
		a->size = sqlite3_column_int64(st, 2);
		qs_copy(a->sha256, sizeof(a->sha256), st, 3);
		a->local_path = qs_dup(st, 4);
		a->key = qs_dup(st, 5);
		a->url = qs_dup(st, 6);
		a->published_at = sqlite3_column_int64(st, 7);
	}
	sqlite3_finalize(st);
	if (r) {
		queue_artifacts_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return r;
}

/* ---- the event log ------------------------------------------------------ */

static int qs_event_append(struct queue *q, const struct job_lease *l, const char *job,
			   const char *kind, const json_t *data, long long *id, struct err *e)
{
	const char *what = "appending an event";
	struct qs *s = qs_of(q);
	long long now = 0;
	int r = qs_check_word(s, "an event's kind", kind,
			      sizeof(((struct queue_event *)0)->kind), e);

	if (r)
		return r;
	if (l && job && strcmp(job, l->job))
		return err_set(e, ERR_USAGE, "queue %s: an event of job %s cannot be written under"
			       " the lease of job %s", s->path, job, l->job);
	if (!l && !job)
		return err_set(e, ERR_USAGE, "queue %s: an event needs its job", s->path);
	if (!l) {
		r = qs_check_id(s, job, e);
		if (r)
			return r;
	}
	r = qs_begin(s, what, e);
	if (r)
		return r;
	now = qs_now_ms();
	if (l)
		r = qs_hold(s, l, now, true, NULL, e);
	if (!r)
		r = qs_event_add(s, l ? l->job : job, kind, data, now, id, e);
	return qs_end(s, r, what, e);
}

static int qs_events(struct queue *q, const char *id, long long after_id, size_t limit,
		     struct queue_event **v, size_t *n, struct err *e)
{
	const char *what = "reading events";
	struct qs *s = qs_of(q);
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int r = 0;

	*v = NULL;
	*n = 0;
	if (!limit)
		limit = QS_EVENTS_LIMIT;
	if (id)
		r = qs_job_exists(s, id, what, e);
	if (!r && id)
		r = qs_prep(s, e, what, &st, "SELECT id, seq, job, at_ms, kind, data FROM events"
			    " WHERE job = ?1 AND id > ?2 ORDER BY id LIMIT ?3", "tii", id,
			    after_id, (long long)limit);
	else if (!r)
		r = qs_prep(s, e, what, &st, "SELECT id, seq, job, at_ms, kind, data FROM events"
			    " WHERE id > ?1 ORDER BY id LIMIT ?2", "ii", after_id, (long long)limit);
	while (!r) {
		struct queue_event *ev;

		r = qs_step(s, st, what, e);
		if (r <= 0)
			break;
		ALLOC_GROW(*v, *n + 1, alloc);
		ev = &(*v)[*n];
		memset(ev, 0, sizeof(*ev));
		ev->id = sqlite3_column_int64(st, 0);
		ev->seq = sqlite3_column_int64(st, 1);
		qs_copy(ev->job, sizeof(ev->job), st, 2);
		ev->at = sqlite3_column_int64(st, 3);
		qs_copy(ev->kind, sizeof(ev->kind), st, 4);
		r = qs_json(s, st, 5, ev->job, "event", &ev->data, e);
		if (!r)
			(*n)++;
	}
	sqlite3_finalize(st);
	if (r) {
		queue_events_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return r;
}

static const struct queue_ops qs_ops = {
	.name = "sqlite",
	.close = qs_close,
	.submit = qs_submit,
	.claim = qs_claim,
	.renew = qs_renew,
	.release = qs_release,
	.get = qs_get,
	.list = qs_list,
	.set_state = qs_set_state,
	.set_data = qs_set_data,
	.request_cancel = qs_request_cancel,
	.retry = qs_retry,
	.step_begin = qs_step_begin,
	.step_end = qs_step_end,
	.abandon = qs_abandon,
	.steps = qs_steps,
	.instance_put = qs_instance_put,
	.instances = qs_instances,
	.artifact_put = qs_artifact_put,
	.artifacts = qs_artifacts,
	.event_append = qs_event_append,
	.events = qs_events,
};
