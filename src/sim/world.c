#include "sim/world.h"

#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "sim/filter.h"
#include "sim/market.h"
#include "sim/rng.h"

#define SIM_V1_MAX 25           /* the v1 list's page size limit */
#define SIM_BUNDLES_LIMIT 64    /* offers answered when the query sets no limit */
#define SIM_BUCKETS_MAX 4096    /* rate-limit buckets kept */
#define SIM_USER_ID 1

struct sim_key {
	long long id;
	char *key;      /* as given, trimmed */
	char *canon;    /* "TYPE BASE64": what makes two keys the same */
	double created;
	bool deleted;
};

struct sim_inst {
	long long id, offer_id, machine_key;
	json_t *offer;
	char *label;
	char *create_label; /* the label it was created with ("" for none) */
	char *image, *runtype, *onstart, *template_hash;
	json_t *args;
	json_t *env;
	char api_key[65], jupyter[65];
	double disk_gb, dph_base, storage_cost, min_bid, price;
	bool is_bid;
	double created, boot_at, destroyed;
	bool restarting, stopped, stuck, underbid;
	long long destroy_fails;
	double usd_closed, rate, rate_since;
	struct sim_key *keys;
	size_t nkeys, akeys;
	long long direct_start;
};

struct sim_bucket {
	char *key;
	double tokens, last;
};

struct sim_world {
	pthread_mutex_t lock;
	json_t *market;
	bool reprice;
	char *ssh_host;
	int ssh_port;
	double boot;
	struct sim_faults faults;
	double rate, credit;
	struct sim_rng fault_rng, id_rng;
	long long next_inst, next_key;
	struct sim_inst **inst;
	size_t ninst, ainst;
	long long *taken;       /* machines someone else rented (offer_taken) */
	size_t ntaken, ataken;
	struct sim_key *keys;   /* the account's keys */
	size_t nkeys, akeys;
	struct sim_bucket *buckets;
	size_t nbuckets, abuckets;
};

/* --- answers ----------------------------------------------------------------- */

void sim_answer_release(struct sim_answer *a)
{
	json_decref(a->json);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

static void sim_answer_json(struct sim_answer *a, unsigned status, json_t *body)
{
	a->status = status;
	a->json = body;
}

static void sim_answer_text(struct sim_answer *a, unsigned status, const char *ctype, char *text)
{
	a->status = status;
	a->text = text;
	a->ctype = ctype;
}

static __attribute__((format(printf, 4, 0))) void
sim_answer_verror(struct sim_answer *a, unsigned status, const char *code, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);

	sim_answer_json(a, status, json_pack("{s:b,s:s,s:s}", "success", 0, "error", code, "msg", msg));
	free(msg);
}

void sim_answer_error(struct sim_answer *a, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_answer_verror(a, status, code, fmt, ap);
	va_end(ap);
}

/* A create error: the usual body plus ask_id. */
static __attribute__((format(printf, 5, 6))) void
sim_ask_error(struct sim_answer *a, unsigned status, const char *code, long long ask_id,
	      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_answer_verror(a, status, code, fmt, ap);
	va_end(ap);
	json_object_set_new(a->json, "ask_id", json_integer(ask_id));
}

/* --- the world ---------------------------------------------------------------- */

struct sim_world *sim_world_new(const struct sim_world_opts *o)
{
	struct sim_world *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->lock, NULL);
	w->market = json_incref(o->market);
	w->reprice = o->reprice;
	w->ssh_host = xstrdup(o->ssh_host ? o->ssh_host : "127.0.0.1");
	w->ssh_port = o->ssh_port > 0 ? o->ssh_port : 22;
	w->boot = o->boot_seconds > 0 ? o->boot_seconds : 0;
	w->faults = o->faults;
	w->rate = o->rate;
	w->credit = o->credit;
	sim_rng_seed(&w->fault_rng, o->seed, 2);
	sim_rng_seed(&w->id_rng, o->seed, 3);
	w->next_inst = 30000000 + sim_rng_int(&w->id_rng, 1, 99999);
	w->next_key = 41000 + sim_rng_int(&w->id_rng, 1, 999);
	return w;
}

static void sim_keys_free(struct sim_key *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(k[i].key);
		free(k[i].canon);
	}
	free(k);
}

static void sim_inst_free(struct sim_inst *in)
{
	json_decref(in->offer);
	free(in->label);
	free(in->create_label);
	free(in->image);
	free(in->runtype);
	free(in->onstart);
	free(in->template_hash);
	json_decref(in->args);
	json_decref(in->env);
	sim_keys_free(in->keys, in->nkeys);
	explicit_bzero(in->api_key, sizeof(in->api_key));
	free(in);
}

void sim_world_free(struct sim_world *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->ninst; i++)
		sim_inst_free(w->inst[i]);
	free(w->inst);
	free(w->taken);
	sim_keys_free(w->keys, w->nkeys);
	for (size_t i = 0; i < w->nbuckets; i++)
		free(w->buckets[i].key);
	free(w->buckets);
	json_decref(w->market);
	free(w->ssh_host);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

const struct sim_faults *sim_world_faults(const struct sim_world *w)
{
	return &w->faults;
}

/* --- admission: rate limit and request faults ------------------------------- */

/* A token bucket per (caller, endpoint): `rate` a second, bursts of `rate`. */
static bool sim_rate_ok(struct sim_world *w, const char *ident, const char *endpoint, double now)
{
	char *key = xasprintf("%s\n%s", ident, endpoint);
	struct sim_bucket *b = NULL;
	double cap = fmax(1.0, w->rate);
	size_t i, oldest = 0;
	bool ok;

	for (i = 0; i < w->nbuckets; i++) {
		if (!strcmp(w->buckets[i].key, key)) {
			b = &w->buckets[i];
			break;
		}
		if (w->buckets[i].last < w->buckets[oldest].last)
			oldest = i;
	}
	if (!b) {
		if (w->nbuckets >= SIM_BUCKETS_MAX) {
			b = &w->buckets[oldest];
			free(b->key);
		} else {
			ALLOC_GROW(w->buckets, w->nbuckets + 1, w->abuckets);
			b = &w->buckets[w->nbuckets++];
		}
		b->key = key;
		key = NULL;
		b->tokens = cap;
		b->last = now;
	}
	free(key);
	b->tokens = fmin(cap, b->tokens + (now - b->last) * w->rate);
	b->last = now;
	ok = b->tokens >= 1.0;
	if (ok)
		b->tokens -= 1.0;
	return ok;
}

static void sim_server_error(struct sim_world *w, struct sim_answer *a)
{
	switch (sim_rng_int(&w->fault_rng, 0, 2)) {
	case 0:
		sim_answer_text(a, 502, "text/html",
				xstrdup("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
					"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
					"</body>\r\n</html>\r\n"));
		break;
	case 1:
		sim_answer_text(a, 503, "text/plain",
				xstrdup("upstream connect error or disconnect/reset before headers. "
					"reset reason: connection termination"));
		break;
	default:
		sim_answer_text(a, 504, "text/html",
				xstrdup("<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
					"<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n"
					"</body>\r\n</html>\r\n"));
		break;
	}
}

bool sim_world_admit(struct sim_world *w, const char *ident, const char *endpoint, double now,
		     struct sim_answer *a)
{
	bool ok = true;

	pthread_mutex_lock(&w->lock);
	if (w->rate > 0 && !sim_rate_ok(w, ident, endpoint, now)) {
		sim_answer_text(a, 429, "text/plain",
				xasprintf("API requests too frequent: endpoint threshold=%g", w->rate));
		ok = false;
	} else if (sim_rng_chance(&w->fault_rng, w->faults.rate_limit)) {
		sim_answer_text(a, 429, "text/plain",
				xasprintf("API requests too frequent: endpoint threshold=%g",
					  w->rate > 0 ? w->rate : 1.0));
		ok = false;
	} else if (sim_rng_chance(&w->fault_rng, w->faults.server_error)) {
		sim_server_error(w, a);
		ok = false;
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

/* --- offers -------------------------------------------------------------------- */

static bool sim_offer_id(const json_t *offer, long long *id)
{
	double d;

	if (!sim_json_num(json_object_get(offer, "id"), &d) || d != floor(d) || fabs(d) > 9e15)
		return false;
	*id = (long long)d;
	return true;
}

/* The machine an offer is on; an offer without machine_id is its own. */
static long long sim_machine_key(const json_t *offer)
{
	long long id = 0;
	double d;

	if (sim_json_num(json_object_get(offer, "machine_id"), &d) && fabs(d) < 9e15)
		return (long long)d;
	sim_offer_id(offer, &id);
	return -id - 1;
}

static bool sim_machine_taken(const struct sim_world *w, long long machine)
{
	for (size_t i = 0; i < w->ntaken; i++)
		if (w->taken[i] == machine)
			return true;
	for (size_t i = 0; i < w->ninst; i++)
		if (!w->inst[i]->destroyed && w->inst[i]->machine_key == machine)
			return true;
	return false;
}

static json_t *sim_offer_find(const struct sim_world *w, long long id)
{
	json_t *offer;
	long long oid;
	size_t i;

	json_array_foreach(w->market, i, offer)
		if (sim_offer_id(offer, &oid) && oid == id)
			return offer;
	return NULL;
}

/* Add one to counts[key]. */
static void sim_count(json_t *counts, const char *key)
{
	json_object_set_new(counts, key, json_integer(json_integer_value(json_object_get(counts, key)) + 1));
}

/* A number member of an object, or `dflt`. */
static double sim_num(const json_t *obj, const char *key, double dflt)
{
	double d;

	return sim_json_num(json_object_get(obj, key), &d) ? d : dflt;
}

/* Keys that steer a search rather than filter it. The official vastai CLI
 * sends disable_bundling, target_reliability and extra_ids too; Vast
 * takes them (bundling and the reliability target shape its own ranking,
 * extra_ids asks for offers by id), so the sim accepts them unfiltered. */
static const char *const sim_bundle_controls[] = { "order", "limit", "type", "allocated_storage",
						   "disable_bundling", "target_reliability",
						   "extra_ids", NULL };

void sim_world_bundles(struct sim_world *w, const json_t *query, double now, struct sim_answer *a)
{
	struct sim_filter *flt = NULL;
	struct sim_order *ord = NULL;
	struct err e = { 0 };
	const json_t *v;
	json_t **hits = NULL, *offer, *copy, *list;
	size_t nhits = 0, ahits = 0, i;
	double storage = 5.0, limit = SIM_BUNDLES_LIMIT;
	bool bid = false;
	const char *type;

	if (query && !json_is_object(query)) {
		sim_answer_error(a, 400, "invalid_args", "the query must be a JSON object");
		return;
	}
	v = json_object_get(query, "type");
	if (v && !json_is_null(v)) {
		type = json_is_string(v) ? json_string_value(v) : "";
		if (!strcmp(type, "bid") || !strcmp(type, "interruptible")) {
			bid = true;
		} else if (strcmp(type, "on-demand") && strcmp(type, "ondemand") &&
			   strcmp(type, "reserved")) {
			sim_answer_error(a, 400, "invalid_args",
					 "type must be on-demand, ondemand, bid or reserved");
			return;
		}
	}
	v = json_object_get(query, "allocated_storage");
	if (v && !json_is_null(v) && (!sim_json_num(v, &storage) || storage < 0 || storage > 1e6)) {
		sim_answer_error(a, 400, "invalid_args", "allocated_storage must be a number of GB");
		return;
	}
	v = json_object_get(query, "limit");
	if (v && !json_is_null(v) && (!sim_json_num(v, &limit) || limit < 1 || limit != floor(limit))) {
		sim_answer_error(a, 400, "invalid_args", "limit must be a whole number, 1 or more");
		return;
	}
	if (sim_filter_new(query, sim_offer_fields, sim_bundle_controls, &flt, &e) ||
	    sim_order_new_pairs(json_object_get(query, "order"), sim_offer_fields, "score", &ord, &e)) {
		sim_answer_error(a, 400, "invalid_args", "error 400/3467: Invalid args: %s", e.msg);
		goto out;
	}

	pthread_mutex_lock(&w->lock);
	json_array_foreach(w->market, i, offer) {
		if (sim_machine_taken(w, sim_machine_key(offer)))
			continue;
		if (w->reprice) {
			copy = json_copy(offer);
			sim_market_price(copy, storage, bid);
		} else {
			copy = json_incref(offer);
		}
		if (!sim_filter_match(flt, copy)) {
			json_decref(copy);
			continue;
		}
		ALLOC_GROW(hits, nhits + 1, ahits);
		hits[nhits++] = copy;
	}
	pthread_mutex_unlock(&w->lock);

	sim_order_sort(ord, hits, nhits);
	list = json_array();
	for (i = 0; i < nhits; i++) {
		if (i < (size_t)limit)
			json_array_append(list, hits[i]);
		json_decref(hits[i]);
	}
	sim_answer_json(a, 200, json_pack("{s:o}", "offers", list));
	(void)now;
out:
	free(hits);
	sim_filter_free(flt);
	sim_order_free(ord);
}

/* --- instances ------------------------------------------------------------------- */

static struct sim_inst *sim_inst_find(struct sim_world *w, long long id)
{
	for (size_t i = 0; i < w->ninst; i++)
		if (w->inst[i]->id == id && !w->inst[i]->destroyed)
			return w->inst[i];
	return NULL;
}

static double sim_inst_dph(const struct sim_inst *in)
{
	return (in->is_bid ? in->price : in->dph_base) + in->storage_cost * in->disk_gb / 720.0;
}

static double sim_inst_storage_dph(const struct sim_inst *in)
{
	return in->storage_cost * in->disk_gb / 720.0;
}

/* Close the billing period so far and bill `rate` $/hr from now on. */
static void sim_inst_rebill(struct sim_inst *in, double now, double rate)
{
	if (now > in->rate_since)
		in->usd_closed += in->rate * (now - in->rate_since) / 3600.0;
	in->rate_since = now;
	in->rate = rate;
}

static double sim_inst_usd(const struct sim_inst *in, double now)
{
	double end = in->destroyed ? in->destroyed : now;

	return in->usd_closed + (end > in->rate_since ? in->rate * (end - in->rate_since) / 3600.0 : 0);
}

/* What the instance is doing at `now`. */
struct sim_state {
	const char *actual; /* NULL while provisioning */
	const char *intended, *cur;
	const char *msg, *msg_after; /* status_msg; with the image between when msg_after is set */
	double running_since; /* when actual is running */
};

static void sim_inst_state(const struct sim_world *w, const struct sim_inst *in, double now,
			   struct sim_state *st)
{
	double since = now - in->boot_at, up, ex = w->faults.instance_exit_after,
	       off = w->faults.instance_offline_after;

	memset(st, 0, sizeof(*st));
	st->intended = "running";
	st->cur = "running";
	if (in->stopped) {
		st->actual = st->intended = st->cur = "stopped";
		st->msg = in->underbid ? "bid price below the current minimum; stopped" : "stopped";
		return;
	}
	if (in->restarting && (in->underbid || since < w->boot)) {
		st->actual = "scheduling";
		st->cur = "stopped";
		st->msg = "waiting for the GPU to be free";
		return;
	}
	if (!in->restarting && since < fmin(1.0, w->boot * 0.2))
		return;
	if (in->stuck || since < w->boot) {
		st->actual = "loading";
		st->msg = "Pulling image ";
		st->msg_after = "";
		return;
	}
	st->running_since = in->boot_at + w->boot;
	up = now - st->running_since;
	if (ex >= 0 && up >= ex && (off < 0 || ex <= off)) {
		st->actual = "exited";
		st->msg = "Error: container ";
		st->msg_after = " exited with status 1";
	} else if (off >= 0 && up >= off) {
		st->actual = "offline";
		st->msg = "host went offline";
	} else {
		st->actual = "running";
		st->msg = "success, running ";
		st->msg_after = "/ssh";
	}
}

/* The container port of an env key "-p A:B" or "-p B" (with /udp or
 * /tcp): "B/tcp" (caller frees), or NULL. */
static char *sim_env_port(const char *key)
{
	const char *p, *colon;
	unsigned long port;
	char *end;

	if (strncmp(key, "-p ", 3))
		return NULL;
	p = key + 3;
	while (*p == ' ')
		p++;
	colon = strrchr(p, ':');
	if (colon)
		p = colon + 1;
	if (!isdigit((unsigned char)*p))
		return NULL;
	port = strtoul(p, &end, 10);
	if (!port || port > 65535)
		return NULL;
	if (!*end)
		return xasprintf("%lu/tcp", port);
	if (!strcmp(end, "/tcp") || !strcmp(end, "/udp"))
		return xasprintf("%lu%s", port, end);
	return NULL;
}

static json_t *sim_host_port(long long port)
{
	json_t *s = json_string("");
	char text[24];

	snprintf(text, sizeof(text), "%lld", port);
	json_string_set(s, text);
	return json_pack("[{s:s,s:o}]", "HostIp", "0.0.0.0", "HostPort", s);
}

/* ports while running: 22/tcp (the SSH endpoint's port) for direct SSH,
 * 8080/tcp for direct jupyter, and each "-p" of env for direct or args;
 * none on a machine without direct ports. */
static json_t *sim_inst_ports(const struct sim_world *w, const struct sim_inst *in)
{
	json_t *ports = json_object();
	bool direct = strstr(in->runtype, "_direc") != NULL;
	long long next = in->direct_start + 2;
	const char *key;
	json_t *v;
	char *port;

	if (sim_num(in->offer, "direct_port_count", 0) < 1)
		return ports;

	if (str_contains_word_ci(in->runtype, "ssh_direc") || str_contains_word_ci(in->runtype, "ssh_direct"))
		json_object_set_new(ports, "22/tcp", sim_host_port(w->ssh_port));
	if (str_contains_word_ci(in->runtype, "jupyter_direc") ||
	    str_contains_word_ci(in->runtype, "jupyter_direct"))
		json_object_set_new(ports, "8080/tcp", sim_host_port(in->direct_start + 1));
	if (!direct && !str_contains_word_ci(in->runtype, "args"))
		return ports;
	json_object_foreach(in->env, key, v) {
		port = sim_env_port(key);
		if (!port)
			continue;
		if (!json_object_get(ports, port))
			json_object_set_new(ports, port,
					    sim_host_port(!strcmp(port, "22/tcp") ? w->ssh_port : next++));
		free(port);
	}
	return ports;
}

static void sim_put_offer(json_t *dst, const char *key, const json_t *offer, const char *okey)
{
	json_t *v = json_object_get(offer, okey ? okey : key);

	json_object_set_new(dst, key, v ? json_incref(v) : json_null());
}

static json_t *sim_inst_json(const struct sim_world *w, const struct sim_inst *in, double now)
{
	const json_t *of = in->offer;
	json_t *o = json_object(), *env = json_array();
	struct sim_state st;
	struct sim_rng noise;
	bool running, jupyter = strstr(in->runtype, "jupyter") != NULL;
	double gpu_price = in->is_bid ? in->price : in->dph_base, disk = sim_inst_storage_dph(in);
	const char *key;
	json_t *v;

	sim_inst_state(w, in, now, &st);
	running = st.actual && !strcmp(st.actual, "running");
	sim_rng_seed(&noise, (uint64_t)in->id, (uint64_t)(now / 5));
	json_object_foreach(in->env, key, v)
		json_array_append_new(env, json_pack("[sO]", key, v));

	json_object_set_new(o, "id", json_integer(in->id));
	sim_put_offer(o, "machine_id", of, NULL);
	sim_put_offer(o, "host_id", of, NULL);
	sim_put_offer(o, "bundle_id", of, NULL);
	json_object_set_new(o, "label", in->label ? json_string(in->label) : json_null());
	json_object_set_new(o, "template_id", json_null());
	json_object_set_new(o, "template_hash_id",
			    in->template_hash ? json_string(in->template_hash) : json_null());
	json_object_set_new(o, "template_name", json_null());
	json_object_set_new(o, "actual_status", st.actual ? json_string(st.actual) : json_null());
	json_object_set_new(o, "intended_status", json_string(st.intended));
	json_object_set_new(o, "cur_state", json_string(st.cur));
	json_object_set_new(o, "next_state", json_string(st.intended));
	if (st.msg) {
		char *msg = xasprintf("%s%s%s", st.msg, st.msg_after ? in->image : "",
				      st.msg_after ? st.msg_after : "");

		json_object_set_new(o, "status_msg", json_string(msg));
		free(msg);
	} else {
		json_object_set_new(o, "status_msg", json_null());
	}
	json_object_set_new(o, "image_uuid", json_string(in->image));
	json_object_set_new(o, "image_args", in->args ? json_incref(in->args) : json_array());
	json_object_set_new(o, "image_runtype", json_string(in->runtype));
	json_object_set_new(o, "onstart", in->onstart ? json_string(in->onstart) : json_null());
	json_object_set_new(o, "extra_env", env);
	json_object_set_new(o, "jupyter_token", json_string(in->jupyter));
	if (st.actual) {
		char *ip = xasprintf("%s%s", w->ssh_host, in->id % 2 ? "\n" : " ");
		char idx[8];

		snprintf(idx, sizeof(idx), "%lld", in->id % 9 + 1);
		json_object_set_new(o, "ssh_host", json_string(w->ssh_host));
		/* The vastai CLI adds 1 to a jupyter instance's proxy port. */
		json_object_set_new(o, "ssh_port", json_integer(jupyter && w->ssh_port > 1 ? w->ssh_port - 1
										: w->ssh_port));
		json_object_set_new(o, "ssh_idx", json_string(idx));
		json_object_set_new(o, "machine_dir_ssh_port",
				    json_integer(40000 + sim_machine_key(of) % 20000));
		json_object_set_new(o, "public_ipaddr", json_string(ip));
		free(ip);
		ip = xasprintf("10.%lld.%lld.%lld 172.17.0.1 \n", in->id % 250, in->id / 250 % 250,
			       in->id / 62500 % 250 + 2);
		json_object_set_new(o, "local_ipaddrs", json_string(ip));
		free(ip);
	} else {
		json_object_set_new(o, "ssh_host", json_null());
		json_object_set_new(o, "ssh_port", json_null());
		json_object_set_new(o, "ssh_idx", json_null());
		json_object_set_new(o, "machine_dir_ssh_port", json_null());
		json_object_set_new(o, "public_ipaddr", json_null());
		json_object_set_new(o, "local_ipaddrs", json_null());
	}
	sim_put_offer(o, "static_ip", of, NULL);
	json_object_set_new(o, "ports", running ? sim_inst_ports(w, in) : json_null());
	sim_put_offer(o, "direct_port_count", of, NULL);
	if (sim_num(of, "direct_port_count", 0) >= 1) {
		json_object_set_new(o, "direct_port_start", json_integer(in->direct_start));
		json_object_set_new(o, "direct_port_end",
				    json_integer(in->direct_start +
						 (long long)fmin(499, sim_num(of, "direct_port_count", 1)) - 1));
	} else {
		json_object_set_new(o, "direct_port_start", json_null());
		json_object_set_new(o, "direct_port_end", json_null());
	}
	sim_put_offer(o, "gpu_name", of, NULL);
	sim_put_offer(o, "num_gpus", of, NULL);
	sim_put_offer(o, "gpu_ram", of, NULL);
	sim_put_offer(o, "gpu_totalram", of, "gpu_total_ram");
	sim_put_offer(o, "gpu_frac", of, NULL);
	/* Utilisation figures exist only while running, and not always then. */
	if (running && sim_rng_unit(&noise) > 0.25) {
		json_object_set_new(o, "gpu_util", json_real(round(sim_rng_range(&noise, 0, 1) * 100) / 100));
		json_object_set_new(o, "gpu_temp", json_real(round(sim_rng_range(&noise, 35, 80))));
	} else {
		json_object_set_new(o, "gpu_util", json_null());
		json_object_set_new(o, "gpu_temp", json_null());
	}
	sim_put_offer(o, "gpu_arch", of, NULL);
	sim_put_offer(o, "cuda_max_good", of, NULL);
	sim_put_offer(o, "driver_version", of, NULL);
	sim_put_offer(o, "cpu_name", of, NULL);
	sim_put_offer(o, "cpu_arch", of, NULL);
	sim_put_offer(o, "cpu_cores", of, NULL);
	sim_put_offer(o, "cpu_cores_effective", of, NULL);
	sim_put_offer(o, "cpu_ram", of, NULL);
	json_object_set_new(o, "cpu_util", running ? json_real(round(sim_rng_range(&noise, 0, 1) * 100) / 100)
						   : json_null());
	json_object_set_new(o, "mem_usage", running ? json_real(round(sim_rng_range(&noise, 1, 30) * 10) / 10)
						    : json_null());
	json_object_set_new(o, "mem_limit", json_real(round(sim_num(of, "cpu_ram", 0) *
							    sim_num(of, "gpu_frac", 1) / 10) / 100));
	json_object_set_new(o, "vmem_usage", running ? json_real(0.5) : json_null());
	json_object_set_new(o, "disk_space", json_real(in->disk_gb));
	json_object_set_new(o, "disk_usage", running ? json_real(round(sim_rng_range(&noise, 0.05, 0.5) * 100) / 100)
						     : json_real(-1));
	json_object_set_new(o, "disk_util", running ? json_real(0.05) : json_real(0));
	sim_put_offer(o, "disk_name", of, NULL);
	sim_put_offer(o, "disk_bw", of, NULL);
	sim_put_offer(o, "inet_up", of, NULL);
	sim_put_offer(o, "inet_down", of, NULL);
	sim_put_offer(o, "geolocation", of, NULL);
	sim_put_offer(o, "verification", of, NULL);
	sim_put_offer(o, "reliability2", of, NULL);
	json_object_set_new(o, "dph_base", json_real(in->dph_base));
	json_object_set_new(o, "dph_total", json_real(sim_inst_dph(in)));
	json_object_set_new(o, "storage_cost", json_real(in->storage_cost));
	json_object_set_new(o, "storage_total_cost", json_real(disk));
	json_object_set_new(o, "min_bid", json_real(in->min_bid));
	json_object_set_new(o, "is_bid", json_boolean(in->is_bid));
	json_object_set_new(o, "credit_balance", json_null());
	json_object_set_new(o, "credit_discount", json_null());
	json_object_set_new(o, "search", sim_market_cost(gpu_price, disk));
	json_object_set_new(o, "instance", sim_market_cost(gpu_price, disk));
	/* The contract lasts as long as the listing did when rented. */
	json_object_set_new(o, "start_date", json_real(in->created));
	json_object_set_new(o, "end_date", json_real(round(in->created + sim_num(of, "duration", 0))));
	json_object_set_new(o, "duration",
			    json_real(fmax(0, round(in->created + sim_num(of, "duration", 0)) - now)));
	json_object_set_new(o, "uptime_mins", running ? json_real(round((now - st.running_since) / 6) / 10)
						      : json_null());
	json_object_set_new(o, "time_remaining", json_string(""));
	json_object_set_new(o, "time_remaining_isbid", json_string(""));
	json_object_set_new(o, "volume_info", json_array());
	return o;
}

void sim_world_instance_get(struct sim_world *w, long long id, double now, struct sim_answer *a)
{
	struct sim_inst *in;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	sim_answer_json(a, 200, json_pack("{s:o}", "instances",
					  in ? sim_inst_json(w, in, now) : json_null()));
	pthread_mutex_unlock(&w->lock);
}

/* --- create -------------------------------------------------------------------- */

static const char *const sim_runtype_tokens[] = {
	"ssh", "ssh_proxy", "ssh_direct", "ssh_direc", "jupyter", "jupyter_proxy",
	"jupyter_direct", "jupyter_direc", "args", NULL,
};

static bool sim_runtype_valid(const char *rt)
{
	const char *p = rt, *end;
	size_t n, i;
	bool any = false;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		end = strchr(p, ' ');
		n = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; sim_runtype_tokens[i]; i++)
			if (strlen(sim_runtype_tokens[i]) == n && !strncmp(sim_runtype_tokens[i], p, n))
				break;
		if (!sim_runtype_tokens[i])
			return false;
		any = true;
		p += n;
	}
	return any;
}

/* A create request, read and checked. */
struct sim_create_req {
	const char *image, *label, *onstart, *runtype, *template_hash;
	const json_t *env, *args;
	double disk, price;
	bool bid, cancel_unavail, start_stopped;
};

static bool sim_opt_str(const json_t *req, const char *key, const char **out)
{
	const json_t *v = json_object_get(req, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	return true;
}

/* Fill `c` from `req`; on a bad request answer 400 and return false. */
static bool sim_create_read(const json_t *req, long long ask, struct sim_create_req *c,
			    struct sim_answer *a)
{
	const json_t *v, *item;
	const char *key;
	size_t total = 0, i, cmdlen;
	const char *args_str;

	memset(c, 0, sizeof(*c));
#define BAD(...) do { sim_ask_error(a, 400, "invalid_args", ask, "error 400/3467: Invalid args: " __VA_ARGS__); return false; } while (0)
	if (!sim_opt_str(req, "image", &c->image))
		BAD("image must be a string");
	if (!sim_opt_str(req, "template_hash_id", &c->template_hash))
		BAD("template_hash_id must be a string");
	if ((!c->image || !*c->image) && !c->template_hash)
		BAD("image is required (or template_hash_id)");
	if (c->image && strlen(c->image) > 1024)
		BAD("image is longer than 1024 characters");
	if (!c->image || !*c->image)
		c->image = c->template_hash;
	c->disk = 10;
	v = json_object_get(req, "disk");
	if (v && !json_is_null(v) && (!sim_json_num(v, &c->disk) || json_is_boolean(v)))
		BAD("disk must be a number of GB");
	if (c->disk < 8)
		BAD("disk must be at least 8 GB, not %g", c->disk);
	if (!sim_opt_str(req, "label", &c->label))
		BAD("label must be a string");
	if (c->label && strlen(c->label) > 256)
		BAD("label is longer than 256 characters");
	v = json_object_get(req, "env");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			BAD("env must be an object of string values, such as {\"KEY\": \"value\"}");
		json_object_foreach((json_t *)v, key, item) {
			if (!json_is_string(item))
				BAD("env value of %.100s must be a string", key);
			if (strlen(key) > 256 || json_string_length(item) > 256)
				BAD("env entry %.100s is longer than 256 characters", key);
			total += strlen(key) + json_string_length(item);
		}
		if (total > 32768)
			BAD("env is longer than 32768 characters in all");
		c->env = json_object_get(req, "env");
	}
	if (!sim_opt_str(req, "onstart", &c->onstart))
		BAD("onstart must be a string");
	if (!sim_opt_str(req, "args_str", &args_str))
		BAD("args_str must be a string");
	cmdlen = (c->onstart ? strlen(c->onstart) : 0) + (args_str ? strlen(args_str) : 0);
	v = json_object_get(req, "args");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v))
			BAD("args must be a list of strings");
		json_array_foreach(v, i, item) {
			if (!json_is_string(item))
				BAD("args must be a list of strings");
			cmdlen += json_string_length(item);
		}
		c->args = json_object_get(req, "args");
	}
	if (cmdlen > 4096)
		BAD("onstart, args and args_str are longer than 4096 characters together");
	if (!sim_opt_str(req, "runtype", &c->runtype))
		BAD("runtype must be a string");
	if (!c->runtype || !*c->runtype)
		c->runtype = c->args || args_str ? "args" : "ssh";
	else if (!sim_runtype_valid(c->runtype))
		BAD("runtype '%.100s' is not one of ssh, ssh_proxy, ssh_direct, jupyter, "
		    "jupyter_proxy, jupyter_direct, args", c->runtype);
	v = json_object_get(req, "price");
	if (v && !json_is_null(v)) {
		if (!sim_json_num(v, &c->price) || json_is_boolean(v) || c->price < 0.001 ||
		    c->price > 128) {
			sim_ask_error(a, 400, "invalid_price", ask,
				      "error 400/3467: Invalid args: price must be from 0.001 to 128 $/hr");
			return false;
		}
		c->bid = true;
	}
	c->cancel_unavail = !c->bid;
	v = json_object_get(req, "cancel_unavail");
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v))
			BAD("cancel_unavail must be true or false");
		c->cancel_unavail = json_is_true(v);
	}
	if (!sim_opt_str(req, "target_state", &key))
		BAD("target_state must be running or stopped");
	if (key && strcmp(key, "running") && strcmp(key, "stopped"))
		BAD("target_state must be running or stopped");
	c->start_stopped = key && !strcmp(key, "stopped");
#undef BAD
	return true;
}

static void sim_inst_add_key(struct sim_world *w, struct sim_inst *in, const char *key,
			     const char *canon, double now)
{
	ALLOC_GROW(in->keys, in->nkeys + 1, in->akeys);
	in->keys[in->nkeys].id = w->next_key++;
	in->keys[in->nkeys].key = xstrdup(key);
	in->keys[in->nkeys].canon = xstrdup(canon);
	in->keys[in->nkeys].created = now;
	in->keys[in->nkeys].deleted = false;
	in->nkeys++;
}

static struct sim_inst *sim_inst_new(struct sim_world *w, json_t *offer, long long offer_id,
				     const struct sim_create_req *c, double now)
{
	struct sim_inst *in = xcalloc(1, sizeof(*in));

	in->id = w->next_inst;
	w->next_inst += sim_rng_int(&w->id_rng, 1, 17);
	in->offer_id = offer_id;
	in->machine_key = sim_machine_key(offer);
	in->offer = json_incref(offer);
	in->label = c->label ? xstrdup(c->label) : NULL;
	in->create_label = xstrdup(c->label ? c->label : "");
	in->image = xstrdup(c->image);
	in->runtype = xstrdup(c->runtype);
	in->onstart = c->onstart ? xstrdup(c->onstart) : NULL;
	in->template_hash = c->template_hash ? xstrdup(c->template_hash) : NULL;
	in->args = c->args ? json_deep_copy(c->args) : NULL;
	in->env = c->env ? json_deep_copy(c->env) : json_object();
	sim_rng_hex(&w->id_rng, in->api_key, 32);
	sim_rng_hex(&w->id_rng, in->jupyter, 32);
	in->disk_gb = c->disk;
	in->dph_base = sim_num(offer, "dph_base", sim_num(offer, "dph_total", 0));
	in->storage_cost = sim_num(offer, "storage_cost", 0);
	in->min_bid = sim_num(offer, "min_bid", 0);
	in->is_bid = c->bid;
	in->price = c->price;
	in->created = in->boot_at = in->rate_since = now;
	in->stopped = c->start_stopped;
	in->destroy_fails = w->faults.destroy_fail;
	in->rate = in->stopped ? sim_inst_storage_dph(in) : sim_inst_dph(in);
	in->direct_start = 10000 + (in->id % 100) * 500;
	/* Account keys are copied into a new instance. */
	for (size_t i = 0; i < w->nkeys; i++)
		if (!w->keys[i].deleted)
			sim_inst_add_key(w, in, w->keys[i].key, w->keys[i].canon, now);
	ALLOC_GROW(w->inst, w->ninst + 1, w->ainst);
	w->inst[w->ninst++] = in;
	return in;
}

static json_t *sim_created_json(const struct sim_inst *in)
{
	return json_pack("{s:b,s:I,s:s}", "success", 1, "new_contract", (json_int_t)in->id,
			 "instance_api_key", in->api_key);
}

void sim_world_create(struct sim_world *w, long long offer_id, const json_t *req, double now,
		      struct sim_answer *a)
{
	struct sim_create_req c;
	struct sim_inst *in;
	json_t *offer;
	bool taken, stuck, error, no_contract;

	if (req && !json_is_object(req)) {
		sim_ask_error(a, 400, "invalid_args", offer_id,
			      "error 400/3467: Invalid args: the body must be a JSON object");
		return;
	}
	if (!sim_create_read(req, offer_id, &c, a))
		return;
	pthread_mutex_lock(&w->lock);
	offer = sim_offer_find(w, offer_id);
	if (!offer || sim_machine_taken(w, sim_machine_key(offer))) {
		sim_ask_error(a, 404, "no_such_ask", offer_id,
			      "error 404/3603: no_such_ask Instance type by id %lld is not available.",
			      offer_id);
		goto out;
	}
	if (c.bid && c.price < sim_num(offer, "min_bid", 0)) {
		if (!c.cancel_unavail) {
			/* The known trap: an error, yet a stopped instance that bills. */
			in = sim_inst_new(w, offer, offer_id, &c, now);
			in->stopped = in->underbid = true;
			sim_inst_rebill(in, now, sim_inst_storage_dph(in));
		}
		sim_ask_error(a, 400, "invalid_price", offer_id,
			      "error 400/3467: Invalid args: bid price %g is below the minimum bid %g for offer %lld",
			      c.price, sim_num(offer, "min_bid", 0), offer_id);
		goto out;
	}
	taken = sim_rng_chance(&w->fault_rng, w->faults.offer_taken);
	stuck = sim_rng_chance(&w->fault_rng, w->faults.stuck_loading);
	error = sim_rng_chance(&w->fault_rng, w->faults.create_error_leaves_instance);
	no_contract = sim_rng_chance(&w->fault_rng, w->faults.create_no_contract);
	if (taken) {
		/* Someone else rented it first: it leaves the market too. */
		ALLOC_GROW(w->taken, w->ntaken + 1, w->ataken);
		w->taken[w->ntaken++] = sim_machine_key(offer);
		sim_ask_error(a, 404, "no_such_ask", offer_id,
			      "error 404/3603: no_such_ask Instance type by id %lld is not available.",
			      offer_id);
		goto out;
	}
	in = sim_inst_new(w, offer, offer_id, &c, now);
	in->stuck = stuck;
	if (error) {
		switch (sim_rng_int(&w->fault_rng, 0, 2)) {
		case 0:
			sim_answer_error(a, 500, "server_error", "Internal Server Error");
			break;
		case 1:
			sim_ask_error(a, 400, "invalid_args", offer_id,
				      "error 400/3467: Invalid args: please try again");
			break;
		default:
			sim_server_error(w, a);
			break;
		}
	} else if (no_contract) {
		sim_answer_json(a, 200, json_pack("{s:b}", "success", 1));
	} else {
		sim_answer_json(a, 200, sim_created_json(in));
	}
out:
	pthread_mutex_unlock(&w->lock);
}

/* --- change, destroy ------------------------------------------------------------- */

static void sim_no_instance(struct sim_answer *a, long long id)
{
	sim_answer_error(a, 404, "no_such_instance", "Instance %lld not found.", id);
}

void sim_world_instance_put(struct sim_world *w, long long id, const json_t *req, double now,
			    struct sim_answer *a)
{
	const json_t *label = json_object_get(req, "label"), *state = json_object_get(req, "state");
	struct sim_inst *in;
	const char *s;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	if (!in) {
		sim_no_instance(a, id);
		goto out;
	}
	if (req && !json_is_object(req)) {
		sim_answer_error(a, 400, "invalid_args", "the body must be a JSON object");
		goto out;
	}
	if (label && !json_is_null(label) && !json_is_string(label)) {
		sim_answer_error(a, 400, "invalid_args", "label must be a string");
		goto out;
	}
	if (json_is_string(label) && json_string_length(label) > 256) {
		sim_answer_error(a, 400, "label_too_long", "label is longer than 256 characters");
		goto out;
	}
	s = json_is_string(state) ? json_string_value(state) : NULL;
	if (state && (!s || (strcmp(s, "running") && strcmp(s, "stopped")))) {
		sim_answer_error(a, 400, "invalid_args", "state must be running or stopped");
		goto out;
	}
	if (!label && !state) {
		sim_answer_error(a, 400, "invalid_args", "nothing to change: give label or state");
		goto out;
	}
	if (s && !strcmp(s, "stopped") && !in->stopped) {
		in->stopped = true;
		sim_inst_rebill(in, now, sim_inst_storage_dph(in));
	} else if (s && !strcmp(s, "running") && in->stopped) {
		in->stopped = false;
		in->restarting = true;
		in->boot_at = now;
		sim_inst_rebill(in, now, sim_inst_dph(in));
	}
	if (label) {
		free(in->label);
		in->label = json_is_string(label) ? xstrdup(json_string_value(label)) : NULL;
		{
			char *msg = xasprintf("label for %lld set to '%s'", id, in->label ? in->label : "");

			sim_answer_json(a, 200, json_pack("{s:b,s:s}", "success", 1, "msg", msg));
			free(msg);
		}
	} else {
		sim_answer_json(a, 200, json_pack("{s:b}", "success", 1));
	}
out:
	pthread_mutex_unlock(&w->lock);
}

void sim_world_instance_delete(struct sim_world *w, long long id, double now, struct sim_answer *a)
{
	struct sim_inst *in;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	if (!in) {
		sim_no_instance(a, id);
	} else if (in->destroy_fails > 0) {
		in->destroy_fails--;
		sim_answer_error(a, 500, "server_error", "Internal Server Error");
	} else {
		sim_inst_rebill(in, now, 0);
		in->destroyed = now;
		sim_answer_json(a, 200, json_pack("{s:b}", "success", 1));
	}
	pthread_mutex_unlock(&w->lock);
}

/* --- the v1 list ------------------------------------------------------------------ */

/* A JSON parameter; a bare word that is not JSON is taken as a string. */
static json_t *sim_param_json(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

	return v ? v : json_string(text);
}

char *sim_token_encode(const json_t *key)
{
	json_t *doc = json_pack("{s:O}", "after", key);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	size_t n = strlen(text), i, j;
	unsigned char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock(out, (const unsigned char *)text, (int)n);
	for (i = j = 0; out[i]; i++) {
		if (out[i] == '=')
			continue;
		out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	}
	out[j] = '\0';
	free(text);
	json_decref(doc);
	return (char *)out;
}

int sim_token_decode(const char *token, json_t **key, struct err *e)
{
	size_t n = strlen(token), i, pad = (4 - n % 4) % 4;
	unsigned char *in, *out = NULL;
	json_t *doc = NULL;
	int len, r = ERR_FORMAT;

	*key = NULL;
	if (!n || n > 4096 || pad == 3 || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n)
		return err_set(e, ERR_FORMAT, "not a page token");
	in = xmalloc(n + pad + 1);
	for (i = 0; i < n; i++)
		in[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : (unsigned char)token[i];
	for (i = 0; i < pad; i++)
		in[n + i] = '=';
	in[n + pad] = '\0';
	out = xmalloc(n + pad);
	len = EVP_DecodeBlock(out, in, (int)(n + pad));
	if (len < 0 || (size_t)len < pad) {
		err_set(e, ERR_FORMAT, "not a page token");
		goto out;
	}
	doc = json_loadb((const char *)out, (size_t)len - pad, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc) || json_object_size(doc) != 1 ||
	    !json_is_array(json_object_get(doc, "after"))) {
		err_set(e, ERR_FORMAT, "not a page token");
		goto out;
	}
	*key = json_incref(json_object_get(doc, "after"));
	r = 0;
out:
	json_decref(doc);
	free(in);
	free(out);
	return r;
}

/* Keep only the columns of `cols` (an array of names; "*" keeps all). */
static json_t *sim_select(json_t *row, const json_t *cols)
{
	json_t *out, *c;
	size_t i;

	if (!json_is_array(cols))
		return row;
	json_array_foreach(cols, i, c)
		if (json_is_string(c) && !strcmp(json_string_value(c), "*"))
			return row;
	out = json_object();
	json_array_foreach(cols, i, c)
		if (json_is_string(c) && json_object_get(row, json_string_value(c)))
			json_object_set(out, json_string_value(c), json_object_get(row, json_string_value(c)));
	json_decref(row);
	return out;
}

void sim_world_list(struct sim_world *w, const struct sim_v1_params *p, double now,
		    struct sim_answer *a)
{
	json_t *filters = NULL, *order_by = NULL, *cols = NULL, *after = NULL, *limv = NULL;
	json_t **rows = NULL, *list, *counts, *next = NULL;
	struct sim_filter *flt = NULL;
	struct sim_order *ord = NULL;
	struct err e = { 0 };
	size_t nrows = 0, arows = 0, found = 0, total = 0, i, start = 0;
	double limit = SIM_V1_MAX;
	const char *label;
	char *tok;

	if (p->limit) {
		limv = sim_param_json(p->limit);
		if (!sim_json_num(limv, &limit) || json_is_boolean(limv) || limit < 1 ||
		    limit != floor(limit)) {
			sim_answer_error(a, 400, "invalid_args", "limit must be a whole number from 1 to %d",
					 SIM_V1_MAX);
			goto out;
		}
		limit = fmin(limit, SIM_V1_MAX);
	}
	if (p->select_filters) {
		filters = sim_param_json(p->select_filters);
		if (!json_is_object(filters)) {
			sim_answer_error(a, 400, "invalid_args", "select_filters must be a JSON object");
			goto out;
		}
	}
	if (p->order_by)
		order_by = sim_param_json(p->order_by);
	if (p->select_cols)
		cols = sim_param_json(p->select_cols);
	if (sim_filter_new(filters, sim_instance_fields, NULL, &flt, &e) ||
	    sim_order_new_cols(order_by, sim_instance_fields, &ord, &e)) {
		sim_answer_error(a, 400, "invalid_args", "%s", e.msg);
		goto out;
	}
	if (p->after_token && *p->after_token &&
	    (sim_token_decode(p->after_token, &after, &e) || !sim_order_key_valid(ord, after))) {
		sim_answer_error(a, 400, "invalid_token", "after_token is not a token this list gave");
		goto out;
	}

	counts = json_object();
	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->ninst; i++) {
		struct sim_inst *in = w->inst[i];
		json_t *row;

		if (in->destroyed || now < in->created + w->faults.list_lag)
			continue;
		total++;
		label = in->label ? in->label : "";
		sim_count(counts, label);
		row = sim_inst_json(w, in, now);
		if (!sim_filter_match(flt, row)) {
			json_decref(row);
			continue;
		}
		ALLOC_GROW(rows, nrows + 1, arows);
		rows[nrows++] = row;
	}
	pthread_mutex_unlock(&w->lock);

	found = nrows;
	sim_order_sort(ord, rows, nrows);
	if (after)
		while (start < nrows && sim_order_cmp_key(ord, rows[start], after) <= 0)
			start++;
	list = json_array();
	for (i = start; i < nrows && i < start + (size_t)limit; i++)
		json_array_append_new(list, sim_select(json_incref(rows[i]), cols));
	if (i < nrows) {
		json_t *key = sim_order_key(ord, rows[i - 1]);

		tok = sim_token_encode(key);
		next = json_string(tok);
		free(tok);
		json_decref(key);
	}
	sim_answer_json(a, 200, json_pack("{s:b,s:I,s:I,s:o,s:o,s:o}", "success", 1, "instances_found",
					  (json_int_t)found, "total_instances", (json_int_t)total,
					  "label_counts", counts, "next_token", next ? next : json_null(),
					  "instances", list));
	for (i = 0; i < nrows; i++)
		json_decref(rows[i]);
out:
	free(rows);
	json_decref(filters);
	json_decref(order_by);
	json_decref(cols);
	json_decref(after);
	json_decref(limv);
	sim_filter_free(flt);
	sim_order_free(ord);
}

/* --- SSH keys ------------------------------------------------------------------------- */

static const char *const sim_key_types[] = {
	"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
	"ssh-dss", NULL,
};

int sim_ssh_key_parse(const char *text, char **canon, struct err *e)
{
	char *copy = xstrdup(text), *type, *b64, *sp;
	unsigned char *blob = NULL;
	size_t n, i;
	unsigned long tlen;
	int len, r = ERR_FORMAT;

	*canon = NULL;
	type = str_trim(copy);
	sp = strchr(type, ' ');
	if (!sp)
		goto bad;
	*sp = '\0';
	b64 = sp + 1;
	while (*b64 == ' ')
		b64++;
	sp = strchr(b64, ' ');
	if (sp)
		*sp = '\0';
	for (i = 0; sim_key_types[i]; i++)
		if (!strcmp(sim_key_types[i], type))
			break;
	if (!sim_key_types[i])
		goto bad;
	n = strlen(b64);
	if (n < 8 || n % 4 || n > 16384 ||
	    strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		goto bad;
	blob = xmalloc(n);
	len = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)n);
	if (len < 4)
		goto bad;
	tlen = (unsigned long)blob[0] << 24 | (unsigned long)blob[1] << 16 | (unsigned long)blob[2] << 8 | blob[3];
	if (tlen != strlen(type) || 4 + tlen > (unsigned long)len || memcmp(blob + 4, type, tlen))
		goto bad;
	*canon = xasprintf("%s %s", type, b64);
	r = 0;
	goto out;
bad:
	err_set(e, ERR_FORMAT, "not an SSH public key (want a line such as 'ssh-ed25519 AAAA... comment')");
out:
	free(blob);
	free(copy);
	return r;
}

/* The ssh_key member of a request, checked; answers 400 and returns
 * false when it is missing or not a key. */
static bool sim_req_key(const json_t *req, char **key, char **canon, struct sim_answer *a)
{
	const json_t *v = json_object_get(req, "ssh_key");
	struct err e = { 0 };

	*key = *canon = NULL;
	if (!json_is_string(v) || !json_string_length(v)) {
		sim_answer_error(a, 400, "no_ssh_key", "no ssh_key given");
		return false;
	}
	if (sim_ssh_key_parse(json_string_value(v), canon, &e)) {
		sim_answer_error(a, 400, "invalid_args", "ssh_key: %s", e.msg);
		return false;
	}
	*key = str_trim(xstrdup(json_string_value(v)));
	return true;
}

static json_t *sim_key_json(const struct sim_key *k, bool with_public)
{
	json_t *o = json_pack("{s:I,s:i,s:s,s:f,s:n}", "id", (json_int_t)k->id, "user_id", SIM_USER_ID,
			      "key", k->key, "created_at", k->created, "deleted_at");

	if (with_public)
		json_object_set_new(o, "public_key", json_string(k->key));
	return o;
}

void sim_world_keys_list(struct sim_world *w, struct sim_answer *a)
{
	json_t *list = json_array();

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->nkeys; i++)
		if (!w->keys[i].deleted)
			json_array_append_new(list, sim_key_json(&w->keys[i], false));
	pthread_mutex_unlock(&w->lock);
	sim_answer_json(a, 200, list);
}

void sim_world_keys_add(struct sim_world *w, const json_t *req, double now, struct sim_answer *a)
{
	char *key, *canon;
	size_t i;

	if (!sim_req_key(req, &key, &canon, a))
		return;
	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->nkeys; i++)
		if (!w->keys[i].deleted && !strcmp(w->keys[i].canon, canon))
			break;
	if (i == w->nkeys) {
		ALLOC_GROW(w->keys, w->nkeys + 1, w->akeys);
		w->keys[i].id = w->next_key++;
		w->keys[i].key = key;
		w->keys[i].canon = canon;
		w->keys[i].created = now;
		w->keys[i].deleted = false;
		w->nkeys++;
		key = canon = NULL;
	}
	sim_answer_json(a, 200, json_pack("{s:b,s:o}", "success", 1, "key", sim_key_json(&w->keys[i], true)));
	pthread_mutex_unlock(&w->lock);
	free(key);
	free(canon);
}

void sim_world_keys_delete(struct sim_world *w, long long key_id, struct sim_answer *a)
{
	size_t i;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->nkeys; i++)
		if (!w->keys[i].deleted && w->keys[i].id == key_id)
			break;
	if (i == w->nkeys) {
		sim_answer_error(a, 404, "not_found", "SSH key %lld not found.", key_id);
	} else {
		w->keys[i].deleted = true;
		sim_answer_json(a, 200, json_pack("{s:b}", "success", 1));
	}
	pthread_mutex_unlock(&w->lock);
}

void sim_world_instance_keys_get(struct sim_world *w, long long id, struct sim_answer *a)
{
	struct sim_inst *in;
	json_t *list;
	char *text;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	if (!in) {
		sim_no_instance(a, id);
		goto out;
	}
	list = json_array();
	for (size_t i = 0; i < in->nkeys; i++)
		if (!in->keys[i].deleted)
			json_array_append_new(list, json_pack("{s:I,s:s}", "id", (json_int_t)in->keys[i].id,
							      "public_key", in->keys[i].key));
	text = json_dumps(list, JSON_COMPACT);
	sim_answer_json(a, 200, json_pack("{s:s}", "ssh_keys", text));
	free(text);
	json_decref(list);
out:
	pthread_mutex_unlock(&w->lock);
}

void sim_world_instance_keys_add(struct sim_world *w, long long id, const json_t *req, double now,
				 struct sim_answer *a)
{
	struct sim_inst *in;
	char *key = NULL, *canon = NULL;
	char *msg;
	bool added;
	size_t i;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	if (!in) {
		sim_no_instance(a, id);
		goto out;
	}
	if (!sim_req_key(req, &key, &canon, a))
		goto out;
	for (i = 0; i < in->nkeys; i++)
		if (!in->keys[i].deleted && !strcmp(in->keys[i].canon, canon))
			break;
	added = i == in->nkeys;
	if (added)
		sim_inst_add_key(w, in, key, canon, now);
	msg = xasprintf(added ? "SSH key added to instance %lld" : "SSH key already on instance %lld", id);
	sim_answer_json(a, 200, json_pack("{s:b,s:s}", "success", 1, "msg", msg));
	free(msg);
out:
	pthread_mutex_unlock(&w->lock);
	free(key);
	free(canon);
}

void sim_world_instance_keys_delete(struct sim_world *w, long long id, long long key_id,
				    struct sim_answer *a)
{
	struct sim_inst *in;
	size_t i;

	pthread_mutex_lock(&w->lock);
	in = sim_inst_find(w, id);
	if (!in) {
		sim_no_instance(a, id);
		goto out;
	}
	for (i = 0; i < in->nkeys; i++)
		if (!in->keys[i].deleted && in->keys[i].id == key_id)
			break;
	if (i == in->nkeys) {
		sim_answer_error(a, 404, "not_found", "SSH key %lld is not on instance %lld.", key_id, id);
	} else {
		in->keys[i].deleted = true;
		sim_answer_json(a, 200, json_pack("{s:b}", "success", 1));
	}
out:
	pthread_mutex_unlock(&w->lock);
}

/* --- account and ledger -------------------------------------------------------------- */

static double sim_total_usd(const struct sim_world *w, double now)
{
	double total = 0;

	for (size_t i = 0; i < w->ninst; i++)
		total += sim_inst_usd(w->inst[i], now);
	return total;
}

void sim_world_user(struct sim_world *w, double now, struct sim_answer *a)
{
	const char *key = NULL;
	double credit;

	pthread_mutex_lock(&w->lock);
	credit = round((w->credit - sim_total_usd(w, now)) * 1e6) / 1e6;
	for (size_t i = w->nkeys; i-- > 0;) {
		if (!w->keys[i].deleted) {
			key = w->keys[i].key;
			break;
		}
	}
	sim_answer_json(a, 200, json_pack("{s:i,s:s,s:s,s:s,s:f,s:f,s:b,s:b,s:s?,s:f,s:b,s:b,s:s}",
					  "id", SIM_USER_ID, "email", "sim@ferry.invalid",
					  "username", "ferry-sim", "fullname", "Ferry Sim",
					  "balance", credit, "credit", credit, "has_billing", 1,
					  "can_pay", credit > 0, "ssh_key", key,
					  "balance_threshold", 0.0, "balance_threshold_enabled", 0,
					  "email_verified", 1, "country", "US"));
	pthread_mutex_unlock(&w->lock);
}

void sim_world_ledger(struct sim_world *w, double now, struct sim_answer *a)
{
	json_t *list = json_array(), *per_label = json_object(), *keys;
	size_t live = 0;
	double total = 0, usd;

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->ninst; i++) {
		struct sim_inst *in = w->inst[i];
		struct sim_state st;
		const char *label = in->create_label;

		sim_inst_state(w, in, now, &st);
		usd = sim_inst_usd(in, now);
		total += usd;
		live += !in->destroyed;
		sim_count(per_label, label);
		keys = json_array();
		for (size_t k = 0; k < in->nkeys; k++)
			if (!in->keys[k].deleted)
				json_array_append_new(keys, json_string(in->keys[k].key));
		json_array_append_new(list, json_pack(
			"{s:I,s:s?,s:I,s:O,s:s?,s:f,s:o,s:f,s:f,s:f,s:b,s:s,s:s,s:o}",
			"id", (json_int_t)in->id, "label", in->label, "offer_id", (json_int_t)in->offer_id,
			"machine_id", json_object_get(in->offer, "machine_id") ? json_object_get(in->offer, "machine_id") : json_null(),
			"state", in->destroyed ? "destroyed" : st.actual,
			"created_at", in->created,
			"destroyed_at", in->destroyed ? json_real(in->destroyed) : json_null(),
			"billed_seconds", (in->destroyed ? in->destroyed : now) - in->created,
			"billed_usd", usd, "dph_total", sim_inst_dph(in), "is_bid", in->is_bid,
			"image", in->image, "runtype", in->runtype, "ssh_keys", keys));
	}
	pthread_mutex_unlock(&w->lock);
	sim_answer_json(a, 200, json_pack("{s:o,s:I,s:o,s:f}", "instances", list, "live", (json_int_t)live,
					  "creates_per_label", per_label, "total_usd", total));
}
