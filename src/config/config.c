#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <unistd.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/fsx.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"

const struct config_setting config_table[] = {
	{ "state_dir", CONFIG_PATH, NULL, "FERRY_STATE_DIR", NULL,
	  "database, logs and artifacts (default $XDG_STATE_HOME/ferry)" },
	{ "cache_dir", CONFIG_PATH, NULL, "FERRY_CACHE_DIR", NULL,
	  "packed datasets and check verdicts (default $XDG_CACHE_HOME/ferry)" },
	{ "log.level", CONFIG_STRING, "warn", "FERRY_LOG", NULL,
	  "error, warn, info, debug or trace" },
	{ "threads", CONFIG_INT, "0", "FERRY_THREADS", NULL,
	  "worker threads for image checks; 0 uses every core" },

	{ "dataset.min_images", CONFIG_INT, "10", NULL, NULL, "fewest images a dataset may have" },
	{ "dataset.max_images", CONFIG_INT, "1000", NULL, NULL, "most images a dataset may have" },
	{ "dataset.resolution", CONFIG_INT, "1024", NULL, NULL,
	  "training resolution in pixels; smaller images are reported" },
	{ "dataset.max_side", CONFIG_INT, "2048", NULL, NULL,
	  "longest side `fix` keeps; larger images are shrunk (and reported by check)" },
	{ "dataset.max_pixels", CONFIG_INT, "100000000", NULL, NULL,
	  "pixel count above which an image header is refused as a decompression bomb" },
	{ "dataset.max_file_mb", CONFIG_INT, "16", NULL, NULL,
	  "file size in MiB above which an image is reported as costly to upload" },
	{ "dataset.trigger", CONFIG_STRING, NULL, NULL, NULL,
	  "trigger word every caption should contain" },

	{ "caption.cmd", CONFIG_STRING, NULL, "FERRY_CAPTION_CMD", NULL,
	  "program (and arguments) that prints a caption for the image path it is given" },
	{ "caption.url", CONFIG_STRING, NULL, "FERRY_CAPTION_URL", NULL,
	  "OpenAI-compatible chat-completions endpoint used to caption images" },
	{ "caption.model", CONFIG_STRING, "gpt-4o-mini", "FERRY_CAPTION_MODEL", NULL,
	  "model name sent to caption.url" },
	{ "caption.prompt", CONFIG_STRING,
	  "Write one detailed sentence describing this image, for training an image model.",
	  NULL, NULL, "instruction sent with each image to caption.url" },
	{ "caption.api_key", CONFIG_SECRET, NULL, "FERRY_CAPTION_API_KEY:OPENAI_API_KEY", NULL,
	  "bearer key for caption.url" },
	{ "caption.timeout", CONFIG_INT, "120", NULL, NULL, "seconds one caption may take" },

	{ "vast.api_key", CONFIG_SECRET, NULL, "VAST_API_KEY:VASTAI_API_KEY",
	  ".config/vastai/vast_api_key", "Vast.ai API key" },
	{ "vast.url", CONFIG_STRING, "https://console.vast.ai", "VAST_URL:VASTAI_API_BASE_URL", NULL,
	  "Vast.ai API base URL" },
	{ "vast.timeout", CONFIG_INT, "60", NULL, NULL, "seconds one Vast.ai API request may take" },
	{ "vast.tries", CONFIG_INT, "5", NULL, NULL,
	  "tries per Vast.ai API call on 429, 502-504, timeouts and connection errors" },
	{ "ssh.key_path", CONFIG_PATH, NULL, "VASTAI_SSH_KEY_PATH", NULL,
	  "private key used to reach rented instances; its .pub is registered on Vast.ai "
	  "(default $XDG_CONFIG_HOME/ferry/ssh/id_ed25519, made by `ferry keys init`)" },
	{ "remote.root", CONFIG_STRING, "/root/ferry", "FERRY_REMOTE_ROOT", NULL,
	  "job root on the remote host" },
	{ "trainer.command", CONFIG_STRING, NULL, "FERRY_TRAINER_COMMAND", NULL,
	  "how the trainer is started on the target, words split on spaces, the config's path "
	  "appended (default: the recipe's, python /app/ai-toolkit/run.py)" },

	{ "trainer.env_file", CONFIG_PATH, NULL, "FERRY_TRAINER_ENV_FILE", NULL,
	  "KEY=VALUE lines added to the trainer's environment (WANDB_API_KEY, ...); values are "
	  "kept secret" },

	{ "jobs.queue", CONFIG_STRING, NULL, "FERRY_QUEUE", NULL,
	  "the job queue: a file path or sqlite:PATH (default state_dir/queue.db)" },
	{ "jobs.parallel", CONFIG_INT, "1", NULL, NULL, "jobs one worker runs at once" },
	{ "jobs.lease_s", CONFIG_INT, "60", NULL, NULL,
	  "seconds a worker's hold on a job lasts unless renewed; a dead worker's jobs pass on "
	  "after this" },

	{ "r2.account_id", CONFIG_STRING, NULL, "R2_ACCOUNT_ID", NULL, "Cloudflare account id" },
	{ "r2.access_key_id", CONFIG_STRING, NULL, "R2_ACCESS_KEY_ID", NULL, "R2 access key id" },
	{ "r2.secret_access_key", CONFIG_SECRET, NULL, "R2_SECRET_ACCESS_KEY", NULL,
	  "R2 secret access key" },
	{ "r2.bucket", CONFIG_STRING, NULL, "R2_BUCKET_NAME", NULL, "R2 bucket for artifacts" },
	{ "r2.public_url", CONFIG_STRING, NULL, "R2_PUBLIC_URL", NULL,
	  "public base URL of the R2 bucket" },
	{ "s3.endpoint", CONFIG_STRING, NULL, "AWS_ENDPOINT_URL_S3:AWS_ENDPOINT_URL", NULL,
	  "S3-compatible endpoint for other services" },
	{ "s3.region", CONFIG_STRING, "us-east-1", "AWS_REGION:AWS_DEFAULT_REGION", NULL,
	  "S3 region" },
	{ "s3.access_key_id", CONFIG_STRING, NULL, "AWS_ACCESS_KEY_ID", NULL, "S3 access key id" },
	{ "s3.secret_access_key", CONFIG_SECRET, NULL, "AWS_SECRET_ACCESS_KEY", NULL,
	  "S3 secret access key" },
	{ "s3.session_token", CONFIG_SECRET, NULL, "AWS_SESSION_TOKEN", NULL,
	  "S3 session token" },
	{ "s3.bucket", CONFIG_STRING, NULL, "FERRY_S3_BUCKET", NULL,
	  "bucket for artifacts (else r2.bucket, R2_BUCKET_NAME)" },
	{ "s3.path_style", CONFIG_BOOL, "true", NULL, NULL,
	  "address the bucket as ENDPOINT/BUCKET/KEY (R2, local servers); false: "
	  "BUCKET.HOST/KEY" },
	{ "s3.part_size_mb", CONFIG_INT, "16", NULL, NULL,
	  "smallest multipart part in MiB (at least 5); a file above 10,000 parts gets "
	  "larger ones" },
	{ "s3.multipart_mb", CONFIG_INT, "16", NULL, NULL,
	  "files larger than this many MiB go up in parts (resumable)" },
	{ "s3.parallel", CONFIG_INT, "4", NULL, NULL, "parts in flight at once, 1 to 4" },
	{ "s3.tries", CONFIG_INT, "5", NULL, NULL,
	  "tries per S3 request or part on 429, 500, 502-504, timeouts and dropped "
	  "connections" },
	{ "s3.timeout", CONFIG_INT, "60", NULL, NULL,
	  "seconds an S3 request may take; for a transfer, seconds without progress" },
	{ "s3.presign_expires", CONFIG_INT, "604800", NULL, NULL,
	  "seconds a presigned URL stays valid (1 to 604800, 7 days)" },
	{ "store.kind", CONFIG_STRING, "dir", "FERRY_STORE", NULL,
	  "where artifacts are published: dir (a local folder) or s3 (R2 or any S3)" },
	{ "store.dir", CONFIG_PATH, NULL, "FERRY_STORE_DIR", NULL,
	  "the dir store's folder (default state_dir/artifacts)" },
	{ "hf.token", CONFIG_SECRET, NULL, "HF_TOKEN", NULL,
	  "Hugging Face token, passed to the trainer for gated models" },
};
const size_t config_table_len = sizeof(config_table) / sizeof(config_table[0]);

struct config_value {
	char *value;
	char *origin;
	enum config_source src;
};

struct config {
	struct config_value *values; /* parallel to config_table */
	char *file;
};

static int config_index(const char *key)
{
	for (size_t i = 0; i < config_table_len; i++)
		if (!strcmp(config_table[i].key, key))
			return (int)i;
	return -1;
}

/* A URL setting may carry a password ("https://user:pass@host/"): mask it
 * wherever the value is printed or logged. */
static void config_register_url_password(const char *value)
{
	const char *start = strstr(value, "://"), *at, *colon;
	char *pass;

	if (!start)
		return;
	start += 3;
	at = strchr(start, '@');
	if (!at || memchr(start, '/', (size_t)(at - start)))
		return;
	colon = memchr(start, ':', (size_t)(at - start));
	if (!colon)
		return;
	pass = xstrndup(colon + 1, (size_t)(at - colon - 1));
	log_register_secret(pass);
	freezero(pass, strlen(pass));
}

static void config_store(struct config *c, size_t i, const char *value,
			 enum config_source src, char *origin)
{
	struct config_value *v = &c->values[i];

	if (v->value)
		freezero(v->value, strlen(v->value));
	free(v->origin);
	v->value = value ? xstrdup(value) : NULL;
	v->origin = origin;
	v->src = src;
	if (value && config_table[i].type == CONFIG_SECRET)
		log_register_secret(value);
	else if (value)
		config_register_url_password(value);
}

/* $HOME, or the password database's idea of it: never a shared /tmp. */
static const char *config_home(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home && *home == '/')
		return home;
	pw = getpwuid(getuid());
	return pw && pw->pw_dir ? pw->pw_dir : "/";
}

static char *xdg_dir(const char *var, const char *fallback)
{
	const char *x = getenv(var);

	if (x && *x == '/')
		return xasprintf("%s/ferry", x);
	return xasprintf("%s/%s/ferry", config_home(), fallback);
}

struct config *config_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->values = xcalloc(config_table_len, sizeof(*c->values));
	for (size_t i = 0; i < config_table_len; i++) {
		const struct config_setting *s = &config_table[i];
		char *dflt = NULL;

		if (!strcmp(s->key, "state_dir"))
			dflt = xdg_dir("XDG_STATE_HOME", ".local/state");
		else if (!strcmp(s->key, "cache_dir"))
			dflt = xdg_dir("XDG_CACHE_HOME", ".cache");
		else if (!strcmp(s->key, "ssh.key_path")) {
			char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");

			dflt = xasprintf("%s/ssh/id_ed25519", dir);
			free(dir);
		}
		config_store(c, i, dflt ? dflt : s->dflt, CONFIG_SRC_DEFAULT, xstrdup("default"));
		free(dflt);
	}
	return c;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < config_table_len; i++) {
		if (c->values[i].value)
			freezero(c->values[i].value, strlen(c->values[i].value));
		free(c->values[i].origin);
	}
	free(c->values);
	free(c->file);
	free(c);
}

static int config_check_type(const struct config_setting *s, const char *value,
			     const char *where, struct err *e)
{
	unsigned long long n;

	if (s->type == CONFIG_INT && str_to_u64(value, &n))
		return err_set(e, ERR_CONFIG, "%s: %s must be a non-negative whole number, not '%s'",
			       where, s->key, value);
	if (s->type == CONFIG_BOOL && strcasecmp(value, "true") && strcasecmp(value, "false") &&
	    strcmp(value, "1") && strcmp(value, "0") && strcasecmp(value, "yes") &&
	    strcasecmp(value, "no"))
		return err_set(e, ERR_CONFIG, "%s: %s must be true or false, not '%s'",
			       where, s->key, value);
	return 0;
}

int config_set(struct config *c, const char *key, const char *value,
	       enum config_source src, struct err *e)
{
	static const char *names[] = { "default", "file", "env", "flag" };
	int i = config_index(key);
	int r;

	if (i < 0)
		return err_set(e, ERR_USAGE, "unknown setting '%s' (see `ferry config`)", key);
	/* A secret in argv is visible to every user of the machine. */
	if (src == CONFIG_SRC_FLAG && config_table[i].type == CONFIG_SECRET)
		return err_set(e, ERR_USAGE,
			       "%s is a secret and is not taken from the command line, where "
			       "any user can read it; set %s or put it in the settings file",
			       key, config_table[i].env ? config_table[i].env : "it");
	r = config_check_type(&config_table[i], value, names[src], e);
	if (r && src == CONFIG_SRC_FLAG && e)
		e->code = r = ERR_USAGE; /* a bad flag is a usage error */
	if (r)
		return r;
	config_store(c, (size_t)i, value, src, xstrdup(names[src]));
	return 0;
}

int config_set_assignment(struct config *c, const char *assignment, struct err *e)
{
	const char *eq = strchr(assignment, '=');
	char *key;
	int r;

	if (!eq || eq == assignment)
		return err_set(e, ERR_USAGE, "a setting is given as KEY=VALUE, not '%s'", assignment);
	key = xstrndup(assignment, (size_t)(eq - assignment));
	r = config_set(c, key, eq + 1, CONFIG_SRC_FLAG, e);
	free(key);
	return r;
}

static int config_read_file(struct config *c, const char *path, bool must_exist, struct err *e)
{
	struct buf text = BUF_INIT;
	char *line, *save = NULL;
	int r, lineno = 0;
	struct err re = { 0 };

	r = fsx_read_file(path, &text, 1u << 20, &re);
	if (r) {
		if (!must_exist && re.sys_errno == ENOENT)
			r = 0;
		else
			r = err_set(e, ERR_CONFIG, "settings file: %s", re.msg);
		goto out;
	}
	for (line = text.data; line; line = save) {
		char *nl = strchr(line, '\n'), *eq, *key, *val;
		int i;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		str_trim(line);
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			r = err_set(e, ERR_CONFIG, "%s:%d: expected 'key = value'", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = str_trim(line);
		val = str_trim(eq + 1);
		if (strlen(val) >= 2 && (val[0] == '"' || val[0] == '\'') &&
		    val[strlen(val) - 1] == val[0]) {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		i = config_index(key);
		if (i < 0) {
			r = err_set(e, ERR_CONFIG, "%s:%d: unknown setting '%s'", path, lineno, key);
			goto out;
		}
		{
			char *where = xasprintf("%s:%d", path, lineno);
			r = config_check_type(&config_table[i], val, where, e);
			free(where);
			if (r)
				goto out;
		}
		config_store(c, (size_t)i, val, CONFIG_SRC_FILE, xasprintf("file %s:%d", path, lineno));
	}
out:
	explicit_bzero(text.data, text.len);
	buf_release(&text);
	return r;
}

static void config_read_env(struct config *c)
{
	const char *home = config_home();

	for (size_t i = 0; i < config_table_len; i++) {
		const struct config_setting *s = &config_table[i];
		bool found = false;

		if (s->env) {
			char *names = xstrdup(s->env), *save = NULL;

			for (char *n = strtok_r(names, ":", &save); n && !found;
			     n = strtok_r(NULL, ":", &save)) {
				const char *v = getenv(n);
				if (v && *v) {
					config_store(c, i, v, CONFIG_SRC_ENV, xasprintf("env %s", n));
					found = true;
				}
			}
			free(names);
		}
		/* A key file (like the vastai CLI's) only fills what nothing else set. */
		if (!found && s->keyfile && home && c->values[i].src == CONFIG_SRC_DEFAULT &&
		    !c->values[i].value) {
			char *path = xasprintf("%s/%s", home, s->keyfile);
			struct buf v = BUF_INIT;

			if (!fsx_read_file(path, &v, 4096, NULL) && *str_trim(v.data))
				config_store(c, i, v.data, CONFIG_SRC_ENV, xasprintf("file %s", path));
			explicit_bzero(v.data, v.len);
			buf_release(&v);
			free(path);
		}
	}
}

int config_load(struct config *c, const char *path, struct err *e)
{
	int r;

	free(c->file);
	if (path) {
		c->file = xstrdup(path);
	} else {
		const char *x = getenv("XDG_CONFIG_HOME");

		if (x && *x == '/')
			c->file = xasprintf("%s/ferry/config", x);
		else
			c->file = xasprintf("%s/.config/ferry/config", config_home());
	}
	r = config_read_file(c, c->file, path != NULL, e);
	if (r)
		return r;
	config_read_env(c);
	return 0;
}

void config_env_without_secrets(struct strv *out)
{
	extern char **environ;

	for (char **v = environ; v && *v; v++) {
		const char *eq = strchr(*v, '=');
		bool secret = false;

		for (size_t i = 0; eq && i < config_table_len && !secret; i++) {
			const char *names = config_table[i].env;
			size_t n = (size_t)(eq - *v);

			if (config_table[i].type != CONFIG_SECRET || !names)
				continue;
			/* match the name against each ':'-separated entry */
			for (const char *p = names; *p;) {
				const char *end = strchr(p, ':');
				size_t len = end ? (size_t)(end - p) : strlen(p);

				if (len == n && !strncmp(p, *v, n))
					secret = true;
				p += len + (end ? 1 : 0);
			}
		}
		if (!secret)
			strv_push(out, *v);
	}
}

const char *config_get(const struct config *c, const char *key)
{
	int i = config_index(key);

	if (i < 0) {
		log_error("internal: unknown setting %s", key);
		abort();
	}
	return c->values[i].value;
}

long long config_int(const struct config *c, const char *key)
{
	const char *v = config_get(c, key);

	return v ? strtoll(v, NULL, 10) : 0;
}

bool config_bool(const struct config *c, const char *key)
{
	const char *v = config_get(c, key);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

const char *config_origin(const struct config *c, const char *key)
{
	int i = config_index(key);

	return i < 0 ? NULL : c->values[i].origin;
}

const char *config_file_path(const struct config *c)
{
	return c->file;
}

static const char *config_shown(const struct config *c, size_t i)
{
	if (!c->values[i].value)
		return NULL;
	return config_table[i].type == CONFIG_SECRET ? "****" : c->values[i].value;
}

void config_print(const struct config *c, FILE *f, bool json)
{
	if (json) {
		json_t *root = json_object(), *arr = json_array();

		for (size_t i = 0; i < config_table_len; i++) {
			const char *shown = config_shown(c, i);
			json_array_append_new(arr, json_pack("{s:s, s:o, s:s, s:b, s:s}",
				"key", config_table[i].key,
				"value", shown ? json_string(shown) : json_null(),
				"origin", c->values[i].origin,
				"secret", config_table[i].type == CONFIG_SECRET,
				"help", config_table[i].help));
		}
		struct buf out = BUF_INIT;

		json_object_set_new(root, "file", json_string(c->file));
		json_object_set_new(root, "settings", arr);
		json_to_buf(root, 1, &out);
		log_redact(&out);
		fputs(out.data, f);
		buf_release(&out);
		json_decref(root);
		return;
	}
	fprintf(f, "# settings file: %s\n", c->file);
	for (size_t i = 0; i < config_table_len; i++) {
		const char *shown = config_shown(c, i);
		log_fprintf(f, "%-24s %-40s (%s)\n", config_table[i].key, shown ? shown : "-",
			    c->values[i].origin);
	}
}
