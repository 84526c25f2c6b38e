/* Error codes and the message carrier every fallible function fills. */
#ifndef FERRY_ERR_H
#define FERRY_ERR_H

#include <stddef.h>

enum {
	ERR_OK = 0,
	ERR_FAIL = -1,     /* the operation failed */
	ERR_USAGE = -2,    /* bad arguments or input the user must change */
	ERR_CONFIG = -3,   /* configuration or credentials missing or wrong */
	ERR_IO = -4,       /* a system call failed; errno is in sys_errno */
	ERR_TIMEOUT = -5,
	ERR_FORMAT = -6,   /* content is not what it claims to be */
	ERR_CORRUPT = -7,  /* content is damaged (truncated, bad checksum) */
	ERR_LIMIT = -8,    /* content exceeds a safety limit */
	ERR_NOTFOUND = -9,
	ERR_EXISTS = -10,
	ERR_CHANGED = -11, /* a file changed while we used it */
	ERR_HTTP = -12,
	ERR_CONN = -13,    /* the connection to a remote host failed (ssh exit 255) */
	ERR_CANCELLED = -14, /* stopped because its cancel token was set */
};

struct err {
	int code;
	int sys_errno;
	char msg[1024];
};

/* Each returns `code` so callers can write `return err_set(e, ERR_IO, ...)`.
 * `e` may be NULL. err_sys appends strerror(errno). */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int err_sys(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "context: old message". Returns e's code
 * (ERR_FAIL when e is NULL: with an optional e, use err_prefix_code). */
int err_prefix(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same, also setting the code; returns `code` even when e is NULL. */
int err_prefix_code(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* e's message, or "" for a NULL e: for messages built from an optional e. */
const char *err_msg(const struct err *e);
void err_clear(struct err *e);
const char *err_name(int code);
/* The CLI exit status for an error code: 1 failed, 2 usage, 3 configuration. */
int err_exit_status(int code);

#endif
