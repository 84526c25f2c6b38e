#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "fsx.h"
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

/* "size mtime ctime" of a file, the key an entry must match. */
static void sha256_stamp(const struct stat *st, char *out, size_t len)
{
	snprintf(out, len, "%lld %lld.%09ld %lld.%09ld", (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

int sha256_file_cached(const char *path, const char *cache_dir, char hex[SHA256_HEX_LEN + 1],
		       uint64_t *size, struct err *e)
{
	struct stat before, after;
	struct buf rec = BUF_INIT;
	char stamp[96], *entry;
	long long ctime_ns, t0;
	size_t stamp_len;
	int r;

	if (!cache_dir || stat(path, &before) < 0 || !S_ISREG(before.st_mode))
		return sha256_file(path, hex, size, e);
	entry = xasprintf("%s/sha256/%llx-%llx", cache_dir, (unsigned long long)before.st_dev,
			  (unsigned long long)before.st_ino);
	sha256_stamp(&before, stamp, sizeof(stamp));
	stamp_len = strlen(stamp);
	/* An entry is "STAMP HEX\n". */
	if (!fsx_read_file(entry, &rec, 256, NULL) && rec.len == stamp_len + 1 + SHA256_HEX_LEN + 1 &&
	    !strncmp(rec.data, stamp, stamp_len) && rec.data[stamp_len] == ' ') {
		memcpy(hex, rec.data + stamp_len + 1, SHA256_HEX_LEN);
		hex[SHA256_HEX_LEN] = '\0';
		if (sha256_is_hex(hex)) {
			if (size)
				*size = (uint64_t)before.st_size;
			r = 0;
			goto out;
		}
	}
	t0 = clock_wall_ns();
	r = sha256_file(path, hex, size, e);
	ctime_ns = (long long)before.st_ctim.tv_sec * 1000000000LL + before.st_ctim.tv_nsec;
	if (!r && !stat(path, &after) && after.st_ino == before.st_ino &&
	    after.st_dev == before.st_dev && ctime_ns + 50000000LL < t0) {
		char after_stamp[96];

		sha256_stamp(&after, after_stamp, sizeof(after_stamp));
		if (!strcmp(after_stamp, stamp)) {
			char *dir = xasprintf("%s/sha256", cache_dir);
			char *line = xasprintf("%s %s\n", stamp, hex);

			/* A cache: failing to remember only costs a hash later. */
			if (!fsx_mkdir_p(dir, 0700, NULL))
				fsx_write_atomic(entry, line, strlen(line), 0600, NULL);
			free(line);
			free(dir);
		}
	}
out:
	buf_release(&rec);
	free(entry);
	return r;
}
