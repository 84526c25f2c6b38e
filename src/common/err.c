#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __attribute__((format(printf, 3, 0))) void err_vset(struct err *e, int code,
							     const char *fmt, va_list ap)
{
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	e->sys_errno = 0;
	return code;
}

int err_sys(struct err *e, int code, const char *fmt, ...)
{
	int saved = errno;
	size_t len;
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	len = strlen(e->msg);
	snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", strerror(saved));
	e->sys_errno = saved;
	return code;
}

static __attribute__((format(printf, 2, 0))) void err_vprefix(struct err *e, const char *fmt,
								va_list ap)
{
	char old[sizeof(e->msg)];
	size_t len;

	memcpy(old, e->msg, sizeof(old));
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	len = strlen(e->msg);
	snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", old);
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return ERR_FAIL;
	va_start(ap, fmt);
	err_vprefix(e, fmt, ap);
	va_end(ap);
	return e->code;
}

int err_prefix_code(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	err_vprefix(e, fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

const char *err_msg(const struct err *e)
{
	return e ? e->msg : "";
}

void err_clear(struct err *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

const char *err_name(int code)
{
	switch (code) {
	case ERR_OK: return "ok";
	case ERR_USAGE: return "usage";
	case ERR_CONFIG: return "config";
	case ERR_IO: return "io";
	case ERR_TIMEOUT: return "timeout";
	case ERR_FORMAT: return "format";
	case ERR_CORRUPT: return "corrupt";
	case ERR_LIMIT: return "limit";
	case ERR_NOTFOUND: return "not-found";
	case ERR_EXISTS: return "exists";
	case ERR_CHANGED: return "changed";
	case ERR_HTTP: return "http";
	case ERR_CONN: return "connection";
	case ERR_CANCELLED: return "cancelled";
	default: return "failed";
	}
}

int err_exit_status(int code)
{
	switch (code) {
	case ERR_OK: return 0;
	case ERR_USAGE: return 2;
	case ERR_CONFIG: return 3;
	default: return 1;
	}
}
