/* MD5 through OpenSSL EVP, for what S3 asks of it (Content-MD5 and
 * ETags), never for anything that must resist an attacker. */
#ifndef FERRY_MD5_H
#define FERRY_MD5_H

#include <stddef.h>

#define MD5_LEN 16
#define MD5_HEX_LEN 32
#define MD5_BASE64_LEN 24

struct md5 {
	void *ctx; /* EVP_MD_CTX */
};

void md5_init(struct md5 *h);
void md5_update(struct md5 *h, const void *data, size_t len);
/* Writes the 16-byte digest and releases the context. */
void md5_final(struct md5 *h, unsigned char out[MD5_LEN]);
/* The digest as 32 lowercase hex digits, and as base64 (Content-MD5). */
void md5_to_hex(const unsigned char md[MD5_LEN], char hex[MD5_HEX_LEN + 1]);
void md5_to_base64(const unsigned char md[MD5_LEN], char b64[MD5_BASE64_LEN + 1]);

#endif
