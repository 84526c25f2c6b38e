/* `ferry config`: every effective setting, where it came from, secrets masked. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

const char cmd_config_usage[] =
	"usage: ferry config [--json] [KEY]\n"
	"\n"
	"Print every setting with its effective value and where it came from\n"
	"(flag, env VAR, file PATH:LINE, or default). Secrets print as ****.\n"
	"With KEY, print only that setting's value (secrets still masked).\n"
	"\n"
	"Precedence: --set flags, then environment, then the settings file\n"
	"($XDG_CONFIG_HOME/ferry/config, 'key = value' lines), then defaults.\n";

int cmd_config(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(cmd_config_usage, stdout); return EXIT_OK;
		default: return cli_usage("config", "unknown option");
		}
	}
	if (optind < argc) {
		const char *key = argv[optind];

		for (size_t i = 0; i < config_table_len; i++) {
			const char *v;

			if (strcmp(config_table[i].key, key))
				continue;
			v = config_get(cli->cfg, key);
			if (v && config_table[i].type == CONFIG_SECRET)
				v = "****";
			log_fprintf(stdout, "%s\n", v ? v : "");
			return v ? EXIT_OK : EXIT_FAILED;
		}
		return cli_usage("config", "unknown setting '%s'", key);
	}
	config_print(cli->cfg, stdout, json);
	return EXIT_OK;
}
