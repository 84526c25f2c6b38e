/* `fix`: write a repaired copy of a dataset. Images are upright, opaque,
 * 8-bit sRGB, no larger than max_side and named for their content; exact
 * duplicates and undecodable files are dropped; captions are UTF-8 with
 * tidy whitespace, carry the trigger word and exist for every image where a
 * default or a caption provider can supply one. Every action is reported.
 *
 * The input is never changed unless in_place is set. The output is built in
 * a temporary sibling folder (OUT.tmp-PID) and renamed into place when
 * complete. In place, the new files are built in DIR/.ferry-fix-PID, every
 * original that is dropped or replaced is moved to
 * DIR/.ferry-removed/<UTC timestamp>/ (same relative path), and then the new
 * files are moved in. Nothing is deleted.
 *
 * No file in the result is a symbolic link: a link that is kept (the first
 * of two duplicates, an image, a caption or dataset_info.json) is written as
 * a regular file with the bytes it points to, and in place the link itself
 * goes to .ferry-removed, so it cannot break when its target is dropped. */
#ifndef FERRY_DATASET_FIX_H
#define FERRY_DATASET_FIX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"
#include "dataset/captioner.h"
#include "dataset/dataset.h"

struct fix_opts {
	struct ds_check_opts check;   /* rules for checking the input and the output;
					 check.max_side is the size images shrink to */
	const char *out;              /* output folder: must not exist or be empty */
	bool in_place;                /* fix DIR itself (out is ignored) */
	bool dry_run;                 /* plan and report; write nothing */
	const char *default_caption;  /* fills missing captions, or NULL */
	struct captioner *captioner;  /* fills the rest, or NULL */
};

struct fix_action {
	char *path;          /* relative to the input folder */
	const char *action;  /* stable code, e.g. "resized" */
	char *detail;        /* for people */
};

struct fix_result {
	char *out;                 /* the folder that holds the result */
	char *removed;             /* in place: where the originals went, or NULL */
	bool dry_run;
	struct fix_action *actions; /* in path order */
	size_t nactions, alloc;
	size_t failures;           /* images or captions that could not be fixed */
	struct ds_dataset *checked; /* the result, checked; NULL on a dry run */
	bool ready;                /* the result is ready (dry run: images count) */
};

/* Image work a file needs, from the facts ds_check gathered. */
enum {
	FIX_ROTATE = 1 << 0,      /* apply the EXIF orientation */
	FIX_FLATTEN = 1 << 1,     /* alpha onto white */
	FIX_SRGB = 1 << 2,        /* CMYK to sRGB */
	FIX_8BIT = 1 << 3,        /* 16 bits per channel to 8 */
	FIX_RGB = 1 << 4,         /* grayscale to RGB */
	FIX_FIRST_FRAME = 1 << 5, /* keep the first frame of an animation */
	FIX_RESIZE = 1 << 6,      /* longer side above max_side */
	FIX_REENCODE = 1 << 7,    /* file too large in bytes: encode again */
	FIX_RENAME = 1 << 8,      /* extension does not match the content */
};
#define FIX_PIXELS (FIX_ROTATE | FIX_FLATTEN | FIX_SRGB | FIX_8BIT | FIX_RGB | \
		    FIX_FIRST_FRAME | FIX_RESIZE | FIX_REENCODE)

/* Open and check `dir`, then fix it as `o` says. Fails (ERR_USAGE, ERR_IO)
 * only when nothing could be written; per-file problems become actions and
 * count in res->failures. Release `res` with fix_result_release either way. */
int fix_run(const char *dir, const struct fix_opts *o, struct fix_result *res, struct err *e);
void fix_result_release(struct fix_result *res);
/* {"out","dry_run","ready","failures","removed","actions":[{"path","action",
 * "detail"}],"summary":{action: count},"check": report of the result} */
json_t *fix_result_json(const struct fix_result *res);
/* One line per action, a summary, then the check of the result. */
void fix_result_print(const struct fix_result *res, FILE *f);

/* Building blocks, exposed for tests. */
/* FIX_* bits for an image that decoded (status 0). */
unsigned fix_plan_image(const struct ds_file *f, unsigned max_side, uint64_t max_file_bytes);
/* Repair the image `f` names (f->abs, f->rel, f->img) as `plan` says;
 * `out` gets the new file's bytes. Thread-safe. libvips' error buffer is
 * one for the process: an image that fails in libvips is run again while
 * no other image is in libvips, so that a failure's message is this image's
 * own reason; every message names f->rel. */
int fix_image(const struct ds_file *f, unsigned plan, unsigned max_side, struct buf *out,
	      unsigned *w, unsigned *h, struct err *e);
/* Width and height after orientation and the shrink to max_side. */
void fix_planned_size(const struct img_info *im, unsigned max_side, unsigned *w, unsigned *h);
/* Strip a UTF-8 BOM, turn every run of whitespace or control characters
 * (newlines included) into one space, trim. Returns a new string. */
char *fix_caption_normalize(const char *text);
/* Convert caption bytes that are not UTF-8: UTF-16 with a BOM, else
 * Windows-1252, else ISO-8859-1 (which always succeeds). *from names the
 * encoding used. */
int fix_caption_to_utf8(const char *data, size_t len, char **out, const char **from,
			struct err *e);
/* `caption` with "TRIGGER, " in front when it lacks the trigger (as a word,
 * any case) and the [trigger] token; NULL when nothing needs inserting. */
char *fix_caption_with_trigger(const char *caption, const char *trigger);

#endif
