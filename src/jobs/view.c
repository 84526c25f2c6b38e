#include "jobs/view.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"

/* ---- loading ------------------------------------------------------------- */

/* Walk every event of the job once: count them, keep the state changes and
 * the newest progress sample. */
static int view_events(struct queue *q, const char *id, struct job_view *v, struct err *e)
{
	long long after = 0;

	for (;;) {
		struct queue_event *ev = NULL;
		size_t n = 0;
		int r = q->ops->events(q, id, after, 0, &ev, &n, e);

		if (r)
			return r;
		for (size_t i = 0; i < n; i++) {
			json_t *d = ev[i].data;

			v->nevents++;
			after = v->last_event = ev[i].id;
			if (!strcmp(ev[i].kind, "state")) {
				json_t *t = json_object();

				json_object_set_new(t, "at", json_integer(ev[i].at));
				json_object_set(t, "from", json_object_get(d, "from") ?: json_null());
				json_object_set(t, "to", json_object_get(d, "to") ?: json_null());
				json_object_set(t, "reason", json_object_get(d, "reason") ?: json_null());
				json_array_append_new(v->timeline, t);
			} else if (!strcmp(ev[i].kind, "progress") && json_is_object(d)) {
				json_decref(v->progress);
				v->progress = json_incref(d);
			}
		}
		queue_events_free(ev, n);
		if (!n)
			return 0;
	}
}

int job_view_load(struct queue *q, const char *id, struct job_view *v, struct err *e)
{
	int r;

	memset(v, 0, sizeof(*v));
	v->timeline = json_array();
	r = q->ops->get(q, id, &v->job, e);
	if (!r)
		r = q->ops->instances(q, id, &v->instances, &v->ninstances, e);
	if (!r)
		r = q->ops->artifacts(q, id, &v->artifacts, &v->nartifacts, e);
	if (!r)
		r = view_events(q, id, v, e);
	if (r)
		job_view_release(v);
	return r;
}

void job_view_release(struct job_view *v)
{
	queue_job_release(&v->job);
	free(v->instances);
	queue_artifacts_free(v->artifacts, v->nartifacts);
	json_decref(v->timeline);
	json_decref(v->progress);
	memset(v, 0, sizeof(*v));
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *view_text_or_null(const char *s)
{
	return s && *s ? json_string_escaped(s) : json_null();
}

static json_t *view_int_or_null(long long n)
{
	return n ? json_integer(n) : json_null();
}

json_t *job_view_summary_json(const struct queue_job *j)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "name", view_text_or_null(json_str(j->spec, "name", NULL)));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	json_object_set_new(o, "reason", view_text_or_null(j->reason));
	json_object_set_new(o, "attempt", json_integer(j->attempt));
	json_object_set_new(o, "created_at", json_integer(j->created_at));
	json_object_set_new(o, "updated_at", json_integer(j->updated_at));
	json_object_set_new(o, "cost_usd", json_real(j->cost_usd));
	json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
	json_object_set_new(o, "worker", view_text_or_null(j->lease_owner));
	json_object_set_new(o, "spec", j->spec ? json_deep_copy(j->spec) : json_null());
	return o;
}

static json_t *view_instance_json(const struct queue_instance *in)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", view_int_or_null(in->instance_id));
	json_object_set_new(o, "label", json_string_escaped(in->label));
	json_object_set_new(o, "provider", json_string_escaped(in->provider));
	json_object_set_new(o, "offer_id", view_int_or_null(in->offer_id));
	json_object_set_new(o, "machine_id", view_int_or_null(in->machine_id));
	json_object_set_new(o, "dph", json_real(in->dph));
	json_object_set_new(o, "created_at", view_int_or_null(in->created_at));
	json_object_set_new(o, "destroyed_at", view_int_or_null(in->destroyed_at));
	json_object_set_new(o, "left_reason", view_text_or_null(in->left_reason));
	return o;
}

static json_t *view_artifact_json(const struct queue_artifact *a)
{
	json_t *o = json_object();

	json_object_set_new(o, "path", view_text_or_null(a->path));
	json_object_set_new(o, "size", json_integer(a->size));
	json_object_set_new(o, "sha256", view_text_or_null(a->sha256));
	json_object_set_new(o, "local_path", view_text_or_null(a->local_path));
	json_object_set_new(o, "key", view_text_or_null(a->key));
	json_object_set_new(o, "url", view_text_or_null(a->url));
	json_object_set_new(o, "published_at", view_int_or_null(a->published_at));
	return o;
}

/* How an ended job ended: its state and reason, and the message run.c
 * kept in its data ("ending"). */
static json_t *view_result_json(const struct queue_job *j)
{
	json_t *end = json_object_get(j->data, "ending");

	if (!job_state_terminal(j->state))
		return json_null();
	return json_pack("{s:s, s:o, s:o}", "state", job_state_name(j->state), "reason",
			 view_text_or_null(j->reason), "message",
			 view_text_or_null(json_str(end, "message", NULL)));
}

json_t *job_view_json(const struct job_view *v)
{
	json_t *o = job_view_summary_json(&v->job), *list = json_array();

	for (size_t i = 0; i < v->ninstances; i++)
		json_array_append_new(list, view_instance_json(&v->instances[i]));
	json_object_set_new(o, "instances", list);
	list = json_array();
	for (size_t i = 0; i < v->nartifacts; i++)
		json_array_append_new(list, view_artifact_json(&v->artifacts[i]));
	json_object_set_new(o, "artifacts", list);
	json_object_set(o, "timeline", v->timeline ? v->timeline : json_array());
	json_object_set(o, "progress", v->progress ? v->progress : json_null());
	json_object_set_new(o, "events", json_integer(v->nevents));
	json_object_set_new(o, "last_event", json_integer(v->last_event));
	json_object_set_new(o, "result", view_result_json(&v->job));
	return o;
}

/* ---- finding a job ---------------------------------------------------------- */

int job_view_resolve(struct queue *q, const char *arg, char id[JOB_ID_MAX], struct err *e)
{
	const struct queue_filter all = { .all = true };
	struct queue_job *v = NULL;
	struct buf names = BUF_INIT, shown = BUF_INIT;
	size_t n = 0, hits = 0, len = strlen(arg), first = 0;
	int r;

	if (!len || len >= JOB_ID_MAX || strspn(arg, "0123456789abcdef-") != len) {
		str_escape(arg, &shown);
		r = err_set(e, ERR_USAGE, "'%.40s' is not a job id or the start of one (ids look "
			    "like 20261207-061500-3fa9c2d1)", shown.data);
		buf_release(&shown);
		return r;
	}
	if (job_id_valid(arg)) {
		struct queue_job j;

		r = q->ops->get(q, arg, &j, e);
		if (!r)
			snprintf(id, JOB_ID_MAX, "%s", j.id);
		queue_job_release(&j);
		return r;
	}
	r = q->ops->list(q, &all, &v, &n, e);
	for (size_t i = 0; !r && i < n; i++) {
		if (strncmp(v[i].id, arg, len))
			continue;
		if (!hits++)
			first = i;
		if (hits <= 10)
			buf_printf(&names, "%s%s", hits > 1 ? ", " : "", v[i].id);
	}
	if (r)
		goto out;
	if (!hits)
		r = err_set(e, ERR_NOTFOUND, "no job's id starts with %s", arg);
	else if (hits > 1)
		r = err_set(e, ERR_USAGE, "%s is the start of %zu jobs' ids: %s%s (give more of it)",
			    arg, hits, names.data, hits > 10 ? ", ..." : "");
	else
		snprintf(id, JOB_ID_MAX, "%s", v[first].id);
out:
	queue_jobs_free(v, n);
	buf_release(&names);
	return r;
}

/* ---- lines for people --------------------------------------------------------- */

static double view_number(const json_t *data, const char *key)
{
	const json_t *x = json_object_get(data, key);

	return json_is_number(x) ? json_number_value(x) : NAN;
}

void job_progress_read(const json_t *data, struct job_progress *p)
{
	const json_t *step = json_object_get(data, "step"), *total = json_object_get(data, "total");

	p->step = json_is_integer(step) ? (long long)json_integer_value(step) : -1;
	p->total = json_is_integer(total) ? (long long)json_integer_value(total) : -1;
	p->loss = view_number(data, "loss");
	p->rate_s_per_it = view_number(data, "rate_s_per_it");
	p->eta_s = view_number(data, "eta_s");
}

void job_view_duration(double seconds, char *out, size_t n)
{
	long long s;

	if (!isfinite(seconds) || seconds < 0 || seconds > 1e12) {
		snprintf(out, n, "-");
		return;
	}
	s = (long long)(seconds + 0.5);
	if (s < 60)
		snprintf(out, n, "%llds", s);
	else if (s < 3600)
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* Step/total (with a bar of `width` cells, 0: none), rate, loss, ETA. */
static void view_progress(const struct job_progress *p, int width, struct buf *out)
{
	char eta[32];

	if (p->total > 0 && p->step >= 0) {
		long long step = p->step > p->total ? p->total : p->step;
		int fill = (int)(step * width / p->total);

		if (width > 0) {
			buf_puts(out, " [");
			for (int i = 0; i < width; i++)
				buf_putc(out, i < fill ? '#' : '.');
			buf_putc(out, ']');
		}
		buf_printf(out, " %lld/%lld", p->step, p->total);
	} else if (p->step >= 0) {
		buf_printf(out, " step %lld", p->step);
	}
	if (isfinite(p->rate_s_per_it) && p->rate_s_per_it > 0) {
		if (p->rate_s_per_it < 1)
			buf_printf(out, "  %.2f it/s", 1 / p->rate_s_per_it);
		else
			buf_printf(out, "  %.2f s/it", p->rate_s_per_it);
	}
	if (isfinite(p->loss))
		buf_printf(out, "  loss %.4g", p->loss);
	if (isfinite(p->eta_s)) {
		job_view_duration(p->eta_s, eta, sizeof(eta));
		buf_printf(out, "  ETA %s", eta);
	}
}

void job_view_status(enum job_state state, const struct job_progress *p, double cost_usd,
		     double estimate_usd, int width, struct buf *out)
{
	buf_printf(out, "%-10s", job_state_name(state));
	if (p)
		view_progress(p, width, out);
	buf_printf(out, "  $%.2f", cost_usd);
	if (estimate_usd > 0)
		buf_printf(out, " of ~$%.2f", estimate_usd);
}

/* A field of an event's data, escaped, or nothing. */
static void view_put(struct buf *out, const char *before, const json_t *data, const char *key)
{
	const char *t = json_str(data, key, NULL);

	if (!t || !*t)
		return;
	buf_puts(out, before);
	str_escape(t, out);
}

void job_view_event_line(const struct queue_event *ev, struct buf *out)
{
	time_t at = (time_t)(ev->at / 1000);
	const json_t *d = ev->data;
	struct job_progress p;
	struct tm tm;
	char when[32];

	gmtime_r(&at, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(out, "%s %s ", when, ev->job);
	str_escape(ev->kind, out);
	if (!strcmp(ev->kind, "state")) {
		view_put(out, " ", d, "from");
		view_put(out, json_str(d, "from", NULL) ? " -> " : " ", d, "to");
		if (json_str(d, "reason", NULL) && *json_str(d, "reason", NULL)) {
			view_put(out, " (", d, "reason");
			buf_putc(out, ')');
		}
	} else if (!strcmp(ev->kind, "progress")) {
		job_progress_read(d, &p);
		view_progress(&p, 0, out);
	} else if (!strcmp(ev->kind, "failure")) {
		view_put(out, " ", d, "state");
		view_put(out, " ", d, "reason");
		view_put(out, ": ", d, "message");
	} else if (!strcmp(ev->kind, "warning")) {
		view_put(out, " ", d, "code");
		view_put(out, ": ", d, "message");
	} else if (json_is_object(d) && json_object_size(d)) {
		struct buf j = BUF_INIT;

		json_to_buf(d, 0, &j);
		if (j.len && j.data[j.len - 1] == '\n')
			j.data[--j.len] = '\0';
		buf_putc(out, ' ');
		str_escape(j.data, out);
		buf_release(&j);
	}
}

/* ---- the trainer's log ------------------------------------------------------------ */

char *job_view_log_path(const char *state_dir, const char *id)
{
	return xasprintf("%s/jobs/%s/train.log", state_dir, id);
}

int job_view_log_read(const char *path, off_t *offset, struct buf *out, struct err *e)
{
	struct stat st;
	char chunk[65536];
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return err_set(e, ERR_NOTFOUND, "%s does not exist (yet)", path);
	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot open %s", path);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_FORMAT, "%s is not a regular file", path);
	}
	if (st.st_size < *offset)
		*offset = 0; /* written again from the start */
	for (;;) {
		ssize_t got = pread(fd, chunk, sizeof(chunk), *offset);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = err_sys(e, ERR_IO, "cannot read %s", path);
			break;
		}
		if (!got)
			break;
		buf_add(out, chunk, (size_t)got);
		*offset += got;
	}
	close(fd);
	return r;
}

/* ---- one worker per state folder ---------------------------------------------------- */

static char *view_lock_path(const char *state_dir)
{
	return fsx_join(state_dir, "worker.lock");
}

static long view_lock_holder(const char *path)
{
	struct buf b = BUF_INIT;
	unsigned long long pid = 0;

	if (!fsx_read_file(path, &b, 64, NULL) && str_to_u64(str_trim(b.data), &pid))
		pid = 0;
	buf_release(&b);
	return (long)pid;
}

int job_worker_lock(const char *state_dir, int *fd, long *holder, struct err *e)
{
	char *path = view_lock_path(state_dir);
	char pid[32];
	int r, n;

	/* A look by job_worker_running holds the lock for a moment: try a
	 * few times before taking it as held. */
	for (int i = 0;; i++) {
		r = fsx_lock(path, fd, e);
		if (r != ERR_EXISTS || i == 10)
			break;
		clock_sleep_ms(50, NULL);
	}
	*holder = 0;
	if (r == ERR_EXISTS) {
		*holder = view_lock_holder(path);
		if (*holder)
			err_set(e, ERR_EXISTS, "a worker (pid %ld) already runs for %s (it holds %s)",
				*holder, state_dir, path);
		else
			err_set(e, ERR_EXISTS, "another process holds %s: a worker already runs for %s",
				path, state_dir);
	}
	if (!r) {
		n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(*fd, 0) || fsx_write_all(*fd, pid, (size_t)n)) {
			r = err_sys(e, ERR_IO, "cannot write %s", path);
			close(*fd);
			*fd = -1;
		}
	}
	free(path);
	return r;
}

bool job_worker_running(const char *state_dir, long *holder)
{
	char *path = view_lock_path(state_dir);
	/* Shared: looks at once from several processes do not clash. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool held = fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;

	*holder = held ? view_lock_holder(path) : 0;
	if (fd >= 0)
		close(fd);
	free(path);
	return held;
}
