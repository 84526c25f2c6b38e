/* What is in ai-toolkit's output folder, <training_folder>/<name>/, from a
 * listing of it: checkpoints and their steps, the final LoRA, samples with
 * their step and prompt, the optimizer state, what a resume on another
 * machine needs, and what must never be published (docs/recipes.md). */
#ifndef FERRY_RECIPE_OUTPUTS_H
#define FERRY_RECIPE_OUTPUTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum recipe_output_kind {
	RECIPE_OUT_OTHER,
	RECIPE_OUT_CHECKPOINT,  /* <name>_<step:09d>.safetensors */
	RECIPE_OUT_FINAL,       /* <name>.safetensors */
	RECIPE_OUT_SAMPLE,      /* samples/<epoch_ms>__<step:09d>_<i>.jpg */
	RECIPE_OUT_THUMBNAIL,   /* samples/.thumbs/... */
	RECIPE_OUT_OPTIMIZER,   /* optimizer.pt */
	RECIPE_OUT_CONFIG,      /* config.yaml and other copies of the config */
	RECIPE_OUT_LOSS_LOG,    /* loss_log.db */
	RECIPE_OUT_PARTIAL,     /* samples/.tmp/..., *.part: not whole yet */
};

struct recipe_output {
	char *path;             /* as listed */
	long long size;         /* -1: not listed */
	enum recipe_output_kind kind;
	long long step;         /* checkpoints and samples; -1 otherwise */
	long long prompt;       /* samples: the prompt's index; -1 otherwise */
	long long epoch_ms;     /* samples: when it was made; -1 otherwise */
	bool never_publish;     /* a copy of the config: ${VAR} secrets expanded */
	bool resume;            /* needed to resume on another machine */
};

struct recipe_outputs {
	char *name;             /* the run's name, given or found; NULL: unknown */
	struct recipe_output *files;
	size_t n, alloc;
	int final, newest, optimizer;   /* indexes into files, -1: none */
	bool resume_ready;      /* the newest checkpoint and optimizer.pt are there */
	bool optimizer_untrusted;       /* its last save failed (the log said so) */
};

#define RECIPE_OUTPUTS_INIT { NULL, NULL, 0, 0, -1, -1, -1, false, false }

/* Add one listed file: a path relative to the training folder ("NAME/x")
 * or to the run's own folder ("x"); size -1 when unknown. */
void recipe_outputs_add(struct recipe_outputs *o, const char *path, long long size);
/* Every regular file under `dir` (links are not followed). */
int recipe_outputs_read_dir(struct recipe_outputs *o, const char *dir, struct err *e);
/* A listing: one path a line, or "SIZE<TAB>PATH" (find -printf '%s\t%P\n'). */
void recipe_outputs_read_listing(struct recipe_outputs *o, const char *text, size_t len);
/* Classify what was added, for the run `name` (NULL: the one name the
 * checkpoints carry; ERR_USAGE when they carry several). */
int recipe_outputs_classify(struct recipe_outputs *o, const char *name, struct err *e);
void recipe_outputs_release(struct recipe_outputs *o);
/* The log says the last optimizer save failed ("Could not save
 * optimizer": recipe_scan_result's optimizer_trusted is false): before
 * classifying, so that optimizer.pt, perhaps truncated, goes into no
 * resume and resume_ready stays false. */
void recipe_outputs_distrust_optimizer(struct recipe_outputs *o);
/* Never published, by its base name: a copy of the config (ai-toolkit
 * writes it with ${VAR} secrets expanded: config.yaml, .job_config.json,
 * any .yaml or .yml), or an env file (.env, env, .env.*, *.env). */
bool recipe_output_config_copy(const char *base);
bool recipe_output_env_file(const char *base);
/* Either of those, by a path's base name, with the reason: the rule
 * publish_opts.private_file takes (arg unused). */
bool recipe_output_private(void *arg, const char *rel, const char **why);
const char *recipe_output_kind_name(enum recipe_output_kind k);
/* The step in a checkpoint's file name, "<X>_<step:09d>.safetensors", with
 * *xlen the length of X; -1 when it is not one. */
long long recipe_checkpoint_step(const char *base, size_t *xlen);
/* {"name", "complete", "final", "checkpoints": [{"path", "step", "size"}],
 *  "samples": [{"path", "step", "prompt", "epoch_ms", "size"}], "optimizer",
 *  "resume": [...], "resume_ready", "optimizer_trusted", "never_publish": [...],
 *  "other": [...]} */
json_t *recipe_outputs_json(const struct recipe_outputs *o);

#endif
