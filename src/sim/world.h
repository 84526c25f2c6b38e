/* The simulated Vast account: the market, instances and their lifecycle on
 * the wall clock, SSH keys, billing, the ledger, rate limits and faults.
 * Every call takes the time (`now`, epoch seconds) so tests can drive the
 * clock, locks the world's one mutex, and answers as the real API would:
 * an HTTP status and a body. The HTTP side is in sim/server.h. */
#ifndef FERRY_SIM_WORLD_H
#define FERRY_SIM_WORLD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "sim/fault.h"

struct sim_world;

struct sim_world_opts {
	json_t *market;        /* array of offers; the world takes a reference */
	bool reprice;          /* price each answer for its storage and type (built-in market) */
	const char *ssh_host;  /* the SSH endpoint every instance reports */
	int ssh_port;
	double boot_seconds;   /* from create to running */
	uint64_t seed;         /* faults, ids and keys */
	struct sim_faults faults;
	double rate;           /* requests per second per key and endpoint; 0: no limit */
	double credit;         /* the account's starting credit, $ */
};

/* What an endpoint answers: a JSON body, or a text one of type `ctype`. */
struct sim_answer {
	unsigned status;
	json_t *json;
	char *text;
	const char *ctype;
};

void sim_answer_release(struct sim_answer *a);
/* {"success":false,"error":code,"msg":...} with `status`. */
void sim_answer_error(struct sim_answer *a, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct sim_world *sim_world_new(const struct sim_world_opts *o);
void sim_world_free(struct sim_world *w);
const struct sim_faults *sim_world_faults(const struct sim_world *w);

/* Admission of one API call by caller `ident` to `endpoint` (a route name):
 * the rate limit, then the rate_limit and server_error faults. Returns true
 * when the call may proceed; otherwise fills `a` (429 or 5xx). */
bool sim_world_admit(struct sim_world *w, const char *ident, const char *endpoint, double now,
		     struct sim_answer *a);

/* POST /api/v0/bundles/: `query` may be NULL (no filters). */
void sim_world_bundles(struct sim_world *w, const json_t *query, double now, struct sim_answer *a);
/* PUT /api/v0/asks/{offer_id}/ */
void sim_world_create(struct sim_world *w, long long offer_id, const json_t *req, double now,
		      struct sim_answer *a);
/* GET, PUT and DELETE /api/v0/instances/{id}/ */
void sim_world_instance_get(struct sim_world *w, long long id, double now, struct sim_answer *a);
void sim_world_instance_put(struct sim_world *w, long long id, const json_t *req, double now,
			    struct sim_answer *a);
void sim_world_instance_delete(struct sim_world *w, long long id, double now, struct sim_answer *a);

/* GET /api/v1/instances/: each parameter is its raw (URL-decoded) text, or
 * NULL when absent. */
struct sim_v1_params {
	const char *limit;
	const char *after_token;
	const char *order_by;
	const char *select_filters;
	const char *select_cols;
};
void sim_world_list(struct sim_world *w, const struct sim_v1_params *p, double now,
		    struct sim_answer *a);

/* /api/v0/ssh/ and /api/v0/instances/{id}/ssh/ */
void sim_world_keys_list(struct sim_world *w, struct sim_answer *a);
void sim_world_keys_add(struct sim_world *w, const json_t *req, double now, struct sim_answer *a);
void sim_world_keys_delete(struct sim_world *w, long long key_id, struct sim_answer *a);
void sim_world_instance_keys_get(struct sim_world *w, long long id, struct sim_answer *a);
void sim_world_instance_keys_add(struct sim_world *w, long long id, const json_t *req, double now,
				 struct sim_answer *a);
void sim_world_instance_keys_delete(struct sim_world *w, long long id, long long key_id,
				    struct sim_answer *a);

/* GET /api/v0/users/current/ */
void sim_world_user(struct sim_world *w, double now, struct sim_answer *a);
/* GET /sim/ledger */
void sim_world_ledger(struct sim_world *w, double now, struct sim_answer *a);

/* The v1 list's page tokens: base64url of {"after":KEY}, KEY being the last
 * row's sort key. decode gives ERR_FORMAT for anything else. */
char *sim_token_encode(const json_t *key);
int sim_token_decode(const char *token, json_t **key, struct err *e);

/* Whether `text` is an OpenSSH public key line ("TYPE BASE64 [COMMENT]" whose
 * blob names TYPE). On success *canon (caller frees) is "TYPE BASE64". */
int sim_ssh_key_parse(const char *text, char **canon, struct err *e);

#endif
