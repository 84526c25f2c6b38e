/* Unit tests for src/recipe/recipe and render: each recipe's config with
 * every key whose ai-toolkit code default is unsafe, each parameter and
 * where it lands, the validation errors (naming the parameter and its
 * range), sample prompts from captions, and no secret in the output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "recipe/recipe.h"
#include "recipe/render.h"
#include "testutil.h"

/* A parameter and its value; a list ends with { NULL }. */
struct kv {
	const char *param, *value;
};

static json_t *render_ok(const char *recipe, const struct kv *kv)
{
	const struct recipe *r = recipe_find(recipe);
	struct recipe_params p = { 0 };
	struct err e = { 0 };
	json_t *cfg = NULL;

	assert_non_null(r);
	for (; kv && kv->param; kv++)
		if (recipe_param_set(&p, kv->param, kv->value, &e))
			fail_msg("--%s %s: %s", kv->param, kv->value, e.msg);
	if (recipe_render(r, &p, &cfg, &e))
		fail_msg("render %s: %s", recipe, e.msg);
	recipe_params_release(&p);
	return cfg;
}

static json_t *proc_of(json_t *cfg)
{
	return json_array_get(json_object_get(json_object_get(cfg, "config"), "process"), 0);
}

/* The value at a dotted path under the process ("train.lr"). */
static json_t *at(json_t *cfg, const char *path)
{
	char *copy = xstrdup(path), *rest = copy, *part;
	json_t *v = proc_of(cfg);

	while (v && (part = strsep(&rest, ".")))
		v = json_object_get(v, part);
	free(copy);
	return v;
}

static const char *str_at(json_t *cfg, const char *path)
{
	json_t *v = at(cfg, path);

	if (!json_is_string(v))
		fail_msg("%s is not a string", path);
	return json_string_value(v);
}

static double num_at(json_t *cfg, const char *path)
{
	json_t *v = at(cfg, path);

	if (!json_is_number(v))
		fail_msg("%s is not a number", path);
	return json_number_value(v);
}

static void test_each_recipe_sets_every_unsafe_default(void **state)
{
	size_t n;
	const struct recipe *all = recipe_all(&n);

	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		json_t *cfg = render_ok(all[i].name, NULL), *ds;
		bool schnell = !strcmp(all[i].name, "flux-schnell-lora");

		assert_string_equal(json_string_value(json_object_get(cfg, "job")), "extension");
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(cfg, "config"), "name")),
				    RECIPE_DEFAULT_NAME);
		assert_string_equal(str_at(cfg, "type"), "sd_trainer");
		/* code defaults: lr 1e-6, ddpm, ddpm, fp32, adamw, alpha 1.0 */
		assert_float_equal(num_at(cfg, "train.lr"), 1e-4, 1e-12);
		assert_string_equal(str_at(cfg, "train.noise_scheduler"), "flowmatch");
		assert_string_equal(str_at(cfg, "sample.sampler"), "flowmatch");
		assert_string_equal(str_at(cfg, "train.dtype"), "bf16");
		assert_string_equal(str_at(cfg, "train.optimizer"), "adamw8bit");
		assert_float_equal(num_at(cfg, "network.linear_alpha"), 16, 0);
		assert_float_equal(num_at(cfg, "network.linear"), 16, 0);
		/* the example's other values */
		assert_float_equal(num_at(cfg, "train.steps"), 2000, 0);
		assert_float_equal(num_at(cfg, "train.batch_size"), 1, 0);
		assert_float_equal(num_at(cfg, "save.save_every"), 250, 0);
		assert_float_equal(num_at(cfg, "sample.sample_every"), 250, 0);
		assert_true(json_is_true(at(cfg, "train.ema_config.use_ema")));
		assert_true(json_is_true(at(cfg, "model.quantize")));
		assert_true(json_is_true(at(cfg, "model.is_flux")));
		assert_string_equal(str_at(cfg, "model.name_or_path"), all[i].base_model);
		assert_float_equal(num_at(cfg, "sample.guidance_scale"), schnell ? 1 : 4, 0);
		assert_float_equal(num_at(cfg, "sample.sample_steps"), schnell ? 4 : 20, 0);
		if (schnell)
			assert_string_equal(str_at(cfg, "model.assistant_lora_path"),
					    "ostris/FLUX.1-schnell-training-adapter");
		else
			assert_null(at(cfg, "model.assistant_lora_path"));
		ds = json_array_get(at(cfg, "datasets"), 0);
		assert_string_equal(json_string_value(json_object_get(ds, "folder_path")),
				    "/root/ferry/" RECIPE_DEFAULT_NAME "/dataset");
		tu_expect_json(json_object_get(ds, "resolution"), "[512, 768, 1024]");
		assert_true(json_is_true(json_object_get(ds, "cache_latents_to_disk")));
		assert_string_equal(str_at(cfg, "training_folder"),
				    "/root/ferry/" RECIPE_DEFAULT_NAME "/output");
		assert_null(at(cfg, "trigger_word"));
		assert_null(at(cfg, "train.disable_sampling"));
		assert_int_equal(json_array_size(at(cfg, "sample.prompts")), 2);
		json_decref(cfg);
	}
}

static void test_each_parameter_lands(void **state)
{
	static const struct kv kv[] = {
		{ "name", "jdoe_v1" }, { "trigger", "ohwx" }, { "steps", "3000" },
		{ "rank", "32" }, { "alpha", "8.5" }, { "lr", "4e-4" }, { "batch-size", "2" },
		{ "resolution", "512, 1024" }, { "save-every", "500" }, { "sample-every", "1000" },
		{ "dataset", "/data/set" }, { "output", "/data/out" }, { NULL, NULL },
	};
	json_t *cfg = render_ok("flux-dev-lora", kv), *ds;

	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "config"),
							      "name")), "jdoe_v1");
	assert_string_equal(str_at(cfg, "trigger_word"), "ohwx");
	assert_float_equal(num_at(cfg, "train.steps"), 3000, 0);
	assert_float_equal(num_at(cfg, "network.linear"), 32, 0);
	assert_float_equal(num_at(cfg, "network.linear_alpha"), 8.5, 1e-12);
	assert_float_equal(num_at(cfg, "train.lr"), 4e-4, 1e-12);
	assert_float_equal(num_at(cfg, "train.batch_size"), 2, 0);
	assert_float_equal(num_at(cfg, "save.save_every"), 500, 0);
	assert_float_equal(num_at(cfg, "sample.sample_every"), 1000, 0);
	ds = json_array_get(at(cfg, "datasets"), 0);
	tu_expect_json(json_object_get(ds, "resolution"), "[512, 1024]");
	assert_string_equal(json_string_value(json_object_get(ds, "folder_path")), "/data/set");
	assert_string_equal(str_at(cfg, "training_folder"), "/data/out");
	/* the plain prompts carry the trigger */
	assert_non_null(strstr(json_string_value(json_array_get(at(cfg, "sample.prompts"), 0)),
				"ohwx"));
	json_decref(cfg);
}

/* Alpha follows the rank unless given; an integer stays an integer. */
static void test_alpha_follows_rank(void **state)
{
	static const struct kv kv[] = { { "rank", "64" }, { NULL, NULL } };
	json_t *cfg = render_ok("flux-schnell-lora", kv);

	assert_true(json_is_integer(at(cfg, "network.linear_alpha")));
	assert_int_equal(json_integer_value(at(cfg, "network.linear_alpha")), 64);
	json_decref(cfg);
}

static void test_sampling_off_and_short_runs(void **state)
{
	static const struct kv off[] = { { "sample-every", "0" }, { NULL, NULL } };
	static const struct kv shortrun[] = { { "steps", "100" }, { NULL, NULL } };
	static const struct kv one[] = { { "steps", "1" }, { NULL, NULL } };
	json_t *cfg = render_ok("flux-schnell-lora", off);

	assert_true(json_is_true(at(cfg, "train.disable_sampling")));
	json_decref(cfg);
	/* a short run still gets a checkpoint and a sample round half-way */
	cfg = render_ok("flux-schnell-lora", shortrun);
	assert_float_equal(num_at(cfg, "save.save_every"), 50, 0);
	assert_float_equal(num_at(cfg, "sample.sample_every"), 50, 0);
	json_decref(cfg);
	cfg = render_ok("flux-schnell-lora", one);
	assert_float_equal(num_at(cfg, "save.save_every"), 1, 0);
	json_decref(cfg);
}

/* Relative paths against the current directory; defaults under the job. */
static void test_paths_are_absolute(void **state)
{
	static const struct kv rel[] = { { "dataset", "a/./b/../ds" }, { "output", "out//x/" },
					 { NULL, NULL } };
	static const struct kv job[] = { { "job", "job 7" }, { "remote-root", "/srv/ferry/" },
					 { NULL, NULL } };
	char cwd[PATH_MAX], *want;
	json_t *cfg = render_ok("flux-schnell-lora", rel);

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	want = xasprintf("%s/a/ds", strcmp(cwd, "/") ? cwd : "");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(at(cfg, "datasets"), 0), "folder_path")), want);
	free(want);
	want = xasprintf("%s/out/x", strcmp(cwd, "/") ? cwd : "");
	assert_string_equal(str_at(cfg, "training_folder"), want);
	free(want);
	json_decref(cfg);

	cfg = render_ok("flux-schnell-lora", job);
	assert_string_equal(str_at(cfg, "training_folder"), "/srv/ferry/job 7/output");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(at(cfg, "datasets"), 0), "folder_path")),
			    "/srv/ferry/job 7/dataset");
	json_decref(cfg);
}

struct bad {
	const char *param, *value;
	const char *says;  /* part of the message besides --PARAM */
};

static void test_validation_names_parameter_and_range(void **state)
{
	static const struct bad bad[] = {
		{ "steps", "0", "from 1 to 100000" },
		{ "steps", "100001", "from 1 to 100000" },
		{ "steps", "abc", "from 1 to 100000" },
		{ "steps", "-5", "from 1 to 100000" },
		{ "rank", "0", "from 1 to 128" },
		{ "rank", "129", "from 1 to 128" },
		{ "alpha", "0", "from 0.01 to 1024" },
		{ "alpha", "2000", "from 0.01 to 1024" },
		{ "alpha", "nan", "from 0.01 to 1024" },
		{ "lr", "0.1", "from 1e-7 to 0.01" },
		{ "lr", "1e-9", "from 1e-7 to 0.01" },
		{ "batch-size", "17", "from 1 to 16" },
		{ "resolution", "100", "from 256 to 2048, each a multiple of 64" },
		{ "resolution", "1000", "a multiple of 64" },
		{ "resolution", "", "1 to 8 whole numbers" },
		{ "resolution", "256,320,384,448,512,576,640,704,768", "1 to 8 whole numbers" },
		{ "resolution", "512,512", "512 twice" },
		{ "save-every", "0", "from 1 to the steps" },
		{ "sample-every", "x", "0 (no samples) or a whole number" },
		{ "name", "bad name", "A-Z a-z 0-9 . _ -" },
		{ "name", ".hidden", "starting with a letter or digit" },
		{ "name", "a1234567890123456789012345678901234567890123456789012345678901234",
		  "1 to 64" },
		{ "trigger", "[trigger]", "without control characters" },
		{ "trigger", " ohwx", "a space at either end" },
		{ "trigger", "${HF_TOKEN}", "[ ] { } $" },
		{ "job", "a/b", "no '/'" },
		{ "job", "..", "not . or .." },
		{ "dataset", "", "a folder path" },
		{ "output", "x\ny", "without control characters" },
	};
	struct recipe_params p = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = { 0 };
		char *flag = xasprintf("--%s", bad[i].param);
		int r = recipe_param_set(&p, bad[i].param, bad[i].value, &e);

		if (r != ERR_USAGE || !strstr(e.msg, flag) || !strstr(e.msg, bad[i].says))
			fail_msg("--%s '%s': got %d '%s', want a usage error with '%s'",
				 bad[i].param, bad[i].value, r, e.msg, bad[i].says);
		free(flag);
	}
	/* nothing bad was kept */
	assert_int_equal(p.steps, 0);
	assert_int_equal(p.nres, 0);
	assert_null(p.name);
	recipe_params_release(&p);
}

static void test_intervals_checked_against_steps(void **state)
{
	const struct recipe *r = recipe_find("flux-dev-lora");
	struct recipe_params p = { 0 };
	struct err e = { 0 };
	json_t *cfg = NULL;

	assert_int_equal(recipe_param_set(&p, "steps", "200", &e), 0);
	assert_int_equal(recipe_param_set(&p, "save-every", "300", &e), 0);
	assert_int_equal(recipe_render(r, &p, &cfg, &e), ERR_USAGE);
	assert_null(cfg);
	assert_non_null(strstr(e.msg, "--save-every"));
	assert_non_null(strstr(e.msg, "the steps (200)"));
	assert_int_equal(recipe_param_set(&p, "save-every", "200", &e), 0);
	assert_int_equal(recipe_param_set(&p, "sample-every", "201", &e), 0);
	assert_int_equal(recipe_render(r, &p, &cfg, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "--sample-every"));
	assert_int_equal(recipe_param_set(&p, "nope", "1", &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "nope"));
	recipe_params_release(&p);
}

static char *config_text(const char *recipe, const struct kv *kv, int *rc, struct err *e)
{
	json_t *cfg = render_ok(recipe, kv);
	struct buf out = BUF_INIT;

	*rc = recipe_config_text(recipe_find(recipe), cfg, &out, e);
	json_decref(cfg);
	return buf_detach(&out, NULL);
}

/* HF_TOKEN set in the environment never reaches the config; a value that
 * would is refused, and so is any secret the logger knows. */
static void test_no_token_in_the_config(void **state)
{
	static const char token[] = "hf_TestTokenValue1234567890";
	struct kv as_trigger[] = { { "trigger", token }, { NULL, NULL } };
	struct err e = { 0 };
	char *dir = tu_mkdtemp("ferry-recipe"), *prompts = fsx_join(dir, "prompts.txt");
	struct kv with_prompts[] = { { "prompts", prompts }, { NULL, NULL } };
	char *text;
	int rc;

	setenv("HF_TOKEN", token, 1);
	for (int i = 0; i < 2; i++) {
		text = config_text(i ? "flux-dev-lora" : "flux-schnell-lora", NULL, &rc, &e);
		assert_int_equal(rc, 0);
		assert_null(strstr(text, token));
		assert_null(strstr(text, "HF_TOKEN"));
		assert_non_null(strstr(text, "\"lr\": 0.0001"));
		free(text);
	}
	text = config_text("flux-dev-lora", as_trigger, &rc, &e);
	assert_int_equal(rc, ERR_USAGE);
	assert_non_null(strstr(e.msg, "HF_TOKEN"));
	assert_string_equal(text, "");
	free(text);
	unsetenv("HF_TOKEN");

	log_register_secret("r2-secret-key-value");
	tu_write_text(dir, "prompts.txt", "a photo with r2-secret-key-value in it\n");
	text = config_text("flux-dev-lora", with_prompts, &rc, &e);
	assert_int_equal(rc, ERR_USAGE);
	assert_non_null(strstr(e.msg, "secret"));
	assert_string_equal(text, "");
	free(text);
	log_forget_secrets();
	free(prompts);
	free(dir);
}

/* ai-toolkit replaces ${VAR} in the raw text: ferry's '$' is \u0024, which
 * JSON reads back as '$' after that substitution has run. */
static void test_dollar_is_not_substituted(void **state)
{
	char *dir = tu_mkdtemp("ferry-recipe"), *prompts = fsx_join(dir, "p.txt");
	struct kv kv[] = { { "prompts", prompts }, { NULL, NULL } };
	struct err e = { 0 };
	json_t *back;
	char *text;
	int rc;

	tu_write_text(dir, "p.txt", "# comment\n\nprice: ${HF_TOKEN} and $5\r\n  second one  \n");
	text = config_text("flux-schnell-lora", kv, &rc, &e);
	assert_int_equal(rc, 0);
	assert_null(strchr(text, '$'));
	assert_non_null(strstr(text, "\\u0024{HF_TOKEN}"));
	back = json_loads(text, 0, NULL);
	assert_non_null(back);
	tu_expect_json(at(back, "sample.prompts"),
		       "[\"price: ${HF_TOKEN} and $5\", \"second one\"]");
	json_decref(back);
	free(text);
	free(prompts);
	free(dir);
}

static void test_prompts_file_errors(void **state)
{
	static const struct {
		const char *content, *says;
	} cases[] = {
		{ "", "has none" },
		{ "# only a comment\n\n", "has none" },
		{ "one\ttab\n", "line 1" },
		{ "ok\n\xff\xfe bad\n", "not UTF-8" },
	};
	const struct recipe *r = recipe_find("flux-schnell-lora");
	char *dir = tu_mkdtemp("ferry-recipe"), *path = fsx_join(dir, "p.txt");
	struct buf many = BUF_INIT;

	for (int i = 0; i < RECIPE_MAX_PROMPTS + 1; i++)
		buf_printf(&many, "prompt %d\n", i);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) + 2; i++) {
		struct recipe_params p = { 0 };
		struct err e = { 0 };
		json_t *cfg = NULL;
		const char *says;

		if (i < sizeof(cases) / sizeof(cases[0])) {
			tu_write_text(dir, "p.txt", cases[i].content);
			says = cases[i].says;
		} else if (i == sizeof(cases) / sizeof(cases[0])) {
			tu_write_text(dir, "p.txt", many.data);
			says = "1 to 20 prompts";
		} else {
			unlink(path);
			says = "--prompts";
		}
		assert_int_equal(recipe_param_set(&p, "prompts", path, &e), 0);
		if (!recipe_render(r, &p, &cfg, &e) || !strstr(e.msg, says))
			fail_msg("case %zu: '%s', want '%s'", i, e.msg, says);
		assert_null(cfg);
		recipe_params_release(&p);
	}
	buf_release(&many);
	free(path);
	free(dir);
}

static void test_prompts_from_captions(void **state)
{
	struct strv caps = STRV_INIT, out = STRV_INIT;
	struct buf longcap = BUF_INIT;

	strv_push(&caps, "short");                                  /* skipped: 10 or less */
	strv_push(&caps, "a man in a red coat, studio light");      /* 0 */
	strv_push(&caps, "ohwx man\n\n  on a   bench");             /* 1: has it; tidied */
	strv_push(&caps, "a portrait of [trigger] smiling");        /* 2: token */
	strv_push(&caps, "a man on a horse at dawn");               /* 3 */
	strv_push(&caps, "a man reading a newspaper");              /* 4 */
	strv_push(&caps, "OHWX in the rain, at night");             /* 5: any case */
	recipe_prompts_from_captions(&caps, "ohwx", &out);
	/* 6 qualify: 0, 5/3 -> 1, 10/3 -> 3, 5 */
	assert_int_equal(out.n, RECIPE_CAPTION_PROMPTS);
	assert_string_equal(out.v[0], "ohwx, a man in a red coat, studio light");
	assert_string_equal(out.v[1], "ohwx man on a bench");
	assert_string_equal(out.v[2], "ohwx, a man on a horse at dawn");
	assert_string_equal(out.v[3], "OHWX in the rain, at night");
	strv_release(&out);

	/* fewer than four: all of them, in order; no trigger: as they are */
	strv_release(&caps);
	strv_push(&caps, "a portrait of [trigger] smiling");
	strv_push(&caps, "a man on a horse at dawn");
	recipe_prompts_from_captions(&caps, NULL, &out);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "a portrait of [trigger] smiling");
	assert_string_equal(out.v[1], "a man on a horse at dawn");
	strv_release(&out);

	/* a long caption is cut at a word, under the limit with the trigger */
	strv_release(&caps);
	while (longcap.len < 3 * RECIPE_PROMPT_MAX)
		buf_puts(&longcap, "word ");
	strv_push(&caps, longcap.data);
	recipe_prompts_from_captions(&caps, "ohwx", &out);
	assert_int_equal(out.n, 1);
	assert_true(strlen(out.v[0]) <= RECIPE_PROMPT_MAX);
	assert_true(str_starts_with(out.v[0], "ohwx, word word"));
	assert_true(out.v[0][strlen(out.v[0]) - 1] == 'd');
	strv_release(&out);

	/* nothing usable: two plain prompts */
	strv_release(&caps);
	strv_push(&caps, "tiny");
	recipe_prompts_from_captions(&caps, "ohwx", &out);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "a photo of ohwx");
	strv_release(&out);
	strv_release(&caps);
	buf_release(&longcap);
}

/* From a dataset folder: its captions and dataset_info.json's trigger; a
 * --captions copy serves when --dataset is the trainer's path. */
static void test_prompts_from_a_dataset(void **state)
{
	char *dir = tu_mkdtemp("ferry-recipe");
	char *ds = fsx_join(dir, "ds");
	struct kv local[] = { { "dataset", ds }, { NULL, NULL } };
	struct kv remote[] = { { "dataset", "/root/ferry/j/dataset" }, { "captions", ds },
			       { "trigger", "zzk" }, { NULL, NULL } };
	json_t *cfg;

	for (int i = 1; i <= 9; i++) {
		char img[32], cap[32], text[96];

		snprintf(img, sizeof(img), "ds/img_%02d.jpg", i);
		snprintf(cap, sizeof(cap), "ds/img_%02d.txt", i);
		snprintf(text, sizeof(text), "a photo of sks dog number %d in a park", i);
		tu_write_text(dir, img, "not decoded");
		tu_write_text(dir, cap, text);
	}
	tu_write_text(dir, "ds/orphan.txt", "a caption without an image, never used");
	tu_write_text(dir, "ds/dataset_info.json", "{\"triggerWords\": [\"sks\"]}");
	cfg = render_ok("flux-schnell-lora", local);
	assert_string_equal(str_at(cfg, "trigger_word"), "sks");
	tu_expect_json(at(cfg, "sample.prompts"),
		       "[\"a photo of sks dog number 1 in a park\","
		       " \"a photo of sks dog number 3 in a park\","
		       " \"a photo of sks dog number 6 in a park\","
		       " \"a photo of sks dog number 9 in a park\"]");
	json_decref(cfg);
	cfg = render_ok("flux-schnell-lora", remote);
	assert_string_equal(str_at(cfg, "trigger_word"), "zzk");
	assert_string_equal(json_string_value(json_array_get(at(cfg, "sample.prompts"), 0)),
			    "zzk, a photo of sks dog number 1 in a park");
	json_decref(cfg);
	free(ds);
	free(dir);
}

static void test_launch_and_env(void **state)
{
	const struct recipe *dev = recipe_find("flux-dev-lora"), *schnell =
		recipe_find("flux-schnell-lora");
	struct strv argv = STRV_INIT;
	bool token = false;

	recipe_launch_argv(&dev->launch, "/root/ferry/j/config.json", &argv);
	assert_int_equal(argv.n, 3);
	assert_string_equal(argv.v[0], "python");
	assert_string_equal(argv.v[1], "run.py");
	assert_string_equal(argv.v[2], "/root/ferry/j/config.json");
	assert_string_equal(dev->launch.workdir, "/app/ai-toolkit");
	strv_release(&argv);
	recipe_launch_argv(&schnell->standin, "c.json", &argv);
	assert_string_equal(argv.v[1], "examples/trainer/run.py");
	strv_release(&argv);
	assert_non_null(strstr(dev->written_for, "0.12.26"));
	for (size_t i = 0; i < dev->nenv; i++)
		if (!strcmp(dev->env[i].name, "HF_TOKEN"))
			token = dev->env[i].required && !dev->env[i].value;
	assert_true(token);
	for (size_t i = 0; i < schnell->nenv; i++)
		assert_string_not_equal(schnell->env[i].name, "HF_TOKEN");
	assert_true(dev->needs_hf_token);
	assert_false(schnell->needs_hf_token);
}

/* ai-toolkit's get_latest_save_path globs NAME* next to the checkpoints
 * (BaseSDTrainProcess.py:823-854): a name that begins config.yaml,
 * optimizer.pt, samples or loss_log.db would resume from that file. */
static void test_names_that_collide_with_the_resume_glob(void **state)
{
	static const char *const bad[] = { "c", "con", "config", "config.yaml", "o", "opt",
					   "optimizer", "optimizer.pt", "s", "sam", "samples",
					   "l", "loss", "loss_log", "loss_log.db" };
	static const char *const good[] = { "configs", "config2", "optimise", "sample_face",
					    "samplesx", "loss2", "Con", "ohwx_v1" };
	struct recipe_params p = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = { 0 };

		if (recipe_param_set(&p, "name", bad[i], &e) != ERR_USAGE ||
		    !strstr(e.msg, "--name") || !strstr(e.msg, bad[i]) ||
		    !strstr(e.msg, "as the LoRA"))
			fail_msg("--name %s: got '%s'", bad[i], e.msg);
	}
	assert_null(p.name);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct err e = { 0 };

		if (recipe_param_set(&p, "name", good[i], &e))
			fail_msg("--name %s refused: %s", good[i], e.msg);
	}
	recipe_params_release(&p);
}

/* The same resume drops every path holding _LoRA, _refiner, _t2i or _cn
 * unless the name holds it (BaseSDTrainProcess.py:844-851): refused at
 * render, naming the field and its value. */
static void test_output_path_tags(void **state)
{
	static const struct {
		const char *field, *value, *name, *says;
	} cases[] = {
		{ "output", "/data/x_cn/out", "face", "--output '/data/x_cn/out' puts '_cn'" },
		{ "output", "/data/my_LoRA", "face", "--output '/data/my_LoRA' puts '_LoRA'" },
		{ "job", "run_t2i", "face", "--job 'run_t2i' puts '_t2i'" },
		{ "remote-root", "/srv/a_refiner", "face", "remote.root '/srv/a_refiner' puts '_refiner'" },
		{ "output", "/data/x_cn/out", "face_cn", NULL },
		{ "output", "/data/x_lora/out", "face", NULL },  /* case matters */
		{ "job", "run_t2i", "run_t2i", NULL },
	};
	const struct recipe *r = recipe_find("flux-dev-lora");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct recipe_params p = { 0 };
		struct err e = { 0 };
		json_t *cfg = NULL;
		int rc;

		assert_int_equal(recipe_param_set(&p, cases[i].field, cases[i].value, &e), 0);
		assert_int_equal(recipe_param_set(&p, "name", cases[i].name, &e), 0);
		rc = recipe_render(r, &p, &cfg, &e);
		if (cases[i].says ? rc != ERR_USAGE || !strstr(e.msg, cases[i].says) : rc != 0)
			fail_msg("--%s %s --name %s: got %d '%s'", cases[i].field, cases[i].value,
				 cases[i].name, rc, e.msg);
		if (cases[i].says)
			assert_null(cfg);
		json_decref(cfg);
		recipe_params_release(&p);
	}
}

/* The env file: HF_TOKEN from hf.token where the recipe wants it, the
 * fixed values always; a required one missing is a config error. */
static void test_env_lines(void **state)
{
	const struct recipe *dev = recipe_find("flux-dev-lora"), *schnell =
		recipe_find("flux-schnell-lora");
	struct strv env = STRV_INIT;
	struct err e = { 0 };

	assert_int_equal(recipe_env_lines(dev, NULL, &env, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "HF_TOKEN"));
	assert_non_null(strstr(e.msg, "hf.token"));
	assert_int_equal(recipe_env_lines(dev, "", &env, &e), ERR_CONFIG);
	strv_release(&env);
	assert_int_equal(recipe_env_lines(dev, "hf_abcdefgh12345678", &env, &e), 0);
	assert_int_equal(env.n, 3);
	assert_string_equal(env.v[0], "HF_TOKEN=hf_abcdefgh12345678");
	assert_string_equal(env.v[1], "PYTHONUNBUFFERED=1");
	assert_string_equal(env.v[2], "HF_HUB_DISABLE_XET=1");
	strv_release(&env);
	assert_int_equal(recipe_env_lines(dev, "hf_a\nB=c", &env, &e), ERR_CONFIG);
	strv_release(&env);
	/* schnell is not gated: no token, even when one is set */
	assert_int_equal(recipe_env_lines(schnell, "hf_abcdefgh12345678", &env, &e), 0);
	assert_int_equal(env.n, 2);
	assert_string_equal(env.v[1], "HF_HUB_DISABLE_XET=1");
	strv_release(&env);
}

/* The image is a version tag (build_and_push_docker tags $VERSION), the
 * one the configs are written for; never the drifting `latest`. */
static void test_image_is_pinned(void **state)
{
	size_t n;
	const struct recipe *all = recipe_all(&n);

	for (size_t i = 0; i < n; i++) {
		assert_string_equal(all[i].image, "ostris/aitoolkit:0.12.26");
		assert_non_null(strstr(all[i].written_for, "0.12.26"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_recipe_sets_every_unsafe_default),
		cmocka_unit_test(test_each_parameter_lands),
		cmocka_unit_test(test_alpha_follows_rank),
		cmocka_unit_test(test_sampling_off_and_short_runs),
		cmocka_unit_test(test_paths_are_absolute),
		cmocka_unit_test(test_validation_names_parameter_and_range),
		cmocka_unit_test(test_intervals_checked_against_steps),
		cmocka_unit_test(test_no_token_in_the_config),
		cmocka_unit_test(test_dollar_is_not_substituted),
		cmocka_unit_test(test_prompts_file_errors),
		cmocka_unit_test(test_prompts_from_captions),
		cmocka_unit_test(test_prompts_from_a_dataset),
		cmocka_unit_test(test_launch_and_env),
		cmocka_unit_test(test_names_that_collide_with_the_resume_glob),
		cmocka_unit_test(test_output_path_tags),
		cmocka_unit_test(test_env_lines),
		cmocka_unit_test(test_image_is_pinned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
