/* Unit tests for the Vast.ai API client against a real HTTP server on
 * loopback (testutil's tu_http), with the shapes of the real API
 * (docs: docs/reference/vast-api.md sections 1, 5, 6 and 7): routes,
 * auth, bodies, every error shape, the bad-key rule, what is retried and
 * what never is (create), v1 list pagination, and the calls built on
 * vast_call. No assertion here may pass with the key in a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "testutil.h"
#include "vast/client.h"

#define KEY "vk-test-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define TRIES 4
#define BAD_KEY_BODY "{\"success\":false,\"error\":\"auth_error\",\"msg\":\"Invalid user key\"}"

static struct tu_http *srv;
static struct vast_client *cli;

static struct vast_client *client_at(const char *url, const char *key, int tries, int timeout)
{
	struct vast_client_opts o = { .url = url, .api_key = key, .timeout_s = timeout,
				      .max_tries = tries, .backoff_ms = 1 };
	struct vast_client *c = NULL;
	struct err e = { 0 };

	assert_int_equal(vast_client_new(&c, &o, &e), 0);
	assert_non_null(c);
	return c;
}

static int setup(void **state)
{
	srv = tu_http_start();
	cli = client_at(tu_http_url(srv), KEY, TRIES, 5);
	return 0;
}

static int teardown(void **state)
{
	vast_client_free(cli);
	cli = NULL;
	tu_http_stop(srv);
	srv = NULL;
	return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void assert_no_key(const struct err *e)
{
	assert_null(strstr(e->msg, KEY));
	assert_null(strstr(e->msg, "0f1e2d3c4b5a"));
}

/* The request body as JSON; fails the test when it is not JSON. */
static json_t *req_json(size_t i)
{
	json_error_t je;
	json_t *j = json_loads(tu_http_req(srv, i)->body, 0, &je);

	if (!j)
		fail_msg("request %zu body is not JSON: %s", i, tu_http_req(srv, i)->body);
	return j;
}

static void assert_req_json(size_t i, const char *expect)
{
	json_t *got = req_json(i), *want = json_loads(expect, 0, NULL);

	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("request %zu body %s, expected %s", i, tu_http_req(srv, i)->body, expect);
	json_decref(got);
	json_decref(want);
}

static void test_new_checks_url(void **state)
{
	struct vast_client_opts o = { .url = "ftp://console.vast.ai", .api_key = KEY };
	struct vast_client *c = (struct vast_client *)1;
	struct err e = { 0 };

	assert_int_equal(vast_client_new(&c, &o, &e), ERR_CONFIG);
	assert_null(c);
	assert_contains(e.msg, "http://");
	assert_no_key(&e);
}

/* Bearer auth, the /api/v0 prefix, JSON accept, and no body on a GET. */
static void test_auth_prefix_user(void **state)
{
	struct vast_user u;
	struct err e = { 0 };
	const struct tu_http_req *r;

	tu_http_json(srv, 200,
		     "{\"id\":321,\"username\":\"ann\",\"email\":\"a@example.org\","
		     "\"balance\":12.5,\"credit\":25.0,\"has_billing\":true,\"can_pay\":1}");
	assert_int_equal(vast_current_user(cli, &u, &e), 0);
	assert_int_equal(u.id, 321);
	assert_string_equal(u.username, "ann");
	assert_true(u.balance == 12.5);
	assert_true(u.has_billing && u.can_pay);
	vast_user_release(&u);

	assert_int_equal(tu_http_count(srv), 1);
	r = tu_http_req(srv, 0);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->target, "/api/v0/users/current/");
	assert_string_equal(tu_http_header(r, "Authorization"), "Bearer " KEY);
	assert_string_equal(tu_http_header(r, "Accept"), "application/json");
	assert_int_equal(r->body_len, 0);
	/* The key is not also sent in the query, the old way. */
	assert_null(strstr(r->target, "api_key"));
}

/* A trailing slash on the base URL does not double; /api/vN paths are
 * kept as they are. */
static void test_base_and_versions(void **state)
{
	char *base = xasprintf("%s//", tu_http_url(srv));
	struct vast_client *c = client_at(base, KEY, 1, 5);
	json_t *a = NULL;
	long status = 0;
	struct err e = { 0 };

	tu_http_json(srv, 200, "{\"x\":1}");
	tu_http_json(srv, 200, "{\"x\":2}");
	assert_int_equal(vast_call(c, "GET", "/ssh/", NULL, true, &a, &status, &e), 0);
	assert_int_equal(status, 200);
	assert_int_equal(json_integer_value(json_object_get(a, "x")), 1);
	json_decref(a);
	assert_int_equal(vast_call(c, "GET", "/api/v1/invoices/?limit=3", NULL, true, &a, NULL, &e),
			 0);
	json_decref(a);
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/ssh/");
	assert_string_equal(tu_http_req(srv, 1)->target, "/api/v1/invoices/?limit=3");
	vast_client_free(c);
	free(base);
}

/* PUT, POST and DELETE without a payload send {}, as the official client
 * does; a payload is sent as compact JSON with Content-Type JSON. */
static void test_bodies(void **state)
{
	static const char *const methods[] = { "PUT", "POST", "DELETE" };
	json_t *a = NULL, *body = json_pack("{s:s, s:i}", "state", "stopped", "n", 3);
	struct err e = { 0 };

	for (size_t i = 0; i < 3; i++) {
		const struct tu_http_req *r;

		tu_http_json(srv, 200, "{\"success\":true}");
		assert_int_equal(vast_call(cli, methods[i], "/instances/reboot/5/", NULL, true, &a,
					   NULL, &e), 0);
		json_decref(a);
		r = tu_http_req(srv, i);
		assert_string_equal(r->method, methods[i]);
		assert_string_equal(r->target, "/api/v0/instances/reboot/5/");
		assert_string_equal(r->body, "{}");
		assert_string_equal(tu_http_header(r, "Content-Type"), "application/json");
	}
	tu_http_json(srv, 200, "{\"success\":true}");
	assert_int_equal(vast_call(cli, "PUT", "/instances/5/", body, true, &a, NULL, &e), 0);
	json_decref(a);
	assert_req_json(3, "{\"state\":\"stopped\",\"n\":3}");
	assert_null(strchr(tu_http_req(srv, 3)->body, ' ')); /* compact */
	json_decref(body);
}

/* Without a key there is no Authorization header (offer search works so). */
static void test_no_key(void **state)
{
	struct vast_client *c = client_at(tu_http_url(srv), NULL, 1, 5);
	json_t *q = json_pack("{s:{s:b}}", "rentable", "eq", 1), *a = NULL;
	struct err e = { 0 };

	tu_http_json(srv, 200, "{\"offers\":[{\"id\":1}]}");
	assert_int_equal(vast_search_offers(c, q, &a, &e), 0);
	assert_true(json_is_array(json_object_get(a, "offers")));
	json_decref(a);
	assert_null(tu_http_header(tu_http_req(srv, 0), "Authorization"));
	assert_string_equal(tu_http_req(srv, 0)->method, "POST");
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/bundles/");
	assert_req_json(0, "{\"rentable\":{\"eq\":true}}");

	/* A search reply without an "offers" list is a format error. */
	tu_http_json(srv, 200, "{\"success\":true}");
	assert_int_equal(vast_search_offers(c, q, &a, &e), ERR_FORMAT);
	assert_null(a);
	assert_contains(e.msg, "offers");
	json_decref(q);
	vast_client_free(c);
}

struct shape {
	int status;
	const char *type;  /* Content-Type */
	const char *body;
	int repeat;        /* answers queued: retried statuses need TRIES */
	int code;          /* expected return */
	const char *want[4];
	const char *not;   /* must not be in the message (raw HTML) */
};

/* Each error shape Vast sends becomes one clear message with the route,
 * the HTTP status, the error code and the text. */
static void test_error_shapes(void **state)
{
	static const struct shape shapes[] = {
		{ 400, "application/json",
		  "{\"success\":false,\"error\":\"invalid_args\",\"msg\":\"disk must be > 0\"}", 1,
		  ERR_HTTP,
		  { "HTTP 400", "invalid_args", "disk must be > 0", "GET /api/v0/instances/8/" },
		  NULL },
		{ 400, "application/json", "{\"detail\":\"dph_total is not a valid search key\"}", 1,
		  ERR_HTTP, { "HTTP 400", "dph_total is not a valid search key" }, NULL },
		{ 403, "application/json", "{\"message\":\"scope missing for this call\"}", 1,
		  ERR_HTTP, { "HTTP 403", "scope missing for this call" }, NULL },
		{ 410, "application/json",
		  "{\"success\":false,\"error\":\"deprecated_endpoint\","
		  "\"msg\":\"/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.\"}", 1,
		  ERR_HTTP, { "HTTP 410", "deprecated_endpoint", "Use /api/v1/instances/" }, NULL },
		{ 429, "text/plain", "API requests too frequent: endpoint threshold=2.0\n", TRIES,
		  ERR_HTTP, { "HTTP 429", "API requests too frequent: endpoint threshold=2.0",
			      "rate limited" }, NULL },
		{ 429, "application/json", "{\"error\":\"rate_limit_exceeded\"}", TRIES,
		  ERR_HTTP, { "HTTP 429", "rate_limit_exceeded" }, NULL },
		{ 502, "text/html",
		  "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
		  "Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
		  TRIES, ERR_HTTP, { "HTTP 502", "502 Bad Gateway" }, "<" },
		{ 500, "text/plain", "\n\n  Internal failure\nTraceback (most recent call last):\n", 1,
		  ERR_HTTP, { "HTTP 500", "Internal failure" }, "Traceback" },
	};
	size_t served = 0;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *s = &shapes[i];
		json_t *a = NULL;
		long status = 0;
		struct err e = { 0 };
		int r;

		for (int k = 0; k < s->repeat; k++)
			tu_http_reply(srv, s->status, s->type, s->body);
		r = vast_call(cli, "GET", "/instances/8/", NULL, true, &a, &status, &e);
		served += (size_t)s->repeat;
		assert_int_equal(tu_http_count(srv), served);
		if (r != s->code)
			fail_msg("shape %zu: %d, expected %d (%s)", i, r, s->code, e.msg);
		assert_int_equal(e.code, s->code);
		assert_int_equal(status, s->status);
		for (int k = 0; k < 4 && s->want[k]; k++)
			assert_contains(e.msg, s->want[k]);
		if (s->not)
			assert_null(strstr(e.msg, s->not));
		assert_no_key(&e);
		/* The error body comes back when it was JSON. */
		if (!strcmp(s->type, "application/json"))
			assert_true(json_is_object(a));
		else
			assert_null(a);
		json_decref(a);
	}
	assert_int_equal(tu_http_unused(srv), 0);
}

static void expect_bad_key(int status, const char *body, const char *want)
{
	json_t *a = NULL;
	long st = 0;
	struct err e = { 0 };
	size_t before = tu_http_count(srv);

	tu_http_json(srv, status, body);
	tu_http_json(srv, 200, "{}"); /* a retry would get this */
	assert_int_equal(vast_call(cli, "GET", "/users/current/", NULL, true, &a, &st, &e),
			 ERR_CONFIG);
	assert_int_equal(e.code, ERR_CONFIG);
	assert_int_equal(st, status);
	assert_int_equal(tu_http_count(srv), before + 1);
	assert_contains(e.msg, "refused the API key");
	assert_contains(e.msg, "VAST_API_KEY");
	if (want)
		assert_contains(e.msg, want);
	assert_no_key(&e);
	json_decref(a);
	/* drain the spare answer */
	assert_int_equal(vast_call(cli, "GET", "/x/", NULL, true, &a, NULL, &e), 0);
	json_decref(a);
}

/* A bad key is ERR_CONFIG whatever the status: 404 on some routes. */
static void test_bad_key(void **state)
{
	expect_bad_key(404, BAD_KEY_BODY, "HTTP 404 auth_error");
	expect_bad_key(401, BAD_KEY_BODY, "HTTP 401");
	expect_bad_key(401, "{\"detail\":\"Authentication credentials were not provided.\"}",
		       "HTTP 401");
	expect_bad_key(403, "{\"success\":false,\"error\":\"not_authorized\",\"msg\":\"nope\"}",
		       "HTTP 403");
	expect_bad_key(400, "{\"msg\":\"Invalid user key\"}", "HTTP 400");
}

/* 404/410 with a no_such_* or not_found code: ERR_NOTFOUND. A 404 that
 * says nothing is only ERR_HTTP. */
static void test_not_found(void **state)
{
	json_t *a = NULL;
	struct err e = { 0 };

	tu_http_json(srv, 404, "{\"success\":false,\"error\":\"no_such_instance\",\"msg\":\"gone\"}");
	assert_int_equal(vast_call(cli, "GET", "/instances/1/", NULL, true, &a, NULL, &e),
			 ERR_NOTFOUND);
	assert_contains(e.msg, "HTTP 404 no_such_instance");
	assert_string_equal(vast_error_code(a), "no_such_instance");
	json_decref(a);

	tu_http_json(srv, 410, "{\"success\":false,\"error\":\"no_such_ask\",\"msg\":\"offer gone\","
			       "\"ask_id\":99}");
	assert_int_equal(vast_create_instance(cli, 99, NULL, &a, NULL, &e), ERR_NOTFOUND);
	assert_contains(e.msg, "HTTP 410 no_such_ask: offer gone");
	json_decref(a);

	tu_http_json(srv, 404, "{\"success\":false,\"error\":\"not_found\"}");
	assert_int_equal(vast_call(cli, "GET", "/instances/1/", NULL, true, &a, NULL, &e),
			 ERR_NOTFOUND);
	json_decref(a);

	tu_http_reply(srv, 404, "text/html", "<html><title>Not Found</title></html>");
	assert_int_equal(vast_call(cli, "GET", "/nothing/", NULL, true, &a, NULL, &e), ERR_HTTP);
	assert_contains(e.msg, "HTTP 404: Not Found");
	assert_null(a);
	assert_no_key(&e);
}

static void test_retries_then_success(void **state)
{
	struct vast_client *c = client_at(tu_http_url(srv), KEY, 5, 5);
	struct vast_user u;
	struct err e = { 0 };

	tu_http_reply(srv, 429, "text/plain", "API requests too frequent");
	tu_http_reply(srv, 502, "text/html", "<title>502 Bad Gateway</title>");
	tu_http_json(srv, 503, "{\"detail\":\"busy\"}");
	tu_http_reply(srv, 504, "text/html", "<title>504 Gateway Time-out</title>");
	tu_http_json(srv, 200, "{\"id\":7,\"username\":\"bo\"}");
	assert_int_equal(vast_current_user(c, &u, &e), 0);
	assert_int_equal(u.id, 7);
	vast_user_release(&u);
	assert_int_equal(tu_http_count(srv), 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(tu_http_req(srv, i)->target, "/api/v0/users/current/");
		assert_string_equal(tu_http_header(tu_http_req(srv, i), "Authorization"),
				    "Bearer " KEY);
	}
	vast_client_free(c);
}

/* After max tries the error is the last answer's and says how many tries
 * were made. */
static void test_gives_up(void **state)
{
	json_t *a = NULL;
	long status = 0;
	struct err e = { 0 };
	char want[32];

	for (int i = 0; i < TRIES + 1; i++)
		tu_http_json(srv, 503, "{\"detail\":\"Service temporarily unavailable\"}");
	assert_int_equal(vast_call(cli, "GET", "/instances/4/", NULL, true, &a, &status, &e),
			 ERR_HTTP);
	assert_int_equal(status, 503);
	assert_int_equal(tu_http_count(srv), TRIES);
	assert_int_equal(tu_http_unused(srv), 1);
	assert_contains(e.msg, "HTTP 503");
	assert_contains(e.msg, "Service temporarily unavailable");
	snprintf(want, sizeof(want), "%d tries", TRIES);
	assert_contains(e.msg, want);
	assert_no_key(&e);
	json_decref(a);
}

/* A create that may have arrived is never sent again: not on a 503 ... */
static void test_create_not_retried_503(void **state)
{
	json_t *body = json_pack("{s:s, s:s, s:i}", "client_id", "me", "image", "pytorch/pytorch",
				 "disk", 40), *a = NULL;
	long status = 0;
	struct err e = { 0 };
	const struct tu_http_req *r;

	tu_http_json(srv, 503, "{\"detail\":\"busy\"}");
	tu_http_json(srv, 200, "{\"success\":true,\"new_contract\":1}");
	assert_int_equal(vast_create_instance(cli, 123456, body, &a, &status, &e), ERR_HTTP);
	assert_int_equal(status, 503);
	assert_int_equal(tu_http_count(srv), 1);
	assert_int_equal(tu_http_unused(srv), 1);
	r = tu_http_req(srv, 0);
	assert_string_equal(r->method, "PUT");
	assert_string_equal(r->target, "/api/v0/asks/123456/");
	assert_req_json(0, "{\"client_id\":\"me\",\"image\":\"pytorch/pytorch\",\"disk\":40}");
	assert_contains(e.msg, "PUT /api/v0/asks/123456/");
	assert_contains(e.msg, "HTTP 503");
	assert_no_key(&e);
	json_decref(a);
	json_decref(body);
}

/* ... nor after the connection was made and no answer came in time ... */
static void test_create_not_retried_timeout(void **state)
{
	struct vast_client *c = client_at(tu_http_url(srv), KEY, TRIES, 1);
	struct tu_http_reply slow = { .status = 200, .headers = "Content-Type: application/json\r\n",
				      .body = "{\"success\":true,\"new_contract\":1}",
				      .delay_ms = 3000 };
	json_t *a = NULL;
	long status = -1;
	struct err e = { 0 };

	tu_http_push(srv, &slow);
	tu_http_json(srv, 200, "{\"success\":true,\"new_contract\":2}");
	assert_int_equal(vast_create_instance(c, 77, NULL, &a, &status, &e), ERR_TIMEOUT);
	assert_null(a);
	assert_int_equal(status, 0);
	assert_int_equal(tu_http_count(srv), 1);
	assert_contains(e.msg, "Vast API");
	assert_null(strstr(e.msg, "tries"));
	assert_no_key(&e);
	vast_client_free(c);
}

/* ... nor after a hang-up; an idempotent call is. */
static void test_hangup(void **state)
{
	struct tu_http_reply hangup = { .status = 0 };
	struct vast_instance in;
	json_t *a = NULL;
	struct err e = { 0 };

	tu_http_push(srv, &hangup);
	tu_http_json(srv, 200, "{\"success\":true,\"new_contract\":2}");
	assert_int_equal(vast_create_instance(cli, 5, NULL, &a, NULL, &e), ERR_IO);
	assert_int_equal(tu_http_count(srv), 1);
	assert_no_key(&e);
	/* drain */
	assert_int_equal(vast_call(cli, "GET", "/x/", NULL, true, &a, NULL, &e), 0);
	json_decref(a);

	tu_http_push(srv, &hangup);
	tu_http_json(srv, 200, "{\"instances\":{\"id\":5,\"actual_status\":\"running\"}}");
	assert_int_equal(vast_show_instance(cli, 5, &in, &e), 0);
	assert_int_equal(in.id, 5);
	assert_string_equal(in.actual_status, "running");
	vast_instance_release(&in);
	assert_int_equal(tu_http_count(srv), 4);
}

/* A create refused with 429 never ran, so it is sent again. */
static void test_create_retried_429(void **state)
{
	json_t *body = json_pack("{s:s}", "image", "x"), *a = NULL;
	long status = 0;
	struct err e = { 0 };

	tu_http_reply(srv, 429, "text/plain", "API requests too frequent");
	tu_http_json(srv, 429, "{\"error\":\"rate_limit_exceeded\"}");
	tu_http_json(srv, 200, "{\"success\":true,\"new_contract\":4242}");
	assert_int_equal(vast_create_instance(cli, 11, body, &a, &status, &e), 0);
	assert_int_equal(status, 200);
	assert_int_equal(json_integer_value(json_object_get(a, "new_contract")), 4242);
	assert_int_equal(tu_http_count(srv), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(tu_http_req(srv, i)->method, "PUT");
		assert_req_json(i, "{\"image\":\"x\"}");
	}
	json_decref(a);
	json_decref(body);
}

/* Nothing listens: the create surely never left, so it is tried again,
 * and the message says how often. */
static void test_create_refused_retried(void **state)
{
	char *url = tu_http_closed_url();
	struct vast_client *c = client_at(url, KEY, 3, 5);
	json_t *a = NULL;
	long status = -1;
	struct err e = { 0 };

	assert_int_equal(vast_create_instance(c, 3, NULL, &a, &status, &e), ERR_IO);
	assert_null(a);
	assert_int_equal(status, 0);
	assert_contains(e.msg, "Vast API");
	assert_contains(e.msg, "after 3 tries");
	assert_contains(e.msg, "/api/v0/asks/3/");
	assert_no_key(&e);
	vast_client_free(c);
	free(url);
}

static void test_success_false_and_not_json(void **state)
{
	json_t *a = NULL;
	long status = 0;
	struct err e = { 0 };

	/* "success": false on a 200 is an error. */
	tu_http_json(srv, 200, "{\"success\":false,\"error\":\"label_too_long\","
			       "\"msg\":\"label must be at most 64 characters\"}");
	assert_int_equal(vast_call(cli, "PUT", "/instances/2/", NULL, true, &a, &status, &e),
			 ERR_HTTP);
	assert_int_equal(status, 200);
	assert_contains(e.msg, "HTTP 200 label_too_long: label must be at most 64 characters");
	assert_string_equal(vast_error_code(a), "label_too_long");
	json_decref(a);
	a = NULL;
	assert_int_equal(tu_http_count(srv), 1);

	/* A 200 that is not JSON (a maintenance page) is a format error. */
	tu_http_reply(srv, 200, "text/html",
		      "<!DOCTYPE html><html><head><title>Vast.ai is under maintenance</title>");
	assert_int_equal(vast_call(cli, "GET", "/instances/2/", NULL, true, &a, NULL, &e),
			 ERR_FORMAT);
	assert_null(a);
	assert_contains(e.msg, "not JSON");
	assert_contains(e.msg, "text/html");
	assert_contains(e.msg, "Vast.ai is under maintenance");
	assert_no_key(&e);

	/* An empty one says success, as a 204 does: an empty object. */
	tu_http_reply(srv, 200, NULL, NULL);
	assert_int_equal(vast_call(cli, "DELETE", "/instances/2/", NULL, true, &a, NULL, &e), 0);
	assert_true(json_is_object(a) && json_object_size(a) == 0);
	json_decref(a);
	a = NULL;
	assert_int_equal(tu_http_count(srv), 3);
}

static void test_show_instance(void **state)
{
	struct vast_instance in;
	struct err e = { 0 };

	tu_http_json(srv, 200,
		     "{\"instances\":{\"id\":33402296,\"label\":\"orch-job-42\",\"actual_status\":null,"
		     "\"public_ipaddr\":\" 139.59.37.138 \",\"ssh_host\":\"ssh3.vast.ai\","
		     "\"ssh_port\":12296,\"ports\":{\"22/tcp\":[{\"HostIp\":\"0.0.0.0\","
		     "\"HostPort\":\"30022\"}]}}}");
	assert_int_equal(vast_show_instance(cli, 33402296, &in, &e), 0);
	assert_int_equal(in.id, 33402296);
	assert_string_equal(in.label, "orch-job-42");
	assert_null(in.actual_status);
	assert_int_equal(in.ssh_direct_port, 30022);
	vast_instance_release(&in);
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/instances/33402296/?owner=me");
	assert_string_equal(tu_http_req(srv, 0)->method, "GET");

	tu_http_json(srv, 200, "{\"instances\":null}");
	assert_int_equal(vast_show_instance(cli, 33402296, &in, &e), ERR_NOTFOUND);
	assert_contains(e.msg, "instance 33402296 does not exist");
	assert_int_equal(in.id, 0);

	tu_http_json(srv, 404, "{\"success\":false,\"error\":\"no_such_instance\"}");
	assert_int_equal(vast_show_instance(cli, 8, &in, &e), ERR_NOTFOUND);
	assert_int_equal(tu_http_count(srv), 3);
}

/* Whether the query value `name` of request i, decoded, is the JSON `want`. */
static void assert_query_json(size_t i, const char *name, const char *want)
{
	char *v = tu_http_query(tu_http_req(srv, i), name);
	json_t *got, *w = json_loads(want, JSON_DECODE_ANY, NULL);

	if (!v)
		fail_msg("request %zu (%s) has no %s", i, tu_http_req(srv, i)->target, name);
	got = json_loads(v, JSON_DECODE_ANY, NULL);
	assert_non_null(w);
	if (!got || !json_equal(got, w))
		fail_msg("request %zu: %s=%s, expected %s", i, name, v, want);
	json_decref(got);
	json_decref(w);
	free(v);
}

/* The v1 list over three pages: the same filters each time, the previous
 * next_token sent back as it came, the label filter on the server and
 * here. */
static void test_list_pages(void **state)
{
	/* A token with characters that need percent-encoding. */
	static const char tok1[] = "eyJhZnRlciI6WzJdfQ+/=", tok2[] = "eyJhZnRlciI6WzNdfQ";
	char *p1 = xasprintf("{\"success\":true,\"instances_found\":2,\"next_token\":\"%s\","
			     "\"instances\":[{\"id\":1,\"label\":\"job-7\","
			     "\"actual_status\":\"running\"},{\"id\":2,\"label\":\"someone-else\"}]}",
			     tok1);
	char *p2 = xasprintf("{\"success\":true,\"next_token\":\"%s\",\"instances\":"
			     "[{\"id\":3,\"label\":\"job-7\"},{\"label\":\"job-7\"}]}", tok2);
	struct vast_instance *v = NULL;
	size_t n = 0;
	struct err e = { 0 };
	char *t;

	tu_http_json(srv, 200, p1);
	tu_http_json(srv, 200, p2);
	tu_http_json(srv, 200, "{\"success\":true,\"next_token\":null,\"instances\":"
			       "[{\"id\":4,\"label\":\"job-7\"},{\"id\":5,\"label\":null}]}");
	assert_int_equal(vast_list_instances(cli, "job-7", &v, &n, &e), 0);
	assert_int_equal(tu_http_count(srv), 3);
	/* 2 (other label), the one without id and 5 (no label) are dropped. */
	assert_int_equal(n, 3);
	assert_int_equal(v[0].id, 1);
	assert_int_equal(v[1].id, 3);
	assert_int_equal(v[2].id, 4);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i].label, "job-7");
	vast_instances_free(v, n);

	for (size_t i = 0; i < 3; i++) {
		const struct tu_http_req *r = tu_http_req(srv, i);

		assert_string_equal(r->method, "GET");
		assert_true(!strncmp(r->target, "/api/v1/instances/?", 19));
		assert_string_equal(tu_http_header(r, "Authorization"), "Bearer " KEY);
		assert_query_json(i, "limit", "25");
		assert_query_json(i, "order_by", "[{\"col\":\"id\",\"dir\":\"asc\"}]");
		assert_query_json(i, "select_filters", "{\"label\":{\"eq\":\"job-7\"}}");
	}
	assert_null(tu_http_query(tu_http_req(srv, 0), "after_token"));
	t = tu_http_query(tu_http_req(srv, 1), "after_token");
	assert_non_null(t);
	assert_string_equal(t, tok1);
	free(t);
	t = tu_http_query(tu_http_req(srv, 2), "after_token");
	assert_non_null(t);
	assert_string_equal(t, tok2);
	free(t);
	free(p1);
	free(p2);
}

/* Without a label: no select_filters, every instance kept; an error on a
 * later page fails the whole list. */
static void test_list_all_and_error(void **state)
{
	struct vast_instance *v = (struct vast_instance *)1;
	size_t n = 99;
	struct err e = { 0 };

	tu_http_json(srv, 200, "{\"next_token\":null,\"instances\":[{\"id\":1,\"label\":\"a\"},"
			       "{\"id\":2}]}");
	assert_int_equal(vast_list_instances(cli, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	vast_instances_free(v, n);
	assert_null(tu_http_query(tu_http_req(srv, 0), "select_filters"));
	assert_null(tu_http_query(tu_http_req(srv, 0), "after_token"));

	tu_http_json(srv, 200, "{\"next_token\":\"t2\",\"instances\":[{\"id\":1}]}");
	tu_http_json(srv, 400,
		     "{\"success\":false,\"error\":\"invalid_token\",\"msg\":\"bad token\"}");
	assert_int_equal(vast_list_instances(cli, NULL, &v, &n, &e), ERR_HTTP);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_contains(e.msg, "invalid_token");
	assert_contains(e.msg, "GET /api/v1/instances/");
	assert_null(strstr(e.msg, "?")); /* the route, without its query */
	assert_int_equal(tu_http_count(srv), 3);

	tu_http_json(srv, 200, "{\"next_token\":null,\"instances\":{}}");
	assert_int_equal(vast_list_instances(cli, NULL, &v, &n, &e), ERR_FORMAT);
	assert_null(v);
}

static void test_destroy(void **state)
{
	bool gone = true;
	struct err e = { 0 };

	tu_http_json(srv, 200, "{\"success\":true}");
	assert_int_equal(vast_destroy_instance(cli, 31, &gone, &e), 0);
	assert_false(gone);
	assert_string_equal(tu_http_req(srv, 0)->method, "DELETE");
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/instances/31/");
	assert_string_equal(tu_http_req(srv, 0)->body, "{}");

	tu_http_json(srv, 404, "{\"success\":false,\"error\":\"no_such_instance\",\"msg\":\"nope\"}");
	assert_int_equal(vast_destroy_instance(cli, 31, &gone, &e), 0);
	assert_true(gone);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");

	/* Destroying is idempotent: a busy answer is retried. */
	tu_http_json(srv, 502, "{}");
	tu_http_json(srv, 200, "{\"success\":true}");
	assert_int_equal(vast_destroy_instance(cli, 31, &gone, &e), 0);
	assert_false(gone);
	assert_int_equal(tu_http_count(srv), 4);

	/* A refused key is not "gone". */
	tu_http_json(srv, 404, BAD_KEY_BODY);
	assert_int_equal(vast_destroy_instance(cli, 31, &gone, &e), ERR_CONFIG);
	assert_false(gone);
	assert_no_key(&e);

	/* Destroy, then look: gone at the first look. */
	tu_http_json(srv, 200, "{\"success\":true}");
	tu_http_json(srv, 200, "{\"instances\":null}");
	assert_int_equal(vast_destroy_confirm(cli, 31, &e), 0);
	assert_int_equal(tu_http_count(srv), 7);
	assert_string_equal(tu_http_req(srv, 5)->method, "DELETE");
	assert_string_equal(tu_http_req(srv, 6)->method, "GET");
	assert_string_equal(tu_http_req(srv, 6)->target, "/api/v0/instances/31/?owner=me");
}

static void test_label_and_attach(void **state)
{
	struct err e = { 0 };

	tu_http_json(srv, 200, "{\"success\":true,\"msg\":\"label for 9 set to 'job \\\"x\\\"'\"}");
	assert_int_equal(vast_set_label(cli, 9, "job \"x\"", &e), 0);
	assert_string_equal(tu_http_req(srv, 0)->method, "PUT");
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/instances/9/");
	assert_req_json(0, "{\"label\":\"job \\\"x\\\"\"}");

	tu_http_json(srv, 200, "{\"success\":true}");
	assert_int_equal(vast_attach_key(cli, 9, "ssh-ed25519 AAAAC3Nza me@here", &e), 0);
	assert_string_equal(tu_http_req(srv, 1)->method, "POST");
	assert_string_equal(tu_http_req(srv, 1)->target, "/api/v0/instances/9/ssh/");
	assert_req_json(1, "{\"ssh_key\":\"ssh-ed25519 AAAAC3Nza me@here\"}");
}

#define PUB "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3p6Xc0vYxJ0XkJ1m4a5bP2oUuY0y1oQJwqD0h3K1T"

static void test_ssh_keys(void **state)
{
	struct vast_ssh_key *keys = NULL;
	size_t n = 0;
	long long id = -1;
	bool added = true;
	struct err e = { 0 };

	/* Listed, under another comment: no POST. */
	tu_http_json(srv, 200,
		     "[{\"id\":3,\"user_id\":1,\"key\":\"ssh-rsa AAAAB3NzaC1yc2E other\","
		     "\"deleted_at\":null},"
		     "{\"id\":9,\"user_id\":1,\"key\":\"" PUB " old@desktop\",\"deleted_at\":null}]");
	tu_http_json(srv, 200, "{\"success\":true,\"key\":{\"id\":10}}"); /* must not be used */
	assert_int_equal(vast_ssh_key_register(cli, PUB " me@laptop", &id, &added, &e), 0);
	assert_false(added);
	assert_int_equal(id, 9);
	assert_int_equal(tu_http_count(srv), 1);
	assert_string_equal(tu_http_req(srv, 0)->method, "GET");
	assert_string_equal(tu_http_req(srv, 0)->target, "/api/v0/ssh/");
	/* drain */
	assert_int_equal(vast_ssh_keys(cli, &keys, &n, &e), ERR_FORMAT);

	/* Only a deleted copy listed: it is added. */
	tu_http_json(srv, 200, "[{\"id\":9,\"key\":\"" PUB "\",\"deleted_at\":\"2026-01-01\"}]");
	tu_http_json(srv, 200, "{\"success\":true,\"key\":{\"id\":11,\"public_key\":\"" PUB "\"}}");
	assert_int_equal(vast_ssh_key_register(cli, PUB " me@laptop", &id, &added, &e), 0);
	assert_true(added);
	assert_int_equal(id, 11);
	assert_int_equal(tu_http_count(srv), 4);
	assert_string_equal(tu_http_req(srv, 3)->method, "POST");
	assert_string_equal(tu_http_req(srv, 3)->target, "/api/v0/ssh/");
	assert_req_json(3, "{\"ssh_key\":\"" PUB " me@laptop\"}");

	/* The list reader takes {"ssh_keys":[...]} too. */
	tu_http_json(srv, 200, "{\"ssh_keys\":[{\"id\":1,\"public_key\":\" " PUB " \"}]}");
	assert_int_equal(vast_ssh_keys(cli, &keys, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].key, PUB);
	vast_ssh_keys_free(keys, n);
}

/* At LOG_TRACE the exchange is logged with the Authorization header
 * masked, and the key appears nowhere, not even where the server echoes
 * it back. */
static void test_trace_hides_key(void **state)
{
	enum log_level old = log_get_level();
	struct vast_user u;
	struct err e = { 0 };
	json_t *a = NULL;
	char *out;
	int r1, r2;

	tu_http_json(srv, 200, "{\"id\":1,\"username\":\"ann\",\"api_key\":\"" KEY "\"}");
	tu_http_json(srv, 404, BAD_KEY_BODY);
	log_set_level(LOG_TRACE);
	tu_stderr_begin();
	r1 = vast_current_user(cli, &u, &e);
	r2 = vast_call(cli, "POST", "/bundles/", NULL, true, &a, NULL, &e);
	out = tu_stderr_end();
	log_set_level(old);
	assert_int_equal(r1, 0);
	assert_int_equal(r2, ERR_CONFIG);
	assert_no_key(&e);
	vast_user_release(&u);
	json_decref(a);
	assert_contains(out, "Authorization: ****");
	assert_contains(out, "GET /api/v0/users/current/");
	assert_contains(out, "POST /api/v0/bundles/");
	assert_contains(out, "auth_error");
	assert_null(strstr(out, KEY));
	assert_null(strstr(out, "0f1e2d3c4b5a"));
	assert_null(strstr(out, "Bearer vk-"));
	free(out);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_new_checks_url),
		T(test_auth_prefix_user),
		T(test_base_and_versions),
		T(test_bodies),
		T(test_no_key),
		T(test_error_shapes),
		T(test_bad_key),
		T(test_not_found),
		T(test_retries_then_success),
		T(test_gives_up),
		T(test_create_not_retried_503),
		T(test_create_not_retried_timeout),
		T(test_hangup),
		T(test_create_retried_429),
		T(test_create_refused_retried),
		T(test_success_false_and_not_json),
		T(test_show_instance),
		T(test_list_pages),
		T(test_list_all_and_error),
		T(test_destroy),
		T(test_label_and_attach),
		T(test_ssh_keys),
		T(test_trace_hides_key),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
