/* Trainer recipes: what each one trains and what it needs from a machine.
 * Config rendering, log scanning and output discovery come with issue 5;
 * for now a recipe tells the market what to look for. */
#ifndef FERRY_RECIPE_H
#define FERRY_RECIPE_H

#include <stdbool.h>
#include <stddef.h>

struct recipe {
	const char *name;           /* "flux-dev-lora" */
	const char *summary;
	const char *base_model;     /* Hugging Face repo */
	const char *image;          /* trainer image, pinned */
	double vram_gb;             /* per GPU */
	double cuda_min;            /* the image's CUDA runtime */
	const char *driver_min;     /* host driver the image's CUDA needs */
	unsigned long long model_bytes;     /* downloaded by the instance */
	unsigned long long image_bytes;     /* the trainer image's size on disk */
	unsigned long long lora_bytes;      /* one checkpoint at the default rank */
	unsigned default_save_every;        /* steps between checkpoints */
	double speed_factor;        /* step time relative to the speed table's workload */
	bool needs_hf_token;        /* gated base model */
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

#endif
