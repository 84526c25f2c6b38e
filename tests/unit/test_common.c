/* Unit tests for src/common: buffers, strings, logging redaction, processes,
 * files, hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "testutil.h"

static void test_buf(void **state)
{
	struct buf b = BUF_INIT;
	char *p;
	size_t n;

	buf_init(&b);
	assert_string_equal(b.data, "");
	buf_puts(&b, "abc");
	buf_printf(&b, "-%d-", 42);
	buf_putc(&b, 'z');
	assert_string_equal(b.data, "abc-42-z");
	assert_int_equal(b.len, 8);
	for (int i = 0; i < 1000; i++)
		buf_puts(&b, "0123456789");
	assert_int_equal(b.len, 10008);
	p = buf_detach(&b, &n);
	assert_int_equal(n, 10008);
	assert_int_equal(b.len, 0);
	free(p);
	buf_release(&b);
}

static void test_utf8(void **state)
{
	assert_true(str_utf8_valid("plain", 5));
	assert_true(str_utf8_valid("\xc3\xa9t\xc3\xa9", 6));
	assert_true(str_utf8_valid("\xe6\x97\xa5\xe6\x9c\xac", 6));
	assert_true(str_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(str_utf8_valid("caf\xe9", 4));          /* Latin-1 */
	assert_false(str_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(str_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(str_utf8_valid("\xe6\x97", 2));         /* truncated */
	assert_false(str_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_words(void **state)
{
	struct strv sv = STRV_INIT;
	struct err e = { 0 };

	assert_int_equal(str_split_words("prog  -a 'b c' \"d $e\" f\\ g", &sv, &e), 0);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[0], "prog");
	assert_string_equal(sv.v[2], "b c");
	assert_string_equal(sv.v[3], "d $e");
	assert_string_equal(sv.v[4], "f g");
	assert_null(sv.v[5]);
	strv_release(&sv);
	assert_int_equal(str_split_words("x 'open", &sv, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "unterminated"));
	strv_release(&sv);
	assert_int_equal(str_split_words("'' a", &sv, &e), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "");
	strv_release(&sv);
}

static void test_word_search(void **state)
{
	assert_true(str_contains_word_ci("a photo of OHWX person", "ohwx"));
	assert_true(str_contains_word_ci("ohwx, standing", "ohwx"));
	assert_false(str_contains_word_ci("ohwxy standing", "ohwx"));
	assert_false(str_contains_word_ci("xohwx", "ohwx"));
	assert_true(str_contains_word_ci("style of <sks>", "<sks>"));
	assert_false(str_contains_word_ci("anything", ""));
	assert_true(str_has_ctrl("a\nb"));
	assert_false(str_has_ctrl("a b"));
}

static void test_redaction(void **state)
{
	struct buf b = BUF_INIT;

	log_register_secret("hunter2-secret");
	log_register_secret("abc"); /* too short to mask */
	buf_init(&b);
	buf_puts(&b, "key=hunter2-secret and again hunter2-secret abc");
	log_redact(&b);
	assert_string_equal(b.data, "key=**** and again **** abc");
	buf_release(&b);
	log_forget_secrets();
	buf_puts(&b, "hunter2-secret");
	log_redact(&b);
	assert_string_equal(b.data, "hunter2-secret");
	buf_release(&b);
}

static void test_proc(void **state)
{
	const char *echo[] = { "sh", "-c", "cat; echo err >&2; exit 3", NULL };
	const char *sleeper[] = { "sh", "-c", "sleep 5 & sleep 5", NULL };
	const char *missing[] = { "/nonexistent/prog", NULL };
	struct proc_opts o = { .input = "hello", .input_len = 5 };
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct err e = { 0 };
	int status = -1;

	buf_init(&out);
	buf_init(&err);
	assert_int_equal(proc_run(echo, &o, &out, &err, &status, &e), 0);
	assert_string_equal(out.data, "hello");
	assert_string_equal(err.data, "err\n");
	assert_int_equal(status, 3);

	o = (struct proc_opts){ .timeout_ms = 200 };
	assert_int_equal(proc_run(sleeper, &o, NULL, NULL, &status, &e), ERR_TIMEOUT);
	assert_int_equal(status, 128 + 9);

	/* A child that closes its pipes and lingers is still held to the limit. */
	{
		const char *closer[] = { "sh", "-c", "exec >&- 2>&-; sleep 5", NULL };
		long long t0 = clock_mono_ms();

		o = (struct proc_opts){ .timeout_ms = 300 };
		assert_int_equal(proc_run(closer, &o, NULL, NULL, &status, &e), ERR_TIMEOUT);
		assert_true(clock_mono_ms() - t0 < 3000);
	}

	/* The environment given is the one the child sees. */
	{
		const char *env[] = { "sh", "-c", "printf %s \"${ONLY-unset}:${HOME-unset}\"", NULL };
		char *envp[] = { "ONLY=yes", NULL };

		buf_reset(&out);
		o = (struct proc_opts){ .envp = envp };
		assert_int_equal(proc_run(env, &o, &out, NULL, &status, &e), 0);
		assert_string_equal(out.data, "yes:unset");
	}

	status = 0;
	assert_int_equal(proc_run(missing, NULL, NULL, NULL, &status, &e), ERR_IO);
	assert_int_equal(status, 127);
	assert_non_null(strstr(e.msg, "/nonexistent/prog"));
	buf_release(&out);
	buf_release(&err);
}

static void test_escape(void **state)
{
	struct buf b = BUF_INIT;

	buf_init(&b);
	str_escape("a\nb\x01 \xc3\xa9 \xff\xe6\x97", &b);
	assert_string_equal(b.data, "a\\x0ab\\x01 \xc3\xa9 \\xff\\xe6\\x97");
	buf_release(&b);
}

static void test_fsx(void **state)
{
	char *dir = tu_mkdtemp("common"), *deep, *file, *copy;
	struct buf b = BUF_INIT;
	struct err e = { 0 };
	struct stat st;

	assert_non_null(dir);
	deep = xasprintf("%s/a/b/c", dir);
	assert_int_equal(fsx_mkdir_p(deep, 0755, &e), 0);
	assert_int_equal(fsx_mkdir_p(deep, 0755, &e), 0);
	file = xasprintf("%s/f.txt", deep);
	assert_int_equal(fsx_write_atomic(file, "data", 4, 0600, &e), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	buf_init(&b);
	assert_int_equal(fsx_read_file(file, &b, 0, &e), 0);
	assert_string_equal(b.data, "data");
	buf_reset(&b);
	assert_int_equal(fsx_read_file(file, &b, 2, &e), ERR_LIMIT);
	copy = xasprintf("%s/copy", dir);
	assert_int_equal(fsx_copy_file(file, copy, 0644, &e), 0);
	buf_reset(&b);
	assert_int_equal(fsx_read_file(copy, &b, 0, &e), 0);
	assert_string_equal(b.data, "data");
	assert_true(fsx_relpath_safe("a/b.jpg"));
	assert_false(fsx_relpath_safe("/etc/passwd"));
	assert_false(fsx_relpath_safe("a/../b"));
	assert_false(fsx_relpath_safe(".."));
	assert_false(fsx_relpath_safe("a//b"));
	assert_false(fsx_relpath_safe("./a"));
	assert_false(fsx_relpath_safe(""));
	/* A FIFO in a file's place is refused, not waited on. */
	{
		char *fifo = xasprintf("%s/fifo", dir);
		struct stat fst;

		assert_int_equal(mkfifo(fifo, 0600), 0);
		assert_int_equal(fsx_open_regular(fifo, &fst, &e), ERR_FORMAT);
		buf_reset(&b);
		assert_int_equal(fsx_read_file(fifo, &b, 0, &e), ERR_FORMAT);
		free(fifo);
	}
	/* Temporary files never go through a planted link. */
	{
		char *tmp = NULL, *target = xasprintf("%s/target", dir);
		int fd = fsx_create_temp(target, 0600, &tmp, &e);

		assert_true(fd >= 0);
		assert_non_null(strstr(tmp, "target.tmp-"));
		close(fd);
		unlink(tmp);
		free(tmp);
		free(target);
	}
	assert_int_equal(fsx_remove_tree(dir, &e), 0);
	assert_int_not_equal(stat(dir, &st), 0);
	free(deep);
	free(dir);
	free(file);
	free(copy);
	buf_release(&b);
}

static void test_sha256(void **state)
{
	char hex[65];

	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_true(sha256_is_hex(hex));
	hex[3] = 'G';
	assert_false(sha256_is_hex(hex));
}

/* The archive hash cache: remembered once the file is settled, used while
 * size, times and inode hold, dropped when the file changes. */
static void test_sha256_file_cached(void **state)
{
	char *dir = tu_mkdtemp("sha-cache"), *file, *cache, hex[65], again[65];
	struct err e = { 0 };
	struct dirent *de;
	struct buf rec = BUF_INIT;
	struct timespec keep[2];
	struct stat st;
	uint64_t size = 0;
	char *entry = NULL;
	DIR *d;

	file = fsx_join(dir, "a.tar");
	cache = fsx_join(dir, "cache");
	tu_write_text(dir, "a.tar", "first");
	/* Just written: racily clean, hashed but not remembered. */
	assert_int_equal(sha256_file_cached(file, cache, hex, &size, &e), 0);
	assert_int_equal(size, 5);
	assert_int_equal(access(cache, F_OK), -1);
	tu_settle();
	assert_int_equal(sha256_file_cached(file, cache, hex, &size, &e), 0);
	sha256_hex("first", 5, again);
	assert_string_equal(hex, again);
	d = opendir(cache);
	assert_non_null(d);
	closedir(d);
	/* Used while the file is unchanged: a doctored entry shows it is read. */
	free(cache);
	cache = fsx_join(dir, "cache/sha256");
	d = opendir(cache);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			entry = fsx_join(cache, de->d_name);
	closedir(d);
	assert_non_null(entry);
	buf_init(&rec);
	assert_int_equal(fsx_read_file(entry, &rec, 256, &e), 0);
	memset(rec.data + rec.len - 65, '0', 64);
	assert_int_equal(fsx_write_atomic(entry, rec.data, rec.len, 0600, &e), 0);
	free(cache);
	cache = fsx_join(dir, "cache");
	assert_int_equal(sha256_file_cached(file, cache, hex, &size, &e), 0);
	assert_string_equal(hex, "0000000000000000000000000000000000000000000000000000000000000000");
	/* Changed with the same size and mtime put back: the ctime tells. */
	assert_int_equal(stat(file, &st), 0);
	keep[0] = st.st_atim;
	keep[1] = st.st_mtim;
	tu_write_text(dir, "a.tar", "other");
	assert_int_equal(utimensat(AT_FDCWD, file, keep, 0), 0);
	assert_int_equal(sha256_file_cached(file, cache, hex, &size, &e), 0);
	sha256_hex("other", 5, again);
	assert_string_equal(hex, again);
	/* No cache folder: a plain hash. */
	assert_int_equal(sha256_file_cached(file, NULL, hex, &size, &e), 0);
	assert_string_equal(hex, again);
	buf_release(&rec);
	assert_int_equal(fsx_remove_tree(dir, &e), 0);
	free(entry);
	free(cache);
	free(file);
	free(dir);
}

static void test_err(void **state)
{
	struct err e = { 0 };

	assert_int_equal(err_set(&e, ERR_CONFIG, "missing %s", "key"), ERR_CONFIG);
	assert_string_equal(e.msg, "missing key");
	err_prefix(&e, "settings");
	assert_string_equal(e.msg, "settings: missing key");
	assert_int_equal(err_exit_status(ERR_CONFIG), 3);
	assert_int_equal(err_exit_status(ERR_USAGE), 2);
	assert_int_equal(err_exit_status(ERR_IO), 1);
	assert_int_equal(err_set(NULL, ERR_IO, "x"), ERR_IO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_word_search),
		cmocka_unit_test(test_redaction),
		cmocka_unit_test(test_proc),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_fsx),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_sha256_file_cached),
		cmocka_unit_test(test_err),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
