#include "common/httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

#define HTTPD_BODY_MAX (1024 * 1024)
#define HTTPD_CONN_MAX 512
#define HTTPD_IDLE_S 120
#define HTTPD_STREAM_WAIT_MS 50
#define HTTPD_STREAM_BLOCK 16384

struct httpd {
	struct MHD_Daemon *daemon;
	int port;
	size_t body_max;
	httpd_handler_fn *handler;
	void (*error)(void *arg, struct httpd_resp *rs, int status, const char *msg);
	void *arg;
	atomic_bool stopping;
};

/* One request's state over the access handler's calls. */
struct httpd_conn {
	struct buf body;
	bool too_big;
};

/* A stream handed to libmicrohttpd. */
struct httpd_streamer {
	struct httpd *h;
	int fd;                 /* the client's socket, to notice it hang up */
	httpd_stream_fn *fn;
	void (*free_fn)(void *arg);
	void *arg;
};

/* --- requests and answers ---------------------------------------------------- */

const char *httpd_query(const struct httpd_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *httpd_header(const struct httpd_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static bool httpd_match(const char *path, const char *pattern, struct httpd_seg *caps,
			size_t ncaps)
{
	const char *p = path, *q = pattern;
	size_t pl, ql, n = 0;

	if (!strcmp(pattern, "/"))
		return !strcmp(path, "/");
	for (;;) {
		if (*p != '/' || *q != '/')
			return false;
		p++;
		q++;
		pl = strcspn(p, "/");
		ql = strcspn(q, "/");
		if (!pl)
			return false;
		if (ql == 2 && !memcmp(q, "{}", 2)) {
			if (n < ncaps)
				caps[n] = (struct httpd_seg){ p, pl };
			n++;
		} else if (pl != ql || memcmp(p, q, pl)) {
			return false;
		}
		p += pl;
		q += ql;
		if (!*q)
			return !*p || !strcmp(p, "/");
	}
}

bool httpd_path_match(const char *path, const char *pattern, struct httpd_seg *caps,
		      size_t ncaps)
{
	/* caps are written only for a match */
	return httpd_match(path, pattern, NULL, 0) && httpd_match(path, pattern, caps, ncaps);
}

static void httpd_resp_init(struct httpd_resp *rs)
{
	memset(rs, 0, sizeof(*rs));
	buf_init(&rs->body);
	buf_init(&rs->headers);
}

/* Drop a stream not handed on. */
static void httpd_resp_unstream(struct httpd_resp *rs)
{
	if (rs->stream && rs->stream_free)
		rs->stream_free(rs->stream_arg);
	rs->stream = NULL;
	rs->stream_free = NULL;
	rs->stream_arg = NULL;
}

static void httpd_resp_release(struct httpd_resp *rs)
{
	httpd_resp_unstream(rs);
	buf_release(&rs->body);
	buf_release(&rs->headers);
}

static void httpd_resp_head(struct httpd_resp *rs, int status, const char *ctype)
{
	httpd_resp_unstream(rs);
	rs->status = status;
	snprintf(rs->ctype, sizeof(rs->ctype), "%s", ctype ? ctype : "");
	buf_reset(&rs->body);
}

void httpd_reply(struct httpd_resp *rs, int status, const char *ctype, const void *body,
		 size_t len)
{
	httpd_resp_head(rs, status, ctype);
	buf_add(&rs->body, body, len);
}

void httpd_replyf(struct httpd_resp *rs, int status, const char *fmt, ...)
{
	va_list ap;

	httpd_resp_head(rs, status, NULL);
	va_start(ap, fmt);
	buf_vprintf(&rs->body, fmt, ap);
	va_end(ap);
}

void httpd_reply_json(struct httpd_resp *rs, int status, const json_t *v, size_t flags)
{
	char *data = json_dumps(v, (flags ? flags : JSON_COMPACT) | JSON_ENCODE_ANY);

	if (!data) {
		httpd_replyf(rs, MHD_HTTP_INTERNAL_SERVER_ERROR, "the answer is not JSON\n");
		return;
	}
	httpd_reply(rs, status, "application/json", data, strlen(data));
	free(data);
}

void httpd_add_header(struct httpd_resp *rs, const char *name, const char *value)
{
	buf_add(&rs->headers, name, strlen(name) + 1);
	buf_add(&rs->headers, value, strlen(value) + 1);
}

void httpd_stream(struct httpd_resp *rs, int status, const char *ctype, httpd_stream_fn *fn,
		  void (*free_fn)(void *arg), void *arg)
{
	httpd_resp_head(rs, status, ctype);
	rs->stream = fn;
	rs->stream_free = free_fn;
	rs->stream_arg = arg;
}

/* httpd's own answers, shaped by the caller when it wants. */
static void httpd_error(struct httpd *h, struct httpd_resp *rs, int status, const char *msg)
{
	httpd_resp_release(rs);
	httpd_resp_init(rs);
	if (h->error)
		h->error(h->arg, rs, status, msg);
	if (!rs->status)
		httpd_replyf(rs, status, "%s\n", msg);
}

/* --- streams ---------------------------------------------------------------------- */

/* Whether the client hung up, waiting up to ms for it. */
static bool httpd_gone(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	if (fd < 0) {
		poll(NULL, 0, ms);
		return false;
	}
	return poll(&p, 1, ms) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static ssize_t httpd_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct httpd_streamer *st = cls;
	ssize_t n;

	for (;;) {
		if (atomic_load(&st->h->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		n = st->fn(st->arg, buf, max);
		if (n > 0)
			return (size_t)n > max ? (ssize_t)max : n;
		if (n == HTTPD_STREAM_END)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (httpd_gone(st->fd, HTTPD_STREAM_WAIT_MS)) {
			log_debug("the client hung up on a stream");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

static void httpd_stream_done(void *cls)
{
	struct httpd_streamer *st = cls;

	if (st->free_fn)
		st->free_fn(st->arg);
	free(st);
}

/* --- serving ---------------------------------------------------------------------- */

static enum MHD_Result httpd_send(struct httpd *h, struct MHD_Connection *c, struct httpd_resp *rs)
{
	const union MHD_ConnectionInfo *ci;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len;
	char *data;

	if (rs->stream) {
		struct httpd_streamer *st = xcalloc(1, sizeof(*st));

		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		st->h = h;
		st->fd = ci ? ci->connect_fd : -1;
		st->fn = rs->stream;
		st->free_fn = rs->stream_free;
		st->arg = rs->stream_arg;
		rs->stream = NULL;
		rs->stream_free = NULL;
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTPD_STREAM_BLOCK,
							 httpd_stream_read, st, httpd_stream_done);
		if (!resp) {
			httpd_stream_done(st);
			return MHD_NO;
		}
	} else {
		data = buf_detach(&rs->body, &len);
		resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(data);
			return MHD_NO;
		}
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				rs->ctype[0] ? rs->ctype : "text/plain; charset=utf-8");
	for (size_t i = 0; i < rs->headers.len;) {
		const char *name = rs->headers.data + i, *value = name + strlen(name) + 1;

		if (MHD_add_response_header(resp, name, value) != MHD_YES)
			log_warn("cannot add the response header %s", name);
		i += strlen(name) + strlen(value) + 2;
	}
	ret = MHD_queue_response(c, (unsigned)rs->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void httpd_client_ip(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, n, "?");
	if (sa && getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							     : sizeof(struct sockaddr_in),
			      out, (socklen_t)n, NULL, 0, NI_NUMERICHOST))
		snprintf(out, n, "?");
}

static enum MHD_Result httpd_answer(struct httpd *h, struct MHD_Connection *c, const char *url,
				    const char *method, struct httpd_conn *hc)
{
	struct httpd_req rq = { method, url, hc->body.data, hc->body.len, "?", c };
	struct httpd_resp rs;
	enum MHD_Result ret;
	char msg[64];

	httpd_resp_init(&rs);
	httpd_client_ip(c, rq.client_ip, sizeof(rq.client_ip));
	if (hc->too_big) {
		snprintf(msg, sizeof(msg), "request body over %zu bytes", h->body_max);
		httpd_error(h, &rs, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	} else {
		h->handler(h->arg, &rq, &rs);
		if (!rs.status)
			httpd_error(h, &rs, MHD_HTTP_INTERNAL_SERVER_ERROR, "the server had no answer");
	}
	log_debug("%s %s -> %d", method, url, rs.status);
	ret = httpd_send(h, c, &rs);
	httpd_resp_release(&rs);
	return ret;
}

/* Whether the client waits for "100 Continue" before sending a body over
 * the cap: it can then be refused before it sends a byte. */
static bool httpd_refuse_early(struct httpd *h, struct MHD_Connection *c)
{
	const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;

	if (!expect || strcasecmp(expect, "100-continue") || !cl)
		return false;
	return !str_to_u64(cl, &n) && n > h->body_max;
}

static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *upload,
				    size_t *upload_size, void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_conn *hc = *con_cls;

	if (!hc) {
		hc = xcalloc(1, sizeof(*hc));
		buf_init(&hc->body);
		*con_cls = hc;
		if (!httpd_refuse_early(h, c))
			return MHD_YES;
		hc->too_big = true;
		return httpd_answer(h, c, url, method, hc);
	}
	if (*upload_size) {
		/* Over the cap, the rest is read and dropped, and 413 answered
		 * at the end: an answer before the body is read would be lost
		 * to the reset that closing on unread bytes sends. */
		if (hc->too_big || hc->body.len + *upload_size > h->body_max) {
			hc->too_big = true;
			buf_release(&hc->body);
		} else {
			buf_add(&hc->body, upload, *upload_size);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	return httpd_answer(h, c, url, method, hc);
}

static void httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			    enum MHD_RequestTerminationCode toe)
{
	struct httpd_conn *hc = *con_cls;

	if (!hc)
		return;
	buf_release(&hc->body);
	free(hc);
	*con_cls = NULL;
}

static __attribute__((format(printf, 2, 0))) void httpd_mhd_log(void *cls, const char *fmt,
								  va_list ap)
{
	struct buf b = BUF_INIT;

	buf_vprintf(&b, fmt, ap);
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	log_debug("libmicrohttpd: %s", b.data);
	buf_release(&b);
}

/* --- binding ---------------------------------------------------------------------- */

static int httpd_listen_on(const struct addrinfo *ai, bool every)
{
	int fd, one = 1, zero = 0;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Every address: IPv6's wildcard takes IPv4 too. */
	if (every && ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* A listening socket on host:port (host NULL: every address), and the port
 * bound; each address the name has is tried in turn. */
static int httpd_bind(const char *host, int port, const char *what, int *fd_out, int *bound,
		      struct err *e)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[8];
	int fd = -1, r, saved = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r)
		return err_set(e, ERR_USAGE, "%s %s: %s", what, host ? host : "", gai_strerror(r));
	/* For every address, IPv6 first (pass 0), then the rest; for a name,
	 * its addresses in getaddrinfo's order. */
	for (int pass = 0; pass < 2 && fd < 0; pass++)
		for (ai = res; ai && fd < 0; ai = ai->ai_next) {
			if (host ? pass : (ai->ai_family == AF_INET6) != (pass == 0))
				continue;
			fd = httpd_listen_on(ai, !host);
			if (fd < 0)
				saved = errno;
		}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = saved;
		return err_sys(e, ERR_IO, "cannot listen on %s port %d", host ? host : "every address",
			       port);
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		r = err_sys(e, ERR_IO, "getsockname");
		close(fd);
		return r;
	}
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

/* --- the server -------------------------------------------------------------------- */

int httpd_start(const struct httpd_opts *o, struct httpd **out, struct err *e)
{
	struct httpd *h;
	const char *host = o->host && *o->host ? o->host : NULL;
	int fd = -1, r;

	*out = NULL;
	h = xcalloc(1, sizeof(*h));
	h->body_max = o->body_max ? o->body_max : HTTPD_BODY_MAX;
	h->handler = o->handler;
	h->error = o->error;
	h->arg = o->arg;
	atomic_init(&h->stopping, false);
	r = httpd_bind(host, o->port, o->what ? o->what : "the HTTP server", &fd, &h->port, e);
	if (r) {
		free(h);
		return r;
	}
	/* The daemon owns the socket from here: MHD_stop_daemon closes it. */
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
				     MHD_USE_ERROR_LOG,
				     0, NULL, NULL, httpd_access, h,
				     MHD_OPTION_EXTERNAL_LOGGER, httpd_mhd_log, h,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h,
				     MHD_OPTION_CONNECTION_LIMIT,
				     o->conn_max ? o->conn_max : (unsigned)HTTPD_CONN_MAX,
				     MHD_OPTION_CONNECTION_TIMEOUT,
				     o->idle_s ? o->idle_s : (unsigned)HTTPD_IDLE_S,
				     MHD_OPTION_END);
	if (!h->daemon) {
		close(fd);
		free(h);
		return err_set(e, ERR_FAIL, "cannot start the HTTP server on %s port %d",
			       host ? host : "every address", o->port);
	}
	*out = h;
	return 0;
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	atomic_store(&h->stopping, true);
	MHD_stop_daemon(h->daemon);
	free(h);
}
