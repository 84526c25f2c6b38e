#include "vast/query.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

/* Most bytes of a term quoted back in an error message. */
#define VQ_SHOW_MAX 160
#define VQ_HINT "did you forget to quote your query? (gpu_name=\"RTX 4090\" or gpu_name=RTX_4090)"

/* Fields the offer search knows (vast-api.md section 2); others only warn. */
static const char *const vq_fields[] = {
	"bw_nvlink", "cluster_id", "compute_cap", "cpu_arch", "cpu_cores",
	"cpu_cores_effective", "cpu_ghz", "cpu_ram", "cuda_max_good", "datacenter",
	"direct_port_count", "disk_bw", "disk_space", "dlperf", "dlperf_per_dphtotal",
	"dph_total", "driver_version", "duration", "external", "flops_per_dphtotal",
	"geolocation", "gpu_arch", "gpu_display_active", "gpu_frac", "gpu_max_power",
	"gpu_max_temp", "gpu_mem_bw", "gpu_name", "gpu_ram", "gpu_total_ram", "has_avx",
	"host_id", "id", "inet_down", "inet_up", "inet_down_cost", "inet_up_cost",
	"machine_id", "min_bid", "mobo_name", "num_gpus", "pci_gen", "pcie_bw",
	"reliability", "rentable", "rented", "static_ip", "storage_cost", "total_flops",
	"ubuntu_version", "os_version", "verification", "verified", "vms_enabled",
	"reliability2", "score", "hosting_type", NULL
};

/* Top-level keys that options set; a filter by that name would be clobbered. */
static const char *const vq_reserved[] = {
	"order", "type", "limit", "allocated_storage", NULL
};

static const struct {
	const char *from, *to;
} vq_aliases[] = {
	{ "cuda_vers", "cuda_max_good" },
	{ "dph", "dph_total" },
	{ "dlperf_usd", "dlperf_per_dphtotal" },
	{ "flops_usd", "flops_per_dphtotal" },
	{ "display_active", "gpu_display_active" },
};

/* Fields typed in friendly units and sent as reals in the server's units. */
static const struct {
	const char *field, *unit;
	double mult;
} vq_units[] = {
	{ "gpu_ram", "GB", 1000.0 },
	{ "gpu_total_ram", "GB", 1000.0 },
	{ "cpu_ram", "GB", 1000.0 },
	{ "duration", "days", 86400.0 },
};

/* Operator spellings; "not eq" and "not in" are two words, handled apart. */
static const struct {
	const char *spell, *op;
} vq_ops[] = {
	{ "=", "eq" }, { "==", "eq" }, { "!=", "neq" }, { ">", "gt" }, { ">=", "gte" },
	{ "<", "lt" }, { "<=", "lte" }, { "eq", "eq" }, { "neq", "neq" }, { "noteq", "neq" },
	{ "gt", "gt" }, { "gte", "gte" }, { "lt", "lt" }, { "lte", "lte" }, { "in", "in" },
	{ "notin", "notin" }, { "nin", "notin" },
};

enum vq_kind { VQ_BARE, VQ_QUOTED, VQ_LIST };

struct vq_term {
	const char *start;      /* first byte of the term */
	const char *field;      /* field name as typed */
	size_t flen;
	const char *op;         /* the JSON operator name */
	enum vq_kind kind;
	const char *val;        /* value, without quotes or brackets */
	size_t vlen;
	const char *end;        /* one past the last byte of the term */
};

static bool vq_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool vq_fieldc(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static bool vq_symc(char c)
{
	return c == '=' || c == '<' || c == '>' || c == '!';
}

static bool vq_in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

static const char *vq_alias(const char *field)
{
	for (size_t i = 0; i < sizeof(vq_aliases) / sizeof(vq_aliases[0]); i++)
		if (!strcmp(vq_aliases[i].from, field))
			return vq_aliases[i].to;
	return field;
}

static const char *vq_op_lookup(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(vq_ops) / sizeof(vq_ops[0]); i++)
		if (strlen(vq_ops[i].spell) == n && !memcmp(vq_ops[i].spell, s, n))
			return vq_ops[i].op;
	return NULL;
}

/* ERR_USAGE quoting the bytes [start, end) as the bad term. */
static int __attribute__((format(printf, 4, 5)))
vq_fail(struct err *e, const char *start, const char *end, const char *fmt, ...)
{
	struct buf show = BUF_INIT, why = BUF_INIT;
	size_t n = (size_t)(end - start);
	char *term;
	va_list ap;
	int r;

	while (end > start && vq_space(end[-1]))
		end--;
	n = (size_t)(end - start);
	term = xstrndup(start, n > VQ_SHOW_MAX ? VQ_SHOW_MAX : n);
	str_escape(term, &show);
	if (n > VQ_SHOW_MAX)
		buf_puts(&show, "...");
	va_start(ap, fmt);
	buf_vprintf(&why, fmt, ap);
	va_end(ap);
	r = err_set(e, ERR_USAGE, "offer query term '%s': %s", show.data, why.data);
	free(term);
	buf_release(&show);
	buf_release(&why);
	return r;
}

/* Split one `field op value` term off *pp. */
static int vq_scan(const char **pp, struct vq_term *t, struct err *e)
{
	const char *p = *pp, *q, *o;

	memset(t, 0, sizeof(*t));
	t->start = p;
	while (vq_fieldc(*p))
		p++;
	if (p == t->start) {
		for (q = p; *q && !vq_space(*q); q++)
			;
		return vq_fail(e, t->start, q, "unexpected text where a field name should be; "
			       VQ_HINT);
	}
	t->field = t->start;
	t->flen = (size_t)(p - t->start);
	for (q = p; vq_space(*q); q++)
		;
	if (vq_symc(*q)) {
		for (o = q; vq_symc(*q); q++)
			;
		t->op = vq_op_lookup(o, (size_t)(q - o));
		if (!t->op)
			return vq_fail(e, t->start, q, "unknown operator '%.*s'; " VQ_HINT,
				       (int)(q - o), o);
	} else if (q > p && *q) {
		/* a word operator, which needs spaces around it */
		for (o = q; *q && !vq_space(*q); q++)
			;
		if (q - o == 3 && !memcmp(o, "not", 3)) {
			const char *w = q, *we;

			while (vq_space(*w))
				w++;
			for (we = w; *we && !vq_space(*we); we++)
				;
			if (we - w == 2 && !memcmp(w, "eq", 2))
				t->op = "neq";
			else if (we - w == 2 && !memcmp(w, "in", 2))
				t->op = "notin";
			q = we;
		} else {
			t->op = vq_op_lookup(o, (size_t)(q - o));
		}
		if (!t->op)
			return vq_fail(e, t->start, q, "unknown operator '%.*s'; " VQ_HINT,
				       (int)(q - o), o);
	} else {
		for (q = p; *q && !vq_space(*q); q++)
			;
		return vq_fail(e, t->start, q, "no operator after the field name; " VQ_HINT);
	}
	while (vq_space(*q))
		q++;
	if (!*q)
		return vq_fail(e, t->start, q, "blank value; " VQ_HINT);
	if (*q == '[' || *q == '"' || *q == '\'') {
		const char *close = strchr(q + 1, *q == '[' ? ']' : *q);

		if (!close)
			return vq_fail(e, t->start, q + strlen(q), "%s; " VQ_HINT,
				       *q == '[' ? "list without a closing ]" :
				       "quoted value without its closing quote");
		t->kind = *q == '[' ? VQ_LIST : VQ_QUOTED;
		t->val = q + 1;
		t->vlen = (size_t)(close - q - 1);
		q = close + 1;
	} else {
		t->kind = VQ_BARE;
		t->val = q;
		while (*q && !vq_space(*q))
			q++;
		t->vlen = (size_t)(q - t->val);
	}
	if (*q && !vq_space(*q)) {
		while (*q && !vq_space(*q))
			q++;
		return vq_fail(e, t->start, q, "text right after the value; " VQ_HINT);
	}
	t->end = q;
	*pp = q;
	return 0;
}

static void vq_unscore(char *s)
{
	for (; *s; s++)
		if (*s == '_')
			*s = ' ';
}

/* A plain decimal number: digits, sign, point and exponent only. */
static int vq_number(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789.eE+-") != strlen(s))
		return -1;
	v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* "535.86.05" -> 535086005 (major * 1000000 + minor * 1000 + patch). */
int vast_query_version(const char *s, long long *out)
{
	long long part[3] = { 0, 0, 0 };
	int n = 0;

	for (;;) {
		long long v = 0;
		size_t d = 0;

		if (n == 3)
			return -1;
		for (; s[d] >= '0' && s[d] <= '9'; d++) {
			if (d >= 6)
				return -1;
			v = v * 10 + (s[d] - '0');
		}
		if (!d)
			return -1;
		part[n++] = v;
		s += d;
		if (!*s)
			break;
		if (*s != '.')
			return -1;
		s++;
	}
	if (n < 2 || part[1] > 999 || part[2] > 999)
		return -1;
	*out = part[0] * 1000000 + part[1] * 1000 + part[2];
	return 0;
}

/* One value, already unquoted and with _ turned into spaces, as JSON. */
static int vq_value(const struct vq_term *t, const char *field, const char *s, bool literals,
		    json_t **out, struct err *e)
{
	long long ver;
	double num;

	for (size_t i = 0; i < sizeof(vq_units) / sizeof(vq_units[0]); i++) {
		if (strcmp(vq_units[i].field, field))
			continue;
		if (vq_number(s, &num) || !isfinite(num * vq_units[i].mult))
			return vq_fail(e, t->start, t->end, "%s takes a number of %s, not '%s'",
				       field, vq_units[i].unit, s);
		*out = json_real(num * vq_units[i].mult);
		return 0;
	}
	if (!strcmp(field, "driver_version") && strchr(s, '.')) {
		if (vast_query_version(s, &ver))
			return vq_fail(e, t->start, t->end,
				       "driver_version takes a version like 535.86.05, not '%s'", s);
		*out = json_integer(ver);
		return 0;
	}
	if (literals && (!strcmp(s, "true") || !strcmp(s, "True"))) {
		*out = json_true();
	} else if (literals && (!strcmp(s, "false") || !strcmp(s, "False"))) {
		*out = json_false();
	} else if (literals && (!strcmp(s, "None") || !strcmp(s, "null"))) {
		*out = json_null();
	} else {
		if (!str_utf8_valid(s, strlen(s)))
			return vq_fail(e, t->start, t->end, "the value is not UTF-8");
		*out = json_string(s);
	}
	return 0;
}

/* Strip one pair of matching quotes around s, in place. */
static char *vq_unquote(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

/* The comma-separated values of in/notin as a JSON array. */
static int vq_list(const struct vq_term *t, const char *field, char *raw, json_t **out,
		   struct err *e)
{
	json_t *arr = json_array(), *v = NULL;
	char *p = raw, *item, *comma;
	int r = 0;

	while (p) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		item = vq_unquote(str_trim(p));
		p = comma ? comma + 1 : NULL;
		if (!*item)
			continue;
		vq_unscore(item);
		r = vq_value(t, field, item, false, &v, e);
		if (r)
			goto out;
		json_array_append_new(arr, v);
	}
	if (!json_array_size(arr)) {
		r = vq_fail(e, t->start, t->end, "blank value; " VQ_HINT);
		goto out;
	}
	*out = arr;
	arr = NULL;
out:
	json_decref(arr);
	return r;
}

static bool vq_wildcard(const char *s)
{
	return !strcmp(s, "any") || !strcmp(s, "?") || !strcmp(s, "*");
}

/* Put one scanned term into q. */
static int vq_apply(const struct vq_term *t, json_t *q, struct err *e)
{
	char *typed = xstrndup(t->field, t->flen), *raw = xstrndup(t->val, t->vlen);
	const char *field = vq_alias(typed);
	bool multi = !strcmp(t->op, "in") || !strcmp(t->op, "notin");
	json_t *val = NULL, *obj;
	int r = 0;

	if (vq_in_list(vq_reserved, field)) {
		r = vq_fail(e, t->start, t->end, "'%s' is set by an option, not by a filter", field);
		goto out;
	}
	if (!multi && t->kind == VQ_LIST) {
		r = vq_fail(e, t->start, t->end, "a [list] goes with in or notin");
		goto out;
	}
	if (!vq_in_list(vq_fields, field))
		log_warn("offer query: unrecognized field '%s' (sent anyway; see docs/offer-queries.md for the known fields)",
			 field);
	if (!multi && t->kind == VQ_BARE && vq_wildcard(raw)) {
		if (strcmp(t->op, "eq")) {
			r = vq_fail(e, t->start, t->end, "any, ? and * only go with =");
			goto out;
		}
		json_object_del(q, field);
		goto out;
	}
	if (multi) {
		r = vq_list(t, field, raw, &val, e);
	} else {
		if (!*raw) {
			r = vq_fail(e, t->start, t->end, "blank value; " VQ_HINT);
			goto out;
		}
		vq_unscore(raw);
		r = vq_value(t, field, raw, true, &val, e);
	}
	if (r)
		goto out;
	obj = json_object_get(q, field);
	if (!json_is_object(obj)) {
		obj = json_object();
		json_object_set_new(q, field, obj);
	}
	json_object_set_new(obj, t->op, val);
	val = NULL;
out:
	json_decref(val);
	free(typed);
	free(raw);
	return r;
}

int vast_query_parse(const char *text, json_t *q, struct err *e)
{
	const char *p = text ? text : "";
	struct vq_term t;
	json_t *work;
	int r = 0;

	if (!json_is_object(q))
		return err_set(e, ERR_FAIL, "offer query: no object to add filters to");
	work = json_deep_copy(q);
	for (;;) {
		while (vq_space(*p))
			p++;
		if (!*p)
			break;
		r = vq_scan(&p, &t, e);
		if (r)
			goto out;
		r = vq_apply(&t, work, e);
		if (r)
			goto out;
	}
	json_object_clear(q);
	json_object_update(q, work);
out:
	json_decref(work);
	return r;
}

/* "num_gpus,total_flops-" -> [["num_gpus","asc"],["total_flops","desc"]]. */
static int vq_order(const char *spec, json_t **out, struct err *e)
{
	char *copy = xstrdup(spec), *p = copy, *name, *comma;
	json_t *arr = json_array();
	int r = 0;

	while (p) {
		const char *dir = "asc";
		size_t n;

		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		name = str_trim(p);
		p = comma ? comma + 1 : NULL;
		n = strlen(name);
		if (!n)
			continue;
		if (name[n - 1] == '-' || name[n - 1] == '+') {
			dir = name[n - 1] == '-' ? "desc" : "asc";
			name[--n] = '\0';
		}
		for (size_t i = 0; i < n; i++) {
			if (!vq_fieldc(name[i])) {
				name[0] = '\0';
				break;
			}
		}
		if (!*name) {
			struct buf show = BUF_INIT;

			str_escape(spec, &show);
			r = err_set(e, ERR_USAGE,
				    "offer order '%s': each entry is a field name, then - for descending",
				    show.data);
			buf_release(&show);
			goto out;
		}
		json_array_append_new(arr, json_pack("[ss]", vq_alias(name), dir));
	}
	*out = arr;
	arr = NULL;
out:
	json_decref(arr);
	free(copy);
	return r;
}

int vast_query_build(const char *const *terms, size_t nterms, const struct vast_query_opts *o,
		     json_t **out, struct err *e)
{
	static const struct vast_query_opts dflt;
	struct buf text = BUF_INIT;
	json_t *q = NULL, *order = NULL;
	const char *type;
	double storage;
	int r = 0;

	*out = NULL;
	if (!o)
		o = &dflt;
	type = o->type ? o->type : "on-demand";
	if (!strcmp(type, "interruptible")) {
		type = "bid";
	} else if (strcmp(type, "on-demand") && strcmp(type, "bid") && strcmp(type, "reserved")) {
		struct buf show = BUF_INIT;

		str_escape(type, &show);
		r = err_set(e, ERR_USAGE,
			    "offer type '%s': use on-demand, interruptible (bid) or reserved",
			    show.data);
		buf_release(&show);
		goto out;
	}
	storage = o->storage_gb == 0 ? 5.0 : o->storage_gb;
	if (!isfinite(storage) || storage < 0) {
		r = err_set(e, ERR_USAGE, "offer storage %g GB: give a positive size", storage);
		goto out;
	}
	if (o->limit < 0) {
		r = err_set(e, ERR_USAGE, "offer limit %d: give a positive count, or 0 for none",
			    o->limit);
		goto out;
	}
	r = vq_order(o->order ? o->order : "score-", &order, e);
	if (r)
		goto out;

	q = json_object();
	if (!o->no_defaults) {
		json_object_set_new(q, "verified", json_pack("{s:b}", "eq", 1));
		json_object_set_new(q, "external", json_pack("{s:b}", "eq", 0));
		json_object_set_new(q, "rentable", json_pack("{s:b}", "eq", 1));
	}
	for (size_t i = 0; i < nterms; i++) {
		if (i)
			buf_putc(&text, ' ');
		buf_puts(&text, terms[i] ? terms[i] : "");
	}
	r = vast_query_parse(text.data, q, e);
	if (r)
		goto out;
	json_object_set_new(q, "order", order);
	order = NULL;
	json_object_set_new(q, "type", json_string(type));
	json_object_set_new(q, "allocated_storage", json_real(storage));
	if (o->limit > 0)
		json_object_set_new(q, "limit", json_integer(o->limit));
	*out = q;
	q = NULL;
out:
	json_decref(q);
	json_decref(order);
	buf_release(&text);
	return r;
}
