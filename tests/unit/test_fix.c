/* Unit tests for `fix`: caption normalisation, Latin-1 and UTF-16
 * conversion, trigger insertion, image planning from check facts, and whole
 * runs on small generated datasets (to a new folder, dry run, in place). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/fix.h"
#include "testutil.h"

static char *base;

static int setup(void **state)
{
	base = tu_mkdtemp("fix");
	if (VIPS_INIT("test_fix"))
		return -1;
	vips_cache_set_max(0);
	return 0;
}

static int teardown(void **state)
{
	fsx_remove_tree(base, NULL);
	free(base);
	vips_thread_shutdown();
	return 0;
}

/* ---- captions ---- */

static void check_norm(const char *in, const char *want)
{
	char *got = fix_caption_normalize(in);

	assert_string_equal(got, want);
	free(got);
}

static void test_normalize(void **state)
{
	check_norm("a photo", "a photo");
	check_norm("\xef\xbb\xbf" "a photo\r\n", "a photo");
	check_norm("  a\tphoto\r\nof  ohwx \n\n", "a photo of ohwx");
	check_norm("line one\r\nline two\rthree", "line one line two three");
	check_norm("bell\x07 and\x7f del", "bell and del");
	check_norm("caf\xc3\xa9  cr\xc3\xa8me", "caf\xc3\xa9 cr\xc3\xa8me"); /* UTF-8 kept whole */
	check_norm(" \t\r\n ", "");
	check_norm("", "");
	check_norm("\xef\xbb\xbf", "");
}

static void test_to_utf8(void **state)
{
	struct err e = { 0 };
	const char *from = NULL;
	char *out = NULL;

	/* Latin-1 letters are the same in Windows-1252. */
	assert_int_equal(fix_caption_to_utf8("caf\xe9 cr\xe8me", 10, &out, &from, &e), 0);
	assert_string_equal(out, "caf\xc3\xa9 cr\xc3\xa8me");
	assert_string_equal(from, "WINDOWS-1252");
	free(out);
	/* 0x93/0x94 are curly quotes in Windows-1252, controls in Latin-1. */
	assert_int_equal(fix_caption_to_utf8("\x93hi\x94 \x80", 6, &out, &from, &e), 0);
	assert_string_equal(out, "\xe2\x80\x9chi\xe2\x80\x9d \xe2\x82\xac");
	free(out);
	/* 0x81 is not in Windows-1252: Latin-1 takes it (U+0081). */
	assert_int_equal(fix_caption_to_utf8("a\x81z", 3, &out, &from, &e), 0);
	assert_string_equal(from, "ISO-8859-1");
	assert_string_equal(out, "a\xc2\x81z");
	free(out);
	/* UTF-16 with a byte-order mark. */
	assert_int_equal(fix_caption_to_utf8("\xff\xfeh\0i\0\xe9\0", 8, &out, &from, &e), 0);
	assert_string_equal(from, "UTF-16");
	assert_string_equal(out, "hi\xc3\xa9");
	free(out);
	/* NUL bytes do not cut the text short. */
	assert_int_equal(fix_caption_to_utf8("a\0b\xe9", 4, &out, &from, &e), 0);
	assert_string_equal(out, "a b\xc3\xa9");
	free(out);
}

static void check_trigger(const char *caption, const char *trigger, const char *want)
{
	char *got = fix_caption_with_trigger(caption, trigger);

	if (!want) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_trigger(void **state)
{
	check_trigger("a photo of a man", "ohwx", "ohwx, a photo of a man");
	check_trigger("a photo of OHWX man", "ohwx", NULL);      /* any case */
	check_trigger("ohwx, a photo", "ohwx", NULL);
	check_trigger("a photo of ohwxman", "ohwx", "ohwx, a photo of ohwxman"); /* not a word */
	check_trigger("a photo of [trigger]", "ohwx", NULL);    /* the token counts */
	check_trigger("a photo", NULL, NULL);
	check_trigger("a photo", "", NULL);
	check_trigger("", "ohwx", "ohwx");
	check_trigger("sks dog on grass", "sks dog", NULL);     /* several words */
}

/* ---- planning ---- */

static struct ds_file fact(const char *rel, enum img_format fmt, unsigned w, unsigned h)
{
	struct ds_file f;

	memset(&f, 0, sizeof(f));
	f.rel = (char *)rel;
	f.role = DS_ROLE_IMAGE;
	f.size = 1000;
	f.img.format = fmt;
	f.img.width = w;
	f.img.height = h;
	f.img.bit_depth = 8;
	f.img.orientation = 1;
	return f;
}

static void test_plan(void **state)
{
	struct ds_file f = fact("a.jpg", IMG_JPEG, 1024, 768);
	unsigned w, h;

	assert_int_equal(fix_plan_image(&f, 2048, 16 << 20), 0);
	assert_int_equal(fix_plan_image(&f, 1024, 16 << 20), 0); /* exactly max_side */
	assert_int_equal(fix_plan_image(&f, 1000, 16 << 20), FIX_RESIZE);
	fix_planned_size(&f.img, 512, &w, &h);
	assert_int_equal(w, 512);
	assert_int_equal(h, 384);

	f.img.orientation = 6;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_ROTATE);
	fix_planned_size(&f.img, 512, &w, &h); /* turned: 768 wide, 1024 high */
	assert_int_equal(w, 384);
	assert_int_equal(h, 512);
	f.img.orientation = 3;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_ROTATE);
	f.img.orientation = 1;

	f.img.alpha = true;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_FLATTEN);
	f.img.alpha = false;
	f.img.cmyk = true;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_SRGB);
	f.img.cmyk = false;
	f.img.gray = true;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_RGB);
	f.img.gray = false;
	f.img.bit_depth = 16;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_8BIT);
	f.img.bit_depth = 8;
	f.img.animated = true;
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_FIRST_FRAME);
	f.img.animated = false;

	/* Too many bytes for its size: encode again, but only when nothing
	 * else re-encodes it anyway. */
	f.size = 20 << 20;
	assert_int_equal(fix_plan_image(&f, 2048, 16 << 20), FIX_REENCODE);
	assert_int_equal(fix_plan_image(&f, 2048, 0), 0);
	assert_int_equal(fix_plan_image(&f, 1000, 16 << 20), FIX_RESIZE);
	f.size = 1000;

	/* A name that lies: rename only, the bytes stay. */
	f.rel = "a.png";
	assert_int_equal(fix_plan_image(&f, 2048, 0), FIX_RENAME);
	assert_int_equal(fix_plan_image(&f, 2048, 0) & FIX_PIXELS, 0);
	f.rel = "a.JPEG";
	assert_int_equal(fix_plan_image(&f, 2048, 0), 0);

	/* Broken images are never planned. */
	f.status = ERR_CORRUPT;
	assert_int_equal(fix_plan_image(&f, 10, 0), 0);
}

/* ---- whole runs ---- */

static char *path_in(const char *dir, const char *rel)
{
	return fsx_join(dir, rel);
}

static char *read_text(const char *dir, const char *rel)
{
	char *p = path_in(dir, rel);
	struct buf b = BUF_INIT;

	assert_int_equal(fsx_read_file(p, &b, 0, NULL), 0);
	free(p);
	return buf_detach(&b, NULL);
}

/* "REMOVED/rel", for one call at a time (the buffer is reused). */
static const char *in_removed(const char *removed, const char *rel)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", removed, rel);
	return path;
}

static bool exists(const char *dir, const char *rel)
{
	char *p = path_in(dir, rel);
	struct stat st;
	bool r = lstat(p, &st) == 0;

	free(p);
	return r;
}

/* A noisy image: `bands` 1 (grey), 3 (RGB) or 4 (RGBA); seed varies pixels. */
static void write_image(const char *dir, const char *rel, const char *fmt, int w, int h,
			int bands, int seed, int orientation)
{
	VipsImage *noise[4] = { NULL }, *joined = NULL, *px = NULL, *tagged = NULL;
	void *data = NULL;
	size_t len = 0;
	char *p = path_in(dir, rel);

	for (int b = 0; b < bands; b++)
		assert_int_equal(vips_gaussnoise(&noise[b], w, h, "mean", 100.0 + seed * 7 + b * 20,
						 "sigma", 30.0, "seed", seed * 10 + b, NULL), 0);
	assert_int_equal(vips_bandjoin(noise, &joined, bands, NULL), 0);
	assert_int_equal(vips_cast_uchar(joined, &px, NULL), 0);
	assert_int_equal(vips_copy(px, &tagged, "interpretation",
				   bands < 3 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
				   NULL), 0);
	if (orientation > 1)
		vips_image_set_int(tagged, VIPS_META_ORIENTATION, orientation);
	if (!strcmp(fmt, "jpeg"))
		assert_int_equal(vips_jpegsave_buffer(tagged, &data, &len, "Q", 90, NULL), 0);
	else if (!strcmp(fmt, "png"))
		assert_int_equal(vips_pngsave_buffer(tagged, &data, &len, NULL), 0);
	else
		assert_int_equal(vips_webpsave_buffer(tagged, &data, &len, NULL), 0);
	assert_int_equal(fsx_mkdir_parent(p, 0755, NULL), 0);
	assert_int_equal(fsx_write_atomic(p, data, len, 0644, NULL), 0);
	g_free(data);
	for (int b = 0; b < bands; b++)
		g_object_unref(noise[b]);
	g_object_unref(joined);
	g_object_unref(px);
	g_object_unref(tagged);
	free(p);
}

static void copy_file(const char *dir, const char *from, const char *to)
{
	char *a = path_in(dir, from), *b = path_in(dir, to);

	assert_int_equal(fsx_copy_file(a, b, 0644, NULL), 0);
	free(a);
	free(b);
}

static void image_size(const char *dir, const char *rel, int *w, int *h, int *bands)
{
	char *p = path_in(dir, rel);
	struct buf b = BUF_INIT;
	VipsImage *im;

	assert_int_equal(fsx_read_file(p, &b, 0, NULL), 0);
	im = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	assert_non_null(im);
	*w = im->Xsize;
	*h = im->Ysize;
	*bands = im->Bands;
	g_object_unref(im);
	buf_release(&b);
	free(p);
}

/* The sample: every kind of repair fix knows, at small sizes. */
static char *make_dataset(const char *name)
{
	char *dir = fsx_join(base, name);

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	write_image(dir, "a.jpg", "jpeg", 80, 60, 3, 1, 1);
	tu_write_file(dir, "a.txt", "ohwx,  a photo\r\nof a cat\r\n", 26);
	write_image(dir, "big.png", "png", 200, 100, 3, 2, 1);
	tu_write_file(dir, "big.txt", "ohwx big\n", 9);
	write_image(dir, "alpha.png", "png", 60, 60, 4, 3, 1);
	tu_write_file(dir, "alpha.txt", "caf\xe9 au lait", 12);       /* Latin-1, no trigger */
	write_image(dir, "turned.jpg", "jpeg", 80, 40, 3, 4, 6);
	write_image(dir, "grey.jpg", "jpeg", 50, 50, 1, 5, 1);
	tu_write_file(dir, "grey.txt", "ohwx in grey\n", 13);
	write_image(dir, "lies.png", "jpeg", 40, 40, 3, 6, 1);     /* JPEG named .png */
	tu_write_file(dir, "lies.txt", "ohwx lies\n", 10);
	write_image(dir, "same.jpg", "jpeg", 40, 40, 3, 7, 1);
	write_image(dir, "same.webp", "webp", 40, 40, 3, 8, 1);    /* shares a stem */
	tu_write_file(dir, "same.txt", "ohwx twins\n", 11);
	copy_file(dir, "a.jpg", "z_dup.jpg");
	tu_write_file(dir, "z_dup.txt", "ohwx dup\n", 9);
	tu_write_file(dir, "orphan.txt", "ohwx nobody\n", 12);
	tu_write_file(dir, "broken.jpg", "\xff\xd8\xff\xe0 not really", 15);
	tu_write_file(dir, "notes.md", "# notes\n", 8);
	tu_write_file(dir, "dataset_info.json", "{\"triggerWords\":[\"ohwx\"]}\n", 26);
	return dir;
}

static const struct fix_action *find_action(const struct fix_result *res, const char *path,
					    const char *action)
{
	for (size_t i = 0; i < res->nactions; i++)
		if (!strcmp(res->actions[i].path, path) && !strcmp(res->actions[i].action, action))
			return &res->actions[i];
	return NULL;
}

static void fix_opts_for(struct fix_opts *o, const char *out)
{
	memset(o, 0, sizeof(*o));
	o->check.min_images = 1;
	o->check.max_images = 1000;
	o->check.resolution = 16;
	o->check.max_side = 100;
	o->check.max_pixels = 100000000;
	o->check.max_file_bytes = 16u << 20;
	o->check.threads = 2;
	o->out = out;
	o->default_caption = "a picture";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sha256 of every file under dir, as "rel hash\n" lines. */
static void tree_hashes(const char *dir, const char *rel, struct buf *out)
{
	char *p = *rel ? path_in(dir, rel) : xstrdup(dir);
	DIR *d = opendir(p);
	struct dirent *de;
	struct strv names = STRV_INIT;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&names, de->d_name);
	closedir(d);
	qsort(names.v, names.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < names.n; i++) {
		char *r = *rel ? xasprintf("%s/%s", rel, names.v[i]) : xstrdup(names.v[i]);
		char *full = path_in(dir, r), hex[SHA256_HEX_LEN + 1];
		struct stat st;

		assert_int_equal(lstat(full, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			tree_hashes(dir, r, out);
		} else {
			assert_int_equal(sha256_file(full, hex, NULL, NULL), 0);
			buf_printf(out, "%s %s\n", r, hex);
		}
		free(full);
		free(r);
	}
	strv_release(&names);
	free(p);
}

static void test_run_to_folder(void **state)
{
	char *dir = make_dataset("in"), *out = fsx_join(base, "out");
	struct buf before = BUF_INIT, after = BUF_INIT;
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };
	const struct fix_action *a;
	char *t;
	int w, h, bands;

	tree_hashes(dir, "", &before);
	fix_opts_for(&o, out);
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);

	/* The original is untouched. */
	tree_hashes(dir, "", &after);
	assert_string_equal(before.data, after.data);

	/* Images. */
	assert_non_null(find_action(&res, "a.jpg", "copied"));
	assert_non_null(find_action(&res, "big.png", "resized"));
	image_size(out, "big.png", &w, &h, &bands);
	assert_int_equal(w, 100);
	assert_int_equal(h, 50);
	assert_non_null(find_action(&res, "alpha.png", "flattened"));
	image_size(out, "alpha.png", &w, &h, &bands);
	assert_int_equal(bands, 3);
	assert_non_null(find_action(&res, "turned.jpg", "rotated"));
	image_size(out, "turned.jpg", &w, &h, &bands);
	assert_int_equal(w, 40);
	assert_int_equal(h, 80);
	assert_non_null(find_action(&res, "grey.jpg", "converted_rgb"));
	image_size(out, "grey.jpg", &w, &h, &bands);
	assert_int_equal(bands, 3);
	a = find_action(&res, "lies.png", "renamed");
	assert_non_null(a);
	assert_non_null(strstr(a->detail, "lies.jpg"));
	assert_true(exists(out, "lies.jpg"));
	assert_false(exists(out, "lies.png"));
	assert_true(exists(out, "lies.txt"));
	/* Two images, one stem: the second gets its own name and caption. */
	a = find_action(&res, "same.webp", "renamed");
	assert_non_null(a);
	assert_true(exists(out, "same.jpg"));
	assert_true(exists(out, "same-2.webp"));
	t = read_text(out, "same-2.txt");
	assert_string_equal(t, "ohwx twins\n");
	free(t);
	assert_non_null(find_action(&res, "z_dup.jpg", "dropped_duplicate"));
	assert_false(exists(out, "z_dup.jpg"));
	assert_false(exists(out, "z_dup.txt"));
	assert_non_null(find_action(&res, "broken.jpg", "dropped_corrupt"));
	assert_false(exists(out, "broken.jpg"));
	assert_non_null(find_action(&res, "orphan.txt", "dropped_orphan_caption"));
	assert_false(exists(out, "orphan.txt"));
	assert_non_null(find_action(&res, "notes.md", "skipped"));
	assert_false(exists(out, "notes.md"));
	assert_true(exists(out, "dataset_info.json"));

	/* Captions. */
	assert_non_null(find_action(&res, "a.txt", "caption_normalized"));
	t = read_text(out, "a.txt");
	assert_string_equal(t, "ohwx, a photo of a cat\n");
	free(t);
	assert_non_null(find_action(&res, "alpha.txt", "caption_converted_utf8"));
	assert_non_null(find_action(&res, "alpha.txt", "trigger_inserted"));
	t = read_text(out, "alpha.txt");
	assert_string_equal(t, "ohwx, caf\xc3\xa9 au lait\n");
	free(t);
	assert_non_null(find_action(&res, "turned.jpg", "caption_filled_default"));
	t = read_text(out, "turned.txt");
	assert_string_equal(t, "ohwx, a picture\n");
	free(t);
	/* A caption that needed nothing is copied byte for byte. */
	t = read_text(out, "grey.txt");
	assert_string_equal(t, "ohwx in grey\n");
	free(t);

	/* Nothing left behind, and the result is clean. */
	{
		char *tmpname = xasprintf("%s.tmp-%ld", out, (long)getpid());
		struct stat st;

		assert_int_not_equal(stat(tmpname, &st), 0);
		free(tmpname);
	}
	assert_non_null(res.checked);
	assert_true(res.ready);
	assert_int_equal(res.failures, 0);
	assert_int_equal(res.checked->warnings, 0);
	assert_int_equal(res.checked->errors, 0);
	assert_int_equal(res.checked->images, 8);
	assert_int_equal(res.checked->captioned, 8);
	/* Actions come in path order. */
	for (size_t i = 1; i < res.nactions; i++)
		assert_true(strcmp(res.actions[i - 1].path, res.actions[i].path) <= 0);
	{
		json_t *j = fix_result_json(&res);

		assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "summary"),
								    "dropped_duplicate")), 1);
		assert_true(json_is_true(json_object_get(json_object_get(j, "check"), "ready")));
		json_decref(j);
	}
	fix_result_release(&res);

	/* A second run into the same, now non-empty, folder is refused. */
	assert_int_equal(fix_run(dir, &o, &res, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "not empty"));
	fix_result_release(&res);

	/* An output inside the dataset is refused. */
	{
		char *inside = fsx_join(dir, "fixed");

		o.out = inside;
		assert_int_equal(fix_run(dir, &o, &res, &e), ERR_USAGE);
		assert_non_null(strstr(e.msg, "inside"));
		assert_false(exists(dir, "fixed"));
		fix_result_release(&res);
		free(inside);
	}
	buf_release(&before);
	buf_release(&after);
	free(dir);
	free(out);
}

static void test_dry_run(void **state)
{
	char *dir = make_dataset("dry"), *out = fsx_join(base, "dry-out");
	struct buf before = BUF_INIT, after = BUF_INIT;
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };

	tree_hashes(dir, "", &before);
	fix_opts_for(&o, out);
	o.dry_run = true;
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_true(res.dry_run);
	assert_null(res.checked);
	assert_non_null(find_action(&res, "big.png", "resized"));
	assert_non_null(strstr(find_action(&res, "big.png", "resized")->detail, "100x50"));
	assert_non_null(find_action(&res, "z_dup.jpg", "dropped_duplicate"));
	assert_non_null(find_action(&res, "alpha.txt", "trigger_inserted"));
	assert_false(exists(base, "dry-out"));
	tree_hashes(dir, "", &after);
	assert_string_equal(before.data, after.data);
	fix_result_release(&res);
	buf_release(&before);
	buf_release(&after);
	free(dir);
	free(out);
}

static void test_in_place(void **state)
{
	char *dir = make_dataset("inplace"), *removed, *a_path = path_in(dir, "a.jpg");
	char a_before[SHA256_HEX_LEN + 1], a_after[SHA256_HEX_LEN + 1];
	char *grey_txt_before = read_text(dir, "grey.txt");
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };
	size_t n;

	assert_int_equal(sha256_file(a_path, a_before, NULL, NULL), 0);
	fix_opts_for(&o, NULL);
	o.in_place = true;
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_true(res.ready);
	assert_non_null(res.removed);
	assert_non_null(strstr(res.removed, "/.ferry-removed/"));
	removed = res.removed;
	n = strlen(dir);
	assert_memory_equal(removed, dir, n);
	removed += n + 1;

	/* Unchanged files stay where they are, byte for byte. */
	assert_int_equal(sha256_file(a_path, a_after, NULL, NULL), 0);
	assert_string_equal(a_before, a_after);
	assert_non_null(find_action(&res, "a.jpg", "kept"));
	/* Replaced and dropped originals are kept aside. */
	assert_true(exists(dir, "big.png"));
	{
		assert_true(exists(dir, in_removed(removed, "big.png")));
		assert_true(exists(dir, in_removed(removed, "z_dup.jpg")));
		assert_true(exists(dir, in_removed(removed, "broken.jpg")));
		assert_true(exists(dir, in_removed(removed, "lies.png")));
		assert_true(exists(dir, in_removed(removed, "a.txt")));
		assert_false(exists(dir, in_removed(removed, "grey.txt"))); /* unchanged: not moved */
	}
	assert_false(exists(dir, "z_dup.jpg"));
	assert_false(exists(dir, "broken.jpg"));
	assert_false(exists(dir, "lies.png"));
	assert_true(exists(dir, "lies.jpg"));
	assert_true(exists(dir, "notes.md")); /* not ours: left alone */
	{
		char *t = read_text(dir, "grey.txt");
		assert_string_equal(t, grey_txt_before);
		free(t);
	}
	{
		char *stage = xasprintf(".ferry-fix-%ld", (long)getpid());
		assert_false(exists(dir, stage));
		free(stage);
	}
	assert_int_equal(res.checked->warnings, 0);
	fix_result_release(&res);

	/* A second run has nothing left to do. */
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_null(res.removed);
	for (size_t i = 0; i < res.nactions; i++)
		assert_true(!strcmp(res.actions[i].action, "kept") ||
			    !strcmp(res.actions[i].action, "skipped"));
	fix_result_release(&res);
	free(a_path);
	free(grey_txt_before);
	free(dir);
}

/* Black at half opacity, 16 bits per channel, with an ICC profile: flattened
 * onto white it is mid-grey (the alpha is scaled, not clipped). */
static void test_flatten_16bit(void **state)
{
	char *dir = fsx_join(base, "deep"), *out = fsx_join(base, "deep-out");
	VipsImage *black = NULL, *alpha = NULL, *rgba = NULL, *deep = NULL, *im = NULL;
	VipsImage *parts[2];
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };
	void *data = NULL;
	size_t len = 0;
	double *px;
	int n = 0;
	char *p;

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	assert_int_equal(vips_black(&black, 64, 48, "bands", 3, NULL), 0);
	assert_int_equal(vips_black(&alpha, 64, 48, NULL), 0);
	{
		VipsImage *half = NULL;

		assert_int_equal(vips_linear1(alpha, &half, 1.0, 32768.0, NULL), 0);
		g_object_unref(alpha);
		alpha = half;
	}
	parts[0] = black;
	parts[1] = alpha;
	assert_int_equal(vips_bandjoin(parts, &rgba, 2, NULL), 0);
	assert_int_equal(vips_cast_ushort(rgba, &deep, NULL), 0);
	assert_int_equal(vips_copy(deep, &im, "interpretation", VIPS_INTERPRETATION_RGB16, NULL), 0);
	assert_int_equal(vips_pngsave_buffer(im, &data, &len, "bitdepth", 16,
					     "profile", "srgb", NULL), 0);
	tu_write_file(dir, "deep.png", data, len);
	tu_write_file(dir, "deep.txt", "a grey card\n", 12);
	g_free(data);

	fix_opts_for(&o, out);
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_non_null(find_action(&res, "deep.png", "flattened"));
	assert_non_null(find_action(&res, "deep.png", "to_8bit"));
	fix_result_release(&res);

	p = path_in(out, "deep.png");
	g_object_unref(im);
	im = vips_image_new_from_file(p, NULL);
	assert_non_null(im);
	assert_int_equal(im->Bands, 3);
	assert_int_equal(im->BandFmt, VIPS_FORMAT_UCHAR);
	assert_int_equal(vips_getpoint(im, &px, &n, 10, 10, NULL), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		assert_in_range((int)px[i], 120, 136);
	g_free(px);
	g_object_unref(im);
	g_object_unref(deep);
	g_object_unref(rgba);
	g_object_unref(alpha);
	g_object_unref(black);
	free(p);
	free(dir);
	free(out);
}

/* ---- links ---- */

static bool is_regular(const char *dir, const char *rel)
{
	char *p = path_in(dir, rel);
	struct stat st;
	bool r = lstat(p, &st) == 0 && S_ISREG(st.st_mode);

	free(p);
	return r;
}

static bool is_link(const char *dir, const char *rel)
{
	char *p = path_in(dir, rel);
	struct stat st;
	bool r = lstat(p, &st) == 0 && S_ISLNK(st.st_mode);

	free(p);
	return r;
}

static void make_link(const char *dir, const char *target, const char *rel)
{
	char *p = path_in(dir, rel);

	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void hash_of(const char *dir, const char *rel, char hex[SHA256_HEX_LEN + 1])
{
	char *p = path_in(dir, rel);

	assert_int_equal(sha256_file(p, hex, NULL, NULL), 0);
	free(p);
}

/* a.png -> real/x.png: the link comes first in path order, so it is the
 * duplicate that is kept and real/x.png the one dropped. Its caption and
 * dataset_info.json are links too. */
static char *make_linked_dataset(const char *name)
{
	char *dir = fsx_join(base, name);

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	write_image(dir, "real/x.png", "png", 40, 30, 3, 11, 1);
	tu_write_file(dir, "real/x.txt", "ohwx on a link\n", 15);
	make_link(dir, "real/x.png", "a.png");
	make_link(dir, "real/x.txt", "a.txt");
	write_image(dir, "b.jpg", "jpeg", 40, 30, 3, 12, 1);
	tu_write_file(dir, "b.txt", "ohwx b\n", 7);
	tu_write_file(dir, "meta/info.json", "{\"triggerWords\":[\"ohwx\"]}\n", 26);
	make_link(dir, "meta/info.json", "dataset_info.json");
	return dir;
}

static void test_links_become_files(void **state)
{
	char *dir = make_linked_dataset("links"), *out = fsx_join(base, "links-out");
	char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1], *removed, *t;
	const struct fix_action *a;
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };

	hash_of(dir, "real/x.png", want);

	/* To a new folder: regular files with the bytes the links lead to. */
	fix_opts_for(&o, out);
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_true(res.ready);
	assert_non_null(find_action(&res, "real/x.png", "dropped_duplicate"));
	a = find_action(&res, "a.png", "copied");
	assert_non_null(a);
	assert_non_null(a->detail);
	assert_non_null(strstr(a->detail, "symbolic link"));
	assert_true(is_regular(out, "a.png"));
	hash_of(out, "a.png", got);
	assert_string_equal(got, want);
	assert_true(is_regular(out, "a.txt"));
	assert_true(is_regular(out, "dataset_info.json"));
	fix_result_release(&res);

	/* Dry run in place: says the same, moves nothing. */
	fix_opts_for(&o, NULL);
	o.in_place = true;
	o.dry_run = true;
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_non_null(find_action(&res, "a.png", "copied"));
	assert_null(find_action(&res, "a.png", "kept"));
	assert_true(is_link(dir, "a.png"));
	fix_result_release(&res);

	/* In place: the kept links become files, the links go aside with the
	 * duplicate they pointed to, and nothing is left broken. */
	o.dry_run = false;
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_non_null(res.checked);
	for (size_t i = 0; i < res.checked->nfindings; i++)
		assert_string_not_equal(res.checked->findings[i].code, "broken_symlink");
	assert_int_equal(res.checked->errors, 0);
	assert_true(res.ready);
	assert_int_equal(res.failures, 0);
	a = find_action(&res, "a.png", "copied");
	assert_non_null(a);
	assert_non_null(strstr(a->detail, "symbolic link"));
	assert_non_null(find_action(&res, "a.txt", "copied"));
	assert_non_null(find_action(&res, "dataset_info.json", "copied"));
	assert_true(is_regular(dir, "a.png"));
	hash_of(dir, "a.png", got);
	assert_string_equal(got, want);
	assert_true(is_regular(dir, "a.txt"));
	t = read_text(dir, "a.txt");
	assert_string_equal(t, "ohwx on a link\n");
	free(t);
	assert_true(is_regular(dir, "dataset_info.json"));
	assert_true(is_regular(dir, "b.jpg"));
	assert_false(exists(dir, "real/x.png"));
	removed = res.removed + strlen(dir) + 1;
	{
		assert_true(is_link(dir, in_removed(removed, "a.png")));
		assert_true(is_link(dir, in_removed(removed, "a.txt")));
		assert_true(is_link(dir, in_removed(removed, "dataset_info.json")));
		assert_true(is_regular(dir, in_removed(removed, "real/x.png")));
	}
	fix_result_release(&res);

	/* A second run has nothing left to do. */
	assert_int_equal(fix_run(dir, &o, &res, &e), 0);
	assert_null(res.removed);
	for (size_t i = 0; i < res.nactions; i++)
		assert_true(!strcmp(res.actions[i].action, "kept") ||
			    !strcmp(res.actions[i].action, "skipped"));
	fix_result_release(&res);
	free(dir);
	free(out);
}

/* ---- libvips failures in parallel ---- */

#define VF_THREADS 8
#define VF_ROUNDS 6

struct vf_case {
	struct ds_file f;
	bool bad;            /* truncated: must fail */
	const char *says;    /* a word its own reason holds */
	const char *never;   /* a word only another format's reason holds */
	char msg[VF_ROUNDS][1024];
	int rc[VF_ROUNDS];
};

struct vf_run {
	struct vf_case *cases;
	size_t n;
	atomic_size_t next;
};

static void *vf_worker(void *arg)
{
	struct vf_run *run = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&run->next, 1), k = i % run->n, round = i / run->n;
		struct vf_case *c;
		struct buf out = BUF_INIT;
		struct err e = { 0 };
		unsigned w = 0, h = 0;

		if (round >= VF_ROUNDS)
			break;
		c = &run->cases[k];
		c->rc[round] = fix_image(&c->f, FIX_RESIZE, 20, &out, &w, &h, &e);
		memcpy(c->msg[round], e.msg, sizeof(e.msg));
		buf_release(&out);
	}
	vips_thread_shutdown();
	return NULL;
}

/* Truncated JPEGs and PNGs fail in libvips while good images pass, all at
 * once: each failure reports its own file and its own format's reason,
 * never nothing and never another image's. */
static void test_vips_errors_are_each_images_own(void **state)
{
	char *dir = fsx_join(base, "vips-errors");
	struct vf_run run = { 0 };
	pthread_t tids[VF_THREADS];
	size_t n = 48;

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	write_image(dir, "good.jpg", "jpeg", 64, 48, 3, 21, 1);
	write_image(dir, "good.png", "png", 64, 48, 3, 22, 1);
	run.cases = xcalloc(n, sizeof(*run.cases));
	run.n = n;
	for (size_t i = 0; i < n; i++) {
		struct vf_case *c = &run.cases[i];
		int kind = (int)(i % 3); /* 0 JPEG cut short, 1 PNG cut short, 2 good */
		const char *ext = kind == 1 ? "png" : "jpg";
		char *src = path_in(dir, kind == 1 ? "good.png" : "good.jpg");
		struct buf b = BUF_INIT;

		assert_int_equal(fsx_read_file(src, &b, 0, NULL), 0);
		c->f.rel = xasprintf("case-%02zu.%s", i, ext);
		c->f.abs = path_in(dir, c->f.rel);
		c->f.role = DS_ROLE_IMAGE;
		c->f.img.format = kind == 1 ? IMG_PNG : IMG_JPEG;
		c->f.img.width = 64;
		c->f.img.height = 48;
		c->f.img.bit_depth = 8;
		c->f.img.orientation = 1;
		c->bad = kind != 2;
		c->says = kind == 1 ? "png" : "jpeg";
		c->never = kind == 1 ? "jpeg" : "png";
		tu_write_file(dir, c->f.rel, b.data, c->bad ? b.len * 2 / 3 : b.len);
		buf_release(&b);
		free(src);
	}
	atomic_init(&run.next, 0);
	for (int t = 0; t < VF_THREADS; t++)
		assert_int_equal(pthread_create(&tids[t], NULL, vf_worker, &run), 0);
	for (int t = 0; t < VF_THREADS; t++)
		pthread_join(tids[t], NULL);

	for (size_t i = 0; i < n; i++) {
		struct vf_case *c = &run.cases[i];

		for (int r = 0; r < VF_ROUNDS; r++) {
			char low[1024];

			if (!c->bad) {
				assert_int_equal(c->rc[r], 0);
				continue;
			}
			for (size_t k = 0; k < sizeof(low); k++)
				low[k] = (char)((c->msg[r][k] >= 'A' && c->msg[r][k] <= 'Z') ?
						c->msg[r][k] + 32 : c->msg[r][k]);
			if (c->rc[r] != ERR_CORRUPT || !strstr(c->msg[r], c->f.rel) ||
			    !strstr(low, c->says) || strstr(low, c->never) ||
			    strstr(low, "gave no reason"))
				fail_msg("%s, round %d: %d \"%s\"", c->f.rel, r, c->rc[r], c->msg[r]);
			/* The reason is not doubled (another image's copy of it). */
			assert_ptr_equal(strstr(c->msg[r], ": "), strstr(c->msg[r], c->f.rel) +
					 strlen(c->f.rel));
		}
		free(c->f.rel);
		free(c->f.abs);
	}
	free(run.cases);
	free(dir);
}

static void test_usage(void **state)
{
	struct fix_result res;
	struct fix_opts o;
	struct err e = { 0 };
	char *dir = fsx_join(base, "u"), *file = fsx_join(base, "u-file");

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	fix_opts_for(&o, NULL);
	assert_int_equal(fix_run(dir, &o, &res, &e), ERR_USAGE); /* no -o, no --in-place */
	fix_result_release(&res);
	assert_int_equal(fsx_write_atomic(file, "x", 1, 0644, NULL), 0);
	o.out = file;
	assert_int_equal(fix_run(dir, &o, &res, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "not a folder"));
	fix_result_release(&res);
	o.out = "/nonexistent-parent-for-ferry/x";
	assert_int_not_equal(fix_run("/nonexistent-ferry-dataset", &o, &res, &e), 0);
	fix_result_release(&res);
	free(dir);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_to_utf8),
		cmocka_unit_test(test_trigger),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_run_to_folder),
		cmocka_unit_test(test_dry_run),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_flatten_16bit),
		cmocka_unit_test(test_links_become_files),
		cmocka_unit_test(test_vips_errors_are_each_images_own),
		cmocka_unit_test(test_usage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
