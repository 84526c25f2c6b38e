/* The user's SSH key pair: where it lives, reading its public half, and
 * making one with ssh-keygen. */
#ifndef FERRY_VAST_KEYS_H
#define FERRY_VAST_KEYS_H

#include "common/err.h"

/* Read `private_path`.pub: one "type base64 [comment]" line. ERR_CONFIG
 * when it does not exist (saying how to make one), ERR_FORMAT when it is
 * not a public key (a private key given by mistake is named as such). */
int vast_pubkey_read(const char *private_path, char **pub, struct err *e);
/* Make an ed25519 pair at `private_path` (mode 0600, folder 0700) with
 * ssh-keygen and no passphrase. ERR_EXISTS when either file exists. */
int vast_keygen(const char *private_path, struct err *e);

struct vast_client;

/* What vast_key_reattach needs: the instance and the key pair whose public
 * half to attach again (none owned). */
struct vast_key_reattach {
	struct vast_client *client;
	long long instance;
	const char *key_path;    /* the private key; its .pub is attached */
};

/* Attach the public key to the instance again (a remote_wait_opts.reattach
 * callback: `arg` is a struct vast_key_reattach). */
int vast_key_reattach(void *arg, struct err *e);

#endif
