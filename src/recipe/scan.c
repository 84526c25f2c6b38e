#include "recipe/scan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "recipe/outputs.h"

/* What the byte stream is in: text, or an ANSI escape being skipped. */
enum scan_state { ST_TEXT, ST_ESC, ST_CSI, ST_OSC, ST_OSC_ESC };

struct slot {
	char path[RECIPE_SCAN_LINE_MAX + 1];
	long long step;
	bool final;
};

/* Everything lives in this one allocation, so that memory stays the same
 * however long the log runs. */
struct recipe_scan {
	enum scan_state state;
	char line[RECIPE_SCAN_LINE_MAX + 1];
	size_t len;
	char last[RECIPE_SCAN_LINE_MAX + 1];    /* the last non-empty line */
	char name[256];
	char dataset[RECIPE_SCAN_LINE_MAX + 1]; /* the last "Dataset: X" */
	char folder_path[RECIPE_SCAN_LINE_MAX + 1]; /* the config's dataset folder */
	bool folder_given;                      /* by recipe_scan_set_dataset */
	bool in_echo;                           /* inside the config run.py echoes */
	char failure_line[RECIPE_SCAN_LINE_MAX + 1];
	long long fail_step;                    /* the step when it failed */
	unsigned long long lineno, fail_lineno; /* lines seen; the one that failed */
	bool confirmed;                         /* an error line or the exit said so */
	long long sample_n;                     /* the sample bar's last n */
	char warning_lines[RECIPE_WARN_COUNT][RECIPE_SCAN_LINE_MAX + 1];
	unsigned long long warn_lineno[RECIPE_WARN_COUNT];

	struct slot slots[RECIPE_SCAN_CHECKPOINTS];
	bool used[RECIPE_SCAN_CHECKPOINTS];
	int order[RECIPE_SCAN_CHECKPOINTS];     /* slot indices, oldest first */
	size_t norder;
	struct recipe_checkpoint view_ckpt[RECIPE_SCAN_CHECKPOINTS];

	struct recipe_scan_result res;
	struct recipe_scan_result view;
};

static void copy_bounded(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void scan_reset_run(struct recipe_scan *s)
{
	s->res.phase = RECIPE_PHASE_STARTING;
	s->res.failure = RECIPE_FAIL_NONE;
	s->failure_line[0] = '\0';
	s->res.exit_status = -1;
	s->res.final_saved = false;
	s->res.resumed_from = -1;
	s->sample_n = 0;
	s->confirmed = false;
	s->res.warnings = 0;
	for (size_t i = 0; i < RECIPE_WARN_COUNT; i++)
		s->warning_lines[i][0] = '\0';
}

struct recipe_scan *recipe_scan_new(const char *name)
{
	struct recipe_scan *s = xcalloc(1, sizeof(*s));

	s->res.step = s->res.total = -1;
	s->res.loss = s->res.lr = s->res.rate_s_per_it = s->res.eta_s = NAN;
	s->res.optimizer_trusted = true;
	scan_reset_run(s);
	if (name)
		copy_bounded(s->name, sizeof(s->name), name);
	return s;
}

void recipe_scan_set_dataset(struct recipe_scan *s, const char *folder_path)
{
	copy_bounded(s->folder_path, sizeof(s->folder_path), folder_path ? folder_path : "");
	s->folder_given = folder_path && *folder_path;
}

void recipe_scan_free(struct recipe_scan *s)
{
	free(s);
}

size_t recipe_scan_held(const struct recipe_scan *s)
{
	return sizeof(*s);
}

const char *recipe_phase_name(enum recipe_phase p)
{
	static const char *const names[] = { "starting", "downloading", "loading",
					     "quantizing", "caching", "sampling", "training",
					     "saving", "done", "failed" };

	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "unknown";
}

const char *recipe_failure_name(enum recipe_failure f)
{
	static const char *const names[] = { "none", "oom", "hf_auth", "no_images",
					     "dataset_missing", "cuda_kernel_image", "disk_full",
					     "download_stalled", "killed", "nan_loss", "unknown" };

	return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "unknown";
}

const char *recipe_warning_name(enum recipe_warning w)
{
	static const char *const names[] = { "final_samples_failed", "optimizer_save_failed" };

	return (unsigned)w < sizeof(names) / sizeof(names[0]) ? names[w] : "unknown";
}

/* ---- what a line says ---- */

static void set_phase(struct recipe_scan *s, enum recipe_phase p)
{
	/* Only a new run (or training that carries on) leaves these. */
	if (s->res.phase != RECIPE_PHASE_FAILED && s->res.phase != RECIPE_PHASE_DONE)
		s->res.phase = p;
}

static bool early(const struct recipe_scan *s)
{
	return s->res.phase == RECIPE_PHASE_STARTING || s->res.phase == RECIPE_PHASE_DOWNLOADING ||
	       s->res.phase == RECIPE_PHASE_LOADING;
}

/* The first line that shows a warning stays, unless run.py's summing-up
 * "Error running job: ..." comes after it. */
static void scan_warn(struct recipe_scan *s, enum recipe_warning w, const char *line)
{
	if ((s->res.warnings & (1u << w)) &&
	    !(strstr(line, "Error running job: ") &&
	      !strstr(s->warning_lines[w], "Error running job: ")))
		return;
	s->res.warnings |= 1u << w;
	s->warn_lineno[w] = s->lineno;
	copy_bounded(s->warning_lines[w], sizeof(s->warning_lines[w]), line);
}

/* The first specific reason wins; "unknown" (an error line that named
 * nothing we know) gives way to a specific one found later. Once the final
 * LoRA is saved, nothing fails the run: ai-toolkit saves it before the last
 * sample round, so what fails after it is that round. */
static void scan_fail(struct recipe_scan *s, enum recipe_failure code, const char *line)
{
	if (s->res.final_saved) {
		scan_warn(s, RECIPE_WARN_FINAL_SAMPLES, line);
		return;
	}
	/* run.py's "Error running job: ..." sums up what a traceback line
	 * showed first: the better line to show. */
	if (code == s->res.failure && strstr(line, "Error running job: ") &&
	    !strstr(s->failure_line, "Error running job: ")) {
		copy_bounded(s->failure_line, sizeof(s->failure_line), line);
		return;
	}
	if (s->res.failure != RECIPE_FAIL_NONE &&
	    !(s->res.failure == RECIPE_FAIL_UNKNOWN && code != RECIPE_FAIL_UNKNOWN))
		return;
	s->res.failure = code;
	copy_bounded(s->failure_line, sizeof(s->failure_line), line);
	s->res.phase = RECIPE_PHASE_FAILED;
	s->fail_step = s->res.step;
	s->fail_lineno = s->lineno;
}

struct pattern {
	enum recipe_failure code;
	const char *text;
	bool early_only;        /* counts only before training starts */
};

/* Log text that shows a failure (docs/reference/ai-toolkit.md §4, §7),
 * most specific first; docs/recipes.md lists them. */
static const struct pattern patterns[] = {
	{ RECIPE_FAIL_OOM, "CUDA out of memory", false },
	{ RECIPE_FAIL_OOM, "OutOfMemoryError", false },
	{ RECIPE_FAIL_OOM, "CUDA error: out of memory", false },
	{ RECIPE_FAIL_OOM, "times in a row, aborting training", false },
	{ RECIPE_FAIL_HF_AUTH, "GatedRepoError", false },
	{ RECIPE_FAIL_HF_AUTH, "Cannot access gated repo", false },
	{ RECIPE_FAIL_HF_AUTH, "401 Client Error", false },
	{ RECIPE_FAIL_HF_AUTH, "403 Client Error", false },
	{ RECIPE_FAIL_HF_AUTH, "does not appear to have a file named config.json", false },
	{ RECIPE_FAIL_HF_AUTH, "Invalid user token", false },
	/* diffusers' wrapping of huggingface_hub 1.x's GatedRepoError */
	{ RECIPE_FAIL_HF_AUTH, "You are trying to access a gated repo", false },
	{ RECIPE_FAIL_NO_IMAGES, "no images found in", false },
	{ RECIPE_FAIL_CUDA_KERNEL_IMAGE, "no kernel image is available for execution", false },
	{ RECIPE_FAIL_DISK_FULL, "No space left on device", false },
	{ RECIPE_FAIL_DISK_FULL, "[Errno 28]", false },
	{ RECIPE_FAIL_DISK_FULL, "StorageFull", false },
	{ RECIPE_FAIL_DISK_FULL, "Disk quota exceeded", false },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "while downloading using `hf_transfer`", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "ReadTimeoutError", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "Read timed out", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "IncompleteRead", true },
	/* huggingface_hub 1.x downloads through httpx (hf_transfer is gone) */
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "httpx.ReadTimeout", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "The read operation timed out", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "RemoteProtocolError", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "incomplete chunked read", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "httpx.ConnectTimeout", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "httpx.ConnectError", true },
	{ RECIPE_FAIL_DOWNLOAD_STALLED, "httpx.ReadError", true },
	/* a DataLoader worker killed for host memory (num_workers 2) */
	{ RECIPE_FAIL_KILLED, "is killed by signal: Killed", false },
	{ RECIPE_FAIL_KILLED, "DataLoader worker (pid", false },
	{ RECIPE_FAIL_NAN_LOSS, "loss is nan", false },
	{ RECIPE_FAIL_UNKNOWN, "Error running job: ", false },
};

/* `a` (n bytes) and `b` the same path, give or take a slash at the end. */
static bool same_path(const char *a, size_t n, const char *b)
{
	size_t m = strlen(b);

	while (n > 1 && a[n - 1] == '/')
		n--;
	while (m > 1 && b[m - 1] == '/')
		m--;
	return n && n == m && !memcmp(a, b, n);
}

/* "No such file or directory: '<the dataset>'": FileNotFoundError for the
 * config's dataset folder, or the one the last "Dataset:" line named. A
 * missing folder fails before ai-toolkit prints "Dataset:": it takes the
 * path for a JSON caption file and open() raises. Python quotes a path
 * holding ' with ". */
static bool dataset_missing(const struct recipe_scan *s, const char *line)
{
	static const char marker[] = "No such file or directory: ";
	const char *p = strstr(line, marker), *end;

	if (!p)
		return false;
	p += sizeof(marker) - 1;
	if (*p != '\'' && *p != '"')
		return false;
	end = strrchr(p + 1, *p);
	p++;
	return end && (same_path(p, (size_t)(end - p), s->folder_path) ||
		       same_path(p, (size_t)(end - p), s->dataset));
}

static void scan_failures(struct recipe_scan *s, const char *line)
{
	if (dataset_missing(s, line)) {
		scan_fail(s, RECIPE_FAIL_DATASET_MISSING, line);
		return;
	}
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		if (patterns[i].early_only && !early(s))
			continue;
		if (strstr(line, patterns[i].text)) {
			scan_fail(s, patterns[i].code, line);
			/* ai-toolkit trains on after a NaN loss (zeroed): it stays */
			if (patterns[i].code == RECIPE_FAIL_NAN_LOSS)
				s->confirmed = true;
			break;
		}
	}
	/* run.py's own report of the exception that ended the job */
	if (strstr(line, "Error running job: "))
		s->confirmed = true;
}

/* ---- checkpoints ---- */

static int find_slot(const struct recipe_scan *s, const char *path)
{
	for (size_t i = 0; i < s->norder; i++)
		if (!strcmp(s->slots[s->order[i]].path, path))
			return (int)i;
	return -1;
}

static void drop_order(struct recipe_scan *s, size_t i)
{
	s->used[s->order[i]] = false;
	memmove(&s->order[i], &s->order[i + 1], (s->norder - i - 1) * sizeof(s->order[0]));
	s->norder--;
}

/* The step in "<name>_<step:09d>.safetensors", or -1. */
static long long path_step(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t xlen;

	return recipe_checkpoint_step(base ? base + 1 : path, &xlen);
}

/* NAME.safetensors, or with the name unknown, a name without a step. */
static bool path_final(const struct recipe_scan *s, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t n = strlen(s->name);

	base = base ? base + 1 : path;
	if (n)
		return !strncmp(base, s->name, n) && !strcmp(base + n, ".safetensors");
	return path_step(path) < 0;
}

static void checkpoint_saved(struct recipe_scan *s, const char *path)
{
	int at = find_slot(s, path);
	size_t k;

	s->res.checkpoints_saved++;
	if (at >= 0)
		drop_order(s, (size_t)at);
	if (s->norder == RECIPE_SCAN_CHECKPOINTS)
		drop_order(s, 0);
	for (k = 0; s->used[k]; k++)
		;
	s->used[k] = true;
	copy_bounded(s->slots[k].path, sizeof(s->slots[k].path), path);
	s->slots[k].final = path_final(s, path);
	s->slots[k].step = s->slots[k].final ? s->res.step : path_step(path);
	s->order[s->norder++] = (int)k;
	if (s->slots[k].final) {
		s->res.final_saved = true;
		set_phase(s, RECIPE_PHASE_DONE);
	}
}

static void checkpoint_removed(struct recipe_scan *s, const char *path)
{
	int at = find_slot(s, path);

	if (at >= 0)
		drop_order(s, (size_t)at);
}

/* ---- tqdm bars ---- */

struct bar {
	const char *desc;
	size_t desc_len;
	long long n, total;     /* -1 when not whole numbers (byte counts) */
	double rate_s_per_it;   /* NAN when '?' */
	bool bytes;             /* a B/s rate: a download */
	double remaining_s;     /* NAN when '?' */
	const char *postfix;    /* after the rate, up to the closing ']' */
	size_t postfix_len;
	const char *end;        /* just past the closing ']' */
};

static long long whole(const char *p, const char **end)
{
	long long v = 0;
	const char *q = p;

	while (*q >= '0' && *q <= '9' && v < (LLONG_MAX - 9) / 10)
		v = v * 10 + (*q++ - '0');
	*end = q;
	return q == p ? -1 : v;
}

/* "MM:SS" or "H:MM:SS" in seconds; NAN for "?". */
static double interval(const char *p, const char *stop)
{
	double total = 0;

	if (p >= stop)
		return NAN;
	while (p < stop) {
		const char *q;
		long long v = whole(p, &q);

		if (v < 0)
			return NAN;
		total = total * 60 + (double)v;
		p = q;
		if (p < stop && *p != ':')
			return NAN;
		if (p < stop)
			p++;
	}
	return total;
}

/* A number of up to 63 characters from p to stop. */
static bool number(const char *p, const char *stop, double *out)
{
	char tmp[64];
	size_t n = (size_t)(stop - p);

	if (p >= stop || n >= sizeof(tmp))
		return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	return str_to_double(tmp, out);
}

/* tqdm's "DESC: PCT%|BAR| N/TOTAL [ELAPSED<REMAINING, RATE, POSTFIX]". */
static bool bar_parse(const char *line, struct bar *b)
{
	const char *pct = strstr(line, "%|"), *p, *q, *lt, *close, *comma, *unit;

	if (!pct)
		return false;
	memset(b, 0, sizeof(*b));
	p = pct;
	while (p > line && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (p == pct)
		return false;
	while (p > line && p[-1] == ' ')
		p--;
	if (p > line) {
		if (p[-1] != ':')
			return false;
		b->desc = line;
		b->desc_len = (size_t)(p - 1 - line);
	} else {
		b->desc = line;
	}
	p = strchr(pct + 2, '|');
	if (!p || p[1] != ' ')
		return false;
	p += 2;
	b->n = whole(p, &q);
	if (*q == '/' && b->n >= 0) {
		b->total = whole(q + 1, &q);
		if (strncmp(q, " [", 2))
			b->total = b->n = -1;
	} else {
		b->total = b->n = -1;
	}
	q = strstr(p, " [");
	if (!q)
		return false;
	q += 2;
	lt = strchr(q, '<');
	/* the first ']' after it: text glued on after the bar may hold more */
	close = lt ? strchr(lt, ']') : NULL;
	if (!close || !lt || lt > close)
		return false;
	b->end = close + 1;
	comma = memchr(lt, ',', (size_t)(close - lt));
	if (!comma)
		return false;
	b->remaining_s = interval(lt + 1, comma);
	p = comma + 1;
	while (*p == ' ')
		p++;
	q = memchr(p, ',', (size_t)(close - p));
	if (!q)
		q = close;
	b->rate_s_per_it = NAN;
	/* "1.24s/it", "3.20it/s", "180MB/s", "?it/s" */
	unit = p;
	while (unit < q && ((*unit >= '0' && *unit <= '9') || *unit == '.'))
		unit++;
	if (q - unit >= 3 && !memcmp(q - 3, "B/s", 3))
		b->bytes = true;
	else if (q - unit == 4 && !memcmp(unit, "s/it", 4) && number(p, unit, &b->rate_s_per_it))
		;
	else if (q - unit == 4 && !memcmp(unit, "it/s", 4) && number(p, unit, &b->rate_s_per_it))
		b->rate_s_per_it = b->rate_s_per_it > 0 ? 1 / b->rate_s_per_it : NAN;
	if (q < close) {
		b->postfix = q + 1;
		b->postfix_len = (size_t)(close - q - 1);
	}
	return true;
}

static bool desc_is(const struct bar *b, const char *want)
{
	return b->desc_len == strlen(want) && !memcmp(b->desc, want, b->desc_len);
}

static bool desc_starts(const struct bar *b, const char *prefix)
{
	size_t n = strlen(prefix);

	return b->desc_len >= n && !memcmp(b->desc, prefix, n);
}

/* The text of "KEY: VALUE" in the postfix, e.g. lr and loss: its start,
 * with *end past it; NULL when the key is not there. */
static const char *postfix_text(const struct bar *b, const char *key, const char **end)
{
	const char *p = b->postfix, *stop, *q;
	size_t n = strlen(key);

	if (!p)
		return NULL;
	for (stop = p + b->postfix_len; p + n <= stop; p++) {
		if (memcmp(p, key, n) || (p > b->postfix && p[-1] != ' '))
			continue;
		p += n;
		for (q = p; q < stop && *q != ' ' && *q != ','; q++)
			;
		*end = q;
		return p;
	}
	return NULL;
}

static double postfix_value(const struct bar *b, const char *key)
{
	const char *end, *p = postfix_text(b, key, &end);
	double v;

	return p && number(p, end, &v) ? v : NAN;
}

/* "loss: nan" (tqdm prints a NaN tensor's value so; "-nan" too). */
static bool postfix_nan(const struct bar *b, const char *key)
{
	const char *end, *p = postfix_text(b, key, &end);

	if (p && end > p && *p == '-')
		p++;
	return p && end - p == 3 && !strncasecmp(p, "nan", 3);
}

/* The job's own bar: progress. `result` is the one to update (the
 * committed state, or the view for a bar tqdm is still drawing). */
static void training_bar(struct recipe_scan *s, struct recipe_scan_result *r, const struct bar *b,
			 const char *line)
{
	double v;

	if (b->n < 0 || b->total <= 0)
		return;
	/* Training that carries on after a failure line that nothing confirmed
	 * was a false alarm (a warning, a retried download). */
	if (r == &s->res && r->failure != RECIPE_FAIL_NONE && !s->confirmed &&
	    b->n > s->fail_step) {
		r->failure = RECIPE_FAIL_NONE;
		s->failure_line[0] = '\0';
		r->phase = RECIPE_PHASE_TRAINING;
	}
	r->step = b->n;
	r->total = b->total;
	r->rate_s_per_it = b->rate_s_per_it;
	r->eta_s = b->remaining_s;
	if (!isnan(v = postfix_value(b, "lr: ")))
		r->lr = v;
	if (!isnan(v = postfix_value(b, "loss: ")))
		r->loss = v;
	if (r->phase != RECIPE_PHASE_FAILED && r->phase != RECIPE_PHASE_DONE)
		r->phase = RECIPE_PHASE_TRAINING;
	/* A NaN loss is never hidden behind the last finite one. */
	if (postfix_nan(b, "loss: ")) {
		r->loss = NAN;
		if (r == &s->res) {
			scan_fail(s, RECIPE_FAIL_NAN_LOSS, line);
			s->confirmed = true;
		}
	}
}

static void other_bar(struct recipe_scan *s, const struct bar *b)
{
	if (desc_starts(b, "Generating Images")) {
		set_phase(s, RECIPE_PHASE_SAMPLING);
		if (b->n > s->sample_n)
			s->res.samples += (unsigned long long)(b->n - s->sample_n);
		s->sample_n = b->n >= 0 ? b->n : 0;
	} else if (desc_starts(b, "Caching latents")) {
		set_phase(s, RECIPE_PHASE_CACHING);
	} else if (desc_starts(b, "Loading")) {
		set_phase(s, RECIPE_PHASE_LOADING);
	} else if ((desc_starts(b, "Fetching ") || b->bytes) && early(s)) {
		set_phase(s, RECIPE_PHASE_DOWNLOADING);
	}
}

/* ---- lines ---- */

/* The text after `marker` in line, or NULL. */
static const char *after(const char *line, const char *marker)
{
	const char *p = strstr(line, marker);

	return p ? p + strlen(marker) : NULL;
}

static bool starts(const char *line, const char *prefix)
{
	return !strncmp(line, prefix, strlen(prefix));
}

/* "Running 1 job" / "Running 2 jobs": run.py starting (again). */
static bool run_start(const char *line)
{
	const char *q;

	return starts(line, "Running ") && whole(line + 8, &q) >= 0 &&
	       (!strcmp(q, " job") || !strcmp(q, " jobs"));
}

static void scan_exit(struct recipe_scan *s, const char *line, const char *status)
{
	const char *q;
	long long st = whole(status, &q);

	if (st < 0)
		return;
	s->res.exit_status = (int)(st > 255 ? 255 : st);
	s->confirmed = true;
	if (st == 0 && s->res.final_saved && s->res.failure == RECIPE_FAIL_NONE)
		s->res.phase = RECIPE_PHASE_DONE;
	else if (st == 0 || st < 128)
		scan_fail(s, RECIPE_FAIL_UNKNOWN, line);
	else
		scan_fail(s, RECIPE_FAIL_KILLED, line);
	if (s->res.failure != RECIPE_FAIL_NONE)
		s->res.phase = RECIPE_PHASE_FAILED;
}

/* ai-toolkit prints the exception (the line before), "Could not save
 * optimizer" and trains on: the exception was no failure, but
 * optimizer.pt is not to be trusted. */
static void optimizer_not_saved(struct recipe_scan *s, const char *line)
{
	if (s->res.failure != RECIPE_FAIL_NONE && !s->confirmed &&
	    s->fail_lineno + 1 == s->lineno) {
		s->res.failure = RECIPE_FAIL_NONE;
		s->failure_line[0] = '\0';
		s->res.phase = RECIPE_PHASE_SAVING;
	}
	if ((s->res.warnings & (1u << RECIPE_WARN_FINAL_SAMPLES)) &&
	    s->warn_lineno[RECIPE_WARN_FINAL_SAMPLES] + 1 == s->lineno) {
		s->res.warnings &= ~(1u << RECIPE_WARN_FINAL_SAMPLES);
		s->warning_lines[RECIPE_WARN_FINAL_SAMPLES][0] = '\0';
	}
	s->res.optimizer_trusted = false;
	scan_warn(s, RECIPE_WARN_OPTIMIZER_SAVE, line);
}

static void scan_events(struct recipe_scan *s, const char *line)
{
	const char *v;

	if ((v = after(line, "[ferry] trainer exited with status "))) {
		scan_exit(s, line, v);
		return;
	}
	if (run_start(line)) {
		scan_reset_run(s);
		return;
	}
	if (!strcmp(line, "Job stopped") || !strcmp(line, "Killed")) {
		scan_fail(s, RECIPE_FAIL_KILLED, line);
		s->confirmed = true;
		return;
	}
	scan_failures(s, line);
	if ((v = after(line, "# Running job: "))) {
		copy_bounded(s->name, sizeof(s->name), v);
	} else if ((v = after(line, "Saved checkpoint to "))) {
		checkpoint_saved(s, v);
	} else if ((v = after(line, "Removing old save: "))) {
		checkpoint_removed(s, v);
	} else if (starts(line, "Saved optimizer to ")) {
		s->res.optimizer_trusted = true;
	} else if (starts(line, "Could not save optimizer")) {
		optimizer_not_saved(s, line);
	} else if (starts(line, "Saving at step ")) {
		set_phase(s, RECIPE_PHASE_SAVING);
	} else if ((v = after(line, "Found step "))) {
		const char *q;
		long long st = whole(v, &q);

		if (st >= 0 && starts(q, " in metadata"))
			s->res.resumed_from = st;
	} else if (starts(line, "Generating baseline samples")) {
		set_phase(s, RECIPE_PHASE_SAMPLING);
	} else if ((starts(line, "Loading assistant lora") ||
		    starts(line, "Unloading assistant lora")) && !early(s)) {
		/* schnell's adapter around every sample round: not a phase */
	} else if (starts(line, "Quantizing ")) {
		set_phase(s, RECIPE_PHASE_QUANTIZING);
	} else if (starts(line, "Caching latents") || starts(line, "- Saving latents to disk")) {
		set_phase(s, RECIPE_PHASE_CACHING);
	} else if (starts(line, "Dataset: ")) {
		copy_bounded(s->dataset, sizeof(s->dataset), line + 9);
		set_phase(s, RECIPE_PHASE_LOADING);
	} else if (starts(line, "Loading ") || starts(line, "Making pipe") ||
		   starts(line, "Preparing Model") || starts(line, "create LoRA") ||
		   starts(line, "#### IMPORTANT RESUMING FROM") || starts(line, "Bucket sizes for") ||
		   starts(line, "-  Preprocessing image") || starts(line, "-  Found ")) {
		set_phase(s, RECIPE_PHASE_LOADING);
	} else if (starts(line, "Downloading ") && early(s)) {
		set_phase(s, RECIPE_PHASE_DOWNLOADING);
	}
}

/* A line of the config's echo: "folder_path": "X" names the dataset. */
static void echo_line(struct recipe_scan *s, const char *line)
{
	static const char key[] = "\"folder_path\": \"";
	const char *p = after(line, key);
	char *o = s->folder_path;

	if (!p || s->folder_given || strncmp(line, key, sizeof(key) - 1))
		return;
	/* JSON's escapes for a path: \\ \" \/; anything else is kept as is */
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == '/'))
			p++;
		*o++ = *p;
	}
	*o = '\0';
}

/* run.py echoes each process's config as JSON (indent 4) at start-up: a
 * "{" line, indented lines, a "}" line. What the config says (a sample
 * prompt taken from a caption that reads "CUDA out of memory") is not
 * what happened: those lines raise nothing. True when `raw` was one. */
static bool config_echo(struct recipe_scan *s, const char *raw, const char *line)
{
	bool indented = *raw == ' ' || *raw == '\t';

	if (s->in_echo) {
		if (indented) {
			echo_line(s, line);
			return true;
		}
		s->in_echo = false;
		return !strcmp(line, "}");
	}
	if (!strcmp(raw, "{")) {
		s->in_echo = true;
		return true;
	}
	return false;
}

static void scan_line(struct recipe_scan *s)
{
	char *line = s->line;
	size_t n = s->len;
	struct bar b;

	/* tqdm pads a redraw with spaces over the longer line before it. */
	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	line[n] = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	s->len = 0;
	if (!*line)
		return;
	s->lineno++;
	copy_bounded(s->last, sizeof(s->last), line);
	if (config_echo(s, s->line, line))
		return;
	if (bar_parse(line, &b)) {
		if (s->name[0] && desc_is(&b, s->name))
			training_bar(s, &s->res, &b, line);
		else
			other_bar(s, &b);
		/* Text printed after a bar without a line end of its own. */
		line = (char *)b.end;
		while (*line == ' ')
			line++;
		if (!*line)
			return;
	}
	scan_events(s, line);
}

/* Bytes that end a run of plain text: line ends, escapes, controls. */
static bool special(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

void recipe_scan_feed(struct recipe_scan *s, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;

	while (p < end) {
		unsigned char c = *p;

		if (s->state == ST_TEXT) {
			const unsigned char *run = p;

			while (p < end && !special(*p))
				p++;
			if (p > run && s->len < RECIPE_SCAN_LINE_MAX) {
				size_t n = (size_t)(p - run), room = RECIPE_SCAN_LINE_MAX - s->len;

				memcpy(s->line + s->len, run, n < room ? n : room);
				s->len += n < room ? n : room;
			}
			if (p == end)
				break;
			c = *p++;
			if (c == '\n' || c == '\r')
				scan_line(s);
			else if (c == 0x1b)
				s->state = ST_ESC;
			else if (c == '\t' && s->len < RECIPE_SCAN_LINE_MAX)
				s->line[s->len++] = ' ';
			continue;
		}
		p++;
		/* A line end inside a broken escape still ends the line. */
		if (c == '\n' || c == '\r') {
			s->state = ST_TEXT;
			scan_line(s);
			continue;
		}
		switch (s->state) {
		case ST_ESC:
			if (c == '[')
				s->state = ST_CSI;
			else if (c == ']')
				s->state = ST_OSC;
			else if (c < 0x20 || c > 0x2f) /* 0x20-0x2f: intermediates */
				s->state = ST_TEXT;
			break;
		case ST_CSI:
			if (c >= 0x40 && c <= 0x7e)
				s->state = ST_TEXT;
			break;
		case ST_OSC:
			if (c == 0x07)
				s->state = ST_TEXT;
			else if (c == 0x1b)
				s->state = ST_OSC_ESC;
			break;
		case ST_OSC_ESC:
			s->state = c == '\\' ? ST_TEXT : ST_OSC;
			break;
		default:
			s->state = ST_TEXT;
			break;
		}
	}
}

int recipe_scan_fd(struct recipe_scan *s, int fd, const char *what, struct err *e)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, ERR_IO, "cannot read %s", what);
		if (!n)
			return 0;
		recipe_scan_feed(s, chunk, (size_t)n);
	}
}

void recipe_scan_finish(struct recipe_scan *s)
{
	s->state = ST_TEXT;
	if (s->len)
		scan_line(s);
}

void recipe_scan_idle(struct recipe_scan *s, double silent_s, double stall_s)
{
	char why[RECIPE_SCAN_LINE_MAX + 1];

	if (stall_s <= 0 || silent_s < stall_s || !early(s) || s->res.exit_status >= 0 ||
	    s->res.failure != RECIPE_FAIL_NONE)
		return;
	/* The line it stopped after is the one that shows it. */
	snprintf(why, sizeof(why), "%s", s->last[0] ? s->last : "(no output)");
	scan_fail(s, RECIPE_FAIL_DOWNLOAD_STALLED, why);
}

const struct recipe_scan_result *recipe_scan_result(struct recipe_scan *s)
{
	struct bar b;

	s->view = s->res;
	/* The bar tqdm is drawing has no line end yet: take its numbers, once
	 * it is drawn whole, without acting on it. */
	if (s->state == ST_TEXT && s->len && s->name[0]) {
		char *line = s->line, *e;

		s->line[s->len] = '\0';
		while (*line == ' ')
			line++;
		e = line + strlen(line);
		while (e > line && e[-1] == ' ')
			e--;
		if (e > line && e[-1] == ']' && bar_parse(line, &b) && desc_is(&b, s->name))
			training_bar(s, &s->view, &b, line);
	}
	s->view.name = s->name;
	s->view.failure_line = s->failure_line;
	for (size_t i = 0; i < RECIPE_WARN_COUNT; i++)
		s->view.warning_lines[i] = s->warning_lines[i];
	for (size_t i = 0; i < s->norder; i++) {
		const struct slot *sl = &s->slots[s->order[i]];

		s->view_ckpt[i] = (struct recipe_checkpoint){ sl->path, sl->step, sl->final };
	}
	s->view.checkpoints = s->view_ckpt;
	s->view.ncheckpoints = s->norder;
	return &s->view;
}

static json_t *maybe_real(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *maybe_int(long long v)
{
	return v < 0 ? json_null() : json_integer(v);
}

json_t *recipe_scan_json(const struct recipe_scan_result *r)
{
	json_t *o = json_object(), *ck = json_array(), *warn = json_array();

	for (size_t i = 0; i < r->ncheckpoints; i++) {
		const struct recipe_checkpoint *c = &r->checkpoints[i];

		json_array_append_new(ck, json_pack("{s:o, s:o, s:b}", "path", json_string_escaped(c->path),
						    "step", maybe_int(c->step), "final", c->final));
	}
	json_object_set_new(o, "phase", json_string(recipe_phase_name(r->phase)));
	json_object_set_new(o, "name", json_string_escaped(r->name ? r->name : ""));
	json_object_set_new(o, "step", maybe_int(r->step));
	json_object_set_new(o, "total", maybe_int(r->total));
	json_object_set_new(o, "loss", maybe_real(r->loss));
	json_object_set_new(o, "lr", maybe_real(r->lr));
	json_object_set_new(o, "rate_s_per_it", maybe_real(r->rate_s_per_it));
	json_object_set_new(o, "eta_s", maybe_real(r->eta_s));
	json_object_set_new(o, "resumed_from", maybe_int(r->resumed_from));
	json_object_set_new(o, "checkpoints", ck);
	json_object_set_new(o, "checkpoints_saved", json_integer((json_int_t)r->checkpoints_saved));
	json_object_set_new(o, "samples", json_integer((json_int_t)r->samples));
	json_object_set_new(o, "exit_status", maybe_int(r->exit_status));
	json_object_set_new(o, "failure",
			    r->failure == RECIPE_FAIL_NONE
				    ? json_null()
				    : json_pack("{s:s, s:o}", "code", recipe_failure_name(r->failure),
						"line", json_string_escaped(r->failure_line ? r->failure_line : "")));
	for (size_t i = 0; i < RECIPE_WARN_COUNT; i++)
		if (r->warnings & (1u << i))
			json_array_append_new(warn, json_pack("{s:s, s:o}", "code",
							      recipe_warning_name((enum recipe_warning)i),
							      "line", json_string_escaped(
								      r->warning_lines[i] ? r->warning_lines[i] : "")));
	json_object_set_new(o, "warnings", warn);
	json_object_set_new(o, "optimizer_trusted", json_boolean(r->optimizer_trusted));
	return o;
}
