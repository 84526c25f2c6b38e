/* Unit tests for pack and unpack: the same files give the same archive
 * whatever their order, times, modes or the locale; the archive cache and
 * -o; a file that changes after the check; a dataset with errors; and every
 * kind of damaged or hostile archive unpack must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "config/config.h"
#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"
#include "dataset/manifest.h"
#include "dataset/pack.h"
#include "testutil.h"

static char *base;

static int setup(void **state)
{
	base = tu_mkdtemp("pack");
	return 0;
}

static int teardown(void **state)
{
	fsx_remove_tree(base, NULL);
	free(base);
	return 0;
}

static char *path_in(const char *dir, const char *rel)
{
	return fsx_join(dir, rel);
}

/* The files these tests pack: 80 x 64 JPEGs. */
static void write_jpeg(const char *dir, const char *rel, int seed)
{
	tu_write_jpeg(dir, rel, 80, 64, seed);
}

/* Age and mode a file: pack must not care. */
static void touch_mode(const char *dir, const char *rel, time_t t, mode_t mode)
{
	char *path = path_in(dir, rel);
	struct timespec ts[2] = { { t, 123 }, { t, 456789 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(chmod(path, mode), 0);
	free(path);
}

static const char *const names[] = {
	"dataset_info.json", "a.jpg", "a.txt", "sub/b.jpg", "sub/b.txt",
	"c d.jpg", "c d.txt", "\xc3\xbc\xc3\xb1\xc3\xae \xe6\x97\xa5\xe6\x9c\xac.jpg",
	"\xc3\xbc\xc3\xb1\xc3\xae \xe6\x97\xa5\xe6\x9c\xac.txt",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void write_one(const char *dir, size_t i)
{
	const char *rel = names[i];

	if (!strcmp(rel, DS_INFO_NAME))
		tu_write_text(dir, rel, "{\"name\":\"t\",\"triggerWords\":[\"ohwx\"]}\n");
	else if (str_ends_with_ci(rel, ".jpg"))
		write_jpeg(dir, rel, (int)i);
	else
		tu_write_text(dir, rel, "a photo of ohwx\n");
}

/* The same dataset; `reverse` writes it in the other order with other
 * times and modes. */
static char *make_dataset(const char *name, bool reverse)
{
	char *dir = path_in(base, name);

	assert_int_equal(fsx_mkdir_p(dir, 0755, NULL), 0);
	for (size_t k = 0; k < NNAMES; k++) {
		size_t i = reverse ? NNAMES - 1 - k : k;

		write_one(dir, i);
		touch_mode(dir, names[i], reverse ? 1000000000 + (time_t)i * 7 : 1700000000,
			   reverse ? 0600 : 0644);
	}
	if (reverse) {
		char *sub = path_in(dir, "sub");

		assert_int_equal(chmod(sub, 0700), 0);
		free(sub);
	}
	tu_settle();
	return dir;
}

static void check_opts(struct ds_check_opts *o, const char *cache)
{
	tu_check_opts(o, cache);
	o->reuse_verdicts = true;
}

static struct ds_dataset *checked(const char *dir, const char *cache)
{
	struct ds_check_opts o;
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };

	check_opts(&o, cache);
	assert_int_equal(ds_open(&ds, dir, &e), 0);
	assert_int_equal(ds_check(ds, &o, &e), 0);
	return ds;
}

static int pack_dir(const char *dir, const char *cache, const char *out, bool force,
		    struct ds_pack_result *res, struct err *e)
{
	struct ds_pack_opts po = { .cache_dir = cache, .out_path = out, .force = force };
	struct ds_dataset *ds = checked(dir, cache);
	int r = ds_pack(ds, &po, res, e);

	ds_free(ds);
	return r;
}

static void read_whole(const char *path, struct buf *b)
{
	buf_init(b);
	assert_int_equal(fsx_read_file(path, b, 0, NULL), 0);
}

/* Files under `dir` whose names start with `prefix`. */
static int count_prefixed(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (str_starts_with(de->d_name, prefix))
			n++;
	closedir(d);
	return n;
}

/* ---- pack ---- */

static void test_deterministic(void **state)
{
	char *d1 = make_dataset("one", false), *d2 = make_dataset("two", true);
	char *c1 = path_in(base, "cache1"), *c2 = path_in(base, "cache2");
	struct ds_pack_result r1, r2;
	struct buf b1, b2;
	struct err e = { 0 };
	struct archive *a;
	struct archive_entry *ent;
	mode_t old = umask(077);

	setlocale(LC_ALL, "C");
	assert_int_equal(pack_dir(d1, c1, NULL, false, &r1, &e), 0);
	umask(0);
	if (!setlocale(LC_ALL, "C.UTF-8"))
		setlocale(LC_ALL, "C");
	assert_int_equal(pack_dir(d2, c2, NULL, false, &r2, &e), 0);
	setlocale(LC_ALL, "C");
	umask(old);

	assert_false(r1.reused);
	assert_int_equal(r1.files, NNAMES);
	assert_string_equal(r1.sha256, r2.sha256);
	assert_int_equal(r1.bytes, r2.bytes);
	assert_int_equal(r1.bytes % 10240, 0);
	read_whole(r1.archive, &b1);
	read_whole(r2.archive, &b2);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	{
		char hex[SHA256_HEX_LEN + 1];

		sha256_hex(b1.data, b1.len, hex);
		assert_string_equal(hex, r1.sha256);
	}

	/* manifest.json, SHA256SUMS, then the files in byte order; fixed metadata.
	 * (libarchive gives UTF-8 names only in a UTF-8 locale.) */
	setlocale(LC_ALL, "C.UTF-8");
	a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, b1.data, b1.len), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &ent), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ent), "manifest.json");
	assert_int_equal(archive_read_next_header(a, &ent), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ent), "SHA256SUMS");
	for (char *prev = NULL;;) {
		int ar = archive_read_next_header(a, &ent);

		if (ar == ARCHIVE_EOF) {
			free(prev);
			break;
		}
		assert_int_equal(ar, ARCHIVE_OK);
		assert_int_equal(archive_entry_filetype(ent), AE_IFREG);
		assert_int_equal(archive_entry_perm(ent), 0644);
		assert_int_equal(archive_entry_mtime(ent), 0);
		assert_int_equal(archive_entry_uid(ent), 0);
		assert_int_equal(archive_entry_gid(ent), 0);
		assert_false(archive_entry_atime_is_set(ent));
		assert_false(archive_entry_ctime_is_set(ent));
		if (prev && archive_entry_pathname_utf8(ent))
			assert_true(strcmp(prev, archive_entry_pathname_utf8(ent)) < 0);
		free(prev);
		prev = archive_entry_pathname_utf8(ent) ? xstrdup(archive_entry_pathname_utf8(ent))
							: NULL;
		if (!prev)
			fail_msg("entry without a UTF-8 name");
	}
	archive_read_free(a);
	setlocale(LC_ALL, "C");

	buf_release(&b1);
	buf_release(&b2);
	ds_pack_result_release(&r1);
	ds_pack_result_release(&r2);
	free(c1);
	free(c2);
	free(d1);
	free(d2);
}

static void test_reuse_and_output(void **state)
{
	char *dir = make_dataset("reuse", false), *cache = path_in(base, "cache-reuse");
	char *out = path_in(base, "out/set.tar"), *out2 = path_in(base, "set2.tar");
	struct ds_pack_result r1, r2, r3, r4;
	struct ds_dataset *ds;
	struct err e = { 0 };
	struct stat s1, s2;
	struct buf b1, b2;

	assert_int_equal(fsx_mkdir_parent(out, 0755, NULL), 0);
	assert_int_equal(pack_dir(dir, cache, out, false, &r1, &e), 0);
	assert_false(r1.reused);

	/* Checking again decodes nothing: the verdicts are reused. */
	ds = checked(dir, cache);
	assert_int_equal(ds->decoded, 0);
	ds_free(ds);

	/* -o is the cached archive itself (same file system: a hard link). */
	assert_int_equal(stat(out, &s1), 0);
	assert_int_equal(stat(r1.archive, &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);

	/* Unchanged: reused, same archive; -o again is fine. */
	assert_int_equal(pack_dir(dir, cache, out, false, &r2, &e), 0);
	assert_true(r2.reused);
	assert_string_equal(r1.sha256, r2.sha256);
	assert_int_equal(r1.bytes, r2.bytes);
	assert_string_equal(r1.archive, r2.archive);

	/* A cached archive that went missing is packed again, same bytes. */
	assert_int_equal(unlink(r1.archive), 0);
	assert_int_equal(pack_dir(dir, cache, out2, false, &r3, &e), 0);
	assert_false(r3.reused);
	assert_string_equal(r1.sha256, r3.sha256);
	read_whole(out, &b1);
	read_whole(out2, &b2);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	buf_release(&b1);
	buf_release(&b2);

	/* One caption changes: a new archive. */
	tu_write_text(dir, "a.txt", "a photo of ohwx, edited\n");
	assert_int_equal(pack_dir(dir, cache, NULL, false, &r4, &e), 0);
	assert_false(r4.reused);
	assert_string_not_equal(r1.sha256, r4.sha256);

	ds_pack_result_release(&r1);
	ds_pack_result_release(&r2);
	ds_pack_result_release(&r3);
	ds_pack_result_release(&r4);
	free(out);
	free(out2);
	free(cache);
	free(dir);
}

/* Nothing half-written is left behind, and no archive at all. */
static void assert_no_archive(const char *datasets)
{
	DIR *d = opendir(datasets);
	struct dirent *de;

	assert_int_equal(count_prefixed(datasets, ".pack-"), 0);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (str_ends_with_ci(de->d_name, ".tar"))
			fail_msg("an archive was left: %s", de->d_name);
	closedir(d);
}

static void expect_changed(const char *dir, const char *cache, const char *rel,
			   const char *content)
{
	struct ds_pack_opts po = { .cache_dir = cache };
	struct ds_pack_result res;
	struct ds_dataset *ds = checked(dir, cache);
	char *datasets = path_in(cache, "datasets");
	struct err e = { 0 };

	/* The file changes after the check, before the pack. */
	if (content) {
		tu_write_text(dir, rel, content);
	} else {
		char *p = path_in(dir, rel);

		assert_int_equal(unlink(p), 0);
		free(p);
	}
	assert_int_equal(ds_pack(ds, &po, &res, &e), ERR_CHANGED);
	if (!strstr(e.msg, rel) || !strstr(e.msg, "changed since it was checked"))
		fail_msg("message does not name %s: %s", rel, e.msg);
	assert_null(res.archive);
	assert_no_archive(datasets);
	ds_free(ds);
	/* Every verdict was dropped: the next pack looks at every file again. */
	ds = checked(dir, cache);
	assert_true(ds->decoded > 0);
	ds_free(ds);
	free(datasets);
}

static void test_changed_after_check(void **state)
{
	char *dir = make_dataset("changing", false), *cache = path_in(base, "cache-changing");

	/* Same size, other bytes: only the hash can tell. */
	expect_changed(dir, cache, "a.txt", "a photo of OHWX\n");
	/* Longer, then gone. */
	expect_changed(dir, cache, "sub/b.txt", "a photo of ohwx, and more\n");
	expect_changed(dir, cache, "c d.txt", NULL);
	free(cache);
	free(dir);
}

static void test_errors_refused_unless_forced(void **state)
{
	char *dir = make_dataset("broken", false), *cache = path_in(base, "cache-broken");
	char *unpacked = path_in(base, "broken-unpacked"), *p;
	struct ds_pack_result res;
	struct ds_unpack_result ur;
	struct err e = { 0 };
	struct buf img = BUF_INIT;
	struct stat st;

	/* A truncated JPEG. */
	p = path_in(dir, "a.jpg");
	read_whole(p, &img);
	free(p);
	p = path_in(dir, "zz-broken.jpg");
	assert_int_equal(fsx_write_atomic(p, img.data, img.len / 2, 0644, NULL), 0);
	free(p);
	buf_release(&img);

	assert_int_equal(pack_dir(dir, cache, NULL, false, &res, &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "with force"));
	assert_null(strstr(e.msg, "--"));
	assert_null(res.archive);

	err_clear(&e);
	assert_int_equal(pack_dir(dir, cache, NULL, true, &res, &e), 0);
	assert_int_equal(res.files, NNAMES);
	assert_int_equal(ds_unpack(res.archive, unpacked, &ur, &e), 0);
	assert_int_equal(ur.files, NNAMES);
	p = path_in(unpacked, "zz-broken.jpg");
	assert_int_not_equal(stat(p, &st), 0);
	free(p);
	ds_pack_result_release(&res);
	free(unpacked);
	free(cache);
	free(dir);
}

/* ---- unpack ---- */

static void assert_same_file(const char *a, const char *b)
{
	struct buf x, y;

	read_whole(a, &x);
	read_whole(b, &y);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len);
	buf_release(&x);
	buf_release(&y);
}

/* ---- ds_check_and_pack: settings, progress, cancel ---- */

struct pk_seen {
	int calls;
	uint64_t last, total;
	bool backwards;
	struct cancel *cancel_at_first; /* set the token on the first report with bytes */
};

static void pk_on_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct pk_seen *s = arg;

	assert_string_equal(phase, "packing");
	if (done < s->last)
		s->backwards = true;
	s->calls++;
	s->last = done;
	s->total = total;
	if (s->cancel_at_first && done)
		cancel_set(s->cancel_at_first);
}

static struct config *pack_config(const char *cache)
{
	struct config *cfg = config_new();
	char *set = xasprintf("cache_dir=%s", cache);

	assert_int_equal(config_set_assignment(cfg, set, NULL), 0);
	assert_int_equal(config_set_assignment(cfg, "dataset.min_images=3", NULL), 0);
	assert_int_equal(config_set_assignment(cfg, "dataset.resolution=64", NULL), 0);
	free(set);
	return cfg;
}

static void test_check_and_pack(void **state)
{
	char *dir = make_dataset("cap", false), *cache = path_in(base, "cache-cap");
	struct config *cfg = pack_config(cache);
	struct pk_seen seen = { 0 };
	struct progress pg = { pk_on_progress, &seen };
	struct ds_pack_opts po;
	struct ds_pack_result res, again;
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };

	ds_pack_opts_from_config(&po, cfg);
	assert_string_equal(po.cache_dir, cache);
	po.pg = &pg;
	assert_int_equal(ds_check_and_pack(cfg, dir, &po, &ds, &res, &e), 0);
	assert_non_null(ds);
	assert_true(ds->ready);
	assert_false(res.reused);
	assert_true(str_starts_with(res.archive, cache));
	/* Progress went forward and ended at the files' total. */
	assert_true(seen.calls >= 2);
	assert_false(seen.backwards);
	assert_true(seen.total > 0);
	assert_int_equal(seen.last, seen.total);
	ds_free(ds);

	/* Again: the verdicts are reused (nothing decoded), the archive too. */
	assert_int_equal(ds_check_and_pack(cfg, dir, &po, &ds, &again, &e), 0);
	assert_int_equal(ds->decoded, 0);
	assert_true(again.reused);
	assert_string_equal(res.sha256, again.sha256);
	ds_free(ds);
	ds_pack_result_release(&again);

	/* A folder that is not there: no dataset, and a message. */
	assert_int_equal(ds_check_and_pack(cfg, "/nonexistent/ferry", &po, &ds, &again, NULL),
			 ERR_IO);
	assert_null(ds);

	ds_pack_result_release(&res);
	config_free(cfg);
	free(cache);
	free(dir);
}

/* A cancel set while the archive is being written: ERR_CANCELLED, no
 * archive under any name, and the verdicts are kept (nothing changed). */
static void test_pack_cancelled(void **state)
{
	char *dir = make_dataset("cancel", false), *cache = path_in(base, "cache-cancel");
	char *datasets = path_in(cache, "datasets"), *out = path_in(base, "cancel.tar");
	struct config *cfg = pack_config(cache);
	struct cancel c;
	struct pk_seen seen = { .cancel_at_first = &c };
	struct progress pg = { pk_on_progress, &seen };
	struct ds_pack_opts po;
	struct ds_pack_result res;
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };
	char *big;

	/* One file of many chunks, so that the cancel lands inside it. */
	big = xmalloc(8u << 20);
	for (size_t i = 0; i < (8u << 20); i++)
		big[i] = (char)('a' + i % 26);
	big[(8u << 20) - 1] = '\0';
	tu_write_text(dir, "sub/b.txt", big);
	free(big);
	tu_settle();

	cancel_init(&c);
	ds_pack_opts_from_config(&po, cfg);
	po.pg = &pg;
	po.cancel = &c;
	po.out_path = out;
	po.force = true; /* the 8 MiB caption is too long: an error finding */
	assert_int_equal(ds_check_and_pack(cfg, dir, &po, &ds, &res, &e), ERR_CANCELLED);
	assert_non_null(ds);
	assert_null(res.archive);
	assert_no_archive(datasets);
	assert_int_equal(access(out, F_OK), -1);
	ds_free(ds);

	/* Cancelled before it starts: the check stops, nothing is written. */
	seen.cancel_at_first = NULL;
	seen.calls = 0;
	assert_int_equal(ds_check_and_pack(cfg, dir, &po, &ds, &res, &e), ERR_CANCELLED);
	assert_null(ds);
	assert_non_null(strstr(e.msg, "checking was cancelled"));
	assert_int_equal(seen.calls, 0);

	/* Not cancelled: it packs, reusing the verdicts (none were dropped). */
	cancel_release(&c);
	cancel_init(&c);
	assert_int_equal(ds_check_and_pack(cfg, dir, &po, &ds, &res, &e), 0);
	assert_int_equal(ds->decoded, 0);
	assert_int_equal(access(out, F_OK), 0);
	ds_free(ds);
	ds_pack_result_release(&res);
	cancel_release(&c);
	config_free(cfg);
	free(out);
	free(datasets);
	free(cache);
	free(dir);
}

static void test_unpack_round_trip(void **state)
{
	char *dir = make_dataset("trip", true), *cache = path_in(base, "cache-trip");
	char *target = path_in(base, "deep/er/trip-out"), *empty = path_in(base, "empty-target");
	char *full = path_in(base, "full-target"), *p;
	struct ds_pack_result res;
	struct ds_unpack_result ur;
	struct err e = { 0 };
	struct stat st;

	assert_int_equal(pack_dir(dir, cache, NULL, false, &res, &e), 0);
	assert_int_equal(ds_unpack(res.archive, target, &ur, &e), 0);
	assert_int_equal(ur.files, NNAMES);
	assert_string_equal(ur.sha256, res.sha256);
	assert_int_equal(ur.bytes, res.bytes);
	for (size_t i = 0; i < NNAMES; i++) {
		char *a = path_in(dir, names[i]), *b = path_in(target, names[i]);

		assert_same_file(a, b);
		assert_int_equal(stat(b, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		free(a);
		free(b);
	}
	/* The manifest and sums are checked, not extracted. */
	p = path_in(target, DS_MANIFEST_NAME);
	assert_int_not_equal(stat(p, &st), 0);
	free(p);

	/* An existing empty folder is fine; a non-empty one is refused. */
	assert_int_equal(mkdir(empty, 0755), 0);
	assert_int_equal(ds_unpack(res.archive, empty, &ur, &e), 0);
	assert_int_equal(mkdir(full, 0755), 0);
	tu_write_text(full, "keep.txt", "mine\n");
	assert_int_equal(ds_unpack(res.archive, full, &ur, &e), ERR_EXISTS);
	p = path_in(full, "a.jpg");
	assert_int_not_equal(stat(p, &st), 0);
	free(p);

	ds_pack_result_release(&res);
	free(full);
	free(empty);
	free(target);
	free(cache);
	free(dir);
}

/* An archive held as a list of entries, to damage one way at a time. */
struct tent {
	char *name;
	mode_t type;
	char *data;
	size_t len;
	char *link; /* symlink target, or hard link target when hard */
	bool hard;
};

struct tlist {
	struct tent v[64];
	size_t n;
};

static void tlist_read(const char *path, struct tlist *l)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ent;

	memset(l, 0, sizeof(*l));
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		struct tent *t = &l->v[l->n++];
		struct buf b = BUF_INIT;
		char chunk[4096];
		la_ssize_t n;

		t->name = xstrdup(archive_entry_pathname(ent));
		t->type = archive_entry_filetype(ent);
		while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0)
			buf_add(&b, chunk, (size_t)n);
		t->data = buf_detach(&b, &t->len);
	}
	archive_read_free(a);
}

static void tlist_free(struct tlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].data);
		free(l->v[i].link);
	}
	l->n = 0;
}

static void tlist_write(const struct tlist *l, const char *path)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ent = archive_entry_new();

	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < l->n; i++) {
		const struct tent *t = &l->v[i];

		archive_entry_clear(ent);
		archive_entry_copy_pathname(ent, t->name);
		archive_entry_set_filetype(ent, t->type);
		archive_entry_set_perm(ent, t->type == AE_IFDIR ? 0755 : 0644);
		if (t->link && t->hard)
			archive_entry_copy_hardlink(ent, t->link);
		else if (t->link)
			archive_entry_copy_symlink(ent, t->link);
		if (t->type == AE_IFCHR)
			archive_entry_set_rdev(ent, makedev(1, 3));
		archive_entry_set_size(ent, t->type == AE_IFREG && !t->hard ? (la_int64_t)t->len : 0);
		assert_int_equal(archive_write_header(a, ent), ARCHIVE_OK);
		if (t->type == AE_IFREG && t->len && !t->hard)
			archive_write_data(a, t->data, t->len);
	}
	archive_entry_free(ent);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static void tlist_add(struct tlist *l, const char *name, mode_t type, const char *data,
		      const char *link, bool hard)
{
	struct tent *t = &l->v[l->n++];

	memset(t, 0, sizeof(*t));
	t->name = xstrdup(name);
	t->type = type;
	t->data = xstrdup(data ? data : "");
	t->len = strlen(t->data);
	t->link = link ? xstrdup(link) : NULL;
	t->hard = hard;
}

static size_t tlist_find(const struct tlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return i;
	fail_msg("no entry %s", name);
	return 0;
}

static void tlist_remove(struct tlist *l, size_t i)
{
	free(l->v[i].name);
	free(l->v[i].data);
	free(l->v[i].link);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

static const char *hostile_archive;

static void expect_refused(struct tlist *l, int code, const char *what)
{
	char *tar = path_in(base, "hostile.tar"), *target = path_in(base, "hostile-out");
	struct ds_unpack_result ur;
	struct err e = { 0 };
	struct stat st;
	int r;

	tlist_write(l, tar);
	r = ds_unpack(tar, target, &ur, &e);
	if (r != code || !strstr(e.msg, what))
		fail_msg("expected %d mentioning '%s', got %d: %s", code, what, r, e.msg);
	assert_int_not_equal(stat(target, &st), 0);
	assert_int_equal(count_prefixed(base, ".hostile-out.unpack-"), 0);
	tlist_free(l);
	tlist_read(hostile_archive, l);
	unlink(tar);
	free(tar);
	free(target);
}

static void test_unpack_refuses(void **state)
{
	static const char *const ascii[] = { "a.jpg", "a.txt", "sub/b.jpg", "sub/b.txt",
					     "c.jpg", "c.txt" };
	char *dir = path_in(base, "plain"), *cache = path_in(base, "cache-plain");
	char *ok_target = path_in(base, "plain-ok");
	struct ds_pack_result res;
	struct ds_unpack_result ur;
	struct err e = { 0 };
	struct tlist l;
	size_t i;

	for (i = 0; i < sizeof(ascii) / sizeof(ascii[0]); i++) {
		if (str_ends_with_ci(ascii[i], ".jpg"))
			write_jpeg(dir, ascii[i], (int)i);
		else
			tu_write_text(dir, ascii[i], "a photo of ohwx\n");
	}
	assert_int_equal(pack_dir(dir, cache, NULL, false, &res, &e), 0);
	hostile_archive = res.archive;
	tlist_read(res.archive, &l);
	assert_int_equal(l.n, 8);

	/* Rewritten unchanged, it still unpacks: the checks are not about bytes
	 * pack alone writes. */
	{
		char *tar = path_in(base, "rewritten.tar");

		tlist_write(&l, tar);
		assert_int_equal(ds_unpack(tar, ok_target, &ur, &e), 0);
		unlink(tar);
		free(tar);
	}

	/* Content altered, same size. */
	i = tlist_find(&l, "sub/b.jpg");
	l.v[i].data[l.v[i].len / 2] ^= 0x55;
	expect_refused(&l, ERR_CORRUPT, "sub/b.jpg: content does not match");
	/* Content altered, other size. */
	i = tlist_find(&l, "a.txt");
	free(l.v[i].data);
	l.v[i].data = xstrdup("a photo of ohwx!\n");
	l.v[i].len = strlen(l.v[i].data);
	expect_refused(&l, ERR_CORRUPT, "a.txt: 17 bytes in the archive, 16 in the manifest");

	/* Paths and types that are never extracted. */
	tlist_add(&l, "../evil.jpg", AE_IFREG, "x", NULL, false);
	expect_refused(&l, ERR_FORMAT, "../evil.jpg: unsafe path");
	tlist_add(&l, "sub/../../evil.txt", AE_IFREG, "x", NULL, false);
	expect_refused(&l, ERR_FORMAT, "unsafe path");
	tlist_add(&l, "/tmp/abs.jpg", AE_IFREG, "x", NULL, false);
	expect_refused(&l, ERR_FORMAT, "/tmp/abs.jpg: unsafe path");
	tlist_add(&l, "\x1b]0;owned\a.jpg", AE_IFREG, "x", NULL, false);
	expect_refused(&l, ERR_FORMAT, "an entry's name holds a control character");
	tlist_add(&l, "link.jpg", AE_IFLNK, NULL, "/etc/passwd", false);
	expect_refused(&l, ERR_FORMAT, "link.jpg: is a symbolic link");
	tlist_add(&l, "hard.jpg", AE_IFREG, NULL, "a.jpg", true);
	expect_refused(&l, ERR_FORMAT, "hard.jpg: hard links are not allowed");
	tlist_add(&l, "null.jpg", AE_IFCHR, NULL, NULL, false);
	expect_refused(&l, ERR_FORMAT, "null.jpg: is a character device");
	tlist_add(&l, "fifo.jpg", AE_IFIFO, NULL, NULL, false);
	expect_refused(&l, ERR_FORMAT, "fifo.jpg: is a FIFO");

	/* Entries the manifest does not list, lists twice, or lists but lack. */
	tlist_add(&l, "extra.jpg", AE_IFREG, "x", NULL, false);
	expect_refused(&l, ERR_FORMAT, "extra.jpg: not listed in the manifest");
	i = tlist_find(&l, "c.txt");
	tlist_add(&l, "c.txt", AE_IFREG, l.v[i].data, NULL, false);
	expect_refused(&l, ERR_FORMAT, "c.txt: duplicate entry");
	tlist_add(&l, "manifest.json", AE_IFREG, l.v[0].data, NULL, false);
	expect_refused(&l, ERR_FORMAT, "manifest.json: duplicate entry");
	tlist_add(&l, "SHA256SUMS", AE_IFREG, l.v[1].data, NULL, false);
	expect_refused(&l, ERR_FORMAT, "SHA256SUMS: duplicate entry");
	tlist_remove(&l, tlist_find(&l, "c.jpg"));
	expect_refused(&l, ERR_CORRUPT, "c.jpg: listed in the manifest but missing");

	/* Folders: only those holding listed files. */
	tlist_add(&l, "elsewhere/", AE_IFDIR, NULL, NULL, false);
	expect_refused(&l, ERR_FORMAT, "elsewhere/: a folder that holds no file");
	{
		char *target = path_in(base, "with-dir");

		tlist_add(&l, "sub/", AE_IFDIR, NULL, NULL, false);
		tlist_write(&l, hostile_archive);
		assert_int_equal(ds_unpack(hostile_archive, target, &ur, &e), 0);
		free(target);
		tlist_remove(&l, l.n - 1);
		tlist_write(&l, hostile_archive);
	}

	/* The manifest first; SHA256SUMS present and agreeing. */
	{
		struct tent t = l.v[0];

		l.v[0] = l.v[2];
		l.v[2] = t;
	}
	expect_refused(&l, ERR_FORMAT, "its first entry is not manifest.json");
	l.v[1].data[3] ^= 1;
	expect_refused(&l, ERR_CORRUPT, "SHA256SUMS does not agree with manifest.json");
	tlist_remove(&l, 1);
	expect_refused(&l, ERR_CORRUPT, "SHA256SUMS is missing");
	/* A manifest that lies about itself. */
	free(l.v[0].data);
	l.v[0].data = xstrdup("{\"format\":\"ferry-dataset\",\"version\":9}");
	l.v[0].len = strlen(l.v[0].data);
	expect_refused(&l, ERR_FORMAT, "version 9 is not supported");
	tlist_free(&l);

	/* Cut short, or no tar at all. */
	{
		char *tar = path_in(base, "short.tar"), *target = path_in(base, "short-out");
		struct buf b;

		read_whole(hostile_archive, &b);
		assert_int_equal(fsx_write_atomic(tar, b.data, 4096 + 1000, 0644, NULL), 0);
		assert_int_equal(ds_unpack(tar, target, &ur, &e), ERR_CORRUPT);
		memset(b.data, 'x', 2048);
		assert_int_equal(fsx_write_atomic(tar, b.data, 2048, 0644, NULL), 0);
		assert_int_equal(ds_unpack(tar, target, &ur, &e), ERR_FORMAT);
		assert_int_equal(count_prefixed(base, ".short-out.unpack-"), 0);
		buf_release(&b);
		free(tar);
		free(target);
	}
	/* Nothing to read. */
	{
		char *target = path_in(base, "missing-out");

		assert_int_equal(ds_unpack("/nonexistent/x.tar", target, &ur, &e), ERR_IO);
		free(target);
	}

	ds_pack_result_release(&res);
	free(ok_target);
	free(cache);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_reuse_and_output),
		cmocka_unit_test(test_changed_after_check),
		cmocka_unit_test(test_errors_refused_unless_forced),
		cmocka_unit_test(test_check_and_pack),
		cmocka_unit_test(test_pack_cancelled),
		cmocka_unit_test(test_unpack_round_trip),
		cmocka_unit_test(test_unpack_refuses),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
