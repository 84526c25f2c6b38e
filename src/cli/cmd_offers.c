/* `ferry offers`: search the market in the vastai CLI's own language, and
 * with --rank, rank the offers for a job by its whole estimated cost. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsx.h"
#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "recipe/recipe.h"
#include "vast/client.h"
#include "vast/model.h"
#include "vast/query.h"
#include "vast/rank.h"

const char cmd_offers_usage[] =
	"usage: ferry offers [QUERY...] [options]\n"
	"       ferry offers --rank --recipe NAME --steps N (--dataset DIR | --dataset-bytes N)\n"
	"                    [QUERY...] [options]\n"
	"\n"
	"Search the Vast.ai market. QUERY is the vastai CLI's language, unchanged:\n"
	"`field op value` terms such as 'gpu_ram>=24' 'num_gpus=1' 'gpu_name=RTX_4090'\n"
	"'geolocation in [US,CA]' 'reliability > 0.98' (docs/offer-queries.md).\n"
	"The defaults verified=true external=false rentable=true apply unless -n;\n"
	"`field=any` removes a term.\n"
	"\n"
	"Options:\n"
	"  -n, --no-default      drop the default filters\n"
	"  -o, --order FIELDS    sort on the server, e.g. 'dph_total,dlperf-' (default score-)\n"
	"  --type TYPE           on-demand (default), bid (also interruptible) or reserved\n"
	"  --limit N             at most N offers\n"
	"  --storage GB          disk to price the offers with (default 5)\n"
	"  --json                print JSON: {\"offers\": [...]} as Vast sends them\n"
	"  --print-query         print the request body and exit (nothing is sent)\n"
	"  --from FILE           read a saved search answer instead of asking Vast\n"
	"                        (the query is not applied to it)\n"
	"\n"
	"Ranking for a job (docs/offer-ranking.md):\n"
	"  --rank                sort by the estimated cost of the whole job\n"
	"  --recipe NAME         the trainer recipe (needs: VRAM, CUDA, driver, disk)\n"
	"  --steps N             training steps\n"
	"  --dataset DIR         the dataset, for its size; or --dataset-bytes N\n"
	"  --exclude-machine ID  never this machine (repeatable)\n"
	"  --min-reliability X   reliability floor (default 0.95)\n"
	"  --min-inet-down MBPS  download bandwidth floor (default 100)\n"
	"  --explain             show every term of the estimate per offer\n"
	"  --top N               show only the N cheapest (default 20; 0: all)\n";

struct offers_args {
	struct vast_query_opts q;
	bool json, print_query, rank, explain;
	const char *from;
	const char *recipe;
	const char *dataset;
	unsigned long long steps, dataset_bytes, top;
	bool have_dataset_bytes;
	double min_rel, min_down;
	long long *exclude;
	size_t n_exclude, alloc_exclude;
};

static int offers_parse(int argc, char **argv, struct offers_args *a, int *first_term)
{
	enum { O_TYPE = 256, O_LIMIT, O_STORAGE, O_JSON, O_PRINT, O_FROM, O_RANK, O_RECIPE,
	       O_STEPS, O_DATASET, O_DATASET_BYTES, O_EXCLUDE, O_MIN_REL, O_MIN_DOWN,
	       O_EXPLAIN, O_TOP };
	static const struct option opts[] = {
		{ "no-default", no_argument, NULL, 'n' },
		{ "order", required_argument, NULL, 'o' },
		{ "type", required_argument, NULL, O_TYPE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "storage", required_argument, NULL, O_STORAGE },
		{ "json", no_argument, NULL, O_JSON },
		{ "print-query", no_argument, NULL, O_PRINT },
		{ "from", required_argument, NULL, O_FROM },
		{ "rank", no_argument, NULL, O_RANK },
		{ "recipe", required_argument, NULL, O_RECIPE },
		{ "steps", required_argument, NULL, O_STEPS },
		{ "dataset", required_argument, NULL, O_DATASET },
		{ "dataset-bytes", required_argument, NULL, O_DATASET_BYTES },
		{ "exclude-machine", required_argument, NULL, O_EXCLUDE },
		{ "min-reliability", required_argument, NULL, O_MIN_REL },
		{ "min-inet-down", required_argument, NULL, O_MIN_DOWN },
		{ "explain", no_argument, NULL, O_EXPLAIN },
		{ "top", required_argument, NULL, O_TOP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	char *end;
	int c;

	a->top = 20;
	while ((c = getopt_long(argc, argv, "no:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': a->q.no_defaults = true; break;
		case 'o': a->q.order = optarg; break;
		case O_TYPE: a->q.type = optarg; break;
		case O_LIMIT:
			if (cli_uint("--limit", optarg, &v) || v > 100000)
				return EXIT_USAGE;
			a->q.limit = (int)v;
			break;
		case O_STORAGE:
			a->q.storage_gb = strtod(optarg, &end);
			if (*end || a->q.storage_gb <= 0)
				return cli_usage("offers", "--storage wants GB, not '%s'", optarg);
			break;
		case O_JSON: a->json = true; break;
		case O_PRINT: a->print_query = true; break;
		case O_FROM: a->from = optarg; break;
		case O_RANK: a->rank = true; break;
		case O_RECIPE: a->recipe = optarg; break;
		case O_STEPS:
			if (cli_uint("--steps", optarg, &a->steps))
				return EXIT_USAGE;
			break;
		case O_DATASET: a->dataset = optarg; break;
		case O_DATASET_BYTES:
			if (cli_uint("--dataset-bytes", optarg, &a->dataset_bytes))
				return EXIT_USAGE;
			a->have_dataset_bytes = true;
			break;
		case O_EXCLUDE:
			if (cli_uint("--exclude-machine", optarg, &v))
				return EXIT_USAGE;
			ALLOC_GROW(a->exclude, a->n_exclude + 1, a->alloc_exclude);
			a->exclude[a->n_exclude++] = (long long)v;
			break;
		case O_MIN_REL:
			a->min_rel = strtod(optarg, &end);
			if (*end || a->min_rel < 0 || a->min_rel > 1)
				return cli_usage("offers", "--min-reliability wants 0..1, not '%s'",
						 optarg);
			break;
		case O_MIN_DOWN:
			a->min_down = strtod(optarg, &end);
			if (*end || a->min_down < 0)
				return cli_usage("offers", "--min-inet-down wants Mb/s, not '%s'",
						 optarg);
			break;
		case O_EXPLAIN: a->explain = true; break;
		case O_TOP:
			if (cli_uint("--top", optarg, &a->top))
				return EXIT_USAGE;
			break;
		case 'h': fputs(cmd_offers_usage, stdout); return -2;
		default: return cli_usage("offers", "unknown option");
		}
	}
	*first_term = optind;
	if (!a->rank && (a->recipe || a->steps || a->dataset || a->have_dataset_bytes ||
			 a->explain || a->n_exclude))
		return cli_usage("offers", "--recipe, --steps, --dataset, --exclude-machine and "
				 "--explain go with --rank");
	if (a->rank) {
		if (!a->recipe)
			return cli_usage("offers", "--rank needs --recipe NAME (one of: %s)",
					 recipe_names());
		if (!recipe_find(a->recipe))
			return cli_usage("offers", "no recipe '%s' (there are: %s)", a->recipe,
					 recipe_names());
		if (!a->steps)
			return cli_usage("offers", "--rank needs --steps N");
		if (!a->dataset == !a->have_dataset_bytes)
			return cli_usage("offers", "--rank needs one of --dataset DIR and "
					 "--dataset-bytes N");
	}
	return -1;
}

/* The job a recipe and the flags describe. */
static int offers_job(struct offers_args *a, struct vast_workload *wl, struct err *e)
{
	unsigned long long bytes = a->dataset_bytes;

	if (a->dataset) {
		int r = fsx_tree_bytes(a->dataset, &bytes, e);

		if (r)
			return err_prefix(e, "--dataset");
	}
	recipe_offer_needs(recipe_find(a->recipe), bytes, a->steps, wl);
	wl->reliability_min = a->min_rel;
	wl->inet_down_min_mbps = a->min_down;
	wl->exclude_machines = a->exclude;
	wl->n_exclude = a->n_exclude;
	return 0;
}

static void offers_table_head(bool rank)
{
	/* VRAM in GB of 1000 MB and the reliability field: the units and
	 * fields a query (gpu_ram>=24, reliability>0.98) filters on. */
	printf("%-10s %-18s %8s %7s %7s %7s %6s %11s  %-18s", "ID", "GPU", "VRAM(GB)", "$/h",
	       "DLPerf", "DLP/$", "Rel", "Mb/s dn/up", "Location");
	if (rank)
		printf(" %7s %7s %8s", "s/step", "hours", "job $");
	putchar('\n');
}

static void offers_table_row(const struct vast_offer *o, const struct vast_estimate *est)
{
	char gpu[64], net[32];

	snprintf(gpu, sizeof(gpu), "%dx %s", o->num_gpus, o->gpu_name ? o->gpu_name : "?");
	snprintf(net, sizeof(net), "%.0f/%.0f", o->inet_down, o->inet_up);
	printf("%-10lld %-18.18s %8.1f %7.3f %7.1f %7.1f %6.3f %11s  %-18.18s", o->id, gpu,
	       o->gpu_ram / 1000.0, o->dph_total, o->dlperf, o->dlperf_per_dphtotal,
	       o->reliability, net, o->geolocation ? o->geolocation : "");
	if (est)
		printf(" %7.2f %7.2f %8.2f", est->s_per_step, est->hours, est->total_usd);
	putchar('\n');
}

/* The search answer's bytes, from Vast or from --from FILE. */
static int offers_fetch(struct cli *cli, struct offers_args *a, const json_t *query,
			struct buf *body, struct err *e)
{
	struct vast_client *c = NULL;
	int r;

	if (a->from)
		return fsx_read_file(a->from, body, (size_t)1 << 30, e);
	/* Searching needs no key; a key, when there is one, is sent. */
	r = vast_client_from_config(&c, cli->cfg, false, e);
	if (!r)
		r = vast_search_offers_raw(c, query, body, e);
	vast_client_free(c);
	return r;
}

/* --json without --rank prints the offers as Vast sent them. */
static int offers_print_raw(const struct buf *body, const char *what, struct err *e)
{
	json_t *answer = NULL, *out;
	int r = json_parse(body->data, body->len, what, &answer, e);

	if (!r && !json_is_array(json_object_get(answer, "offers")))
		r = err_set(e, ERR_FORMAT, "%s: no \"offers\" list", what);
	if (!r) {
		out = json_pack("{s:O}", "offers", json_object_get(answer, "offers"));
		json_print(stdout, out, 1);
		json_decref(out);
	}
	json_decref(answer);
	return r;
}

int cmd_offers(struct cli *cli, int argc, char **argv)
{
	struct offers_args a = { 0 };
	struct vast_workload job;
	struct vast_offer *offers = NULL;
	struct vast_estimate *est = NULL;
	struct strv added = STRV_INIT;
	size_t n = 0, nest = 0;
	json_t *query = NULL;
	struct buf body = BUF_INIT;
	struct err e = { 0 };
	int first = 0, status = EXIT_OK, r;

	status = offers_parse(argc, argv, &a, &first);
	if (status != -1) {
		status = status == -2 ? EXIT_OK : status;
		goto out;
	}
	status = EXIT_OK;
	r = vast_query_build((const char *const *)argv + first, (size_t)(argc - first), &a.q,
			     &query, &e);
	if (!r && a.rank) {
		r = offers_job(&a, &job, &e);
		if (!r)
			r = vast_rank_filters(&job, query, &added, &e);
	}
	if (r) {
		status = cli_fail(&e);
		goto out;
	}
	for (size_t i = 0; i < added.n && !a.json; i++)
		fprintf(stderr, "ferry: added %s\n", added.v[i]);
	if (a.print_query) {
		json_print(stdout, query, 1);
		goto out;
	}
	r = offers_fetch(cli, &a, query, &body, &e);
	if (!r && a.json && !a.rank)
		r = offers_print_raw(&body, a.from ? a.from : "offers reply", &e);
	else if (!r)
		r = vast_offers_read_bytes(body.data, body.len, (int)config_int(cli->cfg, "threads"),
					   &offers, &n, &e);
	if (!r && a.rank)
		r = vast_rank(offers, n, &job, &est, &nest, &e);
	if (r) {
		if (a.from)
			err_prefix(&e, "%s", a.from);
		status = cli_fail(&e);
		goto out;
	}
	if (a.json && !a.rank)
		goto out;
	if (a.json) {
		json_t *list = json_array(), *filters = json_array(), *out;

		for (size_t i = 0; i < nest && (!a.top || i < a.top); i++)
			json_array_append_new(list, vast_estimate_json(&est[i],
								       &offers[est[i].offer]));
		for (size_t i = 0; i < added.n; i++)
			json_array_append_new(filters, json_string(added.v[i]));
		out = json_pack("{s:o, s:o, s:o, s:I}", "filters_added", filters, "query",
				json_deep_copy(query), "ranked", list, "offers_seen", (json_int_t)n);
		json_print(stdout, out, 1);
		json_decref(out);
		goto out;
	}
	if (a.rank) {
		if (!nest) {
			fprintf(stderr, "ferry: none of the %zu offers can run %s\n", n, job.recipe);
			status = EXIT_FAILED;
			goto out;
		}
		if (a.explain)
			printf("%s\n\n", vast_rank_model_summary());
		offers_table_head(true);
		for (size_t i = 0; i < nest && (!a.top || i < a.top); i++) {
			offers_table_row(&offers[est[i].offer], &est[i]);
			if (a.explain) {
				struct buf b = BUF_INIT;

				vast_estimate_explain(&est[i], &offers[est[i].offer], &job, &b);
				fputs(b.data, stdout);
				putchar('\n');
				buf_release(&b);
			}
		}
		fprintf(stderr, "ferry: %zu of %zu offers can run %s; cheapest whole job first\n",
			nest, n, job.recipe);
		goto out;
	}
	if (!n) {
		fprintf(stderr, "ferry: no offers match\n");
		goto out;
	}
	offers_table_head(false);
	for (size_t i = 0; i < n; i++)
		offers_table_row(&offers[i], NULL);
out:
	strv_release(&added);
	free(est);
	vast_offers_free(offers, n);
	json_decref(query);
	buf_release(&body);
	free(a.exclude);
	return status;
}
