#include "store/xml.h"

#include <expat.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"

struct s3_xml {
	char *name;               /* local name, namespace dropped; "" for the document */
	struct buf text;
	struct s3_xml **kids;
	size_t n, alloc;
	struct s3_xml *parent;
};

struct s3_xml_state {
	XML_Parser p;
	struct s3_xml *doc, *cur;
	int depth;
	size_t nodes;
	const char *refused;      /* why the parse was stopped, or NULL */
};

static struct s3_xml *s3_xml_node(const char *name, struct s3_xml *parent)
{
	struct s3_xml *x = xcalloc(1, sizeof(*x));

	x->name = xstrdup(name);
	buf_init(&x->text);
	x->parent = parent;
	return x;
}

void s3_xml_free(struct s3_xml *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++)
		s3_xml_free(x->kids[i]);
	free(x->kids);
	free(x->name);
	buf_release(&x->text);
	free(x);
}

static void s3_xml_stop(struct s3_xml_state *st, const char *why)
{
	if (!st->refused)
		st->refused = why;
	XML_StopParser(st->p, XML_FALSE);
}

static void XMLCALL s3_xml_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct s3_xml_state *st = arg;
	const char *local = strrchr(name, '\x01');
	struct s3_xml *x;

	if (st->refused)
		return;
	if (st->depth >= S3_XML_MAX_DEPTH || ++st->nodes > S3_XML_MAX_NODES) {
		s3_xml_stop(st, st->depth >= S3_XML_MAX_DEPTH ? "nested too deep"
							      : "too many elements");
		return;
	}
	x = s3_xml_node(local ? local + 1 : name, st->cur);
	ALLOC_GROW(st->cur->kids, st->cur->n + 1, st->cur->alloc);
	st->cur->kids[st->cur->n++] = x;
	st->cur = x;
	st->depth++;
}

static void XMLCALL s3_xml_end(void *arg, const XML_Char *name)
{
	struct s3_xml_state *st = arg;
	char *t;

	if (st->refused || !st->cur->parent)
		return;
	t = str_trim(st->cur->text.data);
	if (t != st->cur->text.data || strlen(t) != st->cur->text.len) {
		size_t n = strlen(t);

		memmove(st->cur->text.data, t, n + 1);
		st->cur->text.len = n;
	}
	st->cur = st->cur->parent;
	st->depth--;
}

static void XMLCALL s3_xml_chars(void *arg, const XML_Char *s, int len)
{
	struct s3_xml_state *st = arg;

	if (!st->refused && st->cur->parent && len > 0)
		buf_add(&st->cur->text, s, (size_t)len);
}

/* No document type: S3 never sends one, and entities are how XML bombs
 * and external fetches get in. */
static void XMLCALL s3_xml_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
				   const XML_Char *pubid, int has_internal_subset)
{
	s3_xml_stop(arg, "it declares a document type");
}

static void XMLCALL s3_xml_entity(void *arg, const XML_Char *name, int is_parameter,
				  const XML_Char *value, int value_length, const XML_Char *base,
				  const XML_Char *sysid, const XML_Char *pubid,
				  const XML_Char *notation)
{
	s3_xml_stop(arg, "it declares an entity");
}

int s3_xml_parse(const char *data, size_t len, const char *what, struct s3_xml **out,
		 struct err *e)
{
	struct s3_xml_state st = { 0 };
	enum XML_Status ok;
	int r = 0;

	*out = NULL;
	if (len > INT_MAX)
		return err_set(e, ERR_LIMIT, "%s: the XML answer is too large", what);
	st.p = XML_ParserCreateNS(NULL, '\x01');
	if (!st.p)
		abort();
	st.doc = st.cur = s3_xml_node("", NULL);
	XML_SetUserData(st.p, &st);
	XML_SetElementHandler(st.p, s3_xml_start, s3_xml_end);
	XML_SetCharacterDataHandler(st.p, s3_xml_chars);
	XML_SetStartDoctypeDeclHandler(st.p, s3_xml_doctype);
	XML_SetEntityDeclHandler(st.p, s3_xml_entity);
	ok = XML_Parse(st.p, data, (int)len, XML_TRUE);
	if (st.refused)
		r = err_set(e, ERR_FORMAT, "%s: refused the XML answer: %s", what, st.refused);
	else if (ok != XML_STATUS_OK)
		r = err_set(e, ERR_FORMAT, "%s: the answer is not XML (%s at line %lu)", what,
			    XML_ErrorString(XML_GetErrorCode(st.p)),
			    (unsigned long)XML_GetCurrentLineNumber(st.p));
	else if (st.doc->n != 1)
		r = err_set(e, ERR_FORMAT, "%s: the XML answer has no root element", what);
	XML_ParserFree(st.p);
	if (r)
		s3_xml_free(st.doc);
	else
		*out = st.doc;
	return r;
}

const struct s3_xml *s3_xml_root(const struct s3_xml *x)
{
	return x->n ? x->kids[0] : x;
}

const char *s3_xml_name(const struct s3_xml *node)
{
	return node->name;
}

const char *s3_xml_text(const struct s3_xml *node)
{
	return node->text.data;
}

size_t s3_xml_count(const struct s3_xml *node)
{
	return node->n;
}

const struct s3_xml *s3_xml_nth(const struct s3_xml *node, size_t i)
{
	return i < node->n ? node->kids[i] : NULL;
}

const struct s3_xml *s3_xml_child(const struct s3_xml *node, const char *name)
{
	for (size_t i = 0; i < node->n; i++)
		if (!strcmp(node->kids[i]->name, name))
			return node->kids[i];
	return NULL;
}

const char *s3_xml_child_text(const struct s3_xml *node, const char *name)
{
	const struct s3_xml *c = s3_xml_child(node, name);

	return c ? c->text.data : NULL;
}

static void s3_xml_copy(char *dst, size_t dstsz, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= dstsz)
		n = dstsz - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* An ETag without its quotes. */
static void s3_xml_etag(char *dst, size_t dstsz, const char *src)
{
	size_t n;

	if (!src)
		src = "";
	n = strlen(src);
	if (n >= 2 && src[0] == '"' && src[n - 1] == '"') {
		src++;
		n -= 2;
	}
	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The <Error> an answer carries: its root, or a child of the root (a
 * service that wraps it), or NULL. */
static const struct s3_xml *s3_xml_find_error(const struct s3_xml *root)
{
	return strcmp(root->name, "Error") ? s3_xml_child(root, "Error") : root;
}

static void s3_xml_error_copy(const struct s3_xml *node, struct s3_error *out)
{
	s3_xml_copy(out->code, sizeof(out->code), s3_xml_child_text(node, "Code"));
	s3_xml_copy(out->message, sizeof(out->message), s3_xml_child_text(node, "Message"));
}

bool s3_xml_error(const char *data, size_t len, struct s3_error *out)
{
	struct s3_xml *x = NULL;
	const struct s3_xml *err;
	bool ok = false;

	out->code[0] = out->message[0] = '\0';
	if (!len || s3_xml_parse(data, len, "S3", &x, NULL))
		return false;
	err = s3_xml_find_error(s3_xml_root(x));
	if (err) {
		s3_xml_error_copy(err, out);
		ok = true;
	}
	s3_xml_free(x);
	return ok;
}

/* Open an answer and find the result in it. An answer is read by what it
 * holds, not by its root's name: AWS and R2 say <ListPartsResult> where
 * moto says <ListPartsResponse>, and so on. The root is taken when it is
 * named `root_name` or holds a child named in `marks`. An <Error> in it
 * (S3 may send one with status 200) gives ERR_HTTP with its code, copied
 * to `error` (may be NULL). */
static int s3_xml_open(const char *data, size_t len, const char *what, const char *root_name,
		       const char *const *marks, struct s3_xml **x, const struct s3_xml **root,
		       struct s3_error *error, struct err *e)
{
	const struct s3_xml *err;
	struct s3_error local;
	bool found;
	int r = s3_xml_parse(data, len, what, x, e);

	if (!error)
		error = &local;
	error->code[0] = error->message[0] = '\0';
	if (r)
		return r;
	*root = s3_xml_root(*x);
	err = s3_xml_find_error(*root);
	found = !strcmp((*root)->name, root_name);
	for (const char *const *m = marks; !found && m && *m; m++)
		found = s3_xml_child(*root, *m) != NULL;
	if (err) {
		s3_xml_error_copy(err, error);
		r = err_set(e, ERR_HTTP, "%s: %s: %s", what, error->code[0] ? error->code : "Error",
			    error->message);
	} else if (!found) {
		struct buf want = BUF_INIT;

		for (const char *const *m = marks; m && *m; m++)
			buf_printf(&want, "%s<%s>", m == marks ? "" : m[1] ? ", " : " or ", *m);
		r = err_set(e, ERR_FORMAT, "%s: the answer <%.64s> is not one (it holds no %s)",
			    what, (*root)->name, want.len ? want.data : root_name);
		buf_release(&want);
	}
	if (r) {
		s3_xml_free(*x);
		*x = NULL;
	}
	return r;
}

static bool s3_xml_true(const char *s)
{
	return s && !strcmp(s, "true");
}

void s3_entries_free(struct s3_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].etag);
		free(v[i].last_modified);
	}
	free(v);
}

int s3_xml_list_objects(const char *data, size_t len, struct s3_entry **v, size_t *n,
			struct s3_list_page *page, struct err *e)
{
	const char *what = "ListObjectsV2";
	const struct s3_xml *root;
	struct s3_xml *x;
	size_t alloc = *n;
	static const char *const marks[] = { "Contents", "IsTruncated", "KeyCount", NULL };
	int r = s3_xml_open(data, len, what, "ListBucketResult", marks, &x, &root, NULL, e);

	page->truncated = false;
	page->next_token = NULL;
	if (r)
		return r;
	for (size_t i = 0; i < root->n; i++) {
		const struct s3_xml *c = root->kids[i];
		const char *key, *size;
		unsigned long long sz;
		char etag[80];

		if (strcmp(c->name, "Contents"))
			continue;
		key = s3_xml_child_text(c, "Key");
		size = s3_xml_child_text(c, "Size");
		if (!key || !*key || !size || str_to_u64(size, &sz)) {
			r = err_set(e, ERR_FORMAT, "%s: an entry without a key or a size", what);
			goto out;
		}
		s3_xml_etag(etag, sizeof(etag), s3_xml_child_text(c, "ETag"));
		ALLOC_GROW(*v, *n + 1, alloc);
		(*v)[*n] = (struct s3_entry){
			.key = xstrdup(key),
			.size = sz,
			.etag = xstrdup(etag),
			.last_modified = xstrdup(s3_xml_child_text(c, "LastModified")
							 ? s3_xml_child_text(c, "LastModified")
							 : ""),
		};
		(*n)++;
	}
	page->truncated = s3_xml_true(s3_xml_child_text(root, "IsTruncated"));
	if (page->truncated) {
		const char *tok = s3_xml_child_text(root, "NextContinuationToken");

		if (!tok || !*tok) {
			r = err_set(e, ERR_FORMAT, "%s: a truncated listing without a next token",
				    what);
			page->truncated = false;
			goto out;
		}
		page->next_token = xstrdup(tok);
	}
out:
	s3_xml_free(x);
	return r;
}

int s3_xml_upload_id(const char *data, size_t len, char **upload_id, struct err *e)
{
	const char *what = "CreateMultipartUpload", *id;
	const struct s3_xml *root;
	struct s3_xml *x;
	static const char *const marks[] = { "UploadId", NULL };
	int r = s3_xml_open(data, len, what, "InitiateMultipartUploadResult", marks, &x, &root,
			    NULL, e);

	*upload_id = NULL;
	if (r)
		return r;
	id = s3_xml_child_text(root, "UploadId");
	if (!id || !*id || str_has_ctrl(id))
		r = err_set(e, ERR_FORMAT, "%s: no UploadId in the answer", what);
	else
		*upload_id = xstrdup(id);
	s3_xml_free(x);
	return r;
}

int s3_xml_list_parts(const char *data, size_t len, struct s3_part **v, size_t *n,
		      unsigned *next_marker, struct err *e)
{
	const char *what = "ListParts";
	const struct s3_xml *root;
	struct s3_xml *x;
	size_t alloc = *n;
	static const char *const marks[] = { "UploadId", "Part", "IsTruncated", NULL };
	int r = s3_xml_open(data, len, what, "ListPartsResult", marks, &x, &root, NULL, e);

	*next_marker = 0;
	if (r)
		return r;
	for (size_t i = 0; i < root->n; i++) {
		const struct s3_xml *c = root->kids[i];
		const char *num, *size;
		unsigned long long pn, sz;

		if (strcmp(c->name, "Part"))
			continue;
		num = s3_xml_child_text(c, "PartNumber");
		size = s3_xml_child_text(c, "Size");
		if (!num || str_to_u64(num, &pn) || pn < 1 || pn > 10000 || !size ||
		    str_to_u64(size, &sz)) {
			r = err_set(e, ERR_FORMAT, "%s: a part without a number or a size", what);
			goto out;
		}
		ALLOC_GROW(*v, *n + 1, alloc);
		(*v)[*n].number = (unsigned)pn;
		(*v)[*n].size = sz;
		s3_xml_etag((*v)[*n].etag, sizeof((*v)[*n].etag), s3_xml_child_text(c, "ETag"));
		(*n)++;
	}
	if (s3_xml_true(s3_xml_child_text(root, "IsTruncated"))) {
		const char *m = s3_xml_child_text(root, "NextPartNumberMarker");
		unsigned long long mk;

		if (!m || str_to_u64(m, &mk) || mk < 1 || mk >= 10000) {
			r = err_set(e, ERR_FORMAT, "%s: a truncated listing without a next marker",
				    what);
			goto out;
		}
		*next_marker = (unsigned)mk;
	}
out:
	s3_xml_free(x);
	return r;
}

int s3_xml_complete(const char *data, size_t len, char *etag, size_t etagsz,
		    struct s3_error *error, struct err *e)
{
	static const char *const marks[] = { "ETag", "Location", "Key", NULL };
	const struct s3_xml *root;
	struct s3_xml *x;
	int r = s3_xml_open(data, len, "CompleteMultipartUpload", "CompleteMultipartUploadResult",
			    marks, &x, &root, error, e);

	etag[0] = '\0';
	if (r)
		return r;
	s3_xml_etag(etag, etagsz, s3_xml_child_text(root, "ETag"));
	s3_xml_free(x);
	return 0;
}
