/* Unit tests for src/jobs: the states and their moves, the job spec, budgets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "jobs/budget.h"
#include "jobs/job.h"
#include "jobs/state.h"

static void test_state_names(void **state)
{
	enum job_state s;

	for (int i = 0; i < JOB_STATE_COUNT; i++) {
		assert_int_equal(job_state_parse(job_state_name((enum job_state)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(job_state_parse("training", &s), 0);
	assert_int_equal(s, JOB_TRAINING);
	assert_int_equal(job_state_parse("WAITING", &s), ERR_USAGE);
	assert_int_equal(job_state_parse(NULL, &s), ERR_USAGE);
	assert_string_equal(job_state_name((enum job_state)99), "?");
	assert_true(job_state_terminal(JOB_SUCCEEDED));
	assert_true(job_state_terminal(JOB_CANCELLED));
	assert_false(job_state_terminal(JOB_RELEASING));
	assert_true(job_state_holds_instance(JOB_TRAINING));
	assert_false(job_state_holds_instance(JOB_PREPARING));
	assert_false(job_state_holds_instance(JOB_FAILED));
}

/* Every edge of the table, and every other pair refused. */
static void test_state_moves(void **state)
{
	static const enum job_state path[] = {
		JOB_QUEUED, JOB_PREPARING, JOB_RENTING, JOB_BOOTING, JOB_UPLOADING,
		JOB_TRAINING, JOB_COLLECTING, JOB_PUBLISHING, JOB_RELEASING, JOB_SUCCEEDED,
	};
	bool legal[JOB_STATE_COUNT][JOB_STATE_COUNT] = { { false } };
	int nlegal = 0;

	for (size_t i = 0; i + 1 < sizeof(path) / sizeof(path[0]); i++)
		legal[path[i]][path[i + 1]] = true;
	for (int s = JOB_QUEUED; s <= JOB_RECOVERING; s++)
		if (s != JOB_RELEASING)
			legal[s][JOB_RELEASING] = true;
	legal[JOB_RELEASING][JOB_FAILED] = legal[JOB_RELEASING][JOB_CANCELLED] = true;
	legal[JOB_QUEUED][JOB_CANCELLED] = true;
	legal[JOB_BOOTING][JOB_RECOVERING] = legal[JOB_UPLOADING][JOB_RECOVERING] = true;
	legal[JOB_TRAINING][JOB_RECOVERING] = legal[JOB_RECOVERING][JOB_RENTING] = true;
	legal[JOB_FAILED][JOB_QUEUED] = legal[JOB_CANCELLED][JOB_QUEUED] = true;
	for (int a = 0; a < JOB_STATE_COUNT; a++) {
		for (int b = 0; b < JOB_STATE_COUNT; b++) {
			bool ok = job_state_can_move((enum job_state)a, (enum job_state)b);

			if (ok != legal[a][b])
				fail_msg("%s -> %s: %s", job_state_name((enum job_state)a),
					 job_state_name((enum job_state)b), ok ? "allowed" : "refused");
			nlegal += ok;
		}
	}
	assert_int_equal(nlegal, 26);
	/* The plain next state is always a legal move. */
	for (size_t i = 0; i + 1 < sizeof(path) / sizeof(path[0]); i++)
		assert_int_equal(job_state_next(path[i]), path[i + 1]);
	assert_int_equal(job_state_next(JOB_RECOVERING), JOB_RENTING);
	for (int t = JOB_SUCCEEDED; t <= JOB_CANCELLED; t++)
		assert_int_equal(job_state_next((enum job_state)t), t);
	assert_false(job_state_can_move(JOB_SUCCEEDED, JOB_QUEUED));
	assert_false(job_state_can_move((enum job_state)-1, JOB_QUEUED));
}

static void spec_ok(const char *text, struct job_spec *s)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	struct err e = { 0 };

	assert_non_null(j);
	if (job_spec_from_json(j, s, &e))
		fail_msg("%s: %s", text, e.msg);
	json_decref(j);
}

static void spec_bad(const char *text, const char *want)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	struct job_spec s;
	struct err e = { 0 };

	assert_non_null(j);
	assert_int_equal(job_spec_from_json(j, &s, &e), ERR_USAGE);
	if (!strstr(e.msg, want))
		fail_msg("%s: '%s' lacks '%s'", text, e.msg, want);
	json_decref(j);
}

static void test_spec(void **state)
{
	struct job_spec s, again;
	json_t *j;
	char *text;

	spec_ok("{\"dataset\": \"/d\", \"recipe\": \"flux-schnell-lora\", \"params\": "
		"{\"steps\": 40, \"batch_size\": 2, \"trigger\": \"ohwx\", \"resolution\": "
		"[512, 768], \"lr\": 0.0002}, \"provider\": \"ssh:ssh://root@h:2222\", "
		"\"limits\": {\"max_hours\": 2, \"max_usd\": 5.5}, \"store\": \"s3\", "
		"\"prefix\": \"loras/x\", \"unready\": \"fix\", \"name\": \"my lora\"}", &s);
	assert_string_equal(s.dataset, "/d");
	assert_int_equal(s.provider, JOB_PROVIDER_SSH);
	assert_string_equal(s.target, "ssh://root@h:2222");
	assert_true(s.max_usd == 5.5);
	assert_int_equal(s.unready, JOB_UNREADY_FIX);
	assert_string_equal(json_string_value(json_object_get(s.params, "batch-size")), "2");
	assert_string_equal(json_string_value(json_object_get(s.params, "resolution")), "512,768");
	/* The JSON it prints reads back the same. */
	j = job_spec_to_json(&s);
	text = json_dumps(j, JSON_SORT_KEYS);
	spec_ok(text, &again);
	assert_string_equal(again.target, s.target);
	assert_true(json_equal(again.params, s.params));
	free(text);
	json_decref(j);
	job_spec_release(&again);
	job_spec_release(&s);

	spec_ok("{\"dataset\": \"/d\"}", &s);
	assert_string_equal(s.recipe, "flux-dev-lora");
	assert_int_equal(s.provider, JOB_PROVIDER_VAST);
	assert_int_equal(json_object_size(s.params), 0);
	job_spec_release(&s);
	spec_ok("{\"dataset\": \"/d\", \"query\": [\"gpu_name=RTX_4090\"], "
		"\"interruptible\": true, \"bid\": 0.3}", &s);
	assert_int_equal(s.query.n, 1);
	job_spec_release(&s);

	spec_bad("[]", "a job is a JSON object");
	spec_bad("{}", "dataset is required");
	spec_bad("{\"dataset\": 5}", "dataset must be a string");
	spec_bad("{\"dataset\": \"/d\", \"recipe\": \"sdxl\"}", "recipe 'sdxl' is not one of");
	spec_bad("{\"dataset\": \"/d\", \"colour\": 1}", "'colour' is not a field");
	spec_bad("{\"dataset\": \"/d\", \"params\": {\"steps\": \"many\"}}", "params");
	spec_bad("{\"dataset\": \"/d\", \"params\": {\"steps\": 0}}", "steps");
	spec_bad("{\"dataset\": \"/d\", \"params\": {\"warp\": 1}}", "warp");
	spec_bad("{\"dataset\": \"/d\", \"params\": {\"output\": \"/x\"}}", "params.output is ferry's");
	spec_bad("{\"dataset\": \"/d\", \"params\": {\"steps\": true}}", "params.steps must be");
	spec_bad("{\"dataset\": \"/d\", \"params\": []}", "params must be an object");
	spec_bad("{\"dataset\": \"/d\", \"provider\": \"aws\"}", "provider");
	spec_bad("{\"dataset\": \"/d\", \"provider\": \"local\", \"query\": [\"x\"]}",
		 "query goes with the vast provider");
	spec_bad("{\"dataset\": \"/d\", \"limits\": {\"max_usd\": -1}}", "limits.max_usd");
	spec_bad("{\"dataset\": \"/d\", \"limits\": {\"max_gb\": 1}}", "limits.max_gb is not");
	spec_bad("{\"dataset\": \"/d\", \"store\": \"gcs\"}", "store must be dir or s3");
	spec_bad("{\"dataset\": \"/d\", \"unready\": \"ignore\"}", "unready must be");
	spec_bad("{\"dataset\": \"/d\", \"bid\": 0.2}", "bid goes with interruptible");
	spec_bad("{\"dataset\": \"/d\\u0001x\"}", "control characters");
	spec_bad("{\"dataset\": \"/d\", \"query\": [3]}", "query[0] must be a string");
}

static void test_ids(void **state)
{
	char a[JOB_ID_MAX], b[JOB_ID_MAX], label[JOB_LABEL_MAX];

	job_id_new(a);
	job_id_new(b);
	assert_true(job_id_valid(a));
	assert_string_not_equal(a, b);
	assert_false(job_id_valid("../../etc"));
	assert_false(job_id_valid("20261207-061500-3FA9C2D1"));
	assert_false(job_id_valid(""));
	assert_true(job_id_valid("20261207-061500-3fa9c2d1"));
	job_label("20261207-061500-3fa9c2d1", label);
	assert_string_equal(label, "ferry-20261207-061500-3fa9c2d1");
}

static void test_budget(void **state)
{
	struct queue_instance v[3] = {
		{ .dph = 1.2, .created_at = 1000, .destroyed_at = 4600 },  /* one hour */
		{ .dph = 0.6, .created_at = 5000 },                        /* alive */
		{ .dph = 9.0 },                                            /* intent only */
	};
	struct job_budget b = { .max_usd = 2.0 };
	char why[256];

	assert_true(job_cost_usd(v, 3, 5000) == 1.2);
	assert_true(job_cost_usd(v, 3, 5000 + 1800) > 1.49 && job_cost_usd(v, 3, 6800) < 1.51);
	assert_true(job_cost_rate(v, 3) == 0.6);
	b.spent_usd = job_cost_usd(v, 3, 6800);
	b.dph = job_cost_rate(v, 3);
	/* $1.50 + 5 minutes at $0.60/h is under $2. */
	assert_false(job_budget_exceeded(&b, why, sizeof(why)));
	b.spent_usd = 1.96;
	assert_true(job_budget_exceeded(&b, why, sizeof(why)));
	assert_non_null(strstr(why, "$2.00 limit"));
	b = (struct job_budget){ .max_hours = 1, .elapsed_s = 3000 };
	assert_false(job_budget_exceeded(&b, why, sizeof(why)));
	b.elapsed_s = 3400;
	assert_true(job_budget_exceeded(&b, why, sizeof(why)));
	assert_non_null(strstr(why, "1.00 h limit"));
	/* No limits: never. */
	b = (struct job_budget){ .spent_usd = 1e6, .elapsed_s = 1e9 };
	assert_false(job_budget_exceeded(&b, why, sizeof(why)));
	assert_true(job_budget_allows(&b, 1e6, 1e6));
	b = (struct job_budget){ .max_usd = 5, .spent_usd = 1 };
	assert_true(job_budget_allows(&b, 3.9, 0));
	assert_false(job_budget_allows(&b, 4.1, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_state_moves),
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
