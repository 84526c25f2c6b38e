#include "fsx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

int fsx_mkdir_p(const char *path, mode_t mode, struct err *e)
{
	char *p = xstrdup(path);
	int r = 0;

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, mode) && errno != EEXIST) {
			r = err_sys(e, ERR_IO, "cannot create directory %s", p);
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	if (!r) {
		struct stat st;
		if (stat(path, &st) || !S_ISDIR(st.st_mode))
			r = err_set(e, ERR_IO, "%s exists and is not a directory", path);
	}
	free(p);
	return r;
}

int fsx_mkdir_parent(const char *path, mode_t mode, struct err *e)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int r = 0;

	if (slash && slash != dir) {
		*slash = '\0';
		r = fsx_mkdir_p(dir, mode, e);
	}
	free(dir);
	return r;
}

int fsx_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ERR_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsx_create_temp(const char *path, mode_t mode, int *fd, char **tmp, struct err *e)
{
	int r = 0;

	*tmp = xasprintf("%s.tmp-XXXXXX", path);
	*fd = mkostemp(*tmp, O_CLOEXEC);
	if (*fd < 0) {
		r = err_sys(e, ERR_IO, "cannot create a temporary file beside %s", path);
	} else if (fchmod(*fd, mode)) {
		r = err_sys(e, ERR_IO, "cannot set the mode of %s", *tmp);
		close(*fd);
		*fd = -1;
		unlink(*tmp);
	}
	if (r) {
		free(*tmp);
		*tmp = NULL;
	}
	return r;
}

int fsx_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
	char *tmp = NULL;
	int fd, r = 0;

	r = fsx_create_temp(path, mode, &fd, &tmp, e);
	if (r)
		return r;
	if (fsx_write_all(fd, data, len) || fsync(fd)) {
		r = err_sys(e, ERR_IO, "cannot write %s", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) || rename(tmp, path)) {
		r = err_sys(e, ERR_IO, "cannot write %s", path);
		unlink(tmp);
	}
out:
	free(tmp);
	return r;
}

int fsx_open_regular(const char *path, int *fd, struct stat *st, struct err *e)
{
	int r = 0;

	*fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0)
		return err_sys(e, ERR_IO, "cannot open %s", path);
	if (fstat(*fd, st))
		r = err_sys(e, ERR_IO, "cannot stat %s", path);
	else if (!S_ISREG(st->st_mode))
		r = err_set(e, ERR_FORMAT, "%s is not a regular file", path);
	if (r) {
		close(*fd);
		*fd = -1;
		return r;
	}
	fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

int fsx_read_file(const char *path, struct buf *out, size_t max, struct err *e)
{
	struct stat st;
	int fd, r;

	r = fsx_open_regular(path, &fd, &st, e);
	if (r)
		return r;
	r = fsx_read_fd(fd, path, out, max, e);
	close(fd);
	return r;
}

int fsx_read_fd(int fd, const char *path, struct buf *out, size_t max, struct err *e)
{
	size_t start = out->len;
	struct stat st;

	if (!max)
		max = 256u << 20;
	if (!fstat(fd, &st) && (size_t)st.st_size > max)
		return err_set(e, ERR_LIMIT, "%s is larger than %zu bytes", path, max);
	if (!fstat(fd, &st) && st.st_size > 0)
		buf_grow(out, (size_t)st.st_size);
	for (;;) {
		ssize_t n;

		buf_grow(out, 65536);
		n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, ERR_IO, "cannot read %s", path);
		if (!n)
			return 0;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len - start > max)
			return err_set(e, ERR_LIMIT, "%s is larger than %zu bytes", path, max);
	}
}

int fsx_copy_file(const char *src, const char *dst, mode_t mode, struct err *e)
{
	char *tmp = NULL;
	char *chunk = xmalloc(1u << 20);
	int in, outfd = -1, r = 0;
	struct stat st;
	ssize_t n;

	r = fsx_open_regular(src, &in, &st, e);
	if (!r)
		r = fsx_create_temp(dst, mode, &outfd, &tmp, e);
	if (r)
		goto out;
	while ((n = read(in, chunk, 1u << 20)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_sys(e, ERR_IO, "cannot read %s", src);
			goto out;
		}
		if (fsx_write_all(outfd, chunk, (size_t)n)) {
			r = err_sys(e, ERR_IO, "cannot write %s", tmp);
			goto out;
		}
	}
	if (close(outfd)) {
		outfd = -1;
		r = err_sys(e, ERR_IO, "cannot write %s", tmp);
		goto out;
	}
	outfd = -1;
	if (rename(tmp, dst))
		r = err_sys(e, ERR_IO, "cannot create %s", dst);
out:
	if (in >= 0)
		close(in);
	if (outfd >= 0)
		close(outfd);
	if (r && tmp)
		unlink(tmp);
	free(chunk);
	free(tmp);
	return r;
}

char *fsx_join(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (!n)
		return xstrdup(b);
	return xasprintf("%s%s%s", a, a[n - 1] == '/' ? "" : "/", b);
}

bool fsx_relpath_safe(const char *rel)
{
	const char *p = rel;

	if (!*rel || *rel == '/')
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

int fsx_remove_tree(const char *path, struct err *e)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : err_sys(e, ERR_IO, "cannot stat %s", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) && errno != ENOENT)
			return err_sys(e, ERR_IO, "cannot remove %s", path);
		return 0;
	}
	d = opendir(path);
	if (!d)
		return err_sys(e, ERR_IO, "cannot open directory %s", path);
	while (!r && (de = readdir(d))) {
		char *child;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		child = fsx_join(path, de->d_name);
		r = fsx_remove_tree(child, e);
		free(child);
	}
	closedir(d);
	if (!r && rmdir(path))
		r = err_sys(e, ERR_IO, "cannot remove %s", path);
	return r;
}

/* Add the regular files under `path` (a folder; links not followed). */
static int fsx_tree_add(const char *path, unsigned long long *sum, struct err *e)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (!d)
		return err_sys(e, ERR_IO, "cannot walk %s", path);
	while (!r && (de = readdir(d))) {
		struct stat st;
		char *child;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		child = fsx_join(path, de->d_name);
		if (lstat(child, &st))
			r = errno == ENOENT ? 0 : err_sys(e, ERR_IO, "cannot stat %s", child);
		else if (S_ISREG(st.st_mode))
			*sum += (unsigned long long)st.st_size;
		else if (S_ISDIR(st.st_mode))
			r = fsx_tree_add(child, sum, e);
		free(child);
	}
	closedir(d);
	return r;
}

int fsx_tree_bytes(const char *path, unsigned long long *bytes, struct err *e)
{
	struct stat st;
	unsigned long long sum = 0;
	int r;

	*bytes = 0;
	if (stat(path, &st))
		return err_sys(e, ERR_IO, "%s", path);
	if (S_ISREG(st.st_mode)) {
		*bytes = (unsigned long long)st.st_size;
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	r = fsx_tree_add(path, &sum, e);
	if (!r)
		*bytes = sum;
	return r;
}

int fsx_lock(const char *path, int *fd, struct err *e)
{
	int r = fsx_mkdir_parent(path, 0700, e);

	*fd = -1;
	if (r)
		return r;
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0)
		return err_sys(e, ERR_IO, "cannot open lock %s", path);
	if (flock(*fd, LOCK_EX | LOCK_NB)) {
		int saved = errno;

		close(*fd);
		*fd = -1;
		errno = saved;
		if (saved == EWOULDBLOCK)
			return err_set(e, ERR_EXISTS, "%s is held by another process", path);
		return err_sys(e, ERR_IO, "cannot lock %s", path);
	}
	return 0;
}
