#include "store/s3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/md5.h"
#include "common/sha256.h"
#include "common/xalloc.h"

#define S3_DEFAULT_PART (16 * S3_MIB)
#define S3_DEFAULT_MULTIPART (16 * S3_MIB)
#define S3_PROGRESS_MS 100

struct s3_client {
	struct s3_opts o;        /* strings below are the client's own */
	char *scheme;            /* "http" or "https" */
	char *host;              /* the Host header: BUCKET.HOST in virtual-host style */
	char *base_path;         /* the endpoint's own path, "" or "/p" */
	struct sigv4_key key;
	struct http_retry retry;
	struct http_retry retry_once; /* for requests that are not idempotent */
};

static const int s3_retry_statuses[] = { 429, 500, 502, 503, 504, 0 };

static bool s3_bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (!n || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", b[i]))
			return false;
	return true;
}

/* Split an endpoint URL into scheme, host[:port] (lower case, the default
 * port dropped, as the Host header carries it) and its path. */
static int s3_parse_endpoint(const char *url, char **scheme, char **host, char **path,
			     struct err *e)
{
	const char *p, *end;
	size_t n;

	if (!strncasecmp(url, "https://", 8)) {
		*scheme = xstrdup("https");
		p = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		*scheme = xstrdup("http");
		p = url + 7;
	} else {
		return err_set(e, ERR_CONFIG, "the S3 endpoint '%s' must start with http:// or https://",
			       url);
	}
	end = p + strcspn(p, "/?#");
	if (end == p || memchr(p, '@', (size_t)(end - p)) || strchr(end, '?') ||
	    strchr(end, '#') || str_has_ctrl(url) || strchr(url, ' ')) {
		free(*scheme);
		*scheme = NULL;
		return err_set(e, ERR_CONFIG,
			       "the S3 endpoint must be scheme://host[:port][/path], without "
			       "credentials, query or fragment");
	}
	n = (size_t)(end - p);
	if (!strcmp(*scheme, "http") && n > 3 && !strncmp(end - 3, ":80", 3))
		n -= 3;
	else if (!strcmp(*scheme, "https") && n > 4 && !strncmp(end - 4, ":443", 4))
		n -= 4;
	*host = xstrndup(p, n);
	for (char *c = *host; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	n = strlen(end);
	while (n && end[n - 1] == '/')
		n--;
	*path = xstrndup(end, n);
	return 0;
}

int s3_client_new(struct s3_client **out, const struct s3_opts *o, struct err *e)
{
	struct s3_client *c;
	char *scheme = NULL, *host = NULL, *path = NULL;
	int r;

	*out = NULL;
	if (!o->endpoint || !*o->endpoint)
		return err_set(e, ERR_CONFIG, "no S3 endpoint: set R2_ACCOUNT_ID (Cloudflare R2) "
					      "or AWS_ENDPOINT_URL");
	if (!o->bucket || !*o->bucket)
		return err_set(e, ERR_CONFIG, "no bucket: set s3.bucket (FERRY_S3_BUCKET) "
					      "or r2.bucket (R2_BUCKET_NAME)");
	if (!s3_bucket_ok(o->bucket))
		return err_set(e, ERR_CONFIG, "'%s' is not a bucket name", o->bucket);
	if (!o->access_key || !*o->access_key || !o->secret_key || !*o->secret_key)
		return err_set(e, ERR_CONFIG, "no S3 credentials: set %s",
			       o->key_hint ? o->key_hint
					   : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	if (o->parallel < 0 || o->parallel > S3_MAX_PARALLEL)
		return err_set(e, ERR_CONFIG, "s3.parallel is 1 to %d parts, not %d",
			       S3_MAX_PARALLEL, o->parallel);
	if (o->part_size && (o->part_size < S3_MIN_PART || o->part_size > S3_MAX_PART))
		return err_set(e, ERR_CONFIG, "s3.part_size_mb is 5 to 5120 MiB, not %llu",
			       (unsigned long long)(o->part_size / S3_MIB));
	if (o->multipart_above > S3_MAX_PART)
		return err_set(e, ERR_CONFIG, "s3.multipart_mb is at most 5120 MiB (one PUT)");
	r = s3_parse_endpoint(o->endpoint, &scheme, &host, &path, e);
	if (r)
		return r;
	c = xcalloc(1, sizeof(*c));
	c->o = *o;
	c->o.endpoint = xstrdup(o->endpoint);
	c->o.region = xstrdup(o->region && *o->region ? o->region : "us-east-1");
	c->o.bucket = xstrdup(o->bucket);
	c->o.access_key = xstrdup(o->access_key);
	c->o.secret_key = xstrdup(o->secret_key);
	c->o.session_token = o->session_token && *o->session_token ? xstrdup(o->session_token)
								  : NULL;
	c->o.key_hint = xstrdup(o->key_hint ? o->key_hint
					    : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	c->o.upload_state = o->upload_state ? xstrdup(o->upload_state) : NULL;
	c->o.timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;
	c->o.tries = o->tries > 0 ? o->tries : 5;
	c->o.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 250;
	c->o.part_size = o->part_size ? o->part_size : S3_DEFAULT_PART;
	c->o.multipart_above = o->multipart_above ? o->multipart_above : S3_DEFAULT_MULTIPART;
	c->o.parallel = o->parallel ? o->parallel : S3_MAX_PARALLEL;
	log_register_secret(c->o.secret_key);
	if (c->o.session_token)
		log_register_secret(c->o.session_token);
	c->scheme = scheme;
	c->base_path = path;
	if (o->virtual_host) {
		c->host = xasprintf("%s.%s", o->bucket, host);
		free(host);
	} else {
		c->host = host;
	}
	c->key = (struct sigv4_key){ c->o.access_key, c->o.secret_key, c->o.session_token,
				     c->o.region, "s3" };
	c->retry = (struct http_retry){ .max_tries = c->o.tries, .base_ms = c->o.backoff_ms,
					.idempotent = true, .statuses = s3_retry_statuses };
	c->retry_once = c->retry;
	c->retry_once.idempotent = false;
	*out = c;
	return 0;
}

static void s3_free_str(const char *s)
{
	if (s)
		freezero((char *)s, strlen(s));
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	s3_free_str(c->o.endpoint);
	s3_free_str(c->o.region);
	s3_free_str(c->o.bucket);
	s3_free_str(c->o.access_key);
	s3_free_str(c->o.secret_key);
	s3_free_str(c->o.session_token);
	s3_free_str(c->o.key_hint);
	s3_free_str(c->o.upload_state);
	free(c->scheme);
	free(c->host);
	free(c->base_path);
	free(c);
}

const struct s3_opts *s3_client_opts(const struct s3_client *c)
{
	return &c->o;
}

void s3_client_set_cancel(struct s3_client *c, struct cancel *cancel)
{
	c->o.cancel = cancel;
}

const struct http_retry *s3_client_retry(const struct s3_client *c)
{
	return &c->retry;
}

char *s3_uri(const struct s3_client *c, const char *key)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "s3://%s/", c->o.bucket);
	if (key)
		str_escape(key, &b);
	return buf_detach(&b, NULL);
}

/* The path as signed (not encoded): endpoint path, bucket (path style), key. */
static char *s3_path(const struct s3_client *c, const char *key)
{
	if (c->o.virtual_host)
		return xasprintf("%s/%s", c->base_path, key ? key : "");
	if (key)
		return xasprintf("%s/%s/%s", c->base_path, c->o.bucket, key);
	return xasprintf("%s/%s", c->base_path, c->o.bucket);
}

static void s3_url(const struct s3_client *c, const char *path, const char *query,
		   struct buf *out)
{
	buf_printf(out, "%s://%s", c->scheme, c->host);
	sigv4_uri_encode(path, strlen(path), false, out);
	if (query && *query)
		buf_printf(out, "?%s", query);
}

void s3_prepared_release(struct s3_prepared *p)
{
	free(p->url);
	free(p->shown);
	for (size_t i = 0; i < p->headers.n; i++)
		explicit_bzero(p->headers.v[i], strlen(p->headers.v[i]));
	strv_release(&p->headers);
	memset(p, 0, sizeof(*p));
}

int s3_prepare(struct s3_client *c, const struct s3_call *call, struct s3_prepared *p,
	       struct err *e)
{
	char date[17], body_hash[SHA256_HEX_LEN + 1];
	const char *payload = call->payload_hash;
	struct strv sign_headers = STRV_INIT;
	struct sigv4_signed sig;
	struct buf url = BUF_INIT;
	char *path = s3_path(c, call->key);
	struct sigv4_request rq;
	int r;

	memset(p, 0, sizeof(*p));
	if (!payload) {
		sha256_hex(call->body ? call->body : "", call->body ? call->body_len : 0, body_hash);
		payload = body_hash;
	}
	for (const char *const *h = call->headers; h && *h; h++)
		strv_push(&sign_headers, *h);
	strv_push_nodup(&sign_headers, xasprintf("x-amz-content-sha256: %s", payload));
	sigv4_amz_date(time(NULL), date);
	rq = (struct sigv4_request){
		.method = call->method, .host = c->host, .path = path, .query = call->query,
		.nquery = call->nquery, .headers = (const char *const *)sign_headers.v,
		.payload_hash = payload, .amz_date = date,
	};
	sigv4_signed_init(&sig);
	r = sigv4_sign(&c->key, &rq, &sig, e);
	if (r)
		goto out;
	s3_url(c, path, sig.query.data, &url);
	p->url = buf_detach(&url, NULL);
	p->shown = http_url_shown(p->url);
	/* curl would send the Host it makes up itself; send the one signed. */
	strv_push_nodup(&p->headers, xasprintf("Host: %s", c->host));
	for (size_t i = 0; i < sign_headers.n; i++)
		strv_push(&p->headers, sign_headers.v[i]);
	for (size_t i = 0; i < sig.send_headers.n; i++)
		strv_push(&p->headers, sig.send_headers.v[i]);
	p->rq = (struct http_request){
		.method = call->method, .url = p->url, .shown = p->shown,
		.headers = (const char *const *)p->headers.v,
		.body = call->body, .body_len = call->body_len,
		.use_body_fd = call->use_body_fd, .body_fd = call->body_fd,
		.body_fd_off = call->body_fd_off, .body_fd_len = call->body_fd_len,
		.use_reply_fd = call->use_reply_fd, .reply_fd = call->reply_fd,
		.timeout_s = call->transfer ? -1 : c->o.timeout_s,
		.stall_s = call->transfer ? c->o.timeout_s : 0,
		.max_reply = call->max_reply,
		.cancel = c->o.cancel,
	};
out:
	sigv4_signed_release(&sig);
	strv_release(&sign_headers);
	free(path);
	return r;
}

int s3_answer_error(const struct s3_client *c, const char *what, const struct http_response *rs,
		    struct err *e)
{
	struct s3_error se;
	struct buf msg = BUF_INIT;
	bool have = s3_xml_error(rs->body.data, rs->body.len, &se);
	int code = ERR_HTTP;

	if (have) {
		buf_printf(&msg, "%ld ", rs->status);
		str_escape(se.code, &msg);
		if (se.message[0]) {
			buf_puts(&msg, ": ");
			str_escape(se.message, &msg);
		}
	} else {
		buf_printf(&msg, "%ld", rs->status);
		if (rs->body.len && !strstr(rs->content_type, "xml")) {
			/* Not S3's XML (a proxy's page, say): its first line. */
			char *line = xstrndup(rs->body.data, strcspn(rs->body.data, "\r\n"));

			if (strlen(line) > 200)
				line[200] = '\0';
			buf_puts(&msg, ": ");
			str_escape(line, &msg);
			free(line);
		}
	}
	if (rs->status == 403 || (have && (!strcmp(se.code, "SignatureDoesNotMatch") ||
					   !strcmp(se.code, "InvalidAccessKeyId") ||
					   !strcmp(se.code, "AuthorizationHeaderMalformed") ||
					   !strcmp(se.code, "InvalidToken") ||
					   !strcmp(se.code, "ExpiredToken")))) {
		code = ERR_CONFIG;
		buf_printf(&msg, " (the credentials were refused%s: check %s, the region '%s' "
				 "and this machine's clock)",
			   have && !strcmp(se.code, "AccessDenied")
				   ? ", or they may not use this bucket" : "",
			   c->o.key_hint, c->o.region);
	} else if (have && !strcmp(se.code, "NoSuchBucket")) {
		code = ERR_CONFIG;
		buf_printf(&msg, " (the bucket '%s' does not exist at %s)", c->o.bucket,
			   c->o.endpoint);
	} else if (rs->status == 404 && (!have || !strcmp(se.code, "NoSuchKey"))) {
		code = ERR_NOTFOUND;
	}
	err_set(e, code, "%s: %s", what, msg.data);
	buf_release(&msg);
	return code;
}

int s3_exchange(struct s3_client *c, const struct s3_call *call, const char *what,
		struct http_response *rs, struct err *e)
{
	struct s3_prepared p;
	int r = s3_prepare(c, call, &p, e);

	if (r)
		return r;
	r = http_do(&p.rq, call->not_idempotent ? &c->retry_once : &c->retry, rs, e);
	if (r)
		err_prefix(e, "%s", what);
	else if (rs->status < 200 || rs->status > 299)
		r = s3_answer_error(c, what, rs, e);
	s3_prepared_release(&p);
	return r;
}

/* ---- the task runner ---- */

enum { S3_TASK_WAITING, S3_TASK_RUNNING, S3_TASK_DONE };

static void s3_run_progress(const struct s3_run_opts *o, struct s3_task *tasks, size_t n,
			    uint64_t done, long long *last, bool force)
{
	long long now = clock_mono_ms();
	uint64_t moving = 0;

	if (!o->pg || !o->pg->fn || (!force && now - *last < S3_PROGRESS_MS))
		return;
	*last = now;
	for (size_t i = 0; i < n; i++)
		if (tasks[i].state == S3_TASK_RUNNING)
			moving += tasks[i].call.use_body_fd ? tasks[i].rs.sent : tasks[i].rs.received;
	o->pg->fn(o->pg->arg, o->phase ? o->phase : "", o->done_before + done + moving, o->total);
}

int s3_run(struct s3_client *c, struct s3_task *tasks, size_t n, const struct s3_run_opts *o,
	   struct err *e)
{
	static const struct s3_run_opts none = { 0 };
	struct http_multi *m = http_multi_new();
	int parallel, running = 0, r = 0;
	size_t finished = 0;
	uint64_t bytes_done = 0;
	long long last = 0;
	struct err je;

	if (!o)
		o = &none;
	parallel = o->parallel > 0 ? o->parallel : c->o.parallel;
	for (size_t i = 0; i < n; i++) {
		tasks[i].state = S3_TASK_WAITING;
		tasks[i].tries = 0;
		tasks[i].not_before = 0;
		http_response_init(&tasks[i].rs);
	}
	while (finished < n) {
		long long now = clock_mono_ms(), soonest = now + 50;
		enum http_outcome how = HTTP_ANSWERED;
		struct s3_task *j;
		bool again = false, held = false;
		void *tag;
		int jr;

		/* Transfers in flight see the token themselves (http); this
		 * catches it between them and while waiting to retry. */
		if (cancel_is_set(c->o.cancel)) {
			r = err_set(e, ERR_CANCELLED, "%s: cancelled", n ? tasks[0].what : "S3");
			goto out;
		}
		/* Start what may start, in order: a task that is not ready holds
		 * back the ones after it; one waiting to retry does not. */
		for (size_t i = 0; i < n && running < parallel; i++) {
			j = &tasks[i];
			if (j->state != S3_TASK_WAITING)
				continue;
			if (j->not_before > now) {
				if (j->not_before < soonest)
					soonest = j->not_before;
				continue;
			}
			if (!j->tries && o->ready) {
				jr = o->ready(o->arg, i, e);
				if (jr < -1) {
					r = jr;
					goto out;
				}
				if (jr == 0) {
					held = true;
					break;
				}
				if (jr == -1) {
					j->state = S3_TASK_DONE;
					finished++;
					bytes_done += j->bytes;
					continue;
				}
			}
			err_clear(&je);
			r = s3_prepare(c, &j->call, &j->prep, e);
			if (!r)
				r = http_multi_add(m, &j->prep.rq, &j->rs, j, e);
			if (r) {
				s3_prepared_release(&j->prep);
				goto out;
			}
			j->state = S3_TASK_RUNNING;
			j->tries++;
			running++;
		}
		if (finished == n)
			break;
		if (!running) {
			/* Waiting for `ready` (soon: a part being hashed) or for a
			 * retry's time. */
			clock_sleep_ms(held ? 5 : soonest > now ? soonest - now : 5, c->o.cancel);
			s3_run_progress(o, tasks, n, bytes_done, &last, false);
			continue;
		}
		err_clear(&je);
		jr = http_multi_next(m, held ? 5 : 50, &tag, &how, &je);
		s3_run_progress(o, tasks, n, bytes_done, &last, false);
		if (!tag)
			continue;
		j = tag;
		running--;
		if (!jr && j->rs.status >= 200 && j->rs.status <= 299) {
			jr = j->check ? j->check(j, &j->rs, &je) : 0;
			again = jr == ERR_CORRUPT;
		} else if (!jr) {
			again = http_retryable(&c->retry, 0, how, j->rs.status);
			jr = s3_answer_error(c, j->what, &j->rs, &je);
		} else {
			again = http_retryable(j->call.not_idempotent ? &c->retry_once : &c->retry,
					       jr, how, 0);
			err_prefix(&je, "%s", j->what);
		}
		s3_prepared_release(&j->prep);
		if (!jr) {
			j->state = S3_TASK_DONE;
			finished++;
			bytes_done += j->bytes;
			continue;
		}
		if (again && j->tries < c->o.tries) {
			long wait = http_backoff_ms(&c->retry, j->tries,
						    j->rs.status ? j->rs.retry_after_s : -1);

			log_info("%s; trying again in %ld ms (try %d of %d)", je.msg, wait,
				 j->tries + 1, c->o.tries);
			j->state = S3_TASK_WAITING;
			j->not_before = clock_mono_ms() + wait;
			continue;
		}
		if (j->tries > 1)
			err_prefix(&je, "after %d tries", j->tries);
		if (e)
			*e = je;
		r = jr;
		goto out;
	}
	s3_run_progress(o, tasks, n, bytes_done, &last, true);
out:
	http_multi_free(m);
	for (size_t i = 0; i < n; i++) {
		if (tasks[i].state == S3_TASK_RUNNING)
			s3_prepared_release(&tasks[i].prep);
		http_response_release(&tasks[i].rs);
	}
	return r;
}

/* ---- objects ---- */

int s3_head(struct s3_client *c, const char *key, struct s3_head *h, struct err *e)
{
	struct s3_call call = { .method = "HEAD", .key = key };
	struct http_response rs;
	char *what = s3_uri(c, key), tmp[128];
	unsigned long long size;
	int r;

	memset(h, 0, sizeof(*h));
	http_response_init(&rs);
	{
		char *w = xasprintf("HEAD %s", what);

		r = s3_exchange(c, &call, w, &rs, e);
		free(w);
	}
	if (r == ERR_NOTFOUND) {
		err_set(e, ERR_NOTFOUND, "no object %s", what);
		goto out;
	}
	if (r)
		goto out;
	if (!http_response_header(&rs, "content-length", tmp, sizeof(tmp)) ||
	    str_to_u64(tmp, &size)) {
		r = err_set(e, ERR_FORMAT, "HEAD %s: no Content-Length in the answer", what);
		goto out;
	}
	h->size = size;
	if (http_response_header(&rs, "etag", h->etag, sizeof(h->etag))) {
		size_t n = strlen(h->etag);

		if (n >= 2 && h->etag[0] == '"' && h->etag[n - 1] == '"') {
			memmove(h->etag, h->etag + 1, n - 2);
			h->etag[n - 2] = '\0';
		}
	}
	if (http_response_header(&rs, "x-amz-meta-sha256", tmp, sizeof(tmp)) &&
	    sha256_is_hex(tmp))
		memcpy(h->sha256, tmp, SHA256_HEX_LEN + 1);
	http_response_header(&rs, "last-modified", h->last_modified, sizeof(h->last_modified));
out:
	http_response_release(&rs);
	free(what);
	return r;
}

/* Whether s is 32 lowercase hex digits: a plain MD5 ETag (single PUT). */
static bool s3_is_md5(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == MD5_HEX_LEN;
}

/* Verify a downloaded file against what the store says of it. */
static int s3_verify_download(const char *tmp, const struct s3_head *h, const char *what,
			      struct err *e)
{
	char hex[SHA256_HEX_LEN + 1];
	uint64_t size = 0;
	int r;

	if (h->sha256[0]) {
		r = sha256_file(tmp, hex, &size, e);
		if (r)
			return r;
		if (strcmp(hex, h->sha256))
			return err_set(e, ERR_CORRUPT,
				       "%s: the download's SHA-256 is %s, the object says %s", what,
				       hex, h->sha256);
	} else if (s3_is_md5(h->etag)) {
		unsigned char md[MD5_LEN];
		char mhex[MD5_HEX_LEN + 1];
		struct buf b = BUF_INIT;
		struct md5 m;
		int fd = open(tmp, O_RDONLY | O_CLOEXEC);
		ssize_t got;

		if (fd < 0)
			return err_sys(e, ERR_IO, "cannot open %s", tmp);
		buf_grow(&b, 1u << 20);
		md5_init(&m);
		while ((got = read(fd, b.data, 1u << 20)) != 0) {
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				md5_final(&m, md);
				buf_release(&b);
				close(fd);
				return err_sys(e, ERR_IO, "cannot read %s", tmp);
			}
			md5_update(&m, b.data, (size_t)got);
			size += (uint64_t)got;
		}
		md5_final(&m, md);
		buf_release(&b);
		close(fd);
		md5_to_hex(md, mhex);
		if (strcmp(mhex, h->etag))
			return err_set(e, ERR_CORRUPT, "%s: the download's MD5 is %s, the ETag says %s",
				       what, mhex, h->etag);
	} else {
		struct stat st;

		if (stat(tmp, &st))
			return err_sys(e, ERR_IO, "cannot stat %s", tmp);
		size = (uint64_t)st.st_size;
		log_info("%s: no SHA-256 recorded with the object; only its size is checked", what);
	}
	if (size != h->size)
		return err_set(e, ERR_CORRUPT, "%s: %llu bytes arrived, the object has %llu", what,
			       (unsigned long long)size, (unsigned long long)h->size);
	return 0;
}

int s3_get_file(struct s3_client *c, const char *key, const char *path,
		const struct progress *pg, uint64_t *size, struct err *e)
{
	struct s3_head h;
	struct s3_task task;
	struct s3_run_opts ro = { .pg = pg, .phase = "downloading" };
	char *what = NULL, *tmp = NULL;
	int fd = -1, r;

	r = s3_head(c, key, &h, e);
	if (r)
		return r;
	r = fsx_mkdir_parent(path, 0755, e);
	if (r)
		return r;
	r = fsx_create_temp(path, 0644, &fd, &tmp, e);
	if (r)
		return r;
	what = s3_uri(c, key);
	memset(&task, 0, sizeof(task));
	task.call = (struct s3_call){ .method = "GET", .key = key, .use_reply_fd = true,
				     .reply_fd = fd, .transfer = true };
	snprintf(task.what, sizeof(task.what), "GET %s", what);
	task.bytes = h.size;
	ro.total = h.size;
	r = s3_run(c, &task, 1, &ro, e);
	if (!r && fsync(fd))
		r = err_sys(e, ERR_IO, "cannot write %s", tmp);
	if (close(fd) && !r)
		r = err_sys(e, ERR_IO, "cannot write %s", tmp);
	if (!r)
		r = s3_verify_download(tmp, &h, what, e);
	if (!r && rename(tmp, path))
		r = err_sys(e, ERR_IO, "cannot rename %s to %s", tmp, path);
	if (r)
		unlink(tmp);
	else if (size)
		*size = h.size;
	free(tmp);
	free(what);
	return r;
}

int s3_list(struct s3_client *c, const char *prefix, struct s3_entry **v, size_t *n,
	    struct err *e)
{
	struct http_response rs;
	char *token = NULL, *what = s3_uri(c, prefix);
	int r = 0;

	*v = NULL;
	*n = 0;
	http_response_init(&rs);
	for (int page = 0;; page++) {
		struct sigv4_param q[3];
		struct s3_list_page pg;
		size_t nq = 0;
		char *w;

		q[nq++] = (struct sigv4_param){ "list-type", "2" };
		if (prefix && *prefix)
			q[nq++] = (struct sigv4_param){ "prefix", prefix };
		if (token)
			q[nq++] = (struct sigv4_param){ "continuation-token", token };
		w = xasprintf("ListObjectsV2 %s (page %d)", what, page + 1);
		r = s3_exchange(c, &(struct s3_call){ .method = "GET", .query = q, .nquery = nq },
				w, &rs, e);
		if (!r)
			r = s3_xml_list_objects(rs.body.data, rs.body.len, v, n, &pg, e);
		free(w);
		free(token);
		token = NULL;
		if (r)
			break;
		if (!pg.truncated)
			break;
		token = pg.next_token;
		if (page > 100000) {
			r = err_set(e, ERR_LIMIT, "ListObjectsV2 %s: more than 100,000 pages", what);
			break;
		}
	}
	free(token);
	http_response_release(&rs);
	free(what);
	if (r) {
		s3_entries_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return r;
}

int s3_delete(struct s3_client *c, const char *key, struct err *e)
{
	struct s3_head h;
	struct http_response rs;
	char *what;
	int r;

	/* S3 answers 204 whether or not the key was there: ask first, so that
	 * removing a key that is not there says so. */
	r = s3_head(c, key, &h, e);
	if (r)
		return r;
	http_response_init(&rs);
	what = s3_uri(c, key);
	{
		char *w = xasprintf("DELETE %s", what);

		r = s3_exchange(c, &(struct s3_call){ .method = "DELETE", .key = key }, w, &rs, e);
		free(w);
	}
	http_response_release(&rs);
	free(what);
	return r;
}

int s3_presign(struct s3_client *c, const char *method, const char *key, long expires_s,
	       char **url, struct err *e)
{
	char date[17], *path = s3_path(c, key);
	struct sigv4_signed sig;
	struct buf b = BUF_INIT;
	struct sigv4_request rq;
	int r;

	*url = NULL;
	sigv4_amz_date(time(NULL), date);
	rq = (struct sigv4_request){ .method = method, .host = c->host, .path = path,
				     .amz_date = date };
	sigv4_signed_init(&sig);
	r = sigv4_presign(&c->key, &rq, expires_s, &sig, e);
	if (!r) {
		s3_url(c, path, sig.query.data, &b);
		*url = buf_detach(&b, NULL);
	}
	sigv4_signed_release(&sig);
	free(path);
	return r;
}
