#include "recipe/recipe.h"

#include <stdio.h>
#include <string.h>

#define GB 1000000000ull
#define MB 1000000ull

/* Sizes and needs from docs/reference: FLUX.1 weights (transformer, T5-XXL,
 * CLIP, VAE) are about 34 GB; a rank-16 LoRA is 172 MB and its adamw8bit
 * optimizer state about as much; ostris/aitoolkit images are built on
 * CUDA 13.0, which needs a host driver of 580 or newer. */
static const struct recipe recipes[] = {
	{
		.name = "flux-dev-lora",
		.summary = "FLUX.1-dev LoRA with ai-toolkit (gated model: needs HF_TOKEN)",
		.base_model = "black-forest-labs/FLUX.1-dev",
		.image = "ostris/aitoolkit:latest",
		.vram_gb = 24,
		.cuda_min = 13.0,
		.driver_min = "580.65.06",
		.model_bytes = 34 * GB,
		.image_bytes = 20 * GB,
		.lora_bytes = 172 * MB,
		.default_save_every = 250,
		.speed_factor = 1.0,
		.needs_hf_token = true,
	},
	{
		.name = "flux-schnell-lora",
		.summary = "FLUX.1-schnell LoRA with ai-toolkit and the schnell training adapter",
		.base_model = "black-forest-labs/FLUX.1-schnell",
		.image = "ostris/aitoolkit:latest",
		.vram_gb = 24,
		.cuda_min = 13.0,
		.driver_min = "580.65.06",
		.model_bytes = 34 * GB,
		.image_bytes = 20 * GB,
		.lora_bytes = 172 * MB,
		.default_save_every = 250,
		.speed_factor = 1.0,
		.needs_hf_token = false,
	},
};

const struct recipe *recipe_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(recipes) / sizeof(recipes[0]); i++)
		if (!strcmp(recipes[i].name, name))
			return &recipes[i];
	return NULL;
}

const struct recipe *recipe_all(size_t *n)
{
	*n = sizeof(recipes) / sizeof(recipes[0]);
	return recipes;
}

const char *recipe_names(void)
{
	static char names[256];
	size_t used = 0;

	for (size_t i = 0; !names[0] && i < sizeof(recipes) / sizeof(recipes[0]); i++) {
		int n = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
				 recipes[i].name);

		if (n < 0 || (size_t)n >= sizeof(names) - used)
			break;
		used += (size_t)n;
	}
	return names;
}

unsigned long long recipe_download_bytes(const struct recipe *r, unsigned long long steps)
{
	/* Checkpoints come home while training runs; what is left at the end
	 * is the final LoRA, its optimizer state and the last round of about
	 * 10 samples of ~1.5 MB. */
	return 2 * r->lora_bytes + 10 * 1500 * 1000ull;
}

double recipe_disk_gb(const struct recipe *r, unsigned long long dataset_bytes,
		      unsigned long long steps)
{
	unsigned long long saves = steps / (r->default_save_every ? r->default_save_every : 250);
	/* The archive and its extracted copy, the model and the image, every
	 * checkpoint with its samples, one optimizer state, and 10 GB for
	 * logs, caches and latents. */
	unsigned long long bytes = 2 * dataset_bytes + r->model_bytes + r->image_bytes +
				   (saves + 1) * (r->lora_bytes + 10 * 1500 * 1000ull) +
				   r->lora_bytes + 10 * GB;

	return (double)bytes / (double)GB;
}
