#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	/* Fetch once: EVP_MD_fetch per call costs more than hashing a caption. */
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md)
		abort();
}

void sha256_init(struct sha256 *h)
{
	pthread_once(&sha256_once, sha256_fetch);
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, sha256_md, NULL))
		abort();
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, data, len);
}

void sha256_final(struct sha256 *h, char hex[SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1])
{
	struct sha256 h;

	sha256_init(&h);
	sha256_update(&h, data, len);
	sha256_final(&h, hex);
}

int sha256_file(const char *path, char hex[SHA256_HEX_LEN + 1], uint64_t *size, struct err *e)
{
	size_t bufsz = 1u << 20;
	char *chunk;
	uint64_t total = 0;
	struct sha256 h;
	int fd, r = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot open %s", path);
	chunk = xmalloc(bufsz);
	sha256_init(&h);
	while ((n = read(fd, chunk, bufsz)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = err_sys(e, ERR_IO, "cannot read %s", path);
			break;
		}
		sha256_update(&h, chunk, (size_t)n);
		total += (uint64_t)n;
	}
	sha256_final(&h, hex);
	free(chunk);
	close(fd);
	if (size)
		*size = total;
	return r;
}

int sha256_is_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == SHA256_HEX_LEN;
}
