#include "vast/keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/proc.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "vast/client.h"

int vast_pubkey_read(const char *private_path, char **pub, struct err *e)
{
	char *path = xasprintf("%s.pub", private_path), *line;
	struct buf b = BUF_INIT;
	int r;

	*pub = NULL;
	r = fsx_read_file(path, &b, 16384, e);
	if (r) {
		if (access(path, F_OK) && errno == ENOENT)
			r = err_set(e, ERR_CONFIG,
				    "no SSH public key at %s: run `ferry keys init`, or point "
				    "VASTAI_SSH_KEY_PATH (ssh.key_path) at your private key", path);
		goto out;
	}
	line = str_trim(b.data);
	line[strcspn(line, "\r\n")] = '\0';
	if (strstr(line, "PRIVATE KEY")) {
		r = err_set(e, ERR_FORMAT, "%s holds a private key; it must hold the public one",
			    path);
		goto out;
	}
	if (strncmp(line, "ssh-", 4) && strncmp(line, "ecdsa-", 6) &&
	    strncmp(line, "sk-", 3)) {
		r = err_set(e, ERR_FORMAT, "%s is not an SSH public key (it should start with "
			    "ssh-ed25519, ssh-rsa or ecdsa-)", path);
		goto out;
	}
	if (!strchr(line, ' ')) {
		r = err_set(e, ERR_FORMAT, "%s: the key has no body", path);
		goto out;
	}
	*pub = xstrdup(line);
out:
	buf_release(&b);
	free(path);
	return r;
}

int vast_keygen(const char *private_path, struct err *e)
{
	char *pubpath = xasprintf("%s.pub", private_path);
	char *dir = xstrdup(private_path), *slash = strrchr(dir, '/');
	const char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ferry",
			       "-f", private_path, NULL };
	struct buf errout = BUF_INIT;
	struct proc_opts po = { .timeout_ms = 30000 };
	int r, status = 0;

	if (!access(private_path, F_OK) || !access(pubpath, F_OK)) {
		r = err_set(e, ERR_EXISTS, "%s already exists; ferry never overwrites a key",
			    access(private_path, F_OK) ? pubpath : private_path);
		goto out;
	}
	if (slash && slash != dir) {
		*slash = '\0';
		r = fsx_mkdir_p(dir, 0700, e);
		if (r)
			goto out;
	}
	r = proc_run(argv, &po, NULL, &errout, &status, e);
	if (!r && status)
		r = err_set(e, ERR_FAIL, "ssh-keygen failed (exit %d): %s", status,
			    str_trim(errout.data));
	if (!r)
		chmod(private_path, 0600);
out:
	buf_release(&errout);
	free(dir);
	free(pubpath);
	return r;
}

int vast_key_reattach(void *arg, struct err *e)
{
	const struct vast_key_reattach *k = arg;
	char *pub = NULL;
	int r = vast_pubkey_read(k->key_path, &pub, e);

	if (!r)
		r = vast_attach_key(k->client, k->instance, pub, e);
	free(pub);
	return r;
}
