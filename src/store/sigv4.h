/* AWS Signature Version 4, written here because libcurl 7.88's own signer
 * gets S3 wrong (docs/reference/s3-r2.md): the canonical request with
 * the path and a sorted query RFC 3986-encoded, the signed headers and the
 * payload's SHA-256; the header form (an Authorization header) and the
 * presigned form (the signature in the query). Proven against AWS's
 * published examples in tests/unit/test_sigv4.c. */
#ifndef FERRY_SIGV4_H
#define FERRY_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/str.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_MAX_EXPIRES (7L * 24 * 3600) /* what S3 and R2 accept for a presigned URL */

struct sigv4_key {
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL: none */
	const char *region;        /* "auto" for R2 */
	const char *service;       /* "s3" */
};

/* One query parameter, not encoded; value "" for a bare name (`?uploads`). */
struct sigv4_param {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *host;           /* as the Host header sends it (host[:port]) */
	const char *path;           /* starts with '/', not encoded: encoded here */
	const struct sigv4_param *query;
	size_t nquery;
	/* "Name: value" lines that are sent and signed, besides Host and
	 * X-Amz-Date (which the signer adds; these may not name them). */
	const char *const *headers;
	const char *payload_hash;   /* hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
	const char *amz_date;       /* YYYYMMDDTHHMMSSZ (sigv4_amz_date) */
};

struct sigv4_signed {
	struct buf canonical;       /* the canonical request */
	struct buf to_sign;         /* the string to sign */
	char signature[65];
	/* Header form: the lines to send besides the request's own headers
	 * (X-Amz-Date, X-Amz-Security-Token, Authorization). */
	struct strv send_headers;
	/* Presigned form: the whole encoded query, signature last. */
	struct buf query;
};

void sigv4_signed_init(struct sigv4_signed *s);
void sigv4_signed_release(struct sigv4_signed *s);

/* Sign in the header form. ERR_USAGE for a header the signer owns or one
 * holding a line break. */
int sigv4_sign(const struct sigv4_key *k, const struct sigv4_request *rq,
	       struct sigv4_signed *out, struct err *e);
/* Sign in the presigned form, valid for expires_s seconds (1 to 7 days);
 * the payload is UNSIGNED-PAYLOAD whatever rq says. */
int sigv4_presign(const struct sigv4_key *k, const struct sigv4_request *rq, long expires_s,
		  struct sigv4_signed *out, struct err *e);

/* RFC 3986 encoding as SigV4 wants it: every byte but A-Z a-z 0-9 - . _ ~
 * as %XX (upper case); '/' kept unless encode_slash. */
void sigv4_uri_encode(const char *s, size_t n, bool encode_slash, struct buf *out);
/* The canonical query string: names and values encoded, sorted by name
 * then value, `name=value` joined by '&' (a bare name as `name=`). */
void sigv4_canonical_query(const struct sigv4_param *q, size_t n, struct buf *out);
/* t as YYYYMMDDTHHMMSSZ (UTC). */
void sigv4_amz_date(time_t t, char out[17]);

#endif
