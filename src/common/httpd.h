/* A small HTTP server over libmicrohttpd, for `ferry sim` and the HTTP API:
 * it binds, gathers each request's body up to a cap (answering 413 itself),
 * hands one handler the whole request, and sends what the handler filled
 * in: a body, or a stream produced as it goes (chunked; for server-sent
 * events). One thread per connection, so a handler and a stream may block;
 * a connection cap bounds the threads. No route table: the handler looks
 * at the method and path, with httpd_path_match. libmicrohttpd's own messages go to the log at
 * debug level, and each request is logged there as "METHOD PATH -> STATUS"
 * (the path without its query, which may carry a key). */
#ifndef FERRY_HTTPD_H
#define FERRY_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

struct httpd;
struct MHD_Connection;

/* One request, valid for the handler's call. */
struct httpd_req {
	const char *method;     /* as sent: "GET", "POST", ... */
	const char *path;       /* percent-decoded, without the query */
	const char *body;       /* body_len bytes, NUL-terminated; "" when none */
	size_t body_len;
	char client_ip[64];     /* numeric, "127.0.0.1" or "::1"; "?" when unknown */
	struct MHD_Connection *conn; /* private */
};

/* Query argument `name` (decoded), or NULL when absent or without a value. */
const char *httpd_query(const struct httpd_req *rq, const char *name);
/* Request header `name` (any case), or NULL. */
const char *httpd_header(const struct httpd_req *rq, const char *name);

/* A piece of a path: n bytes at s (not NUL-terminated). */
struct httpd_seg {
	const char *s;
	size_t n;
};

/* Whether `path` matches `pattern` segment by segment: a literal segment
 * matches itself, "{}" any one segment, whose text goes to caps[i] in
 * order (those past ncaps are matched but not kept; caps is written only
 * when the path matches). Patterns end without a slash. One trailing slash
 * on the path is optional ("/a/b" and "/a/b/" match "/a/b"); an empty
 * segment ("/a//b") never matches. */
bool httpd_path_match(const char *path, const char *pattern, struct httpd_seg *caps,
		      size_t ncaps);

/* What a stream callback returns besides a byte count. */
#define HTTPD_STREAM_END ((ssize_t)-1)   /* the body is complete */
#define HTTPD_STREAM_ABORT ((ssize_t)-2) /* cut the connection: the body is not whole */

/* Writes up to `max` bytes of the body into buf and returns how many; 0
 * when it has nothing yet: httpd then waits a little (up to 50 ms) and calls
 * again. It may block to wait for bytes, but should return within about a
 * second, so that a client gone away or the server stopping is noticed
 * (the stream then ends without another call). Runs on the connection's
 * thread. */
typedef ssize_t httpd_stream_fn(void *arg, char *buf, size_t max);

/* The answer the handler fills in. Before the call it is status 0 (read
 * as 500), no content type (text/plain), an empty body and no headers. */
struct httpd_resp {
	int status;
	char ctype[128];       /* "": text/plain; charset=utf-8 */
	struct buf body;       /* ignored for a stream */
	struct buf headers;    /* private: "name\0value\0" pairs */
	httpd_stream_fn *stream;
	void (*stream_free)(void *arg);
	void *stream_arg;
};

/* Status, content type (NULL: text/plain) and a copy of len bytes of body. */
void httpd_reply(struct httpd_resp *rs, int status, const char *ctype, const void *body,
		 size_t len);
/* The same with a printf-formatted text/plain body. */
void httpd_replyf(struct httpd_resp *rs, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Status and v as application/json, dumped with jansson's flags (0:
 * compact; JSON_ENCODE_ANY is always added); 500 if it cannot be. */
void httpd_reply_json(struct httpd_resp *rs, int status, const json_t *v, size_t flags);
/* Add a header (copied). Content-Type is set through ctype; libmicrohttpd
 * sets Content-Length, Date and the transfer encoding itself. */
void httpd_add_header(struct httpd_resp *rs, const char *name, const char *value);
/* Answer with a stream: fn is called for the body until it ends, then
 * free_fn(arg) (may be NULL) runs once, whether the stream ran or not. */
void httpd_stream(struct httpd_resp *rs, int status, const char *ctype, httpd_stream_fn *fn,
		  void (*free_fn)(void *arg), void *arg);

typedef void httpd_handler_fn(void *arg, const struct httpd_req *rq, struct httpd_resp *rs);

struct httpd_opts {
	const char *host;       /* a name or address literal; NULL or "": every address */
	int port;               /* 0: any free port (see httpd_port) */
	const char *what;       /* what messages call the address, as "--listen";
				 * NULL: "the HTTP server" */
	size_t body_max;        /* bytes of request body; 0: 1 MiB */
	unsigned conn_max;      /* connections (threads) at once; 0: 512 */
	unsigned idle_s;        /* an idle connection is closed after; 0: 120 */
	httpd_handler_fn *handler;
	void *arg;
	/* Shapes httpd's own answers (413 for a body over body_max, 500 when
	 * the handler left the status 0) as the caller's API answers errors;
	 * NULL: text/plain `msg`. Called with rs empty. */
	void (*error)(void *arg, struct httpd_resp *rs, int status, const char *msg);
};

/* Bind, listen, and serve on background threads until httpd_stop. */
int httpd_start(const struct httpd_opts *o, struct httpd **out, struct err *e);
/* The port actually bound. */
int httpd_port(const struct httpd *h);
/* Stop: no new connections, open streams end (within about a second of
 * their callback returning), every thread is joined; then free. NULL is
 * fine. */
void httpd_stop(struct httpd *h);

#endif
