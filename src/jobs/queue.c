#include "jobs/queue.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsx.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "jobs/queue_sqlite.h"

/* "scheme://...": a location for a back end this ferry does not have. */
static bool queue_is_url(const char *where)
{
	const char *p = where;

	if (!isalpha((unsigned char)*p))
		return false;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	return str_starts_with(p, "://");
}

int queue_open(struct queue **q, const char *where, struct err *e)
{
	const char *path = where;

	*q = NULL;
	if (!where || !*where)
		return err_set(e, ERR_USAGE, "the queue location is empty");
	if (str_starts_with(where, "sqlite:"))
		path = where + strlen("sqlite:");
	else if (queue_is_url(where))
		return err_set(e, ERR_USAGE,
			       "queue location '%s': only sqlite:PATH or a file path is known", where);
	if (!*path)
		return err_set(e, ERR_USAGE, "queue location '%s' names no file", where);
	return queue_sqlite_open(q, path, e);
}

char *queue_location(const struct config *cfg)
{
	const char *where = config_get(cfg, "jobs.queue");

	if (where && *where)
		return xstrdup(where);
	return fsx_join(config_get(cfg, "state_dir"), "queue.db");
}

void queue_close(struct queue *q)
{
	if (q)
		q->ops->close(q);
}

void queue_job_release(struct queue_job *j)
{
	if (!j)
		return;
	json_decref(j->spec);
	json_decref(j->data);
	memset(j, 0, sizeof(*j));
}

void queue_jobs_free(struct queue_job *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		queue_job_release(&v[i]);
	free(v);
}

void queue_artifact_release(struct queue_artifact *a)
{
	if (!a)
		return;
	free(a->path);
	free(a->local_path);
	free(a->key);
	free(a->url);
	memset(a, 0, sizeof(*a));
}

void queue_artifacts_free(struct queue_artifact *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		queue_artifact_release(&v[i]);
	free(v);
}

void queue_events_free(struct queue_event *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		json_decref(v[i].data);
	free(v);
}
