/* libFuzzer target for the S3 XML reader (src/store/xml.c): every answer a
 * server could send goes through each reader. Each must refuse with a
 * message or give what it promises: a root element, entries with keys,
 * parts numbered 1 to 10,000, an UploadId without control characters. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/str.h"
#include "store/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walk a tree: names and texts are strings, children are where they say. */
static size_t walk(const struct s3_xml *x, int depth)
{
	size_t n = 1;

	if (depth > S3_XML_MAX_DEPTH + 1 || !s3_xml_name(x) || !s3_xml_text(x))
		abort();
	for (size_t i = 0; i < s3_xml_count(x); i++) {
		const struct s3_xml *c = s3_xml_nth(x, i);

		if (!c || s3_xml_child(x, s3_xml_name(c)) == NULL)
			abort();
		n += walk(c, depth + 1);
	}
	if (s3_xml_nth(x, s3_xml_count(x)))
		abort();
	return n;
}

static void refused(int r, const struct err *e)
{
	if (r != e->code || !e->msg[0] || (r != ERR_FORMAT && r != ERR_LIMIT && r != ERR_HTTP))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct s3_xml *x = NULL;
	struct s3_entry *v = NULL;
	struct s3_part *p = NULL;
	struct s3_list_page pg;
	struct s3_error se;
	struct err e;
	size_t n = 0;
	unsigned next = 0;
	char *id = NULL, etag[80];
	int r;

	err_clear(&e);
	r = s3_xml_parse(text, size, "fuzz", &x, &e);
	if (r) {
		if (x)
			abort();
		refused(r, &e);
	} else {
		if (walk(s3_xml_root(x), 1) > S3_XML_MAX_NODES + 1)
			abort();
		s3_xml_free(x);
	}

	if (s3_xml_error(text, size, &se) &&
	    (strlen(se.code) >= sizeof(se.code) || strlen(se.message) >= sizeof(se.message)))
		abort();

	err_clear(&e);
	r = s3_xml_list_objects(text, size, &v, &n, &pg, &e);
	if (r) {
		refused(r, &e);
		if (pg.next_token)
			abort();
	} else {
		for (size_t i = 0; i < n; i++)
			if (!v[i].key || !*v[i].key || !v[i].etag || !v[i].last_modified)
				abort();
		if (pg.truncated != (pg.next_token != NULL))
			abort();
		free(pg.next_token);
	}
	s3_entries_free(v, n);

	err_clear(&e);
	r = s3_xml_upload_id(text, size, &id, &e);
	if (r ? id != NULL : (!id || !*id || str_has_ctrl(id)))
		abort();
	if (r)
		refused(r, &e);
	free(id);

	err_clear(&e);
	n = 0;
	r = s3_xml_list_parts(text, size, &p, &n, &next, &e);
	if (r) {
		refused(r, &e);
	} else {
		for (size_t i = 0; i < n; i++)
			if (p[i].number < 1 || p[i].number > 10000)
				abort();
		if (next >= 10000)
			abort();
	}
	free(p);

	err_clear(&e);
	r = s3_xml_complete(text, size, etag, sizeof(etag), &se, &e);
	if (r)
		refused(r, &e);
	if (strlen(etag) >= sizeof(etag) || (r == ERR_HTTP && etag[0]))
		abort();
	return 0;
}
