/* Unit tests for caption providers: base64, the endpoint rule, the request
 * body, reply parsing, the command provider (argv, failures, timeouts) and
 * the retry loop against a closed port. The URL provider against a real
 * server is covered by tests/integ/t0210-caption-providers.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "dataset/captioner.h"
#include "testutil.h"

static char *tmp;

static int setup(void **state)
{
	tmp = tu_mkdtemp("cap");
	return 0;
}

static int teardown(void **state)
{
	fsx_remove_tree(tmp, NULL);
	free(tmp);
	return 0;
}

static void test_base64(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const unsigned char bin[] = { 0xff, 0xd8, 0xff, 0x00, 0x3e, 0x3f };
	char *s;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		s = captioner_base64(v[i].in, strlen(v[i].in));
		assert_string_equal(s, v[i].out);
		free(s);
	}
	s = captioner_base64(bin, sizeof(bin));
	assert_string_equal(s, "/9j/AD4/"); /* '+' and '/' alphabet, no line breaks */
	free(s);
}

static void test_endpoint(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "http://h:1/v1", "http://h:1/v1/chat/completions" },
		{ "http://h:1/v1/", "http://h:1/v1/chat/completions" },
		{ "https://api.example/v1/chat/completions", "https://api.example/v1/chat/completions" },
		{ "https://api.example/v1/chat/completions/", "https://api.example/v1/chat/completions" },
		{ "http://h", "http://h/chat/completions" },
		/* The suffix goes on the path, not after a query or fragment. */
		{ "https://h/v1?key=abc", "https://h/v1/chat/completions?key=abc" },
		{ "https://h/v1/?key=a/b", "https://h/v1/chat/completions?key=a/b" },
		{ "https://h/v1/chat/completions?key=a", "https://h/v1/chat/completions?key=a" },
		{ "http://h/v1#part", "http://h/v1/chat/completions#part" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *s = captioner_endpoint(v[i].in);
		assert_string_equal(s, v[i].out);
		free(s);
	}
}

static void test_url_shown(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/v1/chat/completions" },
		{ "https://user:pass@host/v1/chat/completions?key=abc",
		  "https://host/v1/chat/completions?\xe2\x80\xa6" },
		{ "https://sk-token@host:8443/v1", "https://host:8443/v1" },
		{ "https://host/v1?", "https://host/v1?\xe2\x80\xa6" },
		{ "https://host/v1#frag", "https://host/v1#\xe2\x80\xa6" },
		{ "https://a:b@c@host/v1", "https://host/v1" },            /* the last '@' ends it */
		{ "https://u:pa/ss@host/v1", "https://\xe2\x80\xa6@host/v1" }, /* never "pa" */
		{ "https://host/a\x01" "b", "https://host/a\\x01b" },
		{ "user:pw@host/x?y", "host/x?\xe2\x80\xa6" },            /* no scheme */
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *s = http_url_shown(v[i].in);

		if (strcmp(s, v[i].out))
			fail_msg("%s: got %s, want %s", v[i].in, s, v[i].out);
		free(s);
	}
}

static void test_url_local(void **state)
{
	static const char *const local[] = {
		"http://localhost/v1", "http://LocalHost:8000/v1", "http://localhost.:1",
		"http://127.0.0.1:8000/v1", "http://127.9.8.7/", "http://127.1:80",
		"http://[::1]:8080/v1", "http://[::ffff:127.0.0.1]/v1", "http://user:pw@localhost/v1",
		"http://localhost?x=1",
	};
	static const char *const remote[] = {
		"http://example.com/v1", "http://10.0.0.1:8000/v1", "http://128.0.0.1/",
		"http://127.0.0.1.evil.example/v1", "http://localhost.evil.example/",
		"http://localhost@evil.example/v1", "http://[2001:db8::1]:80/", "http://[::1/",
		"http://0.0.0.0/v1", "http://", "http://:80/",
	};

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!http_url_local(local[i]))
			fail_msg("%s should be this machine", local[i]);
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
		if (http_url_local(remote[i]))
			fail_msg("%s should not be this machine", remote[i]);
}

/* Run `fn` with stderr going to a file; returns what it wrote. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
	char *path = fsx_join(tmp, "stderr.txt"), *text;
	struct buf b = BUF_INIT;
	FILE *f;
	int saved;

	fflush(stderr);
	saved = dup(2);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(dup2(fileno(f), 2), 2);
	fn(arg);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	fclose(f);
	assert_int_equal(fsx_read_file(path, &b, 0, NULL), 0);
	text = buf_detach(&b, NULL);
	free(path);
	return text;
}

static void new_and_free(void *arg)
{
	struct captioner *c = NULL;
	struct err e = { 0 };

	assert_int_equal(captioner_new(&c, arg, &e), 0);
	captioner_free(c);
}

static void test_url_credentials(void **state)
{
	struct captioner_opts o = {
		.url = "https://bob:hunter2-pass@api.example/v1?api_key=qk-secret%2F99&mode=fast",
	};
	struct captioner *c = NULL;
	struct err e = { 0 };
	struct buf b = BUF_INIT;
	char *out;

	/* Shown without them, and they are masked wherever they turn up. */
	assert_int_equal(captioner_new(&c, &o, &e), 0);
	assert_string_equal(captioner_describe(c),
			    "url https://api.example/v1/chat/completions?\xe2\x80\xa6");
	buf_puts(&b, "said hunter2-pass, qk-secret%2F99, qk-secret/99 and bob in fast mode");
	log_redact(&b);
	assert_null(strstr(b.data, "hunter2"));
	assert_null(strstr(b.data, "qk-secret")); /* as written and decoded */
	assert_non_null(strstr(b.data, "fast mode")); /* not every value is a secret */
	buf_release(&b);
	captioner_free(c);
	log_forget_secrets();
	/* A URL that is refused is not shown with them either. */
	o.url = "ftp://bob:hunter2-pass@api.example/v1";
	assert_int_equal(captioner_new(&c, &o, &e), ERR_USAGE);
	assert_null(strstr(e.msg, "hunter2"));
	log_forget_secrets();

	/* A key over plain http:// to another machine: one warning. */
	o.url = "http://api.example/v1";
	o.api_key = "sk-plain-http-key";
	out = stderr_of(new_and_free, &o);
	assert_non_null(strstr(out, "http://api.example/v1/chat/completions"));
	assert_non_null(strstr(out, "unencrypted"));
	assert_null(strstr(out, "sk-plain"));
	assert_null(strstr(strstr(out, "unencrypted") + 1, "unencrypted")); /* once */
	free(out);
	/* Not to this machine, not over https, not without a key. */
	o.url = "http://127.0.0.1:9/v1";
	out = stderr_of(new_and_free, &o);
	assert_string_equal(out, "");
	free(out);
	o.url = "https://api.example/v1";
	out = stderr_of(new_and_free, &o);
	assert_string_equal(out, "");
	free(out);
	o.url = "http://api.example/v1";
	o.api_key = NULL;
	out = stderr_of(new_and_free, &o);
	assert_string_equal(out, "");
	free(out);
	log_forget_secrets();
}

static void test_request(void **state)
{
	json_t *req = captioner_request("m1", "describe", "image/png", "\x89PNG", 4);
	json_t *msg = json_array_get(json_object_get(req, "messages"), 0);
	json_t *content = json_object_get(msg, "content");
	json_t *img = json_array_get(content, 1);

	assert_string_equal(json_str(req, "model", ""), "m1");
	assert_int_equal(json_int(req, "max_tokens", 0), 300);
	assert_string_equal(json_str(msg, "role", ""), "user");
	assert_int_equal(json_array_size(content), 2);
	assert_string_equal(json_str(json_array_get(content, 0), "type", ""), "text");
	assert_string_equal(json_str(json_array_get(content, 0), "text", ""), "describe");
	assert_string_equal(json_str(img, "type", ""), "image_url");
	assert_string_equal(json_str(json_object_get(img, "image_url"), "url", ""),
			    "data:image/png;base64,iVBORw==");
	json_decref(req);
}

static void test_parse_reply(void **state)
{
	struct err e = { 0 };
	char *cap = NULL;
	const char *ok = "{\"choices\":[{\"message\":{\"role\":\"assistant\","
			 "\"content\":\"  a red car  \\n\"}}]}";
	const char *parts = "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\","
			    "\"text\":\"a red\"},{\"type\":\"other\",\"text\":\"x\"},"
			    "{\"type\":\"text\",\"text\":\"car\"}]}}]}";
	const char *err429 = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"x\"}}";

	assert_int_equal(captioner_parse_reply(200, ok, strlen(ok), &cap, &e), 0);
	assert_string_equal(cap, "a red car");
	free(cap);
	assert_int_equal(captioner_parse_reply(200, parts, strlen(parts), &cap, &e), 0);
	assert_string_equal(cap, "a red car");
	free(cap);

	assert_int_equal(captioner_parse_reply(429, err429, strlen(err429), &cap, &e), ERR_HTTP);
	assert_null(cap);
	assert_non_null(strstr(e.msg, "HTTP 429"));
	assert_non_null(strstr(e.msg, "Rate limit reached"));

	assert_int_equal(captioner_parse_reply(502, "<html>Bad gateway</html>\nmore", 30, &cap, &e),
			 ERR_HTTP);
	assert_non_null(strstr(e.msg, "HTTP 502"));
	assert_non_null(strstr(e.msg, "Bad gateway"));
	assert_null(strstr(e.msg, "more"));

	/* An error object with a 200 status is still an error. */
	assert_int_equal(captioner_parse_reply(200, err429, strlen(err429), &cap, &e), ERR_HTTP);
	assert_int_equal(captioner_parse_reply(200, "{\"choices\":[]}", 14, &cap, &e), ERR_FORMAT);
	assert_int_equal(captioner_parse_reply(200, "not json", 8, &cap, &e), ERR_FORMAT);
	{
		const char *empty = "{\"choices\":[{\"message\":{\"content\":\"   \"}}]}";
		assert_int_equal(captioner_parse_reply(200, empty, strlen(empty), &cap, &e),
				 ERR_FORMAT);
		assert_non_null(strstr(e.msg, "empty"));
	}
}

static char *make_image(const char *name)
{
	char *path = fsx_join(tmp, name);

	assert_int_equal(fsx_write_atomic(path, "\xff\xd8\xff\xe0 fake jpeg", 14, 0644, NULL), 0);
	return path;
}

static int caption_with(const char *cmd, int timeout_s, const char *path, char **cap,
			struct err *e)
{
	struct captioner_opts o = { .cmd = cmd, .timeout_s = timeout_s };
	struct captioner *c = NULL;
	int r;

	assert_int_equal(captioner_new(&c, &o, e), 0);
	assert_non_null(strstr(captioner_describe(c), "command"));
	r = captioner_caption(c, path, cap, e);
	captioner_free(c);
	return r;
}

static void test_command(void **state)
{
	char *hostile = make_image("$(touch pwned) it's \"x\"; a b.jpg");
	char *pwned = fsx_join(tmp, "pwned");
	char *expect = xasprintf("caption for %s", hostile);
	struct err e = { 0 };
	char *cap = NULL;
	struct stat st;

	/* The path arrives as one argument, the last, and nothing expands it. */
	assert_int_equal(caption_with("printf 'caption for %s'", 10, hostile, &cap, &e), 0);
	assert_string_equal(cap, expect);
	free(cap);
	assert_int_not_equal(stat(pwned, &st), 0);
	assert_int_not_equal(stat("pwned", &st), 0);
	/* And it is the last one: arguments from the setting come first. */
	assert_int_equal(caption_with("sh -c 'printf \"%s:%s\" \"$#\" \"$1\"' sh first", 10, hostile,
				      &cap, &e), 0);
	free(expect);
	expect = xasprintf("2:first");
	assert_string_equal(cap, expect);
	free(cap);

	/* Output is trimmed. */
	assert_int_equal(caption_with("printf '\\n  spaced out \\n\\n'", 10, hostile, &cap, &e), 0);
	assert_string_equal(cap, "spaced out");
	free(cap);

	/* Failures say why. */
	assert_int_equal(caption_with("sh -c 'echo; echo model not loaded >&2; exit 3' sh", 10,
				      hostile, &cap, &e), ERR_FAIL);
	assert_null(cap);
	assert_non_null(strstr(e.msg, "exit status 3"));
	assert_non_null(strstr(e.msg, "model not loaded"));
	assert_int_equal(caption_with("true", 10, hostile, &cap, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "empty"));
	assert_int_equal(caption_with("printf '\\377\\376'", 10, hostile, &cap, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "UTF-8"));
	assert_int_equal(caption_with("sh -c 'sleep 20' sh", 1, hostile, &cap, &e), ERR_TIMEOUT);
	assert_non_null(strstr(e.msg, "1 s"));
	assert_int_not_equal(caption_with("/nonexistent/captioner --x", 10, hostile, &cap, &e), 0);
	assert_non_null(strstr(e.msg, "nonexistent"));

	free(expect);
	free(pwned);
	free(hostile);
}

/* The program gets ferry's environment without the secrets in it. */
static void test_command_env(void **state)
{
	static const char *const secrets[] = { "VAST_API_KEY", "OPENAI_API_KEY",
					       "FERRY_CAPTION_API_KEY", "HF_TOKEN",
					       "AWS_SECRET_ACCESS_KEY", "R2_SECRET_ACCESS_KEY" };
	char *img = make_image("env.jpg");
	struct err e = { 0 };
	char *cap = NULL;

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_int_equal(setenv(secrets[i], "s3cret-value", 1), 0);
	assert_int_equal(setenv("FERRY_TEST_PLAIN", "plain", 1), 0);
	assert_int_equal(caption_with("sh -c 'env | grep -c s3cret-value; "
				      "printf \"%s|%s|%s\" \"${VAST_API_KEY-unset}\" "
				      "\"${OPENAI_API_KEY-unset}\" \"$FERRY_TEST_PLAIN\"' sh",
				      10, img, &cap, &e), 0);
	assert_string_equal(cap, "0\nunset|unset|plain");
	free(cap);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		unsetenv(secrets[i]);
	unsetenv("FERRY_TEST_PLAIN");
	free(img);
}

static void test_new_rejects(void **state)
{
	struct captioner_opts o = { 0 };
	struct captioner *c = NULL;
	struct err e = { 0 };

	assert_int_equal(captioner_new(&c, &o, &e), ERR_USAGE);
	o.cmd = "prog 'unterminated";
	assert_int_equal(captioner_new(&c, &o, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "caption.cmd"));
	o.cmd = "   ";
	assert_int_equal(captioner_new(&c, &o, &e), ERR_USAGE);
	o.cmd = NULL;
	o.url = "ftp://host/v1";
	assert_int_equal(captioner_new(&c, &o, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "http"));
	assert_null(c);
}

static void test_from_config(void **state)
{
	struct config *cfg = config_new();
	struct captioner_opts o;
	struct err e = { 0 };

	assert_int_equal(captioner_opts_from_config(&o, cfg, &e), ERR_NOTFOUND);
	assert_null(o.cmd);
	assert_null(o.url);
	assert_int_equal(o.timeout_s, 120);
	assert_int_equal(config_set(cfg, "caption.url", "http://127.0.0.1:9/v1", CONFIG_SRC_ENV, &e), 0);
	assert_int_equal(captioner_opts_from_config(&o, cfg, &e), 0);
	assert_string_equal(o.url, "http://127.0.0.1:9/v1");
	assert_null(o.cmd);
	/* A flag beats the environment. */
	assert_int_equal(config_set(cfg, "caption.cmd", "blip", CONFIG_SRC_FLAG, &e), 0);
	assert_int_equal(captioner_opts_from_config(&o, cfg, &e), 0);
	assert_string_equal(o.cmd, "blip");
	assert_null(o.url);
	/* Two of equal rank: the user must choose. */
	assert_int_equal(config_set(cfg, "caption.url", "http://x/v1", CONFIG_SRC_FLAG, &e), 0);
	assert_int_equal(captioner_opts_from_config(&o, cfg, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "caption.cmd"));
	config_free(cfg);
}

/* A port nothing listens on. */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void test_url_retries_then_fails(void **state)
{
	char *url = xasprintf("http://127.0.0.1:%d/v1", closed_port());
	char *img = make_image("x.jpg");
	struct captioner_opts o = { .url = url, .api_key = "sk-test-SECRET-123", .timeout_s = 5,
				    .max_tries = 2, .backoff_ms = 10 };
	struct captioner *c = NULL;
	struct err e = { 0 };
	char *cap = NULL;

	assert_int_equal(captioner_new(&c, &o, &e), 0);
	assert_non_null(strstr(captioner_describe(c), "/v1/chat/completions"));
	assert_int_not_equal(captioner_caption(c, img, &cap, &e), 0);
	assert_null(cap);
	assert_non_null(strstr(e.msg, "after 2 tries"));
	assert_non_null(strstr(e.msg, "cannot reach"));
	assert_null(strstr(e.msg, "SECRET"));
	/* A file that is no image is refused before anything is sent. */
	{
		char *txt = fsx_join(tmp, "notimage.txt");

		assert_int_equal(fsx_write_atomic(txt, "hello", 5, 0644, NULL), 0);
		assert_int_equal(captioner_caption(c, txt, &cap, &e), ERR_FORMAT);
		free(txt);
	}
	captioner_free(c);
	log_forget_secrets();
	free(img);
	free(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_url_shown),
		cmocka_unit_test(test_url_local),
		cmocka_unit_test(test_url_credentials),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_parse_reply),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_command_env),
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_from_config),
		cmocka_unit_test(test_url_retries_then_fails),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
