/* Image verification: every test image is made here, with the same
 * libraries, then damaged on purpose. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spng.h>
#include <turbojpeg.h>
#include <webp/encode.h>
#include <webp/types.h>

#include "common/err.h"
#include "dataset/image.h"

#define BIG_LIMIT 100000000ull

struct blob {
	unsigned char *p;
	size_t n;
};

static struct blob blob_copy(const void *p, size_t n)
{
	struct blob b;

	b.p = malloc(n ? n : 1);
	assert_non_null(b.p);
	if (n)
		memcpy(b.p, p, n);
	b.n = n;
	return b;
}

static void blob_add(struct blob *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->n + n + 1);
	assert_non_null(b->p);
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void blob_free(struct blob *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

/* Copy the first n bytes into a buffer of exactly n bytes, so that the
 * sanitizer sees any read past the end. */
static int check_prefix(const struct blob *b, size_t n, uint64_t max,
			struct img_info *info, struct err *e)
{
	struct blob c = blob_copy(b->p, n);
	int r;

	err_clear(e);
	r = img_check(c.p, c.n, max, info, e);
	blob_free(&c);
	return r;
}

static int check(const struct blob *b, uint64_t max, struct img_info *info,
		 struct err *e)
{
	return check_prefix(b, b->n, max, info, e);
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put_le24(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

/* Noisy pixels compress badly, so most of each file is image data and
 * cutting it in half lands in the middle of that data. */
static unsigned char *pixels(unsigned w, unsigned h, unsigned ch)
{
	unsigned char *p = malloc((size_t)w * h * ch);
	uint32_t s = 12345;

	assert_non_null(p);
	for (size_t i = 0; i < (size_t)w * h * ch; i++) {
		s = s * 1103515245u + 12345u;
		p[i] = (unsigned char)((s >> 16) ^ (i * 7));
	}
	return p;
}

/* ---- CRC-32 for hand-made PNG chunks ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	if (!crc_table[1])
		crc_init();
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void png_chunk(struct blob *b, const char *type, const void *data,
		      uint32_t n)
{
	unsigned char hdr[8], crc[4];
	size_t start;

	put_be32(hdr, n);
	memcpy(hdr + 4, type, 4);
	blob_add(b, hdr, 8);
	start = b->n - 4;
	blob_add(b, data, n);
	put_be32(crc, crc32_of(b->p + start, n + 4));
	blob_add(b, crc, 4);
}

/* Offset of the first chunk of `type`, or 0. */
static size_t png_find(const struct blob *b, const char *type)
{
	size_t off = 8;

	while (off + 12 <= b->n) {
		if (!memcmp(b->p + off + 4, type, 4))
			return off;
		off += 12 + get_be32(b->p + off);
	}
	return 0;
}

/* A copy of `b` with a chunk inserted before the first chunk `before`. */
static struct blob png_insert(const struct blob *b, const char *before,
			      const char *type, const void *data, uint32_t n)
{
	size_t at = png_find(b, before);
	struct blob out = blob_copy(b->p, at);

	assert_true(at > 0);
	png_chunk(&out, type, data, n);
	blob_add(&out, b->p + at, b->n - at);
	return out;
}

/* ---- encoders ---- */

static struct blob make_jpeg(unsigned w, unsigned h, int pf, int samp)
{
	tjhandle tj = tjInitCompress();
	unsigned char *src = pixels(w, h, (unsigned)tjPixelSize[pf]);
	unsigned char *jpg = NULL;
	unsigned long n = 0;
	struct blob b;

	assert_non_null(tj);
	assert_int_equal(tjCompress2(tj, src, (int)w, 0, (int)h, pf, &jpg, &n,
				     samp, 90, 0), 0);
	b = blob_copy(jpg, n);
	tjFree(jpg);
	tjDestroy(tj);
	free(src);
	return b;
}

struct png_opts {
	uint8_t depth, color, interlace;
	bool trns, exif;
	uint16_t orientation;
};

static struct blob tiff_orientation(bool big_endian, uint16_t value);

static struct blob make_png(unsigned w, unsigned h, const struct png_opts *o)
{
	spng_ctx *enc = spng_ctx_new(SPNG_CTX_ENCODER);
	struct spng_ihdr ihdr = {
		.width = w, .height = h, .bit_depth = o->depth,
		.color_type = o->color, .interlace_method = o->interlace,
	};
	unsigned ch = o->color == 0 || o->color == 3 ? 1 :
		      o->color == 4 ? 2 : o->color == 2 ? 3 : 4;
	size_t rowbytes = ((size_t)w * ch * o->depth + 7) / 8;
	unsigned char *src = pixels((unsigned)rowbytes, h, 1);
	struct spng_plte plte = { .n_entries = 256 };
	struct spng_trns trns = { .gray = 1, .red = 1, .green = 2, .blue = 3,
				  .n_type3_entries = 4 };
	struct blob tiff = { NULL, 0 };
	struct spng_exif exif;
	void *out;
	size_t n;
	int r;

	assert_non_null(enc);
	assert_int_equal(spng_set_option(enc, SPNG_ENCODE_TO_BUFFER, 1), 0);
	assert_int_equal(spng_set_ihdr(enc, &ihdr), 0);
	if (o->color == 3) {
		for (int i = 0; i < 256; i++) {
			plte.entries[i].red = (uint8_t)i;
			plte.entries[i].green = (uint8_t)(255 - i);
			plte.entries[i].blue = (uint8_t)(i * 3);
		}
		assert_int_equal(spng_set_plte(enc, &plte), 0);
	}
	if (o->trns)
		assert_int_equal(spng_set_trns(enc, &trns), 0);
	if (o->exif) {
		tiff = tiff_orientation(true, o->orientation);
		exif.data = (char *)tiff.p;
		exif.length = tiff.n;
		assert_int_equal(spng_set_exif(enc, &exif), 0);
	}
	assert_int_equal(spng_encode_image(enc, src, rowbytes * h,
					   SPNG_FMT_PNG,
					   SPNG_ENCODE_FINALIZE), 0);
	out = spng_get_png_buffer(enc, &n, &r);
	assert_non_null(out);
	assert_int_equal(r, 0);
	spng_ctx_free(enc);
	free(src);
	blob_free(&tiff);
	{
		struct blob b = blob_copy(out, n);

		free(out);
		return b;
	}
}

static struct blob make_webp(unsigned w, unsigned h, bool lossless_alpha)
{
	unsigned char *src = pixels(w, h, lossless_alpha ? 4 : 3);
	uint8_t *out = NULL;
	size_t n;
	struct blob b;

	if (lossless_alpha)
		n = WebPEncodeLosslessRGBA(src, (int)w, (int)h, (int)w * 4,
					   &out);
	else
		n = WebPEncodeRGB(src, (int)w, (int)h, (int)w * 3, 80, &out);
	assert_true(n > 0);
	b = blob_copy(out, n);
	WebPFree(out);
	free(src);
	return b;
}

#define TIFF_LEN 38

/* A TIFF block with IFD0 holding an unrelated tag, then Orientation. */
static void tiff_bytes(unsigned char t[TIFF_LEN], bool big_endian,
		       uint16_t value)
{
	memset(t, 0, TIFF_LEN);
	if (big_endian) {
		memcpy(t, "MM\0*\0\0\0\x08", 8);
		memcpy(t + 8, "\0\x02", 2);
		/* 0x0100 ImageWidth LONG 1 = 640 */
		memcpy(t + 10, "\x01\x00\0\x04\0\0\0\x01\0\0\x02\x80", 12);
		/* 0x0112 Orientation SHORT 1 = value */
		memcpy(t + 22, "\x01\x12\0\x03\0\0\0\x01", 8);
		t[30] = (unsigned char)(value >> 8);
		t[31] = (unsigned char)value;
	} else {
		memcpy(t, "II*\0\x08\0\0\0", 8);
		memcpy(t + 8, "\x02\0", 2);
		memcpy(t + 10, "\x00\x01\x04\0\x01\0\0\0\x80\x02\0\0", 12);
		memcpy(t + 22, "\x12\x01\x03\0\x01\0\0\0", 8);
		t[30] = (unsigned char)value;
		t[31] = (unsigned char)(value >> 8);
	}
}

static struct blob tiff_orientation(bool big_endian, uint16_t value)
{
	unsigned char t[TIFF_LEN];

	tiff_bytes(t, big_endian, value);
	return blob_copy(t, sizeof(t));
}

/* A copy of a JPEG with an APP1 Exif segment after the segment at
 * offset 2 (after_app0) or right after SOI. */
static struct blob jpeg_with_exif(const struct blob *j, const struct blob *tiff,
				  bool after_app0)
{
	size_t at = 2;
	unsigned char hdr[10];
	struct blob out;

	if (after_app0) {
		assert_int_equal(j->p[2], 0xff);
		assert_int_equal(j->p[3], 0xe0);
		at = 4 + ((size_t)j->p[4] << 8 | j->p[5]);
	}
	out = blob_copy(j->p, at);
	hdr[0] = 0xff;
	hdr[1] = 0xe1;
	hdr[2] = (unsigned char)((2 + 6 + tiff->n) >> 8);
	hdr[3] = (unsigned char)(2 + 6 + tiff->n);
	memcpy(hdr + 4, "Exif\0\0", 6);
	blob_add(&out, hdr, 10);
	blob_add(&out, tiff->p, tiff->n);
	blob_add(&out, j->p + at, j->n - at);
	return out;
}

/* ---- hand-made WebP containers ---- */

static void riff_chunk(struct blob *b, const char *fourcc, const void *data,
		       size_t n)
{
	unsigned char hdr[8];

	memcpy(hdr, fourcc, 4);
	put_le32(hdr + 4, (uint32_t)n);
	blob_add(b, hdr, 8);
	blob_add(b, data, n);
	if (n & 1)
		blob_add(b, "", 1);
}

static void riff_finish(struct blob *b)
{
	put_le32(b->p + 4, (uint32_t)(b->n - 8));
}

static struct blob riff_start(void)
{
	return blob_copy("RIFF\0\0\0\0WEBP", 12);
}

/* The image chunk ("VP8 " or "VP8L", header included) of a simple WebP. */
static struct blob webp_image_chunk(const struct blob *w)
{
	size_t n = get_le32(w->p + 16);

	assert_true(!memcmp(w->p + 12, "VP8", 3));
	return blob_copy(w->p + 12, 8 + n + (n & 1));
}

static void vp8x(struct blob *b, unsigned flags, unsigned w, unsigned h)
{
	unsigned char d[10] = { 0 };

	d[0] = (unsigned char)flags;
	put_le24(d + 4, w - 1);
	put_le24(d + 7, h - 1);
	riff_chunk(b, "VP8X", d, sizeof(d));
}

static void anmf(struct blob *b, unsigned w, unsigned h,
		 const struct blob *frame)
{
	struct blob d = blob_copy("", 0);
	unsigned char hdr[16] = { 0 };

	put_le24(hdr + 6, w - 1);
	put_le24(hdr + 9, h - 1);
	put_le24(hdr + 12, 100);
	blob_add(&d, hdr, sizeof(hdr));
	blob_add(&d, frame->p, frame->n);
	riff_chunk(b, "ANMF", d.p, d.n);
	blob_free(&d);
}

/* An animation of `frames` frames of w x h; frame `bad` (1-based) gets
 * `badframe` instead of a good one. */
static struct blob make_webp_anim(unsigned w, unsigned h, unsigned frames,
				  unsigned bad, const struct blob *badframe)
{
	struct blob still = make_webp(w, h, false);
	struct blob img = webp_image_chunk(&still);
	struct blob b = riff_start();
	unsigned char anim[6] = { 0xff, 0xff, 0xff, 0xff, 0, 0 };

	vp8x(&b, 0x02, w, h);
	riff_chunk(&b, "ANIM", anim, sizeof(anim));
	for (unsigned i = 1; i <= frames; i++)
		anmf(&b, w, h, i == bad ? badframe : &img);
	riff_finish(&b);
	blob_free(&img);
	blob_free(&still);
	return b;
}

/* ---- tests ---- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(img_format_name(IMG_JPEG), "jpeg");
	assert_string_equal(img_format_name(IMG_PNG), "png");
	assert_string_equal(img_format_name(IMG_WEBP), "webp");
	assert_string_equal(img_format_name(IMG_NONE), "unknown");

	assert_int_equal(img_format_from_name("a.jpg"), IMG_JPEG);
	assert_int_equal(img_format_from_name("dir/B.JPEG"), IMG_JPEG);
	assert_int_equal(img_format_from_name("c.JpG"), IMG_JPEG);
	assert_int_equal(img_format_from_name("x.y.Png"), IMG_PNG);
	assert_int_equal(img_format_from_name("d.WEBP"), IMG_WEBP);
	assert_int_equal(img_format_from_name("e.gif"), IMG_NONE);
	assert_int_equal(img_format_from_name("png"), IMG_NONE);
	assert_int_equal(img_format_from_name("a.pngx"), IMG_NONE);
	assert_int_equal(img_format_from_name("a.jp"), IMG_NONE);
	assert_int_equal(img_format_from_name("dir.png/file"), IMG_NONE);
	assert_int_equal(img_format_from_name("file."), IMG_NONE);
	assert_int_equal(img_format_from_name(""), IMG_NONE);
}

static void test_sniff(void **state)
{
	static const unsigned char png[8] = { 0x89, 'P', 'N', 'G',
					      '\r', '\n', 0x1a, '\n' };
	(void)state;
	assert_int_equal(img_sniff("\xff\xd8\xff", 3), IMG_JPEG);
	assert_int_equal(img_sniff("\xff\xd8", 2), IMG_NONE);
	assert_int_equal(img_sniff("\xff\xd8\xfe", 3), IMG_NONE);
	assert_int_equal(img_sniff(png, 8), IMG_PNG);
	assert_int_equal(img_sniff(png, 7), IMG_NONE);
	assert_int_equal(img_sniff("RIFF\0\0\0\0WEBP", 12), IMG_WEBP);
	assert_int_equal(img_sniff("RIFF\0\0\0\0WAVE", 12), IMG_NONE);
	assert_int_equal(img_sniff("RIFF\0\0\0\0WEB", 11), IMG_NONE);
	assert_int_equal(img_sniff("GIF89a", 6), IMG_NONE);
	assert_int_equal(img_sniff("", 0), IMG_NONE);
	assert_int_equal(img_sniff(NULL, 0), IMG_NONE);
}

static void test_not_images(void **state)
{
	struct img_info info;
	struct err e;
	unsigned char rnd[4096];
	uint32_t s = 99;

	(void)state;
	err_clear(&e);
	assert_int_equal(img_check("", 0, BIG_LIMIT, &info, &e), ERR_FORMAT);
	assert_int_equal(e.code, ERR_FORMAT);
	assert_non_null(strstr(e.msg, "empty"));
	assert_int_equal(info.format, IMG_NONE);
	assert_int_equal(img_check(NULL, 0, BIG_LIMIT, &info, NULL),
			 ERR_FORMAT);

	for (size_t i = 0; i < sizeof(rnd); i++) {
		s = s * 1664525u + 1013904223u;
		rnd[i] = (unsigned char)(s >> 24);
	}
	rnd[0] = 0x00;
	err_clear(&e);
	assert_int_equal(img_check(rnd, sizeof(rnd), BIG_LIMIT, &info, &e),
			 ERR_FORMAT);
	assert_non_null(strstr(e.msg, "not a JPEG, PNG or WebP"));
	assert_int_equal(img_check("GIF89a\1\0\1\0", 10, BIG_LIMIT, &info, &e),
			 ERR_FORMAT);
	/* No info or err: must not crash. */
	assert_int_equal(img_check(rnd, 1, BIG_LIMIT, NULL, NULL), ERR_FORMAT);
}

static void test_jpeg_valid(void **state)
{
	struct blob j = make_jpeg(64, 48, TJPF_RGB, TJSAMP_420);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&j, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.format, IMG_JPEG);
	assert_int_equal(info.width, 64);
	assert_int_equal(info.height, 48);
	assert_int_equal(info.bit_depth, 8);
	assert_false(info.alpha);
	assert_false(info.gray);
	assert_false(info.cmyk);
	assert_false(info.animated);
	assert_int_equal(info.orientation, 1);
	/* No info or err wanted: still checks. */
	assert_int_equal(img_check(j.p, j.n, BIG_LIMIT, NULL, NULL), 0);
	blob_free(&j);
}

static void test_jpeg_gray_cmyk(void **state)
{
	struct blob g = make_jpeg(40, 30, TJPF_GRAY, TJSAMP_GRAY);
	struct blob c = make_jpeg(40, 30, TJPF_CMYK, TJSAMP_444);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&g, BIG_LIMIT, &info, &e), 0);
	assert_true(info.gray);
	assert_false(info.cmyk);
	assert_int_equal(info.width, 40);
	assert_int_equal(info.height, 30);

	assert_int_equal(check(&c, BIG_LIMIT, &info, &e), 0);
	assert_true(info.cmyk);
	assert_false(info.gray);
	assert_false(info.alpha);
	assert_int_equal(info.width, 40);
	blob_free(&g);
	blob_free(&c);
}

static void test_jpeg_truncated(void **state)
{
	struct blob j = make_jpeg(256, 256, TJPF_RGB, TJSAMP_444);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check_prefix(&j, j.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_int_equal(e.code, ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "Premature end of JPEG file"));
	assert_non_null(strstr(e.msg, "re-export or remove"));
	/* The header survived, so the facts are there. */
	assert_int_equal(info.width, 256);
	assert_int_equal(info.format, IMG_JPEG);

	/* Only the EOI marker missing. */
	assert_int_equal(j.p[j.n - 2], 0xff);
	assert_int_equal(j.p[j.n - 1], 0xd9);
	assert_int_equal(check_prefix(&j, j.n - 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	/* Cut inside the header. */
	assert_int_equal(check_prefix(&j, 40, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_int_equal(check_prefix(&j, 3, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	/* Every prefix fails cleanly, and only the whole file passes. */
	for (size_t n = 3; n < j.n; n += 97)
		assert_int_equal(check_prefix(&j, n, BIG_LIMIT, &info, &e),
				 ERR_CORRUPT);
	assert_int_equal(check(&j, BIG_LIMIT, &info, &e), 0);
	blob_free(&j);
}

static size_t jpeg_find_sof(const struct blob *j)
{
	for (size_t i = 2; i + 9 < j->n; i++)
		if (j->p[i] == 0xff && j->p[i + 1] == 0xc0)
			return i;
	fail_msg("no SOF0 marker");
	return 0;
}

static void test_jpeg_limit(void **state)
{
	struct blob j = make_jpeg(256, 256, TJPF_RGB, TJSAMP_444);
	struct img_info info;
	struct err e;
	size_t sof;

	(void)state;
	assert_int_equal(check(&j, 256 * 256, &info, &e), 0);
	assert_int_equal(check(&j, 256 * 256 - 1, &info, &e), ERR_LIMIT);
	assert_int_equal(e.code, ERR_LIMIT);
	assert_non_null(strstr(e.msg, "256x256"));
	assert_int_equal(info.width, 256);

	/* A header claiming 60000x60000, with the data cut short: the limit
	 * is found before any decoding could notice the damage. */
	sof = jpeg_find_sof(&j);
	j.p[sof + 5] = 60000 >> 8;
	j.p[sof + 6] = 60000 & 0xff;
	j.p[sof + 7] = 60000 >> 8;
	j.p[sof + 8] = 60000 & 0xff;
	assert_int_equal(check_prefix(&j, j.n / 2, BIG_LIMIT, &info, &e),
			 ERR_LIMIT);
	assert_non_null(strstr(e.msg, "60000x60000"));
	assert_int_equal(info.width, 60000);
	assert_int_equal(info.height, 60000);
	blob_free(&j);
}

static void test_jpeg_exif(void **state)
{
	struct blob j = make_jpeg(32, 16, TJPF_RGB, TJSAMP_420);
	struct blob be6 = tiff_orientation(true, 6);
	struct blob le8 = tiff_orientation(false, 8);
	struct blob x1 = jpeg_with_exif(&j, &be6, true);
	struct blob x2 = jpeg_with_exif(&j, &le8, false);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&x1, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.orientation, 6);
	assert_int_equal(info.width, 32); /* as stored, not rotated */
	assert_int_equal(info.height, 16);
	assert_int_equal(check(&x2, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.orientation, 8);
	/* Fill bytes (extra 0xFF) before the APP1 marker are legal. */
	{
		struct blob f = blob_copy(x2.p, 2);

		blob_add(&f, "\xff\xff\xff", 3);
		blob_add(&f, x2.p + 2, x2.n - 2);
		assert_int_equal(check(&f, BIG_LIMIT, &info, &e), 0);
		assert_int_equal(info.orientation, 8);
		blob_free(&f);
	}
	/* EXIF segment cut off with the file: orientation unknown, file
	 * corrupt, nothing read out of bounds. */
	for (size_t n = 3; n < 60; n++)
		assert_int_equal(check_prefix(&x1, n, BIG_LIMIT, &info, &e),
				 ERR_CORRUPT);
	blob_free(&j);
	blob_free(&be6);
	blob_free(&le8);
	blob_free(&x1);
	blob_free(&x2);
}

static void test_png_kinds(void **state)
{
	static const struct {
		struct png_opts o;
		bool alpha, gray;
		unsigned depth;
	} cases[] = {
		{ { 8, 2, 0, false, false, 0 }, false, false, 8 },
		{ { 8, 6, 0, false, false, 0 }, true, false, 8 },
		{ { 8, 0, 0, false, false, 0 }, false, true, 8 },
		{ { 16, 0, 0, false, false, 0 }, false, true, 16 },
		{ { 16, 4, 0, false, false, 0 }, true, true, 16 },
		{ { 16, 2, 0, false, false, 0 }, false, false, 16 },
		{ { 1, 0, 0, false, false, 0 }, false, true, 8 },
		{ { 8, 3, 0, false, false, 0 }, false, false, 8 },
		{ { 8, 3, 0, true, false, 0 }, true, false, 8 },
		{ { 8, 2, 0, true, false, 0 }, true, false, 8 },
		{ { 8, 0, 0, true, false, 0 }, true, true, 8 },
		{ { 8, 6, 1, false, false, 0 }, true, false, 8 },
		{ { 16, 2, 1, false, false, 0 }, false, false, 16 },
	};
	struct img_info info;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct blob p = make_png(37, 23, &cases[i].o);

		assert_int_equal(check(&p, BIG_LIMIT, &info, &e), 0);
		assert_int_equal(info.format, IMG_PNG);
		assert_int_equal(info.width, 37);
		assert_int_equal(info.height, 23);
		assert_int_equal(info.alpha, cases[i].alpha);
		assert_int_equal(info.gray, cases[i].gray);
		assert_int_equal(info.bit_depth, cases[i].depth);
		assert_false(info.cmyk);
		assert_false(info.animated);
		assert_int_equal(info.orientation, 1);
		blob_free(&p);
	}
}

static void test_png_truncated(void **state)
{
	struct png_opts o = { 8, 2, 0, false, false, 0 };
	struct png_opts oi = { 8, 2, 1, false, false, 0 };
	struct blob p = make_png(128, 128, &o);
	struct blob pi = make_png(128, 128, &oi);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check_prefix(&p, p.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "re-export or remove"));
	assert_int_equal(info.width, 128);
	assert_int_equal(check_prefix(&pi, pi.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	/* Only IEND missing. */
	assert_true(!memcmp(p.p + p.n - 8, "IEND", 4));
	assert_int_equal(check_prefix(&p, p.n - 12, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	/* Cut inside the header. */
	assert_int_equal(check_prefix(&p, 20, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_int_equal(check_prefix(&p, 8, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	for (size_t n = 8; n < p.n; n += 101)
		assert_int_equal(check_prefix(&p, n, BIG_LIMIT, &info, &e),
				 ERR_CORRUPT);
	assert_int_equal(check(&p, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(check(&pi, BIG_LIMIT, &info, &e), 0);
	blob_free(&p);
	blob_free(&pi);
}

static void test_png_crc(void **state)
{
	struct png_opts o = { 8, 2, 0, false, false, 0 };
	struct blob p = make_png(64, 64, &o);
	struct blob t1 = png_insert(&p, "IDAT", "tEXt", "Comment\0hello", 13);
	struct blob t2 = png_insert(&p, "IEND", "tEXt", "Comment\0bye", 11);
	struct img_info info;
	struct err e;
	size_t at;

	(void)state;
	/* The hand-made chunks are right, so the copies pass... */
	assert_int_equal(check(&t1, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(check(&t2, BIG_LIMIT, &info, &e), 0);

	/* ...and one flipped bit anywhere in a chunk is caught. */
	at = png_find(&p, "IDAT");
	p.p[at + 8 + 10] ^= 0x01;
	assert_int_equal(check(&p, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "CRC"));
	p.p[at + 8 + 10] ^= 0x01;
	assert_int_equal(check(&p, BIG_LIMIT, &info, &e), 0);

	p.p[29] ^= 0x80; /* the IHDR CRC itself */
	assert_int_equal(check(&p, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "CRC"));

	at = png_find(&t1, "tEXt");
	t1.p[at + 8 + 9] ^= 0x20; /* ancillary chunk before the image */
	assert_int_equal(check(&t1, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "CRC"));

	at = png_find(&t2, "tEXt");
	t2.p[at + 8 + 9] ^= 0x20; /* ancillary chunk after the image */
	assert_int_equal(check(&t2, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "CRC"));
	blob_free(&p);
	blob_free(&t1);
	blob_free(&t2);
}

static void test_png_bomb(void **state)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G',
					      '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[13] = { 0 };
	struct blob b = blob_copy(sig, 8);
	struct img_info info;
	struct err e;

	(void)state;
	put_be32(ihdr, 100000);
	put_be32(ihdr + 4, 100000);
	ihdr[8] = 8; /* depth */
	ihdr[9] = 2; /* RGB */
	png_chunk(&b, "IHDR", ihdr, 13);
	/* A few bytes of "image data", as a bomb would start. */
	png_chunk(&b, "IDAT", "\x78\x9c\x01\x00\x00\xff\xff", 7);
	png_chunk(&b, "IEND", "", 0);
	assert_int_equal(check(&b, BIG_LIMIT, &info, &e), ERR_LIMIT);
	assert_int_equal(e.code, ERR_LIMIT);
	assert_non_null(strstr(e.msg, "100000x100000"));
	assert_int_equal(info.width, 100000);
	assert_int_equal(info.height, 100000);
	assert_int_equal(info.format, IMG_PNG);
	/* Under a limit that lets it through, it is corrupt, not a crash:
	 * the few IDAT bytes cannot fill 10^10 pixels. Decoding that far
	 * is the limit's job to prevent, so only the header-only copy is
	 * tried, which fails before any allocation. */
	assert_int_equal(check_prefix(&b, 8 + 25, 20000000000ull, &info, &e),
			 ERR_CORRUPT);
	blob_free(&b);
}

static void test_png_limit(void **state)
{
	struct png_opts o = { 8, 2, 0, false, false, 0 };
	struct blob p = make_png(50, 40, &o);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&p, 2000, &info, &e), 0);
	assert_int_equal(check(&p, 1999, &info, &e), ERR_LIMIT);
	assert_non_null(strstr(e.msg, "50x40"));
	blob_free(&p);
}

static void test_png_apng(void **state)
{
	struct png_opts o = { 8, 6, 0, false, false, 0 };
	struct blob p = make_png(16, 16, &o);
	unsigned char actl[8], fctl[26] = { 0 };
	struct blob a, one, full, tmp, after;
	struct img_info info;
	struct err e;
	size_t at;

	(void)state;
	put_be32(actl, 2);     /* frames */
	put_be32(actl + 4, 0); /* plays */
	a = png_insert(&p, "IDAT", "acTL", actl, 8);
	assert_int_equal(check(&a, BIG_LIMIT, &info, &e), 0);
	assert_true(info.animated);
	assert_int_equal(info.width, 16);

	put_be32(actl, 1);
	one = png_insert(&p, "IDAT", "acTL", actl, 8);
	assert_int_equal(check(&one, BIG_LIMIT, &info, &e), 0);
	assert_false(info.animated);

	/* An acTL after the image data does not make an APNG. */
	put_be32(actl, 2);
	after = png_insert(&p, "IEND", "acTL", actl, 8);
	assert_int_equal(check(&after, BIG_LIMIT, &info, &e), 0);
	assert_false(info.animated);

	/* A fuller APNG: fcTL before IDAT, a second frame in fdAT after. */
	put_be32(fctl, 0);
	put_be32(fctl + 4, 16);
	put_be32(fctl + 8, 16);
	tmp = png_insert(&a, "IDAT", "fcTL", fctl, 26);
	at = png_find(&tmp, "IDAT");
	{
		uint32_t n = get_be32(tmp.p + at);
		unsigned char *fd = malloc(4 + n);

		assert_non_null(fd);
		put_be32(fd, 2); /* sequence number */
		memcpy(fd + 4, tmp.p + at + 8, n);
		put_be32(fctl, 1);
		full = png_insert(&tmp, "IEND", "fcTL", fctl, 26);
		blob_free(&tmp);
		tmp = full;
		full = png_insert(&tmp, "IEND", "fdAT", fd, 4 + n);
		free(fd);
	}
	assert_int_equal(check(&full, BIG_LIMIT, &info, &e), 0);
	assert_true(info.animated);
	/* A damaged chunk of the second frame is caught by its CRC. */
	at = png_find(&full, "fdAT");
	full.p[at + 8 + 6] ^= 0x04;
	assert_int_equal(check(&full, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	blob_free(&tmp);
	blob_free(&full);
	blob_free(&after);
	blob_free(&one);
	blob_free(&a);
	blob_free(&p);
}

static void test_png_exif(void **state)
{
	struct png_opts o = { 8, 2, 0, false, true, 3 };
	struct blob p = make_png(20, 10, &o);
	struct img_info info;
	struct err e;

	(void)state;
	assert_true(png_find(&p, "eXIf") > 0);
	assert_int_equal(check(&p, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.orientation, 3);
	blob_free(&p);
}

static void test_webp_valid(void **state)
{
	struct blob lossy = make_webp(64, 48, false);
	struct blob ll = make_webp(30, 20, true);
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&lossy, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.format, IMG_WEBP);
	assert_int_equal(info.width, 64);
	assert_int_equal(info.height, 48);
	assert_int_equal(info.bit_depth, 8);
	assert_false(info.alpha);
	assert_false(info.gray);
	assert_false(info.animated);
	assert_int_equal(info.orientation, 1);

	assert_int_equal(check(&ll, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.width, 30);
	assert_int_equal(info.height, 20);
	assert_true(info.alpha);

	assert_int_equal(check(&lossy, 64 * 48 - 1, &info, &e), ERR_LIMIT);
	assert_non_null(strstr(e.msg, "64x48"));
	assert_int_equal(check(&ll, 599, &info, &e), ERR_LIMIT);
	blob_free(&lossy);
	blob_free(&ll);
}

static void test_webp_truncated(void **state)
{
	struct blob w = make_webp(128, 128, false);
	struct blob ll = make_webp(128, 128, true);
	struct blob c;
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check_prefix(&w, w.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "truncated"));
	assert_non_null(strstr(e.msg, "re-export or remove"));
	assert_int_equal(check_prefix(&ll, ll.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);

	/* Cut, with the RIFF and chunk sizes made to agree, so that only
	 * the decoder can tell. */
	for (int k = 0; k < 2; k++) {
		c = blob_copy(k ? ll.p : w.p, (k ? ll.n : w.n) / 2);
		c.n &= ~(size_t)1;
		put_le32(c.p + 16, (uint32_t)(c.n - 20));
		riff_finish(&c);
		assert_int_equal(check(&c, BIG_LIMIT, &info, &e), ERR_CORRUPT);
		blob_free(&c);
	}
	for (size_t n = 12; n < w.n; n += 53)
		assert_int_equal(check_prefix(&w, n, BIG_LIMIT, &info, &e),
				 ERR_CORRUPT);
	blob_free(&w);
	blob_free(&ll);
}

static void test_webp_exif(void **state)
{
	struct blob still = make_webp(24, 12, false);
	struct blob img = webp_image_chunk(&still);
	struct blob tiff = tiff_orientation(false, 6);
	struct blob b = riff_start();
	struct img_info info;
	struct err e;

	(void)state;
	vp8x(&b, 0x08, 24, 12);
	blob_add(&b, img.p, img.n);
	riff_chunk(&b, "EXIF", tiff.p, tiff.n);
	riff_finish(&b);
	assert_int_equal(check(&b, BIG_LIMIT, &info, &e), 0);
	assert_int_equal(info.orientation, 6);
	assert_int_equal(info.width, 24);
	/* The EXIF chunk claims more than the file holds. */
	put_le32(b.p + b.n - tiff.n - 4, (uint32_t)tiff.n + 100);
	assert_int_equal(check(&b, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	blob_free(&b);
	blob_free(&tiff);
	blob_free(&img);
	blob_free(&still);
}

static void test_webp_anim(void **state)
{
	struct blob a = make_webp_anim(32, 32, 3, 0, NULL);
	struct blob one = make_webp_anim(32, 32, 1, 0, NULL);
	struct blob still = make_webp(32, 32, false);
	struct blob img = webp_image_chunk(&still);
	struct blob half, bad;
	struct img_info info;
	struct err e;

	(void)state;
	assert_int_equal(check(&a, BIG_LIMIT, &info, &e), 0);
	assert_true(info.animated);
	assert_int_equal(info.width, 32);
	assert_int_equal(info.height, 32);
	assert_int_equal(check(&one, BIG_LIMIT, &info, &e), 0);
	assert_false(info.animated);

	assert_int_equal(check_prefix(&a, a.n / 2, BIG_LIMIT, &info, &e),
			 ERR_CORRUPT);
	assert_int_equal(check(&a, 32 * 32 - 1, &info, &e), ERR_LIMIT);

	/* The last frame's bitstream cut in half, with every container size
	 * consistent: only decoding that frame finds it. */
	half = blob_copy(img.p, 8 + (img.n - 8) / 2);
	half.n &= ~(size_t)1;
	put_le32(half.p + 4, (uint32_t)(half.n - 8));
	bad = make_webp_anim(32, 32, 3, 3, &half);
	assert_int_equal(check(&bad, BIG_LIMIT, &info, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "frame 3"));
	blob_free(&bad);
	blob_free(&half);
	blob_free(&img);
	blob_free(&still);
	blob_free(&one);
	blob_free(&a);
}

/* Bytes after the end of the image (padding some cameras and tools leave)
 * are not damage. */
static void test_trailing_bytes(void **state)
{
	struct png_opts o = { 8, 2, 0, false, false, 0 };
	struct blob imgs[3];
	struct img_info info;
	struct err e;
	unsigned char zeros[100] = { 0 };

	(void)state;
	imgs[0] = make_jpeg(16, 16, TJPF_RGB, TJSAMP_420);
	imgs[1] = make_png(16, 16, &o);
	imgs[2] = make_webp(16, 16, false);
	for (int i = 0; i < 3; i++) {
		blob_add(&imgs[i], zeros, sizeof(zeros));
		assert_int_equal(check(&imgs[i], BIG_LIMIT, &info, &e), 0);
		assert_int_equal(info.width, 16);
		blob_free(&imgs[i]);
	}
}

static void test_exif_orientation(void **state)
{
	struct blob be = tiff_orientation(true, 6);
	struct blob le = tiff_orientation(false, 8);
	unsigned char t[TIFF_LEN];
	struct blob b;
	unsigned v;

	(void)state;
	assert_int_equal(img_exif_orientation(be.p, be.n), 6);
	assert_int_equal(img_exif_orientation(le.p, le.n), 8);
	for (uint16_t o = 0; o <= 10; o++) {
		b = tiff_orientation(o & 1, o);
		assert_int_equal(img_exif_orientation(b.p, b.n),
				 o >= 1 && o <= 8 ? o : 1);
		blob_free(&b);
	}
	/* Every truncation of a block, in a buffer of exactly that size. */
	for (size_t n = 0; n <= be.n; n++) {
		struct blob c = blob_copy(be.p, n);

		v = img_exif_orientation(c.p, c.n);
		assert_int_equal(v, n >= 34 ? 6 : 1);
		blob_free(&c);
	}
	/* With the "Exif\0\0" prefix still on. */
	b = blob_copy("Exif\0\0", 6);
	blob_add(&b, le.p, le.n);
	assert_int_equal(img_exif_orientation(b.p, b.n), 8);
	blob_free(&b);

	/* Wrong type (ASCII), bad magic, IFD offset past the end, huge entry
	 * count, and an IFD offset pointing into the header. */
	tiff_bytes(t, true, 6);
	t[25] = 2;
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	tiff_bytes(t, true, 6);
	t[3] = 0x2b;
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	tiff_bytes(t, true, 6);
	put_be32(t + 4, 0xfffffff0u);
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	put_be32(t + 4, TIFF_LEN - 1);
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	put_be32(t + 4, 4);
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	put_be32(t + 4, 8);
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 6);

	tiff_bytes(t, false, 8);
	t[8] = 0xff;
	t[9] = 0xff;
	t[10] = 0x99; /* first tag no longer width; orientation is 2nd */
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 8);
	t[22] = 0x13; /* no orientation tag left; count runs past end */
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);

	/* LONG instead of SHORT, as some writers do. */
	tiff_bytes(t, false, 8);
	t[24] = 4;
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 8);
	t[24] = 3;
	t[26] = 0; /* SHORT, but a count of 0 */
	assert_int_equal(img_exif_orientation(t, sizeof(t)), 1);
	assert_int_equal(img_exif_orientation(NULL, 0), 1);
	assert_int_equal(img_exif_orientation("MM\0*", 4), 1);
	blob_free(&be);
	blob_free(&le);
}

struct thread_arg {
	const struct blob *imgs;
	size_t n;
	int failures;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct img_info info;
	struct err e;

	for (int round = 0; round < 20; round++)
		for (size_t i = 0; i < a->n; i++)
			if (img_check(a->imgs[i].p, a->imgs[i].n, BIG_LIMIT,
				      &info, &e) != 0)
				a->failures++;
	return NULL;
}

static void test_threads(void **state)
{
	struct png_opts o = { 8, 6, 1, false, false, 0 };
	struct blob imgs[4];
	struct thread_arg args[4];
	pthread_t t[4];

	(void)state;
	imgs[0] = make_jpeg(96, 64, TJPF_RGB, TJSAMP_420);
	imgs[1] = make_png(96, 64, &o);
	imgs[2] = make_webp(96, 64, true);
	imgs[3] = make_webp_anim(32, 32, 2, 0, NULL);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ imgs, 4, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, thread_main,
						&args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	for (int i = 0; i < 4; i++)
		blob_free(&imgs[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_not_images),
		cmocka_unit_test(test_jpeg_valid),
		cmocka_unit_test(test_jpeg_gray_cmyk),
		cmocka_unit_test(test_jpeg_truncated),
		cmocka_unit_test(test_jpeg_limit),
		cmocka_unit_test(test_jpeg_exif),
		cmocka_unit_test(test_png_kinds),
		cmocka_unit_test(test_png_truncated),
		cmocka_unit_test(test_png_crc),
		cmocka_unit_test(test_png_bomb),
		cmocka_unit_test(test_png_limit),
		cmocka_unit_test(test_png_apng),
		cmocka_unit_test(test_png_exif),
		cmocka_unit_test(test_webp_valid),
		cmocka_unit_test(test_webp_truncated),
		cmocka_unit_test(test_webp_exif),
		cmocka_unit_test(test_webp_anim),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_exif_orientation),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
