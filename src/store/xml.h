/* S3's XML answers, read with expat into a small tree, and the readers for
 * the answers ferry uses: errors, object listings, CreateMultipartUpload,
 * ListParts and CompleteMultipartUpload. Namespaces are dropped (s3rver's
 * differs from AWS's); a DOCTYPE or entity declaration is refused, so a
 * hostile server cannot make the parser expand or fetch anything. Answers
 * are read by what they hold, not by their root's name (moto says
 * <CompleteMultipartUploadResponse> where AWS says ...Result), and an
 * <Error> in any of them (S3 may send one with status 200) is ERR_HTTP. */
#ifndef FERRY_S3_XML_H
#define FERRY_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define S3_XML_MAX_DEPTH 32
#define S3_XML_MAX_NODES 200000

struct s3_xml;

/* Parse a whole document; ERR_FORMAT naming `what` when it is not XML. */
int s3_xml_parse(const char *data, size_t len, const char *what, struct s3_xml **out,
		 struct err *e);
void s3_xml_free(struct s3_xml *x);
/* The root element (never NULL after a successful parse). */
const struct s3_xml *s3_xml_root(const struct s3_xml *x);
const char *s3_xml_name(const struct s3_xml *node);
/* The element's own text, whitespace at both ends trimmed ("" when none). */
const char *s3_xml_text(const struct s3_xml *node);
size_t s3_xml_count(const struct s3_xml *node);
const struct s3_xml *s3_xml_nth(const struct s3_xml *node, size_t i);
/* The first child named `name`, or NULL. */
const struct s3_xml *s3_xml_child(const struct s3_xml *node, const char *name);
/* Its text, or NULL when there is no such child. */
const char *s3_xml_child_text(const struct s3_xml *node, const char *name);

/* An <Error> answer (the root, or a child of it): code and message as S3
 * wrote them (each "" when absent). Returns false when the body is not an
 * S3 error document. */
struct s3_error {
	char code[128];
	char message[512];
};
bool s3_xml_error(const char *data, size_t len, struct s3_error *out);

struct s3_entry {
	char *key;
	uint64_t size;
	char *etag;          /* quotes removed */
	char *last_modified; /* as S3 wrote it (ISO 8601) */
};

/* One page of ListObjectsV2. Entries are appended to *v (count *n). */
struct s3_list_page {
	bool truncated;
	char *next_token;    /* NextContinuationToken, or NULL */
};
int s3_xml_list_objects(const char *data, size_t len, struct s3_entry **v, size_t *n,
			struct s3_list_page *page, struct err *e);
void s3_entries_free(struct s3_entry *v, size_t n);

/* CreateMultipartUpload: the UploadId (caller frees). */
int s3_xml_upload_id(const char *data, size_t len, char **upload_id, struct err *e);

struct s3_part {
	unsigned number;
	uint64_t size;
	char etag[80];       /* quotes removed */
};

/* One page of ListParts, appended to *v (count *n); *next_marker is the
 * NextPartNumberMarker when the page is truncated, else 0. */
int s3_xml_list_parts(const char *data, size_t len, struct s3_part **v, size_t *n,
		      unsigned *next_marker, struct err *e);

/* CompleteMultipartUpload's answer, whatever its root is called: the
 * object's ETag (quotes removed; "" when it holds a Location or Key but no
 * ETag). S3 may answer 200 with an <Error> inside: then ERR_HTTP with its
 * code in *error. Anything holding neither: ERR_FORMAT. */
int s3_xml_complete(const char *data, size_t len, char *etag, size_t etagsz,
		    struct s3_error *error, struct err *e);

#endif
