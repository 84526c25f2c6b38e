/* `ferry publish`: a job's artifacts (a folder) to the store under a
 * prefix, skipping what must never be published, then result.json, last,
 * listing each file's key, size, SHA-256 and URL. docs/store.md. */
#ifndef FERRY_PUBLISH_H
#define FERRY_PUBLISH_H

#include <jansson.h>
#include <stdbool.h>

#include "common/err.h"
#include "store/store.h"

#define PUBLISH_RESULT "result.json"

struct publish_opts {
	const char *dir;
	const char *prefix;             /* keys are PREFIX/REL */
	bool with_optimizer;
	/* The caller's rule for files that hold secrets (a trainer's copy of
	 * its config, env files; recipe_output_private): true, with *why, for
	 * one never to publish. NULL: none. */
	bool (*private_file)(void *arg, const char *rel, const char **why);
	void *private_arg;
	const struct progress *pg;      /* each file's transfer */
	/* Called as each file starts (res NULL) and ends. */
	void (*on_file)(void *arg, const char *rel, const struct store_put_result *res);
	void *arg;
};

/* Whether the file at `rel` (relative to the published folder) must never
 * be published, and why: what o->private_file says, partial downloads
 * (*.part), ferry's own marks (.ferry-*), and optimizer.pt unless
 * o->with_optimizer. The one place this rule is applied. */
bool publish_skipped(const struct publish_opts *o, const char *rel, const char **why);

/* Publish; *result (caller frees) is result.json as uploaded. A failed file
 * stops the run before result.json is written: a result.json in the store
 * always describes a complete publish. */
int publish_dir(struct store *s, const struct publish_opts *o, json_t **result,
		struct err *e);

#endif
