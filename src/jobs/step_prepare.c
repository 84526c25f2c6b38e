/* PREPARING: check the dataset and pack it (ds_check_and_pack, reusing the
 * verdicts of earlier checks; the same dataset packs once). A dataset that
 * is not ready fails the job here, before any money is spent. */
#include "jobs/steps.h"

#include "dataset/pack.h"

/* The report without its findings list, for the job's data. */
static json_t *prepare_summary(const struct ds_dataset *ds)
{
	json_t *rep = ds_report_json(ds);

	json_object_del(rep, "findings");
	return rep;
}

int step_prepare(struct job_ctx *c, struct step_result *res, struct err *e)
{
	struct ds_pack_opts po = { 0 };
	struct ds_pack_result pr = { 0 };
	struct ds_dataset *ds = NULL;
	struct step_progress jp;
	int r;

	if (c->spec.trainer_config)
		return step_because(res, "not_built", err_set(e, ERR_FAIL,
				 "a trainer config of your own (trainer_config) is not built yet in "
				 "the job engine; give a recipe and its params"));
	if (c->spec.unready != JOB_UNREADY_FAIL)
		return step_because(res, "not_built", err_set(e, ERR_FAIL,
				 "unready '%s' is not built yet in the job engine; repair the "
				 "dataset first (ferry dataset fix) or give unready 'fail'",
				 job_unready_name(c->spec.unready)));
	step_progress_init(&jp, c);
	ds_pack_opts_from_config(&po, c->cfg);
	po.pg = &jp.pg;
	po.cancel = c->cancel;
	r = ds_check_and_pack(c->cfg, c->spec.dataset, &po, &ds, &pr, e);
	step_progress_release(&jp);
	if (ds) {
		json_object_set_new(c->data, "dataset_check", prepare_summary(ds));
		/* Every finding, once, for `ferry show` and the page. */
		job_event(c, "dataset", ds_report_json(ds), NULL);
	}
	if (r == ERR_FAIL && ds && !ds->ready)
		r = step_because(res, "dataset_not_ready", r);
	else if (r && !ds && r != ERR_CANCELLED)
		r = step_because(res, "dataset_missing", r);
	if (!r)
		json_object_set_new(c->data, "dataset",
				    json_pack("{s:s, s:s, s:I, s:I, s:b}", "archive", pr.archive,
					      "sha256", pr.sha256, "bytes", (json_int_t)pr.bytes,
					      "files", (json_int_t)pr.files, "reused", pr.reused));
	ds_pack_result_release(&pr);
	ds_free(ds);
	return r;
}
