/* Unit tests for src/vast/rank: the GPU speed table, the whole-job cost
 * estimate and the order it gives, and the search filters a job adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/str.h"
#include "vast/model.h"
#include "vast/query.h"
#include "vast/rank.h"
#include "testutil.h"

#define GB 1000000000ULL

/* A plausible single-GPU offer; tests change what they study. */
static struct vast_offer mk(long long id, const char *gpu, double ram_mb, double dph)
{
	struct vast_offer o;

	memset(&o, 0, sizeof(o));
	o.id = id;
	o.machine_id = id * 10;
	o.gpu_name = (char *)gpu;
	o.num_gpus = 1;
	o.gpu_ram = ram_mb;
	o.dph_total = dph;
	o.inet_down = 1000;
	o.inet_up = 1000;
	o.reliability = 0.99;
	o.cuda_max_good = 12.4;
	o.driver_version = (char *)"550.54.14";
	o.compute_cap = 890;
	o.disk_space = 500;
	return o;
}

/* The reference FLUX job. */
static struct vast_workload flux_job(void)
{
	struct vast_workload j;

	memset(&j, 0, sizeof(j));
	j.recipe = "flux-dev-lora";
	j.vram_gb = 24;
	j.steps = 2000;
	j.upload_bytes = 200ULL * 1000 * 1000;
	j.model_bytes = 34 * GB;
	return j;
}

static void rank_ok(const struct vast_offer *o, size_t n, const struct vast_workload *j,
		    struct vast_estimate **est, size_t *m)
{
	struct err e;

	err_clear(&e);
	if (vast_rank(o, n, j, est, m, &e))
		fail_msg("vast_rank: %s", e.msg);
}

static double table_s(const char *gpu)
{
	const char *src = NULL;
	double s = vast_gpu_seconds_per_step(gpu, 0, &src);

	if (strcmp(src, "table"))
		fail_msg("%s is not in the speed table (%s)", gpu, src);
	return s;
}

/* ---- the speed table ---- */

static void test_table_builtin(void **state)
{
	static const char *const need[] = {
		"H200", "H100 SXM", "H100 NVL", "H100 PCIE", "A100 SXM4", "A100 PCIE", "L40S",
		"L40", "RTX 6000Ada", "RTX A6000", "A40", "RTX 5090", "RTX 4090", "RTX 3090",
		"RTX 3090 Ti", "RTX A5000", "RTX 4080", "Tesla V100",
	};
	const struct vast_gpu_table *t = vast_gpu_table_builtin();
	const char *src, *note;

	(void)state;
	assert_non_null(t);
	assert_true(vast_gpu_table_rows(t) >= 18);
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		double s = vast_gpu_table_lookup(t, need[i], 0, 0, &src, &note);

		if (strcmp(src, "table"))
			fail_msg("%s missing from gpu_speed.tsv", need[i]);
		assert_true(s > 0.1 && s < 30);
		assert_non_null(note);
		assert_true(strlen(note) > 10); /* every row says where it comes from */
	}
	/* the anchors keep their order */
	assert_true(table_s("H200") < table_s("H100 SXM"));
	assert_true(table_s("H100 SXM") < table_s("A100 SXM4"));
	assert_true(table_s("A100 SXM4") < table_s("RTX 4090"));
	assert_true(table_s("RTX 4090") < table_s("RTX 3090"));
	assert_true(table_s("RTX 3090 Ti") < table_s("RTX 3090"));
	assert_true(table_s("RTX 3090") < table_s("RTX A5000"));
	/* the same table through the one-call form */
	assert_true(vast_gpu_seconds_per_step("RTX 4090", 0, NULL) ==
		    vast_gpu_table_lookup(t, "RTX 4090", 0, 0, NULL, NULL));
}

static void test_table_names(void **state)
{
	const char *src;
	double s4090 = table_s("RTX 4090");

	(void)state;
	assert_true(vast_gpu_seconds_per_step("rtx_4090", 0, &src) == s4090);
	assert_string_equal(src, "table");
	assert_true(vast_gpu_seconds_per_step("  RTX-4090 ", 0, &src) == s4090);
	assert_true(vast_gpu_seconds_per_step("RTX4090", 0, &src) == s4090);
	assert_true(vast_gpu_seconds_per_step("Rtx 6000 ADA", 0, &src) == table_s("RTX 6000Ada"));
	assert_true(table_s("RTX 3090 Ti") != table_s("RTX 3090"));
	/* no prefix matches: "RTX 409" is not a 4090 */
	vast_gpu_seconds_per_step("RTX 409", 0, &src);
	assert_string_equal(src, "default");
	vast_gpu_seconds_per_step(NULL, 0, &src);
	assert_string_equal(src, "default");
	vast_gpu_seconds_per_step("", 0, &src);
	assert_string_equal(src, "default");
	/* variants of one name by memory */
	assert_true(vast_gpu_seconds_per_step_ram("A100 SXM4", 40960, 0, &src) >
		    vast_gpu_seconds_per_step_ram("A100 SXM4", 81920, 0, &src));
	assert_true(vast_gpu_seconds_per_step_ram("A100 SXM4", 81920, 0, &src) == table_s("A100 SXM4"));
}

static void test_table_dlperf(void **state)
{
	const char *src;
	double s4090 = table_s("RTX 4090"), a, b;

	(void)state;
	/* the 4090 row is the reference: an unknown card with the sample
	 * 4090's dlperf gets the 4090's time plus the 15 % margin */
	a = vast_gpu_seconds_per_step("Imaginary GPU", 106.6, &src);
	assert_string_equal(src, "dlperf-scaled");
	assert_true(fabs(a - s4090 * 1.15) < 1e-9);
	/* seconds ~ 1 / dlperf */
	b = vast_gpu_seconds_per_step("Imaginary GPU", 106.6 * 1.5, &src);
	assert_true(fabs(a / b - 1.5) < 1e-9);
	/* no dlperf: the conservative default, slower than any 24 GB anchor */
	a = vast_gpu_seconds_per_step("Imaginary GPU", 0, &src);
	assert_string_equal(src, "default");
	assert_true(a >= table_s("RTX 3090"));
	/* a bogus dlperf never beats the fastest listed GPU */
	a = vast_gpu_seconds_per_step("Imaginary GPU", 1e12, &src);
	assert_true(a >= table_s("H200"));
	a = vast_gpu_seconds_per_step("Imaginary GPU", NAN, &src);
	assert_string_equal(src, "default");
}

static void expect_table_error(const char *text, const char *why)
{
	struct vast_gpu_table *t = (struct vast_gpu_table *)1;
	struct err e;

	err_clear(&e);
	assert_int_equal(vast_gpu_table_parse(text, strlen(text), &t, &e), ERR_FORMAT);
	assert_null(t);
	if (!strstr(e.msg, why))
		fail_msg("'%s' gave '%s', want '%s'", text, e.msg, why);
}

static void test_table_parse(void **state)
{
	static const char good[] =
		"# comment\r\n"
		"\r\n"
		"Fast One\t80\t0.5\t200\tmeasured\r\n"
		"Slow One\t0\t4\t-\tguess\twith a tab\n"
		"*\t0\t6\t-\tdefault";
	struct vast_gpu_table *t = NULL;
	const char *src, *note;
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(vast_gpu_table_parse(good, strlen(good), &t, &e), 0);
	assert_int_equal(vast_gpu_table_rows(t), 2);
	assert_true(vast_gpu_table_lookup(t, "fast one", 0, 0, &src, &note) == 0.5);
	assert_string_equal(note, "measured");
	assert_true(vast_gpu_table_lookup(t, "slow one", 0, 0, &src, &note) == 4);
	assert_string_equal(note, "guess\twith a tab");
	assert_true(vast_gpu_table_lookup(t, "other", 0, 0, &src, &note) == 6);
	assert_string_equal(src, "default");
	assert_string_equal(note, "default");
	/* k = 0.5 x 200: dlperf 50 is four times slower, plus the margin */
	assert_true(fabs(vast_gpu_table_lookup(t, "other", 0, 50, &src, &note) - 2 * 1.15) < 1e-9);
	vast_gpu_table_free(t);

	/* no '*' row: the slowest row is the default; an empty table works */
	err_clear(&e);
	assert_int_equal(vast_gpu_table_parse("A\t0\t3\t-\tx\n", strlen("A\t0\t3\t-\tx\n"), &t, &e), 0);
	assert_true(vast_gpu_table_lookup(t, "B", 0, 0, &src, NULL) == 3);
	vast_gpu_table_free(t);
	assert_int_equal(vast_gpu_table_parse("", 0, &t, &e), 0);
	assert_int_equal(vast_gpu_table_rows(t), 0);
	assert_true(vast_gpu_table_lookup(t, "B", 0, 1000, &src, NULL) > 0);
	vast_gpu_table_free(t);

	expect_table_error("A\t0\t3\t-\n", "line 1: want 5 fields");
	expect_table_error("# x\nA\t0\tfast\t-\tx\n", "line 2: s_per_step");
	expect_table_error("A\t0\t0\t-\tx\n", "s_per_step");
	expect_table_error("A\t0\t-1\t-\tx\n", "s_per_step");
	expect_table_error("A\t0\tnan\t-\tx\n", "s_per_step");
	expect_table_error("A\tbig\t1\t-\tx\n", "vram_gb");
	expect_table_error("A\t0\t1\tlots\tx\n", "dlperf");
	expect_table_error("A\t0\t1\t-\t \n", "needs a basis");
	expect_table_error(" \t0\t1\t-\tx\n", "bad GPU name");
	expect_table_error("A\t0\t1\t-\tx\na\t0\t2\t-\ty\n", "listed twice");
	expect_table_error("*\t0\t1\t-\tx\n*\t0\t2\t-\ty\n", "second '*'");
	{
		static const char nul[] = "A\t0\t1\t-\tx\0y\n";

		err_clear(&e);
		assert_int_equal(vast_gpu_table_parse(nul, sizeof(nul) - 1, &t, &e), ERR_FORMAT);
		assert_non_null(strstr(e.msg, "NUL"));
	}
	{
		char *big = malloc(5000);

		memset(big, 'x', 4999);
		big[4999] = '\0';
		expect_table_error(big, "longer than");
		free(big);
	}
}

/* ---- the estimate ---- */

/* Every term by hand, for one offer: the documented formula. */
static void test_estimate_formula(void **state)
{
	struct vast_offer o = mk(7, "RTX 4090", 24564, 0.40);
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;
	double s = table_s("RTX 4090"), hours, p, lost, extra;

	(void)state;
	o.inet_down = 800;
	o.inet_up = 400;
	o.reliability = 0.98;
	o.inet_down_cost = 0.01;
	o.inet_up_cost = 0.02;
	j.upload_bytes = 100ULL * 1000 * 1000;
	j.checkpoint_steps = 250;
	rank_ok(&o, 1, &j, &est, &m);
	assert_int_equal(m, 1);
	assert_int_equal(est[0].offer, 0);
	assert_string_equal(est[0].speed_source, "table");
	assert_true(est[0].s_per_step == s);
	assert_true(fabs(est[0].model_s - 340.0) < 1e-9);            /* 34 GB at 800 Mb/s */
	assert_true(fabs(est[0].boot_s - (300 + 340 + 300)) < 1e-9);  /* start + model + load */
	assert_true(fabs(est[0].upload_s - 1.0) < 1e-9);             /* 100 MB at 800 Mb/s */
	assert_true(fabs(est[0].train_s - 2000 * s) < 1e-9);
	assert_true(fabs(est[0].download_s - 8.0) < 1e-9);           /* 400 MB at 400 Mb/s */
	hours = (940 + 1 + 2000 * s + 8) / 3600;
	assert_true(fabs(est[0].hours - hours) < 1e-12);
	assert_true(fabs(est[0].run_usd - 0.40 * hours) < 1e-12);
	/* 34.1 GB in at $0.01/GB, 0.4 GB out at $0.02/GB */
	assert_true(fabs(est[0].transfer_usd - (0.01 * 34.1 + 0.02 * 0.4)) < 1e-9);
	p = 1 - pow(0.98, 1 + hours / 24);
	assert_true(fabs(est[0].p_fail - p) < 1e-12);
	lost = 250 * s / 2;
	extra = 600 + 940 + 1 + 4.0 /* resume files back at 800 Mb/s */ + lost;
	assert_true(fabs(est[0].fail_extra_usd - (0.40 * extra / 3600 + 0.01 * 34.1)) < 1e-9);
	assert_true(fabs(est[0].penalty_usd - p / (1 - p) * est[0].fail_extra_usd) < 1e-12);
	assert_true(fabs(est[0].total_usd - (est[0].run_usd + est[0].transfer_usd +
					     est[0].penalty_usd)) < 1e-12);
	free(est);
}

static size_t index_of(const struct vast_estimate *est, size_t m, size_t offer)
{
	for (size_t i = 0; i < m; i++)
		if (est[i].offer == offer)
			return i;
	fail_msg("offer %zu was dropped", offer);
	return 0;
}

/* H100 against 3090 on a long run, priced from the table's own speed ratio
 * so that the expected winner follows from the model, not from luck. */
static void h100_vs_3090(double price_ratio_of_speed_ratio, size_t want_first)
{
	double s_h = table_s("H100 SXM"), s_3 = table_s("RTX 3090");
	double speed = s_3 / s_h, p3 = 0.25, ph = price_ratio_of_speed_ratio * speed * p3;
	struct vast_offer o[2] = { mk(1, "H100 SXM", 81559, ph), mk(2, "RTX 3090", 24576, p3) };
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;

	j.steps = 10000;
	j.checkpoint_steps = 250;
	rank_ok(o, 2, &j, &est, &m);
	assert_int_equal(m, 2);
	if (est[0].offer != want_first)
		fail_msg("H100 $%.3f/h (%.2f s/step) vs 3090 $%.3f/h (%.2f s/step): "
			 "want offer %zu first, got totals $%.3f (offer %zu) and $%.3f",
			 ph, s_h, p3, s_3, want_first, est[0].total_usd, est[0].offer,
			 est[1].total_usd);
	free(est);
}

static void test_rank_faster_dearer_gpu_wins(void **state)
{
	(void)state;
	/* the table must say the H100 is much faster, or this test is moot */
	assert_true(table_s("RTX 3090") / table_s("H100 SXM") > 3);
	/* H100 per hour costs 0.7x the speed ratio (about 3.3x the 3090's
	 * price): it finishes so much sooner that the whole job is cheaper */
	h100_vs_3090(0.7, 0);
	/* at 1.4x the speed ratio the cheap-per-hour 3090 wins */
	h100_vs_3090(1.4, 1);
}

/* The brief's numbers: H100 $2.50/h vs 3090 $0.25/h is a 10x price gap.
 * The table has the H100 about 4.75x faster, so the 3090 must win; at
 * $0.80/h (3.2x) the H100 must. If the table changes so that these flip,
 * this test says so. */
static void test_rank_fixed_prices(void **state)
{
	struct vast_offer o[2] = { mk(1, "H100 SXM", 81559, 2.50), mk(2, "RTX 3090", 24576, 0.25) };
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;

	(void)state;
	j.steps = 4000;
	rank_ok(o, 2, &j, &est, &m);
	assert_int_equal(est[0].offer, 1);
	/* per step the 3090 costs 0.25 x 3.80 vs 2.50 x 0.80 */
	assert_true(est[0].train_s > 4 * est[1].train_s);
	free(est);
	o[0].dph_total = 0.80;
	rank_ok(o, 2, &j, &est, &m);
	assert_int_equal(est[0].offer, 0);
	assert_true(o[est[0].offer].dph_total > o[est[1].offer].dph_total); /* not by $/h */
	free(est);
}

static void test_rank_slow_network(void **state)
{
	struct vast_offer o[2] = { mk(1, "RTX 4090", 24564, 0.40), mk(2, "RTX 4090", 24564, 0.40) };
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0, fast, slow;

	(void)state;
	j.upload_bytes = 2 * GB;
	o[0].inet_down = 50;
	o[1].inet_down = 1000;
	rank_ok(o, 2, &j, &est, &m);
	fast = index_of(est, m, 1);
	slow = index_of(est, m, 0);
	assert_true(fabs(est[slow].upload_s - 320.0) < 1e-9); /* 2 GB at 50 Mb/s */
	assert_true(fabs(est[fast].upload_s - 16.0) < 1e-9);
	assert_true(est[slow].model_s > est[fast].model_s);
	assert_true(est[slow].total_usd > est[fast].total_usd);
	assert_int_equal(est[0].offer, 1);
	free(est);

	/* a bogus 0 reads as the 10 Mb/s floor: slow, not free or infinite */
	o[0].inet_down = 0;
	o[0].inet_up = -5;
	rank_ok(o, 2, &j, &est, &m);
	slow = index_of(est, m, 0);
	assert_true(est[slow].inet_down_mbps == 10);
	assert_true(est[slow].inet_up_mbps == 10);
	assert_true(fabs(est[slow].upload_s - 1600.0) < 1e-9);
	assert_true(isfinite(est[slow].total_usd));
	assert_int_equal(est[1].offer, 0);
	free(est);

	/* absurd figures are capped */
	o[0].inet_down = 1e9;
	rank_ok(o, 2, &j, &est, &m);
	assert_true(est[index_of(est, m, 0)].inet_down_mbps == 10000);
	free(est);
}

static void test_rank_reliability(void **state)
{
	struct vast_offer o[3] = { mk(1, "RTX 4090", 24564, 0.40), mk(2, "RTX 4090", 24564, 0.40),
				   mk(3, "RTX 4090", 24564, 0.40) };
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0, lo, hi, none;

	(void)state;
	o[0].reliability = 0.90;
	o[1].reliability = 0.995;
	o[2].reliability = 0; /* not reported */
	rank_ok(o, 3, &j, &est, &m);
	lo = index_of(est, m, 0);
	hi = index_of(est, m, 1);
	none = index_of(est, m, 2);
	assert_true(est[lo].p_fail > est[hi].p_fail);
	assert_true(est[lo].penalty_usd > est[hi].penalty_usd);
	assert_true(est[lo].run_usd == est[hi].run_usd);
	assert_int_equal(est[0].offer, 1);
	assert_true(est[none].reliability == 0.90); /* read as 0.90 */
	/* longer jobs are riskier on the same host */
	{
		double p_short = est[hi].p_fail;

		free(est);
		j.steps = 20000;
		rank_ok(o, 3, &j, &est, &m);
		assert_true(est[index_of(est, m, 1)].p_fail > p_short);
	}
	/* checkpoints make a failure cheaper */
	{
		double without = est[index_of(est, m, 1)].fail_extra_usd;

		free(est);
		j.checkpoint_steps = 250;
		rank_ok(o, 3, &j, &est, &m);
		assert_true(est[index_of(est, m, 1)].fail_extra_usd < without);
	}
	free(est);
}

static void test_rank_unknown_gpu(void **state)
{
	struct vast_offer o[5] = {
		mk(1, "RTX 4090", 24564, 0.40), mk(2, "RTX 4090", 24564, 0.40),
		mk(3, "RTX 3090", 24576, 0.20), mk(4, "Mystery X", 32000, 0.30),
		mk(5, "Mystery Y", 32000, 0.30),
	};
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0, x, y;
	double k;

	(void)state;
	/* known GPUs whose dlperf agree on k = s x dlperf = 200 */
	o[0].dlperf = 200 / table_s("RTX 4090");
	o[1].dlperf = 200 / table_s("RTX 4090");
	o[2].dlperf = 200 / table_s("RTX 3090");
	o[3].dlperf = 100;    /* 2 s, plus the margin */
	o[4].dlperf = 0;      /* not scalable */
	rank_ok(o, 5, &j, &est, &m);
	assert_int_equal(m, 5);
	x = index_of(est, m, 3);
	y = index_of(est, m, 4);
	assert_string_equal(est[x].speed_source, "dlperf-scaled");
	assert_non_null(strstr(est[x].speed_note, "in this search"));
	assert_true(fabs(est[x].s_per_step - 2.0 * 1.15) < 1e-9);
	assert_string_equal(est[y].speed_source, "default");
	free(est);

	/* dlperf is per offer: an 8-GPU offer's is split per GPU */
	o[3].num_gpus = 8;
	o[3].dlperf = 800;
	rank_ok(o, 5, &j, &est, &m);
	assert_true(fabs(est[index_of(est, m, 3)].s_per_step - 2.0 * 1.15) < 1e-9);
	free(est);

	/* too few known GPUs with dlperf: the table's reference rows */
	o[0].dlperf = o[1].dlperf = o[2].dlperf = 0;
	rank_ok(o, 5, &j, &est, &m);
	x = index_of(est, m, 3);
	assert_non_null(strstr(est[x].speed_note, "reference rows"));
	k = table_s("RTX 4090") * 106.6;
	assert_true(fabs(est[x].s_per_step - k / 100 * 1.15) < 1e-9);
	free(est);
}

static void test_rank_drops(void **state)
{
	static const long long excluded[] = { 999 };
	struct vast_offer o[10];
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;

	(void)state;
	for (int i = 0; i < 10; i++)
		o[i] = mk(i + 1, "RTX 4090", 24564, 0.40);
	o[0].gpu_ram = 16376;                 /* RTX 4080-sized */
	o[0].gpu_name = (char *)"RTX 4080";
	o[1].cuda_max_good = 11.8;
	o[2].driver_version = (char *)"525.60.13";
	o[3].compute_cap = 750;
	o[4].disk_space = 40;
	o[5].machine_id = 999;
	o[6].dph_total = 0;
	o[7].gpu_ram = 0;                      /* VRAM not reported */
	o[8].driver_version = (char *)"garbage"; /* unknown: kept */
	o[8].cuda_max_good = 0;                /* unknown: kept */
	j.cuda_min = 12.1;
	j.driver_min = "535.86.05";
	j.compute_cap_min = 800;
	j.disk_gb = 80;
	j.exclude_machines = excluded;
	j.n_exclude = 1;
	rank_ok(o, 10, &j, &est, &m);
	assert_int_equal(m, 2);
	assert_true((est[0].offer == 8 && est[1].offer == 9) ||
		    (est[0].offer == 9 && est[1].offer == 8));
	free(est);

	/* all dropped: NULL and 0 */
	rank_ok(o, 1, &j, &est, &m);
	assert_null(est);
	assert_int_equal(m, 0);
	/* nothing to rank */
	rank_ok(NULL, 0, &j, &est, &m);
	assert_null(est);
	assert_int_equal(m, 0);
}

static void test_rank_ties(void **state)
{
	struct vast_offer o[5] = {
		mk(50, "RTX 4090", 24564, 0.40), mk(30, "RTX 4090", 24564, 0.40),
		mk(40, "RTX 4090", 24564, 0.40), mk(30, "RTX 4090", 24564, 0.40),
		mk(10, "RTX 4090", 24564, 0.40),
	};
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;

	(void)state;
	rank_ok(o, 5, &j, &est, &m);
	assert_int_equal(m, 5);
	/* equal totals: lower id first; the same id twice keeps input order */
	assert_int_equal(est[0].offer, 4);
	assert_int_equal(est[1].offer, 1);
	assert_int_equal(est[2].offer, 3);
	assert_int_equal(est[3].offer, 2);
	assert_int_equal(est[4].offer, 0);
	free(est);

	/* totals within a hundredth of a cent: the more reliable host first,
	 * even with the higher id */
	{
		struct vast_offer p[2] = { mk(1, "RTX 4090", 24564, 0.001),
					   mk(2, "RTX 4090", 24564, 0.001) };

		p[0].reliability = 0.99999;
		p[1].reliability = 1.0;
		rank_ok(p, 2, &j, &est, &m);
		assert_true(fabs(est[0].total_usd - est[1].total_usd) < 1e-4);
		assert_int_equal(est[0].offer, 1);
		free(est);
	}
}

static void test_rank_multi_gpu_and_factor(void **state)
{
	struct vast_offer o[2] = { mk(1, "RTX 4090", 24564, 0.80), mk(2, "RTX 4090", 24564, 0.40) };
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;
	double t1;

	(void)state;
	o[0].num_gpus = 2; /* twice the price, no faster */
	rank_ok(o, 2, &j, &est, &m);
	assert_true(est[0].s_per_step == est[1].s_per_step);
	assert_int_equal(est[0].offer, 1);
	t1 = est[0].train_s;
	free(est);

	j.speed_factor = 2.0;
	rank_ok(o, 2, &j, &est, &m);
	assert_true(fabs(est[0].train_s - 2 * t1) < 1e-9);
	assert_true(fabs(est[0].s_per_step - 2 * table_s("RTX 4090")) < 1e-12);
	free(est);
}

static void test_rank_bad_job(void **state)
{
	struct vast_offer o = mk(1, "RTX 4090", 24564, 0.40);
	struct vast_workload j = flux_job();
	struct vast_estimate *est = (struct vast_estimate *)1;
	size_t m = 9;
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(vast_rank(&o, 1, NULL, &est, &m, &e), ERR_USAGE);
	assert_null(est);
	assert_int_equal(m, 0);
	j.vram_gb = -1;
	assert_int_equal(vast_rank(&o, 1, &j, &est, &m, &e), ERR_USAGE);
	j = flux_job();
	j.driver_min = "five-three-five";
	assert_int_equal(vast_rank(&o, 1, &j, &est, &m, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "five-three-five"));
	j = flux_job();
	j.reliability_min = 1.5;
	assert_int_equal(vast_rank(&o, 1, &j, &est, &m, &e), ERR_USAGE);
	j = flux_job();
	j.n_exclude = 2;
	assert_int_equal(vast_rank(&o, 1, &j, &est, &m, &e), ERR_USAGE);
	j = flux_job();
	assert_int_equal(vast_rank(NULL, 3, &j, &est, &m, &e), ERR_USAGE);
}

/* The reference sample offer, read through the model readers. */
static void test_rank_from_json(void **state)
{
	static const char answer[] =
		"{\"offers\":[{\"id\":11684738,\"machine_id\":22990,\"gpu_name\":\"RTX 4090\","
		"\"num_gpus\":1,\"gpu_ram\":24564,\"dph_total\":0.2466759259259259,"
		"\"inet_up\":77.7,\"inet_down\":105.9,\"reliability2\":0.9700835,"
		"\"dlperf\":106.637,\"cuda_max_good\":12.2,\"driver_version\":\"535.183.01\","
		"\"compute_cap\":890,\"disk_space\":1607.875},"
		"{\"id\":2,\"gpu_name\":\"RTX 3060\",\"gpu_ram\":12288,\"dph_total\":0.05}]}";
	struct vast_offer *offers = NULL;
	struct vast_estimate *est = NULL;
	struct vast_workload j = flux_job();
	struct buf b = BUF_INIT;
	size_t n = 0, m = 0;
	json_error_t je;
	json_t *v = json_loads(answer, 0, &je), *js;
	struct err e;

	(void)state;
	assert_non_null(v);
	err_clear(&e);
	assert_int_equal(vast_offers_read(v, &offers, &n, &e), 0);
	assert_int_equal(n, 2);
	j.cuda_min = 12.1;
	j.driver_min = "535.86.05";
	rank_ok(offers, n, &j, &est, &m);
	assert_int_equal(m, 1); /* the 12 GB card cannot run it */
	assert_string_equal(est[0].speed_source, "table");
	assert_true(est[0].reliability == 0.9700835);
	/* 34 GB at 105.9 Mb/s is most of the boot */
	assert_true(est[0].model_s > 2500 && est[0].model_s < 2600);

	vast_estimate_explain(&est[0], &offers[est[0].offer], &j, &b);
	assert_non_null(strstr(b.data, "offer 11684738: RTX 4090 x1"));
	assert_non_null(strstr(b.data, "total"));
	assert_non_null(strstr(b.data, "34.0 GB"));
	js = vast_estimate_json(&est[0], &offers[est[0].offer]);
	assert_int_equal(json_integer_value(json_object_get(js, "offer_id")), 11684738);
	assert_string_equal(json_string_value(json_object_get(js, "speed_source")), "table");
	assert_true(json_real_value(json_object_get(js, "total_usd")) == est[0].total_usd);
	assert_non_null(strstr(vast_rank_model_summary(), "reliability"));
	json_decref(js);
	buf_release(&b);
	free(est);
	vast_offers_free(offers, n);
	json_decref(v);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_rank_10k_fast(void **state)
{
	static const char *const names[] = {
		"RTX 4090", "RTX 3090", "H100 SXM", "A100 SXM4", "RTX A5000", "L40S", "Mystery Z",
		"RTX 4080", "RTX 5090", "A40",
	};
	enum { N = 10000 };
	struct vast_offer *o = calloc(N, sizeof(*o));
	struct vast_workload j = flux_job();
	struct vast_estimate *est = NULL;
	size_t m = 0;
	double t0, ms, limit;

	(void)state;
	for (int i = 0; i < N; i++) {
		o[i] = mk(N - i, names[i % 10], i % 10 == 7 ? 16376 : 49000,
			  0.1 + (double)(i * 7919 % 1000) / 400.0);
		o[i].dlperf = 50 + i % 200;
		o[i].reliability = 0.9 + (double)(i % 100) / 1000.0;
		o[i].inet_down = 10 + i % 2000;
	}
	t0 = now_ms();
	rank_ok(o, N, &j, &est, &m);
	ms = now_ms() - t0;
#if defined(__SANITIZE_ADDRESS__)
	limit = 1000;
#else
	limit = 100;
#endif
	print_message("ranked %d offers in %.1f ms\n", N, ms);
	if (ms > limit)
		fail_msg("ranking %d offers took %.1f ms (limit %.0f)", N, ms, limit);
	assert_int_equal(m, N - N / 10); /* the 16 GB cards are dropped */
	for (size_t i = 1; i < m; i++)
		assert_true(est[i - 1].total_usd <= est[i].total_usd + 1e-4);
	free(est);
	free(o);
}

static bool has_line(const struct strv *sv, const char *part)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strstr(sv->v[i], part))
			return true;
	return false;
}

static void test_filters_json(void **state)
{
	static const long long excluded[] = { 77, 88 };
	struct vast_workload j = flux_job();
	struct strv added = STRV_INIT;
	json_t *q = json_object();
	struct err e;

	(void)state;
	j.cuda_min = 12.1;
	j.driver_min = "535.86.05";
	j.compute_cap_min = 800;
	j.disk_gb = 80;
	j.exclude_machines = excluded;
	j.n_exclude = 2;
	err_clear(&e);
	assert_int_equal(vast_rank_filters(&j, q, &added, &e), 0);
	tu_expect_json(q, "{\"gpu_ram\":{\"gte\":24000.0},\"cuda_max_good\":{\"gte\":\"12.1\"},"
		    "\"driver_version\":{\"gte\":535086005},\"compute_cap\":{\"gte\":\"800\"},"
		    "\"disk_space\":{\"gte\":\"80\"},\"reliability\":{\"gte\":\"0.95\"},"
		    "\"inet_down\":{\"gte\":\"100\"},\"machine_id\":{\"notin\":[\"77\",\"88\"]},"
		    "\"allocated_storage\":80.0}");
	assert_int_equal(added.n, 9);
	assert_true(has_line(&added, "gpu_ram >= 24 GB (flux-dev-lora needs 24 GB of VRAM"));
	assert_true(has_line(&added, "driver_version >= 535.86.05 (sent as 535086005"));
	assert_true(has_line(&added, "compute capability 8.0"));
	assert_true(has_line(&added, "machine_id notin [77, 88]"));
	assert_true(has_line(&added, "reliability >= 0.95 (default floor"));
	strv_release(&added);
	json_decref(q);
}

/* Added to what vast_query_build makes from the user's own terms. */
static void test_filters_user_wins(void **state)
{
	static const char *const terms[] = {
		"gpu_ram>=16", "reliability2>=0.9", "inet_down<=5000", "machine_id notin [88,5]",
		"cuda_max_good=12.4",
	};
	static const long long excluded[] = { 77, 88 };
	struct vast_query_opts opts = { .storage_gb = 200 };
	struct vast_workload j = flux_job();
	struct strv added = STRV_INIT;
	json_t *q = NULL, *before;
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(vast_query_build(terms, 5, &opts, &q, &e), 0);
	j.cuda_min = 12.1;
	j.disk_gb = 80;
	j.exclude_machines = excluded;
	j.n_exclude = 2;
	before = json_deep_copy(q);
	assert_int_equal(vast_rank_filters(&j, q, &added, &e), 0);
	/* the user's gpu_ram, cuda and reliability2 stand; no reliability added */
	tu_expect_json(json_object_get(q, "gpu_ram"), "{\"gte\":16000.0}");
	tu_expect_json(json_object_get(q, "cuda_max_good"), "{\"eq\":\"12.4\"}");
	tu_expect_json(json_object_get(q, "reliability2"), "{\"gte\":\"0.9\"}");
	assert_null(json_object_get(q, "reliability"));
	/* an upper bound is kept and the floor added beside it */
	tu_expect_json(json_object_get(q, "inet_down"), "{\"lte\":\"5000\",\"gte\":\"100\"}");
	/* excluded machines join the user's list */
	tu_expect_json(json_object_get(q, "machine_id"), "{\"notin\":[\"88\",\"5\",\"77\"]}");
	/* the user's larger storage stays; defaults and order untouched */
	assert_true(json_real_value(json_object_get(q, "allocated_storage")) == 200.0);
	tu_expect_json(json_object_get(q, "order"), "[[\"score\",\"desc\"]]");
	tu_expect_json(json_object_get(q, "verified"), "{\"eq\":true}");
	tu_expect_json(json_object_get(q, "disk_space"), "{\"gte\":\"80\"}");
	assert_true(has_line(&added, "gpu_ram: kept your filter {\"gte\":16000.0}"));
	assert_true(has_line(&added, "reliability2: kept your filter"));
	assert_true(has_line(&added, "cuda_max_good: kept your filter"));
	assert_true(has_line(&added, "machine_id notin [77]"));
	assert_false(has_line(&added, "allocated_storage"));
	/* the rest of the query is what it was */
	json_object_del(before, "inet_down");
	json_object_del(before, "machine_id");
	json_object_del(q, "inet_down");
	json_object_del(q, "machine_id");
	json_object_del(q, "disk_space");
	assert_true(json_equal(q, before));
	json_decref(before);
	strv_release(&added);
	json_decref(q);
}

static void test_filters_errors(void **state)
{
	struct vast_workload j = flux_job();
	struct strv added = STRV_INIT;
	json_t *q = json_pack("{s:{s:b}}", "verified", "eq", 1), *before = json_deep_copy(q);
	struct err e;

	(void)state;
	strv_push(&added, "earlier line");
	err_clear(&e);
	j.driver_min = "535.86.05 gpu_ram>=1";
	assert_int_equal(vast_rank_filters(&j, q, &added, &e), ERR_USAGE);
	assert_true(json_equal(q, before));
	assert_int_equal(added.n, 1);
	j = flux_job();
	j.cuda_min = NAN;
	assert_int_equal(vast_rank_filters(&j, q, &added, &e), ERR_USAGE);
	j = flux_job();
	assert_int_equal(vast_rank_filters(&j, NULL, &added, &e), ERR_FAIL);
	assert_int_equal(vast_rank_filters(NULL, q, &added, &e), ERR_USAGE);
	assert_true(json_equal(q, before));
	assert_int_equal(added.n, 1);
	/* a job that needs nothing still gets the default floors */
	memset(&j, 0, sizeof(j));
	assert_int_equal(vast_rank_filters(&j, q, &added, &e), 0);
	tu_expect_json(q, "{\"verified\":{\"eq\":true},\"reliability\":{\"gte\":\"0.95\"},"
		    "\"inet_down\":{\"gte\":\"100\"}}");
	assert_int_equal(added.n, 3);
	json_decref(before);
	json_decref(q);
	strv_release(&added);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_builtin),
		cmocka_unit_test(test_table_names),
		cmocka_unit_test(test_table_dlperf),
		cmocka_unit_test(test_table_parse),
		cmocka_unit_test(test_estimate_formula),
		cmocka_unit_test(test_rank_faster_dearer_gpu_wins),
		cmocka_unit_test(test_rank_fixed_prices),
		cmocka_unit_test(test_rank_slow_network),
		cmocka_unit_test(test_rank_reliability),
		cmocka_unit_test(test_rank_unknown_gpu),
		cmocka_unit_test(test_rank_drops),
		cmocka_unit_test(test_rank_ties),
		cmocka_unit_test(test_rank_multi_gpu_and_factor),
		cmocka_unit_test(test_rank_bad_job),
		cmocka_unit_test(test_rank_from_json),
		cmocka_unit_test(test_rank_10k_fast),
		cmocka_unit_test(test_filters_json),
		cmocka_unit_test(test_filters_user_wins),
		cmocka_unit_test(test_filters_errors),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
