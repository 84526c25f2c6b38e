#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/dir.h"
#include "store/sigv4.h"
#include "store/upload.h"

#define STORE_MAX_KEY 1024

struct store {
	enum store_kind kind;
	char *location;
	char *root;             /* dir */
	struct s3_client *s3;   /* s3 */
	char *public_url;       /* no trailing slash; NULL: none */
	long presign_expires;
	struct cancel *cancel;  /* not owned; NULL: none */
};

int store_check_key(const char *key, struct err *e)
{
	size_t n = key ? strlen(key) : 0;

	if (!n || n > STORE_MAX_KEY)
		return err_set(e, ERR_USAGE, "a key is 1 to %d bytes long", STORE_MAX_KEY);
	if (!str_utf8_valid(key, n) || str_has_ctrl(key) || !fsx_relpath_safe(key))
		return err_set(e, ERR_USAGE,
			       "'%.200s' is not a key: UTF-8 names separated by '/', none of "
			       "them empty, '.' or '..', no control characters",
			       key);
	for (const char *p = key; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (str_starts_with(p, ".ferry-"))
			return err_set(e, ERR_USAGE, "'%.200s': names starting with .ferry- are "
						     "ferry's own",
				       key);
	}
	return 0;
}

static int store_int(const struct config *cfg, const char *key, long long lo, long long hi,
		     long long *out, struct err *e)
{
	long long v = config_int(cfg, key);

	if (v < lo || v > hi)
		return err_set(e, ERR_CONFIG, "%s is %lld to %lld, not %lld", key, lo, hi, v);
	*out = v;
	return 0;
}

static bool store_set(const char *v)
{
	return v && *v;
}

static int store_open_s3(struct store *s, const struct config *cfg, const char *bucket,
			 struct err *e)
{
	const char *endpoint = config_get(cfg, "s3.endpoint");
	const char *account = config_get(cfg, "r2.account_id");
	const char *aws_id = config_get(cfg, "s3.access_key_id");
	const char *aws_secret = config_get(cfg, "s3.secret_access_key");
	const char *r2_id = config_get(cfg, "r2.access_key_id");
	const char *r2_secret = config_get(cfg, "r2.secret_access_key");
	const char *state = config_get(cfg, "state_dir");
	char *r2_endpoint = NULL, *uploads = NULL;
	long long part = 0, above = 0, parallel = 0, tries = 0, timeout = 0, expires = 0;
	bool r2_keys = store_set(r2_id) && store_set(r2_secret);
	bool aws_keys = store_set(aws_id) && store_set(aws_secret);
	struct s3_opts o = { 0 };
	int r;

	if ((r = store_int(cfg, "s3.part_size_mb", 5, 5120, &part, e)) ||
	    (r = store_int(cfg, "s3.multipart_mb", 5, 5120, &above, e)) ||
	    (r = store_int(cfg, "s3.parallel", 1, S3_MAX_PARALLEL, &parallel, e)) ||
	    (r = store_int(cfg, "s3.tries", 1, 100, &tries, e)) ||
	    (r = store_int(cfg, "s3.timeout", 1, 86400, &timeout, e)) ||
	    (r = store_int(cfg, "s3.presign_expires", 1, SIGV4_MAX_EXPIRES, &expires, e)))
		return r;
	o.bucket = store_set(bucket) ? bucket : config_get(cfg, "s3.bucket");
	if (!store_set(o.bucket))
		o.bucket = config_get(cfg, "r2.bucket");
	o.region = config_get(cfg, "s3.region");
	o.virtual_host = !config_bool(cfg, "s3.path_style");
	if (store_set(endpoint)) {
		/* Any S3 service; its own keys, or R2's when only those are set
		 * (an R2 endpoint given by URL). */
		o.endpoint = endpoint;
		o.access_key = aws_keys || !r2_keys ? aws_id : r2_id;
		o.secret_key = aws_keys || !r2_keys ? aws_secret : r2_secret;
		o.key_hint = aws_keys || !r2_keys ? "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
						  : "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY";
		o.session_token = aws_keys ? config_get(cfg, "s3.session_token") : NULL;
	} else if (store_set(account)) {
		for (const char *c = account; *c; c++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", *c))
				return err_set(e, ERR_CONFIG, "R2_ACCOUNT_ID '%s' is not an account id",
					       account);
		r2_endpoint = xasprintf("https://%s.r2.cloudflarestorage.com", account);
		o.endpoint = r2_endpoint;
		o.region = "auto";
		o.access_key = r2_keys || !aws_keys ? r2_id : aws_id;
		o.secret_key = r2_keys || !aws_keys ? r2_secret : aws_secret;
		o.key_hint = r2_keys || !aws_keys ? "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"
						  : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
		o.virtual_host = false;
	}
	uploads = fsx_join(state, "uploads");
	o.upload_state = uploads;
	o.part_size = (uint64_t)part * S3_MIB;
	o.multipart_above = (uint64_t)above * S3_MIB;
	o.parallel = (int)parallel;
	o.tries = (int)tries;
	o.timeout_s = (int)timeout;
	r = s3_client_new(&s->s3, &o, e);
	free(r2_endpoint);
	free(uploads);
	if (r)
		return r;
	s->presign_expires = (long)expires;
	s->location = xasprintf("s3://%s", s3_client_opts(s->s3)->bucket);
	if (store_set(config_get(cfg, "r2.public_url"))) {
		const char *pub = config_get(cfg, "r2.public_url");
		size_t n = strlen(pub);

		if (strncmp(pub, "https://", 8) && strncmp(pub, "http://", 7))
			return err_set(e, ERR_CONFIG, "R2_PUBLIC_URL '%s' must start with https://",
				       pub);
		while (n > 8 && pub[n - 1] == '/')
			n--;
		s->public_url = xstrndup(pub, n);
	}
	return 0;
}

int store_open(struct store **out, const struct config *cfg, const char *kind,
	       const char *bucket, struct err *e)
{
	struct store *s;
	int r = 0;

	*out = NULL;
	if (!kind)
		kind = config_get(cfg, "store.kind");
	s = xcalloc(1, sizeof(*s));
	if (!strcmp(kind, "dir")) {
		const char *dir = config_get(cfg, "store.dir");

		s->kind = STORE_DIR;
		s->root = store_set(dir) ? xstrdup(dir)
					 : fsx_join(config_get(cfg, "state_dir"), "artifacts");
		s->location = xstrdup(s->root);
	} else if (!strcmp(kind, "s3")) {
		s->kind = STORE_S3;
		r = store_open_s3(s, cfg, bucket, e);
	} else {
		r = err_set(e, ERR_USAGE, "a store is dir or s3, not '%s'", kind);
	}
	if (r) {
		store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s3_client_free(s->s3);
	free(s->root);
	free(s->location);
	free(s->public_url);
	free(s);
}

void store_set_cancel(struct store *s, struct cancel *cancel)
{
	s->cancel = cancel;
	if (s->s3)
		s3_client_set_cancel(s->s3, cancel);
}

/* The dir store copies locally: it looks at the token before it starts. */
static int store_cancelled(const struct store *s, const char *key, struct err *e)
{
	if (cancel_is_set(s->cancel))
		return err_set(e, ERR_CANCELLED, "%s: cancelled", key);
	return 0;
}

enum store_kind store_kind(const struct store *s)
{
	return s->kind;
}

const char *store_kind_name(const struct store *s)
{
	return s->kind == STORE_DIR ? "dir" : "s3";
}

const char *store_location(const struct store *s)
{
	return s->location;
}

int store_put(struct store *s, const char *file, const char *key,
	      const struct progress *pg, struct store_put_result *res, struct err *e)
{
	int r = store_check_key(key, e);

	memset(res, 0, sizeof(*res));
	if (!r)
		r = store_cancelled(s, key, e);
	if (r)
		return r;
	if (s->kind == STORE_DIR) {
		struct dir_put_result d;

		r = dir_store_put(s->root, file, key, &d, e);
		res->size = d.size;
		res->skipped = d.skipped;
		memcpy(res->sha256, d.sha256, sizeof(res->sha256));
	} else {
		struct s3_put_result p;

		r = s3_put_file(s->s3, file, key, pg, &p, e);
		res->size = p.size;
		res->skipped = p.skipped;
		res->multipart = p.multipart;
		res->resumed = p.resumed;
		res->parts = p.parts;
		res->parts_sent = p.parts_sent;
		res->part_size = p.part_size;
		memcpy(res->sha256, p.sha256, sizeof(res->sha256));
	}
	return r;
}

int store_get(struct store *s, const char *key, const char *file,
	      const struct progress *pg, uint64_t *size, struct err *e)
{
	int r = store_check_key(key, e);

	if (!r)
		r = store_cancelled(s, key, e);
	if (r)
		return r;
	if (s->kind == STORE_DIR)
		return dir_store_get(s->root, key, file, size, e);
	return s3_get_file(s->s3, key, file, pg, size, e);
}

int store_list(struct store *s, const char *prefix, struct s3_entry **v, size_t *n,
	       struct err *e)
{
	if (s->kind == STORE_DIR)
		return dir_store_list(s->root, prefix, v, n, e);
	return s3_list(s->s3, prefix, v, n, e);
}

int store_remove(struct store *s, const char *key, struct err *e)
{
	int r = store_check_key(key, e);

	if (r)
		return r;
	if (s->kind == STORE_DIR)
		return dir_store_remove(s->root, key, e);
	return s3_delete(s->s3, key, e);
}

int store_presign(struct store *s, const char *key, bool put, long expires_s, char **url,
		  struct err *e)
{
	int r = store_check_key(key, e);

	*url = NULL;
	if (r)
		return r;
	if (s->kind == STORE_DIR) {
		*url = dir_store_url(s->root, key);
		return 0;
	}
	return s3_presign(s->s3, put ? "PUT" : "GET", key,
			  expires_s ? expires_s : s->presign_expires, url, e);
}

int store_url(struct store *s, const char *key, char **url, bool *public, struct err *e)
{
	*public = false;
	if (s->kind == STORE_S3 && s->public_url) {
		struct buf b = BUF_INIT;
		int r = store_check_key(key, e);

		*url = NULL;
		if (r)
			return r;
		buf_printf(&b, "%s/", s->public_url);
		sigv4_uri_encode(key, strlen(key), false, &b);
		*url = buf_detach(&b, NULL);
		*public = true;
		return 0;
	}
	return store_presign(s, key, false, 0, url, e);
}
