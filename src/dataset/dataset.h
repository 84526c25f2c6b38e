/* A dataset on disk: scanning (which files, which roles) and checking
 * (every rule, every finding). `fix` and `pack` start from a checked
 * dataset. */
#ifndef FERRY_DATASET_H
#define FERRY_DATASET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/sha256.h"
#include "common/str.h"
#include "config/config.h"
#include "dataset/image.h"

#define DS_INFO_NAME "dataset_info.json"
#define DS_CAPTION_MAX (64u << 10) /* longest caption file we accept */
#define DS_FILE_MAX (1ull << 30)    /* largest file a check reads */

enum ds_role { DS_ROLE_IMAGE, DS_ROLE_CAPTION, DS_ROLE_INFO, DS_ROLE_OTHER };
enum ds_severity { DS_SEV_ERROR, DS_SEV_WARNING };

struct ds_file {
	char *rel;         /* relative to the root, '/'-separated, as on disk */
	char *abs;         /* root + rel: the path to open */
	enum ds_role role;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;  /* changes on every write, even one that restores mtime */
	uint64_t dev, ino;
	bool symlink;      /* reached through a symbolic link (inside the root) */
	int pair;          /* image: index of its caption; caption: of its first
			      image; -1 when none */

	/* Facts gathered by ds_check (or taken from the verdict cache). */
	bool examined;
	int status;        /* 0, or ERR_FORMAT / ERR_LIMIT / ERR_CORRUPT / ERR_IO */
	char *status_msg;  /* why status is not 0 */
	char sha256[SHA256_HEX_LEN + 1];
	struct img_info img;     /* images */
	char *text;        /* captions: content when valid UTF-8 and not too long */
	bool text_utf8;    /* captions: content is valid UTF-8 */
	bool usable;       /* no error finding names this file: pack takes it */
};

struct ds_finding {
	enum ds_severity severity;
	const char *code;  /* stable, e.g. "corrupt_image" */
	char *path;        /* relative to the root; "" for the dataset itself */
	char *message;     /* what is wrong and what to do */
};

struct ds_check_opts {
	unsigned min_images, max_images;
	unsigned resolution;     /* training resolution */
	unsigned max_side;       /* longest side worth keeping */
	uint64_t max_pixels;     /* decompression-bomb limit */
	uint64_t max_file_bytes; /* larger images cost upload time */
	const char *trigger;     /* NULL: first of dataset_info.json triggerWords */
	int threads;             /* 0: one per core */
	const char *cache_dir;   /* verdict cache directory; NULL: none */
	bool reuse_verdicts;     /* take cached facts instead of decoding again */
	/* Set: the check stops between files with ERR_CANCELLED (the files
	 * examined keep their verdicts). NULL: never. */
	struct cancel *cancel;
};

struct ds_dataset {
	char *root;
	char *root_real;       /* realpath of root: the verdict cache's key prefix */
	struct ds_file *files; /* sorted by rel, byte order */
	size_t nfiles;
	struct ds_finding *findings; /* in file order, dataset-wide ones first */
	size_t nfindings;
	json_t *info;          /* dataset_info.json, or NULL */
	char *trigger;         /* the trigger word in force, or NULL */

	/* Summary after ds_check. */
	bool ready;            /* no error findings */
	size_t images;         /* usable images */
	size_t captioned;      /* usable images with a non-empty caption */
	uint64_t bytes;        /* bytes of usable files */
	size_t errors, warnings;
	size_t decoded;        /* images decoded by this run (not from cache) */
};

void ds_check_opts_from_config(struct ds_check_opts *o, const struct config *c);
/* Walk the folder: images, captions, dataset_info.json; dot-files,
 * __MACOSX/ and ._* are skipped. Problems found while walking (links leading
 * out, control characters in names) become findings, not failures. */
int ds_open(struct ds_dataset **out, const char *root, struct err *e);
/* Examine every file (in parallel) and apply every rule. Fails only on
 * errors that stop the whole check (out of memory, cache unusable). */
int ds_check(struct ds_dataset *ds, const struct ds_check_opts *o, struct err *e);
void ds_free(struct ds_dataset *ds);
/* {"ready","images","captioned","bytes","errors","warnings","findings":[...]} */
json_t *ds_report_json(const struct ds_dataset *ds);
/* Print findings and a summary line for people. */
void ds_report_print(const struct ds_dataset *ds, FILE *f);
/* Print only the error findings: what keeps the dataset from being ready. */
void ds_report_errors(const struct ds_dataset *ds, FILE *f);
/* Index of the file with this relative path, or -1. */
int ds_find(const struct ds_dataset *ds, const char *rel);
/* The captions of the images, in file order, read without checking the
 * images: each image's same-stem caption that is valid UTF-8, has no NUL
 * and is at most DS_CAPTION_MAX bytes, as it is on disk. For sample
 * prompts, which need the words and not a verdict. Returns how many. */
size_t ds_read_captions(const struct ds_dataset *ds, struct strv *out);
/* The trigger word dataset_info.json names (caller frees), or NULL. */
char *ds_info_trigger(const struct ds_dataset *ds);
/* Whether a caption mentions the trigger (as a word) or the [trigger] token. */
bool ds_caption_has_trigger(const char *caption, const char *trigger);

#endif
