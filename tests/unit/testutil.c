#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"

char *tu_mkdtemp(const char *prefix)
{
	char *tmpl = xasprintf("/tmp/ferry-%s-XXXXXX", prefix);

	assert_non_null(mkdtemp(tmpl));
	return tmpl;
}

void tu_write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path = fsx_join(dir, rel);

	assert_int_equal(fsx_mkdir_parent(path, 0755, NULL), 0);
	assert_int_equal(fsx_write_atomic(path, data, len, 0644, NULL), 0);
	free(path);
}

void tu_write_text(const char *dir, const char *rel, const char *text)
{
	tu_write_file(dir, rel, text, strlen(text));
}

void tu_check_opts(struct ds_check_opts *o, const char *cache)
{
	memset(o, 0, sizeof(*o));
	o->min_images = 3;
	o->max_images = 100;
	o->resolution = 64;
	o->max_side = 2048;
	o->max_pixels = 100000000;
	o->threads = 2;
	o->cache_dir = cache;
}

void tu_settle(void)
{
	usleep(120 * 1000);
}

void tu_write_jpeg(const char *dir, const char *rel, int w, int h, int seed)
{
	tjhandle tj = tjInitCompress();
	unsigned char *px = xmalloc((size_t)w * h * 3), *jpg = NULL;
	unsigned long len = 0;

	for (int i = 0; i < w * h * 3; i++)
		px[i] = (unsigned char)((i * 7 + seed * 31) ^ (i >> 5));
	assert_int_equal(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &len, TJSAMP_420, 90, 0), 0);
	tu_write_file(dir, rel, jpg, len);
	tjFree(jpg);
	tjDestroy(tj);
	free(px);
}

/* ---- The scriptable HTTP server ---- */

#define TU_HTTP_MAX_HEAD (64u << 10)
#define TU_HTTP_MAX_BODY (16u << 20)

struct tu_http_canned {
	int status;
	char *headers;
	char *body;
	size_t body_len;
	int delay_ms;
};

struct tu_http {
	int lfd;
	int wake[2];          /* written once by tu_http_stop */
	char url[64];
	pthread_t thread;
	pthread_mutex_t lock; /* guards everything below */
	struct tu_http_canned *replies;
	size_t nreplies, next_reply;
	struct tu_http_req **reqs;
	size_t nreqs;
};

static const char *tu_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 410: return "Gone";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

static void tu_http_req_free(struct tu_http_req *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->target);
	for (size_t i = 0; i < r->nhdr; i++) {
		free(r->names[i]);
		free(r->values[i]);
	}
	free(r->names);
	free(r->values);
	free(r->body);
	free(r);
}

/* Read one request from fd; NULL when the peer sent no complete request.
 * Runs on the server thread: no cmocka asserts here. */
static struct tu_http_req *tu_http_read(int fd)
{
	char *buf = xmalloc(TU_HTTP_MAX_HEAD + 1), *end = NULL, *p, *line;
	size_t len = 0, head_len, clen = 0;
	struct tu_http_req *r;

	while (!end) {
		ssize_t n;

		if (len >= TU_HTTP_MAX_HEAD)
			goto fail;
		n = read(fd, buf + len, TU_HTTP_MAX_HEAD - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	head_len = (size_t)(end - buf) + 4;
	*end = '\0';
	r = xcalloc(1, sizeof(*r));
	/* Request line: METHOD SP TARGET SP VERSION */
	line = buf;
	p = strstr(line, "\r\n");
	if (p)
		*p = '\0';
	{
		char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;

		if (!sp1 || !sp2) {
			tu_http_req_free(r);
			goto fail;
		}
		r->method = xstrndup(line, (size_t)(sp1 - line));
		r->target = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	}
	for (line = p ? p + 2 : NULL; line && *line; line = p ? p + 2 : NULL) {
		char *colon, *v;
		size_t vn;

		p = strstr(line, "\r\n");
		if (p)
			*p = '\0';
		colon = strchr(line, ':');
		if (!colon)
			continue;
		v = colon + 1;
		v += strspn(v, " \t");
		vn = strlen(v);
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		r->names = xrealloc(r->names, (r->nhdr + 1) * sizeof(*r->names));
		r->values = xrealloc(r->values, (r->nhdr + 1) * sizeof(*r->values));
		r->names[r->nhdr] = xstrndup(line, (size_t)(colon - line));
		r->values[r->nhdr] = xstrndup(v, vn);
		if (!strcasecmp(r->names[r->nhdr], "content-length"))
			clen = strtoull(r->values[r->nhdr], NULL, 10);
		r->nhdr++;
	}
	if (clen > TU_HTTP_MAX_BODY) {
		tu_http_req_free(r);
		goto fail;
	}
	r->body = xmalloc(clen + 1);
	r->body_len = len - head_len < clen ? len - head_len : clen;
	memcpy(r->body, buf + head_len, r->body_len);
	while (r->body_len < clen) {
		ssize_t n = read(fd, r->body + r->body_len, clen - r->body_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			tu_http_req_free(r);
			goto fail;
		}
		r->body_len += (size_t)n;
	}
	r->body[r->body_len] = '\0';
	free(buf);
	return r;
fail:
	free(buf);
	return NULL;
}

static void tu_http_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the client went away (it timed out): fine */
		p += w;
		n -= (size_t)w;
	}
}

/* Serve one connection: record its request, then answer with the next
 * canned reply. Returns false when woken to stop. */
static bool tu_http_serve(struct tu_http *s, int fd)
{
	struct tu_http_req *r = tu_http_read(fd);
	struct tu_http_canned c = { .status = 500, .body = "tu_http: no reply queued\n" };
	char *head;

	if (!r)
		return true;
	pthread_mutex_lock(&s->lock);
	s->reqs = xrealloc(s->reqs, (s->nreqs + 1) * sizeof(*s->reqs));
	s->reqs[s->nreqs++] = r;
	if (s->next_reply < s->nreplies)
		c = s->replies[s->next_reply++];
	pthread_mutex_unlock(&s->lock);
	if (!c.body_len && c.body)
		c.body_len = strlen(c.body);
	if (c.delay_ms > 0) {
		struct pollfd w = { .fd = s->wake[0], .events = POLLIN };

		if (poll(&w, 1, c.delay_ms) > 0)
			return false;
	}
	if (c.status == 0)
		return true; /* the caller closes without answering */
	head = xasprintf("HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
			 c.status, tu_http_reason(c.status), c.body_len, c.headers ? c.headers : "");
	tu_http_write_all(fd, head, strlen(head));
	if (c.body_len)
		tu_http_write_all(fd, c.body, c.body_len);
	free(head);
	shutdown(fd, SHUT_WR);
	return true;
}

static void *tu_http_main(void *arg)
{
	struct tu_http *s = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->lfd, .events = POLLIN },
				       { .fd = s->wake[0], .events = POLLIN } };
		struct timeval tv = { 5, 0 };
		bool go_on;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* A client that connects and sends nothing cannot hang the server. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		go_on = tu_http_serve(s, fd);
		close(fd);
		if (!go_on)
			break;
	}
	return NULL;
}

struct tu_http *tu_http_start(void)
{
	struct tu_http *s = xcalloc(1, sizeof(*s));
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	assert_int_equal(pipe2(s->wake, O_CLOEXEC), 0);
	pthread_mutex_init(&s->lock, NULL);
	assert_int_equal(pthread_create(&s->thread, NULL, tu_http_main, s), 0);
	return s;
}

void tu_http_stop(struct tu_http *s)
{
	if (!s)
		return;
	assert_int_equal(write(s->wake[1], "x", 1), 1);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	for (size_t i = 0; i < s->nreplies; i++) {
		free(s->replies[i].headers);
		free(s->replies[i].body);
	}
	free(s->replies);
	for (size_t i = 0; i < s->nreqs; i++)
		tu_http_req_free(s->reqs[i]);
	free(s->reqs);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *tu_http_url(const struct tu_http *s)
{
	return s->url;
}

void tu_http_push(struct tu_http *s, const struct tu_http_reply *r)
{
	struct tu_http_canned c = { .status = r->status, .delay_ms = r->delay_ms };

	c.headers = r->headers ? xstrdup(r->headers) : NULL;
	if (r->body) {
		c.body_len = r->body_len ? r->body_len : strlen(r->body);
		c.body = xmalloc(c.body_len + 1);
		memcpy(c.body, r->body, c.body_len);
		c.body[c.body_len] = '\0';
	}
	pthread_mutex_lock(&s->lock);
	s->replies = xrealloc(s->replies, (s->nreplies + 1) * sizeof(*s->replies));
	s->replies[s->nreplies++] = c;
	pthread_mutex_unlock(&s->lock);
}

void tu_http_reply(struct tu_http *s, int status, const char *content_type, const char *body)
{
	char *h = content_type ? xasprintf("Content-Type: %s\r\n", content_type) : NULL;
	struct tu_http_reply r = { .status = status, .headers = h, .body = body };

	tu_http_push(s, &r);
	free(h);
}

void tu_http_json(struct tu_http *s, int status, const char *body)
{
	tu_http_reply(s, status, "application/json", body);
}

size_t tu_http_count(struct tu_http *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nreqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t tu_http_unused(struct tu_http *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nreplies - s->next_reply;
	pthread_mutex_unlock(&s->lock);
	return n;
}

const struct tu_http_req *tu_http_req(struct tu_http *s, size_t i)
{
	const struct tu_http_req *r = NULL;

	pthread_mutex_lock(&s->lock);
	if (i < s->nreqs)
		r = s->reqs[i];
	pthread_mutex_unlock(&s->lock);
	assert_non_null(r);
	return r;
}

const char *tu_http_header(const struct tu_http_req *r, const char *name)
{
	for (size_t i = 0; i < r->nhdr; i++)
		if (!strcasecmp(r->names[i], name))
			return r->values[i];
	return NULL;
}

static int tu_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *tu_http_query(const struct tu_http_req *r, const char *name)
{
	const char *q = strchr(r->target, '?');
	size_t nlen = strlen(name);

	while (q && *q) {
		const char *item = q + 1, *end = item + strcspn(item, "&#");

		if ((size_t)(end - item) > nlen && !strncmp(item, name, nlen) && item[nlen] == '=') {
			const char *v = item + nlen + 1;
			char *out = xmalloc((size_t)(end - v) + 1), *o = out;

			while (v < end) {
				if (*v == '%' && end - v >= 3 && tu_hex(v[1]) >= 0 &&
				    tu_hex(v[2]) >= 0) {
					*o++ = (char)(tu_hex(v[1]) * 16 + tu_hex(v[2]));
					v += 3;
				} else {
					*o++ = *v == '+' ? ' ' : *v;
					v++;
				}
			}
			*o = '\0';
			return out;
		}
		q = *end == '&' ? end : NULL;
	}
	return NULL;
}

char *tu_http_closed_url(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	/* Bound but not listening: connections are refused until it closes,
	 * and the port is unlikely to be reused right after. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return xasprintf("http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
}

/* ---- Capturing stderr ---- */

static int tu_saved_stderr = -1;
static FILE *tu_capture;

void tu_stderr_begin(void)
{
	assert_int_equal(tu_saved_stderr, -1);
	fflush(stderr);
	tu_capture = tmpfile();
	assert_non_null(tu_capture);
	tu_saved_stderr = dup(STDERR_FILENO);
	assert_true(tu_saved_stderr >= 0);
	assert_true(dup2(fileno(tu_capture), STDERR_FILENO) >= 0);
}

char *tu_stderr_end(void)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;

	assert_true(tu_saved_stderr >= 0);
	fflush(stderr);
	assert_true(dup2(tu_saved_stderr, STDERR_FILENO) >= 0);
	close(tu_saved_stderr);
	tu_saved_stderr = -1;
	rewind(tu_capture);
	while ((n = fread(chunk, 1, sizeof(chunk), tu_capture)) > 0)
		buf_add(&b, chunk, n);
	fclose(tu_capture);
	tu_capture = NULL;
	return buf_detach(&b, NULL);
}

void tu_expect_json(json_t *got, const char *want)
{
	json_error_t je;
	json_t *w = json_loads(want, 0, &je);
	char *g;

	if (!w)
		fail_msg("bad expected JSON %s: %s", want, je.text);
	if (!got || !json_equal(got, w)) {
		g = got ? json_dumps(got, JSON_SORT_KEYS) : NULL;
		print_error("got  %s\nwant %s\n", g ? g : "(null)", want);
		free(g);
		json_decref(w);
		fail();
	}
	json_decref(w);
}
