/* libFuzzer target for the simulator's query evaluator: any bytes, read as a
 * /bundles/ query, must be refused with a usage message (and no filter), or
 * compile into a filter and an ordering that evaluate and sort a market
 * without crashing; the same bytes as a v1 page token must decode or be
 * refused cleanly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "sim/filter.h"
#include "sim/market.h"
#include "sim/world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const controls[] = { "order", "limit", "type", "allocated_storage", NULL };

static json_t *market;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_filter *f = NULL;
	struct sim_order *o = NULL;
	json_t *q, *v[40], *key = NULL;
	struct err e;
	char *text;
	size_t n = 0, i;
	int r;

	log_set_level(LOG_ERROR);
	if (!market)
		market = sim_market_generate(1, 40);
	q = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (q) {
		err_clear(&e);
		r = sim_filter_new(q, sim_offer_fields, controls, &f, &e);
		if (r && (r != ERR_USAGE || !e.msg[0] || f))
			abort();
		err_clear(&e);
		r = sim_order_new_pairs(json_object_get(q, "order"), sim_offer_fields, "score", &o, &e);
		if (r && (r != ERR_USAGE || !e.msg[0] || o))
			abort();
		if (f && o) {
			for (i = 0; i < json_array_size(market); i++)
				if (sim_filter_match(f, json_array_get(market, i)))
					v[n++] = json_array_get(market, i);
			sim_order_sort(o, v, n);
			for (i = 1; i < n; i++)
				if (sim_order_cmp(o, v[i - 1], v[i]) > 0)
					abort();
			if (n) {
				key = sim_order_key(o, v[n - 1]);
				if (!sim_order_key_valid(o, key) || sim_order_cmp_key(o, v[n - 1], key))
					abort();
				json_decref(key);
			}
		}
		sim_filter_free(f);
		sim_order_free(o);
		json_decref(q);
	}
	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (!sim_token_decode(text, &key, &e)) {
		if (!json_is_array(key))
			abort();
		json_decref(key);
	} else if (key) {
		abort();
	}
	free(text);
	return 0;
}
