#include "store/dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/sigv4.h"

char *dir_store_path(const char *root, const char *key)
{
	return fsx_join(root, key);
}

/* The staging name beside `path`. */
static char *dir_staging(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xasprintf(DIR_STORE_STAGING "%s", path);
	return xasprintf("%.*s/" DIR_STORE_STAGING "%s", (int)(slash - path), path, slash + 1);
}

static int dir_fsync_path(const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot open %s", path);
	if (fsync(fd))
		r = err_sys(e, ERR_IO, "cannot sync %s", path);
	close(fd);
	return r;
}

int dir_store_put(const char *root, const char *file, const char *key,
		  struct dir_put_result *res, struct err *e)
{
	char *dst = dir_store_path(root, key), *stage = dir_staging(dst);
	char have[SHA256_HEX_LEN + 1];
	uint64_t have_size = 0;
	struct stat st;
	int r;

	memset(res, 0, sizeof(*res));
	r = sha256_file(file, res->sha256, &res->size, e);
	if (r)
		goto out;
	if (!stat(dst, &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size == res->size &&
	    !sha256_file(dst, have, &have_size, NULL) && !strcmp(have, res->sha256)) {
		res->skipped = true;
		goto out;
	}
	r = fsx_mkdir_parent(dst, 0755, e);
	if (!r)
		r = fsx_copy_file(file, stage, 0644, e);
	if (!r)
		r = dir_fsync_path(stage, e);
	if (!r)
		r = sha256_file(stage, have, &have_size, e);
	if (!r && (have_size != res->size || strcmp(have, res->sha256)))
		r = err_set(e, ERR_CHANGED, "%s changed while it was copied (or the copy is "
					    "damaged); put it again",
			    file);
	if (!r && rename(stage, dst))
		r = err_sys(e, ERR_IO, "cannot rename %s to %s", stage, dst);
	if (r)
		unlink(stage);
out:
	free(stage);
	free(dst);
	return r;
}

int dir_store_get(const char *root, const char *key, const char *file, uint64_t *size,
		  struct err *e)
{
	char *src = dir_store_path(root, key);
	char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
	uint64_t n = 0, m = 0;
	struct stat st;
	int r = 0;

	if (stat(src, &st) || !S_ISREG(st.st_mode)) {
		r = err_set(e, ERR_NOTFOUND, "no object '%s' in the dir store %s", key, root);
		goto out;
	}
	r = sha256_file(src, want, &n, e);
	if (!r)
		r = fsx_mkdir_parent(file, 0755, e);
	if (!r)
		r = fsx_copy_file(src, file, 0644, e);
	if (!r)
		r = sha256_file(file, got, &m, e);
	if (!r && (m != n || strcmp(want, got)))
		r = err_set(e, ERR_CHANGED, "%s changed while it was copied; get it again", src);
	if (!r && size)
		*size = n;
out:
	free(src);
	return r;
}

/* fsx_create_temp's names: NAME.tmp-XXXXXX, a copy under way. */
static bool dir_is_temp(const char *name)
{
	size_t n = strlen(name);

	return n > 11 && !strncmp(name + n - 11, ".tmp-", 5);
}

struct dir_walk {
	const char *prefix;
	struct s3_entry *v;
	size_t n, alloc;
};

static int dir_walk(const char *root, const char *rel, struct dir_walk *w, int depth,
		    struct err *e)
{
	char *path = *rel ? fsx_join(root, rel) : xstrdup(root);
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (!d) {
		r = errno == ENOENT && !*rel ? 0 : err_sys(e, ERR_IO, "cannot open %s", path);
		free(path);
		return r;
	}
	if (depth > 64) {
		closedir(d);
		free(path);
		return err_set(e, ERR_LIMIT, "%s: folders nested too deep", root);
	}
	while (!r && (de = readdir(d))) {
		char *child_rel, *child;
		struct stat st;
		size_t plen = strlen(w->prefix), clen;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    str_starts_with(de->d_name, DIR_STORE_STAGING) || dir_is_temp(de->d_name))
			continue;
		child_rel = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		clen = strlen(child_rel);
		/* Only go where keys with the prefix can be. */
		if (strncmp(child_rel, w->prefix, clen < plen ? clen : plen)) {
			free(child_rel);
			continue;
		}
		child = fsx_join(root, child_rel);
		if (lstat(child, &st)) {
			r = err_sys(e, ERR_IO, "cannot stat %s", child);
		} else if (S_ISDIR(st.st_mode)) {
			r = dir_walk(root, child_rel, w, depth + 1, e);
		} else if (S_ISREG(st.st_mode) && clen >= plen) {
			char when[32];
			struct tm tm;

			gmtime_r(&st.st_mtim.tv_sec, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			ALLOC_GROW(w->v, w->n + 1, w->alloc);
			w->v[w->n++] = (struct s3_entry){ .key = child_rel,
							  .size = (uint64_t)st.st_size,
							  .etag = xstrdup(""),
							  .last_modified = xstrdup(when) };
			child_rel = NULL;
		}
		free(child);
		free(child_rel);
	}
	closedir(d);
	free(path);
	return r;
}

static int dir_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct s3_entry *)a)->key, ((const struct s3_entry *)b)->key);
}

int dir_store_list(const char *root, const char *prefix, struct s3_entry **v, size_t *n,
		   struct err *e)
{
	struct dir_walk w = { .prefix = prefix ? prefix : "" };
	int r = dir_walk(root, "", &w, 0, e);

	if (r) {
		s3_entries_free(w.v, w.n);
		w.v = NULL;
		w.n = 0;
	}
	if (w.n)
		qsort(w.v, w.n, sizeof(*w.v), dir_entry_cmp);
	*v = w.v;
	*n = w.n;
	return r;
}

int dir_store_remove(const char *root, const char *key, struct err *e)
{
	char *path = dir_store_path(root, key);
	struct stat st;
	int r = 0;

	if (lstat(path, &st) || !S_ISREG(st.st_mode)) {
		r = err_set(e, ERR_NOTFOUND, "no object '%s' in the dir store %s", key, root);
		goto out;
	}
	if (unlink(path)) {
		r = err_sys(e, ERR_IO, "cannot remove %s", path);
		goto out;
	}
	/* Folders the key leaves empty go too, up to the root. */
	for (char *slash = strrchr(path, '/'); slash && (size_t)(slash - path) > strlen(root);
	     slash = strrchr(path, '/')) {
		*slash = '\0';
		if (rmdir(path))
			break;
	}
out:
	free(path);
	return r;
}

char *dir_store_url(const char *root, const char *key)
{
	char *path = dir_store_path(root, key), *abs = NULL;
	struct buf b = BUF_INIT;

	if (path[0] != '/') {
		char *cwd = getcwd(NULL, 0);

		abs = fsx_join(cwd ? cwd : "/", path);
		free(cwd);
	}
	buf_puts(&b, "file://");
	sigv4_uri_encode(abs ? abs : path, strlen(abs ? abs : path), false, &b);
	free(abs);
	free(path);
	return buf_detach(&b, NULL);
}
