#include "dataset/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/verdict.h"

/* Scan-time findings are kept until ds_check merges them with the rest. */
struct ds_scan_state {
	struct ds_dataset *ds;
	size_t alloc_files, alloc_findings;
};

static void ds_add_finding(struct ds_finding **list, size_t *n, size_t *alloc,
			   enum ds_severity sev, const char *code, const char *path,
			   const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void ds_add_finding(struct ds_finding **list, size_t *n, size_t *alloc,
			   enum ds_severity sev, const char *code, const char *path,
			   const char *fmt, ...)
{
	struct ds_finding *f;
	va_list ap;

	ALLOC_GROW(*list, *n + 1, *alloc);
	f = &(*list)[(*n)++];
	f->severity = sev;
	f->code = code;
	f->path = xstrdup(path);
	va_start(ap, fmt);
	f->message = xvasprintf(fmt, ap);
	va_end(ap);
}

#define SCAN_FINDING(st, sev, code, path, ...)                                        \
	ds_add_finding(&(st)->ds->findings, &(st)->ds->nfindings, &(st)->alloc_findings, \
		       sev, code, path, __VA_ARGS__)

static bool ds_skip_name(const char *name)
{
	return name[0] == '.' || !strcmp(name, "__MACOSX");
}

static enum ds_role ds_role_of(const char *rel)
{
	if (!strcmp(rel, DS_INFO_NAME))
		return DS_ROLE_INFO;
	if (img_format_from_name(rel) != IMG_NONE)
		return DS_ROLE_IMAGE;
	if (str_ends_with_ci(rel, ".txt"))
		return DS_ROLE_CAPTION;
	return DS_ROLE_OTHER;
}

static bool ds_inside(const char *root_real, const char *target)
{
	size_t n = strlen(root_real);

	return !strncmp(target, root_real, n) && (target[n] == '/' || target[n] == '\0');
}

/* What tells a changed file from an unchanged one: size and both times. */
static void ds_file_stamp(struct ds_file *f, const struct stat *st)
{
	f->size = (uint64_t)st->st_size;
	f->mtime_ns = clock_ts_ns(st->st_mtim);
	f->ctime_ns = clock_ts_ns(st->st_ctim);
}

static void ds_scan_dir(struct ds_scan_state *st, const char *rel_dir)
{
	struct ds_dataset *ds = st->ds;
	char *dir_abs = *rel_dir ? fsx_join(ds->root, rel_dir) : xstrdup(ds->root);
	struct strv names = STRV_INIT;
	struct dirent *de;
	DIR *d;

	d = opendir(dir_abs);
	if (!d) {
		SCAN_FINDING(st, DS_SEV_ERROR, "unreadable_dir", rel_dir,
			     "cannot read folder: %s; fix its permissions", strerror(errno));
		free(dir_abs);
		return;
	}
	while ((de = readdir(d)))
		if (!ds_skip_name(de->d_name))
			strv_push(&names, de->d_name);
	closedir(d);

	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];
		char *rel = *rel_dir ? xasprintf("%s/%s", rel_dir, name) : xstrdup(name);
		char *abs = fsx_join(ds->root, rel);
		struct stat lst, sst;
		bool link = false;
		struct ds_file *f;

		if (lstat(abs, &lst))
			goto next;
		if (str_has_ctrl(name) || !str_utf8_valid(name, strlen(name))) {
			struct buf shown = BUF_INIT;

			/* The path is shown escaped: the raw name cannot go into JSON. */
			str_escape(rel, &shown);
			SCAN_FINDING(st, DS_SEV_ERROR, "bad_name", shown.data,
				     "name contains control characters or is not UTF-8; rename the file");
			buf_release(&shown);
			goto next;
		}
		if (S_ISLNK(lst.st_mode)) {
			char *target = realpath(abs, NULL);

			link = true;
			if (!target || stat(abs, &sst)) {
				SCAN_FINDING(st, DS_SEV_ERROR, "broken_symlink", rel,
					     "symbolic link points nowhere; remove it or fix its target");
				free(target);
				goto next;
			}
			if (!ds_inside(ds->root_real, target)) {
				struct buf shown = BUF_INIT;

				str_escape(target, &shown);
				SCAN_FINDING(st, DS_SEV_ERROR, "symlink_outside", rel,
					     "symbolic link leads outside the dataset (to %s); copy the file in instead",
					     shown.data);
				buf_release(&shown);
				free(target);
				goto next;
			}
			free(target);
			if (S_ISDIR(sst.st_mode)) {
				SCAN_FINDING(st, DS_SEV_WARNING, "symlink_dir", rel,
					     "linked folder not followed; copy its files in if they belong");
				goto next;
			}
		} else {
			sst = lst;
		}
		if (S_ISDIR(sst.st_mode)) {
			ds_scan_dir(st, rel);
			goto next;
		}
		if (!S_ISREG(sst.st_mode))
			goto next;
		ALLOC_GROW(ds->files, ds->nfiles + 1, st->alloc_files);
		f = &ds->files[ds->nfiles++];
		memset(f, 0, sizeof(*f));
		f->rel = rel;
		f->abs = abs;
		rel = abs = NULL;
		f->role = ds_role_of(f->rel);
		f->size = (uint64_t)sst.st_size;
		ds_file_stamp(f, &sst);
		f->dev = (uint64_t)sst.st_dev;
		f->ino = (uint64_t)sst.st_ino;
		f->symlink = link;
		f->pair = -1;
next:
		free(rel);
		free(abs);
	}
	strv_release(&names);
	free(dir_abs);
}

static int ds_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ds_file *)a)->rel, ((const struct ds_file *)b)->rel);
}

/* The stem of a relative path: everything before the last '.' of its name. */
static size_t ds_stem_len(const char *rel)
{
	const char *slash = strrchr(rel, '/'), *dot = strrchr(rel, '.');

	if (!dot || (slash && dot < slash))
		return strlen(rel);
	return (size_t)(dot - rel);
}

struct ds_stem {
	const char *rel;
	size_t len;
	size_t idx;
};

static int ds_stem_cmp(const void *a, const void *b)
{
	const struct ds_stem *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->rel, y->rel, n);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Link each image to the caption with the same stem, and back. */
static void ds_pair_captions(struct ds_dataset *ds)
{
	struct ds_stem *caps = xcalloc(ds->nfiles, sizeof(*caps));
	size_t ncaps = 0;

	for (size_t i = 0; i < ds->nfiles; i++) {
		if (ds->files[i].role == DS_ROLE_CAPTION)
			caps[ncaps++] = (struct ds_stem){ ds->files[i].rel,
							  ds_stem_len(ds->files[i].rel), i };
	}
	if (ncaps)
		qsort(caps, ncaps, sizeof(*caps), ds_stem_cmp);
	for (size_t i = 0; i < ds->nfiles; i++) {
		struct ds_file *f = &ds->files[i];
		struct ds_stem key, *hit;
		size_t lo = 0, hi = ncaps;

		if (f->role != DS_ROLE_IMAGE)
			continue;
		key = (struct ds_stem){ f->rel, ds_stem_len(f->rel), 0 };
		/* lower bound on (stem), ignoring idx */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			struct ds_stem probe = caps[mid];
			probe.idx = 0;
			if (ds_stem_cmp(&probe, &key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		hit = lo < ncaps ? &caps[lo] : NULL;
		if (hit && hit->len == key.len && !memcmp(hit->rel, key.rel, key.len)) {
			f->pair = (int)hit->idx;
			if (ds->files[hit->idx].pair < 0)
				ds->files[hit->idx].pair = (int)i;
		}
	}
	free(caps);
}

int ds_open(struct ds_dataset **out, const char *root, struct err *e)
{
	struct ds_dataset *ds = xcalloc(1, sizeof(*ds));
	struct ds_scan_state st = { .ds = ds };
	struct stat sb;

	*out = NULL;
	if (stat(root, &sb)) {
		int r = err_sys(e, ERR_IO, "cannot read dataset folder %s", root);
		free(ds);
		return r;
	}
	if (!S_ISDIR(sb.st_mode)) {
		free(ds);
		return err_set(e, ERR_USAGE, "%s is not a folder", root);
	}
	ds->root = xstrdup(root);
	ds->root_real = realpath(root, NULL);
	if (!ds->root_real || access(root, R_OK | X_OK)) {
		int r = err_sys(e, ERR_IO, "cannot read dataset folder %s", root);
		ds_free(ds);
		return r;
	}
	ds_scan_dir(&st, "");
	if (ds->nfiles)
		qsort(ds->files, ds->nfiles, sizeof(*ds->files), ds_file_cmp);
	ds_pair_captions(ds);
	*out = ds;
	return 0;
}

void ds_free(struct ds_dataset *ds)
{
	if (!ds)
		return;
	for (size_t i = 0; i < ds->nfiles; i++) {
		free(ds->files[i].rel);
		free(ds->files[i].abs);
		free(ds->files[i].status_msg);
		free(ds->files[i].text);
	}
	for (size_t i = 0; i < ds->nfindings; i++) {
		free(ds->findings[i].path);
		free(ds->findings[i].message);
	}
	free(ds->files);
	free(ds->findings);
	json_decref(ds->info);
	free(ds->trigger);
	free(ds->root);
	free(ds->root_real);
	free(ds);
}

int ds_find(const struct ds_dataset *ds, const char *rel)
{
	size_t lo = 0, hi = ds->nfiles;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ds->files[mid].rel, rel);
		if (!c)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void ds_check_opts_from_config(struct ds_check_opts *o, const struct config *c)
{
	memset(o, 0, sizeof(*o));
	o->min_images = (unsigned)config_int(c, "dataset.min_images");
	o->max_images = (unsigned)config_int(c, "dataset.max_images");
	o->resolution = (unsigned)config_int(c, "dataset.resolution");
	o->max_side = (unsigned)config_int(c, "dataset.max_side");
	o->max_pixels = (uint64_t)config_int(c, "dataset.max_pixels");
	o->max_file_bytes = (uint64_t)config_int(c, "dataset.max_file_mb") << 20;
	o->trigger = config_get(c, "dataset.trigger");
	o->threads = (int)config_int(c, "threads");
	o->cache_dir = config_get(c, "cache_dir");
}

/* ---- examining files (parallel) ---- */

struct ds_work {
	struct ds_dataset *ds;
	const struct ds_check_opts *opts;
	bool *pending;
	atomic_size_t next;
};

/* Read one file (into `data`, a buffer each thread reuses), hash it and
 * judge it. Reading, not mapping: a file truncated meanwhile must give an
 * error, not SIGBUS. */
static void ds_examine(struct ds_file *f, const struct ds_check_opts *o, struct buf *data)
{
	struct err e = { 0 };
	struct stat st;
	int fd;

	f->examined = true;
	buf_reset(data);
	if (fsx_open_regular(f->abs, &fd, &st, &e) ||
	    fsx_read_fd(fd, f->rel, data, DS_FILE_MAX, &e)) {
		f->status = ERR_IO;
		f->status_msg = xasprintf("cannot read: %s", e.msg);
		goto out;
	}
	/* Record what we actually read, should it have changed since the scan. */
	ds_file_stamp(f, &st);
	f->size = data->len;
	sha256_hex(data->data, data->len, f->sha256);
	switch (f->role) {
	case DS_ROLE_IMAGE:
		f->status = img_check(data->data, data->len, o->max_pixels, &f->img, &e);
		if (f->status)
			f->status_msg = xstrdup(e.msg);
		break;
	case DS_ROLE_CAPTION:
	case DS_ROLE_INFO:
		f->text_utf8 = str_utf8_valid(data->data, data->len) &&
			       !memchr(data->data, '\0', data->len);
		if (f->size > DS_CAPTION_MAX && f->role == DS_ROLE_CAPTION) {
			f->status = ERR_LIMIT;
			f->status_msg = xasprintf("caption is %llu bytes; keep captions under %u KiB",
						  (unsigned long long)f->size, DS_CAPTION_MAX >> 10);
		} else if (f->text_utf8) {
			f->text = xstrndup(data->data, data->len);
		}
		break;
	default:
		break;
	}
out:
	if (fd >= 0)
		close(fd);
}

static void *ds_worker(void *arg)
{
	struct ds_work *w = arg;
	struct buf data = BUF_INIT;

	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);
		if (i >= w->ds->nfiles || cancel_is_set(w->opts->cancel))
			break;
		if (w->pending[i])
			ds_examine(&w->ds->files[i], w->opts, &data);
	}
	buf_release(&data);
	return NULL;
}

static void ds_examine_all(struct ds_dataset *ds, const struct ds_check_opts *o, bool *pending)
{
	struct ds_work w = { .ds = ds, .opts = o, .pending = pending };
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int n = o->threads > 0 ? o->threads : (int)(cores > 0 ? cores : 1);
	pthread_t *tids;
	int started = 0;

	atomic_init(&w.next, 0);
	if (n > 64)
		n = 64;
	tids = xcalloc((size_t)n, sizeof(*tids));
	for (int i = 1; i < n; i++)
		if (!pthread_create(&tids[started], NULL, ds_worker, &w))
			started++;
	ds_worker(&w); /* this thread works too */
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
}

/* ---- rules ---- */

bool ds_caption_has_trigger(const char *caption, const char *trigger)
{
	if (strstr(caption, "[trigger]") || strstr(caption, "[name]"))
		return true;
	return trigger && *trigger && str_contains_word_ci(caption, trigger);
}

static char *ds_trigger_from_info(const json_t *info)
{
	const json_t *tw;

	if (!info)
		return NULL;
	tw = json_object_get(info, "triggerWords");
	if (json_is_array(tw) && json_array_size(tw) && json_is_string(json_array_get(tw, 0)))
		return xstrdup(json_string_value(json_array_get(tw, 0)));
	if (json_is_string(tw) && *json_string_value(tw)) {
		char *s = xstrdup(json_string_value(tw));
		char *comma = strchr(s, ',');
		if (comma)
			*comma = '\0';
		return str_trim(s);
	}
	if (json_is_string(json_object_get(info, "trigger_word")))
		return xstrdup(json_string_value(json_object_get(info, "trigger_word")));
	return NULL;
}

size_t ds_read_captions(const struct ds_dataset *ds, struct strv *out)
{
	struct buf text = BUF_INIT;
	size_t n = 0;

	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *img = &ds->files[i];

		if (img->role != DS_ROLE_IMAGE || img->pair < 0)
			continue;
		buf_reset(&text);
		/* An unreadable or oversized caption is `dataset check`'s to report. */
		if (fsx_read_file(ds->files[img->pair].abs, &text, DS_CAPTION_MAX, NULL))
			continue;
		if (str_utf8_valid(text.data, text.len) && !memchr(text.data, '\0', text.len)) {
			strv_push(out, text.data);
			n++;
		}
	}
	buf_release(&text);
	return n;
}

char *ds_info_trigger(const struct ds_dataset *ds)
{
	int idx = ds_find(ds, DS_INFO_NAME);
	struct buf text = BUF_INIT;
	json_t *info = NULL;
	char *trigger = NULL;

	if (idx >= 0 && !fsx_read_file(ds->files[idx].abs, &text, DS_CAPTION_MAX, NULL) &&
	    !json_parse(text.data, text.len, DS_INFO_NAME, &info, NULL))
		trigger = ds_trigger_from_info(info);
	json_decref(info);
	buf_release(&text);
	return trigger;
}

static bool ds_text_blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return false;
	return true;
}

struct ds_rules {
	struct ds_dataset *ds;
	const struct ds_check_opts *o;
	struct ds_finding *list;
	size_t n, alloc;
	size_t *by_hash;     /* image indices sorted by (sha256, index) */
	size_t *hash_pos;    /* file index -> position in by_hash */
	size_t nby_hash;
	size_t *caption_images; /* caption index -> images using it */
	bool *caption_live;     /* caption index -> a usable image uses it */
};

static int ds_hash_cmp(const void *a, const void *b, void *ctx)
{
	const struct ds_file *files = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(files[x].sha256, files[y].sha256);

	return c ? c : (x < y ? -1 : x > y);
}

static void ds_rules_index(struct ds_rules *R)
{
	struct ds_dataset *ds = R->ds;

	R->by_hash = xcalloc(ds->nfiles + 1, sizeof(*R->by_hash));
	R->hash_pos = xcalloc(ds->nfiles + 1, sizeof(*R->hash_pos));
	R->caption_images = xcalloc(ds->nfiles + 1, sizeof(*R->caption_images));
	R->caption_live = xcalloc(ds->nfiles + 1, sizeof(*R->caption_live));
	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];

		if (f->role != DS_ROLE_IMAGE)
			continue;
		R->by_hash[R->nby_hash++] = i;
		if (f->pair >= 0)
			R->caption_images[f->pair]++;
	}
	if (R->nby_hash)
		qsort_r(R->by_hash, R->nby_hash, sizeof(*R->by_hash), ds_hash_cmp, ds->files);
	for (size_t k = 0; k < R->nby_hash; k++)
		R->hash_pos[R->by_hash[k]] = k;
}

/* The first usable image before `idx` with the same bytes, or NULL. Images
 * are judged in path order, so every earlier one already has its verdict. */
static const struct ds_file *ds_first_copy(const struct ds_rules *R, size_t idx)
{
	const struct ds_file *files = R->ds->files;
	size_t k = R->hash_pos[idx];

	while (k > 0 && !strcmp(files[R->by_hash[k - 1]].sha256, files[idx].sha256))
		k--;
	for (; R->by_hash[k] != idx; k++)
		if (files[R->by_hash[k]].usable)
			return &files[R->by_hash[k]];
	return NULL;
}

#define FINDING(R, sev, code, path, ...) \
	ds_add_finding(&(R)->list, &(R)->n, &(R)->alloc, sev, code, path, __VA_ARGS__)

static void ds_image_rules(struct ds_rules *R, size_t idx)
{
	struct ds_dataset *ds = R->ds;
	struct ds_file *f = &ds->files[idx];
	const struct img_info *im = &f->img;
	enum img_format named = img_format_from_name(f->rel);
	const char *rel = f->rel;
	unsigned w = im->width, h = im->height, longest;

	if (f->status == ERR_IO) {
		FINDING(R, DS_SEV_ERROR, "unreadable_file", rel, "%s", f->status_msg);
		return;
	}
	if (!f->size) {
		FINDING(R, DS_SEV_ERROR, "empty_file", rel, "file is empty (0 bytes); remove it");
		return;
	}
	if (f->status == ERR_LIMIT) {
		FINDING(R, DS_SEV_ERROR, "decompression_bomb", rel,
			"%s; it was not decoded. Remove it or shrink it below the limit", f->status_msg);
		return;
	}
	if (f->status == ERR_FORMAT) {
		FINDING(R, DS_SEV_ERROR, "not_an_image", rel,
			"%s; remove the file or replace it with a JPEG, PNG or WebP image",
			f->status_msg ? f->status_msg : "not a JPEG, PNG or WebP image");
		return;
	}
	if (f->status) {
		FINDING(R, DS_SEV_ERROR, "corrupt_image", rel, "%s",
			f->status_msg ? f->status_msg : "image does not decode");
		return;
	}
	if (im->format != named) {
		FINDING(R, DS_SEV_ERROR, "wrong_extension", rel,
			"content is %s but the name says %s; rename it (ferry dataset fix does)",
			img_format_name(im->format), img_format_name(named));
		return;
	}
	f->usable = true;

	/* Duplicates: the first of a set (in path order) is kept. */
	{
		const struct ds_file *g = ds_first_copy(R, idx);
		if (g)
			FINDING(R, DS_SEV_WARNING, "duplicate_image", rel,
				"identical to %s; remove one (fix keeps the first)", g->rel);
	}
	if (im->orientation != 1 && im->orientation >= 5) {
		unsigned t = w;
		w = h;
		h = t;
	}
	longest = w > h ? w : h;
	if ((uint64_t)w * h < (uint64_t)R->o->resolution * R->o->resolution)
		FINDING(R, DS_SEV_WARNING, "small_image", rel,
			"%ux%u is smaller than the %u training resolution and is never upscaled; "
			"use a larger original", w, h, R->o->resolution);
	if (im->alpha)
		FINDING(R, DS_SEV_WARNING, "alpha_channel", rel,
			"has transparency, which the trainer drops; fix flattens it onto white");
	if (im->cmyk)
		FINDING(R, DS_SEV_WARNING, "cmyk", rel,
			"CMYK colour; fix converts it to sRGB");
	if (im->gray)
		FINDING(R, DS_SEV_WARNING, "grayscale", rel,
			"grayscale; fix converts it to RGB (check it belongs in the set)");
	if (im->bit_depth > 8)
		FINDING(R, DS_SEV_WARNING, "high_bit_depth", rel,
			"%u bits per channel; fix converts it to 8-bit", im->bit_depth);
	if (im->orientation != 1)
		FINDING(R, DS_SEV_WARNING, "exif_orientation", rel,
			"EXIF orientation %u; the trainer may ignore it, fix applies it",
			im->orientation);
	if (im->animated)
		FINDING(R, DS_SEV_WARNING, "animated_image", rel,
			"animated; only the first frame is trained on");
	if (longest > R->o->max_side || (R->o->max_file_bytes && f->size > R->o->max_file_bytes))
		FINDING(R, DS_SEV_WARNING, "large_file", rel,
			"%ux%u, %.1f MiB: far more than training at %u needs and slow to upload; "
			"fix shrinks it to %u px", w, h, (double)f->size / (1 << 20),
			R->o->resolution, R->o->max_side);

	if (f->pair < 0) {
		FINDING(R, DS_SEV_WARNING, "missing_caption", rel,
			"no caption; add %.*s.txt, or let fix write one",
			(int)ds_stem_len(rel), rel);
	}
}

static void ds_caption_rules(struct ds_rules *R, size_t idx)
{
	struct ds_dataset *ds = R->ds;
	struct ds_file *f = &ds->files[idx];
	const char *rel = f->rel;
	size_t images = R->caption_images[idx];

	if (f->status == ERR_IO) {
		FINDING(R, DS_SEV_ERROR, "unreadable_file", rel, "%s", f->status_msg);
		return;
	}
	if (f->status == ERR_LIMIT) {
		FINDING(R, DS_SEV_ERROR, "caption_too_long", rel, "%s", f->status_msg);
		return;
	}
	if (!f->text_utf8) {
		FINDING(R, DS_SEV_ERROR, "caption_not_utf8", rel,
			"caption is not UTF-8 text; re-save it as UTF-8 (fix converts Latin-1)");
		return;
	}
	if (!images) {
		FINDING(R, DS_SEV_WARNING, "orphan_caption", rel,
			"caption without an image; remove it or add the image");
		return;
	}
	/* The caption of an image refused by an error goes with it (the image's
	 * finding says why); packing it alone would make an orphan. */
	if (!R->caption_live[idx])
		return;
	f->usable = true;
	if (images > 1)
		FINDING(R, DS_SEV_WARNING, "shared_caption", rel,
			"%zu images share this caption (same name, different extension); rename them",
			images);
	if (ds_text_blank(f->text)) {
		FINDING(R, DS_SEV_WARNING, "empty_caption", rel,
			"caption is empty; write one, or let fix fill it");
		return;
	}
	if (ds->trigger && !ds_caption_has_trigger(f->text, ds->trigger))
		FINDING(R, DS_SEV_WARNING, "missing_trigger", rel,
			"caption lacks the trigger word '%s' (or [trigger]); fix inserts it",
			ds->trigger);
}

static void ds_info_rules(struct ds_rules *R, size_t idx)
{
	struct ds_dataset *ds = R->ds;
	struct ds_file *f = &ds->files[idx];
	struct err e = { 0 };
	json_t *info = NULL;

	if (f->status == ERR_IO) {
		FINDING(R, DS_SEV_ERROR, "unreadable_file", f->rel, "%s", f->status_msg);
		return;
	}
	if (!f->text_utf8 || json_parse(f->text, strlen(f->text), f->rel, &info, &e)) {
		FINDING(R, DS_SEV_ERROR, "bad_dataset_info", f->rel, "%s; fix the JSON or remove the file",
			f->text_utf8 ? e.msg : "not UTF-8 text");
		return;
	}
	if (!json_is_object(info)) {
		FINDING(R, DS_SEV_ERROR, "bad_dataset_info", f->rel,
			"must hold a JSON object (name, description, triggerWords, ...)");
		json_decref(info);
		return;
	}
	f->usable = true;
	ds->info = info;
}

static int ds_cmp_finding_path(const void *a, const void *b)
{
	const struct ds_finding *x = a, *y = b;
	return strcmp(x->path, y->path);
}

static void ds_apply_rules(struct ds_dataset *ds, const struct ds_check_opts *o)
{
	struct ds_rules R = { .ds = ds, .o = o };
	struct ds_rules top = { .ds = ds, .o = o };
	int info = ds_find(ds, DS_INFO_NAME);

	/* Scan-time findings (names, links) join the per-file list. */
	R.list = ds->findings;
	R.n = R.alloc = ds->nfindings;
	ds->findings = NULL;
	ds->nfindings = 0;

	for (size_t i = 0; i < ds->nfiles; i++)
		ds->files[i].usable = false;
	ds_rules_index(&R);
	if (info >= 0 && ds->files[info].role == DS_ROLE_INFO)
		ds_info_rules(&R, (size_t)info);
	free(ds->trigger);
	ds->trigger = o->trigger && *o->trigger ? xstrdup(o->trigger) : ds_trigger_from_info(ds->info);

	/* Images first: a caption is only as usable as the images it describes. */
	for (size_t i = 0; i < ds->nfiles; i++) {
		if (ds->files[i].role != DS_ROLE_IMAGE)
			continue;
		ds_image_rules(&R, i);
		if (ds->files[i].usable && ds->files[i].pair >= 0)
			R.caption_live[ds->files[i].pair] = true;
	}
	for (size_t i = 0; i < ds->nfiles; i++)
		if (ds->files[i].role == DS_ROLE_CAPTION)
			ds_caption_rules(&R, i);

	ds->images = ds->captioned = 0;
	ds->bytes = 0;
	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];

		if (!f->usable)
			continue;
		ds->bytes += f->size;
		if (f->role != DS_ROLE_IMAGE)
			continue;
		ds->images++;
		if (f->pair >= 0 && ds->files[f->pair].usable && !ds_text_blank(ds->files[f->pair].text))
			ds->captioned++;
	}
	if (ds->images < o->min_images)
		FINDING(&top, DS_SEV_ERROR, "too_few_images", "",
			"%zu usable images; at least %u are needed (dataset.min_images)",
			ds->images, o->min_images);
	if (o->max_images && ds->images > o->max_images)
		FINDING(&top, DS_SEV_ERROR, "too_many_images", "",
			"%zu usable images; at most %u are allowed (dataset.max_images)",
			ds->images, o->max_images);

	/* Dataset-wide findings first, then per-file findings in path order. */
	if (R.n)
		qsort(R.list, R.n, sizeof(*R.list), ds_cmp_finding_path);
	for (size_t i = 0; i < R.n; i++) {
		ALLOC_GROW(top.list, top.n + 1, top.alloc);
		top.list[top.n++] = R.list[i];
	}
	free(R.list);
	free(R.by_hash);
	free(R.hash_pos);
	free(R.caption_images);
	free(R.caption_live);
	ds->findings = top.list;
	ds->nfindings = top.n;
	ds->errors = ds->warnings = 0;
	for (size_t i = 0; i < ds->nfindings; i++) {
		if (ds->findings[i].severity == DS_SEV_ERROR)
			ds->errors++;
		else
			ds->warnings++;
	}
	ds->ready = ds->errors == 0;
}

int ds_check(struct ds_dataset *ds, const struct ds_check_opts *o, struct err *e)
{
	struct verdict_cache *vc = NULL;
	const char *root_real = ds->root_real;
	bool *pending = xcalloc(ds->nfiles ? ds->nfiles : 1, sizeof(*pending));
	struct err ve = { 0 };

	if (o->cache_dir && root_real && verdict_open(&vc, o->cache_dir, &ve)) {
		/* A broken cache costs speed, never correctness. */
		log_warn("%s; checking without it", ve.msg);
		err_clear(&ve);
	}
	ds->decoded = 0;
	for (size_t i = 0; i < ds->nfiles; i++) {
		struct ds_file *f = &ds->files[i];

		if (f->role == DS_ROLE_OTHER)
			continue;
		if (o->reuse_verdicts && vc && verdict_lookup(vc, root_real, f, o->max_pixels))
			continue;
		pending[i] = true;
		if (f->role == DS_ROLE_IMAGE)
			ds->decoded++;
	}
	ds_examine_all(ds, o, pending);
	/* Cancelled too: what was examined is kept for the next check. */
	if (vc && verdict_store(vc, root_real, ds, &ve))
		log_warn("%s; verdicts not saved", ve.msg);
	verdict_close(vc);
	free(pending);
	if (cancel_is_set(o->cancel))
		return err_set(e, ERR_CANCELLED, "%s: checking was cancelled", ds->root);
	ds_apply_rules(ds, o);
	return 0;
}

/* ---- reports ---- */

json_t *ds_report_json(const struct ds_dataset *ds)
{
	json_t *root = json_object(), *arr = json_array();

	for (size_t i = 0; i < ds->nfindings; i++) {
		const struct ds_finding *f = &ds->findings[i];
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}",
			"severity", f->severity == DS_SEV_ERROR ? "error" : "warning",
			"code", f->code, "path", f->path, "message", f->message));
	}
	json_object_set_new(root, "ready", json_boolean(ds->ready));
	json_object_set_new(root, "images", json_integer((json_int_t)ds->images));
	json_object_set_new(root, "captioned", json_integer((json_int_t)ds->captioned));
	json_object_set_new(root, "bytes", json_integer((json_int_t)ds->bytes));
	json_object_set_new(root, "errors", json_integer((json_int_t)ds->errors));
	json_object_set_new(root, "warnings", json_integer((json_int_t)ds->warnings));
	json_object_set_new(root, "trigger", ds->trigger ? json_string(ds->trigger) : json_null());
	json_object_set_new(root, "findings", arr);
	return root;
}

void ds_report_errors(const struct ds_dataset *ds, FILE *f)
{
	for (size_t i = 0; i < ds->nfindings; i++) {
		const struct ds_finding *x = &ds->findings[i];

		if (x->severity == DS_SEV_ERROR)
			fprintf(f, "error   %-18s %s%s%s\n", x->code, x->path, *x->path ? ": " : "",
				x->message);
	}
}

void ds_report_print(const struct ds_dataset *ds, FILE *f)
{
	for (size_t i = 0; i < ds->nfindings; i++) {
		const struct ds_finding *x = &ds->findings[i];
		fprintf(f, "%-7s %-18s %s%s%s\n", x->severity == DS_SEV_ERROR ? "error" : "warning",
			x->code, x->path, *x->path ? ": " : "", x->message);
	}
	fprintf(f, "%s: %zu images, %zu captioned, %.1f MiB; %zu error%s, %zu warning%s: %s\n",
		ds->root, ds->images, ds->captioned, (double)ds->bytes / (1 << 20),
		ds->errors, ds->errors == 1 ? "" : "s", ds->warnings, ds->warnings == 1 ? "" : "s",
		ds->ready ? "ready" : "not ready");
}
