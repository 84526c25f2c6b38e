/* The Vast.ai REST API client (docs/vast-api.md): every call ferry makes,
 * with timeouts, retries on 429/502/503/504 and connection errors, and one
 * clear message for every error shape Vast sends. */
#ifndef FERRY_VAST_CLIENT_H
#define FERRY_VAST_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "config/config.h"
#include "vast/model.h"

struct vast_client;

struct vast_client_opts {
	const char *url;      /* base URL; NULL: https://console.vast.ai */
	const char *api_key;  /* NULL: no key (only offer search works) */
	int timeout_s;        /* per request; 0: 60 */
	int max_tries;        /* per call; 0: 5 */
	long backoff_ms;      /* first retry delay; 0: 250 */
};

int vast_client_new(struct vast_client **out, const struct vast_client_opts *o, struct err *e);
/* From settings vast.url, vast.api_key, vast.timeout, vast.tries. With
 * need_key, a missing key is ERR_CONFIG naming every place it may come from. */
int vast_client_from_config(struct vast_client **out, const struct config *cfg, bool need_key,
			    struct err *e);
void vast_client_free(struct vast_client *c);
/* The cancel token the client's calls (and their retry waits) stop on,
 * with ERR_CANCELLED; NULL (the default): never. Creates and destroys,
 * with the looks that confirm a destroy, never stop on it: cut halfway,
 * they would leave an instance billing that nothing knows of. */
void vast_client_set_cancel(struct vast_client *c, struct cancel *cancel);
struct cancel *vast_client_cancel(const struct vast_client *c);

/* One call. `path` is under the base URL; one without /api/vN/ gets
 * /api/v0. A NULL body is sent as {} on PUT, POST and DELETE, as the
 * official client does. `idempotent` allows retrying after timeouts and
 * 5xx; a create passes false. On success (2xx and no "success": false)
 * *answer holds the parsed reply. On an API error the return is ERR_CONFIG
 * for a refused key (whatever the status, 404 included), ERR_NOTFOUND for
 * 404/410 no_such_*, else ERR_HTTP; *answer then holds the error body when
 * it was JSON (else NULL), and *status the HTTP status (0 without answer). */
int vast_call(struct vast_client *c, const char *method, const char *path, const json_t *body,
	      bool idempotent, json_t **answer, long *status, struct err *e);

/* The "error" code of an error body ("no_such_ask"), or "". */
const char *vast_error_code(const json_t *answer);

int vast_search_offers(struct vast_client *c, const json_t *query, json_t **answer,
		       struct err *e);
/* The same search, the reply's bytes left unparsed in `body` (for
 * vast_offers_read_bytes). */
int vast_search_offers_raw(struct vast_client *c, const json_t *query, struct buf *body,
			   struct err *e);
/* PUT /asks/{offer}/ once, never retried after it may have arrived. */
int vast_create_instance(struct vast_client *c, long long offer_id, const json_t *body,
			 json_t **answer, long *status, struct err *e);
/* ERR_NOTFOUND when the instance does not exist (any more). */
int vast_show_instance(struct vast_client *c, long long id, struct vast_instance *out,
		       struct err *e);
/* Every instance (v1 list, all pages), or only those labelled `label`. */
int vast_list_instances(struct vast_client *c, const char *label, struct vast_instance **out,
			size_t *n, struct err *e);
/* DELETE; an instance that is already gone counts as destroyed (*was_gone). */
int vast_destroy_instance(struct vast_client *c, long long id, bool *was_gone, struct err *e);
/* Destroy, then look until the instance is gone; ERR_FAIL when it stays. */
int vast_destroy_confirm(struct vast_client *c, long long id, struct err *e);
/* Destroy an instance a person named, and confirm it is gone: unlike
 * vast_destroy_confirm, one that is not there to begin with is
 * ERR_NOTFOUND, since a wrong id must not read as "destroyed". */
int vast_destroy_named(struct vast_client *c, long long id, struct err *e);
int vast_set_label(struct vast_client *c, long long id, const char *label, struct err *e);
int vast_ssh_keys(struct vast_client *c, struct vast_ssh_key **out, size_t *n, struct err *e);
/* Register `pubkey` on the account unless it is there already; *key_id
 * (may be NULL) gets its id. *added tells whether it was new. */
int vast_ssh_key_register(struct vast_client *c, const char *pubkey, long long *key_id,
			  bool *added, struct err *e);
int vast_attach_key(struct vast_client *c, long long id, const char *pubkey, struct err *e);
int vast_current_user(struct vast_client *c, struct vast_user *out, struct err *e);

#endif
