/* Packing a checked dataset into a deterministic tar, and unpacking one with
 * every check.
 *
 * The archive is a pax tar (ustar headers, pax extended headers only where
 * a name needs them) whose first entry is manifest.json, then SHA256SUMS,
 * then the usable files in byte order of their dataset-relative paths. Every
 * entry has mtime 0, uid/gid 0, empty user and group names and mode 0644;
 * no directory entries, no atime/ctime, no extended attributes. The same
 * files therefore give the same bytes on any machine.
 *
 * Archives are cached by content under <cache_dir>/datasets/<sha256>.tar;
 * <cache_dir>/datasets/manifests/<sha256 of manifest.json> records which
 * archive a manifest produced, so that an unchanged dataset packs once. */
#ifndef FERRY_DATASET_PACK_H
#define FERRY_DATASET_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "config/config.h"
#include "dataset/dataset.h"

struct ds_pack_opts {
	const char *cache_dir; /* the cache_dir setting; archives go to <it>/datasets */
	const char *out_path;  /* also place the archive here (hard link or copy); NULL: no */
	bool force;            /* pack the usable files of a dataset with errors */
	/* "packing": bytes of the dataset's files written, of their total.
	 * NULL: none. */
	const struct progress *pg;
	/* Set: the pack stops (between files and inside big ones) with
	 * ERR_CANCELLED and leaves no archive. NULL: never. */
	struct cancel *cancel;
};

/* The options the settings give: cache_dir. */
void ds_pack_opts_from_config(struct ds_pack_opts *o, const struct config *cfg);

struct ds_pack_result {
	char *archive;         /* the cached archive */
	char sha256[SHA256_HEX_LEN + 1];
	uint64_t bytes;        /* archive size */
	size_t files;          /* dataset files packed (manifest.json and SHA256SUMS not counted) */
	bool reused;           /* an archive packed before was found and used */
};

/* Pack the usable files of a dataset that ds_check has examined (pass
 * reuse_verdicts so that pack decodes nothing already checked). Refuses a
 * dataset with errors (ERR_FAIL) unless o->force. Cancelled, it returns
 * ERR_CANCELLED and no archive carries a final name. Each file is read once;
 * its bytes are hashed as they stream and a file whose bytes differ from what
 * the check recorded aborts the pack with ERR_CHANGED, leaving no archive. */
int ds_pack(const struct ds_dataset *ds, const struct ds_pack_opts *o,
	    struct ds_pack_result *res, struct err *e);
void ds_pack_result_release(struct ds_pack_result *res);

/* What a caller (`ferry dataset pack`, `ferry remote push DIR`, a job's
 * PREPARING step) does with a dataset folder: open it, check it under the
 * settings in `cfg` reusing the verdicts of earlier checks (with
 * o->cache_dir as the verdict cache; NULL there: the cache_dir setting),
 * then ds_pack it. *ds gets the checked dataset, to report its findings
 * (free it with ds_free); it is NULL when the folder could not be opened or
 * checked, and then the return value says why (the pack never started). */
int ds_check_and_pack(const struct config *cfg, const char *folder,
		      const struct ds_pack_opts *o, struct ds_dataset **ds,
		      struct ds_pack_result *res, struct err *e);

/* The archive itself: write manifest.json (`manifest`, as ds_manifest_build
 * made it), SHA256SUMS and the files it lists, read from under `root`, to
 * `fd`, reporting to `pg` and stopping when `cancel` is set (both may be
 * NULL). Fills the archive's SHA-256 and size. */
int ds_pack_write(const char *root, const char *manifest, size_t manifest_len, int fd,
		  const struct progress *pg, struct cancel *cancel,
		  char sha256[SHA256_HEX_LEN + 1], uint64_t *bytes, struct err *e);

struct ds_unpack_result {
	char sha256[SHA256_HEX_LEN + 1]; /* of the whole archive as read */
	uint64_t bytes;                  /* archive size */
	size_t files;                    /* dataset files extracted */
	uint64_t file_bytes;             /* their total size */
};

/* Extract a packed dataset into `dir` (created; an existing `dir` must be
 * empty), verifying everything: manifest.json first and valid, SHA256SUMS
 * agreeing with it, every entry a regular file (or a folder holding listed
 * files) with a safe relative path, listed once in the manifest with the
 * size and SHA-256 found, and nothing listed missing. Files are written into
 * a temporary sibling folder renamed into place at the end, so a refused
 * archive leaves nothing behind. manifest.json and SHA256SUMS are checked,
 * not extracted. Errors name the entry: ERR_CORRUPT for content that does not
 * match, ERR_FORMAT for entries that are not allowed, ERR_EXISTS for a
 * non-empty `dir`, ERR_IO for system calls that fail. */
int ds_unpack(const char *archive, const char *dir, struct ds_unpack_result *res,
	      struct err *e);

/* Check, without extracting, that every entry of the tar at `archive` is a
 * regular file or folder with a safe relative path (no absolute path, no
 * '..', no links, devices or control characters): what a host's plain
 * `tar -x` may then extract. *files counts the regular files. */
int ds_archive_check_entries(const char *archive, size_t *files, struct err *e);

#endif
