#include "remote/transport.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "vast/client.h"
#include "vast/model.h"

extern char **environ;

struct remote {
	struct remote_target t;
	struct strv ssh;         /* ssh and its options, up to the destination */
	char *control;           /* ControlPath folder */
};

/* ---- targets ---- */

static int target_host_port(const char *s, struct remote_target *t, struct err *e)
{
	const char *at = strrchr(s, '@'), *host = at ? at + 1 : s, *colon;
	unsigned long long port = 22;

	if (at)
		t->user = xstrndup(s, (size_t)(at - s));
	if (*host == '[') { /* [::1]:22 */
		const char *close = strchr(host, ']');

		if (!close)
			return err_set(e, ERR_USAGE, "target '%s': unclosed [", s);
		t->host = xstrndup(host + 1, (size_t)(close - host - 1));
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return err_set(e, ERR_USAGE, "target '%s': junk after ]", s);
	} else {
		colon = strrchr(host, ':');
		t->host = colon ? xstrndup(host, (size_t)(colon - host)) : xstrdup(host);
	}
	if (colon && (str_to_u64(colon + 1, &port) || !port || port > 65535))
		return err_set(e, ERR_USAGE, "target '%s': bad port '%s'", s, colon + 1);
	t->port = (int)port;
	if (!*t->host || strpbrk(t->host, " /\\\t\n") || *t->host == '-')
		return err_set(e, ERR_USAGE, "target '%s': bad host", s);
	if (t->user && (!*t->user || *t->user == '-' || strpbrk(t->user, " /\\\t\n:")))
		return err_set(e, ERR_USAGE, "target '%s': bad user", s);
	if (!t->user)
		t->user = xstrdup("root");
	return 0;
}

int remote_target_parse(const char *spec, const char *root, struct remote_target *t,
			struct err *e)
{
	int r = 0;

	memset(t, 0, sizeof(*t));
	if (!strcmp(spec, "local") || str_starts_with(spec, "local:")) {
		t->kind = REMOTE_LOCAL;
		t->root = xstrdup(spec[5] == ':' ? spec + 6 : root);
		if (*t->root != '/')
			r = err_set(e, ERR_USAGE, "target '%s': the folder must be an absolute path",
				    spec);
	} else {
		t->kind = REMOTE_SSH;
		t->root = xstrdup(root);
		r = target_host_port(str_starts_with(spec, "ssh://") ? spec + 6 : spec, t, e);
	}
	if (r)
		remote_target_release(t);
	return r;
}

int remote_target_instance(struct vast_client *c, long long id, const char *root,
			   struct remote_target *t, struct err *e)
{
	struct vast_instance in;
	bool direct = false;
	int r;

	memset(t, 0, sizeof(*t));
	r = vast_show_instance(c, id, &in, e);
	if (!r)
		r = vast_instance_ssh_endpoint(&in, &t->host, &t->port, &direct, e);
	if (!r) {
		t->kind = REMOTE_SSH;
		t->user = xstrdup("root");
		t->root = xstrdup(root);
		t->instance = id;
		log_debug("instance %lld: %s ssh at %s:%d", id, direct ? "direct" : "proxy",
			  t->host, t->port);
	} else {
		err_prefix(e, "instance %lld", id);
		remote_target_release(t);
	}
	vast_instance_release(&in);
	return r;
}

void remote_target_release(struct remote_target *t)
{
	free(t->user);
	free(t->host);
	free(t->root);
	memset(t, 0, sizeof(*t));
}

char *remote_target_describe(const struct remote_target *t)
{
	if (t->kind == REMOTE_LOCAL)
		return xasprintf("local:%s", t->root);
	return xasprintf("ssh://%s@%s:%d", t->user, t->host, t->port);
}

/* ---- the transport ---- */

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
	struct remote *r = xcalloc(1, sizeof(*r));
	char *hosts_dir = NULL, *hosts = NULL, *name;
	const char *key = config_get(cfg, "ssh.key_path");
	int rc = 0;

	*out = NULL;
	r->t.kind = t->kind;
	r->t.user = t->user ? xstrdup(t->user) : NULL;
	r->t.host = t->host ? xstrdup(t->host) : NULL;
	r->t.port = t->port;
	r->t.root = xstrdup(t->root);
	r->t.instance = t->instance;
	if (t->kind == REMOTE_LOCAL) {
		*out = r;
		return 0;
	}
	rc = remote_runtime_dir(&r->control, e);
	if (rc)
		goto fail;
	/* One known-hosts file per target: Vast hands the same address to
	 * different machines, each with its own host key. */
	hosts_dir = xasprintf("%s/ssh/known_hosts.d", config_get(cfg, "state_dir"));
	rc = fsx_mkdir_p(hosts_dir, 0700, e);
	if (rc)
		goto fail;
	name = t->instance ? xasprintf("instance-%lld", t->instance)
			   : xasprintf("%s-%d", t->host, t->port);
	for (char *p = name; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	hosts = xasprintf("%s/%s", hosts_dir, name);
	free(name);
	strv_push(&r->ssh, "ssh");
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "BatchMode=yes");
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "StrictHostKeyChecking=accept-new");
	strv_push_nodup(&r->ssh, xasprintf("-oUserKnownHostsFile=%s", hosts));
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "ControlMaster=auto");
	strv_push_nodup(&r->ssh, xasprintf("-oControlPath=%s/%%C", r->control));
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "ControlPersist=300");
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "ConnectTimeout=15");
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "ServerAliveInterval=15");
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "ServerAliveCountMax=4");
	/* AES-GCM first: AES-NI makes it the fastest for bulk transfers. */
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
			   "chacha20-poly1305@openssh.com,aes128-ctr");
	/* Banners and warnings go nowhere near a command's output. */
	strv_push(&r->ssh, "-o");
	strv_push(&r->ssh, "LogLevel=ERROR");
	if (key && *key && !access(key, R_OK)) {
		strv_push(&r->ssh, "-o");
		strv_push(&r->ssh, "IdentitiesOnly=yes");
		strv_push(&r->ssh, "-i");
		strv_push(&r->ssh, key);
	}
	strv_push_nodup(&r->ssh, xasprintf("-p%d", t->port));
	strv_push(&r->ssh, "-l");
	strv_push(&r->ssh, t->user);
	strv_push(&r->ssh, "--");
	strv_push(&r->ssh, t->host);
	*out = r;
	goto out;
fail:
	remote_close(r);
out:
	free(hosts_dir);
	free(hosts);
	return rc;
}

void remote_close(struct remote *r)
{
	if (!r)
		return;
	if (r->t.kind == REMOTE_SSH && r->ssh.n) {
		/* ssh -O exit, with the same options, before the destination. */
		const char **argv = xcalloc(r->ssh.n + 3, sizeof(*argv));
		struct proc_opts po = { .timeout_ms = 10000 };
		size_t n = 0;
		int status;

		for (size_t i = 0; i + 2 < r->ssh.n; i++)
			argv[n++] = r->ssh.v[i];
		argv[n++] = "-O";
		argv[n++] = "exit";
		argv[n++] = r->ssh.v[r->ssh.n - 2]; /* -- */
		argv[n++] = r->ssh.v[r->ssh.n - 1]; /* host */
		proc_run(argv, &po, NULL, NULL, &status, NULL);
		free(argv);
	}
	strv_release(&r->ssh);
	free(r->control);
	remote_target_release(&r->t);
	free(r);
}

const struct remote_target *remote_target_of(const struct remote *r)
{
	return &r->t;
}

/* argv for one command: ssh ... host CMD, or sh -c CMD. */
static const char **remote_argv(struct remote *r, const char *cmd, bool tty)
{
	const char **argv = xcalloc(r->ssh.n + 5, sizeof(*argv));
	size_t n = 0;

	if (r->t.kind == REMOTE_LOCAL) {
		argv[n++] = "sh";
		argv[n++] = "-c";
		argv[n++] = cmd;
		return argv;
	}
	for (size_t i = 0; i + 2 < r->ssh.n; i++)
		argv[n++] = r->ssh.v[i];
	argv[n++] = tty ? "-t" : "-T";
	argv[n++] = r->ssh.v[r->ssh.n - 2];
	argv[n++] = r->ssh.v[r->ssh.n - 1];
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

int remote_exec(struct remote *r, const char *cmd, const struct remote_io *io, struct buf *out,
		struct buf *errout, int *status, struct err *e)
{
	static const struct remote_io none;
	const char **argv = remote_argv(r, cmd, false);
	struct proc_opts po;
	struct buf err_local = BUF_INIT;
	struct buf *ebuf = errout ? errout : &err_local;
	int rc;

	if (!io)
		io = &none;
	po = (struct proc_opts){ .input = io->input, .input_len = io->input_len,
				 .in_fd = io->in_fd, .use_in_fd = io->use_in_fd,
				 .out_fd = io->out_fd, .use_out_fd = io->use_out_fd,
				 .timeout_ms = io->timeout_ms, .tick = io->tick,
				 .tick_arg = io->tick_arg, .tick_ms = 200 };
	log_trace("%s: %s", r->t.kind == REMOTE_SSH ? r->t.host : "local", cmd);
	rc = proc_run(argv, &po, out, ebuf, status, e);
	if (rc == ERR_TIMEOUT) {
		char *where = remote_target_describe(&r->t);

		err_set(e, rc, "%s: the command did not finish within %d s and was stopped", where,
			io->timeout_ms / 1000);
		free(where);
	} else if (!rc && r->t.kind == REMOTE_SSH && *status == 255) {
		char *line = remote_last_line(ebuf), *where = remote_target_describe(&r->t);

		rc = err_set(e, ERR_CONN, "cannot reach %s: %s", where,
			     *line ? line : "ssh failed (exit 255)");
		free(line);
		free(where);
	}
	buf_release(&err_local);
	free(argv);
	return rc;
}

int remote_interactive(struct remote *r, const char *cmd, int *status, struct err *e)
{
	const char **argv = remote_argv(r, cmd, isatty(0) && isatty(1));
	pid_t pid;
	int rc, ws = 0;

	/* The terminal's own process group: job control and ^C work as in ssh. */
	rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
	free(argv);
	if (rc) {
		errno = rc;
		return err_sys(e, ERR_IO, "cannot run %s", r->t.kind == REMOTE_SSH ? "ssh" : "sh");
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	if (r->t.kind == REMOTE_SSH && *status == 255)
		return err_set(e, ERR_CONN, "ssh to %s failed (exit 255)", r->t.host);
	return 0;
}
