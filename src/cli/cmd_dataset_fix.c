/* `ferry dataset fix`: write a repaired copy of a dataset (or repair it in
 * place), report every action, then check the result. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json_util.h"
#include "common/log.h"
#include "dataset/captioner.h"
#include "dataset/fix.h"

static const char cmd_dataset_fix_usage[] =
	"usage: ferry dataset fix DIR -o OUT [options]\n"
	"       ferry dataset fix DIR --in-place [options]\n"
	"       ferry dataset fix DIR --dry-run [options]\n"
	"\n"
	"Write a repaired copy of DIR to OUT (which must not exist or be empty); DIR is\n"
	"never touched. Images get their EXIF orientation applied, transparency\n"
	"flattened onto white, 8-bit sRGB colour, and are shrunk to --max-side; exact\n"
	"duplicates and undecodable files are dropped; names that lie about the\n"
	"format are corrected. Captions become UTF-8 with tidy whitespace, get the\n"
	"trigger word, and missing ones are filled from --default-caption or a\n"
	"caption provider. Every action is reported; then OUT is checked.\n"
	"\n"
	"  -o, --output OUT        write the result here (built as OUT.tmp-PID, then renamed)\n"
	"  --in-place              fix DIR itself; replaced and dropped originals are moved\n"
	"                          to DIR/.ferry-removed/<time>/, nothing is deleted\n"
	"  --dry-run               report what would be done; write nothing\n"
	"  --max-side PX           longest side to keep (default 2048; dataset.max_side)\n"
	"  --trigger WORD          trigger word (dataset.trigger; default: dataset_info.json)\n"
	"  --default-caption TEXT  caption for images that have none\n"
	"  --caption-cmd 'PROG ARGS'  run PROG ARGS IMAGE for each image without a caption;\n"
	"                          its output is the caption (caption.cmd; no shell, and\n"
	"                          none of ferry's secret variables in its environment)\n"
	"  --caption-url URL       ask an OpenAI-compatible chat-completions endpoint\n"
	"                          (caption.url; key from FERRY_CAPTION_API_KEY or\n"
	"                          OPENAI_API_KEY, model from caption.model; shown\n"
	"                          without user:password@ or ?query; a key over plain\n"
	"                          http:// to another machine draws a warning)\n"
	"  --caption-model NAME    model for --caption-url (caption.model)\n"
	"  --min-images N          fewest images the result needs (default 10)\n"
	"  --max-images N          most images (default 1000)\n"
	"  --resolution PX         training resolution (default 1024)\n"
	"  --json                  print one JSON object\n"
	"\n"
	"Exit status: 0 the result is ready, 1 it is not (or some file or caption\n"
	"could not be fixed), 2 usage or I/O error.\n"
	"See docs/dataset-fix.md.\n";

/* Print through the logger's redaction: a server may echo anything back. */
static void fix_emit(const struct fix_result *res, bool json)
{
	struct buf b = BUF_INIT;

	if (json) {
		json_t *doc = fix_result_json(res);

		json_to_buf(doc, 1, &b);
		json_decref(doc);
	} else {
		char *text = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&text, &len);

		if (m) {
			fix_result_print(res, m);
			fclose(m);
			buf_add(&b, text, len);
		}
		free(text);
	}
	log_redact(&b);
	fputs(b.data, stdout);
	buf_release(&b);
}

int cmd_dataset_fix(struct cli *cli, int argc, char **argv)
{
	enum { O_INPLACE = 256, O_DRY, O_MAXSIDE, O_TRIGGER, O_DEFCAP, O_CAPCMD, O_CAPURL,
	       O_CAPMODEL, O_MIN, O_MAX, O_RES, O_JSON };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "in-place", no_argument, NULL, O_INPLACE },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "max-side", required_argument, NULL, O_MAXSIDE },
		{ "trigger", required_argument, NULL, O_TRIGGER },
		{ "default-caption", required_argument, NULL, O_DEFCAP },
		{ "caption-cmd", required_argument, NULL, O_CAPCMD },
		{ "caption-url", required_argument, NULL, O_CAPURL },
		{ "caption-model", required_argument, NULL, O_CAPMODEL },
		{ "min-images", required_argument, NULL, O_MIN },
		{ "max-images", required_argument, NULL, O_MAX },
		{ "resolution", required_argument, NULL, O_RES },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_flag_setting flag_keys[] = {
		{ O_MAXSIDE, "dataset.max_side" }, { O_TRIGGER, "dataset.trigger" },
		{ O_CAPCMD, "caption.cmd" }, { O_CAPURL, "caption.url" },
		{ O_CAPMODEL, "caption.model" }, { O_MIN, "dataset.min_images" },
		{ O_MAX, "dataset.max_images" }, { O_RES, "dataset.resolution" },
	};
	struct fix_opts o;
	struct fix_result res = { 0 };
	struct captioner_opts co;
	struct err e = { 0 };
	bool json = false, cap_cmd_flag = false, cap_url_flag = false;
	int c, status, r;

	memset(&o, 0, sizeof(o));
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		status = cli_flag_setting(cli, flag_keys, sizeof(flag_keys) / sizeof(flag_keys[0]),
					  c, optarg);
		if (status > 0)
			return status;
		if (c == O_CAPCMD)
			cap_cmd_flag = true;
		if (c == O_CAPURL)
			cap_url_flag = true;
		if (status == 0)
			continue;
		switch (c) {
		case 'o': o.out = optarg; break;
		case O_INPLACE: o.in_place = true; break;
		case O_DRY: o.dry_run = true; break;
		case O_DEFCAP: o.default_caption = optarg; break;
		case O_JSON: json = true; break;
		case 'h': fputs(cmd_dataset_fix_usage, stdout); return EXIT_OK;
		default: return cli_usage("dataset fix", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("dataset fix", "expected one dataset folder");
	if (o.out && o.in_place)
		return cli_usage("dataset fix", "give either -o OUT or --in-place, not both");
	if (!o.out && !o.in_place && !o.dry_run)
		return cli_usage("dataset fix", "give -o OUT (a new folder) or --in-place");
	if (cap_cmd_flag && cap_url_flag)
		return cli_usage("dataset fix", "give either --caption-cmd or --caption-url, not both");
	if (o.default_caption && strspn(o.default_caption, " \t\r\n") == strlen(o.default_caption))
		return cli_usage("dataset fix", "--default-caption is empty");
	if (config_int(cli->cfg, "dataset.max_side") < 1)
		return cli_usage("dataset fix", "--max-side must be at least 1");

	ds_check_opts_from_config(&o.check, cli->cfg);
	r = captioner_opts_from_config(&co, cli->cfg, &e);
	if (r && r != ERR_NOTFOUND)
		return cli_fail(&e);
	if (!r && (r = captioner_new(&o.captioner, &co, &e)))
		return cli_fail(&e);
	err_clear(&e);

	r = fix_run(argv[optind], &o, &res, &e);
	if (r) {
		if (res.nactions)
			fix_emit(&res, json);
		cli_fail(&e);
		/* Usage and I/O problems alike: exit 2, as check does. */
		status = EXIT_USAGE;
		goto out;
	}
	fix_emit(&res, json);
	status = res.ready && !res.failures ? EXIT_OK : EXIT_FAILED;
out:
	fix_result_release(&res);
	captioner_free(o.captioner);
	return status;
}
