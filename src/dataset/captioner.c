#include "dataset/captioner.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "dataset/image.h"

#define CAP_ENDPOINT_SUFFIX "/chat/completions"
#define CAP_MAX_REPLY (8u << 20)     /* bytes of HTTP reply we keep */
#define CAP_MAX_STDOUT (1u << 20)    /* bytes of command output we keep */
#define CAP_MAX_IMAGE (64u << 20)    /* bytes of image we send */
#define CAP_MAX_RETRY_AFTER_S 60

enum cap_kind { CAP_CMD, CAP_URL };

struct captioner {
	enum cap_kind kind;
	struct strv argv;     /* command: words, the path is added per call */
	struct strv env;      /* command: ferry's environment minus the secrets */
	char *endpoint;       /* url: full chat-completions URL */
	char *shown;          /* url: the endpoint without userinfo or query */
	char *model, *prompt;
	char *api_key;
	int timeout_s, max_tries, backoff_ms;
	sem_t slots;
	char *describe;
};

/* ---- settings ---- */

static int cap_origin_rank(const struct config *c, const char *key)
{
	const char *o = config_origin(c, key);

	if (!o || !config_get(c, key) || !*config_get(c, key))
		return -1;
	if (!strcmp(o, "flag"))
		return 3;
	if (str_starts_with(o, "env"))
		return 2;
	if (str_starts_with(o, "file"))
		return 1;
	return 0;
}

int captioner_opts_from_config(struct captioner_opts *o, const struct config *c, struct err *e)
{
	int rc = cap_origin_rank(c, "caption.cmd"), ru = cap_origin_rank(c, "caption.url");

	memset(o, 0, sizeof(*o));
	o->model = config_get(c, "caption.model");
	o->prompt = config_get(c, "caption.prompt");
	o->api_key = config_get(c, "caption.api_key");
	o->timeout_s = (int)config_int(c, "caption.timeout");
	if (rc < 0 && ru < 0)
		return ERR_NOTFOUND;
	if (rc == ru)
		return err_set(e, ERR_USAGE,
			       "both caption.cmd (%s) and caption.url (%s) are set; unset one of them",
			       config_origin(c, "caption.cmd"), config_origin(c, "caption.url"));
	if (rc > ru)
		o->cmd = config_get(c, "caption.cmd");
	else
		o->url = config_get(c, "caption.url");
	return 0;
}

/* ---- building blocks ---- */

char *captioner_base64(const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	char *out = xmalloc(n);
	int w;

	if (len > (size_t)INT_MAX / 4 * 3) /* EVP_EncodeBlock counts in int; images are capped far below */
		abort();
	w = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	out[w] = '\0';
	return out;
}

char *captioner_endpoint(const char *url)
{
	const char *auth = strstr(url, "://");
	size_t n, query;

	/* The suffix goes on the path, before any query (?key=...) or fragment. */
	auth = auth ? auth + 3 : url;
	query = (size_t)(auth - url) + strcspn(auth, "?#");
	n = query;
	while (n && url[n - 1] == '/')
		n--;
	if (n >= strlen(CAP_ENDPOINT_SUFFIX) &&
	    !strncmp(url + n - strlen(CAP_ENDPOINT_SUFFIX), CAP_ENDPOINT_SUFFIX,
		     strlen(CAP_ENDPOINT_SUFFIX)))
		return xasprintf("%.*s%s", (int)n, url, url + query);
	return xasprintf("%.*s%s%s", (int)n, url, CAP_ENDPOINT_SUFFIX, url + query);
}

json_t *captioner_request(const char *model, const char *prompt, const char *mime,
			  const void *image, size_t len)
{
	char *b64 = captioner_base64(image, len);
	char *data_url = xasprintf("data:%s;base64,%s", mime, b64);
	json_t *req;

	free(b64);
	req = json_pack("{s:s, s:[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}], s:i}",
			"model", model ? model : "",
			"messages",
			"role", "user",
			"content",
			"type", "text", "text", prompt ? prompt : "",
			"type", "image_url", "image_url", "url", data_url,
			"max_tokens", 300);
	free(data_url);
	return req;
}

/* The first non-empty line of `s`, control characters replaced, at most
 * `max` bytes; "" when there is none. */
static char *cap_first_line(const char *s, size_t len, size_t max)
{
	struct buf b = BUF_INIT;
	size_t i = 0;

	while (i < len && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t'))
		i++;
	for (; i < len && s[i] != '\n' && s[i] != '\r' && b.len < max; i++) {
		unsigned char c = (unsigned char)s[i];
		buf_putc(&b, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	/* A cut may split a UTF-8 sequence; drop bytes until it is whole again. */
	while (b.len && !str_utf8_valid(b.data, b.len))
		b.data[--b.len] = '\0';
	return buf_detach(&b, NULL);
}

/* Accept a caption: UTF-8 without NUL, trimmed, not empty. */
static int cap_take_text(const char *s, size_t len, const char *who, char **caption,
			 struct err *e)
{
	char *t;

	if (!str_utf8_valid(s, len) || memchr(s, '\0', len))
		return err_set(e, ERR_FORMAT, "%s returned a caption that is not UTF-8 text", who);
	t = str_trim(xstrndup(s, len));
	if (!*t) {
		free(t);
		return err_set(e, ERR_FORMAT, "%s returned an empty caption", who);
	}
	*caption = t;
	return 0;
}

int captioner_parse_reply(long status, const char *body, size_t len, char **caption,
			  struct err *e)
{
	json_t *doc = NULL, *msg, *content;
	struct err je = { 0 };
	struct buf text = BUF_INIT;
	int r;

	*caption = NULL;
	if (len && json_parse(body, len, "caption reply", &doc, &je))
		doc = NULL;
	if (status < 200 || status > 299 ||
	    (json_is_object(doc) && json_object_get(doc, "error") &&
	     !json_is_null(json_object_get(doc, "error")))) {
		const json_t *er = json_is_object(doc) ? json_object_get(doc, "error") : NULL;
		const char *m = NULL;
		char *line = NULL;

		if (json_is_object(er))
			m = json_str(er, "message", NULL);
		else if (json_is_string(er))
			m = json_string_value(er);
		if (!m) {
			line = cap_first_line(body ? body : "", len, 300);
			m = *line ? line : "no message";
		}
		r = err_set(e, ERR_HTTP, "caption server answered HTTP %ld: %s", status, m);
		free(line);
		goto out;
	}
	if (!doc) {
		r = err_set(e, ERR_FORMAT, "caption server answered HTTP %ld with no JSON (%s)",
			    status, je.msg);
		goto out;
	}
	msg = json_object_get(json_array_get(json_object_get(doc, "choices"), 0), "message");
	content = json_object_get(msg, "content");
	if (json_is_string(content)) {
		buf_puts(&text, json_string_value(content));
	} else if (json_is_array(content)) {
		size_t i;
		json_t *part;

		json_array_foreach(content, i, part) {
			const char *t = json_str(part, "text", NULL);

			if (!t || (json_str(part, "type", NULL) &&
				   strcmp(json_str(part, "type", ""), "text")))
				continue;
			if (text.len)
				buf_putc(&text, ' ');
			buf_puts(&text, t);
		}
	} else {
		r = err_set(e, ERR_FORMAT,
			    "caption server reply has no choices[0].message.content");
		goto out;
	}
	r = cap_take_text(text.data, text.len, "caption server", caption, e);
out:
	buf_release(&text);
	json_decref(doc);
	return r;
}

/* ---- making one ---- */

int captioner_new(struct captioner **out, const struct captioner_opts *o, struct err *e)
{
	struct captioner *c = xcalloc(1, sizeof(*c));
	int r = 0, parallel;

	*out = NULL;
	c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 120;
	c->max_tries = o->max_tries > 0 ? o->max_tries : 3;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 1000;
	if (o->cmd && *o->cmd) {
		c->kind = CAP_CMD;
		r = str_split_words(o->cmd, &c->argv, e);
		if (r) {
			err_prefix(e, "caption.cmd");
			goto fail;
		}
		if (!c->argv.n) {
			r = err_set(e, ERR_USAGE, "caption.cmd is empty; give a program to run");
			goto fail;
		}
		c->describe = xasprintf("command '%s'", c->argv.v[0]);
		/* Once for the whole run: the program gets none of the keys ferry
		 * holds (Vast.ai, R2, S3, Hugging Face, the caption key). */
		config_env_without_secrets(&c->env);
		parallel = o->parallel > 0 ? o->parallel : 1;
	} else if (o->url && *o->url) {
		c->kind = CAP_URL;
		http_url_register_secrets(o->url);
		if (strncasecmp(o->url, "http://", 7) && strncasecmp(o->url, "https://", 8)) {
			char *shown = http_url_shown(o->url);

			r = err_set(e, ERR_USAGE, "caption.url '%s' must start with http:// or https://",
				    shown);
			free(shown);
			goto fail;
		}
		c->endpoint = captioner_endpoint(o->url);
		c->shown = http_url_shown(c->endpoint);
		c->model = xstrdup(o->model && *o->model ? o->model : "gpt-4o-mini");
		c->prompt = xstrdup(o->prompt ? o->prompt : "Describe this image in one sentence.");
		if (o->api_key && *o->api_key) {
			c->api_key = xstrdup(o->api_key);
			log_register_secret(c->api_key);
		}
		c->describe = xasprintf("url %s", c->shown);
		if (c->api_key && !strncasecmp(o->url, "http://", 7) &&
		    !http_url_local(o->url))
			log_warn("caption.url %s is plain http:// to another machine: the API "
				 "key travels unencrypted and anyone on the way can read it; "
				 "use https://", c->shown);
		parallel = o->parallel > 0 ? o->parallel : 4;
	} else {
		r = err_set(e, ERR_USAGE, "no caption provider: set caption.cmd or caption.url");
		goto fail;
	}
	if (sem_init(&c->slots, 0, (unsigned)parallel)) {
		r = err_sys(e, ERR_IO, "cannot set up caption slots");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	strv_release(&c->argv);
	strv_release(&c->env);
	free(c->endpoint);
	free(c->shown);
	if (c->api_key)
		freezero(c->api_key, strlen(c->api_key));
	free(c->model);
	free(c->prompt);
	free(c->describe);
	free(c);
	return r;
}

void captioner_free(struct captioner *c)
{
	if (!c)
		return;
	sem_destroy(&c->slots);
	strv_release(&c->argv);
	strv_release(&c->env);
	free(c->endpoint);
	free(c->shown);
	free(c->model);
	free(c->prompt);
	if (c->api_key)
		freezero(c->api_key, strlen(c->api_key));
	free(c->describe);
	free(c);
}

const char *captioner_describe(const struct captioner *c)
{
	return c->describe;
}

static void cap_slot_take(struct captioner *c)
{
	while (sem_wait(&c->slots) && errno == EINTR)
		;
}

/* ---- command ---- */

static int cap_run_cmd(struct captioner *c, const char *path, char **caption, struct err *e)
{
	static char *const no_env[] = { NULL };
	struct proc_opts po = { .timeout_ms = c->timeout_s * 1000, .max_output = CAP_MAX_STDOUT,
				.envp = c->env.v ? c->env.v : no_env };
	struct buf out = BUF_INIT, errout = BUF_INIT;
	const char **argv = xcalloc(c->argv.n + 2, sizeof(*argv));
	int r, status = 0;

	for (size_t i = 0; i < c->argv.n; i++)
		argv[i] = c->argv.v[i];
	argv[c->argv.n] = path; /* one argument, whatever it holds */
	argv[c->argv.n + 1] = NULL;
	cap_slot_take(c);
	r = proc_run(argv, &po, &out, &errout, &status, e);
	sem_post(&c->slots);
	if (r == ERR_TIMEOUT) {
		r = err_set(e, ERR_TIMEOUT, "caption command '%s' did not finish within %d s",
			    c->argv.v[0], c->timeout_s);
		goto out;
	}
	if (r) {
		err_prefix(e, "caption command");
		goto out;
	}
	if (status) {
		char *line = cap_first_line(errout.data, errout.len, 300);

		r = err_set(e, ERR_FAIL, "caption command '%s' failed (exit status %d)%s%s",
			    c->argv.v[0], status, *line ? ": " : "", line);
		free(line);
		goto out;
	}
	r = cap_take_text(out.data, out.len, "caption command", caption, e);
out:
	buf_release(&out);
	buf_release(&errout);
	free(argv);
	return r;
}

/* ---- url ---- */

static const char *cap_mime(const void *data, size_t len)
{
	switch (img_sniff(data, len)) {
	case IMG_JPEG: return "image/jpeg";
	case IMG_PNG: return "image/png";
	case IMG_WEBP: return "image/webp";
	default: return NULL;
	}
}

static int cap_run_url(struct captioner *c, const char *path, char **caption, struct err *e)
{
	struct buf img = BUF_INIT;
	char *body = NULL;
	json_t *req = NULL;
	const char *mime;
	int r;

	r = fsx_read_file(path, &img, CAP_MAX_IMAGE, e);
	if (r)
		goto out;
	mime = cap_mime(img.data, img.len);
	if (!mime) {
		r = err_set(e, ERR_FORMAT, "%s is not a JPEG, PNG or WebP image", path);
		goto out;
	}
	req = captioner_request(c->model, c->prompt, mime, img.data, img.len);
	body = json_dumps(req, JSON_COMPACT);
	if (!body) {
		r = err_set(e, ERR_FAIL, "cannot build the caption request");
		goto out;
	}
	{
		static const int statuses[] = { 429, 500, 502, 503, 504, 0 };
		const struct http_retry retry = { .max_tries = c->max_tries,
						  .base_ms = c->backoff_ms,
						  .max_ms = (long)c->backoff_ms << 4,
						  .idempotent = true, .statuses = statuses };
		char *auth = c->api_key ? xasprintf("Authorization: Bearer %s", c->api_key) : NULL;
		const char *hdrs[] = { "Content-Type: application/json", "Accept: application/json",
				       auth, NULL };
		const struct http_request rq = { .method = "POST", .url = c->endpoint,
						 .shown = c->shown, .headers = hdrs, .body = body,
						 .body_len = strlen(body), .timeout_s = c->timeout_s,
						 .max_reply = CAP_MAX_REPLY };
		struct http_response rs;

		http_response_init(&rs);
		log_debug("POST %s: %s, %zu bytes of image", c->shown, mime, img.len);
		cap_slot_take(c);
		r = http_do(&rq, &retry, &rs, e);
		sem_post(&c->slots);
		if (!r) {
			r = captioner_parse_reply(rs.status, rs.body.data, rs.body.len, caption, e);
			if (r && rs.tries > 1)
				err_prefix(e, "after %d tries", rs.tries);
		}
		http_response_release(&rs);
		if (auth)
			freezero(auth, strlen(auth));
	}
out:
	free(body);
	json_decref(req);
	buf_release(&img);
	return r;
}

int captioner_caption(struct captioner *c, const char *path, char **caption, struct err *e)
{
	struct err local;

	if (!e)
		e = &local; /* the retry loop reads messages back */
	err_clear(e);
	*caption = NULL;
	if (c->kind == CAP_CMD)
		return cap_run_cmd(c, path, caption, e);
	return cap_run_url(c, path, caption, e);
}
