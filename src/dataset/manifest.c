#include "dataset/manifest.h"

#include <stdlib.h>
#include <string.h>

#include "common/fsx.h"
#include "common/json_util.h"
#include "common/str.h"
#include "common/xalloc.h"

/* Longest finding code and the most image pixels per side we believe. */
#define MF_CODE_MAX 64
#define MF_SIDE_MAX (1u << 30)

static const char *const mf_top_keys[] = {
	"check", "files", "format", "totals", "version", NULL
};
static const char *const mf_file_keys[] = {
	"format", "height", "path", "role", "sha256", "size", "width", NULL
};
static const char *const mf_totals_keys[] = {
	"bytes", "captions", "files", "images", NULL
};
static const char *const mf_check_keys[] = {
	"captioned", "errors", "findings", "images", "ready", "warnings", NULL
};

const char *ds_manifest_role_name(enum ds_role role)
{
	switch (role) {
	case DS_ROLE_IMAGE: return "image";
	case DS_ROLE_CAPTION: return "caption";
	case DS_ROLE_INFO: return "info";
	default: return "other";
	}
}

/* ---- building ---- */

int ds_manifest_build(const struct ds_dataset *ds, struct buf *out, struct err *e)
{
	json_t *root = json_object(), *files = json_array(), *findings = json_object();
	json_t *totals, *check;
	size_t nfiles = 0, images = 0, captions = 0;
	uint64_t bytes = 0;
	int r = 0;

	for (size_t i = 0; i < ds->nfiles; i++) {
		const struct ds_file *f = &ds->files[i];
		json_t *obj;

		if (!f->usable || f->role == DS_ROLE_OTHER)
			continue;
		if (!sha256_is_hex(f->sha256)) {
			r = err_set(e, ERR_FAIL, "%s: no SHA-256 recorded; check the dataset before packing",
				    f->rel);
			goto out;
		}
		if (!fsx_relpath_safe(f->rel) || str_has_ctrl(f->rel) ||
		    strlen(f->rel) > DS_MANIFEST_PATH_MAX) {
			r = err_set(e, ERR_FORMAT, "%s: a path the manifest cannot carry", f->rel);
			goto out;
		}
		obj = json_pack("{s:s, s:s, s:I, s:s}", "path", f->rel,
				"role", ds_manifest_role_name(f->role),
				"size", (json_int_t)f->size, "sha256", f->sha256);
		if (f->role == DS_ROLE_IMAGE) {
			json_object_set_new(obj, "format", json_string(img_format_name(f->img.format)));
			json_object_set_new(obj, "width", json_integer(f->img.width));
			json_object_set_new(obj, "height", json_integer(f->img.height));
			images++;
		} else if (f->role == DS_ROLE_CAPTION) {
			captions++;
		}
		json_array_append_new(files, obj);
		bytes += f->size;
		nfiles++;
	}
	for (size_t i = 0; i < ds->nfindings; i++) {
		const char *code = ds->findings[i].code;
		json_t *n = json_object_get(findings, code);

		json_object_set_new(findings, code,
				    json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	totals = json_pack("{s:I, s:I, s:I, s:I}", "files", (json_int_t)nfiles,
			   "bytes", (json_int_t)bytes, "images", (json_int_t)images,
			   "captions", (json_int_t)captions);
	check = json_pack("{s:b, s:I, s:I, s:I, s:I, s:O}", "ready", ds->ready,
			  "images", (json_int_t)ds->images, "captioned", (json_int_t)ds->captioned,
			  "errors", (json_int_t)ds->errors, "warnings", (json_int_t)ds->warnings,
			  "findings", findings);
	json_object_set_new(root, "format", json_string(DS_MANIFEST_FORMAT));
	json_object_set_new(root, "version", json_integer(DS_MANIFEST_VERSION));
	json_object_set(root, "files", files);
	json_object_set_new(root, "totals", totals);
	json_object_set_new(root, "check", check);
	json_to_buf(root, 1, out);
out:
	json_decref(findings);
	json_decref(files);
	json_decref(root);
	return r;
}

/* ---- parsing ---- */

/* A short, printable rendering of untrusted text for error messages. */
static const char *mf_shown(const char *s, char shown[96])
{
	size_t i;

	for (i = 0; s[i] && i < 95; i++)
		shown[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	shown[i] = '\0';
	if (!s[i])
		return shown;
	/* Cut short: never end inside a UTF-8 sequence. */
	while (i && ((unsigned char)shown[i - 1] & 0xc0) == 0x80)
		shown[--i] = '\0';
	if (i && (unsigned char)shown[i - 1] >= 0xc0)
		shown[--i] = '\0';
	return shown;
}

static int mf_only_keys(const json_t *obj, const char *const *allowed, const char *where,
			struct err *e)
{
	const char *key;
	json_t *v;
	char shown[96];

	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(key, allowed[i]); i++)
			;
		if (!allowed[i])
			return err_set(e, ERR_FORMAT, "manifest: %s: unknown field '%s'", where,
				       mf_shown(key, shown));
	}
	return 0;
}

static int mf_object(const json_t *parent, const char *key, const char *where,
		     const char *const *allowed, json_t **out, struct err *e)
{
	json_t *v = json_object_get(parent, key);

	if (!v)
		return err_set(e, ERR_FORMAT, "manifest: %s: missing field '%s'", where, key);
	if (!json_is_object(v))
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' must be an object", where, key);
	*out = v;
	return allowed ? mf_only_keys(v, allowed, key, e) : 0;
}

static int mf_uint(const json_t *obj, const char *key, const char *where, uint64_t max,
		   uint64_t *out, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (!v)
		return err_set(e, ERR_FORMAT, "manifest: %s: missing field '%s'", where, key);
	if (!json_is_integer(v))
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' must be a whole number", where, key);
	n = json_integer_value(v);
	if (n < 0)
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' is negative (%lld)", where, key,
			       (long long)n);
	if ((uint64_t)n > max)
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' is too large (%lld)", where, key,
			       (long long)n);
	*out = (uint64_t)n;
	return 0;
}

static int mf_size(const json_t *obj, const char *key, const char *where, size_t *out,
		   struct err *e)
{
	uint64_t n;
	int r = mf_uint(obj, key, where, SIZE_MAX / 2, &n, e);

	if (!r)
		*out = (size_t)n;
	return r;
}

static int mf_string(const json_t *obj, const char *key, const char *where, const char **out,
		     struct err *e)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return err_set(e, ERR_FORMAT, "manifest: %s: missing field '%s'", where, key);
	if (!json_is_string(v))
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' must be a string", where, key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, ERR_FORMAT, "manifest: %s: '%s' holds a NUL byte", where, key);
	*out = json_string_value(v);
	return 0;
}

static bool mf_path_ok(const char *p)
{
	return strlen(p) <= DS_MANIFEST_PATH_MAX && fsx_relpath_safe(p) && !str_has_ctrl(p);
}

static enum img_format mf_format(const char *name)
{
	if (!strcmp(name, "jpeg"))
		return IMG_JPEG;
	if (!strcmp(name, "png"))
		return IMG_PNG;
	if (!strcmp(name, "webp"))
		return IMG_WEBP;
	return IMG_NONE;
}

static int mf_role(const char *name)
{
	if (!strcmp(name, "image"))
		return DS_ROLE_IMAGE;
	if (!strcmp(name, "caption"))
		return DS_ROLE_CAPTION;
	if (!strcmp(name, "info"))
		return DS_ROLE_INFO;
	return -1;
}

static int mf_parse_file(const json_t *obj, size_t idx, struct ds_manifest_file *f,
			 struct err *e)
{
	char where[160], shown[96];
	const char *path, *role, *sha, *format;
	uint64_t n;
	int r, role_id;

	snprintf(where, sizeof(where), "files[%zu]", idx);
	if (!json_is_object(obj))
		return err_set(e, ERR_FORMAT, "manifest: %s must be an object", where);
	if ((r = mf_only_keys(obj, mf_file_keys, where, e)) ||
	    (r = mf_string(obj, "path", where, &path, e)))
		return r;
	if (!mf_path_ok(path))
		return err_set(e, ERR_FORMAT,
			       "manifest: %s: path '%s' is not a safe relative path "
			       "(absolute, '.', '..', empty part, control character or too long)",
			       where, mf_shown(path, shown));
	snprintf(where, sizeof(where), "files[%zu] (%s)", idx, mf_shown(path, shown));
	if ((r = mf_string(obj, "role", where, &role, e)) ||
	    (r = mf_string(obj, "sha256", where, &sha, e)) ||
	    (r = mf_uint(obj, "size", where, INT64_MAX, &f->size, e)))
		return r;
	if (!sha256_is_hex(sha))
		return err_set(e, ERR_FORMAT,
			       "manifest: %s: sha256 must be 64 lowercase hex digits", where);
	memcpy(f->sha256, sha, SHA256_HEX_LEN + 1);
	role_id = mf_role(role);
	if (role_id < 0)
		return err_set(e, ERR_FORMAT,
			       "manifest: %s: role '%s' is not image, caption or info", where,
			       mf_shown(role, shown));
	f->role = (enum ds_role)role_id;
	if (f->role == DS_ROLE_IMAGE) {
		if ((r = mf_string(obj, "format", where, &format, e)))
			return r;
		f->format = mf_format(format);
		if (f->format == IMG_NONE)
			return err_set(e, ERR_FORMAT,
				       "manifest: %s: format '%s' is not jpeg, png or webp", where,
				       mf_shown(format, shown));
		if (f->format != img_format_from_name(path))
			return err_set(e, ERR_FORMAT,
				       "manifest: %s: format %s does not match the file name", where,
				       format);
		if ((r = mf_uint(obj, "width", where, MF_SIDE_MAX, &n, e)))
			return r;
		f->width = (unsigned)n;
		if ((r = mf_uint(obj, "height", where, MF_SIDE_MAX, &n, e)))
			return r;
		f->height = (unsigned)n;
		if (!f->width || !f->height)
			return err_set(e, ERR_FORMAT, "manifest: %s: width and height must be positive",
				       where);
	} else {
		if (json_object_get(obj, "format") || json_object_get(obj, "width") ||
		    json_object_get(obj, "height"))
			return err_set(e, ERR_FORMAT,
				       "manifest: %s: format, width and height belong to images only",
				       where);
		if (f->role == DS_ROLE_CAPTION && !str_ends_with_ci(path, ".txt"))
			return err_set(e, ERR_FORMAT, "manifest: %s: a caption must end in .txt", where);
		if (f->role == DS_ROLE_INFO && strcmp(path, DS_INFO_NAME))
			return err_set(e, ERR_FORMAT, "manifest: %s: role info belongs to %s only",
				       where, DS_INFO_NAME);
	}
	if (f->role != DS_ROLE_INFO && !strcmp(path, DS_INFO_NAME))
		return err_set(e, ERR_FORMAT, "manifest: %s: %s must have role info", where,
			       DS_INFO_NAME);
	f->path = xstrdup(path);
	return 0;
}

static bool mf_code_ok(const char *code)
{
	size_t n = strlen(code);

	if (!n || n > MF_CODE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((code[i] >= 'a' && code[i] <= 'z') || (code[i] >= '0' && code[i] <= '9') ||
		      code[i] == '_'))
			return false;
	return true;
}

static int mf_parse_check(const json_t *root, struct ds_manifest *m, struct err *e)
{
	json_t *check = NULL, *findings, *v, *ready;
	const char *code;
	size_t check_images, sum = 0;
	char shown[96];
	int r;

	if ((r = mf_object(root, "check", "top level", mf_check_keys, &check, e)))
		return r;
	ready = json_object_get(check, "ready");
	if (!ready)
		return err_set(e, ERR_FORMAT, "manifest: check: missing field 'ready'");
	if (!json_is_boolean(ready))
		return err_set(e, ERR_FORMAT, "manifest: check: 'ready' must be true or false");
	m->ready = json_is_true(ready);
	if ((r = mf_size(check, "images", "check", &check_images, e)) ||
	    (r = mf_size(check, "captioned", "check", &m->captioned, e)) ||
	    (r = mf_size(check, "errors", "check", &m->errors, e)) ||
	    (r = mf_size(check, "warnings", "check", &m->warnings, e)) ||
	    (r = mf_object(check, "findings", "check", NULL, &findings, e)))
		return r;
	json_object_foreach(findings, code, v) {
		size_t n;

		if (!mf_code_ok(code))
			return err_set(e, ERR_FORMAT,
				       "manifest: check.findings: '%s' is not a finding code",
				       mf_shown(code, shown));
		if ((r = mf_size(findings, code, "check.findings", &n, e)))
			return r;
		if (!n)
			return err_set(e, ERR_FORMAT, "manifest: check.findings: '%s' counts 0", code);
		sum += n;
	}
	if (sum != m->errors + m->warnings)
		return err_set(e, ERR_FORMAT,
			       "manifest: check: findings add up to %zu, not errors + warnings (%zu)",
			       sum, m->errors + m->warnings);
	if (m->ready != (m->errors == 0))
		return err_set(e, ERR_FORMAT, "manifest: check: 'ready' disagrees with 'errors'");
	if (check_images != m->images)
		return err_set(e, ERR_FORMAT,
			       "manifest: check: images is %zu but the manifest lists %zu images",
			       check_images, m->images);
	if (m->captioned > m->images)
		return err_set(e, ERR_FORMAT, "manifest: check: more images captioned than images");
	return 0;
}

static int mf_parse_totals(const json_t *root, const struct ds_manifest *m, struct err *e)
{
	json_t *totals = NULL;
	uint64_t bytes;
	size_t files, images, captions;
	int r;

	if ((r = mf_object(root, "totals", "top level", mf_totals_keys, &totals, e)) ||
	    (r = mf_size(totals, "files", "totals", &files, e)) ||
	    (r = mf_uint(totals, "bytes", "totals", INT64_MAX, &bytes, e)) ||
	    (r = mf_size(totals, "images", "totals", &images, e)) ||
	    (r = mf_size(totals, "captions", "totals", &captions, e)))
		return r;
	if (files != m->nfiles)
		return err_set(e, ERR_FORMAT, "manifest: totals: files is %zu but %zu are listed",
			       files, m->nfiles);
	if (bytes != m->bytes)
		return err_set(e, ERR_FORMAT,
			       "manifest: totals: bytes is %llu but the files add up to %llu",
			       (unsigned long long)bytes, (unsigned long long)m->bytes);
	if (images != m->images || captions != m->captions)
		return err_set(e, ERR_FORMAT,
			       "manifest: totals: images/captions (%zu/%zu) disagree with the files (%zu/%zu)",
			       images, captions, m->images, m->captions);
	return 0;
}

int ds_manifest_parse(const void *data, size_t len, struct ds_manifest **out, struct err *e)
{
	struct ds_manifest *m = xcalloc(1, sizeof(*m));
	json_t *root = NULL, *files;
	const char *format;
	uint64_t version;
	int r;

	*out = NULL;
	if (len > DS_MANIFEST_MAX) {
		r = err_set(e, ERR_LIMIT, "manifest: %zu bytes is more than the %u MiB allowed", len,
			    DS_MANIFEST_MAX >> 20);
		goto out;
	}
	if ((r = json_parse(data, len, DS_MANIFEST_NAME, &root, e)))
		goto out;
	if (!json_is_object(root)) {
		r = err_set(e, ERR_FORMAT, "manifest: must be a JSON object");
		goto out;
	}
	if ((r = mf_only_keys(root, mf_top_keys, "top level", e)) ||
	    (r = mf_string(root, "format", "top level", &format, e)))
		goto out;
	if (strcmp(format, DS_MANIFEST_FORMAT)) {
		r = err_set(e, ERR_FORMAT, "manifest: format is not '%s'", DS_MANIFEST_FORMAT);
		goto out;
	}
	if ((r = mf_uint(root, "version", "top level", INT64_MAX, &version, e)))
		goto out;
	if (version != DS_MANIFEST_VERSION) {
		r = err_set(e, ERR_FORMAT,
			    "manifest: version %llu is not supported (this ferry reads version %d)",
			    (unsigned long long)version, DS_MANIFEST_VERSION);
		goto out;
	}
	files = json_object_get(root, "files");
	if (!json_is_array(files)) {
		r = err_set(e, ERR_FORMAT, "manifest: 'files' must be present and a list");
		goto out;
	}
	m->files = xcalloc(json_array_size(files) + 1, sizeof(*m->files));
	for (size_t i = 0; i < json_array_size(files); i++) {
		struct ds_manifest_file *f = &m->files[i];
		char shown[96];

		if ((r = mf_parse_file(json_array_get(files, i), i, f, e)))
			goto out;
		m->nfiles++;
		if (i) {
			int c = strcmp(m->files[i - 1].path, f->path);

			if (!c) {
				r = err_set(e, ERR_FORMAT, "manifest: files[%zu]: duplicate path '%s'",
					    i, mf_shown(f->path, shown));
				goto out;
			}
			if (c > 0) {
				r = err_set(e, ERR_FORMAT,
					    "manifest: files[%zu]: '%s' is out of order (files are sorted by path)",
					    i, mf_shown(f->path, shown));
				goto out;
			}
		}
		if (f->size > INT64_MAX - m->bytes) {
			r = err_set(e, ERR_FORMAT, "manifest: file sizes add up past 2^63");
			goto out;
		}
		m->bytes += f->size;
		if (f->role == DS_ROLE_IMAGE)
			m->images++;
		else if (f->role == DS_ROLE_CAPTION)
			m->captions++;
	}
	if ((r = mf_parse_totals(root, m, e)) || (r = mf_parse_check(root, m, e)))
		goto out;
	*out = m;
	m = NULL;
out:
	json_decref(root);
	ds_manifest_free(m);
	return r;
}

void ds_manifest_free(struct ds_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	free(m->files);
	free(m);
}

int ds_manifest_find(const struct ds_manifest *m, const char *path)
{
	size_t lo = 0, hi = m->nfiles;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->files[mid].path, path);

		if (!c)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void ds_manifest_sums(const struct ds_manifest *m, struct buf *out)
{
	for (size_t i = 0; i < m->nfiles; i++) {
		const char *p = m->files[i].path;

		/* coreutils marks a line whose name has a backslash or newline with
		 * a leading backslash and escapes those characters. */
		if (!strpbrk(p, "\\\n")) {
			buf_printf(out, "%s  %s\n", m->files[i].sha256, p);
			continue;
		}
		buf_printf(out, "\\%s  ", m->files[i].sha256);
		for (; *p; p++) {
			if (*p == '\\')
				buf_puts(out, "\\\\");
			else if (*p == '\n')
				buf_puts(out, "\\n");
			else
				buf_putc(out, *p);
		}
		buf_putc(out, '\n');
	}
}
