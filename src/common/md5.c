#include "md5.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

static EVP_MD *md5_md;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void md5_fetch(void)
{
	md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!md5_md)
		abort();
}

void md5_init(struct md5 *h)
{
	pthread_once(&md5_once, md5_fetch);
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, md5_md, NULL))
		abort();
}

void md5_update(struct md5 *h, const void *data, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, data, len);
}

void md5_final(struct md5 *h, unsigned char out[MD5_LEN])
{
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, out, &n);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void md5_to_hex(const unsigned char md[MD5_LEN], char hex[MD5_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < MD5_LEN; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[MD5_HEX_LEN] = '\0';
}

void md5_to_base64(const unsigned char md[MD5_LEN], char b64[MD5_BASE64_LEN + 1])
{
	EVP_EncodeBlock((unsigned char *)b64, md, MD5_LEN);
}
