#include "remote/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "remote/jobdir.h"

extern const unsigned char remote_status_sh[];
extern const size_t remote_status_sh_len;

#define WATCH_TIMEOUT_MS 120000

void remote_status_parse(char *text, struct remote_status *st)
{
	bool alive = false, has_pid = false, has_exit = false;
	long long hb = -1;
	char *cursor = text, *l;

	memset(st, 0, sizeof(*st));
	st->heartbeat_age_s = -1;
	st->disk_free_kb = -1;
	while ((l = strsep(&cursor, "\n"))) {
		if (!strcmp(l, "state=absent")) {
			st->state = "absent";
		} else if (str_starts_with(l, "now=")) {
			str_to_i64(l + 4, &st->now);
		} else if (str_starts_with(l, "pid=")) {
			has_pid = !str_to_i64(l + 4, &st->pid);
		} else if (str_starts_with(l, "exit=")) {
			long long v = -1;

			has_exit = true;
			if (!str_to_i64(l + 5, &v) && v >= 0 && v <= 255)
				st->exit_code = (int)v;
			else
				st->exit_code = -1; /* unreadable: not a success */
		} else if (str_starts_with(l, "heartbeat=")) {
			str_to_i64(l + 10, &hb);
		} else if (!strcmp(l, "alive=1")) {
			alive = true;
		} else if (str_starts_with(l, "log=")) {
			str_to_i64(l + 4, &st->log_bytes);
		} else if (str_starts_with(l, "disk=")) {
			str_to_i64(l + 5, &st->disk_free_kb);
		} else if (str_starts_with(l, "gpu=")) {
			snprintf(st->gpu, sizeof(st->gpu), "%s", l + 4);
		}
	}
	if (!st->state)
		st->state = has_exit ? "exited" : alive ? "running" : has_pid ? "vanished"
									: "never-started";
	if (hb >= 0 && st->now)
		st->heartbeat_age_s = st->now - hb;
}

int remote_status(struct remote *rm, const char *job, struct remote_status *st, struct err *e)
{
	char *jr = remote_job_root(rm, job);
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	int r;

	memset(st, 0, sizeof(*st));
	st->state = "absent";
	r = remote_job_check(job, e);
	if (!r) {
		remote_cmd_script(&cmd, remote_status_sh, "ferry-status");
		remote_cmdf(&cmd, " %q", jr);
		r = remote_run(rm, cmd.data, &(struct remote_io){ .timeout_ms = WATCH_TIMEOUT_MS },
			       &out, "the status probe", e);
	}
	if (!r)
		remote_status_parse(out.data, st);
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return r;
}

json_t *remote_status_json(const struct remote_status *st)
{
	json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "state", st->state, "pid",
			      (json_int_t)st->pid, "log_bytes", (json_int_t)st->log_bytes, "now",
			      (json_int_t)st->now);

	json_object_set_new(o, "exit_code",
			    !strcmp(st->state, "exited") ? json_integer(st->exit_code) : json_null());
	json_object_set_new(o, "heartbeat_age_s", st->heartbeat_age_s >= 0
				  ? json_integer(st->heartbeat_age_s) : json_null());
	json_object_set_new(o, "disk_free_gb", st->disk_free_kb >= 0
			    ? json_real((double)st->disk_free_kb / 1e6) : json_null());
	json_object_set_new(o, "gpu", st->gpu[0] ? json_string(st->gpu) : json_null());
	return o;
}

int remote_status_failed(const struct remote_status *st, struct err *e)
{
	if (!strcmp(st->state, "exited") && st->exit_code > 128)
		return err_set(e, ERR_FAIL, "the trainer exited with status %d (signal %d)",
			       st->exit_code, st->exit_code - 128);
	if (!strcmp(st->state, "exited") && st->exit_code)
		return err_set(e, ERR_FAIL, "the trainer exited with status %d", st->exit_code);
	if (!strcmp(st->state, "vanished"))
		return err_set(e, ERR_FAIL, "the trainer's supervisor (pid %lld) is gone without an "
			       "exit status: the job vanished", st->pid);
	return 0;
}

int remote_log_fetch(struct remote *rm, const char *job, uint64_t offset, size_t max,
		     struct cancel *cancel, struct buf *out, struct remote_status *st,
		     struct err *e)
{
	char *jr = remote_job_root(rm, job);
	struct buf cmd = BUF_INIT, errout = BUF_INIT;
	struct remote_io io = { .timeout_ms = WATCH_TIMEOUT_MS, .cancel = cancel };
	int r, status = 0;

	memset(st, 0, sizeof(*st));
	st->state = "absent";
	r = remote_job_check(job, e);
	if (r)
		goto out;
	/* The state first (on stderr): bytes read after it saw the trainer
	 * end are all there are. */
	remote_cmd_script(&cmd, remote_status_sh, "ferry-status");
	remote_cmdf(&cmd, " %q brief >&2; cd %q 2>/dev/null && [ -f train.log ] && "
		    "tail -c +%lld train.log | head -c %lld; true", jr, jr, (long long)offset + 1,
		    (long long)max);
	r = remote_exec(rm, cmd.data, &io, out, &errout, &status, e);
	if (!r && status)
		r = err_set(e, ERR_FAIL, "fetching the log failed (exit %d)", status);
	if (r)
		goto out;
	remote_status_parse(errout.data, st);
	if (!strcmp(st->state, "absent"))
		r = err_set(e, ERR_NOTFOUND, "job %s has no folder on the target", job);
out:
	buf_release(&cmd);
	buf_release(&errout);
	free(jr);
	return r;
}

char *remote_log_path(const struct remote *rm, const char *state_dir, const char *job)
{
	char *where = remote_target_file_name(remote_target_of(rm));
	char *path = xasprintf("%s/remote/%s/%s/train.log", state_dir, where, job);

	free(where);
	return path;
}

static int watch_open_copy(const char *path, int *fd, struct err *e)
{
	int r = fsx_mkdir_parent(path, 0700, e);

	if (r)
		return r;
	*fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (*fd < 0)
		return err_sys(e, ERR_IO, "%s", path);
	return 0;
}

/* Fetch once, reconnecting after a dropped connection as o says. */
static int watch_fetch(struct remote *rm, const char *job, uint64_t offset, size_t max,
		       const struct remote_log_sync_opts *o, struct buf *chunk,
		       struct remote_status *st, struct err *e)
{
	for (;;) {
		long long wait;
		int r;

		buf_reset(chunk);
		r = remote_log_fetch(rm, job, offset, max, o->cancel, chunk, st, e);
		if (r != ERR_CONN || !o->backoff) {
			if (!r && o->backoff)
				backoff_reset(o->backoff);
			return r;
		}
		wait = backoff_next(o->backoff);
		log_warn("%s; reconnecting in %lld s", err_msg(e), (wait + 999) / 1000);
		err_clear(e);
		r = clock_sleep_ms(wait, o->cancel);
		if (r)
			return err_set(e, r, "following the log of job %s was cancelled", job);
	}
}

int remote_log_sync(struct remote *rm, const char *job, const char *local_path,
		    const struct remote_log_sync_opts *o, struct buf *out,
		    struct remote_log_sync_result *res, struct err *e)
{
	static const struct remote_log_sync_opts none;
	struct buf chunk = BUF_INIT;
	size_t max;
	struct stat st;
	int r, fd = -1;

	if (!o)
		o = &none;
	max = o->max ? o->max : 4u << 20;
	memset(res, 0, sizeof(*res));
	res->st.state = "absent";
	r = watch_open_copy(local_path, &fd, e);
	while (!r) {
		uint64_t offset;

		if (fstat(fd, &st)) {
			r = err_sys(e, ERR_IO, "%s", local_path);
			break;
		}
		offset = (uint64_t)st.st_size;
		r = watch_fetch(rm, job, offset, max, o, &chunk, &res->st, e);
		if (r)
			break;
		if ((uint64_t)res->st.log_bytes < offset) {
			/* The job was started afresh: keep the old copy aside. */
			char *old = xasprintf("%s.%lld", local_path, (long long)st.st_mtime);

			log_info("the log on the target restarted; the old copy is %s", old);
			close(fd);
			fd = -1;
			if (rename(local_path, old))
				r = err_sys(e, ERR_IO, "%s", old);
			free(old);
			if (!r)
				r = watch_open_copy(local_path, &fd, e);
			res->restarted = true;
			continue;
		}
		if (chunk.len) {
			if (fsx_write_all(fd, chunk.data, chunk.len)) {
				r = err_sys(e, ERR_IO, "%s", local_path);
				break;
			}
			if (out)
				buf_add(out, chunk.data, chunk.len);
			res->bytes += chunk.len;
		}
		res->size = offset + chunk.len;
		if (chunk.len < max) {
			res->done = strcmp(res->st.state, "running") != 0;
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	buf_release(&chunk);
	return r;
}
