#include "sim/market.h"

#include <math.h>
#include <string.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "sim/rng.h"

struct sim_gpu {
	const char *name;
	int ram_mb;       /* per GPU, as Vast reports it */
	double flops;     /* TFLOPS per GPU */
	double dlperf;    /* per GPU */
	double price_lo;  /* $/hr per GPU */
	double price_hi;
	int compute_cap;  /* x100 */
	double mem_bw;    /* GB/s */
	int max_power;    /* W */
	int max_temp;     /* C */
	double cuda_min;  /* the oldest CUDA its drivers report */
	int weight;       /* how common */
	bool consumer;
	bool sxm;
};

static const struct sim_gpu sim_gpus[] = {
	{ "RTX 3060", 12288, 12.7, 8.9, 0.04, 0.09, 860, 360.0, 170, 90, 11.8, 6, true, false },
	{ "RTX 3080", 10240, 29.8, 22.0, 0.07, 0.16, 860, 760.3, 320, 90, 11.8, 5, true, false },
	{ "RTX 3090", 24564, 35.6, 29.0, 0.13, 0.28, 860, 936.2, 350, 90, 11.8, 14, true, false },
	{ "RTX 4080", 16376, 48.7, 55.0, 0.15, 0.30, 890, 716.8, 320, 90, 11.8, 5, true, false },
	{ "RTX 4090", 24564, 82.6, 106.0, 0.28, 0.60, 890, 1008.0, 450, 90, 11.8, 18, true, false },
	{ "RTX 5090", 32607, 104.8, 150.0, 0.45, 0.95, 1200, 1792.0, 575, 90, 12.8, 8, true, false },
	{ "RTX A5000", 24564, 27.8, 24.0, 0.15, 0.30, 860, 768.0, 230, 90, 11.8, 5, false, false },
	{ "RTX A6000", 49140, 38.7, 40.0, 0.35, 0.65, 860, 768.0, 300, 93, 11.8, 7, false, false },
	{ "L40S", 46068, 91.6, 110.0, 0.55, 1.05, 890, 864.0, 350, 90, 12.0, 5, false, false },
	{ "A100 PCIE", 40960, 19.5, 70.0, 0.55, 1.10, 800, 1555.0, 250, 85, 11.8, 4, false, false },
	{ "A100 SXM4", 81920, 19.5, 95.0, 0.85, 1.60, 800, 2039.0, 400, 85, 11.8, 6, false, true },
	{ "H100 PCIE", 81559, 51.2, 150.0, 1.50, 2.40, 900, 2000.0, 350, 85, 12.0, 4, false, false },
	{ "H100 SXM", 81559, 67.0, 190.0, 1.75, 3.00, 900, 3350.0, 700, 85, 12.0, 6, false, true },
	{ "Tesla V100", 16384, 15.7, 22.0, 0.10, 0.30, 700, 900.0, 300, 85, 11.8, 4, false, false },
};

/* Host drivers and the CUDA they report, weighted towards what a 2026
 * market runs (ai-toolkit's CUDA 13 images need 580 or newer). */
static const struct {
	double cuda;
	const char *driver;
	int weight;
} sim_drivers[] = {
	{ 11.8, "520.61.05", 1 },  { 12.0, "525.147.05", 1 }, { 12.1, "530.41.03", 1 },
	{ 12.2, "535.183.01", 2 }, { 12.4, "550.127.05", 2 }, { 12.6, "560.35.03", 2 },
	{ 12.8, "570.124.06", 3 }, { 13.0, "580.95.05", 4 },
};

static const struct {
	const char *name;
	int cores;
	double ghz;
} sim_cpus[] = {
	{ "AMD EPYC 7642 48-Core Processor", 96, 2.3 },
	{ "AMD EPYC 7543 32-Core Processor", 64, 2.8 },
	{ "AMD EPYC 9554 64-Core Processor", 128, 3.1 },
	{ "AMD Ryzen 9 5950X 16-Core Processor", 32, 3.4 },
	{ "AMD Ryzen Threadripper PRO 5975WX 32-Cores", 64, 3.6 },
	{ "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 128, 2.0 },
	{ "Intel(R) Xeon(R) Platinum 8480+", 224, 2.0 },
	{ "13th Gen Intel(R) Core(TM) i9-13900K", 32, 3.0 },
	{ "Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz", 80, 2.2 },
};

static const char *const sim_places[] = {
	"Oregon, US", "California, US", "Texas, US", "Virginia, US", "New York, US",
	"Quebec, CA", "Ontario, CA", "Bavaria, DE", "Hesse, DE", "North Holland, NL",
	"Ile-de-France, FR", "England, GB", "Stockholm, SE", "Guangxi, CN", "Guangdong, CN",
	"Tokyo, JP", "Seoul, KR", "Taipei, TW", "New South Wales, AU", "Sao Paulo, BR",
	"Maharashtra, IN", "Mazowieckie, PL", "Central Bohemia, CZ", "Singapore, SG",
};

static const char *const sim_disks[] = {
	"Samsung SSD 980 PRO 2TB", "INTEL SSDPE2KX080T8", "WDC WDS100T2B0C",
	"Micron_7450_MTFDKCC3T8TFR", "KINGSTON SNV2S2000G", "SAMSUNG MZQL27T6HBLA",
};

static const char *const sim_boards[] = {
	"H12SSL", "ROMED8-2T", "X570 AORUS MASTER", "PRO WS WRX80E-SAGE SE WIFI",
	"Z790 AORUS ELITE", "X11DPG-QT", "SYS-821GE-TNHR",
};

static const int sim_ip_first[] = { 23, 45, 64, 69, 73, 89, 91, 104, 136, 139, 142,
				    147, 154, 173, 185, 195, 203, 211, 216 };

#define SIM_PICK(r, arr) ((arr)[sim_rng_int((r), 0, (long long)(sizeof(arr) / sizeof((arr)[0])) - 1)])
#define SIM_NELEM(arr) (sizeof(arr) / sizeof((arr)[0]))

static double sim_round(double x, double digits)
{
	double m = pow(10.0, digits);

	return round(x * m) / m;
}

static const struct sim_gpu *sim_pick_gpu(struct sim_rng *r)
{
	int total = 0, x;

	for (size_t i = 0; i < SIM_NELEM(sim_gpus); i++)
		total += sim_gpus[i].weight;
	x = (int)sim_rng_int(r, 0, total - 1);
	for (size_t i = 0; i < SIM_NELEM(sim_gpus); i++) {
		if (x < sim_gpus[i].weight)
			return &sim_gpus[i];
		x -= sim_gpus[i].weight;
	}
	return &sim_gpus[0];
}

static size_t sim_pick_driver(struct sim_rng *r, double cuda_min)
{
	int total = 0, x;
	size_t i;

	for (i = 0; i < SIM_NELEM(sim_drivers); i++)
		if (sim_drivers[i].cuda >= cuda_min)
			total += sim_drivers[i].weight;
	x = (int)sim_rng_int(r, 0, total - 1);
	for (i = 0; i < SIM_NELEM(sim_drivers); i++) {
		if (sim_drivers[i].cuda < cuda_min)
			continue;
		if (x < sim_drivers[i].weight)
			return i;
		x -= sim_drivers[i].weight;
	}
	return SIM_NELEM(sim_drivers) - 1;
}

static int sim_pick_count(struct sim_rng *r)
{
	double u = sim_rng_unit(r);

	return u < 0.35 ? 1 : u < 0.60 ? 2 : u < 0.85 ? 4 : 8;
}

/* What every offer of one machine shares. */
struct sim_machine {
	const struct sim_gpu *gpu;
	long long machine_id, host_id, gpu_id0;
	int gpus;
	int hosting_type;
	size_t cpu, disk, board;
	size_t drv;
	const char *place;
	double reliability, reliability2;
	double cpu_ram, disk_space, disk_bw, pci_gen, lanes;
	double inet_up, inet_down, inet_up_cost, inet_down_cost;
	int direct_ports;
	char ip[32];
	bool static_ip, display, vms;
	const char *verification;
	json_t *external;
	const char *os;
	double price_per_gpu, storage_cost, bid_frac, dl_factor, credit_discount;
	double start_date, end_date;
};

static void sim_machine_make(struct sim_rng *r, long long machine_id, struct sim_machine *m)
{
	double u;

	memset(m, 0, sizeof(*m));
	m->gpu = sim_pick_gpu(r);
	m->machine_id = machine_id;
	m->host_id = 100000 + sim_rng_int(r, 0, 199999);
	m->gpu_id0 = 50000 + machine_id * 8;
	m->gpus = sim_pick_count(r);
	m->hosting_type = sim_rng_chance(r, m->gpu->consumer ? 0.15 : 0.6) ? 1 : 0;
	m->cpu = (size_t)sim_rng_int(r, 0, SIM_NELEM(sim_cpus) - 1);
	m->disk = (size_t)sim_rng_int(r, 0, SIM_NELEM(sim_disks) - 1);
	m->board = (size_t)sim_rng_int(r, 0, SIM_NELEM(sim_boards) - 1);
	m->drv = sim_pick_driver(r, m->gpu->cuda_min);
	m->place = SIM_PICK(r, sim_places);
	m->reliability = sim_round(m->hosting_type ? sim_rng_range(r, 0.97, 0.999)
						   : sim_rng_range(r, 0.80, 0.999), 7);
	m->reliability2 = sim_round(fmax(0.80, m->reliability - sim_rng_range(r, 0, 0.01)), 7);
	m->cpu_ram = (double)(int)(16000 * m->gpus * sim_rng_int(r, 1, 4) + sim_rng_int(r, 0, 999));
	m->disk_space = sim_round(sim_rng_range(r, 50, 4000), 3);
	m->disk_bw = sim_round(sim_rng_range(r, 400, 7000), 3);
	m->pci_gen = (double)sim_rng_int(r, 3, 5);
	m->lanes = sim_rng_chance(r, 0.3) ? 8 : 16;
	m->inet_down = sim_round(exp(sim_rng_range(r, log(10.0), log(5000.0))), 1);
	m->inet_up = sim_round(fmin(5000, fmax(10, m->inet_down * sim_rng_range(r, 0.3, 1.1))), 1);
	if (sim_rng_chance(r, 0.25)) {
		m->inet_up_cost = sim_round(sim_rng_range(r, 0.001, 0.02), 4);
		m->inet_down_cost = sim_round(sim_rng_range(r, 0.001, 0.02), 4);
	}
	m->direct_ports = sim_rng_chance(r, 0.15) ? 0 : (int)sim_rng_int(r, 10, 500);
	snprintf(m->ip, sizeof(m->ip), "%d.%d.%d.%d", SIM_PICK(r, sim_ip_first),
		 (int)sim_rng_int(r, 0, 255), (int)sim_rng_int(r, 0, 255), (int)sim_rng_int(r, 1, 254));
	m->static_ip = sim_rng_chance(r, 0.3);
	m->display = m->gpu->consumer && sim_rng_chance(r, 0.1);
	m->vms = sim_rng_chance(r, 0.2);
	u = sim_rng_unit(r);
	m->verification = u < 0.75 || m->hosting_type ? "verified" : u < 0.95 ? "unverified" : "deverified";
	m->external = sim_rng_chance(r, 0.05) ? json_null() : json_false();
	u = sim_rng_unit(r);
	m->os = u < 0.3 ? "20.04" : u < 0.8 ? "22.04" : "24.04";
	m->price_per_gpu = sim_rng_range(r, m->gpu->price_lo, m->gpu->price_hi);
	m->storage_cost = sim_round(sim_rng_range(r, 0.05, 0.30), 6);
	m->bid_frac = sim_rng_range(r, 0.35, 0.85);
	m->dl_factor = sim_rng_range(r, 0.9, 1.05);
	m->credit_discount = sim_round(sim_rng_range(r, 0.0, 0.4), 2);
	m->start_date = SIM_MARKET_EPOCH - sim_rng_range(r, 86400.0, 180 * 86400.0);
	m->end_date = SIM_MARKET_EPOCH + sim_rng_range(r, 7 * 86400.0, 365 * 86400.0);
}

json_t *sim_market_cost(double gpu, double disk)
{
	return json_pack("{s:f,s:f,s:f,s:i,s:f}", "gpuCostPerHour", gpu, "diskHour", disk,
			 "totalHour", gpu + disk, "discountTotalHour", 0, "discountedTotalPerHour",
			 gpu + disk);
}

void sim_market_price(json_t *offer, double storage_gb, bool bid)
{
	double base, bidp, storage, disk, total, dlperf, flops, vram;

	if (!json_is_number(json_object_get(offer, "dph_base")) ||
	    !json_is_number(json_object_get(offer, "min_bid")) ||
	    !json_is_number(json_object_get(offer, "storage_cost")))
		return;
	base = json_number_value(json_object_get(offer, "dph_base"));
	bidp = json_number_value(json_object_get(offer, "min_bid"));
	storage = json_number_value(json_object_get(offer, "storage_cost"));
	dlperf = json_number_value(json_object_get(offer, "dlperf"));
	flops = json_number_value(json_object_get(offer, "total_flops"));
	vram = json_number_value(json_object_get(offer, "gpu_total_ram"));
	if (bid)
		base = bidp;
	disk = storage * storage_gb / 720.0;
	total = base + disk;
	json_object_set_new(offer, "dlperf_per_dphtotal", json_real(total > 0 ? dlperf / total : 0));
	json_object_set_new(offer, "flops_per_dphtotal", json_real(total > 0 ? flops / total : 0));
	json_object_set_new(offer, "dph_total", json_real(total));
	json_object_set_new(offer, "dph_total_adj", json_real(total));
	json_object_set_new(offer, "discounted_dph_total", json_real(total));
	json_object_set_new(offer, "storage_total_cost", json_real(disk));
	json_object_set_new(offer, "vram_costperhour", json_real(vram > 0 ? total / (vram / 1024.0) : 0));
	json_object_set_new(offer, "search", sim_market_cost(base, disk));
	json_object_set_new(offer, "instance", sim_market_cost(0, disk));
	json_object_set_new(offer, "is_bid", json_boolean(bid));
}

/* One offer of `gpus` GPUs on machine `m`, keys in the sample's order. */
static json_t *sim_offer_make(const struct sim_machine *m, long long id, long long bundle, int gpus,
			      int rn)
{
	const struct sim_gpu *g = m->gpu;
	double frac = (double)gpus / m->gpus, dph_base, dlperf, total, score;
	json_t *o = json_object(), *ids = json_array();
	unsigned maj, min, pat;

	for (int i = 0; i < gpus; i++)
		json_array_append_new(ids, json_integer(m->gpu_id0 + i));
	dph_base = sim_round(m->price_per_gpu * gpus, 6);
	dlperf = sim_round(g->dlperf * gpus * m->dl_factor, 3);
	sscanf(sim_drivers[m->drv].driver, "%u.%u.%u", &maj, &min, &pat);

	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "ask_contract_id", json_integer(id));
	json_object_set_new(o, "bundle_id", json_integer(bundle));
	json_object_set_new(o, "bundled_results", json_null());
	json_object_set_new(o, "machine_id", json_integer(m->machine_id));
	json_object_set_new(o, "host_id", json_integer(m->host_id));
	json_object_set_new(o, "hosting_type", json_integer(m->hosting_type));
	json_object_set_new(o, "hostname", json_null());
	json_object_set_new(o, "rn", json_integer(rn));
	json_object_set_new(o, "gpu_name", json_string(g->name));
	json_object_set_new(o, "num_gpus", json_integer(gpus));
	json_object_set_new(o, "gpu_ids", ids);
	json_object_set_new(o, "gpu_ram", json_integer(g->ram_mb));
	json_object_set_new(o, "gpu_total_ram", json_integer((json_int_t)g->ram_mb * gpus));
	json_object_set_new(o, "gpu_frac", json_real(frac));
	json_object_set_new(o, "gpu_arch", json_string("nvidia"));
	json_object_set_new(o, "gpu_lanes", json_integer((json_int_t)m->lanes));
	json_object_set_new(o, "gpu_mem_bw", json_real(g->mem_bw));
	json_object_set_new(o, "gpu_display_active", json_boolean(m->display));
	json_object_set_new(o, "gpu_max_power", json_integer(g->max_power));
	json_object_set_new(o, "gpu_max_temp", json_integer(g->max_temp));
	json_object_set_new(o, "bw_nvlink", json_real(g->sxm && gpus > 1 ? (g->ram_mb > 81000 ? 900.0 : 600.0) : 0.0));
	json_object_set_new(o, "compute_cap", json_integer(g->compute_cap));
	json_object_set_new(o, "cuda_max_good", json_real(sim_drivers[m->drv].cuda));
	json_object_set_new(o, "driver_version", json_string(sim_drivers[m->drv].driver));
	json_object_set_new(o, "driver_vers", json_integer((json_int_t)maj * 1000000 + min * 1000 + pat));
	json_object_set_new(o, "total_flops", json_real(sim_round(g->flops * gpus, 6)));
	json_object_set_new(o, "dlperf", json_real(dlperf));
	json_object_set_new(o, "dlperf_per_dphtotal", json_real(0));
	json_object_set_new(o, "flops_per_dphtotal", json_real(0));
	json_object_set_new(o, "score", json_real(0));
	json_object_set_new(o, "cpu_name", json_string(sim_cpus[m->cpu].name));
	json_object_set_new(o, "cpu_arch", json_string("amd64"));
	json_object_set_new(o, "cpu_cores", json_integer(sim_cpus[m->cpu].cores));
	json_object_set_new(o, "cpu_cores_effective", json_real(sim_cpus[m->cpu].cores * frac));
	json_object_set_new(o, "cpu_ghz", json_real(sim_cpus[m->cpu].ghz));
	json_object_set_new(o, "cpu_ram", json_integer((json_int_t)m->cpu_ram));
	json_object_set_new(o, "has_avx", json_integer(1));
	json_object_set_new(o, "disk_space", json_real(m->disk_space));
	json_object_set_new(o, "disk_bw", json_real(m->disk_bw));
	json_object_set_new(o, "disk_name", json_string(sim_disks[m->disk]));
	json_object_set_new(o, "mobo_name", json_string(sim_boards[m->board]));
	json_object_set_new(o, "pci_gen", json_real(m->pci_gen));
	json_object_set_new(o, "pcie_bw", json_real(sim_round((m->pci_gen == 3 ? 12.3 : m->pci_gen == 4 ? 24.6 : 49.2) * m->lanes / 16, 1)));
	json_object_set_new(o, "os_version", json_string(m->os));
	json_object_set_new(o, "inet_up", json_real(m->inet_up));
	json_object_set_new(o, "inet_down", json_real(m->inet_down));
	json_object_set_new(o, "inet_up_cost", json_real(m->inet_up_cost));
	json_object_set_new(o, "inet_down_cost", json_real(m->inet_down_cost));
	json_object_set_new(o, "internet_up_cost_per_tb", json_real(m->inet_up_cost * 1000));
	json_object_set_new(o, "internet_down_cost_per_tb", json_real(m->inet_down_cost * 1000));
	json_object_set_new(o, "direct_port_count", json_integer(m->direct_ports));
	json_object_set_new(o, "public_ipaddr", json_string(m->ip));
	json_object_set_new(o, "static_ip", json_boolean(m->static_ip));
	json_object_set_new(o, "geolocation", json_string(m->place));
	json_object_set_new(o, "geolocode", json_integer((json_int_t)(m->host_id * 7919 % 1000000000)));
	json_object_set_new(o, "dph_base", json_real(dph_base));
	json_object_set_new(o, "dph_total", json_real(0));
	json_object_set_new(o, "dph_total_adj", json_real(0));
	json_object_set_new(o, "discounted_dph_total", json_real(0));
	json_object_set_new(o, "discount_rate", json_real(0.0));
	json_object_set_new(o, "discounted_hourly", json_real(0.0));
	json_object_set_new(o, "storage_cost", json_real(m->storage_cost));
	json_object_set_new(o, "storage_total_cost", json_real(0));
	json_object_set_new(o, "vram_costperhour", json_real(0));
	json_object_set_new(o, "credit_discount_max", json_real(m->credit_discount));
	json_object_set_new(o, "min_bid", json_real(sim_round(dph_base * m->bid_frac, 6)));
	json_object_set_new(o, "search", json_null());
	json_object_set_new(o, "instance", json_null());
	json_object_set_new(o, "rentable", json_true());
	json_object_set_new(o, "rented", json_false());
	json_object_set_new(o, "is_bid", json_false());
	json_object_set(o, "external", m->external);
	json_object_set_new(o, "reliability", json_real(m->reliability));
	json_object_set_new(o, "reliability2", json_real(m->reliability2));
	json_object_set_new(o, "reliability_mult", json_real(sim_round(pow(m->reliability2, 8), 7)));
	json_object_set_new(o, "expected_reliability", json_real(sim_round(fmax(0.5, m->reliability2 - 0.02), 2)));
	json_object_set_new(o, "verification", json_string(m->verification));
	json_object_set_new(o, "vericode", json_integer(!strcmp(m->verification, "verified") ? 1 : !strcmp(m->verification, "unverified") ? 0 : -1));
	json_object_set_new(o, "vms_enabled", json_boolean(m->vms));
	json_object_set_new(o, "is_vm_deverified", json_false());
	json_object_set_new(o, "resource_type", json_string("gpu"));
	json_object_set_new(o, "cluster_id", json_null());
	json_object_set_new(o, "start_date", json_real(sim_round(m->start_date, 3)));
	json_object_set_new(o, "end_date", json_real(sim_round(m->end_date, 0)));
	json_object_set_new(o, "duration", json_real(sim_round(m->end_date, 0) - SIM_MARKET_EPOCH));
	json_object_set_new(o, "time_remaining", json_string(""));
	json_object_set_new(o, "time_remaining_isbid", json_string(""));
	json_object_set_new(o, "avail_vol_ask_id", json_null());
	json_object_set_new(o, "avail_vol_dph", json_null());
	json_object_set_new(o, "avail_vol_size", json_null());
	json_object_set_new(o, "nw_disk_min_bw", json_null());
	json_object_set_new(o, "nw_disk_max_bw", json_null());
	json_object_set_new(o, "nw_disk_avg_bw", json_null());
	json_object_set_new(o, "logo", json_string("/static/logos/vastai_small2.png"));
	json_object_set_new(o, "webpage", json_null());

	sim_market_price(o, 5.0, false);
	total = json_number_value(json_object_get(o, "dph_total"));
	/* Performance per dollar, discounted by how often the host fails. */
	score = sim_round(dlperf / total * pow(m->reliability2, 8) * 0.6, 3);
	json_object_set_new(o, "score", json_real(score));
	return o;
}

json_t *sim_market_generate(uint64_t seed, size_t n)
{
	json_t *offers = json_array();
	struct sim_rng r;
	struct sim_machine m;
	long long id = 11000000, machine = 10000, bundle = 1598000000;
	int rn = 1;

	sim_rng_seed(&r, seed, 1);
	while (json_array_size(offers) < n) {
		machine += sim_rng_int(&r, 1, 40);
		sim_machine_make(&r, machine, &m);
		id += sim_rng_int(&r, 1, 5000);
		bundle += sim_rng_int(&r, 1, 90000);
		json_array_append_new(offers, sim_offer_make(&m, id, bundle, m.gpus, rn++));
		/* Some machines also rent out half their GPUs. */
		if (m.gpus > 1 && json_array_size(offers) < n && sim_rng_chance(&r, 0.25)) {
			id += sim_rng_int(&r, 1, 50);
			bundle += sim_rng_int(&r, 1, 900);
			json_array_append_new(offers, sim_offer_make(&m, id, bundle, m.gpus / 2, rn++));
		}
		json_decref(m.external);
	}
	return offers;
}

int sim_market_load(const char *path, json_t **out, struct err *e)
{
	struct buf b = BUF_INIT;
	json_t *doc = NULL, *offers;
	int r;

	*out = NULL;
	r = fsx_read_file(path, &b, 0, e);
	if (r) {
		err_prefix(e, "market file");
		goto out;
	}
	r = json_parse(b.data, b.len, path, &doc, e);
	if (r) {
		err_prefix(e, "market file");
		goto out;
	}
	offers = json_is_array(doc) ? doc : json_object_get(doc, "offers");
	if (!json_is_array(offers)) {
		r = err_set(e, ERR_FORMAT,
			    "market file %s: expected {\"offers\": [...]} or a JSON array of offers", path);
		goto out;
	}
	*out = json_incref(offers);
out:
	json_decref(doc);
	buf_release(&b);
	return r;
}
