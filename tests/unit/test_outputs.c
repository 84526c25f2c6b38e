/* Unit tests for src/recipe/outputs: ai-toolkit's output folder
 * (docs/reference/ai-toolkit.md §3) read from a listing or a folder:
 * checkpoints and steps, the final LoRA, samples with step and prompt,
 * the optimizer state, what a resume needs and what is never published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "recipe/outputs.h"
#include "testutil.h"

/* A run in the middle: two checkpoints kept, samples at 0 and 250. */
static const char running[] =
	"jdoe_v1/config.yaml\n"
	"jdoe_v1/jdoe_v1_000000500.safetensors\n"
	"jdoe_v1/jdoe_v1_000000250.safetensors\n"
	"jdoe_v1/optimizer.pt\n"
	"jdoe_v1/samples/1724512345678__000000000_0.jpg\n"
	"jdoe_v1/samples/1724512345990__000000000_1.jpg\n"
	"jdoe_v1/samples/1724512399999__000000250_10.jpg\n"
	"jdoe_v1/samples/1724512399000__000000250_2.jpg\n"
	"jdoe_v1/samples/.thumbs/1724512345678__000000000_0.jpg\n"
	"jdoe_v1/samples/.tmp/1724512400000__000000500_0.jpg\n"
	"jdoe_v1/loss_log.db\n"
	"jdoe_v1/.job_config.json\n"
	"jdoe_v1/notes.md\n";

static const struct recipe_output *find(const struct recipe_outputs *o, const char *path)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->files[i].path, path))
			return &o->files[i];
	fail_msg("%s is not in the listing", path);
	return NULL;
}

static void test_a_run_in_progress(void **state)
{
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	const struct recipe_output *f;
	struct err e = { 0 };

	recipe_outputs_read_listing(&o, running, strlen(running));
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), 0);
	assert_string_equal(o.name, "jdoe_v1");
	assert_int_equal(o.final, -1);

	f = find(&o, "jdoe_v1/jdoe_v1_000000250.safetensors");
	assert_int_equal(f->kind, RECIPE_OUT_CHECKPOINT);
	assert_int_equal(f->step, 250);
	assert_false(f->resume);
	f = find(&o, "jdoe_v1/jdoe_v1_000000500.safetensors");
	assert_int_equal(f->step, 500);
	assert_true(f->resume);
	assert_string_equal(o.files[o.newest].path, f->path);
	f = find(&o, "jdoe_v1/optimizer.pt");
	assert_int_equal(f->kind, RECIPE_OUT_OPTIMIZER);
	assert_true(f->resume);
	assert_true(o.resume_ready);

	f = find(&o, "jdoe_v1/samples/1724512399999__000000250_10.jpg");
	assert_int_equal(f->kind, RECIPE_OUT_SAMPLE);
	assert_int_equal(f->step, 250);
	assert_int_equal(f->prompt, 10);
	assert_int_equal(f->epoch_ms, 1724512399999LL);
	assert_int_equal(find(&o, "jdoe_v1/samples/.thumbs/1724512345678__000000000_0.jpg")->kind,
			 RECIPE_OUT_THUMBNAIL);
	assert_int_equal(find(&o, "jdoe_v1/samples/.tmp/1724512400000__000000500_0.jpg")->kind,
			 RECIPE_OUT_PARTIAL);
	assert_int_equal(find(&o, "jdoe_v1/loss_log.db")->kind, RECIPE_OUT_LOSS_LOG);
	assert_int_equal(find(&o, "jdoe_v1/notes.md")->kind, RECIPE_OUT_OTHER);
	/* the config copies hold expanded ${VAR} secrets */
	assert_true(find(&o, "jdoe_v1/config.yaml")->never_publish);
	assert_true(find(&o, "jdoe_v1/.job_config.json")->never_publish);
	assert_false(find(&o, "jdoe_v1/jdoe_v1_000000500.safetensors")->never_publish);
	recipe_outputs_release(&o);
}

static void test_json_sorted_by_step_and_prompt(void **state)
{
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };
	json_t *j, *sm;

	recipe_outputs_read_listing(&o, running, strlen(running));
	assert_int_equal(recipe_outputs_classify(&o, "jdoe_v1", &e), 0);
	j = recipe_outputs_json(&o);
	tu_expect_json(json_object_get(j, "resume"),
		       "[\"jdoe_v1/jdoe_v1_000000500.safetensors\", \"jdoe_v1/optimizer.pt\"]");
	tu_expect_json(json_object_get(j, "never_publish"),
		       "[\"jdoe_v1/.job_config.json\", \"jdoe_v1/config.yaml\"]");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(j, "checkpoints"), 0), "step")), 250);
	sm = json_object_get(j, "samples");
	assert_int_equal(json_array_size(sm), 4);
	/* prompt 2 before prompt 10: numbers, not text */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(sm, 2), "prompt")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(sm, 3), "prompt")), 10);
	assert_true(json_is_false(json_object_get(j, "complete")));
	assert_true(json_is_null(json_object_get(j, "final")));
	json_decref(j);
	recipe_outputs_release(&o);
}

/* Finished: the final LoRA is there and nothing needs resuming. */
static void test_a_finished_run(void **state)
{
	static const char listing[] = "./config.yaml\r\n"
				      "197272\tjdoe_v1_000001750.safetensors\r\n"
				      "197272\tjdoe_v1.safetensors\n"
				      "optimizer.pt\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };

	recipe_outputs_read_listing(&o, listing, strlen(listing));
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), 0);
	assert_string_equal(o.name, "jdoe_v1");
	assert_true(o.final >= 0);
	assert_string_equal(o.files[o.final].path, "jdoe_v1.safetensors");
	assert_int_equal(o.files[o.final].size, 197272);
	assert_false(o.resume_ready);
	for (size_t i = 0; i < o.n; i++)
		assert_false(o.files[i].resume);
	assert_true(find(&o, "config.yaml")->never_publish);
	assert_int_equal(find(&o, "optimizer.pt")->size, -1);
	recipe_outputs_release(&o);
}

/* `listing` read and classified into `o`, the run's name found. */
static void classified(struct recipe_outputs *o, const char *listing)
{
	struct err e = { 0 };

	recipe_outputs_read_listing(o, listing, strlen(listing));
	if (recipe_outputs_classify(o, NULL, &e))
		fail_msg("classify: %s", e.msg);
}

/* ai-toolkit's real names: thumbnails are <sample>.jpg in .thumbs (a double
 * extension) and are made in .tmp first (BaseSDTrainProcess.py:1254-1300). */
static void test_real_thumbnail_names(void **state)
{
	static const char listing[] = "jdoe_v1/jdoe_v1_000000250.safetensors\n"
				      "jdoe_v1/samples/1724512345678__000000250_0.jpg\n"
				      "jdoe_v1/samples/.thumbs/1724512345678__000000250_0.jpg.jpg\n"
				      "jdoe_v1/samples/.tmp/1724512345990__000000250_1.jpg.jpg\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;

	classified(&o, listing);
	assert_int_equal(find(&o, "jdoe_v1/samples/.thumbs/1724512345678__000000250_0.jpg.jpg")->kind,
			 RECIPE_OUT_THUMBNAIL);
	assert_int_equal(find(&o, "jdoe_v1/samples/.tmp/1724512345990__000000250_1.jpg.jpg")->kind,
			 RECIPE_OUT_PARTIAL);
	assert_int_equal(find(&o, "jdoe_v1/samples/1724512345678__000000250_0.jpg")->kind,
			 RECIPE_OUT_SAMPLE);
	recipe_outputs_release(&o);
}

/* "Could not save optimizer": ai-toolkit trained on, and optimizer.pt may
 * be truncated: it goes into no resume. */
static void test_untrusted_optimizer(void **state)
{
	static const char listing[] = "jdoe_v1/jdoe_v1_000000500.safetensors\n"
				      "jdoe_v1/optimizer.pt\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	json_t *j;

	recipe_outputs_distrust_optimizer(&o);
	classified(&o, listing);
	assert_false(o.resume_ready);
	assert_true(find(&o, "jdoe_v1/jdoe_v1_000000500.safetensors")->resume);
	assert_false(find(&o, "jdoe_v1/optimizer.pt")->resume);
	j = recipe_outputs_json(&o);
	assert_false(json_is_true(json_object_get(j, "optimizer_trusted")));
	assert_int_equal(json_array_size(json_object_get(j, "resume")), 1);
	json_decref(j);
	recipe_outputs_release(&o);
}

/* A pulled copy carries ferry's marks (.ferry-pulled/...): not outputs. */
static void test_ferry_marks_left_out(void **state)
{
	static const char listing[] = "jdoe_v1/jdoe_v1.safetensors\n"
				      ".ferry-pulled/jdoe_v1/jdoe_v1.safetensors\n"
				      "jdoe_v1/.ferry-partial/x\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };

	recipe_outputs_read_listing(&o, listing, strlen(listing));
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), 0);
	assert_int_equal(o.n, 1);
	assert_string_equal(o.files[0].path, "jdoe_v1/jdoe_v1.safetensors");
	recipe_outputs_release(&o);
}

/* A training folder with two runs: name one; the other's files are other. */
static void test_several_runs(void **state)
{
	static const char listing[] = "a/a_000000250.safetensors\n"
				      "b/b_000000250.safetensors\nb/b.safetensors\n"
				      "a/optimizer.pt\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };

	recipe_outputs_read_listing(&o, listing, strlen(listing));
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "several runs (a, b)"));
	assert_int_equal(recipe_outputs_classify(&o, "a", &e), 0);
	assert_int_equal(find(&o, "a/a_000000250.safetensors")->kind, RECIPE_OUT_CHECKPOINT);
	assert_int_equal(find(&o, "b/b.safetensors")->kind, RECIPE_OUT_OTHER);
	assert_int_equal(o.final, -1);
	assert_true(o.resume_ready);
	recipe_outputs_release(&o);
}

/* No checkpoint yet: only what the names alone say. */
static void test_before_the_first_checkpoint(void **state)
{
	static const char listing[] = "j/config.yaml\nj/samples/1__000000000_0.jpg\n";
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };

	recipe_outputs_read_listing(&o, listing, strlen(listing));
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), 0);
	assert_null(o.name);
	assert_int_equal(find(&o, "j/samples/1__000000000_0.jpg")->kind, RECIPE_OUT_SAMPLE);
	assert_false(o.resume_ready);
	assert_int_equal(o.newest, -1);
	recipe_outputs_release(&o);
}

static void test_read_a_folder(void **state)
{
	char *dir = tu_mkdtemp("ferry-outputs");
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	struct err e = { 0 };

	tu_write_text(dir, "r/r_000000004.safetensors", "1234");
	tu_write_text(dir, "r/optimizer.pt", "12");
	tu_write_text(dir, "r/samples/5__000000004_0.jpg", "x");
	tu_write_text(dir, "r/r_000000008.safetensors.part", "12345678");
	assert_int_equal(recipe_outputs_read_dir(&o, dir, &e), 0);
	assert_int_equal(o.n, 4);
	assert_int_equal(recipe_outputs_classify(&o, NULL, &e), 0);
	assert_string_equal(o.name, "r");
	assert_int_equal(find(&o, "r/r_000000004.safetensors")->size, 4);
	assert_true(find(&o, "r/r_000000004.safetensors")->resume);
	assert_int_equal(find(&o, "r/r_000000008.safetensors.part")->kind, RECIPE_OUT_PARTIAL);
	assert_int_equal(find(&o, "r/samples/5__000000004_0.jpg")->step, 4);
	recipe_outputs_release(&o);
	assert_int_equal(recipe_outputs_read_dir(&o, "/nonexistent/ferry", &e), ERR_IO);
	recipe_outputs_release(&o);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_run_in_progress),
		cmocka_unit_test(test_json_sorted_by_step_and_prompt),
		cmocka_unit_test(test_a_finished_run),
		cmocka_unit_test(test_ferry_marks_left_out),
		cmocka_unit_test(test_several_runs),
		cmocka_unit_test(test_before_the_first_checkpoint),
		cmocka_unit_test(test_read_a_folder),
		cmocka_unit_test(test_real_thumbnail_names),
		cmocka_unit_test(test_untrusted_optimizer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
