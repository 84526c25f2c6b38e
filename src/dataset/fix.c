#include "dataset/fix.h"

#include <dirent.h>
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>
#include <vips/vector.h> /* after vips.h, which it needs */
#include <webp/encode.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

#define FIX_REMOVED_DIR ".ferry-removed"
#define FIX_MAX_THREADS 8
#define FIX_MAX_IMAGE_BYTES ((size_t)1 << 30)
#define FIX_JPEG_Q 95
#define FIX_WEBP_Q 95
#define FIX_PNG_COMPRESSION 6

/* ---- captions ---- */

static bool fix_space(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

char *fix_caption_normalize(const char *text)
{
	struct buf b = BUF_INIT;
	const unsigned char *p = (const unsigned char *)text;
	bool gap = false;

	if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		p += 3;
	for (; *p; p++) {
		if (fix_space(*p)) {
			gap = b.len > 0;
			continue;
		}
		if (gap)
			buf_putc(&b, ' ');
		gap = false;
		buf_putc(&b, (char)*p);
	}
	return buf_detach(&b, NULL);
}

/* Whether `text` is what normalising gives, allowing one final newline. */
static bool fix_caption_is_normal(const char *text, const char *norm)
{
	size_t n = strlen(norm);

	if (!strcmp(text, norm))
		return true;
	return n && !strncmp(text, norm, n) && !strcmp(text + n, "\n");
}

static int fix_iconv(const char *from, const char *data, size_t len, char **out)
{
	iconv_t cd = iconv_open("UTF-8", from);
	struct buf b = BUF_INIT;
	char *in = (char *)data;
	size_t left = len;
	int r = 0;

	if (cd == (iconv_t)-1)
		return ERR_FORMAT;
	while (left) {
		char *dst;
		size_t room, n;

		buf_grow(&b, left * 4 + 16);
		dst = b.data + b.len;
		room = b.cap - b.len - 1;
		n = iconv(cd, &in, &left, &dst, &room);
		b.len = (size_t)(dst - b.data);
		b.data[b.len] = '\0';
		if (n == (size_t)-1 && errno != E2BIG) {
			r = ERR_FORMAT;
			break;
		}
	}
	iconv_close(cd);
	if (!r && (!str_utf8_valid(b.data, b.len) || strlen(b.data) != b.len))
		r = ERR_FORMAT; /* NUL bytes, or a converter that misbehaved */
	if (r)
		buf_release(&b);
	else
		*out = buf_detach(&b, NULL);
	return r;
}

int fix_caption_to_utf8(const char *data, size_t len, char **out, const char **from,
			struct err *e)
{
	const unsigned char *p = (const unsigned char *)data;
	static const char *const tries[] = { "WINDOWS-1252", "ISO-8859-1" };
	char *tmp = NULL;

	*out = NULL;
	if (len >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)) &&
	    !fix_iconv("UTF-16", data, len, &tmp)) {
		*from = "UTF-16";
		goto done;
	}
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		/* NUL bytes never belong in a caption; make them spaces first. */
		char *copy = xmalloc(len + 1);
		int r;

		memcpy(copy, data, len);
		copy[len] = '\0';
		for (size_t k = 0; k < len; k++)
			if (!copy[k])
				copy[k] = ' ';
		r = fix_iconv(tries[i], copy, len, &tmp);
		free(copy);
		if (!r) {
			*from = tries[i];
			goto done;
		}
	}
	return err_set(e, ERR_FORMAT, "caption is neither UTF-8 nor Latin-1 text");
done:
	*out = tmp;
	return 0;
}

char *fix_caption_with_trigger(const char *caption, const char *trigger)
{
	if (!trigger || !*trigger || ds_caption_has_trigger(caption, trigger))
		return NULL;
	if (!*caption)
		return xstrdup(trigger);
	return xasprintf("%s, %s", trigger, caption);
}

/* ---- planning ---- */

void fix_planned_size(const struct img_info *im, unsigned max_side, unsigned *w, unsigned *h)
{
	unsigned x = im->width, y = im->height, longest;

	if (im->orientation >= 5 && im->orientation <= 8) {
		x = im->height;
		y = im->width;
	}
	longest = x > y ? x : y;
	if (max_side && longest > max_side) {
		double s = (double)max_side / longest;
		unsigned nx = (unsigned)(x * s + 0.5), ny = (unsigned)(y * s + 0.5);

		x = x == longest ? max_side : (nx ? nx : 1);
		y = y == longest ? max_side : (ny ? ny : 1);
	}
	*w = x;
	*h = y;
}

unsigned fix_plan_image(const struct ds_file *f, unsigned max_side, uint64_t max_file_bytes)
{
	const struct img_info *im = &f->img;
	unsigned plan = 0, w, h;

	if (f->status || im->format == IMG_NONE)
		return 0;
	if (im->orientation > 1 && im->orientation <= 8)
		plan |= FIX_ROTATE;
	if (im->alpha)
		plan |= FIX_FLATTEN;
	if (im->cmyk)
		plan |= FIX_SRGB;
	if (im->bit_depth > 8)
		plan |= FIX_8BIT;
	if (im->gray)
		plan |= FIX_RGB;
	if (im->animated)
		plan |= FIX_FIRST_FRAME;
	fix_planned_size(im, max_side, &w, &h);
	if ((im->orientation >= 5 && im->orientation <= 8 ? im->height : im->width) != w ||
	    (im->orientation >= 5 && im->orientation <= 8 ? im->width : im->height) != h)
		plan |= FIX_RESIZE;
	if (max_file_bytes && f->size > max_file_bytes && !(plan & FIX_PIXELS))
		plan |= FIX_REENCODE;
	if (img_format_from_name(f->rel) != im->format)
		plan |= FIX_RENAME;
	return plan;
}

/* ---- a small string map: stems and hashes to indices ---- */

struct fix_map {
	const char **keys;
	size_t *vals;
	size_t cap, n;
};

static size_t fix_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void fix_map_init(struct fix_map *m, size_t expect)
{
	m->cap = 16;
	while (m->cap < expect * 2 + 2)
		m->cap *= 2;
	m->keys = xcalloc(m->cap, sizeof(*m->keys));
	m->vals = xcalloc(m->cap, sizeof(*m->vals));
	m->n = 0;
}

static void fix_map_release(struct fix_map *m)
{
	free(m->keys);
	free(m->vals);
}

/* The slot for `key`: where it is, or where it would go. */
static size_t fix_map_slot(const struct fix_map *m, const char *key)
{
	size_t i = fix_hash(key) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], key))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static bool fix_map_get(const struct fix_map *m, const char *key, size_t *val)
{
	size_t i = fix_map_slot(m, key);

	if (!m->keys[i])
		return false;
	if (val)
		*val = m->vals[i];
	return true;
}

/* `key` must outlive the map. Keeps an existing value. */
static void fix_map_put(struct fix_map *m, const char *key, size_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct fix_map bigger;

		fix_map_init(&bigger, m->cap);
		for (size_t k = 0; k < m->cap; k++)
			if (m->keys[k])
				fix_map_put(&bigger, m->keys[k], m->vals[k]);
		fix_map_release(m);
		*m = bigger;
	}
	i = fix_map_slot(m, key);
	if (m->keys[i])
		return;
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

/* ---- actions ---- */

struct fix_alist {
	struct fix_action *v;
	size_t n, alloc;
};

static void fix_act(struct fix_alist *l, const char *path, const char *action,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fix_act(struct fix_alist *l, const char *path, const char *action,
		    const char *fmt, ...)
{
	struct fix_action *a;
	va_list ap;

	ALLOC_GROW(l->v, l->n + 1, l->alloc);
	a = &l->v[l->n++];
	a->path = xstrdup(path);
	a->action = action;
	if (fmt) {
		va_start(ap, fmt);
		a->detail = xvasprintf(fmt, ap);
		va_end(ap);
	} else {
		a->detail = NULL;
	}
}

static void fix_alist_release(struct fix_alist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].detail);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

/* ---- the work ---- */

struct fix_item {
	size_t img;          /* index in ds->files */
	int cap;             /* its caption file, or -1 */
	unsigned plan;       /* FIX_* */
	char *out_rel;       /* name of the image in the result */
	char *cap_rel;       /* name of its caption in the result */
	char *why_renamed;   /* set when out_rel is not the original name */

	/* Filled by the worker. */
	bool img_staged;     /* written to the staging folder */
	bool img_kept;       /* in place: the original stays as it is */
	bool cap_staged;
	bool cap_kept;
	unsigned failures;
	struct fix_alist acts;
};

struct fix_ctx {
	struct ds_dataset *ds;
	const struct fix_opts *o;
	char *stage;          /* staging folder; NULL on a dry run */
	struct fix_item *items;
	size_t nitems;
	atomic_size_t next;
	bool vips;            /* libvips is initialised */
	bool info_staged;     /* dataset_info.json is in the staging folder */
};

/* The detail of a link that is kept: the result has no links, because in
 * place a link breaks when fix drops or moves what it points to. */
#define FIX_LINK_COPIED "a symbolic link; the file it points to is written as a regular file"

static pthread_once_t fix_vips_once = PTHREAD_ONCE_INIT;
static int fix_vips_status;

static void fix_vips_init(void)
{
	fix_vips_status = VIPS_INIT("ferry");
	if (!fix_vips_status) {
		/* We run one image per worker; keep libvips from caching or
		 * starting threads of its own on top. */
		vips_concurrency_set(1);
		vips_cache_set_max(0);
		vips_cache_set_max_mem(0);
		/* No run-time SIMD code: liborc (0.4.33 at least) compiles and
		 * frees its programs without a lock, and two workers resizing at
		 * once corrupt its code memory and the heap. */
		vips_vector_set_enabled(FALSE);
	}
}

/* libvips keeps one error buffer for the whole process, so a worker that
 * reads it may get another worker's message, or take it away. Images are
 * repaired under this lock held shared; an image whose repair fails in
 * libvips is repaired again with the lock held exclusively (no other image
 * in libvips), from a clear buffer, so the message read is its own. Nothing
 * reads or clears the buffer under the shared lock. */
static pthread_rwlock_t fix_vips_lock;
static pthread_once_t fix_vips_lock_once = PTHREAD_ONCE_INIT;

static void fix_vips_lock_init(void)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	/* A waiting exclusive run must not starve behind a stream of shared ones. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (pthread_rwlock_init(&fix_vips_lock, &attr))
		abort();
	pthread_rwlockattr_destroy(&attr);
}

/* Read and clear libvips' error buffer: only with fix_vips_lock held
 * exclusively, or before any worker starts. */
static char *fix_vips_error(void)
{
	char *msg = vips_error_buffer_copy();
	char *out = str_trim(xstrdup(msg ? msg : ""));

	g_free(msg);
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return out;
}

static const char *fix_ext(enum img_format f)
{
	switch (f) {
	case IMG_JPEG: return ".jpg";
	case IMG_PNG: return ".png";
	case IMG_WEBP: return ".webp";
	default: return "";
	}
}

/* A plain lossy WebP (no EXIF, XMP or ICC chunk) of 8-bit RGB pixels.
 * Sets *vips_failed when libvips failed (the message is the caller's). */
static int fix_webp_encode(VipsImage *im, struct buf *out, bool *vips_failed, struct err *e)
{
	size_t npix = 0, len;
	uint8_t *webp = NULL;
	void *pix;

	if (im->Bands != 3 || im->BandFmt != VIPS_FORMAT_UCHAR || im->Xsize > WEBP_MAX_DIMENSION ||
	    im->Ysize > WEBP_MAX_DIMENSION)
		return err_set(e, ERR_LIMIT, "cannot write a %dx%d WebP image", im->Xsize, im->Ysize);
	pix = vips_image_write_to_memory(im, &npix);
	if (!pix) {
		*vips_failed = true;
		return ERR_CORRUPT;
	}
	len = WebPEncodeRGB(pix, im->Xsize, im->Ysize, im->Xsize * 3, FIX_WEBP_Q, &webp);
	g_free(pix);
	if (!len)
		return err_set(e, ERR_FAIL, "cannot encode WebP");
	buf_add(out, webp, len);
	WebPFree(webp);
	return 0;
}

/* Decode, repair and encode one image; `out` gets the new file's bytes.
 * Shared (`alone` false, fix_vips_lock held shared): a failing libvips call
 * (an unusable ICC profile included) stops the work with *again set, and the
 * error buffer is left alone. Alone (the lock held exclusively): the buffer
 * holds this image's messages only, and they are read. */
static int fix_pixels(const struct ds_file *f, unsigned plan, unsigned max_side, bool alone,
		      bool *again, struct buf *out, unsigned *ow, unsigned *oh, struct err *e)
{
	VipsImage *t[12] = { NULL };
	VipsImage *cur;
	VipsAccess access = plan & FIX_ROTATE ? VIPS_ACCESS_RANDOM : VIPS_ACCESS_SEQUENTIAL;
	struct buf raw = BUF_INIT;
	void *enc = NULL;
	size_t enc_len = 0, k = 0;
	bool has_icc;
	int r, longest, vr = 0;
	bool webp_vips_failed = false;

	*again = false;
	r = fsx_read_file(f->abs, &raw, FIX_MAX_IMAGE_BYTES, e);
	if (r)
		goto out;
	switch (f->img.format) {
	case IMG_JPEG:
		vr = vips_jpegload_buffer(raw.data, raw.len, &t[k], "access", access,
					  "fail_on", VIPS_FAIL_ON_ERROR, NULL);
		break;
	case IMG_PNG:
		vr = vips_pngload_buffer(raw.data, raw.len, &t[k], "access", access,
					 "fail_on", VIPS_FAIL_ON_ERROR, NULL);
		break;
	case IMG_WEBP: /* the first frame only: n = 1 is the default */
		vr = vips_webpload_buffer(raw.data, raw.len, &t[k], "access", access,
					  "fail_on", VIPS_FAIL_ON_ERROR, NULL);
		break;
	default:
		r = err_set(e, ERR_FORMAT, "not a JPEG, PNG or WebP image");
		goto out;
	}
	if (vr)
		goto vips_failed;
	cur = t[k++];

	if (plan & FIX_ROTATE) {
		if (vips_autorot(cur, &t[k], NULL))
			goto vips_failed;
		cur = t[k++];
	}
	/* Flatten first, in the image's own format: libvips 8.14's ICC
	 * transform to 8 bits clips a 16-bit alpha instead of scaling it. */
	if (vips_image_hasalpha(cur)) {
		double max = cur->BandFmt == VIPS_FORMAT_USHORT ? 65535.0 : 255.0;
		VipsArrayDouble *white = vips_array_double_newv(1, max);

		vr = vips_flatten(cur, &t[k], "background", white, "max_alpha", max, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (vr)
			goto vips_failed;
		cur = t[k++];
	}
	/* Colour: an embedded profile says what the numbers mean; use it to
	 * reach sRGB. Without one (or when it is unusable) vips_colourspace
	 * converts CMYK with its built-in profile, 16-bit to 8 and grey to RGB. */
	has_icc = vips_image_get_typeof(cur, VIPS_META_ICC_NAME) != 0;
	if (has_icc) {
		if (vips_icc_transform(cur, &t[k], "srgb", "embedded", TRUE, "depth", 8,
				       "intent", VIPS_INTENT_RELATIVE, NULL)) {
			char *why;

			if (!alone) /* its reason is only known when run alone */
				goto vips_failed;
			why = fix_vips_error();
			log_info("%s: embedded ICC profile not usable (%s); converting without it",
				 f->rel, *why ? why : "libvips gave no reason");
			free(why);
		} else {
			cur = t[k++];
		}
	}
	if (vips_image_guess_interpretation(cur) != VIPS_INTERPRETATION_sRGB ||
	    cur->BandFmt != VIPS_FORMAT_UCHAR || cur->Bands < 3) {
		if (vips_colourspace(cur, &t[k], VIPS_INTERPRETATION_sRGB, NULL))
			goto vips_failed;
		cur = t[k++];
	}
	longest = cur->Xsize > cur->Ysize ? cur->Xsize : cur->Ysize;
	if (max_side && longest > (int)max_side) {
		if (vips_resize(cur, &t[k], (double)max_side / longest, "kernel",
				VIPS_KERNEL_LANCZOS3, NULL))
			goto vips_failed;
		cur = t[k++];
	}
	if (cur->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(cur, &t[k], NULL))
			goto vips_failed;
		cur = t[k++];
	}
	if (cur->Bands > 3) {
		if (vips_extract_band(cur, &t[k], 0, "n", 3, NULL))
			goto vips_failed;
		cur = t[k++];
	}
	/* Plain sRGB out: no profile, no EXIF, no orientation tag. */
	switch (f->img.format) {
	case IMG_JPEG:
		vr = vips_jpegsave_buffer(cur, &enc, &enc_len, "Q", FIX_JPEG_Q, "strip", TRUE,
					  "optimize_coding", TRUE, NULL);
		break;
	case IMG_PNG:
		vr = vips_pngsave_buffer(cur, &enc, &enc_len, "compression", FIX_PNG_COMPRESSION,
					 "strip", TRUE, NULL);
		break;
	default:
		/* libvips 8.14's webpsave ignores "strip" and always adds EXIF
		 * (libvips issue 3340), so libwebp encodes the pixels itself. */
		r = fix_webp_encode(cur, out, &webp_vips_failed, e);
		if (webp_vips_failed)
			goto vips_failed;
		if (r)
			goto out;
		break;
	}
	if (vr)
		goto vips_failed;
	*ow = (unsigned)cur->Xsize;
	*oh = (unsigned)cur->Ysize;
	if (enc)
		buf_add(out, enc, enc_len);
	goto out;

vips_failed:
	if (!alone) {
		*again = true;
		r = err_set(e, ERR_CORRUPT, "cannot repair %s: libvips failed", f->rel);
	} else {
		char *why = fix_vips_error();

		r = err_set(e, ERR_CORRUPT, "cannot repair %s: %s", f->rel,
			    *why ? why : "libvips failed and gave no reason");
		free(why);
	}
out:
	g_free(enc);
	for (size_t i = 12; i-- > 0;)
		if (t[i])
			g_object_unref(t[i]);
	buf_release(&raw);
	return r;
}

int fix_image(const struct ds_file *f, unsigned plan, unsigned max_side, struct buf *out,
	      unsigned *w, unsigned *h, struct err *e)
{
	size_t start = out->len;
	bool again = false;
	int r;

	pthread_once(&fix_vips_once, fix_vips_init);
	if (fix_vips_status)
		return err_set(e, ERR_FAIL, "cannot repair %s: libvips did not start", f->rel);
	pthread_once(&fix_vips_lock_once, fix_vips_lock_init);
	pthread_rwlock_rdlock(&fix_vips_lock);
	r = fix_pixels(f, plan, max_side, false, &again, out, w, h, e);
	pthread_rwlock_unlock(&fix_vips_lock);
	if (!again)
		return r;
	/* Again, alone: whatever the buffer holds now belongs to other images
	 * that failed and will be run alone too. */
	out->len = start;
	if (out->cap)
		out->data[start] = '\0';
	err_clear(e);
	pthread_rwlock_wrlock(&fix_vips_lock);
	vips_error_clear();
	r = fix_pixels(f, plan, max_side, true, &again, out, w, h, e);
	vips_error_clear();
	pthread_rwlock_unlock(&fix_vips_lock);
	return r;
}

static char *fix_stage_path(const struct fix_ctx *c, const char *rel)
{
	return fsx_join(c->stage, rel);
}

static int fix_stage_copy(const struct fix_ctx *c, const char *src, const char *rel,
			  struct err *e)
{
	char *dst = fix_stage_path(c, rel);
	int r = fsx_mkdir_parent(dst, 0755, e);

	if (!r)
		r = fsx_copy_file(src, dst, 0644, e);
	free(dst);
	return r;
}

static int fix_stage_write(const struct fix_ctx *c, const char *rel, const void *data,
			   size_t len, struct err *e)
{
	char *dst = fix_stage_path(c, rel);
	int r = fsx_mkdir_parent(dst, 0755, e);

	if (!r)
		r = fsx_write_atomic(dst, data, len, 0644, e);
	free(dst);
	return r;
}

static void fix_report_pixels(struct fix_item *it, const struct ds_file *f, unsigned plan,
			      unsigned w, unsigned h, unsigned max_side)
{
	const struct img_info *im = &f->img;
	const char *rel = f->rel;

	if (plan & FIX_ROTATE)
		fix_act(&it->acts, rel, "rotated", "EXIF orientation %u applied", im->orientation);
	if (plan & FIX_FIRST_FRAME)
		fix_act(&it->acts, rel, "first_frame", "animation: kept the first frame");
	if (plan & FIX_SRGB)
		fix_act(&it->acts, rel, "converted_srgb", "CMYK to sRGB");
	if (plan & FIX_8BIT)
		fix_act(&it->acts, rel, "to_8bit", "%u to 8 bits per channel", im->bit_depth);
	if (plan & FIX_RGB)
		fix_act(&it->acts, rel, "converted_rgb", "grayscale to RGB");
	if (plan & FIX_FLATTEN)
		fix_act(&it->acts, rel, "flattened", "transparency flattened onto white");
	if (plan & FIX_RESIZE) {
		unsigned sw = im->width, sh = im->height;

		if (im->orientation >= 5 && im->orientation <= 8) {
			sw = im->height;
			sh = im->width;
		}
		fix_act(&it->acts, rel, "resized", "%ux%u -> %ux%u (longer side %u, Lanczos3)",
			sw, sh, w, h, max_side);
	}
}

static const char *fix_format_label(enum img_format f)
{
	switch (f) {
	case IMG_JPEG: return "JPEG quality 95";
	case IMG_PNG: return "PNG";
	case IMG_WEBP: return "WebP quality 95";
	default: return "?";
	}
}

static void fix_do_image(struct fix_ctx *c, struct fix_item *it)
{
	const struct fix_opts *o = c->o;
	const struct ds_file *f = &c->ds->files[it->img];
	unsigned max_side = o->check.max_side;
	struct err e = { 0 };

	if (strcmp(it->out_rel, f->rel))
		fix_act(&it->acts, f->rel, "renamed", "-> %s (%s)", it->out_rel, it->why_renamed);

	if (!(it->plan & FIX_PIXELS)) {
		/* In place, a file stays as it is unless it is a link. */
		bool keep = o->in_place && !f->symlink && !strcmp(it->out_rel, f->rel);

		if (o->dry_run) {
			fix_act(&it->acts, f->rel, keep ? "kept" : "copied",
				f->symlink ? FIX_LINK_COPIED : NULL);
			return;
		}
		if (keep) {
			it->img_kept = true;
			fix_act(&it->acts, f->rel, "kept", NULL);
			return;
		}
		if (fix_stage_copy(c, f->abs, it->out_rel, &e)) {
			fix_act(&it->acts, f->rel, "fix_failed", "cannot copy %s: %s", f->rel,
				e.msg);
			it->failures++;
			if (o->in_place && !strcmp(it->out_rel, f->rel))
				it->img_kept = true; /* nothing staged: leave it as it was */
			return;
		}
		it->img_staged = true;
		fix_act(&it->acts, f->rel, "copied", f->symlink ? FIX_LINK_COPIED : NULL);
		return;
	}

	if (o->dry_run) {
		unsigned w, h;

		fix_planned_size(&f->img, max_side, &w, &h);
		fix_report_pixels(it, f, it->plan, w, h, max_side);
		fix_act(&it->acts, f->rel, "reencoded", "%s%s", fix_format_label(f->img.format),
			it->plan & FIX_REENCODE ? "; the file was larger than the limit" : "");
		return;
	}

	{
		struct buf enc = BUF_INIT;
		unsigned w = 0, h = 0;

		if (fix_image(f, it->plan, max_side, &enc, &w, &h, &e) ||
		    fix_stage_write(c, it->out_rel, enc.data, enc.len, &e)) {
			fix_act(&it->acts, f->rel, "fix_failed", "%s; copied unchanged", e.msg);
			it->failures++;
			err_clear(&e);
			if (!fix_stage_copy(c, f->abs, it->out_rel, &e))
				it->img_staged = true;
			else if (o->in_place && !strcmp(it->out_rel, f->rel))
				it->img_kept = true; /* nothing staged: leave the original */
			buf_release(&enc);
			return;
		}
		it->img_staged = true;
		fix_report_pixels(it, f, it->plan, w, h, max_side);
		fix_act(&it->acts, f->rel, "reencoded", "%s, %.2f MiB -> %.2f MiB%s",
			fix_format_label(f->img.format), (double)f->size / (1 << 20),
			(double)enc.len / (1 << 20),
			it->plan & FIX_REENCODE ? "; the file was larger than the limit" : "");
		buf_release(&enc);
	}
}

static char *fix_preview(const char *s)
{
	size_t n = strlen(s);

	if (n <= 100)
		return xstrdup(s);
	n = 97;
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return xasprintf("%.*s...", (int)n, s);
}

static void fix_do_caption(struct fix_ctx *c, struct fix_item *it)
{
	const struct fix_opts *o = c->o;
	struct ds_dataset *ds = c->ds;
	const struct ds_file *img = &ds->files[it->img];
	const struct ds_file *g = it->cap >= 0 ? &ds->files[it->cap] : NULL;
	const char *where = g ? g->rel : img->rel;
	char *text = NULL, *norm = NULL, *with = NULL;
	bool changed = false;
	struct err e = { 0 };

	/* What the caption file says, as UTF-8. */
	if (g && (g->status == ERR_IO || g->status == ERR_LIMIT)) {
		fix_act(&it->acts, g->rel, "dropped_caption", "%s",
			g->status_msg ? g->status_msg : "unusable caption");
		changed = true;
	} else if (g && g->text_utf8) {
		text = xstrdup(g->text ? g->text : "");
	} else if (g) {
		struct buf raw = BUF_INIT;
		const char *from = NULL;

		if (fsx_read_file(g->abs, &raw, DS_CAPTION_MAX, &e) ||
		    fix_caption_to_utf8(raw.data, raw.len, &text, &from, &e)) {
			fix_act(&it->acts, g->rel, "dropped_caption", "%s", e.msg);
			err_clear(&e);
		} else {
			fix_act(&it->acts, g->rel, "caption_converted_utf8", "from %s", from);
		}
		buf_release(&raw);
		changed = true;
	}
	if (text) {
		norm = fix_caption_normalize(text);
		if (!fix_caption_is_normal(text, norm) && *norm)
			fix_act(&it->acts, where, "caption_normalized",
				"whitespace%s tidied", strstr(text, "\xef\xbb\xbf") == text ?
				" and byte-order mark" : "");
		if (!fix_caption_is_normal(text, norm))
			changed = true;
		if (!*norm) {
			fix_act(&it->acts, where, "dropped_caption", "caption is empty");
			free(norm);
			norm = NULL;
			changed = true;
		}
	}

	/* Fill a missing one. */
	if (!norm) {
		changed = true;
		if (o->default_caption && *o->default_caption) {
			norm = fix_caption_normalize(o->default_caption);
			fix_act(&it->acts, where, "caption_filled_default", NULL);
		} else if (o->captioner && o->dry_run) {
			fix_act(&it->acts, where, "caption_generated", "dry run: would ask %s",
				captioner_describe(o->captioner));
		} else if (o->captioner) {
			char *gen = NULL, *path = it->img_staged ? fix_stage_path(c, it->out_rel)
								 : xstrdup(img->abs);

			if (captioner_caption(o->captioner, path, &gen, &e)) {
				fix_act(&it->acts, img->rel, "caption_failed", "%s: %s", img->rel,
					e.msg);
				it->failures++;
				err_clear(&e);
			} else {
				char *shown;

				norm = fix_caption_normalize(gen);
				shown = fix_preview(norm);
				fix_act(&it->acts, img->rel, "caption_generated", "%s", shown);
				free(shown);
			}
			free(gen);
			free(path);
		} else {
			fix_act(&it->acts, img->rel, "caption_missing",
				"no caption; set a default caption or a caption provider "
				"(caption.cmd, caption.url)");
		}
		if (norm && !*norm) {
			free(norm);
			norm = NULL;
		}
	}
	if (norm && (with = fix_caption_with_trigger(norm, ds->trigger))) {
		fix_act(&it->acts, where, "trigger_inserted", "'%s' added in front", ds->trigger);
		free(norm);
		norm = with;
		changed = true;
	}
	if (!norm)
		goto out;

	/* Write it, or keep the file as it is (in place, unless it is a link). */
	if (!changed && g && !strcmp(it->cap_rel, g->rel)) {
		if (o->in_place && !g->symlink) {
			it->cap_kept = true;
			fix_act(&it->acts, g->rel, "kept", NULL);
			goto out;
		}
		if (!o->dry_run && fix_stage_copy(c, g->abs, it->cap_rel, &e)) {
			fix_act(&it->acts, g->rel, "fix_failed", "caption of %s: %s", img->rel,
				e.msg);
			it->failures++;
			it->cap_kept = o->in_place; /* nothing staged: leave it as it was */
			goto out;
		}
		it->cap_staged = !o->dry_run;
		fix_act(&it->acts, g->rel, "copied", g->symlink ? FIX_LINK_COPIED : NULL);
		goto out;
	}
	if (!changed && g)
		fix_act(&it->acts, g->rel, "copied", "as %s", it->cap_rel);
	if (!o->dry_run) {
		struct buf b = BUF_INIT;

		buf_puts(&b, norm);
		buf_putc(&b, '\n');
		if (fix_stage_write(c, it->cap_rel, b.data, b.len, &e)) {
			fix_act(&it->acts, where, "fix_failed", "caption of %s: %s", img->rel,
				e.msg);
			it->failures++;
		} else {
			it->cap_staged = true;
		}
		buf_release(&b);
	}
out:
	free(text);
	free(norm);
}

static void *fix_worker(void *arg)
{
	struct fix_ctx *c = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&c->next, 1);

		if (i >= c->nitems)
			break;
		fix_do_image(c, &c->items[i]);
		fix_do_caption(c, &c->items[i]);
	}
	if (c->vips)
		vips_thread_shutdown();
	return NULL;
}

static void fix_work_all(struct fix_ctx *c)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int n = c->o->check.threads > 0 ? c->o->check.threads : (int)(cores > 0 ? cores : 1);
	pthread_t *tids;
	int started = 0;

	atomic_init(&c->next, 0);
	if (n > FIX_MAX_THREADS)
		n = FIX_MAX_THREADS;
	if ((size_t)n > c->nitems)
		n = c->nitems ? (int)c->nitems : 1;
	tids = xcalloc((size_t)n, sizeof(*tids));
	for (int i = 1; i < n; i++)
		if (!pthread_create(&tids[started + 1], NULL, fix_worker, c))
			started++;
	fix_worker(c);
	for (int i = 1; i <= started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
}

/* ---- planning the whole dataset ---- */

static char *fix_stem(const char *rel)
{
	const char *slash = strrchr(rel, '/'), *dot = strrchr(rel, '.');

	if (!dot || (slash && dot < slash))
		return xstrdup(rel);
	return xstrndup(rel, (size_t)(dot - rel));
}

static const char *fix_ext_of(const char *rel)
{
	const char *slash = strrchr(rel, '/'), *dot = strrchr(rel, '.');

	return !dot || (slash && dot < slash) ? "" : dot;
}

static const char *fix_content_says(const struct ds_file *f)
{
	switch (f->img.format) {
	case IMG_JPEG: return "content is JPEG";
	case IMG_PNG: return "content is PNG";
	case IMG_WEBP: return "content is WebP";
	default: return "content is unknown";
	}
}

static const char *fix_drop_code(const struct ds_file *f)
{
	return f->status == ERR_IO ? "dropped_unreadable" : "dropped_corrupt";
}

static const char *fix_drop_reason(const struct ds_file *f)
{
	if (!f->size)
		return "file is empty";
	if (f->status == ERR_LIMIT)
		return f->status_msg ? f->status_msg : "too many pixels (decompression bomb)";
	return f->status_msg ? f->status_msg : "does not decode";
}

/* Decide, from what check found, which images stay and under what names. */
static void fix_plan(struct fix_ctx *c, struct fix_alist *acts)
{
	struct ds_dataset *ds = c->ds;
	const struct fix_opts *o = c->o;
	struct fix_map hashes, stems;
	struct strv stem_store = STRV_INIT;
	bool *cap_used = xcalloc(ds->nfiles + 1, sizeof(*cap_used));
	size_t alloc = 0;

	fix_map_init(&hashes, ds->nfiles);
	fix_map_init(&stems, ds->nfiles);
	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];
		struct fix_item *it;
		size_t first;

		switch (f->role) {
		case DS_ROLE_IMAGE:
			break;
		case DS_ROLE_INFO:
			if (f->usable)
				fix_act(acts, f->rel,
					o->in_place && !f->symlink ? "kept" : "copied",
					f->symlink ? FIX_LINK_COPIED : NULL);
			else
				fix_act(acts, f->rel, "dropped_info",
					"not a valid JSON object; the result has none");
			continue;
		case DS_ROLE_OTHER:
			fix_act(acts, f->rel, "skipped", o->in_place ? "not part of the dataset; left alone"
					: "not an image, caption or " DS_INFO_NAME "; not copied");
			continue;
		default:
			continue;
		}
		if (f->status) {
			fix_act(acts, f->rel, fix_drop_code(f), "%s", fix_drop_reason(f));
			continue;
		}
		if (fix_map_get(&hashes, f->sha256, &first)) {
			fix_act(acts, f->rel, "dropped_duplicate", "identical to %s (kept)",
				ds->files[first].rel);
			continue;
		}
		fix_map_put(&hashes, f->sha256, i);
		ALLOC_GROW(c->items, c->nitems + 1, alloc);
		it = &c->items[c->nitems++];
		memset(it, 0, sizeof(*it));
		it->img = i;
		it->cap = f->pair;
		it->plan = fix_plan_image(f, o->check.max_side, o->check.max_file_bytes);
		if (f->pair >= 0)
			cap_used[f->pair] = true;
	}

	/* Names: an image keeps its own unless another kept image took the
	 * stem first (captions pair by stem, so each image needs its own), or
	 * its extension lies about the content. Pass 0 places images that keep
	 * their names, pass 1 renamed ones, pass 2 whatever collided. */
	for (int pass = 0; pass < 3; pass++) {
		for (size_t k = 0; k < c->nitems; k++) {
			struct fix_item *it = &c->items[k];
			const struct ds_file *f = &ds->files[it->img];
			bool wrong_ext = it->plan & FIX_RENAME;
			const char *ext = wrong_ext ? fix_ext(f->img.format) : fix_ext_of(f->rel);
			char *stem;

			if (it->out_rel || (pass == 0 && wrong_ext))
				continue;
			stem = fix_stem(f->rel);
			if (pass < 2 && fix_map_get(&stems, stem, NULL)) {
				free(stem);
				continue;
			}
			if (pass == 2) {
				char *base = stem;

				for (unsigned n = 2;; n++) {
					stem = xasprintf("%s-%u", base, n);
					if (!fix_map_get(&stems, stem, NULL))
						break;
					free(stem);
				}
				free(base);
				it->why_renamed = xasprintf("%s%sanother image has the same name and "
							    "each needs its own caption",
							    wrong_ext ? fix_content_says(f) : "",
							    wrong_ext ? "; " : "");
			} else if (wrong_ext) {
				it->why_renamed = xstrdup(fix_content_says(f));
			}
			strv_push_nodup(&stem_store, stem);
			fix_map_put(&stems, stem, k);
			it->out_rel = xasprintf("%s%s", stem, ext);
			it->cap_rel = xasprintf("%s.txt", stem);
		}
	}
	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];

		if (f->role != DS_ROLE_CAPTION || cap_used[i])
			continue;
		fix_act(acts, f->rel, "dropped_orphan_caption",
			f->pair >= 0 ? "its image was dropped" : "no image with this name");
	}
	/* Things the scan met but did not list as files. */
	for (size_t i = 0; i < ds->nfindings; i++) {
		const struct ds_finding *x = &ds->findings[i];

		if (!strcmp(x->code, "broken_symlink") || !strcmp(x->code, "symlink_outside"))
			fix_act(acts, x->path, "dropped_link", "%s", x->message);
		else if (!strcmp(x->code, "bad_name") || !strcmp(x->code, "unreadable_dir") ||
			 !strcmp(x->code, "symlink_dir"))
			fix_act(acts, x->path, "skipped", "%s", x->message);
	}
	fix_map_release(&hashes);
	fix_map_release(&stems);
	strv_release(&stem_store);
	free(cap_used);
}

/* ---- the output folder ---- */

static bool fix_dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

/* The absolute, link-free form of a path that may not exist yet. */
static char *fix_resolve(const char *path)
{
	char *real = realpath(path, NULL), *dir, *slash, *parent, *out;

	if (real)
		return real;
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (!slash) {
		parent = realpath(".", NULL);
		out = parent ? fsx_join(parent, path) : NULL;
	} else {
		*slash = '\0';
		parent = fix_resolve(*dir ? dir : "/");
		out = parent ? fsx_join(parent, slash + 1) : NULL;
	}
	free(parent);
	free(dir);
	return out;
}

static int fix_check_out(const char *dir, const char *out, struct err *e)
{
	const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
	char *dreal = NULL, *oreal = NULL;
	struct stat st;
	int r = 0;

	if (!*out || !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(e, ERR_USAGE, "'%s' is not a usable output folder name", out);
	if (!lstat(out, &st)) {
		if (!S_ISDIR(st.st_mode))
			return err_set(e, ERR_USAGE,
				       "%s exists and is not a folder; give a new folder (fix never overwrites)",
				       out);
		if (!fix_dir_empty(out))
			return err_set(e, ERR_USAGE,
				       "%s is not empty; give a new or empty folder (fix never overwrites)",
				       out);
	} else if (errno != ENOENT) {
		return err_sys(e, ERR_IO, "cannot use output folder %s", out);
	}
	dreal = realpath(dir, NULL);
	oreal = fix_resolve(out);
	if (!dreal || !oreal) {
		r = err_sys(e, ERR_IO, "cannot resolve %s", !dreal ? dir : out);
		goto out;
	}
	if (str_starts_with(oreal, dreal) &&
	    (oreal[strlen(dreal)] == '/' || oreal[strlen(dreal)] == '\0'))
		r = err_set(e, ERR_USAGE,
			    "output folder %s is inside the dataset %s; write it elsewhere", out, dir);
out:
	free(dreal);
	free(oreal);
	return r;
}

static int fix_move(const char *from, const char *to, struct err *e)
{
	int r = fsx_mkdir_parent(to, 0755, e);

	if (!r && rename(from, to))
		r = err_sys(e, ERR_IO, "cannot move %s to %s", from, to);
	return r;
}

/* In place: set the originals aside, then move the new files in. */
static int fix_swap_in(struct fix_ctx *c, struct fix_result *res, struct err *e)
{
	struct ds_dataset *ds = c->ds;
	struct strv out_rels = STRV_INIT, in_rels = STRV_INIT;
	bool *keep = xcalloc(ds->nfiles + 1, sizeof(*keep));
	char stamp[32], *removed = NULL;
	struct tm tm;
	time_t now = (time_t)clock_wall_s();
	int r = 0;

	for (size_t k = 0; k < c->nitems; k++) {
		const struct fix_item *it = &c->items[k];

		if (it->img_kept)
			keep[it->img] = true;
		if (it->cap_kept)
			keep[it->cap] = true;
		if (it->img_staged)
			strv_push(&in_rels, it->out_rel);
		if (it->cap_staged)
			strv_push(&in_rels, it->cap_rel);
	}
	if (c->info_staged)
		strv_push(&in_rels, DS_INFO_NAME);
	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];

		if (f->role == DS_ROLE_OTHER || keep[i] ||
		    (f->role == DS_ROLE_INFO && f->usable && !c->info_staged))
			continue;
		strv_push(&out_rels, f->rel);
	}
	for (size_t i = 0; i < ds->nfindings; i++) {
		const struct ds_finding *x = &ds->findings[i];

		if (!strcmp(x->code, "broken_symlink") || !strcmp(x->code, "symlink_outside"))
			strv_push(&out_rels, x->path);
	}
	/* A new file may land where an old one is that we did not plan to move. */
	for (size_t i = 0; i < in_rels.n; i++) {
		char *dst = fsx_join(ds->root, in_rels.v[i]);
		struct stat st;
		int idx = ds_find(ds, in_rels.v[i]);

		if (!lstat(dst, &st) && (idx < 0 || keep[idx]))
			strv_push(&out_rels, in_rels.v[i]);
		free(dst);
	}

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (unsigned n = 1;; n++) {
		struct stat st;

		free(removed);
		removed = n == 1 ? xasprintf("%s/%s/%s", ds->root, FIX_REMOVED_DIR, stamp)
				 : xasprintf("%s/%s/%s-%u", ds->root, FIX_REMOVED_DIR, stamp, n);
		if (lstat(removed, &st))
			break;
	}
	if (out_rels.n) {
		r = fsx_mkdir_p(removed, 0755, e);
		if (r)
			goto out;
		res->removed = xstrdup(removed);
	}
	for (size_t i = 0; i < out_rels.n; i++) {
		char *from = fsx_join(ds->root, out_rels.v[i]);
		char *to = fsx_join(removed, out_rels.v[i]);
		struct stat st;

		r = lstat(from, &st) ? 0 : fix_move(from, to, e);
		free(from);
		free(to);
		if (r) {
			err_prefix(e, "originals so far are in %s; new files in %s", removed, c->stage);
			goto out;
		}
	}
	for (size_t i = 0; i < in_rels.n; i++) {
		char *from = fix_stage_path(c, in_rels.v[i]);
		char *to = fsx_join(ds->root, in_rels.v[i]);

		r = fix_move(from, to, e);
		free(from);
		free(to);
		if (r) {
			err_prefix(e, "originals are in %s; new files not yet moved are in %s",
				   res->removed ? res->removed : ds->root, c->stage);
			goto out;
		}
	}
out:
	free(removed);
	free(keep);
	strv_release(&out_rels);
	strv_release(&in_rels);
	return r;
}

/* ---- the whole run ---- */

struct fix_sorted {
	struct fix_action a;
	size_t seq;
};

static int fix_cmp_action(const void *x, const void *y)
{
	const struct fix_sorted *a = x, *b = y;
	int c = strcmp(a->a.path, b->a.path);

	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void fix_collect(struct fix_ctx *c, struct fix_alist *top, struct fix_result *res)
{
	struct fix_alist all = { 0 };

	for (size_t k = 0; k < c->nitems; k++) {
		struct fix_alist *l = &c->items[k].acts;

		for (size_t i = 0; i < l->n; i++) {
			ALLOC_GROW(all.v, all.n + 1, all.alloc);
			all.v[all.n++] = l->v[i];
		}
		free(l->v);
		memset(l, 0, sizeof(*l));
		res->failures += c->items[k].failures;
	}
	for (size_t i = 0; i < top->n; i++) {
		ALLOC_GROW(all.v, all.n + 1, all.alloc);
		all.v[all.n++] = top->v[i];
	}
	free(top->v);
	memset(top, 0, sizeof(*top));
	/* By path; actions on one path keep their order. */
	{
		struct fix_sorted *tmp = xcalloc(all.n + 1, sizeof(*tmp));

		for (size_t i = 0; i < all.n; i++)
			tmp[i] = (struct fix_sorted){ all.v[i], i };
		qsort(tmp, all.n, sizeof(*tmp), fix_cmp_action);
		for (size_t i = 0; i < all.n; i++)
			all.v[i] = tmp[i].a;
		free(tmp);
	}
	res->actions = all.v;
	res->nactions = all.n;
	res->alloc = all.n;
}

static void fix_items_release(struct fix_ctx *c)
{
	for (size_t k = 0; k < c->nitems; k++) {
		free(c->items[k].out_rel);
		free(c->items[k].cap_rel);
		free(c->items[k].why_renamed);
		fix_alist_release(&c->items[k].acts);
	}
	free(c->items);
}

static char *fix_strip_slashes(const char *p)
{
	char *s = xstrdup(p);
	size_t n = strlen(s);

	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

int fix_run(const char *dir, const struct fix_opts *o, struct fix_result *res, struct err *e)
{
	struct fix_ctx c = { .o = o };
	struct fix_alist top = { 0 };
	char *out = NULL;
	bool needs_pixels = false, staged = false;
	int r;

	memset(res, 0, sizeof(*res));
	res->dry_run = o->dry_run;
	if (!o->in_place && !o->dry_run && (!o->out || !*o->out))
		return err_set(e, ERR_USAGE, "no output folder: set one, or fix in place");
	r = ds_open(&c.ds, dir, e);
	if (r)
		goto out;
	if (!o->in_place && o->out) {
		out = fix_strip_slashes(o->out);
		r = fix_check_out(dir, out, e);
		if (r)
			goto out;
	}
	r = ds_check(c.ds, &o->check, e);
	if (r)
		goto out;
	res->out = o->in_place ? xstrdup(dir) : out ? xstrdup(out) : NULL;

	fix_plan(&c, &top);
	for (size_t k = 0; k < c.nitems; k++)
		if (c.items[k].plan & FIX_PIXELS)
			needs_pixels = true;
	if (needs_pixels && !o->dry_run) {
		pthread_once(&fix_vips_once, fix_vips_init);
		if (fix_vips_status) {
			char *why = fix_vips_error();
			r = err_set(e, ERR_FAIL, "cannot start libvips: %s", why);
			free(why);
			goto out;
		}
		c.vips = true;
	}

	if (!o->dry_run) {
		c.stage = o->in_place ? xasprintf("%s/.ferry-fix-%ld", dir, (long)getpid())
				      : xasprintf("%s.tmp-%ld", out, (long)getpid());
		if (!o->in_place && (r = fsx_mkdir_parent(out, 0755, e)))
			goto out;
		if (mkdir(c.stage, 0755)) {
			r = errno == EEXIST
				? err_set(e, ERR_IO, "%s exists (left by an interrupted fix?); remove it",
					  c.stage)
				: err_sys(e, ERR_IO, "cannot create %s", c.stage);
			goto out;
		}
		staged = true;
	}
	fix_work_all(&c);

	if (!o->dry_run) {
		int info = ds_find(c.ds, DS_INFO_NAME);

		/* Copied to a new folder; in place only when it is a link. */
		if (info >= 0 && c.ds->files[info].usable &&
		    (!o->in_place || c.ds->files[info].symlink)) {
			r = fix_stage_copy(&c, c.ds->files[info].abs, DS_INFO_NAME, e);
			if (r)
				goto out;
			c.info_staged = true;
		}
	}
	if (!o->dry_run && !o->in_place) {
		if (rename(c.stage, out)) {
			r = err_sys(e, ERR_IO, "cannot rename %s to %s (the fixed copy is in %s)",
				    c.stage, out, c.stage);
			staged = false; /* keep it: it holds the work */
			goto out;
		}
		staged = false;
	} else if (!o->dry_run) {
		r = fix_swap_in(&c, res, e);
		if (r) {
			staged = false;
			goto out;
		}
	}

	if (!o->dry_run) {
		r = ds_open(&res->checked, res->out, e);
		if (!r)
			r = ds_check(res->checked, &o->check, e);
		if (r) {
			err_prefix(e, "checking the result");
			goto out;
		}
		res->ready = res->checked->ready;
	} else {
		size_t kept = c.nitems;

		res->ready = kept >= o->check.min_images &&
			     (!o->check.max_images || kept <= o->check.max_images);
	}
out:
	fix_collect(&c, &top, res);
	if (staged && c.stage) {
		struct err ignore = { 0 };

		fsx_remove_tree(c.stage, &ignore);
	}
	fix_alist_release(&top);
	fix_items_release(&c);
	ds_free(c.ds);
	free(c.stage);
	free(out);
	return r;
}

/* ---- reports ---- */

void fix_result_release(struct fix_result *res)
{
	for (size_t i = 0; i < res->nactions; i++) {
		free(res->actions[i].path);
		free(res->actions[i].detail);
	}
	free(res->actions);
	ds_free(res->checked);
	free(res->out);
	free(res->removed);
	memset(res, 0, sizeof(*res));
}

static json_t *fix_summary(const struct fix_result *res)
{
	json_t *sum = json_object();

	for (size_t i = 0; i < res->nactions; i++) {
		const char *a = res->actions[i].action;
		json_t *n = json_object_get(sum, a);

		json_object_set_new(sum, a, json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	return sum;
}

json_t *fix_result_json(const struct fix_result *res)
{
	json_t *root = json_object(), *arr = json_array();

	for (size_t i = 0; i < res->nactions; i++) {
		const struct fix_action *a = &res->actions[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "path", a->path,
						     "action", a->action, "detail",
						     a->detail ? json_string(a->detail) : json_null()));
	}
	json_object_set_new(root, "out", res->out ? json_string(res->out) : json_null());
	json_object_set_new(root, "dry_run", json_boolean(res->dry_run));
	json_object_set_new(root, "ready", json_boolean(res->ready));
	json_object_set_new(root, "failures", json_integer((json_int_t)res->failures));
	json_object_set_new(root, "removed", res->removed ? json_string(res->removed) : json_null());
	json_object_set_new(root, "actions", arr);
	json_object_set_new(root, "summary", fix_summary(res));
	if (res->checked)
		json_object_set_new(root, "check", ds_report_json(res->checked));
	return root;
}

void fix_result_print(const struct fix_result *res, FILE *f)
{
	json_t *sum = fix_summary(res);
	const char *key;
	json_t *val;
	bool first = true;

	for (size_t i = 0; i < res->nactions; i++) {
		const struct fix_action *a = &res->actions[i];

		fprintf(f, "%-22s %s%s%s\n", a->action, a->path, a->detail ? ": " : "",
			a->detail ? a->detail : "");
	}
	fprintf(f, "%s", res->dry_run ? "dry run, nothing written:" : "fixed:");
	json_object_foreach(sum, key, val) {
		fprintf(f, "%s %lld %s", first ? "" : ",", (long long)json_integer_value(val), key);
		first = false;
	}
	if (first)
		fprintf(f, " nothing to do");
	if (res->failures)
		fprintf(f, "; %zu failure%s", res->failures, res->failures == 1 ? "" : "s");
	fputc('\n', f);
	if (res->removed)
		fprintf(f, "originals that were replaced or dropped are in %s\n", res->removed);
	if (res->checked) {
		ds_report_print(res->checked, f);
	} else if (res->dry_run) {
		fprintf(f, "%s\n", res->ready ? "the result would have enough images"
					      : "the result would not have enough images");
	}
	json_decref(sum);
}
