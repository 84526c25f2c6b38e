/* Unit tests for src/store without a server: the S3 XML readers (and what
 * they refuse), the multipart part size, content types, keys, the rule of
 * what is never published, the dir store and publishing into it. The S3
 * client against a scripted server is tests/unit/test_s3.c; the whole store
 * against s3rver is tests/integ/t0610-store.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/sha256.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "store/dir.h"
#include "recipe/outputs.h"
#include "store/publish.h"
#include "store/store.h"
#include "store/upload.h"
#include "store/xml.h"
#include "testutil.h"

#define XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static void test_xml_error(void **state)
{
	static const char doc[] = XML_HEAD "<Error><Code>SignatureDoesNotMatch</Code>"
					   "<Message>The request signature we calculated does not "
					   "match &amp; so on</Message><RequestId>1</RequestId></Error>";
	struct s3_error se;

	assert_true(s3_xml_error(doc, strlen(doc), &se));
	assert_string_equal(se.code, "SignatureDoesNotMatch");
	assert_string_equal(se.message,
			    "The request signature we calculated does not match & so on");
	assert_false(s3_xml_error("<ListBucketResult/>", 19, &se));
	assert_false(s3_xml_error("not xml", 7, &se));
	assert_false(s3_xml_error("", 0, &se));
}

static void test_xml_list_objects(void **state)
{
	static const char page1[] =
		XML_HEAD "<ListBucketResult" S3_NS "><Name>b</Name><Prefix>a/</Prefix>"
		"<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>tok/1+=</NextContinuationToken>"
		"<Contents><Key>a/one</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified>"
		"<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>10</Size></Contents>"
		"<Contents>\n  <Key>a/two words</Key>\n  <Size>123456789012</Size>\n"
		"  <ETag>\"abc-3\"</ETag></Contents></ListBucketResult>";
	static const char page2[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
				    "<Contents><Key>a/z</Key><Size>0</Size></Contents>"
				    "</ListBucketResult>";
	static const char bad_size[] = "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
				       "</Contents></ListBucketResult>";
	static const char no_token[] = "<ListBucketResult><IsTruncated>true</IsTruncated>"
				       "</ListBucketResult>";
	struct s3_entry *v = NULL;
	struct s3_list_page pg;
	struct err e = { 0 };
	size_t n = 0;

	assert_int_equal(s3_xml_list_objects(page1, strlen(page1), &v, &n, &pg, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].key, "a/one");
	assert_int_equal(v[0].size, 10);
	assert_string_equal(v[0].etag, "0123456789abcdef0123456789abcdef");
	assert_string_equal(v[0].last_modified, "2024-01-02T03:04:05.000Z");
	assert_string_equal(v[1].key, "a/two words");
	assert_true(v[1].size == 123456789012ull);
	assert_string_equal(v[1].etag, "abc-3");
	assert_true(pg.truncated);
	assert_string_equal(pg.next_token, "tok/1+=");
	free(pg.next_token);
	assert_int_equal(s3_xml_list_objects(page2, strlen(page2), &v, &n, &pg, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[2].key, "a/z");
	assert_false(pg.truncated);
	assert_null(pg.next_token);
	s3_entries_free(v, n);

	v = NULL;
	n = 0;
	assert_int_equal(s3_xml_list_objects(bad_size, strlen(bad_size), &v, &n, &pg, &e),
			 ERR_FORMAT);
	assert_int_equal(s3_xml_list_objects(no_token, strlen(no_token), &v, &n, &pg, &e),
			 ERR_FORMAT);
	/* An error document is an error, whatever the status. */
	assert_int_equal(s3_xml_list_objects("<Error/>", 8, &v, &n, &pg, &e), ERR_HTTP);
	assert_int_equal(s3_xml_list_objects("<Other/>", 8, &v, &n, &pg, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "<Contents>"));
	s3_entries_free(v, n);
}

static void test_xml_multipart_answers(void **state)
{
	static const char created[] = XML_HEAD "<InitiateMultipartUploadResult" S3_NS
					       "><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2Fk"
					       "</UploadId></InitiateMultipartUploadResult>";
	static const char parts[] =
		"<ListPartsResult><IsTruncated>true</IsTruncated>"
		"<NextPartNumberMarker>2</NextPartNumberMarker>"
		"<Part><PartNumber>1</PartNumber><ETag>\"aa\"</ETag><Size>5242880</Size></Part>"
		"<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag><Size>5242880</Size>"
		"</Part></ListPartsResult>";
	static const char bad_part[] = "<ListPartsResult><Part><PartNumber>10001</PartNumber>"
				       "<Size>1</Size></Part></ListPartsResult>";
	static const char done[] = "<CompleteMultipartUploadResult><ETag>\"d41d-3\"</ETag>"
				   "</CompleteMultipartUploadResult>";
	static const char failed[] = "<Error><Code>InvalidPart</Code><Message>One or more parts "
				     "could not be found</Message></Error>";
	struct s3_part *v = NULL;
	struct s3_error se;
	struct err e = { 0 };
	unsigned next;
	size_t n = 0;
	char *id = NULL, etag[80];

	assert_int_equal(s3_xml_upload_id(created, strlen(created), &id, &e), 0);
	assert_string_equal(id, "VXBsb2Fk");
	free(id);
	assert_int_equal(s3_xml_upload_id("<InitiateMultipartUploadResult/>", 32, &id, &e),
			 ERR_FORMAT);
	assert_null(id);

	assert_int_equal(s3_xml_list_parts(parts, strlen(parts), &v, &n, &next, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(next, 2);
	assert_int_equal(v[0].number, 1);
	assert_string_equal(v[0].etag, "aa");
	assert_string_equal(v[1].etag, "bb");
	assert_int_equal(v[1].size, 5242880);
	assert_int_equal(s3_xml_list_parts(bad_part, strlen(bad_part), &v, &n, &next, &e),
			 ERR_FORMAT);
	free(v);

	assert_int_equal(s3_xml_complete(done, strlen(done), etag, sizeof(etag), &se, &e), 0);
	assert_string_equal(etag, "d41d-3");
	/* S3 may answer 200 and put the error in the body. */
	assert_int_equal(s3_xml_complete(failed, strlen(failed), etag, sizeof(etag), &se, &e),
			 ERR_HTTP);
	assert_string_equal(se.code, "InvalidPart");
	assert_non_null(strstr(e.msg, "InvalidPart: One or more parts"));
}

static void test_xml_refusals(void **state)
{
	static const char laughs[] =
		"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
		"<Error><Code>&lol2;</Code></Error>";
	static const char external[] = "<!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
				       "<Error><Code>&x;</Code></Error>";
	struct s3_xml *x = NULL;
	struct s3_error se;
	struct err e = { 0 };
	struct buf deep = BUF_INIT;

	assert_int_equal(s3_xml_parse(laughs, strlen(laughs), "t", &x, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "document type"));
	assert_false(s3_xml_error(laughs, strlen(laughs), &se));
	assert_int_equal(s3_xml_parse(external, strlen(external), "t", &x, &e), ERR_FORMAT);
	assert_int_equal(s3_xml_parse("<a><b></a>", 10, "t", &x, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "not XML"));
	assert_int_equal(s3_xml_parse("<a/><b/>", 8, "t", &x, &e), ERR_FORMAT);
	assert_int_equal(s3_xml_parse("<p:a/>", 6, "t", &x, &e), ERR_FORMAT); /* unbound prefix */

	for (int i = 0; i < S3_XML_MAX_DEPTH + 1; i++)
		buf_puts(&deep, "<d>");
	for (int i = 0; i < S3_XML_MAX_DEPTH + 1; i++)
		buf_puts(&deep, "</d>");
	assert_int_equal(s3_xml_parse(deep.data, deep.len, "t", &x, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "nested too deep"));
	buf_release(&deep);

	/* A namespace prefix that is bound is read as the plain name. */
	assert_int_equal(s3_xml_parse("<s:Error xmlns:s=\"urn:x\"><s:Code> C </s:Code></s:Error>",
				      55, "t", &x, &e),
			 0);
	assert_string_equal(s3_xml_name(s3_xml_root(x)), "Error");
	assert_string_equal(s3_xml_child_text(s3_xml_root(x), "Code"), "C");
	assert_null(s3_xml_child_text(s3_xml_root(x), "Message"));
	assert_int_equal(s3_xml_count(s3_xml_root(x)), 1);
	assert_non_null(s3_xml_nth(s3_xml_root(x), 0));
	assert_null(s3_xml_nth(s3_xml_root(x), 1));
	s3_xml_free(x);
}

static void test_part_size(void **state)
{
	const uint64_t MiB = 1024 * 1024;
	uint64_t sizes[] = { 0, 1, 6 * MiB, 1024 * MiB, 100 * 1024 * MiB,
			     (uint64_t)5 * 1024 * 1024 * MiB };

	assert_true(s3_part_size(1024 * MiB, 0) == 5 * MiB);
	assert_true(s3_part_size(1024 * MiB, 8 * MiB) == 8 * MiB);
	/* 100 GiB: 5 MiB parts would be 20,480 of them; 11 MiB makes 9,310. */
	assert_true(s3_part_size(100 * 1024 * MiB, 5 * MiB) == 11 * MiB);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t p = s3_part_size(sizes[i], 8 * MiB);

		assert_true(p >= 5 * MiB);
		assert_true(p % MiB == 0);
		assert_true((sizes[i] + p - 1) / p <= 10000);
		assert_true(p <= 5 * 1024 * MiB);
	}
	assert_string_equal(s3_content_type("samples/a.PNG"), "image/png");
	assert_string_equal(s3_content_type("result.json"), "application/json");
	assert_string_equal(s3_content_type("lora.safetensors"), "application/octet-stream");
}

static void test_keys(void **state)
{
	static const char *const good[] = { "a", "jobs/j1/lora.safetensors", "a b/c~d",
					    "\xc3\xa9t\xc3\xa9/x", NULL };
	static const char *const bad[] = { "", "/abs", "a//b", "a/./b", "../x", "a/..",
					   "a/", "tab\there", "\xff\xfe", "x/.ferry-mark", NULL };
	struct err e = { 0 };
	char long_key[1100];

	for (const char *const *k = good; *k; k++)
		assert_int_equal(store_check_key(*k, &e), 0);
	for (const char *const *k = bad; *k; k++)
		assert_int_equal(store_check_key(*k, &e), ERR_USAGE);
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(store_check_key(long_key, &e), ERR_USAGE);
}

static void test_never_published(void **state)
{
	static const char *const never[] = {
		"config.yaml", "my_lora/config.yaml", "config.yml", ".env", "sub/.env",
		"env", ".env.local", "secrets.env", "samples/1.png.part", ".ferry-done",
		"a/.ferry-pull/x.safetensors", "optimizer.pt", "my_lora/optimizer.pt", NULL,
	};
	static const char *const published[] = {
		"my_lora.safetensors", "samples/1.png", "my_lora/my_lora_000500.safetensors",
		"environment.txt", "config.yaml.txt", "part", "notes.partial", "optimizer.pt.txt",
		"log.txt", NULL,
	};
	struct publish_opts po = { .private_file = recipe_output_private };
	struct publish_opts bare = { .with_optimizer = true };
	const char *why;

	for (const char *const *p = never; *p; p++) {
		why = NULL;
		assert_true(publish_skipped(&po, *p, &why));
		assert_non_null(why);
	}
	for (const char *const *p = published; *p; p++)
		assert_false(publish_skipped(&po, *p, &why));
	po.with_optimizer = true;
	assert_false(publish_skipped(&po, "optimizer.pt", &why));
	assert_true(publish_skipped(&po, "config.yaml", &why));
	/* Without the caller's rule, store knows nothing of trainers' files. */
	assert_false(publish_skipped(&bare, "config.yaml", &why));
	assert_true(publish_skipped(&bare, ".ferry-pulled/x", &why));
}

static void test_dir_store(void **state)
{
	char *src = tu_mkdtemp("store-src"), *root = tu_mkdtemp("store-root");
	char *file = fsx_join(src, "f.bin"), *back = fsx_join(src, "back/f.bin"), *url;
	char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
	struct dir_put_result res;
	struct s3_entry *v = NULL;
	struct err e = { 0 };
	struct buf data = BUF_INIT;
	size_t n = 0;
	uint64_t size = 0;

	for (int i = 0; i < 100000; i++)
		buf_putc(&data, (char)(i * 7));
	tu_write_file(src, "f.bin", data.data, data.len);
	sha256_hex(data.data, data.len, want);

	assert_int_equal(dir_store_put(root, file, "x/y/f.bin", &res, &e), 0);
	assert_false(res.skipped);
	assert_int_equal(res.size, 100000);
	assert_string_equal(res.sha256, want);
	assert_int_equal(dir_store_put(root, file, "x/y/f.bin", &res, &e), 0);
	assert_true(res.skipped);
	assert_int_equal(dir_store_put(root, file, "x/z", &res, &e), 0);
	assert_int_equal(dir_store_put(root, file, "xa", &res, &e), 0);
	/* A staging file a crash left behind is no object. */
	tu_write_text(root, "x/" DIR_STORE_STAGING "crashed", "half");

	assert_int_equal(dir_store_list(root, "x/", &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].key, "x/y/f.bin");
	assert_string_equal(v[1].key, "x/z");
	assert_int_equal(v[0].size, 100000);
	assert_int_equal(strlen(v[0].last_modified), 20);
	s3_entries_free(v, n);
	assert_int_equal(dir_store_list(root, "", &v, &n, &e), 0);
	assert_int_equal(n, 3);
	s3_entries_free(v, n);

	assert_int_equal(dir_store_get(root, "x/y/f.bin", back, &size, &e), 0);
	assert_int_equal(size, 100000);
	assert_int_equal(sha256_file(back, got, NULL, &e), 0);
	assert_string_equal(got, want);
	assert_int_equal(dir_store_get(root, "nope", back, &size, &e), ERR_NOTFOUND);

	url = dir_store_url("/tmp/a b", "k/\xc3\xa9");
	assert_string_equal(url, "file:///tmp/a%20b/k/%C3%A9");
	free(url);

	assert_int_equal(dir_store_remove(root, "x/y/f.bin", &e), 0);
	assert_int_equal(dir_store_remove(root, "x/y/f.bin", &e), ERR_NOTFOUND);
	{
		char *gone = fsx_join(root, "x/y");
		struct stat st;

		assert_int_not_equal(stat(gone, &st), 0); /* the emptied folder went too */
		free(gone);
	}
	assert_int_equal(dir_store_list(root, "", &v, &n, &e), 0);
	assert_int_equal(n, 2);
	s3_entries_free(v, n);

	assert_int_equal(fsx_remove_tree(src, NULL), 0);
	assert_int_equal(fsx_remove_tree(root, NULL), 0);
	buf_release(&data);
	free(file);
	free(back);
	free(src);
	free(root);
}

static void test_publish_to_dir(void **state)
{
	char *job = tu_mkdtemp("publish-job"), *root = tu_mkdtemp("publish-root");
	char *manifest = fsx_join(root, "jobs/j/result.json");
	struct publish_opts po = { .dir = job, .prefix = "jobs/j/",
				   .private_file = recipe_output_private };
	struct config *cfg = config_new();
	struct store *s = NULL;
	struct buf text = BUF_INIT;
	struct err e = { 0 };
	json_t *res = NULL, *stored = NULL;

	tu_write_text(job, "lora.safetensors", "weights");
	tu_write_text(job, "samples/1.png", "png");
	tu_write_text(job, "config.yaml", "hf_token: secret");
	tu_write_text(job, "optimizer.pt", "state");
	tu_write_text(job, "result.json", "{\"stale\": true}");
	assert_int_equal(config_set(cfg, "store.dir", root, CONFIG_SRC_FLAG, &e), 0);
	assert_int_equal(store_open(&s, cfg, "dir", NULL, &e), 0);
	assert_int_equal(publish_dir(s, &po, &res, &e), 0);

	tu_expect_json(json_object_get(res, "skipped"),
		       "[{\"path\": \"config.yaml\", \"reason\": \"the trainer's expanded config, "
		       "which may hold secrets\"}, {\"path\": \"optimizer.pt\", \"reason\": \"the "
		       "optimizer state (published only with with_optimizer)\"}, {\"path\": "
		       "\"result.json\", \"reason\": \"the key of ferry's own result.json\"}]");
	assert_int_equal(json_array_size(json_object_get(res, "files")), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(res, "files"), 0), "key")),
			    "jobs/j/lora.safetensors");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(res, "files"), 1), "url_kind")),
			    "file");
	assert_string_equal(json_string_value(json_object_get(res, "prefix")), "jobs/j");
	/* What was uploaded is what was returned. */
	assert_int_equal(fsx_read_file(manifest, &text, 0, &e), 0);
	assert_int_equal(json_parse(text.data, text.len, "result.json", &stored, &e), 0);
	assert_true(json_equal(stored, res));
	{
		char *cfgcopy = fsx_join(root, "jobs/j/config.yaml");

		assert_int_not_equal(access(cfgcopy, F_OK), 0);
		free(cfgcopy);
	}
	json_decref(stored);
	json_decref(res);
	po.prefix = "";
	assert_int_equal(publish_dir(s, &po, &res, &e), ERR_USAGE);
	assert_null(res);

	buf_release(&text);
	store_close(s);
	config_free(cfg);
	assert_int_equal(fsx_remove_tree(job, NULL), 0);
	assert_int_equal(fsx_remove_tree(root, NULL), 0);
	free(manifest);
	free(job);
	free(root);
}

static void test_open_s3_config(void **state)
{
	struct config *cfg = config_new();
	struct store *s = NULL;
	struct err e = { 0 };

	/* Nothing set: the s3 store says what to set. */
	assert_int_equal(store_open(&s, cfg, "s3", NULL, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "R2_ACCOUNT_ID"));
	assert_int_equal(config_set(cfg, "r2.account_id", "0123abcd", CONFIG_SRC_FILE, &e), 0);
	assert_int_equal(store_open(&s, cfg, "s3", NULL, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "R2_BUCKET_NAME"));
	assert_int_equal(config_set(cfg, "r2.bucket", "arts", CONFIG_SRC_FILE, &e), 0);
	assert_int_equal(store_open(&s, cfg, "s3", NULL, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"));
	assert_int_equal(config_set(cfg, "r2.access_key_id", "id", CONFIG_SRC_FILE, &e), 0);
	assert_int_equal(config_set(cfg, "r2.secret_access_key", "secretkey", CONFIG_SRC_FILE, &e),
			 0);
	assert_int_equal(store_open(&s, cfg, "s3", NULL, &e), 0);
	assert_string_equal(store_location(s), "s3://arts");
	store_close(s);
	/* --bucket wins over the settings. */
	assert_int_equal(store_open(&s, cfg, "s3", "other", &e), 0);
	assert_string_equal(store_location(s), "s3://other");
	store_close(s);
	assert_int_equal(config_set(cfg, "s3.parallel", "9", CONFIG_SRC_FILE, &e), 0);
	assert_int_equal(store_open(&s, cfg, "s3", NULL, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "s3.parallel"));
	assert_int_equal(store_open(&s, cfg, "ftp", NULL, &e), ERR_USAGE);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml_error),
		cmocka_unit_test(test_xml_list_objects),
		cmocka_unit_test(test_xml_multipart_answers),
		cmocka_unit_test(test_xml_refusals),
		cmocka_unit_test(test_part_size),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_never_published),
		cmocka_unit_test(test_dir_store),
		cmocka_unit_test(test_publish_to_dir),
		cmocka_unit_test(test_open_s3_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
