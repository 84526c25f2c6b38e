/* Run a program without a shell: argv as given, optional stdin, captured
 * stdout/stderr, a timeout that kills the whole process group. */
#ifndef FERRY_PROC_H
#define FERRY_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "clock.h"
#include "err.h"

struct proc_opts {
	const void *input;      /* bytes for stdin, or NULL for /dev/null */
	size_t input_len;
	int timeout_ms;         /* <= 0: no limit */
	size_t max_output;      /* cap per stream; 0: 16 MiB */
	char *const *envp;      /* NULL: inherit */
	int in_fd;              /* with use_in_fd: the child's stdin (input is ignored) */
	bool use_in_fd;
	int out_fd;             /* with use_out_fd: the child's stdout (`out` stays empty) */
	bool use_out_fd;
	/* Called about every tick_ms while the child runs (progress bars). */
	void (*tick)(void *arg);
	void *tick_arg;
	int tick_ms;
	struct cancel *cancel;  /* set: the process group is killed, ERR_CANCELLED */
	bool *cut;              /* set true when output past max_output was dropped */
};

/* Runs argv[0] (looked up in PATH). `out` and `errout` may be NULL to discard.
 * On return *status is the exit code, or 128+signal when killed.
 * Returns ERR_TIMEOUT when the limit was hit, ERR_CANCELLED when the cancel
 * token was set (the process group is killed either way), ERR_IO when it
 * could not run or could not be waited for. Output past the cap is
 * dropped with a warning and *cut set. */
int proc_run(const char *const argv[], const struct proc_opts *opts,
	     struct buf *out, struct buf *errout, int *status, struct err *e);

#endif
