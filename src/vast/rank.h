/* Whole-job offer ranking: add a training job's needs to an offer search,
 * then rank the offers by the estimated cost of the whole job (start-up,
 * transfers, training, the chance of a failed host), not by $/hour.
 * The model, every term and its limits: docs/offer-ranking.md. The
 * seconds-per-step figures live in src/vast/gpu_speed.tsv, compiled in. */
#ifndef FERRY_VAST_RANK_H
#define FERRY_VAST_RANK_H

#include <jansson.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/str.h"
#include "vast/model.h"

/* A workload: what a training job needs from a machine and what it moves;
 * filled from a recipe by recipe_offer_needs. Zero means "not needed" or "use
 * the default" as noted. */
struct vast_workload {
	const char *recipe;          /* name, for messages; NULL: "the job" */
	double vram_gb;              /* per GPU, e.g. 24; 0: no floor */
	double cuda_min;             /* cuda_max_good floor, e.g. 12.1; 0: none */
	const char *driver_min;      /* host driver floor "535.86.05"; NULL: none */
	int compute_cap_min;         /* x100 like Vast, e.g. 800 (bf16 tensor cores); 0: none */
	double disk_gb;              /* dataset + model + outputs + headroom; 0: none */
	double reliability_min;      /* filter floor; 0: 0.95 */
	double inet_down_min_mbps;   /* filter floor; 0: 100 Mb/s */
	const long long *exclude_machines; /* machines that failed this job before */
	size_t n_exclude;
	unsigned long long steps;
	unsigned long long checkpoint_steps; /* steps between checkpoints a new host
					      * can resume from; 0: none, so a
					      * failure loses half the training
					      * done on average */
	unsigned long long upload_bytes;   /* dataset archive, sent to the instance */
	unsigned long long download_bytes; /* outputs pulled after training ends
					    * (final LoRA, optimizer, last samples;
					    * checkpoints pulled during training
					    * overlap it); 0: 400 MB */
	unsigned long long model_bytes;    /* fetched by the instance (Hugging Face)
					    * at its inet_down; counts in boot */
	double speed_factor;         /* the recipe's step cost relative to the
				      * reference workload of gpu_speed.tsv; 0: 1.0 */
	double boot_s;               /* image pull + start until SSH works; 0: 300.
				      * Model download and a fixed 300 s of model
				      * load/quantize are added to it. */
};

/* Default filter floors (docs/offer-ranking.md says why). */
#define VAST_RANK_RELIABILITY_FLOOR 0.95
#define VAST_RANK_INET_DOWN_FLOOR_MBPS 100.0

/* Add the job's needs to a /bundles/ query object (as vast_query_build
 * makes it), through vast_query_parse, so values take the same form the
 * vastai CLI sends: gpu_ram >= (GB x 1000.0 MB), cuda_max_good >=,
 * driver_version >= (dotted, sent as an integer), compute_cap >=,
 * disk_space >=, reliability >=, inet_down >=, and machine_id notin the
 * excluded machines. allocated_storage is raised to disk_gb so that
 * dph_total prices the disk the job uses.
 *
 * A filter the user already set on the same field wins: when the field
 * already has gte, gt, eq or in (or is not an object), it is left as it
 * is and the line says so; a user's lte or neq is kept and ours added
 * next to it. Excluded machines are added to a user's notin list.
 *
 * One human line per decision is appended to `added` (which the caller
 * owns), e.g. "gpu_ram >= 24 GB (flux-dev-lora needs 24 GB of VRAM on one
 * GPU)". On failure (ERR_USAGE for a bad job value, ERR_FAIL when `query`
 * is not an object) neither `query` nor `added` is changed. */
int vast_rank_filters(const struct vast_workload *wl, json_t *query, struct strv *added,
		      struct err *e);

/* The estimate for one offer. Times are seconds. */
struct vast_estimate {
	size_t offer;            /* index into the offers array */
	double s_per_step;       /* for this offer's GPU, times speed_factor. ai-toolkit
				  * trains on one GPU: extra GPUs in an offer do not
				  * speed it up, they only raise dph_total */
	const char *speed_source;/* "table", "dlperf-scaled" or "default" */
	const char *speed_note;  /* static text: the table row's basis, or how it was scaled */
	double inet_down_mbps;   /* the offer's, clamped to [10, 10000] */
	double inet_up_mbps;
	double hourly_usd;       /* dph_total */
	double reliability;      /* the offer's; 0.90 when it has none */
	double model_s;          /* model download at inet_down (part of boot_s) */
	double boot_s;           /* job boot_s + model_s + load/quantize */
	double upload_s, train_s, download_s;
	double hours;            /* (boot + upload + train + download) / 3600 */
	double run_usd;          /* hourly_usd * hours */
	double transfer_usd;     /* the host's $/GB bandwidth charges for the bytes moved */
	double p_fail;           /* chance the host fails during the job:
				  * 1 - reliability^(1 + hours / 24) */
	double fail_extra_usd;   /* what one failure costs: detection, boot and upload
				  * again on a new host, and the training lost */
	double penalty_usd;      /* p_fail / (1 - p_fail) expected failures x fail_extra_usd */
	double total_usd;        /* run_usd + transfer_usd + penalty_usd: the sort key */
};

/* Estimate every offer and sort ascending by total_usd (to a hundredth of a
 * cent; ties: higher reliability, then lower offer id, then input order).
 * Offers that cannot run the job are dropped: too little VRAM (or none
 * reported), a known cuda_max_good, driver, compute_cap or disk_space below
 * the job's floor, an excluded machine, or no usable price. Reliability and
 * inet floors are the search's business and do not drop offers here.
 * *out is a new array the caller frees (NULL when nothing is left). */
int vast_rank(const struct vast_offer *offers, size_t n, const struct vast_workload *wl,
	      struct vast_estimate **out, size_t *nout, struct err *e);

/* Seconds per step of the reference workload on a GPU, from the compiled-in
 * table by name (case-, space-, '-' and '_'-insensitive: "RTX 4090",
 * "H100 SXM", "A100 SXM4"), else scaled from `dlperf` (per GPU) against the
 * table's reference rows, else the table's conservative default. *source
 * (may be NULL) is set to "table", "dlperf-scaled" or "default". */
double vast_gpu_seconds_per_step(const char *gpu_name, double dlperf, const char **source);
/* The same, choosing among rows of one name (A100 SXM4 40 and 80 GB) the one
 * closest to `gpu_ram_mb` (0: the first listed). */
double vast_gpu_seconds_per_step_ram(const char *gpu_name, double gpu_ram_mb, double dlperf,
				     const char **source);

/* A speed table as gpu_speed.tsv holds it (format in that file). */
struct vast_gpu_table;
/* Parse a table; ERR_FORMAT names the bad line. */
int vast_gpu_table_parse(const char *text, size_t len, struct vast_gpu_table **out,
			 struct err *e);
void vast_gpu_table_free(struct vast_gpu_table *t);
size_t vast_gpu_table_rows(const struct vast_gpu_table *t);
/* Lookup in `t` as vast_gpu_seconds_per_step_ram does; `note` (may be NULL)
 * gets the row's basis text or a static description. */
double vast_gpu_table_lookup(const struct vast_gpu_table *t, const char *gpu_name,
			     double gpu_ram_mb, double dlperf, const char **source,
			     const char **note);
/* The compiled-in table, parsed once (never NULL; empty if it failed to parse,
 * which the unit tests rule out). */
const struct vast_gpu_table *vast_gpu_table_builtin(void);

/* For --explain: a few human lines showing every term of `est` for `offer`. */
void vast_estimate_explain(const struct vast_estimate *est, const struct vast_offer *offer,
			   const struct vast_workload *wl, struct buf *out);
/* For --json: the estimate's fields with the offer id, GPU and count. */
json_t *vast_estimate_json(const struct vast_estimate *est, const struct vast_offer *offer);
/* A short text of the model's formula, for --explain headers. */
const char *vast_rank_model_summary(void);

#endif
