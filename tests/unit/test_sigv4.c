/* Unit tests for src/store/sigv4 against AWS's published signatures:
 *  - the Signature Version 4 test suite (aws-sig-v4-test-suite: AKIDEXAMPLE,
 *    20150830T123600Z, us-east-1, service "service"): get-vanilla,
 *    get-vanilla-query-order-key-case, get-header-value-trim, get-utf8,
 *    get-space, post-x-www-form-urlencoded;
 *  - the S3 examples of "Signature Calculations for the Authorization
 *    Header: Transferring Payload in a Single Chunk" (examplebucket,
 *    AKIAIOSFODNN7EXAMPLE, 20130524T000000Z): GET object with a range, PUT
 *    object, GET bucket lifecycle, list objects;
 *  - the S3 presigned-URL example ("Authenticating Requests: Using Query
 *    Parameters"), signature aeeed9bb....
 * Expected canonical requests and signatures are copied from those pages,
 * not computed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sha256.h"
#include "store/sigv4.h"

static const struct sigv4_key suite_key = {
	.access_key = "AKIDEXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "service",
};

static const struct sigv4_key s3_key = {
	.access_key = "AKIAIOSFODNN7EXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "s3",
};

#define SUITE_SCOPE "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
#define S3_SCOPE "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"

/* Sign rq with k and return the Authorization line; the canonical request
 * is left in *creq when creq is not NULL. */
static char *sign(const struct sigv4_key *k, const struct sigv4_request *rq, char **creq)
{
	struct sigv4_signed s;
	struct err e = { 0 };
	char *auth = NULL;

	sigv4_signed_init(&s);
	assert_int_equal(sigv4_sign(k, rq, &s, &e), 0);
	for (size_t i = 0; i < s.send_headers.n; i++)
		if (!strncmp(s.send_headers.v[i], "Authorization: ", 15))
			auth = strdup(s.send_headers.v[i] + 15);
	assert_non_null(auth);
	if (creq)
		*creq = strdup(s.canonical.data);
	sigv4_signed_release(&s);
	return auth;
}

static void suite_case(const char *method, const char *path, const struct sigv4_param *q,
		       size_t nq, const char *const *headers, const char *body,
		       const char *want_creq, const char *want_auth)
{
	char payload[SHA256_HEX_LEN + 1], *creq = NULL, *auth;
	struct sigv4_request rq = {
		.method = method, .host = "example.amazonaws.com", .path = path,
		.query = q, .nquery = nq, .headers = headers, .payload_hash = payload,
		.amz_date = "20150830T123600Z",
	};

	sha256_hex(body, strlen(body), payload);
	auth = sign(&suite_key, &rq, &creq);
	if (want_creq)
		assert_string_equal(creq, want_creq);
	assert_string_equal(auth, want_auth);
	free(creq);
	free(auth);
}

static void test_suite_get_vanilla(void **state)
{
	suite_case("GET", "/", NULL, 0, NULL, "",
		   "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
		   "host;x-amz-date\n" SIGV4_EMPTY_SHA256,
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE ", SignedHeaders=host;x-amz-date, "
		   "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void test_suite_query_order_key_case(void **state)
{
	static const struct sigv4_param q[] = { { "Param2", "value2" }, { "Param1", "value1" } };

	suite_case("GET", "/", q, 2, NULL, "",
		   "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
		   "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" SIGV4_EMPTY_SHA256,
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE ", SignedHeaders=host;x-amz-date, "
		   "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void test_suite_header_value_trim(void **state)
{
	static const char *const h[] = { "My-Header1: value1", "My-Header2: \"a   b   c\"", NULL };

	suite_case("GET", "/", NULL, 0, h, "",
		   "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
		   "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
		   "host;my-header1;my-header2;x-amz-date\n" SIGV4_EMPTY_SHA256,
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE
		   ", SignedHeaders=host;my-header1;my-header2;x-amz-date, "
		   "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

static void test_suite_utf8(void **state)
{
	suite_case("GET", "/\xe1\x88\xb4", NULL, 0, NULL, "",
		   "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
		   "host;x-amz-date\n" SIGV4_EMPTY_SHA256,
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE ", SignedHeaders=host;x-amz-date, "
		   "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

static void test_suite_space(void **state)
{
	suite_case("GET", "/example space/", NULL, 0, NULL, "",
		   "GET\n/example%20space/\n\nhost:example.amazonaws.com\n"
		   "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" SIGV4_EMPTY_SHA256,
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE ", SignedHeaders=host;x-amz-date, "
		   "Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}

static void test_suite_post_form(void **state)
{
	static const char *const h[] = { "Content-Type: application/x-www-form-urlencoded", NULL };

	suite_case("POST", "/", NULL, 0, h, "Param1=value1",
		   "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
		   "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
		   "content-type;host;x-amz-date\n"
		   "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
		   "AWS4-HMAC-SHA256 Credential=" SUITE_SCOPE
		   ", SignedHeaders=content-type;host;x-amz-date, "
		   "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

/* The S3 examples: x-amz-content-sha256 is one of the request's headers. */
static char *s3_sign(const char *method, const char *path, const struct sigv4_param *q,
		     size_t nq, const char *const *extra, const char *body, char **creq)
{
	char payload[SHA256_HEX_LEN + 1];
	const char *hdrs[8];
	char *sha_line, *auth;
	size_t n = 0;
	struct sigv4_request rq = {
		.method = method, .host = "examplebucket.s3.amazonaws.com", .path = path,
		.query = q, .nquery = nq, .headers = hdrs, .payload_hash = payload,
		.amz_date = "20130524T000000Z",
	};

	sha256_hex(body, strlen(body), payload);
	sha_line = malloc(100);
	snprintf(sha_line, 100, "x-amz-content-sha256: %s", payload);
	for (const char *const *h = extra; h && *h; h++)
		hdrs[n++] = *h;
	hdrs[n++] = sha_line;
	hdrs[n] = NULL;
	auth = sign(&s3_key, &rq, creq);
	free(sha_line);
	return auth;
}

static void test_s3_get_object_range(void **state)
{
	static const char *const h[] = { "Range: bytes=0-9", NULL };
	char *creq, *auth = s3_sign("GET", "/test.txt", NULL, 0, h, "", &creq);

	assert_string_equal(creq,
			    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
			    "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
			    "x-amz-date:20130524T000000Z\n\n"
			    "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
			    ", SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
			    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(creq);
	free(auth);
}

static void test_s3_put_object(void **state)
{
	static const char *const h[] = { "Date: Fri, 24 May 2013 00:00:00 GMT",
					 "x-amz-storage-class: REDUCED_REDUNDANCY", NULL };
	char *creq, *auth = s3_sign("PUT", "/test$file.text", NULL, 0, h, "Welcome to Amazon S3.",
				    &creq);

	assert_string_equal(creq,
			    "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
			    "host:examplebucket.s3.amazonaws.com\n"
			    "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
			    "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
			    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
			    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	assert_string_equal(
		auth, "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
		      ", SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
		      "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	free(creq);
	free(auth);
}

static void test_s3_get_lifecycle(void **state)
{
	/* A bare query name is signed (and must be sent) as `lifecycle=`. */
	static const struct sigv4_param q[] = { { "lifecycle", "" } };
	char *creq, *auth = s3_sign("GET", "/", q, 1, NULL, "", &creq);

	assert_string_equal(creq, "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
				  "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
				  "x-amz-date:20130524T000000Z\n\n"
				  "host;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
			    ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
			    "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	free(creq);
	free(auth);
}

static void test_s3_list_objects(void **state)
{
	static const struct sigv4_param q[] = { { "prefix", "J" }, { "max-keys", "2" } };
	char *creq, *auth = s3_sign("GET", "/", q, 2, NULL, "", &creq);

	assert_string_equal(creq, "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
				  "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
				  "x-amz-date:20130524T000000Z\n\n"
				  "host;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" S3_SCOPE
			    ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
			    "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	free(creq);
	free(auth);
}

static void test_s3_presigned_get(void **state)
{
	struct sigv4_request rq = {
		.method = "GET", .host = "examplebucket.s3.amazonaws.com", .path = "/test.txt",
		.amz_date = "20130524T000000Z",
	};
	struct sigv4_signed s;
	struct err e = { 0 };

	sigv4_signed_init(&s);
	assert_int_equal(sigv4_presign(&s3_key, &rq, 86400, &s, &e), 0);
	assert_string_equal(s.canonical.data,
			    "GET\n/test.txt\n"
			    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
			    "20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
			    "X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
			    "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
	assert_string_equal(s.signature,
			    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	assert_string_equal(s.query.data,
			    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
			    "20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
			    "X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
			    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	/* The signature is a secret from now on. */
	{
		struct buf b = BUF_INIT;

		buf_puts(&b, s.query.data);
		log_redact(&b);
		assert_null(strstr(b.data, "aeeed9bb"));
		buf_release(&b);
	}
	sigv4_signed_release(&s);
}

static void test_presign_limits_and_token(void **state)
{
	struct sigv4_key k = s3_key;
	struct sigv4_request rq = {
		.method = "PUT", .host = "127.0.0.1:9000", .path = "/b/a key",
		.amz_date = "20240101T000000Z",
	};
	struct sigv4_signed s;
	struct err e = { 0 };

	sigv4_signed_init(&s);
	assert_int_equal(sigv4_presign(&k, &rq, 604801, &s, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "7 days"));
	assert_int_equal(sigv4_presign(&k, &rq, 0, &s, &e), ERR_USAGE);
	k.session_token = "TOKEN/with+chars";
	assert_int_equal(sigv4_presign(&k, &rq, 604800, &s, &e), 0);
	assert_non_null(strstr(s.query.data, "X-Amz-Security-Token=TOKEN%2Fwith%2Bchars&"));
	assert_non_null(strstr(s.query.data, "X-Amz-Expires=604800&"));
	assert_non_null(strstr(s.canonical.data, "PUT\n/b/a%20key\n"));
	/* The signature comes last, after the signed parameters. */
	assert_non_null(strstr(s.query.data, "&X-Amz-Signature="));
	assert_int_equal(strlen(strstr(s.query.data, "&X-Amz-Signature=") + 17), 64);
	sigv4_signed_release(&s);
}

static void test_session_token_header_and_refusals(void **state)
{
	static const char *const bad_host[] = { "Host: evil", NULL };
	static const char *const bad_nl[] = { "X-A: b\r\nX-Injected: 1", NULL };
	struct sigv4_key k = suite_key;
	struct sigv4_request rq = {
		.method = "GET", .host = "example.amazonaws.com", .path = "/",
		.amz_date = "20150830T123600Z",
	};
	struct sigv4_signed s;
	struct err e = { 0 };
	bool token = false;

	k.session_token = "tok";
	sigv4_signed_init(&s);
	assert_int_equal(sigv4_sign(&k, &rq, &s, &e), 0);
	assert_non_null(strstr(s.canonical.data, "x-amz-security-token:tok\n"));
	for (size_t i = 0; i < s.send_headers.n; i++)
		token |= !strcmp(s.send_headers.v[i], "X-Amz-Security-Token: tok");
	assert_true(token);
	assert_non_null(strstr(s.send_headers.v[s.send_headers.n - 1],
			       "SignedHeaders=host;x-amz-date;x-amz-security-token, "));
	sigv4_signed_release(&s);

	rq.headers = bad_host;
	sigv4_signed_init(&s);
	assert_int_equal(sigv4_sign(&k, &rq, &s, &e), ERR_USAGE);
	sigv4_signed_release(&s);
	rq.headers = bad_nl;
	sigv4_signed_init(&s);
	assert_int_equal(sigv4_sign(&k, &rq, &s, &e), ERR_USAGE);
	sigv4_signed_release(&s);
	k.secret_key = "";
	rq.headers = NULL;
	sigv4_signed_init(&s);
	assert_int_equal(sigv4_sign(&k, &rq, &s, &e), ERR_CONFIG);
	sigv4_signed_release(&s);
}

static void test_encoding(void **state)
{
	struct buf b = BUF_INIT;
	static const struct sigv4_param q[] = {
		{ "uploads", "" }, { "b", "x/y z" }, { "a", "2" }, { "a", "1" }, { "prefix", "~._-+" },
	};

	sigv4_uri_encode("abcXYZ019-_.~", 13, false, &b);
	assert_string_equal(b.data, "abcXYZ019-_.~");
	buf_reset(&b);
	sigv4_uri_encode("a/b c+d*!'()", 12, false, &b);
	assert_string_equal(b.data, "a/b%20c%2Bd%2A%21%27%28%29");
	buf_reset(&b);
	sigv4_uri_encode("a/b", 3, true, &b);
	assert_string_equal(b.data, "a%2Fb");
	buf_reset(&b);
	sigv4_canonical_query(q, 5, &b);
	assert_string_equal(b.data, "a=1&a=2&b=x%2Fy%20z&prefix=~._-%2B&uploads=");
	buf_release(&b);
	{
		char d[17];

		sigv4_amz_date(1440938160, d);
		assert_string_equal(d, "20150830T123600Z");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_get_vanilla),
		cmocka_unit_test(test_suite_query_order_key_case),
		cmocka_unit_test(test_suite_header_value_trim),
		cmocka_unit_test(test_suite_utf8),
		cmocka_unit_test(test_suite_space),
		cmocka_unit_test(test_suite_post_form),
		cmocka_unit_test(test_s3_get_object_range),
		cmocka_unit_test(test_s3_put_object),
		cmocka_unit_test(test_s3_get_lifecycle),
		cmocka_unit_test(test_s3_list_objects),
		cmocka_unit_test(test_s3_presigned_get),
		cmocka_unit_test(test_presign_limits_and_token),
		cmocka_unit_test(test_session_token_header_and_refusals),
		cmocka_unit_test(test_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
