/* RENTING: the machine the job runs on.
 *
 * On Vast: rank the offers for this job by the cost of the whole job
 * (recipe_offer_needs, vast_rent_rank; machines this job left excluded),
 * then rent through vast_rent, which never creates blindly after an unclear
 * answer and never leaves a label with two instances. Before each create the
 * instance's row is written (instance id 0: the intent) with a `create`
 * step; as soon as the id is known the row is filled in. A restart that
 * finds the intent open rents with adopt, so the label is looked up before
 * anything else is created.
 *
 * On the ssh and local providers the machine is the user's own: recorded as
 * the job's instance (no price) so that every provider is released alike. */
#include "jobs/steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "recipe/recipe.h"
#include "recipe/render.h"
#include "vast/keys.h"
#include "vast/rent.h"

#define RENT_OFFERS_MAX 5

struct rent_hook {
	struct job_ctx *c;
	struct queue_instance in;
	const struct vast_offer *offers;
	size_t n;
	long long step;
	int r;                    /* the first error of on_created */
	struct err e;
};

static int rent_on_create(void *arg, long long offer, double price, struct err *e)
{
	struct rent_hook *h = arg;
	json_t *intent;
	int r;

	h->in.offer_id = offer;
	h->in.dph = price;
	h->in.machine_id = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->offers[i].id == offer)
			h->in.machine_id = h->offers[i].machine_id;
	r = h->c->q->ops->instance_put(h->c->q, h->c->lease, &h->in, e);
	if (r)
		return r;
	intent = json_pack("{s:s, s:I, s:f}", "label", h->in.label, "offer", (json_int_t)offer,
			   "dph", price);
	r = h->c->q->ops->step_begin(h->c->q, h->c->lease, "create", intent, &h->step, e);
	json_decref(intent);
	return r;
}

static void rent_on_created(void *arg, long long offer, long long id)
{
	struct rent_hook *h = arg;
	json_t *outcome = json_pack("{s:I, s:I}", "instance", (json_int_t)id, "offer",
				    (json_int_t)offer);
	int r;

	h->in.instance_id = id;
	h->in.created_at = clock_wall_s();
	if (offer)
		h->in.offer_id = offer;
	r = h->c->q->ops->instance_put(h->c->q, h->c->lease, &h->in, &h->e);
	if (!r && h->step)
		r = h->c->q->ops->step_end(h->c->q, h->c->lease, h->step, outcome, &h->e);
	if (r && !h->r)
		h->r = r;
	json_decref(outcome);
}

/* The machines this job has left, kept in its data by RECOVERING. */
static long long *rent_excluded(struct job_ctx *c, size_t *n)
{
	json_t *v = json_object_get(c->data, "excluded_machines");
	long long *ids = xcalloc(json_array_size(v) + 1, sizeof(*ids));
	size_t i;
	json_t *m;

	json_array_foreach(v, i, m)
		ids[i] = json_integer_value(m);
	*n = json_array_size(v);
	return ids;
}

/* The job's steps: its params', else the recipe's default. */
static unsigned long long rent_steps(const struct job_ctx *c)
{
	const char *v = json_string_value(json_object_get(c->spec.params, "steps"));
	size_t n = 0;
	const struct recipe_param_info *t = recipe_param_table(&n);

	for (size_t i = 0; !v && i < n; i++)
		if (!strcmp(t[i].name, "steps"))
			v = t[i].dflt;
	return v ? strtoull(v, NULL, 10) : 1000;
}

static int rent_vast(struct job_ctx *c, struct step_result *res, struct err *e)
{
	const struct recipe *rc = recipe_find(c->spec.recipe);
	json_t *ds = job_data_obj(c, "dataset");
	struct rent_hook h = { .c = c };
	struct vast_rent_opts ro = { 0 };
	struct vast_rent_result rr = { 0 };
	struct vast_workload wl;
	struct vast_offer *offers = NULL;
	struct vast_estimate *est = NULL;
	struct vast_client *vc;
	long long ids[RENT_OFFERS_MAX];
	double bids[RENT_OFFERS_MAX];
	size_t n = 0, nest = 0, nids = 0, nex = 0;
	char *pub = NULL, *locks = NULL;
	long long *excluded = rent_excluded(c, &nex);
	int r;

	/* Rented before a restart: BOOTING looks at it. */
	if (!job_instance(c, &h.in, NULL) && h.in.instance_id) {
		free(excluded);
		return 0;
	}
	if (!h.in.label[0])
		job_label(c->lease->job, h.in.label);
	snprintf(h.in.provider, sizeof(h.in.provider), "vast");
	recipe_offer_needs(rc, (unsigned long long)json_integer_value(json_object_get(ds, "bytes")),
			   rent_steps(c), &wl);
	wl.exclude_machines = excluded;
	wl.n_exclude = nex;
	r = job_vast(c, &vc, e);
	if (!r)
		r = vast_rent_rank(vc, (const char *const *)c->spec.query.v, c->spec.query.n, &wl,
				   c->spec.interruptible, &offers, &n, &est, &nest, e);
	if (r == ERR_NOTFOUND)
		r = step_because(res, "no_offer", r);
	if (r)
		goto out;
	for (size_t i = 0; i < nest && nids < RENT_OFFERS_MAX; i++, nids++) {
		ids[nids] = offers[est[i].offer].id;
		bids[nids] = c->spec.bid > 0 ? c->spec.bid : offers[est[i].offer].min_bid;
	}
	json_object_set_new(c->data, "estimate_usd", json_real(est[0].total_usd));
	json_object_set_new(c->data, "estimate", vast_estimate_json(&est[0], &offers[est[0].offer]));
	r = vast_pubkey_read(config_get(c->cfg, "ssh.key_path"), &pub, e);
	if (r) {
		r = step_because(res, "config", r);
		goto out;
	}
	locks = xasprintf("%s/locks", config_get(c->cfg, "state_dir"));
	h.offers = offers;
	h.n = n;
	ro = (struct vast_rent_opts){ .label = h.in.label, .image = rc->image,
				      .disk_gb = wl.disk_gb, .interruptible = c->spec.interruptible,
				      .pubkey = pub, .adopt = true, .lock_dir = locks,
				      .cancel = c->cancel, .on_create = rent_on_create,
				      .on_created = rent_on_created, .hook_arg = &h };
	r = vast_rent(vc, ids, bids, nids, &ro, &rr, e);
	if (!r && h.r)
		r = err_set(e, h.r, "%s", h.e.msg);
	if (!r)
		json_object_set_new(c->data, "rent",
				    json_pack("{s:I, s:I, s:b, s:i, s:i}", "instance",
					      (json_int_t)rr.instance_id, "offer",
					      (json_int_t)rr.offer_id, "adopted", rr.adopted,
					      "creates", rr.creates, "strays_destroyed",
					      rr.destroyed));
	else if (r != ERR_CANCELLED && r != ERR_CHANGED)
		r = step_because(res, "rent", r);
out:
	vast_offers_free(offers, n);
	free(est);
	free(pub);
	free(locks);
	free(excluded);
	return r;
}

int step_rent(struct job_ctx *c, struct step_result *res, struct err *e)
{
	struct queue_instance in = { 0 };
	int r;

	if (c->spec.provider == JOB_PROVIDER_VAST)
		return rent_vast(c, res, e);
	/* Recorded before a restart: nothing more to do. */
	r = job_instance(c, &in, e);
	if (r != ERR_NOTFOUND)
		return r;
	err_clear(e);
	job_label(c->lease->job, in.label);
	snprintf(in.provider, sizeof(in.provider), "%s", job_provider_name(c->spec.provider));
	in.created_at = clock_wall_s();
	r = c->q->ops->instance_put(c->q, c->lease, &in, e);
	if (!r)
		r = job_event(c, "instance",
			      json_pack("{s:s, s:s?}", "provider", in.provider, "target",
					c->spec.target),
			      e);
	return r;
}
