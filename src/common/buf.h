/* A growable byte buffer, always NUL-terminated. `data` is never NULL:
 * BUF_INIT points an empty buffer at a shared empty string (git's slopbuf),
 * so a declaration with BUF_INIT is ready to use without buf_init. */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* never NULL (a zeroed struct gets storage on first growth) */
	size_t len;
	size_t cap;
};

extern char buf_empty[1];
#define BUF_INIT { buf_empty, 0, 0 }

/* For buffers in memory that was not set with BUF_INIT (heap, memset). */
void buf_init(struct buf *b);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hand the storage to the caller; the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
