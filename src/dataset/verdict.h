/* The verdict cache: what `check` learned about each file, keyed by its
 * absolute path, size, mtime and inode, in SQLite under cache_dir. `pack`
 * reads it so that it never decodes an image a check already decoded. */
#ifndef FERRY_DATASET_VERDICT_H
#define FERRY_DATASET_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "dataset/dataset.h"

struct verdict_cache;

int verdict_open(struct verdict_cache **out, const char *cache_dir, struct err *e);
void verdict_close(struct verdict_cache *vc);
/* Fill the facts of `f` (found under `root_real`) when a verdict matches its
 * size, mtime, ctime and inode; returns true on a hit. A verdict is a miss
 * when the file changed within moments of being checked (a later write in
 * the same clock tick would be invisible), and when it depends on an image
 * size limit other than `max_pixels`. */
bool verdict_lookup(struct verdict_cache *vc, const char *root_real, struct ds_file *f,
		    uint64_t max_pixels);
/* Drop the verdict of `f`, as when its bytes were found to differ. */
void verdict_forget(struct verdict_cache *vc, const char *root_real, const struct ds_file *f);
/* Record the facts of every examined file of `ds`, in one transaction. */
int verdict_store(struct verdict_cache *vc, const char *root_real, const struct ds_dataset *ds,
		  struct err *e);

#endif
