/* `ferry rent`, `ferry instances` and `ferry destroy`: renting that cannot
 * leak (docs/renting.md), and the instances it leaves for you to see. */
#include "cli/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "recipe/recipe.h"
#include "vast/client.h"
#include "vast/keys.h"
#include "vast/model.h"
#include "vast/query.h"
#include "vast/rent.h"

const char cmd_rent_usage[] =
	"usage: ferry rent OFFER_ID [options]\n"
	"       ferry rent --best [QUERY...] [options]\n"
	"\n"
	"Rent an instance. It is always labelled (ferry-...); when Vast's answer does\n"
	"not name the new instance, ferry looks the label up before it would ever\n"
	"create again; a failed create that left an instance behind has it destroyed;\n"
	"an offer someone else took moves on to the next offer (with --best).\n"
	"Your SSH public key is registered on the account before the create and\n"
	"attached to the instance after.\n"
	"\n"
	"Options:\n"
	"  --best               search with QUERY (vastai language, defaults apply, and\n"
	"                       disk_space>=--disk) and rent the first offer that can\n"
	"                       be had, in search order\n"
	"  -o, --order FIELDS   search order for --best (default score-)\n"
	"  --image IMG          container image (default: the flux-dev-lora recipe's)\n"
	"  --disk GB            container disk (default 80)\n"
	"  --label L            label; 'ferry-' is put in front when missing\n"
	"                       (default ferry-<time>-<random>)\n"
	"  --env K=V            environment variable for the container (repeatable);\n"
	"                       --env K alone takes K's value from ferry's environment,\n"
	"                       so a secret never sits in a command line\n"
	"  --onstart FILE       script run when the container starts\n"
	"  --interruptible      rent as an interruptible (bid) instance\n"
	"  --bid PRICE          $/h to bid (default: the offer's minimum bid)\n"
	"  --adopt              when an instance with the label exists, keep it\n"
	"  --no-key             rent without registering an SSH key\n"
	"  --json               print the result as JSON\n";

const char cmd_instances_usage[] =
	"usage: ferry instances [--label L] [--json]\n"
	"\n"
	"List your Vast.ai instances (every page of the v1 list).\n"
	"  --label L   only instances with this label ('ferry-' put in front when\n"
	"              missing, as rent does)\n"
	"  --json      print JSON\n";

const char cmd_destroy_usage[] =
	"usage: ferry destroy ID... [--json]\n"
	"       ferry destroy --label L [--json]\n"
	"\n"
	"Destroy instances and confirm each is gone. --label L finds what\n"
	"`ferry rent --label L` made ('ferry-' is put in front when missing).\n"
	"Exit 1 when any is still there, when an ID names no instance of this\n"
	"account, or when no instance has the label.\n";

static int rent_add_env(json_t *env, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *name = eq ? xstrndup(arg, (size_t)(eq - arg)) : xstrdup(arg);
	const char *value = eq ? eq + 1 : getenv(name);
	struct err e = { 0 };
	int status = 0;

	if (!*name)
		status = cli_usage("rent", "--env wants K=V or K, not '%s'", arg);
	else if (!value)
		status = cli_usage("rent", "--env %s: %s is not set in ferry's environment", name,
				   name);
	else if (vast_rent_env_add(env, name, value, &e))
		status = cli_usage("rent", "--env %s", e.msg);
	free(name);
	return status;
}

static void rent_print(const struct vast_rent_result *res, const char *label, bool json)
{
	if (json) {
		json_t *o = json_pack("{s:I, s:I, s:s, s:b, s:i, s:i}", "instance_id",
				      (json_int_t)res->instance_id, "offer_id",
				      (json_int_t)res->offer_id, "label", label, "adopted",
				      res->adopted, "creates", res->creates, "destroyed_strays",
				      res->destroyed);

		json_print(stdout, o, 1);
		json_decref(o);
		return;
	}
	printf("instance %lld%s (label %s", res->instance_id, res->adopted ? " (kept)" : "",
	       label);
	if (res->offer_id)
		printf(", offer %lld", res->offer_id);
	printf(")\n");
	if (res->destroyed)
		printf("destroyed %d stray instance(s) on the way\n", res->destroyed);
	fprintf(stderr, "ferry: it bills until destroyed: `ferry destroy %lld`\n",
		res->instance_id);
}

int cmd_rent(struct cli *cli, int argc, char **argv)
{
	enum { O_BEST = 256, O_IMAGE, O_DISK, O_LABEL, O_ENV, O_ONSTART, O_INTR, O_BID,
	       O_ADOPT, O_NOKEY, O_JSON };
	static const struct option opts[] = {
		{ "best", no_argument, NULL, O_BEST },
		{ "order", required_argument, NULL, 'o' },
		{ "image", required_argument, NULL, O_IMAGE },
		{ "disk", required_argument, NULL, O_DISK },
		{ "label", required_argument, NULL, O_LABEL },
		{ "env", required_argument, NULL, O_ENV },
		{ "onstart", required_argument, NULL, O_ONSTART },
		{ "interruptible", no_argument, NULL, O_INTR },
		{ "bid", required_argument, NULL, O_BID },
		{ "adopt", no_argument, NULL, O_ADOPT },
		{ "no-key", no_argument, NULL, O_NOKEY },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t nrecipes;
	struct vast_rent_opts ro = { .image = recipe_all(&nrecipes)[0].image, .disk_gb = 80 };
	struct vast_rent_result res = { 0 };
	struct vast_client *c = NULL;
	struct buf onstart = BUF_INIT;
	json_t *env = json_object();
	long long *ids = NULL;
	double *min_bids = NULL;
	char *label = NULL, *pub = NULL, *lock_dir = NULL, *end;
	const char *order = NULL;
	bool best = false, json = false, nokey = false;
	struct err e = { 0 };
	size_t nids = 0;
	int ch, status = EXIT_OK, r;
	unsigned long long v;

	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case O_BEST: best = true; break;
		case 'o': order = optarg; break;
		case O_IMAGE:
			if (!str_utf8_valid(optarg, strlen(optarg)) || !*optarg) {
				status = cli_usage("rent", "--image must be UTF-8 text");
				goto out;
			}
			ro.image = optarg;
			break;
		case O_DISK:
			ro.disk_gb = strtod(optarg, &end);
			if (*end || !isfinite(ro.disk_gb) || ro.disk_gb < 8 || ro.disk_gb > 100000) {
				status = cli_usage("rent", "--disk wants GB (at least 8), not '%s'",
						   optarg);
				goto out;
			}
			break;
		case O_LABEL:
			free(label);
			if (vast_label(optarg, &label, &e)) {
				status = cli_usage("rent", "--label: %s", e.msg);
				goto out;
			}
			break;
		case O_ENV:
			status = rent_add_env(env, optarg);
			if (status)
				goto out;
			break;
		case O_ONSTART:
			buf_reset(&onstart);
			r = fsx_read_file(optarg, &onstart, 4096, &e);
			if (r) {
				status = cli_fail(&e);
				goto out;
			}
			if (!str_utf8_valid(onstart.data, onstart.len) ||
			    memchr(onstart.data, '\0', onstart.len)) {
				status = cli_usage("rent", "--onstart %s must be UTF-8 text", optarg);
				goto out;
			}
			ro.onstart = onstart.data;
			break;
		case O_INTR: ro.interruptible = true; break;
		case O_BID:
			ro.bid = strtod(optarg, &end);
			if (*end || !isfinite(ro.bid) || ro.bid < 0.001 || ro.bid > 128) {
				status = cli_usage("rent", "--bid wants $/h between 0.001 and 128, "
						   "not '%s'", optarg);
				goto out;
			}
			break;
		case O_ADOPT: ro.adopt = true; break;
		case O_NOKEY: nokey = true; break;
		case O_JSON: json = true; break;
		case 'h': fputs(cmd_rent_usage, stdout); goto out;
		default: status = cli_usage("rent", "unknown option"); goto out;
		}
	}
	if (ro.bid > 0 && !ro.interruptible) {
		status = cli_usage("rent", "--bid goes with --interruptible");
		goto out;
	}
	if (!best && argc - optind != 1) {
		status = cli_usage("rent", "give one OFFER_ID, or --best [QUERY...]");
		goto out;
	}
	if (!best && (cli_uint("OFFER_ID", argv[optind], &v) || !v)) {
		status = EXIT_USAGE;
		goto out;
	}
	if (!label)
		label = vast_label_new();
	ro.label = label;
	ro.env = env;
	if (!nokey) {
		r = vast_pubkey_read(config_get(cli->cfg, "ssh.key_path"), &pub, &e);
		if (r) {
			err_prefix(&e, "SSH key (or rent with --no-key)");
			status = cli_fail(&e);
			goto out;
		}
		ro.pubkey = pub;
	}
	lock_dir = xasprintf("%s/locks", config_get(cli->cfg, "state_dir"));
	ro.lock_dir = lock_dir;
	r = vast_client_from_config(&c, cli->cfg, true, &e);
	if (!r && best) {
		r = vast_rent_search(c, (const char *const *)argv + optind, (size_t)(argc - optind),
				     order, &ro, &ids, &min_bids, &nids, &e);
	} else if (!r) {
		ids = xcalloc(1, sizeof(*ids));
		ids[0] = (long long)v;
		nids = 1;
		if (ro.interruptible && ro.bid <= 0) {
			min_bids = xcalloc(1, sizeof(*min_bids));
			r = vast_offer_min_bid(c, ids[0], &min_bids[0], &e);
		}
	}
	if (!r)
		r = vast_rent(c, ids, min_bids, nids, &ro, &res, &e);
	if (r) {
		status = cli_fail(&e);
		if (res.instance_id) {
			/* Rented, then something after failed: it bills. */
			fprintf(stderr, "ferry: instance %lld (label %s) exists and bills; "
				"`ferry destroy %lld` ends it\n", res.instance_id, label,
				res.instance_id);
			if (json)
				rent_print(&res, label, true);
		}
		goto out;
	}
	rent_print(&res, label, json);
out:
	free(lock_dir);
	vast_client_free(c);
	json_decref(env);
	buf_release(&onstart);
	free(ids);
	free(min_bids);
	free(label);
	free(pub);
	return status;
}

static json_t *instance_json(const struct vast_instance *in)
{
	char *host = NULL;
	int port = 0;
	bool direct = false;
	json_t *o, *ssh = json_null();

	if (!vast_instance_ssh_endpoint(in, &host, &port, &direct, NULL)) {
		ssh = json_pack("{s:s, s:i, s:b}", "host", host, "port", port, "direct", direct);
		free(host);
	}
	o = json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:i, s:f, s:I, s:f, s:s?, s:o}", "id",
		      (json_int_t)in->id, "label", in->label, "actual_status", in->actual_status,
		      "intended_status", in->intended_status, "gpu_name", in->gpu_name,
		      "num_gpus", in->num_gpus, "dph_total", in->dph_total, "machine_id",
		      (json_int_t)in->machine_id, "start_date", in->start_date, "status_msg",
		      in->status_msg, "ssh", ssh);
	return o;
}

int cmd_instances(struct cli *cli, int argc, char **argv)
{
	enum { O_LABEL = 256, O_JSON };
	static const struct option opts[] = {
		{ "label", required_argument, NULL, O_LABEL },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vast_client *c = NULL;
	struct vast_instance *v = NULL;
	char *label = NULL;
	bool json = false;
	struct err e = { 0 };
	size_t n = 0;
	int ch, status = EXIT_OK;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case O_LABEL:
			free(label);
			if (vast_label(optarg, &label, &e)) {
				status = cli_usage("instances", "--label: %s", e.msg);
				goto out;
			}
			break;
		case O_JSON: json = true; break;
		case 'h': fputs(cmd_instances_usage, stdout); goto out;
		default: status = cli_usage("instances", "unknown option"); goto out;
		}
	}
	if (optind < argc) {
		status = cli_usage("instances", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (vast_client_from_config(&c, cli->cfg, true, &e) ||
	    vast_list_instances(c, label, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (json) {
		json_t *list = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(list, instance_json(&v[i]));
		json_print(stdout, list, 1);
		json_decref(list);
		goto out;
	}
	if (!n) {
		fprintf(stderr, "ferry: no instances%s%s\n", label ? " labelled " : "",
			label ? label : "");
		goto out;
	}
	printf("%-10s %-32s %-10s %-16s %7s  %s\n", "ID", "LABEL", "STATUS", "GPU", "$/h", "SSH");
	for (size_t i = 0; i < n; i++) {
		char *host = NULL, gpu[48], ssh[300] = "-";
		int port = 0;
		bool direct = false;

		if (!vast_instance_ssh_endpoint(&v[i], &host, &port, &direct, NULL)) {
			snprintf(ssh, sizeof(ssh), "%s:%d (%s)", host, port, direct ? "direct" : "proxy");
			free(host);
		}
		snprintf(gpu, sizeof(gpu), "%dx %s", v[i].num_gpus,
			 v[i].gpu_name ? v[i].gpu_name : "?");
		printf("%-10lld %-32.32s %-10.10s %-16.16s %7.3f  %s\n", v[i].id,
		       v[i].label ? v[i].label : "", v[i].actual_status ? v[i].actual_status : "-",
		       gpu, v[i].dph_total, ssh);
	}
out:
	vast_instances_free(v, n);
	vast_client_free(c);
	free(label);
	return status;
}

int cmd_destroy(struct cli *cli, int argc, char **argv)
{
	enum { O_LABEL = 256, O_JSON };
	static const struct option opts[] = {
		{ "label", required_argument, NULL, O_LABEL },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vast_client *c = NULL;
	struct vast_instance *v = NULL;
	long long *ids = NULL;
	size_t n = 0, nids = 0;
	char *label = NULL;
	json_t *results = json_array();
	bool json = false;
	struct err e = { 0 };
	int ch, status = EXIT_OK;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case O_LABEL:
			free(label);
			if (vast_label(optarg, &label, &e)) {
				status = cli_usage("destroy", "--label: %s", e.msg);
				goto out;
			}
			break;
		case O_JSON: json = true; break;
		case 'h': fputs(cmd_destroy_usage, stdout); goto out;
		default: status = cli_usage("destroy", "unknown option"); goto out;
		}
	}
	if (!label == (optind >= argc)) {
		status = cli_usage("destroy", "give instance ids, or --label L");
		goto out;
	}
	ids = xcalloc((size_t)(argc - optind) + 1, sizeof(*ids));
	for (int i = optind; i < argc; i++) {
		unsigned long long id;

		if (cli_uint("instance id", argv[i], &id) || !id) {
			status = EXIT_USAGE;
			goto out;
		}
		ids[nids++] = (long long)id;
	}
	if (vast_client_from_config(&c, cli->cfg, true, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (label) {
		if (vast_list_instances(c, label, &v, &n, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		free(ids);
		ids = xcalloc(n + 1, sizeof(*ids));
		for (size_t i = 0; i < n; i++)
			ids[nids++] = v[i].id;
		if (!nids) {
			fprintf(stderr, "ferry: no instance is labelled %s\n", label);
			status = EXIT_FAILED;
		}
	}
	for (size_t i = 0; i < nids; i++) {
		struct err de = { 0 };
		/* A listed one was there a moment ago; a named one may be a typo. */
		int r = label ? vast_destroy_confirm(c, ids[i], &de)
			      : vast_destroy_named(c, ids[i], &de);

		if (r) {
			log_fprintf(stderr, "ferry: %s\n", de.msg);
			status = status == EXIT_OK ? err_exit_status(r) : status;
		} else if (!json) {
			printf("destroyed %lld\n", ids[i]);
		}
		json_array_append_new(results, json_pack("{s:I, s:b, s:s?}", "id",
							 (json_int_t)ids[i], "gone", !r, "error",
							 r ? de.msg : NULL));
	}
	if (json)
		json_print(stdout, results, 1);
out:
	json_decref(results);
	vast_instances_free(v, n);
	vast_client_free(c);
	free(ids);
	free(label);
	return status;
}
