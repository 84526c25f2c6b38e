/* The manifest of a packed dataset: `manifest.json`, the first entry of
 * every archive `pack` writes. It lists each packed file (path, size,
 * SHA-256, role; width, height and format for images), the totals and the
 * check summary. Built from a checked dataset, serialised with sorted keys
 * and 2-space indent so that the same dataset always gives the same bytes;
 * parsed strictly, since `unpack` trusts nothing else it reads. */
#ifndef FERRY_DATASET_MANIFEST_H
#define FERRY_DATASET_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/sha256.h"
#include "dataset/dataset.h"
#include "dataset/image.h"

#define DS_MANIFEST_NAME "manifest.json"
#define DS_SUMS_NAME "SHA256SUMS"
#define DS_MANIFEST_FORMAT "ferry-dataset"
#define DS_MANIFEST_VERSION 1
#define DS_MANIFEST_MAX (64u << 20)  /* largest manifest unpack reads */
#define DS_MANIFEST_PATH_MAX 4096    /* longest path a manifest may list */

struct ds_manifest_file {
	char *path;             /* dataset-relative, '/'-separated, UTF-8 */
	enum ds_role role;      /* DS_ROLE_IMAGE, _CAPTION or _INFO */
	uint64_t size;
	char sha256[SHA256_HEX_LEN + 1];
	enum img_format format; /* images only */
	unsigned width, height; /* images only */
};

struct ds_manifest {
	struct ds_manifest_file *files; /* sorted by path, byte order, no duplicates */
	size_t nfiles;
	uint64_t bytes;                 /* sum of the file sizes */
	size_t images, captions;
	/* The check summary, as recorded when the archive was packed. */
	bool ready;
	size_t captioned, errors, warnings;
};

/* Append the manifest of the usable files of a checked dataset to `out`.
 * Fails if a usable file has no recorded SHA-256 (the dataset was not
 * checked) or a path the manifest cannot carry. */
int ds_manifest_build(const struct ds_dataset *ds, struct buf *out, struct err *e);
/* Parse and validate manifest bytes: every required field with its type, no
 * unknown fields, safe relative paths, 64-hex SHA-256s, non-negative sizes,
 * files sorted without duplicates, totals that agree with the files. */
int ds_manifest_parse(const void *data, size_t len, struct ds_manifest **out, struct err *e);
void ds_manifest_free(struct ds_manifest *m);
/* Index of the file with this path, or -1. */
int ds_manifest_find(const struct ds_manifest *m, const char *path);
/* Append SHA256SUMS for the manifest's files in coreutils format
 * ("<hex>  <path>\n", sorted), which `sha256sum -c` verifies. */
void ds_manifest_sums(const struct ds_manifest *m, struct buf *out);
/* "image", "caption", "info". */
const char *ds_manifest_role_name(enum ds_role role);

#endif
