#include "recipe/render.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"
#include "dataset/fix.h"

#define STEPS_MAX 100000
#define DEFAULT_STEPS 2000
#define DEFAULT_RANK 16
#define DEFAULT_LR 1e-4
#define DEFAULT_INTERVAL 250
#define SAMPLE_SIDE 1024
#define PROMPTS_FILE_MAX (1u << 20)

/* Defaults follow ai-toolkit's train_lora_flux_24gb example; the ranges
 * keep a run inside what the example, Replicate's trainer (rank 1-128,
 * steps 3-6000) and a 24 GB card can do. */
static const struct recipe_param_info param_table[] = {
	{ "name", "config.name", RECIPE_DEFAULT_NAME,
	  "1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit",
	  "names the output folder and every file in it", RP_TEXT, 0, 0 },
	{ "trigger", "process.trigger_word", "dataset_info.json's trigger word, else none",
	  "1 to 64 characters without control characters, [ ] { } $ \" \\ or a space at "
	  "either end",
	  "the word the LoRA learns; ai-toolkit puts it in front of captions that lack it",
	  RP_TEXT, 0, 0 },
	{ "steps", "train.steps", "2000", "a whole number from 1 to 100000",
	  "training steps (the example's 2000; it suggests 500 to 4000)", RP_WHOLE, 1,
	  STEPS_MAX },
	{ "rank", "network.linear", "16", "a whole number from 1 to 128",
	  "LoRA rank: capacity and size (16: 172 MB)", RP_WHOLE, 1, 128 },
	{ "alpha", "network.linear_alpha", "the rank", "a number from 0.01 to 1024",
	  "LoRA alpha; the code default 1.0 scales a rank-16 update down 16 times",
	  RP_REAL, 0.01, 1024 },
	{ "lr", "train.lr", "1e-4", "a number from 1e-7 to 0.01",
	  "adamw8bit's learning rate (the code default 1e-6 learns almost nothing)", RP_REAL,
	  1e-7, 1e-2 },
	{ "batch-size", "train.batch_size", "1", "a whole number from 1 to 16",
	  "images per step; more needs more VRAM", RP_WHOLE, 1, 16 },
	{ "resolution", "datasets[0].resolution", "512,768,1024",
	  "1 to 8 whole numbers from 256 to 2048, each a multiple of 64, comma-separated",
	  "every image is trained at each (never upscaled)", RP_WHOLE, 256, 2048 },
	{ "save-every", "save.save_every", "250, or half the steps when less",
	  "a whole number from 1 to the steps",
	  "steps between checkpoints; half the steps keeps one in a short run", RP_WHOLE, 1,
	  STEPS_MAX },
	{ "sample-every", "sample.sample_every", "250, or half the steps when less",
	  "0 (no samples) or a whole number from 1 to the steps",
	  "steps between sample rounds, each one costs minutes", RP_WHOLE, 0, STEPS_MAX },
	{ "prompts", "sample.prompts", "4 captions spread across the dataset",
	  "a file of 1 to 20 prompts, one a line, each at most 2000 bytes (blank lines and "
	  "lines starting with # are skipped)",
	  "sample prompts", RP_TEXT, 0, 0 },
	{ "dataset", "datasets[0].folder_path", "REMOTE_ROOT/JOB/dataset",
	  "a folder path without control characters",
	  "the dataset as the trainer sees it; made absolute", RP_TEXT, 0, 0 },
	{ "output", "training_folder", "REMOTE_ROOT/JOB/output",
	  "a folder path without control characters",
	  "where NAME/ and its files are written; made absolute", RP_TEXT, 0, 0 },
	{ "captions", "(not written)", "--dataset, when it is a folder here",
	  "a folder path without control characters",
	  "a local copy of the dataset to take sample prompts from", RP_TEXT, 0, 0 },
	{ "job", "(not written)", "the name",
	  "a job id: no '/' or control characters, not . or ..",
	  "the job folder in the default paths", RP_TEXT, 0, 0 },
	{ "remote-root", "(not written)", "the remote.root setting (/root/ferry)",
	  "a folder path without control characters",
	  "where job folders live, for the default paths", RP_TEXT, 0, 0 },
};

const struct recipe_param_info *recipe_param_table(size_t *n)
{
	*n = sizeof(param_table) / sizeof(param_table[0]);
	return param_table;
}

static const struct recipe_param_info *param_info(const char *name)
{
	for (size_t i = 0; i < sizeof(param_table) / sizeof(param_table[0]); i++)
		if (!strcmp(param_table[i].name, name))
			return &param_table[i];
	return NULL;
}

static int param_bad(const struct recipe_param_info *pi, const char *value, struct err *e)
{
	struct buf shown = BUF_INIT;
	int r;

	str_escape(value, &shown);
	r = err_set(e, ERR_USAGE, "--%s must be %s, not '%s'", pi->name, pi->range, shown.data);
	buf_release(&shown);
	return r;
}

static int param_whole(const struct recipe_param_info *pi, const char *value,
		       unsigned long long *out, struct err *e)
{
	if (str_to_u64(value, out) || (double)*out < pi->min || (double)*out > pi->max)
		return param_bad(pi, value, e);
	return 0;
}

static int param_resolution(struct recipe_params *p, const struct recipe_param_info *pi,
			    const char *value, struct err *e)
{
	char *copy = xstrdup(value), *rest = copy, *tok;
	unsigned res[RECIPE_MAX_RES];
	size_t n = 0;
	int r = 0;

	while (!r && (tok = strsep(&rest, ","))) {
		unsigned long long v;

		if (n == RECIPE_MAX_RES || str_to_u64(str_trim(tok), &v) || v < pi->min ||
		    v > pi->max || v % 64) {
			r = param_bad(pi, value, e);
			break;
		}
		for (size_t i = 0; i < n && !r; i++)
			if (res[i] == v)
				r = err_set(e, ERR_USAGE, "--resolution lists %llu twice", v);
		res[n++] = (unsigned)v;
	}
	if (!r) {
		memcpy(p->resolution, res, n * sizeof(res[0]));
		p->nres = n;
	}
	free(copy);
	return r;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
				 (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

/* ai-toolkit resumes from the newest of NAME*.safetensors, NAME*.pt and
 * NAME* in its output folder (BaseSDTrainProcess.py:823-854): a name that
 * begins a file it writes there picks that file up as the LoRA. The file,
 * or NULL. */
static const char *name_collision(const char *name)
{
	static const char *const files[] = { "config.yaml", "optimizer.pt", "samples",
					     "loss_log.db" };
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (n && !strncmp(files[i], name, n))
			return files[i];
	return NULL;
}

static int name_collides(const char *name, struct err *e)
{
	const char *file = name_collision(name);

	if (!file)
		return 0;
	return err_set(e, ERR_USAGE, "--name '%s' begins %s, which ai-toolkit writes next to the "
		       "checkpoints: its resume looks for NAME* there and would load %s as the LoRA; "
		       "choose another name", name, file, file);
}

/* The resume also drops every path holding one of these unless the name
 * holds it too (BaseSDTrainProcess.py:844-851): an output folder with one
 * would silently restart the run at step 0. The field that put it there
 * is named. */
static int output_tags(const struct recipe_params *p, const char *name, const char *output,
		       struct err *e)
{
	static const char *const tags[] = { "_LoRA", "_refiner", "_t2i", "_cn" };

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		const char *field, *value;

		if (!strstr(output, tags[i]) || strstr(name, tags[i]))
			continue;
		if (p->output) {
			field = "--output";
			value = p->output;
		} else if (p->job && strstr(p->job, tags[i])) {
			field = "--job";
			value = p->job;
		} else {
			field = "remote.root";
			value = p->remote_root ? p->remote_root : output;
		}
		return err_set(e, ERR_USAGE, "%s '%s' puts '%s' in the output path %s, and --name "
			       "'%s' does not hold it: ai-toolkit's resume skips every file whose path "
			       "holds %s unless the name does, so a relaunch would start again at "
			       "step 0", field, value, tags[i], output, name, tags[i]);
	}
	return 0;
}

/* ai-toolkit replaces [trigger] and ${VAR} and the config is JSON: a trigger
 * with brackets, braces, '$', quotes or backslashes is asking for trouble. */
static bool trigger_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 && !str_has_ctrl(s) && str_utf8_valid(s, n) &&
	       !strpbrk(s, "[]{}$\"\\") && s[0] != ' ' && s[n - 1] != ' ';
}

static bool job_ok(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") && !str_has_ctrl(s) &&
	       str_utf8_valid(s, strlen(s));
}

static void set_text(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup(value);
}

int recipe_param_set(struct recipe_params *p, const char *param, const char *value,
		     struct err *e)
{
	const struct recipe_param_info *pi = param_info(param);
	unsigned long long v;
	double d;

	if (!pi)
		return err_set(e, ERR_USAGE, "no parameter '%s'", param);
	if (!strcmp(param, "resolution"))
		return param_resolution(p, pi, value, e);
	if (pi->kind == RP_WHOLE) {
		int r = param_whole(pi, value, &v, e);

		if (r)
			return r;
		if (!strcmp(param, "steps")) {
			p->steps = v;
		} else if (!strcmp(param, "rank")) {
			p->rank = v;
		} else if (!strcmp(param, "batch-size")) {
			p->batch_size = v;
		} else if (!strcmp(param, "save-every")) {
			p->save_every = v;
			p->have_save_every = true;
		} else {
			p->sample_every = v;
			p->have_sample_every = true;
		}
		return 0;
	}
	if (pi->kind == RP_REAL) {
		if (!str_to_double(value, &d) || d < pi->min || d > pi->max)
			return param_bad(pi, value, e);
		if (!strcmp(param, "alpha"))
			p->alpha = d;
		else
			p->lr = d;
		return 0;
	}
	if (!strcmp(param, "name") ? !name_ok(value) :
	    !strcmp(param, "trigger") ? !trigger_ok(value) :
	    !strcmp(param, "job") ? !job_ok(value) :
	    !*value || str_has_ctrl(value) || !str_utf8_valid(value, strlen(value)))
		return param_bad(pi, value, e);
	if (!strcmp(param, "name")) {
		if (name_collides(value, e))
			return ERR_USAGE;
		set_text(&p->name, value);
	}
	else if (!strcmp(param, "trigger"))
		set_text(&p->trigger, value);
	else if (!strcmp(param, "job"))
		set_text(&p->job, value);
	else if (!strcmp(param, "prompts"))
		set_text(&p->prompts_file, value);
	else if (!strcmp(param, "dataset"))
		set_text(&p->dataset, value);
	else if (!strcmp(param, "output"))
		set_text(&p->output, value);
	else if (!strcmp(param, "captions"))
		set_text(&p->captions, value);
	else
		set_text(&p->remote_root, value);
	return 0;
}

void recipe_params_release(struct recipe_params *p)
{
	free(p->name);
	free(p->job);
	free(p->trigger);
	free(p->prompts_file);
	free(p->dataset);
	free(p->output);
	free(p->captions);
	free(p->remote_root);
	memset(p, 0, sizeof(*p));
}

/* `path` made absolute against the current directory, with "." and ".."
 * parts and doubled slashes resolved as text: the path is the trainer's,
 * on a machine where it may not exist yet. */
static int absolute_path(const char *path, char **out, struct err *e)
{
	struct strv parts = STRV_INIT;
	struct buf res = BUF_INIT;
	char *joined, *rest, *part, cwd[PATH_MAX];

	if (path[0] == '/') {
		joined = xstrdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return err_sys(e, ERR_IO, "cannot make %s absolute", path);
		joined = fsx_join(cwd, path);
	}
	rest = joined;
	while ((part = strsep(&rest, "/"))) {
		if (!*part || !strcmp(part, "."))
			continue;
		if (!strcmp(part, "..")) {
			if (parts.n)
				free(parts.v[--parts.n]);
			continue;
		}
		strv_push(&parts, part);
	}
	for (size_t i = 0; i < parts.n; i++)
		buf_printf(&res, "/%s", parts.v[i]);
	if (!res.len)
		buf_putc(&res, '/');
	*out = buf_detach(&res, NULL);
	strv_release(&parts);
	free(joined);
	return 0;
}

/* A default path under the job root: REMOTE_ROOT/JOB/LEAF. */
static int job_path(const struct recipe_params *p, const char *name, const char *leaf,
		    char **out, struct err *e)
{
	char *rel = xasprintf("%s/%s/%s", p->remote_root ? p->remote_root : "/root/ferry",
			      p->job ? p->job : name, leaf);
	int r = absolute_path(rel, out, e);

	free(rel);
	return r;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return path && !stat(path, &st) && S_ISDIR(st.st_mode);
}

void recipe_prompts_from_captions(const struct strv *captions, const char *trigger,
				  struct strv *out)
{
	struct strv good = STRV_INIT;
	size_t take;

	for (size_t i = 0; i < captions->n; i++) {
		char *norm = fix_caption_normalize(captions->v[i]);

		if (strlen(norm) > 10)
			strv_push_nodup(&good, norm);
		else
			free(norm);
	}
	take = good.n < RECIPE_CAPTION_PROMPTS ? good.n : RECIPE_CAPTION_PROMPTS;
	for (size_t k = 0; k < take; k++) {
		/* first, last and evenly between */
		size_t idx = take > 1 ? k * (good.n - 1) / (take - 1) : 0;
		char *prompt = xstrdup(good.v[idx]), *with;

		if (strlen(prompt) > RECIPE_PROMPT_MAX - 100) {
			/* cut at a space, leaving room for the trigger */
			char *cut = prompt + RECIPE_PROMPT_MAX - 100;

			while (cut > prompt && *cut != ' ')
				cut--;
			*cut = '\0';
		}
		with = trigger && *trigger ? fix_caption_with_trigger(prompt, trigger) : NULL;
		if (with) {
			free(prompt);
			prompt = with;
		}
		strv_push_nodup(out, prompt);
	}
	if (!take) {
		bool t = trigger && *trigger;

		strv_push_nodup(out, t ? xasprintf("a photo of %s", trigger) : xstrdup("a photo"));
		strv_push_nodup(out, t ? xasprintf("%s, close-up portrait, natural light", trigger)
				       : xstrdup("a close-up portrait, natural light"));
	}
	strv_release(&good);
}

static int prompts_from_file(const char *path, struct strv *out, struct err *e)
{
	struct buf text = BUF_INIT;
	char *rest, *line;
	unsigned lineno = 0;
	int r;

	r = fsx_read_file(path, &text, PROMPTS_FILE_MAX, e);
	if (r) {
		err_prefix(e, "--prompts");
		goto out;
	}
	if (!str_utf8_valid(text.data, text.len) || memchr(text.data, '\0', text.len)) {
		r = err_set(e, ERR_USAGE, "--prompts %s: not UTF-8 text", path);
		goto out;
	}
	rest = text.data;
	while ((line = strsep(&rest, "\n"))) {
		lineno++;
		line = str_trim(line);
		if (!*line || *line == '#')
			continue;
		if (str_has_ctrl(line) || strlen(line) > RECIPE_PROMPT_MAX) {
			r = err_set(e, ERR_USAGE, "--prompts %s line %u: a prompt must be at most "
				    "%d bytes without control characters", path, lineno,
				    RECIPE_PROMPT_MAX);
			goto out;
		}
		if (out->n == RECIPE_MAX_PROMPTS) {
			r = err_set(e, ERR_USAGE, "--prompts must be %s; %s has more",
				    param_info("prompts")->range, path);
			goto out;
		}
		strv_push(out, line);
	}
	if (!out->n)
		r = err_set(e, ERR_USAGE, "--prompts must be %s; %s has none",
			    param_info("prompts")->range, path);
out:
	buf_release(&text);
	return r;
}

/* The sample prompts, and the trigger word when none was given. */
static int sample_prompts(const struct recipe_params *p, const char *dataset,
			  char **trigger, struct strv *prompts, struct err *e)
{
	const char *dir = p->captions ? p->captions : is_dir(dataset) ? dataset : NULL;
	struct ds_dataset *ds = NULL;
	struct strv captions = STRV_INIT;
	int r = 0;

	*trigger = p->trigger ? xstrdup(p->trigger) : NULL;
	if (dir) {
		r = ds_open(&ds, dir, e);
		if (r) {
			err_prefix(e, "%s", p->captions ? "--captions" : "--dataset");
			goto out;
		}
		if (!*trigger) {
			*trigger = ds_info_trigger(ds);
			if (*trigger && !trigger_ok(*trigger)) {
				free(*trigger);
				*trigger = NULL;
			}
		}
		ds_read_captions(ds, &captions);
	}
	if (p->prompts_file)
		r = prompts_from_file(p->prompts_file, prompts, e);
	else
		recipe_prompts_from_captions(&captions, *trigger, prompts);
out:
	strv_release(&captions);
	ds_free(ds);
	return r;
}

/* Half the steps when that is less than the example's 250, so that a short
 * run still leaves a checkpoint and a sample round half-way. */
static unsigned long long default_interval(unsigned long long steps)
{
	unsigned long long half = steps / 2 ? steps / 2 : 1;

	return half < DEFAULT_INTERVAL ? half : DEFAULT_INTERVAL;
}

/* A whole number as an integer, anything else as a real: linear_alpha 16,
 * not 16.0. */
static json_t *json_number(double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *strv_to_json(const struct strv *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

int recipe_render(const struct recipe *r, const struct recipe_params *p, json_t **out,
		  struct err *e)
{
	const char *name = p->name ? p->name : RECIPE_DEFAULT_NAME;
	unsigned long long steps = p->steps ? p->steps : DEFAULT_STEPS;
	unsigned long long rank = p->rank ? p->rank : DEFAULT_RANK;
	unsigned long long save_every = p->have_save_every ? p->save_every : default_interval(steps);
	unsigned long long sample_every =
		p->have_sample_every ? p->sample_every : default_interval(steps);
	static const unsigned default_res[] = { 512, 768, 1024 };
	char *dataset = NULL, *output = NULL, *trigger = NULL;
	struct strv prompts = STRV_INIT;
	json_t *proc, *res, *cfg, *o;
	int rc;

	*out = NULL;
	if (save_every > steps)
		return err_set(e, ERR_USAGE, "--save-every must be a whole number from 1 to the "
			       "steps (%llu), not %llu", steps, save_every);
	if (sample_every > steps)
		return err_set(e, ERR_USAGE, "--sample-every must be 0 (no samples) or a whole "
			       "number from 1 to the steps (%llu), not %llu", steps, sample_every);
	if (name_collides(name, e))
		return ERR_USAGE;
	rc = p->dataset ? absolute_path(p->dataset, &dataset, e)
			: job_path(p, name, "dataset", &dataset, e);
	if (!rc)
		rc = p->output ? absolute_path(p->output, &output, e)
			       : job_path(p, name, "output", &output, e);
	if (!rc)
		rc = output_tags(p, name, output, e);
	if (!rc)
		rc = sample_prompts(p, dataset, &trigger, &prompts, e);
	if (rc)
		goto out;

	proc = json_object();
	json_object_set_new(proc, "type", json_string("sd_trainer"));
	json_object_set_new(proc, "training_folder", json_string(output));
	json_object_set_new(proc, "device", json_string("cuda:0"));
	if (trigger)
		json_object_set_new(proc, "trigger_word", json_string(trigger));
	/* Code defaults: linear_alpha 1.0. */
	json_object_set_new(proc, "network",
			    json_pack("{s:s, s:I, s:o}", "type", "lora", "linear", (json_int_t)rank,
				      "linear_alpha", json_number(p->alpha ? p->alpha : (double)rank)));
	json_object_set_new(proc, "save",
			    json_pack("{s:s, s:I, s:i, s:s, s:b}", "dtype", "float16", "save_every",
				      (json_int_t)save_every, "max_step_saves_to_keep", 4,
				      "save_format", "safetensors", "push_to_hub", 0));
	res = json_array();
	for (size_t i = 0; i < (p->nres ? p->nres : 3); i++)
		json_array_append_new(res, json_integer(p->nres ? p->resolution[i] : default_res[i]));
	json_object_set_new(proc, "datasets",
			    json_pack("[{s:s, s:s, s:f, s:b, s:b, s:o}]", "folder_path", dataset,
				      "caption_ext", "txt", "caption_dropout_rate", 0.05,
				      "shuffle_tokens", 0, "cache_latents_to_disk", 1, "resolution",
				      res));
	/* Code defaults: noise_scheduler ddpm, optimizer adamw, lr 1e-6, dtype fp32. */
	o = json_pack("{s:I, s:I, s:i, s:b, s:b, s:b, s:s, s:s, s:o, s:{s:b, s:f}, s:s}",
		      "batch_size", (json_int_t)(p->batch_size ? p->batch_size : 1), "steps",
		      (json_int_t)steps, "gradient_accumulation_steps", 1, "train_unet", 1,
		      "train_text_encoder", 0, "gradient_checkpointing", 1, "noise_scheduler",
		      "flowmatch", "optimizer", "adamw8bit", "lr",
		      json_real(p->lr ? p->lr : DEFAULT_LR), "ema_config", "use_ema", 1,
		      "ema_decay", 0.99, "dtype", "bf16");
	if (!sample_every)
		json_object_set_new(o, "disable_sampling", json_true());
	json_object_set_new(proc, "train", o);
	o = json_pack("{s:s, s:b, s:b}", "name_or_path", r->base_model, "is_flux", 1,
		      "quantize", 1);
	if (r->assistant_lora)
		json_object_set_new(o, "assistant_lora_path", json_string(r->assistant_lora));
	json_object_set_new(proc, "model", o);
	/* Code defaults: sampler ddpm, guidance 7, 512 px. */
	json_object_set_new(proc, "sample",
			    json_pack("{s:s, s:I, s:i, s:i, s:o, s:s, s:i, s:b, s:o, s:i}",
				      "sampler", "flowmatch", "sample_every",
				      (json_int_t)(sample_every ? sample_every : steps), "width",
				      SAMPLE_SIDE, "height", SAMPLE_SIDE, "prompts",
				      strv_to_json(&prompts), "neg", "", "seed", 42, "walk_seed", 1,
				      "guidance_scale", json_number(r->guidance_scale),
				      "sample_steps", (int)r->sample_steps));
	cfg = json_pack("{s:s, s:{s:s, s:[o]}, s:{s:s, s:s}}", "job", "extension", "config",
			"name", name, "process", proc, "meta", "name", "[name]", "version", "1.0");
	if (!cfg) {
		/* json_pack fails only on a string that is not UTF-8, which the
		 * checks above rule out. */
		rc = err_set(e, ERR_FORMAT, "cannot build the config (text that is not UTF-8?)");
		goto out;
	}
	*out = cfg;
out:
	strv_release(&prompts);
	free(dataset);
	free(output);
	free(trigger);
	return rc;
}

static int secret_in(const char *text, const char *var, struct err *e)
{
	const char *v = getenv(var);

	/* Shorter values would match ordinary text; tokens are long. */
	if (v && strlen(v) >= 8 && strstr(text, v))
		return err_set(e, ERR_USAGE, "the config would hold the value of %s; "
			       "secrets travel in the env file, never in the config", var);
	return 0;
}

int recipe_config_text(const struct recipe *r, const json_t *config, struct buf *out,
		       struct err *e)
{
	struct buf text = BUF_INIT, redacted = BUF_INIT;
	char *dumped;
	int rc = 0;

	/* 10 digits: 0.05, not 0.050000000000000003 */
	dumped = json_dumps(config, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	if (!dumped)
		return err_set(e, ERR_FORMAT, "cannot serialise the config");
	buf_puts(&text, dumped);
	buf_putc(&text, '\n');
	free(dumped);
	for (size_t i = 0; !rc && i < r->nenv; i++)
		if (!r->env[i].value)
			rc = secret_in(text.data, r->env[i].name, e);
	if (!rc)
		rc = secret_in(text.data, "HF_TOKEN", e);
	if (!rc)
		rc = secret_in(text.data, "HUGGING_FACE_HUB_TOKEN", e);
	buf_add(&redacted, text.data, text.len);
	log_redact(&redacted);
	if (!rc && (redacted.len != text.len || memcmp(redacted.data, text.data, text.len)))
		rc = err_set(e, ERR_USAGE, "the config would hold a secret ferry knows of; "
			     "secrets travel in the env file, never in the config");
	for (size_t i = 0; !rc && i < text.len; i++) {
		if (text.data[i] == '$')
			buf_puts(out, "\\u0024");
		else
			buf_putc(out, text.data[i]);
	}
	buf_release(&text);
	buf_release(&redacted);
	return rc;
}
