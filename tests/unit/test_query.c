/* Unit tests for src/vast/query: the vastai CLI offer query language and the
 * request body it becomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "vast/query.h"
#include "testutil.h"

/* Parse `text` into an empty object and compare. */
static void expect_parse(const char *text, const char *want)
{
	json_t *q = json_object();
	struct err e;

	err_clear(&e);
	if (vast_query_parse(text, q, &e))
		fail_msg("'%s' failed: %s", text, e.msg);
	tu_expect_json(q, want);
	json_decref(q);
}

/* Parsing `text` fails with ERR_USAGE, naming `term`, and leaves q alone. */
static void expect_error(const char *text, const char *term, const char *why)
{
	json_t *q = json_pack("{s:{s:b}}", "verified", "eq", 1);
	struct err e;
	int r;

	err_clear(&e);
	r = vast_query_parse(text, q, &e);
	assert_int_equal(r, ERR_USAGE);
	assert_int_equal(e.code, ERR_USAGE);
	if (!strstr(e.msg, term) || !strstr(e.msg, why))
		fail_msg("'%s': message '%s' lacks '%s' or '%s'", text, e.msg, term, why);
	tu_expect_json(q, "{\"verified\":{\"eq\":true}}");
	json_decref(q);
}

static void expect_build(const char *const *terms, size_t n, const struct vast_query_opts *o,
			 const char *want)
{
	json_t *q = NULL;
	struct err e;

	err_clear(&e);
	if (vast_query_build(terms, n, o, &q, &e))
		fail_msg("build failed: %s", e.msg);
	tu_expect_json(q, want);
	json_decref(q);
}

#define DEFAULTS "\"verified\":{\"eq\":true},\"external\":{\"eq\":false},\"rentable\":{\"eq\":true}"
#define TOP "\"order\":[[\"score\",\"desc\"]],\"type\":\"on-demand\",\"allocated_storage\":5.0"

static void test_reference_example(void **state)
{
	static const char *const one[] = { "gpu_ram>=24 duration>3 dph<0.5" };
	static const char *const words[] = { "gpu_ram>=24", "duration>3", "dph<0.5" };
	struct vast_query_opts o = { .no_defaults = true };

	expect_parse("gpu_ram>=24 duration>3 dph<0.5",
		     "{\"gpu_ram\":{\"gte\":24000.0},\"duration\":{\"gt\":259200.0},"
		     "\"dph_total\":{\"lt\":\"0.5\"}}");
	expect_build(one, 1, NULL,
		     "{" DEFAULTS ",\"gpu_ram\":{\"gte\":24000.0},\"duration\":{\"gt\":259200.0},"
		     "\"dph_total\":{\"lt\":\"0.5\"}," TOP "}");
	expect_build(words, 3, &o,
		     "{\"gpu_ram\":{\"gte\":24000.0},\"duration\":{\"gt\":259200.0},"
		     "\"dph_total\":{\"lt\":\"0.5\"}," TOP "}");
	expect_build(NULL, 0, NULL, "{" DEFAULTS "," TOP "}");
}

static void test_operators(void **state)
{
	static const struct {
		const char *text, *op;
	} cases[] = {
		{ "num_gpus=2", "eq" }, { "num_gpus==2", "eq" }, { "num_gpus!=2", "neq" },
		{ "num_gpus>2", "gt" }, { "num_gpus>=2", "gte" }, { "num_gpus<2", "lt" },
		{ "num_gpus<=2", "lte" }, { "num_gpus = 2", "eq" }, { "num_gpus == 2", "eq" },
		{ "num_gpus != 2", "neq" }, { "num_gpus > 2", "gt" }, { "num_gpus >= 2", "gte" },
		{ "num_gpus < 2", "lt" }, { "num_gpus <= 2", "lte" }, { "num_gpus >=2", "gte" },
		{ "num_gpus<= 2", "lte" }, { "num_gpus eq 2", "eq" }, { "num_gpus neq 2", "neq" },
		{ "num_gpus noteq 2", "neq" }, { "num_gpus not eq 2", "neq" },
		{ "num_gpus gt 2", "gt" }, { "num_gpus gte 2", "gte" }, { "num_gpus lt 2", "lt" },
		{ "num_gpus lte 2", "lte" },
	};
	char want[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), "{\"num_gpus\":{\"%s\":\"2\"}}", cases[i].op);
		expect_parse(cases[i].text, want);
	}
	expect_parse("gpu_name in [A100,H100]", "{\"gpu_name\":{\"in\":[\"A100\",\"H100\"]}}");
	expect_parse("gpu_name notin [A100,H100]", "{\"gpu_name\":{\"notin\":[\"A100\",\"H100\"]}}");
	expect_parse("gpu_name not in [A100,H100]",
		     "{\"gpu_name\":{\"notin\":[\"A100\",\"H100\"]}}");
	expect_parse("gpu_name nin [A100,H100]", "{\"gpu_name\":{\"notin\":[\"A100\",\"H100\"]}}");
}

static void test_values(void **state)
{
	/* lists: spaces inside, quotes, underscores, empty items, no brackets */
	expect_parse("gpu_name in [RTX_4090, \"H100 SXM\",,A100]",
		     "{\"gpu_name\":{\"in\":[\"RTX 4090\",\"H100 SXM\",\"A100\"]}}");
	expect_parse("geolocation in US,CA", "{\"geolocation\":{\"in\":[\"US\",\"CA\"]}}");
	expect_parse("geolocation notin \"US,CA\"", "{\"geolocation\":{\"notin\":[\"US\",\"CA\"]}}");
	/* quotes and underscores */
	expect_parse("gpu_name=\"RTX 4090\"", "{\"gpu_name\":{\"eq\":\"RTX 4090\"}}");
	expect_parse("gpu_name='RTX 4090'", "{\"gpu_name\":{\"eq\":\"RTX 4090\"}}");
	expect_parse("gpu_name=RTX_4090", "{\"gpu_name\":{\"eq\":\"RTX 4090\"}}");
	expect_parse("gpu_name = \"RTX_A5000\"", "{\"gpu_name\":{\"eq\":\"RTX A5000\"}}");
	/* literals, and everything else a string */
	expect_parse("rented=true verified=True static_ip=false datacenter=False "
		     "cluster_id=None host_id=null",
		     "{\"rented\":{\"eq\":true},\"verified\":{\"eq\":true},"
		     "\"static_ip\":{\"eq\":false},\"datacenter\":{\"eq\":false},"
		     "\"cluster_id\":{\"eq\":null},\"host_id\":{\"eq\":null}}");
	expect_parse("num_gpus=1 reliability>0.99 rented=TRUE",
		     "{\"num_gpus\":{\"eq\":\"1\"},\"reliability\":{\"gt\":\"0.99\"},"
		     "\"rented\":{\"eq\":\"TRUE\"}}");
	/* units */
	expect_parse("gpu_total_ram>=80 cpu_ram>64.5 duration<=0.5",
		     "{\"gpu_total_ram\":{\"gte\":80000.0},\"cpu_ram\":{\"gt\":64500.0},"
		     "\"duration\":{\"lte\":43200.0}}");
	expect_parse("gpu_ram in [24,48]", "{\"gpu_ram\":{\"in\":[24000.0,48000.0]}}");
	expect_parse("driver_version>=535.86.05", "{\"driver_version\":{\"gte\":535086005}}");
	expect_parse("driver_version >= 550.54", "{\"driver_version\":{\"gte\":550054000}}");
	expect_parse("driver_version=535", "{\"driver_version\":{\"eq\":\"535\"}}");
	/* several operators on one field combine; a later one overrides */
	expect_parse("gpu_ram>=24 gpu_ram<48", "{\"gpu_ram\":{\"gte\":24000.0,\"lt\":48000.0}}");
	expect_parse("num_gpus>=1 num_gpus>=2", "{\"num_gpus\":{\"gte\":\"2\"}}");
	/* aliases */
	expect_parse("cuda_vers>=12.1 dph<=2 dlperf_usd>10 flops_usd>1 display_active=false",
		     "{\"cuda_max_good\":{\"gte\":\"12.1\"},\"dph_total\":{\"lte\":\"2\"},"
		     "\"dlperf_per_dphtotal\":{\"gt\":\"10\"},\"flops_per_dphtotal\":{\"gt\":\"1\"},"
		     "\"gpu_display_active\":{\"eq\":false}}");
	/* an unknown field warns but is sent */
	expect_parse("made_up_field=3", "{\"made_up_field\":{\"eq\":\"3\"}}");
	/* blank text is no filter */
	expect_parse("", "{}");
	expect_parse("   ", "{}");
	expect_parse(NULL, "{}");
}

static void test_wildcards(void **state)
{
	static const char *const any[] = { "verified=any" };
	static const char *const q[] = { "external", "=", "?" };
	static const char *const star[] = { "rentable=*", "num_gpus=2", "num_gpus=any" };
	json_t *obj = json_pack("{s:{s:b,s:s}}", "verified", "eq", 1, "gt", "x");
	struct err e;

	expect_build(any, 1, NULL,
		     "{\"external\":{\"eq\":false},\"rentable\":{\"eq\":true}," TOP "}");
	expect_build(q, 3, NULL,
		     "{\"verified\":{\"eq\":true},\"rentable\":{\"eq\":true}," TOP "}");
	expect_build(star, 3, NULL,
		     "{\"verified\":{\"eq\":true},\"external\":{\"eq\":false}," TOP "}");
	/* deletes the whole field, every operator; an alias deletes its target */
	err_clear(&e);
	assert_int_equal(vast_query_parse("verified=any", obj, &e), 0);
	tu_expect_json(obj, "{}");
	assert_int_equal(vast_query_parse("dph<1 dph=any", obj, &e), 0);
	tu_expect_json(obj, "{}");
	/* quoted, it is just a word */
	assert_int_equal(vast_query_parse("gpu_name=\"any\"", obj, &e), 0);
	tu_expect_json(obj, "{\"gpu_name\":{\"eq\":\"any\"}}");
	json_decref(obj);
}

static void test_options(void **state)
{
	static const char *const none[] = { "num_gpus=2" };
	struct vast_query_opts o = {
		.no_defaults = true, .order = "num_gpus, total_flops-,dph+", .type = "interruptible",
		.limit = 10, .storage_gb = 32.5,
	};
	struct vast_query_opts bad = { .type = "spot" };
	json_t *q = (json_t *)1;
	struct err e;

	expect_build(none, 1, &o,
		     "{\"num_gpus\":{\"eq\":\"2\"},\"order\":[[\"num_gpus\",\"asc\"],"
		     "[\"total_flops\",\"desc\"],[\"dph_total\",\"asc\"]],\"type\":\"bid\","
		     "\"allocated_storage\":32.5,\"limit\":10}");
	o = (struct vast_query_opts){ .order = "dlperf_usd-", .type = "reserved" };
	expect_build(NULL, 0, &o,
		     "{" DEFAULTS ",\"order\":[[\"dlperf_per_dphtotal\",\"desc\"]],"
		     "\"type\":\"reserved\",\"allocated_storage\":5.0}");
	o = (struct vast_query_opts){ .type = "bid" };
	expect_build(NULL, 0, &o, "{" DEFAULTS ",\"order\":[[\"score\",\"desc\"]],"
		     "\"type\":\"bid\",\"allocated_storage\":5.0}");

	err_clear(&e);
	assert_int_equal(vast_query_build(NULL, 0, &bad, &q, &e), ERR_USAGE);
	assert_null(q);
	assert_non_null(strstr(e.msg, "spot"));
	bad = (struct vast_query_opts){ .order = "score,gpu ram-" };
	assert_int_equal(vast_query_build(NULL, 0, &bad, &q, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "gpu ram-"));
	bad = (struct vast_query_opts){ .limit = -1 };
	assert_int_equal(vast_query_build(NULL, 0, &bad, &q, &e), ERR_USAGE);
	bad = (struct vast_query_opts){ .storage_gb = -5 };
	assert_int_equal(vast_query_build(NULL, 0, &bad, &q, &e), ERR_USAGE);
	assert_int_equal(vast_query_build(none, 1, NULL, &q, &e), 0);
	assert_non_null(q);
	json_decref(q);
	/* a bad term fails the build with nothing returned */
	q = (json_t *)1;
	assert_int_equal(vast_query_build((const char *const[]){ "gpu_ram>=lots" }, 1, NULL, &q, &e),
			 ERR_USAGE);
	assert_null(q);
	assert_non_null(strstr(e.msg, "gpu_ram>=lots"));
}

static void test_errors(void **state)
{
	expect_error("gpu_ram>=", "'gpu_ram>='", "blank value");
	expect_error("num_gpus=2 gpu_ram >= ", "'gpu_ram >='", "blank value");
	expect_error("num_gpus eq", "'num_gpus eq'", "blank value");
	expect_error("gpu_ram ~ 3", "'gpu_ram ~'", "unknown operator '~'");
	expect_error("gpu_ram~3", "'gpu_ram~3'", "no operator");
	expect_error("num_gpus=1 gpu_ram", "'gpu_ram'", "no operator");
	expect_error("gpu_ram=>3", "'gpu_ram=>'", "unknown operator '=>'");
	expect_error("gpu_ram like 3", "'gpu_ram like'", "unknown operator 'like'");
	expect_error("gpu_ram not gt 3", "'gpu_ram not gt'", "unknown operator");
	expect_error("gpu_name=\"\"", "gpu_name=\"\"", "blank value");
	expect_error("gpu_name in []", "gpu_name in []", "blank value");
	expect_error("gpu_name in [,]", "gpu_name in [,]", "blank value");
	expect_error("gpu_name=\"RTX 4090", "'gpu_name=\"RTX 4090'", "closing quote");
	expect_error("gpu_name='RTX 4090", "'gpu_name='RTX 4090'", "closing quote");
	expect_error("gpu_name in [A100,H100", "'gpu_name in [A100,H100'", "closing ]");
	expect_error("gpu_name=RTX 4090", "'4090'", "field name");
	expect_error("num_gpus=2 , dph<1", "','", "field name");
	expect_error("gpu_name=\"A\"B", "gpu_name=\"A\"B", "right after the value");
	expect_error("gpu_ram>=lots", "'gpu_ram>=lots'", "number of GB");
	expect_error("duration>3d", "'duration>3d'", "number of days");
	expect_error("cpu_ram<inf", "'cpu_ram<inf'", "number of GB");
	expect_error("gpu_ram in [24,big]", "gpu_ram in [24,big]", "number of GB");
	expect_error("gpu_ram>=true", "gpu_ram>=true", "number of GB");
	expect_error("driver_version>=5.x", "driver_version>=5.x", "535.86.05");
	expect_error("driver_version>=1.2.3.4", "driver_version>=1.2.3.4", "535.86.05");
	expect_error("verified!=any", "verified!=any", "only go with =");
	expect_error("gpu_name=[A100,H100]", "gpu_name=[A100,H100]", "in or notin");
	expect_error("order=dph", "order=dph", "option");
	expect_error("dph<1 gpu_ram>=x", "gpu_ram>=x", "number");
	expect_error("gpu_name=\xff", "gpu_name=\\xff", "UTF-8");
	expect_error("gpu_ram>=", "forget to quote", "blank value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_example),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_wildcards),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_errors),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
