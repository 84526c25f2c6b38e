#include "remote/pull.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "remote/jobdir.h"

struct pull_file {
	char *path;               /* under output/ */
	unsigned long long size;
	char mtime[32];
	double mtime_s;
	bool stable;
};

static void pull_files_free(struct pull_file *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* Parse NUL-terminated "size\tmtime\tpath" records up to a record "=end="
 * (NUL, not newline: a file name may hold any other byte). Returns where
 * the next section starts, or NULL. */
static char *pull_parse_listing(char *p, const char *end, struct pull_file **v, size_t *n)
{
	size_t alloc = 0;

	while (p && p < end) {
		char *rec = p, *t1, *t2, *nul = memchr(p, '\0', (size_t)(end - p));
		struct pull_file *f;

		if (!nul)
			return NULL;
		p = nul + 1;
		if (!strcmp(rec, "=end="))
			return p;
		t1 = strchr(rec, '\t');
		t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			continue;
		*t1 = *t2 = '\0';
		ALLOC_GROW(*v, *n + 1, alloc);
		f = &(*v)[*n];
		memset(f, 0, sizeof(*f));
		if (str_to_u64(rec, &f->size))
			continue;
		snprintf(f->mtime, sizeof(f->mtime), "%s", t1 + 1);
		if (!str_to_double(f->mtime, &f->mtime_s))
			f->mtime_s = 0;
		f->path = xstrdup(t2 + 1);
		(*n)++;
	}
	return NULL;
}

static bool pull_wanted(const char *path, const char *const *patterns)
{
	if (!patterns || !*patterns)
		return true;
	for (; *patterns; patterns++)
		if (!fnmatch(*patterns, path, 0) || !fnmatch(*patterns, path, FNM_PATHNAME))
			return true;
	return false;
}

/* How far a download is: the size of the file it appends to. */
struct pull_tick {
	const struct progress *pg;
	int fd;
	uint64_t total;
};

static void pull_tick(void *arg)
{
	struct pull_tick *t = arg;
	struct stat st;

	if (!fstat(t->fd, &st))
		progress_report(t->pg, "downloading", (uint64_t)st.st_size, t->total);
}

/* Fetch one file into `dst`, resuming `dst`.part, verified against the
 * target's SHA-256. */
static int pull_fetch(struct remote *rm, const char *jr, const struct pull_file *f,
		      const char *dst, const struct remote_pull_opts *o, const struct progress *pg,
		      uint64_t *bytes, struct err *e)
{
	char *part = xasprintf("%s.part", dst), *src = xasprintf("%s/output/%s", jr, f->path);
	char remote_hex[65], local_hex[65];
	struct buf cmd = BUF_INIT;
	struct stat st;
	int r;

	r = fsx_mkdir_parent(dst, 0755, e);
	for (int attempt = 0; !r && attempt < 2; attempt++) {
		struct pull_tick tick = { .pg = pg, .total = f->size };
		struct remote_io io = { .use_out_fd = true, .tick = pull_tick, .tick_arg = &tick,
					.cancel = o->cancel };
		unsigned long long have = 0;
		uint64_t size = 0;
		int fd;

		if (!stat(part, &st) && (unsigned long long)st.st_size <= f->size)
			have = (unsigned long long)st.st_size;
		fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (have ? 0 : O_TRUNC), 0644);
		if (fd < 0) {
			r = err_sys(e, ERR_IO, "%s", part);
			break;
		}
		io.out_fd = tick.fd = fd;
		buf_reset(&cmd);
		remote_cmdf(&cmd, "tail -c +%lld %q | head -c %lld", (long long)have + 1, src,
			    (long long)(f->size - have));
		progress_report(pg, "downloading", have, f->size);
		r = remote_run(rm, cmd.data, &io, NULL, "fetching a file", e);
		close(fd);
		if (!r)
			r = remote_sha256(rm, src, remote_hex, o->cancel, e);
		if (!r)
			r = sha256_file(part, local_hex, &size, e);
		if (r)
			break;
		if (!strcmp(remote_hex, local_hex)) {
			if (rename(part, dst))
				r = err_sys(e, ERR_IO, "%s", dst);
			*bytes += f->size - have;
			progress_report(pg, "downloading", f->size, f->size);
			break;
		}
		log_warn("%s arrived damaged; fetching it again", f->path);
		unlink(part);
		if (attempt)
			r = err_set(e, ERR_CORRUPT, "%s: SHA-256 differs from the target's twice",
				    f->path);
	}
	buf_release(&cmd);
	free(part);
	free(src);
	return r;
}

/* Fetch the listed file `f` unless the last pull fetched it as it is now. */
static int pull_one(struct remote *rm, const char *jr, const struct pull_file *f,
		    const struct remote_pull_opts *o, const struct progress *pg,
		    struct remote_pull_result *res, struct err *e)
{
	char *dst = fsx_join(o->dir, f->path);
	char *mark = xasprintf("%s/.ferry-pulled/%s", o->dir, f->path);
	char want[80];
	struct buf seen = BUF_INIT;
	int r = 0, n = snprintf(want, sizeof(want), "%llu %s", f->size, f->mtime);

	/* Fetched before with this size and time: skip. */
	if (!fsx_read_file(mark, &seen, 256, NULL) && !access(dst, F_OK) &&
	    !strcmp(str_trim(seen.data), want)) {
		res->skipped++;
		goto out;
	}
	r = pull_fetch(rm, jr, f, dst, o, pg, &res->bytes, e);
	if (!r)
		r = fsx_mkdir_parent(mark, 0755, e);
	if (!r)
		r = fsx_write_atomic(mark, want, (size_t)n, 0644, e);
	if (!r) {
		res->fetched++;
		log_info("pulled %s (%llu bytes)", f->path, f->size);
	}
out:
	buf_release(&seen);
	free(dst);
	free(mark);
	return r;
}

int remote_pull(struct remote *rm, const char *job, const struct remote_pull_opts *o,
		const struct progress *pg, struct remote_pull_result *res, struct err *e)
{
	char *jr = remote_job_root(rm, job), *p;
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	struct pull_file *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	bool exited;
	int r;

	memset(res, 0, sizeof(*res));
	r = remote_job_check(job, e);
	if (r)
		goto out;
	/* Two looks a few seconds apart: a file whose size and time did not
	 * move is complete; so is one the trainer has moved past (it wrote a
	 * later file after its last write to this one: ai-toolkit writes its
	 * outputs one at a time); once the trainer has exited, all are. */
	remote_cmdf(&cmd, "cd %q 2>/dev/null || exit 3; "
		    "[ -d output ] || { printf '=end=\\0=end=\\0'; exit 0; }; "
		    "find output -type f ! -name '*.tmp' -printf '%%s\\t%%T@\\t%%P\\0'; "
		    "printf '=end=\\0'; sleep %d; "
		    "find output -type f ! -name '*.tmp' -printf '%%s\\t%%T@\\t%%P\\0'; "
		    "printf '=end=\\0'; [ -f state/exit ] && printf 'exited\\0'; true", jr,
		    o->settle_s > 0 ? o->settle_s : 2);
	r = remote_run(rm, cmd.data, &(struct remote_io){ .cancel = o->cancel }, &out,
		       "listing the outputs", e);
	if (r)
		goto out;
	p = pull_parse_listing(out.data, out.data + out.len, &a, &na);
	p = pull_parse_listing(p, out.data + out.len, &b, &nb);
	exited = p && p < out.data + out.len && !strcmp(p, "exited");
	for (size_t i = 0; i < nb; i++) {
		for (size_t j = 0; j < na; j++)
			if (!strcmp(a[j].path, b[i].path) && a[j].size == b[i].size &&
			    !strcmp(a[j].mtime, b[i].mtime))
				b[i].stable = true;
		for (size_t j = 0; j < nb && !b[i].stable; j++)
			if (b[j].mtime_s > b[i].mtime_s)
				b[i].stable = true;
		if (exited)
			b[i].stable = true;
	}
	for (size_t i = 0; !r && i < nb; i++) {
		if (!pull_wanted(b[i].path, o->patterns) || !fsx_relpath_safe(b[i].path))
			continue;
		if (!b[i].stable)
			res->incomplete++;
		else
			r = pull_one(rm, jr, &b[i], o, pg, res, e);
	}
out:
	pull_files_free(a, na);
	pull_files_free(b, nb);
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return r;
}
