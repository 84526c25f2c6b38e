#include "store/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/md5.h"
#include "common/sha256.h"
#include "common/xalloc.h"

#define UP_CHUNK (1u << 20) /* bytes read at a time when hashing */
#define UP_RECORD_VERSION 1

uint64_t s3_part_size(uint64_t size, uint64_t min)
{
	uint64_t p = min > S3_MIN_PART ? min : S3_MIN_PART;
	uint64_t need = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;

	if (need > p)
		p = (need + S3_MIB - 1) / S3_MIB * S3_MIB;
	return p;
}

const char *s3_content_type(const char *name)
{
	static const char *const types[][2] = {
		{ ".json", "application/json" },      { ".txt", "text/plain; charset=utf-8" },
		{ ".log", "text/plain; charset=utf-8" }, { ".png", "image/png" },
		{ ".jpg", "image/jpeg" },             { ".jpeg", "image/jpeg" },
		{ ".webp", "image/webp" },            { ".gif", "image/gif" },
		{ ".mp4", "video/mp4" },              { ".yaml", "application/yaml" },
		{ ".yml", "application/yaml" },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (str_ends_with_ci(name, types[i][0]))
			return types[i][1];
	return "application/octet-stream";
}

/* ---- hashing ---- */

struct up_digest {
	bool want_sha, want_md5;
	char sha256[SHA256_HEX_LEN + 1];
	unsigned char md5[MD5_LEN];
};

/* Hash len bytes of fd from off; `pg` (may be NULL) sees hashing progress
 * with `base` bytes done before. */
static int up_hash(int fd, const char *path, uint64_t off, uint64_t len, struct up_digest *d,
		   const struct progress *pg, uint64_t base, uint64_t total,
		   const volatile bool *stop, struct cancel *cancel, struct err *e)
{
	char *chunk = xmalloc(UP_CHUNK);
	struct sha256 sh;
	struct md5 m;
	uint64_t done = 0;
	long long last = 0;
	int r = 0;

	if (d->want_sha)
		sha256_init(&sh);
	if (d->want_md5)
		md5_init(&m);
	while (done < len) {
		size_t want = len - done < UP_CHUNK ? (size_t)(len - done) : UP_CHUNK;
		ssize_t got = pread(fd, chunk, want, (off_t)(off + done));

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (got == 0)
				r = err_set(e, ERR_CHANGED, "%s became shorter while it was read", path);
			else
				r = err_sys(e, ERR_IO, "cannot read %s", path);
			break;
		}
		if (d->want_sha)
			sha256_update(&sh, chunk, (size_t)got);
		if (d->want_md5)
			md5_update(&m, chunk, (size_t)got);
		done += (uint64_t)got;
		if (stop && *stop)
			break;
		if (cancel_is_set(cancel)) {
			r = err_set(e, ERR_CANCELLED, "hashing %s was cancelled", path);
			break;
		}
		if (pg && pg->fn && clock_mono_ms() - last >= 100) {
			last = clock_mono_ms();
			pg->fn(pg->arg, "hashing", base + done, total);
		}
	}
	if (d->want_sha)
		sha256_final(&sh, d->sha256);
	if (d->want_md5)
		md5_final(&m, d->md5);
	free(chunk);
	return r;
}

/* ---- the upload record ---- */

struct up_record {
	char *upload_id;
	uint64_t part_size;
	char sha256[SHA256_HEX_LEN + 1];
};

/* Where the record of an upload of this file to this key lives. */
static char *up_record_path(struct s3_client *c, const char *key, const struct stat *st)
{
	const struct s3_opts *o = s3_client_opts(c);
	char hex[SHA256_HEX_LEN + 1], *id, *path;

	if (!o->upload_state)
		return NULL;
	id = xasprintf("%s\n%s\n%s\n%llu\n%llu\n%llu\n%lld", o->endpoint, o->bucket, key,
		       (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		       (unsigned long long)st->st_size, clock_ts_ns(st->st_mtim));
	sha256_hex(id, strlen(id), hex);
	free(id);
	path = xasprintf("%s/%.40s.json", o->upload_state, hex);
	return path;
}

static int up_record_save(const char *path, struct s3_client *c, const char *key,
			  const char *file, const struct stat *st, const struct up_record *rec,
			  struct err *e)
{
	const struct s3_opts *o = s3_client_opts(c);
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I}",
			      "version", UP_RECORD_VERSION, "endpoint", o->endpoint,
			      "bucket", o->bucket, "key", key, "file", file,
			      "size", (json_int_t)st->st_size,
			      "mtime_ns", (json_int_t)clock_ts_ns(st->st_mtim),
			      "dev", (json_int_t)st->st_dev, "ino", (json_int_t)st->st_ino,
			      "part_size", (json_int_t)rec->part_size,
			      "upload_id", rec->upload_id, "sha256", rec->sha256,
			      "created", (json_int_t)clock_wall_s());
	struct buf b = BUF_INIT;
	int r;

	if (!j)
		return err_set(e, ERR_FORMAT, "cannot record the upload of %s (not UTF-8?)", file);
	json_to_buf(j, 1, &b);
	json_decref(j);
	r = fsx_mkdir_parent(path, 0700, e);
	if (!r)
		r = fsx_write_atomic(path, b.data, b.len, 0600, e);
	buf_release(&b);
	return r;
}

/* Read a record; a missing, unreadable or foreign one reads as none. */
static bool up_record_load(const char *path, struct s3_client *c, const char *key,
			   uint64_t size, struct up_record *rec)
{
	const struct s3_opts *o = s3_client_opts(c);
	struct buf b = BUF_INIT;
	json_t *j = NULL;
	const char *id, *sha;
	long long part;
	bool ok = false;

	memset(rec, 0, sizeof(*rec));
	if (fsx_read_file(path, &b, 1u << 16, NULL) ||
	    json_parse(b.data, b.len, path, &j, NULL))
		goto out;
	id = json_str(j, "upload_id", "");
	sha = json_str(j, "sha256", "");
	part = json_int(j, "part_size", 0);
	if (json_int(j, "version", 0) != UP_RECORD_VERSION ||
	    strcmp(json_str(j, "bucket", ""), o->bucket) || strcmp(json_str(j, "key", ""), key) ||
	    strcmp(json_str(j, "endpoint", ""), o->endpoint) || !*id || str_has_ctrl(id) ||
	    !sha256_is_hex(sha) || part < (long long)S3_MIN_PART ||
	    part > (long long)S3_MAX_PART ||
	    (size + (uint64_t)part - 1) / (uint64_t)part > S3_MAX_PARTS) {
		log_warn("ignoring the upload record %s: it does not fit this upload", path);
		goto out;
	}
	rec->upload_id = xstrdup(id);
	rec->part_size = (uint64_t)part;
	memcpy(rec->sha256, sha, SHA256_HEX_LEN + 1);
	ok = true;
out:
	json_decref(j);
	buf_release(&b);
	return ok;
}

/* ---- one PutObject ---- */

struct up_single {
	char md5_hex[MD5_HEX_LEN + 1];
	char etag[80];
};

/* The ETag of a part or a PutObject must be the MD5 of what was sent. */
static int up_check_etag(const char *what, const struct http_response *rs, const char *md5_hex,
			 char *etag, size_t etagsz, struct err *e)
{
	char tmp[96];
	size_t n;

	if (!http_response_header(rs, "etag", tmp, sizeof(tmp)))
		return err_set(e, ERR_FORMAT, "%s: no ETag in the answer", what);
	n = strlen(tmp);
	if (n >= 2 && tmp[0] == '"' && tmp[n - 1] == '"') {
		memmove(tmp, tmp + 1, n - 2);
		tmp[n - 2] = '\0';
	}
	if (strcasecmp(tmp, md5_hex))
		return err_set(e, ERR_CORRUPT, "%s: the ETag %s is not the MD5 %s of what was sent",
			       what, tmp, md5_hex);
	if (etag)
		snprintf(etag, etagsz, "%s", tmp);
	return 0;
}

static int up_single_check(struct s3_task *j, const struct http_response *rs, struct err *e)
{
	struct up_single *s = j->arg;

	return up_check_etag(j->what, rs, s->md5_hex, s->etag, sizeof(s->etag), e);
}

static int up_put_single(struct s3_client *c, int fd, const char *path, const char *key,
			 uint64_t size, const struct progress *pg, struct s3_put_result *res,
			 struct err *e)
{
	struct up_digest d = { .want_sha = true, .want_md5 = true };
	char b64[MD5_BASE64_LEN + 1], *uri, *h_md5, *h_type, *h_sha;
	struct up_single s;
	struct s3_task task;
	struct s3_run_opts ro = { .pg = pg, .phase = "uploading", .total = size };
	int r;

	r = up_hash(fd, path, 0, size, &d, pg, 0, size, NULL, s3_client_opts(c)->cancel, e);
	if (r)
		return r;
	md5_to_hex(d.md5, s.md5_hex);
	md5_to_base64(d.md5, b64);
	memcpy(res->sha256, d.sha256, sizeof(res->sha256));
	uri = s3_uri(c, key);
	h_md5 = xasprintf("Content-MD5: %s", b64);
	h_type = xasprintf("Content-Type: %s", s3_content_type(key));
	h_sha = xasprintf("x-amz-meta-sha256: %s", d.sha256);
	{
		const char *hdrs[] = { h_md5, h_type, h_sha, NULL };

		memset(&task, 0, sizeof(task));
		task.call = (struct s3_call){ .method = "PUT", .key = key, .headers = hdrs,
					     .payload_hash = d.sha256, .use_body_fd = true,
					     .body_fd = fd, .body_fd_len = size, .transfer = true };
		snprintf(task.what, sizeof(task.what), "PutObject %s", uri);
		task.check = up_single_check;
		task.arg = &s;
		task.bytes = size;
		r = s3_run(c, &task, 1, &ro, e);
	}
	if (!r)
		memcpy(res->etag, s.etag, sizeof(res->etag));
	free(h_md5);
	free(h_type);
	free(h_sha);
	free(uri);
	return r;
}

/* ---- multipart ---- */

struct up_part {
	uint64_t off, len;
	unsigned char md5[MD5_LEN];
	char md5_hex[MD5_HEX_LEN + 1];
	char sha256[SHA256_HEX_LEN + 1];
	char listed_etag[80];      /* what ListParts said was there */
	uint64_t listed_size;
	bool listed;
	char number[12];
	char *h_md5;               /* "Content-MD5: ..." */
	const char *headers[2];
	struct sigv4_param query[2];
};

struct up_multi {
	struct s3_client *c;
	const char *path, *key;
	char *uri;
	int fd;
	uint64_t size, part_size;
	unsigned nparts;
	struct up_part *parts;
	struct s3_task *tasks;
	char *upload_id;
	unsigned sent;

	pthread_t hasher;
	bool hasher_started;
	pthread_mutex_t mu;
	unsigned hashed;           /* parts [0, hashed) have their digests */
	volatile bool stop;
	int hash_r;
	struct err hash_e;
};

/* The hasher runs ahead of the parts in flight, so that no part waits on
 * its Content-MD5 and SHA-256 while the network is idle. A part ListParts
 * reported needs only its MD5, unless that shows it must go again. */
static void *up_hasher(void *arg)
{
	struct up_multi *u = arg;
	struct err e = { 0 };
	int r = 0;

	for (unsigned i = 0; i < u->nparts && !u->stop && !r; i++) {
		struct up_part *p = &u->parts[i];
		struct up_digest d = { .want_sha = !p->listed, .want_md5 = true };

		r = up_hash(u->fd, u->path, p->off, p->len, &d, NULL, 0, 0, &u->stop,
			    s3_client_opts(u->c)->cancel, &e);
		if (!r) {
			md5_to_hex(d.md5, p->md5_hex);
			memcpy(p->md5, d.md5, MD5_LEN);
			if (p->listed && (p->listed_size != p->len ||
					  strcasecmp(p->listed_etag, p->md5_hex))) {
				log_info("%s: part %u is there but differs; sending it again", u->uri,
					 i + 1);
				p->listed = false;
				d = (struct up_digest){ .want_sha = true };
				r = up_hash(u->fd, u->path, p->off, p->len, &d, NULL, 0, 0, &u->stop,
					    s3_client_opts(u->c)->cancel, &e);
			}
			if (!r && d.want_sha)
				memcpy(p->sha256, d.sha256, sizeof(p->sha256));
		}
		pthread_mutex_lock(&u->mu);
		if (r) {
			u->hash_r = r;
			u->hash_e = e;
		} else {
			u->hashed = i + 1;
		}
		pthread_mutex_unlock(&u->mu);
	}
	return NULL;
}

static int up_part_ready(void *arg, size_t i, struct err *e)
{
	struct up_multi *u = arg;
	struct up_part *p = &u->parts[i];
	unsigned hashed;
	int hr;

	pthread_mutex_lock(&u->mu);
	hashed = u->hashed;
	hr = u->hash_r;
	if (hr && e)
		*e = u->hash_e;
	pthread_mutex_unlock(&u->mu);
	if (i >= hashed)
		return hr ? hr : 0;
	if (p->listed)
		return -1;
	{
		char b64[MD5_BASE64_LEN + 1];

		md5_to_base64(p->md5, b64);
		free(p->h_md5);
		p->h_md5 = xasprintf("Content-MD5: %s", b64);
		p->headers[0] = p->h_md5;
		p->headers[1] = NULL;
		u->tasks[i].call.headers = p->headers;
		u->tasks[i].call.payload_hash = p->sha256;
	}
	return 1;
}

static int up_part_check(struct s3_task *j, const struct http_response *rs, struct err *e)
{
	struct up_multi *u = j->arg;
	struct up_part *p = &u->parts[j - u->tasks];
	int r = up_check_etag(j->what, rs, p->md5_hex, NULL, 0, e);

	if (!r)
		u->sent++;
	return r;
}

static void up_hasher_stop(struct up_multi *u)
{
	if (!u->hasher_started)
		return;
	u->stop = true;
	pthread_join(u->hasher, NULL);
	u->hasher_started = false;
}

static void up_multi_release(struct up_multi *u)
{
	up_hasher_stop(u);
	for (unsigned i = 0; u->parts && i < u->nparts; i++)
		free(u->parts[i].h_md5);
	free(u->parts);
	free(u->tasks);
	free(u->upload_id);
	free(u->uri);
	pthread_mutex_destroy(&u->mu);
}

static int up_create(struct up_multi *u, const char *sha256, struct err *e)
{
	static const struct sigv4_param q[] = { { "uploads", "" } };
	char *h_type = xasprintf("Content-Type: %s", s3_content_type(u->key));
	char *h_sha = xasprintf("x-amz-meta-sha256: %s", sha256);
	const char *hdrs[] = { h_type, h_sha, NULL };
	char *what = xasprintf("CreateMultipartUpload %s", u->uri);
	struct http_response rs;
	int r;

	http_response_init(&rs);
	/* Not idempotent: sent twice, it would start two uploads. */
	r = s3_exchange(u->c,
			&(struct s3_call){ .method = "POST", .key = u->key, .query = q, .nquery = 1,
					   .headers = hdrs, .body = "", .not_idempotent = true },
			what, &rs, e);
	if (!r)
		r = s3_xml_upload_id(rs.body.data, rs.body.len, &u->upload_id, e);
	http_response_release(&rs);
	free(what);
	free(h_type);
	free(h_sha);
	return r;
}

/* What arrived of an earlier run's upload. ERR_NOTFOUND when the upload is
 * gone (completed, aborted or expired). */
static int up_list_parts(struct up_multi *u, struct s3_part **parts, size_t *n, struct err *e)
{
	char *what = xasprintf("ListParts %s", u->uri);
	struct http_response rs;
	unsigned marker = 0;
	int r = 0;

	*parts = NULL;
	*n = 0;
	http_response_init(&rs);
	for (int page = 0; page < S3_MAX_PARTS; page++) {
		char mark[16];
		struct sigv4_param q[] = { { "uploadId", u->upload_id }, { "max-parts", "1000" },
					   { "part-number-marker", mark } };
		unsigned next;

		snprintf(mark, sizeof(mark), "%u", marker);
		r = s3_exchange(u->c, &(struct s3_call){ .method = "GET", .key = u->key, .query = q,
							 .nquery = marker ? 3 : 2 },
				what, &rs, e);
		if (r == ERR_HTTP && rs.status == 404)
			r = ERR_NOTFOUND;
		if (!r)
			r = s3_xml_list_parts(rs.body.data, rs.body.len, parts, n, &next, e);
		if (r || !next || next <= marker)
			break;
		marker = next;
	}
	http_response_release(&rs);
	free(what);
	return r;
}

static int up_abort(struct up_multi *u, struct err *e)
{
	struct sigv4_param q[] = { { "uploadId", u->upload_id } };
	char *what = xasprintf("AbortMultipartUpload %s", u->uri);
	struct http_response rs;
	int r;

	http_response_init(&rs);
	r = s3_exchange(u->c, &(struct s3_call){ .method = "DELETE", .key = u->key, .query = q,
						 .nquery = 1 },
			what, &rs, e);
	if (r == ERR_NOTFOUND || (r == ERR_HTTP && rs.status == 404))
		r = 0; /* gone already */
	http_response_release(&rs);
	free(what);
	return r;
}

/* The ETag S3 and R2 give a multipart object: the MD5 of the parts' MD5s,
 * then "-N". */
static void up_multipart_etag(const struct up_multi *u, char *out, size_t outsz)
{
	unsigned char md[MD5_LEN];
	char hex[MD5_HEX_LEN + 1];
	struct md5 m;

	md5_init(&m);
	for (unsigned i = 0; i < u->nparts; i++)
		md5_update(&m, u->parts[i].md5, MD5_LEN);
	md5_final(&m, md);
	md5_to_hex(md, hex);
	snprintf(out, outsz, "%s-%u", hex, u->nparts);
}

/* Error codes S3 gives for a failure of its own, which passes. */
static bool up_error_passes(const char *code)
{
	return !strcmp(code, "InternalError") || !strcmp(code, "ServiceUnavailable") ||
	       !strcmp(code, "SlowDown");
}

static int up_complete(struct up_multi *u, const char *sha256, struct s3_put_result *res,
		       struct err *e)
{
	struct sigv4_param q[] = { { "uploadId", u->upload_id } };
	static const char *const hdrs[] = { "Content-Type: application/xml", NULL };
	char *what = xasprintf("CompleteMultipartUpload %s", u->uri), want[80];
	struct http_response rs;
	struct s3_error se;
	struct s3_head h;
	struct buf body = BUF_INIT;
	const struct s3_opts *o = s3_client_opts(u->c);
	int attempt, r;

	buf_puts(&body, "<CompleteMultipartUpload>");
	for (unsigned i = 0; i < u->nparts; i++)
		buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>",
			   i + 1, u->parts[i].md5_hex);
	buf_puts(&body, "</CompleteMultipartUpload>");
	http_response_init(&rs);
	for (attempt = 1;; attempt++) {
		r = s3_exchange(u->c, &(struct s3_call){ .method = "POST", .key = u->key,
							 .query = q, .nquery = 1, .headers = hdrs,
							 .body = body.data, .body_len = body.len,
							 .transfer = true },
				what, &rs, e);
		if (!r)
			r = s3_xml_complete(rs.body.data, rs.body.len, res->etag, sizeof(res->etag),
					    &se, e);
		/* S3 may fail a Complete after its 200 went out: the error is
		 * in the body, and a passing one is worth another try. */
		if (r != ERR_HTTP || rs.status != 200 || !up_error_passes(se.code) ||
		    attempt >= o->tries)
			break;
		log_info("%s: %s in a 200 answer; trying again (try %d of %d)", what, se.code,
			 attempt + 1, o->tries);
		if (clock_sleep_ms(http_backoff_ms(s3_client_retry(u->c), attempt, -1), o->cancel)) {
			r = err_set(e, ERR_CANCELLED, "%s: cancelled", what);
			break;
		}
	}
	if (r && rs.status == 404 && (rs.tries > 1 || attempt > 1)) {
		/* A retry after a Complete that did arrive finds the upload
		 * gone: the object itself says whether it is ours. */
		if (!s3_head(u->c, u->key, &h, NULL) && h.size == u->size &&
		    !strcmp(h.sha256, sha256)) {
			snprintf(res->etag, sizeof(res->etag), "%s", h.etag);
			r = 0;
		}
	}
	if (r)
		goto out;
	up_multipart_etag(u, want, sizeof(want));
	if (strchr(res->etag, '-') && strcasecmp(res->etag, want)) {
		r = err_set(e, ERR_CORRUPT, "%s: the object's ETag %s is not %s, made of the "
					    "parts' MD5s",
			    what, res->etag, want);
		goto out;
	}
	if (!strchr(res->etag, '-'))
		log_debug("%s: a plain ETag (%s): not the parts' digest, not checked", what,
			  res->etag);
	/* The object as the store now has it. */
	r = s3_head(u->c, u->key, &h, e);
	if (!r && (h.size != u->size || strcmp(h.sha256, sha256)))
		r = err_set(e, ERR_CORRUPT, "%s: the object has %llu bytes and SHA-256 '%s', not "
					    "%llu and %s",
			    what, (unsigned long long)h.size, h.sha256,
			    (unsigned long long)u->size, sha256);
out:
	if (r == ERR_CORRUPT) {
		/* Its x-amz-meta-sha256 would vouch for bytes it does not hold. */
		if (s3_exchange(u->c, &(struct s3_call){ .method = "DELETE", .key = u->key },
				"DELETE", &rs, NULL))
			log_warn("%s: could not delete the damaged object", u->uri);
	}
	http_response_release(&rs);
	buf_release(&body);
	free(what);
	return r;
}

static int up_put_multipart(struct s3_client *c, int fd, const char *path, const char *key,
			    const struct stat *st, const char *known_sha,
			    const struct progress *pg, struct s3_put_result *res,
			    struct err *e)
{
	const struct s3_opts *o = s3_client_opts(c);
	struct up_multi u = { .c = c, .path = path, .key = key, .fd = fd,
			      .size = (uint64_t)st->st_size };
	struct up_record rec = { 0 };
	struct s3_part *listed = NULL;
	size_t nlisted = 0;
	char *record = up_record_path(c, key, st), *lock = NULL;
	int lock_fd = -1, r = 0;

	pthread_mutex_init(&u.mu, NULL);
	u.uri = s3_uri(c, key);
	if (record) {
		lock = xasprintf("%s.lock", record);
		r = fsx_lock(lock, &lock_fd, e);
		if (r == ERR_EXISTS)
			err_set(e, ERR_EXISTS, "another ferry is uploading %s to %s", path, u.uri);
		if (r)
			goto out;
	}
	if (record && up_record_load(record, c, key, u.size, &rec)) {
		u.upload_id = rec.upload_id;
		rec.upload_id = NULL;
		r = up_list_parts(&u, &listed, &nlisted, e);
		if (r == ERR_NOTFOUND) {
			log_info("%s: the earlier upload is gone; starting again", u.uri);
			unlink(record);
			free(u.upload_id);
			u.upload_id = NULL;
			r = 0;
		} else if (r) {
			goto out;
		} else {
			res->resumed = true;
			u.part_size = rec.part_size;
			memcpy(res->sha256, rec.sha256, sizeof(res->sha256));
		}
	}
	if (!u.upload_id)
		u.part_size = s3_part_size(u.size, o->part_size);
	u.nparts = (unsigned)((u.size + u.part_size - 1) / u.part_size);
	res->multipart = true;
	res->parts = u.nparts;
	res->part_size = u.part_size;
	u.parts = xcalloc(u.nparts, sizeof(*u.parts));
	u.tasks = xcalloc(u.nparts, sizeof(*u.tasks));
	for (unsigned i = 0; i < u.nparts; i++) {
		u.parts[i].off = (uint64_t)i * u.part_size;
		u.parts[i].len = i + 1 < u.nparts ? u.part_size : u.size - u.parts[i].off;
	}
	for (size_t k = 0; k < nlisted; k++) {
		struct up_part *p;

		if (listed[k].number < 1 || listed[k].number > u.nparts)
			continue;
		p = &u.parts[listed[k].number - 1];
		p->listed = true;
		p->listed_size = listed[k].size;
		snprintf(p->listed_etag, sizeof(p->listed_etag), "%s", listed[k].etag);
	}
	/* The parts' digests need no UploadId: on a new upload they are worked
	 * out on the other core while this one hashes the whole file, when
	 * the network has nothing to do yet. */
	if (pthread_create(&u.hasher, NULL, up_hasher, &u)) {
		r = err_set(e, ERR_IO, "cannot start a thread to hash %s", path);
		goto out; /* nothing created yet; a resumed upload stays resumable */
	}
	u.hasher_started = true;
	if (!u.upload_id) {
		if (known_sha) {
			memcpy(res->sha256, known_sha, sizeof(res->sha256));
		} else {
			struct up_digest d = { .want_sha = true };

			r = up_hash(fd, path, 0, u.size, &d, pg, 0, u.size, NULL, o->cancel, e);
			if (r)
				goto out;
			memcpy(res->sha256, d.sha256, sizeof(res->sha256));
		}
		r = up_create(&u, res->sha256, e);
		if (r)
			goto out;
		if (record) {
			rec.part_size = u.part_size;
			rec.upload_id = u.upload_id;
			memcpy(rec.sha256, res->sha256, sizeof(rec.sha256));
			r = up_record_save(record, c, key, path, st, &rec, e);
			rec.upload_id = NULL;
			if (r)
				goto fail;
		}
	}
	for (unsigned i = 0; i < u.nparts; i++) {
		struct up_part *p = &u.parts[i];
		struct s3_task *j = &u.tasks[i];

		snprintf(p->number, sizeof(p->number), "%u", i + 1);
		p->query[0] = (struct sigv4_param){ "partNumber", p->number };
		p->query[1] = (struct sigv4_param){ "uploadId", u.upload_id };
		j->call = (struct s3_call){ .method = "PUT", .key = key, .query = p->query,
					    .nquery = 2, .use_body_fd = true, .body_fd = fd,
					    .body_fd_off = p->off, .body_fd_len = p->len,
					    .transfer = true };
		snprintf(j->what, sizeof(j->what), "UploadPart %u of %u of %s", i + 1, u.nparts,
			 u.uri);
		j->check = up_part_check;
		j->arg = &u;
		j->bytes = p->len;
	}
	{
		struct s3_run_opts ro = { .ready = up_part_ready, .arg = &u, .pg = pg,
					  .phase = "uploading", .total = u.size };

		r = s3_run(c, u.tasks, u.nparts, &ro, e);
	}
	up_hasher_stop(&u);
	res->parts_sent = u.sent;
	if (r)
		goto fail;
	r = up_complete(&u, res->sha256, res, e);
	if (r)
		goto fail;
	if (record)
		unlink(record);
	goto out;
fail:
	/* A final failure: give the parts back rather than leave them billed
	 * until the store expires them. A run killed before this point keeps
	 * its record and resumes, and so does a cancelled one: a job stopped
	 * or a worker draining carries on later from the parts sent. */
	if (u.upload_id && r == ERR_CANCELLED) {
		up_hasher_stop(&u);
		log_info("%s: upload cancelled; the next put resumes it", u.uri);
	} else if (u.upload_id) {
		struct err ae = { 0 };

		up_hasher_stop(&u);
		if (up_abort(&u, &ae))
			log_warn("could not abort the upload to %s (%s); the next run resumes it",
				 u.uri, ae.msg);
		else if (record)
			unlink(record);
	}
out:
	free(listed);
	free(rec.upload_id);
	up_multi_release(&u);
	if (lock_fd >= 0) {
		unlink(lock);
		close(lock_fd);
	}
	free(lock);
	free(record);
	return r;
}

/* The object is there already: an upload of it left half done by an
 * earlier run is of no use; give its parts back. */
static void up_forget(struct s3_client *c, const char *key, const struct stat *st)
{
	char *record = up_record_path(c, key, st);
	struct up_record rec;

	if (record && up_record_load(record, c, key, (uint64_t)st->st_size, &rec)) {
		struct up_multi u = { .c = c, .key = key, .upload_id = rec.upload_id,
				      .uri = s3_uri(c, key) };

		if (!up_abort(&u, NULL))
			unlink(record);
		free(u.uri);
		free(rec.upload_id);
	}
	free(record);
}

int s3_put_file(struct s3_client *c, const char *path, const char *key,
		const struct progress *pg, struct s3_put_result *res, struct err *e)
{
	const struct s3_opts *o = s3_client_opts(c);
	struct s3_head h;
	struct stat st;
	char known[SHA256_HEX_LEN + 1] = "";
	int fd, r;

	memset(res, 0, sizeof(*res));
	r = fsx_open_regular(path, &fd, &st, e);
	if (r)
		return r;
	res->size = (uint64_t)st.st_size;
	if (res->size > S3_MAX_OBJECT) {
		r = err_set(e, ERR_LIMIT, "%s is larger than an S3 object may be (5 TiB)", path);
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = s3_head(c, key, &h, e);
	if (r && r != ERR_NOTFOUND)
		goto out;
	if (!r && h.size == res->size && h.sha256[0]) {
		struct up_digest d = { .want_sha = true };

		r = up_hash(fd, path, 0, res->size, &d, pg, 0, res->size, NULL, o->cancel,
			    e);
		if (r)
			goto out;
		memcpy(known, d.sha256, sizeof(known));
		if (!strcmp(known, h.sha256)) {
			up_forget(c, key, &st);
			res->skipped = true;
			memcpy(res->sha256, known, sizeof(res->sha256));
			snprintf(res->etag, sizeof(res->etag), "%s", h.etag);
			log_info("%s: already there with the same SHA-256; not sent again", key);
			goto out;
		}
	}
	if (res->size <= o->multipart_above)
		r = up_put_single(c, fd, path, key, res->size, pg, res, e);
	else
		r = up_put_multipart(c, fd, path, key, &st, known[0] ? known : NULL, pg, res, e);
	if (!r) {
		struct stat now;

		/* The bytes hashed and the bytes sent must be the same file. */
		if (fstat(fd, &now) || now.st_size != st.st_size ||
		    clock_ts_ns(now.st_mtim) != clock_ts_ns(st.st_mtim))
			r = err_set(e, ERR_CHANGED, "%s changed while it was uploaded; upload it again",
				    path);
	}
out:
	close(fd);
	return r;
}
