/* ferry's settings: one table (key, type, default, environment variables,
 * help), resolved with the precedence flag > environment > file > default. */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"

enum config_type { CONFIG_STRING, CONFIG_INT, CONFIG_BOOL, CONFIG_PATH, CONFIG_SECRET };

enum config_source {
	CONFIG_SRC_DEFAULT,
	CONFIG_SRC_FILE,
	CONFIG_SRC_ENV,
	CONFIG_SRC_FLAG,
};

struct config_setting {
	const char *key;
	enum config_type type;
	const char *dflt;    /* NULL: unset */
	const char *env;     /* environment variables, ':'-separated, first set wins */
	const char *keyfile; /* a file holding the value (under $HOME), lowest env rank */
	const char *help;
};

extern const struct config_setting config_table[];
extern const size_t config_table_len;

struct config;

struct config *config_new(void);
void config_free(struct config *c);
/* Read the settings file (`path`, or $XDG_CONFIG_HOME/ferry/config when NULL;
 * a missing default file is fine) and the environment. Registers every secret
 * value with the logger. */
int config_load(struct config *c, const char *path, struct err *e);
/* Set a value from a command-line flag (or from `src`), checking its type. */
int config_set(struct config *c, const char *key, const char *value,
	       enum config_source src, struct err *e);
/* Parse "key=value" as given to --set. */
int config_set_assignment(struct config *c, const char *assignment, struct err *e);
const char *config_get(const struct config *c, const char *key);
/* A copy of the environment without the variables that carry secrets, for
 * programs ferry runs on the user's behalf (caption commands, ...). */
struct strv;
void config_env_without_secrets(struct strv *out);
long long config_int(const struct config *c, const char *key);
bool config_bool(const struct config *c, const char *key);
/* Where the effective value came from, for people: "default", "env VAST_URL",
 * "file /home/u/.config/ferry/config:3", "flag". */
const char *config_origin(const struct config *c, const char *key);
const char *config_file_path(const struct config *c);
/* Print every setting: key, value (secrets masked), origin; JSON if asked. */
void config_print(const struct config *c, FILE *f, bool json);

#endif
