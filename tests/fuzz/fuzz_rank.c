/* libFuzzer target for src/vast/rank: the input is read both as a GPU speed
 * table and as a /bundles/ answer. A table is parsed or refused with a
 * message; offers are ranked under a fixed job, and whatever comes out must
 * be sane: every index valid and used once, every term finite and
 * non-negative (the total may be infinite for absurd prices), the order
 * ascending. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/str.h"
#include "vast/model.h"
#include "vast/rank.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_table(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "RTX 4090", "rtx_4090", "*", "", "H100 SXM" };
	struct vast_gpu_table *t = NULL;
	const char *src, *note;
	struct err e;

	err_clear(&e);
	if (vast_gpu_table_parse((const char *)data, size, &t, &e)) {
		if (t || !e.msg[0] || e.code != ERR_FORMAT)
			abort();
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		double s = vast_gpu_table_lookup(t, names[i], 24564, 100, &src, &note);

		if (!(s > 0) || !isfinite(s) || !src || !note)
			abort();
	}
	vast_gpu_table_free(t);
}

static void check_terms(const struct vast_estimate *x)
{
	const double v[] = { x->s_per_step, x->inet_down_mbps, x->inet_up_mbps, x->hourly_usd,
			     x->reliability, x->model_s, x->boot_s, x->upload_s, x->train_s,
			     x->download_s, x->hours, x->p_fail };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!isfinite(v[i]) || v[i] < 0)
			abort();
	if (!(x->s_per_step > 0) || x->p_fail > 0.9 || x->reliability > 1 ||
	    x->inet_down_mbps < 10 || x->inet_up_mbps < 10)
		abort();
	if (isnan(x->total_usd) || x->total_usd < 0 || isnan(x->penalty_usd) ||
	    x->penalty_usd < 0 || isnan(x->run_usd))
		abort();
	if (!x->speed_source || !x->speed_note)
		abort();
}

static void check_rank(const uint8_t *data, size_t size)
{
	static const long long excluded[] = { 22990 };
	struct vast_offer *offers = NULL;
	struct vast_estimate *est = NULL;
	struct vast_workload job;
	size_t n = 0, m = 0;
	json_error_t je;
	struct err e;
	json_t *v = json_loadb((const char *)data, size, 0, &je), *q;
	struct strv added = STRV_INIT;
	unsigned char *seen;

	if (!v)
		return;
	memset(&job, 0, sizeof(job));
	job.recipe = "fuzz";
	job.vram_gb = 24;
	job.cuda_min = 12.1;
	job.driver_min = "535.86.05";
	job.disk_gb = 80;
	job.exclude_machines = excluded;
	job.n_exclude = 1;
	job.steps = 2000;
	job.checkpoint_steps = 250;
	job.upload_bytes = 100000000;
	job.model_bytes = 34000000000ULL;
	err_clear(&e);
	if (vast_offers_read(v, &offers, &n, &e) == 0) {
		if (vast_rank(offers, n, &job, &est, &m, &e))
			abort();
		if (m > n || (m && !est) || (!m && est))
			abort();
		seen = calloc(n + 1, 1);
		for (size_t i = 0; i < m; i++) {
			struct buf b = BUF_INIT;
			json_t *js;

			if (est[i].offer >= n || seen[est[i].offer]++)
				abort();
			check_terms(&est[i]);
			if (i && est[i].total_usd + 1e-4 < est[i - 1].total_usd)
				abort();
			vast_estimate_explain(&est[i], &offers[est[i].offer], &job, &b);
			buf_release(&b);
			js = vast_estimate_json(&est[i], &offers[est[i].offer]);
			if (!js)
				abort();
			json_decref(js);
		}
		free(seen);
		free(est);
		vast_offers_free(offers, n);
	}
	/* the input as a user's query: filters are added or refused whole */
	if (json_is_object(v)) {
		q = json_deep_copy(v);
		err_clear(&e);
		if (vast_rank_filters(&job, q, &added, &e) && (added.n || !e.msg[0]))
			abort();
		strv_release(&added);
		json_decref(q);
	}
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_set_level(LOG_ERROR);
	check_table(data, size);
	check_rank(data, size);
	return 0;
}
