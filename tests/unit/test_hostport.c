/* Unit tests for common/hostport: the three forms an address takes, and
 * messages that name the setting and the bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hostport.h"

static void good(const char *text, bool port0_ok, const char *want_host, int want_port)
{
	struct err e = { 0 };
	char *host = NULL;
	int port = -1;

	if (hostport_parse(text, "api.listen", port0_ok, &host, &port, &e))
		fail_msg("'%s': %s", text, e.msg);
	assert_non_null(host);
	assert_string_equal(host, want_host);
	assert_int_equal(port, want_port);
	free(host);
}

/* A bad `text` is ERR_USAGE with *host NULL and a message holding the
 * setting, the value and `why`. */
static void bad(const char *text, bool port0_ok, const char *why)
{
	struct err e = { 0 };
	char *host = (char *)"untouched";
	int port = -1;

	assert_int_equal(hostport_parse(text, "api.listen", port0_ok, &host, &port, &e), ERR_USAGE);
	assert_null(host);
	assert_int_equal(e.code, ERR_USAGE);
	if (!strstr(e.msg, "api.listen") || !strstr(e.msg, text) || !strstr(e.msg, why))
		fail_msg("'%s': the message '%s' should name api.listen, the value and '%s'", text,
			 e.msg, why);
}

static void test_good(void **state)
{
	good("127.0.0.1:8080", false, "127.0.0.1", 8080);
	good("localhost:65535", false, "localhost", 65535);
	good("example.com:1", false, "example.com", 1);
	good("127.0.0.1:0", true, "127.0.0.1", 0);
	good("[::1]:8080", false, "::1", 8080);
	good("[::]:0", true, "::", 0);
	good("[fe80::1%eth0]:22", false, "fe80::1%eth0", 22);
	good(":8080", false, "", 8080);
	good(":0", true, "", 0);
	good("h:0080", false, "h", 80);
}

static void test_bad(void **state)
{
	bad("", false, "want HOST:PORT");
	bad("127.0.0.1", false, "want HOST:PORT");
	bad("[::1]", false, "want HOST:PORT");
	bad("[::1]8080", false, "want HOST:PORT");
	bad("[]:80", false, "want HOST:PORT");
	bad("[::1:80", false, "want HOST:PORT");
	bad("::1:80", false, "in brackets");
	bad("a:b:80", false, "in brackets");
	bad("127.0.0.1:", false, "from 1 to 65535");
	bad("127.0.0.1:65536", true, "from 0 to 65535");
	bad("127.0.0.1:99999999999999999999999", true, "from 0 to 65535");
	bad("h:-1", false, "from 1 to 65535");
	bad("h:+1", false, "from 1 to 65535");
	bad("h: 80", false, "from 1 to 65535");
	bad("h:80x", false, "from 1 to 65535");
	bad("h:0", false, "from 1 to 65535");
	bad(":0", false, "from 1 to 65535");
	bad("my host:80", false, "character");
	bad("a/b:80", false, "character");
	bad("a]:80", false, "character");
	bad("tab\t:80", false, "character");
}

/* A NULL e is never written through. */
static void test_null_err(void **state)
{
	char *host = NULL;
	int port = -1;

	assert_int_equal(hostport_parse("nope", "x", false, &host, &port, NULL), ERR_USAGE);
	assert_null(host);
	assert_int_equal(hostport_parse("h:1", "x", false, &host, &port, NULL), 0);
	assert_string_equal(host, "h");
	free(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_null_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
