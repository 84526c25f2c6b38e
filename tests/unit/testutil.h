/* Helpers shared by the unit tests: scratch folders and small files. */
#ifndef FERRY_TESTUTIL_H
#define FERRY_TESTUTIL_H

#include <stddef.h>

/* A new empty folder under /tmp (caller frees the path). */
char *tu_mkdtemp(const char *prefix);
/* Write dir/rel (parents made), failing the test on error. */
void tu_write_file(const char *dir, const char *rel, const void *data, size_t len);
void tu_write_text(const char *dir, const char *rel, const char *text);
struct ds_check_opts;
/* Check options for small test datasets: 3..100 images of at least 64 px,
 * two threads, verdicts in `cache` (NULL: none). */
void tu_check_opts(struct ds_check_opts *o, const char *cache);
/* Wait until files written so far are older than the verdict cache's racy
 * window, so that their verdicts can be reused. */
void tu_settle(void);
/* A w x h JPEG at dir/rel whose pixels depend on seed, so seeds differ. */
void tu_write_jpeg(const char *dir, const char *rel, int w, int h, int seed);

#endif
