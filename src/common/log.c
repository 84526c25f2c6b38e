#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "xalloc.h"

static enum log_level log_level = LOG_WARN;
static struct strv log_secrets;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct log_sink log_sink;
static __thread bool log_has_sink;

void log_set_thread_sink(const struct log_sink *sink)
{
	log_has_sink = sink && sink->fn;
	if (log_has_sink)
		log_sink = *sink;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

void log_register_secret(const char *secret)
{
	if (!secret || strlen(secret) < 4)
		return;
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < log_secrets.n; i++) {
		if (!strcmp(log_secrets.v[i], secret)) {
			pthread_mutex_unlock(&log_lock);
			return;
		}
	}
	strv_push(&log_secrets, secret);
	pthread_mutex_unlock(&log_lock);
}

void log_forget_secrets(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < log_secrets.n; i++)
		explicit_bzero(log_secrets.v[i], strlen(log_secrets.v[i]));
	strv_release(&log_secrets);
	pthread_mutex_unlock(&log_lock);
}

void log_redact(struct buf *b)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < log_secrets.n; i++) {
		const char *s = log_secrets.v[i];
		size_t n = strlen(s);
		struct buf out = BUF_INIT;
		const char *p = b->data, *hit;

		if (!b->len || !strstr(b->data, s))
			continue;
		while ((hit = strstr(p, s))) {
			buf_add(&out, p, (size_t)(hit - p));
			buf_puts(&out, "****");
			p = hit + n;
		}
		buf_puts(&out, p);
		explicit_bzero(b->data, b->len);
		buf_release(b);
		*b = out;
	}
	pthread_mutex_unlock(&log_lock);
}

static __attribute__((format(printf, 3, 0))) void log_vwrite(FILE *f, const char *prefix,
							       const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, prefix);
	buf_vprintf(&b, fmt, ap);
	log_redact(&b);
	fputs(b.data, f);
	buf_release(&b);
}

void log_fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(f, "", fmt, ap);
	va_end(ap);
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug", "trace" };
	bool to_sink = log_has_sink && level <= log_sink.level;
	bool to_stderr = level <= log_level && (!log_has_sink || log_sink.stderr_too);
	struct buf b = BUF_INIT;
	size_t n;
	va_list ap;

	if (!to_sink && !to_stderr)
		return;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	log_redact(&b);
	n = b.len;
	while (n && b.data[n - 1] == '\n')
		b.data[--n] = '\0';
	b.len = n;
	if (to_sink)
		log_sink.fn(log_sink.arg, level, b.data);
	if (to_stderr) {
		if (log_level >= LOG_DEBUG)
			fprintf(stderr, "ferry: %s: %s: %s\n", names[level], func, b.data);
		else
			fprintf(stderr, "ferry: %s: %s\n", names[level], b.data);
	}
	explicit_bzero(b.data, b.len);
	buf_release(&b);
}
