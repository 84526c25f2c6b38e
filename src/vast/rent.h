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

#include "common/err.h"
#include "vast/client.h"

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

/* The body of PUT /asks/{id}/ for these options (and the bid price, when
 * interruptible). The caller owns it. */
json_t *vast_rent_body(const struct vast_rent_opts *o, double price);

/* Rent one of `offers` (tried in order; `min_bids` may be NULL or give each
 * offer's min_bid for interruptible rents). */
int vast_rent(struct vast_client *c, const long long *offers, const double *min_bids, size_t n,
	      const struct vast_rent_opts *o, struct vast_rent_result *res, struct err *e);

#endif
