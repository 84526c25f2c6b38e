#include "sim/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/xalloc.h"

#define SIM_BODY_MAX (1024 * 1024)

struct sim_server {
	struct MHD_Daemon *daemon;
	int fd;
	int port;
	char *api_key;
	struct sim_world *world;
};

/* One request's body, gathered over the handler's calls. */
struct sim_req {
	struct buf body;
	bool too_big;
};

enum sim_route {
	R_NONE,
	R_BUNDLES,       /* /api/v0/bundles/ */
	R_SEARCH_ASKS,   /* /api/v0/search/asks/ */
	R_CREATE,        /* /api/v0/asks/{id}/ */
	R_V0_LIST,       /* /api/v0/instances/ */
	R_V1_LIST,       /* /api/v1/instances/ */
	R_INSTANCE,      /* /api/v0/instances/{id}/ */
	R_INSTANCE_KEYS, /* /api/v0/instances/{id}/ssh/ */
	R_INSTANCE_KEY,  /* /api/v0/instances/{id}/ssh/{key}/ */
	R_KEYS,          /* /api/v0/ssh/ */
	R_KEY,           /* /api/v0/ssh/{key}/ */
	R_USER,          /* /api/v0/users/current/ */
};

enum { M_GET = 1, M_PUT = 2, M_POST = 4, M_DELETE = 8 };

static const char *const sim_method_names[] = { "GET", "PUT", "POST", "DELETE" };

struct sim_route_info {
	enum sim_route r;
	long long id, id2;
	unsigned methods;     /* M_* allowed */
	const char *endpoint; /* the rate limiter's name */
	bool auth404;         /* a bad key answers 404 here, 401 elsewhere */
};

/* --- listening ---------------------------------------------------------------- */

int sim_listen_parse(const char *text, char **host, int *port, struct err *e)
{
	const char *colon, *h = text;
	size_t hlen;
	unsigned long long p;
	char *end;

	*host = NULL;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || end[1] != ':')
			return err_set(e, ERR_USAGE, "--listen '%s': want HOST:PORT or [IPV6]:PORT", text);
		h = text + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon)
			return err_set(e, ERR_USAGE, "--listen '%s': want HOST:PORT or [IPV6]:PORT", text);
		hlen = (size_t)(colon - text);
	}
	errno = 0;
	p = strtoull(colon + 1, &end, 10);
	if (!hlen || !isdigit((unsigned char)colon[1]) || *end || errno || p > 65535)
		return err_set(e, ERR_USAGE, "--listen '%s': want HOST:PORT with a port from 0 to 65535",
			       text);
	*host = xstrndup(h, hlen);
	*port = (int)p;
	return 0;
}

static int sim_bind(const char *host, int port, int *fd_out, int *bound, struct err *e)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[8];
	int fd = -1, one = 1, r;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r)
		return err_set(e, ERR_USAGE, "--listen %s: %s", host, gai_strerror(r));
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = err_sys(e, ERR_IO, "socket");
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
		r = err_sys(e, ERR_IO, "cannot listen on %s port %d", host, port);
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		r = err_sys(e, ERR_IO, "getsockname");
		goto out;
	}
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
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

/* Split "/a/b/c/" into at most 8 segments; false on an empty one. */
static bool sim_split(const char *url, const char *seg[8], size_t len[8], size_t *n)
{
	const char *p = url, *slash;

	*n = 0;
	if (*p != '/')
		return false;
	p++;
	while (*p) {
		slash = strchr(p, '/');
		if (slash == p || *n == 8)
			return false;
		seg[*n] = p;
		len[*n] = slash ? (size_t)(slash - p) : strlen(p);
		(*n)++;
		if (!slash)
			break;
		p = slash + 1;
	}
	return true;
}

static bool sim_is(const char *seg, size_t len, const char *word)
{
	return strlen(word) == len && !memcmp(seg, word, len);
}

static void sim_route(const char *url, struct sim_route_info *ri)
{
	const char *s[8];
	size_t l[8], n;

	memset(ri, 0, sizeof(*ri));
	if (!sim_split(url, s, l, &n) || n < 3 || !sim_is(s[0], l[0], "api"))
		return;
	if (sim_is(s[1], l[1], "v1")) {
		if (n == 3 && sim_is(s[2], l[2], "instances")) {
			ri->r = R_V1_LIST;
			ri->methods = M_GET;
			ri->endpoint = "instances_v1";
		}
		return;
	}
	if (!sim_is(s[1], l[1], "v0"))
		return;
	if (n == 3 && sim_is(s[2], l[2], "bundles")) {
		*ri = (struct sim_route_info){ R_BUNDLES, 0, 0, M_POST | M_GET, "bundles", true };
	} else if (n == 4 && sim_is(s[2], l[2], "search") && sim_is(s[3], l[3], "asks")) {
		*ri = (struct sim_route_info){ R_SEARCH_ASKS, 0, 0, M_PUT | M_POST, "bundles", true };
	} else if (n == 4 && sim_is(s[2], l[2], "asks") && sim_seg_id(s[3], l[3], &ri->id)) {
		ri->r = R_CREATE;
		ri->methods = M_PUT;
		ri->endpoint = "create";
		ri->auth404 = true;
	} else if (n == 3 && sim_is(s[2], l[2], "instances")) {
		*ri = (struct sim_route_info){ R_V0_LIST, 0, 0, M_GET, "instances_v0", false };
	} else if (n >= 4 && sim_is(s[2], l[2], "instances") && sim_seg_id(s[3], l[3], &ri->id)) {
		ri->auth404 = true;
		if (n == 4) {
			ri->r = R_INSTANCE;
			ri->methods = M_GET | M_PUT | M_DELETE;
			ri->endpoint = "instance";
		} else if (n == 5 && sim_is(s[4], l[4], "ssh")) {
			ri->r = R_INSTANCE_KEYS;
			ri->methods = M_GET | M_POST;
			ri->endpoint = "instance_ssh";
		} else if (n == 6 && sim_is(s[4], l[4], "ssh") && sim_seg_id(s[5], l[5], &ri->id2)) {
			ri->r = R_INSTANCE_KEY;
			ri->methods = M_DELETE;
			ri->endpoint = "instance_ssh";
		}
	} else if (n == 3 && sim_is(s[2], l[2], "ssh")) {
		*ri = (struct sim_route_info){ R_KEYS, 0, 0, M_GET | M_POST, "ssh", false };
	} else if (n == 4 && sim_is(s[2], l[2], "ssh") && sim_seg_id(s[3], l[3], &ri->id)) {
		ri->r = R_KEY;
		ri->methods = M_DELETE;
		ri->endpoint = "ssh";
	} else if (n == 4 && sim_is(s[2], l[2], "users") && sim_is(s[3], l[3], "current")) {
		*ri = (struct sim_route_info){ R_USER, 0, 0, M_GET, "user", false };
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

static enum MHD_Result sim_send(struct MHD_Connection *c, struct sim_answer *a)
{
	struct MHD_Response *resp;
	struct buf b = BUF_INIT;
	enum MHD_Result ret;
	size_t len;
	char *data;

	if (a->json) {
		/* Keys in the order they were set, as Vast sends them; reals at
		 * 15 digits, so 3.1 prints as 3.1 (Python's repr, not %.17g). */
		data = json_dumps(a->json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		buf_puts(&b, data ? data : "null");
		free(data);
	} else if (a->text) {
		buf_puts(&b, a->text);
	}
	data = buf_detach(&b, &len);
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				a->json ? "application/json" : a->ctype ? a->ctype : "text/plain");
	ret = MHD_queue_response(c, a->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The caller's key: "Authorization: Bearer KEY", else ?api_key=KEY. */
static const char *sim_caller_key(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	if (h && !strncasecmp(h, "Bearer ", 7)) {
		h += 7;
		while (*h == ' ')
			h++;
		if (*h)
			return h;
	}
	h = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api_key");
	return h && *h ? h : NULL;
}

static void sim_client_ip(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, n, "?");
	if (!sa)
		return;
	getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    out, (socklen_t)n, NULL, 0, NI_NUMERICHOST);
}

/* The request body as JSON: NULL when empty; answers 400 when not JSON. */
static bool sim_body_json(struct sim_req *r, json_t **out, struct sim_answer *a)
{
	struct err e = { 0 };
	size_t i = 0;

	*out = NULL;
	while (i < r->body.len && isspace((unsigned char)r->body.data[i]))
		i++;
	if (i == r->body.len)
		return true;
	if (json_parse(r->body.data, r->body.len, "request body", out, &e)) {
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

static void sim_dispatch(struct sim_server *s, struct MHD_Connection *c, const char *method,
			 const struct sim_route_info *ri, const json_t *body, struct sim_answer *a)
{
	struct sim_world *w = s->world;
	double now = sim_now();
	const char *q;
	json_t *query;

	switch (ri->r) {
	case R_BUNDLES:
		if (!strcmp(method, "GET")) {
			q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
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
			MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"),
			MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after_token"),
			MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "order_by"),
			MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "select_filters"),
			MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "select_cols"),
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

static void sim_serve(struct sim_server *s, struct MHD_Connection *c, const char *url,
		      const char *method, struct sim_req *r, struct sim_answer *a)
{
	struct sim_route_info ri;
	const char *key;
	char ident[INET6_ADDRSTRLEN + 8];
	json_t *body = NULL;

	if (!strcmp(url, "/sim/ledger") || !strcmp(url, "/sim/ledger/")) {
		if (strcmp(method, "GET"))
			sim_answer_error(a, 405, "method_not_allowed", "GET /sim/ledger only");
		else
			sim_world_ledger(s->world, sim_now(), a);
		return;
	}
	sim_route(url, &ri);
	key = sim_caller_key(c);
	if (key)
		snprintf(ident, sizeof(ident), "key:%.40s", key);
	else
		sim_client_ip(c, ident, sizeof(ident));
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
	if (r->too_big) {
		sim_answer_error(a, 413, "invalid_request", "request body over %d bytes", SIM_BODY_MAX);
		return;
	}
	if (!sim_body_json(r, &body, a))
		return;
	sim_dispatch(s, c, method, &ri, body, a);
	json_decref(body);
}

static enum MHD_Result sim_handle(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct sim_server *s = cls;
	struct sim_req *r = *con_cls;
	struct sim_answer a = { 0 };
	enum MHD_Result ret;

	if (!r) {
		r = xcalloc(1, sizeof(*r));
		buf_init(&r->body);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->body.len + *upload_size > SIM_BODY_MAX)
			r->too_big = true;
		else
			buf_add(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	sim_serve(s, c, url, method, r, &a);
	if (!a.status)
		sim_answer_error(&a, 500, "server_error", "the simulator had no answer");
	log_debug("%s %s -> %u", method, url, a.status);
	ret = sim_send(c, &a);
	sim_answer_release(&a);
	return ret;
}

static void sim_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct sim_req *r = *con_cls;

	if (!r)
		return;
	buf_release(&r->body);
	free(r);
	*con_cls = NULL;
}

static __attribute__((format(printf, 2, 0))) void sim_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	buf_vprintf(&b, fmt, ap);
	log_debug("libmicrohttpd: %s", b.data);
	buf_release(&b);
}

int sim_server_start(const struct sim_server_opts *o, struct sim_server **out, struct err *e)
{
	struct sim_server *s = xcalloc(1, sizeof(*s));
	int r;

	*out = NULL;
	s->fd = -1;
	s->world = o->world;
	s->api_key = o->api_key ? xstrdup(o->api_key) : NULL;
	r = sim_bind(o->host, o->port, &s->fd, &s->port, e);
	if (r)
		goto fail;
	s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
				     MHD_USE_ERROR_LOG,
				     0, NULL, NULL, sim_handle, s,
				     MHD_OPTION_LISTEN_SOCKET, s->fd,
				     MHD_OPTION_NOTIFY_COMPLETED, sim_completed, s,
				     MHD_OPTION_EXTERNAL_LOGGER, sim_mhd_log, s,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)512,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
				     MHD_OPTION_END);
	if (!s->daemon) {
		r = err_set(e, ERR_FAIL, "cannot start the HTTP server on %s port %d", o->host, s->port);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sim_server_stop(s);
	return r;
}

int sim_server_port(const struct sim_server *s)
{
	return s->port;
}

void sim_server_stop(struct sim_server *s)
{
	if (!s)
		return;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	if (s->fd >= 0)
		close(s->fd);
	if (s->api_key)
		freezero(s->api_key, strlen(s->api_key));
	free(s);
}
