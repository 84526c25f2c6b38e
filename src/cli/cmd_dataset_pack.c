/* `ferry dataset pack` and `ferry dataset unpack`. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/bar.h"
#include "common/json_util.h"
#include "dataset/dataset.h"
#include "dataset/pack.h"

static const char pack_usage[] =
	"usage: ferry dataset pack DIR [-o FILE] [--force] [--json]\n"
	"\n"
	"Check the dataset (reusing what earlier checks learned about unchanged files)\n"
	"and pack the files check accepts (images, captions, dataset_info.json) into a\n"
	"deterministic tar: manifest.json first, then SHA256SUMS, then the files in path\n"
	"order, with fixed times, owners and modes. The same content always gives the\n"
	"same bytes and SHA-256. Archives are kept in $XDG_CACHE_HOME/ferry/datasets/\n"
	"(the cache_dir setting) as <sha256>.tar; packing an unchanged dataset again\n"
	"reuses the archive.\n"
	"\n"
	"  -o, --output FILE  also put the archive at FILE (a hard link when possible)\n"
	"  --force            pack a dataset the check finds errors in: only its usable\n"
	"                     files go in, and manifest.json records the errors\n"
	"  --json             print {\"archive\",\"sha256\",\"bytes\",\"files\",\"reused\"}\n"
	"\n"
	"Exit status: 0 packed, 1 refused (errors found, a file changed while packing),\n"
	"2 usage or I/O problem.\n";

static const char unpack_usage[] =
	"usage: ferry dataset unpack ARCHIVE DIR [--json]\n"
	"\n"
	"Extract an archive made by `ferry dataset pack` into DIR (created; an existing\n"
	"DIR must be empty), checking every entry against manifest.json: only regular\n"
	"files with safe relative paths that the manifest lists, each once, with the\n"
	"listed size and SHA-256, none missing, and SHA256SUMS agreeing. Links,\n"
	"devices, absolute paths and '..' are refused. Files are written to a temporary\n"
	"folder beside DIR and moved into place at the end, so a refused archive leaves\n"
	"nothing behind. manifest.json and SHA256SUMS are checked, not extracted.\n"
	"\n"
	"  --json             print {\"dir\",\"sha256\",\"bytes\",\"files\"}\n"
	"\n"
	"Exit status: 0 unpacked, 1 refused (the archive is damaged, altered or unsafe,\n"
	"or DIR is not empty), 2 usage or I/O problem.\n";

/* Usage and I/O problems exit 2 here, as they do for `check`. */
static int pack_fail(const struct err *e)
{
	int status = cli_fail(e);

	return e->code == ERR_IO ? EXIT_USAGE : status;
}

int cmd_dataset_pack(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ds_pack_opts po;
	struct ds_pack_result res = { 0 };
	struct ds_dataset *ds = NULL;
	struct cli_bar bar;
	struct err e = { 0 };
	bool json = false;
	int c, r, status;

	ds_pack_opts_from_config(&po, cli->cfg);
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': po.out_path = optarg; break;
		case 'f': po.force = true; break;
		case 'j': json = true; break;
		case 'h': fputs(pack_usage, stdout); return EXIT_OK;
		default: return cli_usage("dataset pack", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("dataset pack", "expected one dataset folder");
	if (po.out_path && !*po.out_path)
		return cli_usage("dataset pack", "-o wants a file name");

	cli_bar_init(&bar, NULL);
	po.pg = &bar.pg;
	r = ds_check_and_pack(cli->cfg, argv[optind], &po, &ds, &res, &e);
	cli_bar_end(&bar);
	if (!ds) {
		/* The check itself could not run: exit 2, as `check` does. */
		cli_fail(&e);
		return EXIT_USAGE;
	}
	if (!ds->ready) {
		ds_report_errors(ds, stderr);
		if (po.force)
			fprintf(stderr, "ferry: --force: packing only the usable files\n");
	}
	if (r) {
		status = pack_fail(&e);
		if (!ds->ready && !po.force && r == ERR_FAIL)
			fprintf(stderr, "ferry: --force packs only the usable files\n");
		goto out;
	}
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:b}",
				      "archive", po.out_path ? po.out_path : res.archive,
				      "sha256", res.sha256, "bytes", (json_int_t)res.bytes,
				      "files", (json_int_t)res.files, "reused", res.reused);
		json_print(stdout, j, 1);
		json_decref(j);
	} else {
		printf("archive  %s\nsha256   %s\nbytes    %llu\nfiles    %zu\n",
		       po.out_path ? po.out_path : res.archive, res.sha256,
		       (unsigned long long)res.bytes, res.files);
		if (res.reused)
			printf("reused cached archive\n");
	}
	status = EXIT_OK;
out:
	ds_pack_result_release(&res);
	ds_free(ds);
	return status;
}

int cmd_dataset_unpack(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ds_unpack_result res;
	struct err e = { 0 };
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(unpack_usage, stdout); return EXIT_OK;
		default: return cli_usage("dataset unpack", "unknown option");
		}
	}
	if (optind + 2 != argc)
		return cli_usage("dataset unpack", "expected an archive and a folder");
	if (ds_unpack(argv[optind], argv[optind + 1], &res, &e))
		return pack_fail(&e);
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "dir", argv[optind + 1],
				      "sha256", res.sha256, "bytes", (json_int_t)res.file_bytes,
				      "files", (json_int_t)res.files);
		json_print(stdout, j, 1);
		json_decref(j);
	} else {
		printf("unpacked %zu files (%llu bytes) into %s\nsha256   %s (archive)\n",
		       res.files, (unsigned long long)res.file_bytes, argv[optind + 1],
		       res.sha256);
	}
	return EXIT_OK;
}
