/* `ferry store put|get|ls|rm|presign` and `ferry publish`: the artifact
 * store (docs/store.md). */
#include "cli/cli.h"
#include "cli/bar.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "recipe/outputs.h"
#include "store/publish.h"
#include "store/sigv4.h"
#include "store/store.h"

const char cmd_store_usage[] =
	"usage: ferry store put FILE KEY       [options]\n"
	"       ferry store get KEY FILE       [options]\n"
	"       ferry store ls [PREFIX]        [options]\n"
	"       ferry store rm KEY             [options]\n"
	"       ferry store presign KEY [--put] [--expires S] [options]\n"
	"\n"
	"The artifact store: a local folder (dir, the default: store.dir, else\n"
	"$XDG_STATE_HOME/ferry/artifacts) or Cloudflare R2 / any S3 service (s3:\n"
	"R2_ACCOUNT_ID and R2_* keys, or AWS_ENDPOINT_URL and AWS_* keys). docs/store.md.\n"
	"\n"
	"  put      upload FILE as KEY; a large file goes up in parts and resumes\n"
	"           where an interrupted run stopped; an object with the same size\n"
	"           and SHA-256 is not sent again\n"
	"  get      download KEY to FILE, verified against its SHA-256\n"
	"  ls       list keys (under PREFIX): size, time, key\n"
	"  rm       remove KEY\n"
	"  presign  print a presigned GET (or --put) URL for KEY, valid --expires S\n"
	"           seconds (default s3.presign_expires, at most 604800: 7 days)\n"
	"\n"
	"Options:\n"
	"  --store dir|s3     which store (default store.kind, FERRY_STORE)\n"
	"  --bucket B         the s3 store's bucket (else FERRY_S3_BUCKET, R2_BUCKET_NAME)\n"
	"  --json             print JSON\n";

const char cmd_publish_usage[] =
	"usage: ferry publish DIR --prefix P [--with-optimizer] [--store dir|s3] [--bucket B]\n"
	"                     [--json]\n"
	"\n"
	"Upload a job's artifacts (every file under DIR) to the store as P/PATH, then\n"
	"P/result.json last: per file its key, size, SHA-256 and URL (R2_PUBLIC_URL/KEY\n"
	"when set, else a presigned GET valid s3.presign_expires seconds). Never\n"
	"published: config.yaml (the trainer's expanded config holds secrets), env\n"
	"files (.env, env, *.env), partial files (*.part), ferry's marks (.ferry-*) and\n"
	"optimizer.pt unless --with-optimizer. Files already there with the same\n"
	"SHA-256 are not sent again, so a failed publish is simply run again.\n"
	"\n"
	"Options:\n"
	"  --prefix P         where the files go (such as jobs/JOB)\n"
	"  --with-optimizer   publish optimizer.pt too\n"
	"  --store dir|s3     which store (default store.kind)\n"
	"  --bucket B         the s3 store's bucket\n"
	"  --json             print result.json\n";

struct store_args {
	const char *store, *bucket, *prefix;
	bool json, put, with_optimizer;
	unsigned long long expires;
};

enum { SO_STORE = 500, SO_BUCKET, SO_JSON, SO_PUT, SO_EXPIRES, SO_PREFIX, SO_OPTIMIZER };

/* Parse the options; -1 to go on, else the exit status to return. */
static int store_getopt(int argc, char **argv, const char *name, const char *usage,
			struct store_args *a)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, SO_STORE },
		{ "bucket", required_argument, NULL, SO_BUCKET },
		{ "json", no_argument, NULL, SO_JSON },
		{ "put", no_argument, NULL, SO_PUT },
		{ "expires", required_argument, NULL, SO_EXPIRES },
		{ "prefix", required_argument, NULL, SO_PREFIX },
		{ "with-optimizer", no_argument, NULL, SO_OPTIMIZER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case SO_STORE: a->store = optarg; break;
		case SO_BUCKET: a->bucket = optarg; break;
		case SO_JSON: a->json = true; break;
		case SO_PUT: a->put = true; break;
		case SO_EXPIRES:
			if (cli_uint("--expires", optarg, &a->expires))
				return EXIT_USAGE;
			if (!a->expires || a->expires > SIGV4_MAX_EXPIRES)
				return cli_usage(name, "--expires is 1 to 604800 seconds (7 days)");
			break;
		case SO_PREFIX: a->prefix = optarg; break;
		case SO_OPTIMIZER: a->with_optimizer = true; break;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		default: return cli_usage(name, "unknown option");
		}
	}
	if (a->store && strcmp(a->store, "dir") && strcmp(a->store, "s3"))
		return cli_usage(name, "--store is dir or s3, not '%s'", a->store);
	return -1;
}

static int store_open_args(struct cli *cli, const struct store_args *a, struct store **s,
			   struct err *e)
{
	return store_open(s, cli->cfg, a->store, a->bucket, e);
}

static int store_finish(int rc, struct err *e, struct store *s)
{
	int status = rc ? cli_fail(e) : EXIT_OK;

	store_close(s);
	return status;
}

static int cmd_store_put(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct store_put_result res;
	struct cli_bar bar;
	struct store *s = NULL;
	struct err e = { 0 };
	int rc = store_getopt(argc, argv, "store put", cmd_store_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind != 2)
		return cli_usage("store put", "give FILE and KEY");
	cli_bar_init(&bar, NULL);
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = store_put(s, argv[optind], argv[optind + 1], &bar.pg, &res, &e);
	cli_bar_end(&bar);
	if (!rc && a.json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:b, s:i, s:i, s:I}",
				      "key", argv[optind + 1], "store", store_kind_name(s),
				      "location", store_location(s), "size", (json_int_t)res.size,
				      "sha256", res.sha256, "skipped", res.skipped,
				      "multipart", res.multipart, "resumed", res.resumed,
				      "parts", (int)res.parts, "parts_sent", (int)res.parts_sent,
				      "part_size", (json_int_t)res.part_size);

		json_print(stdout, j, 1);
		json_decref(j);
	} else if (!rc && res.skipped) {
		printf("%s: already there with the same SHA-256; not sent again\n", argv[optind + 1]);
	} else if (!rc) {
		printf("put %s (%llu bytes, sha256 %s)", argv[optind + 1],
		       (unsigned long long)res.size, res.sha256);
		if (res.multipart)
			printf(" in %u parts of %llu MiB, %u sent by this run%s", res.parts,
			       (unsigned long long)(res.part_size >> 20), res.parts_sent,
			       res.resumed ? " (resumed)" : "");
		putchar('\n');
	}
	return store_finish(rc, &e, s);
}

static int cmd_store_get(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct cli_bar bar;
	struct store *s = NULL;
	struct err e = { 0 };
	uint64_t size = 0;
	int rc = store_getopt(argc, argv, "store get", cmd_store_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind != 2)
		return cli_usage("store get", "give KEY and FILE");
	cli_bar_init(&bar, NULL);
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = store_get(s, argv[optind], argv[optind + 1], &bar.pg, &size, &e);
	cli_bar_end(&bar);
	if (!rc && a.json) {
		json_t *j = json_pack("{s:s, s:s, s:I}", "key", argv[optind], "file",
				      argv[optind + 1], "size", (json_int_t)size);

		json_print(stdout, j, 1);
		json_decref(j);
	} else if (!rc) {
		printf("got %s (%llu bytes, verified)\n", argv[optind], (unsigned long long)size);
	}
	return store_finish(rc, &e, s);
}

static int cmd_store_ls(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct s3_entry *v = NULL;
	struct store *s = NULL;
	struct err e = { 0 };
	size_t n = 0;
	int rc = store_getopt(argc, argv, "store ls", cmd_store_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind > 1)
		return cli_usage("store ls", "give at most one PREFIX");
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = store_list(s, argc > optind ? argv[optind] : "", &v, &n, &e);
	if (!rc && a.json) {
		json_t *arr = json_array(), *j;

		for (size_t i = 0; i < n; i++) {
			struct buf k = BUF_INIT;

			/* A key from the server may not be UTF-8: escaped, it is. */
			str_escape(v[i].key, &k);
			json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s}", "key", k.data,
							     "size", (json_int_t)v[i].size,
							     "last_modified", v[i].last_modified,
							     "etag", v[i].etag));
			buf_release(&k);
		}
		j = json_pack("{s:s, s:s, s:o}", "store", store_kind_name(s), "location",
			      store_location(s), "objects", arr);
		json_print(stdout, j, 1);
		json_decref(j);
	} else if (!rc) {
		for (size_t i = 0; i < n; i++) {
			struct buf k = BUF_INIT, t = BUF_INIT;

			str_escape(v[i].key, &k);
			str_escape(v[i].last_modified, &t);
			printf("%12llu  %-24s  %s\n", (unsigned long long)v[i].size, t.data, k.data);
			buf_release(&k);
			buf_release(&t);
		}
	}
	s3_entries_free(v, n);
	return store_finish(rc, &e, s);
}

static int cmd_store_rm(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct store *s = NULL;
	struct err e = { 0 };
	int rc = store_getopt(argc, argv, "store rm", cmd_store_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind != 1)
		return cli_usage("store rm", "give one KEY");
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = store_remove(s, argv[optind], &e);
	if (!rc && a.json) {
		json_t *j = json_pack("{s:s, s:b}", "key", argv[optind], "removed", 1);

		json_print(stdout, j, 1);
		json_decref(j);
	} else if (!rc) {
		printf("removed %s\n", argv[optind]);
	}
	return store_finish(rc, &e, s);
}

static int cmd_store_presign(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct store *s = NULL;
	struct err e = { 0 };
	char *url = NULL;
	int rc = store_getopt(argc, argv, "store presign", cmd_store_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind != 1)
		return cli_usage("store presign", "give one KEY");
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = store_presign(s, argv[optind], a.put, (long)a.expires, &url, &e);
	/* The URL is this command's output; it is a secret everywhere else,
	 * so it goes out with plain stdio, not the logger. */
	if (!rc && a.json) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "key", argv[optind], "method",
				      a.put ? "PUT" : "GET", "url", url);
		char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(text);
		free(text);
		json_decref(j);
	} else if (!rc) {
		puts(url);
	}
	if (url)
		freezero(url, strlen(url));
	return store_finish(rc, &e, s);
}

int cmd_store(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "put", cmd_store_put, NULL, NULL },
		{ "get", cmd_store_get, NULL, NULL },
		{ "ls", cmd_store_ls, NULL, NULL },
		{ "rm", cmd_store_rm, NULL, NULL },
		{ "presign", cmd_store_presign, NULL, NULL },
	};

	return cli_dispatch(cli, "store", subs, sizeof(subs) / sizeof(subs[0]), cmd_store_usage, argc, argv);
}

struct publish_view {
	struct cli_bar bar;
	struct buf name;   /* the file's name, escaped: names may hold anything */
	bool quiet;
};

static void publish_on_file(void *arg, const char *rel, const struct store_put_result *res)
{
	struct publish_view *v = arg;

	buf_reset(&v->name);
	str_escape(rel, &v->name);
	cli_bar_restart(&v->bar, v->name.data);
	if (!res)
		return;
	cli_bar_end(&v->bar);
	if (!v->quiet)
		printf("%s %s (%llu bytes)\n", res->skipped ? "already there" : "published",
		       v->name.data, (unsigned long long)res->size);
}

int cmd_publish(struct cli *cli, int argc, char **argv)
{
	struct store_args a = { 0 };
	struct publish_view view = { .name = BUF_INIT };
	struct publish_opts po = { 0 };
	struct store *s = NULL;
	struct err e = { 0 };
	json_t *result = NULL;
	int rc = store_getopt(argc, argv, "publish", cmd_publish_usage, &a);

	if (rc != -1)
		return rc;
	if (argc - optind != 1)
		return cli_usage("publish", "give one DIR");
	if (!a.prefix)
		return cli_usage("publish", "give --prefix P (such as jobs/JOB)");
	view.quiet = a.json;
	cli_bar_init(&view.bar, NULL);
	po = (struct publish_opts){ .dir = argv[optind], .prefix = a.prefix,
				    .with_optimizer = a.with_optimizer, .pg = &view.bar.pg,
				    .private_file = recipe_output_private,
				    .on_file = publish_on_file, .arg = &view };
	rc = store_open_args(cli, &a, &s, &e);
	if (!rc)
		rc = publish_dir(s, &po, &result, &e);
	cli_bar_end(&view.bar);
	if (!rc && a.json) {
		/* Presigned URLs are this command's output: plain stdio. */
		char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(text);
		free(text);
	} else if (!rc) {
		size_t skipped = json_array_size(json_object_get(result, "skipped"));

		printf("wrote %s/%s: %zu files", json_string_value(json_object_get(result, "prefix")),
		       PUBLISH_RESULT, json_array_size(json_object_get(result, "files")));
		if (skipped)
			printf(", %zu never published (see its \"skipped\")", skipped);
		putchar('\n');
	}
	json_decref(result);
	buf_release(&view.name);
	return store_finish(rc, &e, s);
}
