/* libFuzzer target for the image checker: sniffing, header parsing, the
 * bomb limit, full decoding, and the EXIF walkers, on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/err.h"
#include "dataset/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct img_info info;
	struct err e;
	unsigned o;
	int r;

	err_clear(&e);
	r = img_check(data, size, 4096 * 4096, &info, &e);
	if (r != 0 && r != ERR_FORMAT && r != ERR_LIMIT && r != ERR_CORRUPT)
		abort();
	if (r != 0 && (e.code != r || !e.msg[0]))
		abort(); /* every failure carries its message */
	if (r == 0 && (info.format == IMG_NONE || !info.width ||
		       !info.height ||
		       (uint64_t)info.width * info.height > 4096 * 4096))
		abort();
	if (info.orientation < 1 || info.orientation > 8)
		abort();

	o = img_exif_orientation(data, size);
	if (o < 1 || o > 8)
		abort();
	return 0;
}
