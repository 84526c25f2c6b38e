/* The server side of Vast's query JSON: filters ({"field":{"op":value}}),
 * orderings and the comparison rules /bundles/ and /api/v1/instances/ apply.
 * Values are coerced to the field's type the way the real server does:
 * "1" == 1, "0.5" == 0.5, "true" == true. docs/sim.md has the rules. */
#ifndef FERRY_SIM_FILTER_H
#define FERRY_SIM_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum sim_ftype { SIM_FT_NUM, SIM_FT_STR, SIM_FT_BOOL };

/* How a field's value is found in an object. */
enum sim_fget {
	SIM_FG_PLAIN,      /* the object's key */
	SIM_FG_VERIFIED,   /* "verified", else verification == "verified" */
	SIM_FG_DATACENTER, /* "datacenter", else hosting_type >= 1 */
	SIM_FG_DRIVER,     /* driver_vers, else driver_version "535.86.05" as 535086005 */
	SIM_FG_GEO,        /* a string whose 2-letter country code also matches */
};

struct sim_field {
	const char *name; /* as a query names it; NULL ends a table */
	const char *key;  /* the key read from the object; NULL: name */
	enum sim_ftype type;
	enum sim_fget get;
};

/* What /bundles/ can filter and order offers by. */
extern const struct sim_field sim_offer_fields[];
/* What /api/v1/instances/ can filter and order by (stored columns only). */
extern const struct sim_field sim_instance_fields[];

/* The field called `name` in `fields`, or NULL. */
const struct sim_field *sim_field_find(const struct sim_field *fields, const char *name);

struct sim_filter;

/* Compile the filters of query object `q`, ignoring its keys listed in
 * `skip` (NULL-terminated; may be NULL). ERR_USAGE names the problem: a field
 * that is not in `fields` ("X is not a valid search key"), an unknown
 * operator, or a value that cannot be read as the field's type. `q` may be
 * freed once compiled. A NULL `q` filters nothing. */
int sim_filter_new(const json_t *q, const struct sim_field *fields, const char *const *skip,
		   struct sim_filter **out, struct err *e);
bool sim_filter_match(const struct sim_filter *f, const json_t *obj);
void sim_filter_free(struct sim_filter *f);

struct sim_order;

/* Offers' ordering: [[field,"asc"|"desc"],...]; NULL or an empty list gives
 * the default `dflt_field` descending (NULL: no field, id ascending only). */
int sim_order_new_pairs(const json_t *order, const struct sim_field *fields,
			const char *dflt_field, struct sim_order **out, struct err *e);
/* The v1 list's ordering: [{"col":field,"dir":"asc"|"desc"},...]; NULL or
 * an empty list orders by id ascending. */
int sim_order_new_cols(const json_t *order_by, const struct sim_field *fields,
		       struct sim_order **out, struct err *e);
void sim_order_free(struct sim_order *o);
/* Compare two objects: each field in turn (nulls last whatever the
 * direction), then id ascending. */
int sim_order_cmp(const struct sim_order *o, const json_t *a, const json_t *b);
void sim_order_sort(const struct sim_order *o, json_t **v, size_t n);
/* The sort key of `obj` as a JSON array: one value per field, then the id. */
json_t *sim_order_key(const struct sim_order *o, const json_t *obj);
/* Whether `key` has the shape sim_order_key gives for this ordering. */
bool sim_order_key_valid(const struct sim_order *o, const json_t *key);
/* Compare `obj` with a sort key (negative: obj sorts first). */
int sim_order_cmp_key(const struct sim_order *o, const json_t *obj, const json_t *key);

/* A number from a JSON number, a numeric string or a boolean. */
bool sim_json_num(const json_t *v, double *out);

#endif
