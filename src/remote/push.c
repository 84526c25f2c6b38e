#include "remote/push.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/pack.h"
#include "remote/jobdir.h"

extern const unsigned char remote_check_sums_sh[];
extern const size_t remote_check_sums_sh_len;
extern const unsigned char remote_finish_sh[];
extern const size_t remote_finish_sh_len;

/* How far the upload is: the archive's read offset, which ssh's stdin is. */
struct push_tick {
	const struct progress *pg;
	int fd;
	uint64_t total;
};

static void push_tick(void *arg)
{
	struct push_tick *t = arg;
	off_t at = lseek(t->fd, 0, SEEK_CUR);

	if (at >= 0)
		progress_report(t->pg, "uploading", (uint64_t)at, t->total);
}

/* The archive's SHA-256, computed beside the upload: on a fast link the
 * hash would otherwise add a whole pass over the file before the first byte
 * leaves. Shared by the push and its thread, freed by whichever lets go
 * last: a cancelled push does not wait for the hash to end. */
struct push_hash {
	pthread_t thread;
	char *path, *cache_dir;
	char hex[65];
	uint64_t bytes;
	struct err err;
	int r;
	bool done;                /* the rest under lock */
	int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void push_hash_unref(struct push_hash *h)
{
	bool last;

	pthread_mutex_lock(&h->lock);
	last = !--h->refs;
	pthread_mutex_unlock(&h->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h->path);
	free(h->cache_dir);
	free(h);
}

static void *push_hash_run(void *arg)
{
	struct push_hash *h = arg;
	char hex[65];
	uint64_t bytes = 0;
	struct err err = { 0 };
	int r = sha256_file_cached(h->path, h->cache_dir, hex, &bytes, &err);

	pthread_mutex_lock(&h->lock);
	memcpy(h->hex, hex, sizeof(hex));
	h->bytes = bytes;
	h->err = err;
	h->r = r;
	h->done = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	push_hash_unref(h);
	return NULL;
}

static int push_hash_start(struct push_hash **out, const char *path, const char *cache_dir,
			   struct err *e)
{
	struct push_hash *h = xcalloc(1, sizeof(*h));
	pthread_attr_t attr;
	int r = 0;

	h->path = xstrdup(path);
	h->cache_dir = cache_dir ? xstrdup(cache_dir) : NULL;
	h->refs = 2;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&h->thread, &attr, push_hash_run, h)) {
		r = err_set(e, ERR_IO, "cannot start a thread to hash %s", path);
		h->refs = 1;
		push_hash_unref(h);
		h = NULL;
	}
	pthread_attr_destroy(&attr);
	*out = h;
	return r;
}

/* The hash, once it is done; ERR_CANCELLED (within 100 ms) when `cancel`
 * is set first. */
static int push_hash_wait(struct push_hash *h, struct cancel *cancel, struct err *e)
{
	int r;

	pthread_mutex_lock(&h->lock);
	while (!h->done && !cancel_is_set(cancel)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CLOCK_CANCEL_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cond, &h->lock, &ts);
	}
	if (!h->done)
		r = err_set(e, ERR_CANCELLED, "hashing %s was cancelled", h->path);
	else if (h->r)
		r = err_set(e, h->r, "%s", h->err.msg);
	else
		r = 0;
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* One look at the job folder: the mark of the archive dataset/ came from,
 * and the size of a partial upload. */
static int push_look(struct remote *rm, const char *jr, struct cancel *cancel, char **mark,
		     uint64_t *have, struct buf *out, struct err *e)
{
	struct buf cmd = BUF_INIT;
	char *cursor, *size_line;
	unsigned long long v = 0;
	int r;

	remote_cmdf(&cmd, "mkdir -p %q && cd %q && { cat dataset/.ferry-archive-sha256 "
		    "2>/dev/null || echo; } && { wc -c < dataset.tar.part 2>/dev/null || echo 0; }",
		    jr, jr);
	r = remote_run(rm, cmd.data, &(struct remote_io){ .cancel = cancel }, out,
		       "looking at the job folder", e);
	buf_release(&cmd);
	if (r)
		return r;
	cursor = out->data;
	*mark = str_trim(strsep(&cursor, "\n"));
	size_line = strsep(&cursor, "\n");
	if (!size_line || str_to_u64(str_trim(size_line), &v))
		return err_set(e, ERR_FORMAT, "the target gave no size for %s/dataset.tar.part", jr);
	*have = v;
	return 0;
}

/* Send the archive from `from` into dataset.tar.part. Every writer writes
 * the archive's bytes at their own offsets (dd seeks, and does not
 * truncate): a writer of an earlier push, still draining its dropped
 * connection on the target, puts the same bytes where they belong, never
 * after what this one wrote. From 0 the part is truncated. */
static int push_send(struct remote *rm, const char *jr, const char *archive, uint64_t from,
		     uint64_t size, const struct progress *pg, struct cancel *cancel,
		     struct err *e)
{
	struct buf cmd = BUF_INIT;
	struct push_tick tick = { .pg = pg, .total = size };
	struct remote_io io = { .use_in_fd = true, .tick = push_tick, .tick_arg = &tick,
				.cancel = cancel };
	int r, fd = open(archive, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || lseek(fd, (off_t)from, SEEK_SET) < 0) {
		r = err_sys(e, ERR_IO, "%s", archive);
		goto out;
	}
	io.in_fd = tick.fd = fd;
	if (from)
		remote_cmdf(&cmd, "cd %q && dd of=dataset.tar.part bs=%d seek=%lld conv=notrunc", jr,
			    REMOTE_PUSH_BLOCK, (long long)(from / REMOTE_PUSH_BLOCK));
	else
		remote_cmdf(&cmd, "cd %q && dd of=dataset.tar.part bs=%d", jr, REMOTE_PUSH_BLOCK);
	if (from < size)
		log_info("sending %llu bytes from byte %llu", (unsigned long long)(size - from),
			 (unsigned long long)from);
	progress_report(pg, "uploading", from, size);
	r = remote_run(rm, cmd.data, &io, NULL, "the upload", e);
	if (!r)
		progress_report(pg, "uploading", size, size);
out:
	if (fd >= 0)
		close(fd);
	buf_release(&cmd);
	return r;
}

/* finish.sh: extract, check and swap in; "ok", or "sha:HEX" when the
 * upload is not the archive (*got). */
static int push_finish(struct remote *rm, const char *jr, const char *hex,
		       struct cancel *cancel, char got[65], struct err *e)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	char *line;
	int r;

	got[0] = '\0';
	remote_cmd_script(&cmd, remote_finish_sh, "ferry-finish");
	remote_cmdf(&cmd, " %q %q %q %q", jr, hex, (const char *)remote_hasher_sh,
		    (const char *)remote_check_sums_sh);
	r = remote_run(rm, cmd.data, &(struct remote_io){ .cancel = cancel }, &out,
		       "extracting and verifying the dataset", e);
	if (r)
		goto out;
	line = str_trim(out.data);
	if (str_starts_with(line, "sha:"))
		snprintf(got, 65, "%.64s", line + 4);
	else if (strcmp(line, "ok"))
		r = err_set(e, ERR_FORMAT, "the target said '%.80s' after the upload", line);
out:
	buf_release(&cmd);
	buf_release(&out);
	return r;
}

int remote_push(struct remote *rm, const char *job, const char *archive,
		const struct remote_push_opts *o, const struct progress *pg,
		struct remote_push_result *res, struct err *e)
{
	static const struct remote_push_opts none;
	char *jr = remote_job_root(rm, job), *mark = NULL;
	struct push_hash *hash = NULL;
	struct buf out = BUF_INIT;
	uint64_t have = 0, size;
	struct stat st;
	int r;

	if (!o)
		o = &none;
	memset(res, 0, sizeof(*res));
	r = remote_job_check(job, e);
	if (!r)
		r = ds_archive_check_entries(archive, &res->files, e);
	if (r)
		goto out;
	if (stat(archive, &st) < 0) {
		r = err_sys(e, ERR_IO, "%s", archive);
		goto out;
	}
	size = (uint64_t)st.st_size;
	r = push_hash_start(&hash, archive, o->cache_dir, e);
	if (!r)
		r = push_look(rm, jr, o->cancel, &mark, &have, &out, e);
	if (!r && *mark) {
		/* Already there and extracted from this very archive. */
		r = push_hash_wait(hash, o->cancel, e);
		if (!r && !strcmp(mark, hash->hex))
			res->already = true;
	}
	if (r || res->already)
		goto out;
	for (int attempt = 0;; attempt++) {
		uint64_t from;
		char got[65];

		if (have > size) {
			log_warn("the partial upload is larger than the archive; starting over");
			have = 0;
		}
		from = have - have % REMOTE_PUSH_BLOCK;
		if (!attempt)
			res->resumed_from = from;
		r = push_send(rm, jr, archive, from, size, pg, o->cancel, e);
		if (!r) {
			res->sent += size - from;
			r = push_hash_wait(hash, o->cancel, e);
		}
		if (!r)
			r = push_finish(rm, jr, hash->hex, o->cancel, got, e);
		if (r || !got[0])
			break;
		if (attempt >= 1) {
			r = err_set(e, ERR_CORRUPT, "the upload arrives damaged: SHA-256 %s on the "
				    "target, %s here", got, hash->hex);
			break;
		}
		log_warn("the file on the target does not match (SHA-256 %.12s…, not %.12s…); "
			 "sending it again", got, hash->hex);
		res->resends++;
		have = 0;
	}
out:
	if (!r && hash && !push_hash_wait(hash, NULL, NULL)) {
		memcpy(res->sha256, hash->hex, sizeof(res->sha256));
		res->bytes = hash->bytes;
	}
	if (hash)
		push_hash_unref(hash);
	free(jr);
	buf_release(&out);
	return r;
}
