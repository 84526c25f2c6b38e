#include "remote/ready.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "remote/jobdir.h"

extern const unsigned char remote_probe_sh[];
extern const size_t remote_probe_sh_len;

/* Whether something accepts a TCP connection on host:port within
 * timeout_ms: 0 when it does, -1 when not, ERR_CANCELLED. */
static int ready_tcp_probe(const char *host, int port, int timeout_ms, struct cancel *cancel)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char portstr[16];
	int ok = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res))
		return -1;
	for (ai = res; ai && ok == -1; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		long long end = clock_mono_ms() + timeout_ms;

		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			ok = 0;
		} else if (errno == EINPROGRESS) {
			/* In slices, to see a cancel. */
			for (;;) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };
				long long left = end - clock_mono_ms();
				int soerr = 0, n;
				socklen_t len = sizeof(soerr);

				if (cancel_is_set(cancel)) {
					ok = ERR_CANCELLED;
					break;
				}
				if (left <= 0)
					break;
				n = poll(&pf, 1, (int)(left < CLOCK_CANCEL_POLL_MS ? left
										  : CLOCK_CANCEL_POLL_MS));
				if (n < 0 && errno != EINTR)
					break;
				if (n > 0) {
					if (!getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) &&
					    !soerr)
						ok = 0;
					break;
				}
			}
		}
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

/* A number the target printed, or 0. */
static double ready_number(const char *s)
{
	double d = 0;

	return s && str_to_double(s, &d) ? d : 0;
}

void remote_probe_parse(const char *text, const struct remote_wait_opts *o, json_t *rep)
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
		else if (str_starts_with(line, "trainer_commit="))
			json_object_set_new(rep, "trainer_commit",
					    line[15] && str_utf8_valid(line + 15, strlen(line + 15))
						    ? json_string(line + 15) : json_null());
		else if (str_starts_with(line, "gpu=")) {
			char *f[3] = { NULL, NULL, NULL }, *p = line + 4;

			for (int i = 0; i < 3; i++)
				f[i] = strsep(&p, ",");
			json_array_append_new(gpus, json_pack("{s:s, s:s, s:f}", "name",
							      f[0] ? str_trim(f[0]) : "",
							      "driver", f[1] ? str_trim(f[1]) : "",
							      "memory_mb", ready_number(f[2])));
		}
	}
	free(copy);
	if (o->trainer_repo && !json_object_get(rep, "trainer_commit"))
		json_object_set_new(rep, "trainer_commit", json_null());
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

/* One try: a TCP look at the port, then the probe over SSH. */
static int ready_try(struct remote *rm, const char *cmd, const struct remote_wait_opts *o,
		     struct buf *out, struct buf *errout, struct err *e)
{
	const struct remote_target *t = remote_target_of(rm);
	struct remote_io io = { .timeout_ms = 60000, .cancel = o->cancel };
	int status = 0, r;

	if (t->kind == REMOTE_SSH) {
		r = ready_tcp_probe(t->host, t->port, 5000, o->cancel);
		if (r == ERR_CANCELLED)
			return err_set(e, r, "waiting for %s:%d was cancelled", t->host, t->port);
		if (r)
			return err_set(e, ERR_CONN, "nothing answers on %s:%d yet", t->host, t->port);
	}
	r = remote_exec(rm, cmd, &io, out, errout, &status, e);
	if (!r && !strstr(out->data, "ferry-ready"))
		r = err_set(e, ERR_FAIL, "the target answered, but not as a shell should (exit %d)",
			    status);
	return r;
}

int remote_wait(struct remote *rm, const struct remote_wait_opts *o, json_t **report,
		struct err *e)
{
	const struct remote_target *t = remote_target_of(rm);
	int timeout = o->timeout_s > 0 ? o->timeout_s : 600;
	int auth_left = o->auth_tries > 0 ? o->auth_tries : 6;
	long long t0 = clock_mono_ms(), deadline = t0 + (long long)timeout * 1000;
	struct backoff bo = { .first_ms = 1000, .max_ms = 15000 };
	int tries = 0, r = ERR_FAIL;
	bool reattached = false;
	struct buf out = BUF_INIT, cmd = BUF_INIT, errout = BUF_INIT;
	json_t *rep = json_pack("{s:b, s:[]}", "reachable", 0, "problems");

	*report = rep;
	remote_cmd_script(&cmd, remote_probe_sh, "ferry-probe");
	remote_cmdf(&cmd, " %q %q %q", o->trainer ? o->trainer : "", t->root,
		    o->trainer_repo ? o->trainer_repo : "");
	for (;;) {
		long long wait;

		tries++;
		buf_reset(&out);
		buf_reset(&errout);
		r = ready_try(rm, cmd.data, o, &out, &errout, e);
		if (r == ERR_CONN && strstr(errout.data, "Permission denied")) {
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
				goto out;
			}
		}
		if (!r || (r != ERR_CONN && r != ERR_TIMEOUT))
			break;
		wait = backoff_next(&bo);
		if (clock_mono_ms() + wait >= deadline) {
			r = err_prefix_code(e, ERR_TIMEOUT, "not reachable within %d s (%d tries)",
					    timeout, tries);
			goto out;
		}
		log_info("%s; trying again in %lld ms", err_msg(e), wait);
		err_clear(e);
		r = clock_sleep_ms(wait, o->cancel);
		if (r) {
			err_set(e, r, "waiting for the target was cancelled (%d tries)", tries);
			goto out;
		}
	}
	if (r)
		goto out;
	json_object_set_new(rep, "reachable", json_true());
	remote_probe_parse(out.data, o, rep);
	if (json_array_size(json_object_get(rep, "problems")))
		r = err_set(e, ERR_FAIL, "the target is reachable but not ready: %s",
			    json_string_value(json_array_get(json_object_get(rep, "problems"), 0)));
out:
	json_object_set_new(rep, "tries", json_integer(tries));
	json_object_set_new(rep, "seconds", json_real((double)(clock_mono_ms() - t0) / 1000.0));
	json_object_set_new(rep, "ok", json_boolean(!r));
	buf_release(&out);
	buf_release(&errout);
	buf_release(&cmd);
	return r;
}
