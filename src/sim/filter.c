#include "sim/filter.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "vast/model.h"
#include "vast/query.h"

#define N SIM_FT_NUM
#define S SIM_FT_STR
#define B SIM_FT_BOOL

/* vast-api.md section 2's searchable fields, the three the server also
 * takes, and a few stored columns clients order by (dph_base). */
const struct sim_field sim_offer_fields[] = {
	{ "bw_nvlink", NULL, N, SIM_FG_PLAIN },
	{ "cluster_id", NULL, N, SIM_FG_PLAIN },
	{ "compute_cap", NULL, N, SIM_FG_PLAIN },
	{ "cpu_arch", NULL, S, SIM_FG_PLAIN },
	{ "cpu_cores", NULL, N, SIM_FG_PLAIN },
	{ "cpu_cores_effective", NULL, N, SIM_FG_PLAIN },
	{ "cpu_ghz", NULL, N, SIM_FG_PLAIN },
	{ "cpu_name", NULL, S, SIM_FG_PLAIN },
	{ "cpu_ram", NULL, N, SIM_FG_PLAIN },
	{ "cuda_max_good", NULL, N, SIM_FG_PLAIN },
	{ "datacenter", NULL, B, SIM_FG_DATACENTER },
	{ "direct_port_count", NULL, N, SIM_FG_PLAIN },
	{ "disk_bw", NULL, N, SIM_FG_PLAIN },
	{ "disk_name", NULL, S, SIM_FG_PLAIN },
	{ "disk_space", NULL, N, SIM_FG_PLAIN },
	{ "dlperf", NULL, N, SIM_FG_PLAIN },
	{ "dlperf_per_dphtotal", NULL, N, SIM_FG_PLAIN },
	{ "dph_base", NULL, N, SIM_FG_PLAIN },
	{ "dph_total", NULL, N, SIM_FG_PLAIN },
	{ "driver_vers", NULL, N, SIM_FG_DRIVER },
	{ "driver_version", NULL, N, SIM_FG_DRIVER },
	{ "duration", NULL, N, SIM_FG_PLAIN },
	{ "end_date", NULL, N, SIM_FG_PLAIN },
	{ "expected_reliability", NULL, N, SIM_FG_PLAIN },
	{ "external", NULL, B, SIM_FG_PLAIN },
	{ "flops_per_dphtotal", NULL, N, SIM_FG_PLAIN },
	{ "geolocation", NULL, S, SIM_FG_GEO },
	{ "gpu_arch", NULL, S, SIM_FG_PLAIN },
	{ "gpu_display_active", NULL, B, SIM_FG_PLAIN },
	{ "gpu_frac", NULL, N, SIM_FG_PLAIN },
	{ "gpu_lanes", NULL, N, SIM_FG_PLAIN },
	{ "gpu_max_power", NULL, N, SIM_FG_PLAIN },
	{ "gpu_max_temp", NULL, N, SIM_FG_PLAIN },
	{ "gpu_mem_bw", NULL, N, SIM_FG_PLAIN },
	{ "gpu_name", NULL, S, SIM_FG_PLAIN },
	{ "gpu_ram", NULL, N, SIM_FG_PLAIN },
	{ "gpu_total_ram", NULL, N, SIM_FG_PLAIN },
	{ "has_avx", NULL, B, SIM_FG_PLAIN },
	{ "is_bid", NULL, B, SIM_FG_PLAIN },
	{ "host_id", NULL, N, SIM_FG_PLAIN },
	{ "hosting_type", NULL, N, SIM_FG_PLAIN },
	{ "id", NULL, N, SIM_FG_PLAIN },
	{ "inet_down", NULL, N, SIM_FG_PLAIN },
	{ "inet_down_cost", NULL, N, SIM_FG_PLAIN },
	{ "inet_up", NULL, N, SIM_FG_PLAIN },
	{ "inet_up_cost", NULL, N, SIM_FG_PLAIN },
	{ "machine_id", NULL, N, SIM_FG_PLAIN },
	{ "min_bid", NULL, N, SIM_FG_PLAIN },
	{ "mobo_name", NULL, S, SIM_FG_PLAIN },
	{ "num_gpus", NULL, N, SIM_FG_PLAIN },
	{ "os_version", NULL, N, SIM_FG_PLAIN },
	{ "pci_gen", NULL, N, SIM_FG_PLAIN },
	{ "pcie_bw", NULL, N, SIM_FG_PLAIN },
	{ "reliability", NULL, N, SIM_FG_PLAIN },
	{ "reliability2", NULL, N, SIM_FG_PLAIN },
	{ "rentable", NULL, B, SIM_FG_PLAIN },
	{ "rented", NULL, B, SIM_FG_PLAIN },
	{ "score", NULL, N, SIM_FG_PLAIN },
	{ "start_date", NULL, N, SIM_FG_PLAIN },
	{ "static_ip", NULL, B, SIM_FG_PLAIN },
	{ "storage_cost", NULL, N, SIM_FG_PLAIN },
	{ "storage_total_cost", NULL, N, SIM_FG_PLAIN },
	{ "total_flops", NULL, N, SIM_FG_PLAIN },
	{ "ubuntu_version", "os_version", N, SIM_FG_PLAIN },
	{ "verification", NULL, S, SIM_FG_PLAIN },
	{ "verified", NULL, B, SIM_FG_VERIFIED },
	{ "vms_enabled", NULL, B, SIM_FG_PLAIN },
	{ NULL, NULL, N, SIM_FG_PLAIN },
};

/* Columns an instance row stores; computed ones (dph_total, ...) are not
 * searchable in the v1 list, as on Vast. */
const struct sim_field sim_instance_fields[] = {
	{ "actual_status", NULL, S, SIM_FG_PLAIN },
	{ "cur_state", NULL, S, SIM_FG_PLAIN },
	{ "geolocation", NULL, S, SIM_FG_GEO },
	{ "gpu_name", NULL, S, SIM_FG_PLAIN },
	{ "host_id", NULL, N, SIM_FG_PLAIN },
	{ "id", NULL, N, SIM_FG_PLAIN },
	{ "image_runtype", NULL, S, SIM_FG_PLAIN },
	{ "image_uuid", NULL, S, SIM_FG_PLAIN },
	{ "intended_status", NULL, S, SIM_FG_PLAIN },
	{ "is_bid", NULL, B, SIM_FG_PLAIN },
	{ "label", NULL, S, SIM_FG_PLAIN },
	{ "machine_id", NULL, N, SIM_FG_PLAIN },
	{ "next_state", NULL, S, SIM_FG_PLAIN },
	{ "num_gpus", NULL, N, SIM_FG_PLAIN },
	{ "start_date", NULL, N, SIM_FG_PLAIN },
	{ "template_hash_id", NULL, S, SIM_FG_PLAIN },
	{ "verification", NULL, S, SIM_FG_PLAIN },
	{ NULL, NULL, N, SIM_FG_PLAIN },
};

#undef N
#undef S
#undef B

enum sim_op { OP_EQ, OP_NEQ, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NOTIN };

static const char *const sim_op_names[] = { "eq", "neq", "gt", "gte", "lt", "lte", "in", "notin" };

/* One typed scalar. Strings are borrowed from the object read, or owned by
 * the condition that holds them. */
struct sim_val {
	enum { SV_NULL, SV_NUM, SV_STR, SV_BOOL } kind;
	double num;
	const char *str;
	bool b;
};

struct sim_cond {
	const struct sim_field *f;
	enum sim_op op;
	struct sim_val *vals;
	size_t nvals;
};

struct sim_filter {
	struct sim_cond *c;
	size_t n, alloc;
	struct strv strings; /* what the conditions' string values point into */
};

const struct sim_field *sim_field_find(const struct sim_field *fields, const char *name)
{
	for (const struct sim_field *f = fields; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

bool sim_json_num(const json_t *v, double *out)
{
	if (json_is_integer(v)) {
		*out = (double)json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		*out = json_real_value(v);
		return isfinite(*out);
	}
	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? 1.0 : 0.0;
		return true;
	}
	if (json_is_string(v))
		return str_to_double(json_string_value(v), out);
	return false;
}

/* A stored value as the field's type; anything unreadable is null. */
static void sim_val_of(enum sim_ftype type, const json_t *v, struct sim_val *out)
{
	memset(out, 0, sizeof(*out));
	switch (type) {
	case SIM_FT_NUM:
		if (sim_json_num(v, &out->num))
			out->kind = SV_NUM;
		break;
	case SIM_FT_STR:
		if (json_is_string(v)) {
			out->kind = SV_STR;
			out->str = json_string_value(v);
		}
		break;
	case SIM_FT_BOOL:
		if (vast_json_bool(v, &out->b))
			out->kind = SV_BOOL;
		break;
	}
}

static void sim_field_read(const struct sim_field *f, const json_t *obj, struct sim_val *out)
{
	const json_t *v;
	long long ver;
	double d;

	switch (f->get) {
	case SIM_FG_VERIFIED:
		v = json_object_get(obj, "verified");
		if (!v || json_is_null(v)) {
			memset(out, 0, sizeof(*out));
			out->kind = SV_BOOL;
			out->b = !strcmp(json_str(obj, "verification", ""), "verified");
			return;
		}
		break;
	case SIM_FG_DATACENTER:
		v = json_object_get(obj, "datacenter");
		if (!v || json_is_null(v)) {
			memset(out, 0, sizeof(*out));
			out->kind = SV_BOOL;
			out->b = sim_json_num(json_object_get(obj, "hosting_type"), &d) && d >= 1;
			return;
		}
		break;
	case SIM_FG_DRIVER:
		v = json_object_get(obj, "driver_vers");
		if (!sim_json_num(v, &d)) {
			memset(out, 0, sizeof(*out));
			v = json_object_get(obj, "driver_version");
			if (json_is_string(v) &&
			    !vast_query_version(json_string_value(v), &ver)) {
				out->num = (double)ver;
				out->kind = SV_NUM;
			}
			return;
		}
		break;
	default:
		v = json_object_get(obj, f->key ? f->key : f->name);
		break;
	}
	sim_val_of(f->type, v, out);
}

/* Two non-null values of one type. */
static int sim_val_cmp(const struct sim_val *a, const struct sim_val *b)
{
	switch (a->kind) {
	case SV_NUM: return a->num < b->num ? -1 : a->num > b->num;
	case SV_STR: return strcmp(a->str, b->str);
	case SV_BOOL: return (int)a->b - (int)b->b;
	default: return 0;
	}
}

/* Equality, where a two-letter query value also matches the country code
 * that ends a geolocation ("Oregon, US" matches "US"), and a boolean
 * column's null equals false as well as null (so the clients' default
 * `external eq false` keeps offers whose external is null). */
static bool sim_val_eq(const struct sim_field *f, const struct sim_val *have,
		       const struct sim_val *want)
{
	const char *comma;

	if (have->kind == SV_NULL && want->kind == SV_BOOL)
		return f->type == SIM_FT_BOOL && !want->b;
	if (have->kind == SV_NULL || want->kind == SV_NULL)
		return have->kind == want->kind;
	if (!sim_val_cmp(have, want))
		return true;
	if (f->get == SIM_FG_GEO && strlen(want->str) == 2) {
		comma = strrchr(have->str, ',');
		comma = comma ? comma + 1 : have->str;
		while (*comma == ' ')
			comma++;
		return !strcasecmp(comma, want->str);
	}
	return false;
}

static bool sim_cond_match(const struct sim_cond *c, const json_t *obj)
{
	struct sim_val have;
	bool hit = false;
	int r;

	sim_field_read(c->f, obj, &have);
	switch (c->op) {
	case OP_EQ: return sim_val_eq(c->f, &have, &c->vals[0]);
	case OP_NEQ:
		/* SQL: a null is unequal to nothing, except a boolean's. */
		if (have.kind == SV_NULL && c->f->type != SIM_FT_BOOL)
			return false;
		return !sim_val_eq(c->f, &have, &c->vals[0]);
	case OP_IN:
	case OP_NOTIN:
		for (size_t i = 0; i < c->nvals && !hit; i++)
			hit = sim_val_eq(c->f, &have, &c->vals[i]);
		if (c->op == OP_IN)
			return hit;
		return (have.kind != SV_NULL || c->f->type == SIM_FT_BOOL) && !hit;
	default:
		if (have.kind == SV_NULL)
			return false;
		r = sim_val_cmp(&have, &c->vals[0]);
		switch (c->op) {
		case OP_GT: return r > 0;
		case OP_GTE: return r >= 0;
		case OP_LT: return r < 0;
		default: return r <= 0;
		}
	}
}

bool sim_filter_match(const struct sim_filter *f, const json_t *obj)
{
	if (!f)
		return true;
	for (size_t i = 0; i < f->n; i++)
		if (!sim_cond_match(&f->c[i], obj))
			return false;
	return true;
}

void sim_filter_free(struct sim_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->c[i].vals);
	free(f->c);
	strv_release(&f->strings);
	free(f);
}

/* A query value as the field's type; `op` only names the operator in errors. */
static int sim_qval(struct sim_filter *flt, const struct sim_field *f, const char *op,
		    const json_t *v, struct sim_val *out, struct err *e)
{
	long long ver;
	char *text;

	memset(out, 0, sizeof(*out));
	if (json_is_null(v))
		return 0;
	switch (f->type) {
	case SIM_FT_NUM:
		if (f->get == SIM_FG_DRIVER && json_is_string(v) &&
		    !vast_query_version(json_string_value(v), &ver)) {
			out->num = (double)ver;
			out->kind = SV_NUM;
			return 0;
		}
		if (!sim_json_num(v, &out->num))
			break;
		out->kind = SV_NUM;
		return 0;
	case SIM_FT_BOOL:
		if (!vast_json_bool(v, &out->b))
			break;
		out->kind = SV_BOOL;
		return 0;
	case SIM_FT_STR:
		if (json_is_string(v))
			text = xstrdup(json_string_value(v));
		else if (json_is_integer(v))
			text = xasprintf("%lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			text = xasprintf("%g", json_real_value(v));
		else if (json_is_boolean(v))
			text = xstrdup(json_is_true(v) ? "true" : "false");
		else
			break;
		strv_push_nodup(&flt->strings, text);
		out->kind = SV_STR;
		out->str = text;
		return 0;
	}
	text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	err_set(e, ERR_USAGE, "%s %s: %.200s is not %s", f->name, op, text ? text : "?",
		f->type == SIM_FT_NUM ? "a number" : f->type == SIM_FT_BOOL ? "a boolean" : "a string");
	free(text);
	return ERR_USAGE;
}

static int sim_filter_add(struct sim_filter *flt, const struct sim_field *f, const char *opname,
			  const json_t *v, struct err *e)
{
	struct sim_cond c = { .f = f };
	size_t i, n;
	int op = -1, r;

	for (i = 0; i < sizeof(sim_op_names) / sizeof(sim_op_names[0]); i++)
		if (!strcmp(sim_op_names[i], opname))
			op = (int)i;
	if (op < 0)
		return err_set(e, ERR_USAGE,
			       "%s: unknown operator '%.60s' (use eq, neq, gt, gte, lt, lte, in, notin)",
			       f->name, opname);
	c.op = (enum sim_op)op;
	if (c.op == OP_IN || c.op == OP_NOTIN) {
		/* A lone value is a list of one. */
		n = json_is_array(v) ? json_array_size(v) : 1;
		c.vals = xcalloc(n ? n : 1, sizeof(*c.vals));
		c.nvals = n;
		for (i = 0; i < n; i++) {
			r = sim_qval(flt, f, opname, json_is_array(v) ? json_array_get(v, i) : v,
				     &c.vals[i], e);
			if (r) {
				free(c.vals);
				return r;
			}
		}
	} else {
		if (json_is_array(v) || json_is_object(v)) {
			err_set(e, ERR_USAGE, "%s %s: a list goes with in or notin only", f->name, opname);
			return ERR_USAGE;
		}
		c.vals = xcalloc(1, sizeof(*c.vals));
		c.nvals = 1;
		r = sim_qval(flt, f, opname, v, &c.vals[0], e);
		if (!r && c.vals[0].kind == SV_NULL && c.op != OP_EQ && c.op != OP_NEQ)
			r = err_set(e, ERR_USAGE, "%s %s: null goes with eq or neq only", f->name, opname);
		if (r) {
			free(c.vals);
			return r;
		}
	}
	ALLOC_GROW(flt->c, flt->n + 1, flt->alloc);
	flt->c[flt->n++] = c;
	return 0;
}

static bool sim_skipped(const char *const *skip, const char *key)
{
	for (; skip && *skip; skip++)
		if (!strcmp(*skip, key))
			return true;
	return false;
}

int sim_filter_new(const json_t *q, const struct sim_field *fields, const char *const *skip,
		   struct sim_filter **out, struct err *e)
{
	struct sim_filter *flt = xcalloc(1, sizeof(*flt));
	const struct sim_field *f;
	const char *key, *opname;
	json_t *ops, *v;
	int r = 0;

	*out = NULL;
	if (q && !json_is_object(q)) {
		r = err_set(e, ERR_USAGE, "the query must be a JSON object");
		goto out;
	}
	json_object_foreach((json_t *)q, key, ops) {
		if (sim_skipped(skip, key))
			continue;
		f = sim_field_find(fields, key);
		if (!f) {
			r = err_set(e, ERR_USAGE, "%.100s is not a valid search key", key);
			goto out;
		}
		/* A bare value is an eq, a bare list an in: the vastai CLI
		 * sends `"rentable": true` as well as {"eq": true}. */
		if (!json_is_object(ops)) {
			r = sim_filter_add(flt, f, json_is_array(ops) ? "in" : "eq", ops, e);
			if (r)
				goto out;
			continue;
		}
		json_object_foreach(ops, opname, v) {
			r = sim_filter_add(flt, f, opname, v, e);
			if (r)
				goto out;
		}
	}
	*out = flt;
	flt = NULL;
out:
	sim_filter_free(flt);
	return r;
}

/* --- ordering ------------------------------------------------------------- */

struct sim_order_col {
	const struct sim_field *f;
	bool desc;
};

struct sim_order {
	struct sim_order_col *c;
	size_t n, alloc;
};

static const struct sim_field sim_id_field = { "id", NULL, SIM_FT_NUM, SIM_FG_PLAIN };

void sim_order_free(struct sim_order *o)
{
	if (!o)
		return;
	free(o->c);
	free(o);
}

static int sim_order_add(struct sim_order *o, const struct sim_field *fields, const json_t *col,
			 const json_t *dir, struct err *e)
{
	const struct sim_field *f;
	const char *d = "asc";

	if (!json_is_string(col))
		return err_set(e, ERR_USAGE, "an order entry names a field as a string");
	f = sim_field_find(fields, json_string_value(col));
	if (!f)
		return err_set(e, ERR_USAGE, "%.100s is not a valid search key",
			       json_string_value(col));
	if (dir && !json_is_null(dir)) {
		if (!json_is_string(dir))
			return err_set(e, ERR_USAGE, "order direction for %s must be \"asc\" or \"desc\"",
				       f->name);
		d = json_string_value(dir);
	}
	if (strcasecmp(d, "asc") && strcasecmp(d, "desc"))
		return err_set(e, ERR_USAGE, "order direction for %s must be \"asc\" or \"desc\", not '%.20s'",
			       f->name, d);
	ALLOC_GROW(o->c, o->n + 1, o->alloc);
	o->c[o->n].f = f;
	o->c[o->n].desc = !strcasecmp(d, "desc");
	o->n++;
	return 0;
}

int sim_order_new_pairs(const json_t *order, const struct sim_field *fields,
			const char *dflt_field, struct sim_order **out, struct err *e)
{
	struct sim_order *o = xcalloc(1, sizeof(*o));
	const json_t *pair;
	size_t i;
	int r = 0;

	*out = NULL;
	if (order && !json_is_null(order) && !json_is_array(order)) {
		r = err_set(e, ERR_USAGE, "order must be a list of [field, \"asc\"|\"desc\"] pairs");
		goto out;
	}
	json_array_foreach(order, i, pair) {
		if (json_is_string(pair)) {
			r = sim_order_add(o, fields, pair, NULL, e);
		} else if (json_is_array(pair) && json_array_size(pair) >= 1 &&
			   json_array_size(pair) <= 2) {
			r = sim_order_add(o, fields, json_array_get(pair, 0), json_array_get(pair, 1), e);
		} else {
			r = err_set(e, ERR_USAGE, "order must be a list of [field, \"asc\"|\"desc\"] pairs");
		}
		if (r)
			goto out;
	}
	if (!o->n && dflt_field) {
		json_t *name = json_string(dflt_field), *dir = json_string("desc");

		r = sim_order_add(o, fields, name, dir, e);
		json_decref(name);
		json_decref(dir);
		if (r)
			goto out;
	}
	*out = o;
	o = NULL;
out:
	sim_order_free(o);
	return r;
}

int sim_order_new_cols(const json_t *order_by, const struct sim_field *fields,
		       struct sim_order **out, struct err *e)
{
	struct sim_order *o = xcalloc(1, sizeof(*o));
	const json_t *ent;
	size_t i;
	int r = 0;

	*out = NULL;
	if (order_by && !json_is_null(order_by) && !json_is_array(order_by)) {
		r = err_set(e, ERR_USAGE, "order_by must be a list of {\"col\":..,\"dir\":..} objects");
		goto out;
	}
	json_array_foreach(order_by, i, ent) {
		if (!json_is_object(ent)) {
			r = err_set(e, ERR_USAGE,
				    "order_by must be a list of {\"col\":..,\"dir\":..} objects");
			goto out;
		}
		r = sim_order_add(o, fields, json_object_get(ent, "col"), json_object_get(ent, "dir"), e);
		if (r)
			goto out;
	}
	*out = o;
	o = NULL;
out:
	sim_order_free(o);
	return r;
}

/* Nulls last whatever the direction. */
static int sim_col_cmp(const struct sim_val *a, const struct sim_val *b, bool desc)
{
	int r;

	if (a->kind == SV_NULL || b->kind == SV_NULL)
		return (a->kind == SV_NULL) - (b->kind == SV_NULL);
	r = sim_val_cmp(a, b);
	return desc ? -r : r;
}

int sim_order_cmp(const struct sim_order *o, const json_t *a, const json_t *b)
{
	struct sim_val va, vb;
	int r;

	for (size_t i = 0; i < o->n; i++) {
		sim_field_read(o->c[i].f, a, &va);
		sim_field_read(o->c[i].f, b, &vb);
		r = sim_col_cmp(&va, &vb, o->c[i].desc);
		if (r)
			return r;
	}
	sim_field_read(&sim_id_field, a, &va);
	sim_field_read(&sim_id_field, b, &vb);
	return sim_col_cmp(&va, &vb, false);
}

static int sim_order_qcmp(const void *pa, const void *pb, void *arg)
{
	return sim_order_cmp(arg, *(json_t *const *)pa, *(json_t *const *)pb);
}

void sim_order_sort(const struct sim_order *o, json_t **v, size_t n)
{
	if (n > 1)
		qsort_r(v, n, sizeof(*v), sim_order_qcmp, (void *)o);
}

static json_t *sim_val_json(const struct sim_val *v)
{
	switch (v->kind) {
	case SV_NUM: return json_real(v->num);
	case SV_STR: return json_string(v->str);
	case SV_BOOL: return json_boolean(v->b);
	default: return json_null();
	}
}

json_t *sim_order_key(const struct sim_order *o, const json_t *obj)
{
	json_t *key = json_array();
	struct sim_val v;

	for (size_t i = 0; i < o->n; i++) {
		sim_field_read(o->c[i].f, obj, &v);
		json_array_append_new(key, sim_val_json(&v));
	}
	sim_field_read(&sim_id_field, obj, &v);
	json_array_append_new(key, sim_val_json(&v));
	return key;
}

bool sim_order_key_valid(const struct sim_order *o, const json_t *key)
{
	const json_t *v;

	if (!json_is_array(key) || json_array_size(key) != o->n + 1)
		return false;
	for (size_t i = 0; i <= o->n; i++) {
		v = json_array_get(key, i);
		if (json_is_null(v))
			continue;
		switch (i < o->n ? o->c[i].f->type : SIM_FT_NUM) {
		case SIM_FT_NUM:
			if (!json_is_number(v))
				return false;
			break;
		case SIM_FT_STR:
			if (!json_is_string(v))
				return false;
			break;
		case SIM_FT_BOOL:
			if (!json_is_boolean(v))
				return false;
			break;
		}
	}
	return true;
}

int sim_order_cmp_key(const struct sim_order *o, const json_t *obj, const json_t *key)
{
	struct sim_val va, vb;
	int r;

	for (size_t i = 0; i < o->n; i++) {
		sim_field_read(o->c[i].f, obj, &va);
		sim_val_of(o->c[i].f->type, json_array_get(key, i), &vb);
		r = sim_col_cmp(&va, &vb, o->c[i].desc);
		if (r)
			return r;
	}
	sim_field_read(&sim_id_field, obj, &va);
	sim_val_of(SIM_FT_NUM, json_array_get(key, o->n), &vb);
	return sim_col_cmp(&va, &vb, false);
}
