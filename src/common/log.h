/* Logging to stderr with secret redaction. Secrets registered here are
 * masked in every log line and in anything passed through log_redact.
 * A thread may route its lines to a sink of its own (a job thread to its
 * job's events), redacted the same way. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "buf.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Remember a secret value (copied); strings shorter than 4 bytes are ignored
 * because masking them would garble ordinary text. */
void log_register_secret(const char *secret);
void log_forget_secrets(void);
/* Replace every registered secret in b with "****". */
void log_redact(struct buf *b);
/* Print to `f` with secrets masked. */
void log_fprintf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Where the calling thread's log lines go besides (or instead of) stderr.
 * `fn` gets each line redacted, without the "ferry: level: " prefix and
 * the newline. */
struct log_sink {
	void (*fn)(void *arg, enum log_level level, const char *line);
	void *arg;
	enum log_level level;      /* lines up to this level reach fn */
	bool stderr_too;           /* also to stderr, at the global level */
};

/* Set (a copy) or, with NULL, clear the calling thread's sink. */
void log_set_thread_sink(const struct log_sink *sink);

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __func__, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_TRACE, __func__, __VA_ARGS__)

#endif
