/* Unit tests for src/sim: the query filter and ordering, fault specs, the
 * built-in market, page tokens, SSH key lines, --listen, and the world's
 * create / lifecycle / list / destroy / billing on a driven clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fsx.h"
#include "common/log.h"
#include "sim/fault.h"
#include "sim/filter.h"
#include "sim/market.h"
#include "sim/server.h"
#include "sim/world.h"
#include "testutil.h"

#define KEY_A "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
#define KEY_B "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

	if (!v)
		fail_msg("bad test JSON at %d: %s: %s", je.column, je.text, text);
	return v;
}

/* Three offers with the shapes the filter must cope with. */
static const char offers_text[] =
	"[{\"id\": 1, \"gpu_name\": \"RTX 4090\", \"num_gpus\": 1, \"dph_total\": 0.4,"
	"  \"verification\": \"verified\", \"rentable\": true, \"external\": false,"
	"  \"geolocation\": \"Oregon, US\", \"cluster_id\": null, \"driver_vers\": 535183001,"
	"  \"hosting_type\": 1, \"reliability2\": 0.99, \"score\": 10},"
	" {\"id\": 2, \"gpu_name\": \"H100 SXM\", \"num_gpus\": 8, \"dph_total\": 20.5,"
	"  \"verification\": \"unverified\", \"rentable\": false, \"external\": null,"
	"  \"geolocation\": \"Guangxi, CN\", \"cluster_id\": 7, \"driver_version\": \"550.127.05\","
	"  \"hosting_type\": 0, \"reliability2\": 0.85, \"score\": 30},"
	" {\"id\": 3, \"gpu_name\": \"RTX 3090\", \"num_gpus\": \"2\", \"dph_total\": \"0.5\","
	"  \"verification\": \"verified\", \"rentable\": \"true\", \"external\": true,"
	"  \"geolocation\": \"Quebec, CA\", \"driver_vers\": 520061005,"
	"  \"reliability2\": null, \"score\": 20}]";

static const char *const controls[] = { "order", "limit", "type", "allocated_storage", NULL };

/* The ids (as "1,3") of the offers that `query` keeps. */
static char *matches(const char *query)
{
	json_t *offers = load(offers_text), *q = load(query), *o;
	struct sim_filter *f = NULL;
	struct err e = { 0 };
	static char out[64];
	size_t i;

	if (sim_filter_new(q, sim_offer_fields, controls, &f, &e))
		fail_msg("query %s refused: %s", query, e.msg);
	out[0] = '\0';
	json_array_foreach(offers, i, o) {
		if (!sim_filter_match(f, o))
			continue;
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%lld", out[0] ? "," : "",
			 (long long)json_integer_value(json_object_get(o, "id")));
	}
	sim_filter_free(f);
	json_decref(q);
	json_decref(offers);
	return out;
}

static void refused(const char *query, const char *what)
{
	json_t *q = load(query);
	struct sim_filter *f = NULL;
	struct err e = { 0 };

	assert_int_equal(sim_filter_new(q, sim_offer_fields, controls, &f, &e), ERR_USAGE);
	assert_null(f);
	if (!strstr(e.msg, what))
		fail_msg("error for %s is '%s', wanted '%s' in it", query, e.msg, what);
	json_decref(q);
}

static void test_filter_ops(void **state)
{
	assert_string_equal(matches("{}"), "1,2,3");
	assert_string_equal(matches("{\"num_gpus\":{\"eq\":1}}"), "1");
	assert_string_equal(matches("{\"num_gpus\":{\"neq\":1}}"), "2,3");
	assert_string_equal(matches("{\"num_gpus\":{\"gt\":2}}"), "2");
	assert_string_equal(matches("{\"num_gpus\":{\"gte\":2}}"), "2,3");
	assert_string_equal(matches("{\"num_gpus\":{\"lt\":2}}"), "1");
	assert_string_equal(matches("{\"num_gpus\":{\"lte\":2}}"), "1,3");
	assert_string_equal(matches("{\"num_gpus\":{\"gte\":2,\"lt\":8}}"), "3");
	assert_string_equal(matches("{\"gpu_name\":{\"eq\":\"RTX 4090\"}}"), "1");
	assert_string_equal(matches("{\"gpu_name\":{\"in\":[\"RTX 4090\",\"RTX 3090\"]}}"), "1,3");
	assert_string_equal(matches("{\"gpu_name\":{\"notin\":[\"RTX 4090\",\"RTX 3090\"]}}"), "2");
	assert_string_equal(matches("{\"num_gpus\":{\"in\":[\"1\",8]}}"), "1,2");
	assert_string_equal(matches("{\"num_gpus\":{\"in\":[]}}"), "");
	assert_string_equal(matches("{\"num_gpus\":{\"notin\":[]}}"), "1,2,3");
	/* A lone value with in is a list of one. */
	assert_string_equal(matches("{\"gpu_name\":{\"in\":\"H100 SXM\"}}"), "2");
	/* Control keys are not filters. */
	assert_string_equal(matches("{\"order\":[[\"score\",\"desc\"]],\"limit\":1,\"type\":\"bid\"}"),
			    "1,2,3");
}

static void test_filter_coercion(void **state)
{
	/* Strings are numbers when the field is numeric, on either side. */
	assert_string_equal(matches("{\"num_gpus\":{\"eq\":\"1\"}}"), "1");
	assert_string_equal(matches("{\"num_gpus\":{\"eq\":\"2\"}}"), "3");
	assert_string_equal(matches("{\"dph_total\":{\"lt\":\"0.5\"}}"), "1");
	assert_string_equal(matches("{\"dph_total\":{\"lte\":\"0.5\"}}"), "1,3");
	assert_string_equal(matches("{\"dph_total\":{\"eq\":0.5}}"), "3");
	/* Booleans: true, "true", 1; a derived verified; a null external is false. */
	assert_string_equal(matches("{\"rentable\":{\"eq\":true}}"), "1,3");
	assert_string_equal(matches("{\"rentable\":{\"eq\":\"True\"}}"), "1,3");
	assert_string_equal(matches("{\"rentable\":{\"eq\":0}}"), "2");
	assert_string_equal(matches("{\"verified\":{\"eq\":true}}"), "1,3");
	assert_string_equal(matches("{\"verified\":{\"neq\":true}}"), "2");
	assert_string_equal(matches("{\"external\":{\"eq\":false}}"), "1,2");
	assert_string_equal(matches("{\"external\":{\"neq\":false}}"), "3");
	assert_string_equal(matches("{\"datacenter\":{\"eq\":true}}"), "1");
	/* null: eq null is "is null"; nulls fail other comparisons (SQL). */
	assert_string_equal(matches("{\"cluster_id\":{\"eq\":null}}"), "1,3");
	assert_string_equal(matches("{\"cluster_id\":{\"neq\":null}}"), "2");
	assert_string_equal(matches("{\"cluster_id\":{\"neq\":5}}"), "2");
	assert_string_equal(matches("{\"reliability2\":{\"gte\":0.8}}"), "1,2");
	assert_string_equal(matches("{\"reliability2\":{\"notin\":[0.99]}}"), "2");
	assert_string_equal(matches("{\"cluster_id\":{\"in\":[null,7]}}"), "1,2,3");
	/* A two-letter geolocation is a country code. */
	assert_string_equal(matches("{\"geolocation\":{\"eq\":\"US\"}}"), "1");
	assert_string_equal(matches("{\"geolocation\":{\"in\":[\"US\",\"CA\"]}}"), "1,3");
	assert_string_equal(matches("{\"geolocation\":{\"neq\":\"US\"}}"), "2,3");
	assert_string_equal(matches("{\"geolocation\":{\"eq\":\"Guangxi, CN\"}}"), "2");
	/* driver_version compares as major*1e6+minor*1e3+patch. */
	assert_string_equal(matches("{\"driver_version\":{\"gte\":535086005}}"), "1,2");
	assert_string_equal(matches("{\"driver_version\":{\"gte\":\"535.86.05\"}}"), "1,2");
	assert_string_equal(matches("{\"driver_version\":{\"lt\":\"530.0.0\"}}"), "3");
	/* driver_vers, the integer form the vastai CLI sends. */
	assert_string_equal(matches("{\"driver_vers\":{\"gte\":535000000}}"), "1,2");
	/* Bare values, as the vastai CLI also sends them: eq, and a list is in. */
	assert_string_equal(matches("{\"rentable\":true}"), "1,3");
	assert_string_equal(matches("{\"num_gpus\":1}"), "1");
	assert_string_equal(matches("{\"gpu_name\":[\"RTX 4090\",\"RTX 3090\"]}"), "1,3");
	/* Aliases the server takes. */
	assert_string_equal(matches("{\"score\":{\"gt\":15}}"), "2,3");
	assert_string_equal(matches("{\"hosting_type\":{\"gte\":1}}"), "1");
}

static void test_filter_errors(void **state)
{
	refused("{\"gpu_nam\":{\"eq\":\"x\"}}", "gpu_nam is not a valid search key");
	refused("{\"num_gpus\":{\"like\":1}}", "unknown operator 'like'");
	refused("{\"num_gpus\":{\"eq\":\"one\"}}", "is not a number");
	refused("{\"num_gpus\":{\"gt\":null}}", "null goes with eq or neq only");
	refused("{\"num_gpus\":{\"eq\":[1,2]}}", "a list goes with in or notin");
	refused("{\"num_gpus\":{\"in\":[1,\"x\"]}}", "is not a number");
	refused("{\"rentable\":{\"eq\":\"maybe\"}}", "is not a boolean");
	refused("{\"num_gpus\":\"one\"}", "is not a number");
	refused("[1]", "must be a JSON object");
}

/* Ids of the offers in the order `order` sorts them. */
static char *sorted(const char *order)
{
	json_t *offers = load(offers_text), *o = load(order), *v[3];
	struct sim_order *ord = NULL;
	struct err e = { 0 };
	static char out[64];

	if (sim_order_new_pairs(o, sim_offer_fields, "score", &ord, &e))
		fail_msg("order %s refused: %s", order, e.msg);
	for (size_t i = 0; i < 3; i++)
		v[i] = json_array_get(offers, i);
	sim_order_sort(ord, v, 3);
	snprintf(out, sizeof(out), "%lld,%lld,%lld", (long long)json_integer_value(json_object_get(v[0], "id")),
		 (long long)json_integer_value(json_object_get(v[1], "id")),
		 (long long)json_integer_value(json_object_get(v[2], "id")));
	sim_order_free(ord);
	json_decref(o);
	json_decref(offers);
	return out;
}

static void test_order(void **state)
{
	struct sim_order *ord = NULL;
	struct err e = { 0 };
	json_t *o;

	assert_string_equal(sorted("null"), "2,3,1"); /* score desc by default */
	assert_string_equal(sorted("[]"), "2,3,1");
	assert_string_equal(sorted("[[\"dph_total\",\"asc\"]]"), "1,3,2");
	assert_string_equal(sorted("[[\"dph_total\",\"desc\"]]"), "2,3,1");
	assert_string_equal(sorted("[[\"num_gpus\",\"asc\"]]"), "1,3,2");
	/* Nulls last whatever the direction. */
	assert_string_equal(sorted("[[\"reliability2\",\"asc\"]]"), "2,1,3");
	assert_string_equal(sorted("[[\"reliability2\",\"desc\"]]"), "1,2,3");
	/* Ties fall to the next key, then to id ascending. */
	assert_string_equal(sorted("[[\"verified\",\"desc\"],[\"score\",\"asc\"]]"), "1,3,2");
	assert_string_equal(sorted("[[\"verified\",\"desc\"]]"), "1,3,2");
	assert_string_equal(sorted("[\"gpu_name\"]"), "2,3,1");

	o = load("[[\"nope\",\"asc\"]]");
	assert_int_equal(sim_order_new_pairs(o, sim_offer_fields, "score", &ord, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "nope is not a valid search key"));
	json_decref(o);
	o = load("[[\"score\",\"up\"]]");
	assert_int_equal(sim_order_new_pairs(o, sim_offer_fields, "score", &ord, &e), ERR_USAGE);
	json_decref(o);
	o = load("{\"score\":\"asc\"}");
	assert_int_equal(sim_order_new_pairs(o, sim_offer_fields, "score", &ord, &e), ERR_USAGE);
	json_decref(o);
	o = load("[{\"col\":\"dph_total\",\"dir\":\"asc\"}]");
	assert_int_equal(sim_order_new_cols(o, sim_instance_fields, &ord, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "dph_total is not a valid search key"));
	json_decref(o);
	assert_null(ord);
}

static void test_faults(void **state)
{
	struct sim_faults f;
	struct err e = { 0 };

	sim_faults_init(&f);
	assert_true(f.instance_exit_after < 0 && f.instance_offline_after < 0);
	assert_int_equal(sim_faults_parse("", &f, &e), 0);
	assert_int_equal(sim_faults_parse(NULL, &f, &e), 0);
	assert_int_equal(sim_faults_parse(
				 "rate_limit=0.5, server_error=1,slow=0.25,create_no_contract=0.1,"
				 "create_error_leaves_instance=0,offer_taken=0.3,stuck_loading=1,"
				 "instance_exit_after=30,instance_offline_after=0,destroy_fail=2,list_lag=3,",
				 &f, &e), 0);
	assert_true(f.rate_limit == 0.5 && f.server_error == 1 && f.slow == 0.25);
	assert_true(f.create_no_contract == 0.1 && f.create_error_leaves_instance == 0);
	assert_true(f.offer_taken == 0.3 && f.stuck_loading == 1);
	assert_true(f.instance_exit_after == 30 && f.instance_offline_after == 0);
	assert_int_equal(f.destroy_fail, 2);
	assert_true(f.list_lag == 3);

	static const struct {
		const char *spec, *named;
	} bad[] = {
		{ "nope=1", "nope" },
		{ "rate_limit=1.5", "rate_limit=1.5" },
		{ "rate_limit=-0.1", "rate_limit=-0.1" },
		{ "rate_limit", "rate_limit" },
		{ "rate_limit=", "rate_limit=" },
		{ "slow=abc", "slow=abc" },
		{ "destroy_fail=1.5", "destroy_fail=1.5" },
		{ "destroy_fail=-1", "destroy_fail=-1" },
		{ "slow=1,slow=2", "slow" },
		{ "offer_taken=0.1,bogus=2", "bogus" },
		{ "list_lag=nan", "list_lag=nan" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sim_faults_init(&f);
		err_clear(&e);
		assert_int_equal(sim_faults_parse(bad[i].spec, &f, &e), ERR_USAGE);
		if (!strstr(e.msg, bad[i].named))
			fail_msg("'%s' gave '%s', which does not name '%s'", bad[i].spec, e.msg, bad[i].named);
	}
}

/* vast-api.md section 3's sample, as keys. */
static const char *const sample_keys[] = {
	"id", "ask_contract_id", "bundle_id", "bundled_results", "machine_id", "host_id",
	"hosting_type", "hostname", "rn", "gpu_name", "num_gpus", "gpu_ids", "gpu_ram",
	"gpu_total_ram", "gpu_frac", "gpu_arch", "gpu_lanes", "gpu_mem_bw", "gpu_display_active",
	"gpu_max_power", "gpu_max_temp", "bw_nvlink", "compute_cap", "cuda_max_good",
	"driver_version", "driver_vers", "total_flops", "dlperf", "dlperf_per_dphtotal",
	"flops_per_dphtotal", "score", "cpu_name", "cpu_arch", "cpu_cores", "cpu_cores_effective",
	"cpu_ghz", "cpu_ram", "has_avx", "disk_space", "disk_bw", "disk_name", "mobo_name",
	"pci_gen", "pcie_bw", "os_version", "inet_up", "inet_down", "inet_up_cost",
	"inet_down_cost", "internet_up_cost_per_tb", "internet_down_cost_per_tb",
	"direct_port_count", "public_ipaddr", "static_ip", "geolocation", "geolocode", "dph_base",
	"dph_total", "dph_total_adj", "discounted_dph_total", "discount_rate", "discounted_hourly",
	"storage_cost", "storage_total_cost", "vram_costperhour", "credit_discount_max", "min_bid",
	"search", "instance", "rentable", "rented", "is_bid", "external", "reliability",
	"reliability2", "reliability_mult", "expected_reliability", "verification", "vericode",
	"vms_enabled", "is_vm_deverified", "resource_type", "cluster_id", "start_date", "end_date",
	"duration", "time_remaining", "time_remaining_isbid", "avail_vol_ask_id", "avail_vol_dph",
	"avail_vol_size", "nw_disk_min_bw", "nw_disk_max_bw", "nw_disk_avg_bw", "logo", "webpage",
	NULL,
};

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		fail_msg("%s is not a number", key);
	return json_number_value(v);
}

static void test_market(void **state)
{
	json_t *a = sim_market_generate(7, 120), *b = sim_market_generate(7, 120),
	       *c = sim_market_generate(8, 120), *o;
	char *da = json_dumps(a, JSON_COMPACT), *db = json_dumps(b, JSON_COMPACT),
	     *dc = json_dumps(c, JSON_COMPACT);
	size_t i, nnull = 0;
	int counts[9] = { 0 };

	assert_string_equal(da, db);
	assert_string_not_equal(da, dc);
	assert_int_equal(json_array_size(a), 120);
	json_array_foreach(a, i, o) {
		double n = num(o, "num_gpus"), total = num(o, "dph_total");

		for (size_t k = 0; sample_keys[k]; k++)
			if (!json_object_get(o, sample_keys[k]))
				fail_msg("offer %zu has no %s", i, sample_keys[k]);
		assert_true(n == 1 || n == 2 || n == 4 || n == 8);
		counts[(int)n]++;
		assert_true(num(o, "gpu_total_ram") == n * num(o, "gpu_ram"));
		assert_true(fabs(total - (num(o, "dph_base") + num(o, "storage_cost") * 5 / 720)) < 1e-12);
		assert_true(fabs(num(o, "storage_total_cost") - num(o, "storage_cost") * 5 / 720) < 1e-12);
		assert_true(fabs(num(o, "dlperf_per_dphtotal") - num(o, "dlperf") / total) < 1e-9);
		assert_true(num(o, "min_bid") < num(o, "dph_base"));
		assert_true(num(o, "reliability") >= 0.80 && num(o, "reliability") <= 0.999);
		assert_true(num(o, "reliability2") >= 0.80 && num(o, "reliability2") <= 0.999);
		assert_true(num(o, "inet_down") >= 10 && num(o, "inet_down") <= 5000);
		assert_true(num(o, "inet_up") >= 10 && num(o, "inet_up") <= 5000);
		assert_true(num(o, "cuda_max_good") >= 11.8 && num(o, "cuda_max_good") <= 13.0);
		assert_true(num(o, "id") == num(o, "ask_contract_id"));
		assert_true(json_is_true(json_object_get(o, "rentable")));
		assert_true(json_is_false(json_object_get(o, "rented")));
		assert_true(json_is_string(json_object_get(o, "driver_version")));
		assert_true(json_is_string(json_object_get(o, "geolocation")));
		assert_non_null(strstr(json_string_value(json_object_get(o, "geolocation")), ", "));
		assert_int_equal(json_array_size(json_object_get(o, "gpu_ids")), (size_t)n);
		assert_true(fabs(num(json_object_get(o, "search"), "totalHour") - total) < 1e-12);
		nnull += json_is_null(json_object_get(o, "external"));
	}
	/* A few externals are null, most are false; every size is present. */
	assert_true(nnull > 0 && nnull < 20);
	assert_true(counts[1] && counts[2] && counts[4] && counts[8]);

	/* Re-pricing: storage and bid. */
	o = json_copy(json_array_get(a, 0));
	sim_market_price(o, 100, true);
	assert_true(fabs(num(o, "dph_total") - (num(o, "min_bid") + num(o, "storage_cost") * 100 / 720)) < 1e-12);
	assert_true(json_is_true(json_object_get(o, "is_bid")));
	json_decref(o);

	free(da);
	free(db);
	free(dc);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void test_market_load(void **state)
{
	char *dir = tu_mkdtemp("sim"), *path = fsx_join(dir, "m.json");
	struct err e = { 0 };
	json_t *m = NULL;

	tu_write_text(dir, "m.json", "{\"offers\": [{\"id\": \"5\", \"dph_total\": \"0.3\"}, 7]}");
	assert_int_equal(sim_market_load(path, &m, &e), 0);
	assert_int_equal(json_array_size(m), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "id")), "5");
	json_decref(m);

	tu_write_text(dir, "m.json", "[{\"id\": 1}]");
	assert_int_equal(sim_market_load(path, &m, &e), 0);
	assert_int_equal(json_array_size(m), 1);
	json_decref(m);

	tu_write_text(dir, "m.json", "{\"offers\": [\n  {\"id\": 1,}\n]}");
	assert_int_equal(sim_market_load(path, &m, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "line 2"));

	tu_write_text(dir, "m.json", "{\"offer\": []}");
	assert_int_equal(sim_market_load(path, &m, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "offers"));
	assert_int_equal(fsx_remove_tree(dir, NULL), 0);
	assert_int_equal(sim_market_load(path, &m, &e), ERR_IO);
	assert_non_null(strstr(e.msg, path));
	assert_null(m);
	free(path);
	free(dir);
}

static void test_token(void **state)
{
	json_t *key = load("[1.5, \"x y/+\", null, true, 30000001]"), *back = NULL;
	struct err e = { 0 };
	char *tok = sim_token_encode(key);

	assert_null(strpbrk(tok, "+/="));
	assert_int_equal(sim_token_decode(tok, &back, &e), 0);
	assert_true(json_equal(key, back));
	json_decref(back);
	free(tok);

	static const char *const bad[] = {
		"", "!!!!", "e30", /* {} */ "bm90IGpzb24", /* "not json" */
		"eyJhZnRlciI6MX0", /* {"after":1} */ "eyJiZWZvcmUiOltdfQ", /* {"before":[]} */
		"A",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		back = NULL;
		assert_int_equal(sim_token_decode(bad[i], &back, &e), ERR_FORMAT);
		assert_null(back);
	}
	json_decref(key);
}

static void test_ssh_key_parse(void **state)
{
	struct err e = { 0 };
	char *canon = NULL;

	assert_int_equal(sim_ssh_key_parse("  " KEY_A " me@host  \n", &canon, &e), 0);
	assert_string_equal(canon, KEY_A);
	free(canon);
	assert_int_equal(sim_ssh_key_parse("ssh-rsa AAAAB3NzaC1yc2EAAAAgAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &canon, &e), 0);
	free(canon);
	/* The blob must name the type the line names. */
	assert_int_equal(sim_ssh_key_parse("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", &canon, &e), ERR_FORMAT);
	assert_int_equal(sim_ssh_key_parse("hello", &canon, &e), ERR_FORMAT);
	assert_int_equal(sim_ssh_key_parse("ssh-ed25519 not-base64!", &canon, &e), ERR_FORMAT);
	assert_int_equal(sim_ssh_key_parse("ssh-foo AAAAC3NzaC1lZDI1NTE5", &canon, &e), ERR_FORMAT);
	assert_int_equal(sim_ssh_key_parse("-----BEGIN OPENSSH PRIVATE KEY-----", &canon, &e), ERR_FORMAT);
	assert_null(canon);
}

static void test_listen_parse(void **state)
{
	struct err e = { 0 };
	char *host = NULL;
	int port = -1;

	assert_int_equal(sim_listen_parse("127.0.0.1:0", &host, &port, &e), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	free(host);
	assert_int_equal(sim_listen_parse("[::1]:8080", &host, &port, &e), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8080);
	free(host);
	assert_int_equal(sim_listen_parse("localhost:65535", &host, &port, &e), 0);
	free(host);
	assert_int_equal(sim_listen_parse("127.0.0.1", &host, &port, &e), ERR_USAGE);
	assert_int_equal(sim_listen_parse("127.0.0.1:65536", &host, &port, &e), ERR_USAGE);
	assert_int_equal(sim_listen_parse(":80", &host, &port, &e), ERR_USAGE);
	assert_int_equal(sim_listen_parse("h:-1", &host, &port, &e), ERR_USAGE);
	assert_int_equal(sim_listen_parse("h:80x", &host, &port, &e), ERR_USAGE);
	assert_int_equal(sim_listen_parse("::1:80", &host, &port, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "::1:80"));
	assert_null(host);
}

/* --- the world, on a driven clock ------------------------------------------------ */

#define T0 1800000000.0

static struct sim_world *world(double boot, const char *faults, size_t offers)
{
	struct sim_world_opts o = { 0 };
	struct sim_world *w;
	struct err e = { 0 };

	o.market = sim_market_generate(3, offers);
	o.reprice = true;
	o.ssh_host = "127.0.0.1";
	o.ssh_port = 2222;
	o.boot_seconds = boot;
	o.seed = 3;
	o.credit = 25;
	sim_faults_init(&o.faults);
	if (sim_faults_parse(faults, &o.faults, &e))
		fail_msg("faults: %s", e.msg);
	w = sim_world_new(&o);
	json_decref(o.market);
	return w;
}

/* The answer's body, with the status checked. */
static json_t *body(struct sim_answer *a, unsigned status)
{
	json_t *b;

	if (a->status != status) {
		char *s = a->json ? json_dumps(a->json, JSON_COMPACT) : NULL;

		fail_msg("status %u, wanted %u: %s", a->status, status, s ? s : a->text ? a->text : "");
	}
	assert_non_null(a->json);
	b = json_incref(a->json);
	sim_answer_release(a);
	return b;
}

static json_t *search(struct sim_world *w, const char *query, double now)
{
	struct sim_answer a = { 0 };
	json_t *q = query ? load(query) : NULL, *b;

	sim_world_bundles(w, q, now, &a);
	json_decref(q);
	b = body(&a, 200);
	return b;
}

static long long first_offer(struct sim_world *w, const char *query, double now)
{
	json_t *b = search(w, query, now);
	long long id = (long long)json_integer_value(json_object_get(json_array_get(json_object_get(b, "offers"), 0), "id"));

	assert_true(id > 0);
	json_decref(b);
	return id;
}

static long long create(struct sim_world *w, long long offer, const char *req, double now)
{
	struct sim_answer a = { 0 };
	json_t *r = load(req), *b;
	long long id;

	sim_world_create(w, offer, r, now, &a);
	json_decref(r);
	b = body(&a, 200);
	id = (long long)json_integer_value(json_object_get(b, "new_contract"));
	assert_true(json_is_true(json_object_get(b, "success")));
	assert_int_equal(strlen(json_string_value(json_object_get(b, "instance_api_key"))), 64);
	json_decref(b);
	return id;
}

static json_t *instance(struct sim_world *w, long long id, double now)
{
	struct sim_answer a = { 0 };
	json_t *b, *in;

	sim_world_instance_get(w, id, now, &a);
	b = body(&a, 200);
	in = json_incref(json_object_get(b, "instances"));
	json_decref(b);
	return in;
}

static const char *status_of(json_t *in)
{
	static char s[32];
	const json_t *v = json_object_get(in, "actual_status");

	snprintf(s, sizeof(s), "%s", json_is_string(v) ? json_string_value(v) : "null");
	json_decref(in);
	return s;
}

static void test_world_search(void **state)
{
	struct sim_world *w = world(0, NULL, 200);
	struct sim_answer a = { 0 };
	json_t *b, *offers, *q;
	double prev = 1e9;
	size_t i;

	b = search(w, NULL, T0);
	offers = json_object_get(b, "offers");
	assert_int_equal(json_array_size(offers), 64); /* the default limit */
	json_array_foreach(offers, i, q) {
		assert_true(num(q, "score") <= prev);
		prev = num(q, "score");
	}
	json_decref(b);
	b = search(w, "{\"limit\":1000,\"gpu_name\":{\"eq\":\"RTX 4090\"},\"order\":[[\"dph_total\",\"asc\"]]}", T0);
	offers = json_object_get(b, "offers");
	assert_true(json_array_size(offers) > 3 && json_array_size(offers) < 200);
	prev = 0;
	json_array_foreach(offers, i, q) {
		assert_string_equal(json_string_value(json_object_get(q, "gpu_name")), "RTX 4090");
		assert_true(num(q, "dph_total") >= prev);
		prev = num(q, "dph_total");
	}
	json_decref(b);
	/* Storage and bid pricing per answer. */
	b = search(w, "{\"limit\":1,\"type\":\"bid\",\"allocated_storage\":\"72\",\"order\":[[\"id\",\"asc\"]]}", T0);
	q = json_array_get(json_object_get(b, "offers"), 0);
	assert_true(fabs(num(q, "dph_total") - (num(q, "min_bid") + num(q, "storage_cost") / 10)) < 1e-12);
	json_decref(b);
	/* Bad queries. */
	q = load("{\"limit\":0}");
	sim_world_bundles(w, q, T0, &a);
	json_decref(q);
	json_decref(body(&a, 400));
	q = load("{\"type\":\"spot\"}");
	sim_world_bundles(w, q, T0, &a);
	json_decref(q);
	json_decref(body(&a, 400));
	q = load("{\"gpu_nam\":{\"eq\":1}}");
	sim_world_bundles(w, q, T0, &a);
	json_decref(q);
	b = body(&a, 400);
	assert_string_equal(json_string_value(json_object_get(b, "error")), "invalid_args");
	assert_non_null(strstr(json_string_value(json_object_get(b, "msg")), "gpu_nam is not a valid search key"));
	json_decref(b);
	sim_world_free(w);
}

static void test_world_lifecycle(void **state)
{
	struct sim_world *w = world(5, NULL, 50);
	long long offer = first_offer(w, "{\"direct_port_count\":{\"gte\":1}}", T0), id;
	struct sim_answer a = { 0 };
	json_t *in, *b, *r;
	const char *s;

	id = create(w, offer, "{\"client_id\":\"me\",\"image\":\"img:1\",\"disk\":16,\"label\":\"job-7\","
			      "\"env\":{\"A\":\"b\"},\"runtype\":\"ssh_direc ssh_proxy\"}", T0);
	assert_true(id >= 30000000 && id != offer);
	/* The machine is taken: the offer leaves the market. */
	b = search(w, "{\"limit\":1000}", T0);
	s = json_dumps(b, JSON_COMPACT);
	{
		char needle[40];

		snprintf(needle, sizeof(needle), "\"id\":%lld,", offer);
		assert_null(strstr(s, needle));
	}
	free((char *)s);
	json_decref(b);
	assert_string_equal(status_of(instance(w, id, T0 + 0.1)), "null");
	assert_string_equal(status_of(instance(w, id, T0 + 2)), "loading");
	in = instance(w, id, T0 + 6);
	assert_string_equal(json_string_value(json_object_get(in, "actual_status")), "running");
	assert_string_equal(json_string_value(json_object_get(in, "label")), "job-7");
	assert_string_equal(json_string_value(json_object_get(in, "ssh_host")), "127.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(in, "ssh_port")), 2222);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(json_object_get(in, "ports"), "22/tcp"), 0), "HostPort")), "2222");
	assert_non_null(strstr(json_string_value(json_object_get(in, "public_ipaddr")), "127.0.0.1"));
	assert_string_equal(json_string_value(json_array_get(json_array_get(json_object_get(in, "extra_env"), 0), 1)), "b");
	json_decref(in);

	/* Stop, start, label. */
	r = load("{\"state\":\"stopped\"}");
	sim_world_instance_put(w, id, r, T0 + 10, &a);
	json_decref(r);
	json_decref(body(&a, 200));
	assert_string_equal(status_of(instance(w, id, T0 + 11)), "stopped");
	r = load("{\"state\":\"running\"}");
	sim_world_instance_put(w, id, r, T0 + 12, &a);
	json_decref(r);
	json_decref(body(&a, 200));
	assert_string_equal(status_of(instance(w, id, T0 + 13)), "scheduling");
	assert_string_equal(status_of(instance(w, id, T0 + 18)), "running");
	r = load("{\"label\":\"renamed\"}");
	sim_world_instance_put(w, id, r, T0 + 20, &a);
	json_decref(r);
	b = body(&a, 200);
	{
		char msg[64];

		snprintf(msg, sizeof(msg), "label for %lld set to 'renamed'", id);
		assert_string_equal(json_string_value(json_object_get(b, "msg")), msg);
	}
	json_decref(b);

	/* Destroy once, then 404; the instance reads as null. */
	sim_world_instance_delete(w, id, T0 + 3600, &a);
	json_decref(body(&a, 200));
	sim_world_instance_delete(w, id, T0 + 3601, &a);
	b = body(&a, 404);
	assert_string_equal(json_string_value(json_object_get(b, "error")), "no_such_instance");
	json_decref(b);
	in = instance(w, id, T0 + 3602);
	assert_true(json_is_null(in));
	json_decref(in);

	/* The ledger: destroyed, billed an hour (storage only while stopped). */
	sim_world_ledger(w, T0 + 7200, &a);
	b = body(&a, 200);
	in = json_array_get(json_object_get(b, "instances"), 0);
	assert_string_equal(json_string_value(json_object_get(in, "state")), "destroyed");
	assert_true(num(in, "destroyed_at") == T0 + 3600);
	assert_true(num(in, "billed_seconds") == 3600);
	assert_true(num(in, "billed_usd") > 0.99 * num(in, "dph_total") * 3598 / 3600);
	assert_true(num(in, "billed_usd") < num(in, "dph_total"));
	assert_int_equal(json_integer_value(json_object_get(b, "live")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "creates_per_label"), "job-7")), 1);
	json_decref(b);
	sim_world_free(w);
}

static void test_world_create_errors(void **state)
{
	struct sim_world *w = world(0, NULL, 50);
	long long offer = first_offer(w, NULL, T0), id;
	struct sim_answer a = { 0 };
	json_t *r, *b, *in;
	char req[512];

	static const struct {
		const char *req, *error, *msg;
	} bad[] = {
		{ "{\"disk\":10}", "invalid_args", "image is required" },
		{ "{\"image\":\"x\",\"disk\":4}", "invalid_args", "at least 8" },
		{ "{\"image\":\"x\",\"env\":\"-e A=1\"}", "invalid_args", "env must be an object" },
		{ "{\"image\":\"x\",\"env\":{\"A\":1}}", "invalid_args", "env value of A must be a string" },
		{ "{\"image\":\"x\",\"runtype\":\"telnet\"}", "invalid_args", "runtype" },
		{ "{\"image\":\"x\",\"price\":500}", "invalid_price", "128" },
		{ "{\"image\":\"x\",\"target_state\":\"paused\"}", "invalid_args", "target_state" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = load(bad[i].req);
		sim_world_create(w, offer, r, T0, &a);
		json_decref(r);
		b = body(&a, 400);
		assert_string_equal(json_string_value(json_object_get(b, "error")), bad[i].error);
		if (!strstr(json_string_value(json_object_get(b, "msg")), bad[i].msg))
			fail_msg("%s: msg %s", bad[i].req, json_string_value(json_object_get(b, "msg")));
		assert_int_equal(json_integer_value(json_object_get(b, "ask_id")), offer);
		assert_null(json_object_get(b, "new_contract"));
		json_decref(b);
	}
	snprintf(req, sizeof(req), "{\"image\":\"x\",\"label\":\"%0300d\"}", 1);
	r = load(req);
	sim_world_create(w, offer, r, T0, &a);
	json_decref(r);
	json_decref(body(&a, 400));

	/* A missing offer. */
	r = load("{\"image\":\"x\"}");
	sim_world_create(w, 1, r, T0, &a);
	b = body(&a, 404);
	assert_string_equal(json_string_value(json_object_get(b, "msg")),
			    "error 404/3603: no_such_ask Instance type by id 1 is not available.");
	json_decref(b);
	/* Rent it, then it is taken. */
	id = create(w, offer, "{\"image\":\"x\"}", T0);
	sim_world_create(w, offer, r, T0, &a);
	json_decref(body(&a, 404));
	json_decref(r);

	/* A bid under min_bid: an error, and a stopped instance that bills. */
	offer = first_offer(w, NULL, T0);
	r = load("{\"image\":\"x\",\"label\":\"cheap\",\"price\":0.001}");
	sim_world_create(w, offer, r, T0, &a);
	json_decref(r);
	b = body(&a, 400);
	assert_string_equal(json_string_value(json_object_get(b, "error")), "invalid_price");
	assert_null(json_object_get(b, "new_contract"));
	json_decref(b);
	sim_world_ledger(w, T0 + 3600, &a);
	b = body(&a, 200);
	in = json_array_get(json_object_get(b, "instances"), 1);
	assert_string_equal(json_string_value(json_object_get(in, "label")), "cheap");
	assert_string_equal(json_string_value(json_object_get(in, "state")), "stopped");
	assert_true(num(in, "billed_usd") > 0);
	assert_true(num(in, "billed_usd") < num(in, "dph_total"));
	json_decref(b);
	/* With cancel_unavail, no instance. */
	offer = first_offer(w, NULL, T0);
	r = load("{\"image\":\"x\",\"label\":\"cheap2\",\"price\":0.001,\"cancel_unavail\":true}");
	sim_world_create(w, offer, r, T0, &a);
	json_decref(r);
	json_decref(body(&a, 400));
	sim_world_ledger(w, T0, &a);
	b = body(&a, 200);
	assert_int_equal(json_array_size(json_object_get(b, "instances")), 2);
	json_decref(b);
	(void)id;
	sim_world_free(w);
}

static void test_world_list(void **state)
{
	struct sim_world *w = world(0, NULL, 80);
	struct sim_v1_params p = { 0 };
	struct sim_answer a = { 0 };
	long long ids[30], seen[40];
	size_t nseen = 0, i;
	json_t *b, *list, *q;
	char *tok = NULL;

	for (i = 0; i < 30; i++)
		ids[i] = create(w, first_offer(w, NULL, T0), i % 3 ? "{\"image\":\"x\",\"label\":\"a\"}"
								   : "{\"image\":\"x\"}", T0);
	do {
		p.after_token = tok;
		sim_world_list(w, &p, T0 + 1, &a);
		free(tok);
		tok = NULL;
		b = body(&a, 200);
		assert_int_equal(json_integer_value(json_object_get(b, "instances_found")), 30);
		assert_int_equal(json_integer_value(json_object_get(b, "total_instances")), 30);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "label_counts"), "a")), 20);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "label_counts"), "")), 10);
		list = json_object_get(b, "instances");
		assert_true(json_array_size(list) <= 25);
		json_array_foreach(list, i, q)
			seen[nseen++] = (long long)json_integer_value(json_object_get(q, "id"));
		if (json_is_string(json_object_get(b, "next_token")))
			tok = strdup(json_string_value(json_object_get(b, "next_token")));
		json_decref(b);
	} while (tok && nseen < 40);
	assert_int_equal(nseen, 30);
	for (i = 0; i < 30; i++)
		assert_true(seen[i] == ids[i]); /* id ascending by default */

	/* Filters, order, limit. */
	p = (struct sim_v1_params){ "5", NULL, "[{\"col\":\"id\",\"dir\":\"desc\"}]",
				    "{\"label\":{\"eq\":\"a\"}}", NULL };
	sim_world_list(w, &p, T0 + 1, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(b, "instances_found")), 20);
	list = json_object_get(b, "instances");
	assert_int_equal(json_array_size(list), 5);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "id")), ids[29]);
	assert_true(json_is_string(json_object_get(b, "next_token")));
	json_decref(b);
	p = (struct sim_v1_params){ "100", NULL, NULL, "{\"id\":{\"in\":[1,2]}}", NULL };
	sim_world_list(w, &p, T0 + 1, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(b, "instances_found")), 0);
	assert_true(json_is_null(json_object_get(b, "next_token")));
	json_decref(b);
	p = (struct sim_v1_params){ NULL, NULL, NULL, "{\"dph_total\":{\"lt\":1}}", NULL };
	sim_world_list(w, &p, T0 + 1, &a);
	b = body(&a, 400);
	assert_non_null(strstr(json_string_value(json_object_get(b, "msg")), "is not a valid search key"));
	json_decref(b);
	p = (struct sim_v1_params){ NULL, "eyJhZnRlciI6MX0", NULL, NULL, NULL };
	sim_world_list(w, &p, T0 + 1, &a);
	b = body(&a, 400);
	assert_string_equal(json_string_value(json_object_get(b, "error")), "invalid_token");
	json_decref(b);

	/* Destroyed instances leave the list. */
	sim_world_instance_delete(w, ids[0], T0 + 2, &a);
	json_decref(body(&a, 200));
	p = (struct sim_v1_params){ 0 };
	sim_world_list(w, &p, T0 + 3, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(b, "total_instances")), 29);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(b, "instances"), 0), "id")), ids[1]);
	json_decref(b);
	sim_world_free(w);
}

static void test_world_faults(void **state)
{
	struct sim_world *w = world(1, "destroy_fail=2,list_lag=10,stuck_loading=1,instance_exit_after=100",
				    50);
	struct sim_v1_params p = { 0 };
	struct sim_answer a = { 0 };
	long long id = create(w, first_offer(w, NULL, T0), "{\"image\":\"x\"}", T0);
	json_t *b;

	assert_string_equal(status_of(instance(w, id, T0 + 500)), "loading");
	sim_world_list(w, &p, T0 + 5, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(b, "total_instances")), 0);
	json_decref(b);
	sim_world_list(w, &p, T0 + 11, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(b, "total_instances")), 1);
	json_decref(b);
	for (int i = 0; i < 2; i++) {
		sim_world_instance_delete(w, id, T0 + 20, &a);
		json_decref(body(&a, 500));
	}
	sim_world_instance_delete(w, id, T0 + 20, &a);
	json_decref(body(&a, 200));
	sim_world_free(w);

	w = world(0, "instance_exit_after=100,instance_offline_after=50", 50);
	id = create(w, first_offer(w, NULL, T0), "{\"image\":\"x\"}", T0);
	assert_string_equal(status_of(instance(w, id, T0 + 49)), "running");
	assert_string_equal(status_of(instance(w, id, T0 + 51)), "offline");
	sim_world_free(w);

	/* Request faults always firing, and a rate limit. */
	w = world(0, "server_error=1", 10);
	assert_false(sim_world_admit(w, "k", "bundles", T0, &a));
	assert_true(a.status == 502 || a.status == 503 || a.status == 504);
	assert_null(a.json);
	sim_answer_release(&a);
	sim_world_free(w);
	/* --rate: a bucket of N per caller and endpoint, refilled N a second. */
	{
		struct sim_world_opts o = { 0 };

		o.market = sim_market_generate(1, 5);
		o.rate = 2;
		sim_faults_init(&o.faults);
		w = sim_world_new(&o);
		json_decref(o.market);
	}
	assert_true(sim_world_admit(w, "k", "bundles", T0, &a));
	assert_true(sim_world_admit(w, "k", "bundles", T0, &a));
	assert_false(sim_world_admit(w, "k", "bundles", T0 + 0.1, &a));
	assert_int_equal(a.status, 429);
	assert_string_equal(a.text, "API requests too frequent: endpoint threshold=2");
	sim_answer_release(&a);
	assert_true(sim_world_admit(w, "other-key", "bundles", T0 + 0.1, &a));
	assert_true(sim_world_admit(w, "k", "create", T0 + 0.1, &a));
	assert_true(sim_world_admit(w, "k", "bundles", T0 + 0.6, &a));
	assert_false(sim_world_admit(w, "k", "bundles", T0 + 0.6, &a));
	sim_answer_release(&a);
	sim_world_free(w);

	w = world(0, "rate_limit=1", 10);
	assert_false(sim_world_admit(w, "k", "bundles", T0, &a));
	assert_int_equal(a.status, 429);
	assert_string_equal(a.ctype, "text/plain");
	sim_answer_release(&a);
	sim_world_free(w);
}

static void test_world_keys(void **state)
{
	struct sim_world *w = world(0, NULL, 20);
	struct sim_answer a = { 0 };
	json_t *r, *b, *k;
	long long kid, id;
	char *text;

	r = load("{\"ssh_key\":\"" KEY_A " me@host\"}");
	sim_world_keys_add(w, r, T0, &a);
	b = body(&a, 200);
	k = json_object_get(b, "key");
	kid = (long long)json_integer_value(json_object_get(k, "id"));
	assert_string_equal(json_string_value(json_object_get(k, "public_key")), KEY_A " me@host");
	json_decref(b);
	/* The same key again is the same key. */
	sim_world_keys_add(w, r, T0, &a);
	b = body(&a, 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "key"), "id")), kid);
	json_decref(b);
	json_decref(r);
	r = load("{\"ssh_key\":\"not a key\"}");
	sim_world_keys_add(w, r, T0, &a);
	json_decref(body(&a, 400));
	json_decref(r);
	r = load("{}");
	sim_world_keys_add(w, r, T0, &a);
	b = body(&a, 400);
	assert_string_equal(json_string_value(json_object_get(b, "error")), "no_ssh_key");
	json_decref(b);
	json_decref(r);
	sim_world_keys_list(w, &a);
	b = body(&a, 200);
	assert_int_equal(json_array_size(b), 1);
	assert_true(json_is_null(json_object_get(json_array_get(b, 0), "deleted_at")));
	json_decref(b);

	/* Account keys are copied into new instances; more can be attached. */
	id = create(w, first_offer(w, NULL, T0), "{\"image\":\"x\"}", T0);
	r = load("{\"ssh_key\":\"" KEY_B "\"}");
	sim_world_instance_keys_add(w, id, r, T0, &a);
	json_decref(body(&a, 200));
	json_decref(r);
	sim_world_instance_keys_get(w, id, &a);
	b = body(&a, 200);
	text = strdup(json_string_value(json_object_get(b, "ssh_keys")));
	json_decref(b);
	b = load(text);
	free(text);
	assert_int_equal(json_array_size(b), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(b, 1), "public_key")), KEY_B);
	json_decref(b);
	sim_world_ledger(w, T0, &a);
	b = body(&a, 200);
	assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(b, "instances"), 0), "ssh_keys")), 2);
	json_decref(b);
	sim_world_keys_delete(w, kid, &a);
	json_decref(body(&a, 200));
	sim_world_keys_delete(w, kid, &a);
	json_decref(body(&a, 404));

	/* Credit goes down as instances bill. */
	sim_world_user(w, T0 + 36000, &a);
	b = body(&a, 200);
	assert_true(num(b, "credit") < 25);
	assert_true(num(b, "balance") == num(b, "credit"));
	assert_true(json_is_true(json_object_get(b, "has_billing")));
	json_decref(b);
	sim_world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_ops),
		cmocka_unit_test(test_filter_coercion),
		cmocka_unit_test(test_filter_errors),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_market),
		cmocka_unit_test(test_market_load),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_ssh_key_parse),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_world_search),
		cmocka_unit_test(test_world_lifecycle),
		cmocka_unit_test(test_world_create_errors),
		cmocka_unit_test(test_world_list),
		cmocka_unit_test(test_world_faults),
		cmocka_unit_test(test_world_keys),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
