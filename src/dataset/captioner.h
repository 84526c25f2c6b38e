/* Caption providers: something that looks at one image and writes a caption.
 * Two kinds, as earlier tools used them:
 *   command  a program run once per image, no shell, with the image path as
 *            its last argument; its stdout is the caption. Its environment
 *            is ferry's minus every variable that holds a secret setting.
 *   url      an OpenAI-compatible chat-completions endpoint; the image goes
 *            as a base64 data URL in a vision message, the key as a bearer
 *            token (never in argv, never logged). The URL is shown and
 *            logged without its userinfo and query, whose credentials are
 *            registered as secrets; a key sent over plain http:// to
 *            another machine draws a warning.
 * A captioner is thread-safe: many workers may call captioner_caption at
 * once; it lets `parallel` of them through at a time. */
#ifndef FERRY_DATASET_CAPTIONER_H
#define FERRY_DATASET_CAPTIONER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "config/config.h"

struct captioner;

struct captioner_opts {
	const char *cmd;     /* program and arguments (split like a shell would,
				nothing expanded); the image path is appended */
	const char *url;     /* endpoint; "/chat/completions" is appended when
				missing */
	const char *model;   /* url: model name */
	const char *prompt;  /* url: instruction sent with the image */
	const char *api_key; /* url: bearer key, or NULL for none */
	int timeout_s;       /* one caption (connect + transfer); 0: 120 */
	int max_tries;       /* url: attempts on 429, 5xx, connection errors; 0: 3 */
	int backoff_ms;      /* url: wait before the second try, doubled after;
				0: 1000. A Retry-After header wins (up to 60 s). */
	int parallel;        /* captions at once; 0: 1 for a command, 4 for a url */
};

/* Fill `o` from the caption.* settings. When both caption.cmd and
 * caption.url are set, the one from the stronger source (flag > environment
 * > file) wins; a tie is ERR_USAGE. Returns ERR_NOTFOUND when neither is
 * set (o->cmd and o->url are then NULL). The strings stay owned by `c`. */
int captioner_opts_from_config(struct captioner_opts *o, const struct config *c, struct err *e);
/* Check the options (command splits into words, URL is http or https) and
 * make a captioner. Registers the key with the logger as a secret. */
int captioner_new(struct captioner **out, const struct captioner_opts *o, struct err *e);
void captioner_free(struct captioner *c);
/* For people: "command 'blip-caption'" or "url http://host/v1/chat/completions"
 * (the URL as http_url_shown gives it). */
const char *captioner_describe(const struct captioner *c);
/* Caption the image at `path` (a JPEG, PNG or WebP file). On success
 * *caption is a non-empty, trimmed UTF-8 string the caller frees. On failure
 * the message says why (exit status and the program's first stderr line,
 * or the HTTP status and the server's error message). */
int captioner_caption(struct captioner *c, const char *path, char **caption, struct err *e);

/* Building blocks, exposed for tests. */
/* Standard base64 (RFC 4648, with padding) of `len` bytes. */
char *captioner_base64(const void *data, size_t len);
/* `url` with "/chat/completions" appended to its path (before any query)
 * unless the path ends with it already. */
char *captioner_endpoint(const char *url);
/* The chat-completions request body for one image. */
json_t *captioner_request(const char *model, const char *prompt, const char *mime,
			  const void *image, size_t len);
/* Read a chat-completions reply: choices[0].message.content as a string or
 * as an array of {"type":"text","text":...} parts. A non-2xx `status` or an
 * {"error":{"message":...}} body becomes ERR_HTTP with both in the message. */
int captioner_parse_reply(long status, const char *body, size_t len, char **caption,
			  struct err *e);

#endif
