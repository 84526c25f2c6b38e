/* The vastai CLI offer query language ("gpu_ram>=24 num_gpus=2 ...") turned
 * into the exact JSON body `vastai search offers` posts to /api/v0/bundles/.
 * The language is described in docs/offer-queries.md. */
#ifndef FERRY_VAST_QUERY_H
#define FERRY_VAST_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct vast_query_opts {
	bool no_defaults;  /* like -n: no verified/external/rentable filters */
	const char *order; /* "a,b-" (trailing - desc, + or nothing asc); NULL: "score-" */
	const char *type;  /* on-demand | bid | reserved | interruptible (sent as bid); NULL: on-demand */
	int limit;         /* 0: no limit sent */
	double storage_gb; /* allocated_storage; 0: 5.0 */
};

/* Join `terms` (command-line words) with spaces, parse them over the default
 * filters and add order, type, allocated_storage and limit. `o` may be NULL
 * for all defaults. On success *out is a new object the caller owns; on
 * failure it is NULL and `e` names the bad term (ERR_USAGE). */
int vast_query_build(const char *const *terms, size_t nterms, const struct vast_query_opts *o,
		     json_t **out, struct err *e);

/* Parse `text` (NULL: empty) and add or override filters in the object `q`:
 * several operators on one field combine, `field=any` (or ? or *) removes the
 * field. On failure `q` is left as it was. */
int vast_query_parse(const char *text, json_t *q, struct err *e);

/* A dotted driver version ("535.86.05") as the integer the query language
 * sends (535086005); -1 when it is not two or three dot-separated numbers. */
int vast_query_version(const char *s, long long *out);

#endif
