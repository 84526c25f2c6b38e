#include "vast/model.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

/*
 * Lenient scalar readers. Each takes any JSON value (NULL included) and
 * reports whether it could be read; callers keep their zero default when not.
 */

/* Number or numeric string -> double. */
static bool vm_num(const json_t *v, double *out)
{
	if (json_is_integer(v)) {
		*out = (double)json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		*out = json_real_value(v);
		return isfinite(*out);
	}
	if (json_is_string(v))
		return str_to_double(json_string_value(v), out);
	return false;
}

/* Number or numeric string -> integer in [lo, hi]; reals are truncated.
 * Integer strings are read exactly so large ids keep every digit. */
static bool vm_int(const json_t *v, long long lo, long long hi, long long *out)
{
	long long x;
	double d;
	char *end;
	const char *s;

	if (json_is_integer(v)) {
		x = (long long)json_integer_value(v);
	} else if (json_is_string(v)) {
		s = json_string_value(v);
		while (isspace((unsigned char)*s))
			s++;
		errno = 0;
		x = strtoll(s, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (end == s || *end || errno) {
			if (!str_to_double(s, &d) || d < -9.2e18 || d > 9.2e18)
				return false;
			x = (long long)d;
		}
	} else if (vm_num(v, &d)) {
		if (d < -9.2e18 || d > 9.2e18)
			return false;
		x = (long long)d;
	} else {
		return false;
	}
	if (x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

bool vast_json_bool(const json_t *v, bool *out)
{
	const char *s;
	double d;

	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v)) {
		s = json_string_value(v);
		if (!strcasecmp(s, "true") || !strcasecmp(s, "yes")) {
			*out = true;
			return true;
		}
		if (!strcasecmp(s, "false") || !strcasecmp(s, "no")) {
			*out = false;
			return true;
		}
	}
	if (vm_num(v, &d)) {
		*out = d != 0.0;
		return true;
	}
	return false;
}

static double get_num(const json_t *obj, const char *key)
{
	double d = 0.0;

	return vm_num(json_object_get(obj, key), &d) ? d : 0.0;
}

long long vast_json_id(const json_t *v)
{
	long long x = 0;

	return vm_int(v, 1, LLONG_MAX, &x) ? x : 0;
}

static long long get_id(const json_t *obj, const char *key)
{
	return vast_json_id(json_object_get(obj, key));
}

/* An int in [lo, hi]; anything else reads as 0. */
static int get_int(const json_t *obj, const char *key, int lo, int hi)
{
	long long x = 0;

	return vm_int(json_object_get(obj, key), lo, hi, &x) ? (int)x : 0;
}

static bool get_bool(const json_t *obj, const char *key)
{
	bool b = false;

	return vast_json_bool(json_object_get(obj, key), &b) ? b : false;
}

/* A copy of a string field (cut at an embedded NUL); NULL unless a string. */
static char *get_str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* Like get_str, trimmed; NULL when nothing is left. */
static char *get_str_trim(const json_t *obj, const char *key)
{
	char *s = get_str(obj, key);

	if (s && !*str_trim(s)) {
		free(s);
		s = NULL;
	}
	return s;
}

/* Host port of ports[key][0].HostPort, a string or a number; 0 when none. */
static int get_host_port(const json_t *ports, const char *key)
{
	const json_t *list = json_object_get(ports, key), *first;
	long long x = 0;

	if (!json_is_array(list))
		return 0;
	first = json_array_get(list, 0);
	if (!json_is_object(first))
		return 0;
	return vm_int(json_object_get(first, "HostPort"), 1, 65535, &x) ? (int)x : 0;
}

/* The "id" of an object: a positive integer (or integer string). */
static int read_id(const json_t *obj, const char *what, long long *id, struct err *e)
{
	if (!json_is_object(obj))
		return err_set(e, ERR_FORMAT, "%s: not a JSON object", what);
	if (!vm_int(json_object_get(obj, "id"), 1, LLONG_MAX, id))
		return err_set(e, ERR_FORMAT, "%s: missing or bad \"id\"", what);
	return 0;
}

int vast_offer_read(const json_t *obj, struct vast_offer *out, struct err *e)
{
	struct vast_offer o;
	const json_t *v;
	bool b;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&o, 0, sizeof(o));
	r = read_id(obj, "offer", &o.id, e);
	if (r)
		return r;
	o.machine_id = get_id(obj, "machine_id");
	o.host_id = get_id(obj, "host_id");
	o.gpu_name = get_str(obj, "gpu_name");
	o.num_gpus = get_int(obj, "num_gpus", 0, INT_MAX);
	o.gpu_ram = get_num(obj, "gpu_ram");
	o.gpu_total_ram = get_num(obj, "gpu_total_ram");
	o.gpu_frac = get_num(obj, "gpu_frac");
	o.cpu_ram = get_num(obj, "cpu_ram");
	o.cpu_cores = get_int(obj, "cpu_cores", 0, INT_MAX);
	o.cpu_cores_effective = get_num(obj, "cpu_cores_effective");
	o.disk_space = get_num(obj, "disk_space");
	o.disk_bw = get_num(obj, "disk_bw");
	o.dph_total = get_num(obj, "dph_total");
	o.dph_base = get_num(obj, "dph_base");
	o.storage_cost = get_num(obj, "storage_cost");
	o.inet_up_cost = get_num(obj, "inet_up_cost");
	o.inet_down_cost = get_num(obj, "inet_down_cost");
	o.min_bid = get_num(obj, "min_bid");
	o.inet_down = get_num(obj, "inet_down");
	o.inet_up = get_num(obj, "inet_up");
	/* The field a `reliability>=X` filter reads, so the table and the
	 * filter agree; reliability2 only when it is missing. */
	if (!vm_num(json_object_get(obj, "reliability"), &o.reliability))
		o.reliability = get_num(obj, "reliability2");
	o.dlperf = get_num(obj, "dlperf");
	o.dlperf_per_dphtotal = get_num(obj, "dlperf_per_dphtotal");
	o.total_flops = get_num(obj, "total_flops");
	o.score = get_num(obj, "score");
	o.cuda_max_good = get_num(obj, "cuda_max_good");
	o.driver_version = get_str_trim(obj, "driver_version");
	o.compute_cap = get_int(obj, "compute_cap", 0, INT_MAX);
	o.direct_port_count = get_int(obj, "direct_port_count", 0, INT_MAX);
	o.hosting_type = get_int(obj, "hosting_type", INT_MIN, INT_MAX);
	o.duration = get_num(obj, "duration");
	o.rentable = get_bool(obj, "rentable");
	o.rented = get_bool(obj, "rented");
	o.static_ip = get_bool(obj, "static_ip");
	o.external = get_bool(obj, "external");
	o.verification = get_str_trim(obj, "verification");
	v = json_object_get(obj, "verified");
	if (vast_json_bool(v, &b))
		o.verified = b;
	else
		o.verified = o.verification && !strcmp(o.verification, "verified");
	o.geolocation = get_str_trim(obj, "geolocation");
	o.public_ipaddr = get_str_trim(obj, "public_ipaddr");
	*out = o;
	return 0;
}

void vast_offer_release(struct vast_offer *o)
{
	if (!o)
		return;
	free(o->gpu_name);
	free(o->driver_version);
	free(o->verification);
	free(o->geolocation);
	free(o->public_ipaddr);
	memset(o, 0, sizeof(*o));
}

int vast_offers_read(const json_t *answer, struct vast_offer **out, size_t *n, struct err *e)
{
	const json_t *list = json_object_get(answer, "offers"), *v;
	struct vast_offer *arr = NULL;
	size_t i, nr = 0, alloc = 0;
	struct err ee;

	*out = NULL;
	*n = 0;
	if (!json_is_object(answer))
		return err_set(e, ERR_FORMAT, "offers reply: not a JSON object");
	if (!json_is_array(list))
		return err_set(e, ERR_FORMAT, "offers reply: \"offers\" is %s",
			       list ? "not an array" : "missing");
	json_array_foreach(list, i, v) {
		ALLOC_GROW(arr, nr + 1, alloc);
		err_clear(&ee);
		if (vast_offer_read(v, &arr[nr], &ee)) {
			log_warn("skipping offers[%zu]: %s", i, ee.msg);
			continue;
		}
		nr++;
	}
	if (!nr) {
		free(arr);
		arr = NULL;
	}
	*out = arr;
	*n = nr;
	return 0;
}

/* ---- reading an answer from its bytes ---- */

/* The end of the JSON string starting at p ('"'), past its closing quote;
 * NULL when it does not end before `end`. */
static const char *vm_skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
		else if ((unsigned char)*p < 0x20)
			return NULL;
	}
	return NULL;
}

static const char *vm_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The end of the JSON value starting at p, found by balancing brackets
 * outside strings (the value itself is checked later, or never when it is
 * skipped); NULL when it is cut short or obviously broken. */
static const char *vm_skip_value(const char *p, const char *end)
{
	int depth = 0;

	if (p >= end)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		while (p < end && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	while (p < end) {
		switch (*p) {
		case '"':
			p = vm_skip_string(p, end);
			if (!p)
				return NULL;
			if (!depth)
				return p;
			continue;
		case '{':
		case '[':
			if (++depth > 2048) /* jansson's own limit */
				return NULL;
			break;
		case '}':
		case ']':
			if (--depth < 0)
				return NULL;
			if (!depth)
				return p + 1;
			break;
		default:
			break;
		}
		p++;
	}
	return NULL;
}

/* Whether the JSON string [p, q) (quotes included) is "offers", escapes
 * decoded. */
static bool vm_key_is_offers(const char *p, const char *q)
{
	json_t *k;
	bool yes;

	if (!memchr(p, '\\', (size_t)(q - p)))
		return q - p == 8 && !memcmp(p, "\"offers\"", 8);
	k = json_loadb(p, (size_t)(q - p), JSON_DECODE_ANY, NULL);
	yes = json_is_string(k) && !strcmp(json_string_value(k), "offers");
	json_decref(k);
	return yes;
}

struct vm_span {
	const char *p;
	size_t len;
};

struct vm_work {
	const struct vm_span *spans;
	struct vast_offer *out;
	bool *ok;
	size_t n;
	size_t next;         /* the next element to take (atomic) */
	pthread_mutex_t lock;
	size_t bad;          /* the first malformed element, or SIZE_MAX */
	char bad_msg[200];
};

/* Take elements until none is left: parse, read, release the tree. */
static void *vm_parse_worker(void *arg)
{
	struct vm_work *w = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) < w->n) {
		json_error_t je;
		json_t *v = json_loadb(w->spans[i].p, w->spans[i].len,
				       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
		struct err ee;

		if (!v) {
			pthread_mutex_lock(&w->lock);
			if (i < w->bad) {
				w->bad = i;
				snprintf(w->bad_msg, sizeof(w->bad_msg), "%s", je.text);
			}
			pthread_mutex_unlock(&w->lock);
			continue;
		}
		err_clear(&ee);
		w->ok[i] = !vast_offer_read(v, &w->out[i], &ee);
		if (!w->ok[i])
			log_warn("skipping offers[%zu]: %s", i, ee.msg);
		json_decref(v);
	}
	return NULL;
}

/* Split the answer: the spans of the "offers" array's elements. */
static int vm_split(const char *data, size_t len, struct vm_span **spans, size_t *n,
		    struct err *e)
{
	const char *p = data, *end = data + len, *q;
	size_t alloc = 0;
	bool found = false;

	*spans = NULL;
	*n = 0;
	p = vm_skip_ws(p, end);
	if (p >= end || *p != '{')
		return err_set(e, ERR_FORMAT, "offers reply: not a JSON object");
	p = vm_skip_ws(p + 1, end);
	while (p < end && *p != '}') {
		bool offers;

		if (*p != '"' || !(q = vm_skip_string(p, end)))
			goto bad;
		offers = vm_key_is_offers(p, q);
		p = vm_skip_ws(q, end);
		if (p >= end || *p != ':')
			goto bad;
		p = vm_skip_ws(p + 1, end);
		if (offers) {
			if (found)
				return err_set(e, ERR_FORMAT, "offers reply: \"offers\" twice");
			found = true;
			if (p >= end || *p != '[')
				return err_set(e, ERR_FORMAT, "offers reply: \"offers\" is not an array");
			p = vm_skip_ws(p + 1, end);
			while (p < end && *p != ']') {
				q = vm_skip_value(p, end);
				if (!q || q == p)
					goto bad;
				ALLOC_GROW(*spans, *n + 1, alloc);
				(*spans)[*n].p = p;
				(*spans)[(*n)++].len = (size_t)(q - p);
				p = vm_skip_ws(q, end);
				if (p < end && *p == ',')
					p = vm_skip_ws(p + 1, end);
				else if (p >= end || *p != ']')
					goto bad;
			}
			if (p >= end)
				goto bad;
			p++;
		} else {
			q = vm_skip_value(p, end);
			if (!q || q == p)
				goto bad;
			p = q;
		}
		p = vm_skip_ws(p, end);
		if (p < end && *p == ',')
			p = vm_skip_ws(p + 1, end);
		else if (p >= end || *p != '}')
			goto bad;
	}
	if (p >= end || vm_skip_ws(p + 1, end) != end)
		goto bad;
	if (!found)
		return err_set(e, ERR_FORMAT, "offers reply: \"offers\" is missing");
	return 0;
bad:
	free(*spans);
	*spans = NULL;
	*n = 0;
	return err_set(e, ERR_FORMAT, "offers reply: malformed or cut short near byte %zu",
		       (size_t)(p - data));
}

int vast_offers_read_bytes(const char *data, size_t len, int threads, struct vast_offer **out,
			   size_t *n, struct err *e)
{
	struct vm_work w = { .bad = SIZE_MAX };
	struct vm_span *spans = NULL;
	pthread_t tid[8];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t ns = 0, nr = 0;
	int r, nt, started = 0;

	*out = NULL;
	*n = 0;
	/* Real answers never hold one, and jansson reads one as it pleases. */
	if (memchr(data, '\0', len))
		return err_set(e, ERR_FORMAT, "offers reply: holds a NUL byte");
	r = vm_split(data, len, &spans, &ns, e);
	if (r || !ns)
		goto out;
	nt = threads > 0 ? threads : (cores > 0 ? (int)cores : 1);
	if (nt > 8)
		nt = 8;
	if ((size_t)nt > ns / 256 + 1)
		nt = (int)(ns / 256 + 1); /* small answers are not worth a thread */
	w.spans = spans;
	w.n = ns;
	w.out = xcalloc(ns, sizeof(*w.out));
	w.ok = xcalloc(ns, sizeof(*w.ok));
	pthread_mutex_init(&w.lock, NULL);
	/* A thread that cannot start only means fewer helpers. */
	while (started < nt - 1 && !pthread_create(&tid[started], NULL, vm_parse_worker, &w))
		started++;
	vm_parse_worker(&w);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	pthread_mutex_destroy(&w.lock);
	if (w.bad != SIZE_MAX)
		r = err_set(e, ERR_FORMAT, "offers reply: offers[%zu] is not valid JSON: %s", w.bad,
			    w.bad_msg);
	for (size_t i = 0; i < ns; i++) {
		if (!w.ok[i])
			continue;
		if (r)
			vast_offer_release(&w.out[i]);
		else
			w.out[nr++] = w.out[i];
	}
	if (r || !nr) {
		free(w.out);
		w.out = NULL;
		nr = 0;
	}
	*out = w.out;
	*n = nr;
	free(w.ok);
out:
	free(spans);
	return r;
}

void vast_offers_free(struct vast_offer *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		vast_offer_release(&v[i]);
	free(v);
}

int vast_instance_read(const json_t *obj, struct vast_instance *out, struct err *e)
{
	struct vast_instance in;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&in, 0, sizeof(in));
	r = read_id(obj, "instance", &in.id, e);
	if (r)
		return r;
	in.machine_id = get_id(obj, "machine_id");
	in.host_id = get_id(obj, "host_id");
	in.label = get_str(obj, "label");
	in.actual_status = get_str_trim(obj, "actual_status");
	in.intended_status = get_str_trim(obj, "intended_status");
	in.cur_state = get_str_trim(obj, "cur_state");
	in.next_state = get_str_trim(obj, "next_state");
	in.status_msg = get_str(obj, "status_msg");
	in.image_runtype = get_str(obj, "image_runtype");
	in.gpu_name = get_str(obj, "gpu_name");
	in.num_gpus = get_int(obj, "num_gpus", 0, INT_MAX);
	in.public_ipaddr = get_str_trim(obj, "public_ipaddr");
	in.ssh_host = get_str_trim(obj, "ssh_host");
	in.ssh_port = get_int(obj, "ssh_port", 1, 65535);
	/* ports is null or absent until the container runs. */
	in.ssh_direct_port = get_host_port(json_object_get(obj, "ports"), "22/tcp");
	in.direct_port_count = get_int(obj, "direct_port_count", 0, INT_MAX);
	in.direct_port_start = get_int(obj, "direct_port_start", 0, 65535);
	in.direct_port_end = get_int(obj, "direct_port_end", 0, 65535);
	in.dph_total = get_num(obj, "dph_total");
	in.min_bid = get_num(obj, "min_bid");
	in.is_bid = get_bool(obj, "is_bid");
	in.start_date = get_num(obj, "start_date");
	in.end_date = get_num(obj, "end_date");
	in.duration = get_num(obj, "duration");
	*out = in;
	return 0;
}

int vast_instance_read_answer(const json_t *answer, struct vast_instance *out, struct err *e)
{
	const json_t *v = json_object_get(answer, "instances");

	memset(out, 0, sizeof(*out));
	if (!json_is_object(answer))
		return err_set(e, ERR_FORMAT, "instance reply: not a JSON object");
	if (!v || json_is_null(v))
		return err_set(e, ERR_NOTFOUND, "instance reply: no such instance");
	return vast_instance_read(v, out, e);
}

void vast_instance_release(struct vast_instance *in)
{
	if (!in)
		return;
	free(in->label);
	free(in->actual_status);
	free(in->intended_status);
	free(in->cur_state);
	free(in->next_state);
	free(in->status_msg);
	free(in->image_runtype);
	free(in->gpu_name);
	free(in->public_ipaddr);
	free(in->ssh_host);
	memset(in, 0, sizeof(*in));
}

int vast_instances_read_page(const json_t *answer, struct vast_instance **v, size_t *n,
			     char **next_token, struct err *e)
{
	const json_t *list = json_object_get(answer, "instances"), *it;
	size_t i, alloc = *n;
	struct err ee;

	*next_token = NULL;
	if (!json_is_object(answer))
		return err_set(e, ERR_FORMAT, "instance list: not a JSON object");
	if (!json_is_array(list))
		return err_set(e, ERR_FORMAT, "instance list: \"instances\" is %s",
			       list ? "not an array" : "missing");
	json_array_foreach(list, i, it) {
		ALLOC_GROW(*v, *n + 1, alloc);
		err_clear(&ee);
		if (vast_instance_read(it, &(*v)[*n], &ee)) {
			log_warn("skipping instances[%zu]: %s", i, ee.msg);
			continue;
		}
		(*n)++;
	}
	*next_token = get_str_trim(answer, "next_token");
	return 0;
}

void vast_instances_free(struct vast_instance *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		vast_instance_release(&v[i]);
	free(v);
}

int vast_user_read(const json_t *obj, struct vast_user *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj))
		return err_set(e, ERR_FORMAT, "user reply: not a JSON object");
	out->id = get_id(obj, "id");
	out->username = get_str_trim(obj, "username");
	out->email = get_str_trim(obj, "email");
	out->balance = get_num(obj, "balance");
	out->credit = get_num(obj, "credit");
	out->has_billing = get_bool(obj, "has_billing");
	out->can_pay = get_bool(obj, "can_pay");
	return 0;
}

void vast_user_release(struct vast_user *u)
{
	free(u->username);
	free(u->email);
	memset(u, 0, sizeof(*u));
}

int vast_ssh_keys_read(const json_t *answer, struct vast_ssh_key **out, size_t *n, struct err *e)
{
	const json_t *list = answer, *it;
	size_t i, alloc = 0;

	*out = NULL;
	*n = 0;
	if (json_is_object(answer)) {
		list = json_object_get(answer, "keys");
		if (!list)
			list = json_object_get(answer, "ssh_keys");
	}
	if (!json_is_array(list))
		return err_set(e, ERR_FORMAT, "SSH key list: not an array");
	json_array_foreach(list, i, it) {
		char *key = get_str_trim(it, "key");
		const json_t *deleted = json_object_get(it, "deleted_at");

		if (!key)
			key = get_str_trim(it, "public_key");
		if (!key || (deleted && !json_is_null(deleted))) {
			free(key);
			continue;
		}
		ALLOC_GROW(*out, *n + 1, alloc);
		(*out)[*n].id = get_id(it, "id");
		(*out)[*n].key = key;
		(*n)++;
	}
	return 0;
}

void vast_ssh_keys_free(struct vast_ssh_key *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].key);
	free(v);
}

/* Length of the first two words (type and body) of a public key line. */
static size_t key_core_len(const char *k)
{
	size_t n = strcspn(k, " \t");

	n += strspn(k + n, " \t");
	return n + strcspn(k + n, " \t\r\n");
}

bool vast_ssh_key_same(const char *a, const char *b)
{
	size_t na, nb;

	if (!a || !b)
		return false;
	a += strspn(a, " \t");
	b += strspn(b, " \t");
	na = key_core_len(a);
	nb = key_core_len(b);
	return na == nb && na && !memcmp(a, b, na);
}

int vast_instance_ssh_endpoint(const struct vast_instance *in, char **host, int *port,
			       bool *direct, struct err *e)
{
	int p;

	*host = NULL;
	*port = 0;
	*direct = false;
	if (in->public_ipaddr && *in->public_ipaddr && in->ssh_direct_port > 0) {
		*host = xstrdup(in->public_ipaddr);
		*port = in->ssh_direct_port;
		*direct = true;
		return 0;
	}
	if (in->ssh_host && *in->ssh_host && in->ssh_port > 0) {
		p = in->ssh_port;
		/* The CLI's ssh-url: jupyter images take the proxy port plus one. */
		if (in->image_runtype && strstr(in->image_runtype, "jupyter"))
			p++;
		if (p > 65535)
			return err_set(e, ERR_FORMAT, "instance %lld: bad \"ssh_port\" %d",
				       in->id, in->ssh_port);
		*host = xstrdup(in->ssh_host);
		*port = p;
		return 0;
	}
	return err_set(e, ERR_NOTFOUND, "instance %lld: no SSH endpoint yet", in->id);
}
