/* What every command gets, and the table of commands. Commands parse,
 * call into the parts below and print; they hold no logic of their own. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "common/err.h"
#include "config/config.h"

/* Exit statuses, as docs/design.md lists them. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3 };

struct cli {
	struct config *cfg;
	const char *prog;
	/* The global options as given (--config, --set, -v, -q), for a ferry
	 * that this one starts (`train` starting a worker). */
	char **global_args;
	int nglobal;
};

struct cli_command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv); /* returns an exit status */
	const char *summary;
	const char *usage; /* full help text for `ferry help NAME` */
};

/* Run the subcommand argv[1] names from `subs` (summary and usage unused),
 * or print `usage` (to stdout for --help, else stderr with EXIT_USAGE). */
int cli_dispatch(struct cli *cli, const char *group, const struct cli_command *subs, size_t n,
		 const char *usage, int argc, char **argv);
/* The command called `name` in `cmds`, or NULL. */
const struct cli_command *cli_find(const struct cli_command *cmds, size_t n, const char *name);

/* Print an error ("ferry: ...") and return the exit status for its code. */
int cli_fail(const struct err *e);
/* Print a usage complaint and return EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse an unsigned number for option `opt`; on error prints and returns -1. */
int cli_uint(const char *opt, const char *value, unsigned long long *out);
/* Set a config key from a command's flag, complaining on a bad value. */
int cli_set(struct cli *cli, const char *key, const char *value);

/* What SIGINT and SIGTERM did before cli_catch_signals. */
struct cli_signals {
	struct sigaction old_int, old_term;
};

/* Send SIGINT and SIGTERM to `fn` (a handler that only sets a flag, such
 * as cancel_set_flag) until cli_restore_signals. */
void cli_catch_signals(void (*fn)(int), struct cli_signals *saved);
void cli_restore_signals(const struct cli_signals *saved);

/* A command-line option that stands for a setting. */
struct cli_flag_setting {
	int opt;
	const char *key;
};

/* When option `c` is in `map`, set its setting from `arg`: returns 0 when set,
 * an exit status when the value is bad, -1 when `c` is not in the map. */
int cli_flag_setting(struct cli *cli, const struct cli_flag_setting *map, size_t n,
		     int c, const char *arg);

int cmd_config(struct cli *cli, int argc, char **argv);
int cmd_dataset(struct cli *cli, int argc, char **argv);
int cmd_dataset_check(struct cli *cli, int argc, char **argv);
int cmd_dataset_fix(struct cli *cli, int argc, char **argv);
int cmd_dataset_pack(struct cli *cli, int argc, char **argv);
int cmd_dataset_unpack(struct cli *cli, int argc, char **argv);

int cmd_offers(struct cli *cli, int argc, char **argv);
int cmd_rent(struct cli *cli, int argc, char **argv);
int cmd_instances(struct cli *cli, int argc, char **argv);
int cmd_destroy(struct cli *cli, int argc, char **argv);
int cmd_keys(struct cli *cli, int argc, char **argv);
int cmd_whoami(struct cli *cli, int argc, char **argv);
int cmd_sim(struct cli *cli, int argc, char **argv);
int cmd_remote(struct cli *cli, int argc, char **argv);
int cmd_ssh(struct cli *cli, int argc, char **argv);
int cmd_recipe(struct cli *cli, int argc, char **argv);
int cmd_store(struct cli *cli, int argc, char **argv);
int cmd_publish(struct cli *cli, int argc, char **argv);
int cmd_worker(struct cli *cli, int argc, char **argv);
int cmd_train(struct cli *cli, int argc, char **argv);
int cmd_jobs(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_logs(struct cli *cli, int argc, char **argv);
int cmd_attach(struct cli *cli, int argc, char **argv);
int cmd_cancel(struct cli *cli, int argc, char **argv);
int cmd_retry(struct cli *cli, int argc, char **argv);

/* Make sure a worker runs for this state folder: when none holds
 * state_dir/worker.lock, start `ferry worker` in the background (its own
 * session, output to state_dir/worker.log) with the same global options.
 * *started says whether one was started. */
int cli_worker_ensure(struct cli *cli, bool *started, struct err *e);
struct queue;
/* Follow job `id` until it ends (`ferry train`, `ferry attach`): a live
 * line on a terminal, else one line per event (to stderr with `json`,
 * which prints the job as JSON at the end). ^C detaches and says how to
 * attach again. Returns the exit status: 0 SUCCEEDED, 1 FAILED or
 * CANCELLED, 130 detached. */
int cli_job_follow(struct cli *cli, struct queue *q, const char *id, bool json);

extern const char cmd_config_usage[];
extern const char cmd_dataset_usage[];
extern const char cmd_offers_usage[];
extern const char cmd_rent_usage[];
extern const char cmd_instances_usage[];
extern const char cmd_destroy_usage[];
extern const char cmd_keys_usage[];
extern const char cmd_whoami_usage[];
extern const char cmd_sim_usage[];
extern const char cmd_remote_usage[];
extern const char cmd_ssh_usage[];
extern const char cmd_recipe_usage[];
extern const char cmd_store_usage[];
extern const char cmd_publish_usage[];
extern const char cmd_worker_usage[];
extern const char cmd_train_usage[];
extern const char cmd_jobs_usage[];
extern const char cmd_show_usage[];
extern const char cmd_logs_usage[];
extern const char cmd_attach_usage[];
extern const char cmd_cancel_usage[];
extern const char cmd_retry_usage[];

#endif
