/* Unit tests for src/remote: shell quoting (round trips through a real
 * /bin/sh), the command builder, target parsing and job ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/proc.h"
#include "common/str.h"
#include "remote/job.h"
#include "remote/transport.h"

/* What `sh -c "printf %s <quoted>"` prints for `s`. */
static char *through_sh(const char *s)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	const char *argv[] = { "sh", "-c", NULL, NULL };
	int status = -1;

	buf_puts(&cmd, "printf %s ");
	str_shell_quote(s, &cmd);
	argv[2] = cmd.data;
	assert_int_equal(proc_run(argv, NULL, &out, NULL, &status, NULL), 0);
	assert_int_equal(status, 0);
	buf_release(&cmd);
	return buf_detach(&out, NULL);
}

static void test_shell_quote(void **state)
{
	static const char *const words[] = {
		"", "plain", "a b", "it's", "'", "''", "$(touch /tmp/ferry-pwned)", "`id`",
		"$HOME", "a\nb", "back\\slash", "\"dq\"", "*?[x]", "-n", "ü ✓", "; rm -rf /",
		"x'\"'$(y)'\\",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char *got = through_sh(words[i]);

		assert_string_equal(got, words[i]);
		free(got);
	}
}

static void test_cmdf(void **state)
{
	struct buf b = BUF_INIT;

	remote_cmdf(&b, "cd %q && tail -c +%lld %q | head -c %d; echo 100%%", "/r/j 1",
		    (long long)5000000000LL, "a'b", 7);
	assert_string_equal(b.data, "cd '/r/j 1' && tail -c +5000000000 'a'\\''b' | head -c 7; "
				    "echo 100%");
	buf_release(&b);
}

static void test_targets(void **state)
{
	struct remote_target t;
	struct err e;
	char *d;

	assert_int_equal(remote_target_parse("ssh://bob@host.example:2222", "/root/ferry", &t, &e), 0);
	assert_int_equal(t.kind, REMOTE_SSH);
	assert_string_equal(t.user, "bob");
	assert_string_equal(t.host, "host.example");
	assert_int_equal(t.port, 2222);
	assert_string_equal(t.root, "/root/ferry");
	d = remote_target_describe(&t);
	assert_string_equal(d, "ssh://bob@host.example:2222");
	free(d);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("10.0.0.5", "/r", &t, &e), 0);
	assert_string_equal(t.user, "root");
	assert_int_equal(t.port, 22);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("ssh://[::1]:2200", "/r", &t, &e), 0);
	assert_string_equal(t.host, "::1");
	assert_int_equal(t.port, 2200);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("local:/srv/jobs", "/r", &t, &e), 0);
	assert_int_equal(t.kind, REMOTE_LOCAL);
	assert_string_equal(t.root, "/srv/jobs");
	remote_target_release(&t);
	assert_int_equal(remote_target_parse("local", "/r", &t, &e), 0);
	assert_string_equal(t.root, "/r");
	remote_target_release(&t);

	static const char *const bad[] = {
		"ssh://h:0", "ssh://h:65536", "ssh://h:x", "ssh://", "ssh://-oProxyCommand=x",
		"ssh://-l@h", "ssh://a b@h", "local:relative", "ssh://[::1", "ssh://h/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (remote_target_parse(bad[i], "/r", &t, &e) != ERR_USAGE)
			fail_msg("accepted target %s", bad[i]);
		assert_non_null(strstr(e.msg, "target"));
	}
}

static void test_job_ids(void **state)
{
	struct err e;

	assert_int_equal(remote_job_check("j $(x) 'q' \"d\" ü\nnl", &e), 0);
	assert_int_equal(remote_job_check("", &e), ERR_USAGE);
	assert_int_equal(remote_job_check(NULL, &e), ERR_USAGE);
	assert_int_equal(remote_job_check("a/b", &e), ERR_USAGE);
	assert_int_equal(remote_job_check("..", &e), ERR_USAGE);
	assert_int_equal(remote_job_check(".", &e), ERR_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shell_quote),
		cmocka_unit_test(test_cmdf),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_job_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
