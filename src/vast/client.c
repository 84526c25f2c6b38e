#include "vast/client.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/buf.h"
#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

#define VAST_DEFAULT_URL "https://console.vast.ai"
#define VAST_LIST_PAGE 25        /* the v1 list's largest page */
#define VAST_LIST_MAX_PAGES 400  /* 10,000 instances: a loop guard */
#define VAST_GONE_LOOKS 10       /* looks after a destroy before giving up */

struct vast_client {
	char *base;     /* no trailing slash */
	char *auth;     /* "Authorization: Bearer ..." or NULL */
	int timeout_s;
	struct http_retry retry;
	struct cancel *cancel;
};

int vast_client_new(struct vast_client **out, const struct vast_client_opts *o, struct err *e)
{
	struct vast_client *c;
	const char *url = o->url && *o->url ? o->url : VAST_DEFAULT_URL;
	size_t n = strlen(url);

	*out = NULL;
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
		return err_set(e, ERR_CONFIG, "vast.url '%s' must start with http:// or https://",
			       url);
	c = xcalloc(1, sizeof(*c));
	while (n > 8 && url[n - 1] == '/')
		n--;
	c->base = xstrndup(url, n);
	http_url_register_secrets(c->base);
	if (o->api_key && *o->api_key) {
		log_register_secret(o->api_key);
		c->auth = xasprintf("Authorization: Bearer %s", o->api_key);
	}
	c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;
	c->retry.max_tries = o->max_tries > 0 ? o->max_tries : 5;
	c->retry.base_ms = o->backoff_ms > 0 ? o->backoff_ms : 250;
	c->retry.max_ms = 8000;
	*out = c;
	return 0;
}

int vast_client_from_config(struct vast_client **out, const struct config *cfg, bool need_key,
			    struct err *e)
{
	struct vast_client_opts o = {
		.url = config_get(cfg, "vast.url"),
		.api_key = config_get(cfg, "vast.api_key"),
		.timeout_s = (int)config_int(cfg, "vast.timeout"),
		.max_tries = (int)config_int(cfg, "vast.tries"),
	};

	*out = NULL;
	if (need_key && (!o.api_key || !*o.api_key))
		return err_set(e, ERR_CONFIG,
			       "no Vast.ai API key: set VAST_API_KEY (or VASTAI_API_KEY), "
			       "vast.api_key in the config file, or write it to "
			       "~/.config/vastai/vast_api_key");
	return vast_client_new(out, &o, e);
}

void vast_client_free(struct vast_client *c)
{
	if (!c)
		return;
	free(c->base);
	if (c->auth)
		freezero(c->auth, strlen(c->auth));
	free(c);
}

const char *vast_error_code(const json_t *answer)
{
	const char *s = json_str(answer, "error", NULL);

	return s ? s : "";
}

/* The human part of an error body: msg, message, detail or error. */
static const char *vast_error_text(const json_t *body)
{
	static const char *const keys[] = { "msg", "message", "detail", "error" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *s = json_str(body, keys[i], NULL);

		if (s && *s)
			return s;
	}
	return NULL;
}

/* A plain-text or HTML body cut to its first meaningful line, escaped. */
static void vast_text_excerpt(const char *s, size_t len, struct buf *out)
{
	const char *title = memmem(s, len, "<title>", 7);
	char *line;
	size_t n;

	if (title) {
		const char *end = s + len;

		s = title + 7;
		n = 0;
		while (s + n < end && s[n] != '<')
			n++;
	} else {
		while (len && strchr(" \t\r\n", *s)) {
			s++;
			len--;
		}
		n = 0;
		while (n < len && s[n] != '\n' && s[n] != '\r')
			n++;
	}
	if (n > 200)
		n = 200;
	line = xstrndup(s, n);
	str_escape(line, out);
	free(line);
}

static bool vast_is_auth_error(long status, const json_t *body)
{
	const char *code = vast_error_code(body), *text = vast_error_text(body);

	if (!strcmp(code, "auth_error") || !strcmp(code, "not_authorized"))
		return true;
	if (text && strcasestr(text, "invalid user key"))
		return true;
	return status == 401;
}

/* Turn an error answer into an error code and one clear message. */
static int vast_answer_error(long status, const struct http_response *rs, const json_t *body,
			     const char *what, struct err *e)
{
	struct buf b = BUF_INIT;
	const char *code = vast_error_code(body), *text = vast_error_text(body);
	int r = ERR_HTTP;

	if (body && text)
		buf_puts(&b, text);
	else if (rs->body.len)
		vast_text_excerpt(rs->body.data, rs->body.len, &b);
	if (vast_is_auth_error(status, body)) {
		r = err_set(e, ERR_CONFIG,
			    "Vast.ai refused the API key (HTTP %ld%s%s%s%s); check VAST_API_KEY, "
			    "vast.api_key or ~/.config/vastai/vast_api_key",
			    status, *code ? " " : "", code, b.len ? ": " : "", b.data);
	} else {
		if ((status == 404 || status == 410) &&
		    (!strncmp(code, "no_such", 7) || !strcmp(code, "not_found")))
			r = ERR_NOTFOUND;
		err_set(e, r, "%s: HTTP %ld%s%s%s%s%s", what, status, *code ? " " : "", code,
			b.len ? ": " : "", b.data,
			status == 429 ? " (rate limited; Vast sends no Retry-After)" : "");
	}
	buf_release(&b);
	return r;
}

/* vast_call, and with `raw`, a 2xx body is handed over unparsed. */
static int vast_call_ex(struct vast_client *c, const char *method, const char *path,
			const json_t *body, bool idempotent, json_t **answer, struct buf *raw,
			long *status, struct err *e)
{
	struct http_retry retry = c->retry;
	struct http_response rs;
	struct buf url = BUF_INIT, what = BUF_INIT, shown = BUF_INIT;
	const char *hdrs[] = { "Accept: application/json", "Content-Type: application/json",
			       c->auth, NULL };
	char *payload = NULL;
	json_t *doc = NULL;
	json_error_t je;
	int r;

	*answer = NULL;
	if (status)
		*status = 0;
	buf_puts(&url, c->base);
	if (strncmp(path, "/api/v", 6))
		buf_puts(&url, "/api/v0");
	buf_puts(&url, path);
	/* Messages name the route without its query. */
	buf_add(&shown, url.data, strcspn(url.data, "?"));
	buf_printf(&what, "Vast API %s %s", method, shown.data + strlen(c->base));
	if (body)
		payload = json_dumps(body, JSON_COMPACT);
	else if (strcmp(method, "GET"))
		payload = xstrdup("{}");
	retry.idempotent = idempotent;
	if (!idempotent) /* a create's rate-limit penalty is longer: back off more */
		retry.base_ms *= 4;
	http_response_init(&rs);
	{
		const struct http_request rq = { .method = method, .url = url.data,
						 .shown = shown.data, .headers = hdrs,
						 .body = payload,
						 .body_len = payload ? strlen(payload) : 0,
						 .timeout_s = c->timeout_s,
						 /* A create cut halfway loses the answer
						  * naming an instance that may bill. */
						 .cancel = idempotent ? c->cancel : NULL };

		r = http_do(&rq, &retry, &rs, e);
	}
	if (r) {
		err_prefix(e, "Vast API");
		goto out;
	}
	if (status)
		*status = rs.status;
	if (raw && rs.status >= 200 && rs.status <= 299) {
		buf_release(raw);
		*raw = rs.body;
		buf_init(&rs.body);
		goto out;
	}
	if (rs.body.len)
		doc = json_loadb(rs.body.data, rs.body.len, JSON_REJECT_DUPLICATES, &je);
	else if (rs.status >= 200 && rs.status <= 299)
		doc = json_object(); /* "204 No Content" says success as well */
	if (rs.status < 200 || rs.status > 299 ||
	    (json_is_object(doc) && json_is_false(json_object_get(doc, "success")))) {
		r = vast_answer_error(rs.status, &rs, doc, what.data, e);
		/* Say when the answer is the last of several tries, as http_do
		 * does for transport errors. */
		if (rs.tries > 1 && e) {
			size_t len = strlen(e->msg);

			snprintf(e->msg + len, sizeof(e->msg) - len, " (after %d tries)", rs.tries);
		}
		*answer = doc;
		doc = NULL;
		goto out;
	}
	if (!doc) {
		struct buf ex = BUF_INIT;

		vast_text_excerpt(rs.body.data, rs.body.len, &ex);
		r = err_set(e, ERR_FORMAT, "%s: HTTP %ld with a reply that is not JSON (%s): %s",
			    what.data, rs.status, rs.content_type[0] ? rs.content_type : "no type",
			    rs.body.len ? ex.data : "empty");
		buf_release(&ex);
		goto out;
	}
	*answer = doc;
	doc = NULL;
out:
	json_decref(doc);
	free(payload);
	http_response_release(&rs);
	buf_release(&url);
	buf_release(&what);
	buf_release(&shown);
	return r;
}

void vast_client_set_cancel(struct vast_client *c, struct cancel *cancel)
{
	c->cancel = cancel;
}

struct cancel *vast_client_cancel(const struct vast_client *c)
{
	return c->cancel;
}

int vast_call(struct vast_client *c, const char *method, const char *path, const json_t *body,
	      bool idempotent, json_t **answer, long *status, struct err *e)
{
	return vast_call_ex(c, method, path, body, idempotent, answer, NULL, status, e);
}

int vast_search_offers_raw(struct vast_client *c, const json_t *query, struct buf *body,
			   struct err *e)
{
	json_t *answer = NULL;
	int r = vast_call_ex(c, "POST", "/bundles/", query, true, &answer, body, NULL, e);

	json_decref(answer);
	return r;
}

int vast_search_offers(struct vast_client *c, const json_t *query, json_t **answer,
		       struct err *e)
{
	int r = vast_call(c, "POST", "/bundles/", query, true, answer, NULL, e);

	if (!r && !json_is_array(json_object_get(*answer, "offers"))) {
		json_decref(*answer);
		*answer = NULL;
		r = err_set(e, ERR_FORMAT, "Vast API POST /api/v0/bundles/: the reply has no "
			    "\"offers\" list");
	}
	return r;
}

int vast_create_instance(struct vast_client *c, long long offer_id, const json_t *body,
			 json_t **answer, long *status, struct err *e)
{
	char path[64];

	snprintf(path, sizeof(path), "/asks/%lld/", offer_id);
	return vast_call(c, "PUT", path, body, false, answer, status, e);
}

int vast_show_instance(struct vast_client *c, long long id, struct vast_instance *out,
		       struct err *e)
{
	char path[80];
	json_t *a = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/instances/%lld/?owner=me", id);
	r = vast_call(c, "GET", path, NULL, true, &a, NULL, e);
	if (!r) {
		r = vast_instance_read_answer(a, out, e);
		if (r == ERR_NOTFOUND)
			err_set(e, ERR_NOTFOUND, "instance %lld does not exist", id);
	}
	json_decref(a);
	return r;
}

/* Append a URL query parameter holding `text`, percent-encoded. */
static void vast_param_text(struct buf *b, const char *name, const char *text)
{
	buf_printf(b, "%s%s=", strchr(b->data, '?') ? "&" : "?", name);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
			buf_putc(b, (char)*p);
		else
			buf_printf(b, "%%%02X", *p);
	}
}

/* Append a URL query parameter holding compact JSON, percent-encoded. */
static void vast_param(struct buf *b, const char *name, const json_t *v)
{
	char *raw = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	vast_param_text(b, name, raw);
	free(raw);
}

int vast_list_instances(struct vast_client *c, const char *label, struct vast_instance **out,
			size_t *n, struct err *e)
{
	char *token = NULL;
	int r = 0, pages = 0;

	*out = NULL;
	*n = 0;
	if (label && !str_utf8_valid(label, strlen(label)))
		return err_set(e, ERR_USAGE, "the label must be UTF-8 text");
	do {
		struct buf path = BUF_INIT;
		json_t *a = NULL, *v;
		char *next = NULL;

		buf_puts(&path, "/api/v1/instances/");
		v = json_integer(VAST_LIST_PAGE);
		vast_param(&path, "limit", v);
		json_decref(v);
		v = json_pack("[{s:s, s:s}]", "col", "id", "dir", "asc");
		vast_param(&path, "order_by", v);
		json_decref(v);
		if (label) {
			/* The official client's form; Vast's own filter is "in". */
			v = json_pack("{s:{s:[s]}}", "label", "in", label);
			vast_param(&path, "select_filters", v);
			json_decref(v);
		}
		/* The token goes back as it came, not as a JSON string: the
		 * official client JSON-encodes only values that are not strings,
		 * and a quoted token is not the one the server gave. */
		if (token)
			vast_param_text(&path, "after_token", token);
		r = vast_call(c, "GET", path.data, NULL, true, &a, NULL, e);
		buf_release(&path);
		if (!r)
			r = vast_instances_read_page(a, out, n, &next, e);
		json_decref(a);
		free(token);
		token = next;
		if (!r && token && ++pages >= VAST_LIST_MAX_PAGES)
			r = err_set(e, ERR_FORMAT, "instance list: more than %d pages; giving up",
				    VAST_LIST_MAX_PAGES);
	} while (!r && token);
	free(token);
	if (r) {
		vast_instances_free(*out, *n);
		*out = NULL;
		*n = 0;
		return r;
	}
	/* The server filters by label; make sure, since a miss means a leak. */
	for (size_t i = 0; label && i < *n;) {
		if ((*out)[i].label && !strcmp((*out)[i].label, label)) {
			i++;
			continue;
		}
		vast_instance_release(&(*out)[i]);
		memmove(&(*out)[i], &(*out)[i + 1], (*n - i - 1) * sizeof(**out));
		(*n)--;
	}
	return 0;
}

int vast_destroy_instance(struct vast_client *c, long long id, bool *was_gone, struct err *e)
{
	char path[64];
	json_t *a = NULL;
	int r;

	if (was_gone)
		*was_gone = false;
	snprintf(path, sizeof(path), "/instances/%lld/", id);
	/* Destroying twice is harmless, so a lost answer may be retried. */
	r = vast_call(c, "DELETE", path, NULL, true, &a, NULL, e);
	json_decref(a);
	if (r == ERR_NOTFOUND) {
		err_clear(e);
		if (was_gone)
			*was_gone = true;
		return 0;
	}
	return r;
}

static int vast_destroy_looks(struct vast_client *c, long long id, struct err *e)
{
	int r = 0;

	for (int look = 0; look < VAST_GONE_LOOKS; look++) {
		struct vast_instance in;
		bool gone = false;

		if (look == 0 || look % 3 == 0) {
			r = vast_destroy_instance(c, id, &gone, e);
			if (r && r != ERR_HTTP && r != ERR_IO && r != ERR_TIMEOUT)
				return r;
			if (r)
				log_warn("destroying instance %lld: %s; trying again", id, err_msg(e));
		}
		r = vast_show_instance(c, id, &in, e);
		if (r == ERR_NOTFOUND) {
			err_clear(e);
			return 0;
		}
		if (r == ERR_CONFIG)
			return r;
		if (!r)
			log_info("instance %lld is still there (%s); waiting", id,
				 in.actual_status ? in.actual_status : "provisioning");
		vast_instance_release(&in);
		if (look + 1 < VAST_GONE_LOOKS)
			clock_sleep_ms(look < 3 ? 500 : 1500, NULL);
	}
	return err_set(e, ERR_FAIL,
		       "instance %lld is still there after %d looks; it may still be billing: "
		       "destroy it with `ferry destroy %lld` or in the Vast.ai console",
		       id, VAST_GONE_LOOKS, id);
}

int vast_destroy_confirm(struct vast_client *c, long long id, struct err *e)
{
	struct cancel *saved = c->cancel;
	int r;

	/* Half a destroy leaves an instance billing with nothing tracking
	 * it: these calls and looks end on their own, within about 15 s. */
	c->cancel = NULL;
	r = vast_destroy_looks(c, id, e);
	c->cancel = saved;
	return r;
}

int vast_destroy_named(struct vast_client *c, long long id, struct err *e)
{
	struct vast_instance in;
	int r = vast_show_instance(c, id, &in, e);

	vast_instance_release(&in);
	if (r == ERR_NOTFOUND)
		return err_set(e, ERR_NOTFOUND,
			       "there is no instance %lld on this account (destroyed before, "
			       "or never rented by it)", id);
	if (r)
		return r;
	return vast_destroy_confirm(c, id, e);
}

int vast_set_label(struct vast_client *c, long long id, const char *label, struct err *e)
{
	char path[64];
	json_t *body = json_pack("{s:s}", "label", label), *a = NULL;
	int r;

	snprintf(path, sizeof(path), "/instances/%lld/", id);
	r = vast_call(c, "PUT", path, body, true, &a, NULL, e);
	json_decref(a);
	json_decref(body);
	return r;
}

int vast_ssh_keys(struct vast_client *c, struct vast_ssh_key **out, size_t *n, struct err *e)
{
	json_t *a = NULL;
	int r = vast_call(c, "GET", "/ssh/", NULL, true, &a, NULL, e);

	*out = NULL;
	*n = 0;
	if (!r)
		r = vast_ssh_keys_read(a, out, n, e);
	json_decref(a);
	return r;
}

int vast_ssh_key_register(struct vast_client *c, const char *pubkey, long long *key_id,
			  bool *added, struct err *e)
{
	struct vast_ssh_key *keys = NULL;
	size_t n = 0;
	json_t *body = NULL, *a = NULL;
	int r;

	if (added)
		*added = false;
	if (key_id)
		*key_id = 0;
	r = vast_ssh_keys(c, &keys, &n, e);
	if (r)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (vast_ssh_key_same(keys[i].key, pubkey)) {
			if (key_id)
				*key_id = keys[i].id;
			goto out;
		}
	}
	body = json_pack("{s:s}", "ssh_key", pubkey);
	/* Adding a key twice only makes a duplicate entry: safe to retry. */
	r = vast_call(c, "POST", "/ssh/", body, true, &a, NULL, e);
	if (r)
		goto out;
	if (added)
		*added = true;
	if (key_id)
		*key_id = json_int(json_object_get(a, "key"), "id", 0);
out:
	vast_ssh_keys_free(keys, n);
	json_decref(body);
	json_decref(a);
	return r;
}

int vast_attach_key(struct vast_client *c, long long id, const char *pubkey, struct err *e)
{
	char path[64];
	json_t *body = json_pack("{s:s}", "ssh_key", pubkey), *a = NULL;
	int r;

	snprintf(path, sizeof(path), "/instances/%lld/ssh/", id);
	r = vast_call(c, "POST", path, body, true, &a, NULL, e);
	json_decref(a);
	json_decref(body);
	return r;
}

int vast_current_user(struct vast_client *c, struct vast_user *out, struct err *e)
{
	json_t *a = NULL;
	int r = vast_call(c, "GET", "/users/current/", NULL, true, &a, NULL, e);

	memset(out, 0, sizeof(*out));
	if (!r)
		r = vast_user_read(a, out, e);
	json_decref(a);
	return r;
}
