/* Unit tests for the pack manifest: building it from checked facts, its
 * stable bytes, SHA256SUMS, and every rejection of the strict parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_util.h"
#include "common/sha256.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"
#include "dataset/manifest.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* A checked dataset made by hand: what ds_check would leave behind. */
static struct ds_dataset *fake_dataset(void)
{
	static const struct {
		const char *rel;
		enum ds_role role;
		uint64_t size;
		const char *sha;
		bool usable;
		enum img_format fmt;
	} files[] = {
		{ "a.jpg", DS_ROLE_IMAGE, 1000, HEX_A, true, IMG_JPEG },
		{ "a.txt", DS_ROLE_CAPTION, 12, HEX_B, true, IMG_NONE },
		{ "broken.png", DS_ROLE_IMAGE, 5, HEX_C, false, IMG_NONE },
		{ "dataset_info.json", DS_ROLE_INFO, 40, HEX_C, true, IMG_NONE },
		{ "notes.md", DS_ROLE_OTHER, 7, "", false, IMG_NONE },
		{ "sub/b.webp", DS_ROLE_IMAGE, 2000, HEX_B, true, IMG_WEBP },
		{ "\xc3\xbc b.png", DS_ROLE_IMAGE, 3000, HEX_C, true, IMG_PNG },
	};
	struct ds_dataset *ds = xcalloc(1, sizeof(*ds));

	ds->root = xstrdup("/somewhere/private/alice/set");
	ds->nfiles = sizeof(files) / sizeof(files[0]);
	ds->files = xcalloc(ds->nfiles, sizeof(*ds->files));
	for (size_t i = 0; i < ds->nfiles; i++) {
		struct ds_file *f = &ds->files[i];

		f->rel = xstrdup(files[i].rel);
		f->abs = xasprintf("%s/%s", ds->root, f->rel);
		f->role = files[i].role;
		f->size = files[i].size;
		f->mtime_ns = 1700000000123456789LL;
		f->usable = files[i].usable;
		f->examined = true;
		memcpy(f->sha256, files[i].sha, strlen(files[i].sha) + 1);
		f->img.format = files[i].fmt;
		f->img.width = 640;
		f->img.height = 480;
		f->pair = -1;
	}
	ds->nfindings = 3;
	ds->findings = xcalloc(3, sizeof(*ds->findings));
	ds->findings[0] = (struct ds_finding){ DS_SEV_ERROR, "corrupt_image", xstrdup("broken.png"),
					       xstrdup("bad") };
	ds->findings[1] = (struct ds_finding){ DS_SEV_WARNING, "small_image", xstrdup("a.jpg"),
					       xstrdup("small") };
	ds->findings[2] = (struct ds_finding){ DS_SEV_WARNING, "small_image",
					       xstrdup("sub/b.webp"), xstrdup("small") };
	ds->ready = false;
	ds->images = 3;
	ds->captioned = 1;
	ds->errors = 1;
	ds->warnings = 2;
	return ds;
}

static char *build_text(const struct ds_dataset *ds)
{
	struct buf b = BUF_INIT;
	struct err e = { 0 };

	assert_int_equal(ds_manifest_build(ds, &b, &e), 0);
	return buf_detach(&b, NULL);
}

static void test_build_and_parse(void **state)
{
	struct ds_dataset *ds = fake_dataset();
	char *text = build_text(ds), *again;
	struct ds_manifest *m = NULL;
	struct err e = { 0 };
	json_t *j = NULL;

	/* Only usable files, in path order; no root, no times, no owners. */
	assert_null(strstr(text, "broken.png\""));
	assert_null(strstr(text, "notes.md"));
	assert_null(strstr(text, "alice"));
	assert_null(strstr(text, "1700000000"));
	assert_non_null(strstr(text, "\n  \"check\": {\n"));
	assert_int_equal(ds_manifest_parse(text, strlen(text), &m, &e), 0);
	assert_int_equal(m->nfiles, 5);
	assert_string_equal(m->files[0].path, "a.jpg");
	assert_int_equal(m->files[0].role, DS_ROLE_IMAGE);
	assert_int_equal(m->files[0].format, IMG_JPEG);
	assert_int_equal(m->files[0].width, 640);
	assert_int_equal(m->files[0].height, 480);
	assert_string_equal(m->files[0].sha256, HEX_A);
	assert_string_equal(m->files[1].path, "a.txt");
	assert_int_equal(m->files[1].role, DS_ROLE_CAPTION);
	assert_string_equal(m->files[2].path, "dataset_info.json");
	assert_int_equal(m->files[2].role, DS_ROLE_INFO);
	assert_string_equal(m->files[3].path, "sub/b.webp");
	assert_string_equal(m->files[4].path, "\xc3\xbc b.png");
	assert_int_equal(m->bytes, 1000 + 12 + 40 + 2000 + 3000);
	assert_int_equal(m->images, 3);
	assert_int_equal(m->captions, 1);
	assert_false(m->ready);
	assert_int_equal(m->errors, 1);
	assert_int_equal(m->warnings, 2);
	assert_int_equal(m->captioned, 1);
	assert_int_equal(ds_manifest_find(m, "sub/b.webp"), 3);
	assert_int_equal(ds_manifest_find(m, "a.jpg"), 0);
	assert_int_equal(ds_manifest_find(m, "broken.png"), -1);
	assert_int_equal(ds_manifest_find(m, "zzz"), -1);

	/* Finding counts per code. */
	assert_int_equal(json_parse(text, strlen(text), "m", &j, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(json_object_get(j, "check"), "findings"), "small_image")), 2);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(json_object_get(j, "check"), "findings"), "corrupt_image")), 1);
	json_decref(j);

	/* The same facts give the same bytes, whatever the times say. */
	for (size_t i = 0; i < ds->nfiles; i++)
		ds->files[i].mtime_ns = 42;
	again = build_text(ds);
	assert_string_equal(text, again);

	free(again);
	free(text);
	ds_manifest_free(m);
	ds_free(ds);
}

static void test_build_needs_check(void **state)
{
	struct ds_dataset *ds = fake_dataset();
	struct buf b = BUF_INIT;
	struct err e = { 0 };

	ds->files[1].sha256[0] = '\0';
	assert_int_equal(ds_manifest_build(ds, &b, &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "a.txt"));
	buf_release(&b);
	ds_free(ds);
}

static void test_sums(void **state)
{
	struct ds_dataset *ds = fake_dataset();
	char *text = build_text(ds);
	struct ds_manifest *m = NULL;
	struct buf sums = BUF_INIT;
	struct err e = { 0 };

	assert_int_equal(ds_manifest_parse(text, strlen(text), &m, &e), 0);
	ds_manifest_sums(m, &sums);
	assert_string_equal(sums.data,
			    HEX_A "  a.jpg\n" HEX_B "  a.txt\n" HEX_C "  dataset_info.json\n"
			    HEX_B "  sub/b.webp\n" HEX_C "  \xc3\xbc b.png\n");
	/* coreutils' escaping for a name with a backslash. */
	free(m->files[1].path);
	m->files[1].path = xstrdup("a\\b.txt");
	buf_reset(&sums);
	ds_manifest_sums(m, &sums);
	assert_non_null(strstr(sums.data, "\n\\" HEX_B "  a\\\\b.txt\n"));
	buf_release(&sums);
	ds_manifest_free(m);
	free(text);
	ds_free(ds);
}

/* ---- rejections: edit a valid manifest one way, expect a message ---- */

static json_t *valid_json(void)
{
	struct ds_dataset *ds = fake_dataset();
	char *text = build_text(ds);
	struct err e = { 0 };
	json_t *j = NULL;

	assert_int_equal(json_parse(text, strlen(text), "m", &j, &e), 0);
	free(text);
	ds_free(ds);
	return j;
}

static json_t *file_obj(json_t *j, size_t i)
{
	return json_array_get(json_object_get(j, "files"), i);
}

static void expect_reject_text(const char *text, size_t len, const char *what)
{
	struct ds_manifest *m = NULL;
	struct err e = { 0 };
	int r = ds_manifest_parse(text, len, &m, &e);

	if (!r || !strstr(e.msg, what))
		fail_msg("expected rejection mentioning '%s', got %d: '%s'", what, r, e.msg);
	assert_null(m);
}

static void expect_reject(json_t *j, const char *what)
{
	struct buf b = BUF_INIT;

	json_to_buf(j, 1, &b);
	expect_reject_text(b.data, b.len, what);
	buf_release(&b);
	json_decref(j);
}

static void set_path(json_t *j, size_t i, const char *path)
{
	json_object_set_new(file_obj(j, i), "path", json_string(path));
}

static void test_reject_document(void **state)
{
	static const char dup[] = "{\"format\":\"ferry-dataset\",\"format\":\"x\"}";
	json_t *j;
	char *big;

	expect_reject_text("{", 1, "invalid JSON");
	expect_reject_text("[]", 2, "must be a JSON object");
	expect_reject_text(dup, strlen(dup), "duplicate");
	big = xcalloc(1, DS_MANIFEST_MAX + 2);
	expect_reject_text(big, DS_MANIFEST_MAX + 1, "MiB allowed");
	free(big);

	j = valid_json();
	json_object_set_new(j, "owner", json_string("alice"));
	expect_reject(j, "unknown field 'owner'");
	j = valid_json();
	json_object_del(j, "format");
	expect_reject(j, "missing field 'format'");
	j = valid_json();
	json_object_set_new(j, "format", json_string("tarball"));
	expect_reject(j, "format is not");
	j = valid_json();
	json_object_set_new(j, "format", json_integer(1));
	expect_reject(j, "'format' must be a string");
	j = valid_json();
	json_object_set_new(j, "version", json_integer(2));
	expect_reject(j, "version 2 is not supported");
	j = valid_json();
	json_object_set_new(j, "version", json_string("1"));
	expect_reject(j, "'version' must be a whole number");
	j = valid_json();
	json_object_del(j, "files");
	expect_reject(j, "'files' must be present and a list");
	j = valid_json();
	json_object_set_new(j, "files", json_object());
	expect_reject(j, "'files' must be present and a list");
}

static void test_reject_files(void **state)
{
	json_t *j;

	j = valid_json();
	json_array_set_new(json_object_get(j, "files"), 0, json_string("a.jpg"));
	expect_reject(j, "files[0] must be an object");
	j = valid_json();
	json_object_set_new(file_obj(j, 1), "mtime", json_integer(5));
	expect_reject(j, "files[1]: unknown field 'mtime'");
	j = valid_json();
	json_object_del(file_obj(j, 0), "path");
	expect_reject(j, "files[0]: missing field 'path'");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "path", json_integer(3));
	expect_reject(j, "'path' must be a string");

	/* Unsafe paths. */
	static const char *const bad_paths[] = {
		"/etc/passwd.jpg", "../evil.jpg", "sub/../../evil.jpg", "./a.jpg", "a//b.jpg",
		"", "sub/", "a\x01.jpg", "new\nline.jpg", ".",
	};
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		j = valid_json();
		set_path(j, 0, bad_paths[i]);
		expect_reject(j, "not a safe relative path");
	}
	{
		char *long_path = xcalloc(1, DS_MANIFEST_PATH_MAX + 8);

		memset(long_path, 'a', DS_MANIFEST_PATH_MAX);
		memcpy(long_path + DS_MANIFEST_PATH_MAX, ".jpg", 5);
		j = valid_json();
		set_path(j, 0, long_path);
		expect_reject(j, "not a safe relative path");
		free(long_path);
	}
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "path", json_stringn("a\0.jpg", 6));
	expect_reject(j, "NUL");

	/* Hashes, sizes, roles. */
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "sha256", json_string("abc"));
	expect_reject(j, "64 lowercase hex");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "sha256", json_string(
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	expect_reject(j, "64 lowercase hex");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "sha256", json_string(HEX_A "0"));
	expect_reject(j, "64 lowercase hex");
	j = valid_json();
	json_object_del(file_obj(j, 0), "sha256");
	expect_reject(j, "missing field 'sha256'");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "size", json_integer(-1));
	expect_reject(j, "'size' is negative");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "size", json_real(10.5));
	expect_reject(j, "'size' must be a whole number");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "size", json_string("1000"));
	expect_reject(j, "'size' must be a whole number");
	j = valid_json();
	json_object_del(file_obj(j, 0), "size");
	expect_reject(j, "missing field 'size'");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "role", json_string("script"));
	expect_reject(j, "role 'script'");
	j = valid_json();
	json_object_del(file_obj(j, 1), "role");
	expect_reject(j, "missing field 'role'");

	/* Image facts belong to images, and must agree with the name. */
	j = valid_json();
	json_object_del(file_obj(j, 0), "width");
	expect_reject(j, "missing field 'width'");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "height", json_integer(0));
	expect_reject(j, "width and height must be positive");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "width", json_integer(1LL << 40));
	expect_reject(j, "'width' is too large");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "format", json_string("gif"));
	expect_reject(j, "format 'gif'");
	j = valid_json();
	json_object_set_new(file_obj(j, 0), "format", json_string("png"));
	expect_reject(j, "does not match the file name");
	j = valid_json();
	json_object_set_new(file_obj(j, 1), "width", json_integer(5));
	expect_reject(j, "belong to images only");
	j = valid_json();
	set_path(j, 1, "a.text");
	expect_reject(j, "must end in .txt");
	j = valid_json();
	set_path(j, 2, "info.json");
	expect_reject(j, "role info belongs to dataset_info.json");
	j = valid_json();
	json_object_set_new(file_obj(j, 1), "path", json_string("dataset_info.json"));
	expect_reject(j, "must end in .txt");

	/* Order and duplicates. */
	j = valid_json();
	set_path(j, 1, "a.jpg");
	json_object_set_new(file_obj(j, 1), "role", json_string("image"));
	json_object_set_new(file_obj(j, 1), "format", json_string("jpeg"));
	json_object_set_new(file_obj(j, 1), "width", json_integer(1));
	json_object_set_new(file_obj(j, 1), "height", json_integer(1));
	expect_reject(j, "duplicate path 'a.jpg'");
	j = valid_json();
	{
		json_t *files = json_object_get(j, "files"), *first = json_incref(file_obj(j, 0));

		json_array_remove(files, 0);
		json_array_append_new(files, first);
	}
	expect_reject(j, "out of order");
}

static void test_reject_totals_and_check(void **state)
{
	json_t *j;

#define TOTALS(j) json_object_get(j, "totals")
#define CHECK(j) json_object_get(j, "check")
	j = valid_json();
	json_object_del(j, "totals");
	expect_reject(j, "missing field 'totals'");
	j = valid_json();
	json_object_set_new(j, "totals", json_array());
	expect_reject(j, "'totals' must be an object");
	j = valid_json();
	json_object_set_new(TOTALS(j), "files", json_integer(6));
	expect_reject(j, "files is 6 but 5 are listed");
	j = valid_json();
	json_object_set_new(TOTALS(j), "bytes", json_integer(1));
	expect_reject(j, "bytes is 1");
	j = valid_json();
	json_object_set_new(TOTALS(j), "images", json_integer(2));
	expect_reject(j, "disagree with the files");
	j = valid_json();
	json_object_set_new(TOTALS(j), "captions", json_integer(-2));
	expect_reject(j, "'captions' is negative");
	j = valid_json();
	json_object_set_new(TOTALS(j), "extra", json_integer(1));
	expect_reject(j, "totals: unknown field 'extra'");

	j = valid_json();
	json_object_del(j, "check");
	expect_reject(j, "missing field 'check'");
	j = valid_json();
	json_object_del(CHECK(j), "ready");
	expect_reject(j, "missing field 'ready'");
	j = valid_json();
	json_object_set_new(CHECK(j), "ready", json_integer(1));
	expect_reject(j, "'ready' must be true or false");
	j = valid_json();
	json_object_set_new(CHECK(j), "ready", json_true());
	expect_reject(j, "'ready' disagrees with 'errors'");
	j = valid_json();
	json_object_set_new(CHECK(j), "warnings", json_integer(5));
	expect_reject(j, "findings add up to 3");
	j = valid_json();
	json_object_set_new(CHECK(j), "images", json_integer(4));
	expect_reject(j, "images is 4 but the manifest lists 3");
	j = valid_json();
	json_object_set_new(CHECK(j), "captioned", json_integer(9));
	expect_reject(j, "more images captioned");
	j = valid_json();
	json_object_set_new(json_object_get(CHECK(j), "findings"), "Bad-Code", json_integer(1));
	expect_reject(j, "is not a finding code");
	j = valid_json();
	json_object_set_new(json_object_get(CHECK(j), "findings"), "small_image", json_integer(0));
	expect_reject(j, "counts 0");
	j = valid_json();
	json_object_set_new(CHECK(j), "findings", json_array());
	expect_reject(j, "'findings' must be an object");
	j = valid_json();
	json_object_set_new(CHECK(j), "user", json_string("alice"));
	expect_reject(j, "check: unknown field 'user'");
#undef TOTALS
#undef CHECK
}

static void test_empty_manifest(void **state)
{
	static const char text[] =
		"{\"format\":\"ferry-dataset\",\"version\":1,\"files\":[],"
		"\"totals\":{\"files\":0,\"bytes\":0,\"images\":0,\"captions\":0},"
		"\"check\":{\"ready\":true,\"images\":0,\"captioned\":0,\"errors\":0,"
		"\"warnings\":0,\"findings\":{}}}";
	struct ds_manifest *m = NULL;
	struct err e = { 0 };

	assert_int_equal(ds_manifest_parse(text, strlen(text), &m, &e), 0);
	assert_int_equal(m->nfiles, 0);
	assert_int_equal(ds_manifest_find(m, "a"), -1);
	ds_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_parse),
		cmocka_unit_test(test_build_needs_check),
		cmocka_unit_test(test_sums),
		cmocka_unit_test(test_reject_document),
		cmocka_unit_test(test_reject_files),
		cmocka_unit_test(test_reject_totals_and_check),
		cmocka_unit_test(test_empty_manifest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
