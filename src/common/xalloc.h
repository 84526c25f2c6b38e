/* Allocation wrappers that abort on out-of-memory, so callers never check. */
#ifndef FERRY_XALLOC_H
#define FERRY_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Zero then free memory that held a secret. */
void freezero(void *p, size_t n);

/* Grow array `a` (element count `alloc`) so it can hold `nr` elements. */
#define ALLOC_GROW(a, nr, alloc)                                              \
	do {                                                                  \
		if ((nr) > (alloc)) {                                         \
			(alloc) = (alloc) < 16 ? 16 : (alloc) * 2;            \
			if ((alloc) < (nr))                                   \
				(alloc) = (nr);                               \
			(a) = xreallocarray((a), (alloc), sizeof(*(a)));      \
		}                                                             \
	} while (0)

#endif
