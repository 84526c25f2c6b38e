#include "remote/target.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "vast/client.h"
#include "vast/model.h"

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

/* The target an instance's answer names; ERR_NOTFOUND without an endpoint. */
static int target_from_instance(const struct vast_instance *in, const char *root,
				struct remote_target *t, struct err *e)
{
	bool direct = false;
	int r;

	memset(t, 0, sizeof(*t));
	r = vast_instance_ssh_endpoint(in, &t->host, &t->port, &direct, e);
	if (r) {
		remote_target_release(t);
		return r;
	}
	t->kind = REMOTE_SSH;
	t->user = xstrdup("root");
	t->root = xstrdup(root);
	t->instance = in->id;
	log_debug("instance %lld: %s ssh at %s:%d", in->id, direct ? "direct" : "proxy", t->host,
		  t->port);
	return 0;
}

int remote_target_instance(struct vast_client *c, long long id, const char *root,
			   struct remote_target *t, struct err *e)
{
	struct vast_instance in;
	int r;

	memset(t, 0, sizeof(*t));
	r = vast_show_instance(c, id, &in, e);
	if (!r)
		r = target_from_instance(&in, root, t, e);
	if (r)
		err_prefix(e, "instance %lld", id);
	vast_instance_release(&in);
	return r;
}

int remote_target_instance_wait(struct vast_client *c, long long id, const char *root,
				const struct remote_instance_wait_opts *o,
				struct remote_target *t, struct err *e)
{
	static const struct remote_instance_wait_opts none;
	struct backoff bo = { .first_ms = 1000, .max_ms = 10000, .jitter = true };
	char *seen = NULL, *msg = NULL;
	long long t0 = clock_mono_ms(), deadline;
	int r;

	if (!o)
		o = &none;
	deadline = t0 + (o->timeout_s > 0 ? o->timeout_s : 600) * 1000LL;
	memset(t, 0, sizeof(*t));
	for (;;) {
		struct vast_instance in;
		const char *state;
		long long left, wait;

		r = vast_show_instance(c, id, &in, e);
		if (r)
			break;
		/* No actual_status yet: Vast is still placing it. */
		state = in.actual_status ? in.actual_status : "being created";
		if (!seen || strcmp(seen, state)) {
			log_info("instance %lld is %s%s%s", id, state, in.status_msg ? ": " : "",
				 in.status_msg ? in.status_msg : "");
			if (o->on_state)
				o->on_state(o->on_state_arg, state, in.status_msg);
			free(seen);
			seen = xstrdup(state);
		}
		free(msg);
		msg = in.status_msg ? xstrdup(in.status_msg) : NULL;
		if (!strcmp(state, "running")) {
			r = target_from_instance(&in, root, t, e);
			if (r != ERR_NOTFOUND) {
				vast_instance_release(&in);
				break;
			}
			err_clear(e);
		} else if (!strcmp(state, "exited")) {
			r = err_set(e, ERR_FAIL, "instance %lld: its container exited%s%.200s", id,
				    msg ? ": " : "", msg ? msg : "");
			vast_instance_release(&in);
			break;
		}
		vast_instance_release(&in);
		left = deadline - clock_mono_ms();
		if (left <= 0) {
			r = err_set(e, ERR_TIMEOUT, "instance %lld is still %s after %lld s%s%.200s%s",
				    id, seen, (clock_mono_ms() - t0) / 1000, msg ? " (" : "",
				    msg ? msg : "", msg ? ")" : "");
			break;
		}
		wait = backoff_next(&bo);
		r = clock_sleep_ms(wait < left ? wait : left, o->cancel);
		if (r) {
			err_set(e, r, "instance %lld: waiting for it to run was cancelled", id);
			break;
		}
	}
	free(seen);
	free(msg);
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

void remote_file_name_safe(char *s)
{
	for (; *s; s++)
		if (*s == '/' || *s == ':')
			*s = '_';
}

char *remote_target_file_name(const struct remote_target *t)
{
	char *s = remote_target_describe(t);

	remote_file_name_safe(s);
	return s;
}
