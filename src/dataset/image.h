/* Image verification: sniff the format, read the header, refuse
 * decompression bombs before decoding, then decode every pixel to prove the
 * file is whole. JPEG through libturbojpeg, PNG through libspng, WebP through
 * libwebp (and libwebpdemux for animations). Thread-safe. */
#ifndef FERRY_DATASET_IMAGE_H
#define FERRY_DATASET_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum img_format { IMG_NONE = 0, IMG_JPEG, IMG_PNG, IMG_WEBP };

struct img_info {
	enum img_format format; /* from the content, not the name */
	unsigned width, height; /* as stored, before EXIF orientation */
	unsigned bit_depth;     /* bits per channel: 8, or 16 for such PNGs */
	bool alpha;             /* alpha channel or tRNS transparency */
	bool gray;              /* grayscale (with or without alpha) */
	bool cmyk;              /* CMYK or YCCK JPEG */
	bool animated;          /* more than one frame: APNG, animated WebP */
	unsigned orientation;   /* EXIF orientation 1..8; 1 when absent */
};

/* "jpeg", "png", "webp", or "unknown". */
const char *img_format_name(enum img_format f);
/* The format an image file name promises by its extension (any case):
 * .jpg .jpeg -> JPEG, .png -> PNG, .webp -> WebP, else IMG_NONE. */
enum img_format img_format_from_name(const char *name);
/* The format the first bytes reveal, or IMG_NONE. */
enum img_format img_sniff(const void *data, size_t len);
/* Check an image held in memory. Fills `info` as far as it got.
 * Returns 0 when the file decodes completely;
 *   ERR_FORMAT  when the content is no JPEG, PNG or WebP (or empty);
 *   ERR_LIMIT   when the header claims more than max_pixels (width*height),
 *               found before any pixel is decoded;
 *   ERR_CORRUPT when decoding fails or stops early (truncated data, bad CRC,
 *               libjpeg warnings such as premature end of data).
 * The message in `e` says what is wrong in words a user can act on. */
int img_check(const void *data, size_t len, uint64_t max_pixels,
	      struct img_info *info, struct err *e);
/* EXIF orientation from a TIFF-structured EXIF block (the bytes after
 * "Exif\0\0" in a JPEG APP1 segment, a PNG eXIf chunk or a WebP EXIF chunk).
 * Returns 1..8, or 1 when absent or malformed. Never reads out of bounds. */
unsigned img_exif_orientation(const void *tiff, size_t len);

#endif
