/* Unit tests for src/common: buffers, strings, logging redaction, processes,
 * files, hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
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
		int ffd;

		assert_int_equal(fsx_open_regular(fifo, &ffd, &fst, &e), ERR_FORMAT);
		assert_int_equal(ffd, -1);
		buf_reset(&b);
		assert_int_equal(fsx_read_file(fifo, &b, 0, &e), ERR_FORMAT);
		free(fifo);
	}
	/* Temporary files never go through a planted link. */
	{
		char *tmp = NULL, *target = xasprintf("%s/target", dir);
		int fd = -1;

		assert_int_equal(fsx_create_temp(target, 0600, &fd, &tmp, &e), 0);
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
	/* Prefixing and changing the code at once; an optional e stays optional. */
	assert_int_equal(err_prefix_code(&e, ERR_TIMEOUT, "after %d s", 5), ERR_TIMEOUT);
	assert_int_equal(e.code, ERR_TIMEOUT);
	assert_string_equal(e.msg, "after 5 s: settings: missing key");
	assert_int_equal(err_prefix_code(NULL, ERR_CONN, "x"), ERR_CONN);
	assert_string_equal(err_msg(NULL), "");
	assert_string_equal(err_msg(&e), e.msg);
	assert_string_equal(err_name(ERR_CANCELLED), "cancelled");
}

/* BUF_INIT is ready without buf_init: readable, growable, releasable. */
static void test_buf_init(void **state)
{
	struct buf b = BUF_INIT, c = BUF_INIT;

	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	buf_reset(&b);
	buf_release(&b);
	assert_non_null(b.data);
	buf_puts(&c, "x");
	assert_string_equal(c.data, "x");
	buf_release(&c);
	assert_string_equal(buf_empty, "");
}

static void test_numbers(void **state)
{
	long long v = 0;

	assert_int_equal(str_to_i64("-42", &v), 0);
	assert_int_equal(v, -42);
	assert_int_equal(str_to_i64("9223372036854775807", &v), 0);
	assert_int_equal(str_to_i64("9223372036854775808", &v), ERR_USAGE);
	assert_int_equal(str_to_i64("12x", &v), ERR_USAGE);
	assert_int_equal(str_to_i64("", &v), ERR_USAGE);
	assert_int_equal(str_to_i64("--1", &v), ERR_USAGE);
}

struct cancel_later {
	struct cancel *c;
	int after_ms;
};

static void *cancel_later_run(void *arg)
{
	struct cancel_later *cl = arg;

	clock_sleep_ms(cl->after_ms, NULL);
	cancel_set(cl->c);
	return NULL;
}

static void test_clock(void **state)
{
	struct cancel c;
	struct cancel_later cl = { &c, 100 };
	struct backoff b = { .first_ms = 100, .max_ms = 350 };
	struct backoff j = { .first_ms = 1000, .max_ms = 1000, .jitter = true };
	pthread_t t;
	long long t0;

	assert_int_equal(backoff_next(&b), 100);
	assert_int_equal(backoff_next(&b), 200);
	assert_int_equal(backoff_next(&b), 350);
	assert_int_equal(backoff_next(&b), 350);
	assert_int_equal(b.tries, 4);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b), 100);
	for (int i = 0; i < 20; i++) {
		long long w = backoff_next(&j);

		assert_true(w >= 500 && w <= 1000);
	}
	assert_false(cancel_is_set(NULL));
	cancel_init(&c);
	assert_int_equal(clock_sleep_ms(20, &c), 0);
	/* Another thread's cancel ends a long sleep at once. */
	assert_int_equal(pthread_create(&t, NULL, cancel_later_run, &cl), 0);
	t0 = clock_mono_ms();
	assert_int_equal(clock_sleep_ms(60000, &c), ERR_CANCELLED);
	assert_true(clock_mono_ms() - t0 < 5000);
	pthread_join(t, NULL);
	assert_true(cancel_is_set(&c));
	assert_int_equal(clock_sleep_ms(0, &c), ERR_CANCELLED);
	assert_int_equal(backoff_sleep(&b, &c), ERR_CANCELLED);
	cancel_release(&c);
	/* A flag set without a broadcast (as from a signal handler) is seen. */
	cancel_init(&c);
	cancel_set_flag(&c);
	t0 = clock_mono_ms();
	assert_int_equal(clock_sleep_ms(60000, &c), ERR_CANCELLED);
	assert_true(clock_mono_ms() - t0 < 5000);
	cancel_release(&c);
}

/* A job's token under the worker's drain: the drain stops the job's waits,
 * the job's own cancel leaves the drain alone. */
static void test_cancel_child(void **state)
{
	struct cancel drain, job, other;
	struct cancel_later cl = { &drain, 100 };
	pthread_t t;
	long long t0;

	cancel_init(&drain);
	cancel_init_child(&job, &drain);
	cancel_init_child(&other, &drain);
	cancel_set(&job);
	assert_true(cancel_is_set(&job));
	assert_false(cancel_is_set(&drain));
	assert_false(cancel_is_set(&other));
	assert_int_equal(clock_sleep_ms(10, &other), 0);
	assert_int_equal(pthread_create(&t, NULL, cancel_later_run, &cl), 0);
	t0 = clock_mono_ms();
	assert_int_equal(clock_sleep_ms(60000, &other), ERR_CANCELLED);
	assert_true(clock_mono_ms() - t0 < 5000);
	pthread_join(t, NULL);
	assert_true(cancel_is_set(&other));
	/* A reset clears the job's own mark, never the drain's. */
	cancel_reset(&job);
	assert_false(cancel_is_set(&job) && !cancel_is_set(&drain));
	cancel_reset(&other);
	assert_true(cancel_is_set(&other));
	cancel_release(&other);
	cancel_release(&job);
	cancel_release(&drain);
}

struct sink_lines {
	struct strv lines;
	int levels[8];
};

static void sink_take(void *arg, enum log_level level, const char *line)
{
	struct sink_lines *s = arg;

	if (s->lines.n < 8)
		s->levels[s->lines.n] = (int)level;
	strv_push(&s->lines, line);
}

static void *sink_other_thread(void *arg)
{
	log_warn("from another thread");
	return NULL;
}

static void test_log_sink(void **state)
{
	struct sink_lines got = { STRV_INIT, { 0 } };
	struct log_sink sink = { sink_take, &got, LOG_INFO, false };
	pthread_t t;

	log_register_secret("hunter2-token");
	log_set_thread_sink(&sink);
	log_info("the key is %s\n", "hunter2-token");
	log_debug("below the sink's level");
	log_error("an error");
	/* Another thread has no sink: its lines are not this job's. */
	assert_int_equal(pthread_create(&t, NULL, sink_other_thread, NULL), 0);
	pthread_join(t, NULL);
	log_set_thread_sink(NULL);
	log_info("after the sink was cleared");
	assert_int_equal(got.lines.n, 2);
	assert_string_equal(got.lines.v[0], "the key is ****");
	assert_int_equal(got.levels[0], LOG_INFO);
	assert_string_equal(got.lines.v[1], "an error");
	assert_int_equal(got.levels[1], LOG_ERROR);
	strv_release(&got.lines);
	log_forget_secrets();
}

static void test_proc_cancel_and_cut(void **state)
{
	const char *const sleeper[] = { "sh", "-c", "sleep 30 & sleep 30; wait", NULL };
	const char *const chatty[] = { "sh", "-c", "head -c 300000 /dev/zero; echo done >&2", NULL };
	struct cancel c;
	struct cancel_later cl = { &c, 150 };
	struct proc_opts o = { .cancel = &c };
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct err e = { 0 };
	bool cut = false;
	pthread_t t;
	long long t0;
	int status = 0;

	cancel_init(&c);
	assert_int_equal(pthread_create(&t, NULL, cancel_later_run, &cl), 0);
	t0 = clock_mono_ms();
	assert_int_equal(proc_run(sleeper, &o, NULL, NULL, &status, &e), ERR_CANCELLED);
	assert_true(clock_mono_ms() - t0 < 10000);
	assert_non_null(strstr(e.msg, "cancelled"));
	pthread_join(t, NULL);
	cancel_release(&c);
	/* Output past the cap is dropped, and the caller is told. */
	o = (struct proc_opts){ .max_output = 100000, .cut = &cut };
	assert_int_equal(proc_run(chatty, &o, &out, &err, &status, &e), 0);
	assert_true(out.len <= 100000);
	assert_true(cut);
	assert_string_equal(err.data, "done\n");
	buf_release(&out);
	buf_release(&err);
}

static void test_tree_bytes(void **state)
{
	char *dir = tu_mkdtemp("tree-bytes"), *link = xasprintf("%s/link", dir);
	unsigned long long n = 0;
	struct err e = { 0 };

	tu_write_text(dir, "a", "12345");
	tu_write_text(dir, "sub/deeper/b", "123");
	assert_int_equal(symlink("/etc/passwd", link), 0); /* links are not followed */
	assert_int_equal(fsx_tree_bytes(dir, &n, &e), 0);
	assert_int_equal(n, 8);
	assert_int_equal(fsx_tree_bytes("/nonexistent/ferry", &n, &e), ERR_IO);
	assert_int_equal(fsx_remove_tree(dir, &e), 0);
	free(link);
	free(dir);
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
		cmocka_unit_test(test_buf_init),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_cancel_child),
		cmocka_unit_test(test_log_sink),
		cmocka_unit_test(test_proc_cancel_and_cut),
		cmocka_unit_test(test_tree_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
