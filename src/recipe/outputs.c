#include "recipe/outputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"

#define WALK_DEPTH_MAX 16

void recipe_outputs_add(struct recipe_outputs *o, const char *path, long long size)
{
	struct recipe_output *f;

	while (path[0] == '.' && path[1] == '/')
		path += 2;
	/* ferry's own marks (.ferry-pulled/ beside pulled outputs) are not
	 * the trainer's */
	if (str_starts_with(path, ".ferry-") || strstr(path, "/.ferry-"))
		return;
	ALLOC_GROW(o->files, o->n + 1, o->alloc);
	f = &o->files[o->n++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	f->size = size;
	f->step = f->prompt = f->epoch_ms = -1;
}

static int walk(struct recipe_outputs *o, const char *root, const char *rel, int depth,
		struct err *e)
{
	char *dir = *rel ? fsx_join(root, rel) : xstrdup(root);
	struct strv names = STRV_INIT;
	struct dirent *de;
	DIR *d = opendir(dir);
	int r = 0;

	if (!d) {
		r = err_sys(e, ERR_IO, "cannot read folder %s", dir);
		goto out;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&names, de->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n && !r; i++) {
		char *sub = *rel ? xasprintf("%s/%s", rel, names.v[i]) : xstrdup(names.v[i]);
		char *abs = fsx_join(root, sub);
		struct stat st;

		if (!lstat(abs, &st)) {
			if (S_ISDIR(st.st_mode) && depth < WALK_DEPTH_MAX)
				r = walk(o, root, sub, depth + 1, e);
			else if (S_ISREG(st.st_mode))
				recipe_outputs_add(o, sub, (long long)st.st_size);
		}
		free(abs);
		free(sub);
	}
out:
	strv_release(&names);
	free(dir);
	return r;
}

int recipe_outputs_read_dir(struct recipe_outputs *o, const char *dir, struct err *e)
{
	return walk(o, dir, "", 0, e);
}

void recipe_outputs_read_listing(struct recipe_outputs *o, const char *text, size_t len)
{
	char *copy = xstrndup(text, len), *rest = copy, *line;

	while ((line = strsep(&rest, "\n"))) {
		char *tab = strchr(line, '\t');
		unsigned long long size;
		size_t n = strlen(line);

		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (tab) {
			*tab = '\0';
			if (!str_to_u64(line, &size)) {
				if (tab[1])
					recipe_outputs_add(o, tab + 1, (long long)size);
				continue;
			}
			*tab = '\t';
		}
		if (*line)
			recipe_outputs_add(o, line, -1);
	}
	free(copy);
}

/* ---- names ---- */

/* Whole digits from p up to stop: the value, or -1. */
static long long digits(const char *p, const char *stop)
{
	long long v = 0;

	if (p >= stop || stop - p > 18)
		return -1;
	for (; p < stop; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

long long recipe_checkpoint_step(const char *base, size_t *xlen)
{
	const char *dot, *us;

	if (!str_ends_with_ci(base, ".safetensors"))
		return -1;
	dot = base + strlen(base) - strlen(".safetensors");
	for (us = dot; us > base && us[-1] != '_'; us--)
		;
	if (us == base)
		return -1;
	*xlen = (size_t)(us - 1 - base);
	/* {step:09d}: a name of its own may end in "_2" */
	return *xlen && dot - us >= 9 ? digits(us, dot) : -1;
}

/* The run a checkpoint or final LoRA belongs to, or NULL. */
static char *run_of(const char *path)
{
	const char *base = base_of(path);
	size_t dirlen = (size_t)(base - path), xlen;
	char *x;

	if (recipe_checkpoint_step(base, &xlen) < 0) {
		if (!str_ends_with_ci(base, ".safetensors"))
			return NULL;
		xlen = strlen(base) - strlen(".safetensors");
	}
	x = xstrndup(base, xlen);
	/* at the top, or in a folder of its own name */
	if (dirlen && (dirlen - 1 != xlen || memcmp(path, x, xlen) || memchr(path, '/', xlen))) {
		free(x);
		return NULL;
	}
	return x;
}

static int find_name(struct recipe_outputs *o, struct err *e)
{
	struct strv names = STRV_INIT;
	int r = 0;

	for (size_t i = 0; i < o->n; i++) {
		char *x = run_of(o->files[i].path);
		bool seen = false;

		for (size_t k = 0; x && k < names.n; k++)
			seen = seen || !strcmp(names.v[k], x);
		if (x && !seen)
			strv_push_nodup(&names, x);
		else
			free(x);
	}
	if (names.n == 1) {
		o->name = xstrdup(names.v[0]);
	} else if (names.n > 1) {
		struct buf list = BUF_INIT;

		for (size_t k = 0; k < names.n && k < 5; k++) {
			buf_puts(&list, k ? ", " : "");
			str_escape(names.v[k], &list);
		}
		r = err_set(e, ERR_USAGE, "the listing holds several runs (%s%s): name one",
			    list.data, names.n > 5 ? ", ..." : "");
		buf_release(&list);
	}
	strv_release(&names);
	return r;
}

/* ---- kinds ---- */

/* "<epoch_ms>__<step>_<i>.<jpg|jpeg|png|webp>" */
static bool sample_name(const char *base, struct recipe_output *f)
{
	const char *us2 = strstr(base, "__"), *dot = strrchr(base, '.'), *us;

	if (!us2 || !dot || dot < us2 ||
	    !(str_ends_with_ci(base, ".jpg") || str_ends_with_ci(base, ".jpeg") ||
	      str_ends_with_ci(base, ".png") || str_ends_with_ci(base, ".webp")))
		return false;
	for (us = dot; us > us2 + 2 && us[-1] != '_'; us--)
		;
	if (us == us2 + 2)
		return false;
	f->epoch_ms = digits(base, us2);
	f->step = digits(us2 + 2, us - 1);
	f->prompt = digits(us, dot);
	if (f->epoch_ms < 0 || f->step < 0 || f->prompt < 0) {
		f->epoch_ms = f->step = f->prompt = -1;
		return false;
	}
	return true;
}

bool recipe_output_config_copy(const char *base)
{
	return !strcmp(base, "config.yaml") || !strcmp(base, ".job_config.json") ||
	       str_ends_with_ci(base, ".yaml") || str_ends_with_ci(base, ".yml");
}

bool recipe_output_env_file(const char *base)
{
	size_t n = strlen(base);

	return !strcmp(base, ".env") || !strcmp(base, "env") || str_starts_with(base, ".env.") ||
	       (n > 4 && !strcmp(base + n - 4, ".env"));
}

bool recipe_output_private(void *arg, const char *rel, const char **why)
{
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;

	if (recipe_output_config_copy(base)) {
		*why = "the trainer's expanded config, which may hold secrets";
		return true;
	}
	if (recipe_output_env_file(base)) {
		*why = "an env file, which holds secrets";
		return true;
	}
	return false;
}

static void classify(struct recipe_outputs *o, struct recipe_output *f)
{
	const char *rel = f->path, *base = base_of(f->path);
	size_t n = o->name ? strlen(o->name) : 0, xlen;
	long long step;

	if (n && !strncmp(rel, o->name, n) && rel[n] == '/') {
		rel += n + 1;
	} else if (!n) {
		/* no checkpoint yet to name the run: NAME/samples/... is still its */
		const char *slash = strchr(rel, '/');

		if (slash && str_starts_with(slash + 1, "samples/"))
			rel = slash + 1;
	}
	/* ai-toolkit writes the whole config, secrets and all, next to it */
	f->never_publish = recipe_output_config_copy(base) || recipe_output_env_file(base);
	if (f->never_publish) {
		f->kind = RECIPE_OUT_CONFIG;
		return;
	}
	if (str_ends_with_ci(base, ".part") || str_starts_with(rel, "samples/.tmp/")) {
		f->kind = RECIPE_OUT_PARTIAL;
	} else if (str_starts_with(rel, "samples/.thumbs/")) {
		f->kind = RECIPE_OUT_THUMBNAIL;
	} else if (str_starts_with(rel, "samples/") && !strchr(rel + 8, '/') &&
		   sample_name(base, f)) {
		f->kind = RECIPE_OUT_SAMPLE;
	} else if (strchr(rel, '/')) {
		f->kind = RECIPE_OUT_OTHER;      /* another run's, or not ai-toolkit's */
	} else if (!strcmp(rel, "optimizer.pt")) {
		f->kind = RECIPE_OUT_OPTIMIZER;
	} else if (!strcmp(rel, "loss_log.db")) {
		f->kind = RECIPE_OUT_LOSS_LOG;
	} else if ((step = recipe_checkpoint_step(rel, &xlen)) >= 0 &&
		   (!n || (xlen == n && !strncmp(rel, o->name, n)))) {
		f->kind = RECIPE_OUT_CHECKPOINT;
		f->step = step;
	} else if (n && !strncmp(rel, o->name, n) && !strcmp(rel + n, ".safetensors")) {
		f->kind = RECIPE_OUT_FINAL;
	} else {
		f->kind = RECIPE_OUT_OTHER;
	}
}

static int output_cmp(const void *a, const void *b)
{
	const struct recipe_output *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	if (x->prompt != y->prompt)
		return x->prompt < y->prompt ? -1 : 1;
	return strcmp(x->path, y->path);
}

int recipe_outputs_classify(struct recipe_outputs *o, const char *name, struct err *e)
{
	int r = 0;

	free(o->name);
	o->name = name ? xstrdup(name) : NULL;
	if (!name)
		r = find_name(o, e);
	if (r)
		return r;
	for (size_t i = 0; i < o->n; i++)
		classify(o, &o->files[i]);
	if (o->n)
		qsort(o->files, o->n, sizeof(o->files[0]), output_cmp);
	o->final = o->newest = o->optimizer = -1;
	for (size_t i = 0; i < o->n; i++) {
		struct recipe_output *f = &o->files[i];

		f->resume = false;
		if (f->kind == RECIPE_OUT_FINAL && o->final < 0)
			o->final = (int)i;
		else if (f->kind == RECIPE_OUT_OPTIMIZER && o->optimizer < 0)
			o->optimizer = (int)i;
		else if (f->kind == RECIPE_OUT_CHECKPOINT)
			o->newest = (int)i;         /* sorted by step: the last is newest */
	}
	/* A finished run needs no resume. Otherwise ai-toolkit resumes from the
	 * newest checkpoint (by ctime, which a copy resets: so only that one
	 * goes back) and optimizer.pt, written with it. */
	if (o->final < 0) {
		if (o->newest >= 0)
			o->files[o->newest].resume = true;
		if (o->optimizer >= 0 && o->newest >= 0 && !o->optimizer_untrusted)
			o->files[o->optimizer].resume = true;
	}
	o->resume_ready = o->final < 0 && o->newest >= 0 && o->optimizer >= 0 &&
			  !o->optimizer_untrusted;
	return 0;
}

void recipe_outputs_distrust_optimizer(struct recipe_outputs *o)
{
	o->optimizer_untrusted = true;
}

void recipe_outputs_release(struct recipe_outputs *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->files[i].path);
	free(o->files);
	free(o->name);
	*o = (struct recipe_outputs)RECIPE_OUTPUTS_INIT;
}

const char *recipe_output_kind_name(enum recipe_output_kind k)
{
	static const char *const names[] = { "other", "checkpoint", "final", "sample",
					     "thumbnail", "optimizer", "config", "loss_log",
					     "partial" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "other";
}

static json_t *size_json(long long size)
{
	return size < 0 ? json_null() : json_integer(size);
}

json_t *recipe_outputs_json(const struct recipe_outputs *o)
{
	json_t *root = json_object(), *ck = json_array(), *sm = json_array(), *res = json_array(),
	       *priv = json_array(), *other = json_array();

	for (size_t i = 0; i < o->n; i++) {
		const struct recipe_output *f = &o->files[i];

		if (f->kind == RECIPE_OUT_CHECKPOINT)
			json_array_append_new(ck, json_pack("{s:o, s:I, s:o}", "path",
							    json_string_escaped(f->path), "step",
							    (json_int_t)f->step, "size",
							    size_json(f->size)));
		else if (f->kind == RECIPE_OUT_SAMPLE)
			json_array_append_new(sm, json_pack("{s:o, s:I, s:I, s:I, s:o}", "path",
							    json_string_escaped(f->path), "step",
							    (json_int_t)f->step, "prompt",
							    (json_int_t)f->prompt, "epoch_ms",
							    (json_int_t)f->epoch_ms, "size",
							    size_json(f->size)));
		else if (f->kind == RECIPE_OUT_OTHER)
			json_array_append_new(other, json_string_escaped(f->path));
		if (f->never_publish)
			json_array_append_new(priv, json_string_escaped(f->path));
	}
	/* newest checkpoint first, then its optimizer state */
	if (o->newest >= 0 && o->files[o->newest].resume)
		json_array_append_new(res, json_string_escaped(o->files[o->newest].path));
	if (o->optimizer >= 0 && o->files[o->optimizer].resume)
		json_array_append_new(res, json_string_escaped(o->files[o->optimizer].path));
	json_object_set_new(root, "name", o->name ? json_string_escaped(o->name) : json_null());
	json_object_set_new(root, "complete", json_boolean(o->final >= 0));
	json_object_set_new(root, "final",
			    o->final >= 0 ? json_string_escaped(o->files[o->final].path) : json_null());
	json_object_set_new(root, "checkpoints", ck);
	json_object_set_new(root, "samples", sm);
	json_object_set_new(root, "optimizer",
			    o->optimizer >= 0 ? json_string_escaped(o->files[o->optimizer].path) : json_null());
	json_object_set_new(root, "resume", res);
	json_object_set_new(root, "resume_ready", json_boolean(o->resume_ready));
	json_object_set_new(root, "optimizer_trusted", json_boolean(!o->optimizer_untrusted));
	json_object_set_new(root, "never_publish", priv);
	json_object_set_new(root, "other", other);
	return root;
}
