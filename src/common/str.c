#include "str.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "xalloc.h"

void strv_push_nodup(struct strv *sv, char *s)
{
	ALLOC_GROW(sv->v, sv->n + 2, sv->alloc);
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void strv_push(struct strv *sv, const char *s)
{
	strv_push_nodup(sv, xstrdup(s));
}

void strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}

bool str_starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_ends_with_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

bool str_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		unsigned need, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (i + need >= n)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

bool str_has_ctrl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

void str_escape(const char *s, struct buf *out)
{
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			   (c & 0xf8) == 0xf0 ? 4 : 0;

		if (c < 0x20 || c == 0x7f || !n || strnlen(s, n) < n || !str_utf8_valid(s, n)) {
			buf_printf(out, "\\x%02x", c);
			s++;
		} else {
			buf_add(out, s, n);
			s += n;
		}
	}
}

char *str_trim(char *s)
{
	size_t n = strlen(s), start = 0;

	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	while (start < n && isspace((unsigned char)s[start]))
		start++;
	memmove(s, s + start, n - start);
	s[n - start] = '\0';
	return s;
}

static bool word_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

bool str_contains_word_ci(const char *text, const char *word)
{
	size_t m = strlen(word);

	if (!m)
		return false;
	for (const char *p = text; *p; p++) {
		if (strncasecmp(p, word, m))
			continue;
		if (p > text && word_char((unsigned char)p[-1]) && word_char((unsigned char)word[0]))
			continue;
		if (word_char((unsigned char)p[m]) && word_char((unsigned char)word[m - 1]))
			continue;
		return true;
	}
	return false;
}

int str_split_words(const char *line, struct strv *out, struct err *e)
{
	struct buf w = BUF_INIT;
	bool in_word = false;
	char quote = 0;
	int r = 0;

	for (const char *p = line;; p++) {
		char c = *p;

		if (!c) {
			if (quote) {
				r = err_set(e, ERR_USAGE, "unterminated %c quote in command '%s'", quote, line);
				goto out;
			}
			break;
		}
		if (quote == '\'') {
			if (c == '\'')
				quote = 0;
			else
				buf_putc(&w, c);
			continue;
		}
		if (c == '\\' && p[1]) {
			buf_putc(&w, *++p);
			in_word = true;
			continue;
		}
		if (quote == '"') {
			if (c == '"')
				quote = 0;
			else
				buf_putc(&w, c);
			continue;
		}
		if (c == '\'' || c == '"') {
			quote = c;
			in_word = true;
		} else if (isspace((unsigned char)c)) {
			if (in_word)
				strv_push(out, w.data);
			buf_reset(&w);
			in_word = false;
		} else {
			buf_putc(&w, c);
			in_word = true;
		}
	}
	if (in_word)
		strv_push(out, w.data);
out:
	buf_release(&w);
	return r;
}

int str_to_u64(const char *s, unsigned long long *out)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return ERR_USAGE;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end)
		return ERR_USAGE;
	return 0;
}

int str_to_i64(const char *s, long long *out)
{
	unsigned long long v;
	bool neg = s && *s == '-';

	if (!s || str_to_u64(s + neg, &v) || v > (unsigned long long)LLONG_MAX)
		return ERR_USAGE;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

bool str_to_double(const char *s, double *out)
{
	char *end;
	double d;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return false;
	errno = 0;
	d = strtod(s, &end);
	if (end == s || errno == ERANGE || !isfinite(d))
		return false;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return false;
	*out = d;
	return true;
}

void str_shell_quote(const char *s, struct buf *out)
{
	buf_putc(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			buf_puts(out, "'\\''");
		else
			buf_putc(out, *s);
	}
	buf_putc(out, '\'');
}
