/* `ferry remote ...` and `ferry ssh`: everything ferry does on a rented
 * machine (docs/remote.md). */
#include "cli/cli.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/buf.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "remote/job.h"
#include "remote/transport.h"
#include "vast/client.h"
#include "vast/keys.h"

const char cmd_remote_usage[] =
	"usage: ferry remote wait   (--target T | --instance ID) [--trainer PATH] [--need-disk GB]\n"
	"                           [--timeout S] [--json]\n"
	"       ferry remote push   (--target T | --instance ID) --job ID ARCHIVE [--json]\n"
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
	"\n"
	"  wait     until the target answers over SSH, then probe it: trainer, GPUs,\n"
	"           free disk, tar and sha256sum (exit 1 when a probe fails)\n"
	"  push     upload a packed dataset (resuming), check its SHA-256 there,\n"
	"           extract it into JOB/dataset and verify every file\n"
	"  launch   upload config, env file (mode 600) and the supervisor, and start\n"
	"           the trainer detached (setsid) in the job root; never twice\n"
	"  status   the job's state in one round trip (exit code, heartbeat, log, GPU)\n"
	"  logs     the trainer's log, each byte fetched once; -f follows it until\n"
	"           the trainer exits, through dropped connections\n"
	"  pull     fetch complete, new or changed files from JOB/output (resuming,\n"
	"           verified), into DIR (default ./JOB-output); never deletes local ones\n"
	"  exec     run one command (its arguments quoted, never re-split)\n";

const char cmd_ssh_usage[] =
	"usage: ferry ssh (TARGET | --instance ID) [--job ID]\n"
	"\n"
	"An interactive shell on the target, in the job root when --job is given\n"
	"(else in remote.root).\n";

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

/* Open the target the options name. */
static int remote_connect(struct cli *cli, const struct remote_args *a, bool need_job,
			  struct remote **r, struct vast_client **vc, struct err *e)
{
	struct remote_target t;
	const char *root = config_get(cli->cfg, "remote.root");
	int rc;

	*r = NULL;
	*vc = NULL;
	if (!a->target == !a->instance)
		return err_set(e, ERR_USAGE, "give one of --target T and --instance ID");
	if (need_job && (rc = remote_job_check(a->job, e)))
		return rc;
	if (a->instance) {
		rc = vast_client_from_config(vc, cli->cfg, true, e);
		if (!rc)
			rc = remote_target_instance(*vc, a->instance, root, &t, e);
	} else {
		rc = remote_target_parse(a->target, root, &t, e);
	}
	if (!rc) {
		rc = remote_open(r, &t, cli->cfg, e);
		remote_target_release(&t);
	}
	return rc;
}

static int remote_finish(int rc, struct err *e, struct remote *r, struct vast_client *vc)
{
	int status = rc ? cli_fail(e) : EXIT_OK;

	remote_close(r);
	vast_client_free(vc);
	return status;
}

enum { O_TRAINER = 400, O_DISK, O_TIMEOUT, O_CONFIG, O_ENV, O_HB, O_PATTERN };

static int remote_wait_opt(int c, const char *arg, void *ctx)
{
	struct remote_wait_opts *wo = ctx;
	unsigned long long v;

	switch (c) {
	case O_TRAINER: wo->trainer = arg; return 0;
	case O_DISK:
		if (cli_uint("--need-disk", arg, &v))
			return EXIT_USAGE;
		wo->need_disk_gb = (double)v;
		return 0;
	case O_TIMEOUT:
		if (cli_uint("--timeout", arg, &v) || !v)
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
		{ "need-disk", required_argument, NULL, O_DISK },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote_wait_opts wo = { 0 };
	struct vast_key_reattach ka = { 0 };
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	json_t *rep = NULL;
	struct err e = { 0 };
	int rc;

	rc = remote_getopt(argc, argv, "h", opts, "remote wait", cmd_remote_usage, &a,
			   remote_wait_opt, &wo);
	if (rc != -1)
		return rc;
	rc = remote_connect(cli, &a, false, &r, &vc, &e);
	if (!rc && vc) {
		ka = (struct vast_key_reattach){ vc, a.instance, config_get(cli->cfg, "ssh.key_path") };
		wo.reattach = vast_key_reattach;
		wo.reattach_arg = &ka;
	}
	if (!rc) {
		struct err we = { 0 };

		rc = remote_wait(r, &wo, &rep, &we);
		if (a.json)
			json_print(stdout, rep, 1);
		else if (json_is_true(json_object_get(rep, "reachable")))
			printf("reachable after %.1f s (%lld tries)\n",
			       json_real_value(json_object_get(rep, "seconds")),
			       (long long)json_integer_value(json_object_get(rep, "tries")));
		e = we;
	}
	json_decref(rep);
	return remote_finish(rc, &e, r, vc);
}

static int cmd_remote_push(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote_push_result res;
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	int rc;

	rc = remote_getopt(argc, argv, "h", opts, "remote push", cmd_remote_usage, &a, NULL, NULL);
	if (rc != -1)
		return rc;
	if (argc - optind != 1)
		return cli_usage("remote push", "give one ARCHIVE (from `ferry dataset pack`)");
	rc = remote_connect(cli, &a, true, &r, &vc, &e);
	if (!rc)
		rc = remote_push(r, a.job, argv[optind], config_get(cli->cfg, "cache_dir"), !a.json,
				 &res, &e);
	if (!rc && a.json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:i, s:b, s:i}", "sha256", res.sha256,
				      "bytes", (json_int_t)res.bytes, "sent", (json_int_t)res.sent,
				      "resumed_from", (json_int_t)res.resumed_from, "files",
				      (int)res.files, "already", res.already, "resends", res.resends);

		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!rc) {
		printf("%s: %zu files, %llu bytes, SHA-256 %s%s\n",
		       res.already ? "already there" : "pushed and verified", res.files,
		       (unsigned long long)res.bytes, res.sha256,
		       res.resumed_from ? " (resumed)" : "");
	}
	return remote_finish(rc, &e, r, vc);
}

static int remote_launch_opt(int c, const char *arg, void *ctx)
{
	struct remote_launch_opts *lo = ctx;
	unsigned long long v;

	switch (c) {
	case O_CONFIG: lo->config = arg; return 0;
	case O_ENV: lo->env_file = arg; return 0;
	case O_HB:
		if (cli_uint("--heartbeat", arg, &v) || !v || v > 3600)
			return EXIT_USAGE;
		lo->heartbeat_s = (int)v;
		return 0;
	default: return -1;
	}
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
	struct remote_launch_opts lo = { 0 };
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	bool started = false;
	int rc;

	rc = remote_getopt(argc, argv, "+h", opts, "remote launch", cmd_remote_usage, &a,
			   remote_launch_opt, &lo);
	if (rc != -1)
		return rc;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_usage("remote launch", "give the trainer command after --");
	lo.argv = (const char *const *)argv + optind;
	rc = remote_connect(cli, &a, true, &r, &vc, &e);
	if (!rc)
		rc = remote_launch(r, a.job, &lo, &started, &e);
	if (!rc)
		printf("%s\n", started ? "started" : "already running; nothing started");
	return remote_finish(rc, &e, r, vc);
}

static int cmd_remote_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote_status st;
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct err e = { 0 };
	int rc;

	rc = remote_getopt(argc, argv, "h", opts, "remote status", cmd_remote_usage, &a, NULL,
			   NULL);
	if (rc != -1)
		return rc;
	rc = remote_connect(cli, &a, true, &r, &vc, &e);
	if (!rc)
		rc = remote_status(r, a.job, &st, &e);
	if (!rc && a.json) {
		json_t *o = remote_status_json(&st);

		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!rc) {
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
	return remote_finish(rc, &e, r, vc);
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

static int cmd_remote_logs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		REMOTE_COMMON_OPTS,
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_args a = { 0 };
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct buf chunk = BUF_INIT, line = BUF_INIT;
	struct err e = { 0 };
	char *dir = NULL, *path = NULL, *where = NULL;
	bool follow = false, tty = isatty(1), done = false;
	long wait = 1000;
	struct stat st;
	int rc, fd = -1;

	rc = remote_getopt(argc, argv, "fh", opts, "remote logs", cmd_remote_usage, &a,
			   remote_logs_opt, &follow);
	if (rc != -1)
		return rc;
	rc = remote_connect(cli, &a, true, &r, &vc, &e);
	if (rc)
		goto out;
	/* The local copy: bytes already here are never fetched again. */
	where = remote_target_describe(remote_target_of(r));
	for (char *p = where; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	dir = xasprintf("%s/remote/%s/%s", config_get(cli->cfg, "state_dir"), where, a.job);
	path = fsx_join(dir, "train.log");
	rc = fsx_mkdir_p(dir, 0700, &e);
	if (!rc && (fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
		rc = err_sys(&e, ERR_IO, "%s", path);
	if (rc)
		goto out;
	/* Show what is already here, then what is new. */
	{
		struct buf old = BUF_INIT;

		if (!fsx_read_file(path, &old, (size_t)1 << 30, NULL))
			remote_show_log(old.data, old.len, tty, &line);
		buf_release(&old);
	}
	for (;;) {
		uint64_t offset = fstat(fd, &st) ? 0 : (uint64_t)st.st_size, size = 0;

		buf_reset(&chunk);
		rc = remote_log_fetch(r, a.job, offset, 4u << 20, &chunk, &done, &size, &e);
		if (!rc && size < offset) {
			/* The job was started afresh: keep the old copy aside. */
			char *old = xasprintf("%s.%lld", path, (long long)st.st_mtime);

			log_info("the log on the target restarted; the old copy is %s", old);
			close(fd);
			fd = -1;
			if (rename(path, old) ||
			    (fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
				rc = err_sys(&e, ERR_IO, "%s", path);
			free(old);
			if (rc)
				break;
			continue;
		}
		if (rc == ERR_CONN && follow) {
			/* Dropped: reconnect with backoff, keep going. */
			log_warn("%s; reconnecting in %ld s", e.msg, wait / 1000);
			err_clear(&e);
			clock_sleep_ms(wait, NULL);
			wait = wait * 2 > 30000 ? 30000 : wait * 2;
			continue;
		}
		if (rc)
			break;
		wait = 1000;
		if (chunk.len) {
			if (fsx_write_all(fd, chunk.data, chunk.len)) {
				rc = err_sys(&e, ERR_IO, "%s", path);
				break;
			}
			remote_show_log(chunk.data, chunk.len, tty, &line);
		}
		if (chunk.len == 4u << 20)
			continue; /* more is waiting */
		if (!follow || done)
			break;
		clock_sleep_ms(1000, NULL);
	}
	if (line.len) {
		fwrite(line.data, 1, line.len, stdout);
		fputc('\n', stdout);
	}
out:
	if (fd >= 0)
		close(fd);
	buf_release(&chunk);
	buf_release(&line);
	free(dir);
	free(path);
	free(where);
	return remote_finish(rc, &e, r, vc);
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
	struct remote_pull_opts po = { 0 };
	struct remote_pull_result res;
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct strv patterns = STRV_INIT;
	char *dir = NULL;
	struct err e = { 0 };
	struct remote_pull_args pa = { &po, &patterns };
	int rc;

	rc = remote_getopt(argc, argv, "o:h", opts, "remote pull", cmd_remote_usage, &a,
			   remote_pull_opt, &pa);
	if (rc != -1) {
		strv_release(&patterns);
		return rc;
	}
	rc = remote_connect(cli, &a, true, &r, &vc, &e);
	if (!rc) {
		if (!po.dir)
			po.dir = dir = xasprintf("%s-output", a.job);
		po.patterns = patterns.n ? (const char *const *)patterns.v : NULL;
		rc = remote_pull(r, a.job, &po, &res, &e);
	}
	if (!rc && a.json) {
		json_t *o = json_pack("{s:i, s:i, s:i, s:I, s:s}", "fetched", (int)res.fetched,
				      "skipped", (int)res.skipped, "incomplete", (int)res.incomplete,
				      "bytes", (json_int_t)res.bytes, "dir", po.dir);

		json_print(stdout, o, 1);
		json_decref(o);
	} else if (!rc) {
		printf("fetched %zu (%llu bytes), already here %zu, still being written %zu -> %s\n",
		       res.fetched, (unsigned long long)res.bytes, res.skipped, res.incomplete,
		       po.dir);
	}
	strv_release(&patterns);
	free(dir);
	return remote_finish(rc, &e, r, vc);
}

static int cmd_remote_exec(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct buf cmd = BUF_INIT, out = BUF_INIT, errout = BUF_INIT;
	struct err e = { 0 };
	int rc, status = 0;

	rc = remote_getopt(argc, argv, "+h", opts, "remote exec", cmd_remote_usage, &a, NULL, NULL);
	if (rc != -1)
		return rc;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_usage("remote exec", "give the command after --");
	for (int i = optind; i < argc; i++)
		remote_cmdf(&cmd, i > optind ? " %q" : "%q", argv[i]);
	rc = remote_connect(cli, &a, false, &r, &vc, &e);
	if (!rc)
		rc = remote_exec(r, cmd.data, NULL, &out, &errout, &status, &e);
	fwrite(out.data, 1, out.len, stdout);
	fwrite(errout.data, 1, errout.len, stderr);
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&errout);
	if (!rc && status) {
		remote_close(r);
		vast_client_free(vc);
		return status; /* the command's own status */
	}
	return remote_finish(rc, &e, r, vc);
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

	return cli_dispatch(cli, "remote", subs, sizeof(subs) / sizeof(subs[0]), cmd_remote_usage, argc, argv);
}

int cmd_ssh(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { REMOTE_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	struct remote_args a = { 0 };
	struct remote *r = NULL;
	struct vast_client *vc = NULL;
	struct buf cmd = BUF_INIT;
	struct err e = { 0 };
	char *dir = NULL;
	int rc, status = 0;

	rc = remote_getopt(argc, argv, "h", opts, "ssh", cmd_ssh_usage, &a, NULL, NULL);
	if (rc != -1)
		return rc;
	if (optind < argc && !a.target)
		a.target = argv[optind++];
	if (optind < argc)
		return cli_usage("ssh", "unexpected argument '%s'", argv[optind]);
	rc = remote_connect(cli, &a, false, &r, &vc, &e);
	if (!rc && a.job)
		rc = remote_job_check(a.job, &e);
	if (!rc) {
		dir = a.job ? remote_job_root(r, a.job) : xstrdup(remote_target_of(r)->root);
		remote_cmdf(&cmd, "mkdir -p %q && cd %q && exec \"${SHELL:-/bin/sh}\" -l", dir, dir);
		rc = remote_interactive(r, cmd.data, &status, &e);
	}
	buf_release(&cmd);
	free(dir);
	if (!rc && status) {
		remote_close(r);
		vast_client_free(vc);
		return status;
	}
	return remote_finish(rc, &e, r, vc);
}
