/* Renting that cannot leak and never rents twice (docs/renting.md).
 *
 * Every create carries a label. After any answer that does not name the
 * new instance for certain (no new_contract, a 5xx, a lost answer), the
 * label is looked up before anything else is created; a create that failed
 * yet left an instance behind has that instance destroyed; and after a
 * rent succeeds, any other live instance with the same label is destroyed,
 * so a label never has two. */
#ifndef FERRY_VAST_RENT_H
#define FERRY_VAST_RENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/clock.h"
#include "common/err.h"
#include "vast/client.h"
#include "vast/model.h"
#include "vast/rank.h"

struct vast_rent_opts {
	const char *label;         /* required: "ferry-..." */
	const char *image;         /* required */
	double disk_gb;            /* 0: 40 */
	const json_t *env;         /* object of strings, or NULL */
	const char *onstart;       /* script text, or NULL */
	bool interruptible;
	double bid;                /* $/h for interruptible; 0: the offer's min_bid */
	const char *pubkey;        /* registered before, attached after; NULL: none */
	bool adopt;                /* a live instance with the label is returned, not an error */
	int max_offers;            /* offers tried when one is taken; 0: 5 */
	int lookup_tries;          /* label lookups after an unclear answer; 0: 4 */
	long lookup_wait_ms;       /* first wait between lookups; 0: 1000 */
	/* One rent per label at a time: a lock file in this folder (the
	 * state folder's locks/); NULL: no lock. */
	const char *lock_dir;
	/* Stops the rent before its next create (ERR_CANCELLED), never during
	 * one or the label looks that follow it: those decide whether an
	 * instance bills. NULL: never. */
	struct cancel *cancel;
	/* Called before each create is sent, with the offer and its price, so
	 * the caller can record the intent first; a non-zero return sends no
	 * create and ends the rent with that code. NULL: none. */
	int (*on_create)(void *arg, long long offer, double price, struct err *e);
	/* Called as soon as the rented instance's id is known (created, found
	 * by its label after an unclear answer, or adopted: offer 0). */
	void (*on_created)(void *arg, long long offer, long long instance_id);
	void *hook_arg;
};

struct vast_rent_result {
	long long instance_id;
	long long offer_id;
	bool adopted;              /* found by label rather than created by this call */
	int creates;               /* create calls sent */
	int destroyed;             /* stray instances destroyed on the way */
};

/* NAME as a ferry label: "ferry-" put in front when missing, so that the
 * name a person rents with also finds and destroys what it made. UTF-8
 * without control characters, at most 256 bytes (Vast's limit). *out is
 * the caller's. */
int vast_label(const char *name, char **out, struct err *e);
/* A label of its own for a rent given none: ferry-YYYYmmdd-HHMMSS-xxxx. */
char *vast_label_new(void);

/* Offers for a rent of the best of a search (vastai query terms, ordered by
 * `order` or the server's score), in the server's order, with each
 * offer's min_bid; only machines with room for o->disk_gb. ERR_NOTFOUND
 * when none matches. */
int vast_rent_search(struct vast_client *c, const char *const *terms, size_t nterms,
		     const char *order, const struct vast_rent_opts *o, long long **ids,
		     double **min_bids, size_t *n, struct err *e);
/* The offers that can run `wl`, best first by the cost of the whole job: a
 * search of `terms` (vastai query words) with the job's floors and excluded
 * machines added (vast_rank_filters), ranked by vast_rank. *offers (*n) is
 * what the search answered, *est (*nest) the ranking, each est[i].offer an
 * index into *offers; the caller frees both. ERR_NOTFOUND when no offer can
 * run the job. */
int vast_rent_rank(struct vast_client *c, const char *const *terms, size_t nterms,
		   const struct vast_workload *wl, bool interruptible, struct vast_offer **offers,
		   size_t *n, struct vast_estimate **est, size_t *nest, struct err *e);
/* The minimum bid of one offer, for an interruptible rent given no bid. */
int vast_offer_min_bid(struct vast_client *c, long long id, double *min_bid, struct err *e);
/* Add NAME=VALUE to a rent's environment object: each at most 256
 * characters, UTF-8; the value is registered as a secret (any value may
 * be a credential). */
int vast_rent_env_add(json_t *env, const char *name, const char *value, struct err *e);

/* The body of PUT /asks/{id}/ for these options (and the bid price, when
 * interruptible). The caller owns it. */
json_t *vast_rent_body(const struct vast_rent_opts *o, double price);

/* Rent one of `offers` (tried in order; `min_bids` may be NULL or give each
 * offer's min_bid for interruptible rents). */
int vast_rent(struct vast_client *c, const long long *offers, const double *min_bids, size_t n,
	      const struct vast_rent_opts *o, struct vast_rent_result *res, struct err *e);

#endif
