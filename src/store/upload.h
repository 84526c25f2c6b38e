/* Uploads to S3. A small file goes up in one PutObject; a large one in
 * parts (resumable): the part size is chosen once (at least 5 MiB and
 * size / 10,000, every part but the last the same size, as R2 demands) and
 * saved with the UploadId in a record under the upload state folder, keyed
 * by bucket, key and the file's identity, so that a run after an
 * interruption asks ListParts what arrived and sends only the rest. Parts
 * go 1 to 4 at a time, each with Content-MD5 and its payload's SHA-256,
 * each retried on its own, its ETag checked against its MD5; the upload is
 * aborted when a part fails for good. Every object carries its SHA-256 as
 * x-amz-meta-sha256; an object already there with the same size and
 * SHA-256 is not sent again. */
#ifndef FERRY_UPLOAD_H
#define FERRY_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "store/s3.h"

struct s3_put_result {
	uint64_t size;
	char sha256[65];
	char etag[80];
	bool skipped;          /* the same object was there already */
	bool multipart;
	bool resumed;          /* an earlier run's upload was carried on */
	unsigned parts;        /* parts of the object (0: one PutObject) */
	unsigned parts_sent;   /* parts this run sent (retries not counted) */
	uint64_t part_size;
};

int s3_put_file(struct s3_client *c, const char *path, const char *key,
		const struct progress *pg, struct s3_put_result *res, struct err *e);

/* The part size for a file of `size` bytes: at least `min` and 5 MiB, and
 * enough for 10,000 parts (rounded up to a MiB). */
uint64_t s3_part_size(uint64_t size, uint64_t min);
/* A Content-Type for a file name (application/octet-stream when unknown). */
const char *s3_content_type(const char *name);

#endif
