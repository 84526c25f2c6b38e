#include "remote/launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "remote/jobdir.h"

extern const unsigned char remote_run_sh[];
extern const size_t remote_run_sh_len;

/* A shell variable name: letters, digits and '_', not starting with a digit. */
static bool launch_name_ok(const char *name, size_t n)
{
	if (!n || (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
		      name[i] == '_' || (name[i] >= '0' && name[i] <= '9')))
			return false;
	return true;
}

int remote_env_parse(const char *text, size_t len, const char *what, struct strv *env,
		     struct err *e)
{
	char *copy, *cursor, *line;
	int r = 0, lineno = 0;

	if (memchr(text, '\0', len))
		return err_set(e, ERR_FORMAT, "%s holds a NUL byte; it is not KEY=VALUE lines", what);
	copy = xstrndup(text, len);
	cursor = copy;
	while ((line = strsep(&cursor, "\n"))) {
		char *name, *eq;

		lineno++;
		line[strcspn(line, "\r")] = '\0';
		name = line + strspn(line, " \t");
		if (!*name || *name == '#')
			continue;
		if (str_starts_with(name, "export "))
			name += 7;
		eq = strchr(name, '=');
		if (!eq || eq == name) {
			r = err_set(e, ERR_USAGE, "%s:%d: not NAME=VALUE", what, lineno);
			break;
		}
		if (!launch_name_ok(name, (size_t)(eq - name))) {
			r = err_set(e, ERR_USAGE, "%s:%d: '%.*s' is not a variable name", what, lineno,
				    (int)(eq - name), name);
			break;
		}
		log_register_secret(eq + 1);
		strv_push(env, name);
	}
	explicit_bzero(copy, len);
	free(copy);
	return r;
}

void remote_env_release(struct strv *env)
{
	for (size_t i = 0; i < env->n; i++)
		explicit_bzero(env->v[i], strlen(env->v[i]));
	strv_release(env);
}

/* The env file run.sh sources: NAME='value' and export lines. */
static int launch_env_text(const struct strv *env, struct buf *out, struct err *e)
{
	/* Python trainers (ai-toolkit) print live only unbuffered. */
	buf_puts(out, "PYTHONUNBUFFERED='1'\nexport PYTHONUNBUFFERED\n");
	for (size_t i = 0; env && i < env->n; i++) {
		const char *s = env->v[i], *eq = strchr(s, '=');

		if (!eq || !launch_name_ok(s, (size_t)(eq - s)))
			return err_set(e, ERR_USAGE, "environment entry %zu is not NAME=VALUE with a "
				       "variable name (letters, digits, '_')", i + 1);
		log_register_secret(eq + 1);
		buf_add(out, s, (size_t)(eq - s));
		buf_putc(out, '=');
		str_shell_quote(eq + 1, out);
		buf_puts(out, "\nexport ");
		buf_add(out, s, (size_t)(eq - s));
		buf_putc(out, '\n');
	}
	return 0;
}

int remote_launch(struct remote *rm, const char *job, const struct remote_launch_opts *o,
		  bool *started, struct err *e)
{
	char *jr = remote_job_root(rm, job), *path = NULL;
	struct buf cmd = BUF_INIT, out = BUF_INIT, env = BUF_INIT;
	struct remote_io io = { .cancel = o->cancel };
	int r;

	*started = false;
	r = remote_job_check(job, e);
	if (!r && (!o->argv || !o->argv[0]))
		r = err_set(e, ERR_USAGE, "no trainer command to run");
	if (!r)
		r = launch_env_text(o->env, &env, e);
	if (r)
		goto out;
	/* Nothing is started twice. */
	remote_cmdf(&cmd, "mkdir -p %q/state && cd %q && if [ -f state/pid ] && [ ! -f state/exit ] "
		    "&& kill -0 \"$(cat state/pid)\" 2>/dev/null; then echo running; fi", jr, jr);
	r = remote_run(rm, cmd.data, &io, &out, "looking at the job", e);
	if (r)
		goto out;
	if (strstr(out.data, "running")) {
		log_info("job %s is already running; nothing started", job);
		goto out;
	}
	if (o->config) {
		path = fsx_join(jr, "config.json");
		r = remote_put(rm, path, o->config->data, o->config->len, "644", o->cancel, e);
		free(path);
		if (r)
			goto out;
	}
	path = fsx_join(jr, "env");
	r = remote_put(rm, path, env.data, env.len, "600", o->cancel, e);
	free(path);
	if (r)
		goto out;
	path = fsx_join(jr, "run.sh");
	r = remote_put(rm, path, remote_run_sh, remote_run_sh_len, "755", o->cancel, e);
	free(path);
	if (r)
		goto out;
	buf_reset(&cmd);
	/* setsid and every stream redirected: closing SSH never stops it. */
	remote_cmdf(&cmd, "cd %q || exit 1; rm -f state/exit state/pid; setsid sh ./run.sh -i %d %q --",
		    jr, o->heartbeat_s > 0 ? o->heartbeat_s : 10, jr);
	for (const char *const *a = o->argv; *a; a++)
		remote_cmdf(&cmd, " %q", *a);
	remote_cmdf(&cmd, " </dev/null >/dev/null 2>&1 & "
		    "i=0; while [ ! -f state/pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
		    "[ -f state/pid ] || { echo 'the supervisor did not start' >&2; exit 1; }");
	r = remote_run(rm, cmd.data, &io, NULL, "starting the trainer", e);
	if (!r)
		*started = true;
out:
	explicit_bzero(env.data, env.len);
	buf_release(&env);
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return r;
}

int remote_stop(struct remote *rm, const char *job, int grace_s, bool *stopped, struct err *e)
{
	char *jr = remote_job_root(rm, job);
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	int grace = grace_s > 0 ? grace_s : 30;
	struct remote_io io = { .timeout_ms = (grace + 20) * 1000 };
	int r;

	*stopped = false;
	r = remote_job_check(job, e);
	if (r)
		goto out;
	/* The supervisor forwards the first signal as SIGTERM and a second as
	 * SIGKILL; either way it writes state/exit. */
	remote_cmdf(&cmd, "cd %q 2>/dev/null || exit 0; "
		    "{ [ -f state/pid ] && [ ! -f state/exit ]; } || exit 0; p=$(cat state/pid); "
		    "kill -0 \"$p\" 2>/dev/null || exit 0; echo stopping; kill -TERM \"$p\"; i=0; "
		    "while [ ! -f state/exit ] && kill -0 \"$p\" 2>/dev/null; do "
		    "[ $i -eq %d ] && kill -TERM \"$p\"; "
		    "[ $i -ge %d ] && { echo 'the supervisor did not stop' >&2; exit 1; }; "
		    "sleep 0.5; i=$((i+1)); done; exit 0",
		    jr, grace * 2, grace * 2 + 20);
	r = remote_run(rm, cmd.data, &io, &out, "stopping the trainer", e);
	if (!r)
		*stopped = strstr(out.data, "stopping") != NULL;
out:
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return r;
}
