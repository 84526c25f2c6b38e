/* Where ferry publishes artifacts: the dir store (a local folder, the
 * default) or the s3 store (Cloudflare R2 or any S3 service), chosen by
 * store.kind or --store, configured from the settings table. The same
 * calls for both; docs/store.md. */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "config/config.h"
#include "store/s3.h"
#include "store/xml.h"

enum store_kind { STORE_DIR, STORE_S3 };

struct store;

/* kind: "dir", "s3", or NULL for the store.kind setting; bucket: --bucket
 * (NULL: s3.bucket, then r2.bucket). ERR_CONFIG when the s3 store lacks an
 * endpoint, a bucket or credentials. */
int store_open(struct store **out, const struct config *cfg, const char *kind,
	       const char *bucket, struct err *e);
void store_close(struct store *s);
/* Hand the store a cancel token (not owned; NULL: none): once it is set,
 * puts and gets stop at once with ERR_CANCELLED, in the middle of a part
 * or of a retry's wait, and a multipart upload so cut keeps its record
 * (the next put resumes it, nothing is aborted). */
void store_set_cancel(struct store *s, struct cancel *cancel);
enum store_kind store_kind(const struct store *s);
const char *store_kind_name(const struct store *s);
/* "s3://BUCKET" or the dir store's folder. */
const char *store_location(const struct store *s);

/* A key is 1 to 1024 bytes of UTF-8 without control characters, made of
 * '/'-separated names none of which is empty, "." or ".." and none of
 * which starts with ".ferry-" (ferry's own marks). */
int store_check_key(const char *key, struct err *e);

struct store_put_result {
	uint64_t size;
	char sha256[65];
	bool skipped;        /* the same bytes were there already */
	bool multipart, resumed;
	unsigned parts, parts_sent;
	uint64_t part_size;
};

int store_put(struct store *s, const char *file, const char *key,
	      const struct progress *pg, struct store_put_result *res, struct err *e);
int store_get(struct store *s, const char *key, const char *file,
	      const struct progress *pg, uint64_t *size, struct err *e);
int store_list(struct store *s, const char *prefix, struct s3_entry **v, size_t *n,
	       struct err *e);
int store_remove(struct store *s, const char *key, struct err *e);
/* A presigned GET (or PUT) URL; expires_s 0: s3.presign_expires. The dir
 * store answers with a file:// URL. */
int store_presign(struct store *s, const char *key, bool put, long expires_s, char **url,
		  struct err *e);
/* The URL a published file is reached at: R2_PUBLIC_URL/KEY when set, else
 * a presigned GET (s3.presign_expires), else file:// (dir store). *public
 * tells which of the first two. */
int store_url(struct store *s, const char *key, char **url, bool *public, struct err *e);

#endif
