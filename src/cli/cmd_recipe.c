/* `ferry recipe`: list and show the trainer recipes, render a trainer
 * config, read a trainer's log, and sort out its output folder. */
#include "cli/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "recipe/outputs.h"
#include "recipe/recipe.h"
#include "recipe/render.h"
#include "recipe/scan.h"

const char cmd_recipe_usage[] =
	"usage: ferry recipe list [--json]\n"
	"       ferry recipe show NAME [--json]\n"
	"       ferry recipe render NAME [--name N] [--trigger W] [--steps N] [--rank R]\n"
	"                    [--alpha A] [--lr X] [--batch-size B] [--resolution 512,768,1024]\n"
	"                    [--save-every N] [--sample-every N] [--prompts FILE]\n"
	"                    [--dataset PATH] [--output PATH] [--captions DIR] [--job ID]\n"
	"                    [-o FILE]\n"
	"       ferry recipe env NAME -o FILE\n"
	"       ferry recipe scan-log FILE|- [--name N] [--dataset PATH] [--stall-after S] [--json]\n"
	"       ferry recipe outputs LISTING|DIR|- [--name N] [--log FILE] [--json]\n"
	"\n"
	"A recipe is a trainer adapter: what it needs from a machine, the config it\n"
	"renders, the log it reads and the outputs it finds (docs/recipes.md).\n"
	"\n"
	"render: write ai-toolkit's JSON config to FILE (atomically) or standard output.\n"
	"`ferry recipe show NAME` lists every parameter's default and range. Paths are\n"
	"made absolute; by default they follow the job layout, remote.root/JOB/dataset\n"
	"and remote.root/JOB/output (JOB: --job, else the name). Sample prompts come\n"
	"from --prompts, else from the captions of --captions DIR or of --dataset when\n"
	"it is a folder here. No secret is ever written: tokens go in the env file.\n"
	"\n"
	"env: write the trainer's env file (mode 0600) for `ferry remote launch\n"
	"--env-file`: the recipe's fixed variables and HF_TOKEN from hf.token.\n"
	"\n"
	"scan-log: read a trainer's console log (FILE, or standard input for -) and\n"
	"report its phase, progress, checkpoints, samples, warnings and, when it\n"
	"failed, why; exit 1 when the run failed.\n"
	"  --name N           the job name on its training bar (default: from the log)\n"
	"  --dataset PATH     the config's dataset folder (default: from the log)\n"
	"  --stall-after S    FILE unchanged for S seconds while downloading or loading\n"
	"                     is a stalled download\n"
	"\n"
	"outputs: classify the files of an output folder, from the folder itself or a\n"
	"listing (one path a line, or SIZE<TAB>PATH; - reads standard input).\n"
	"  --log FILE         the run's log: an optimizer.pt whose last save failed\n"
	"                     goes into no resume\n"
	"\n"
	"  --json             print one JSON object\n";

static int recipe_unknown(const char *name)
{
	return cli_usage("recipe", "no recipe '%s' (there are: %s)", name, recipe_names());
}

/* ---- list ---- */

static json_t *recipe_summary_json(const struct recipe *r)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:f, s:b}", "name", r->name, "summary", r->summary,
			 "base_model", r->base_model, "image", r->image, "vram_gb", r->vram_gb,
			 "needs_hf_token", r->needs_hf_token);
}

static int recipe_list(struct cli *cli, int argc, char **argv)
{
	size_t n;
	const struct recipe *all = recipe_all(&n);
	bool json = argc > 1 && !strcmp(argv[1], "--json");

	if (argc > 1 && !json)
		return cli_usage("recipe", "list takes only --json");
	if (json) {
		json_t *list = json_array(), *o;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(list, recipe_summary_json(&all[i]));
		o = json_pack("{s:o}", "recipes", list);
		json_print(stdout, o, 1);
		json_decref(o);
		return EXIT_OK;
	}
	printf("%-20s %-34s %5s  %s\n", "NAME", "BASE MODEL", "VRAM", "SUMMARY");
	for (size_t i = 0; i < n; i++)
		printf("%-20s %-34s %4.0fG  %s\n", all[i].name, all[i].base_model, all[i].vram_gb,
		       all[i].summary);
	return EXIT_OK;
}

/* ---- show ---- */

static void launch_text(const struct recipe_launch *l, struct buf *out)
{
	struct strv argv = STRV_INIT;

	recipe_launch_argv(l, "CONFIG", &argv);
	buf_printf(out, "cd %s &&", l->workdir ? l->workdir : "JOB_ROOT");
	for (size_t i = 0; i < argv.n; i++)
		buf_printf(out, " %s", argv.v[i]);
	strv_release(&argv);
}

static json_t *launch_json(const struct recipe_launch *l)
{
	struct strv argv = STRV_INIT;
	json_t *a = json_array(), *o;

	recipe_launch_argv(l, "CONFIG", &argv);
	for (size_t i = 0; i < argv.n; i++)
		json_array_append_new(a, json_string(argv.v[i]));
	strv_release(&argv);
	o = json_pack("{s:s, s:o, s:o}", "what", l->what, "workdir",
		      l->workdir ? json_string(l->workdir) : json_null(), "argv", a);
	return o;
}

static json_t *recipe_show_json(const struct recipe *r)
{
	json_t *o = recipe_summary_json(r), *env = json_array(), *params = json_array();
	const struct recipe_param_info *pt;
	size_t np;

	for (size_t i = 0; i < r->nenv; i++)
		json_array_append_new(env, json_pack("{s:s, s:o, s:b, s:s}", "name", r->env[i].name,
						     "value", r->env[i].value
								      ? json_string(r->env[i].value)
								      : json_null(),
						     "required", r->env[i].required, "why",
						     r->env[i].why));
	pt = recipe_param_table(&np);
	for (size_t i = 0; i < np; i++)
		json_array_append_new(params, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
							pt[i].name, "key", pt[i].key, "default",
							pt[i].dflt, "range", pt[i].range, "help",
							pt[i].help));
	json_object_set_new(o, "assistant_lora",
			    r->assistant_lora ? json_string(r->assistant_lora) : json_null());
	json_object_set_new(o, "written_for", json_string(r->written_for));
	json_object_set_new(o, "cuda_min", json_real(r->cuda_min));
	json_object_set_new(o, "compute_cap_min", json_integer(r->compute_cap_min));
	json_object_set_new(o, "driver_min", json_string(r->driver_min));
	json_object_set_new(o, "disk_gb_2000_steps", json_real(round(recipe_disk_gb(r, 0, 2000))));
	json_object_set_new(o, "model_bytes", json_integer((json_int_t)r->model_bytes));
	json_object_set_new(o, "launch", launch_json(&r->launch));
	json_object_set_new(o, "standin", launch_json(&r->standin));
	json_object_set_new(o, "env", env);
	json_object_set_new(o, "parameters", params);
	return o;
}

static int recipe_show(struct cli *cli, int argc, char **argv)
{
	const struct recipe *r;
	const struct recipe_param_info *pt;
	struct buf line = BUF_INIT;
	const char *name = NULL;
	bool json = false;
	size_t np;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || name)
			return cli_usage("recipe", "show takes one NAME and --json");
		else
			name = argv[i];
	}
	if (!name)
		return cli_usage("recipe", "show needs a recipe name (one of: %s)", recipe_names());
	r = recipe_find(name);
	if (!r)
		return recipe_unknown(name);
	if (json) {
		json_t *o = recipe_show_json(r);

		json_print(stdout, o, 1);
		json_decref(o);
		return EXIT_OK;
	}
	printf("%s: %s\n\n", r->name, r->summary);
	printf("  base model      %s\n", r->base_model);
	if (r->assistant_lora)
		printf("  adapter         %s\n", r->assistant_lora);
	printf("  trainer image   %s\n", r->image);
	printf("  written for     %s\n", r->written_for);
	launch_text(&r->launch, &line);
	printf("  started with    %s\n", line.data);
	buf_reset(&line);
	launch_text(&r->standin, &line);
	printf("  in tests        %s\n", line.data);
	printf("\nNeeds:\n");
	printf("  VRAM            %.0f GB per GPU\n", r->vram_gb);
	printf("  CUDA            %.1f or newer (host driver %s or newer)\n", r->cuda_min,
	       r->driver_min);
	printf("  compute cap     %d or newer (sm_%d: bf16 needs Ampere)\n", r->compute_cap_min,
	       r->compute_cap_min / 10);
	printf("  disk            about %.0f GB for 2000 steps, plus twice the dataset\n",
	       recipe_disk_gb(r, 0, 2000));
	printf("  download        %.0f GB of model weights\n", (double)r->model_bytes / 1e9);
	printf("  token           %s\n", r->needs_hf_token ? "HF_TOKEN (gated model)" : "none");
	printf("\nEnvironment (the env file; never the config):\n");
	for (size_t i = 0; i < r->nenv; i++)
		printf("  %-20s %-10s %s\n", r->env[i].name,
		       r->env[i].value ? r->env[i].value : "(yours)", r->env[i].why);
	printf("\nParameters (ferry recipe render %s --NAME VALUE):\n", r->name);
	pt = recipe_param_table(&np);
	for (size_t i = 0; i < np; i++)
		printf("  --%-14s %s\n  %16s default: %s\n  %16s range: %s\n  %16s config: %s\n",
		       pt[i].name, pt[i].help, "", pt[i].dflt, "", pt[i].range, "", pt[i].key);
	buf_release(&line);
	return EXIT_OK;
}

/* ---- render ---- */

static int recipe_render_cmd(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 0 },
		{ "trigger", required_argument, NULL, 0 },
		{ "steps", required_argument, NULL, 0 },
		{ "rank", required_argument, NULL, 0 },
		{ "alpha", required_argument, NULL, 0 },
		{ "lr", required_argument, NULL, 0 },
		{ "batch-size", required_argument, NULL, 0 },
		{ "resolution", required_argument, NULL, 0 },
		{ "save-every", required_argument, NULL, 0 },
		{ "sample-every", required_argument, NULL, 0 },
		{ "prompts", required_argument, NULL, 0 },
		{ "dataset", required_argument, NULL, 0 },
		{ "output", required_argument, NULL, 0 },
		{ "captions", required_argument, NULL, 0 },
		{ "job", required_argument, NULL, 0 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct recipe_params p = { 0 };
	const struct recipe *r;
	const char *out_file = NULL;
	struct buf text = BUF_INIT;
	json_t *config = NULL;
	struct err e = { 0 };
	int c, idx, status = EXIT_OK;

	/* Whatever happens below, a token never reaches the output. */
	log_register_secret(getenv("HF_TOKEN"));
	log_register_secret(getenv("HUGGING_FACE_HUB_TOKEN"));
	while ((c = getopt_long(argc, argv, "ho:", opts, &idx)) != -1) {
		if (c == 0) {
			if (recipe_param_set(&p, opts[idx].name, optarg, &e)) {
				status = cli_fail(&e);
				goto out;
			}
		} else if (c == 'o') {
			out_file = optarg;
		} else if (c == 'h') {
			fputs(cmd_recipe_usage, stdout);
			goto out;
		} else {
			status = cli_usage("recipe", "unknown option");
			goto out;
		}
	}
	if (optind + 1 != argc) {
		status = cli_usage("recipe", "render needs one recipe name (one of: %s)",
				   recipe_names());
		goto out;
	}
	r = recipe_find(argv[optind]);
	if (!r) {
		status = recipe_unknown(argv[optind]);
		goto out;
	}
	if (!p.remote_root && recipe_param_set(&p, "remote-root",
					       config_get(cli->cfg, "remote.root"), &e)) {
		err_prefix(&e, "remote.root");
		status = cli_fail(&e);
		goto out;
	}
	if (recipe_render(r, &p, &config, &e) || recipe_config_text(r, config, &text, &e) ||
	    (out_file && fsx_write_atomic(out_file, text.data, text.len, 0644, &e))) {
		status = cli_fail(&e);
		goto out;
	}
	if (!out_file)
		fwrite(text.data, 1, text.len, stdout);
out:
	json_decref(config);
	buf_release(&text);
	recipe_params_release(&p);
	return status;
}

/* ---- env ---- */

static int recipe_env_cmd(struct cli *cli, int argc, char **argv)
{
	const char *out_file = NULL, *name = NULL;
	const struct recipe *r;
	struct strv env = STRV_INIT;
	struct buf text = BUF_INIT;
	struct err e = { 0 };
	int status = EXIT_OK;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out_file = argv[++i];
		else if (argv[i][0] == '-' || name)
			return cli_usage("recipe", "env takes one NAME and -o FILE");
		else
			name = argv[i];
	}
	if (!name || !out_file)
		return cli_usage("recipe", "env needs a recipe name and -o FILE (the file holds "
				 "secrets, so it is never printed)");
	r = recipe_find(name);
	if (!r)
		return recipe_unknown(name);
	if (!recipe_env_lines(r, config_get(cli->cfg, "hf.token"), &env, &e)) {
		for (size_t i = 0; i < env.n; i++)
			buf_printf(&text, "%s\n", env.v[i]);
		if (!fsx_write_atomic(out_file, text.data, text.len, 0600, &e))
			goto done;
	}
	status = cli_fail(&e);
done:
	if (text.data)
		explicit_bzero(text.data, text.len);
	for (size_t i = 0; i < env.n; i++)
		explicit_bzero(env.v[i], strlen(env.v[i]));
	strv_release(&env);
	buf_release(&text);
	return status;
}

/* ---- scan-log ---- */

/* Measured numbers to 10 digits: 0.3328, not 0.33279999999999998. */
static void print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	fputc('\n', stdout);
	json_decref(o);
}

static void print_number(const char *label, double v, int digits)
{
	if (isnan(v))
		printf("%-14s ?\n", label);
	else
		printf("%-14s %.*g\n", label, digits, v);
}

static void scan_print(const struct recipe_scan_result *r)
{
	struct buf shown = BUF_INIT;

	printf("%-14s %s\n", "phase", recipe_phase_name(r->phase));
	str_escape(r->name, &shown);
	printf("%-14s %s\n", "job", shown.data[0] ? shown.data : "?");
	if (r->total > 0)
		printf("%-14s %lld/%lld (%.0f%%)\n", "step", r->step, r->total,
		       100.0 * (double)r->step / (double)r->total);
	else
		printf("%-14s ?\n", "step");
	if (r->failure == RECIPE_FAIL_NAN_LOSS)
		printf("%-14s nan\n", "loss");
	else
		print_number("loss", r->loss, 4);
	print_number("lr", r->lr, 2);
	print_number("s/it", r->rate_s_per_it, 3);
	print_number("eta (s)", r->eta_s, 9);
	if (r->resumed_from >= 0)
		printf("%-14s step %lld\n", "resumed from", r->resumed_from);
	printf("%-14s %llu saved, %zu still there\n", "checkpoints", r->checkpoints_saved,
	       r->ncheckpoints);
	for (size_t i = 0; i < r->ncheckpoints; i++) {
		buf_reset(&shown);
		str_escape(r->checkpoints[i].path, &shown);
		if (r->checkpoints[i].final)
			printf("  final          %s\n", shown.data);
		else
			printf("  step %-9lld %s\n", r->checkpoints[i].step, shown.data);
	}
	printf("%-14s %llu\n", "samples", r->samples);
	if (r->exit_status >= 0)
		printf("%-14s %d\n", "exit status", r->exit_status);
	for (size_t i = 0; i < RECIPE_WARN_COUNT; i++) {
		if (!(r->warnings & (1u << i)))
			continue;
		buf_reset(&shown);
		str_escape(r->warning_lines[i], &shown);
		printf("%-14s %s\n%-14s %s\n", "warning", recipe_warning_name((enum recipe_warning)i),
		       "", shown.data);
	}
	if (!r->optimizer_trusted)
		printf("%-14s %s\n", "optimizer.pt", "not trusted for a resume (its save failed)");
	if (r->failure != RECIPE_FAIL_NONE) {
		buf_reset(&shown);
		str_escape(r->failure_line, &shown);
		printf("%-14s %s\n%-14s %s\n", "failure", recipe_failure_name(r->failure), "",
		       shown.data);
	}
	buf_release(&shown);
}

static int recipe_scan_log(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "stall-after", required_argument, NULL, 's' },
		{ "dataset", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *dataset = NULL, *path;
	const struct recipe_scan_result *res;
	double stall = 0;
	bool json = false;
	struct recipe_scan *s = NULL;
	struct stat st;
	struct err e = { 0 };
	int c, fd = -1, status = EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'd': dataset = optarg; break;
		case 's':
			if (!str_to_double(optarg, &stall) || stall <= 0)
				return cli_usage("recipe", "--stall-after wants seconds, not '%s'",
						 optarg);
			break;
		case 'j': json = true; break;
		case 'h': fputs(cmd_recipe_usage, stdout); return EXIT_OK;
		default: return cli_usage("recipe", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("recipe", "scan-log needs one FILE, or - for standard input");
	path = argv[optind];
	fd = 0;
	if (strcmp(path, "-") && fsx_open_regular(path, &fd, &st, &e))
		return cli_fail(&e);
	s = recipe_scan_new(name);
	if (dataset)
		recipe_scan_set_dataset(s, dataset);
	if (recipe_scan_fd(s, fd, strcmp(path, "-") ? path : "standard input", &e)) {
		status = cli_fail(&e);
		goto out;
	}
	recipe_scan_finish(s);
	/* A file's age is how long the trainer has been silent. */
	if (stall > 0 && fd > 0 && !fstat(fd, &st))
		recipe_scan_idle(s, difftime(time(NULL), st.st_mtime), stall);
	res = recipe_scan_result(s);
	if (json)
		print_json(recipe_scan_json(res));
	else
		scan_print(res);
	/* scripts and the watcher branch on it */
	if (res->phase == RECIPE_PHASE_FAILED)
		status = EXIT_FAILED;
out:
	if (fd > 0)
		close(fd);
	recipe_scan_free(s);
	return status;
}

/* ---- outputs ---- */

/* Read the run's log for an optimizer save that failed. */
static int log_optimizer_untrusted(const char *path, const char *name, struct recipe_outputs *o,
				   struct err *e)
{
	struct recipe_scan *s = recipe_scan_new(name);
	struct stat st;
	int fd = -1, r = fsx_open_regular(path, &fd, &st, e);

	if (!r)
		r = recipe_scan_fd(s, fd, path, e);
	if (!r) {
		recipe_scan_finish(s);
		if (!recipe_scan_result(s)->optimizer_trusted)
			recipe_outputs_distrust_optimizer(o);
	}
	if (fd >= 0)
		close(fd);
	recipe_scan_free(s);
	return r;
}

static void outputs_print(const struct recipe_outputs *o)
{
	struct buf shown = BUF_INIT;

	if (o->name)
		str_escape(o->name, &shown);
	printf("run: %s%s\n", o->name ? shown.data : "?", o->final >= 0 ? " (complete)" : "");
	for (size_t i = 0; i < o->n; i++) {
		const struct recipe_output *f = &o->files[i];

		buf_reset(&shown);
		str_escape(f->path, &shown);
		printf("%-10s ", recipe_output_kind_name(f->kind));
		if (f->kind == RECIPE_OUT_CHECKPOINT)
			printf("step %-7lld ", f->step);
		else if (f->kind == RECIPE_OUT_SAMPLE)
			printf("step %-7lld prompt %-3lld ", f->step, f->prompt);
		printf("%s%s%s\n", shown.data, f->resume ? "  [resume]" : "",
		       f->never_publish ? "  [never publish: secrets]" : "");
	}
	if (o->final < 0)
		printf("resume on another machine: %s\n",
		       o->resume_ready ? "the newest checkpoint and optimizer.pt"
		       : o->optimizer_untrusted ? "not with optimizer.pt (its last save failed)"
						: "not possible yet (needs a checkpoint and optimizer.pt)");
	buf_release(&shown);
}

static int recipe_outputs_cmd(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "log", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct recipe_outputs o = RECIPE_OUTPUTS_INIT;
	const char *log_file = NULL;
	struct buf text = BUF_INIT;
	const char *name = NULL, *path;
	bool json = false;
	struct stat st;
	struct err e = { 0 };
	int c, r, status = EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'l': log_file = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(cmd_recipe_usage, stdout); return EXIT_OK;
		default: return cli_usage("recipe", "unknown option");
		}
	}
	if (log_file && log_optimizer_untrusted(log_file, name, &o, &e))
		return cli_fail(&e);
	if (optind + 1 != argc)
		return cli_usage("recipe", "outputs needs one LISTING, DIR, or - for standard input");
	path = argv[optind];
	if (!strcmp(path, "-")) {
		r = fsx_read_fd(0, "standard input", &text, 0, &e);
		if (!r)
			recipe_outputs_read_listing(&o, text.data, text.len);
	} else if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		r = recipe_outputs_read_dir(&o, path, &e);
	} else {
		r = fsx_read_file(path, &text, 0, &e);
		if (!r)
			recipe_outputs_read_listing(&o, text.data, text.len);
	}
	if (!r)
		r = recipe_outputs_classify(&o, name, &e);
	if (r) {
		status = cli_fail(&e);
		goto out;
	}
	if (json) {
		json_t *j = recipe_outputs_json(&o);

		json_print(stdout, j, 1);
		json_decref(j);
	} else {
		outputs_print(&o);
	}
out:
	recipe_outputs_release(&o);
	buf_release(&text);
	return status;
}

int cmd_recipe(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "list", recipe_list, NULL, NULL },
		{ "show", recipe_show, NULL, NULL },
		{ "render", recipe_render_cmd, NULL, NULL },
		{ "env", recipe_env_cmd, NULL, NULL },
		{ "scan-log", recipe_scan_log, NULL, NULL },
		{ "outputs", recipe_outputs_cmd, NULL, NULL },
	};

	return cli_dispatch(cli, "recipe", subs, sizeof(subs) / sizeof(subs[0]), cmd_recipe_usage,
			    argc, argv);
}
