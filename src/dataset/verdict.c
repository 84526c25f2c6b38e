#include "dataset/verdict.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Bump when the facts a check gathers change meaning: old verdicts are then
 * ignored. */
#define VERDICT_VERSION 1
/* The schema's own version (PRAGMA user_version); another one is dropped. */
#define VERDICT_SCHEMA_VERSION 2
#define VERDICT_SCHEMA "2" /* VERDICT_SCHEMA_VERSION, for the SQL text */
/* A file whose ctime is this close to its check may have been written again
 * in the same clock tick (the kernel's file times are jiffy-coarse). */
#define VERDICT_RACY_NS (50 * 1000000LL)

struct verdict_cache {
	sqlite3 *db;
	sqlite3_stmt *get, *put, *del;
	int64_t now_ns;
};

static const char verdict_schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS verdicts ("
	" path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	" ctime_ns INTEGER NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" version INTEGER NOT NULL, checked_ns INTEGER NOT NULL,"
	" status INTEGER NOT NULL, status_msg TEXT, sha256 TEXT NOT NULL,"
	" format INTEGER, width INTEGER, height INTEGER, bit_depth INTEGER,"
	" flags INTEGER, orientation INTEGER, text TEXT, text_utf8 INTEGER) STRICT;";

/* Replace a cache written by another schema version. */
static int verdict_migrate(sqlite3 *db)
{
	sqlite3_stmt *st;
	int version = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version == VERDICT_SCHEMA_VERSION)
		return 0;
	return sqlite3_exec(db, "DROP TABLE IF EXISTS verdicts;"
			    "PRAGMA user_version=" VERDICT_SCHEMA ";",
			    NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

enum { VF_ALPHA = 1, VF_GRAY = 2, VF_CMYK = 4, VF_ANIMATED = 8 };

int verdict_open(struct verdict_cache **out, const char *cache_dir, struct err *e)
{
	struct verdict_cache *vc = xcalloc(1, sizeof(*vc));
	char *path = fsx_join(cache_dir, "verdicts.sqlite");
	int r = fsx_mkdir_p(cache_dir, 0700, e);

	*out = NULL;
	if (r)
		goto fail;
	if (sqlite3_open(path, &vc->db) != SQLITE_OK) {
		r = err_set(e, ERR_IO, "cannot open verdict cache %s: %s", path,
			    sqlite3_errmsg(vc->db));
		goto fail;
	}
	sqlite3_busy_timeout(vc->db, 10000);
	vc->now_ns = clock_wall_ns();
	if (verdict_migrate(vc->db) ||
	    sqlite3_exec(vc->db, verdict_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(vc->db,
		"SELECT status, status_msg, sha256, format, width, height, bit_depth,"
		" flags, orientation, text, text_utf8, checked_ns FROM verdicts"
		" WHERE path=?1 AND size=?2 AND mtime_ns=?3 AND ctime_ns=?4 AND dev=?5"
		" AND ino=?6 AND version=?7",
		-1, &vc->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(vc->db,
		"INSERT OR REPLACE INTO verdicts VALUES"
		" (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
		-1, &vc->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(vc->db, "DELETE FROM verdicts WHERE path=?1",
		-1, &vc->del, NULL) != SQLITE_OK) {
		r = err_set(e, ERR_IO, "verdict cache %s is unusable: %s (delete it to start afresh)",
			    path, sqlite3_errmsg(vc->db));
		goto fail;
	}
	free(path);
	*out = vc;
	return 0;
fail:
	free(path);
	verdict_close(vc);
	return r;
}

void verdict_close(struct verdict_cache *vc)
{
	if (!vc)
		return;
	sqlite3_finalize(vc->get);
	sqlite3_finalize(vc->put);
	sqlite3_finalize(vc->del);
	sqlite3_close(vc->db);
	free(vc);
}

static char *verdict_key(const char *root_real, const struct ds_file *f)
{
	return xasprintf("%s/%s", root_real, f->rel);
}

/* Bind the key columns (path, size, mtime, ctime, dev, ino, version) as
 * ?1..?7. */
static void verdict_bind_key(sqlite3_stmt *st, const char *key, const struct ds_file *f)
{
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)f->size);
	sqlite3_bind_int64(st, 3, f->mtime_ns);
	sqlite3_bind_int64(st, 4, f->ctime_ns);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->dev);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)f->ino);
	sqlite3_bind_int(st, 7, VERDICT_VERSION);
}

static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? xstrdup((const char *)s) : NULL;
}

bool verdict_lookup(struct verdict_cache *vc, const char *root_real, struct ds_file *f,
		    uint64_t max_pixels)
{
	char *key = verdict_key(root_real, f);
	sqlite3_stmt *st = vc->get;
	bool hit = false;

	verdict_bind_key(st, key, f);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *sha = (const char *)sqlite3_column_text(st, 2);
		int flags = sqlite3_column_int(st, 7);
		int status = sqlite3_column_int(st, 0);
		uint64_t pixels = (uint64_t)sqlite3_column_int64(st, 4) *
				  (uint64_t)sqlite3_column_int64(st, 5);
		bool racy = f->ctime_ns + VERDICT_RACY_NS >= sqlite3_column_int64(st, 11);
		/* A verdict about the size limit holds only under the same limit. */
		bool limit_differs = status == ERR_LIMIT ||
				     (f->role == DS_ROLE_IMAGE && !status && pixels > max_pixels);

		if (sha && strlen(sha) == SHA256_HEX_LEN && !racy && !limit_differs) {
			f->status = sqlite3_column_int(st, 0);
			free(f->status_msg);
			f->status_msg = column_dup(st, 1);
			memcpy(f->sha256, sha, SHA256_HEX_LEN + 1);
			f->img.format = (enum img_format)sqlite3_column_int(st, 3);
			f->img.width = (unsigned)sqlite3_column_int(st, 4);
			f->img.height = (unsigned)sqlite3_column_int(st, 5);
			f->img.bit_depth = (unsigned)sqlite3_column_int(st, 6);
			f->img.alpha = flags & VF_ALPHA;
			f->img.gray = flags & VF_GRAY;
			f->img.cmyk = flags & VF_CMYK;
			f->img.animated = flags & VF_ANIMATED;
			f->img.orientation = (unsigned)sqlite3_column_int(st, 8);
			free(f->text);
			f->text = column_dup(st, 9);
			f->text_utf8 = sqlite3_column_int(st, 10);
			f->examined = true;
			hit = true;
		}
	}
	sqlite3_reset(st);
	free(key);
	return hit;
}

void verdict_forget(struct verdict_cache *vc, const char *root_real, const struct ds_file *f)
{
	char *key = verdict_key(root_real, f);

	sqlite3_reset(vc->del);
	sqlite3_bind_text(vc->del, 1, key, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(vc->del) != SQLITE_DONE)
		log_warn("verdict cache: cannot forget %s: %s", f->rel, sqlite3_errmsg(vc->db));
	sqlite3_reset(vc->del);
	free(key);
}

int verdict_store(struct verdict_cache *vc, const char *root_real, const struct ds_dataset *ds,
		  struct err *e)
{
	sqlite3_stmt *st = vc->put;
	int r = 0;

	if (sqlite3_exec(vc->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return err_set(e, ERR_IO, "verdict cache: %s", sqlite3_errmsg(vc->db));
	for (size_t i = 0; i < ds->nfiles && !r; i++) {
		const struct ds_file *f = &ds->files[i];
		int flags = (f->img.alpha ? VF_ALPHA : 0) | (f->img.gray ? VF_GRAY : 0) |
			    (f->img.cmyk ? VF_CMYK : 0) | (f->img.animated ? VF_ANIMATED : 0);
		char *key;

		/* I/O failures are not verdicts: the next run must look again. */
		if (!f->examined || f->status == ERR_IO || !f->sha256[0])
			continue;
		key = verdict_key(root_real, f);
		verdict_bind_key(st, key, f);
		sqlite3_bind_int64(st, 8, vc->now_ns);
		sqlite3_bind_int(st, 9, f->status);
		if (f->status_msg)
			sqlite3_bind_text(st, 10, f->status_msg, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 10);
		sqlite3_bind_text(st, 11, f->sha256, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 12, (int)f->img.format);
		sqlite3_bind_int(st, 13, (int)f->img.width);
		sqlite3_bind_int(st, 14, (int)f->img.height);
		sqlite3_bind_int(st, 15, (int)f->img.bit_depth);
		sqlite3_bind_int(st, 16, flags);
		sqlite3_bind_int(st, 17, (int)f->img.orientation);
		if (f->text)
			sqlite3_bind_text(st, 18, f->text, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 18);
		sqlite3_bind_int(st, 19, f->text_utf8);
		if (sqlite3_step(st) != SQLITE_DONE)
			r = err_set(e, ERR_IO, "verdict cache: %s", sqlite3_errmsg(vc->db));
		free(key);
	}
	sqlite3_reset(st);
	if (sqlite3_exec(vc->db, r ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !r)
		r = err_set(e, ERR_IO, "verdict cache: %s", sqlite3_errmsg(vc->db));
	return r;
}
