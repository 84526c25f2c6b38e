#include "remote/transport.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/str.h"
#include "common/xalloc.h"

extern char **environ;

struct remote {
	struct remote_target t;
	struct strv ssh;         /* ssh and its options, up to the destination */
	char *control;           /* ControlPath folder */
};

/* A private folder for control sockets: $XDG_RUNTIME_DIR/ferry/ssh, else
 * /tmp/ferry-UID/ssh; mode 0700 and ours, or refused. */
static int remote_runtime_dir(char **out, struct err *e)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	char *base = x && *x == '/' ? xasprintf("%s/ferry", x)
				     : xasprintf("/tmp/ferry-%u", (unsigned)getuid());
	char *dir = xasprintf("%s/ssh", base);
	struct stat st;
	int r = fsx_mkdir_p(dir, 0700, e);

	if (!r && (lstat(base, &st) || !S_ISDIR(st.st_mode) || st.st_uid != getuid()))
		r = err_set(e, ERR_IO, "%s is not a folder of ours; ferry keeps SSH sockets there",
			    base);
	if (!r) {
		chmod(base, 0700);
		chmod(dir, 0700);
	}
	free(base);
	if (r)
		free(dir);
	else
		*out = dir;
	return r;
}

int remote_open(struct remote **out, const struct remote_target *t, const struct config *cfg,
		struct err *e)
{
	struct remote *rm = xcalloc(1, sizeof(*rm));
	char *hosts_dir = NULL, *hosts = NULL, *name;
	const char *key = config_get(cfg, "ssh.key_path");
	int r = ERR_FAIL;

	*out = NULL;
	rm->t.kind = t->kind;
	rm->t.user = t->user ? xstrdup(t->user) : NULL;
	rm->t.host = t->host ? xstrdup(t->host) : NULL;
	rm->t.port = t->port;
	rm->t.root = xstrdup(t->root);
	rm->t.instance = t->instance;
	if (t->kind == REMOTE_LOCAL) {
		r = 0;
		goto out;
	}
	r = remote_runtime_dir(&rm->control, e);
	if (r)
		goto out;
	/* One known-hosts file per target: Vast hands the same address to
	 * different machines, each with its own host key. */
	hosts_dir = xasprintf("%s/ssh/known_hosts.d", config_get(cfg, "state_dir"));
	r = fsx_mkdir_p(hosts_dir, 0700, e);
	if (r)
		goto out;
	name = t->instance ? xasprintf("instance-%lld", t->instance)
			   : xasprintf("%s-%d", t->host, t->port);
	remote_file_name_safe(name);
	hosts = xasprintf("%s/%s", hosts_dir, name);
	free(name);
	strv_push(&rm->ssh, "ssh");
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "BatchMode=yes");
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "StrictHostKeyChecking=accept-new");
	strv_push_nodup(&rm->ssh, xasprintf("-oUserKnownHostsFile=%s", hosts));
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "ControlMaster=auto");
	strv_push_nodup(&rm->ssh, xasprintf("-oControlPath=%s/%%C", rm->control));
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "ControlPersist=300");
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "ConnectTimeout=15");
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "ServerAliveInterval=15");
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "ServerAliveCountMax=4");
	/* AES-GCM first: AES-NI makes it the fastest for bulk transfers. */
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
			    "chacha20-poly1305@openssh.com,aes128-ctr");
	/* Banners and warnings go nowhere near a command's output. */
	strv_push(&rm->ssh, "-o");
	strv_push(&rm->ssh, "LogLevel=ERROR");
	if (key && *key && !access(key, R_OK)) {
		strv_push(&rm->ssh, "-o");
		strv_push(&rm->ssh, "IdentitiesOnly=yes");
		strv_push(&rm->ssh, "-i");
		strv_push(&rm->ssh, key);
	}
	strv_push_nodup(&rm->ssh, xasprintf("-p%d", t->port));
	strv_push(&rm->ssh, "-l");
	strv_push(&rm->ssh, t->user);
	strv_push(&rm->ssh, "--");
	strv_push(&rm->ssh, t->host);
	r = 0;
out:
	if (r)
		remote_close(rm);
	else
		*out = rm;
	free(hosts_dir);
	free(hosts);
	return r;
}

void remote_close(struct remote *rm)
{
	if (!rm)
		return;
	if (rm->t.kind == REMOTE_SSH && rm->ssh.n) {
		/* ssh -O exit, with the same options, before the destination. */
		const char **argv = xcalloc(rm->ssh.n + 3, sizeof(*argv));
		struct proc_opts po = { .timeout_ms = 10000 };
		size_t n = 0;
		int status;

		for (size_t i = 0; i + 2 < rm->ssh.n; i++)
			argv[n++] = rm->ssh.v[i];
		argv[n++] = "-O";
		argv[n++] = "exit";
		argv[n++] = rm->ssh.v[rm->ssh.n - 2]; /* -- */
		argv[n++] = rm->ssh.v[rm->ssh.n - 1]; /* host */
		proc_run(argv, &po, NULL, NULL, &status, NULL);
		free(argv);
	}
	strv_release(&rm->ssh);
	free(rm->control);
	remote_target_release(&rm->t);
	free(rm);
}

const struct remote_target *remote_target_of(const struct remote *rm)
{
	return &rm->t;
}

/* argv for one command: ssh ... host CMD, or sh -c CMD. */
static const char **remote_argv(struct remote *rm, const char *cmd, bool tty)
{
	const char **argv = xcalloc(rm->ssh.n + 5, sizeof(*argv));
	size_t n = 0;

	if (rm->t.kind == REMOTE_LOCAL) {
		argv[n++] = "sh";
		argv[n++] = "-c";
		argv[n++] = cmd;
		return argv;
	}
	for (size_t i = 0; i + 2 < rm->ssh.n; i++)
		argv[n++] = rm->ssh.v[i];
	argv[n++] = tty ? "-t" : "-T";
	argv[n++] = rm->ssh.v[rm->ssh.n - 2];
	argv[n++] = rm->ssh.v[rm->ssh.n - 1];
	argv[n++] = cmd;
	return argv;
}

/* The last non-empty line of ssh's stderr, for a connection error. */
static char *remote_last_line(const struct buf *b)
{
	size_t end = b->len;

	while (end && (b->data[end - 1] == '\n' || b->data[end - 1] == '\r'))
		end--;
	size_t start = end;
	while (start && b->data[start - 1] != '\n')
		start--;
	return xstrndup(b->data + start, end - start);
}

int remote_exec(struct remote *rm, const char *cmd, const struct remote_io *io, struct buf *out,
		struct buf *errout, int *status, struct err *e)
{
	static const struct remote_io none;
	const char **argv = remote_argv(rm, cmd, false);
	struct proc_opts po;
	struct buf err_local = BUF_INIT;
	struct buf *ebuf = errout ? errout : &err_local;
	int r;

	if (!io)
		io = &none;
	po = (struct proc_opts){ .input = io->input, .input_len = io->input_len,
				 .in_fd = io->in_fd, .use_in_fd = io->use_in_fd,
				 .out_fd = io->out_fd, .use_out_fd = io->use_out_fd,
				 .timeout_ms = io->timeout_ms, .tick = io->tick,
				 .tick_arg = io->tick_arg, .tick_ms = 200, .cancel = io->cancel };
	log_trace("%s: %s", rm->t.kind == REMOTE_SSH ? rm->t.host : "local", cmd);
	r = proc_run(argv, &po, out, ebuf, status, e);
	if (r == ERR_TIMEOUT) {
		char *where = remote_target_describe(&rm->t);

		err_set(e, r, "%s: the command did not finish within %d s and was stopped", where,
			io->timeout_ms / 1000);
		free(where);
	} else if (r == ERR_CANCELLED) {
		char *where = remote_target_describe(&rm->t);

		err_set(e, r, "%s: the command was stopped: cancelled", where);
		free(where);
	} else if (!r && rm->t.kind == REMOTE_SSH && *status == 255) {
		char *line = remote_last_line(ebuf), *where = remote_target_describe(&rm->t);

		r = err_set(e, ERR_CONN, "cannot reach %s: %s", where,
			     *line ? line : "ssh failed (exit 255)");
		free(line);
		free(where);
	}
	buf_release(&err_local);
	free(argv);
	return r;
}

int remote_interactive(struct remote *rm, const char *cmd, int *status, struct err *e)
{
	const char **argv = remote_argv(rm, cmd, isatty(0) && isatty(1));
	pid_t pid;
	int r, ws = 0;

	/* The terminal's own process group: job control and ^C work as in ssh. */
	r = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
	free(argv);
	if (r) {
		errno = r;
		return err_sys(e, ERR_IO, "cannot run %s", rm->t.kind == REMOTE_SSH ? "ssh" : "sh");
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	if (rm->t.kind == REMOTE_SSH && *status == 255)
		return err_set(e, ERR_CONN, "ssh to %s failed (exit 255)", rm->t.host);
	return 0;
}
