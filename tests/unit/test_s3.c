/* Unit tests for the S3 client (src/store/s3.c, upload.c) against the
 * scripted loopback server of testutil: what each request carries (Host,
 * payload hash, signed headers, Content-MD5, the query), how answers and
 * errors are read (S3's code and message, credentials, missing keys and
 * buckets), a PutObject, a multipart upload part by part, an ETag that is
 * not the part's MD5 (sent again), a part that keeps failing (the upload
 * aborted, or kept for a later run when the abort fails too), the resumed
 * run that sends only what ListParts did not list, and presigned URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/md5.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/dir.h"
#include "store/s3.h"
#include "store/upload.h"
#include "store/xml.h"
#include "testutil.h"

#define MiB (1024 * 1024)

static struct tu_http *srv;
static char *dir;

static int setup(void **state)
{
	srv = tu_http_start();
	dir = tu_mkdtemp("s3");
	return 0;
}

static int teardown(void **state)
{
	tu_http_stop(srv);
	srv = NULL;
	assert_int_equal(fsx_remove_tree(dir, NULL), 0);
	free(dir);
	return 0;
}

static struct s3_client *client(int tries)
{
	char *state = fsx_join(dir, "uploads");
	struct s3_opts o = {
		.endpoint = tu_http_url(srv), .region = "auto", .bucket = "bkt",
		.access_key = "AKIDTEST", .secret_key = "test-secret-key-123",
		.tries = tries, .backoff_ms = 1, .part_size = 5 * MiB,
		.multipart_above = 5 * MiB, .parallel = 1, .upload_state = state,
	};
	struct s3_client *c = NULL;
	struct err e = { 0 };

	assert_int_equal(s3_client_new(&c, &o, &e), 0);
	free(state);
	return c;
}

/* A file of n bytes that differ from part to part. */
static char *make_file(const char *name, size_t n, struct buf *data)
{
	buf_init(data);
	for (size_t i = 0; i < n; i++)
		buf_putc(data, (char)((i * 2654435761u) >> 13));
	tu_write_file(dir, name, data->data, data->len);
	return fsx_join(dir, name);
}

static void md5_of(const char *p, size_t n, char hex[MD5_HEX_LEN + 1], unsigned char *raw)
{
	unsigned char md[MD5_LEN];
	struct md5 m;

	md5_init(&m);
	md5_update(&m, p, n);
	md5_final(&m, md);
	md5_to_hex(md, hex);
	if (raw)
		memcpy(raw, md, MD5_LEN);
}

/* Queue a 200 carrying an ETag. */
static void reply_etag(const char *md5_hex)
{
	char *h = xasprintf("ETag: \"%s\"\r\n", md5_hex);

	tu_http_push(srv, &(struct tu_http_reply){ .status = 200, .headers = h });
	free(h);
}

static void reply_head(size_t size, const char *sha)
{
	char *h = sha ? xasprintf("x-amz-meta-sha256: %s\r\nETag: \"x-1\"\r\n", sha)
		      : xstrdup("ETag: \"x-1\"\r\n");
	char *body = xmalloc(size + 1);

	/* The server sends the body a GET would get: HEAD must not wait for it. */
	memset(body, 'b', size);
	body[size] = '\0';
	tu_http_push(srv, &(struct tu_http_reply){ .status = 200, .headers = h, .body = body,
						   .body_len = size });
	free(body);
	free(h);
}

static void reply_xml(int status, const char *xml)
{
	tu_http_reply(srv, status, "application/xml", xml);
}

static void test_request_shape(void **state)
{
	struct s3_client *c = client(1);
	struct s3_head h;
	struct err e = { 0 };
	const struct tu_http_req *r;
	const char *auth;
	char *host = xstrdup(tu_http_url(srv) + 7);

	reply_head(1234, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_equal(s3_head(c, "dir/a b+c.txt", &h, &e), 0);
	assert_int_equal(h.size, 1234);
	assert_string_equal(h.etag, "x-1");
	assert_string_equal(h.sha256,
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	r = tu_http_req(srv, 0);
	assert_string_equal(r->method, "HEAD");
	assert_string_equal(r->target, "/bkt/dir/a%20b%2Bc.txt");
	assert_string_equal(tu_http_header(r, "Host"), host);
	assert_string_equal(tu_http_header(r, "x-amz-content-sha256"),
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_non_null(tu_http_header(r, "x-amz-date"));
	auth = tu_http_header(r, "Authorization");
	assert_non_null(auth);
	assert_true(str_starts_with(auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
	assert_non_null(strstr(auth, "/auto/s3/aws4_request, "
				     "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
				     "Signature="));
	assert_null(strstr(auth, "test-secret-key-123"));

	/* Missing: a HEAD has no body to say why. */
	tu_http_reply(srv, 404, NULL, NULL);
	assert_int_equal(s3_head(c, "gone", &h, &e), ERR_NOTFOUND);
	assert_string_equal(e.msg, "no object s3://bkt/gone");
	free(host);
	s3_client_free(c);
}

static void test_errors(void **state)
{
	struct s3_client *c = client(3);
	struct s3_entry *v = NULL;
	struct err e = { 0 };
	size_t n = 0;

	reply_xml(403, "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
		       "signature we calculated does not match</Message></Error>");
	assert_int_equal(s3_list(c, "p/", &v, &n, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "403 SignatureDoesNotMatch: The request signature we "
				      "calculated does not match"));
	assert_non_null(strstr(e.msg, "AWS_SECRET_ACCESS_KEY"));
	assert_int_equal(tu_http_count(srv), 1); /* a refusal is not retried */
	assert_string_equal(tu_http_req(srv, 0)->target, "/bkt?list-type=2&prefix=p%2F");

	reply_xml(404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does "
		       "not exist</Message></Error>");
	assert_int_equal(s3_list(c, NULL, &v, &n, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "the bucket 'bkt' does not exist"));

	/* 500 and 503 are sent again; the last answer is shown as S3 wrote it. */
	reply_xml(500, "<Error><Code>InternalError</Code><Message>oops</Message></Error>");
	reply_xml(503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate"
		       "</Message></Error>");
	reply_xml(503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate"
		       "</Message></Error>");
	assert_int_equal(s3_list(c, NULL, &v, &n, &e), ERR_HTTP);
	assert_non_null(strstr(e.msg, "503 SlowDown: Reduce your request rate"));
	assert_int_equal(tu_http_unused(srv), 0);

	/* A page that is not XML at all. */
	tu_http_reply(srv, 502, "text/html", "<html><title>Bad gateway</title>\nmore");
	tu_http_reply(srv, 502, "text/html", "<html><title>Bad gateway</title>\nmore");
	tu_http_reply(srv, 502, "text/html", "<html><title>Bad gateway</title>\nmore");
	assert_int_equal(s3_list(c, NULL, &v, &n, &e), ERR_HTTP);
	assert_non_null(strstr(e.msg, ": 502: <html>"));

	/* A listing in two pages. */
	reply_xml(200, "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>"
		       "t/2=</NextContinuationToken><Contents><Key>a</Key><Size>1</Size>"
		       "</Contents></ListBucketResult>");
	reply_xml(200, "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>b</Key>"
		       "<Size>2</Size></Contents></ListBucketResult>");
	assert_int_equal(s3_list(c, NULL, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[1].key, "b");
	{
		char *tok = tu_http_query(tu_http_req(srv, tu_http_count(srv) - 1),
					  "continuation-token");

		assert_string_equal(tok, "t/2=");
		free(tok);
	}
	s3_entries_free(v, n);
	s3_client_free(c);
}

static void test_put_single_and_skip(void **state)
{
	struct s3_client *c = client(2);
	struct s3_put_result res;
	struct err e = { 0 };
	struct buf data;
	char *file = make_file("small.json", 1000, &data);
	char md5[MD5_HEX_LEN + 1], sha[SHA256_HEX_LEN + 1];
	const struct tu_http_req *r;

	md5_of(data.data, data.len, md5, NULL);
	sha256_hex(data.data, data.len, sha);
	tu_http_reply(srv, 404, NULL, NULL);
	reply_etag("0000000000000000000000000000000f"); /* damaged: sent again */
	reply_etag(md5);
	assert_int_equal(s3_put_file(c, file, "k/small.json", NULL, &res, &e), 0);
	assert_false(res.skipped);
	assert_false(res.multipart);
	assert_string_equal(res.sha256, sha);
	assert_string_equal(res.etag, md5);
	assert_int_equal(tu_http_count(srv), 3);
	r = tu_http_req(srv, 2);
	assert_string_equal(r->method, "PUT");
	assert_int_equal(r->body_len, 1000);
	assert_memory_equal(r->body, data.data, 1000);
	assert_string_equal(tu_http_header(r, "x-amz-content-sha256"), sha);
	assert_string_equal(tu_http_header(r, "x-amz-meta-sha256"), sha);
	assert_string_equal(tu_http_header(r, "Content-Type"), "application/json");
	assert_non_null(tu_http_header(r, "Content-MD5"));
	assert_int_equal(strlen(tu_http_header(r, "Content-MD5")), 24);
	assert_non_null(strstr(tu_http_header(r, "Authorization"),
			       "SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;"
			       "x-amz-date;x-amz-meta-sha256, "));

	/* There with the same size and SHA-256: nothing is sent. */
	reply_head(1000, sha);
	assert_int_equal(s3_put_file(c, file, "k/small.json", NULL, &res, &e), 0);
	assert_true(res.skipped);
	assert_int_equal(tu_http_count(srv), 4);

	/* The ETag keeps being wrong: the put fails, saying so. */
	tu_http_reply(srv, 404, NULL, NULL);
	reply_etag("0000000000000000000000000000000f");
	reply_etag("0000000000000000000000000000000f");
	assert_int_equal(s3_put_file(c, file, "k/small.json", NULL, &res, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "after 2 tries"));
	assert_non_null(strstr(e.msg, "is not the MD5"));
	buf_release(&data);
	free(file);
	s3_client_free(c);
}

/* The replies for parts [from, 3) of an 11 MiB upload, then Complete and
 * the HEAD that checks the object. */
static void reply_rest(const char *md5s[3], const unsigned char raw[3][MD5_LEN], int from,
		       size_t size, const char *sha)
{
	unsigned char md[MD5_LEN];
	char hex[MD5_HEX_LEN + 1], *xml;
	struct md5 m;

	for (int i = from; i < 3; i++)
		reply_etag(md5s[i]);
	md5_init(&m);
	for (int i = 0; i < 3; i++)
		md5_update(&m, raw[i], MD5_LEN);
	md5_final(&m, md);
	md5_to_hex(md, hex);
	xml = xasprintf("<CompleteMultipartUploadResult><ETag>\"%s-3\"</ETag>"
			"</CompleteMultipartUploadResult>",
			hex);
	reply_xml(200, xml);
	free(xml);
	reply_head(size, sha);
}

static void test_multipart_abort_resume(void **state)
{
	struct s3_client *c = client(1);
	struct s3_put_result res;
	struct err e = { 0 };
	struct buf data;
	size_t size = 11 * MiB + 7;
	char *file = make_file("big.bin", size, &data);
	char md5s[3][MD5_HEX_LEN + 1], sha[SHA256_HEX_LEN + 1], part_sha[SHA256_HEX_LEN + 1];
	const char *md5p[3] = { md5s[0], md5s[1], md5s[2] };
	unsigned char raw[3][MD5_LEN];
	const struct tu_http_req *r;
	char *xml;

	for (int i = 0; i < 3; i++)
		md5_of(data.data + (size_t)i * 5 * MiB, i < 2 ? 5 * MiB : size - 10 * MiB,
		       md5s[i], raw[i]);
	sha256_hex(data.data, data.len, sha);

	/* First run: part 2 is refused for good; the abort fails too, so the
	 * record stays for the next run. */
	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>UP/1+x</UploadId>"
		       "</InitiateMultipartUploadResult>");
	reply_etag(md5s[0]);
	reply_xml(400, "<Error><Code>EntityTooSmall</Code><Message>Your proposed upload is "
		       "smaller than the minimum allowed object size.</Message></Error>");
	reply_xml(500, "<Error><Code>InternalError</Code><Message>x</Message></Error>");
	assert_int_equal(s3_put_file(c, file, "m/big.bin", NULL, &res, &e), ERR_HTTP);
	assert_non_null(strstr(e.msg, "UploadPart 2 of 3 of s3://bkt/m/big.bin: 400 "
				      "EntityTooSmall"));
	assert_int_equal(tu_http_count(srv), 5);
	r = tu_http_req(srv, 1);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->target, "/bkt/m/big.bin?uploads=");
	assert_string_equal(tu_http_header(r, "x-amz-meta-sha256"), sha);
	assert_string_equal(tu_http_header(r, "Content-Length"), "0");
	r = tu_http_req(srv, 2);
	assert_string_equal(r->target, "/bkt/m/big.bin?partNumber=1&uploadId=UP%2F1%2Bx");
	assert_int_equal(r->body_len, 5 * MiB);
	assert_memory_equal(r->body, data.data, 5 * MiB);
	sha256_hex(data.data, 5 * MiB, part_sha);
	assert_string_equal(tu_http_header(r, "x-amz-content-sha256"), part_sha);
	{
		char b64[MD5_BASE64_LEN + 1];

		md5_to_base64(raw[0], b64);
		assert_string_equal(tu_http_header(r, "Content-MD5"), b64);
	}
	r = tu_http_req(srv, 4);
	assert_string_equal(r->method, "DELETE");
	assert_string_equal(r->target, "/bkt/m/big.bin?uploadId=UP%2F1%2Bx");

	/* Second run: ListParts says part 1 arrived: parts 2 and 3 go. */
	tu_http_reply(srv, 404, NULL, NULL);
	xml = xasprintf("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>1"
			"</PartNumber><ETag>\"%s\"</ETag><Size>%d</Size></Part></ListPartsResult>",
			md5s[0], 5 * MiB);
	reply_xml(200, xml);
	free(xml);
	reply_rest(md5p, (const unsigned char(*)[MD5_LEN])raw, 1, size, sha);
	assert_int_equal(s3_put_file(c, file, "m/big.bin", NULL, &res, &e), 0);
	assert_true(res.multipart);
	assert_true(res.resumed);
	assert_int_equal(res.parts, 3);
	assert_int_equal(res.parts_sent, 2);
	assert_string_equal(res.sha256, sha);
	assert_int_equal(tu_http_count(srv), 11);
	assert_string_equal(tu_http_req(srv, 6)->target,
			    "/bkt/m/big.bin?max-parts=1000&uploadId=UP%2F1%2Bx");
	assert_string_equal(tu_http_req(srv, 7)->target,
			    "/bkt/m/big.bin?partNumber=2&uploadId=UP%2F1%2Bx");
	assert_int_equal(tu_http_req(srv, 8)->body_len, size - 10 * MiB);
	r = tu_http_req(srv, 9);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->target, "/bkt/m/big.bin?uploadId=UP%2F1%2Bx");
	xml = xasprintf("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"%s\""
			"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"%s\"</ETag></Part>"
			"<Part><PartNumber>3</PartNumber><ETag>\"%s\"</ETag></Part>"
			"</CompleteMultipartUpload>",
			md5s[0], md5s[1], md5s[2]);
	assert_string_equal(r->body, xml);
	free(xml);

	/* Third run: the record is gone, so it starts afresh; a part whose
	 * ETag is wrong once is sent again. */
	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>UP2</UploadId>"
		       "</InitiateMultipartUploadResult>");
	reply_etag(md5s[1]);
	reply_rest(md5p, (const unsigned char(*)[MD5_LEN])raw, 0, size, sha);
	c = (s3_client_free(c), client(2));
	assert_int_equal(s3_put_file(c, file, "m/big.bin", NULL, &res, &e), 0);
	assert_false(res.resumed);
	assert_int_equal(res.parts_sent, 3);
	assert_int_equal(tu_http_unused(srv), 0);

	buf_release(&data);
	free(file);
	s3_client_free(c);
}

static void test_multipart_abort(void **state)
{
	struct s3_client *c = client(2);
	struct s3_put_result res;
	struct err e = { 0 };
	struct buf data;
	char *file = make_file("abort.bin", 6 * MiB, &data), *uploads = fsx_join(dir, "uploads");
	struct s3_entry *v = NULL;
	size_t n = 0;

	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>A1</UploadId>"
		       "</InitiateMultipartUploadResult>");
	/* Part 1 answered 500 twice (the parts run one at a time here). */
	reply_xml(500, "<Error><Code>InternalError</Code><Message>x</Message></Error>");
	reply_xml(500, "<Error><Code>InternalError</Code><Message>x</Message></Error>");
	tu_http_reply(srv, 204, NULL, NULL);
	assert_int_equal(s3_put_file(c, file, "a.bin", NULL, &res, &e), ERR_HTTP);
	assert_non_null(strstr(e.msg, "after 2 tries"));
	assert_string_equal(tu_http_req(srv, 4)->method, "DELETE");
	/* Aborted: nothing to resume, no record left. */
	assert_int_equal(dir_store_list(uploads, "", &v, &n, &e), 0);
	assert_int_equal(n, 0);
	s3_entries_free(v, n);
	buf_release(&data);
	free(file);
	free(uploads);
	s3_client_free(c);
}

/* ---- answers read by what they hold ---- */

#define MOTO_NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static void test_xml_by_content(void **state)
{
	static const char aws[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult"
		MOTO_NS "><Location>https://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket>"
		"<Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
		"</CompleteMultipartUploadResult>";
	/* What moto 5 answers. */
	static const char moto[] =
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CompleteMultipartUploadResponse"
		MOTO_NS "><Location>http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket>"
		"<Key>k</Key><ETag>\"cb8d7289925309a05b2db09b7709c264-1\"</ETag>"
		"</CompleteMultipartUploadResponse>";
	/* What S3 may send with status 200 when the Complete failed after all. */
	static const char error200[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
		"<Message>We encountered an internal error. Please try again.</Message>"
		"<RequestId>656c76696e6727732072657175657374</RequestId></Error>";
	static const char wrapped[] =
		"<CompleteMultipartUploadResponse><Error><Code>InvalidPart</Code><Message>One or "
		"more of the specified parts could not be found.</Message></Error>"
		"</CompleteMultipartUploadResponse>";
	static const char other[] = "<Something><Else>1</Else></Something>";
	struct s3_error se;
	struct err e = { 0 };
	char etag[80], *id = NULL;
	struct s3_part *parts = NULL;
	size_t n = 0;
	unsigned next;

	assert_int_equal(s3_xml_complete(aws, strlen(aws), etag, sizeof(etag), &se, &e), 0);
	assert_string_equal(etag, "3858f62230ac3c915f300c664312c11f-9");
	assert_int_equal(s3_xml_complete(moto, strlen(moto), etag, sizeof(etag), &se, &e), 0);
	assert_string_equal(etag, "cb8d7289925309a05b2db09b7709c264-1");

	assert_int_equal(s3_xml_complete(error200, strlen(error200), etag, sizeof(etag), &se, &e),
			 ERR_HTTP);
	assert_string_equal(se.code, "InternalError");
	assert_non_null(strstr(e.msg, "CompleteMultipartUpload: InternalError: We encountered"));
	assert_string_equal(etag, "");
	assert_int_equal(s3_xml_complete(wrapped, strlen(wrapped), etag, sizeof(etag), &se, NULL),
			 ERR_HTTP);
	assert_string_equal(se.code, "InvalidPart");
	assert_true(s3_xml_error(wrapped, strlen(wrapped), &se));

	assert_int_equal(s3_xml_complete(other, strlen(other), etag, sizeof(etag), &se, &e),
			 ERR_FORMAT);
	assert_non_null(strstr(e.msg, "<Something> is not one (it holds no <ETag>, <Location> "
				      "or <Key>)"));
	assert_int_equal(s3_xml_complete(other, strlen(other), etag, sizeof(etag), &se, NULL),
			 ERR_FORMAT);

	/* The same for the other multipart answers: moto's ListPartsResponse. */
	{
		static const char lp[] =
			"<ListPartsResponse" MOTO_NS "><Bucket>b</Bucket><Key>k</Key><UploadId>U"
			"</UploadId><IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber>"
			"<ETag>\"336311a016184326ddbdd61edd4eeb52\"</ETag><Size>10</Size></Part>"
			"</ListPartsResponse>";
		static const char up[] = "<CreateMultipartUploadResponse><UploadId>U9</UploadId>"
					 "</CreateMultipartUploadResponse>";

		assert_int_equal(s3_xml_list_parts(lp, strlen(lp), &parts, &n, &next, &e), 0);
		assert_int_equal(n, 1);
		assert_string_equal(parts[0].etag, "336311a016184326ddbdd61edd4eeb52");
		free(parts);
		assert_int_equal(s3_xml_upload_id(up, strlen(up), &id, &e), 0);
		assert_string_equal(id, "U9");
		free(id);
		assert_int_equal(s3_xml_upload_id(error200, strlen(error200), &id, &e), ERR_HTTP);
		assert_null(id);
	}
}

/* Complete through a whole upload: a 200 carrying InternalError is tried
 * again and moto's shape is taken; a 200 carrying InvalidPart fails the
 * upload (and aborts it). */
static void test_complete_answers(void **state)
{
	struct s3_client *c = client(3);
	struct s3_put_result res;
	struct err e = { 0 };
	struct buf data;
	char *file = make_file("cpl.bin", 6 * MiB, &data), *xml;
	char md5s[2][MD5_HEX_LEN + 1], sha[SHA256_HEX_LEN + 1], hex[MD5_HEX_LEN + 1];
	unsigned char raw[2][MD5_LEN], md[MD5_LEN];
	struct md5 m;

	md5_of(data.data, 5 * MiB, md5s[0], raw[0]);
	md5_of(data.data + 5 * MiB, 1 * MiB, md5s[1], raw[1]);
	md5_init(&m);
	md5_update(&m, raw, sizeof(raw));
	md5_final(&m, md);
	md5_to_hex(md, hex);
	sha256_hex(data.data, data.len, sha);

	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>P1</UploadId>"
		       "</InitiateMultipartUploadResult>");
	reply_etag(md5s[0]);
	reply_etag(md5s[1]);
	reply_xml(200, "<Error><Code>InternalError</Code><Message>later</Message></Error>");
	xml = xasprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			"<CompleteMultipartUploadResponse" MOTO_NS "><Location>http://bkt.s3."
			"amazonaws.com/k</Location><Bucket>bkt</Bucket><Key>k</Key><ETag>\"%s-2\""
			"</ETag></CompleteMultipartUploadResponse>", hex);
	reply_xml(200, xml);
	free(xml);
	reply_head(6 * MiB, sha);
	assert_int_equal(s3_put_file(c, file, "k", NULL, &res, &e), 0);
	assert_int_equal(strncmp(res.etag, hex, MD5_HEX_LEN), 0);
	assert_int_equal(tu_http_count(srv), 7);
	assert_string_equal(tu_http_req(srv, 4)->method, "POST");
	assert_string_equal(tu_http_req(srv, 5)->method, "POST");
	assert_int_equal(tu_http_unused(srv), 0);

	/* A refusal in a 200: no second try, the upload is aborted. */
	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>P2</UploadId>"
		       "</InitiateMultipartUploadResult>");
	reply_etag(md5s[0]);
	reply_etag(md5s[1]);
	reply_xml(200, "<Error><Code>InvalidPart</Code><Message>no such part</Message></Error>");
	tu_http_reply(srv, 204, NULL, NULL);
	assert_int_equal(s3_put_file(c, file, "k2", NULL, &res, &e), ERR_HTTP);
	assert_non_null(strstr(e.msg, "InvalidPart: no such part"));
	assert_string_equal(tu_http_req(srv, 12)->method, "DELETE");
	assert_int_equal(tu_http_unused(srv), 0);

	buf_release(&data);
	free(file);
	s3_client_free(c);
}

/* ---- cancelling ---- */

struct later {
	pthread_t t;
	struct cancel *c;
	int ms;
};

static void *later_run(void *arg)
{
	struct later *l = arg;

	usleep((useconds_t)l->ms * 1000);
	cancel_set(l->c);
	return NULL;
}

static void cancel_later(struct later *l, struct cancel *c, int ms)
{
	l->c = c;
	l->ms = ms;
	assert_int_equal(pthread_create(&l->t, NULL, later_run, l), 0);
}

/* Upload records under the state folder. */
static size_t records(void)
{
	char *uploads = fsx_join(dir, "uploads");
	struct s3_entry *v = NULL;
	size_t n = 0, json = 0;

	assert_int_equal(dir_store_list(uploads, "", &v, &n, NULL), 0);
	for (size_t i = 0; i < n; i++)
		json += str_ends_with_ci(v[i].key, ".json");
	s3_entries_free(v, n);
	free(uploads);
	return json;
}

/* Cancelled in `when` ("backoff": while a failed part waits to be sent
 * again, 5 s away; "part": while a part waits for its answer, 10 s away):
 * ERR_CANCELLED at once, nothing aborted, the record kept to resume. */
static void cancel_multipart(const char *when)
{
	struct s3_client *c = client(5);
	struct s3_put_result res;
	struct cancel cancel;
	struct later l;
	struct err e = { 0 };
	struct buf data;
	char *file = make_file("c.bin", 6 * MiB, &data);
	bool backoff = !strcmp(when, "backoff");
	size_t sent = backoff ? 4 : 3;
	long long t0;

	cancel_init(&cancel);
	s3_client_set_cancel(c, &cancel);
	tu_http_reply(srv, 404, NULL, NULL);
	reply_xml(200, "<InitiateMultipartUploadResult><UploadId>C1</UploadId>"
		       "</InitiateMultipartUploadResult>");
	if (backoff) {
		char md5[MD5_HEX_LEN + 1];

		tu_http_push(srv, &(struct tu_http_reply){
			.status = 503, .headers = "Retry-After: 5\r\n",
			.body = "<Error><Code>SlowDown</Code><Message>x</Message></Error>" });
		/* Part 2 goes while part 1 waits, and arrives. */
		md5_of(data.data + 5 * MiB, 1 * MiB, md5, NULL);
		reply_etag(md5);
	} else {
		tu_http_push(srv, &(struct tu_http_reply){ .status = 200, .delay_ms = 10000 });
	}
	cancel_later(&l, &cancel, 300);
	t0 = clock_mono_ms();
	if (s3_put_file(c, file, "c.bin", NULL, &res, &e) != ERR_CANCELLED)
		fail_msg("%s: not cancelled: %s", when, e.msg);
	if (clock_mono_ms() - t0 > 2500)
		fail_msg("%s: cancelled after %lld ms", when, clock_mono_ms() - t0);
	pthread_join(l.t, NULL);
	assert_non_null(strstr(e.msg, "cancelled"));
	/* HEAD, Create, UploadPart (twice after a backoff): no Abort. */
	assert_int_equal(tu_http_count(srv), sent);
	assert_int_equal(records(), 1);

	/* Cancelled already: nothing is sent at all. */
	assert_int_equal(s3_put_file(c, file, "c.bin", NULL, &res, &e), ERR_CANCELLED);
	assert_int_equal(tu_http_count(srv), sent);
	cancel_release(&cancel);
	buf_release(&data);
	free(file);
	s3_client_free(c);
}

static void test_cancel_in_backoff(void **state)
{
	cancel_multipart("backoff");
}

static void test_cancel_in_part(void **state)
{
	cancel_multipart("part");
}

static void test_presign_and_virtual_host(void **state)
{
	struct s3_opts o = {
		.endpoint = "https://S3.Example.com:443/", .region = "eu-west-1", .bucket = "bkt",
		.access_key = "AKID", .secret_key = "secretsecret", .virtual_host = true,
	};
	struct s3_client *c = NULL;
	struct err e = { 0 };
	char *url = NULL;

	assert_int_equal(s3_client_new(&c, &o, &e), 0);
	assert_int_equal(s3_presign(c, "GET", "a b/c", 3600, &url, &e), 0);
	assert_true(str_starts_with(url, "https://bkt.s3.example.com/a%20b/c?X-Amz-Algorithm="
					 "AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F"));
	assert_non_null(strstr(url, "%2Feu-west-1%2Fs3%2Faws4_request&"));
	assert_non_null(strstr(url, "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&"
				    "X-Amz-Signature="));
	free(url);
	assert_int_equal(s3_presign(c, "PUT", "k", 604801, &url, &e), ERR_USAGE);
	s3_client_free(c);

	o.endpoint = "ftp://x";
	assert_int_equal(s3_client_new(&c, &o, &e), ERR_CONFIG);
	o.endpoint = "https://user:pw@x";
	assert_int_equal(s3_client_new(&c, &o, &e), ERR_CONFIG);
	o.endpoint = "https://x";
	o.bucket = "a/b";
	assert_int_equal(s3_client_new(&c, &o, &e), ERR_CONFIG);
	o.bucket = "b";
	o.secret_key = "";
	assert_int_equal(s3_client_new(&c, &o, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "AWS_SECRET_ACCESS_KEY"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_single_and_skip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multipart_abort_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multipart_abort, setup, teardown),
		cmocka_unit_test(test_xml_by_content),
		cmocka_unit_test_setup_teardown(test_complete_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_part, setup, teardown),
		cmocka_unit_test(test_presign_and_virtual_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
