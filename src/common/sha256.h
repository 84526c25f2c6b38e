/* SHA-256 through OpenSSL EVP (uses SHA-NI where the CPU has it). */
#ifndef FERRY_SHA256_H
#define FERRY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SHA256_HEX_LEN 64

struct sha256 {
	void *ctx; /* EVP_MD_CTX */
};

void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* Writes 64 lowercase hex digits and a NUL to hex, and releases the context. */
void sha256_final(struct sha256 *h, char hex[SHA256_HEX_LEN + 1]);
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);
/* Hash a whole file; *size gets its length if size is not NULL. */
int sha256_file(const char *path, char hex[SHA256_HEX_LEN + 1], uint64_t *size, struct err *e);
/* sha256_file, remembered under cache_dir/sha256/ by the file's device,
 * inode, size, mtime and ctime (as git's index does), so that an unchanged
 * file is not read again. A file changed in the 50 ms before it was hashed,
 * or while it was, is not remembered. cache_dir NULL: no memory. */
int sha256_file_cached(const char *path, const char *cache_dir, char hex[SHA256_HEX_LEN + 1],
		       uint64_t *size, struct err *e);
/* Whether s is 64 lowercase hex digits. */
int sha256_is_hex(const char *s);

#endif
