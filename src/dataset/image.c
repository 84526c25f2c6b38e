#include "image.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spng.h>
#include <turbojpeg.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "common/xalloc.h"

/* PNG metadata: the largest single chunk spng may keep (text, ICC profile,
 * EXIF) and the most all kept chunks may take together. Image data (IDAT)
 * is streamed, not kept, so these do not bound the image size. */
#define IMG_PNG_CHUNK_MAX (16u << 20)
#define IMG_PNG_CACHE_MAX (64u << 20)
/* Animated WebP: the most frames we decode, and the most pixels all frames
 * may hold together, as a multiple of max_pixels. */
#define IMG_WEBP_MAX_FRAMES 4096u
#define IMG_WEBP_ANIM_FACTOR 16u

#define ADVICE "re-export or remove the file"

static const unsigned char png_sig[8] = {
	0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
};

static uint32_t be16(const unsigned char *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le16(const unsigned char *p)
{
	return (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

const char *img_format_name(enum img_format f)
{
	switch (f) {
	case IMG_JPEG: return "jpeg";
	case IMG_PNG: return "png";
	case IMG_WEBP: return "webp";
	default: return "unknown";
	}
}

enum img_format img_format_from_name(const char *name)
{
	const char *dot;

	if (!name)
		return IMG_NONE;
	dot = strrchr(name, '.');
	if (!dot || strchr(dot, '/'))
		return IMG_NONE;
	dot++;
	if (!strcasecmp(dot, "jpg") || !strcasecmp(dot, "jpeg"))
		return IMG_JPEG;
	if (!strcasecmp(dot, "png"))
		return IMG_PNG;
	if (!strcasecmp(dot, "webp"))
		return IMG_WEBP;
	return IMG_NONE;
}

enum img_format img_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;

	if (!p)
		return IMG_NONE;
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return IMG_JPEG;
	if (len >= sizeof(png_sig) && !memcmp(p, png_sig, sizeof(png_sig)))
		return IMG_PNG;
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return IMG_WEBP;
	return IMG_NONE;
}

unsigned img_exif_orientation(const void *tiff, size_t len)
{
	const unsigned char *p = tiff;
	uint32_t (*u16)(const unsigned char *);
	uint32_t (*u32)(const unsigned char *);
	size_t ifd, off;
	uint32_t count, i, v;

	if (!p)
		return 1;
	/* Tolerate the "Exif\0\0" prefix some writers leave in place. */
	if (len >= 6 && !memcmp(p, "Exif\0\0", 6)) {
		p += 6;
		len -= 6;
	}
	if (len < 8)
		return 1;
	if (!memcmp(p, "II*\0", 4)) {
		u16 = le16;
		u32 = le32;
	} else if (!memcmp(p, "MM\0*", 4)) {
		u16 = be16;
		u32 = be32;
	} else {
		return 1;
	}
	ifd = u32(p + 4);
	if (ifd < 8 || ifd > len || len - ifd < 2)
		return 1;
	count = u16(p + ifd);
	for (i = 0; i < count; i++) {
		off = ifd + 2 + (size_t)i * 12;
		if (off > len || len - off < 12)
			return 1;
		if (u16(p + off) != 0x0112)
			continue;
		/* SHORT, as the standard says; some writers use LONG. */
		if (u16(p + off + 2) == 3 && u32(p + off + 4) >= 1)
			v = u16(p + off + 8);
		else if (u16(p + off + 2) == 4 && u32(p + off + 4) >= 1)
			v = u32(p + off + 8);
		else
			return 1;
		return v >= 1 && v <= 8 ? v : 1;
	}
	return 1;
}

static int limit_err(struct err *e, const char *what, unsigned w, unsigned h,
		     uint64_t max_pixels)
{
	return err_set(e, ERR_LIMIT,
		       "%s claims %ux%u pixels (%llu), more than the limit of "
		       "%llu; downscale the image or remove the file",
		       what, w, h, (unsigned long long)w * h,
		       (unsigned long long)max_pixels);
}

/* ---- JPEG ---- */

/* Orientation from the first APP1 "Exif" segment, walking the markers that
 * precede the image data. */
static unsigned jpeg_orientation(const unsigned char *p, size_t len)
{
	size_t off = 2, seg;
	unsigned marker;

	while (off <= len && len - off >= 4) {
		if (p[off] != 0xff)
			return 1;
		marker = p[off + 1];
		if (marker == 0xff) { /* fill byte */
			off++;
			continue;
		}
		off += 2;
		if (marker == 0x01 || marker == 0xd8 ||
		    (marker >= 0xd0 && marker <= 0xd7))
			continue; /* stand-alone markers carry no length */
		if (marker == 0xda || marker == 0xd9)
			return 1; /* image data or the end: no EXIF before it */
		seg = be16(p + off);
		if (seg < 2 || seg > len - off)
			return 1;
		if (marker == 0xe1 && seg >= 2 + 6 &&
		    !memcmp(p + off + 2, "Exif\0\0", 6))
			return img_exif_orientation(p + off + 8, seg - 8);
		off += seg;
	}
	return 1;
}

static int check_jpeg(const unsigned char *p, size_t len, uint64_t max_pixels,
		      struct img_info *info, struct err *e)
{
	tjhandle tj = NULL;
	unsigned char *pix = NULL;
	int w = 0, h = 0, subsamp = -1, cs = -1, pf;
	int ret;

	info->bit_depth = 8;
	info->orientation = jpeg_orientation(p, len);
	tj = tjInitDecompress();
	if (!tj) {
		ret = err_set(e, ERR_FAIL, "cannot start the JPEG decoder: %s",
			      tjGetErrorStr2(NULL));
		goto out;
	}
	if (tjDecompressHeader3(tj, p, len, &w, &h, &subsamp, &cs) < 0) {
		ret = err_set(e, ERR_CORRUPT,
			      "damaged JPEG header: %s; " ADVICE,
			      tjGetErrorStr2(tj));
		goto out;
	}
	/* TurboJPEG 2.1 takes data that ends before the frame header for a
	 * tables-only stream: it succeeds and leaves the outputs unset. */
	if (w <= 0 || h <= 0) {
		ret = err_set(e, ERR_CORRUPT,
			      "truncated or damaged JPEG: no frame header "
			      "(image size) before the data ends; " ADVICE);
		goto out;
	}
	info->width = (unsigned)w;
	info->height = (unsigned)h;
	info->gray = cs == TJCS_GRAY;
	info->cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
	if ((uint64_t)w * (uint64_t)h > max_pixels) {
		ret = limit_err(e, "JPEG header", info->width, info->height,
				max_pixels);
		goto out;
	}

	/* Decode to the fewest bytes per pixel the colour space allows;
	 * TurboJPEG cannot turn CMYK into RGB anyway. */
	pf = info->gray ? TJPF_GRAY : info->cmyk ? TJPF_CMYK : TJPF_RGB;
	pix = xmalloc((size_t)w * (size_t)h * (size_t)tjPixelSize[pf]);
	if (tjDecompress2(tj, p, len, pix, w, 0, h, pf,
			  TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) < 0) {
		ret = err_set(e, ERR_CORRUPT,
			      "truncated or damaged JPEG: %s; " ADVICE,
			      tjGetErrorStr2(tj));
		goto out;
	}
	ret = 0;
out:
	free(pix);
	if (tj)
		tjDestroy(tj);
	return ret;
}

/* ---- PNG ---- */

/* Frames an APNG announces in its acTL chunk (which must come before the
 * first IDAT), or 0. spng 0.7 does not parse acTL, so walk the chunks. */
static uint32_t png_frames(const unsigned char *p, size_t len)
{
	size_t off = sizeof(png_sig);
	uint32_t n;

	while (off <= len && len - off >= 12) {
		n = be32(p + off);
		if (n > len - off - 12)
			return 0;
		if (!memcmp(p + off + 4, "IDAT", 4) ||
		    !memcmp(p + off + 4, "IEND", 4))
			return 0;
		if (!memcmp(p + off + 4, "acTL", 4) && n == 8)
			return be32(p + off + 8);
		off += 12 + (size_t)n;
	}
	return 0;
}

static int png_err(struct err *e, int r)
{
	switch (r) {
	case SPNG_ECHUNK_LIMITS:
		return err_set(e, ERR_LIMIT,
			       "PNG metadata (text, ICC profile or EXIF) "
			       "larger than we accept (%u MiB a chunk, %u MiB "
			       "in all); strip the metadata or remove the file",
			       IMG_PNG_CHUNK_MAX >> 20,
			       IMG_PNG_CACHE_MAX >> 20);
	case SPNG_ECHUNK_CRC:
		return err_set(e, ERR_CORRUPT,
			       "damaged PNG: a chunk checksum (CRC) does not "
			       "match; " ADVICE);
	case SPNG_EOF:
	case SPNG_EIO:
	case SPNG_IO_EOF:
	case SPNG_EIDAT_TOO_SHORT:
		return err_set(e, ERR_CORRUPT,
			       "truncated PNG: the data ends early (%s); "
			       ADVICE, spng_strerror(r));
	case SPNG_EMEM:
		return err_set(e, ERR_FAIL, "out of memory decoding PNG");
	default:
		return err_set(e, ERR_CORRUPT, "damaged PNG: %s; " ADVICE,
			       spng_strerror(r));
	}
}

static int check_png(const unsigned char *p, size_t len, uint64_t max_pixels,
		     struct img_info *info, struct err *e)
{
	spng_ctx *ctx = NULL;
	struct spng_ihdr ihdr;
	struct spng_trns trns;
	struct spng_exif exif;
	unsigned char *row = NULL;
	size_t size, rowlen;
	uint32_t lim;
	int fmt, r, ret;

	/* The header must be the first chunk; read its size ourselves so
	 * that nothing else of the file matters before the limit check. */
	if (len < sizeof(png_sig) + 8 + 13 + 4 || be32(p + 8) != 13 ||
	    memcmp(p + 12, "IHDR", 4)) {
		ret = err_set(e, ERR_CORRUPT,
			      "truncated or damaged PNG: no image header "
			      "(IHDR) at the start; " ADVICE);
		goto out;
	}
	info->width = be32(p + 16);
	info->height = be32(p + 20);
	if ((uint64_t)info->width * info->height > max_pixels) {
		ret = limit_err(e, "PNG header", info->width, info->height,
				max_pixels);
		goto out;
	}
	info->animated = png_frames(p, len) > 1;

	ctx = spng_ctx_new(0);
	if (!ctx) {
		ret = err_set(e, ERR_FAIL, "out of memory decoding PNG");
		goto out;
	}
	/* Damaged ancillary chunks are errors too, not silently dropped. */
	spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
	lim = max_pixels > 0x7fffffff ? 0x7fffffff : (uint32_t)max_pixels;
	if (lim == 0)
		lim = 1;
	spng_set_image_limits(ctx, lim, lim);
	spng_set_chunk_limits(ctx, IMG_PNG_CHUNK_MAX, IMG_PNG_CACHE_MAX);
	/* spng only reads the buffer; its API is not const-correct. */
	spng_set_png_buffer(ctx, (void *)p, len);

	r = spng_get_ihdr(ctx, &ihdr);
	if (r) {
		ret = png_err(e, r);
		goto out;
	}
	info->bit_depth = ihdr.bit_depth == 16 ? 16 : 8;
	info->gray = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
		     ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
	info->alpha = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
		      ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
	r = spng_get_trns(ctx, &trns);
	if (r == 0)
		info->alpha = true;
	else if (r != SPNG_ECHUNKAVAIL) {
		ret = png_err(e, r);
		goto out;
	}

	/* Decode row by row into one reused row: every pixel is inflated and
	 * unfiltered, but memory stays at one row whatever the height. */
	fmt = SPNG_FMT_PNG;
	r = spng_decoded_image_size(ctx, fmt, &size);
	if (!r)
		r = spng_decode_image(ctx, NULL, 0, fmt,
				      SPNG_DECODE_PROGRESSIVE);
	if (r) {
		ret = png_err(e, r);
		goto out;
	}
	rowlen = size / ihdr.height;
	row = xmalloc(rowlen ? rowlen : 1);
	do
		r = spng_decode_row(ctx, row, rowlen);
	while (!r);
	if (r != SPNG_EOI) {
		ret = png_err(e, r);
		goto out;
	}
	/* Read and check what follows the image, up to IEND. */
	r = spng_decode_chunks(ctx);
	if (r) {
		ret = png_err(e, r);
		goto out;
	}
	if (!spng_get_exif(ctx, &exif))
		info->orientation = img_exif_orientation(exif.data,
							 exif.length);
	ret = 0;
out:
	free(row);
	spng_ctx_free(ctx);
	return ret;
}

/* ---- WebP ---- */

static const char *webp_status(VP8StatusCode st)
{
	switch (st) {
	case VP8_STATUS_OK: return "no error";
	case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
	case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
	case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
	case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
	case VP8_STATUS_SUSPENDED: return "decoding suspended";
	case VP8_STATUS_USER_ABORT: return "decoding aborted";
	case VP8_STATUS_NOT_ENOUGH_DATA: return "data ends early";
	}
	return "unknown error";
}

static int webp_err(struct err *e, VP8StatusCode st, const char *what)
{
	if (st == VP8_STATUS_OUT_OF_MEMORY)
		return err_set(e, ERR_FAIL, "out of memory decoding WebP");
	return err_set(e, ERR_CORRUPT, "%s WebP%s: %s; " ADVICE,
		       st == VP8_STATUS_NOT_ENOUGH_DATA ?
		       "truncated" : "damaged", what, webp_status(st));
}

/* Walk the RIFF chunks: each must lie inside the file, and an EXIF chunk
 * gives the orientation. `end` is where the RIFF header says the file
 * ends, already checked against the data. */
static int webp_chunks(const unsigned char *p, size_t end,
		       struct img_info *info, struct err *e)
{
	size_t off = 12, n, i;
	unsigned char c;
	char name[5];

	while (off < end && end - off >= 8) {
		n = le32(p + off + 4);
		if (n > end - off - 8) {
			for (i = 0; i < 4; i++) {
				c = p[off + i];
				name[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
			}
			name[4] = '\0';
			return err_set(e, ERR_CORRUPT,
				       "truncated or damaged WebP: chunk "
				       "'%s' runs past the end of the file; "
				       ADVICE, name);
		}
		if (!memcmp(p + off, "EXIF", 4) && info->orientation == 1)
			info->orientation = img_exif_orientation(p + off + 8,
								 n);
		off += 8 + n + (n & 1);
	}
	return 0;
}

static VP8StatusCode webp_decode_into(const uint8_t *data, size_t len,
				      unsigned w, unsigned h,
				      unsigned char *pix, bool alpha)
{
	WebPDecoderConfig cfg;
	size_t bpp = alpha ? 4 : 3;
	VP8StatusCode st;

	if (!WebPInitDecoderConfig(&cfg))
		return VP8_STATUS_INVALID_PARAM;
	cfg.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
	cfg.output.is_external_memory = 1;
	cfg.output.u.RGBA.rgba = pix;
	cfg.output.u.RGBA.stride = (int)(w * bpp);
	cfg.output.u.RGBA.size = (size_t)w * h * bpp;
	st = WebPDecode(data, len, &cfg);
	WebPFreeDecBuffer(&cfg.output);
	return st;
}

/* Decode every frame of an animation on its own, into one buffer the size
 * of the canvas; blending and disposal do not matter for integrity. */
static int check_webp_anim(const unsigned char *p, size_t len,
			   uint64_t max_pixels, struct img_info *info,
			   struct err *e)
{
	WebPData wd = { p, len };
	WebPDemuxer *dmx = NULL;
	WebPIterator it;
	bool have_it = false;
	unsigned char *pix = NULL;
	uint32_t cw, ch, frames, done = 0;
	uint64_t total = 0;
	VP8StatusCode st;
	int ret;

	dmx = WebPDemux(&wd);
	if (!dmx) {
		ret = err_set(e, ERR_CORRUPT,
			      "truncated or damaged animated WebP: its frames "
			      "cannot be read; " ADVICE);
		goto out;
	}
	cw = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
	ch = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
	frames = WebPDemuxGetI(dmx, WEBP_FF_FRAME_COUNT);
	if ((uint64_t)cw * ch > max_pixels) {
		ret = limit_err(e, "WebP header", cw, ch, max_pixels);
		goto out;
	}
	if (frames > IMG_WEBP_MAX_FRAMES) {
		ret = err_set(e, ERR_LIMIT,
			      "animated WebP has %u frames, more than the %u "
			      "we check; shorten the animation or remove the "
			      "file", frames, IMG_WEBP_MAX_FRAMES);
		goto out;
	}
	if (!WebPDemuxGetFrame(dmx, 1, &it)) {
		ret = err_set(e, ERR_CORRUPT,
			      "damaged animated WebP: no frames; " ADVICE);
		goto out;
	}
	have_it = true;
	do {
		if (it.width <= 0 || it.height <= 0 ||
		    (uint64_t)it.width * (uint64_t)it.height >
		    (uint64_t)cw * ch) {
			ret = err_set(e, ERR_CORRUPT,
				      "damaged animated WebP: frame %d is "
				      "larger than the canvas; " ADVICE,
				      it.frame_num);
			goto out;
		}
		total += (uint64_t)it.width * (uint64_t)it.height;
	} while (WebPDemuxNextFrame(&it));
	if (total / IMG_WEBP_ANIM_FACTOR > max_pixels) {
		ret = err_set(e, ERR_LIMIT,
			      "animated WebP has %u frames of %llu pixels in "
			      "all, more than %u times the limit of %llu; "
			      "shorten the animation or remove the file",
			      frames, (unsigned long long)total,
			      IMG_WEBP_ANIM_FACTOR,
			      (unsigned long long)max_pixels);
		goto out;
	}
	WebPDemuxReleaseIterator(&it);
	have_it = false;

	pix = xmalloc((size_t)cw * ch * 4);
	if (!WebPDemuxGetFrame(dmx, 1, &it)) {
		ret = err_set(e, ERR_CORRUPT,
			      "damaged animated WebP: no frames; " ADVICE);
		goto out;
	}
	have_it = true;
	do {
		st = webp_decode_into(it.fragment.bytes, it.fragment.size,
				      (unsigned)it.width, (unsigned)it.height,
				      pix, true);
		if (st != VP8_STATUS_OK) {
			ret = webp_err(e, st, " animation frame");
			err_prefix(e, "frame %d of %u", it.frame_num, frames);
			goto out;
		}
		done++;
	} while (WebPDemuxNextFrame(&it));
	if (done != frames) {
		ret = err_set(e, ERR_CORRUPT,
			      "damaged animated WebP: %u of %u frames found; "
			      ADVICE, done, frames);
		goto out;
	}
	info->animated = frames > 1;
	ret = 0;
out:
	if (have_it)
		WebPDemuxReleaseIterator(&it);
	WebPDemuxDelete(dmx);
	free(pix);
	return ret;
}

static int check_webp(const unsigned char *p, size_t len, uint64_t max_pixels,
		      struct img_info *info, struct err *e)
{
	WebPBitstreamFeatures feat;
	unsigned char *pix = NULL;
	VP8StatusCode st;
	size_t riff;
	int ret;

	info->bit_depth = 8;
	/* The RIFF size says how long the file is; anything after it is
	 * ignored, anything missing means the file was cut short. */
	riff = le32(p + 4);
	if (riff > len - 8) {
		ret = err_set(e, ERR_CORRUPT,
			      "truncated WebP: %zu bytes where its header "
			      "promises %zu; " ADVICE, len, riff + 8);
		goto out;
	}
	len = riff + 8;
	ret = webp_chunks(p, len, info, e);
	if (ret)
		goto out;

	st = WebPGetFeatures(p, len, &feat);
	if (st != VP8_STATUS_OK) {
		ret = webp_err(e, st, " header");
		goto out;
	}
	if (feat.width <= 0 || feat.height <= 0) {
		ret = err_set(e, ERR_CORRUPT,
			      "damaged WebP header: no image size; " ADVICE);
		goto out;
	}
	info->width = (unsigned)feat.width;
	info->height = (unsigned)feat.height;
	info->alpha = feat.has_alpha;
	if ((uint64_t)info->width * info->height > max_pixels) {
		ret = limit_err(e, "WebP header", info->width, info->height,
				max_pixels);
		goto out;
	}
	if (feat.has_animation) {
		ret = check_webp_anim(p, len, max_pixels, info, e);
		goto out;
	}

	pix = xmalloc((size_t)info->width * info->height *
		      (info->alpha ? 4 : 3));
	st = webp_decode_into(p, len, info->width, info->height, pix,
			      info->alpha);
	if (st != VP8_STATUS_OK) {
		ret = webp_err(e, st, "");
		goto out;
	}
	ret = 0;
out:
	free(pix);
	return ret;
}

int img_check(const void *data, size_t len, uint64_t max_pixels,
	      struct img_info *info, struct err *e)
{
	struct img_info scratch;

	if (!info)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	info->orientation = 1;
	if (!data || !len)
		return err_set(e, ERR_FORMAT,
			       "empty file; replace it with a JPEG, PNG or "
			       "WebP image or remove it");
	info->format = img_sniff(data, len);
	switch (info->format) {
	case IMG_JPEG:
		return check_jpeg(data, len, max_pixels, info, e);
	case IMG_PNG:
		return check_png(data, len, max_pixels, info, e);
	case IMG_WEBP:
		return check_webp(data, len, max_pixels, info, e);
	default:
		break;
	}
	return err_set(e, ERR_FORMAT,
		       "not a JPEG, PNG or WebP image (unrecognised content); "
		       "convert it to one of those or remove the file");
}
