/* Helpers shared by the unit tests: scratch folders and small files. */
#ifndef FERRY_TESTUTIL_H
#define FERRY_TESTUTIL_H

#include <stddef.h>

/* A new empty folder under /tmp (caller frees the path). */
char *tu_mkdtemp(const char *prefix);
/* Write dir/rel (parents made), failing the test on error. */
void tu_write_file(const char *dir, const char *rel, const void *data, size_t len);
void tu_write_text(const char *dir, const char *rel, const char *text);
struct ds_check_opts;
/* Check options for small test datasets: 3..100 images of at least 64 px,
 * two threads, verdicts in `cache` (NULL: none). */
void tu_check_opts(struct ds_check_opts *o, const char *cache);
/* Wait until files written so far are older than the verdict cache's racy
 * window, so that their verdicts can be reused. */
void tu_settle(void);
/* A w x h JPEG at dir/rel whose pixels depend on seed, so seeds differ. */
void tu_write_jpeg(const char *dir, const char *rel, int w, int h, int seed);

/* A scriptable HTTP/1.1 server for client tests: a thread on 127.0.0.1 with
 * an ephemeral port. It answers each connection's one request with the next
 * canned reply (Connection: close) and records every request. Request bodies
 * must come with Content-Length (no chunked uploads). With no reply queued it
 * answers 500 "tu_http: no reply queued", so a test that sends more requests
 * than it expects sees it. */
struct tu_http;

struct tu_http_reply {
	int status;          /* 0: close the connection without answering */
	const char *headers; /* extra header lines, each ending in "\r\n"; NULL: none */
	const char *body;    /* NULL: empty */
	size_t body_len;     /* 0: strlen(body) */
	int delay_ms;        /* wait this long before answering (or closing) */
};

struct tu_http_req {
	char *method;
	char *target;        /* path with query, as sent */
	size_t nhdr;
	char **names, **values; /* header lines, as sent (values trimmed) */
	char *body;          /* body_len bytes, NUL-terminated */
	size_t body_len;
};

struct tu_http *tu_http_start(void);
/* Stop the thread (waking it from a delay) and free everything. */
void tu_http_stop(struct tu_http *s);
/* "http://127.0.0.1:PORT", no trailing slash. */
const char *tu_http_url(const struct tu_http *s);
/* Queue a reply (copied). */
void tu_http_push(struct tu_http *s, const struct tu_http_reply *r);
/* Queue a reply with a Content-Type (NULL: none) and a text body. */
void tu_http_reply(struct tu_http *s, int status, const char *content_type, const char *body);
/* Queue a reply with Content-Type: application/json. */
void tu_http_json(struct tu_http *s, int status, const char *body);
/* Requests recorded so far, and replies queued but not yet used. */
size_t tu_http_count(struct tu_http *s);
size_t tu_http_unused(struct tu_http *s);
/* Request i (fails the test when there is none); stays valid until stop. */
const struct tu_http_req *tu_http_req(struct tu_http *s, size_t i);
/* The value of header `name` (any case) in r, or NULL. */
const char *tu_http_header(const struct tu_http_req *r, const char *name);
/* The percent-decoded value ('+' read as a space) of query parameter `name`
 * in r's target (caller frees), or NULL when absent. */
char *tu_http_query(const struct tu_http_req *r, const char *name);
/* An http:// URL on 127.0.0.1 where nothing listens (caller frees). */
char *tu_http_closed_url(void);

/* Send what is written to file descriptor 2 to a temporary file until
 * tu_stderr_end, which restores it and returns what was written (caller
 * frees). Not nestable. */
void tu_stderr_begin(void);
char *tu_stderr_end(void);

struct json_t;
/* Fail unless `got` (may be NULL) equals the JSON text `want`, showing both. */
void tu_expect_json(struct json_t *got, const char *want);

#endif
