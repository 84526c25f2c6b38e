#include "sim/server.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/hostport.h"
#include "common/httpd.h"
#include "common/json_util.h"
#include "common/xalloc.h"

#define SIM_BODY_MAX (1024 * 1024)

struct sim_server {
	struct httpd *httpd;
	char *api_key;
	struct sim_world *world;
};

enum sim_route {
	R_NONE,
	R_BUNDLES,
	R_SEARCH_ASKS,
	R_CREATE,
	R_V0_LIST,
	R_V1_LIST,
	R_INSTANCE,
	R_INSTANCE_KEYS,
	R_INSTANCE_KEY,
	R_KEYS,
	R_KEY,
	R_USER,
};

enum { M_GET = 1, M_PUT = 2, M_POST = 4, M_DELETE = 8 };

static const char *const sim_method_names[] = { "GET", "PUT", "POST", "DELETE" };

struct sim_route_info {
	enum sim_route r;
	const char *pattern;  /* httpd_path_match's; each {} is a numeric id */
	unsigned methods;     /* M_* allowed */
	const char *endpoint; /* the rate limiter's name */
	bool auth404;         /* a bad key answers 404 here, 401 elsewhere */
	long long id, id2;    /* the path's ids, once matched */
};

static const struct sim_route_info sim_routes[] = {
	{ R_BUNDLES, "/api/v0/bundles", M_POST | M_GET, "bundles", true, 0, 0 },
	{ R_SEARCH_ASKS, "/api/v0/search/asks", M_PUT | M_POST, "bundles", true, 0, 0 },
	{ R_CREATE, "/api/v0/asks/{}", M_PUT, "create", true, 0, 0 },
	{ R_V0_LIST, "/api/v0/instances", M_GET, "instances_v0", false, 0, 0 },
	{ R_V1_LIST, "/api/v1/instances", M_GET, "instances_v1", false, 0, 0 },
	{ R_INSTANCE, "/api/v0/instances/{}", M_GET | M_PUT | M_DELETE, "instance", true, 0, 0 },
	{ R_INSTANCE_KEYS, "/api/v0/instances/{}/ssh", M_GET | M_POST, "instance_ssh", true, 0, 0 },
	{ R_INSTANCE_KEY, "/api/v0/instances/{}/ssh/{}", M_DELETE, "instance_ssh", true, 0, 0 },
	{ R_KEYS, "/api/v0/ssh", M_GET | M_POST, "ssh", false, 0, 0 },
	{ R_KEY, "/api/v0/ssh/{}", M_DELETE, "ssh", false, 0, 0 },
	{ R_USER, "/api/v0/users/current", M_GET, "user", false, 0, 0 },
};

/* --- listening ---------------------------------------------------------------- */

int sim_listen_parse(const char *text, char **host, int *port, struct err *e)
{
	int r = hostport_parse(text, "--listen", true, host, port, e);

	if (!r && !**host) {
		free(*host);
		*host = NULL;
		return err_set(e, ERR_USAGE, "--listen '%s': name the address, as 127.0.0.1%s", text,
			       text);
	}
	return r;
}

/* --- routing -------------------------------------------------------------------- */

static bool sim_seg_id(const char *s, size_t n, long long *id)
{
	long long v = 0;

	if (!n || n > 15)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*id = v;
	return true;
}

/* The route `path` takes, with its ids; R_NONE (all zero) for none. */
static void sim_route(const char *path, struct sim_route_info *ri)
{
	struct httpd_seg ids[2] = { { NULL, 0 }, { NULL, 0 } };

	memset(ri, 0, sizeof(*ri));
	for (size_t i = 0; i < sizeof(sim_routes) / sizeof(sim_routes[0]); i++) {
		if (!httpd_path_match(path, sim_routes[i].pattern, ids, 2))
			continue;
		*ri = sim_routes[i];
		if ((ids[0].s && !sim_seg_id(ids[0].s, ids[0].n, &ri->id)) ||
		    (ids[1].s && !sim_seg_id(ids[1].s, ids[1].n, &ri->id2)))
			memset(ri, 0, sizeof(*ri));
		return;
	}
}

/* The M_* bit of a method; 0 for any other. */
static unsigned sim_method_bit(const char *method)
{
	for (unsigned i = 0; i < sizeof(sim_method_names) / sizeof(sim_method_names[0]); i++)
		if (!strcmp(sim_method_names[i], method))
			return 1u << i;
	return 0;
}

/* --- answering ----------------------------------------------------------------------- */

static void sim_reply(const struct sim_answer *a, struct httpd_resp *rs)
{
	if (a->json)
		/* Keys in the order they were set, as Vast sends them; reals at
		 * 15 digits, so 3.1 prints as 3.1 (Python's repr, not %.17g). */
		httpd_reply_json(rs, (int)a->status, a->json, JSON_COMPACT | JSON_REAL_PRECISION(15));
	else
		httpd_reply(rs, (int)a->status, a->ctype ? a->ctype : "text/plain", a->text ? a->text : "",
			    a->text ? strlen(a->text) : 0);
}

/* The caller's key: "Authorization: Bearer KEY", else ?api_key=KEY. */
static const char *sim_caller_key(const struct httpd_req *rq)
{
	const char *h = httpd_header(rq, "Authorization");

	if (h && !strncasecmp(h, "Bearer ", 7)) {
		h += 7;
		while (*h == ' ')
			h++;
		if (*h)
			return h;
	}
	h = httpd_query(rq, "api_key");
	return h && *h ? h : NULL;
}

/* The request body as JSON: NULL when empty; answers 400 when not JSON. */
static bool sim_body_json(const struct httpd_req *rq, json_t **out, struct sim_answer *a)
{
	struct err e = { 0 };
	size_t i = 0;

	*out = NULL;
	while (i < rq->body_len && isspace((unsigned char)rq->body[i]))
		i++;
	if (i == rq->body_len)
		return true;
	if (json_parse(rq->body, rq->body_len, "request body", out, &e)) {
		sim_answer_error(a, 400, "invalid_request", "%s", e.msg);
		return false;
	}
	return true;
}

static void sim_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double sim_now(void)
{
	return (double)clock_wall_ns() / 1e9;
}

static void sim_dispatch(struct sim_server *s, const struct httpd_req *rq,
			 const struct sim_route_info *ri, const json_t *body, struct sim_answer *a)
{
	struct sim_world *w = s->world;
	const char *method = rq->method;
	double now = sim_now();
	const char *q;
	json_t *query;

	switch (ri->r) {
	case R_BUNDLES:
		if (!strcmp(method, "GET")) {
			q = httpd_query(rq, "q");
			query = q ? json_loads(q, JSON_REJECT_DUPLICATES, NULL) : NULL;
			if (q && !query)
				sim_answer_error(a, 400, "invalid_args", "q is not JSON");
			else
				sim_world_bundles(w, query, now, a);
			json_decref(query);
			return;
		}
		sim_world_bundles(w, body, now, a);
		return;
	case R_SEARCH_ASKS:
		if (body && !json_is_object(body))
			sim_answer_error(a, 400, "invalid_args", "the body must be a JSON object");
		else
			sim_world_bundles(w, json_object_get(body, "q"), now, a);
		return;
	case R_CREATE:
		sim_world_create(w, ri->id, body, now, a);
		return;
	case R_V0_LIST:
		sim_answer_error(a, 410, "deprecated_endpoint",
				 "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.");
		return;
	case R_V1_LIST: {
		struct sim_v1_params p = {
			httpd_query(rq, "limit"),
			httpd_query(rq, "after_token"),
			httpd_query(rq, "order_by"),
			httpd_query(rq, "select_filters"),
			httpd_query(rq, "select_cols"),
		};

		sim_world_list(w, &p, now, a);
		return;
	}
	case R_INSTANCE:
		if (!strcmp(method, "GET"))
			sim_world_instance_get(w, ri->id, now, a);
		else if (!strcmp(method, "PUT"))
			sim_world_instance_put(w, ri->id, body, now, a);
		else
			sim_world_instance_delete(w, ri->id, now, a);
		return;
	case R_INSTANCE_KEYS:
		if (!strcmp(method, "GET"))
			sim_world_instance_keys_get(w, ri->id, a);
		else
			sim_world_instance_keys_add(w, ri->id, body, now, a);
		return;
	case R_INSTANCE_KEY:
		sim_world_instance_keys_delete(w, ri->id, ri->id2, a);
		return;
	case R_KEYS:
		if (!strcmp(method, "GET"))
			sim_world_keys_list(w, a);
		else
			sim_world_keys_add(w, body, now, a);
		return;
	case R_KEY:
		sim_world_keys_delete(w, ri->id, a);
		return;
	case R_USER:
		sim_world_user(w, now, a);
		return;
	case R_NONE:
		break;
	}
}

static void sim_serve(struct sim_server *s, const struct httpd_req *rq, struct sim_answer *a)
{
	const char *url = rq->path, *method = rq->method;
	struct sim_route_info ri;
	const char *key;
	char ident[sizeof(rq->client_ip) + 48];
	json_t *body = NULL;

	if (!strcmp(url, "/sim/ledger") || !strcmp(url, "/sim/ledger/")) {
		if (strcmp(method, "GET"))
			sim_answer_error(a, 405, "method_not_allowed", "GET /sim/ledger only");
		else
			sim_world_ledger(s->world, sim_now(), a);
		return;
	}
	sim_route(url, &ri);
	key = sim_caller_key(rq);
	if (key)
		snprintf(ident, sizeof(ident), "key:%.40s", key);
	else
		snprintf(ident, sizeof(ident), "%s", rq->client_ip);
	sim_sleep(sim_world_faults(s->world)->slow);
	if (!sim_world_admit(s->world, ident, ri.endpoint ? ri.endpoint : "other", sim_now(), a))
		return;
	if (ri.r == R_NONE) {
		sim_answer_error(a, 404, "not_found", "no such endpoint: %s %.200s", method, url);
		return;
	}
	if (!(sim_method_bit(method) & ri.methods)) {
		struct buf allowed = BUF_INIT;

		for (unsigned i = 0; i < sizeof(sim_method_names) / sizeof(sim_method_names[0]); i++)
			if (ri.methods & (1u << i))
				buf_printf(&allowed, "%s%s", allowed.len ? " " : "", sim_method_names[i]);
		sim_answer_error(a, 405, "method_not_allowed", "%.20s is not allowed here (%s)", method,
				 allowed.data);
		buf_release(&allowed);
		return;
	}
	/* Searching works without a key; a wrong key is refused everywhere. */
	if ((key && s->api_key && strcmp(key, s->api_key)) ||
	    (!key && !(ri.r == R_BUNDLES && !strcmp(method, "POST")))) {
		sim_answer_error(a, ri.auth404 ? 404 : 401, "auth_error", "Invalid user key");
		return;
	}
	if (!sim_body_json(rq, &body, a))
		return;
	sim_dispatch(s, rq, &ri, body, a);
	json_decref(body);
}

static void sim_handle(void *arg, const struct httpd_req *rq, struct httpd_resp *rs)
{
	struct sim_answer a = { 0 };

	sim_serve(arg, rq, &a);
	if (!a.status)
		sim_answer_error(&a, 500, "server_error", "the simulator had no answer");
	sim_reply(&a, rs);
	sim_answer_release(&a);
}

/* httpd's own answers (413 for a body over the cap) in the sim's shape. */
static void sim_httpd_error(void *arg, struct httpd_resp *rs, int status, const char *msg)
{
	struct sim_answer a = { 0 };

	sim_answer_error(&a, (unsigned)status, status == 413 ? "invalid_request" : "server_error",
			 "%s", msg);
	sim_reply(&a, rs);
	sim_answer_release(&a);
}

int sim_server_start(const struct sim_server_opts *o, struct sim_server **out, struct err *e)
{
	struct sim_server *s = xcalloc(1, sizeof(*s));
	struct httpd_opts ho = { 0 };
	int r;

	*out = NULL;
	s->world = o->world;
	s->api_key = o->api_key ? xstrdup(o->api_key) : NULL;
	ho.host = o->host;
	ho.port = o->port;
	ho.what = "--listen";
	ho.body_max = SIM_BODY_MAX;
	ho.handler = sim_handle;
	ho.error = sim_httpd_error;
	ho.arg = s;
	r = httpd_start(&ho, &s->httpd, e);
	if (r) {
		sim_server_stop(s);
		return r;
	}
	*out = s;
	return 0;
}

int sim_server_port(const struct sim_server *s)
{
	return httpd_port(s->httpd);
}

void sim_server_stop(struct sim_server *s)
{
	if (!s)
		return;
	httpd_stop(s->httpd);
	if (s->api_key)
		freezero(s->api_key, strlen(s->api_key));
	free(s);
}
