/* Rendering a recipe into ai-toolkit's JSON job config: parameters with
 * their defaults and ranges, sample prompts from the dataset's captions,
 * absolute paths, every key whose code default is unsafe written out, and
 * never a secret (docs/recipes.md). */
#ifndef FERRY_RECIPE_RENDER_H
#define FERRY_RECIPE_RENDER_H

#include <jansson.h>
#include <stdbool.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/str.h"
#include "recipe/recipe.h"

#define RECIPE_MAX_RES 8
#define RECIPE_MAX_PROMPTS 20
#define RECIPE_PROMPT_MAX 2000      /* bytes in one sample prompt */
#define RECIPE_CAPTION_PROMPTS 4    /* prompts taken from captions */
#define RECIPE_DEFAULT_NAME "ferry_lora"

/* What a user can set; zero or NULL means "the default". Fill it with
 * recipe_param_set, which checks each value's range. */
struct recipe_params {
	char *name;              /* config.name: the output folder and file names */
	char *job;               /* job id for the default paths (default: name) */
	char *trigger;           /* NULL: dataset_info.json's, else none */
	unsigned long long steps, rank, batch_size, save_every, sample_every;
	bool have_save_every, have_sample_every; /* sample_every 0: no samples */
	double alpha, lr;
	unsigned resolution[RECIPE_MAX_RES];
	size_t nres;
	char *prompts_file;      /* one prompt a line; NULL: from the captions */
	char *dataset;           /* the dataset folder as the trainer sees it */
	char *output;            /* training_folder */
	char *captions;          /* a local copy of the dataset to take prompts from */
	char *remote_root;       /* parent of job roots, for the default paths */
};

enum recipe_param_kind { RP_WHOLE, RP_REAL, RP_TEXT };

/* One parameter as `ferry recipe show` lists it and recipe_param_set
 * checks it: numbers must lie in [min, max]. */
struct recipe_param_info {
	const char *name;        /* the option is --NAME */
	const char *key;         /* where it lands in the config */
	const char *dflt;
	const char *range;       /* completes "--NAME must be ..." */
	const char *help;
	enum recipe_param_kind kind;
	double min, max;
};

const struct recipe_param_info *recipe_param_table(size_t *n);
/* Parse and range-check one parameter by its option name (the table's
 * `name`). ERR_USAGE names the parameter and the allowed range. */
int recipe_param_set(struct recipe_params *p, const char *param, const char *value,
		     struct err *e);
void recipe_params_release(struct recipe_params *p);

/* The config for recipe `r`, checked as a whole (save and sample intervals
 * against the steps, the prompts file, the captions); paths made absolute
 * against the current directory. */
int recipe_render(const struct recipe *r, const struct recipe_params *p, json_t **out,
		  struct err *e);
/* The config's bytes: sorted keys, 2-space indent, '$' written as \u0024 so
 * that ai-toolkit's ${VAR} substitution, which runs on the raw text, finds
 * nothing to expand. Fails (ERR_USAGE) when the text would hold the value
 * of a secret: the recipe's user-supplied variables, HF_TOKEN,
 * HUGGING_FACE_HUB_TOKEN, or any secret registered with the logger. */
int recipe_config_text(const struct recipe *r, const json_t *config, struct buf *out,
		       struct err *e);
/* Up to RECIPE_CAPTION_PROMPTS sample prompts from `captions`: those longer
 * than 10 characters, spread evenly, whitespace tidied, cut near
 * RECIPE_PROMPT_MAX, the trigger put in front where it is missing; two
 * plain prompts when none qualifies. */
void recipe_prompts_from_captions(const struct strv *captions, const char *trigger,
				  struct strv *out);

#endif
