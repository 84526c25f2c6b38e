#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

extern char **environ;

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
}

int proc_run(const char *const argv[], const struct proc_opts *opts,
	     struct buf *out, struct buf *errout, int *status, struct err *e)
{
	static const struct proc_opts defaults;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	size_t cap, written = 0;
	long long deadline = 0;
	int r = 0, wstatus = 0;
	bool timed_out = false, cancelled = false, cut = false;
	const char *failed = NULL; /* a system call that failed while waiting */
	int failed_errno = 0;
	pid_t pid;

	if (!opts)
		opts = &defaults;
	cap = opts->max_output ? opts->max_output : 16u << 20;
	if ((!opts->use_in_fd && pipe2(pin, O_CLOEXEC)) ||
	    (!opts->use_out_fd && pipe2(pout, O_CLOEXEC)) || pipe2(perr, O_CLOEXEC)) {
		r = err_sys(e, ERR_IO, "cannot create pipes for %s", argv[0]);
		goto out_pipes;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, opts->use_in_fd ? opts->in_fd : pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, opts->use_out_fd ? opts->out_fd : pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	posix_spawnattr_init(&attr);
	/* Own process group, so a timeout can kill everything it started. */
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv,
			 opts->envp ? opts->envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r) {
		errno = r;
		r = err_sys(e, ERR_IO, "cannot run %s", argv[0]);
		if (status)
			*status = 127;
		goto out_pipes;
	}
	close_pair((int[2]){ pin[0], pout[1] });
	pin[0] = pout[1] = -1;
	close(perr[1]); perr[1] = -1;
	if (pin[1] >= 0 && (!opts->input || !opts->input_len)) {
		close(pin[1]);
		pin[1] = -1;
	} else if (pin[1] >= 0) {
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	}
	if (opts->timeout_ms > 0)
		deadline = clock_mono_ms() + opts->timeout_ms;

	while (pout[0] >= 0 || perr[0] >= 0 || pin[1] >= 0) {
		struct pollfd pf[3];
		int nf = 0, wait_ms = -1;

		if (pout[0] >= 0)
			pf[nf++] = (struct pollfd){ .fd = pout[0], .events = POLLIN };
		if (perr[0] >= 0)
			pf[nf++] = (struct pollfd){ .fd = perr[0], .events = POLLIN };
		if (pin[1] >= 0)
			pf[nf++] = (struct pollfd){ .fd = pin[1], .events = POLLOUT };
		if (deadline) {
			long long left = deadline - clock_mono_ms();
			if (left <= 0) {
				timed_out = true;
				break;
			}
			wait_ms = (int)left;
		}
		if (opts->tick && (wait_ms < 0 || wait_ms > opts->tick_ms))
			wait_ms = opts->tick_ms > 0 ? opts->tick_ms : 200;
		if (opts->cancel && (wait_ms < 0 || wait_ms > CLOCK_CANCEL_POLL_MS))
			wait_ms = CLOCK_CANCEL_POLL_MS;
		if (cancel_is_set(opts->cancel)) {
			cancelled = true;
			break;
		}
		if (poll(pf, (nfds_t)nf, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			failed = "poll";
			failed_errno = errno;
			break;
		}
		if (opts->tick)
			opts->tick(opts->tick_arg);
		for (int i = 0; i < nf; i++) {
			if (!pf[i].revents)
				continue;
			if (pf[i].fd == pin[1]) {
				ssize_t n = write(pin[1], (const char *)opts->input + written,
						  opts->input_len - written);
				if (n > 0)
					written += (size_t)n;
				if (n < 0 && errno == EAGAIN)
					continue;
				if (n <= 0 || written == opts->input_len) {
					close(pin[1]);
					pin[1] = -1;
				}
			} else {
				char chunk[65536];
				bool is_out = pf[i].fd == pout[0];
				struct buf *dst = is_out ? out : errout;
				ssize_t n = read(pf[i].fd, chunk, sizeof(chunk));

				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					close(pf[i].fd);
					*(is_out ? &pout[0] : &perr[0]) = -1;
				} else if (dst && dst->len + (size_t)n <= cap) {
					buf_add(dst, chunk, (size_t)n);
				} else if (dst) {
					cut = true;
				}
			}
		}
	}
	/* The child may have closed its pipes and still be running: the limit
	 * and the cancel token hold until it exits. */
	while (!timed_out && !cancelled && !failed) {
		bool poll_wait = deadline || opts->cancel || opts->tick;
		pid_t w = waitpid(pid, &wstatus, poll_wait ? WNOHANG : 0);

		if (w == pid)
			goto reaped;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			failed = "waitpid";
			failed_errno = errno;
			break;
		}
		if (deadline && clock_mono_ms() >= deadline)
			timed_out = true;
		else if (cancel_is_set(opts->cancel))
			cancelled = true;
		else
			usleep(10000);
		if (opts->tick)
			opts->tick(opts->tick_arg);
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
reaped:
	if (failed) {
		errno = failed_errno;
		r = err_sys(e, ERR_IO, "%s failed while running %s (it was stopped)", failed,
			    argv[0]);
	} else if (cancelled) {
		r = err_set(e, ERR_CANCELLED, "%s was stopped: cancelled", argv[0]);
	} else if (timed_out) {
		r = err_set(e, ERR_TIMEOUT, "%s did not finish within %d ms and was killed",
			    argv[0], opts->timeout_ms);
	}
	if (cut) {
		log_warn("%s wrote more than %zu bytes; the rest was dropped", argv[0], cap);
		if (opts->cut)
			*opts->cut = true;
	}
	if (status)
		*status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
out_pipes:
	close_pair(pin);
	close_pair(pout);
	close_pair(perr);
	return r;
}
