/* The queue's SQLite back end (docs/jobs.md, "Queue"): one connection per
 * struct queue, WAL, every write in BEGIN IMMEDIATE, the schema migrated
 * from schema_sqlite.sql at open. */
#ifndef FERRY_JOBS_QUEUE_SQLITE_H
#define FERRY_JOBS_QUEUE_SQLITE_H

#include "common/err.h"
#include "jobs/queue.h"

/* Open (creating it and its folders) and migrate the database at `path`. */
int queue_sqlite_open(struct queue **q, const char *path, struct err *e);

#endif
