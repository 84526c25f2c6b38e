/* `ferry keys` and `ferry whoami`: the SSH key instances are reached with,
 * and the account the API key belongs to. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_util.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "vast/client.h"
#include "vast/keys.h"
#include "vast/model.h"

const char cmd_keys_usage[] =
	"usage: ferry keys init\n"
	"       ferry keys list [--json]\n"
	"       ferry keys add [PRIVATE_KEY_PATH]\n"
	"       ferry keys attach INSTANCE_ID [PRIVATE_KEY_PATH]\n"
	"\n"
	"ferry reaches instances with the key at ssh.key_path (VASTAI_SSH_KEY_PATH;\n"
	"default $XDG_CONFIG_HOME/ferry/ssh/id_ed25519); its .pub half is what Vast\n"
	"gets.\n"
	"  init     make an ed25519 pair there with ssh-keygen (never overwrites)\n"
	"  list     the keys registered on the account; `*` marks ferry's\n"
	"  add      register the public key on the account (done by `ferry rent` too)\n"
	"  attach   add the public key to a running instance's authorized keys\n";

const char cmd_whoami_usage[] =
	"usage: ferry whoami [--json]\n"
	"\n"
	"Show the account the Vast.ai API key belongs to, its balance and credit, and\n"
	"whether ferry's SSH key is registered. Exit 3 when the key is missing or\n"
	"refused.\n";

/* The public key at `path` (NULL: the configured one). */
static int keys_pub(struct cli *cli, const char *path, char **pub, struct err *e)
{
	return vast_pubkey_read(path ? path : config_get(cli->cfg, "ssh.key_path"), pub, e);
}

static int keys_list(struct cli *cli, struct vast_client *c, bool json, struct err *e)
{
	struct vast_ssh_key *keys = NULL;
	char *pub = NULL;
	size_t n = 0;
	int r;

	r = vast_ssh_keys(c, &keys, &n, e);
	if (r)
		return r;
	if (keys_pub(cli, NULL, &pub, &(struct err){ 0 }))
		pub = NULL;
	if (json) {
		json_t *list = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(list, json_pack("{s:I, s:s, s:b}", "id",
							      (json_int_t)keys[i].id, "key",
							      keys[i].key, "ferry",
							      vast_ssh_key_same(keys[i].key, pub)));
		json_print(stdout, list, 1);
		json_decref(list);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%c %-10lld %.100s\n", vast_ssh_key_same(keys[i].key, pub) ? '*' : ' ',
			       keys[i].id, keys[i].key);
		if (!n)
			fprintf(stderr, "ferry: no SSH keys on the account\n");
	}
	vast_ssh_keys_free(keys, n);
	free(pub);
	return 0;
}

int cmd_keys(struct cli *cli, int argc, char **argv)
{
	struct vast_client *c = NULL;
	const char *sub = argc > 1 ? argv[1] : NULL;
	bool json = argc > 2 && !strcmp(argv[argc - 1], "--json");
	char *pub = NULL;
	struct err e = { 0 };
	int r = 0, status = EXIT_OK;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		fputs(cmd_keys_usage, sub ? stdout : stderr);
		return sub ? EXIT_OK : EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++)
		if (argv[i][0] == '-' && !(json && i == argc - 1 && !strcmp(sub, "list")))
			return cli_usage("keys", "%s takes no option '%s'", sub, argv[i]);
	if (!strcmp(sub, "init")) {
		const char *path = config_get(cli->cfg, "ssh.key_path");

		if (argc != 2)
			return cli_usage("keys", "init takes no arguments (set ssh.key_path to "
					 "choose where)");
		r = vast_keygen(path, &e);
		if (!r)
			printf("made %s and %s.pub\n", path, path);
	} else if (!strcmp(sub, "list")) {
		if (argc > 2 + json)
			return cli_usage("keys", "list takes only --json");
		r = vast_client_from_config(&c, cli->cfg, true, &e);
		if (!r)
			r = keys_list(cli, c, json, &e);
	} else if (!strcmp(sub, "add")) {
		bool added = false;
		long long id = 0;

		if (argc > 3)
			return cli_usage("keys", "add takes at most a key path");
		r = keys_pub(cli, argc > 2 ? argv[2] : NULL, &pub, &e);
		if (!r)
			r = vast_client_from_config(&c, cli->cfg, true, &e);
		if (!r)
			r = vast_ssh_key_register(c, pub, &id, &added, &e);
		if (!r && id)
			printf("%s (key %lld)\n", added ? "registered" : "already registered", id);
		else if (!r)
			printf("%s\n", added ? "registered" : "already registered");
	} else if (!strcmp(sub, "attach")) {
		unsigned long long id;

		if (argc < 3 || argc > 4)
			return cli_usage("keys", "attach takes INSTANCE_ID [KEY_PATH]");
		if (cli_uint("INSTANCE_ID", argv[2], &id))
			return EXIT_USAGE;
		r = keys_pub(cli, argc > 3 ? argv[3] : NULL, &pub, &e);
		if (!r)
			r = vast_client_from_config(&c, cli->cfg, true, &e);
		if (!r)
			r = vast_attach_key(c, (long long)id, pub, &e);
		if (!r)
			printf("attached to instance %llu\n", id);
	} else {
		return cli_usage("keys", "unknown subcommand '%s'", sub);
	}
	if (r)
		status = cli_fail(&e);
	vast_client_free(c);
	free(pub);
	return status;
}

int cmd_whoami(struct cli *cli, int argc, char **argv)
{
	struct vast_client *c = NULL;
	struct vast_user u = { 0 };
	struct vast_ssh_key *keys = NULL;
	size_t n = 0;
	char *pub = NULL;
	bool json = false, registered = false, keys_failed = false;
	struct err e = { 0 };
	int status = EXIT_OK;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(cmd_whoami_usage, stdout);
			return EXIT_OK;
		} else
			return cli_usage("whoami", "unexpected argument '%s'", argv[i]);
	}
	if (vast_client_from_config(&c, cli->cfg, true, &e) || vast_current_user(c, &u, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (!keys_pub(cli, NULL, &pub, &(struct err){ 0 })) {
		if (vast_ssh_keys(c, &keys, &n, &e))
			keys_failed = true;
		for (size_t i = 0; i < n; i++)
			registered = registered || vast_ssh_key_same(keys[i].key, pub);
	}
	if (json) {
		json_t *o = json_pack("{s:I, s:s?, s:s?, s:f, s:f, s:b, s:b, s:b, s:o}", "id",
				      (json_int_t)u.id, "username", u.username, "email", u.email,
				      "balance", u.balance, "credit", u.credit, "has_billing",
				      u.has_billing, "can_pay", u.can_pay, "key_valid", 1,
				      "ssh_key_registered",
				      keys_failed || !pub ? json_null() : json_boolean(registered));

		json_print(stdout, o, 1);
		json_decref(o);
		goto out;
	}
	printf("account   %s%s%s (id %lld)\n", u.username ? u.username : "?",
	       u.email ? ", " : "", u.email ? u.email : "", u.id);
	printf("balance   $%.2f\n", u.balance);
	printf("credit    $%.2f\n", u.credit);
	printf("billing   %s\n", u.has_billing ? (u.can_pay ? "set up" : "set up, cannot pay")
				      : "none");
	printf("api key   valid\n");
	if (keys_failed)
		log_fprintf(stdout, "ssh key   unknown (listing the account's keys failed: %s)\n",
			    e.msg);
	else
		printf("ssh key   %s\n", !pub ? "none (run `ferry keys init`)"
					   : registered ? "registered"
							: "not registered (`ferry keys add`)");
out:
	vast_ssh_keys_free(keys, n);
	vast_user_release(&u);
	vast_client_free(c);
	free(pub);
	return status;
}
