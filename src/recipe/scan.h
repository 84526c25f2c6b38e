/* Reading ai-toolkit's console log: the phase a run is in, its progress,
 * the checkpoints and samples it made, and why it failed. Incremental: feed
 * bytes as they arrive, in any chunks, and ask for the result at any time;
 * memory stays bounded whatever the log's length (docs/recipes.md). */
#ifndef FERRY_RECIPE_SCAN_H
#define FERRY_RECIPE_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define RECIPE_SCAN_LINE_MAX 4096   /* bytes kept of one line; the rest is dropped */
#define RECIPE_SCAN_CHECKPOINTS 32  /* checkpoints remembered, newest kept */

enum recipe_phase {
	RECIPE_PHASE_STARTING,      /* nothing recognised yet */
	RECIPE_PHASE_DOWNLOADING,
	RECIPE_PHASE_LOADING,
	RECIPE_PHASE_QUANTIZING,
	RECIPE_PHASE_CACHING,
	RECIPE_PHASE_SAMPLING,
	RECIPE_PHASE_TRAINING,
	RECIPE_PHASE_SAVING,
	RECIPE_PHASE_DONE,
	RECIPE_PHASE_FAILED,
};

enum recipe_failure {
	RECIPE_FAIL_NONE,
	RECIPE_FAIL_OOM,
	RECIPE_FAIL_HF_AUTH,
	RECIPE_FAIL_NO_IMAGES,
	RECIPE_FAIL_DATASET_MISSING,
	RECIPE_FAIL_CUDA_KERNEL_IMAGE,
	RECIPE_FAIL_DISK_FULL,
	RECIPE_FAIL_DOWNLOAD_STALLED,
	RECIPE_FAIL_KILLED,         /* a signal, the host's OOM killer (a DataLoader worker too) */
	RECIPE_FAIL_NAN_LOSS,       /* the loss became NaN: nothing good comes after */
	RECIPE_FAIL_UNKNOWN,
};

/* Worth saying, not a failure: the run still counts as what it is. */
enum recipe_warning {
	/* a failure after the final LoRA was saved: ai-toolkit saves it, then
	 * runs the last sample round, which failed; the LoRA is whole */
	RECIPE_WARN_FINAL_SAMPLES,
	/* "Could not save optimizer": ai-toolkit trains on, but optimizer.pt
	 * is not to be trusted for a resume */
	RECIPE_WARN_OPTIMIZER_SAVE,
	RECIPE_WARN_COUNT,
};

struct recipe_checkpoint {
	const char *path;           /* as the log names it */
	long long step;             /* -1 when the name holds none */
	bool final;                 /* NAME.safetensors */
};

struct recipe_scan_result {
	enum recipe_phase phase;
	const char *name;           /* the job name ("" when not known) */
	long long step, total;      /* the training bar's n/total; -1: not seen */
	double loss, lr;            /* NAN: not seen */
	double rate_s_per_it, eta_s;        /* NAN: not seen or not yet known */
	long long resumed_from;     /* -1: not resumed */
	const struct recipe_checkpoint *checkpoints; /* still on disk, oldest first */
	size_t ncheckpoints;
	unsigned long long checkpoints_saved;   /* every save seen */
	unsigned long long samples;             /* sample images generated */
	bool final_saved;           /* NAME.safetensors was written */
	int exit_status;            /* from ferry's supervisor line; -1: not seen */
	enum recipe_failure failure;
	const char *failure_line;   /* the line that shows it ("" when none) */
	unsigned warnings;          /* a bit (1u << enum recipe_warning) for each */
	const char *warning_lines[RECIPE_WARN_COUNT];   /* "" for one not seen */
	bool optimizer_trusted;     /* no optimizer save failed since the last good one */
};

struct recipe_scan;

/* A scanner for the run whose training bar is labelled `name` (NULL: learn
 * it from the "# Running job: NAME" banner). */
struct recipe_scan *recipe_scan_new(const char *name);
/* The dataset folder the config names (datasets[0].folder_path), so that
 * its FileNotFoundError reads as dataset_missing; without it, the
 * "folder_path" of the config ai-toolkit echoes at start-up is used. */
void recipe_scan_set_dataset(struct recipe_scan *s, const char *folder_path);
void recipe_scan_free(struct recipe_scan *s);
/* Bytes of the log, in any chunks: split on \r and \n, ANSI escapes and
 * other control characters dropped, each line cut at RECIPE_SCAN_LINE_MAX. */
void recipe_scan_feed(struct recipe_scan *s, const void *data, size_t len);
/* Feed everything readable from fd (`what` names it in errors); does not
 * finish. */
int recipe_scan_fd(struct recipe_scan *s, int fd, const char *what, struct err *e);
/* The end of the log: read its last line even without a line end. */
void recipe_scan_finish(struct recipe_scan *s);
/* The log has said nothing for `silent_s` seconds: while downloading or
 * loading, `stall_s` or more of that is a stalled download. */
void recipe_scan_idle(struct recipe_scan *s, double silent_s, double stall_s);
/* Where the run stands. The training bar tqdm is still drawing counts too.
 * Valid until the next call on `s`. */
const struct recipe_scan_result *recipe_scan_result(struct recipe_scan *s);
/* Bytes the scanner holds: the same from creation to the end. */
size_t recipe_scan_held(const struct recipe_scan *s);

const char *recipe_phase_name(enum recipe_phase p);
const char *recipe_failure_name(enum recipe_failure f);
const char *recipe_warning_name(enum recipe_warning w);
/* {"phase", "name", "step", "total", "loss", "lr", "rate_s_per_it", "eta_s",
 *  "resumed_from", "checkpoints": [{"path", "step", "final"}],
 *  "checkpoints_saved", "samples", "exit_status",
 *  "failure": null | {"code", "line"}, "warnings": [{"code", "line"}],
 *  "optimizer_trusted"}; unknown numbers are null. */
json_t *recipe_scan_json(const struct recipe_scan_result *r);

#endif
