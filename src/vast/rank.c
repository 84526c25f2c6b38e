#include "vast/rank.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "vast/query.h"

/* src/vast/gpu_speed.tsv, compiled in by cmake/embed.cmake. */
extern const unsigned char vast_gpu_speed_tsv[];
extern const size_t vast_gpu_speed_tsv_len;

/* Model constants; docs/offer-ranking.md explains each. */
#define VR_BOOT_S 300.0          /* image pull + start, when the job says 0 */
#define VR_LOAD_S 300.0          /* model load + quantize on the GPU host */
#define VR_DETECT_S 600.0        /* until ferry notices a dead host and drops it */
#define VR_DOWNLOAD_BYTES 400e6  /* final LoRA + optimizer + last samples */
#define VR_INET_MIN 10.0         /* Mb/s: a 0 or bogus figure reads as this */
#define VR_INET_MAX 10000.0      /* Mb/s: no offer moves bytes faster than this */
#define VR_REL_UNKNOWN 0.90      /* reliability of an offer that reports none */
#define VR_REL_MIN 0.50
#define VR_REL_HOURS 24.0        /* reliability read as the chance to last a day */
#define VR_P_MAX 0.90
#define VR_DLPERF_MARGIN 1.15    /* scaled speeds are uncertain: lean slow */
#define VR_CALIBRATE_MIN 3       /* known offers with dlperf needed to calibrate */
#define VR_TIE_USD 1e-4          /* totals closer than this are ties */
#define VR_DEFAULT_S 5.0         /* when the table has neither '*' nor rows */

/* Table limits. */
#define VR_KEY_MAX 48
#define VR_ROWS_MAX 1024
#define VR_LINE_MAX 4096

static const char vr_note_table_k[] =
	"scaled from the offer's dlperf per GPU against the speed table's reference rows";
static const char vr_note_offers_k[] =
	"scaled from the offer's dlperf per GPU against the known GPUs in this search";
static const char vr_note_default[] =
	"the speed table's default for unknown GPUs";

struct vr_row {
	char key[VR_KEY_MAX];  /* normalized name */
	double vram_gb;        /* 0: any */
	double s;              /* seconds per step */
	double dlperf;         /* 0: not a reference row */
	char *basis;
};

struct vast_gpu_table {
	struct vr_row *rows;
	size_t n;
	double dflt_s;
	const char *dflt_note;
	char *dflt_basis;
	double k;              /* geometric mean of s x dlperf over reference rows; 0: none */
	double min_s;          /* the fastest row */
};

/* Lower-case letters and digits, other bytes kept, spaces, tabs, '-' and
 * '_' dropped: "RTX 6000Ada" -> "rtx6000ada". False when empty or too long. */
static bool vr_key(const char *s, size_t len, char out[VR_KEY_MAX])
{
	size_t j = 0;

	for (size_t i = 0; i < len && s[i]; i++) {
		char c = s[i];

		if (c == ' ' || c == '\t' || c == '-' || c == '_')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (j + 1 >= VR_KEY_MAX)
			return false;
		out[j++] = c;
	}
	out[j] = '\0';
	return j > 0;
}

/* A plain decimal number filling all of s. */
static bool vr_num(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789.eE+-") != strlen(s))
		return false;
	v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static char *vr_trim(char *s)
{
	char *end;

	while (*s == ' ')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

void vast_gpu_table_free(struct vast_gpu_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->rows[i].basis);
	free(t->rows);
	free(t->dflt_basis);
	free(t);
}

size_t vast_gpu_table_rows(const struct vast_gpu_table *t)
{
	return t ? t->n : 0;
}

/* One data line (NUL-terminated, writable) into t. */
static int vr_parse_line(struct vast_gpu_table *t, size_t *alloc, char *line, size_t lineno,
			 struct err *e)
{
	char *field[5], *p = line, *tab;
	double vram, s, dlperf = 0;
	char key[VR_KEY_MAX];
	bool dflt;

	for (int i = 0; i < 4; i++) {
		tab = strchr(p, '\t');
		if (!tab)
			return err_set(e, ERR_FORMAT,
				       "GPU speed table line %zu: want 5 fields separated by tabs "
				       "(gpu_name vram_gb s_per_step dlperf basis)", lineno);
		*tab = '\0';
		field[i] = vr_trim(p);
		p = tab + 1;
	}
	field[4] = vr_trim(p);
	if (!vr_key(field[0], strlen(field[0]), key))
		return err_set(e, ERR_FORMAT, "GPU speed table line %zu: bad GPU name", lineno);
	dflt = !strcmp(key, "*");
	if (!vr_num(field[1], &vram) || vram < 0 || vram > 10000)
		return err_set(e, ERR_FORMAT, "GPU speed table line %zu: vram_gb is not a size in GB",
			       lineno);
	if (!vr_num(field[2], &s) || !(s > 0) || s > 10000)
		return err_set(e, ERR_FORMAT,
			       "GPU speed table line %zu: s_per_step is not a positive number of seconds",
			       lineno);
	if (strcmp(field[3], "-") &&
	    (!vr_num(field[3], &dlperf) || dlperf < 0 || dlperf > 1e7))
		return err_set(e, ERR_FORMAT, "GPU speed table line %zu: dlperf is not a number or -",
			       lineno);
	if (!*field[4])
		return err_set(e, ERR_FORMAT,
			       "GPU speed table line %zu: every row needs a basis (where its number comes from)",
			       lineno);
	if (dflt) {
		if (t->dflt_basis)
			return err_set(e, ERR_FORMAT, "GPU speed table line %zu: a second '*' row",
				       lineno);
		t->dflt_s = s;
		t->dflt_basis = xstrdup(field[4]);
		return 0;
	}
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->rows[i].key, key) && t->rows[i].vram_gb == vram)
			return err_set(e, ERR_FORMAT,
				       "GPU speed table line %zu: '%s' with %g GB is listed twice",
				       lineno, field[0], vram);
	if (t->n >= VR_ROWS_MAX)
		return err_set(e, ERR_FORMAT, "GPU speed table: more than %d rows", VR_ROWS_MAX);
	ALLOC_GROW(t->rows, t->n + 1, *alloc);
	memcpy(t->rows[t->n].key, key, sizeof(key));
	t->rows[t->n].vram_gb = vram;
	t->rows[t->n].s = s;
	t->rows[t->n].dlperf = dlperf;
	t->rows[t->n].basis = xstrdup(field[4]);
	t->n++;
	return 0;
}

int vast_gpu_table_parse(const char *text, size_t len, struct vast_gpu_table **out,
			 struct err *e)
{
	struct vast_gpu_table *t = xcalloc(1, sizeof(*t));
	const char *p = text ? text : "", *end = p + (text ? len : 0);
	char *line = xmalloc(VR_LINE_MAX + 1);
	double logsum = 0, maxs = 0;
	size_t alloc = 0, lineno = 0, nref = 0;
	int r = 0;

	*out = NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *s;

		lineno++;
		if (n > VR_LINE_MAX) {
			r = err_set(e, ERR_FORMAT, "GPU speed table line %zu: longer than %d bytes",
				    lineno, VR_LINE_MAX);
			goto out;
		}
		if (memchr(p, '\0', n)) {
			r = err_set(e, ERR_FORMAT, "GPU speed table line %zu: holds a NUL byte",
				    lineno);
			goto out;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (nl ? 1 : 0);
		s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#' || !strcmp(s, "\r"))
			continue;
		r = vr_parse_line(t, &alloc, line, lineno, e);
		if (r)
			goto out;
	}
	t->min_s = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (!t->min_s || t->rows[i].s < t->min_s)
			t->min_s = t->rows[i].s;
		if (t->rows[i].s > maxs)
			maxs = t->rows[i].s;
		if (t->rows[i].dlperf > 0) {
			logsum += log(t->rows[i].s * t->rows[i].dlperf);
			nref++;
		}
	}
	t->k = nref ? exp(logsum / (double)nref) : 0;
	if (t->dflt_basis) {
		t->dflt_note = t->dflt_basis;
	} else {
		t->dflt_s = maxs > 0 ? maxs : VR_DEFAULT_S;
		t->dflt_note = vr_note_default;
	}
	*out = t;
	t = NULL;
out:
	free(line);
	vast_gpu_table_free(t);
	return r;
}

static pthread_once_t vr_once = PTHREAD_ONCE_INIT;
static struct vast_gpu_table *vr_builtin;

static void vr_builtin_load(void)
{
	struct err e;

	err_clear(&e);
	if (vast_gpu_table_parse((const char *)vast_gpu_speed_tsv, vast_gpu_speed_tsv_len,
				 &vr_builtin, &e)) {
		log_error("src/vast/gpu_speed.tsv: %s; every GPU gets the default speed", e.msg);
		vr_builtin = xcalloc(1, sizeof(*vr_builtin));
		vr_builtin->dflt_s = VR_DEFAULT_S;
		vr_builtin->dflt_note = vr_note_default;
	}
}

const struct vast_gpu_table *vast_gpu_table_builtin(void)
{
	pthread_once(&vr_once, vr_builtin_load);
	return vr_builtin;
}

/* The row for a name; among rows of one name, the one closest to
 * gpu_ram_mb (the first when it is unknown). */
static const struct vr_row *vr_find(const struct vast_gpu_table *t, const char *name,
				    double gpu_ram_mb)
{
	const struct vr_row *best = NULL;
	double bestd = 0;
	char key[VR_KEY_MAX];

	if (!name || !vr_key(name, strlen(name), key))
		return NULL;
	for (size_t i = 0; i < t->n; i++) {
		const struct vr_row *row = &t->rows[i];
		double d;

		if (strcmp(row->key, key))
			continue;
		if (!(gpu_ram_mb > 0) || !isfinite(gpu_ram_mb))
			return row;
		d = row->vram_gb > 0 ? fabs(row->vram_gb * 1000.0 - gpu_ram_mb) : 1e300;
		if (!best || d < bestd) {
			best = row;
			bestd = d;
		}
	}
	return best;
}

/* Seconds per step of a GPU the table does not list. */
static double vr_scaled(const struct vast_gpu_table *t, double dlperf, double k, const char *knote,
			const char **source, const char **note)
{
	double s;

	if (k > 0 && isfinite(k) && dlperf > 0 && isfinite(dlperf)) {
		s = k / dlperf * VR_DLPERF_MARGIN;
		if (!isfinite(s) || s > 2 * t->dflt_s)
			s = 2 * t->dflt_s;
		if (s < t->min_s)
			s = t->min_s;
		if (s > 0) {
			*source = "dlperf-scaled";
			*note = knote;
			return s;
		}
	}
	*source = "default";
	*note = t->dflt_note;
	return t->dflt_s;
}

double vast_gpu_table_lookup(const struct vast_gpu_table *t, const char *gpu_name,
			     double gpu_ram_mb, double dlperf, const char **source,
			     const char **note)
{
	const struct vr_row *row = vr_find(t, gpu_name, gpu_ram_mb);
	const char *src, *nt;
	double s;

	if (row) {
		src = "table";
		nt = row->basis;
		s = row->s;
	} else {
		s = vr_scaled(t, dlperf, t->k, vr_note_table_k, &src, &nt);
	}
	if (source)
		*source = src;
	if (note)
		*note = nt;
	return s;
}

double vast_gpu_seconds_per_step_ram(const char *gpu_name, double gpu_ram_mb, double dlperf,
				     const char **source)
{
	return vast_gpu_table_lookup(vast_gpu_table_builtin(), gpu_name, gpu_ram_mb, dlperf,
				     source, NULL);
}

double vast_gpu_seconds_per_step(const char *gpu_name, double dlperf, const char **source)
{
	return vast_gpu_seconds_per_step_ram(gpu_name, 0, dlperf, source);
}

/* ---- the job ---- */

static const char *vr_name(const struct vast_workload *wl)
{
	return wl->recipe && *wl->recipe ? wl->recipe : "the job";
}

static bool vr_nonneg(double v)
{
	return isfinite(v) && v >= 0;
}

static int vr_job_check(const struct vast_workload *wl, struct err *e)
{
	long long ver;

	if (!wl)
		return err_set(e, ERR_USAGE, "offer ranking: no job given");
	if (!vr_nonneg(wl->vram_gb) || !vr_nonneg(wl->cuda_min) || !vr_nonneg(wl->disk_gb) ||
	    !vr_nonneg(wl->inet_down_min_mbps) || !vr_nonneg(wl->speed_factor) ||
	    !vr_nonneg(wl->boot_s))
		return err_set(e, ERR_USAGE,
			       "offer ranking: %s has a negative or non-finite need (VRAM, CUDA, disk, "
			       "network, speed factor or boot time)", vr_name(wl));
	if (!vr_nonneg(wl->reliability_min) || wl->reliability_min > 1)
		return err_set(e, ERR_USAGE,
			       "offer ranking: reliability floor %g is not between 0 and 1",
			       wl->reliability_min);
	if (wl->compute_cap_min < 0)
		return err_set(e, ERR_USAGE, "offer ranking: compute capability floor %d is negative",
			       wl->compute_cap_min);
	if (wl->driver_min && vast_query_version(wl->driver_min, &ver)) {
		struct buf show = BUF_INIT;
		int r;

		str_escape(wl->driver_min, &show);
		r = err_set(e, ERR_USAGE,
			    "offer ranking: driver floor '%s' is not a version like 535.86.05",
			    show.data);
		buf_release(&show);
		return r;
	}
	if (wl->n_exclude && !wl->exclude_machines)
		return err_set(e, ERR_USAGE, "offer ranking: %zu excluded machines but no list",
			       wl->n_exclude);
	for (size_t i = 0; i < wl->n_exclude; i++)
		if (wl->exclude_machines[i] <= 0)
			return err_set(e, ERR_USAGE, "offer ranking: excluded machine id %lld is not valid",
				       wl->exclude_machines[i]);
	return 0;
}

/* ---- filters ---- */

/* Whether the user already constrained `field` (or `alt`) from below or
 * pinned it; if so *shown is its JSON (caller frees) and the field name. */
static bool vr_user_set(const json_t *q, const char *field, const char *alt, char **shown,
			const char **which)
{
	static const char *const ops[] = { "gte", "gt", "eq", "in" };
	const char *names[2] = { field, alt };

	for (int i = 0; i < 2; i++) {
		const json_t *v;
		bool set = false;

		if (!names[i])
			continue;
		v = json_object_get(q, names[i]);
		if (!v)
			continue;
		if (!json_is_object(v)) {
			set = true;
		} else {
			for (size_t j = 0; j < sizeof(ops) / sizeof(ops[0]); j++)
				if (json_object_get(v, ops[j]))
					set = true;
		}
		if (set) {
			*shown = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
			if (!*shown)
				*shown = xstrdup("?");
			*which = names[i];
			return true;
		}
	}
	return false;
}

/* Add `term` (query language) when the user has not set the field, else
 * record that theirs was kept; `why` explains the need, `kept` what keeping
 * theirs means. */
static void vr_want(const json_t *q, struct buf *terms, struct strv *lines, const char *field,
		    const char *alt, const char *term, char *line, const char *kept)
{
	const char *which = NULL;
	char *shown = NULL;

	if (vr_user_set(q, field, alt, &shown, &which)) {
		strv_push_nodup(lines, xasprintf("%s: kept your filter %s (%s)", which, shown, kept));
		free(shown);
		free(line);
		return;
	}
	if (terms->len)
		buf_putc(terms, ' ');
	buf_puts(terms, term);
	strv_push_nodup(lines, line);
}

/* machine_id notin the excluded machines, merged into a user's notin. */
static void vr_exclude(json_t *work, const struct vast_workload *wl, struct strv *lines)
{
	json_t *obj = json_object_get(work, "machine_id"), *arr;
	struct buf shown = BUF_INIT;
	size_t added = 0;

	if (!wl->n_exclude)
		return;
	if (obj && !json_is_object(obj)) {
		strv_push_nodup(lines, xstrdup("machine_id: kept your filter (not an object); "
					       "excluded machines are still dropped when ranking"));
		return;
	}
	if (!obj) {
		obj = json_object();
		json_object_set_new(work, "machine_id", obj);
	}
	arr = json_object_get(obj, "notin");
	if (arr && !json_is_array(arr)) {
		strv_push_nodup(lines, xstrdup("machine_id: kept your notin (not a list); "
					       "excluded machines are still dropped when ranking"));
		return;
	}
	if (!arr) {
		arr = json_array();
		json_object_set_new(obj, "notin", arr);
	}
	for (size_t i = 0; i < wl->n_exclude; i++) {
		long long id = wl->exclude_machines[i];
		bool have = false;
		size_t j;
		json_t *v;

		json_array_foreach(arr, j, v) {
			double num;

			if (json_is_integer(v) && json_integer_value(v) == id)
				have = true;
			else if (json_is_string(v) && vr_num(json_string_value(v), &num) &&
				 num == (double)id)
				have = true;
		}
		if (have)
			continue;
		/* strings, as the vastai CLI sends list values */
		json_array_append_new(arr, json_sprintf("%lld", id));
		buf_printf(&shown, "%s%lld", added++ ? ", " : "", id);
	}
	if (added)
		strv_push_nodup(lines, xasprintf("machine_id notin [%s] (machines that failed %s before)",
						 shown.data, vr_name(wl)));
	buf_release(&shown);
}

int vast_rank_filters(const struct vast_workload *wl, json_t *query, struct strv *added,
		      struct err *e)
{
	struct strv lines = STRV_INIT;
	struct buf terms = BUF_INIT;
	const char *name;
	json_t *work = NULL, *cur;
	double rel, inet;
	long long ver = 0;
	char term[160];
	int r;

	r = vr_job_check(wl, e);
	if (r)
		return r;
	if (!json_is_object(query))
		return err_set(e, ERR_FAIL, "offer ranking: no query object to add filters to");
	name = vr_name(wl);
	work = json_deep_copy(query);

	if (wl->vram_gb > 0) {
		snprintf(term, sizeof(term), "gpu_ram>=%.10g", wl->vram_gb);
		vr_want(work, &terms, &lines, "gpu_ram", NULL, term,
			xasprintf("gpu_ram >= %g GB (%s needs %g GB of VRAM on one GPU)",
				  wl->vram_gb, name, wl->vram_gb),
			"offers with less VRAM than the job needs are still dropped when ranking");
	}
	if (wl->cuda_min > 0) {
		snprintf(term, sizeof(term), "cuda_max_good>=%.10g", wl->cuda_min);
		vr_want(work, &terms, &lines, "cuda_max_good", NULL, term,
			xasprintf("cuda_max_good >= %g (%s's image needs CUDA %g from the host driver)",
				  wl->cuda_min, name, wl->cuda_min),
			"offers below the job's CUDA floor are still dropped when ranking");
	}
	if (wl->driver_min) {
		vast_query_version(wl->driver_min, &ver);
		snprintf(term, sizeof(term), "driver_version>=%s", wl->driver_min);
		vr_want(work, &terms, &lines, "driver_version", NULL, term,
			xasprintf("driver_version >= %s (sent as %lld; %s's image needs this host driver)",
				  wl->driver_min, ver, name),
			"offers below the job's driver floor are still dropped when ranking");
	}
	if (wl->compute_cap_min > 0) {
		snprintf(term, sizeof(term), "compute_cap>=%d", wl->compute_cap_min);
		vr_want(work, &terms, &lines, "compute_cap", NULL, term,
			xasprintf("compute_cap >= %d (%s needs compute capability %d.%d or newer)",
				  wl->compute_cap_min, name, wl->compute_cap_min / 100,
				  wl->compute_cap_min % 100 / 10),
			"offers below the job's compute capability are still dropped when ranking");
	}
	if (wl->disk_gb > 0) {
		snprintf(term, sizeof(term), "disk_space>=%.10g", wl->disk_gb);
		vr_want(work, &terms, &lines, "disk_space", NULL, term,
			xasprintf("disk_space >= %g GB (%s needs %g GB for dataset, model, outputs and headroom)",
				  wl->disk_gb, name, wl->disk_gb),
			"offers with less free disk than the job needs are still dropped when ranking");
	}
	rel = wl->reliability_min > 0 ? wl->reliability_min : VAST_RANK_RELIABILITY_FLOOR;
	snprintf(term, sizeof(term), "reliability>=%.10g", rel);
	vr_want(work, &terms, &lines, "reliability", "reliability2", term,
		wl->reliability_min > 0 ?
		xasprintf("reliability >= %g (%s asks for it)", rel, name) :
		xasprintf("reliability >= %g (default floor: less reliable hosts fail often enough "
			  "to cost more than they save)", rel),
		"your choice wins; ranking still charges less reliable hosts for their risk");
	inet = wl->inet_down_min_mbps > 0 ? wl->inet_down_min_mbps : VAST_RANK_INET_DOWN_FLOOR_MBPS;
	snprintf(term, sizeof(term), "inet_down>=%.10g", inet);
	vr_want(work, &terms, &lines, "inet_down", NULL, term,
		wl->inet_down_min_mbps > 0 ?
		xasprintf("inet_down >= %g Mb/s (%s asks for it)", inet, name) :
		xasprintf("inet_down >= %g Mb/s (default floor: the instance downloads the model "
			  "and receives the dataset at this rate)", inet),
		"your choice wins; ranking still charges slow hosts for their transfer time");

	r = vast_query_parse(terms.data, work, e);
	if (r) {
		err_prefix(e, "offer ranking");
		goto out;
	}
	vr_exclude(work, wl, &lines);
	if (wl->disk_gb > 0) {
		cur = json_object_get(work, "allocated_storage");
		if (!cur || (json_is_number(cur) && json_number_value(cur) < wl->disk_gb)) {
			json_object_set_new(work, "allocated_storage", json_real(wl->disk_gb));
			strv_push_nodup(&lines, xasprintf("allocated_storage = %g GB (so dph_total "
							  "includes the disk %s rents)",
							  wl->disk_gb, name));
		} else if (!json_is_number(cur)) {
			strv_push_nodup(&lines, xstrdup("allocated_storage: kept yours (not a number); "
							"dph_total may not price the disk the job rents"));
		}
	}
	json_object_clear(query);
	json_object_update(query, work);
	for (size_t i = 0; i < lines.n; i++) {
		strv_push_nodup(added, lines.v[i]);
		lines.v[i] = NULL;
	}
out:
	json_decref(work);
	buf_release(&terms);
	strv_release(&lines);
	return r;
}

/* ---- ranking ---- */

enum { VR_DROP_PRICE, VR_DROP_VRAM, VR_DROP_CUDA, VR_DROP_DRIVER, VR_DROP_CAP, VR_DROP_DISK,
       VR_DROP_MACHINE, VR_DROP_N };

/* Why `o` cannot run the job, or -1 when it can. */
static int vr_cannot(const struct vast_offer *o, const struct vast_workload *wl, long long drv_min)
{
	long long drv;

	if (!isfinite(o->dph_total) || !(o->dph_total > 0))
		return VR_DROP_PRICE;
	if (wl->vram_gb > 0 && !(o->gpu_ram >= wl->vram_gb * 1000.0))
		return VR_DROP_VRAM;
	if (wl->cuda_min > 0 && o->cuda_max_good > 0 && o->cuda_max_good < wl->cuda_min - 1e-9)
		return VR_DROP_CUDA;
	if (drv_min > 0 && o->driver_version && !vast_query_version(o->driver_version, &drv) &&
	    drv < drv_min)
		return VR_DROP_DRIVER;
	if (wl->compute_cap_min > 0 && o->compute_cap > 0 && o->compute_cap < wl->compute_cap_min)
		return VR_DROP_CAP;
	if (wl->disk_gb > 0 && o->disk_space > 0 && o->disk_space < wl->disk_gb)
		return VR_DROP_DISK;
	for (size_t i = 0; i < wl->n_exclude; i++)
		if (o->machine_id == wl->exclude_machines[i])
			return VR_DROP_MACHINE;
	return -1;
}

static double vr_inet(double mbps)
{
	if (!isfinite(mbps) || mbps < VR_INET_MIN)
		return VR_INET_MIN;
	return mbps > VR_INET_MAX ? VR_INET_MAX : mbps;
}

/* $/GB charge, 0 when absent or bogus. */
static double vr_gb_cost(double usd_per_gb)
{
	return isfinite(usd_per_gb) && usd_per_gb > 0 ? usd_per_gb : 0;
}

static double vr_dlperf_per_gpu(const struct vast_offer *o)
{
	if (!isfinite(o->dlperf) || !(o->dlperf > 0))
		return 0;
	return o->dlperf / (o->num_gpus > 1 ? o->num_gpus : 1);
}

/* Fill every cost term of x, whose s_per_step (unscaled) is set. */
static void vr_cost(struct vast_estimate *x, const struct vast_offer *o, const struct vast_workload *wl)
{
	double factor = wl->speed_factor > 0 ? wl->speed_factor : 1.0;
	double dl_bytes = wl->download_bytes ? (double)wl->download_bytes : VR_DOWNLOAD_BYTES;
	double in_bytes = (double)wl->upload_bytes + (double)wl->model_bytes;
	double cost_dn = vr_gb_cost(o->inet_down_cost), cost_up = vr_gb_cost(o->inet_up_cost);
	double r, p, lost, ckpt_s, resume_s, extra_s;

	x->s_per_step *= factor;
	x->inet_down_mbps = vr_inet(o->inet_down);
	x->inet_up_mbps = vr_inet(o->inet_up);
	x->hourly_usd = o->dph_total;
	x->model_s = (double)wl->model_bytes * 8 / (x->inet_down_mbps * 1e6);
	x->boot_s = (wl->boot_s > 0 ? wl->boot_s : VR_BOOT_S) + x->model_s + VR_LOAD_S;
	x->upload_s = (double)wl->upload_bytes * 8 / (x->inet_down_mbps * 1e6);
	x->train_s = (double)wl->steps * x->s_per_step;
	x->download_s = dl_bytes * 8 / (x->inet_up_mbps * 1e6);
	x->hours = (x->boot_s + x->upload_s + x->train_s + x->download_s) / 3600.0;
	x->run_usd = x->hourly_usd * x->hours;
	x->transfer_usd = cost_dn * in_bytes / 1e9 + cost_up * dl_bytes / 1e9;

	r = o->reliability;
	if (!isfinite(r) || !(r > 0))
		r = VR_REL_UNKNOWN;
	if (r > 1)
		r = 1;
	if (r < VR_REL_MIN)
		r = VR_REL_MIN;
	x->reliability = r;
	p = 1.0 - pow(r, 1.0 + x->hours / VR_REL_HOURS);
	if (!(p > 0))
		p = 0;
	if (p > VR_P_MAX)
		p = VR_P_MAX;
	x->p_fail = p;

	/* One failure: noticing it, booting and uploading again on a new host,
	 * sending the resume files back, and the training since the last
	 * checkpoint (half an interval on average). */
	ckpt_s = wl->checkpoint_steps ? (double)wl->checkpoint_steps * x->s_per_step : x->train_s;
	lost = (ckpt_s < x->train_s ? ckpt_s : x->train_s) / 2;
	resume_s = wl->checkpoint_steps ? dl_bytes * 8 / (x->inet_down_mbps * 1e6) : 0;
	extra_s = VR_DETECT_S + x->boot_s + x->upload_s + resume_s + lost;
	x->fail_extra_usd = x->hourly_usd * extra_s / 3600.0 + cost_dn * in_bytes / 1e9;
	x->penalty_usd = p > 0 ? p / (1.0 - p) * x->fail_extra_usd : 0;
	x->total_usd = x->run_usd + x->transfer_usd + x->penalty_usd;
	if (isnan(x->total_usd))
		x->total_usd = INFINITY;
}

/* Totals are compared to a hundredth of a cent; absurd ones (a bogus
 * price) come after every sane one and are compared as they are, so the
 * key never overflows. */
#define VR_SANE_USD 1e12

static double vr_quant(double usd)
{
	if (isnan(usd))
		return INFINITY;
	return usd < VR_SANE_USD ? floor(usd / VR_TIE_USD + 0.5) : usd;
}

static int vr_cmp(const void *pa, const void *pb, void *arg)
{
	const struct vast_estimate *a = pa, *b = pb;
	const struct vast_offer *offers = arg;
	bool sa = a->total_usd < VR_SANE_USD, sb = b->total_usd < VR_SANE_USD;
	double qa = vr_quant(a->total_usd), qb = vr_quant(b->total_usd);
	long long ia = offers[a->offer].id, ib = offers[b->offer].id;

	if (sa != sb)
		return sa ? -1 : 1;
	if (qa != qb)
		return qa < qb ? -1 : 1;
	if (a->reliability != b->reliability)
		return a->reliability > b->reliability ? -1 : 1;
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return a->offer < b->offer ? -1 : a->offer > b->offer;
}

static int vr_dcmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return a < b ? -1 : a > b;
}

int vast_rank(const struct vast_offer *offers, size_t n, const struct vast_workload *wl,
	      struct vast_estimate **out, size_t *nout, struct err *e)
{
	const struct vast_gpu_table *t;
	struct vast_estimate *est = NULL;
	size_t m = 0, nk = 0, drops[VR_DROP_N] = { 0 };
	double *ks = NULL, k;
	const char *knote = vr_note_table_k;
	long long drv_min = 0;
	int r;

	*out = NULL;
	*nout = 0;
	r = vr_job_check(wl, e);
	if (r)
		return r;
	if (!n)
		return 0;
	if (!offers)
		return err_set(e, ERR_USAGE, "offer ranking: %zu offers but no array", n);
	if (wl->driver_min)
		vast_query_version(wl->driver_min, &drv_min);
	t = vast_gpu_table_builtin();
	est = xcalloc(n, sizeof(*est));
	ks = xmalloc(n * sizeof(*ks));

	/* Pass 1: drop what cannot run; look the known GPUs up. */
	for (size_t i = 0; i < n; i++) {
		const struct vast_offer *o = &offers[i];
		int why = vr_cannot(o, wl, drv_min);
		const struct vr_row *row;
		struct vast_estimate *x;
		double dl;

		if (why >= 0) {
			drops[why]++;
			continue;
		}
		x = &est[m++];
		x->offer = i;
		row = vr_find(t, o->gpu_name, o->gpu_ram);
		if (!row)
			continue;
		x->s_per_step = row->s;
		x->speed_source = "table";
		x->speed_note = row->basis;
		dl = vr_dlperf_per_gpu(o);
		if (dl > 0)
			ks[nk++] = row->s * dl;
	}

	/* Calibrate dlperf against the known GPUs in this search when there
	 * are enough of them; else the table's reference rows. */
	k = t->k;
	if (nk >= VR_CALIBRATE_MIN) {
		qsort(ks, nk, sizeof(*ks), vr_dcmp);
		k = nk % 2 ? ks[nk / 2] : (ks[nk / 2 - 1] + ks[nk / 2]) / 2;
		knote = vr_note_offers_k;
	}

	/* Pass 2: scale the unknown GPUs, then cost everything. */
	for (size_t i = 0; i < m; i++) {
		struct vast_estimate *x = &est[i];
		const struct vast_offer *o = &offers[x->offer];

		if (!x->speed_source)
			x->s_per_step = vr_scaled(t, vr_dlperf_per_gpu(o), k, knote,
						  &x->speed_source, &x->speed_note);
		vr_cost(x, o, wl);
	}
	qsort_r(est, m, sizeof(*est), vr_cmp, (void *)offers);

	if (m < n)
		log_debug("offer ranking: %zu of %zu offers cannot run %s (price %zu, VRAM %zu, "
			  "CUDA %zu, driver %zu, compute capability %zu, disk %zu, excluded %zu)",
			  n - m, n, vr_name(wl), drops[VR_DROP_PRICE], drops[VR_DROP_VRAM],
			  drops[VR_DROP_CUDA], drops[VR_DROP_DRIVER], drops[VR_DROP_CAP],
			  drops[VR_DROP_DISK], drops[VR_DROP_MACHINE]);
	free(ks);
	if (!m) {
		free(est);
		return 0;
	}
	if (m < n)
		est = xreallocarray(est, m, sizeof(*est));
	*out = est;
	*nout = m;
	return 0;
}

/* ---- explaining ---- */

static void vr_bytes(struct buf *b, double bytes)
{
	if (bytes >= 1e9)
		buf_printf(b, "%.1f GB", bytes / 1e9);
	else
		buf_printf(b, "%.0f MB", bytes / 1e6);
}

void vast_estimate_explain(const struct vast_estimate *est, const struct vast_offer *offer,
			   const struct vast_workload *wl, struct buf *out)
{
	double dl_bytes = wl->download_bytes ? (double)wl->download_bytes : VR_DOWNLOAD_BYTES;
	double factor = wl->speed_factor > 0 ? wl->speed_factor : 1.0;
	struct buf name = BUF_INIT;

	str_escape(offer->gpu_name ? offer->gpu_name : "unknown GPU", &name);
	buf_printf(out, "offer %lld: %s x%d, $%.3f/h, reliability %.3f, down/up %.0f/%.0f Mb/s\n",
		   offer->id, name.data, offer->num_gpus > 0 ? offer->num_gpus : 1, est->hourly_usd,
		   est->reliability, est->inet_down_mbps, est->inet_up_mbps);
	buf_printf(out, "  speed     %.2f s/step (%s: %s)", est->s_per_step, est->speed_source,
		   est->speed_note ? est->speed_note : "");
	if (factor != 1.0)
		buf_printf(out, " including the recipe's factor %g", factor);
	buf_puts(out, "\n");
	if (offer->num_gpus > 1)
		buf_printf(out, "            ai-toolkit trains on one GPU: the other %d are paid for "
			   "but do not speed it up\n", offer->num_gpus - 1);
	buf_printf(out, "  boot      %.0f s = %.0f s start + %.0f s model (",
		   est->boot_s, est->boot_s - est->model_s - VR_LOAD_S, est->model_s);
	vr_bytes(out, (double)wl->model_bytes);
	buf_printf(out, ") + %.0f s load/quantize\n", VR_LOAD_S);
	buf_printf(out, "  upload    %.0f s (", est->upload_s);
	vr_bytes(out, (double)wl->upload_bytes);
	buf_printf(out, " at %.0f Mb/s)\n", est->inet_down_mbps);
	buf_printf(out, "  train     %.0f s = %llu steps x %.2f s\n", est->train_s, wl->steps,
		   est->s_per_step);
	buf_printf(out, "  download  %.0f s (", est->download_s);
	vr_bytes(out, dl_bytes);
	buf_printf(out, " at %.0f Mb/s)\n", est->inet_up_mbps);
	buf_printf(out, "  run       %.2f h x $%.3f/h = $%.2f\n", est->hours, est->hourly_usd,
		   est->run_usd);
	if (est->transfer_usd > 0)
		buf_printf(out, "  transfer  $%.2f (the host's bandwidth charges)\n", est->transfer_usd);
	buf_printf(out, "  failure   %.1f %% chance; %.3f expected failures x $%.2f each = $%.3f\n",
		   est->p_fail * 100, est->p_fail < 1 ? est->p_fail / (1 - est->p_fail) : 0,
		   est->fail_extra_usd, est->penalty_usd);
	buf_printf(out, "  total     $%.2f\n", est->total_usd);
	buf_release(&name);
}

static void vr_jset(json_t *o, const char *key, double v)
{
	json_object_set_new(o, key, isfinite(v) ? json_real(v) : json_null());
}

json_t *vast_estimate_json(const struct vast_estimate *est, const struct vast_offer *offer)
{
	json_t *o = json_object();

	json_object_set_new(o, "offer_id", json_integer(offer->id));
	json_object_set_new(o, "machine_id", json_integer(offer->machine_id));
	json_object_set_new(o, "gpu_name",
			    offer->gpu_name && str_utf8_valid(offer->gpu_name, strlen(offer->gpu_name)) ?
			    json_string(offer->gpu_name) : json_null());
	json_object_set_new(o, "num_gpus", json_integer(offer->num_gpus));
	vr_jset(o, "s_per_step", est->s_per_step);
	json_object_set_new(o, "speed_source", json_string(est->speed_source));
	json_object_set_new(o, "speed_note",
			    est->speed_note && str_utf8_valid(est->speed_note, strlen(est->speed_note)) ?
			    json_string(est->speed_note) : json_null());
	vr_jset(o, "inet_down_mbps", est->inet_down_mbps);
	vr_jset(o, "inet_up_mbps", est->inet_up_mbps);
	vr_jset(o, "hourly_usd", est->hourly_usd);
	vr_jset(o, "reliability", est->reliability);
	vr_jset(o, "model_s", est->model_s);
	vr_jset(o, "boot_s", est->boot_s);
	vr_jset(o, "upload_s", est->upload_s);
	vr_jset(o, "train_s", est->train_s);
	vr_jset(o, "download_s", est->download_s);
	vr_jset(o, "hours", est->hours);
	vr_jset(o, "run_usd", est->run_usd);
	vr_jset(o, "transfer_usd", est->transfer_usd);
	vr_jset(o, "p_fail", est->p_fail);
	vr_jset(o, "fail_extra_usd", est->fail_extra_usd);
	vr_jset(o, "penalty_usd", est->penalty_usd);
	vr_jset(o, "total_usd", est->total_usd);
	return o;
}

const char *vast_rank_model_summary(void)
{
	return "total = dph_total x hours + bandwidth charges + failure penalty;\n"
	       "hours = (boot + model download + load + upload + steps x s/step + download) / 3600,\n"
	       "transfers at the offer's inet_down/inet_up (clamped to 10..10000 Mb/s);\n"
	       "p_fail = 1 - reliability^(1 + hours/24); penalty = p_fail/(1-p_fail) x the cost of\n"
	       "one failure (detection, boot and upload again, training since the last checkpoint).\n"
	       "See docs/offer-ranking.md.";
}
