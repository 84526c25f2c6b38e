/* jansson helpers: stable output and typed lookups with defaults. */
#ifndef FERRY_JSON_UTIL_H
#define FERRY_JSON_UTIL_H

#include <jansson.h>
#include <stdio.h>

#include "buf.h"
#include "err.h"

/* Serialise with sorted keys (stable bytes) and, if pretty, 2-space indent.
 * Appends to `out` and adds a trailing newline. */
void json_to_buf(const json_t *v, int pretty, struct buf *out);
/* Print to a stream the same way. */
void json_print(FILE *f, const json_t *v, int pretty);
/* Parse bytes, rejecting duplicate keys; names `what` in the error. */
int json_parse(const char *data, size_t len, const char *what, json_t **out, struct err *e);
const char *json_str(const json_t *obj, const char *key, const char *dflt);
long long json_int(const json_t *obj, const char *key, long long dflt);
/* Text from outside (a log line, a file name) as a JSON string: bytes that
 * are not UTF-8, and control characters, written as \xNN (str_escape). */
json_t *json_string_escaped(const char *s);

#endif
