#include "store/publish.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/dir.h"

bool publish_skipped(const struct publish_opts *o, const char *rel, const char **why)
{
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	size_t n = strlen(base);

	/* Any folder of ferry's own (.ferry-*) is as private as its files. */
	for (const char *p = rel; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (str_starts_with(p, ".ferry-")) {
			*why = "ferry's own mark";
			return true;
		}
	}
	/* The caller's rule (the recipe's): what the trainer leaves that
	 * holds secrets. */
	if (o->private_file && o->private_file(o->private_arg, rel, why))
		return true;
	if (n > 5 && !strcmp(base + n - 5, ".part")) {
		*why = "a partial download";
		return true;
	}
	if (!strcmp(base, "optimizer.pt") && !o->with_optimizer) {
		*why = "the optimizer state (published only with with_optimizer)";
		return true;
	}
	return false;
}

static char *publish_now(void)
{
	time_t t = (time_t)clock_wall_s();
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(s);
}

/* Write result.json to a temporary file and put it at PREFIX/result.json. */
static int publish_result(struct store *s, const char *prefix, json_t *result,
			  const char *state_hint, struct err *e)
{
	struct store_put_result res;
	struct buf b = BUF_INIT;
	char *tmp = NULL, *key = xasprintf("%s/" PUBLISH_RESULT, prefix);
	int fd, r;

	json_to_buf(result, 1, &b);
	r = fsx_create_temp(state_hint, 0600, &fd, &tmp, e);
	if (r)
		goto out;
	r = fsx_write_all(fd, b.data, b.len) ? err_sys(e, ERR_IO, "cannot write %s", tmp) : 0;
	close(fd);
	if (!r)
		r = store_put(s, tmp, key, NULL, &res, e);
	unlink(tmp);
out:
	free(tmp);
	free(key);
	buf_release(&b);
	return r;
}

int publish_dir(struct store *s, const struct publish_opts *o, json_t **result,
		struct err *e)
{
	struct s3_entry *files = NULL;
	size_t n = 0, plen;
	json_t *res = NULL, *published, *skipped;
	char *prefix = NULL, *when = NULL, *hint = NULL;
	int r;

	*result = NULL;
	plen = o->prefix ? strlen(o->prefix) : 0;
	while (plen && o->prefix[plen - 1] == '/')
		plen--;
	if (!plen)
		return err_set(e, ERR_USAGE, "publish needs a key prefix (such as jobs/JOB)");
	prefix = xstrndup(o->prefix, plen);
	r = store_check_key(prefix, e);
	if (r)
		goto out;
	if (access(o->dir, R_OK | X_OK)) {
		r = err_sys(e, ERR_USAGE, "cannot read the folder %s", o->dir);
		goto out;
	}
	/* The dir store's walk: regular files, sorted, links and copies under
	 * way passed over. */
	r = dir_store_list(o->dir, "", &files, &n, e);
	if (r)
		goto out;
	published = json_array();
	skipped = json_array();
	when = publish_now();
	res = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:o}", "version", 1, "prefix", prefix,
			"store", store_kind_name(s), "location", store_location(s),
			"published_at", when, "files", published, "skipped", skipped);
	if (!res) {
		r = err_set(e, ERR_FORMAT, "cannot describe the publish: %s is not UTF-8",
			    store_location(s));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *rel = files[i].key, *why = NULL;
		struct store_put_result pr;
		char *path, *key, *url = NULL;
		bool public = false;
		json_t *f;

		if (!strcmp(rel, PUBLISH_RESULT))
			why = "the key of ferry's own result.json";
		else
			publish_skipped(o, rel, &why);
		if (why) {
			json_array_append_new(skipped, json_pack("{s:s, s:s}", "path", rel,
								 "reason", why));
			log_info("not publishing %s: %s", rel, why);
			continue;
		}
		path = fsx_join(o->dir, rel);
		key = xasprintf("%s/%s", prefix, rel);
		if (o->on_file)
			o->on_file(o->arg, rel, NULL);
		r = store_put(s, path, key, o->pg, &pr, e);
		if (!r)
			r = store_url(s, key, &url, &public, e);
		if (r) {
			err_prefix(e, "publishing %s", rel);
			free(path);
			free(key);
			free(url);
			goto out;
		}
		if (o->on_file)
			o->on_file(o->arg, rel, &pr);
		f = json_pack("{s:s, s:s, s:I, s:s, s:s}", "path", rel, "key", key, "size",
			      (json_int_t)pr.size, "sha256", pr.sha256, "url", url);
		if (!f) {
			r = err_set(e, ERR_FORMAT, "cannot publish %s: its name is not UTF-8", rel);
			free(path);
			free(key);
			free(url);
			goto out;
		}
		if (store_kind(s) == STORE_S3 && !public)
			json_object_set_new(f, "url_kind", json_string("presigned"));
		else
			json_object_set_new(f, "url_kind",
					    json_string(public ? "public" : "file"));
		json_array_append_new(published, f);
		free(path);
		free(key);
		free(url);
	}
	/* Last: a result.json in the store means every file above is there. */
	hint = xasprintf("%s/.ferry-result.json", o->dir);
	if (access(o->dir, W_OK)) {
		free(hint);
		hint = xasprintf("%s/ferry-result.json", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	}
	r = publish_result(s, prefix, res, hint, e);
	if (!r) {
		*result = res;
		res = NULL;
	}
out:
	json_decref(res);
	s3_entries_free(files, n);
	free(prefix);
	free(when);
	free(hint);
	return r;
}
