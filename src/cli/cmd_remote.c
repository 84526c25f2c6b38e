/* `ferry remote ...` and `ferry ssh`: everything ferry does on a rented
 * machine (docs/remote.md). */
#include "cli/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/bar.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/dataset.h"
#include "dataset/pack.h"
#include "remote/jobdir.h"
#include "remote/launch.h"
#include "remote/pull.h"
#include "remote/push.h"
#include "remote/ready.h"
#include "remote/target.h"
#include "remote/transport.h"
#include "remote/watch.h"
#include "vast/client.h"
#include "vast/keys.h"

const char cmd_remote_usage[] =
	"usage: ferry remote wait   (--target T | --instance ID) [--trainer PATH]\n"
	"                           [--trainer-repo DIR] [--need-disk GB] [--timeout S] [--json]\n"
	"       ferry remote push   (--target T | --instance ID) --job ID (ARCHIVE | DIR)\n"
	"                           [--json]\n"
	"       ferry remote launch (--target T | --instance ID) --job ID [--config FILE]\n"
	"                           [--env-file FILE] [--heartbeat S] -- TRAINER ARGS...\n"
	"       ferry remote status (--target T | --instance ID) --job ID [--json]\n"
	"       ferry remote logs   (--target T | --instance ID) --job ID [-f]\n"
	"       ferry remote pull   (--target T | --instance ID) --job ID [-o DIR]\n"
	"                           [--pattern GLOB]... [--json]\n"
	"       ferry remote exec   (--target T | --instance ID) -- CMD ARGS...\n"
	"\n"
	"A target is ssh://[user@]host[:port] (user root, port 22 by default), local\n"
	"(this machine, job roots under remote.root) or local:DIR; --instance ID asks\n"
	"the Vast API where instance ID answers SSH. Job roots are remote.root/JOB\n"
	"(FERRY_REMOTE_ROOT, default /root/ferry). SSH uses the key at ssh.key_path,\n"
	"a ControlMaster per target and ferry's own known-hosts file (docs/remote.md).\n"
	"^C or SIGTERM stops any of them at once, leaving what a rerun resumes.\n"
	"\n"
	"  wait     until the target answers over SSH (with --instance, first until\n"
	"           Vast runs it), then probe it: trainer, the trainer checkout's\n"
	"           commit, GPUs, free disk, tar and sha256sum (exit 1 when a probe fails)\n"
	"  push     upload a packed dataset (resuming), check its SHA-256 there,\n"
	"           extract it into JOB/dataset and verify every file; given a\n"
	"           dataset folder, check and pack it first (as `ferry dataset pack`)\n"
	"           into the job's local state and push that archive\n"
	"  launch   upload config, env file (mode 600) and the supervisor, and start\n"
	"           the trainer detached (setsid) in the job root; never twice\n"
	"  status   the job's state in one round trip (exit code, heartbeat, log, GPU);\n"
	"           exit 1 when the trainer failed (exited non-zero or vanished)\n"
	"  logs     the trainer's log, each byte fetched once; -f follows it until\n"
	"           the trainer exits, through dropped connections (exit 1 when it\n"
	"           failed or was never launched)\n"
	"  pull     fetch complete, new or changed files from JOB/output (resuming,\n"
	"           verified), into DIR (default ./JOB-output); never deletes local ones\n"
	"  exec     run one command (its arguments quoted, never re-split)\n";

const char cmd_ssh_usage[] =
	"usage: ferry ssh (TARGET | --instance ID) [--job ID]\n"
	"\n"
	"An interactive shell on the target, in the job root when --job is given\n"
	"(else in remote.root).\n";

/* ^C or SIGTERM sets this token, and every wait and transfer stops: the
 * commands ferry runs are killed (they run in process groups of their own,
 * which a terminal's ^C does not reach) and what a rerun resumes is left.
 * A signal handler reaches only what is at file scope. */
static struct cancel remote_cancel;
static volatile sig_atomic_t remote_signal;

static void remote_on_signal(int sig)
{
	remote_signal = sig;
	cancel_set_flag(&remote_cancel);
}

struct remote_args {
	const char *target;
	long long instance;
	const char *job;
	bool json;
};

enum { RO_TARGET = 300, RO_INSTANCE, RO_JOB, RO_JSON };
#define REMOTE_COMMON_OPTS \
	{ "target", required_argument, NULL, RO_TARGET }, \
	{ "instance", required_argument, NULL, RO_INSTANCE }, \
	{ "job", required_argument, NULL, RO_JOB }, \
	{ "json", no_argument, NULL, RO_JSON }, \
	{ "help", no_argument, NULL, 'h' }

/* A subcommand's own option: 0 when handled, -1 when unknown, else an
 * exit status. */
typedef int (*remote_opt_fn)(int c, const char *arg, void *ctx);

/* Parse the options every subcommand takes into `a`, the others through
 * `own` (may be NULL). Returns -1 to go on, else the exit status to return
 * (0 after --help). */
static int remote_getopt(int argc, char **argv, const char *sopts, const struct option *opts,
			 const char *name, const char *usage, struct remote_args *a,
			 remote_opt_fn own, void *ctx)
{
	unsigned long long id;
	int c, s;

	while ((c = getopt_long(argc, argv, sopts, opts, NULL)) != -1) {
		switch (c) {
		case RO_TARGET: a->target = optarg; continue;
		case RO_INSTANCE:
			if (cli_uint("--instance", optarg, &id) || !id)
				return EXIT_USAGE;
			a->instance = (long long)id;
			continue;
		case RO_JOB: a->job = optarg; continue;
		case RO_JSON: a->json = true; continue;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		default: break;
		}
		s = own ? own(c, optarg, ctx) : -1;
		if (s < 0)
			return cli_usage(name, "unknown option");
		if (s)
			return s;
	}
	return -1;
}

/* Open the target the options name. With `wait_s`, an instance is waited
 * for (through Vast's loading) until it runs with an SSH endpoint, at most
 * that long. */
static int remote_connect(struct cli *cli, const struct remote_args *a, bool need_job,
			  int wait_s, struct remote **rm, struct vast_client **vc, struct err *e)
{
	struct remote_target t;
	const char *root = config_get(cli->cfg, "remote.root");
	int r;

	*rm = NULL;
	*vc = NULL;
	if (!a->target == !a->instance)
		return err_set(e, ERR_USAGE, "give one of --target T and --instance ID");
	if (need_job && !a->job)
		return err_set(e, ERR_USAGE, "a job id is needed (--job ID)");
	if (need_job) {
		r = remote_job_check(a->job, e);
		if (r)
			return r;
	}
	if (a->instance) {
		r = vast_client_from_config(vc, cli->cfg, true, e);
		if (!r && wait_s) {
			struct remote_instance_wait_opts io = { .timeout_s = wait_s,
								.cancel = &remote_cancel };

			r = remote_target_instance_wait(*vc, a->instance, root, &io, &t, e);
		} else if (!r) {
			r = remote_target_instance(*vc, a->instance, root, &t, e);
		}
	} else {
		r = remote_target_parse(a->target, root, &t, e);
	}
	if (!r) {
		r = remote_open(rm, &t, cli->cfg, e);
		remote_target_release(&t);
	}
	return r;
}

static int remote_finish(int r, struct err *e, struct remote *rm, struct vast_client *vc)
{
	int status = EXIT_OK;

	if (r == ERR_CANCELLED && remote_signal) {
		log_fprintf(stderr, "ferry: %s\n", e->msg);
		status = 128 + remote_signal;
	} else if (r) {
		status = cli_fail(e);
	}
	remote_close(rm);
	vast_client_free(vc);
	return status;
}

enum { O_TRAINER = 400, O_REPO, O_DISK, O_TIMEOUT, O_CONFIG, O_ENV, O_HB, O_PATTERN };

static int remote_wait_opt(int c, const char *arg, void *ctx)
{
	struct remote_wait_opts *wo = ctx;
	unsigned long long v;

	switch (c) {
	case O_TRAINER: wo->trainer = arg; return 0;
	case O_REPO: wo->trainer_repo = arg; return 0;
	case O_DISK:
		if (cli_uint("--need-disk", arg, &v))
			return EXIT_USAGE;
		wo->need_disk_gb = (double)v;
		return 0;
	case O_TIMEOUT:
		if (cli_uint("--timeout", arg, &v) || !v || v > 86400)
			return EXIT_USAGE;
		wo->timeout_s = (int)v;
		return 0;
	default: return -1;
	}
}

static int cmd_remote_wait(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		REMOTE_COMMON_OPTS,
		{ "trainer", required_argument, NULL, O_TRAINER },
		{ "trainer-repo", required_argument, NULL, O_REPO },
		{ "need-disk", required_argument, NULL, O_DISK },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote_wait_opts wo = { .cancel = &remote_cancel };
	struct vast_key_reattach ka = { 0 };
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	json_t *rep = NULL;
	struct err e = { 0 };
	long long t0 = clock_mono_ms();
	int r, timeout;

	r = remote_getopt(argc, argv, "h", opts, "remote wait", cmd_remote_usage, &a,
			  remote_wait_opt, &wo);
	if (r != -1)
		return r;
	timeout = wo.timeout_s > 0 ? wo.timeout_s : 600;
	/* One deadline for both: Vast's loading, then SSH. */
	r = remote_connect(cli, &a, false, timeout, &rm, &vc, &e);
	if (!r && vc) {
		ka = (struct vast_key_reattach){ vc, a.instance, config_get(cli->cfg, "ssh.key_path") };
		wo.reattach = vast_key_reattach;
		wo.reattach_arg = &ka;
		wo.timeout_s = timeout - (int)((clock_mono_ms() - t0) / 1000);
		if (wo.timeout_s < 1)
			wo.timeout_s = 1;
	}
	if (!r) {
		struct err we = { 0 };
		const char *commit;

		r = remote_wait(rm, &wo, &rep, &we);
		commit = json_string_value(json_object_get(rep, "trainer_commit"));
		if (a.json) {
			json_print(stdout, rep, 1);
		} else if (json_is_true(json_object_get(rep, "reachable"))) {
			printf("reachable after %.1f s (%lld tries)\n",
			       (double)(clock_mono_ms() - t0) / 1000.0,
			       (long long)json_integer_value(json_object_get(rep, "tries")));
			if (wo.trainer_repo)
				printf("trainer commit %s\n", commit ? commit : "unknown (not a git checkout)");
		}
		e = we;
	}
	json_decref(rep);
	return remote_finish(r, &e, rm, vc);
}

/* `push DIR`: check and pack the folder (as `ferry dataset pack` does) into
 * the job's local state, STATE_DIR/remote/TARGET/JOB/dataset.tar, which
 * *archive names (caller frees). */
static int remote_push_pack(struct cli *cli, struct remote *rm, const char *job,
			    const char *dir, const struct progress *pg, struct ds_pack_result *pack,
			    char **archive, struct err *e)
{
	char *local = remote_log_path(rm, config_get(cli->cfg, "state_dir"), job);
	struct ds_dataset *ds = NULL;
	struct ds_pack_opts po;
	int r;

	*strrchr(local, '/') = '\0'; /* the job's folder, not its log */
	*archive = fsx_join(local, "dataset.tar");
	ds_pack_opts_from_config(&po, cli->cfg);
	po.out_path = *archive;
	po.pg = pg;
	po.cancel = &remote_cancel;
	r = fsx_mkdir_p(local, 0700, e);
	if (!r)
		r = ds_check_and_pack(cli->cfg, dir, &po, &ds, pack, e);
	if (ds && !ds->ready)
		ds_report_errors(ds, stderr);
	if (r == ERR_FAIL && ds && !ds->ready)
		err_prefix(e, "not pushed (`ferry dataset pack --force` packs the usable files, "
			      "then push the archive)");
	ds_free(ds);
	free(local);
	return r;
}

static int cmd_remote_push(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote_push_opts po = { .cancel = &remote_cancel };
	struct remote_push_result res;
	struct ds_pack_result pack = { 0 };
	struct cli_bar bar;
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	struct stat st;
	char *archive = NULL;
	bool folder;
	int r;

	r = remote_getopt(argc, argv, "h", opts, "remote push", cmd_remote_usage, &a, NULL, NULL);
	if (r != -1)
		return r;
	if (argc - optind != 1)
		return cli_usage("remote push",
				 "give one ARCHIVE (from `ferry dataset pack`) or dataset folder");
	folder = !stat(argv[optind], &st) && S_ISDIR(st.st_mode);
	po.cache_dir = config_get(cli->cfg, "cache_dir");
	cli_bar_init(&bar, NULL);
	r = remote_connect(cli, &a, true, 0, &rm, &vc, &e);
	if (!r && folder)
		r = remote_push_pack(cli, rm, a.job, argv[optind], a.json ? NULL : &bar.pg, &pack,
				     &archive, &e);
	if (!r) {
		cli_bar_restart(&bar, NULL);
		r = remote_push(rm, a.job, folder ? archive : argv[optind], &po,
				a.json ? NULL : &bar.pg, &res, &e);
	}
	cli_bar_end(&bar);
	if (!r && a.json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:i, s:b, s:i}", "sha256", res.sha256,
				      "bytes", (json_int_t)res.bytes, "sent", (json_int_t)res.sent,
				      "resumed_from", (json_int_t)res.resumed_from, "files",
				      (int)res.files, "already", res.already, "resends", res.resends);

		if (folder)
			json_object_set_new(o, "pack",
					    json_pack("{s:s, s:s, s:I, s:I, s:b}", "archive", archive,
						      "sha256", pack.sha256, "bytes",
						      (json_int_t)pack.bytes, "files",
						      (json_int_t)pack.files, "reused", pack.reused));
		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!r) {
		if (folder)
			printf("packed %s: %zu files, %llu bytes%s\n", archive, pack.files,
			       (unsigned long long)pack.bytes, pack.reused ? " (reused)" : "");
		printf("%s: %zu files, %llu bytes, SHA-256 %s%s\n",
		       res.already ? "already there" : "pushed and verified", res.files,
		       (unsigned long long)res.bytes, res.sha256,
		       res.resumed_from ? " (resumed)" : "");
	}
	ds_pack_result_release(&pack);
	free(archive);
	return remote_finish(r, &e, rm, vc);
}

struct remote_launch_args {
	const char *config, *env_file;
	int heartbeat_s;
};

static int remote_launch_opt(int c, const char *arg, void *ctx)
{
	struct remote_launch_args *la = ctx;
	unsigned long long v;

	switch (c) {
	case O_CONFIG: la->config = arg; return 0;
	case O_ENV: la->env_file = arg; return 0;
	case O_HB:
		if (cli_uint("--heartbeat", arg, &v) || !v || v > 3600)
			return EXIT_USAGE;
		la->heartbeat_s = (int)v;
		return 0;
	default: return -1;
	}
}

/* --config and --env-file, read into memory (the env file's values are
 * secrets: the bytes read are wiped). */
static int remote_launch_inputs(const struct remote_launch_args *la, struct buf *config,
				struct strv *env, struct err *e)
{
	struct buf text = BUF_INIT;
	int r = 0;

	if (la->config)
		r = fsx_read_file(la->config, config, 16 << 20, e);
	if (!r && la->env_file) {
		r = fsx_read_file(la->env_file, &text, 1 << 20, e);
		if (!r)
			r = remote_env_parse(text.data, text.len, la->env_file, env, e);
		explicit_bzero(text.data, text.len);
	}
	buf_release(&text);
	return r;
}

static int cmd_remote_launch(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		REMOTE_COMMON_OPTS,
		{ "config", required_argument, NULL, O_CONFIG },
		{ "env-file", required_argument, NULL, O_ENV },
		{ "heartbeat", required_argument, NULL, O_HB },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote_launch_args la = { 0 };
	struct remote_launch_opts lo = { .cancel = &remote_cancel };
	struct buf config = BUF_INIT;
	struct strv env = STRV_INIT;
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	bool started = false;
	int r;

	r = remote_getopt(argc, argv, "+h", opts, "remote launch", cmd_remote_usage, &a,
			  remote_launch_opt, &la);
	if (r != -1)
		return r;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_usage("remote launch", "give the trainer command after --");
	lo.argv = (const char *const *)argv + optind;
	lo.heartbeat_s = la.heartbeat_s;
	lo.config = la.config ? &config : NULL;
	lo.env = &env;
	r = remote_launch_inputs(&la, &config, &env, &e);
	if (!r)
		r = remote_connect(cli, &a, true, 0, &rm, &vc, &e);
	if (!r)
		r = remote_launch(rm, a.job, &lo, &started, &e);
	if (!r)
		printf("%s\n", started ? "started" : "already running; nothing started");
	remote_env_release(&env);
	buf_release(&config);
	return remote_finish(r, &e, rm, vc);
}

static int cmd_remote_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote_status st;
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	int r;

	r = remote_getopt(argc, argv, "h", opts, "remote status", cmd_remote_usage, &a, NULL,
			  NULL);
	if (r != -1)
		return r;
	r = remote_connect(cli, &a, true, 0, &rm, &vc, &e);
	if (!r)
		r = remote_status(rm, a.job, &st, &e);
	if (!r && a.json) {
		json_t *o = remote_status_json(&st);

		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!r) {
		printf("state      %s", st.state);
		if (!strcmp(st.state, "exited"))
			printf(" (exit %d)", st.exit_code);
		printf("\n");
		if (st.heartbeat_age_s >= 0)
			printf("heartbeat  %lld s ago\n", st.heartbeat_age_s);
		printf("log        %lld bytes\n", st.log_bytes);
		if (st.disk_free_kb >= 0)
			printf("disk free  %.1f GB\n", (double)st.disk_free_kb / 1e6);
		if (st.gpu[0])
			printf("gpu        %s (util %%, MiB used, MiB total, C)\n", st.gpu);
	}
	if (!r) {
		r = remote_status_failed(&st, &e);
		if (r)
			err_prefix(&e, "job %s", a.job);
	}
	return remote_finish(r, &e, rm, vc);
}

/* Print log bytes as a person expects: on a terminal as they are; else
 * each \r-redrawn line only as it finally stands. `line` holds what is
 * not printed yet. */
static void remote_show_log(const char *p, size_t n, bool tty, struct buf *line)
{
	if (tty) {
		fwrite(p, 1, n, stdout);
		fflush(stdout);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			buf_reset(line);
		} else if (p[i] == '\n') {
			fwrite(line->data, 1, line->len, stdout);
			fputc('\n', stdout);
			buf_reset(line);
		} else {
			buf_putc(line, p[i]);
		}
	}
	fflush(stdout);
}

static int remote_logs_opt(int c, const char *arg, void *ctx)
{
	if (c != 'f')
		return -1;
	*(bool *)ctx = true;
	return 0;
}

/* How a followed log ended: 0 for a success; the trainer's failure, or
 * that it was never launched. */
static int remote_logs_outcome(const struct remote_log_sync_result *res, const char *job,
			       struct err *e)
{
	if (!strcmp(res->st.state, "never-started"))
		return err_set(e, ERR_NOTFOUND, "job %s was never launched on the target (ferry "
			       "remote launch starts it)", job);
	if (remote_status_failed(&res->st, e))
		return err_prefix(e, "job %s", job);
	return 0;
}

static int cmd_remote_logs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		REMOTE_COMMON_OPTS,
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct buf chunk = BUF_INIT, line = BUF_INIT, old = BUF_INIT;
	struct backoff reconnect = { .first_ms = 1000, .max_ms = 30000 };
	struct remote_log_sync_opts lo = { .cancel = &remote_cancel };
	struct remote_log_sync_result res;
	struct err e = { 0 };
	char *path = NULL;
	bool follow = false, tty = isatty(1);
	int r;

	r = remote_getopt(argc, argv, "fh", opts, "remote logs", cmd_remote_usage, &a,
			  remote_logs_opt, &follow);
	if (r != -1)
		return r;
	r = remote_connect(cli, &a, true, 0, &rm, &vc, &e);
	if (r)
		goto out;
	if (follow)
		lo.backoff = &reconnect;
	/* The local copy: what is already here is shown, and never fetched again. */
	path = remote_log_path(rm, config_get(cli->cfg, "state_dir"), a.job);
	if (!fsx_read_file(path, &old, (size_t)1 << 30, NULL))
		remote_show_log(old.data, old.len, tty, &line);
	for (;;) {
		buf_reset(&chunk);
		r = remote_log_sync(rm, a.job, path, &lo, &chunk, &res, &e);
		if (r)
			break;
		if (res.restarted)
			buf_reset(&line);
		remote_show_log(chunk.data, chunk.len, tty, &line);
		if (!follow)
			break;
		if (res.done) {
			r = remote_logs_outcome(&res, a.job, &e);
			break;
		}
		r = clock_sleep_ms(1000, &remote_cancel);
		if (r) {
			err_set(&e, r, "following the log of job %s was cancelled", a.job);
			break;
		}
	}
	if (line.len) {
		fwrite(line.data, 1, line.len, stdout);
		fputc('\n', stdout);
	}
out:
	buf_release(&chunk);
	buf_release(&line);
	buf_release(&old);
	free(path);
	return remote_finish(r, &e, rm, vc);
}

struct remote_pull_args {
	struct remote_pull_opts *po;
	struct strv *patterns;
};

static int remote_pull_opt(int c, const char *arg, void *ctx)
{
	struct remote_pull_args *pa = ctx;

	if (c == 'o')
		pa->po->dir = arg;
	else if (c == O_PATTERN)
		strv_push(pa->patterns, arg);
	else
		return -1;
	return 0;
}

static int cmd_remote_pull(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		REMOTE_COMMON_OPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "pattern", required_argument, NULL, O_PATTERN },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote_pull_opts po = { .cancel = &remote_cancel };
	struct remote_pull_result res;
	struct cli_bar bar;
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct strv patterns = STRV_INIT;
	char *dir = NULL;
	struct err e = { 0 };
	struct remote_pull_args pa = { &po, &patterns };
	int r;

	r = remote_getopt(argc, argv, "o:h", opts, "remote pull", cmd_remote_usage, &a,
			  remote_pull_opt, &pa);
	if (r != -1) {
		strv_release(&patterns);
		return r;
	}
	cli_bar_init(&bar, NULL);
	r = remote_connect(cli, &a, true, 0, &rm, &vc, &e);
	if (!r) {
		if (!po.dir)
			po.dir = dir = xasprintf("%s-output", a.job);
		po.patterns = patterns.n ? (const char *const *)patterns.v : NULL;
		r = remote_pull(rm, a.job, &po, a.json ? NULL : &bar.pg, &res, &e);
	}
	cli_bar_end(&bar);
	if (!r && a.json) {
		json_t *o = json_pack("{s:i, s:i, s:i, s:I, s:s}", "fetched", (int)res.fetched,
				      "skipped", (int)res.skipped, "incomplete", (int)res.incomplete,
				      "bytes", (json_int_t)res.bytes, "dir", po.dir);

		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!r) {
		printf("fetched %zu (%llu bytes), already here %zu, still being written %zu -> %s\n",
		       res.fetched, (unsigned long long)res.bytes, res.skipped, res.incomplete,
		       po.dir);
	}
	strv_release(&patterns);
	free(dir);
	return remote_finish(r, &e, rm, vc);
}

static int cmd_remote_exec(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct buf cmd = BUF_INIT, out = BUF_INIT, errout = BUF_INIT;
	struct remote_io io = { .cancel = &remote_cancel };
	struct err e = { 0 };
	int r, status = 0;

	r = remote_getopt(argc, argv, "+h", opts, "remote exec", cmd_remote_usage, &a, NULL, NULL);
	if (r != -1)
		return r;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_usage("remote exec", "give the command after --");
	for (int i = optind; i < argc; i++)
		remote_cmdf(&cmd, i > optind ? " %q" : "%q", argv[i]);
	r = remote_connect(cli, &a, false, 0, &rm, &vc, &e);
	if (!r)
		r = remote_exec(rm, cmd.data, &io, &out, &errout, &status, &e);
	fwrite(out.data, 1, out.len, stdout);
	fwrite(errout.data, 1, errout.len, stderr);
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&errout);
	if (!r && status) {
		remote_close(rm);
		vast_client_free(vc);
		return status; /* the command's own status */
	}
	return remote_finish(r, &e, rm, vc);
}

int cmd_remote(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "wait", cmd_remote_wait, NULL, NULL },
		{ "push", cmd_remote_push, NULL, NULL },
		{ "launch", cmd_remote_launch, NULL, NULL },
		{ "status", cmd_remote_status, NULL, NULL },
		{ "logs", cmd_remote_logs, NULL, NULL },
		{ "pull", cmd_remote_pull, NULL, NULL },
		{ "exec", cmd_remote_exec, NULL, NULL },
	};
	struct sigaction sa, old_int, old_term;
	int status;

	cancel_init(&remote_cancel);
	remote_signal = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = remote_on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	status = cli_dispatch(cli, "remote", subs, sizeof(subs) / sizeof(subs[0]),
			      cmd_remote_usage, argc, argv);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	cancel_release(&remote_cancel);
	return status;
}

int cmd_ssh(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote *rm = NULL;
	struct vast_client *vc = NULL;
	struct buf cmd = BUF_INIT;
	struct err e = { 0 };
	char *dir = NULL;
	int r, status = 0;

	r = remote_getopt(argc, argv, "h", opts, "ssh", cmd_ssh_usage, &a, NULL, NULL);
	if (r != -1)
		return r;
	if (optind < argc && !a.target)
		a.target = argv[optind++];
	if (optind < argc)
		return cli_usage("ssh", "unexpected argument '%s'", argv[optind]);
	r = remote_connect(cli, &a, false, 0, &rm, &vc, &e);
	if (!r && a.job)
		r = remote_job_check(a.job, &e);
	if (!r) {
		dir = a.job ? remote_job_root(rm, a.job) : xstrdup(remote_target_of(rm)->root);
		remote_cmdf(&cmd, "mkdir -p %q && cd %q && exec \"${SHELL:-/bin/sh}\" -l", dir, dir);
		r = remote_interactive(rm, cmd.data, &status, &e);
	}
	buf_release(&cmd);
	free(dir);
	if (!r && status) {
		remote_close(rm);
		vast_client_free(vc);
		return status;
	}
	return remote_finish(r, &e, rm, vc);
}
