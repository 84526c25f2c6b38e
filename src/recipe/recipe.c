#include "recipe/recipe.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"

#define GB 1000000000ull
#define MB 1000000ull

/* Sizes and needs from docs/reference: FLUX.1 weights (transformer, T5-XXL,
 * CLIP, VAE) are about 34 GB; a rank-16 LoRA is 172 MB and its adamw8bit
 * optimizer state about as much; ostris/aitoolkit images are built on
 * CUDA 13.0, which needs a host driver of 580 or newer. Its torch wheels
 * (cu130) are built for sm_75 and newer, and the configs train in bf16,
 * which needs sm_80 (Ampere): a 24 GB P40 or a V100 would pass every other
 * filter and fail after the whole model download. */
#define AITK_WRITTEN_FOR "ai-toolkit 0.12.26 (commit 27a03a9), ostris/aitoolkit of that version"
/* build_and_push_docker tags each build ostris/aitoolkit:$VERSION (from
 * version.py); `latest` drifts with every push. 0.12.26 still spans three
 * commits (89102f7, b96476a, 27a03a9), as the image clones main when it is
 * built: `ferry remote wait --trainer-repo` reports the commit it runs. */
#define AITK_IMAGE "ostris/aitoolkit:0.12.26"

/* The image runs ai-toolkit headless from its checkout; the stand-in runs
 * anywhere, from ferry's source tree. */
#define AITK_LAUNCH \
	{ .what = "ai-toolkit in the ostris/aitoolkit image", .workdir = "/app/ai-toolkit", \
	  .argv = { "python", "run.py", NULL } }
#define STANDIN_LAUNCH \
	{ .what = "ferry's trainer stand-in (a path in ferry's source tree; trains nothing)", \
	  .workdir = NULL, .argv = { "python3", "examples/trainer/run.py", NULL } }

/* Set for every recipe: unbuffered output reaches the log as printed, and
 * hf_xet, whose downloads hang silently (ai-toolkit #907, #806), is off. */
#define AITK_ENV_COMMON \
	{ "PYTHONUNBUFFERED", "1", false, "progress reaches the log as it is printed" }, \
	{ "HF_HUB_DISABLE_XET", "1", false, \
	  "hf_xet downloads hang silently (ai-toolkit #907, #806); plain HTTP does not" }

static const struct recipe recipes[] = {
	{
		.name = "flux-dev-lora",
		.summary = "FLUX.1-dev LoRA with ai-toolkit (gated model: needs HF_TOKEN)",
		.base_model = "black-forest-labs/FLUX.1-dev",
		.image = AITK_IMAGE,
		.vram_gb = 24,
		.cuda_min = 13.0,
		.driver_min = "580.65.06",
		.compute_cap_min = 800,
		.model_bytes = 34 * GB,
		.image_bytes = 20 * GB,
		.lora_bytes = 172 * MB,
		.default_save_every = 250,
		.speed_factor = 1.0,
		.needs_hf_token = true,
		.written_for = AITK_WRITTEN_FOR,
		.guidance_scale = 4,
		.sample_steps = 20,
		.launch = AITK_LAUNCH,
		.standin = STANDIN_LAUNCH,
		.env = {
			{ "HF_TOKEN", NULL, true,
			  "FLUX.1-dev is gated: a Hugging Face token of an account that accepted "
			  "its licence" },
			AITK_ENV_COMMON,
		},
		.nenv = 3,
	},
	{
		.name = "flux-schnell-lora",
		.summary = "FLUX.1-schnell LoRA with ai-toolkit and the schnell training adapter",
		.base_model = "black-forest-labs/FLUX.1-schnell",
		.image = AITK_IMAGE,
		.vram_gb = 24,
		.cuda_min = 13.0,
		.driver_min = "580.65.06",
		.compute_cap_min = 800,
		.model_bytes = 34 * GB,
		.image_bytes = 20 * GB,
		.lora_bytes = 172 * MB,
		.default_save_every = 250,
		.speed_factor = 1.0,
		.needs_hf_token = false,
		.assistant_lora = "ostris/FLUX.1-schnell-training-adapter",
		.written_for = AITK_WRITTEN_FOR,
		.guidance_scale = 1,
		.sample_steps = 4,
		.launch = AITK_LAUNCH,
		.standin = STANDIN_LAUNCH,
		.env = { AITK_ENV_COMMON },
		.nenv = 2,
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

static char recipe_names_text[256];
static pthread_once_t recipe_names_once = PTHREAD_ONCE_INIT;

static void recipe_names_make(void)
{
	size_t used = 0;

	for (size_t i = 0; i < sizeof(recipes) / sizeof(recipes[0]); i++) {
		int n = snprintf(recipe_names_text + used, sizeof(recipe_names_text) - used, "%s%s",
				 i ? ", " : "", recipes[i].name);

		if (n < 0 || (size_t)n >= sizeof(recipe_names_text) - used)
			break;
		used += (size_t)n;
	}
}

const char *recipe_names(void)
{
	pthread_once(&recipe_names_once, recipe_names_make);
	return recipe_names_text;
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

void recipe_launch_argv(const struct recipe_launch *l, const char *config_path, struct strv *out)
{
	for (size_t i = 0; l->argv[i]; i++)
		strv_push(out, l->argv[i]);
	strv_push(out, config_path);
}

void recipe_offer_needs(const struct recipe *r, unsigned long long dataset_bytes,
			unsigned long long steps, struct vast_workload *wl)
{
	memset(wl, 0, sizeof(*wl));
	wl->recipe = r->name;
	wl->vram_gb = r->vram_gb;
	wl->cuda_min = r->cuda_min;
	wl->driver_min = r->driver_min;
	wl->compute_cap_min = r->compute_cap_min;
	wl->disk_gb = recipe_disk_gb(r, dataset_bytes, steps);
	wl->steps = steps;
	wl->checkpoint_steps = r->default_save_every;
	wl->upload_bytes = dataset_bytes;
	wl->download_bytes = recipe_download_bytes(r, steps);
	wl->model_bytes = r->model_bytes;
	wl->speed_factor = r->speed_factor;
}

int recipe_env_lines(const struct recipe *r, const char *hf_token, struct strv *out,
		     struct err *e)
{
	for (size_t i = 0; i < r->nenv; i++) {
		const struct recipe_env *v = &r->env[i];
		const char *value = v->value;

		if (!value && !strcmp(v->name, "HF_TOKEN"))
			value = hf_token && *hf_token ? hf_token : NULL;
		if (!value && v->required)
			return err_set(e, ERR_CONFIG, "%s needs %s (%s): set hf.token", r->name,
				       v->name, v->why);
		if (!value)
			continue;
		if (strchr(value, '\n') || strchr(value, '\r'))
			return err_set(e, ERR_CONFIG, "%s holds a line break", v->name);
		strv_push_nodup(out, xasprintf("%s=%s", v->name, value));
	}
	return 0;
}
