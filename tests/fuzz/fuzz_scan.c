/* libFuzzer target for the ai-toolkit log scanner: any bytes, fed whole or
 * in chunks the input chooses, must read the same, keep the scanner's
 * memory where it started, and give a consistent result that serialises. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *scan_json(const uint8_t *data, size_t size, unsigned chunk, size_t *held)
{
	struct recipe_scan *s = recipe_scan_new(size && data[0] & 1 ? "jdoe_v1" : NULL);
	const struct recipe_scan_result *r;
	size_t start = recipe_scan_held(s);
	json_t *j;
	char *text;

	for (size_t i = 0; i < size;) {
		size_t k = chunk ? chunk : size - i;

		if (k > size - i)
			k = size - i;
		recipe_scan_feed(s, data + i, k);
		/* asking in between changes nothing */
		(void)recipe_scan_result(s);
		i += k;
	}
	recipe_scan_finish(s);
	recipe_scan_idle(s, 1000, 600);
	r = recipe_scan_result(s);
	/* failed exactly when there is a reason, with the line that shows it */
	if ((r->failure != RECIPE_FAIL_NONE) != (r->phase == RECIPE_PHASE_FAILED) ||
	    (r->failure != RECIPE_FAIL_NONE && !r->failure_line[0]) ||
	    strlen(r->failure_line) > RECIPE_SCAN_LINE_MAX ||
	    r->ncheckpoints > RECIPE_SCAN_CHECKPOINTS || r->ncheckpoints > r->checkpoints_saved)
		abort();
	for (size_t i = 0; i < r->ncheckpoints; i++)
		if (!r->checkpoints[i].path)
			abort();
	j = recipe_scan_json(r);
	text = json_dumps(j, JSON_SORT_KEYS);
	if (!text)
		abort();
	json_decref(j);
	*held = recipe_scan_held(s);
	if (*held != start)
		abort();
	recipe_scan_free(s);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t held;
	char *whole = scan_json(data, size, 0, &held);
	char *chunked = scan_json(data, size, size ? 1u + data[size - 1] % 16 : 1, &held);

	if (strcmp(whole, chunked))
		abort();
	free(whole);
	free(chunked);
	return 0;
}
