#include "remote/job.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsx.h"
#include "common/http.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "dataset/pack.h"

extern const unsigned char remote_run_sh[];
extern const size_t remote_run_sh_len;

int remote_job_check(const char *job, struct err *e)
{
	if (!job || !*job)
		return err_set(e, ERR_USAGE, "a job id is needed (--job ID)");
	if (strchr(job, '/') || !strcmp(job, ".") || !strcmp(job, "..") || strlen(job) > 200)
		return err_set(e, ERR_USAGE, "job id '%s' cannot name a folder (no '/', not '.' "
			       "or '..', at most 200 bytes)", job);
	return 0;
}

char *remote_job_root(struct remote *r, const char *job)
{
	return fsx_join(remote_target_of(r)->root, job);
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

/* Run a command built by the caller; a non-zero exit is ERR_FAIL with the
 * first line of its stderr. */
static int job_run(struct remote *r, const char *cmd, const struct remote_io *io,
		   struct buf *out, const char *what, struct err *e)
{
	struct buf errout = BUF_INIT;
	int status = 0, rc;

	rc = remote_exec(r, cmd, io, out, &errout, &status, e);
	if (!rc && status) {
		char *line = str_trim(errout.data);

		line[strcspn(line, "\n")] = '\0';
		rc = err_set(e, ERR_FAIL, "%s failed on the target (exit %d)%s%s", what, status,
			     *line ? ": " : "", line);
	}
	buf_release(&errout);
	return rc;
}

/* ---- wait ---- */

static int job_tcp_probe(const char *host, int port, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char portstr[16];
	int ok = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res))
		return -1;
	for (ai = res; ai && ok; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen) ||
		    (errno == EINPROGRESS && poll(&pf, 1, timeout_ms) == 1 &&
		     !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) && !soerr))
			ok = 0;
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

static const char job_probe_sh[] =
	"echo ferry-ready; "
	"if [ -n \"$1\" ]; then if [ -e \"$1\" ]; then echo trainer=yes; else echo trainer=no; fi; fi; "
	"command -v tar >/dev/null 2>&1 && echo tar=yes || echo tar=no; "
	"command -v sha256sum >/dev/null 2>&1 && echo sha256sum=yes || echo sha256sum=no; "
	"mkdir -p \"$2\" 2>/dev/null; "
	"df -Pk \"$2\" 2>/dev/null | awk 'NR==2 { print \"disk_free_kb=\" $4 }'; "
	"if command -v nvidia-smi >/dev/null 2>&1; then "
	"nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits "
	"2>/dev/null | sed 's/^/gpu=/'; fi";

/* A number the target printed, or 0. */
static double job_number(const char *s)
{
	double d = 0;

	return s && str_to_double(s, &d) ? d : 0;
}

static void job_probe_parse(const char *text, json_t *rep, const struct remote_wait_opts *o)
{
	json_t *gpus = json_array(), *problems = json_object_get(rep, "problems");
	char *copy = xstrdup(text), *cursor = copy, *line;
	long long free_kb = -1;

	while ((line = strsep(&cursor, "\n"))) {
		if (str_starts_with(line, "trainer="))
			json_object_set_new(rep, "trainer", json_boolean(!strcmp(line + 8, "yes")));
		else if (str_starts_with(line, "tar="))
			json_object_set_new(rep, "tar", json_boolean(!strcmp(line + 4, "yes")));
		else if (str_starts_with(line, "sha256sum="))
			json_object_set_new(rep, "sha256sum", json_boolean(!strcmp(line + 10, "yes")));
		else if (str_starts_with(line, "disk_free_kb="))
			str_to_i64(line + 13, &free_kb);
		else if (str_starts_with(line, "gpu=")) {
			char *f[3] = { NULL, NULL, NULL }, *p = line + 4;

			for (int i = 0; i < 3; i++)
				f[i] = strsep(&p, ",");
			json_array_append_new(gpus, json_pack("{s:s, s:s, s:f}", "name",
							      f[0] ? str_trim(f[0]) : "",
							      "driver", f[1] ? str_trim(f[1]) : "",
							      "memory_mb", job_number(f[2])));
		}
	}
	free(copy);
	json_object_set_new(rep, "gpus", gpus);
	json_object_set_new(rep, "disk_free_gb",
			    free_kb >= 0 ? json_real((double)free_kb / 1e6) : json_null());
	if (o->trainer && !json_is_true(json_object_get(rep, "trainer")))
		json_array_append_new(problems, json_sprintf("the trainer %s is not there",
							     o->trainer));
	if (!json_is_true(json_object_get(rep, "tar")))
		json_array_append_new(problems, json_string("tar is missing"));
	if (!json_is_true(json_object_get(rep, "sha256sum")))
		json_array_append_new(problems, json_string("sha256sum is missing"));
	if (o->need_disk_gb > 0 && free_kb >= 0 && (double)free_kb / 1e6 < o->need_disk_gb)
		json_array_append_new(problems,
				      json_sprintf("%.1f GB free under the root, %.1f GB needed",
						   (double)free_kb / 1e6, o->need_disk_gb));
}

int remote_wait(struct remote *r, const struct remote_wait_opts *o, json_t **report,
		struct err *e)
{
	const struct remote_target *t = remote_target_of(r);
	int timeout = o->timeout_s > 0 ? o->timeout_s : 600;
	int auth_left = o->auth_tries > 0 ? o->auth_tries : 6;
	uint64_t t0 = clock_mono_ms(), deadline = t0 + (uint64_t)timeout * 1000;
	long wait = 1000;
	int tries = 0, rc = 0;
	bool reattached = false;
	struct buf out = BUF_INIT, cmd = BUF_INIT;
	json_t *rep = json_pack("{s:b, s:[]}", "reachable", 0, "problems");

	*report = rep;
	remote_cmdf(&cmd, "sh -c %q ferry-probe %q %q", job_probe_sh, o->trainer ? o->trainer : "",
		    t->root);
	for (;;) {
		struct buf errout = BUF_INIT;
		struct remote_io io = { .timeout_ms = 60000 };
		int status = 0;

		tries++;
		buf_reset(&out);
		if (t->kind == REMOTE_SSH && job_tcp_probe(t->host, t->port, 5000)) {
			rc = err_set(e, ERR_CONN, "nothing answers on %s:%d yet", t->host, t->port);
		} else {
			rc = remote_exec(r, cmd.data, &io, &out, &errout, &status, e);
			if (!rc && !strstr(out.data, "ferry-ready"))
				rc = err_set(e, ERR_FAIL, "the target answered, but not as a shell "
					     "should (exit %d)", status);
		}
		if (rc == ERR_CONN && strstr(errout.data, "Permission denied")) {
			/* Keys take a while to reach a new instance; a key that
			 * worked and stops working was replaced: attach it again. */
			if (o->reattach && !reattached) {
				struct err ae = { 0 };

				log_info("the key was refused; attaching it again");
				reattached = !o->reattach(o->reattach_arg, &ae);
				if (!reattached)
					log_warn("attaching the key again: %s", ae.msg);
			}
			if (--auth_left <= 0) {
				err_prefix(e, "the key is refused (%d tries)", tries);
				buf_release(&errout);
				goto out;
			}
		}
		buf_release(&errout);
		if (!rc || (rc != ERR_CONN && rc != ERR_TIMEOUT))
			break;
		if (clock_mono_ms() + (uint64_t)wait >= deadline) {
			rc = err_prefix_code(e, ERR_TIMEOUT, "not reachable within %d s (%d tries)",
					     timeout, tries);
			goto out;
		}
		log_info("%s; trying again in %ld ms", err_msg(e), wait);
		err_clear(e);
		clock_sleep_ms(wait, NULL);
		wait = wait * 2 > 15000 ? 15000 : wait * 2;
	}
	if (rc)
		goto out;
	json_object_set_new(rep, "reachable", json_true());
	job_probe_parse(out.data, rep, o);
	if (json_array_size(json_object_get(rep, "problems")))
		rc = err_set(e, ERR_FAIL, "the target is reachable but not ready: %s",
			     json_string_value(json_array_get(json_object_get(rep, "problems"), 0)));
out:
	json_object_set_new(rep, "tries", json_integer(tries));
	json_object_set_new(rep, "seconds", json_real((double)(clock_mono_ms() - t0) / 1000.0));
	json_object_set_new(rep, "ok", json_boolean(!rc));
	buf_release(&out);
	buf_release(&cmd);
	return rc;
}

/* ---- push ---- */

struct job_progress {
	int fd;
	uint64_t base, total;
	uint64_t t0, last;
	bool on;
};

static void job_progress_tick(void *arg)
{
	struct job_progress *p = arg;
	uint64_t now = clock_mono_ms();
	off_t at;
	double rate, eta;

	if (!p->on || now - p->last < 250)
		return;
	p->last = now;
	at = lseek(p->fd, 0, SEEK_CUR);
	if (at < 0)
		return;
	rate = (double)((uint64_t)at - p->base) / ((double)(now - p->t0 + 1) / 1000.0);
	eta = rate > 0 ? (double)(p->total - (uint64_t)at) / rate : 0;
	fprintf(stderr, "\r%5.1f%%  %8.1f MiB of %.1f MiB  %7.1f MiB/s  ETA %4.0f s ",
		p->total ? 100.0 * (double)at / (double)p->total : 100.0,
		(double)at / 1048576.0, (double)p->total / 1048576.0, rate / 1048576.0, eta);
}

/* A SHA-256 command on the target: openssl when there (it uses the CPU's
 * SHA instructions, several times faster than coreutils), else sha256sum.
 * Both print the hex digest first. */
#define JOB_HASHER "H=sha256sum; command -v openssl >/dev/null 2>&1 && " \
		   "H='openssl dgst -sha256 -r'; "

/* Check every file against SHA256SUMS, in parallel chunks (GNU split) on a
 * host with several cores. With openssl and xargs there, and no escaped
 * names in the list, the files are hashed by openssl (about 4× coreutils)
 * and the result compared with SHA256SUMS as a whole; otherwise, and to
 * name the files when that comparison fails, sha256sum -c does it. */
#define JOB_CHECK_SUMS \
	"n=$(nproc 2>/dev/null || echo 1); [ \"$n\" -gt 8 ] && n=8; rm -f ../.ferry-chk.*; " \
	"[ \"$n\" -gt 1 ] && split -n l/$n SHA256SUMS ../.ferry-chk. 2>/dev/null || " \
	"cp SHA256SUMS ../.ferry-chk.aa; ok=1; " \
	"if command -v openssl >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1 && " \
	"! grep -q '^\\\\' SHA256SUMS; then pids=; for f in ../.ferry-chk.??; do " \
	"cut -c67- \"$f\" | xargs -r -d '\\n' openssl dgst -sha256 -r -- > \"$f.got\" & " \
	"pids=\"$pids $!\"; done; for p in $pids; do wait $p || true; done; " \
	"cat ../.ferry-chk.??.got > ../.ferry-chk.got; " \
	"sed 's/^\\([0-9a-f]\\{64\\}\\)  /\\1 */' SHA256SUMS | cmp -s - ../.ferry-chk.got && ok=0; fi; " \
	"if [ $ok != 0 ]; then ok=0; pids=; for f in ../.ferry-chk.??; do [ -s \"$f\" ] || continue; " \
	"sha256sum -c --quiet --strict \"$f\" >&2 & pids=\"$pids $!\"; done; " \
	"for p in $pids; do wait $p || ok=1; done; fi; rm -f ../.ferry-chk.*; [ $ok = 0 ];"

/* The SHA-256 of a file on the target. */
static int job_remote_sha(struct remote *r, const char *path, char hex[65], struct err *e)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	int rc;

	remote_cmdf(&cmd, JOB_HASHER "$H < %q", path);
	rc = job_run(r, cmd.data, NULL, &out, "sha256sum", e);
	if (!rc && (out.len < 64 || (memcpy(hex, out.data, 64), hex[64] = '\0', !sha256_is_hex(hex))))
		rc = err_set(e, ERR_FORMAT, "the target's sha256sum printed no hash");
	buf_release(&cmd);
	buf_release(&out);
	return rc;
}

/* The archive's SHA-256, computed beside the upload: on a fast link the
 * hash would otherwise add a whole pass over the file before the first byte
 * leaves. */
struct job_hash {
	pthread_t thread;
	const char *path, *cache_dir;
	char hex[65];
	uint64_t bytes;
	struct err err;
	int rc;
	bool started;
};

static void *job_hash_run(void *arg)
{
	struct job_hash *h = arg;

	h->rc = sha256_file_cached(h->path, h->cache_dir, h->hex, &h->bytes, &h->err);
	return NULL;
}

static int job_hash_wait(struct job_hash *h, struct err *e)
{
	if (h->started) {
		pthread_join(h->thread, NULL);
		h->started = false;
		if (h->rc)
			err_set(e, h->rc, "%s", h->err.msg);
	}
	return h->rc;
}

/* Once the upload is whole: hash it in the background while it is
 * extracted and every file checked (all from the page cache; on a loopback
 * or fast link a tee in the stream cost more than these passes), then
 * compare the hash with %q (the archive's here) and only then put dataset/
 * in place. A hash that differs wins over whatever tar or the check said:
 * the upload is sent again. Prints "ok", or "sha:HEX" when the upload is
 * not the archive. tar reads 128 KiB records (-b 256): a quarter less CPU
 * than its 10 KiB default. */
#define JOB_FINISH \
	JOB_HASHER "rm -rf dataset.tmp && mkdir dataset.tmp || exit 1; " \
	"$H < dataset.tar.part > .ferry-sha & h=$!; " \
	"tar -b 256 -xf dataset.tar.part -C dataset.tmp --no-same-owner --no-same-permissions " \
	"2> .ferry-tar.err; t=$?; c=1; [ $t = 0 ] && " \
	"{ (cd dataset.tmp && { " JOB_CHECK_SUMS " }) 2> .ferry-check.err; c=$?; }; " \
	"wait $h; got=$(cut -c1-64 .ferry-sha); rm -f .ferry-sha; " \
	"if [ \"$got\" != %q ]; then rm -rf dataset.tmp .ferry-tar.err .ferry-check.err; " \
	"echo \"sha:$got\"; exit 0; fi; " \
	"[ $t = 0 ] || { cat .ferry-tar.err >&2; exit 1; }; " \
	"[ $c = 0 ] || { cat .ferry-check.err >&2; exit 1; }; rm -f .ferry-tar.err .ferry-check.err; " \
	"printf '%%s\\n' %q > dataset.tmp/.ferry-archive-sha256 && rm -rf dataset && " \
	"mv dataset.tmp dataset && rm -f dataset.tar.part && echo ok"

int remote_push(struct remote *r, const char *job, const char *archive, const char *cache_dir,
		bool progress, struct remote_push_result *res, struct err *e)
{
	char *jr = remote_job_root(r, job);
	struct job_hash hash = { .path = archive, .cache_dir = cache_dir };
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	uint64_t have = 0, size;
	struct stat st;
	int rc, fd = -1;

	memset(res, 0, sizeof(*res));
	rc = remote_job_check(job, e);
	if (!rc)
		rc = ds_archive_check_entries(archive, &res->files, e);
	if (rc)
		goto out;
	if (stat(archive, &st) < 0) {
		rc = err_sys(e, ERR_IO, "%s", archive);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (pthread_create(&hash.thread, NULL, job_hash_run, &hash)) {
		rc = err_set(e, ERR_IO, "cannot start a thread to hash %s", archive);
		goto out;
	}
	hash.started = true;
	/* One look: the mark of the archive dataset/ came from (line 1) and
	 * the size of a partial upload (line 2). */
	remote_cmdf(&cmd, "mkdir -p %q && cd %q && { cat dataset/.ferry-archive-sha256 "
		    "2>/dev/null || echo; } && { wc -c < dataset.tar.part 2>/dev/null || echo 0; }",
		    jr, jr);
	rc = job_run(r, cmd.data, NULL, &out, "looking at the job folder", e);
	if (!rc) {
		char *cursor = out.data, *mark = strsep(&cursor, "\n"), *part_size = strsep(&cursor, "\n");
		unsigned long long v = 0;

		if (!part_size || str_to_u64(str_trim(part_size), &v))
			rc = err_set(e, ERR_FORMAT, "the target gave no size for %s/dataset.tar.part", jr);
		have = v;
		if (!rc && *str_trim(mark)) {
			/* Already there and extracted from this very archive. */
			rc = job_hash_wait(&hash, e);
			if (!rc && !strcmp(str_trim(mark), hash.hex))
				res->already = true;
		}
	}
	if (rc || res->already)
		goto out;
	for (int attempt = 0; !rc; attempt++) {
		struct job_progress pg = { .total = size, .t0 = clock_mono_ms(),
					   .on = progress && isatty(2) };
		struct remote_io io = { .use_in_fd = true, .tick = job_progress_tick,
					.tick_arg = &pg };
		char *line;

		if (have > size) {
			log_warn("the partial upload is larger than the archive; starting over");
			have = 0;
		}
		if (!attempt)
			res->resumed_from = have;
		fd = open(archive, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || lseek(fd, (off_t)have, SEEK_SET) < 0) {
			rc = err_sys(e, ERR_IO, "%s", archive);
			break;
		}
		io.in_fd = fd;
		pg.fd = fd;
		pg.base = have;
		buf_reset(&cmd);
		/* Append from where the target is; start over when it held more
		 * or held something else. */
		remote_cmdf(&cmd, have ? "cd %q && cat >> dataset.tar.part"
				       : "cd %q && cat > dataset.tar.part", jr);
		if (have < size)
			log_info("sending %llu bytes from byte %llu",
				 (unsigned long long)(size - have), (unsigned long long)have);
		rc = job_run(r, cmd.data, &io, NULL, "the upload", e);
		if (pg.on) {
			pg.last = 0;    /* the bar as it ended */
			job_progress_tick(&pg);
			fputc('\n', stderr);
		}
		close(fd);
		fd = -1;
		if (!rc) {
			res->sent += size - have;
			rc = job_hash_wait(&hash, e);
		}
		if (rc)
			break;
		buf_reset(&cmd);
		buf_reset(&out);
		remote_cmdf(&cmd, "cd %q && ", jr);
		remote_cmdf(&cmd, JOB_FINISH, hash.hex, hash.hex);
		rc = job_run(r, cmd.data, NULL, &out, "extracting and verifying the dataset", e);
		if (rc)
			break;
		line = str_trim(out.data);
		if (!strcmp(line, "ok"))
			break;
		if (strncmp(line, "sha:", 4)) {
			rc = err_set(e, ERR_FORMAT, "the target said '%.80s' after the upload", line);
			break;
		}
		if (attempt >= 1) {
			rc = err_set(e, ERR_CORRUPT, "the upload arrives damaged: SHA-256 %.64s on the "
				     "target, %s here", line + 4, hash.hex);
			break;
		}
		log_warn("the file on the target does not match (SHA-256 %.12s…, not %.12s…); "
			 "sending it again", line + 4, hash.hex);
		res->resends++;
		have = 0;
	}
out:
	if (!job_hash_wait(&hash, NULL) && !rc) {
		memcpy(res->sha256, hash.hex, sizeof(res->sha256));
		res->bytes = hash.bytes;
	}
	if (fd >= 0)
		close(fd);
	free(jr);
	buf_release(&cmd);
	buf_release(&out);
	return rc;
}

/* ---- launch ---- */

/* Turn KEY=VALUE lines into NAME='value' lines a POSIX shell can source. */
static int job_env_file(const char *path, struct buf *out, struct err *e)
{
	struct buf in = BUF_INIT;
	char *cursor, *line;
	int rc, lineno = 0;

	rc = fsx_read_file(path, &in, 1 << 20, e);
	cursor = rc ? NULL : in.data;
	while ((line = strsep(&cursor, "\n"))) {
		char *eq, *name = line;

		lineno++;
		line[strcspn(line, "\r")] = '\0';
		name += strspn(name, " \t");
		if (!*name || *name == '#')
			continue;
		if (str_starts_with(name, "export "))
			name += 7;
		eq = strchr(name, '=');
		if (!eq || eq == name) {
			rc = err_set(e, ERR_USAGE, "%s:%d: not NAME=VALUE", path, lineno);
			break;
		}
		*eq = '\0';
		for (char *p = name; *p; p++)
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
			      (p > name && *p >= '0' && *p <= '9'))) {
				rc = err_set(e, ERR_USAGE, "%s:%d: '%s' is not a variable name", path,
					     lineno, name);
				goto out;
			}
		log_register_secret(eq + 1);
		buf_printf(out, "%s=", name);
		str_shell_quote(eq + 1, out);
		buf_puts(out, "\nexport ");
		buf_puts(out, name);
		buf_putc(out, '\n');
	}
out:
	explicit_bzero(in.data, in.len);
	buf_release(&in);
	return rc;
}

/* Write `data` to `path` on the target atomically with `mode`. */
static int job_put(struct remote *r, const char *path, const void *data, size_t len,
		   const char *mode, struct err *e)
{
	struct buf cmd = BUF_INIT;
	struct remote_io io = { .input = data, .input_len = len };
	int rc;

	remote_cmdf(&cmd, "umask 077 && cat > %q.tmp && chmod %q %q.tmp && mv -f %q.tmp %q", path,
		    mode, path, path, path);
	if (!len) /* cat > file with an empty stdin */
		io.input = NULL;
	rc = job_run(r, cmd.data, &io, NULL, "writing a file", e);
	if (rc)
		err_prefix(e, "%s", path);
	buf_release(&cmd);
	return rc;
}

int remote_launch(struct remote *r, const char *job, const struct remote_launch_opts *o,
		  bool *started, struct err *e)
{
	char *jr = remote_job_root(r, job), *path = NULL;
	struct buf cmd = BUF_INIT, out = BUF_INIT, env = BUF_INIT;
	int rc;

	*started = false;
	rc = remote_job_check(job, e);
	if (!rc && (!o->argv || !o->argv[0]))
		rc = err_set(e, ERR_USAGE, "no trainer command to run (-- TRAINER ARGS...)");
	if (rc)
		goto out;
	/* Nothing is started twice. */
	remote_cmdf(&cmd, "mkdir -p %q/state && cd %q && if [ -f state/pid ] && [ ! -f state/exit ] "
		    "&& kill -0 \"$(cat state/pid)\" 2>/dev/null; then echo running; fi", jr, jr);
	rc = job_run(r, cmd.data, NULL, &out, "looking at the job", e);
	if (rc)
		goto out;
	if (strstr(out.data, "running")) {
		log_info("job %s is already running; nothing started", job);
		goto out;
	}
	if (o->config) {
		struct buf cfg = BUF_INIT;

		rc = fsx_read_file(o->config, &cfg, 16 << 20, e);
		path = fsx_join(jr, "config.json");
		if (!rc)
			rc = job_put(r, path, cfg.data, cfg.len, "644", e);
		buf_release(&cfg);
		free(path);
		if (rc)
			goto out;
	}
	/* Python trainers (ai-toolkit) print live only unbuffered. */
	buf_puts(&env, "PYTHONUNBUFFERED='1'\nexport PYTHONUNBUFFERED\n");
	if (o->env_file)
		rc = job_env_file(o->env_file, &env, e);
	path = fsx_join(jr, "env");
	if (!rc)
		rc = job_put(r, path, env.data, env.len, "600", e);
	free(path);
	if (rc)
		goto out;
	path = fsx_join(jr, "run.sh");
	rc = job_put(r, path, remote_run_sh, remote_run_sh_len, "755", e);
	free(path);
	if (rc)
		goto out;
	buf_reset(&cmd);
	/* setsid and every stream redirected: closing SSH never stops it. */
	remote_cmdf(&cmd, "cd %q || exit 1; rm -f state/exit state/pid; setsid sh ./run.sh -i %d %q --", jr,
		    o->heartbeat_s > 0 ? o->heartbeat_s : 10, jr);
	for (const char *const *a = o->argv; *a; a++)
		remote_cmdf(&cmd, " %q", *a);
	remote_cmdf(&cmd, " </dev/null >/dev/null 2>&1 & "
		    "i=0; while [ ! -f state/pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
		    "[ -f state/pid ] || { echo 'the supervisor did not start' >&2; exit 1; }");
	rc = job_run(r, cmd.data, NULL, NULL, "starting the trainer", e);
	if (!rc)
		*started = true;
out:
	explicit_bzero(env.data, env.len);
	buf_release(&env);
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return rc;
}

/* ---- status ---- */

static const char job_status_sh[] =
	"cd \"$1\" 2>/dev/null || { echo state=absent; exit 0; }; "
	"echo now=$(date +%s); "
	"[ -f state/pid ] && echo pid=$(cat state/pid); "
	"[ -f state/exit ] && echo exit=$(cat state/exit); "
	"[ -f state/heartbeat ] && echo heartbeat=$(cat state/heartbeat); "
	"[ -f state/pid ] && kill -0 \"$(cat state/pid)\" 2>/dev/null && echo alive=1; "
	"[ -f train.log ] && echo log=$(wc -c < train.log); "
	"df -Pk . 2>/dev/null | awk 'NR==2 { print \"disk=\" $4 }'; "
	"command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi "
	"--query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu "
	"--format=csv,noheader,nounits 2>/dev/null | head -1 | sed 's/^/gpu=/'; true";

int remote_status(struct remote *r, const char *job, struct remote_status *st, struct err *e)
{
	char *jr = remote_job_root(r, job), *cursor, *l;
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	bool alive = false, has_pid = false, has_exit = false;
	long long hb = -1;
	int rc;

	memset(st, 0, sizeof(*st));
	st->heartbeat_age_s = -1;
	st->disk_free_kb = -1;
	rc = remote_job_check(job, e);
	if (!rc) {
		remote_cmdf(&cmd, "sh -c %q ferry-status %q", job_status_sh, jr);
		rc = job_run(r, cmd.data, NULL, &out, "the status probe", e);
	}
	if (rc)
		goto out;
	cursor = out.data;
	while ((l = strsep(&cursor, "\n"))) {
		if (!strcmp(l, "state=absent"))
			st->state = "absent";
		else if (str_starts_with(l, "now="))
			str_to_i64(l + 4, &st->now);
		else if (str_starts_with(l, "pid=")) {
			str_to_i64(l + 4, &st->pid);
			has_pid = true;
		} else if (str_starts_with(l, "exit=")) {
			long long v = -1;

			str_to_i64(l + 5, &v);
			st->exit_code = (int)v;
			has_exit = true;
		} else if (str_starts_with(l, "heartbeat="))
			str_to_i64(l + 10, &hb);
		else if (!strcmp(l, "alive=1"))
			alive = true;
		else if (str_starts_with(l, "log="))
			str_to_i64(l + 4, &st->log_bytes);
		else if (str_starts_with(l, "disk="))
			str_to_i64(l + 5, &st->disk_free_kb);
		else if (str_starts_with(l, "gpu="))
			snprintf(st->gpu, sizeof(st->gpu), "%s", l + 4);
	}
	if (!st->state)
		st->state = has_exit ? "exited" : alive ? "running" : has_pid ? "vanished"
									: "never-started";
	if (hb >= 0 && st->now)
		st->heartbeat_age_s = st->now - hb;
out:
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return rc;
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

/* ---- logs ---- */

int remote_log_fetch(struct remote *r, const char *job, uint64_t offset, size_t max,
		     struct buf *out, bool *done, uint64_t *size, struct err *e)
{
	const char *sz;
	char *jr = remote_job_root(r, job);
	struct buf cmd = BUF_INIT, errout = BUF_INIT;
	int rc, status = 0;

	*done = false;
	/* The exit mark is looked at first: bytes after it are then all there is. */
	remote_cmdf(&cmd, "cd %q 2>/dev/null || exit 3; [ -f state/exit ] && echo ferry-exited >&2; "
		    "[ -f train.log ] && echo ferry-size=$(wc -c < train.log) >&2 && "
		    "tail -c +%lld train.log | head -c %lld; true", jr,
		    (long long)offset + 1, (long long)max);
	rc = remote_exec(r, cmd.data, &(struct remote_io){ .timeout_ms = 120000 }, out, &errout,
			 &status, e);
	if (!rc && status == 3)
		rc = err_set(e, ERR_NOTFOUND, "job %s has no folder on the target", job);
	else if (!rc && status)
		rc = err_set(e, ERR_FAIL, "fetching the log failed (exit %d)", status);
	if (!rc) {
		*done = strstr(errout.data, "ferry-exited") != NULL;
		sz = strstr(errout.data, "ferry-size=");
		*size = sz ? strtoull(sz + 11, NULL, 10) : 0;
	}
	buf_release(&cmd);
	buf_release(&errout);
	free(jr);
	return rc;
}

/* ---- pull ---- */

struct job_file {
	char *path;               /* under output/ */
	unsigned long long size;
	char mtime[32];
	bool stable;
};

static void job_files_free(struct job_file *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* Parse NUL-terminated "size\tmtime\tpath" records up to a record "=end="
 * (NUL, not newline: a file name may hold any other byte). Returns where
 * the next section starts, or NULL. */
static char *job_parse_listing(char *p, const char *end, struct job_file **v, size_t *n)
{
	size_t alloc = 0;

	while (p && p < end) {
		char *rec = p, *t1, *t2, *nul = memchr(p, '\0', (size_t)(end - p));

		if (!nul)
			return NULL;
		p = nul + 1;
		if (!strcmp(rec, "=end="))
			return p;
		t1 = strchr(rec, '\t');
		t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			continue;
		ALLOC_GROW(*v, *n + 1, alloc);
		(*v)[*n].size = strtoull(rec, NULL, 10);
		snprintf((*v)[*n].mtime, sizeof((*v)[*n].mtime), "%.*s", (int)(t2 - t1 - 1), t1 + 1);
		(*v)[*n].path = xstrdup(t2 + 1);
		(*v)[*n].stable = false;
		(*n)++;
	}
	return NULL;
}

static bool job_wanted(const char *path, const char *const *patterns)
{
	if (!patterns || !*patterns)
		return true;
	for (; *patterns; patterns++)
		if (!fnmatch(*patterns, path, 0) || !fnmatch(*patterns, path, FNM_PATHNAME))
			return true;
	return false;
}

/* Fetch one file into `dst`, resuming `dst`.part, verified against the
 * target's SHA-256. */
static int job_fetch(struct remote *r, const char *jr, const struct job_file *f,
		     const char *dst, uint64_t *bytes, struct err *e)
{
	char *part = xasprintf("%s.part", dst), *src = xasprintf("%s/output/%s", jr, f->path);
	char remote_hex[65], local_hex[65];
	struct buf cmd = BUF_INIT;
	struct stat st;
	int rc = 0, fd = -1;

	rc = fsx_mkdir_parent(dst, 0755, e);
	for (int attempt = 0; !rc && attempt < 2; attempt++) {
		unsigned long long have = 0;
		uint64_t size = 0;

		if (!stat(part, &st) && (unsigned long long)st.st_size <= f->size)
			have = (unsigned long long)st.st_size;
		fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (have ? 0 : O_TRUNC), 0644);
		if (fd < 0) {
			rc = err_sys(e, ERR_IO, "%s", part);
			break;
		}
		buf_reset(&cmd);
		remote_cmdf(&cmd, "tail -c +%lld %q | head -c %lld", (long long)have + 1, src,
			    (long long)(f->size - have));
		rc = job_run(r, cmd.data, &(struct remote_io){ .use_out_fd = true, .out_fd = fd },
			     NULL, "fetching a file", e);
		close(fd);
		fd = -1;
		if (!rc)
			rc = job_remote_sha(r, src, remote_hex, e);
		if (!rc)
			rc = sha256_file(part, local_hex, &size, e);
		if (rc)
			break;
		if (!strcmp(remote_hex, local_hex)) {
			if (rename(part, dst))
				rc = err_sys(e, ERR_IO, "%s", dst);
			*bytes += f->size - have;
			break;
		}
		log_warn("%s arrived damaged; fetching it again", f->path);
		unlink(part);
		if (attempt)
			rc = err_set(e, ERR_CORRUPT, "%s: SHA-256 differs from the target's twice",
				     f->path);
	}
	buf_release(&cmd);
	free(part);
	free(src);
	return rc;
}

int remote_pull(struct remote *r, const char *job, const struct remote_pull_opts *o,
		struct remote_pull_result *res, struct err *e)
{
	char *jr = remote_job_root(r, job), *p;
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	struct job_file *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	bool exited;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = remote_job_check(job, e);
	if (rc)
		goto out;
	/* Two looks a few seconds apart: a file whose size and time did not
	 * move is complete; so is one the trainer has moved past (it wrote a
	 * later file after its last write to this one: ai-toolkit writes its
	 * outputs one at a time); once the trainer has exited, all are. */
	remote_cmdf(&cmd, "cd %q 2>/dev/null || exit 3; "
		    "[ -d output ] || { printf '=end=\\0=end=\\0'; exit 0; }; "
		    "find output -type f ! -name '*.tmp' -printf '%%s\\t%%T@\\t%%P\\0'; "
		    "printf '=end=\\0'; sleep %d; "
		    "find output -type f ! -name '*.tmp' -printf '%%s\\t%%T@\\t%%P\\0'; "
		    "printf '=end=\\0'; [ -f state/exit ] && printf 'exited\\0'; true", jr,
		    o->settle_s > 0 ? o->settle_s : 2);
	rc = job_run(r, cmd.data, NULL, &out, "listing the outputs", e);
	if (rc)
		goto out;
	p = job_parse_listing(out.data, out.data + out.len, &a, &na);
	p = job_parse_listing(p, out.data + out.len, &b, &nb);
	exited = p && p < out.data + out.len && !strcmp(p, "exited");
	for (size_t i = 0; i < nb; i++) {
		for (size_t j = 0; j < na; j++)
			if (!strcmp(a[j].path, b[i].path) && a[j].size == b[i].size &&
			    !strcmp(a[j].mtime, b[i].mtime))
				b[i].stable = true;
		for (size_t j = 0; j < nb && !b[i].stable; j++)
			if (strtod(b[j].mtime, NULL) > strtod(b[i].mtime, NULL))
				b[i].stable = true;
		if (exited)
			b[i].stable = true;
	}
	for (size_t i = 0; !rc && i < nb; i++) {
		char *dst, *mark;
		struct buf seen = BUF_INIT;

		if (!job_wanted(b[i].path, o->patterns) || !fsx_relpath_safe(b[i].path))
			continue;
		if (!b[i].stable) {
			res->incomplete++;
			continue;
		}
		dst = fsx_join(o->dir, b[i].path);
		mark = xasprintf("%s/.ferry-pulled/%s", o->dir, b[i].path);
		/* Fetched before with this size and time: skip. */
		if (!fsx_read_file(mark, &seen, 256, NULL) && !access(dst, F_OK)) {
			char want[80];

			snprintf(want, sizeof(want), "%llu %s", b[i].size, b[i].mtime);
			if (!strcmp(str_trim(seen.data), want)) {
				res->skipped++;
				goto next;
			}
		}
		rc = job_fetch(r, jr, &b[i], dst, &res->bytes, e);
		if (!rc) {
			char line[80];
			int n = snprintf(line, sizeof(line), "%llu %s\n", b[i].size, b[i].mtime);

			rc = fsx_mkdir_parent(mark, 0755, e);
			if (!rc)
				rc = fsx_write_atomic(mark, line, (size_t)n, 0644, e);
			res->fetched++;
			log_info("pulled %s (%llu bytes)", b[i].path, b[i].size);
		}
next:
		buf_release(&seen);
		free(dst);
		free(mark);
	}
out:
	job_files_free(a, na);
	job_files_free(b, nb);
	buf_release(&cmd);
	buf_release(&out);
	free(jr);
	return rc;
}
