/* Unit tests for common/http against a real HTTP server on loopback
 * (testutil's tu_http): what one exchange sends and reads back, how a
 * failure is classified, the retry loop (which statuses and failures are
 * sent again, for idempotent and other requests), Retry-After, the backoff
 * bounds, the reply cap and tracing that never shows the Authorization
 * header. The URL helpers are covered by test_captioner.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "testutil.h"

static struct tu_http *srv;

static int setup(void **state)
{
	srv = tu_http_start();
	return 0;
}

static int teardown(void **state)
{
	tu_http_stop(srv);
	srv = NULL;
	return 0;
}

/* A request to path on the test server; the URL lives in a static buffer. */
static struct http_request rq_for(const char *method, const char *path)
{
	static char url[256];
	struct http_request rq = { .method = method, .url = url, .timeout_s = 5 };

	snprintf(url, sizeof(url), "%s%s", tu_http_url(srv), path);
	return rq;
}

static void test_get_exchange(void **state)
{
	static const char *const hdrs[] = { "Accept: application/json", "X-Test: one two", NULL };
	struct http_request rq = rq_for("GET", "/a/b?x=1&y=%22z%22");
	struct http_response rs;
	enum http_outcome how = HTTP_REFUSED;
	struct err e = { 0 };
	const struct tu_http_req *r;

	rq.headers = hdrs;
	tu_http_json(srv, 200, "{\"ok\":true}");
	http_response_init(&rs);
	assert_int_equal(http_send(&rq, &rs, &how, &e), 0);
	assert_int_equal(how, HTTP_ANSWERED);
	assert_int_equal(rs.status, 200);
	assert_string_equal(rs.content_type, "application/json");
	assert_int_equal(rs.retry_after_s, -1);
	assert_int_equal(rs.body.len, strlen("{\"ok\":true}"));
	assert_memory_equal(rs.body.data, "{\"ok\":true}", rs.body.len);

	assert_int_equal(tu_http_count(srv), 1);
	r = tu_http_req(srv, 0);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->target, "/a/b?x=1&y=%22z%22");
	assert_string_equal(tu_http_header(r, "accept"), "application/json");
	assert_string_equal(tu_http_header(r, "X-Test"), "one two");
	assert_non_null(tu_http_header(r, "User-Agent"));
	assert_non_null(strstr(tu_http_header(r, "User-Agent"), "ferry/"));
	/* No "Expect: 100-continue" dance, and a GET carries no body. */
	assert_null(tu_http_header(r, "Expect"));
	assert_int_equal(r->body_len, 0);

	/* A reply without a Content-Type reads as "", and the same response
	 * struct is reset between sends. */
	tu_http_reply(srv, 204, NULL, NULL);
	assert_int_equal(http_send(&rq, &rs, &how, &e), 0);
	assert_int_equal(rs.status, 204);
	assert_string_equal(rs.content_type, "");
	assert_int_equal(rs.body.len, 0);
	http_response_release(&rs);
}

static void test_bodies(void **state)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE" };
	static const char body[] = "{\"a\":[1,2,3],\"s\":\"h\\u00e9\"}";
	struct http_response rs;
	struct err e = { 0 };

	http_response_init(&rs);
	for (size_t i = 0; i < 3; i++) {
		struct http_request rq = rq_for(methods[i], "/things/7/");
		const struct tu_http_req *r;

		rq.body = body;
		rq.body_len = strlen(body);
		tu_http_json(srv, 200, "{}");
		assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
		assert_int_equal(rs.status, 200);
		r = tu_http_req(srv, i);
		assert_string_equal(r->method, methods[i]);
		assert_string_equal(r->target, "/things/7/");
		assert_int_equal(r->body_len, strlen(body));
		assert_string_equal(r->body, body);
		assert_int_equal(strtol(tu_http_header(r, "Content-Length"), NULL, 10),
				 (long)strlen(body));
	}
	http_response_release(&rs);
}

/* Nothing listens: the request surely never left, so it is HTTP_NOT_SENT,
 * and the message names the URL as it may be shown, not the real one. */
static void test_refused_is_not_sent(void **state)
{
	char *base = tu_http_closed_url();
	char *url = xasprintf("%s/p?api_key=qs-secret-4711", base);
	char *shown = xasprintf("%s/p?...", base);
	struct http_request rq = { .method = "GET", .url = url, .shown = shown, .timeout_s = 5 };
	struct http_response rs;
	enum http_outcome how = HTTP_ANSWERED;
	struct err e = { 0 };
	int r;

	http_response_init(&rs);
	r = http_send(&rq, &rs, &how, &e);
	assert_int_equal(r, ERR_IO);
	assert_int_equal(e.code, ERR_IO);
	assert_int_equal(how, HTTP_NOT_SENT);
	assert_int_equal(rs.status, 0);
	assert_non_null(strstr(e.msg, "cannot reach"));
	assert_non_null(strstr(e.msg, shown));
	assert_null(strstr(e.msg, "qs-secret-4711"));
	http_response_release(&rs);
	free(url);
	free(shown);
	free(base);
}

/* The server read the request and hung up: it may have acted on it. */
static void test_hangup_is_no_answer(void **state)
{
	struct tu_http_reply hangup = { .status = 0 };
	struct http_request rq = rq_for("POST", "/x");
	struct http_response rs;
	enum http_outcome how = HTTP_ANSWERED;
	struct err e = { 0 };

	rq.body = "{}";
	rq.body_len = 2;
	tu_http_push(srv, &hangup);
	http_response_init(&rs);
	assert_int_equal(http_send(&rq, &rs, &how, &e), ERR_IO);
	assert_int_equal(how, HTTP_NO_ANSWER);
	assert_int_equal(rs.status, 0);
	assert_int_equal(tu_http_count(srv), 1);
	http_response_release(&rs);
}

/* A server that accepts the request and answers too late: ERR_TIMEOUT, and
 * ambiguous (HTTP_NO_ANSWER), since the connection was made. */
static void test_read_timeout(void **state)
{
	struct tu_http_reply slow = { .status = 200, .body = "{}", .delay_ms = 3000 };
	struct http_request rq = rq_for("GET", "/slow");
	struct http_response rs;
	enum http_outcome how = HTTP_ANSWERED;
	struct err e = { 0 };
	uint64_t t0 = clock_mono_ms(), ms;

	rq.timeout_s = 1;
	tu_http_push(srv, &slow);
	http_response_init(&rs);
	assert_int_equal(http_send(&rq, &rs, &how, &e), ERR_TIMEOUT);
	ms = clock_mono_ms() - t0;
	assert_int_equal(how, HTTP_NO_ANSWER);
	assert_int_equal(rs.status, 0);
	assert_true(ms >= 900 && ms < 2900);
	assert_int_equal(tu_http_count(srv), 1);
	http_response_release(&rs);
}

static const struct http_retry fast_idem = { .max_tries = 5, .base_ms = 1, .max_ms = 4,
					     .idempotent = true };
static const struct http_retry fast_once = { .max_tries = 5, .base_ms = 1, .max_ms = 4,
					     .idempotent = false };

static void test_retry_statuses_then_success(void **state)
{
	struct http_request rq = rq_for("GET", "/busy");
	struct http_response rs;
	struct err e = { 0 };

	tu_http_reply(srv, 429, "text/plain", "API requests too frequent");
	tu_http_reply(srv, 502, "text/html", "<html><title>502 Bad Gateway</title></html>");
	tu_http_json(srv, 503, "{}");
	tu_http_json(srv, 504, "{}");
	tu_http_json(srv, 200, "{\"done\":1}");
	http_response_init(&rs);
	assert_int_equal(http_do(&rq, &fast_idem, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(rs.tries, 5);
	assert_string_equal(rs.body.data, "{\"done\":1}");
	assert_int_equal(tu_http_count(srv), 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(tu_http_req(srv, i)->target, "/busy");
	http_response_release(&rs);
}

/* Statuses outside the list are final at once, 500 included. */
static void test_other_statuses_final(void **state)
{
	static const int codes[] = { 400, 401, 404, 410, 500 };
	struct http_request rq = rq_for("GET", "/final");
	struct http_response rs;
	struct err e = { 0 };

	http_response_init(&rs);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		tu_http_json(srv, codes[i], "{}");
		tu_http_json(srv, 200, "{}"); /* must not be asked for */
		assert_int_equal(http_do(&rq, &fast_idem, &rs, &e), 0);
		assert_int_equal(rs.status, codes[i]);
		assert_int_equal(rs.tries, 1);
		assert_int_equal(tu_http_count(srv), 2 * i + 1);
		/* use up the spare answer so the next round starts clean */
		assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
		assert_int_equal(rs.status, 200);
	}
	http_response_release(&rs);
}

/* After max_tries busy answers the last one comes back, with tries set. */
static void test_give_up_on_status(void **state)
{
	struct http_retry p = fast_idem;
	struct http_request rq = rq_for("GET", "/down");
	struct http_response rs;
	struct err e = { 0 };

	p.max_tries = 3;
	for (int i = 0; i < 4; i++)
		tu_http_json(srv, 503, "{\"detail\":\"down\"}");
	http_response_init(&rs);
	assert_int_equal(http_do(&rq, &p, &rs, &e), 0);
	assert_int_equal(rs.status, 503);
	assert_int_equal(rs.tries, 3);
	assert_int_equal(tu_http_count(srv), 3);
	assert_int_equal(tu_http_unused(srv), 1);
	http_response_release(&rs);
}

/* A refused connection is retried, for any request, and the final error
 * says how many tries were made. */
static void test_give_up_on_refused(void **state)
{
	char *base = tu_http_closed_url();
	char *url = xasprintf("%s/asks/1/", base);
	struct http_request rq = { .method = "PUT", .url = url, .body = "{}", .body_len = 2,
				   .timeout_s = 5 };
	struct http_retry p = fast_once;
	struct http_response rs;
	struct err e = { 0 };

	p.max_tries = 3;
	http_response_init(&rs);
	assert_int_equal(http_do(&rq, &p, &rs, &e), ERR_IO);
	assert_int_equal(rs.tries, 3);
	assert_int_equal(rs.status, 0);
	assert_true(!strncmp(e.msg, "after 3 tries: ", 15));
	assert_non_null(strstr(e.msg, "cannot reach"));
	http_response_release(&rs);
	free(url);
	free(base);
}

/* A request that is not idempotent is not sent again once it may have
 * arrived (5xx, hang-up), only after a 429. */
static void test_not_idempotent(void **state)
{
	struct tu_http_reply hangup = { .status = 0 };
	struct http_request rq = rq_for("PUT", "/asks/9/");
	struct http_response rs;
	struct err e = { 0 };

	rq.body = "{\"image\":\"x\"}";
	rq.body_len = strlen(rq.body);
	http_response_init(&rs);

	tu_http_json(srv, 503, "{}");
	tu_http_json(srv, 200, "{}");
	assert_int_equal(http_do(&rq, &fast_once, &rs, &e), 0);
	assert_int_equal(rs.status, 503);
	assert_int_equal(rs.tries, 1);
	assert_int_equal(tu_http_count(srv), 1);
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0); /* drain the 200 */

	tu_http_push(srv, &hangup);
	tu_http_json(srv, 200, "{}");
	assert_int_equal(http_do(&rq, &fast_once, &rs, &e), ERR_IO);
	assert_int_equal(rs.tries, 1);
	assert_int_equal(tu_http_count(srv), 3);
	assert_null(strstr(e.msg, "tries")); /* a single try is not "after 1 tries" */
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);

	tu_http_reply(srv, 429, "text/plain", "API requests too frequent");
	tu_http_json(srv, 200, "{\"new_contract\":5}");
	assert_int_equal(http_do(&rq, &fast_once, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(rs.tries, 2);
	assert_int_equal(tu_http_count(srv), 6);
	assert_string_equal(tu_http_req(srv, 5)->body, "{\"image\":\"x\"}");
	http_response_release(&rs);
}

static void test_idempotent_hangup_retried(void **state)
{
	struct tu_http_reply hangup = { .status = 0 };
	struct http_request rq = rq_for("DELETE", "/instances/3/");
	struct http_response rs;
	struct err e = { 0 };

	rq.body = "{}";
	rq.body_len = 2;
	tu_http_push(srv, &hangup);
	tu_http_push(srv, &hangup);
	tu_http_json(srv, 200, "{\"success\":true}");
	http_response_init(&rs);
	assert_int_equal(http_do(&rq, &fast_idem, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(rs.tries, 3);
	assert_int_equal(tu_http_count(srv), 3);
	http_response_release(&rs);
}

static void test_custom_statuses(void **state)
{
	static const int only500[] = { 500, 0 };
	struct http_retry p = fast_idem;
	struct http_request rq = rq_for("GET", "/c");
	struct http_response rs;
	struct err e = { 0 };

	p.statuses = only500;
	tu_http_json(srv, 500, "{}");
	tu_http_json(srv, 502, "{}");
	http_response_init(&rs);
	assert_int_equal(http_do(&rq, &p, &rs, &e), 0);
	assert_int_equal(rs.status, 502); /* not listed: final */
	assert_int_equal(tu_http_count(srv), 2);
	/* 429 is always sent again, listed or not. */
	tu_http_json(srv, 429, "{}");
	tu_http_json(srv, 200, "{}");
	assert_int_equal(http_do(&rq, &p, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(tu_http_count(srv), 4);
	http_response_release(&rs);
}

static void test_retry_after(void **state)
{
	struct tu_http_reply wait1 = { .status = 429, .headers = "Retry-After: 1\r\n",
				       .body = "slow down" };
	struct tu_http_reply wait_long = { .status = 200, .headers = "Retry-After:  3600 \r\n",
					   .body = "{}" };
	struct http_request rq = rq_for("GET", "/ra");
	struct http_response rs;
	struct err e = { 0 };
	uint64_t t0, ms;

	http_response_init(&rs);
	/* Honoured: the second try waits a second although base_ms is 1. */
	tu_http_push(srv, &wait1);
	tu_http_json(srv, 200, "{}");
	t0 = clock_mono_ms();
	assert_int_equal(http_do(&rq, &fast_idem, &rs, &e), 0);
	ms = clock_mono_ms() - t0;
	assert_int_equal(rs.status, 200);
	assert_int_equal(tu_http_count(srv), 2);
	assert_true(ms >= 1000 && ms < 3000);
	/* Capped at 60 s when read, whatever the server asks. */
	tu_http_push(srv, &wait_long);
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
	assert_int_equal(rs.retry_after_s, 60);
	/* And in the backoff itself. */
	assert_int_equal(http_backoff_ms(&fast_idem, 1, 3600), 60000);
	assert_int_equal(http_backoff_ms(&fast_idem, 4, 2), 2000);
	assert_int_equal(http_backoff_ms(&fast_idem, 1, 0), 0);
	assert_int_equal(http_backoff_ms(NULL, 1, 7), 7000);
	/* A date form is not understood and reads as none. */
	{
		struct tu_http_reply dated = {
			.status = 200, .body = "{}",
			.headers = "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n",
		};

		tu_http_push(srv, &dated);
		assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
		assert_int_equal(rs.retry_after_s, -1);
	}
	http_response_release(&rs);
}

static void test_backoff_bounds(void **state)
{
	const struct http_retry p = { .base_ms = 100, .max_ms = 1000 };
	const struct http_retry odd = { .base_ms = 3, .max_ms = 5 };

	for (int attempt = 1; attempt <= 12; attempt++) {
		long d = 100L << (attempt - 1 < 5 ? attempt - 1 : 5);
		long lo = 1000000, hi = -1;

		if (d > 1000)
			d = 1000;
		for (int k = 0; k < 300; k++) {
			long w = http_backoff_ms(&p, attempt, -1);

			assert_in_range(w, d / 2, d);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
		}
		/* Jittered: 300 draws over [d/2, d] are not all the same. */
		assert_true(hi > lo);
	}
	/* Defaults (250 ms doubling, 8 s cap), a huge attempt number that
	 * must not overflow, and a cap that is not a power-of-two multiple. */
	for (int k = 0; k < 100; k++) {
		assert_in_range(http_backoff_ms(NULL, 1, -1), 125, 250);
		assert_in_range(http_backoff_ms(NULL, 3, -1), 500, 1000);
		assert_in_range(http_backoff_ms(NULL, 10, -1), 4000, 8000);
		assert_in_range(http_backoff_ms(NULL, 1000000, -1), 4000, 8000);
		assert_in_range(http_backoff_ms(&odd, 2, -1), 2, 5);
	}
}

static void test_max_reply(void **state)
{
	char *big = xmalloc(5001);
	struct http_request rq = rq_for("GET", "/big");
	struct http_response rs;
	enum http_outcome how = HTTP_ANSWERED;
	struct err e = { 0 };

	memset(big, 'a', 5000);
	big[5000] = '\0';
	rq.max_reply = 1000;
	http_response_init(&rs);

	/* Exactly at the cap is fine. */
	tu_http_reply(srv, 200, "text/plain", big + 4000);
	assert_int_equal(http_send(&rq, &rs, &how, &e), 0);
	assert_int_equal(rs.body.len, 1000);

	tu_http_reply(srv, 200, "text/plain", big);
	assert_int_equal(http_send(&rq, &rs, &how, &e), ERR_LIMIT);
	assert_int_equal(how, HTTP_REFUSED);
	assert_non_null(strstr(e.msg, "larger than"));
	assert_non_null(strstr(e.msg, "1000 bytes"));

	/* Refused replies are not fetched again, idempotent or not. */
	tu_http_reply(srv, 200, "text/plain", big);
	tu_http_reply(srv, 200, "text/plain", "small");
	assert_int_equal(http_do(&rq, &fast_idem, &rs, &e), ERR_LIMIT);
	assert_int_equal(rs.tries, 1);
	assert_int_equal(tu_http_count(srv), 3);
	assert_int_equal(tu_http_unused(srv), 1);
	assert_null(strstr(e.msg, "tries"));
	http_response_release(&rs);
	free(big);
}

/* At LOG_TRACE the exchange is traced, but the Authorization header's
 * value never is, even when it was not registered as a secret. */
static void test_trace_masks_authorization(void **state)
{
	static const char *const hdrs[] = { "Authorization: Bearer tok-UNREGISTERED-91827",
					    "X-Visible: shown-value", NULL };
	struct http_request rq = rq_for("POST", "/traced");
	struct http_response rs;
	struct err e = { 0 };
	enum log_level old = log_get_level();
	char *out;
	int r;

	rq.headers = hdrs;
	rq.body = "{\"q\":1}";
	rq.body_len = 7;
	tu_http_json(srv, 200, "{\"answer\":42}");
	http_response_init(&rs);
	log_set_level(LOG_TRACE);
	tu_stderr_begin();
	r = http_send(&rq, &rs, NULL, &e);
	out = tu_stderr_end();
	log_set_level(old);
	assert_int_equal(r, 0);
	/* The secret did reach the server ... */
	assert_string_equal(tu_http_header(tu_http_req(srv, 0), "Authorization"),
			    "Bearer tok-UNREGISTERED-91827");
	/* ... but not the log. */
	assert_non_null(strstr(out, "Authorization: ****"));
	assert_null(strstr(out, "tok-UNREGISTERED-91827"));
	assert_null(strstr(out, "UNREGISTERED"));
	/* The rest of the exchange is there. */
	assert_non_null(strstr(out, "> POST /traced"));
	assert_non_null(strstr(out, "X-Visible: shown-value"));
	assert_non_null(strstr(out, "{\"answer\":42}"));
	assert_non_null(strstr(out, "< HTTP/1.1 200"));
	free(out);
	http_response_release(&rs);
}

/* A body read from a file at an offset (the fd's own offset untouched), an
 * answer written to a file, the answer's headers, and a HEAD that does not
 * wait for a body. */
static void test_file_bodies_and_headers(void **state)
{
	char *dir = tu_mkdtemp("http-fd"), *in = fsx_join(dir, "in"), *out = fsx_join(dir, "out");
	struct http_request rq = rq_for("PUT", "/part");
	struct http_response rs;
	struct err e = { 0 };
	struct buf got = BUF_INIT;
	char v[64];
	int fd, ofd;

	tu_write_text(dir, "in", "0123456789abcdefghij");
	fd = open(in, O_RDONLY);
	assert_true(fd >= 0);
	rq.use_body_fd = true;
	rq.body_fd = fd;
	rq.body_fd_off = 5;
	rq.body_fd_len = 10;
	tu_http_push(srv, &(struct tu_http_reply){ .status = 200,
						   .headers = "ETag: \"abc\"\r\nX-Two:  b c \r\n" });
	http_response_init(&rs);
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
	assert_string_equal(tu_http_req(srv, 0)->method, "PUT");
	assert_string_equal(tu_http_req(srv, 0)->body, "56789abcde");
	assert_int_equal(rs.sent, 10);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	assert_true(http_response_header(&rs, "etag", v, sizeof(v)));
	assert_string_equal(v, "\"abc\"");
	assert_true(http_response_header(&rs, "x-two", v, sizeof(v)));
	assert_string_equal(v, "b c");
	assert_false(http_response_header(&rs, "x-tw", v, sizeof(v)));
	/* A file shorter than promised is a local failure, not sent again. */
	rq.body_fd_len = 100;
	{
		enum http_outcome how;

		assert_int_equal(http_send(&rq, &rs, &how, &e), ERR_IO);
		assert_int_equal(how, HTTP_REFUSED);
	}
	close(fd);

	/* A 2xx answer goes to the file (emptied first); an error stays in memory. */
	ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(ofd >= 0);
	assert_int_equal(write(ofd, "old old old old old", 19), 19);
	rq = rq_for("GET", "/obj");
	rq.use_reply_fd = true;
	rq.reply_fd = ofd;
	tu_http_reply(srv, 200, NULL, "the object");
	tu_http_reply(srv, 404, "application/xml", "<Error/>");
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
	assert_int_equal(rs.received, 10);
	assert_int_equal(rs.body.len, 0);
	assert_int_equal(fsx_read_file(out, &got, 0, &e), 0);
	assert_string_equal(got.data, "the object");
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
	assert_int_equal(rs.status, 404);
	assert_string_equal(rs.body.data, "<Error/>");
	close(ofd);

	rq = rq_for("HEAD", "/obj");
	tu_http_reply(srv, 200, NULL, "a body a HEAD must not wait for");
	assert_int_equal(http_send(&rq, &rs, NULL, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_true(http_response_header(&rs, "content-length", v, sizeof(v)));
	assert_string_equal(v, "31");
	assert_string_equal(tu_http_req(srv, tu_http_count(srv) - 1)->method, "HEAD");

	buf_release(&got);
	http_response_release(&rs);
	assert_int_equal(fsx_remove_tree(dir, NULL), 0);
	free(in);
	free(out);
	free(dir);
}

/* Several exchanges through one multi handle: each handed back once with
 * its tag and its own outcome. */
static void test_multi(void **state)
{
	struct http_multi *m = http_multi_new();
	struct http_request rq[3];
	struct http_response rs[3];
	static char urls[3][256];
	bool seen[3] = { false };
	int ok = 0, failed = 0;

	for (int i = 0; i < 3; i++) {
		snprintf(urls[i], sizeof(urls[i]), "%s/m%d", tu_http_url(srv), i);
		rq[i] = (struct http_request){ .method = "GET", .url = urls[i], .timeout_s = 5 };
		http_response_init(&rs[i]);
	}
	tu_http_reply(srv, 200, NULL, "one");
	tu_http_reply(srv, 200, NULL, "two");
	tu_http_push(srv, &(struct tu_http_reply){ .status = 0 }); /* hang up */
	for (int i = 0; i < 3; i++)
		assert_int_equal(http_multi_add(m, &rq[i], &rs[i], &seen[i], NULL), 0);
	assert_int_equal(http_multi_running(m), 3);
	while (http_multi_running(m)) {
		enum http_outcome how;
		struct err e = { 0 };
		void *tag;
		int r = http_multi_next(m, 1000, &tag, &how, &e);

		if (!tag)
			continue;
		assert_false(*(bool *)tag);
		*(bool *)tag = true;
		if (r) {
			assert_int_equal(how, HTTP_NO_ANSWER);
			failed++;
		} else {
			assert_int_equal(how, HTTP_ANSWERED);
			assert_int_equal(rs[(bool *)tag - seen].status, 200);
			ok++;
		}
	}
	assert_int_equal(ok, 2);
	assert_int_equal(failed, 1);
	assert_true(seen[0] && seen[1] && seen[2]);
	{
		void *tag = &ok;
		enum http_outcome how;

		/* Nothing left: it says so at once. */
		assert_int_equal(http_multi_next(m, 5000, &tag, &how, NULL), 0);
		assert_null(tag);
	}
	assert_true(http_retryable(&(struct http_retry){ .idempotent = true }, ERR_IO,
				   HTTP_NO_ANSWER, 0));
	assert_false(http_retryable(&(struct http_retry){ 0 }, ERR_IO, HTTP_NO_ANSWER, 0));
	assert_true(http_retryable(NULL, 0, HTTP_ANSWERED, 429));
	for (int i = 0; i < 3; i++)
		http_response_release(&rs[i]);
	http_multi_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_is_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_is_no_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_statuses_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_statuses_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_give_up_on_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_give_up_on_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_hangup_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_custom_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test_setup_teardown(test_max_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_masks_authorization, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_bodies_and_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
