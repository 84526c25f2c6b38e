/* The S3 client: R2 or any S3 service, path or virtual-host style, every
 * request signed by sigv4.c and sent through common/http.c. Objects are
 * read (HEAD, GET to a file, verified), listed, deleted and presigned
 * here; uploads are in upload.c. Error answers are shown with S3's own
 * code and message. */
#ifndef FERRY_S3_H
#define FERRY_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/http.h"
#include "common/progress.h"
#include "common/str.h"
#include "store/sigv4.h"
#include "store/xml.h"

#define S3_MIB (1024ull * 1024)
#define S3_MIN_PART (5 * S3_MIB)
#define S3_MAX_PART (5 * 1024 * S3_MIB)
#define S3_MAX_PARTS 10000
#define S3_MAX_OBJECT (5ull * 1024 * 1024 * S3_MIB) /* 5 TiB */
#define S3_MAX_PARALLEL 4

struct s3_opts {
	const char *endpoint;      /* http(s)://host[:port][/path] */
	const char *region;        /* "auto" for R2 */
	const char *bucket;
	const char *access_key, *secret_key, *session_token;
	const char *key_hint;      /* where the keys came from, for messages */
	bool virtual_host;         /* BUCKET.HOST/KEY rather than HOST/BUCKET/KEY */
	int timeout_s;             /* 0: 60 */
	int tries;                 /* 0: 5 */
	long backoff_ms;           /* first retry delay; 0: 250 */
	uint64_t part_size;        /* smallest part; 0: 16 MiB (at least 5 MiB) */
	uint64_t multipart_above;  /* 0: 16 MiB */
	int parallel;              /* parts in flight, 1..4; 0: 4 */
	const char *upload_state;  /* folder for the records of resumable uploads */
	/* Not owned; may be NULL. Once set, every request of this client and
	 * every wait (a retry's backoff, a part's turn) stops at once with
	 * ERR_CANCELLED; an upload cut so keeps its record and resumes. */
	struct cancel *cancel;
};

struct s3_client;

int s3_client_new(struct s3_client **out, const struct s3_opts *o, struct err *e);
void s3_client_free(struct s3_client *c);
/* The options with defaults filled in (strings owned by the client). */
const struct s3_opts *s3_client_opts(const struct s3_client *c);
/* Hand the client a cancel token (see s3_opts.cancel; NULL: none). */
void s3_client_set_cancel(struct s3_client *c, struct cancel *cancel);
/* "s3://BUCKET/KEY", for messages (caller frees). */
char *s3_uri(const struct s3_client *c, const char *key);

struct s3_head {
	uint64_t size;
	char etag[80];             /* quotes removed */
	char sha256[65];           /* x-amz-meta-sha256, "" when absent */
	char last_modified[64];
};

/* HEAD an object: ERR_NOTFOUND when there is none. */
int s3_head(struct s3_client *c, const char *key, struct s3_head *h, struct err *e);
/* Download an object to `path` (through a temporary file beside it, renamed
 * once complete and verified against its x-amz-meta-sha256, or its ETag
 * when that is a plain MD5). *size gets its size (may be NULL). */
int s3_get_file(struct s3_client *c, const char *key, const char *path,
		const struct progress *pg, uint64_t *size, struct err *e);
/* Every object under `prefix` ("" or NULL: all), in key order. */
int s3_list(struct s3_client *c, const char *prefix, struct s3_entry **v, size_t *n,
	    struct err *e);
int s3_delete(struct s3_client *c, const char *key, struct err *e);
/* A presigned URL for GET or PUT (caller frees); expires_s from 1 s to 7 days. */
int s3_presign(struct s3_client *c, const char *method, const char *key, long expires_s,
	       char **url, struct err *e);

/* ---- one signed request, for this part's own files (upload.c) ---- */

struct s3_call {
	const char *method;
	const char *key;                   /* NULL: the bucket itself */
	const struct sigv4_param *query;
	size_t nquery;
	const char *const *headers;        /* more headers, all signed */
	const char *payload_hash;          /* NULL: SHA-256 of body (or of nothing) */
	const char *body;
	size_t body_len;
	bool use_body_fd;                  /* the body from a file (see http_request) */
	int body_fd;
	uint64_t body_fd_off, body_fd_len;
	bool use_reply_fd;
	int reply_fd;
	bool transfer;                     /* a long transfer: a stall limit, no total one */
	bool not_idempotent;               /* sent again only when it surely never arrived */
	size_t max_reply;                  /* 0: http's default */
};

/* A request signed now and ready for http_send or http_multi_add. */
struct s3_prepared {
	struct http_request rq;
	char *url, *shown;
	struct strv headers;
};

int s3_prepare(struct s3_client *c, const struct s3_call *call, struct s3_prepared *p,
	       struct err *e);
void s3_prepared_release(struct s3_prepared *p);
const struct http_retry *s3_client_retry(const struct s3_client *c);
/* The error for an answer that is not 2xx, for the request named `what`:
 * S3's code and message as it wrote them, and a hint for credentials
 * (ERR_CONFIG), missing buckets (ERR_CONFIG) and missing keys (ERR_NOTFOUND). */
int s3_answer_error(const struct s3_client *c, const char *what, const struct http_response *rs,
		    struct err *e);
/* Sign, send with retries, and read a non-2xx answer as an error. */
int s3_exchange(struct s3_client *c, const struct s3_call *call, const char *what,
		struct http_response *rs, struct err *e);

/* Several requests at once (up to `parallel`), each retried on its own
 * with backoff and re-signed on every try; the rest go on while one
 * waits. A task whose `check` rejects a 2xx answer with ERR_CORRUPT is sent
 * again like one that failed in transit. */
struct s3_task {
	struct s3_call call;
	char what[160];                    /* "UploadPart 3 of s3://b/k", for messages */
	int (*check)(struct s3_task *j, const struct http_response *rs, struct err *e);
	void *arg;
	uint64_t bytes;                    /* body bytes, for progress */
	/* the runner's */
	int state, tries;
	long long not_before;
	struct s3_prepared prep;
	struct http_response rs;
};

struct s3_run_opts {
	int parallel;                      /* 0: the client's */
	/* Whether task i may start now: 1 yes, 0 not yet, -1 it is done
	 * already, or a negative ERR_* to stop (with e filled). NULL: yes. */
	int (*ready)(void *arg, size_t i, struct err *e);
	void *arg;
	const struct progress *pg;
	const char *phase;
	uint64_t done_before, total;       /* progress of what other runs did */
};

int s3_run(struct s3_client *c, struct s3_task *tasks, size_t n, const struct s3_run_opts *o,
	   struct err *e);

#endif
