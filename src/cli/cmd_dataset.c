/* `ferry dataset ...`: dispatch, and `check`. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/json_util.h"
#include "dataset/dataset.h"

const char cmd_dataset_usage[] =
	"usage: ferry dataset check DIR [options]\n"
	"       ferry dataset fix DIR (-o OUT | --in-place) [options]\n"
	"       ferry dataset pack DIR [-o FILE] [--force] [--json]\n"
	"       ferry dataset unpack ARCHIVE DIR [--json]\n"
	"\n"
	"A dataset is a folder of images (.jpg .jpeg .png .webp, any case; subfolders\n"
	"are walked; dot-files, __MACOSX/ and ._* are skipped), optional same-stem .txt\n"
	"captions and an optional dataset_info.json.\n"
	"\n"
	"check: decode every image and apply every rule; exit 0 when ready, 1 when not,\n"
	"2 on a usage or I/O error.\n"
	"  --min-images N     fewest images (default 10)\n"
	"  --max-images N     most images (default 1000)\n"
	"  --trigger WORD     trigger word every caption should contain\n"
	"  --resolution PX    training resolution (default 1024)\n"
	"  --json             print one JSON object\n"
	"\n"
	"Run `ferry dataset fix --help`, `ferry dataset pack --help` and\n"
	"`ferry dataset unpack --help` for the other subcommands.\n";

int cmd_dataset(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "check", cmd_dataset_check, NULL, NULL },
		{ "fix", cmd_dataset_fix, NULL, NULL },
		{ "pack", cmd_dataset_pack, NULL, NULL },
		{ "unpack", cmd_dataset_unpack, NULL, NULL },
	};

	return cli_dispatch(cli, "dataset", subs, sizeof(subs) / sizeof(subs[0]), cmd_dataset_usage, argc, argv);
}

int cmd_dataset_check(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "min-images", required_argument, NULL, 'm' },
		{ "max-images", required_argument, NULL, 'M' },
		{ "trigger", required_argument, NULL, 't' },
		{ "resolution", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_flag_setting flag_keys[] = {
		{ 'm', "dataset.min_images" }, { 'M', "dataset.max_images" },
		{ 't', "dataset.trigger" }, { 'r', "dataset.resolution" },
	};
	struct ds_check_opts o;
	struct ds_dataset *ds = NULL;
	struct err e = { 0 };
	bool json = false;
	int c, status;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		status = cli_flag_setting(cli, flag_keys, sizeof(flag_keys) / sizeof(flag_keys[0]),
					  c, optarg);
		if (status > 0)
			return status;
		if (status == 0)
			continue;
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(cmd_dataset_usage, stdout); return EXIT_OK;
		default: return cli_usage("dataset check", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("dataset check", "expected one dataset folder");

	ds_check_opts_from_config(&o, cli->cfg);
	if (ds_open(&ds, argv[optind], &e) || ds_check(ds, &o, &e)) {
		ds_free(ds);
		/* Only I/O or usage problems stop a check: exit 2 for both. */
		cli_fail(&e);
		return EXIT_USAGE;
	}
	if (json) {
		json_t *report = ds_report_json(ds);
		json_print(stdout, report, 1);
		json_decref(report);
	} else {
		ds_report_print(ds, stdout);
	}
	status = ds->ready ? EXIT_OK : EXIT_FAILED;
	ds_free(ds);
	return status;
}
