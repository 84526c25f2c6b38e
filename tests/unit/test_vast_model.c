/* Unit tests for src/vast/model: defensive readers for Vast offers and
 * instances, on the reference samples (vast-api.md sections 3 and 5) and on
 * the quirks the server is known for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "vast/model.h"

/* vast-api.md section 3 sample, verbatim. */
static const char offer_sample[] =
	"{\"id\": 11684738, \"ask_contract_id\": 11684738, \"bundle_id\": 1598539855, \"bundled_results\": null,"
	" \"machine_id\": 22990, \"host_id\": 125418, \"hosting_type\": 0, \"hostname\": null, \"rn\": 1,"
	" \"gpu_name\": \"RTX 4090\", \"num_gpus\": 1, \"gpu_ids\": [82267], \"gpu_ram\": 24564, \"gpu_total_ram\": 24564,"
	" \"gpu_frac\": 0.25, \"gpu_arch\": \"nvidia\", \"gpu_lanes\": 16, \"gpu_mem_bw\": 3108.4, \"gpu_display_active\": false,"
	" \"gpu_max_power\": 450, \"gpu_max_temp\": 83, \"bw_nvlink\": 0.0, \"compute_cap\": 890,"
	" \"cuda_max_good\": 12.2, \"driver_version\": \"535.183.01\", \"driver_vers\": 535183001,"
	" \"total_flops\": 82.968576, \"dlperf\": 106.637, \"dlperf_per_dphtotal\": 432.296, \"flops_per_dphtotal\": 336.346,"
	" \"score\": 190.034,"
	" \"cpu_name\": \"AMD EPYC 7642 48-Core Processor\", \"cpu_arch\": \"amd64\", \"cpu_cores\": 96,"
	" \"cpu_cores_effective\": 24.0, \"cpu_ghz\": 2.3, \"cpu_ram\": 64393, \"has_avx\": 1,"
	" \"disk_space\": 1607.875, \"disk_bw\": 2545.294, \"disk_name\": \"INTEL SSDPE2KX080T8\","
	" \"mobo_name\": \"H12SSL\", \"pci_gen\": 4.0, \"pcie_bw\": 12.3, \"os_version\": \"20.04\","
	" \"inet_up\": 77.7, \"inet_down\": 105.9, \"inet_up_cost\": 0.0, \"inet_down_cost\": 0.0,"
	" \"internet_up_cost_per_tb\": 0.0, \"internet_down_cost_per_tb\": 0.0,"
	" \"direct_port_count\": 249, \"public_ipaddr\": \"8.218.223.191\", \"static_ip\": false,"
	" \"geolocation\": \"Guangxi, CN\", \"geolocode\": 921675020,"
	" \"dph_base\": 0.24666666666666665, \"dph_total\": 0.2466759259259259, \"dph_total_adj\": 0.2466759259259259,"
	" \"discounted_dph_total\": 0.2466759259259259, \"discount_rate\": 0.0, \"discounted_hourly\": 0.0,"
	" \"storage_cost\": 0.0013333333333333335, \"storage_total_cost\": 9.25925925925926e-06,"
	" \"vram_costperhour\": 0.010282798675568581, \"credit_discount_max\": 0.4, \"min_bid\": 0.2,"
	" \"search\":   {\"gpuCostPerHour\": 0.24666666666666665, \"diskHour\": 9.25925925925926e-06, \"totalHour\": 0.2466759259259259, \"discountTotalHour\": 0, \"discountedTotalPerHour\": 0.2466759259259259},"
	" \"instance\": {\"gpuCostPerHour\": 0, \"diskHour\": 9.25925925925926e-06, \"totalHour\": 9.25925925925926e-06, \"discountTotalHour\": 0, \"discountedTotalPerHour\": 9.25925925925926e-06},"
	" \"rentable\": true, \"rented\": false, \"is_bid\": false, \"external\": null,"
	" \"reliability\": 0.9700835, \"reliability2\": 0.9700835, \"reliability_mult\": 0.7710531, \"expected_reliability\": 0.95,"
	" \"verification\": \"verified\", \"vericode\": 1, \"vms_enabled\": false, \"is_vm_deverified\": false,"
	" \"resource_type\": \"gpu\", \"cluster_id\": null,"
	" \"start_date\": 1722348655.847011, \"end_date\": 1735707781.0, \"duration\": 13356528.565657616,"
	" \"time_remaining\": \"\", \"time_remaining_isbid\": \"\","
	" \"avail_vol_ask_id\": null, \"avail_vol_dph\": null, \"avail_vol_size\": null,"
	" \"nw_disk_min_bw\": null, \"nw_disk_max_bw\": null, \"nw_disk_avg_bw\": null,"
	" \"logo\": \"/static/logos/vastai_small2.png\", \"webpage\": null}";

/* vast-api.md section 5 sample, verbatim. */
static const char instance_sample[] =
	"{\"id\": 33402296, \"machine_id\": 22990, \"host_id\": 125418, \"bundle_id\": 1598539855,"
	" \"label\": \"orch-job-42\", \"template_id\": null, \"template_hash_id\": null, \"template_name\": null,"
	" \"actual_status\": \"running\", \"intended_status\": \"running\", \"cur_state\": \"running\", \"next_state\": \"running\","
	" \"status_msg\": \"success, running pytorch/pytorch_2.4.0-cuda12.4-cudnn9-runtime/ssh\","
	" \"image_uuid\": \"pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime\", \"image_args\": [],"
	" \"image_runtype\": \"ssh_direc ssh_proxy\", \"onstart\": \"touch ~/.no_auto_tmux\","
	" \"extra_env\": [[\"RUN_ID\", \"42\"], [\"-p 8000:8000\", \"1\"]],"
	" \"jupyter_token\": \"53fc448d6644aa7535c6fa5498cdbedc782753e88d81b44090e54dcf1332ed30\","
	" \"ssh_host\": \"ssh3.vast.ai\", \"ssh_port\": 12296, \"ssh_idx\": \"3\", \"machine_dir_ssh_port\": 51199,"
	" \"public_ipaddr\": \"139.59.37.138\", \"local_ipaddrs\": \"10.2.202.31 172.17.0.1 \\n\", \"static_ip\": false,"
	" \"ports\": {\"22/tcp\": [{\"HostIp\": \"0.0.0.0\", \"HostPort\": \"30022\"}],"
	"            \"8000/tcp\": [{\"HostIp\": \"0.0.0.0\", \"HostPort\": \"30143\"}]},"
	" \"direct_port_count\": 249, \"direct_port_start\": 30000, \"direct_port_end\": 30248,"
	" \"gpu_name\": \"RTX 4090\", \"num_gpus\": 1, \"gpu_ram\": 24564, \"gpu_totalram\": 24564, \"gpu_frac\": 0.25,"
	" \"gpu_util\": 0.97, \"gpu_temp\": 64.0, \"gpu_arch\": \"nvidia\", \"cuda_max_good\": 12.2, \"driver_version\": \"535.183.01\","
	" \"cpu_name\": \"AMD EPYC 7642 48-Core Processor\", \"cpu_arch\": \"amd64\", \"cpu_cores\": 96, \"cpu_cores_effective\": 24.0,"
	" \"cpu_ram\": 64393, \"cpu_util\": 0.31, \"mem_usage\": 12.4, \"mem_limit\": 64.39, \"vmem_usage\": 0.54,"
	" \"disk_space\": 40.0, \"disk_usage\": 0.22, \"disk_util\": 0.05, \"disk_name\": \"INTEL SSDPE2KX080T8\", \"disk_bw\": 2545.3,"
	" \"inet_up\": 77.7, \"inet_down\": 105.9, \"geolocation\": \"Guangxi, CN\", \"verification\": \"verified\", \"reliability2\": 0.9700835,"
	" \"dph_base\": 0.24666666666666665, \"dph_total\": 0.2467407407, \"storage_cost\": 0.0013333333, \"storage_total_cost\": 7.4e-05,"
	" \"min_bid\": 0.2, \"is_bid\": false, \"credit_balance\": null, \"credit_discount\": null,"
	" \"search\":   {\"gpuCostPerHour\": 0.2466667, \"diskHour\": 7.4e-05, \"totalHour\": 0.2467407, \"discountTotalHour\": 0, \"discountedTotalPerHour\": 0.2467407},"
	" \"instance\": {\"gpuCostPerHour\": 0.2466667, \"diskHour\": 7.4e-05, \"totalHour\": 0.2467407, \"discountTotalHour\": 0, \"discountedTotalPerHour\": 0.2467407},"
	" \"start_date\": 1761008618.225083, \"end_date\": 1774400000.0, \"duration\": 3612.4, \"uptime_mins\": 58.2,"
	" \"time_remaining\": \"\", \"time_remaining_isbid\": \"\", \"volume_info\": []}";

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, 0, &je);

	if (!v)
		fail_msg("bad test JSON (%s): %s", je.text, text);
	return v;
}

static void read_offer(const char *text, struct vast_offer *o)
{
	json_t *v = load(text);
	struct err e;

	err_clear(&e);
	if (vast_offer_read(v, o, &e))
		fail_msg("offer read failed: %s", e.msg);
	json_decref(v);
}

static void read_instance(const char *text, struct vast_instance *in)
{
	json_t *v = load(text);
	struct err e;

	err_clear(&e);
	if (vast_instance_read(v, in, &e))
		fail_msg("instance read failed: %s", e.msg);
	json_decref(v);
}

/* The endpoint of `text` is host:port (direct or not). */
static void expect_endpoint(const char *text, const char *host, int port, bool direct)
{
	struct vast_instance in;
	struct err e;
	char *h = NULL;
	int p = -1;
	bool d = !direct;

	read_instance(text, &in);
	err_clear(&e);
	if (vast_instance_ssh_endpoint(&in, &h, &p, &d, &e))
		fail_msg("%s: no endpoint: %s", text, e.msg);
	assert_non_null(h);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_true(d == direct);
	free(h);
	vast_instance_release(&in);
}

static void test_offer_sample(void **state)
{
	struct vast_offer o;

	read_offer(offer_sample, &o);
	assert_int_equal(o.id, 11684738);
	assert_int_equal(o.machine_id, 22990);
	assert_int_equal(o.host_id, 125418);
	assert_string_equal(o.gpu_name, "RTX 4090");
	assert_int_equal(o.num_gpus, 1);
	assert_float_equal(o.gpu_ram, 24564, 1e-9);
	assert_float_equal(o.gpu_total_ram, 24564, 1e-9);
	assert_float_equal(o.gpu_frac, 0.25, 1e-12);
	assert_float_equal(o.cpu_ram, 64393, 1e-9);
	assert_int_equal(o.cpu_cores, 96);
	assert_float_equal(o.cpu_cores_effective, 24.0, 1e-12);
	assert_float_equal(o.disk_space, 1607.875, 1e-9);
	assert_float_equal(o.disk_bw, 2545.294, 1e-9);
	assert_float_equal(o.dph_total, 0.2466759259259259, 1e-15);
	assert_float_equal(o.dph_base, 0.24666666666666665, 1e-15);
	assert_float_equal(o.storage_cost, 0.0013333333333333335, 1e-15);
	assert_float_equal(o.inet_up_cost, 0.0, 0.0);
	assert_float_equal(o.inet_down_cost, 0.0, 0.0);
	assert_float_equal(o.min_bid, 0.2, 1e-12);
	assert_float_equal(o.inet_down, 105.9, 1e-9);
	assert_float_equal(o.inet_up, 77.7, 1e-9);
	assert_float_equal(o.reliability, 0.9700835, 1e-12);
	assert_float_equal(o.dlperf, 106.637, 1e-9);
	assert_float_equal(o.dlperf_per_dphtotal, 432.296, 1e-9);
	assert_float_equal(o.total_flops, 82.968576, 1e-9);
	assert_float_equal(o.score, 190.034, 1e-9);
	assert_float_equal(o.cuda_max_good, 12.2, 1e-12);
	assert_string_equal(o.driver_version, "535.183.01");
	assert_int_equal(o.compute_cap, 890);
	assert_int_equal(o.direct_port_count, 249);
	assert_int_equal(o.hosting_type, 0);
	assert_float_equal(o.duration, 13356528.565657616, 1e-6);
	/* No "verified" field in the sample: verification says so. */
	assert_true(o.verified);
	assert_string_equal(o.verification, "verified");
	assert_true(o.rentable);
	assert_false(o.rented);
	assert_false(o.static_ip);
	assert_false(o.external);
	assert_string_equal(o.geolocation, "Guangxi, CN");
	assert_string_equal(o.public_ipaddr, "8.218.223.191");
	vast_offer_release(&o);
	assert_null(o.gpu_name);
	assert_int_equal(o.id, 0);
}

static void test_offer_quirks(void **state)
{
	struct vast_offer o;

	/* Numbers as strings, booleans as 0/1 and "true", nulls. */
	read_offer("{\"id\":\"42\",\"machine_id\":\" 7 \",\"num_gpus\":\"2\",\"gpu_ram\":\"24564\","
		   "\"dph_total\":\"0.25\",\"min_bid\":null,\"cuda_max_good\":\"12.4\","
		   "\"compute_cap\":\"860\",\"rentable\":1,\"static_ip\":\"true\",\"verified\":0,"
		   "\"verification\":\"verified\",\"gpu_name\":null,\"driver_version\":550,"
		   "\"reliability\":\"0.99\",\"reliability2\":null,\"inet_up\":\"fast\","
		   "\"geolocation\":{\"x\":1},\"external\":\"false\",\"num_gpus_extra\":[1]}", &o);
	assert_int_equal(o.id, 42);
	assert_int_equal(o.machine_id, 7);
	assert_int_equal(o.num_gpus, 2);
	assert_float_equal(o.gpu_ram, 24564, 1e-9);
	assert_float_equal(o.dph_total, 0.25, 1e-12);
	assert_float_equal(o.min_bid, 0.0, 0.0);
	assert_float_equal(o.cuda_max_good, 12.4, 1e-12);
	assert_int_equal(o.compute_cap, 860);
	assert_true(o.rentable);
	assert_true(o.static_ip);
	/* An explicit "verified" wins over verification. */
	assert_false(o.verified);
	assert_null(o.gpu_name);
	assert_null(o.driver_version);
	assert_float_equal(o.reliability, 0.99, 1e-12);
	assert_float_equal(o.inet_up, 0.0, 0.0);
	assert_null(o.geolocation);
	assert_false(o.external);
	vast_offer_release(&o);

	/* reliability, the field a filter reads, wins over reliability2; a real
	 * id truncates; all else missing. */
	read_offer("{\"id\":9.0,\"reliability\":0.5,\"reliability2\":\"0.8\",\"num_gpus\":-3,"
		   "\"public_ipaddr\":\"  1.2.3.4\\n\",\"verification\":\"unverified\"}", &o);
	assert_int_equal(o.id, 9);
	assert_float_equal(o.reliability, 0.5, 1e-12);
	assert_int_equal(o.num_gpus, 0);
	assert_string_equal(o.public_ipaddr, "1.2.3.4");
	assert_false(o.verified);
	assert_false(o.rentable);
	assert_null(o.gpu_name);
	assert_float_equal(o.dph_total, 0.0, 0.0);
	vast_offer_release(&o);

	/* No reliability: reliability2 stands in. */
	read_offer("{\"id\":10,\"reliability2\":0.7}", &o);
	assert_float_equal(o.reliability, 0.7, 1e-12);
	vast_offer_release(&o);
}

static void test_offer_errors(void **state)
{
	static const char *const bad[] = {
		"{}", "{\"id\":null}", "{\"id\":0}", "{\"id\":-5}", "{\"id\":\"abc\"}",
		"{\"id\":true}", "{\"id\":[1]}", "[1,2]", "{\"id\":1e300}",
	};
	struct vast_offer o;
	struct err e;
	json_t *v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = load(bad[i]);
		err_clear(&e);
		memset(&o, 0x5a, sizeof(o));
		if (vast_offer_read(v, &o, &e) != ERR_FORMAT)
			fail_msg("%s: read did not fail", bad[i]);
		assert_int_equal(e.code, ERR_FORMAT);
		if (!strstr(e.msg, "offer"))
			fail_msg("%s: message '%s' does not name the offer", bad[i], e.msg);
		assert_null(o.gpu_name);
		assert_int_equal(o.id, 0);
		json_decref(v);
	}
	err_clear(&e);
	assert_int_equal(vast_offer_read(NULL, &o, &e), ERR_FORMAT);
}

static void test_offers_list(void **state)
{
	struct vast_offer *v = (void *)1;
	size_t n = 99, len;
	struct err e;
	json_t *a;
	char *text;

	/* The sample, then elements without an id, then a good one. */
	len = strlen(offer_sample) + 200;
	text = malloc(len);
	assert_non_null(text);
	snprintf(text, len, "{\"offers\":[%s,{\"gpu_name\":\"no id\"},7,null,"
		 "{\"id\":5,\"gpu_name\":\"H100 SXM\",\"num_gpus\":\"8\"}]}", offer_sample);
	a = load(text);
	free(text);
	err_clear(&e);
	assert_int_equal(vast_offers_read(a, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 11684738);
	assert_string_equal(v[0].gpu_name, "RTX 4090");
	assert_int_equal(v[1].id, 5);
	assert_string_equal(v[1].gpu_name, "H100 SXM");
	assert_int_equal(v[1].num_gpus, 8);
	vast_offers_free(v, n);
	json_decref(a);

	a = load("{\"offers\":[]}");
	v = (void *)1;
	assert_int_equal(vast_offers_read(a, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	vast_offers_free(v, n);
	json_decref(a);

	a = load("{\"offers\":{\"id\":1}}");
	err_clear(&e);
	assert_int_equal(vast_offers_read(a, &v, &n, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "\"offers\" is not an array"));
	assert_null(v);
	assert_int_equal(n, 0);
	json_decref(a);

	a = load("{\"success\":true}");
	err_clear(&e);
	assert_int_equal(vast_offers_read(a, &v, &n, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "\"offers\" is missing"));
	json_decref(a);

	a = load("[{\"id\":1}]");
	err_clear(&e);
	assert_int_equal(vast_offers_read(a, &v, &n, &e), ERR_FORMAT);
	json_decref(a);
}

/* Read `text` both ways; they must agree offer by offer. Returns the
 * bytes reader's result. */
static int read_both(const char *text, int threads, size_t *n_out, struct err *e)
{
	struct vast_offer *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	int rb = vast_offers_read_bytes(text, strlen(text), threads, &b, &nb, e);

	if (doc && !vast_offers_read(doc, &a, &na, NULL)) {
		if (rb)
			fail_msg("bytes reader refused what jansson reads: %s", e->msg);
		assert_int_equal(na, nb);
		for (size_t i = 0; i < na; i++) {
			assert_int_equal(a[i].id, b[i].id);
			assert_true(!a[i].gpu_name == !b[i].gpu_name);
			if (a[i].gpu_name)
				assert_string_equal(a[i].gpu_name, b[i].gpu_name);
			assert_true(a[i].dph_total == b[i].dph_total);
		}
	}
	vast_offers_free(a, na);
	vast_offers_free(b, nb);
	json_decref(doc);
	*n_out = nb;
	return rb;
}

static void test_offers_bytes(void **state)
{
	struct buf big = BUF_INIT;
	size_t n = 0;
	struct err e;

	/* Many offers, several threads, in order. */
	buf_puts(&big, "{\"success\": true, \"offers\" : [");
	for (int i = 0; i < 5000; i++)
		buf_printf(&big, "%s%s", i ? "," : "", offer_sample);
	buf_puts(&big, "], \"tail\": {\"x\": [1, \"]}\"]}}");
	err_clear(&e);
	assert_int_equal(read_both(big.data, 4, &n, &e), 0);
	assert_int_equal(n, 5000);
	buf_release(&big);

	/* Skipped elements, escaped keys, other members before and after. */
	assert_int_equal(read_both("{\"a\":\"{[\\\"\",\"off\\u0065rs\":[{\"id\":1},{\"gpu_name\":"
				   "\"no id\"},null,{\"id\":\"7\",\"dph_total\":\"0.5\"}],\"b\":null}",
				   1, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(read_both("{\"offers\":[]}", 0, &n, &e), 0);
	assert_int_equal(n, 0);

	/* Broken or cut-short answers are errors that say so. */
	static const char *const bad[] = {
		"", "[]", "{", "{\"offers\":[", "{\"offers\":[{\"id\":1}", "{\"offers\":[{\"id\":1}]",
		"{\"offers\":[{\"id\":1}]} x", "{\"offers\":[{\"id\":1,}]}",
		"{\"offers\":[{\"id\":1}{\"id\":2}]}", "{\"offers\":{\"id\":1}}",
		"{\"success\":true}", "{\"offers\":[],\"offers\":[]}",
		"{\"offers\":[{\"id\":1,\"id\":2}]}", "{\"offers\":[\"open]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vast_offer *v = (void *)1;

		err_clear(&e);
		if (vast_offers_read_bytes(bad[i], strlen(bad[i]), 2, &v, &n, &e) != ERR_FORMAT)
			fail_msg("accepted: %s", bad[i]);
		assert_null(v);
		assert_int_equal(n, 0);
		assert_non_null(strstr(e.msg, "offers"));
	}
}

static void test_instance_sample(void **state)
{
	struct vast_instance in;

	read_instance(instance_sample, &in);
	assert_int_equal(in.id, 33402296);
	assert_int_equal(in.machine_id, 22990);
	assert_int_equal(in.host_id, 125418);
	assert_string_equal(in.label, "orch-job-42");
	assert_string_equal(in.actual_status, "running");
	assert_string_equal(in.intended_status, "running");
	assert_string_equal(in.cur_state, "running");
	assert_string_equal(in.next_state, "running");
	assert_string_equal(in.status_msg,
			    "success, running pytorch/pytorch_2.4.0-cuda12.4-cudnn9-runtime/ssh");
	assert_string_equal(in.image_runtype, "ssh_direc ssh_proxy");
	assert_string_equal(in.gpu_name, "RTX 4090");
	assert_int_equal(in.num_gpus, 1);
	assert_string_equal(in.public_ipaddr, "139.59.37.138");
	assert_string_equal(in.ssh_host, "ssh3.vast.ai");
	assert_int_equal(in.ssh_port, 12296);
	assert_int_equal(in.ssh_direct_port, 30022);
	assert_int_equal(in.direct_port_count, 249);
	assert_int_equal(in.direct_port_start, 30000);
	assert_int_equal(in.direct_port_end, 30248);
	assert_float_equal(in.dph_total, 0.2467407407, 1e-12);
	assert_float_equal(in.min_bid, 0.2, 1e-12);
	assert_false(in.is_bid);
	assert_float_equal(in.start_date, 1761008618.225083, 1e-6);
	assert_float_equal(in.end_date, 1774400000.0, 1e-6);
	assert_float_equal(in.duration, 3612.4, 1e-9);
	vast_instance_release(&in);
	assert_null(in.label);

	expect_endpoint(instance_sample, "139.59.37.138", 30022, true);
}

static void test_instance_boot(void **state)
{
	struct vast_instance in;

	/* Just created: actual_status null, no ports, no ssh yet. */
	read_instance("{\"id\":33402296,\"actual_status\":null,\"intended_status\":\"running\","
		      "\"cur_state\":\"running\",\"ports\":null,\"ssh_host\":null,\"ssh_port\":null,"
		      "\"public_ipaddr\":\"  \",\"label\":null}", &in);
	assert_null(in.actual_status);
	assert_string_equal(in.intended_status, "running");
	assert_null(in.public_ipaddr);
	assert_null(in.ssh_host);
	assert_int_equal(in.ssh_port, 0);
	assert_int_equal(in.ssh_direct_port, 0);
	assert_null(in.label);
	vast_instance_release(&in);

	/* Numeric strings and out-of-range ports. */
	read_instance("{\"id\":\"33402296\",\"ssh_port\":\"12296\",\"direct_port_start\":\"30000\","
		      "\"direct_port_end\":70000,\"dph_total\":\"0.5\",\"is_bid\":1,"
		      "\"ports\":{\"22/tcp\":[{\"HostPort\":\"99999\"}]}}", &in);
	assert_int_equal(in.id, 33402296);
	assert_int_equal(in.ssh_port, 12296);
	assert_int_equal(in.direct_port_start, 30000);
	assert_int_equal(in.direct_port_end, 0);
	assert_float_equal(in.dph_total, 0.5, 1e-12);
	assert_true(in.is_bid);
	assert_int_equal(in.ssh_direct_port, 0);
	vast_instance_release(&in);
}

static void test_instance_endpoint(void **state)
{
	struct vast_instance in;
	struct err e;
	char *h = (char *)"x";
	int p = -1;
	bool d = true;

	/* Whitespace around public_ipaddr; HostPort as a string. */
	expect_endpoint("{\"id\":1,\"public_ipaddr\":\" 139.59.37.138\\n\",\"ssh_host\":\"ssh3.vast.ai\","
			"\"ssh_port\":12296,\"ports\":{\"22/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"30022\"}]}}",
			"139.59.37.138", 30022, true);
	/* HostPort as a number (the OpenAPI schema's shape). */
	expect_endpoint("{\"id\":1,\"public_ipaddr\":\"139.59.37.138\",\"ssh_host\":\"ssh3.vast.ai\","
			"\"ssh_port\":12296,\"ports\":{\"22/tcp\":[{\"HostPort\":30022}]}}",
			"139.59.37.138", 30022, true);
	/* No ports yet: the proxy. */
	expect_endpoint("{\"id\":1,\"public_ipaddr\":\"139.59.37.138\",\"ssh_host\":\"ssh3.vast.ai\","
			"\"ssh_port\":\"12296\"}", "ssh3.vast.ai", 12296, false);
	/* Ports without 22/tcp (dstack's args mode), or an empty list: the proxy. */
	expect_endpoint("{\"id\":1,\"public_ipaddr\":\"139.59.37.138\",\"ssh_host\":\"ssh3.vast.ai\","
			"\"ssh_port\":12296,\"ports\":{\"10022/tcp\":[{\"HostPort\":\"30001\"}],\"22/tcp\":[]}}",
			"ssh3.vast.ai", 12296, false);
	/* A port mapping but no public address: the proxy. */
	expect_endpoint("{\"id\":1,\"public_ipaddr\":null,\"ssh_host\":\"ssh3.vast.ai\","
			"\"ssh_port\":12296,\"ports\":{\"22/tcp\":[{\"HostPort\":\"30022\"}]}}",
			"ssh3.vast.ai", 12296, false);
	/* Jupyter images: the CLI adds one to the proxy port. */
	expect_endpoint("{\"id\":1,\"ssh_host\":\"ssh3.vast.ai\",\"ssh_port\":12296,"
			"\"image_runtype\":\"jupyter_proxy ssh_proxy\"}", "ssh3.vast.ai", 12297, false);

	/* Neither. */
	read_instance("{\"id\":77,\"ssh_host\":\"ssh3.vast.ai\",\"public_ipaddr\":\"1.2.3.4\","
		      "\"ports\":{\"22/tcp\":[{\"HostPort\":\"\"}]}}", &in);
	err_clear(&e);
	assert_int_equal(vast_instance_ssh_endpoint(&in, &h, &p, &d, &e), ERR_NOTFOUND);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "no SSH endpoint yet"));
	assert_non_null(strstr(e.msg, "77"));
	assert_null(h);
	assert_int_equal(p, 0);
	assert_false(d);
	vast_instance_release(&in);
}

static void test_instance_answer(void **state)
{
	struct vast_instance in;
	struct err e;
	json_t *a;

	a = load("{\"instances\":{\"id\":5,\"actual_status\":\"loading\"}}");
	err_clear(&e);
	assert_int_equal(vast_instance_read_answer(a, &in, &e), 0);
	assert_int_equal(in.id, 5);
	assert_string_equal(in.actual_status, "loading");
	vast_instance_release(&in);
	json_decref(a);

	a = load("{\"instances\":null}");
	err_clear(&e);
	assert_int_equal(vast_instance_read_answer(a, &in, &e), ERR_NOTFOUND);
	json_decref(a);

	a = load("{\"instances\":[{\"id\":5}]}");
	err_clear(&e);
	assert_int_equal(vast_instance_read_answer(a, &in, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "instance"));
	json_decref(a);

	a = load("{\"instances\":{\"label\":\"x\"}}");
	err_clear(&e);
	assert_int_equal(vast_instance_read_answer(a, &in, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "\"id\""));
	assert_null(in.label);
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offer_sample),
		cmocka_unit_test(test_offer_quirks),
		cmocka_unit_test(test_offer_errors),
		cmocka_unit_test(test_offers_list),
		cmocka_unit_test(test_offers_bytes),
		cmocka_unit_test(test_instance_sample),
		cmocka_unit_test(test_instance_boot),
		cmocka_unit_test(test_instance_endpoint),
		cmocka_unit_test(test_instance_answer),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
