#include "common/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

#define HTTP_DEFAULT_TIMEOUT_S 60
#define HTTP_DEFAULT_MAX_REPLY (32u << 20)
#define HTTP_MAX_RETRY_AFTER_S 60
#define HTTP_TRACE_MAX 2048 /* bytes of a body shown in a trace */

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_response_init(struct http_response *rs)
{
	memset(rs, 0, sizeof(*rs));
	buf_init(&rs->body);
	buf_init(&rs->headers);
	rs->retry_after_s = -1;
}

void http_response_release(struct http_response *rs)
{
	buf_release(&rs->body);
	buf_release(&rs->headers);
}

/* One exchange in flight: what the callbacks need, and what to free. */
struct http_xfer {
	const struct http_request *rq;
	struct http_response *rs;
	CURL *curl;
	struct curl_slist *hdrs;
	size_t max_reply;
	bool too_big;
	int write_errno, read_errno; /* a reply or body fd failed */
	long long t0;
	void *tag;                   /* http_multi's */
	char errbuf[CURL_ERROR_SIZE];
};

static size_t http_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * n;
	long status = 0;

	if (x->rq->use_reply_fd) {
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			if (fsx_write_all(x->rq->reply_fd, p, len)) {
				x->write_errno = errno ? errno : EIO;
				return 0;
			}
			x->rs->received += len;
			return len;
		}
	}
	if (x->rs->body.len + len > x->max_reply) {
		x->too_big = true;
		return 0;
	}
	buf_add(&x->rs->body, p, len);
	x->rs->received += len;
	return len;
}

/* The body from a file: pread at the request's offset plus what was sent. */
static size_t http_on_read(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	uint64_t left = x->rq->body_fd_len - x->rs->sent;
	size_t want = size * n < left ? size * n : (size_t)left;
	ssize_t got;

	if (!want)
		return 0;
	do
		got = pread(x->rq->body_fd, p, want, (off_t)(x->rq->body_fd_off + x->rs->sent));
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		/* A file that shrank under us is as bad as a read error. */
		x->read_errno = got < 0 ? errno : ENODATA;
		return CURL_READFUNC_ABORT;
	}
	x->rs->sent += (uint64_t)got;
	return (size_t)got;
}

/* curl rewinds the body to send it again (after a 417 or a redirect). */
static int http_on_seek(void *arg, curl_off_t offset, int origin)
{
	struct http_xfer *x = arg;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->rq->body_fd_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->rs->sent = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* The value of header `name` (lower case, with the colon) in the line
 * p[0..len), trimmed into out; false when the line is another header. */
static bool http_header_value(const char *p, size_t len, const char *name, char *out,
			      size_t outsz)
{
	size_t k = strlen(name), v;

	if (len <= k || strncasecmp(p, name, k))
		return false;
	v = len - k;
	if (v >= outsz)
		v = outsz - 1;
	memcpy(out, p + k, v);
	out[v] = '\0';
	memmove(out, str_trim(out), strlen(str_trim(out)) + 1);
	return true;
}

static size_t http_on_header(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * n, k = len;
	char tmp[128];
	unsigned long long v;

	/* A new status line (after 100 Continue, say) starts a new answer. */
	if (len > 5 && !strncmp(p, "HTTP/", 5)) {
		buf_reset(&x->rs->headers);
		x->rs->content_type[0] = '\0';
		x->rs->retry_after_s = -1;
	}
	while (k && (p[k - 1] == '\r' || p[k - 1] == '\n'))
		k--;
	if (k && memchr(p, ':', k) && x->rs->headers.len + k < (64u << 10)) {
		buf_add(&x->rs->headers, p, k);
		buf_putc(&x->rs->headers, '\n');
	}
	if (http_header_value(p, len, "retry-after:", tmp, sizeof(tmp)) && !str_to_u64(tmp, &v))
		x->rs->retry_after_s = v > HTTP_MAX_RETRY_AFTER_S ? HTTP_MAX_RETRY_AFTER_S : (long)v;
	else if (http_header_value(p, len, "content-type:", tmp, sizeof(tmp)))
		memcpy(x->rs->content_type, tmp, sizeof(x->rs->content_type) - 1);
	return len;
}

bool http_response_header(const struct http_response *rs, const char *name, char *out,
			  size_t outsz)
{
	const char *p = rs->headers.data, *end = p + rs->headers.len;
	size_t k = strlen(name);
	char *want = xasprintf("%s:", name);
	bool found = false;

	while (p < end && !found) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		if (len > k && p[k] == ':')
			found = http_header_value(p, len, want, out, outsz);
		p = nl ? nl + 1 : end;
	}
	free(want);
	return found;
}

/* In a JSON text, replace the string values of members whose names say
 * they hold credentials (…key, …token, secret, password) by ****: a reply
 * can carry one ferry has not seen before (a new instance's own key). */
static void http_mask_json_secrets(struct buf *b)
{
	static const char *const words[] = { "key", "token", "secret", "password" };
	struct buf out = BUF_INIT;
	const char *p = b->data, *end = b->data + b->len;

	while (p < end) {
		const char *name = memchr(p, '"', (size_t)(end - p)), *q, *v;
		bool secret = false;

		if (!name)
			break;
		for (q = name + 1; q < end && *q != '"'; q++)
			if (*q == '\\' && q + 1 < end)
				q++;
		if (q >= end)
			break;
		buf_add(&out, p, (size_t)(q + 1 - p));
		p = q + 1;
		for (v = p; v < end && (*v == ' ' || *v == ':'); v++)
			;
		if (v == p || v >= end || *v != '"' || !memchr(p, ':', (size_t)(v - p)))
			continue;
		{
			char low[64];
			size_t k = (size_t)(q - name - 1) < sizeof(low) - 1 ? (size_t)(q - name - 1)
									  : sizeof(low) - 1;

			for (size_t i = 0; i < k; i++)
				low[i] = (char)tolower((unsigned char)name[1 + i]);
			low[k] = '\0';
			for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && !secret; i++)
				secret = strstr(low, words[i]) != NULL;
		}
		if (!secret)
			continue;
		for (q = v + 1; q < end && *q != '"'; q++)
			if (*q == '\\' && q + 1 < end)
				q++;
		buf_add(&out, p, (size_t)(v + 1 - p));
		buf_puts(&out, "****");
		p = q < end ? q : end;
	}
	buf_add(&out, p, (size_t)(end - p));
	buf_release(b);
	*b = out;
}

/* Trace headers and bodies at LOG_TRACE. The Authorization header's value
 * never reaches the log, whatever it holds; registered secrets are masked
 * by the logger as everywhere. */
static int http_on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	const char *dir;
	struct buf b = BUF_INIT;

	switch (type) {
	case CURLINFO_HEADER_OUT: dir = ">"; break;
	case CURLINFO_HEADER_IN: dir = "<"; break;
	case CURLINFO_DATA_OUT: dir = "> body"; break;
	case CURLINFO_DATA_IN: dir = "< body"; break;
	default: return 0;
	}
	if (type == CURLINFO_HEADER_OUT || type == CURLINFO_HEADER_IN) {
		const char *p = data, *end = data + size;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = (size_t)((nl ? nl : end) - p);

			while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
				n--;
			if (n) {
				if (n > 14 && !strncasecmp(p, "authorization:", 14))
					log_trace("%s Authorization: ****", dir);
				else
					log_trace("%s %.*s", dir, (int)n, p);
			}
			p = nl ? nl + 1 : end;
		}
	} else {
		size_t n = size > HTTP_TRACE_MAX ? HTTP_TRACE_MAX : size;
		struct buf raw = BUF_INIT;

		/* Mask secrets before escaping changes how they are spelled. */
		buf_add(&raw, data, n);
		log_redact(&raw);
		http_mask_json_secrets(&raw);
		str_escape(raw.data, &b);
		buf_release(&raw);
		log_trace("%s (%zu bytes)%s %s", dir, size, size > n ? ", start" : "", b.data);
	}
	buf_release(&b);
	return 0;
}

static int http_on_xferinfo(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			    curl_off_t ulnow)
{
	const struct http_xfer *x = arg;

	return cancel_is_set(x->rq->cancel);
}

static enum http_outcome http_classify(CURLcode cc, curl_off_t connect_us)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return HTTP_NOT_SENT;
	case CURLE_OPERATION_TIMEDOUT:
		return connect_us == 0 ? HTTP_NOT_SENT : HTTP_NO_ANSWER;
	case CURLE_SSL_CONNECT_ERROR:
		return HTTP_NOT_SENT;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return HTTP_NO_ANSWER;
	default:
		return HTTP_REFUSED;
	}
}

/* Make the easy handle for one exchange. Returns 0, or ERR_IO when curl
 * cannot start (outcome HTTP_REFUSED). */
static int http_xfer_start(struct http_xfer *x, const struct http_request *rq,
			   struct http_response *rs, struct err *e)
{
	long timeout = rq->timeout_s > 0 ? rq->timeout_s : rq->timeout_s < 0 ? 0
									: HTTP_DEFAULT_TIMEOUT_S;
	long connect = timeout > 0 && timeout < 15 ? timeout : 15L;
	CURL *curl;

	pthread_once(&http_once, http_global_init);
	memset(x, 0, sizeof(*x));
	x->rq = rq;
	x->rs = rs;
	x->t0 = clock_mono_ms();
	rs->status = 0;
	rs->content_type[0] = '\0';
	rs->retry_after_s = -1;
	rs->sent = rs->received = 0;
	buf_reset(&rs->body);
	buf_reset(&rs->headers);
	x->max_reply = rq->max_reply ? rq->max_reply : HTTP_DEFAULT_MAX_REPLY;
	if (rq->use_reply_fd &&
	    (ftruncate(rq->reply_fd, 0) || lseek(rq->reply_fd, 0, SEEK_SET) < 0))
		return err_sys(e, ERR_IO, "cannot empty the file for the answer from %s",
			       rq->shown ? rq->shown : rq->url);
	curl = x->curl = curl_easy_init();
	if (!curl)
		return err_set(e, ERR_IO, "cannot start an HTTP client");
	for (const char *const *h = rq->headers; h && *h; h++)
		x->hdrs = curl_slist_append(x->hdrs, *h);
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	curl_easy_setopt(curl, CURLOPT_URL, rq->url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, x->hdrs);
	if (rq->use_body_fd) {
		/* UPLOAD makes it a PUT; CUSTOMREQUEST below names the method. */
		curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_fd_len);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, http_on_read);
		curl_easy_setopt(curl, CURLOPT_READDATA, x);
		curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, http_on_seek);
		curl_easy_setopt(curl, CURLOPT_SEEKDATA, x);
		curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);
	} else if (rq->body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (!strcmp(rq->method, "GET")) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L); /* else curl waits for a body */
	}
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout);
	if (rq->stall_s > 0) {
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)rq->stall_s);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(curl, CURLOPT_PRIVATE, x);
	if (rq->cancel) {
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, http_on_xferinfo);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, x);
	}
	if (log_get_level() >= LOG_TRACE) {
		curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, http_on_debug);
		curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
	}
	return 0;
}

/* Free an exchange's handle and header list. */
static void http_xfer_drop(struct http_xfer *x)
{
	if (x->curl)
		curl_easy_cleanup(x->curl);
	curl_slist_free_all(x->hdrs);
	x->curl = NULL;
	x->hdrs = NULL;
}

/* Read what became of an exchange that curl ended with cc, and free its
 * handle. Returns like http_send. */
static int http_xfer_finish(struct http_xfer *x, CURLcode cc, enum http_outcome *how,
			    struct err *e)
{
	const struct http_request *rq = x->rq;
	struct http_response *rs = x->rs;
	const char *shown = rq->shown ? rq->shown : rq->url;
	enum http_outcome outcome = HTTP_ANSWERED;
	curl_off_t connect_us = 0;
	int r = 0;

	if (cc == CURLE_OK) {
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &rs->status);
		log_debug("%s %s: %ld, %llu bytes, %lld ms", rq->method, shown, rs->status,
			  (unsigned long long)rs->received, clock_mono_ms() - x->t0);
	} else if (x->too_big) {
		outcome = HTTP_REFUSED;
		/* A cap under 1 MiB is shown in bytes: "larger than 0 MiB" says
		 * nothing. */
		if (x->max_reply < (1u << 20))
			r = err_set(e, ERR_LIMIT, "the answer from %s is larger than %zu bytes",
				    shown, x->max_reply);
		else
			r = err_set(e, ERR_LIMIT, "the answer from %s is larger than %zu MiB",
				    shown, x->max_reply >> 20);
	} else if (cc == CURLE_ABORTED_BY_CALLBACK && cancel_is_set(rq->cancel)) {
		curl_easy_getinfo(x->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
		outcome = connect_us == 0 ? HTTP_NOT_SENT : HTTP_NO_ANSWER;
		r = err_set(e, ERR_CANCELLED, "%s %s: cancelled", rq->method, shown);
	} else if (x->write_errno || x->read_errno) {
		/* A local file failed: sending again would not help. */
		outcome = HTTP_REFUSED;
		errno = x->write_errno ? x->write_errno : x->read_errno;
		r = err_sys(e, ERR_IO, "%s %s: cannot %s the local file", rq->method, shown,
			    x->write_errno ? "write" : "read");
	} else {
		curl_easy_getinfo(x->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
		outcome = http_classify(cc, connect_us);
		r = err_set(e, cc == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT : ERR_IO,
			    "cannot reach %s: %s", shown,
			    x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
		log_debug("%s %s: %s", rq->method, shown, e ? e->msg : curl_easy_strerror(cc));
	}
	http_xfer_drop(x);
	if (how)
		*how = outcome;
	return r;
}

int http_send(const struct http_request *rq, struct http_response *rs,
	      enum http_outcome *how, struct err *e)
{
	struct http_xfer x;
	int r = http_xfer_start(&x, rq, rs, e);

	if (r) {
		http_xfer_drop(&x);
		if (how)
			*how = HTTP_REFUSED;
		return r;
	}
	return http_xfer_finish(&x, curl_easy_perform(x.curl), how, e);
}

static bool http_status_listed(const struct http_retry *p, long status)
{
	static const int dflt[] = { 429, 502, 503, 504, 0 };

	for (const int *s = p->statuses ? p->statuses : dflt; *s; s++)
		if (*s == status)
			return true;
	return false;
}

long http_backoff_ms(const struct http_retry *p, int attempt, long retry_after_s)
{
	long base = p && p->base_ms > 0 ? p->base_ms : 250;
	long cap = p && p->max_ms > 0 ? p->max_ms : 8000;
	long d = base;
	unsigned int rnd = 0;

	if (retry_after_s >= 0)
		return (retry_after_s > HTTP_MAX_RETRY_AFTER_S ? HTTP_MAX_RETRY_AFTER_S
							       : retry_after_s) * 1000L;
	for (int i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Full jitter over the upper half: many clients that failed together
	 * do not come back together. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned int)clock_mono_ms();
	return d / 2 + (long)(rnd % (unsigned long)(d / 2 + 1));
}

bool http_retryable(const struct http_retry *p, int r, enum http_outcome how, long status)
{
	static const struct http_retry dflt = { 0 };

	if (!p)
		p = &dflt;
	if (!r)
		return status == 429 || (p->idempotent && http_status_listed(p, status));
	if (r == ERR_CANCELLED)
		return false;
	return how == HTTP_NOT_SENT || (p->idempotent && how == HTTP_NO_ANSWER);
}

int http_do(const struct http_request *rq, const struct http_retry *p,
	    struct http_response *rs, struct err *e)
{
	static const struct http_retry dflt = { 0 };
	struct err local;
	int tries, r;

	if (!p)
		p = &dflt;
	if (!e)
		e = &local; /* the loop reads messages back */
	tries = p->max_tries > 0 ? p->max_tries : 5;
	for (int attempt = 1;; attempt++) {
		enum http_outcome how;
		bool again;
		long wait;

		err_clear(e);
		rs->tries = attempt;
		r = http_send(rq, rs, &how, e);
		again = http_retryable(p, r, how, rs->status);
		if (!again || attempt >= tries) {
			if (r && again)
				err_prefix(e, "after %d tries", attempt);
			return r;
		}
		wait = http_backoff_ms(p, attempt, r ? -1 : rs->retry_after_s);
		log_info("%s %s: %s; trying again in %ld ms (try %d of %d)", rq->method,
			 rq->shown ? rq->shown : rq->url,
			 r ? e->msg : (rs->status == 429 ? "rate limited (429)" : "server busy"),
			 wait, attempt + 1, tries);
		if (clock_sleep_ms(wait, rq->cancel))
			return err_set(e, ERR_CANCELLED, "%s %s: cancelled", rq->method,
				       rq->shown ? rq->shown : rq->url);
	}
}

struct http_multi {
	CURLM *m;
	struct http_xfer **x; /* added and not yet handed back */
	size_t running, alloc;
};

struct http_multi *http_multi_new(void)
{
	struct http_multi *m = xcalloc(1, sizeof(*m));

	pthread_once(&http_once, http_global_init);
	m->m = curl_multi_init();
	if (!m->m)
		abort();
	return m;
}

void http_multi_free(struct http_multi *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->running; i++) {
		curl_multi_remove_handle(m->m, m->x[i]->curl);
		http_xfer_drop(m->x[i]);
		free(m->x[i]);
	}
	free(m->x);
	curl_multi_cleanup(m->m);
	free(m);
}

int http_multi_add(struct http_multi *m, const struct http_request *rq,
		   struct http_response *rs, void *tag, struct err *e)
{
	struct http_xfer *x = xmalloc(sizeof(*x));
	int r = http_xfer_start(x, rq, rs, e);

	if (!r && curl_multi_add_handle(m->m, x->curl) != CURLM_OK)
		r = err_set(e, ERR_IO, "cannot start an HTTP exchange");
	if (r) {
		http_xfer_drop(x);
		free(x);
		return r;
	}
	x->tag = tag;
	ALLOC_GROW(m->x, m->running + 1, m->alloc);
	m->x[m->running++] = x;
	return 0;
}

size_t http_multi_running(const struct http_multi *m)
{
	return m->running;
}

int http_multi_next(struct http_multi *m, int wait_ms, void **tag, enum http_outcome *how,
		    struct err *e)
{
	long long deadline = clock_mono_ms() + (wait_ms > 0 ? wait_ms : 0);

	*tag = NULL;
	while (m->running) {
		int still = 0, left = 0;
		CURLMsg *msg;
		long long now;

		curl_multi_perform(m->m, &still);
		while ((msg = curl_multi_info_read(m->m, &left))) {
			struct http_xfer *x = NULL;
			CURLcode cc = msg->data.result;
			int r;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			curl_multi_remove_handle(m->m, msg->easy_handle);
			for (size_t i = 0; i < m->running; i++)
				if (m->x[i] == x)
					m->x[i] = m->x[--m->running];
			*tag = x->tag;
			r = http_xfer_finish(x, cc, how, e);
			free(x);
			return r;
		}
		now = clock_mono_ms();
		if (now >= deadline)
			break;
		curl_multi_poll(m->m, NULL, 0, (int)(deadline - now), NULL);
	}
	return 0;
}

/* Where the authority (userinfo@host:port) of `url` starts and ends, and
 * where the userinfo ends (the '@'), or NULL. The authority ends at the
 * first '/', '?' or '#' (RFC 3986); when it holds no '@' but the path does,
 * the URL is read the cautious way: everything up to the last '@' before the
 * query counts as userinfo, so that a password holding a '/' is never shown. */
static void http_url_parts(const char *url, const char **auth, const char **auth_end,
			  const char **at, bool *odd)
{
	const char *p = strstr(url, "://"), *q, *query;

	*auth = p && !memchr(url, '/', (size_t)(p - url)) ? p + 3 : url;
	*auth_end = *auth + strcspn(*auth, "/?#");
	*at = NULL;
	*odd = false;
	for (q = *auth; q < *auth_end; q++)
		if (*q == '@')
			*at = q;
	if (*at)
		return;
	query = *auth + strcspn(*auth, "?#");
	for (q = *auth_end; q < query; q++)
		if (*q == '@')
			*at = q;
	if (*at) {
		*auth_end = *at + 1 + strcspn(*at + 1, "/?#");
		*odd = true;
	}
}

char *http_url_shown(const char *url)
{
	const char *auth, *auth_end, *at, *rest, *tail;
	struct buf raw = BUF_INIT, out = BUF_INIT;
	bool odd;

	http_url_parts(url, &auth, &auth_end, &at, &odd);
	buf_add(&raw, url, (size_t)(auth - url));
	if (odd) /* an '@' in the path: show that something was left out */
		buf_puts(&raw, "\xe2\x80\xa6@");
	rest = at ? at + 1 : auth;
	tail = rest + strcspn(rest, "?#");
	buf_add(&raw, rest, (size_t)(tail - rest));
	if (*tail)
		buf_puts(&raw, *tail == '?' ? "?\xe2\x80\xa6" : "#\xe2\x80\xa6");
	str_escape(raw.data, &out);
	buf_release(&raw);
	return buf_detach(&out, NULL);
}

/* Whether a query parameter's name says its value is a credential. */
static bool http_secret_param(const char *name, size_t n)
{
	static const char *const words[] = { "key", "token", "secret", "sig", "pass", "auth",
					     "code", "credential" };
	char low[64];

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	low[n] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

/* Register `len` bytes of a URL as a secret, as written and percent-decoded
 * (the form a server may echo back). */
static void http_register_part(const char *p, size_t len)
{
	char *raw = xstrndup(p, len), *dec;
	int n = 0;

	log_register_secret(raw);
	dec = len <= INT_MAX ? curl_easy_unescape(NULL, raw, (int)len, &n) : NULL;
	if (dec) {
		if (!memchr(dec, '\0', (size_t)n))
			log_register_secret(dec);
		explicit_bzero(dec, (size_t)n);
		curl_free(dec);
	}
	freezero(raw, len);
}

/* Register the credentials a URL carries (the userinfo's password, or the
 * whole userinfo when it has no ':'; query values with names such as key or
 * token) as secrets, so that no log line or report shows them. */
void http_url_register_secrets(const char *url)
{
	const char *auth, *auth_end, *at, *q;
	bool odd;

	http_url_parts(url, &auth, &auth_end, &at, &odd);
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));

		if (colon)
			http_register_part(colon + 1, (size_t)(at - colon - 1));
		else
			http_register_part(auth, (size_t)(at - auth));
	}
	q = strchr(at ? at : auth, '?');
	while (q && *q && *q != '#') {
		const char *name = q + 1, *end = name + strcspn(name, "&#"), *eq;

		eq = memchr(name, '=', (size_t)(end - name));
		if (eq && http_secret_param(name, (size_t)(eq - name)))
			http_register_part(eq + 1, (size_t)(end - eq - 1));
		q = *end == '&' ? end : NULL;
	}
}

bool http_url_local(const char *url)
{
	const char *auth, *auth_end, *at, *host;
	char name[256];
	size_t n;
	struct in_addr a4;
	struct in6_addr a6;
	bool odd;

	http_url_parts(url, &auth, &auth_end, &at, &odd);
	host = at ? at + 1 : auth;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(auth_end - host));

		if (!close)
			return false;
		host++;
		n = (size_t)(close - host);
	} else {
		const char *colon = memchr(host, ':', (size_t)(auth_end - host));

		n = (size_t)((colon ? colon : auth_end) - host);
	}
	if (!n || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	if (!strcasecmp(name, "localhost") || !strcasecmp(name, "localhost."))
		return true;
	if (inet_aton(name, &a4)) /* also 127.1 and other short forms */
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, name, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

