/* ferry's entry point: global options, then one command. */
#include "cli/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/str.h"

static int cmd_help(struct cli *cli, int argc, char **argv);
static int cmd_version(struct cli *cli, int argc, char **argv);

static const struct cli_command commands[] = {
	{ "dataset", cmd_dataset, "check, fix, pack and unpack a training dataset",
	  cmd_dataset_usage },
	{ "offers", cmd_offers, "search the Vast.ai market; --rank ranks offers for a job",
	  cmd_offers_usage },
	{ "rent", cmd_rent, "rent an instance (labelled, never twice, never leaked)",
	  cmd_rent_usage },
	{ "instances", cmd_instances, "list your Vast.ai instances", cmd_instances_usage },
	{ "destroy", cmd_destroy, "destroy instances and confirm they are gone",
	  cmd_destroy_usage },
	{ "keys", cmd_keys, "make, list, register and attach SSH keys", cmd_keys_usage },
	{ "whoami", cmd_whoami, "show the Vast.ai account, balance and key validity",
	  cmd_whoami_usage },
	{ "remote", cmd_remote, "wait for, push to, launch on, watch and pull from a target",
	  cmd_remote_usage },
	{ "ssh", cmd_ssh, "an interactive shell on a target, in a job's folder", cmd_ssh_usage },
	{ "recipe", cmd_recipe, "list, show and render trainer recipes; read logs and outputs",
	  cmd_recipe_usage },
	{ "store", cmd_store, "put, get, list, remove and presign artifacts (dir, R2, S3)",
	  cmd_store_usage },
	{ "train", cmd_train, "train a LoRA: submit a job, start a worker, follow it",
	  cmd_train_usage },
	{ "jobs", cmd_jobs, "list jobs (--all: ended ones too)", cmd_jobs_usage },
	{ "show", cmd_show, "a job in full: spec, timeline, instances, cost, artifacts",
	  cmd_show_usage },
	{ "logs", cmd_logs, "a job's trainer log (-f follows it)", cmd_logs_usage },
	{ "attach", cmd_attach, "follow a job again, as train does", cmd_attach_usage },
	{ "cancel", cmd_cancel, "cancel a job (its instance is released)", cmd_cancel_usage },
	{ "retry", cmd_retry, "queue a failed or cancelled job again", cmd_retry_usage },
	{ "worker", cmd_worker, "run queued jobs (one worker per state folder)",
	  cmd_worker_usage },
	{ "publish", cmd_publish, "upload a job's artifacts and its result.json",
	  cmd_publish_usage },
	{ "sim", cmd_sim, "serve a simulated Vast.ai API (market, instances, faults)",
	  cmd_sim_usage },
	{ "config", cmd_config, "print every effective setting and where it came from",
	  cmd_config_usage },
	{ "help", cmd_help, "show help for a command", "usage: ferry help [COMMAND]\n" },
	{ "version", cmd_version, "print the version", "usage: ferry version\n" },
};

static const char main_usage[] =
	"usage: ferry [--config FILE] [--set KEY=VALUE]... [-v|-q] COMMAND [ARGS]\n"
	"\n"
	"ferry trains LoRA models on rented GPUs. Built so far: the dataset pipeline,\n"
	"the Vast.ai market (search, ranking, renting, and a simulator), remote\n"
	"execution (upload, detached training, logs, pull), trainer recipes, the\n"
	"artifact store and publishing (a folder, R2 or S3), and the job queue with\n"
	"its commands (train, jobs, show, logs, attach, cancel, retry, worker).\n"
	"Steps of a job that are not built yet fail the job there, saying so.\n"
	"\n"
	"Global options:\n"
	"  --config FILE      read settings from FILE instead of $XDG_CONFIG_HOME/ferry/config\n"
	"  --set KEY=VALUE    override one setting (highest precedence; repeatable)\n"
	"  -v, --verbose      more log output (repeat for debug and trace)\n"
	"  -q, --quiet        only errors\n"
	"  -h, --help         this help\n"
	"\n"
	"Exit status: 0 success, 1 the operation failed, 2 usage error,\n"
	"3 configuration or credentials missing.\n"
	"\n"
	"Commands:\n";

static void print_main_usage(FILE *f)
{
	fputs(main_usage, f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\nRun `ferry help COMMAND` for a command's options.\n", f);
}

const struct cli_command *cli_find(const struct cli_command *cmds, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static const struct cli_command *find_command(const char *name)
{
	return cli_find(commands, sizeof(commands) / sizeof(commands[0]), name);
}

int cli_dispatch(struct cli *cli, const char *group, const struct cli_command *subs, size_t n,
		 const char *usage, int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	c = cli_find(subs, n, argv[1]);
	if (!c)
		return cli_usage(group, "unknown subcommand '%s'", argv[1]);
	return c->run(cli, argc - 1, argv + 1);
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 2) {
		print_main_usage(stdout);
		return EXIT_OK;
	}
	c = find_command(argv[1]);
	if (!c)
		return cli_usage("help", "no such command '%s'", argv[1]);
	fputs(c->usage, stdout);
	return EXIT_OK;
}

static int cmd_version(struct cli *cli, int argc, char **argv)
{
	printf("ferry %s\n", FERRY_VERSION);
	return EXIT_OK;
}

int cli_fail(const struct err *e)
{
	log_fprintf(stderr, "ferry: %s\n", e->msg[0] ? e->msg : err_name(e->code));
	return err_exit_status(e->code);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ferry %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `ferry %s --help`)\n", cmd);
	return EXIT_USAGE;
}

int cli_uint(const char *opt, const char *value, unsigned long long *out)
{
	if (str_to_u64(value, out)) {
		fprintf(stderr, "ferry: %s wants a whole number, not '%s'\n", opt, value);
		return -1;
	}
	return 0;
}

int cli_set(struct cli *cli, const char *key, const char *value)
{
	struct err e = { 0 };

	if (config_set(cli->cfg, key, value, CONFIG_SRC_FLAG, &e))
		return cli_fail(&e);
	return 0;
}

int cli_flag_setting(struct cli *cli, const struct cli_flag_setting *map, size_t n,
		     int c, const char *arg)
{
	for (size_t i = 0; i < n; i++)
		if (map[i].opt == c)
			return cli_set(cli, map[i].key, arg);
	return -1;
}

void cli_catch_signals(void (*fn)(int), struct cli_signals *saved)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &saved->old_int);
	sigaction(SIGTERM, &sa, &saved->old_term);
}

void cli_restore_signals(const struct cli_signals *saved)
{
	sigaction(SIGINT, &saved->old_int, NULL);
	sigaction(SIGTERM, &saved->old_term, NULL);
}

static void apply_log_level(const char *name)
{
	static const char *names[] = { "error", "warn", "info", "debug", "trace" };

	for (int i = 0; i < 5; i++)
		if (name && !strcasecmp(name, names[i]))
			log_set_level((enum log_level)i);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = { .prog = "ferry" };
	struct strv sets = STRV_INIT;
	const char *config_path = NULL;
	const struct cli_command *cmd;
	struct err e = { 0 };
	int verbose = 0, quiet = 0, c, status;

	while ((c = getopt_long(argc, argv, "+vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 's': strv_push(&sets, optarg); break;
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'h': print_main_usage(stdout); strv_release(&sets); return EXIT_OK;
		case 'V': strv_release(&sets); return cmd_version(&cli, 0, NULL);
		default: print_main_usage(stderr); strv_release(&sets); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		print_main_usage(stderr);
		strv_release(&sets);
		return EXIT_USAGE;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "ferry: unknown command '%s'\n\n", argv[optind]);
		print_main_usage(stderr);
		strv_release(&sets);
		return EXIT_USAGE;
	}

	/* A peer that closed its end (an SSH session, an HTTP connection, a
	 * child's stdin) must be an error to handle, never a death: libcurl
	 * runs with CURLOPT_NOSIGNAL and leaves SIGPIPE to us. */
	signal(SIGPIPE, SIG_IGN);
	cli.cfg = config_new();
	if (config_load(cli.cfg, config_path, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	for (size_t i = 0; i < sets.n; i++) {
		if (config_set_assignment(cli.cfg, sets.v[i], &e)) {
			status = cli_fail(&e);
			goto out;
		}
	}
	apply_log_level(config_get(cli.cfg, "log.level"));
	if (quiet)
		log_set_level(LOG_ERROR);
	if (verbose)
		log_set_level((enum log_level)(LOG_INFO + verbose - 1 > LOG_TRACE
					       ? LOG_TRACE : LOG_INFO + verbose - 1));

	cli.global_args = argv + 1;
	cli.nglobal = optind - 1;
	argv += optind;
	argc -= optind;
	optind = 0; /* reset getopt for the command's own parsing */
	status = cmd->run(&cli, argc, argv);
out:
	config_free(cli.cfg);
	strv_release(&sets);
	log_forget_secrets();
	return status;
}
