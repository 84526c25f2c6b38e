/* libFuzzer target for the offer query parser: arbitrary text must be
 * refused with a usage message that leaves the object alone, or yield filters
 * that are objects of known operators and serialise. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "vast/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool known_op(const char *op)
{
	static const char *const ops[] = { "eq", "neq", "gt", "gte", "lt", "lte", "in", "notin" };

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i], op))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1), *dump;
	json_t *q = json_object(), *filter, *v;
	const char *field, *op;
	struct err e;
	int r;

	log_set_level(LOG_ERROR);
	if (size)
		memcpy(text, data, size);
	text[size] = '\0';
	err_clear(&e);
	r = vast_query_parse(text, q, &e);
	if (r) {
		if (r != ERR_USAGE || e.code != r || !e.msg[0] || json_object_size(q))
			abort();
	} else {
		json_object_foreach(q, field, filter) {
			if (!json_is_object(filter) || !json_object_size(filter))
				abort();
			json_object_foreach(filter, op, v)
				if (!known_op(op) || (!strcmp(op, "in") && !json_is_array(v)))
					abort();
		}
		dump = json_dumps(q, JSON_SORT_KEYS);
		if (!dump)
			abort();
		free(dump);
	}
	json_decref(q);
	free(text);
	return 0;
}
