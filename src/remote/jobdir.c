#include "remote/jobdir.h"

#include <stdarg.h>
#include <string.h>

#include "common/fsx.h"
#include "common/sha256.h"
#include "common/str.h"

int remote_job_check(const char *job, struct err *e)
{
	if (!job || !*job)
		return err_set(e, ERR_USAGE, "a job id is needed");
	if (strchr(job, '/') || !strcmp(job, ".") || !strcmp(job, "..") || strlen(job) > 200)
		return err_set(e, ERR_USAGE, "job id '%s' cannot name a folder (no '/', not '.' "
			       "or '..', at most 200 bytes)", job);
	return 0;
}

char *remote_job_root(struct remote *rm, const char *job)
{
	return fsx_join(remote_target_of(rm)->root, job);
}

void remote_cmdf(struct buf *b, const char *tmpl, ...)
{
	va_list ap;

	va_start(ap, tmpl);
	for (const char *p = tmpl; *p; p++) {
		if (*p != '%') {
			buf_putc(b, *p);
			continue;
		}
		p++;
		if (*p == 'q')
			str_shell_quote(va_arg(ap, const char *), b);
		else if (*p == 'd')
			buf_printf(b, "%d", va_arg(ap, int));
		else if (!strncmp(p, "lld", 3)) {
			buf_printf(b, "%lld", va_arg(ap, long long));
			p += 2;
		} else
			buf_putc(b, '%');
	}
	va_end(ap);
}

void remote_cmd_script(struct buf *b, const unsigned char *script, const char *name)
{
	remote_cmdf(b, "sh -c %q %q", (const char *)script, name);
}

int remote_run(struct remote *rm, const char *cmd, const struct remote_io *io, struct buf *out,
	       const char *what, struct err *e)
{
	struct buf errout = BUF_INIT;
	int status = 0, r;

	r = remote_exec(rm, cmd, io, out, &errout, &status, e);
	if (!r && status) {
		char *line = str_trim(errout.data);

		line[strcspn(line, "\n")] = '\0';
		r = err_set(e, ERR_FAIL, "%s failed on the target (exit %d)%s%s", what, status,
			    *line ? ": " : "", line);
	}
	buf_release(&errout);
	return r;
}

int remote_put(struct remote *rm, const char *path, const void *data, size_t len,
	       const char *mode, struct cancel *cancel, struct err *e)
{
	struct buf cmd = BUF_INIT;
	struct remote_io io = { .input = data, .input_len = len, .cancel = cancel };
	int r;

	remote_cmdf(&cmd, "umask 077 && cat > %q.tmp && chmod %q %q.tmp && mv -f %q.tmp %q", path,
		    mode, path, path, path);
	if (!len) /* cat > file with an empty stdin */
		io.input = NULL;
	r = remote_run(rm, cmd.data, &io, NULL, "writing a file", e);
	if (r)
		err_prefix(e, "%s", path);
	buf_release(&cmd);
	return r;
}

int remote_sha256(struct remote *rm, const char *path, char hex[65], struct cancel *cancel,
		  struct err *e)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	int r;

	remote_cmd_script(&cmd, remote_hasher_sh, "ferry-hash");
	remote_cmdf(&cmd, " %q", path);
	r = remote_run(rm, cmd.data, &(struct remote_io){ .cancel = cancel }, &out, "hashing a file",
		       e);
	if (!r) {
		if (out.len >= 64)
			memcpy(hex, out.data, 64);
		hex[out.len >= 64 ? 64 : 0] = '\0';
		if (!sha256_is_hex(hex))
			r = err_set(e, ERR_FORMAT, "the target's hasher printed no SHA-256 for %s",
				    path);
	}
	buf_release(&cmd);
	buf_release(&out);
	return r;
}
