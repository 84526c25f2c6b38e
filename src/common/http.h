/* One HTTP exchange over libcurl, with timeouts, a capped reply, retries
 * with exponential backoff and full jitter, and tracing that never shows a
 * secret. Every HTTP client in ferry (Vast API, caption servers, the S3
 * store) goes through here; each decides what its answers mean. */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "clock.h"
#include "err.h"

struct http_request {
	const char *method;          /* GET, HEAD, POST, PUT, DELETE */
	const char *url;
	const char *shown;           /* the URL as messages may show it; NULL: url */
	const char *const *headers;  /* NULL-terminated "Name: value" lines */
	const char *body;            /* NULL: no body */
	size_t body_len;
	/* With use_body_fd: the body is body_fd_len bytes of body_fd from
	 * body_fd_off, read with pread (the fd's own offset is left alone, so
	 * several requests may share one fd). */
	bool use_body_fd;
	int body_fd;
	uint64_t body_fd_off, body_fd_len;
	/* With use_reply_fd: a 2xx answer's body is written to reply_fd
	 * (truncated at the start of each send) instead of kept in memory;
	 * other answers are kept as usual. */
	bool use_reply_fd;
	int reply_fd;
	int timeout_s;               /* whole exchange; 0: 60; negative: no limit */
	int stall_s;                 /* > 0: give up when no byte moved for this long */
	size_t max_reply;            /* bytes of reply kept; 0: 32 MiB */
	struct cancel *cancel;       /* set: the exchange (and http_do's waits) stop
				      * with ERR_CANCELLED; NULL: never */
};

struct http_response {
	long status;                 /* 0 when no answer came */
	struct buf body;
	struct buf headers;          /* the final answer's header lines, CRLF removed */
	char content_type[128];      /* "" when the server sent none */
	long retry_after_s;          /* -1 when the server sent none */
	int tries;                   /* sends http_do made */
	uint64_t sent, received;     /* body bytes moved so far by the current send */
};

/* What happened to a request that got no HTTP answer. */
enum http_outcome {
	HTTP_ANSWERED,   /* a status came back (any status) */
	HTTP_NOT_SENT,   /* never reached the server: always safe to send again */
	HTTP_NO_ANSWER,  /* may have reached it (timeout, reset): ambiguous */
	HTTP_REFUSED,    /* ferry refused it (reply too big, bad URL): do not retry */
};

void http_response_init(struct http_response *rs);
void http_response_release(struct http_response *rs);
/* The value of response header `name` (any case), trimmed, into out;
 * false when the answer had none. */
bool http_response_header(const struct http_response *rs, const char *name, char *out,
			  size_t outsz);

/* Send once. Returns 0 with rs->status set when an answer came back;
 * otherwise ERR_IO, ERR_TIMEOUT or ERR_LIMIT, naming the server, with the
 * outcome in *how (may be NULL). */
int http_send(const struct http_request *rq, struct http_response *rs,
	      enum http_outcome *how, struct err *e);

struct http_retry {
	int max_tries;       /* 0: 5 */
	long base_ms;        /* first delay; 0: 250 */
	long max_ms;         /* cap on one delay; 0: 8000 */
	/* A request that is not idempotent (creating something) is sent again
	 * only when it surely never arrived (HTTP_NOT_SENT) or was refused
	 * with 429; an idempotent one also after timeouts and resets and on
	 * every status in `statuses`. */
	bool idempotent;
	const int *statuses; /* 0-terminated; NULL: 429 502 503 504 */
};

/* Send with retries. Returns like http_send: 0 with the final answer
 * (which may still be an error status), or the last transport error
 * prefixed with the number of tries; ERR_CANCELLED as soon as rq->cancel
 * is set, whether sending or waiting to send again. */
int http_do(const struct http_request *rq, const struct http_retry *p,
	    struct http_response *rs, struct err *e);

/* Whether http_do would send again after a send that returned r (with
 * outcome how) or, when r is 0, answered `status`; tries not counted. For
 * callers that run their own loop (http_multi). */
bool http_retryable(const struct http_retry *p, int r, enum http_outcome how, long status);

/* Several exchanges at once through the curl multi interface, on one
 * thread, sharing connections. Each request (its URL, headers and body)
 * and response must stay valid until http_multi_next hands back its tag. */
struct http_multi;

struct http_multi *http_multi_new(void);
/* Abandons transfers still running. */
void http_multi_free(struct http_multi *m);
int http_multi_add(struct http_multi *m, const struct http_request *rq,
		   struct http_response *rs, void *tag, struct err *e);
/* Exchanges started and not yet handed back. */
size_t http_multi_running(const struct http_multi *m);
/* Wait up to wait_ms for an exchange to end. When one did, *tag is its tag
 * and the return value, *how and e are what http_send would have given for
 * it; when none did (or none runs), *tag is NULL and it returns 0. */
int http_multi_next(struct http_multi *m, int wait_ms, void **tag, enum http_outcome *how,
		    struct err *e);

/* The wait before try number `attempt + 1` (attempt counts from 1): the
 * server's Retry-After when it sent one (at most 60 s), else a random
 * delay in [d/2, d] with d = base * 2^(attempt-1) capped at max. */
long http_backoff_ms(const struct http_retry *p, int attempt, long retry_after_s);

/* `url` as it may be shown and logged: no userinfo (user:password@), the
 * query and fragment replaced by "?…" / "#…", control characters escaped. */
char *http_url_shown(const char *url);
/* Register the credentials a URL carries (the userinfo's password, query
 * values named like key or token) with the logger as secrets. */
void http_url_register_secrets(const char *url);
/* Whether the URL's host is this machine: localhost, 127.0.0.0/8 or ::1. */
bool http_url_local(const char *url);

#endif
