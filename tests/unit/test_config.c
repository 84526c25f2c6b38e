/* Unit tests for the settings table: precedence, types, files, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "testutil.h"

static char *tmpdir;

static int setup(void **state)
{
	tmpdir = tu_mkdtemp("config");
	setenv("HOME", tmpdir, 1);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("XDG_CACHE_HOME");
	unsetenv("XDG_STATE_HOME");
	unsetenv("VAST_API_KEY");
	unsetenv("VASTAI_API_KEY");
	unsetenv("VAST_URL");
	unsetenv("VASTAI_API_BASE_URL");
	return 0;
}

static int teardown(void **state)
{
	fsx_remove_tree(tmpdir, NULL);
	free(tmpdir);
	return 0;
}

static char *write_config(const char *text)
{
	char *path = xasprintf("%s/config", tmpdir);

	assert_int_equal(fsx_write_atomic(path, text, strlen(text), 0600, NULL), 0);
	return path;
}

static void test_defaults(void **state)
{
	struct config *c = config_new();
	char *want = xasprintf("%s/.cache/ferry", tmpdir);

	assert_int_equal(config_load(c, NULL, NULL), 0);
	assert_string_equal(config_get(c, "vast.url"), "https://console.vast.ai");
	assert_string_equal(config_origin(c, "vast.url"), "default");
	assert_int_equal(config_int(c, "dataset.min_images"), 10);
	assert_string_equal(config_get(c, "cache_dir"), want);
	assert_null(config_get(c, "vast.api_key"));
	free(want);
	config_free(c);
}

static void test_precedence(void **state)
{
	char *path = write_config("# comment\nvast.url = http://file\n"
				  "dataset.min_images = 5\n");
	struct config *c = config_new();
	struct err e = { 0 };

	setenv("VASTAI_API_BASE_URL", "http://env2", 1);
	assert_int_equal(config_load(c, path, &e), 0);
	/* env beats file, and the second env name counts when the first is unset */
	assert_string_equal(config_get(c, "vast.url"), "http://env2");
	assert_string_equal(config_origin(c, "vast.url"), "env VASTAI_API_BASE_URL");
	assert_int_equal(config_int(c, "dataset.min_images"), 5);
	assert_non_null(strstr(config_origin(c, "dataset.min_images"), ":3"));
	config_free(c);

	/* the first env name wins over the second */
	setenv("VAST_URL", "http://env1", 1);
	c = config_new();
	assert_int_equal(config_load(c, path, &e), 0);
	assert_string_equal(config_get(c, "vast.url"), "http://env1");
	/* a flag beats everything */
	assert_int_equal(config_set_assignment(c, "vast.url=http://flag", &e), 0);
	assert_string_equal(config_get(c, "vast.url"), "http://flag");
	assert_string_equal(config_origin(c, "vast.url"), "flag");
	config_free(c);
	unsetenv("VAST_URL");
	unsetenv("VASTAI_API_BASE_URL");
	free(path);
}

static void test_bad_file(void **state)
{
	struct config *c = config_new();
	struct err e = { 0 };
	char *path = write_config("dataset.min_images = ten\n");

	assert_int_equal(config_load(c, path, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "config:1"));
	assert_non_null(strstr(e.msg, "ten"));
	config_free(c);
	free(path);

	c = config_new();
	path = write_config("\nno.such.key = 1\n");
	assert_int_equal(config_load(c, path, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, ":2"));
	assert_non_null(strstr(e.msg, "no.such.key"));
	config_free(c);
	free(path);

	c = config_new();
	path = xasprintf("%s/missing", tmpdir);
	/* an explicit file must exist; the default one may be absent */
	assert_int_equal(config_load(c, path, &e), ERR_CONFIG);
	config_free(c);
	free(path);

	c = config_new();
	assert_int_equal(config_set(c, "threads", "-1", CONFIG_SRC_FLAG, &e), ERR_USAGE);
	assert_int_equal(config_set(c, "nope", "1", CONFIG_SRC_FLAG, &e), ERR_USAGE);
	assert_int_equal(config_set_assignment(c, "novalue", &e), ERR_USAGE);
	/* secrets never come from argv, where every user can read them */
	assert_int_equal(config_set_assignment(c, "vast.api_key=sk-visible", &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "VAST_API_KEY"));
	assert_null(config_get(c, "vast.api_key"));
	config_free(c);
}

static void test_secrets(void **state)
{
	char *keydir = xasprintf("%s/.config/vastai", tmpdir);
	char *keyfile = xasprintf("%s/vast_api_key", keydir);
	struct config *c = config_new();
	struct buf b = BUF_INIT;
	char *printed = NULL;
	size_t n = 0;
	FILE *f;

	assert_int_equal(fsx_mkdir_p(keydir, 0700, NULL), 0);
	assert_int_equal(fsx_write_atomic(keyfile, "sekrit-from-file\n", 17, 0600, NULL), 0);
	assert_int_equal(config_load(c, NULL, NULL), 0);
	/* the official CLI's key file is read, trimmed, and the key masked */
	assert_string_equal(config_get(c, "vast.api_key"), "sekrit-from-file");
	assert_non_null(strstr(config_origin(c, "vast.api_key"), "vast_api_key"));
	f = open_memstream(&printed, &n);
	config_print(c, f, false);
	config_print(c, f, true);
	fclose(f);
	assert_null(strstr(printed, "sekrit"));
	assert_non_null(strstr(printed, "****"));
	buf_puts(&b, "Bearer sekrit-from-file");
	log_redact(&b);
	assert_string_equal(b.data, "Bearer ****");
	buf_release(&b);
	free(printed);
	config_free(c);

	/* the environment beats the key file */
	setenv("VAST_API_KEY", "sekrit-env", 1);
	c = config_new();
	assert_int_equal(config_load(c, NULL, NULL), 0);
	assert_string_equal(config_get(c, "vast.api_key"), "sekrit-env");
	config_free(c);
	unsetenv("VAST_API_KEY");
	log_forget_secrets();
	free(keydir);
	free(keyfile);
}

static void test_env_without_secrets(void **state)
{
	struct strv env = STRV_INIT;
	bool saw_path = false;

	setenv("VASTAI_API_KEY", "sk-hidden", 1);
	setenv("OPENAI_API_KEY", "sk-hidden-2", 1);
	setenv("VAST_URL", "http://kept", 1);
	config_env_without_secrets(&env);
	for (size_t i = 0; i < env.n; i++) {
		assert_null(strstr(env.v[i], "sk-hidden"));
		if (!strcmp(env.v[i], "VAST_URL=http://kept"))
			saw_path = true;
	}
	assert_true(saw_path);
	strv_release(&env);
	unsetenv("VASTAI_API_KEY");
	unsetenv("OPENAI_API_KEY");
	unsetenv("VAST_URL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_bad_file),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_env_without_secrets),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
