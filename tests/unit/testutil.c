#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"

char *tu_mkdtemp(const char *prefix)
{
	char *tmpl = xasprintf("/tmp/ferry-%s-XXXXXX", prefix);

	assert_non_null(mkdtemp(tmpl));
	return tmpl;
}

void tu_write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path = fsx_join(dir, rel);

	assert_int_equal(fsx_mkdir_parent(path, 0755, NULL), 0);
	assert_int_equal(fsx_write_atomic(path, data, len, 0644, NULL), 0);
	free(path);
}

void tu_write_text(const char *dir, const char *rel, const char *text)
{
	tu_write_file(dir, rel, text, strlen(text));
}

void tu_check_opts(struct ds_check_opts *o, const char *cache)
{
	memset(o, 0, sizeof(*o));
	o->min_images = 3;
	o->max_images = 100;
	o->resolution = 64;
	o->max_side = 2048;
	o->max_pixels = 100000000;
	o->threads = 2;
	o->cache_dir = cache;
}

void tu_settle(void)
{
	usleep(120 * 1000);
}

void tu_write_jpeg(const char *dir, const char *rel, int w, int h, int seed)
{
	tjhandle tj = tjInitCompress();
	unsigned char *px = xmalloc((size_t)w * h * 3), *jpg = NULL;
	unsigned long len = 0;

	for (int i = 0; i < w * h * 3; i++)
		px[i] = (unsigned char)((i * 7 + seed * 31) ^ (i >> 5));
	assert_int_equal(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &len, TJSAMP_420, 90, 0), 0);
	tu_write_file(dir, rel, jpg, len);
	tjFree(jpg);
	tjDestroy(tj);
	free(px);
}
