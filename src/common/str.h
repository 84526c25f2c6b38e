/* String helpers and a string vector. */
#ifndef FERRY_STR_H
#define FERRY_STR_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct strv {
	char **v; /* NULL-terminated once anything was pushed */
	size_t n;
	size_t alloc;
};

#define STRV_INIT { NULL, 0, 0 }

void strv_push(struct strv *sv, const char *s);
void strv_push_nodup(struct strv *sv, char *s);
void strv_release(struct strv *sv);

bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with_ci(const char *s, const char *suffix);
/* Whether `s` (length n) is well-formed UTF-8 with no overlongs or surrogates. */
bool str_utf8_valid(const char *s, size_t n);
/* Whether `s` holds an ASCII control character (below 0x20, or 0x7f). */
bool str_has_ctrl(const char *s);
/* Append `s` to `out` with control characters and bytes that are not UTF-8
 * written as \xNN, so a hostile name can be shown and put in JSON. */
void str_escape(const char *s, struct buf *out);
/* Trim ASCII whitespace at both ends, in place; returns s. */
char *str_trim(char *s);
/* Case-insensitive search for `word` as a whole word in `text`. */
bool str_contains_word_ci(const char *text, const char *word);
/* Split a command line into words: whitespace separates, '' and "" quote,
 * backslash escapes outside single quotes. Nothing is expanded. */
int str_split_words(const char *line, struct strv *out, struct err *e);
/* Parse a non-negative decimal integer; the whole string must be a number. */
int str_to_u64(const char *s, unsigned long long *out);
/* The same with an optional leading '-'. */
int str_to_i64(const char *s, long long *out);
/* Append `s` to `out` quoted for a POSIX shell: one word, nothing in it
 * interpreted ('...' with each ' written as '\''). */
void str_shell_quote(const char *s, struct buf *out);
/* A whole string that is a finite number, surrounding blanks allowed. */
bool str_to_double(const char *s, double *out);

#endif
