#include "store/sigv4.h"

#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/sha256.h"
#include "common/xalloc.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

void sigv4_signed_init(struct sigv4_signed *s)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->canonical);
	buf_init(&s->to_sign);
	buf_init(&s->query);
}

void sigv4_signed_release(struct sigv4_signed *s)
{
	buf_release(&s->canonical);
	buf_release(&s->to_sign);
	buf_release(&s->query);
	strv_release(&s->send_headers);
	explicit_bzero(s->signature, sizeof(s->signature));
}

void sigv4_uri_encode(const char *s, size_t n, bool encode_slash, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && !encode_slash)) {
			buf_putc(out, (char)c);
		} else {
			buf_putc(out, '%');
			buf_putc(out, hex[c >> 4]);
			buf_putc(out, hex[c & 15]);
		}
	}
}

struct sigv4_pair {
	char *name;  /* encoded (query) or lower case (headers) */
	char *value;
	size_t order; /* position given: sorting stays stable */
};

static int sigv4_pair_cmp(const void *a, const void *b)
{
	const struct sigv4_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int sigv4_query_cmp(const void *a, const void *b)
{
	const struct sigv4_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void sigv4_pairs_free(struct sigv4_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

void sigv4_canonical_query(const struct sigv4_param *q, size_t n, struct buf *out)
{
	struct sigv4_pair *p = xcalloc(n ? n : 1, sizeof(*p));

	for (size_t i = 0; i < n; i++) {
		struct buf b = BUF_INIT;

		sigv4_uri_encode(q[i].name, strlen(q[i].name), true, &b);
		p[i].name = buf_detach(&b, NULL);
		sigv4_uri_encode(q[i].value ? q[i].value : "", q[i].value ? strlen(q[i].value) : 0,
				 true, &b);
		p[i].value = buf_detach(&b, NULL);
	}
	/* Sorted by the encoded bytes, as AWS does. */
	qsort(p, n, sizeof(*p), sigv4_query_cmp);
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%s%s=%s", i ? "&" : "", p[i].name, p[i].value);
	sigv4_pairs_free(p, n);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* A header value as SigV4 signs it: trimmed, runs of blanks made one space. */
static char *sigv4_header_value(const char *v)
{
	struct buf b = BUF_INIT;
	bool blank = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			blank = true;
			continue;
		}
		if (blank && b.len)
			buf_putc(&b, ' ');
		blank = false;
		buf_putc(&b, *v);
	}
	return buf_detach(&b, NULL);
}

/* The headers to sign, lower-cased and sorted (repeated names merged with
 * ','), with host, x-amz-date and the session token added. */
static int sigv4_headers(const struct sigv4_key *k, const struct sigv4_request *rq,
			 bool presigned, struct buf *canon, struct buf *signed_names,
			 struct err *e)
{
	struct sigv4_pair *p = NULL;
	size_t n = 0, alloc = 0;
	int r = 0;

	ALLOC_GROW(p, n + 1, alloc);
	p[n] = (struct sigv4_pair){ xstrdup("host"), sigv4_header_value(rq->host), n };
	n++;
	if (!presigned) {
		ALLOC_GROW(p, n + 1, alloc);
		p[n] = (struct sigv4_pair){ xstrdup("x-amz-date"), xstrdup(rq->amz_date), n };
		n++;
		if (k->session_token && *k->session_token) {
			ALLOC_GROW(p, n + 1, alloc);
			p[n] = (struct sigv4_pair){ xstrdup("x-amz-security-token"),
						    xstrdup(k->session_token), n };
			n++;
		}
	}
	for (const char *const *h = rq->headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		char *name;

		if (!colon || colon == *h || strpbrk(*h, "\r\n")) {
			r = err_set(e, ERR_USAGE, "cannot sign the header line '%.40s'", *h);
			goto out;
		}
		name = xstrndup(*h, (size_t)(colon - *h));
		for (char *c = name; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (!strcmp(name, "host") || !strcmp(name, "x-amz-date") ||
		    !strcmp(name, "authorization") || !strcmp(name, "x-amz-security-token")) {
			r = err_set(e, ERR_USAGE, "the signer sets the %s header itself", name);
			free(name);
			goto out;
		}
		ALLOC_GROW(p, n + 1, alloc);
		p[n] = (struct sigv4_pair){ name, sigv4_header_value(colon + 1), n };
		n++;
	}
	qsort(p, n, sizeof(*p), sigv4_pair_cmp);
	for (size_t i = 0; i < n; i++) {
		bool again = i > 0 && !strcmp(p[i].name, p[i - 1].name);

		if (again) {
			canon->len--; /* the newline: the value continues the line */
			buf_printf(canon, ",%s\n", p[i].value);
			continue;
		}
		buf_printf(canon, "%s:%s\n", p[i].name, p[i].value);
		buf_printf(signed_names, "%s%s", signed_names->len ? ";" : "", p[i].name);
	}
out:
	sigv4_pairs_free(p, n);
	return r;
}

static void sigv4_hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int n = 32;

	if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n))
		abort();
}

/* The canonical request, the string to sign and the signature. `query` is
 * the canonical query string already built. */
static int sigv4_compute(const struct sigv4_key *k, const struct sigv4_request *rq,
			 const char *query, bool presigned, const char *payload,
			 struct sigv4_signed *out, struct buf *signed_names, struct err *e)
{
	static const char hexd[] = "0123456789abcdef";
	struct buf canon_headers = BUF_INIT;
	char date[9], creq_hash[SHA256_HEX_LEN + 1];
	unsigned char kd[32], kr[32], ks[32], kk[32], sig[32];
	char *secret;
	int r;

	r = sigv4_headers(k, rq, presigned, &canon_headers, signed_names, e);
	if (r)
		goto out;
	buf_puts(&out->canonical, rq->method);
	buf_putc(&out->canonical, '\n');
	sigv4_uri_encode(rq->path, strlen(rq->path), false, &out->canonical);
	buf_printf(&out->canonical, "\n%s\n%s\n%s\n%s", query, canon_headers.data,
		   signed_names->data, payload);

	memcpy(date, rq->amz_date, 8);
	date[8] = '\0';
	sha256_hex(out->canonical.data, out->canonical.len, creq_hash);
	buf_printf(&out->to_sign, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", rq->amz_date,
		   date, k->region, k->service, creq_hash);

	secret = xasprintf("AWS4%s", k->secret_key);
	sigv4_hmac(secret, strlen(secret), date, kd);
	freezero(secret, strlen(secret));
	sigv4_hmac(kd, 32, k->region, kr);
	sigv4_hmac(kr, 32, k->service, ks);
	sigv4_hmac(ks, 32, "aws4_request", kk);
	sigv4_hmac(kk, 32, out->to_sign.data, sig);
	for (int i = 0; i < 32; i++) {
		out->signature[2 * i] = hexd[sig[i] >> 4];
		out->signature[2 * i + 1] = hexd[sig[i] & 15];
	}
	out->signature[64] = '\0';
	explicit_bzero(kd, sizeof(kd));
	explicit_bzero(kr, sizeof(kr));
	explicit_bzero(ks, sizeof(ks));
	explicit_bzero(kk, sizeof(kk));
out:
	buf_release(&canon_headers);
	return r;
}

static int sigv4_check(const struct sigv4_key *k, const struct sigv4_request *rq, struct err *e)
{
	if (!k->access_key || !*k->access_key || !k->secret_key || !*k->secret_key)
		return err_set(e, ERR_CONFIG, "no access key id or secret access key to sign with");
	if (!k->region || !*k->region || !k->service || !*k->service)
		return err_set(e, ERR_CONFIG, "no region or service to sign for");
	if (!rq->amz_date || strlen(rq->amz_date) != 16 || rq->amz_date[8] != 'T')
		return err_set(e, ERR_USAGE, "bad signing time '%s'",
			       rq->amz_date ? rq->amz_date : "");
	if (!rq->path || rq->path[0] != '/')
		return err_set(e, ERR_USAGE, "a path to sign starts with '/'");
	return 0;
}

int sigv4_sign(const struct sigv4_key *k, const struct sigv4_request *rq,
	       struct sigv4_signed *out, struct err *e)
{
	struct buf query = BUF_INIT, names = BUF_INIT;
	const char *payload = rq->payload_hash ? rq->payload_hash : SIGV4_EMPTY_SHA256;
	char date[9];
	int r = sigv4_check(k, rq, e);

	if (r)
		return r;
	sigv4_canonical_query(rq->query, rq->nquery, &query);
	r = sigv4_compute(k, rq, query.data, false, payload, out, &names, e);
	if (r)
		goto out;
	memcpy(date, rq->amz_date, 8);
	date[8] = '\0';
	strv_push_nodup(&out->send_headers, xasprintf("X-Amz-Date: %s", rq->amz_date));
	if (k->session_token && *k->session_token)
		strv_push_nodup(&out->send_headers,
				xasprintf("X-Amz-Security-Token: %s", k->session_token));
	strv_push_nodup(&out->send_headers,
			xasprintf("Authorization: " SIGV4_ALGORITHM
				  " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
				  "Signature=%s",
				  k->access_key, date, k->region, k->service, names.data,
				  out->signature));
	buf_puts(&out->query, query.data);
out:
	buf_release(&query);
	buf_release(&names);
	return r;
}

int sigv4_presign(const struct sigv4_key *k, const struct sigv4_request *rq, long expires_s,
		  struct sigv4_signed *out, struct err *e)
{
	struct sigv4_param *q;
	struct buf query = BUF_INIT, names = BUF_INIT;
	char date[9], expires[24], *credential = NULL;
	size_t n = 0;
	int r = sigv4_check(k, rq, e);

	if (r)
		return r;
	if (expires_s < 1 || expires_s > SIGV4_MAX_EXPIRES)
		return err_set(e, ERR_USAGE,
			       "a presigned URL lasts from 1 second to 7 days (604800 s), not %ld s",
			       expires_s);
	/* SignedHeaders goes into the query, so work it out first. */
	{
		struct buf scratch = BUF_INIT;

		r = sigv4_headers(k, rq, true, &scratch, &names, e);
		buf_release(&scratch);
		if (r)
			goto out;
	}
	memcpy(date, rq->amz_date, 8);
	date[8] = '\0';
	credential = xasprintf("%s/%s/%s/%s/aws4_request", k->access_key, date, k->region,
			       k->service);
	snprintf(expires, sizeof(expires), "%ld", expires_s);
	q = xcalloc(rq->nquery + 6, sizeof(*q));
	for (size_t i = 0; i < rq->nquery; i++)
		q[n++] = rq->query[i];
	q[n++] = (struct sigv4_param){ "X-Amz-Algorithm", SIGV4_ALGORITHM };
	q[n++] = (struct sigv4_param){ "X-Amz-Credential", credential };
	q[n++] = (struct sigv4_param){ "X-Amz-Date", rq->amz_date };
	q[n++] = (struct sigv4_param){ "X-Amz-Expires", expires };
	if (k->session_token && *k->session_token)
		q[n++] = (struct sigv4_param){ "X-Amz-Security-Token", k->session_token };
	q[n++] = (struct sigv4_param){ "X-Amz-SignedHeaders", names.data };
	sigv4_canonical_query(q, n, &query);
	free(q);
	buf_reset(&names);
	r = sigv4_compute(k, rq, query.data, true, SIGV4_UNSIGNED_PAYLOAD, out, &names, e);
	if (r)
		goto out;
	buf_printf(&out->query, "%s&X-Amz-Signature=%s", query.data, out->signature);
	/* A presigned URL is a credential for as long as it is valid: no log
	 * line shows it. (The header form's Authorization is masked by the
	 * HTTP trace itself.) */
	log_register_secret(out->signature);
out:
	free(credential);
	buf_release(&query);
	buf_release(&names);
	return r;
}
