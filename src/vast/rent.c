#include "vast/rent.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/xalloc.h"

json_t *vast_rent_body(const struct vast_rent_opts *o, double price)
{
	json_t *b = json_pack("{s:s, s:s, s:f, s:s, s:s, s:s}", "client_id", "me", "image",
			      o->image, "disk", o->disk_gb > 0 ? o->disk_gb : 40.0, "label",
			      o->label, "runtype", "ssh_direc ssh_proxy", "target_state",
			      "running");

	json_object_set_new(b, "env", o->env ? json_deep_copy(o->env) : json_object());
	if (o->onstart)
		json_object_set_new(b, "onstart", json_string(o->onstart));
	if (o->interruptible)
		json_object_set_new(b, "price", json_real(price));
	/* Without it an interruptible create that cannot be scheduled leaves a
	 * stopped instance that bills for storage. */
	json_object_set_new(b, "cancel_unavail", json_true());
	return b;
}

/* Whether a create error says someone else took the offer. */
static bool rent_offer_taken(long status, const json_t *answer)
{
	const char *code = vast_error_code(answer);
	const char *msg = json_str(answer, "msg", json_str(answer, "message", ""));

	if (!strcmp(code, "no_such_ask"))
		return true;
	if ((status == 404 || status == 410) && !*code)
		return true;
	return (strcasestr(msg, "offer") || strcasestr(msg, "ask")) &&
	       (strcasestr(msg, "unavailable") || strcasestr(msg, "not available") ||
		strcasestr(msg, "no longer") || strcasestr(msg, "already rented") ||
		strcasestr(msg, "already been rented"));
}

/* Look the label up `tries` times, waiting longer each time, until some
 * instance carries it. */
static int rent_lookup(struct vast_client *c, const struct vast_rent_opts *o, int tries,
		       struct vast_instance **found, size_t *n, struct err *e)
{
	long wait = o->lookup_wait_ms > 0 ? o->lookup_wait_ms : 1000;
	int r = 0;

	for (int look = 1; look <= tries; look++) {
		r = vast_list_instances(c, o->label, found, n, e);
		if (r || *n)
			return r;
		if (look < tries) {
			log_info("no instance labelled %s yet (look %d of %d)", o->label, look, tries);
			http_sleep_ms(wait);
			wait = wait * 2 > 4000 ? 4000 : wait * 2;
		}
	}
	return 0;
}

/* Destroy every instance in `v` except `keep`, confirming each is gone. */
static int rent_destroy_all(struct vast_client *c, const struct vast_instance *v, size_t n,
			    long long keep, struct vast_rent_result *res, struct err *e)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		struct err de = { 0 };

		if (v[i].id == keep)
			continue;
		log_warn("destroying instance %lld (label %s, %s): not the one this rent keeps",
			 v[i].id, v[i].label ? v[i].label : "",
			 v[i].actual_status ? v[i].actual_status : "provisioning");
		if (vast_destroy_confirm(c, v[i].id, &de)) {
			r = err_set(e, de.code, "%s", de.msg);
			continue;
		}
		res->destroyed++;
	}
	return r;
}

/* The newest instance (highest id) of a lookup. */
static long long rent_newest(const struct vast_instance *v, size_t n)
{
	long long id = 0;

	for (size_t i = 0; i < n; i++)
		if (v[i].id > id)
			id = v[i].id;
	return id;
}

/* One create on one offer. Returns 0 with *id when an instance is ours;
 * *next when the caller should go on to the next offer. */
static int rent_try_offer(struct vast_client *c, long long offer, double price,
			  const struct vast_rent_opts *o, int lookups, long long *id, bool *next,
			  struct vast_rent_result *res, struct err *e)
{
	json_t *body = vast_rent_body(o, price), *ans = NULL;
	struct vast_instance *found = NULL;
	size_t nfound = 0;
	long status = 0;
	bool taken = false, unclear;
	int r, lr;

	*id = 0;
	*next = false;
	log_info("renting offer %lld as %s", offer, o->label);
	r = vast_create_instance(c, offer, body, &ans, &status, e);
	res->creates++;
	if (!r) {
		json_t *nc = json_object_get(ans, "new_contract");

		if (json_is_integer(nc) && json_integer_value(nc) > 0) {
			*id = json_integer_value(nc);
			goto out;
		}
		log_warn("Vast accepted the create of offer %lld but named no instance; "
			 "looking for label %s", offer, o->label);
		unclear = true;
	} else if (r == ERR_CONFIG) {
		goto out;
	} else {
		taken = status && rent_offer_taken(status, ans);
		unclear = status == 0 || status >= 500;
		log_warn("create of offer %lld failed: %s", offer, e->msg);
	}
	/* Whatever the answer said, an instance may exist now. */
	lr = rent_lookup(c, o, taken ? 1 : (unclear ? lookups : 2), &found, &nfound,
			 &(struct err){ 0 });
	if (lr) {
		r = err_set(e, lr, "create of offer %lld gave no clear answer and the label %s "
			    "cannot be looked up; not creating again", offer, o->label);
		goto out;
	}
	if (!r && nfound) {
		/* A success without an id: the instance is ours. */
		*id = rent_newest(found, nfound);
		log_info("found instance %lld by its label %s", *id, o->label);
		r = rent_destroy_all(c, found, nfound, *id, res, e);
		goto out;
	}
	if (!r) {
		r = err_set(e, ERR_FAIL,
			    "Vast accepted the create of offer %lld but named no instance, and "
			    "none labelled %s appeared after %d looks; not creating another. "
			    "Check `ferry instances`", offer, o->label, lookups);
		goto out;
	}
	if (nfound) {
		log_warn("the failed create of offer %lld left %zu instance(s) behind; "
			 "destroying", offer, nfound);
		lr = rent_destroy_all(c, found, nfound, 0, res, e);
		if (lr) {
			r = lr;
			goto out;
		}
	}
	*next = taken || unclear;
out:
	vast_instances_free(found, nfound);
	json_decref(body);
	json_decref(ans);
	return r;
}

int vast_rent(struct vast_client *c, const long long *offers, const double *min_bids, size_t n,
	      const struct vast_rent_opts *o, struct vast_rent_result *res, struct err *e)
{
	struct vast_instance *live = NULL;
	size_t nlive = 0;
	int lookups = o->lookup_tries > 0 ? o->lookup_tries : 4;
	size_t max = (size_t)(o->max_offers > 0 ? o->max_offers : 5);
	long long id = 0;
	int r;

	memset(res, 0, sizeof(*res));
	if (!o->label || !*o->label || !o->image || !*o->image)
		return err_set(e, ERR_USAGE, "renting needs a label and an image");
	r = vast_list_instances(c, o->label, &live, &nlive, e);
	if (r)
		goto out;
	if (nlive && !o->adopt) {
		r = err_set(e, ERR_EXISTS,
			    "an instance labelled %s already exists (id %lld); destroy it with "
			    "`ferry destroy %lld` or choose another label", o->label, live[0].id,
			    live[0].id);
		goto out;
	}
	if (nlive) {
		id = rent_newest(live, nlive);
		res->adopted = true;
		log_info("instance %lld already carries the label %s; keeping it", id, o->label);
	}
	if (o->pubkey && !id) {
		bool added = false;

		r = vast_ssh_key_register(c, o->pubkey, NULL, &added, e);
		if (r) {
			err_prefix(e, "registering the SSH key");
			goto out;
		}
		if (added)
			log_info("registered the SSH key on the Vast.ai account");
	}
	for (size_t i = 0; !id && i < n && i < max; i++) {
		double price = o->bid > 0 ? o->bid : (min_bids ? min_bids[i] : 0);
		bool next = false;

		if (o->interruptible && price <= 0) {
			r = err_set(e, ERR_USAGE, "an interruptible rent needs a bid: give --bid");
			goto out;
		}
		r = rent_try_offer(c, offers[i], price, o, lookups, &id, &next, res, e);
		if (!r && id) {
			res->offer_id = offers[i];
			break;
		}
		if (r && !next)
			goto out;
		if (i + 1 < n && i + 1 < max)
			log_info("trying the next offer");
	}
	if (!id) {
		if (!r)
			r = err_set(e, ERR_FAIL, "no offer to rent");
		else
			err_prefix(e, "no offer could be rented (%zu tried); last",
				   n < max ? n : max);
		goto out;
	}
	/* A label has one live instance: any other is a stray to destroy. */
	vast_instances_free(live, nlive);
	live = NULL;
	nlive = 0;
	r = vast_list_instances(c, o->label, &live, &nlive, e);
	if (!r)
		r = rent_destroy_all(c, live, nlive, id, res, e);
	if (r)
		goto out;
	res->instance_id = id;
	{
		/* The label is what finds this instance again after a crash:
		 * make sure it carries it. */
		struct vast_instance in;
		struct err le = { 0 };

		if (!vast_show_instance(c, id, &in, &le) &&
		    (!in.label || strcmp(in.label, o->label)) &&
		    vast_set_label(c, id, o->label, &le))
			log_warn("setting label %s on instance %lld: %s", o->label, id, le.msg);
		vast_instance_release(&in);
	}
	if (o->pubkey) {
		struct err ke = { 0 };

		/* The account key is copied into new instances; attaching makes sure. */
		if (vast_attach_key(c, id, o->pubkey, &ke))
			log_warn("attaching the SSH key to instance %lld: %s", id, ke.msg);
	}
out:
	vast_instances_free(live, nlive);
	if (r && id && !res->instance_id)
		res->instance_id = 0;
	return r;
}
