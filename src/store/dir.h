/* The dir store, the default: artifacts as files under one folder
 * (store.dir, default $XDG_STATE_HOME/ferry/artifacts), a key being the
 * relative path. A put is copied to a staging name beside the target
 * (.ferry-put.NAME), synced, verified against the source's SHA-256 and
 * renamed into place, so a key holds the old file or the whole new one. */
#ifndef FERRY_DIR_STORE_H
#define FERRY_DIR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/xml.h"

#define DIR_STORE_STAGING ".ferry-put."

struct dir_put_result {
	uint64_t size;
	char sha256[65];
	bool skipped;       /* the same bytes were there already */
};

/* The file a key names under root (caller frees). */
char *dir_store_path(const char *root, const char *key);
int dir_store_put(const char *root, const char *file, const char *key,
		  struct dir_put_result *res, struct err *e);
int dir_store_get(const char *root, const char *key, const char *file, uint64_t *size,
		  struct err *e);
/* Every file under root whose key starts with `prefix`, in key order (the
 * etag is empty; last_modified is the file's time, UTC ISO 8601). */
int dir_store_list(const char *root, const char *prefix, struct s3_entry **v, size_t *n,
		   struct err *e);
/* Remove a key (ERR_NOTFOUND when absent) and the folders it leaves empty. */
int dir_store_remove(const char *root, const char *key, struct err *e);
/* A file:// URL for a key (caller frees). */
char *dir_store_url(const char *root, const char *key);

#endif
