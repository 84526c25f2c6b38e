/* Unit tests for common/httpd: a real server on 127.0.0.1, any free port,
 * talked to with ferry's own client (common/http) and with libcurl where a
 * test needs to watch the bytes arrive or hang up: the request the handler
 * sees, bodies and the cap, JSON answers, httpd's own answers, path
 * patterns, streams produced over time, a client leaving mid-stream,
 * concurrent requests, binding, and a stop while a stream is open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/http.h"
#include "common/httpd.h"
#include "common/xalloc.h"

static atomic_int streams_freed;

/* A stream of `left` lines "chunk N\n", one every `ms` milliseconds (0
 * when the next is not due yet, so httpd's wait is used); `left` < 0:
 * forever. */
struct ticker {
	int n, left, ms;
	long long next_ms;
};

static ssize_t ticker_read(void *arg, char *buf, size_t max)
{
	struct ticker *t = arg;
	long long now = clock_mono_ms();
	int len;

	if (!t->left)
		return HTTPD_STREAM_END;
	if (now < t->next_ms)
		return 0;
	t->next_ms = now + t->ms;
	len = snprintf(buf, max, "chunk %d\n", t->n++);
	if (t->left > 0)
		t->left--;
	return len;
}

static void ticker_free(void *arg)
{
	free(arg);
	atomic_fetch_add(&streams_freed, 1);
}

static int query_int(const struct httpd_req *rq, const char *name, int dflt)
{
	const char *v = httpd_query(rq, name);

	return v ? (int)strtol(v, NULL, 10) : dflt;
}

static void handler(void *arg, const struct httpd_req *rq, struct httpd_resp *rs)
{
	if (!strcmp(rq->path, "/echo")) {
		const char *a = httpd_query(rq, "a"), *b = httpd_query(rq, "b");
		const char *x = httpd_header(rq, "x-test");

		httpd_replyf(rs, 200, "%s %s a=%s b=%s x=%s ip=%s body=%zu:%s", rq->method, rq->path,
			     a ? a : "-", b ? b : "-", x ? x : "-", rq->client_ip, rq->body_len,
			     rq->body);
		httpd_add_header(rs, "X-Reply", "yes");
		httpd_add_header(rs, "Cache-Control", "no-store");
	} else if (!strcmp(rq->path, "/json")) {
		json_t *v = json_pack("{s:b,s:f}", "ok", 1, "x", 3.1);

		httpd_reply_json(rs, 201, v, JSON_COMPACT | JSON_REAL_PRECISION(15));
		json_decref(v);
	} else if (!strcmp(rq->path, "/slow")) {
		usleep(300 * 1000);
		httpd_replyf(rs, 200, "slept");
	} else if (!strcmp(rq->path, "/stream")) {
		struct ticker *t = xcalloc(1, sizeof(*t));

		t->left = query_int(rq, "n", -1);
		t->ms = query_int(rq, "ms", 20);
		httpd_stream(rs, 200, "text/event-stream", ticker_read, ticker_free, t);
		httpd_add_header(rs, "Cache-Control", "no-cache");
	} else if (!strcmp(rq->path, "/twice")) {
		/* A stream replaced by a plain answer is freed, not leaked. */
		httpd_stream(rs, 200, NULL, ticker_read, ticker_free, xcalloc(1, sizeof(struct ticker)));
		httpd_replyf(rs, 200, "plain");
	} else if (!strcmp(rq->path, "/none")) {
		/* no answer: httpd says 500 */
	} else {
		httpd_replyf(rs, 404, "no %s", rq->path);
	}
}

/* httpd's own answers, as JSON. */
static void error_json(void *arg, struct httpd_resp *rs, int status, const char *msg)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"status\":%d,\"msg\":\"%s\"}", status, msg);

	httpd_reply(rs, status, "application/json", body, (size_t)n);
}

static struct httpd *start(size_t body_max, void (*error)(void *, struct httpd_resp *, int,
							  const char *))
{
	struct httpd_opts o = { .host = "127.0.0.1", .what = "test.listen", .handler = handler };
	struct httpd *h = NULL;
	struct err e = { 0 };

	o.body_max = body_max;
	o.error = error;
	if (httpd_start(&o, &h, &e))
		fail_msg("httpd_start: %s", e.msg);
	assert_true(httpd_port(h) > 0);
	return h;
}

static struct httpd *srv;

static int setup(void **state)
{
	srv = start(1024, NULL);
	return 0;
}

static int teardown(void **state)
{
	httpd_stop(srv);
	srv = NULL;
	return 0;
}

/* One exchange with the server through common/http. */
static long exchange(struct httpd *h, const char *method, const char *path, const char *const *hdrs,
		     const char *body, size_t body_len, struct http_response *rs)
{
	char url[256];
	struct http_request rq = { .method = method, .url = url, .headers = hdrs, .timeout_s = 10 };
	struct err e = { 0 };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", httpd_port(h), path);
	rq.body = body;
	rq.body_len = body_len;
	http_response_init(rs);
	if (http_send(&rq, rs, NULL, &e))
		fail_msg("%s %s: %s", method, path, e.msg);
	return rs->status;
}

static void test_get(void **state)
{
	static const char *const hdrs[] = { "X-Test: one two", NULL };
	struct http_response rs;
	char v[64];

	assert_int_equal(exchange(srv, "GET", "/echo?a=1&b=two%20words&c", hdrs, NULL, 0, &rs), 200);
	assert_string_equal(rs.body.data, "GET /echo a=1 b=two words x=one two ip=127.0.0.1 body=0:");
	assert_string_equal(rs.content_type, "text/plain; charset=utf-8");
	assert_true(http_response_header(&rs, "X-Reply", v, sizeof(v)));
	assert_string_equal(v, "yes");
	assert_true(http_response_header(&rs, "cache-control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	http_response_release(&rs);

	/* The path is decoded and comes without its query. */
	assert_int_equal(exchange(srv, "GET", "/%65cho?a=%3D", NULL, NULL, 0, &rs), 200);
	assert_string_equal(rs.body.data, "GET /echo a== b=- x=- ip=127.0.0.1 body=0:");
	http_response_release(&rs);

	assert_int_equal(exchange(srv, "GET", "/json", NULL, NULL, 0, &rs), 201);
	assert_string_equal(rs.content_type, "application/json");
	assert_string_equal(rs.body.data, "{\"ok\":true,\"x\":3.1}");
	http_response_release(&rs);

	assert_int_equal(exchange(srv, "DELETE", "/elsewhere", NULL, NULL, 0, &rs), 404);
	assert_string_equal(rs.body.data, "no /elsewhere");
	http_response_release(&rs);
}

static void test_post_body(void **state)
{
	struct http_response rs;
	char body[1024];

	assert_int_equal(exchange(srv, "POST", "/echo", NULL, "hello", 5, &rs), 200);
	assert_string_equal(rs.body.data, "POST /echo a=- b=- x=- ip=127.0.0.1 body=5:hello");
	http_response_release(&rs);

	/* Exactly the cap is fine. */
	memset(body, 'b', sizeof(body));
	assert_int_equal(exchange(srv, "PUT", "/echo", NULL, body, sizeof(body), &rs), 200);
	assert_non_null(strstr(rs.body.data, "body=1024:bbbb"));
	http_response_release(&rs);
}

static void test_body_over_cap(void **state)
{
	static const char *const expect[] = { "Expect: 100-continue", NULL };
	struct http_response rs;
	size_t n = 200 * 1024;
	char *body = xmalloc(n);

	memset(body, 'x', n);
	assert_int_equal(exchange(srv, "POST", "/echo", NULL, body, 1025, &rs), 413);
	assert_string_equal(rs.body.data, "request body over 1024 bytes\n");
	http_response_release(&rs);
	/* A large one is read to its end and refused the same way. */
	assert_int_equal(exchange(srv, "POST", "/echo", NULL, body, n, &rs), 413);
	http_response_release(&rs);
	/* One that waits for "100 Continue" is refused before it sends. */
	assert_int_equal(exchange(srv, "POST", "/echo", expect, body, n, &rs), 413);
	http_response_release(&rs);
	/* And the server goes on serving. */
	assert_int_equal(exchange(srv, "POST", "/echo", NULL, "ok", 2, &rs), 200);
	assert_string_equal(rs.body.data, "POST /echo a=- b=- x=- ip=127.0.0.1 body=2:ok");
	http_response_release(&rs);
	free(body);
}

static void test_own_answers(void **state)
{
	struct httpd *h = start(16, error_json);
	struct http_response rs;

	assert_int_equal(exchange(h, "GET", "/none", NULL, NULL, 0, &rs), 500);
	assert_string_equal(rs.content_type, "application/json");
	assert_string_equal(rs.body.data, "{\"status\":500,\"msg\":\"the server had no answer\"}");
	http_response_release(&rs);
	assert_int_equal(exchange(h, "POST", "/echo", NULL, "seventeen bytes!!", 17, &rs), 413);
	assert_string_equal(rs.body.data, "{\"status\":413,\"msg\":\"request body over 16 bytes\"}");
	http_response_release(&rs);
	assert_int_equal(exchange(h, "GET", "/twice", NULL, NULL, 0, &rs), 200);
	assert_string_equal(rs.body.data, "plain");
	http_response_release(&rs);
	httpd_stop(h);

	h = start(0, NULL);
	assert_int_equal(exchange(h, "GET", "/none", NULL, NULL, 0, &rs), 500);
	assert_string_equal(rs.body.data, "the server had no answer\n");
	http_response_release(&rs);
	httpd_stop(h);
}

static void match(const char *path, const char *pattern, bool want, const char *cap0,
		  const char *cap1)
{
	struct httpd_seg caps[2] = { { "untouched", 9 }, { "untouched", 9 } };
	bool got = httpd_path_match(path, pattern, caps, 2);
	const char *want_caps[2] = { cap0 ? cap0 : "untouched", cap1 ? cap1 : "untouched" };

	if (got != want)
		fail_msg("'%s' against '%s': %s, want %s", path, pattern, got ? "match" : "no match",
			 want ? "match" : "no match");
	for (size_t i = 0; i < 2; i++)
		if (caps[i].n != strlen(want_caps[i]) || memcmp(caps[i].s, want_caps[i], caps[i].n))
			fail_msg("'%s' against '%s': capture %zu is '%.*s', want '%s'", path, pattern,
				 i, (int)caps[i].n, caps[i].s, want_caps[i]);
}

static void test_path_match(void **state)
{
	match("/api/v1/jobs", "/api/v1/jobs", true, NULL, NULL);
	match("/api/v1/jobs/", "/api/v1/jobs", true, NULL, NULL);
	match("/api/v1/jobs//", "/api/v1/jobs", false, NULL, NULL);
	match("/api/v1/job", "/api/v1/jobs", false, NULL, NULL);
	match("/api/v1/jobsx", "/api/v1/jobs", false, NULL, NULL);
	match("/api/v1", "/api/v1/jobs", false, NULL, NULL);
	match("/api/v1/jobs/7", "/api/v1/jobs", false, NULL, NULL);
	match("/api//v1/jobs", "/api/v1/jobs", false, NULL, NULL);
	match("api/v1/jobs", "/api/v1/jobs", false, NULL, NULL);
	match("/api/v1/jobs/42", "/api/v1/jobs/{}", true, "42", NULL);
	match("/api/v1/jobs/42/", "/api/v1/jobs/{}", true, "42", NULL);
	match("/api/v1/jobs/", "/api/v1/jobs/{}", false, NULL, NULL);
	match("/api/v1/jobs/j-1/events", "/api/v1/jobs/{}/events", true, "j-1", NULL);
	match("/a/x/b/y", "/a/{}/b/{}", true, "x", "y");
	/* A failed match leaves caps alone. */
	match("/a/x/b/y/c", "/a/{}/b/{}", false, NULL, NULL);
	match("/a/x/c/y", "/a/{}/b/{}", false, NULL, NULL);
	/* Captures past ncaps still have to match. */
	match("/x/y/z", "/{}/{}/{}", true, "x", "y");
	match("/x/y", "/{}/{}/{}", false, NULL, NULL);
	match("/", "/", true, NULL, NULL);
	match("/a", "/", false, NULL, NULL);
	match("/", "/a", false, NULL, NULL);
	match("", "/a", false, NULL, NULL);
}

/* --- streams, with libcurl ---------------------------------------------------- */

struct sink {
	struct buf got;
	int writes;
	long long first_ms, last_ms;
	int stop_after;      /* > 0: hang up after this many writes */
	atomic_int seen;     /* bytes so far, for another thread */
};

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	long long now = clock_mono_ms();

	if (!s->writes++)
		s->first_ms = now;
	s->last_ms = now;
	buf_add(&s->got, p, size * n);
	atomic_store(&s->seen, (int)s->got.len);
	if (s->stop_after && s->writes >= s->stop_after)
		return 0;
	return size * n;
}

static CURLcode curl_get(struct httpd *h, const char *path, struct sink *s, long *status)
{
	char url[256];
	CURL *c = curl_easy_init();
	CURLcode rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", httpd_port(h), path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	return rc;
}

/* Wait up to 5 s for `n` streams freed in all. */
static void wait_freed(int n)
{
	for (int i = 0; i < 500 && atomic_load(&streams_freed) < n; i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&streams_freed), n);
}

static void test_stream(void **state)
{
	struct sink s = { .got = BUF_INIT };
	int freed = atomic_load(&streams_freed);
	long status;

	assert_int_equal(curl_get(srv, "/stream?n=5&ms=150", &s, &status), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(s.got.data, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
	/* Each chunk came as it was made, not all at the end. */
	assert_true(s.writes >= 5);
	assert_true(s.last_ms - s.first_ms >= 450);
	buf_release(&s.got);
	wait_freed(freed + 1);

	/* An empty stream ends at once. */
	assert_int_equal(curl_get(srv, "/stream?n=0", &s, &status), CURLE_OK);
	assert_int_equal(status, 200);
	assert_int_equal(s.got.len, 0);
	buf_release(&s.got);
	wait_freed(freed + 2);
}

static void test_stream_hangup(void **state)
{
	int freed = atomic_load(&streams_freed);
	long status;

	/* Hang up while the server writes, and while it waits between chunks. */
	for (int ms = 0; ms <= 200; ms += 200) {
		struct sink s = { .got = BUF_INIT, .stop_after = 3 };
		char path[64];

		snprintf(path, sizeof(path), "/stream?ms=%d", ms);
		assert_int_equal(curl_get(srv, path, &s, &status), CURLE_WRITE_ERROR);
		buf_release(&s.got);
	}
	wait_freed(freed + 2);

	/* And the server goes on serving. */
	struct http_response rs;

	assert_int_equal(exchange(srv, "GET", "/json", NULL, NULL, 0, &rs), 201);
	http_response_release(&rs);
}

struct slow_call {
	pthread_t t;
	long status;
};

static void *slow_thread(void *arg)
{
	struct slow_call *sc = arg;
	struct http_response rs;

	sc->status = exchange(srv, "GET", "/slow", NULL, NULL, 0, &rs);
	http_response_release(&rs);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct slow_call calls[16];
	struct sink s = { .got = BUF_INIT };
	long long t0 = clock_mono_ms();
	long status;

	/* 16 handlers of 300 ms each, beside an open stream: together, not in turn. */
	s.stop_after = 0;
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(pthread_create(&calls[i].t, NULL, slow_thread, &calls[i]), 0);
	assert_int_equal(curl_get(srv, "/stream?n=3&ms=100", &s, &status), CURLE_OK);
	for (size_t i = 0; i < 16; i++) {
		pthread_join(calls[i].t, NULL);
		assert_int_equal(calls[i].status, 200);
	}
	assert_string_equal(s.got.data, "chunk 0\nchunk 1\nchunk 2\n");
	assert_true(clock_mono_ms() - t0 < 3000);
	buf_release(&s.got);
}

/* --- binding and stopping -------------------------------------------------------- */

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_bind(void **state)
{
	struct httpd_opts o = { .host = "127.0.0.1", .what = "test.listen", .handler = handler };
	struct httpd *h = NULL, *h2 = NULL;
	struct http_response rs;
	struct err e = { 0 };
	int fds = open_fds();

	assert_int_equal(httpd_start(&o, &h, &e), 0);
	/* The port taken is refused to a second server, naming it. */
	o.port = httpd_port(h);
	assert_int_equal(httpd_start(&o, &h2, &e), ERR_IO);
	assert_null(h2);
	assert_non_null(strstr(e.msg, "cannot listen on 127.0.0.1 port"));
	assert_non_null(strstr(e.msg, "in use"));
	httpd_stop(h);
	/* Nothing is left open: the listening socket went with the daemon. */
	assert_int_equal(open_fds(), fds);

	o.port = 0;
	o.host = "no-such-host.invalid";
	assert_int_equal(httpd_start(&o, &h, NULL), ERR_USAGE);
	assert_int_equal(httpd_start(&o, &h, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "test.listen no-such-host.invalid"));
	assert_null(h);

	/* Every address, reached on IPv4's loopback. */
	o.host = "";
	assert_int_equal(httpd_start(&o, &h, &e), 0);
	assert_int_equal(exchange(h, "GET", "/json", NULL, NULL, 0, &rs), 201);
	http_response_release(&rs);
	httpd_stop(h);

	/* IPv6's loopback, where this machine has one. */
	o.host = "::1";
	if (httpd_start(&o, &h, &e)) {
		print_message("no IPv6 loopback here: %s\n", e.msg);
	} else {
		char url[64];
		struct http_request rq = { .method = "GET", .url = url, .timeout_s = 10 };

		snprintf(url, sizeof(url), "http://[::1]:%d/echo", httpd_port(h));
		http_response_init(&rs);
		assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
		assert_int_equal(rs.status, 200);
		assert_non_null(strstr(rs.body.data, "ip=::1 "));
		http_response_release(&rs);
		httpd_stop(h);
	}
	assert_int_equal(open_fds(), fds);
	httpd_stop(NULL);
}

struct reader {
	pthread_t t;
	struct httpd *h;
	struct sink s;
	CURLcode rc;
	long status;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;

	r->rc = curl_get(r->h, "/stream?ms=20", &r->s, &r->status);
	return NULL;
}

static void test_stop_with_stream(void **state)
{
	struct reader r[3];
	struct httpd *h = start(0, NULL);
	int freed = atomic_load(&streams_freed);
	long long t0;

	for (size_t i = 0; i < 3; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		buf_init(&r[i].s.got);
		r[i].h = h;
		assert_int_equal(pthread_create(&r[i].t, NULL, reader_thread, &r[i]), 0);
	}
	for (size_t i = 0; i < 3; i++)
		for (int n = 0; n < 500 && atomic_load(&r[i].s.seen) < 20; n++)
			usleep(10 * 1000);
	t0 = clock_mono_ms();
	httpd_stop(h);
	/* Within about a second, and every stream freed. */
	assert_true(clock_mono_ms() - t0 < 2000);
	assert_int_equal(atomic_load(&streams_freed), freed + 3);
	for (size_t i = 0; i < 3; i++) {
		pthread_join(r[i].t, NULL);
		assert_int_equal(r[i].status, 200);
		assert_true(r[i].s.got.len >= 20);
		assert_memory_equal(r[i].s.got.data, "chunk 0\nchunk 1\n", 16);
		buf_release(&r[i].s.got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_over_cap, setup, teardown),
		cmocka_unit_test(test_own_answers),
		cmocka_unit_test(test_path_match),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_hangup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_stop_with_stream),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
