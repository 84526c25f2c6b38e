#include "vast/rent.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "vast/query.h"

json_t *vast_rent_body(const struct vast_rent_opts *o, double price)
{
	json_t *b = json_pack("{s:s, s:s, s:f, s:s, s:s, s:s}", "client_id", "me", "image",
			      o->image, "disk", o->disk_gb > 0 ? o->disk_gb : 40.0, "label",
			      o->label, "runtype", "ssh_direc ssh_proxy", "target_state",
			      "running");
	json_t *env = o->env ? json_deep_copy(o->env) : json_object();

	/* Strings that are not UTF-8 make json_pack fail: no body, no create. */
	if (!b || !env) {
		json_decref(b);
		json_decref(env);
		return NULL;
	}
	json_object_set_new(b, "env", env);
	if (o->onstart && json_object_set_new(b, "onstart", json_string(o->onstart))) {
		json_decref(b);
		return NULL;
	}
	if (o->interruptible)
		json_object_set_new(b, "price", json_real(price));
	/* Without it an interruptible create that cannot be scheduled leaves a
	 * stopped instance that bills for storage. */
	json_object_set_new(b, "cancel_unavail", json_true());
	return b;
}

/* Whether a create error says someone else took the offer. */
int vast_label(const char *name, char **out, struct err *e)
{
	char *label;

	*out = NULL;
	if (!str_utf8_valid(name, strlen(name)) || str_has_ctrl(name))
		return err_set(e, ERR_USAGE, "the label must be UTF-8 text without control characters");
	label = str_starts_with(name, "ferry-") ? xstrdup(name) : xasprintf("ferry-%s", name);
	if (strlen(label) > 256) {
		free(label);
		return err_set(e, ERR_USAGE, "the label is longer than Vast's 256 characters "
			       "(with ferry- in front)");
	}
	*out = label;
	return 0;
}

char *vast_label_new(void)
{
	unsigned int rnd = 0;
	time_t now = time(NULL);
	struct tm tm;
	char ts[32];

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)now;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%d-%H%M%S", &tm);
	return xasprintf("ferry-%s-%04x", ts, rnd & 0xffff);
}

static bool rent_offer_taken(long status, const json_t *answer)
{
	const char *code = vast_error_code(answer);
	const char *msg = json_str(answer, "msg", json_str(answer, "message", ""));

	if (!strcmp(code, "no_such_ask"))
		return true;
	return (status == 404 || status == 410) &&
	       (strcasestr(msg, "offer") || strcasestr(msg, "ask") ||
		strcasestr(msg, "instance type")) &&
	       (strcasestr(msg, "unavailable") || strcasestr(msg, "not available") ||
		strcasestr(msg, "no longer") || strcasestr(msg, "already rented") ||
		strcasestr(msg, "already been rented"));
}

/* What one rent remembers across offers. */
struct rent_state {
	struct vast_client *c;
	const struct vast_rent_opts *o;
	struct vast_rent_result *res;
	long long *gone;         /* destroyed by this rent: lists may lag behind */
	size_t ngone, agone;
	int lookups;
};

static bool rent_is_gone(const struct rent_state *st, long long id)
{
	for (size_t i = 0; i < st->ngone; i++)
		if (st->gone[i] == id)
			return true;
	return false;
}

/* Live instances with the label, leaving out those this rent destroyed. */
static int rent_list(struct rent_state *st, struct vast_instance **v, size_t *n, struct err *e)
{
	int r = vast_list_instances(st->c, st->o->label, v, n, e);

	for (size_t i = 0; !r && i < *n;) {
		if (!rent_is_gone(st, (*v)[i].id)) {
			i++;
			continue;
		}
		vast_instance_release(&(*v)[i]);
		memmove(&(*v)[i], &(*v)[i + 1], (*n - i - 1) * sizeof(**v));
		(*n)--;
	}
	return r;
}

/* Look the label up `tries` times, waiting longer each time, until some
 * instance carries it. */
static int rent_lookup(struct rent_state *st, int tries, struct vast_instance **found,
		       size_t *n, struct err *e)
{
	struct backoff wait = { .first_ms = st->o->lookup_wait_ms > 0 ? st->o->lookup_wait_ms : 1000,
				.max_ms = 4000 };
	int r = 0;

	for (int look = 1; look <= tries; look++) {
		r = rent_list(st, found, n, e);
		if (r || *n)
			return r;
		if (look < tries) {
			log_info("no instance labelled %s yet (look %d of %d)", st->o->label, look,
				 tries);
			/* Never cancelled: a create was sent, and only these looks
			 * can tell whether it left an instance that bills. */
			backoff_sleep(&wait, NULL);
		}
	}
	return 0;
}

static int rent_destroy(struct rent_state *st, long long id, const char *why, struct err *e)
{
	struct err de = { 0 };

	log_warn("destroying instance %lld (label %s): %s", id, st->o->label, why);
	if (vast_destroy_confirm(st->c, id, &de))
		return err_set(e, de.code, "%s", de.msg);
	ALLOC_GROW(st->gone, st->ngone + 1, st->agone);
	st->gone[st->ngone++] = id;
	st->res->destroyed++;
	return 0;
}

/* Destroy every instance in `v` except `keep`, confirming each is gone. */
static int rent_destroy_all(struct rent_state *st, const struct vast_instance *v, size_t n,
			    long long keep, const char *why, struct err *e)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		int rd = v[i].id != keep ? rent_destroy(st, v[i].id, why, e) : 0;

		if (rd)
			r = rd;
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
 * on failure *next says whether trying another offer is safe. */
static int rent_try_offer(struct rent_state *st, long long offer, double price, long long *id,
			  bool *next, struct err *e)
{
	const struct vast_rent_opts *o = st->o;
	json_t *body = vast_rent_body(o, price), *ans = NULL;
	struct vast_instance *found = NULL;
	size_t nfound = 0;
	struct err le = { 0 };
	long status = 0;
	long long named;
	bool taken = false, unclear, no_id;
	int r, lr;

	*id = 0;
	*next = false;
	if (!body)
		return err_set(e, ERR_USAGE, "the image, label, environment and onstart script "
			       "must be UTF-8 text");
	if (o->on_create) {
		r = o->on_create(o->hook_arg, offer, price, e);
		if (r)
			goto out;
	}
	log_info("renting offer %lld as %s", offer, o->label);
	r = vast_create_instance(st->c, offer, body, &ans, &status, e);
	st->res->creates++;
	/* It can start, stop and destroy the instance: a secret. */
	if (json_is_string(json_object_get(ans, "instance_api_key")))
		log_register_secret(json_str(ans, "instance_api_key", ""));
	/* new_contract, whatever the status: some failures name what they left. */
	named = vast_json_id(json_object_get(ans, "new_contract"));
	if (!r && named) {
		*id = named;
		goto out;
	}
	if (r == ERR_CONFIG)
		goto out; /* the key was refused: nothing was created */
	no_id = !r;
	taken = r && status && rent_offer_taken(status, ans);
	/* A 2xx that was not JSON, a 5xx or no answer at all: it may have worked. */
	unclear = no_id || status == 0 || status >= 500 || (status >= 200 && status <= 299);
	if (no_id)
		log_warn("Vast accepted the create of offer %lld but named no instance; "
			 "looking for label %s", offer, o->label);
	else
		log_warn("create of offer %lld failed: %s", offer, err_msg(e));
	if (r && named && (lr = rent_destroy(st, named, "the failed create left it", &le))) {
		r = err_set(e, lr, "the failed create of offer %lld left instance %lld, which "
			    "could not be destroyed and may bill: %s", offer, named, le.msg);
		goto out;
	}
	/* Whatever the answer said, an instance may exist now. */
	lr = rent_lookup(st, taken ? 1 : st->lookups, &found, &nfound, &le);
	if (lr) {
		if (!r)
			r = lr;
		err_set(e, r, "%s; the label %s could not be looked up after it (%s), so an "
			"instance may exist and bill: check `ferry instances --label %s`",
			r == lr ? "the create gave no clear answer" : err_msg(e), o->label, le.msg,
			o->label);
		goto out;
	}
	if (no_id) {
		if (nfound) {
			*id = rent_newest(found, nfound);
			log_info("found instance %lld by its label %s", *id, o->label);
			r = rent_destroy_all(st, found, nfound, *id, "a second instance with the label",
					     e);
		} else {
			r = err_set(e, ERR_FAIL,
				    "Vast accepted the create of offer %lld but named no instance, "
				    "and none labelled %s appeared after %d looks; ferry does not "
				    "create another. If one appears, `ferry rent --label %s --adopt` "
				    "keeps it and `ferry destroy --label %s` removes it",
				    offer, o->label, st->lookups, o->label, o->label);
		}
		goto out;
	}
	if (nfound) {
		log_warn("the failed create of offer %lld left %zu instance(s) behind", offer,
			 nfound);
		lr = rent_destroy_all(st, found, nfound, 0, "the failed create left it", &le);
		if (lr) {
			r = err_set(e, lr, "the failed create of offer %lld left an instance that "
				    "could not be destroyed and may bill: %s", offer, le.msg);
			goto out;
		}
	}
	/* One create makes at most one instance: once what it left is gone (or
	 * someone else took the offer), another offer is safe. An unclear
	 * answer that left nothing visible is not: the instance may still come. */
	if (taken || (unclear && (nfound || named))) {
		*next = true;
	} else if (unclear) {
		err_prefix(e, "the create gave no clear answer and no instance labelled %s "
			   "appeared after %d looks; ferry does not create again, since one may "
			   "still appear and bill (`ferry instances --label %s` shows it, "
			   "`ferry destroy --label %s` removes it)", o->label, st->lookups,
			   o->label, o->label);
	}
out:
	vast_instances_free(found, nfound);
	json_decref(body);
	json_decref(ans);
	return r;
}

/* After a rent that failed having sent creates: anything with the label
 * now is a leftover of ours. */
static void rent_sweep(struct rent_state *st)
{
	struct vast_instance *v = NULL;
	size_t n = 0;
	struct err se = { 0 };

	if (rent_list(st, &v, &n, &se))
		log_warn("could not look for leftovers labelled %s: %s", st->o->label, se.msg);
	else if (rent_destroy_all(st, v, n, 0, "left over by this failed rent", &se))
		log_error("%s", se.msg);
	vast_instances_free(v, n);
}

/* Two ferry processes renting one label would each destroy the other's
 * instance as a stray: one at a time, by a lock named after the label. */
static int rent_lock(const struct vast_rent_opts *o, int *fd, struct err *e)
{
	char *name, *path;
	int r;

	*fd = -1;
	if (!o->lock_dir)
		return 0;
	name = xstrdup(o->label);
	for (char *p = name; *p; p++)
		if (*p == '/')
			*p = '_';
	path = xasprintf("%s/rent-%s", o->lock_dir, name);
	r = fsx_lock(path, fd, e);
	if (r == ERR_EXISTS)
		err_set(e, r, "another ferry is renting label %s right now", o->label);
	free(path);
	free(name);
	return r;
}

int vast_rent_search(struct vast_client *c, const char *const *terms, size_t nterms,
		     const char *order, const struct vast_rent_opts *o, long long **ids,
		     double **min_bids, size_t *n, struct err *e)
{
	struct vast_query_opts qo = { .order = order, .type = o->interruptible ? "bid" : NULL,
				      .limit = 20, .storage_gb = o->disk_gb > 0 ? o->disk_gb : 40 };
	struct vast_offer *offers = NULL;
	json_t *q = NULL, *answer = NULL;
	size_t no = 0;
	int r;

	*ids = NULL;
	*min_bids = NULL;
	*n = 0;
	r = vast_query_build(terms, nterms, &qo, &q, e);
	if (!r && !json_object_get(q, "disk_space")) {
		/* Only machines with room for the disk asked for. */
		char term[64];

		snprintf(term, sizeof(term), "disk_space>=%g", qo.storage_gb);
		r = vast_query_parse(term, q, e);
	}
	if (!r)
		r = vast_search_offers(c, q, &answer, e);
	if (!r)
		r = vast_offers_read(answer, &offers, &no, e);
	if (!r && !no)
		r = err_set(e, ERR_NOTFOUND, "no offer matches the query");
	if (!r) {
		*ids = xcalloc(no, sizeof(**ids));
		*min_bids = xcalloc(no, sizeof(**min_bids));
		for (size_t i = 0; i < no; i++) {
			(*ids)[i] = offers[i].id;
			(*min_bids)[i] = offers[i].min_bid;
		}
		*n = no;
	}
	vast_offers_free(offers, no);
	json_decref(q);
	json_decref(answer);
	return r;
}

int vast_rent_rank(struct vast_client *c, const char *const *terms, size_t nterms,
		   const struct vast_workload *wl, bool interruptible, struct vast_offer **offers,
		   size_t *n, struct vast_estimate **est, size_t *nest, struct err *e)
{
	struct vast_query_opts qo = { .type = interruptible ? "bid" : NULL, .limit = 64,
				      .storage_gb = wl->disk_gb > 0 ? wl->disk_gb : 40 };
	struct strv added = STRV_INIT;
	json_t *q = NULL, *answer = NULL;
	int r;

	*offers = NULL;
	*est = NULL;
	*n = *nest = 0;
	r = vast_query_build(terms, nterms, &qo, &q, e);
	if (!r)
		r = vast_rank_filters(wl, q, &added, e);
	for (size_t i = 0; !r && i < added.n; i++)
		log_info("offers: added %s", added.v[i]);
	if (!r)
		r = vast_search_offers(c, q, &answer, e);
	if (!r)
		r = vast_offers_read(answer, offers, n, e);
	if (!r)
		r = vast_rank(*offers, *n, wl, est, nest, e);
	if (!r && !*nest)
		r = err_set(e, ERR_NOTFOUND, "none of the %zu offers found can run %s", *n,
			    wl->recipe ? wl->recipe : "the job");
	strv_release(&added);
	json_decref(q);
	json_decref(answer);
	return r;
}

int vast_offer_min_bid(struct vast_client *c, long long id, double *min_bid, struct err *e)
{
	struct vast_offer *offers = NULL;
	json_t *q = json_pack("{s:{s:I}, s:s}", "id", "eq", (json_int_t)id, "type", "bid"),
	       *answer = NULL;
	size_t n = 0;
	int r = vast_search_offers(c, q, &answer, e);

	*min_bid = 0;
	if (!r)
		r = vast_offers_read(answer, &offers, &n, e);
	if (!r && (!n || offers[0].min_bid <= 0))
		r = err_set(e, ERR_NOTFOUND, "offer %lld %s; give a bid", id,
			    n ? "has no minimum bid" : "is not on the market");
	if (!r)
		*min_bid = offers[0].min_bid;
	vast_offers_free(offers, n);
	json_decref(q);
	json_decref(answer);
	return r;
}

int vast_rent_env_add(json_t *env, const char *name, const char *value, struct err *e)
{
	json_t *v;
	char *quoted;

	if (!*name)
		return err_set(e, ERR_USAGE, "an environment entry needs a name");
	if (strlen(name) > 256 || strlen(value) > 256)
		return err_set(e, ERR_USAGE, "%s: Vast takes at most 256 characters per name and "
			       "value", name);
	if (!str_utf8_valid(name, strlen(name)) || !str_utf8_valid(value, strlen(value)))
		return err_set(e, ERR_USAGE, "%s: names and values must be UTF-8 text", name);
	v = json_string(value);
	quoted = json_dumps(v, JSON_ENCODE_ANY);
	/* Any value may be a credential (a URL with a password, a token under
	 * an odd name): mask them all, also as JSON spells them. */
	log_register_secret(value);
	if (quoted && strlen(quoted) > 2) {
		quoted[strlen(quoted) - 1] = '\0';
		log_register_secret(quoted + 1);
	}
	free(quoted);
	json_object_set_new(env, name, v);
	return 0;
}

int vast_rent(struct vast_client *c, const long long *offers, const double *min_bids, size_t n,
	      const struct vast_rent_opts *o, struct vast_rent_result *res, struct err *e)
{
	struct rent_state st = { .c = c, .o = o, .res = res };
	struct vast_instance *live = NULL;
	size_t nlive = 0, tried = 0;
	size_t max = (size_t)(o->max_offers > 0 ? o->max_offers : 5);
	struct cancel *saved;
	long long id = 0;
	int r, lock_fd = -1;

	memset(res, 0, sizeof(*res));
	st.lookups = o->lookup_tries > 0 ? o->lookup_tries : 4;
	if (!o->label || !*o->label || !o->image || !*o->image)
		return err_set(e, ERR_USAGE, "renting needs a label and an image");
	if (o->interruptible && o->bid <= 0 && !min_bids)
		return err_set(e, ERR_USAGE, "an interruptible rent needs a bid");
	r = rent_lock(o, &lock_fd, e);
	if (r)
		return r;
	/* Once a create may have been sent, every call that follows decides
	 * whether an instance bills unknown: the client's own cancel is off
	 * for the rent, which stops on o->cancel between creates only. */
	saved = vast_client_cancel(c);
	vast_client_set_cancel(c, NULL);
	r = vast_list_instances(c, o->label, &live, &nlive, e);
	if (r)
		goto out;
	if (nlive && !o->adopt) {
		r = err_set(e, ERR_EXISTS,
			    "an instance labelled %s already exists (id %lld); adopt it, destroy "
			    "it with `ferry destroy %lld`, or choose another label",
			    o->label, live[0].id, live[0].id);
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
	for (size_t i = 0; !id && i < n && tried < max; i++) {
		double price = o->bid > 0 ? o->bid : (min_bids ? min_bids[i] : 0);
		bool next = false;

		if (o->interruptible && price <= 0) {
			log_info("offer %lld has no minimum bid; skipping it", offers[i]);
			continue;
		}
		/* Between creates only: one sent is always seen through. */
		if (cancel_is_set(o->cancel)) {
			r = err_set(e, ERR_CANCELLED, "renting was cancelled before offer %lld",
				    offers[i]);
			goto out;
		}
		tried++;
		r = rent_try_offer(&st, offers[i], price, &id, &next, e);
		if (!r && id) {
			res->offer_id = offers[i];
			break;
		}
		if (r && !next)
			goto out;
		if (i + 1 < n && tried < max)
			log_info("trying the next offer");
	}
	if (!id) {
		if (!r)
			r = err_set(e, ERR_FAIL, "no offer to rent%s",
				    o->interruptible ? " (none has a minimum bid; give a bid)" : "");
		else
			err_prefix(e, "no offer could be rented (%zu tried); last", tried);
		goto out;
	}
	/* Known from here on, so that a failure below still names it. */
	res->instance_id = id;
	if (o->on_created)
		o->on_created(o->hook_arg, res->offer_id, id);
	/* A label has one live instance: any other is a stray to destroy. */
	vast_instances_free(live, nlive);
	live = NULL;
	nlive = 0;
	r = rent_list(&st, &live, &nlive, e);
	if (!r)
		r = rent_destroy_all(&st, live, nlive, id, "a second instance with the label", e);
	if (r)
		goto out;
	{
		/* The label is what finds this instance again after a crash:
		 * make sure it carries it. */
		struct vast_instance in;
		struct err le = { 0 };

		if (vast_show_instance(c, id, &in, &le))
			log_warn("cannot check the label of instance %lld: %s", id, le.msg);
		else if ((!in.label || strcmp(in.label, o->label)) &&
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
	if (r && !res->instance_id && res->creates)
		rent_sweep(&st);
	vast_instances_free(live, nlive);
	free(st.gone);
	if (lock_fd >= 0)
		close(lock_fd);
	vast_client_set_cancel(c, saved);
	return r;
}
