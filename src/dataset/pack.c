#include "dataset/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/manifest.h"
#include "dataset/verdict.h"

#define PK_CHUNK (1u << 20)    /* read size for files and archives */
#define PK_RECORD 10240        /* a tar record: the archive ends on a whole one */
#define PK_BLOCK (100 * PK_RECORD) /* libarchive's output block, about 1 MiB */
#define PK_PROGRESS_MS 100     /* least time between two progress reports */

/* ---- locale ----
 * libarchive converts names through the thread's locale: in the C locale a
 * non-ASCII name gets "hdrcharset=BINARY" (which GNU tar warns about), in a
 * UTF-8 locale a plain UTF-8 path. Pin this thread to a UTF-8 LC_CTYPE while
 * archives are written or read, so the bytes never depend on the user's
 * locale. */

struct pk_locale {
	locale_t loc, old;
};

static int pk_locale_enter(struct pk_locale *l, struct err *e)
{
	static const char *const names[] = { "C.UTF-8", "C.utf8", "en_US.UTF-8" };

	l->loc = (locale_t)0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !l->loc; i++)
		l->loc = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
	if (!l->loc)
		return err_set(e, ERR_CONFIG,
			       "no UTF-8 locale (C.UTF-8) is installed; ferry needs one to "
			       "write and read archive names the same way everywhere");
	l->old = uselocale(l->loc);
	return 0;
}

static void pk_locale_leave(struct pk_locale *l)
{
	if (!l->loc)
		return;
	uselocale(l->old);
	freelocale(l->loc);
	l->loc = (locale_t)0;
}

/* ---- writing ---- */

struct pk_sink {
	int fd;
	struct sha256 hash;
	uint64_t bytes;
	bool discard; /* the pack failed: let libarchive wind down, write nothing */
};

static la_ssize_t pk_sink_write(struct archive *a, void *data, const void *buf, size_t len)
{
	struct pk_sink *s = data;

	if (s->discard) {
		archive_set_error(a, ECANCELED, "pack abandoned");
		return -1;
	}
	sha256_update(&s->hash, buf, len);
	if (fsx_write_all(s->fd, buf, len)) {
		archive_set_error(a, errno, "%s", strerror(errno));
		return -1;
	}
	s->bytes += len;
	return (la_ssize_t)len;
}

/* One regular file entry: mode 0644, mtime 0, uid/gid 0, no names. */
static int pk_header(struct archive *a, struct archive_entry *ent, const char *path,
		     uint64_t size, struct err *e)
{
	archive_entry_clear(ent);
	archive_entry_copy_pathname(ent, path);
	archive_entry_set_filetype(ent, AE_IFREG);
	archive_entry_set_perm(ent, 0644);
	archive_entry_set_size(ent, (la_int64_t)size);
	archive_entry_set_mtime(ent, 0, 0);
	archive_entry_set_uid(ent, 0);
	archive_entry_set_gid(ent, 0);
	if (archive_write_header(a, ent) != ARCHIVE_OK)
		return err_set(e, ERR_IO, "%s: cannot write its archive header: %s", path,
			       archive_error_string(a));
	return 0;
}

static int pk_data(struct archive *a, const void *data, size_t len, struct err *e)
{
	if (archive_write_data(a, data, len) != (la_ssize_t)len)
		return err_set(e, ERR_IO, "cannot write the archive: %s",
			       archive_error_string(a) ? archive_error_string(a) : "short write");
	return 0;
}

static int pk_changed(struct err *e, const char *abs, const char *what)
{
	return err_set(e, ERR_CHANGED,
		       "%s changed since it was checked (%s); pack again",
		       abs, what);
}

/* ---- the reader thread ----
 * Each byte is hashed twice: as a file (to prove it is what the check saw)
 * and as part of the archive stream. A reader thread reads and hashes the
 * files while this thread feeds libarchive and hashes and writes the archive,
 * so the two hashes run on two cores. They meet in a ring of PK_SLOTS
 * buffers. */

#define PK_SLOTS 4

enum pk_slot_kind { PK_DATA, PK_FAILED, PK_DONE };

struct pk_slot {
	enum pk_slot_kind kind;
	size_t file;  /* index in the manifest */
	bool first;   /* the file's header goes before these bytes */
	size_t len;
	char *data;   /* PK_CHUNK bytes */
};

struct pk_pipe {
	const char *root;
	const struct ds_manifest *m;
	struct cancel *cancel;    /* may be NULL */
	struct pk_slot slots[PK_SLOTS];
	size_t head, tail, count; /* the reader fills at head, the writer takes at tail */
	bool stop;                /* the writer gave up: the reader must quit */
	pthread_mutex_t lock;
	pthread_cond_t moved;
	struct err err;           /* why the reader failed (a PK_FAILED slot says when) */
};

/* The reader's next empty slot, or NULL when the writer has stopped. */
static struct pk_slot *pk_slot_fill(struct pk_pipe *p)
{
	struct pk_slot *s = NULL;

	pthread_mutex_lock(&p->lock);
	while (p->count == PK_SLOTS && !p->stop)
		pthread_cond_wait(&p->moved, &p->lock);
	if (!p->stop)
		s = &p->slots[p->head % PK_SLOTS];
	pthread_mutex_unlock(&p->lock);
	return s;
}

static void pk_slot_filled(struct pk_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->head++;
	p->count++;
	pthread_cond_broadcast(&p->moved);
	pthread_mutex_unlock(&p->lock);
}

static struct pk_slot *pk_slot_take(struct pk_pipe *p)
{
	struct pk_slot *s;

	pthread_mutex_lock(&p->lock);
	while (!p->count)
		pthread_cond_wait(&p->moved, &p->lock);
	s = &p->slots[p->tail % PK_SLOTS];
	pthread_mutex_unlock(&p->lock);
	return s;
}

static void pk_slot_taken(struct pk_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->tail++;
	p->count--;
	pthread_cond_broadcast(&p->moved);
	pthread_mutex_unlock(&p->lock);
}

/* Hand the writer a failure (p->err holds it); `s` may be a slot in hand. */
static void pk_fail(struct pk_pipe *p, struct pk_slot *s)
{
	if (!s && !(s = pk_slot_fill(p)))
		return;
	s->kind = PK_FAILED;
	pk_slot_filled(p);
}

/* Read everything of `want` bytes unless the file ends first. */
static ssize_t pk_read_full(int fd, char *buf, size_t want)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (!n)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Read and hash one listed file into slots. False when the pipe stopped. */
static bool pk_read_file(struct pk_pipe *p, size_t idx)
{
	const struct ds_manifest_file *f = &p->m->files[idx];
	char *abs = fsx_join(p->root, f->path);
	char hex[SHA256_HEX_LEN + 1], what[64], probe;
	struct pk_slot *s = NULL;
	uint64_t left = f->size;
	bool hashing = false, first = true, ok = false;
	struct sha256 h;
	struct stat st;
	ssize_t n;
	int fd;

	/* Non-blocking open: a FIFO put in a file's place must not hang us. */
	fd = open(abs, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			pk_changed(&p->err, abs, "it is gone");
		else
			err_sys(&p->err, ERR_IO, "cannot open %s", abs);
		goto out;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (fstat(fd, &st)) {
		err_sys(&p->err, ERR_IO, "cannot read %s", abs);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		snprintf(what, sizeof(what), "%lld bytes now, %llu then", (long long)st.st_size,
			 (unsigned long long)f->size);
		pk_changed(&p->err, abs, what);
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	sha256_init(&h);
	hashing = true;
	do {
		size_t want = left < PK_CHUNK ? (size_t)left : PK_CHUNK;

		/* Before every chunk: between files and inside big ones. */
		if (cancel_is_set(p->cancel)) {
			err_set(&p->err, ERR_CANCELLED, "packing was cancelled (at %s)", f->path);
			goto out;
		}
		if (!(s = pk_slot_fill(p)))
			goto out;
		n = pk_read_full(fd, s->data, want);
		if (n < 0) {
			err_sys(&p->err, ERR_IO, "cannot read %s", abs);
			goto out;
		}
		if ((size_t)n < want) {
			pk_changed(&p->err, abs, "it got shorter");
			goto out;
		}
		sha256_update(&h, s->data, (size_t)n);
		left -= (uint64_t)n;
		if (!left) {
			if (pk_read_full(fd, &probe, 1) > 0) {
				pk_changed(&p->err, abs, "it got longer");
				goto out;
			}
			sha256_final(&h, hex);
			hashing = false;
			if (strcmp(hex, f->sha256)) {
				pk_changed(&p->err, abs, "its SHA-256 differs");
				goto out;
			}
		}
		s->kind = PK_DATA;
		s->file = idx;
		s->first = first;
		s->len = (size_t)n;
		pk_slot_filled(p);
		s = NULL;
		first = false;
	} while (left);
	ok = true;
out:
	if (!ok && p->err.code)
		pk_fail(p, s);
	if (hashing)
		sha256_final(&h, hex);
	if (fd >= 0)
		close(fd);
	free(abs);
	return ok;
}

static void *pk_reader(void *arg)
{
	struct pk_pipe *p = arg;
	struct pk_slot *s;

	for (size_t i = 0; i < p->m->nfiles; i++)
		if (!pk_read_file(p, i))
			return NULL;
	if ((s = pk_slot_fill(p))) {
		s->kind = PK_DONE;
		pk_slot_filled(p);
	}
	return NULL;
}

/* Write every listed file into the archive as the reader hands it over;
 * `pg` sees the files' bytes ("packing", of their total). */
static int pk_write_files(struct archive *a, struct archive_entry *ent, const char *root,
			  const struct ds_manifest *m, const struct progress *pg,
			  struct cancel *cancel, struct err *e)
{
	struct pk_pipe p = { .root = root, .m = m, .cancel = cancel };
	uint64_t done = 0, total = 0;
	long long last = 0;
	pthread_t reader;
	int r = 0;

	for (size_t i = 0; i < m->nfiles; i++)
		total += m->files[i].size;
	progress_report(pg, "packing", 0, total);

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.moved, NULL);
	for (size_t i = 0; i < PK_SLOTS; i++)
		p.slots[i].data = xmalloc(PK_CHUNK);
	if (pthread_create(&reader, NULL, pk_reader, &p)) {
		r = err_set(e, ERR_IO, "cannot start a reader thread");
		goto out;
	}
	while (!r) {
		struct pk_slot *s = pk_slot_take(&p);

		if (s->kind == PK_DONE) {
			pk_slot_taken(&p);
			break;
		}
		if (s->kind == PK_FAILED) {
			r = p.err.code;
			if (e)
				*e = p.err;
		} else {
			const struct ds_manifest_file *f = &m->files[s->file];

			if (s->first)
				r = pk_header(a, ent, f->path, f->size, e);
			if (!r && s->len)
				r = pk_data(a, s->data, s->len, e);
			done += s->len;
			if (!r && clock_mono_ms() - last >= PK_PROGRESS_MS) {
				last = clock_mono_ms();
				progress_report(pg, "packing", done, total);
			}
		}
		pk_slot_taken(&p);
	}
	if (!r)
		progress_report(pg, "packing", done, total);
	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.moved);
	pthread_mutex_unlock(&p.lock);
	pthread_join(reader, NULL);
out:
	for (size_t i = 0; i < PK_SLOTS; i++)
		free(p.slots[i].data);
	pthread_cond_destroy(&p.moved);
	pthread_mutex_destroy(&p.lock);
	return r;
}

int ds_pack_write(const char *root, const char *manifest, size_t manifest_len, int fd,
		  const struct progress *pg, struct cancel *cancel,
		  char sha256[SHA256_HEX_LEN + 1], uint64_t *bytes, struct err *e)
{
	struct pk_sink sink = { .fd = fd };
	struct pk_locale loc = { 0 };
	struct ds_manifest *m = NULL;
	struct archive_entry *ent = NULL;
	struct archive *a = NULL;
	struct buf sums = BUF_INIT;
	char junk[SHA256_HEX_LEN + 1];
	bool hashing = false;
	int r;

	if ((r = ds_manifest_parse(manifest, manifest_len, &m, e)))
		goto out;
	ds_manifest_sums(m, &sums);
	if ((r = pk_locale_enter(&loc, e)))
		goto out;
	a = archive_write_new();
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, PK_BLOCK) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, PK_RECORD) != ARCHIVE_OK) {
		r = err_set(e, ERR_FAIL, "libarchive: %s", archive_error_string(a));
		goto out;
	}
	sha256_init(&sink.hash);
	hashing = true;
	if (archive_write_open(a, &sink, NULL, pk_sink_write, NULL) != ARCHIVE_OK) {
		r = err_set(e, ERR_IO, "cannot start the archive: %s", archive_error_string(a));
		goto out;
	}
	ent = archive_entry_new();
	if ((r = pk_header(a, ent, DS_MANIFEST_NAME, manifest_len, e)) ||
	    (r = pk_data(a, manifest, manifest_len, e)) ||
	    (r = pk_header(a, ent, DS_SUMS_NAME, sums.len, e)) ||
	    (r = pk_data(a, sums.data, sums.len, e)))
		goto out;
	if (m->nfiles && (r = pk_write_files(a, ent, root, m, pg, cancel, e)))
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		r = err_set(e, ERR_IO, "cannot finish the archive: %s", archive_error_string(a));
		goto out;
	}
	sha256_final(&sink.hash, sha256);
	hashing = false;
	*bytes = sink.bytes;
out:
	/* Not archive_write_fail(): libarchive 3.6 leaks its buffers after it. */
	sink.discard = r != 0;
	if (a)
		archive_write_free(a);
	if (hashing)
		sha256_final(&sink.hash, junk);
	archive_entry_free(ent);
	pk_locale_leave(&loc);
	ds_manifest_free(m);
	buf_release(&sums);
	return r;
}

/* ---- the archive cache ---- */

/* Whether the manifest with this hash was packed before and its archive is
 * still in place with the size and mtime recorded. Cached archives are
 * read-only, but -o hard-links them: an edit through that name changes the
 * mtime, and the archive is then made again. */
static bool pk_index_lookup(const char *dir, const char *index, struct ds_pack_result *res)
{
	struct buf b = BUF_INIT;
	struct err e = { 0 };
	json_t *rec = NULL;
	const char *sha;
	long long bytes;
	struct stat st;
	char *path = NULL;
	bool hit = false;

	if (access(index, F_OK) || fsx_read_file(index, &b, 4096, &e) ||
	    json_parse(b.data, b.len, index, &rec, &e))
		goto out;
	sha = json_str(rec, "sha256", "");
	bytes = json_int(rec, "bytes", -1);
	if (!sha256_is_hex(sha) || bytes < 0)
		goto out;
	path = xasprintf("%s/%s.tar", dir, sha);
	if (stat(path, &st) || !S_ISREG(st.st_mode) || st.st_size != bytes ||
	    clock_ts_ns(st.st_mtim) != json_int(rec, "mtime_ns", -1)) {
		log_debug("%s: archive %s missing or modified; packing again", index, path);
		goto out;
	}
	memcpy(res->sha256, sha, SHA256_HEX_LEN + 1);
	res->bytes = (uint64_t)bytes;
	res->archive = path;
	path = NULL;
	hit = true;
out:
	if (e.msg[0])
		log_debug("%s", e.msg);
	json_decref(rec);
	buf_release(&b);
	free(path);
	return hit;
}

static void pk_index_store(const char *index, const struct ds_pack_result *res)
{
	struct stat st;
	json_t *rec = json_pack("{s:s, s:I, s:I}", "sha256", res->sha256, "bytes",
				(json_int_t)res->bytes, "mtime_ns",
				(json_int_t)(stat(res->archive, &st) ? -1 : clock_ts_ns(st.st_mtim)));
	struct buf b = BUF_INIT;
	struct err e = { 0 };

	json_to_buf(rec, 0, &b);
	/* The index saves time, nothing more: a failure costs a repack later. */
	if (fsx_write_atomic(index, b.data, b.len, 0644, &e))
		log_warn("%s; the next pack will not reuse this archive", e.msg);
	json_decref(rec);
	buf_release(&b);
}

/* Put the archive at `dst` too: a hard link when both are on one file
 * system, else a copy; either way `dst` appears whole or not at all. */
static int pk_place(const char *src, const char *dst, struct err *e)
{
	char *tmp = xasprintf("%s.tmp.%ld", dst, (long)getpid());
	struct stat s1, s2;
	int r = 0;

	if (!stat(src, &s1) && !stat(dst, &s2) && s1.st_dev == s2.st_dev &&
	    s1.st_ino == s2.st_ino)
		goto out; /* already there */
	unlink(tmp);
	if (!link(src, tmp)) {
		if (rename(tmp, dst)) {
			r = err_sys(e, ERR_IO, "cannot create %s", dst);
			unlink(tmp);
		}
		goto out;
	}
	if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != EOPNOTSUPP) {
		r = err_sys(e, ERR_IO, "cannot create %s", dst);
		goto out;
	}
	r = fsx_copy_file(src, dst, 0644, e);
out:
	free(tmp);
	return r;
}

/* The check's verdicts were wrong about at least one file: drop them all so
 * that the next pack looks at every file again. */
static void pk_forget_verdicts(const struct ds_dataset *ds, const char *cache_dir)
{
	struct verdict_cache *vc = NULL;

	if (verdict_open(&vc, cache_dir, NULL))
		return;
	for (size_t i = 0; i < ds->nfiles; i++)
		verdict_forget(vc, ds->root_real, &ds->files[i]);
	verdict_close(vc);
}

void ds_pack_opts_from_config(struct ds_pack_opts *o, const struct config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->cache_dir = config_get(cfg, "cache_dir");
}

int ds_check_and_pack(const struct config *cfg, const char *folder,
		      const struct ds_pack_opts *o, struct ds_dataset **ds,
		      struct ds_pack_result *res, struct err *e)
{
	struct ds_check_opts co;
	struct ds_pack_opts po = *o;
	int r;

	*ds = NULL;
	memset(res, 0, sizeof(*res));
	ds_check_opts_from_config(&co, cfg);
	if (po.cache_dir)
		co.cache_dir = po.cache_dir;
	else
		po.cache_dir = config_get(cfg, "cache_dir");
	co.reuse_verdicts = true;
	co.cancel = o->cancel;
	r = ds_open(ds, folder, e);
	if (!r)
		r = ds_check(*ds, &co, e);
	if (r) {
		ds_free(*ds);
		*ds = NULL;
		return r;
	}
	return ds_pack(*ds, &po, res, e);
}

void ds_pack_result_release(struct ds_pack_result *res)
{
	free(res->archive);
	memset(res, 0, sizeof(*res));
}

int ds_pack(const struct ds_dataset *ds, const struct ds_pack_opts *o,
	    struct ds_pack_result *res, struct err *e)
{
	char msha[SHA256_HEX_LEN + 1];
	char *dir = NULL, *index_dir = NULL, *index = NULL, *tmp = NULL;
	struct buf man = BUF_INIT;
	int fd = -1, r = 0;

	memset(res, 0, sizeof(*res));
	if (!ds->ready && !o->force) {
		r = err_set(e, ERR_FAIL,
			    "%s: the check found %zu error%s; fix them, or pack with force to "
			    "take only the usable files", ds->root, ds->errors,
			    ds->errors == 1 ? "" : "s");
		goto out;
	}
	if (cancel_is_set(o->cancel)) {
		r = err_set(e, ERR_CANCELLED, "%s: packing was cancelled", ds->root);
		goto out;
	}
	if (!o->cache_dir || !*o->cache_dir) {
		r = err_set(e, ERR_CONFIG, "cache_dir is not set; packed datasets live there");
		goto out;
	}
	if ((r = ds_manifest_build(ds, &man, e)))
		goto out;
	for (size_t i = 0; i < ds->nfiles; i++)
		if (ds->files[i].usable && ds->files[i].role != DS_ROLE_OTHER)
			res->files++;
	if (!res->files) {
		r = err_set(e, ERR_FAIL, "%s: nothing to pack: no usable files", ds->root);
		goto out;
	}
	sha256_hex(man.data, man.len, msha);
	dir = fsx_join(o->cache_dir, "datasets");
	index_dir = fsx_join(dir, "manifests");
	if ((r = fsx_mkdir_p(index_dir, 0700, e)))
		goto out;
	index = xasprintf("%s/%s.json", index_dir, msha);
	if (pk_index_lookup(dir, index, res)) {
		res->reused = true;
	} else {
		tmp = xasprintf("%s/.pack-XXXXXX", dir);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0) {
			r = err_sys(e, ERR_IO, "cannot create a file in %s", dir);
			goto out;
		}
		r = ds_pack_write(ds->root, man.data, man.len, fd, o->pg, o->cancel, res->sha256,
				  &res->bytes, e);
		if (r == ERR_CHANGED)
			pk_forget_verdicts(ds, o->cache_dir);
		if (!r && (fchmod(fd, 0444) || close(fd)))
			r = err_sys(e, ERR_IO, "cannot write %s", tmp);
		else if (r)
			close(fd);
		fd = -1;
		if (r)
			goto out;
		res->archive = xasprintf("%s/%s.tar", dir, res->sha256);
		if (rename(tmp, res->archive)) {
			r = err_sys(e, ERR_IO, "cannot create %s", res->archive);
			goto out;
		}
		free(tmp);
		tmp = NULL;
		pk_index_store(index, res);
	}
	if (o->out_path)
		r = pk_place(res->archive, o->out_path, e);
out:
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	if (r)
		ds_pack_result_release(res);
	buf_release(&man);
	free(tmp);
	free(index);
	free(index_dir);
	free(dir);
	return r;
}

/* ---- unpacking ---- */

struct pk_source {
	int fd;
	char *buf;
	struct sha256 hash;
	uint64_t bytes;
};

static la_ssize_t pk_source_read(struct archive *a, void *data, const void **out)
{
	struct pk_source *s = data;
	ssize_t n;

	while ((n = read(s->fd, s->buf, PK_CHUNK)) < 0 && errno == EINTR)
		;
	if (n < 0) {
		archive_set_error(a, errno, "%s", strerror(errno));
		return -1;
	}
	sha256_update(&s->hash, s->buf, (size_t)n);
	s->bytes += (uint64_t)n;
	*out = s->buf;
	return n;
}

/* Whether some listed file lives under folder `dir`. */
static bool pk_listed_dir(const struct ds_manifest *m, const char *dir)
{
	char *prefix = xasprintf("%s/", dir);
	size_t lo = 0, hi = m->nfiles;
	bool found;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(m->files[mid].path, prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	found = lo < m->nfiles && str_starts_with(m->files[lo].path, prefix);
	free(prefix);
	return found;
}

/* Read the current entry whole (at most `max` bytes) into `out`. */
static int pk_read_entry(struct archive *a, const char *name, size_t max, struct buf *out,
			 struct err *e)
{
	for (;;) {
		la_ssize_t n;

		buf_grow(out, 65536);
		n = archive_read_data(a, out->data + out->len, out->cap - out->len - 1);
		if (n < 0)
			return err_set(e, ERR_CORRUPT, "%s: cannot read it from the archive: %s", name,
				       archive_error_string(a));
		if (!n)
			return 0;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > max)
			return err_set(e, ERR_LIMIT, "%s: larger than the %zu bytes allowed", name, max);
	}
}

static const char *pk_type_name(mode_t type)
{
	switch (type) {
	case AE_IFLNK: return "a symbolic link";
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a FIFO";
	case AE_IFSOCK: return "a socket";
	default: return "not a regular file";
	}
}

/* Extract one listed file into `tmpdir`, hashing it as it is written. */
static int pk_extract_file(struct archive *a, const char *tmpdir,
			   const struct ds_manifest_file *f, struct err *e)
{
	char *path = fsx_join(tmpdir, f->path);
	char hex[SHA256_HEX_LEN + 1];
	uint64_t got = 0;
	struct sha256 h;
	int fd = -1, r;

	if ((r = fsx_mkdir_parent(path, 0755, e)))
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = err_sys(e, ERR_IO, "%s: cannot create %s", f->path, path);
		goto out;
	}
	sha256_init(&h);
	for (;;) {
		const void *block;
		size_t len;
		la_int64_t offset;
		int ar = archive_read_data_block(a, &block, &len, &offset);

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK) {
			r = err_set(e, ERR_CORRUPT, "%s: cannot read it from the archive: %s", f->path,
				    archive_error_string(a));
			break;
		}
		if (offset < 0 || (uint64_t)offset != got) {
			r = err_set(e, ERR_FORMAT, "%s: sparse entries are not allowed", f->path);
			break;
		}
		sha256_update(&h, block, len);
		if (fsx_write_all(fd, block, len)) {
			r = err_sys(e, ERR_IO, "cannot write %s", path);
			break;
		}
		got += len;
	}
	sha256_final(&h, hex);
	if (r)
		goto out;
	if (got != f->size)
		r = err_set(e, ERR_CORRUPT, "%s: %llu bytes in the archive, %llu in the manifest",
			    f->path, (unsigned long long)got, (unsigned long long)f->size);
	else if (strcmp(hex, f->sha256))
		r = err_set(e, ERR_CORRUPT,
			    "%s: content does not match the manifest's SHA-256 (got %s); "
			    "the archive is damaged or was altered", f->path, hex);
out:
	if (fd >= 0 && close(fd) && !r)
		r = err_sys(e, ERR_IO, "cannot write %s", path);
	free(path);
	return r;
}

static int pk_check_sums(struct archive *a, const struct ds_manifest *m, struct err *e)
{
	struct buf want = BUF_INIT, got = BUF_INIT;
	size_t line = 1;
	int r;

	ds_manifest_sums(m, &want);
	if ((r = pk_read_entry(a, DS_SUMS_NAME, want.len + 1, &got, e)))
		goto out;
	if (got.len == want.len && !memcmp(got.data, want.data, got.len))
		goto out;
	for (size_t i = 0; i < got.len && i < want.len && got.data[i] == want.data[i]; i++)
		if (got.data[i] == '\n')
			line++;
	r = err_set(e, ERR_CORRUPT, "%s does not agree with %s (from line %zu)", DS_SUMS_NAME,
		    DS_MANIFEST_NAME, line);
out:
	buf_release(&want);
	buf_release(&got);
	return r;
}

/* Split "a/b/c/" into "a/b" and "c". */
static void pk_split_dir(const char *dir, char **parent, char **base)
{
	char *d = xstrdup(dir), *slash;
	size_t n = strlen(d);

	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	slash = strrchr(d, '/');
	if (!slash) {
		*parent = xstrdup(".");
		*base = d;
		return;
	}
	*base = xstrdup(slash + 1);
	*parent = slash == d ? xstrdup("/") : xstrndup(d, (size_t)(slash - d));
	free(d);
}

/* The target must be absent or an empty folder. */
static int pk_check_target(const char *dir, struct err *e)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	if (lstat(dir, &st))
		return errno == ENOENT ? 0 : err_sys(e, ERR_IO, "cannot use %s", dir);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_EXISTS, "%s exists and is not a folder", dir);
	d = opendir(dir);
	if (!d)
		return err_sys(e, ERR_IO, "cannot read %s", dir);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			r = err_set(e, ERR_EXISTS,
				    "%s is not empty; unpack into a new or empty folder", dir);
			break;
		}
	closedir(d);
	return r;
}

static int pk_unpack_entries(struct archive *a, const struct ds_manifest *m, const char *tmpdir,
			     struct ds_unpack_result *res, struct err *e)
{
	bool *seen = xcalloc(m->nfiles + 1, sizeof(*seen)), sums = false;
	struct archive_entry *ent;
	int r = 0, ar;

	while ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname_utf8(ent);
		mode_t type = archive_entry_filetype(ent);
		char *path;
		int idx;

		if (!name) {
			r = err_set(e, ERR_FORMAT, "an entry's name is not valid UTF-8");
			goto out;
		}
		path = xstrdup(name);
		if (type == AE_IFDIR && strlen(path) > 1 && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = '\0';
		/* Names are printed below: refuse terminal control characters first. */
		if (str_has_ctrl(path))
			r = err_set(e, ERR_FORMAT, "an entry's name holds a control character");
		else if (archive_entry_hardlink(ent))
			r = err_set(e, ERR_FORMAT, "%s: hard links are not allowed", path);
		else if (type != AE_IFREG && type != AE_IFDIR)
			r = err_set(e, ERR_FORMAT, "%s: is %s; only files are allowed", path,
				    pk_type_name(type));
		else if (strlen(path) > DS_MANIFEST_PATH_MAX || !fsx_relpath_safe(path))
			r = err_set(e, ERR_FORMAT,
				    "%s: unsafe path (absolute, '..', '.' or an empty part)", path);
		if (r)
			goto next;
		if (type == AE_IFDIR) {
			char *abs = fsx_join(tmpdir, path);

			if (!pk_listed_dir(m, path))
				r = err_set(e, ERR_FORMAT,
					    "%s/: a folder that holds no file the manifest lists", path);
			else
				r = fsx_mkdir_p(abs, 0755, e);
			free(abs);
			goto next;
		}
		if (!strcmp(path, DS_MANIFEST_NAME)) {
			r = err_set(e, ERR_FORMAT, "%s: duplicate entry", path);
			goto next;
		}
		if (!strcmp(path, DS_SUMS_NAME)) {
			r = sums ? err_set(e, ERR_FORMAT, "%s: duplicate entry", path)
				 : pk_check_sums(a, m, e);
			sums = true;
			goto next;
		}
		idx = ds_manifest_find(m, path);
		if (idx < 0) {
			r = err_set(e, ERR_FORMAT, "%s: not listed in the manifest", path);
		} else if (seen[idx]) {
			r = err_set(e, ERR_FORMAT, "%s: duplicate entry", path);
		} else if (!archive_entry_size_is_set(ent) ||
			   (uint64_t)archive_entry_size(ent) != m->files[idx].size) {
			r = err_set(e, ERR_CORRUPT, "%s: %lld bytes in the archive, %llu in the manifest",
				    path, (long long)archive_entry_size(ent),
				    (unsigned long long)m->files[idx].size);
		} else {
			seen[idx] = true;
			r = pk_extract_file(a, tmpdir, &m->files[idx], e);
			res->files++;
			res->file_bytes += m->files[idx].size;
		}
next:
		free(path);
		if (r)
			goto out;
	}
	if (ar != ARCHIVE_EOF) {
		r = err_set(e, ERR_CORRUPT, "the archive is damaged: %s", archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < m->nfiles; i++) {
		if (!seen[i]) {
			r = err_set(e, ERR_CORRUPT, "%s: listed in the manifest but missing from the archive",
				    m->files[i].path);
			goto out;
		}
	}
	if (!sums)
		r = err_set(e, ERR_CORRUPT, "%s is missing from the archive", DS_SUMS_NAME);
out:
	free(seen);
	return r;
}

int ds_unpack(const char *archive, const char *dir, struct ds_unpack_result *res,
	      struct err *e)
{
	struct pk_source src = { .fd = -1 };
	struct pk_locale loc = { 0 };
	struct archive_entry *ent;
	struct ds_manifest *m = NULL;
	struct archive *a = NULL;
	struct buf mbuf = BUF_INIT;
	char *parent = NULL, *base = NULL, *tmpdir = NULL;
	const void *rest;
	bool hashing = false;
	mode_t mask;
	int r, ar;
	ssize_t n;

	memset(res, 0, sizeof(*res));
	if ((r = pk_check_target(dir, e)))
		goto out;
	src.fd = open(archive, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0) {
		r = err_sys(e, ERR_IO, "cannot open %s", archive);
		goto out;
	}
	posix_fadvise(src.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	src.buf = xmalloc(PK_CHUNK);
	sha256_init(&src.hash);
	hashing = true;
	if ((r = pk_locale_enter(&loc, e)))
		goto out;
	a = archive_read_new();
	archive_read_support_format_tar(a);
	if (archive_read_open(a, &src, NULL, pk_source_read, NULL) != ARCHIVE_OK) {
		r = err_set(e, ERR_FORMAT, "%s: not a tar archive: %s", archive,
			    archive_error_string(a));
		goto out;
	}

	ar = archive_read_next_header(a, &ent);
	if (ar == ARCHIVE_EOF) {
		r = err_set(e, ERR_FORMAT, "%s: the archive is empty", archive);
		goto out;
	}
	if (ar != ARCHIVE_OK) {
		r = err_set(e, ERR_FORMAT, "%s: not a tar archive: %s", archive,
			    archive_error_string(a));
		goto out;
	}
	if (!archive_entry_pathname_utf8(ent) ||
	    strcmp(archive_entry_pathname_utf8(ent), DS_MANIFEST_NAME) ||
	    archive_entry_filetype(ent) != AE_IFREG || archive_entry_hardlink(ent)) {
		r = err_set(e, ERR_FORMAT,
			    "%s: not a ferry dataset archive (its first entry is not %s)", archive,
			    DS_MANIFEST_NAME);
		goto out;
	}
	if ((r = pk_read_entry(a, DS_MANIFEST_NAME, DS_MANIFEST_MAX, &mbuf, e)) ||
	    (r = ds_manifest_parse(mbuf.data, mbuf.len, &m, e)))
		goto out;

	pk_split_dir(dir, &parent, &base);
	if ((r = fsx_mkdir_p(parent, 0755, e)))
		goto out;
	tmpdir = xasprintf("%s/.%s.unpack-XXXXXX", parent, base);
	if (!mkdtemp(tmpdir)) {
		r = err_sys(e, ERR_IO, "cannot create a folder beside %s", dir);
		free(tmpdir);
		tmpdir = NULL;
		goto out;
	}
	if ((r = pk_unpack_entries(a, m, tmpdir, res, e)))
		goto out;

	/* Hash whatever follows the end-of-archive blocks too. */
	while ((n = pk_source_read(a, &src, &rest)) > 0)
		;
	if (n < 0) {
		r = err_sys(e, ERR_IO, "cannot read %s", archive);
		goto out;
	}
	sha256_final(&src.hash, res->sha256);
	hashing = false;
	res->bytes = src.bytes;

	mask = umask(0);
	umask(mask);
	if (chmod(tmpdir, 0777 & ~mask) || rename(tmpdir, dir)) {
		r = err_sys(e, ERR_IO, "cannot move the unpacked files to %s", dir);
		goto out;
	}
	free(tmpdir);
	tmpdir = NULL;
out:
	if (a)
		archive_read_free(a);
	pk_locale_leave(&loc);
	if (tmpdir) {
		struct err e2 = { 0 };

		if (fsx_remove_tree(tmpdir, &e2))
			log_warn("%s", e2.msg);
		free(tmpdir);
	}
	if (hashing) {
		char junk[SHA256_HEX_LEN + 1];

		sha256_final(&src.hash, junk);
	}
	if (src.fd >= 0)
		close(src.fd);
	free(src.buf);
	ds_manifest_free(m);
	buf_release(&mbuf);
	free(parent);
	free(base);
	return r;
}

int ds_archive_check_entries(const char *archive, size_t *files, struct err *e)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ent;
	int r = 0, ar;

	*files = 0;
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, archive, 1 << 16) != ARCHIVE_OK) {
		r = err_set(e, ERR_IO, "%s: %s", archive, archive_error_string(a));
		goto out;
	}
	while (!r && (ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname_utf8(ent);
		mode_t type = archive_entry_filetype(ent);
		char *path = name ? xstrdup(name) : NULL;

		if (path && type == AE_IFDIR && strlen(path) > 1 && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = '\0';
		if (!path)
			r = err_set(e, ERR_FORMAT, "%s: an entry's name is not valid UTF-8", archive);
		else if (str_has_ctrl(path))
			r = err_set(e, ERR_FORMAT, "%s: an entry's name holds a control character",
				    archive);
		else if (archive_entry_hardlink(ent))
			r = err_set(e, ERR_FORMAT, "%s: %s: hard links are not allowed", archive, path);
		else if (type != AE_IFREG && type != AE_IFDIR)
			r = err_set(e, ERR_FORMAT, "%s: %s: is %s; only files are allowed", archive,
				    path, pk_type_name(type));
		else if (!fsx_relpath_safe(path))
			r = err_set(e, ERR_FORMAT, "%s: %s: unsafe path (absolute, '..', '.' or an "
				    "empty part)", archive, path);
		else if (type == AE_IFREG)
			(*files)++;
		free(path);
	}
	if (!r && ar != ARCHIVE_EOF)
		r = err_set(e, ERR_CORRUPT, "%s: %s", archive, archive_error_string(a));
out:
	archive_read_free(a);
	return r;
}
