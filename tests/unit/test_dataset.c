/* Unit tests for scanning and checking datasets: roles, pairing, skipping,
 * every rule that does not need a hand-made corrupt file, the verdict cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"
#include "testutil.h"

static char *root, *cache;

static void write_jpeg(const char *rel, int w, int h, int seed)
{
	tu_write_jpeg(root, rel, w, h, seed);
}

static void write_text(const char *rel, const char *text)
{
	tu_write_text(root, rel, text);
}

static int setup(void **state)
{
	char *base = tu_mkdtemp("ds");

	root = fsx_join(base, "set");
	cache = fsx_join(base, "cache");
	assert_int_equal(fsx_mkdir_p(root, 0755, NULL), 0);
	free(base);
	return 0;
}

static int teardown(void **state)
{
	char *base = xstrdup(root);

	*strrchr(base, '/') = '\0';
	fsx_remove_tree(base, NULL);
	free(base);
	free(root);
	free(cache);
	return 0;
}

static void opts(struct ds_check_opts *o)
{
	tu_check_opts(o, cache);
}

static const struct ds_finding *finding(const struct ds_dataset *ds, const char *code,
					const char *path)
{
	for (size_t i = 0; i < ds->nfindings; i++)
		if (!strcmp(ds->findings[i].code, code) && !strcmp(ds->findings[i].path, path))
			return &ds->findings[i];
	return NULL;
}

static struct ds_dataset *check(const struct ds_check_opts *o)
{
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };

	assert_int_equal(ds_open(&ds, root, &e), 0);
	assert_int_equal(ds_check(ds, o, &e), 0);
	return ds;
}

static void test_layout_and_rules(void **state)
{
	struct ds_check_opts o;
	struct ds_dataset *ds;
	int a, cap;

	write_jpeg("a.jpg", 96, 96, 1);
	write_text("a.txt", "a photo of ohwx");
	write_jpeg("sub/b.JPEG", 96, 96, 2);
	write_text("sub/b.txt", "  \n");
	write_jpeg("c.jpg", 96, 96, 3);             /* no caption */
	write_text("d.txt", "orphan ohwx");         /* no image */
	write_jpeg("e.jpg", 32, 32, 4);             /* small */
	write_text("e.txt", "a cat");               /* lacks trigger */
	write_jpeg("f.jpg", 96, 96, 1);             /* same bytes as a.jpg */
	write_text("f.txt", "[trigger] again");
	write_jpeg(".hidden/x.jpg", 96, 96, 9);
	write_jpeg("__MACOSX/y.jpg", 96, 96, 9);
	write_jpeg("._z.jpg", 96, 96, 9);
	write_text("notes.md", "ignored");
	write_text("dataset_info.json", "{\"name\":\"t\",\"triggerWords\":[\"ohwx\"]}");

	opts(&o);
	ds = check(&o);
	/* skipped names are not even listed */
	assert_int_equal(ds_find(ds, ".hidden/x.jpg"), -1);
	assert_int_equal(ds_find(ds, "__MACOSX/y.jpg"), -1);
	assert_int_equal(ds_find(ds, "._z.jpg"), -1);
	assert_int_equal(ds->files[ds_find(ds, "notes.md")].role, DS_ROLE_OTHER);
	a = ds_find(ds, "a.jpg");
	cap = ds_find(ds, "a.txt");
	assert_int_equal(ds->files[a].pair, cap);
	assert_int_equal(ds->files[cap].pair, a);
	assert_int_equal(ds->files[a].img.width, 96);
	assert_string_equal(ds->trigger, "ohwx");

	assert_non_null(finding(ds, "missing_caption", "c.jpg"));
	assert_non_null(finding(ds, "empty_caption", "sub/b.txt"));
	assert_non_null(finding(ds, "orphan_caption", "d.txt"));
	assert_non_null(finding(ds, "missing_trigger", "e.txt"));
	assert_null(finding(ds, "missing_trigger", "a.txt"));
	assert_null(finding(ds, "missing_trigger", "f.txt")); /* [trigger] token */
	assert_non_null(finding(ds, "small_image", "e.jpg"));
	assert_null(finding(ds, "small_image", "a.jpg"));
	assert_non_null(strstr(finding(ds, "duplicate_image", "f.jpg")->message, "a.jpg"));
	assert_null(finding(ds, "duplicate_image", "a.jpg"));
	assert_true(ds->ready);
	assert_int_equal(ds->errors, 0);
	assert_int_equal(ds->images, 5);    /* a, b, c, e, f */
	assert_int_equal(ds->captioned, 3); /* a, e, f: b empty, c none */
	/* findings are sorted by path; dataset-wide ones would come first */
	for (size_t i = 1; i < ds->nfindings; i++)
		assert_true(strcmp(ds->findings[i - 1].path, ds->findings[i].path) <= 0);
	ds_free(ds);

	/* a --trigger flag beats dataset_info.json */
	o.trigger = "zzkw";
	ds = check(&o);
	assert_non_null(finding(ds, "missing_trigger", "a.txt"));
	ds_free(ds);

	o.trigger = NULL;
	o.min_images = 6;
	ds = check(&o);
	assert_false(ds->ready);
	assert_non_null(finding(ds, "too_few_images", ""));
	assert_string_equal(ds->findings[0].code, "too_few_images");
	ds_free(ds);
	o.min_images = 1;
	o.max_images = 2;
	ds = check(&o);
	assert_non_null(finding(ds, "too_many_images", ""));
	ds_free(ds);
}

static void test_errors(void **state)
{
	struct ds_check_opts o;
	struct ds_dataset *ds;
	char *outside, *link, *jpg, *png;

	opts(&o);
	write_text("zero.png", "");
	write_text("text.jpg", "this is not an image at all");
	write_text("text.txt", "the caption of a broken image");
	write_text("latin.txt", "caf\xe9");
	write_jpeg("latin.jpg", 96, 96, 11);
	write_text("dataset_info.json", "{broken");
	/* a JPEG under a PNG name */
	jpg = fsx_join(root, "a.jpg");
	png = fsx_join(root, "renamed.png");
	assert_int_equal(fsx_copy_file(jpg, png, 0644, NULL), 0);
	/* links: one leading out, one staying in */
	outside = xasprintf("%s/../outside.jpg", root);
	assert_int_equal(fsx_copy_file(jpg, outside, 0644, NULL), 0);
	link = fsx_join(root, "out.jpg");
	assert_int_equal(symlink(outside, link), 0);
	free(link);
	link = fsx_join(root, "in.jpg");
	assert_int_equal(symlink("a.jpg", link), 0);

	ds = check(&o);
	assert_non_null(finding(ds, "empty_file", "zero.png"));
	assert_non_null(finding(ds, "not_an_image", "text.jpg"));
	assert_non_null(finding(ds, "caption_not_utf8", "latin.txt"));
	assert_non_null(finding(ds, "bad_dataset_info", "dataset_info.json"));
	assert_non_null(finding(ds, "wrong_extension", "renamed.png"));
	assert_non_null(finding(ds, "symlink_outside", "out.jpg"));
	assert_null(finding(ds, "symlink_outside", "in.jpg"));
	/* the inside link is a usable image, and a duplicate of a.jpg */
	assert_true(ds->files[ds_find(ds, "in.jpg")].symlink);
	assert_non_null(finding(ds, "duplicate_image", "in.jpg"));
	assert_false(ds->ready);
	assert_false(ds->files[ds_find(ds, "zero.png")].usable);
	assert_true(ds->files[ds_find(ds, "latin.jpg")].usable);
	/* the caption of a refused image is not packed, and is no orphan */
	assert_false(ds->files[ds_find(ds, "text.txt")].usable);
	assert_null(finding(ds, "orphan_caption", "text.txt"));
	ds_free(ds);
	free(outside);
	free(link);
	free(jpg);
	free(png);
}

static void test_verdict_cache(void **state)
{
	struct ds_check_opts o;
	struct ds_dataset *ds;
	char *path = fsx_join(root, "a.jpg");
	struct timespec ts[2] = { { 1000000, 0 }, { 1000000, 0 } };
	char sha[65];

	opts(&o);
	tu_settle();
	ds = check(&o); /* check always decodes, and records verdicts */
	assert_true(ds->decoded > 3);
	memcpy(sha, ds->files[ds_find(ds, "a.jpg")].sha256, sizeof(sha));
	ds_free(ds);

	o.reuse_verdicts = true;
	ds = check(&o);
	assert_int_equal(ds->decoded, 0);
	assert_string_equal(ds->files[ds_find(ds, "a.jpg")].sha256, sha);
	assert_int_equal(ds->files[ds_find(ds, "a.jpg")].img.width, 96);
	/* facts from the cache give the same findings */
	assert_non_null(finding(ds, "caption_not_utf8", "latin.txt"));
	assert_non_null(finding(ds, "empty_file", "zero.png"));
	ds_free(ds);

	/* a changed mtime means a new verdict for that file only (and for
	 * in.jpg, the link to it from test_errors) */
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	ds = check(&o);
	assert_int_equal(ds->decoded, 2);
	ds_free(ds);
	free(path);
}

static void test_verdict_staleness(void **state)
{
	struct ds_check_opts o;
	struct ds_dataset *ds;
	char *cap = fsx_join(root, "a.txt");
	struct stat before;
	struct timespec ts[2];
	int i;

	opts(&o);
	o.reuse_verdicts = true;
	tu_settle();
	ds_free(check(&o));

	/* Same size, mtime put back (as tar -x or cp -p would): ctime tells. */
	assert_int_equal(stat(cap, &before), 0);
	tu_write_text(root, "a.txt", "A PHOTO OF OHWX");
	ts[0] = before.st_atim;
	ts[1] = before.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, cap, ts, 0), 0);
	ds = check(&o);
	i = ds_find(ds, "a.txt");
	assert_string_equal(ds->files[i].text, "A PHOTO OF OHWX");
	ds_free(ds);

	/* A file written moments before its check is looked at again next time. */
	ds = check(&o);
	assert_string_equal(ds->files[ds_find(ds, "a.txt")].text, "A PHOTO OF OHWX");
	ds_free(ds);

	/* Verdicts made under one pixel limit do not hold under another. */
	tu_settle();
	o.reuse_verdicts = false;
	o.max_pixels = 100;
	ds = check(&o);
	assert_non_null(finding(ds, "decompression_bomb", "a.jpg"));
	ds_free(ds);
	o.reuse_verdicts = true;
	o.max_pixels = 100000000;
	ds = check(&o);
	assert_null(finding(ds, "decompression_bomb", "a.jpg"));
	assert_true(ds->decoded > 3);
	ds_free(ds);
	o.max_pixels = 100;
	ds = check(&o);
	assert_non_null(finding(ds, "decompression_bomb", "a.jpg"));
	ds_free(ds);
	free(cap);
}

static void test_more_rules(void **state)
{
	char *dir = tu_mkdtemp("rules"), *link;
	char *big = xmalloc(DS_CAPTION_MAX + 2);
	struct ds_check_opts o;
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };

	tu_write_jpeg(dir, "pair.jpg", 96, 96, 1);
	tu_write_jpeg(dir, "pair.jpeg", 96, 96, 2);
	tu_write_text(dir, "pair.txt", "two images, one caption");
	tu_write_jpeg(dir, "long.jpg", 96, 96, 3);
	memset(big, 'a', DS_CAPTION_MAX + 1);
	big[DS_CAPTION_MAX + 1] = '\0';
	tu_write_text(dir, "long.txt", big);
	tu_write_jpeg(dir, "sub/in.jpg", 96, 96, 4);
	link = fsx_join(dir, "dangling.jpg");
	assert_int_equal(symlink("nowhere.jpg", link), 0);
	free(link);
	link = fsx_join(dir, "linked-dir");
	assert_int_equal(symlink("sub", link), 0);
	free(link);

	opts(&o);
	o.cache_dir = NULL;
	o.max_file_bytes = 1000; /* every JPEG here is bigger */
	assert_int_equal(ds_open(&ds, dir, &e), 0);
	assert_int_equal(ds_check(ds, &o, &e), 0);
	assert_non_null(finding(ds, "shared_caption", "pair.txt"));
	assert_non_null(finding(ds, "caption_too_long", "long.txt"));
	assert_non_null(finding(ds, "broken_symlink", "dangling.jpg"));
	assert_non_null(finding(ds, "symlink_dir", "linked-dir"));
	assert_non_null(strstr(finding(ds, "large_file", "sub/in.jpg")->message, "MiB"));
	/* the linked folder was not walked: its image counts once */
	assert_int_equal(ds_find(ds, "linked-dir/in.jpg"), -1);
	assert_false(ds->ready);
	ds_free(ds);
	fsx_remove_tree(dir, NULL);
	free(dir);
	free(big);
}

/* A check whose token is set stops between files: ERR_CANCELLED, with a
 * message, and no error for an optional NULL err. */
static void test_check_cancelled(void **state)
{
	struct ds_check_opts o;
	struct ds_dataset *ds = NULL;
	struct cancel c;
	struct err e = { 0 };

	opts(&o);
	cancel_init(&c);
	cancel_set(&c);
	o.cancel = &c;
	assert_int_equal(ds_open(&ds, root, &e), 0);
	assert_int_equal(ds_check(ds, &o, &e), ERR_CANCELLED);
	assert_non_null(strstr(e.msg, "checking was cancelled"));
	assert_int_equal(ds_check(ds, &o, NULL), ERR_CANCELLED);
	ds_free(ds);
	cancel_release(&c);
}

static void test_missing_root(void **state)
{
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };

	assert_int_equal(ds_open(&ds, "/nonexistent/dataset", &e), ERR_IO);
	assert_non_null(strstr(e.msg, "/nonexistent/dataset"));
	assert_null(ds);
}

static void test_trigger_match(void **state)
{
	assert_true(ds_caption_has_trigger("photo of OHWX", "ohwx"));
	assert_true(ds_caption_has_trigger("photo of [trigger]", "ohwx"));
	assert_false(ds_caption_has_trigger("photo of ohwxman", "ohwx"));
	assert_false(ds_caption_has_trigger("photo", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_and_rules),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_verdict_cache),
		cmocka_unit_test(test_verdict_staleness),
		cmocka_unit_test(test_more_rules),
		cmocka_unit_test(test_check_cancelled),
		cmocka_unit_test(test_missing_root),
		cmocka_unit_test(test_trigger_match),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
