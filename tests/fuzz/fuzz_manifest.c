/* libFuzzer target for the manifest parser that `unpack` trusts: arbitrary
 * bytes must be refused with a message, or yield a manifest whose every
 * promise holds (sorted unique safe paths, hashes, totals). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"
#include "dataset/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ds_manifest *m = NULL;
	struct buf sums = BUF_INIT;
	struct err e;
	uint64_t bytes = 0;
	int r;

	err_clear(&e);
	r = ds_manifest_parse(data, size, &m, &e);
	if (r) {
		if (m || r != e.code || !e.msg[0] || (r != ERR_FORMAT && r != ERR_LIMIT))
			abort();
		return 0;
	}
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct ds_manifest_file *f = &m->files[i];

		if (!fsx_relpath_safe(f->path) || str_has_ctrl(f->path) ||
		    !sha256_is_hex(f->sha256) || ds_manifest_find(m, f->path) != (int)i)
			abort();
		if (i && strcmp(m->files[i - 1].path, f->path) >= 0)
			abort();
		if (f->role == DS_ROLE_IMAGE && (!f->width || !f->height || f->format == IMG_NONE))
			abort();
		bytes += f->size;
	}
	if (bytes != m->bytes || m->ready != (m->errors == 0))
		abort();
	ds_manifest_sums(m, &sums);
	if (m->nfiles && !sums.len)
		abort();
	buf_release(&sums);
	ds_manifest_free(m);
	return 0;
}
