/* Trainer recipes: what each one trains, what it needs from a machine, how
 * its trainer is started and which environment it wants. Rendering its
 * config is render.h, reading its log scan.h, finding its outputs
 * outputs.h (docs/recipes.md). */
#ifndef FERRY_RECIPE_H
#define FERRY_RECIPE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/str.h"
#include "vast/rank.h"

/* How a trainer is started: in `workdir` (NULL: the job root), `argv`
 * followed by the config's absolute path. */
struct recipe_launch {
	const char *what;           /* "ai-toolkit in the ostris/aitoolkit image" */
	const char *workdir;
	const char *argv[4];        /* NULL-terminated */
};

/* An environment variable the trainer reads. */
struct recipe_env {
	const char *name;
	const char *value;          /* what ferry sets; NULL: the user's (a secret) */
	bool required;              /* the run fails without it */
	const char *why;
};

#define RECIPE_MAX_ENV 4

struct recipe {
	const char *name;           /* "flux-dev-lora" */
	const char *summary;
	const char *base_model;     /* Hugging Face repo */
	const char *assistant_lora; /* schnell's training adapter, or NULL */
	const char *image;          /* trainer image */
	const char *written_for;    /* the trainer version the config follows */
	double vram_gb;             /* per GPU */
	double cuda_min;            /* the image's CUDA runtime */
	const char *driver_min;     /* host driver the image's CUDA needs */
	int compute_cap_min;        /* x100 like Vast: 800 for bf16 (sm_80) */
	unsigned long long model_bytes;     /* downloaded by the instance */
	unsigned long long image_bytes;     /* the trainer image's size on disk */
	unsigned long long lora_bytes;      /* one checkpoint at the default rank */
	unsigned default_save_every;        /* steps between checkpoints */
	double speed_factor;        /* step time relative to the speed table's workload */
	bool needs_hf_token;        /* gated base model */

	/* Sampling, as the model's own example sets it. */
	double guidance_scale;
	unsigned sample_steps;

	struct recipe_launch launch;        /* on a rented machine */
	struct recipe_launch standin;       /* in tests: examples/trainer/run.py */
	struct recipe_env env[RECIPE_MAX_ENV];
	size_t nenv;
};

/* The recipe called `name`, or NULL. */
const struct recipe *recipe_find(const char *name);
/* All recipes, in the order `ferry recipe list` shows them. */
const struct recipe *recipe_all(size_t *n);
/* The names joined with ", ", for messages (static storage). */
const char *recipe_names(void);
/* Disk (GB) a job needs on the instance: dataset, model, image, a
 * checkpoint (and its optimizer state) per save, samples, and headroom. */
double recipe_disk_gb(const struct recipe *r, unsigned long long dataset_bytes,
		      unsigned long long steps);
/* Bytes pulled after training ends (the final LoRA, its optimizer state,
 * the last samples); checkpoints come home while it runs. */
unsigned long long recipe_download_bytes(const struct recipe *r, unsigned long long steps);
/* The workload an offer search and ranking weigh for a job of `steps`
 * steps on a dataset archive of `dataset_bytes`: the recipe's machine needs
 * and what moves. Filter floors the user chooses (reliability, bandwidth,
 * excluded machines) are left at 0 for the caller. */
void recipe_offer_needs(const struct recipe *r, unsigned long long dataset_bytes,
			unsigned long long steps, struct vast_workload *wl);
/* The trainer's environment as NAME=VALUE entries (the env file `ferry
 * remote launch --env-file` takes), appended to `out`: the recipe's fixed
 * values (PYTHONUNBUFFERED, HF_HUB_DISABLE_XET) and HF_TOKEN from
 * `hf_token` (the hf.token setting). ERR_CONFIG when a required one is
 * missing. The entries hold secrets: zero them when done. */
int recipe_env_lines(const struct recipe *r, const char *hf_token, struct strv *out,
		     struct err *e);
/* The command that starts the trainer on `config_path`, appended to `out`. */
void recipe_launch_argv(const struct recipe_launch *l, const char *config_path, struct strv *out);

#endif
