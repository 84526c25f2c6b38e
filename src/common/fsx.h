/* File-system helpers: atomic writes, mkdir -p, whole-file reads, safe
 * relative paths. */
#ifndef FERRY_FSX_H
#define FERRY_FSX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* Create a directory and its parents; an existing directory is fine. */
int fsx_mkdir_p(const char *path, mode_t mode, struct err *e);
/* Write to a temporary file beside `path`, fsync, then rename over it. */
int fsx_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);
/* Append the whole file to `out`; fails with ERR_LIMIT past max bytes (0: 256 MiB). */
int fsx_read_file(const char *path, struct buf *out, size_t max, struct err *e);
/* Open a regular file for reading without blocking on a FIFO or device that
 * took its place (ERR_FORMAT for anything but a regular file); fills *fd
 * (-1 on failure) and *st. */
int fsx_open_regular(const char *path, int *fd, struct stat *st, struct err *e);
/* Append everything readable from fd; `path` names it in errors. */
int fsx_read_fd(int fd, const char *path, struct buf *out, size_t max, struct err *e);
/* Create a new temporary file beside `path` (O_EXCL, never through a link):
 * *fd is its descriptor (-1 on failure) and *tmp its name (caller frees). */
int fsx_create_temp(const char *path, mode_t mode, int *fd, char **tmp, struct err *e);
/* Copy a regular file atomically (temp + rename), keeping nothing but bytes. */
int fsx_copy_file(const char *src, const char *dst, mode_t mode, struct err *e);
/* "a" + "/" + "b", without doubling the slash. */
char *fsx_join(const char *a, const char *b);
/* Whether `rel` is a relative path with no empty, "." or ".." component. */
bool fsx_relpath_safe(const char *rel);
/* Remove a file or a whole tree; a missing path is fine. */
int fsx_remove_tree(const char *path, struct err *e);
/* Create the parent directory of `path`. */
int fsx_mkdir_parent(const char *path, mode_t mode, struct err *e);
/* Write all of `len` bytes, retrying short writes and EINTR. */
/* Take an exclusive lock on `path` (created 0600, parents made), without
 * waiting: ERR_EXISTS when another process holds it. *fd keeps it until
 * closed. */
int fsx_lock(const char *path, int *fd, struct err *e);
/* Bytes in the regular files under `path` (links not followed). */
int fsx_tree_bytes(const char *path, unsigned long long *bytes, struct err *e);
int fsx_write_all(int fd, const void *data, size_t len);

#endif
