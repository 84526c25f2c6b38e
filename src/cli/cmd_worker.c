/* `ferry worker`: run queued jobs until stopped (docs/train.md), one worker
 * per state folder; and starting one in the background for `ferry train`. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/steps.h"
#include "jobs/view.h"
#include "jobs/worker.h"

const char cmd_worker_usage[] =
	"usage: ferry worker [--parallel N] [--once]\n"
	"\n"
	"Run the jobs of the queue (jobs.queue, default state_dir/queue.db), each under\n"
	"a lease, until stopped. SIGTERM or ^C drains: no new job is taken up, every\n"
	"running job stops where it is (its state kept, nothing destroyed, its lease\n"
	"released) and the worker exits 0; the next worker takes the jobs up again.\n"
	"One worker per state folder: it holds state_dir/worker.lock, and a second\n"
	"one says which process holds it and exits 1. `ferry train` starts one in the\n"
	"background when none runs, logging to state_dir/worker.log. The worker logs\n"
	"at info unless log.level, -v or -q say otherwise.\n"
	"\n"
	"Options:\n"
	"  --parallel N   jobs at once (default: the jobs.parallel setting, 1)\n"
	"  --once         exit 0 once no job is runnable and none runs\n";

/* SIGTERM and ^C drain the worker. A signal handler reaches only what is
 * at file scope. */
static struct cancel worker_drain;

static void worker_on_signal(int sig)
{
	cancel_set_flag(&worker_drain);
}

int cmd_worker(struct cli *cli, int argc, char **argv)
{
	enum { O_PARALLEL = 256, O_ONCE };
	static const struct option opts[] = {
		{ "parallel", required_argument, NULL, O_PARALLEL },
		{ "once", no_argument, NULL, O_ONCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *state_dir = config_get(cli->cfg, "state_dir");
	struct worker_opts o = { .cfg = cli->cfg, .steps = job_steps_default(),
				 .drain = &worker_drain };
	struct cli_signals sigs;
	unsigned long long v;
	long long parallel = config_int(cli->cfg, "jobs.parallel");
	char *queue = NULL;
	struct err e = { 0 };
	long holder;
	int c, fd = -1, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_PARALLEL:
			if (cli_uint("--parallel", optarg, &v))
				return EXIT_USAGE;
			parallel = (long long)v;
			break;
		case O_ONCE: o.once = true; break;
		case 'h': fputs(cmd_worker_usage, stdout); return EXIT_OK;
		default: return cli_usage("worker", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage("worker", "unexpected argument '%s'", argv[optind]);
	if (parallel < 1 || parallel > 256)
		return cli_usage("worker", "--parallel (jobs.parallel) must be from 1 to 256, "
				 "not %lld", parallel);
	if (job_worker_lock(state_dir, &fd, &holder, &e))
		return cli_fail(&e);
	if (log_get_level() == LOG_WARN && !strcmp(config_origin(cli->cfg, "log.level"), "default"))
		log_set_level(LOG_INFO);
	queue = queue_location(cli->cfg);
	o.queue = queue;
	o.parallel = (int)parallel;
	o.lease_s = (int)config_int(cli->cfg, "jobs.lease_s");

	cancel_init(&worker_drain);
	cli_catch_signals(worker_on_signal, &sigs);
	log_fprintf(stderr, "ferry worker: pid %ld, queue %s, %d job(s) at once%s\n",
		    (long)getpid(), queue, o.parallel, o.once ? ", until none is runnable" : "");
	r = worker_run(&o, &e);
	cli_restore_signals(&sigs);
	log_fprintf(stderr, "ferry worker: pid %ld %s\n", (long)getpid(),
		    cancel_is_set(&worker_drain) ? "drained; its jobs keep their state" :
		    r ? "stopped" : "done: no job is runnable");
	cancel_release(&worker_drain);
	/* Nobody holds it now: a pid left in it would name the wrong process. */
	if (ftruncate(fd, 0))
		log_warn("cannot clear %s/worker.lock: %s", state_dir, strerror(errno));
	close(fd);
	free(queue);
	return r ? cli_fail(&e) : EXIT_OK;
}

/* In the grandchild: become `ferry worker`, or say why not in its log. */
static void worker_exec(char *const *args, int in, int out)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (close_range(3, ~0U, 0))
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	execv("/proc/self/exe", args);
	dprintf(2, "ferry: cannot start the worker (/proc/self/exe): %s\n", strerror(errno));
	_exit(127);
}

int cli_worker_ensure(struct cli *cli, bool *started, struct err *e)
{
	const char *state_dir = config_get(cli->cfg, "state_dir");
	char **args = xcalloc((size_t)cli->nglobal + 3, sizeof(*args));
	char *log_path = fsx_join(state_dir, "worker.log");
	long holder;
	int in = -1, out = -1, status, r = 0, n = 0;
	pid_t pid;

	*started = false;
	if (job_worker_running(state_dir, &holder))
		goto out;
	r = fsx_mkdir_p(state_dir, 0700, e);
	if (r)
		goto out;
	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (in < 0 || out < 0) {
		r = err_sys(e, ERR_IO, "cannot start a worker: opening %s", in < 0 ? "/dev/null" :
			    log_path);
		goto out;
	}
	args[n++] = (char *)"ferry";
	for (int i = 0; i < cli->nglobal; i++)
		args[n++] = cli->global_args[i];
	args[n++] = (char *)"worker";
	args[n] = NULL;
	fflush(NULL);
	/* Twice, so that the worker is nobody's child here (no zombie), in a
	 * session of its own (a terminal's ^C and hang-up do not reach it). */
	pid = fork();
	if (pid < 0) {
		r = err_sys(e, ERR_IO, "cannot start a worker: fork");
		goto out;
	}
	if (!pid) {
		pid_t grandchild;

		setsid();
		grandchild = fork();
		if (!grandchild)
			worker_exec(args, in, out);
		_exit(grandchild < 0 ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		r = err_set(e, ERR_FAIL, "cannot start a worker (fork failed)");
		goto out;
	}
	*started = true;
	/* Wait until it holds its lock, so that what follows can count on it. */
	for (int i = 0; i < 50 && !job_worker_running(state_dir, &holder); i++)
		clock_sleep_ms(100, NULL);
	if (!job_worker_running(state_dir, &holder))
		log_warn("the worker started in the background does not hold %s/worker.lock yet; "
			 "see %s", state_dir, log_path);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(log_path);
	free(args);
	return r;
}
