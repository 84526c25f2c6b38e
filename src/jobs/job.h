/* The job as the user asked for it (docs/jobs.md): a dataset, a recipe and
 * its parameters (or the user's own trainer config), where to run it, its
 * limits and where to publish. One JSON shape for `ferry train -f`, the
 * CLI's --json output and the HTTP API; read strictly, every error naming
 * the field. */
#ifndef FERRY_JOBS_JOB_H
#define FERRY_JOBS_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/str.h"

/* "20261207-061500-3fa9c2d1": sortable by submission, 8 random hex digits. */
#define JOB_ID_MAX 32
/* Vast labels: "ferry-" + the id. */
#define JOB_LABEL_MAX (JOB_ID_MAX + 8)

enum job_provider { JOB_PROVIDER_VAST, JOB_PROVIDER_SSH, JOB_PROVIDER_LOCAL };

/* What PREPARING does with a dataset that is not ready. */
enum job_unready {
	JOB_UNREADY_FAIL,     /* fail before anything is rented */
	JOB_UNREADY_FIX,      /* repair a copy (ferry dataset fix), check again */
	JOB_UNREADY_CAPTION,  /* the same, writing missing captions with caption.cmd/url */
};

struct job_spec {
	char *name;             /* a person's name for it, or NULL */
	char *dataset;          /* a folder on the machine that runs the job */
	char *recipe;           /* a recipe name (recipe_find) */
	json_t *params;         /* the recipe's parameters by name, values as strings */
	char *trainer_config;   /* the user's own ai-toolkit YAML or JSON, or NULL */
	enum job_provider provider;
	char *target;           /* ssh: the target (remote_target_parse's form) */
	struct strv query;      /* vast: offer query terms (the vastai language) */
	bool interruptible;
	double bid;             /* $/h; 0: the offer's minimum bid */
	double max_hours;       /* 0: no limit */
	double max_usd;         /* 0: no limit */
	char *store;            /* "dir" or "s3"; NULL: the store.kind setting */
	char *prefix;           /* NULL: jobs/ID */
	enum job_unready unready;
	char *webhook;          /* a URL for state changes, or NULL */
};

/* Read a spec: unknown fields and wrong types are ERR_USAGE naming the
 * field ("params.steps must be a whole number from 1 to 100000, not
 * 'many'"). Parameters are checked against the recipe's ranges; those ferry
 * sets itself (paths, the job) are refused. */
int job_spec_from_json(const json_t *j, struct job_spec *s, struct err *e);
/* The spec as JSON, in the form job_spec_from_json reads. */
json_t *job_spec_to_json(const struct job_spec *s);
void job_spec_release(struct job_spec *s);
/* Parse a provider: "vast", "local" or "ssh:TARGET". */
int job_provider_parse(const char *text, struct job_spec *s, struct err *e);
const char *job_provider_name(enum job_provider p);
const char *job_unready_name(enum job_unready u);

/* A new job id. */
void job_id_new(char out[JOB_ID_MAX]);
/* Whether `id` has the form job_id_new makes: an id names folders and
 * labels, so nothing else is taken from a request. */
bool job_id_valid(const char *id);
/* "ferry-ID". */
void job_label(const char *id, char out[JOB_LABEL_MAX]);

#endif
