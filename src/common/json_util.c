#include "json_util.h"

#include <stdlib.h>
#include <string.h>

#include "str.h"

static int json_flags(int pretty)
{
	return JSON_SORT_KEYS | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
}

void json_to_buf(const json_t *v, int pretty, struct buf *out)
{
	char *s = json_dumps(v, json_flags(pretty));

	if (s) {
		buf_puts(out, s);
		free(s);
	}
	buf_putc(out, '\n');
}

void json_print(FILE *f, const json_t *v, int pretty)
{
	json_dumpf(v, f, json_flags(pretty));
	fputc('\n', f);
}

int json_parse(const char *data, size_t len, const char *what, json_t **out, struct err *e)
{
	json_error_t je;

	*out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!*out)
		return err_set(e, ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s",
			       what, je.line, je.column, je.text);
	return 0;
}

const char *json_str(const json_t *obj, const char *key, const char *dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

long long json_int(const json_t *obj, const char *key, long long dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

json_t *json_string_escaped(const char *s)
{
	struct buf b = BUF_INIT;
	json_t *v;

	str_escape(s, &b);
	v = json_string(b.data);
	buf_release(&b);
	return v;
}
